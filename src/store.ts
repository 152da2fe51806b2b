/**
 * The Store interface: what a key actor asks to decide, settle and read. A leaf of its own,
 * below the runtime that calls it and the stores that implement it (`memory/memoryStore.ts`,
 * `redis/redisStore.ts`); `test/conformance/` runs one table of cases against both.
 *
 * A store is called only from a key's actor, one message at a time per key, so a store never sees
 * two calls for the same key interleaved by tollgate itself. (Across processes, Redis scripts are
 * what keeps the calls atomic.)
 */
import type { Clock } from './clock.js';
import { remapMarks } from './limiter/advance.js';
import type { GrantRecord, LimitReading, Ms, Policy, Units } from './limiter/types.js';

/** A value, or a promise of it: the memory store answers synchronously, Redis does not. */
export type MaybePromise<T> = T | Promise<T>;

/** The refusal `limit` of a key paused by {@link Store.pause}. */
export const PAUSED = 'paused';

/** StoreRequest is one request of a batch sent to {@link Store.decide}. */
export interface StoreRequest {
  /** Unique id of the grant this request becomes; Redis keys concurrency leases by it. */
  readonly id: string;
  /** Units per limit of the policy (see `compileCost`). */
  readonly units: Units;
  /** Whether the grant takes a concurrency slot. */
  readonly slot: boolean;
  /** Ms after which a held slot is given back even if never released; `null`: never. */
  readonly leaseMs: Ms | null;
}

/** StoreGrant is a {@link GrantRecord} with the id it was requested under. */
export interface StoreGrant extends GrantRecord {
  readonly id: string;
  /** A store's own tag of where the grant was booked (the Redis store's fallbacks); kept by {@link restate}. */
  readonly origin?: string;
  /**
   * The incarnation of the key's state the grant was booked in, as its store numbered it: a key's
   * state gets a new epoch whenever it is created anew (after `reset`, or after it was dropped at
   * full capacity). A settle, cancel or release of a grant whose epoch is not the key's current
   * one gives back nothing (no units; no slot, except where slots are held by grant id, as in
   * Redis, where the id is exact anyway), since what it booked is gone with its incarnation; an
   * extra charge still books. A record without an epoch (the runtime's charge) gives back
   * nothing either. Kept by {@link restate} and {@link reframe}.
   */
  readonly epoch?: number;
}

/**
 * restate copies a grant record with other units (or slot), in the same policy's terms: its
 * marks and epoch are kept. Records may carry `id` as a getter, so they are copied field by
 * field, never spread.
 */
export function restate(g: StoreGrant, units: Units, slot: boolean = g.slot): StoreGrant {
  return record(g, units, slot, g.marks);
}

/**
 * reframe restates a record booked under the policy `from` in the terms of `to` (after
 * `setLimits`): `units` compiled for `to`, and its marks carried over by limit name (see
 * `remapMarks`), so a refund never reads the mark of another limit.
 *
 * On a limit of `to` that the grant did not book on (a new name, or one whose algorithm or window
 * interval changed, so its state started anew), the record says `min(units, actual)`: a settle
 * to `actual` then gives nothing back there (the grant holds nothing in it) and charges only
 * what `actual` exceeds the estimate by. Found by the model-based test: a settle gave back
 * capacity on a limit added after the grant.
 */
export function reframe(
  g: StoreGrant,
  from: Policy,
  to: Policy,
  units: Units,
  actual: Units,
): StoreGrant {
  const booked = units.map((u, i) => {
    const limit = to.limits[i]!;
    const kept = from.limits.some(
      (l) =>
        l.name === limit.name &&
        l.algorithm === limit.algorithm &&
        (l.algorithm === 'token-bucket' || l.intervalMs === limit.intervalMs),
    );
    return kept ? u : Math.min(u, actual[i] ?? 0);
  });
  return record(g, booked, g.slot, remapMarks(from, to, g.marks));
}

