/**
 * The Redis store: the same limits as the memory store, kept in Redis and decided by Lua scripts,
 * so every process and machine that shares a Redis (or a Redis Cluster) shares the limits.
 *
 * What is atomic: each call is one script run on one key (one hash slot), so a batch of one key's
 * requests, a settle, a cancel and a release each happen all at once, and two processes never
 * both take the last unit. Time is Redis' own `TIME`, read inside the script, so app servers with
 * skewed clocks agree. What is not atomic: two different keys (each is its own script run), and a
 * call whose answer is lost (a timeout or a dropped connection after the script ran): its booking
 * stands, so failures over-count and never under-count, and a slot it took comes back when its
 * lease ends.
 *
 * When Redis cannot answer (down, slow, unreachable), the `onUnavailable` policy decides:
 * `'fail-closed'` rejects with {@link StoreUnavailableError}, `'fail-open'` grants, and
 * `'insurance'` decides with an in-memory store at a fraction of the limits. After a failure the
 * store does not ask Redis again for `retryInterval`, so an outage costs one timeout, not one per
 * request.
 */
import type { Cluster, Redis } from 'ioredis';
import {
  restate,
  type BatchMode,
  type KeyCache,
  type KeyReading,
  type Store,
  type StoreDecision,
  type StoreGrant,
  type StoreRequest,
} from '../store.js';
import { InvalidArgumentError, StoreUnavailableError, isTollgateError } from '../errors.js';
import type { Duration, LimitReading, Ms, Policy, Units } from '../limiter/types.js';
import { parseDuration } from '../limiter/units.js';
import { checkUnits } from '../limiter/validate.js';
import { MemoryStore } from '../memory/memoryStore.js';
import { checkPrefix, freeChannel, keyNames, type RedisKeyNames } from './keys.js';
import { slotOf } from './slot.js';
import { SCRIPTS, scriptSources, type ScriptName } from './scripts.js';

/** What happens to requests while Redis cannot answer. */
export type UnavailablePolicy = 'fail-closed' | 'fail-open' | 'insurance';

/** Options of {@link redisStore}. */
export interface RedisStoreOptions {
  /** An ioredis client: a `Redis` or a `Cluster`. The store does not close it. */
  readonly client: Redis | Cluster;
  /** Prepended to every Redis key and channel; no `{` or `}`. @default 'tollgate:' */
  readonly prefix?: string;
  /**
   * Whose clock decides. `'redis'`: Redis `TIME`, the only right choice across machines.
   * `'runtime'`: the `now` the runtime passes (its injected clock), for tests at fixed instants.
   * @default 'redis'
   */
  readonly time?: 'redis' | 'runtime';
  /** A call that takes longer counts as Redis being unavailable. @default '1s' */
  readonly timeout?: Duration;
  /** What requests get while Redis is unavailable. @default 'fail-closed' */
  readonly onUnavailable?: UnavailablePolicy;
  /** With `'insurance'`: the fraction of every limit the in-memory stand-in allows. @default 0.5 */
  readonly insuranceFraction?: number;
  /** After a failure, how long the store answers by its policy before asking Redis again. @default '1s' */
  readonly retryInterval?: Duration;
}

/** Where a grant was booked: in Redis, by the fail-open policy, or by the insurance store. */
type Origin = 'redis' | 'open' | 'insurance';

/** A grant of the Redis store; `origin` routes its settle, cancel and release. */
interface RedisGrant extends StoreGrant {
  readonly origin?: Origin;
}

type ScriptFn = (...args: (string | number)[]) => Promise<unknown>;
type ScriptClient = Record<ScriptName, ScriptFn>;