function record(
  g: StoreGrant,
  units: Units,
  slot: boolean,
  marks: readonly number[] | undefined,
): StoreGrant {
  const r: { -readonly [K in keyof StoreGrant]: StoreGrant[K] } = {
    id: g.id,
    at: g.at,
    units,
    slot,
  };
  if (marks !== undefined) r.marks = marks;
  if (g.origin !== undefined) r.origin = g.origin;
  if (g.epoch !== undefined) r.epoch = g.epoch;
  return r;
}

/**
 * KeyCache is a key actor's private slot for its store, passed to {@link Store.decideOne} and
 * {@link Store.decide}: a store may keep there whatever spares it finding the key the next time
 * (the memory store keeps the key's entry, saving a Map lookup per request; the Redis store the
 * key's Redis names). The runtime passes one slot per key, always for
 * the same key and store, and never reads it; a store must check what it finds there is still
 * current.
 */
export interface KeyCache {
  storeEntry: unknown;
}

/** What a store answers for one request. */
export type StoreDecision =
  | { readonly ok: true; readonly grant: StoreGrant }
  | { readonly ok: false; readonly retryAfterMs: Ms; readonly limit: string };

/**
 * How a batch is decided.
 * - `'queue'`: in order, stopping at the first refusal (a waiter is not overtaken by a later,
 *   smaller one); the answer has one decision per request decided, the last may be the refusal.
 * - `'each'`: every request independently, in order; one decision per request.
 */
export type BatchMode = 'queue' | 'each';

/** StoreDataLoss is what a store tells of limit state it lost (see {@link Store.onDataLost}). */
export interface StoreDataLoss {
  /**
   * - `'flushed'`: everything the store kept in `slot` (everywhere, on a single Redis) was lost:
   *   its marker was gone (FLUSHALL or FLUSHDB, a restart without persistence, a failover to an
   *   empty replica, or the marker itself evicted).
   * - `'evicted'`: the state of each of `keys` was gone before its time while the marker stayed
   *   (evicted under `maxmemory` with an `allkeys-*` policy, or deleted by someone else).
   */
  readonly reason: 'flushed' | 'evicted';
  /** The store keys known lost: those of an `'evicted'` loss; none for `'flushed'` (any key may be). */
  readonly keys: readonly string[];
  /** The Redis Cluster slot the loss was noticed in; `null` on a single Redis. */
  readonly slot: number | null;
  /** When the call that noticed it started, on the runtime's clock. */
  readonly at: Ms;
}

/** KeyReading is what a store reports of one key. */
export interface KeyReading {
  /** The instant the reading is for (the store's clock: Redis `TIME` for Redis). */
  readonly at: Ms;
  readonly limits: readonly LimitReading[];
  /** Concurrency slots held. */
  readonly inFlight: number;
}

/**
 * Store is where a key's limit state lives and is decided. Keys are opaque strings: a store must
 * accept any string and never let two distinct keys share state.
 *
 * `now` is the runtime clock's reading, taken once per mailbox message. The memory store decides at
 * `now`; the Redis store ignores it and reads Redis `TIME`.
 */