/** RedisStore is the Redis {@link Store}; create one with {@link redisStore}. */
export class RedisStore implements Store {
  readonly name = 'redis';
  readonly sync = false;
  readonly #client: Redis | Cluster;
  readonly #run: ScriptClient;
  readonly #prefix: string;
  readonly #channel: string;
  readonly #runtimeTime: boolean;
  readonly #timeoutMs: Ms;
  readonly #policy: UnavailablePolicy;
  readonly #fraction: number;
  readonly #retryMs: Ms;
  readonly #insurance = new MemoryStore();
  readonly #scaled = new WeakMap<Policy, Policy>();
  readonly #subscribers = new Set<Redis | Cluster>();
  /** The instant (runtime clock) before which Redis is not asked again after a failure. */
  #downUntil = -Infinity;
  #closed = false;
  readonly #cluster: boolean;
  /** Decisions asked for since the last flush, by cluster slot (one group on a single Redis). */
  #pending = new Map<number, Pending[]>();
  #flushScheduled = false;

  constructor(options: RedisStoreOptions) {
    if (
      typeof options !== 'object' ||
      options === null ||
      typeof options.client?.defineCommand !== 'function'
    ) {
      throw new InvalidArgumentError(
        'tollgate: redisStore needs { client }: an ioredis Redis or Cluster',
      );
    }
    this.#client = options.client;
    this.#prefix = checkPrefix(options.prefix ?? 'tollgate:');
    this.#channel = freeChannel(this.#prefix);
    const time = options.time ?? 'redis';
    if (time !== 'redis' && time !== 'runtime') {
      throw new InvalidArgumentError(
        `tollgate: redisStore time must be 'redis' or 'runtime' (got ${String(time)})`,
      );
    }
    this.#runtimeTime = time === 'runtime';
    this.#timeoutMs = parseDuration(options.timeout ?? '1s', 'timeout');
    this.#retryMs = parseDuration(options.retryInterval ?? '1s', 'retryInterval');
    const policy = options.onUnavailable ?? 'fail-closed';
    if (policy !== 'fail-closed' && policy !== 'fail-open' && policy !== 'insurance') {
      throw new InvalidArgumentError(
        `tollgate: onUnavailable must be 'fail-closed', 'fail-open' or 'insurance' (got ${String(policy)})`,
      );
    }
    this.#policy = policy;
    const fraction = options.insuranceFraction ?? 0.5;
    if (typeof fraction !== 'number' || !(fraction > 0 && fraction <= 1)) {
      throw new InvalidArgumentError(
        `tollgate: insuranceFraction must be in (0, 1] (got ${String(fraction)})`,
      );
    }
    this.#fraction = fraction;
    const sources = scriptSources();
    const client = this.#client as unknown as Record<string, unknown>;
    for (const name of Object.keys(SCRIPTS) as ScriptName[]) {
      if (typeof client[name] !== 'function') {
        // decide takes two keys per tollgate key it decides, so its key count is per call.
        const keys = name === 'tollgateDecide' ? {} : { numberOfKeys: 2 };
        this.#client.defineCommand(name, { ...keys, lua: sources[name] });
      }
    }
    this.#run = this.#client as unknown as ScriptClient;
    this.#cluster = (this.#client as { isCluster?: boolean }).isCluster === true;
  }

  /** The key prefix in use. */
  get prefix(): string {
    return this.#prefix;
  }

  /** Whether the store is answering by its `onUnavailable` policy at `now` (after a failure). */
  isDegraded(now: Ms): boolean {
    return now < this.#downUntil;
  }