export interface Store {
  /** A name for stats and errors: `'memory'`, `'redis'`. */
  readonly name: string;
  /** True when every method answers synchronously (no promise): the runtime's fast path. */
  readonly sync: boolean;
  /**
   * Optional: the lease the runtime gives a concurrency slot when the limiter sets no `leaseTtl`
   * (ms after the grant; `null` or absent: the slot is held until released). A store shared
   * across processes sets one, so that the slot of a process that died, or of a decision whose
   * answer was lost, is not held forever.
   */
  readonly defaultLeaseMs?: Ms | null;
  /**
   * Optional: the system passes its clock, for whatever the store times itself (the Redis store:
   * its per-call timeout and the retries of a release). A store given its own clock keeps it.
   */
  useClock?(clock: Clock): void;
  /**
   * Optional fast path of a synchronous store: decide one request (as a one-request batch would).
   * `cache`, when given, is the key's {@link KeyCache}.
   */
  decideOne?(
    key: string,
    policy: Policy,
    req: StoreRequest,
    now: Ms,
    cache?: KeyCache,
  ): StoreDecision;
  /**
   * Decide a batch of one key's requests against `policy`, all-or-nothing per request. `cache`,
   * when given, is the key's {@link KeyCache}. Every request's `units` must have one amount per
   * limit of `policy`: the memory store throws InvalidArgumentError before anything changes, the
   * Redis store rejects with it and sends nothing.
   */
  decide(
    key: string,
    policy: Policy,
    batch: readonly StoreRequest[],
    mode: BatchMode,
    now: Ms,
    cache?: KeyCache,
  ): MaybePromise<StoreDecision[]>;
  /**
   * Move `grant` to the `actual` units (refund below, extra charge above). A grant of another
   * epoch than the key's (see {@link StoreGrant.epoch}) gets nothing back; its extra charge books.
   *
   * @throws InvalidArgumentError when `grant.units` or `actual` has not one amount per limit of
   *   `policy` (nothing changes).
   */
  settle(
    key: string,
    policy: Policy,
    grant: StoreGrant,
    actual: Units,
    now: Ms,
  ): MaybePromise<void>;
  /** Give back everything `grant` booked, and its slot (nothing for a grant of another epoch). */
  cancel(key: string, policy: Policy, grant: StoreGrant, now: Ms): MaybePromise<void>;
  /**
   * Free the concurrency slot `grant` holds. The runtime calls it at most once per grant (it is
   * `Grant.release` that is idempotent); the Redis store is idempotent anyway (slots by grant id).
   */
  release(key: string, policy: Policy, grant: StoreGrant, now: Ms): MaybePromise<void>;
  /** Read every limit of the key, window-aware, as of now. */
  read(key: string, policy: Policy, now: Ms): MaybePromise<KeyReading>;
  /**
   * Optional: refuse every request of the key for `forMs` from now (the store's clock), with
   * `limit` {@link PAUSED} and the time left as `retryAfterMs`. A shorter pause never cuts a
   * longer one short. Used when the provider answered 429.
   */
  pause?(key: string, forMs: Ms, now: Ms): MaybePromise<void>;
  /** Forget the key's state: full capacity, no slots held. */
  reset(key: string, now: Ms): MaybePromise<void>;
  /**
   * Ms from `now` until the last of `queue` (units per request, in service order) would be granted
   * if each is booked as soon as it fits and nothing else happens. Concurrency is not foreseen.
   * Optional: stores that cannot say leave reservations without an estimate.
   */
  estimate?(key: string, policy: Policy, queue: readonly Units[], now: Ms): Ms;
  /**
   * Drop what the store keeps for keys that are back at full capacity. Optional. Returns the
   * earliest instant at which state it keeps in this process comes back to full capacity with
   * time alone (a pause's end counts), or null when none does: the runtime sweeps again then
   * (not sooner than every half `idleTimeout`), also once no key actor is left.
   */
  sweep?(now: Ms): Ms | null | void;
  /**
   * Optional, for a store that keeps keys' state in this process (the memory store): what it keeps
   * of `key` at `now`, or undefined when nothing (back at full capacity, no slot held, no pause),
   * even if not dropped yet. A limiter's `maxKeys` counts these keys, and never forgets one that
   * holds a slot or a pause.
   */
  kept?(key: string, now: Ms): { readonly inFlight: number; readonly pausedMs: Ms } | undefined;
  /** Drop one key's state if it is back at full capacity (called when its actor is evicted). Optional. */
  forget?(key: string, now: Ms): void;
  /**
   * Optional, for stores shared across processes: call `listener` with a key whenever capacity of
   * that key frees up elsewhere (a slot released, units refunded), so its waiters ask again at
   * once. Returns a function that stops listening.
   */
  watch?(listener: (key: string) => void): () => void;
  /**
   * Optional, for stores that can lose state behind the runtime's back (Redis): call `listener`
   * whenever a call finds that state it kept was lost (see {@link StoreDataLoss}). The store goes
   * on deciding from the fresh state: grants of before the loss give nothing back to it (their
   * epoch is gone) and their slots are gone with it. Returns a function that stops listening.
   */
  onDataLost?(listener: (loss: StoreDataLoss) => void): () => void;
  /** Release what the store holds (connections it owns, subscriptions). */
  close(): Promise<void>;
}