  #now(now: Ms): string {
    return this.#runtimeTime ? String(now) : '';
  }

  /**
   * call runs one script on one key with the store's timeout (see #send). Only decisions are
   * short-circuited while Redis is marked down: settles, releases and cancels are always tried,
   * since skipping them would leak what the grants hold.
   */
  async #call<T>(name: ScriptName, key: string, args: (string | number)[], now: Ms): Promise<T> {
    const names = keyNames(this.#prefix, key);
    return this.#send<T>(name, [names.state, names.slots, ...args], now, false);
  }

  /**
   * send runs one script (its keys first in `args`) under the store's timeout. A failure or a
   * timeout marks Redis down for `retryInterval` from when it was noticed, and rejects with a
   * StoreUnavailableError; while down, calls with `gated` (decisions) are not sent at all.
   */
  async #send<T>(name: ScriptName, args: (string | number)[], now: Ms, gated: boolean): Promise<T> {
    if (this.#closed) throw new StoreUnavailableError('the redis store is closed');
    if (gated && now < this.#downUntil) {
      throw new StoreUnavailableError('redis failed recently; retrying after retryInterval');
    }
    let timedOut = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        reject(new StoreUnavailableError(`redis did not answer within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
    });
    try {
      return (await Promise.race([this.#run[name](...args), timeout])) as T;
    } catch (e) {
      // `now` is when the call started: a timeout was noticed timeoutMs later.
      this.#downUntil = Math.max(
        this.#downUntil,
        now + (timedOut ? this.#timeoutMs : 0) + this.#retryMs,
      );
      if (isTollgateError(e)) throw e;
      throw new StoreUnavailableError(e instanceof Error ? e.message : String(e), e);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The policy in the layout the scripts read (see `read_policy` in lua/common.lua). */
  #policyArgs(policy: Policy): (string | number)[] {
    const args: (string | number)[] = [policy.limits.length];
    for (const l of policy.limits) {
      args.push(
        l.name,
        l.algorithm === 'token-bucket' ? 't' : l.algorithm === 'fixed-window' ? 'f' : 's',
      );
      args.push(l.limit, l.intervalMs, l.capacity);
    }
    args.push(policy.concurrency ?? -1);
    return args;
  }

  /**
   * decide queues the request for the next script call: the decisions that the keys of one
   * cluster slot (every key, on a single Redis) ask for before the store's flush runs (a
   * microtask queued by the first of them: the code running now, and promise callbacks queued
   * ahead of the flush) go to Redis in one call of `decide.lua`, up to {@link MAX_KEYS_PER_CALL}
   * keys each. A key has at most one decide in
   * flight (its actor waits for the answer), so a call never holds one key twice.
   *
   * Rejects with InvalidArgumentError, and sends nothing for the key, when a request's units have
   * not one amount per limit of `policy`.
   */
  decide(
    key: string,
    policy: Policy,
    batch: readonly StoreRequest[],
    mode: BatchMode,
    now: Ms,
    cache?: KeyCache,
  ): Promise<StoreDecision[]> {
    return new Promise<StoreDecision[]>((resolve, reject) => {
      try {
        for (const r of batch) checkUnits(policy, r.units, 'decide');
      } catch (e) {
        reject(e);
        return;
      }
      const place = this.#place(key, cache);
      const entry: Pending = { place, policy, batch, mode, now, resolve, reject };
      const list = this.#pending.get(place.group);
      if (list === undefined) this.#pending.set(place.group, [entry]);
      else list.push(entry);
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        // A microtask, not setImmediate: the callers an answer wakes ask again in its promise
        // callbacks, and their requests leave as soon as that answer is handled, while Redis runs
        // the calls sent before. With setImmediate, the answers that arrived together (and their
        // callers' next requests) merged into one call per turn of the event loop. Measured with
        // the bench's workload: ~1.1 other calls in flight at each send with setImmediate (~44
        // grants per call), ~2.4 with a microtask (~24 per call), and about 10% more grants/s.
        queueMicrotask(() => this.#flush());
      }
    });
  }

  /**
   * The key's Redis names and cluster slot, kept in the key actor's cache slot when there is one
   * (otherwise a few strings and an object per decision, and a CRC16 on a Cluster).
   */
  #place(key: string, cache: KeyCache | undefined): KeyPlace {
    const held = cache?.storeEntry;
    if (held instanceof KeyPlace && held.store === this && held.key === key) return held;
    const names = keyNames(this.#prefix, key);
    const place = new KeyPlace(this, key, names, this.#cluster ? slotOf(names.state) : 0);
    if (cache !== undefined) cache.storeEntry = place;
    return place;
  }

  #flush(): void {
    this.#flushScheduled = false;
    // A new Map per flush, not clear(): V8 links a cleared Map's table to its successor (for live
    // iterators), so once one table was promoted to the old generation (a full GC while requests
    // were pending is enough), each dead table kept the next one, and every request it held, alive
    // through minor GCs. Measured with a throwaway driver calling decide directly (the bench's
    // keys and callers) after a full GC: ~500 MB promoted per 10 s and ~8.6 µs of Node CPU per
    // grant with clear(); ~140 MB and ~4 µs with a new Map.
    const groups = this.#pending;
    this.#pending = new Map();
    for (const entries of groups.values()) {
      for (let i = 0; i < entries.length; i += MAX_KEYS_PER_CALL) {
        void this.#decideMany(entries.slice(i, i + MAX_KEYS_PER_CALL));
      }
    }
  }

  /** One `decide.lua` call for `entries` (keys of one slot); each entry is answered on its own. */
  async #decideMany(entries: readonly Pending[]): Promise<void> {
    const keys: string[] = [];
    const ownTime = this.#runtimeTime;
    const policies: Policy[] = [];
    const ids: string[] = [];
    // The groups go in one argument (see decide.lua): a few hundred short arguments cost ioredis
    // and Redis more than their text does in one.
    let groups = '';
    for (const e of entries) {
      // Slot fields (id, slot, lease) go only with a policy that counts slots, or a request
      // holding one from an earlier policy: most calls carry just the amounts.
      const slotted = e.policy.concurrency !== null || e.batch.some((r) => r.slot);
      keys.push(e.place.names.state);
      if (slotted) keys.push(e.place.names.slots);
      let p = policies.indexOf(e.policy);
      if (p < 0) p = policies.push(e.policy) - 1;
      if (ownTime) groups += `${e.now},`;
      groups += `${MODE_LETTER[e.mode][slotted ? 1 : 0]},${p + 1},${e.batch.length}`;
      for (const r of e.batch) {
        for (const u of r.units) groups += `,${u}`;
        if (slotted) {
          ids.push(r.id);
          groups += r.slot ? ',1,' : ',0,';
          groups += r.leaseMs ?? -1;
        }
      }
      groups += ',';
    }
    const args: (string | number)[] = [
      keys.length,
      ...keys,
      ownTime ? 'each' : '',
      policies.length,
    ];
    for (const p of policies) args.push(...this.#policyArgs(p));
    args.push(...ids, groups);
    let reply: (number | string)[];
    try {
      reply = await this.#send<(number | string)[]>('tollgateDecide', args, entries[0]!.now, true);
    } catch (error) {
      for (const e of entries) {
        if (this.#closed) {
          e.reject(error); // a closed store grants nothing, whatever its policy
          continue;
        }
        try {
          e.resolve(this.#fallback(error, e.place.key, e.policy, e.batch, e.mode, e.now));
        } catch (failure) {
          e.reject(failure);
        }
      }
      return;
    }
    let at = 0;
    for (const e of entries) at = readDecisions(e, reply, at);
  }

  /** Decisions while Redis is unavailable, by the `onUnavailable` policy. */
  #fallback(
    error: unknown,
    key: string,
    policy: Policy,
    batch: readonly StoreRequest[],
    mode: BatchMode,
    now: Ms,
  ): StoreDecision[] {
    if (this.#policy === 'fail-closed') throw error;
    if (this.#policy === 'fail-open') {
      return batch.map((r) => ({
        ok: true,
        grant: {
          id: r.id,
          at: now,
          units: r.units,
          slot: r.slot,
          origin: 'open',
        } satisfies RedisGrant,
      }));
    }
    const scaled = this.#scale(policy);
    return this.#insurance.decide(key, scaled, batch, mode, now).map((d) =>
      d.ok
        ? {
            ok: true,
            grant: {
              ...restate(d.grant, d.grant.units),
              origin: 'insurance',
            } satisfies RedisGrant,
          }
        : d,
    );
  }

  /** The insurance policy: every limit at `insuranceFraction`, at least 1. */
  #scale(policy: Policy): Policy {
    let scaled = this.#scaled.get(policy);
    if (scaled === undefined) {
      const f = this.#fraction;
      scaled = {
        limits: policy.limits.map((l) => ({
          ...l,
          limit: Math.max(1, Math.floor(l.limit * f)),
          capacity: Math.max(1, Math.floor(l.capacity * f)),
        })),
        dimensions: policy.dimensions,
        concurrency:
          policy.concurrency === null ? null : Math.max(1, Math.floor(policy.concurrency * f)),
      };
      this.#scaled.set(policy, scaled);
    }
    return scaled;
  }

  /**
   * settle moves the grant to `actual` in Redis (see settle.lua): nothing comes back to a grant
   * of another epoch than the key's, an extra charge books.
   *
   * @throws InvalidArgumentError (rejects, sending nothing) when `grant.units` or `actual` has not
   *   one amount per limit of `policy`.
   */
  async settle(
    key: string,
    policy: Policy,
    grant: StoreGrant,
    actual: Units,
    now: Ms,
  ): Promise<void> {
    checkUnits(policy, grant.units, 'settle');
    checkUnits(policy, actual, 'settle');
    await this.#adjust(key, policy, grant, actual, false, now);
  }

  async cancel(key: string, policy: Policy, grant: StoreGrant, now: Ms): Promise<void> {
    checkUnits(policy, grant.units, 'cancel');
    await this.#adjust(
      key,
      policy,
      grant,
      grant.units.map(() => 0),
      grant.slot,
      now,
    );
  }

  async #adjust(
    key: string,
    policy: Policy,
    grant: StoreGrant,
    actual: Units,
    free: boolean,
    now: Ms,
  ): Promise<void> {
    const origin = (grant as RedisGrant).origin;
    if (origin === 'open') return;
    if (origin === 'insurance') {
      const scaled = this.#scale(policy);
      if (free) this.#insurance.cancel(key, scaled, grant, now);
      else this.#insurance.settle(key, scaled, grant, actual, now);
      return;
    }
    const args = [
      this.#now(now),
      ...this.#policyArgs(policy),
      grant.id,
      grant.at,
      grant.epoch ?? '',
      free ? '1' : '0',
      this.#channel,
    ];
    for (const u of grant.units) args.push(u);
    for (const u of actual) args.push(u);
    for (let i = 0; i < policy.limits.length; i++) args.push(grant.marks?.[i] ?? 0);
    args.push(key);
    await this.#call('tollgateSettle', key, args, now);
  }

  async release(key: string, policy: Policy, grant: StoreGrant, now: Ms): Promise<void> {
    const origin = (grant as RedisGrant).origin;
    if (!grant.slot || origin === 'open') return;
    if (origin === 'insurance') {
      this.#insurance.release(key, this.#scale(policy), grant, now);
      return;
    }
    // A slot whose release is lost stays held in every process (until its lease, if any), so a
    // failed release is tried again a few times, retryInterval apart, before it is given up.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#call('tollgateRelease', key, [grant.id, this.#channel, key], now);
        return;
      } catch (e) {
        if (attempt >= RELEASE_ATTEMPTS || this.#closed) throw e;
        await new Promise<void>((r) => setTimeout(r, this.#retryMs).unref());
      }
    }
  }

  async read(key: string, policy: Policy, now: Ms): Promise<KeyReading> {
    const r = await this.#call<number[]>(
      'tollgateRead',
      key,
      [this.#now(now), ...this.#policyArgs(policy)],
      now,
    );
    const limits = policy.limits.map((l, i): LimitReading => ({
      name: l.name,
      dimension: l.dimension,
      algorithm: l.algorithm,
      limit: l.limit,
      capacity: l.capacity,
      remaining: r[2 + 2 * i]!,
      resetMs: r[3 + 2 * i]!,
    }));
    return { at: r[0]!, inFlight: r[1]!, limits };
  }

  async reset(key: string, now: Ms): Promise<void> {
    this.#insurance.reset(key);
    await this.#call('tollgateReset', key, [this.#channel, key], now);
  }

  async pause(key: string, forMs: Ms, now: Ms): Promise<void> {
    this.#insurance.pause(key, forMs, now);
    await this.#call('tollgatePause', key, [this.#now(now), forMs], now);
  }

  /** sweep drops what the insurance store keeps for keys back at full capacity. */
  sweep(now: Ms): void {
    this.#insurance.sweep(now);
  }

  /**
   * watch calls `listener` with a key's name whenever any process frees capacity of that key (a
   * released slot, a refund, a reset), through Redis pub/sub on a duplicate connection. The
   * runtime uses it to wake that key's waiters at once instead of at the next poll.
   */
  watch(listener: (key: string) => void): () => void {
    const sub = this.#client.duplicate();
    this.#subscribers.add(sub);
    // A subscriber that loses its connection reconnects by itself; waiters still poll meanwhile.
    sub.on('error', () => {});
    sub.on('message', (channel: string, key: string) => {
      if (channel === this.#channel) listener(key);
    });
    void sub.subscribe(this.#channel).catch(() => {});
    return () => {
      if (this.#subscribers.delete(sub)) sub.disconnect();
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const sub of this.#subscribers) sub.disconnect();
    this.#subscribers.clear();
  }
}

/** How many times a failed release is tried (see {@link RedisStore.release}). */
const RELEASE_ATTEMPTS = 3;

/** decide.lua's mode letter of a batch mode, without and with slot fields (see its header). */
const MODE_LETTER: Readonly<Record<BatchMode, readonly [string, string]>> = {
  queue: ['q', 'Q'],
  each: ['e', 'E'],
};

/** The most keys one `decide.lua` call decides (Redis runs a script to completion, alone). */
const MAX_KEYS_PER_CALL = 64;

/** Where a key lives in Redis, for {@link RedisStore} (kept in the key's {@link KeyCache}). */
class KeyPlace {
  constructor(
    readonly store: RedisStore,
    readonly key: string,
    readonly names: RedisKeyNames,
    /** The cluster slot of its names (0 on a single Redis: one group). */
    readonly group: number,
  ) {}
}

/** One key's decision waiting for the next script call. */
interface Pending {
  readonly place: KeyPlace;
  readonly policy: Policy;
  readonly batch: readonly StoreRequest[];
  readonly mode: BatchMode;
  readonly now: Ms;
  resolve(decisions: StoreDecision[]): void;
  reject(error: unknown): void;
}

/**
 * readDecisions answers `e` from the flat reply of `decide.lua` (see its header), starting at
 * index `at`, and returns the index after this key's part.
 */
function readDecisions(e: Pending, reply: readonly (number | string)[], at: number): number {
  const n = e.policy.limits.length;
  // Marks are kept only for a policy with a token bucket, as the core does (GrantRecord.marks).
  const marked = e.policy.limits.some((l) => l.algorithm === 'token-bucket');
  const count = reply[at++] as number;
  const out: StoreDecision[] = [];
  for (let i = 0; i < count; i++) {
    const req = e.batch[i]!;
    if (reply[at] === 1) {
      const grantAt = reply[at + 1] as number;
      const epoch = reply[at + 2] as number;
      const grant: StoreGrant = marked
        ? {
            id: req.id,
            at: grantAt,
            units: req.units,
            slot: req.slot,
            marks: reply.slice(at + 3, at + 3 + n) as number[],
            epoch,
          }
        : { id: req.id, at: grantAt, units: req.units, slot: req.slot, epoch };
      out.push({ ok: true, grant });
      at += 3 + n;
    } else {
      out.push({
        ok: false,
        retryAfterMs: reply[at + 1] as number,
        limit: reply[at + 2] as string,
      });
      at += 3;
    }
  }
  e.resolve(out);
  return at;
}

/**
 * redisStore creates a {@link RedisStore} for `createLimiterSystem({ store })`.
 *
 * @example
 * import { Redis } from 'ioredis';
 * const system = createLimiterSystem({ store: redisStore({ client: new Redis(), prefix: 'myapp:' }) });
 */
export function redisStore(options: RedisStoreOptions): RedisStore {
  return new RedisStore(options);
}
