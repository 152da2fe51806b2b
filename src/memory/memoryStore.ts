/**
 * The memory store: the default. It decides synchronously with `src/limiter`, and keeps each
 * key's state as plain data in one Map, so a key whose actor was stopped costs only its state, and
 * a key back at full capacity costs nothing once swept.
 */
import {
  PAUSED,
  type BatchMode,
  type KeyReading,
  type Store,
  type StoreDecision,
  type StoreGrant,
  type StoreRequest,
} from '../actors/store.js';
import { InvalidArgumentError } from '../errors.js';
import { advance, initialState, isIdle, rebase } from '../limiter/advance.js';
import { decide } from '../limiter/decide.js';
import { read } from '../limiter/read.js';
import { refund, release, settle } from '../limiter/settle.js';
import type { KeyState, Ms, Policy, Units } from '../limiter/types.js';

/**
 * Entry is one key's state and the policy it was built under; a key met under another policy
 * (after `setLimits`) is rebased on first use.
 */
interface Entry {
  policy: Policy;
  state: KeyState;
}

/**
 * A grant record whose id is read from its request only when asked for (ids cost a string). It
 * carries the marks `decide` took (token buckets), which a later refund reads.
 */
class MemoryGrant implements StoreGrant {
  constructor(
    readonly req: StoreRequest,
    readonly at: Ms,
    readonly units: Units,
    readonly slot: boolean,
    readonly marks: readonly number[] | undefined,
  ) {}

  get id(): string {
    return this.req.id;
  }
}

/** MemorySnapshot is the JSON form of a memory store: every key that is not at full capacity. */
export interface MemorySnapshot {
  readonly version: 1;
  readonly keys: Readonly<Record<string, { readonly policy: Policy; readonly state: KeyState }>>;
}

/** MemoryStore is the in-process {@link Store}; create one with {@link memoryStore}. */
export class MemoryStore implements Store {
  readonly name = 'memory';
  readonly sync = true;
  /** Keys whose state is not known to be at full capacity. Absent means full. */
  readonly #entries = new Map<string, Entry>();
  /** Keys paused until an instant (a provider said 429); checked only while non-empty. */
  readonly #paused = new Map<string, Ms>();

  constructor(snapshot?: MemorySnapshot) {
    if (snapshot !== undefined) this.restore(snapshot);
  }

  /** The number of keys holding state. */
  get size(): number {
    return this.#entries.size;
  }

  #state(key: string, policy: Policy, now: Ms): KeyState {
    const e = this.#entries.get(key);
    return e === undefined ? initialState(policy, now) : this.#current(e, policy, now);
  }

  /** The entry's state under `policy`, rebased first if it was built under another one. */
  #current(e: Entry, policy: Policy, now: Ms): KeyState {
    if (e.policy !== policy) {
      e.state = rebase(e.policy, policy, e.state, now);
      e.policy = policy;
    }
    return e.state;
  }

  #put(key: string, policy: Policy, state: KeyState): void {
    const e = this.#entries.get(key);
    if (e === undefined) this.#entries.set(key, { policy, state });
    else e.state = state;
  }

  /** decideOne decides a single request with one Map lookup and no arrays: the hot path. */
  decideOne(key: string, policy: Policy, req: StoreRequest, now: Ms): StoreDecision {
    if (this.#paused.size > 0) {
      const wait = this.#pausedFor(key, now);
      if (wait > 0) return { ok: false, retryAfterMs: wait, limit: PAUSED };
    }
    let e = this.#entries.get(key);
    const state = e === undefined ? initialState(policy, now) : this.#current(e, policy, now);
    const d = decide(policy, state, req.units, now, req.slot);
    if (!d.ok) return { ok: false, retryAfterMs: d.retryAfterMs, limit: d.limit };
    if (e === undefined) this.#entries.set(key, (e = { policy, state: d.state }));
    else e.state = d.state;
    return {
      ok: true,
      grant: new MemoryGrant(req, d.grant.at, d.grant.units, d.grant.slot, d.grant.marks),
    };
  }

  decide(
    key: string,
    policy: Policy,
    batch: readonly StoreRequest[],
    mode: BatchMode,
    now: Ms,
  ): StoreDecision[] {
    const wait = this.#paused.size > 0 ? this.#pausedFor(key, now) : 0;
    if (wait > 0) {
      const refused: StoreDecision = { ok: false, retryAfterMs: wait, limit: PAUSED };
      return mode === 'queue' ? [refused] : batch.map(() => refused);
    }
    let state = this.#state(key, policy, now);
    const out: StoreDecision[] = [];
    for (const req of batch) {
      const d = decide(policy, state, req.units, now, req.slot);
      if (d.ok) {
        state = d.state;
        out.push({
          ok: true,
          grant: new MemoryGrant(req, d.grant.at, d.grant.units, d.grant.slot, d.grant.marks),
        });
      } else {
        out.push({ ok: false, retryAfterMs: d.retryAfterMs, limit: d.limit });
        if (mode === 'queue') break;
      }
    }
    if (out.some((d) => d.ok)) this.#put(key, policy, state);
    return out;
  }

  settle(key: string, policy: Policy, grant: StoreGrant, actual: Units, now: Ms): void {
    this.#put(key, policy, settle(policy, this.#state(key, policy, now), grant, actual, now).state);
  }

  cancel(key: string, policy: Policy, grant: StoreGrant, now: Ms): void {
    const s = refund(policy, this.#state(key, policy, now), grant, now);
    this.#put(key, policy, release(s, grant));
  }

  release(key: string, policy: Policy, grant: StoreGrant, now: Ms): void {
    if (!grant.slot || !this.#entries.has(key)) return;
    this.#put(key, policy, release(this.#state(key, policy, now), grant));
  }

  read(key: string, policy: Policy, now: Ms): KeyReading {
    const r = read(policy, this.#state(key, policy, now), now);
    return {
      at: Math.max(now, this.#entries.get(key)?.state.at ?? now),
      limits: r.limits,
      inFlight: r.inFlight,
    };
  }

  reset(key: string): void {
    this.#entries.delete(key);
    this.#paused.delete(key);
  }

  /** pause refuses the key's requests for `forMs` from `now` (never shortening a longer pause). */
  pause(key: string, forMs: Ms, now: Ms): void {
    const until = now + forMs;
    if ((this.#paused.get(key) ?? -Infinity) < until) this.#paused.set(key, until);
  }

  /** Ms the key stays paused after `now`; 0 when it is not paused (an ended pause is dropped). */
  #pausedFor(key: string, now: Ms): Ms {
    const until = this.#paused.get(key);
    if (until === undefined) return 0;
    if (until > now) return until - now;
    this.#paused.delete(key);
    return 0;
  }

  /** sweep drops every key that is back at full capacity with no slot held. */
  sweep(now: Ms): void {
    for (const [key, until] of this.#paused) if (until <= now) this.#paused.delete(key);
    for (const [key, e] of this.#entries) {
      if (isIdle(e.policy, e.state, now)) this.#entries.delete(key);
    }
  }

  /** forget drops one key if it is back at full capacity (the runtime calls it on eviction). */
  forget(key: string, now: Ms): void {
    const e = this.#entries.get(key);
    if (e !== undefined && isIdle(e.policy, e.state, now)) this.#entries.delete(key);
  }

  /**
   * estimate simulates the queue with the pure core: each request booked at the first instant it
   * fits, in order. Slots are not foreseen (releases cannot be).
   */
  estimate(key: string, policy: Policy, queue: readonly Units[], now: Ms): Ms {
    let state = this.#state(key, policy, now);
    let t = now + this.#pausedFor(key, now);
    for (const units of queue) {
      for (;;) {
        const d = decide(policy, state, units, t, false);
        if (d.ok) {
          state = d.state;
          break;
        }
        t += Math.max(1, d.retryAfterMs);
      }
    }
    return t - now;
  }

  /**
   * snapshot returns every key's state as JSON-safe data, advanced to `now`, without the
   * concurrency slots held (their grants do not survive a restart) and without pauses.
   */
  snapshot(now: Ms): MemorySnapshot {
    const keys: Record<string, { policy: Policy; state: KeyState }> = {};
    for (const [key, e] of this.#entries) {
      // Slots are not kept: the grants holding them do not survive the restart, so nothing
      // could ever release them.
      const s = advance(e.policy, e.state, now);
      const state: KeyState = { at: s.at, inFlight: 0, limits: s.limits };
      if (isIdle(e.policy, state, now)) continue;
      keys[key] = { policy: e.policy, state };
    }
    return { version: 1, keys };
  }

  /**
   * restore loads a {@link MemorySnapshot}, replacing the state of the keys it names.
   * @throws InvalidArgumentError when `snapshot` is not a version-1 memory snapshot.
   */
  restore(snapshot: MemorySnapshot): void {
    if (
      typeof snapshot !== 'object' ||
      snapshot === null ||
      snapshot.version !== 1 ||
      typeof snapshot.keys !== 'object'
    ) {
      throw new InvalidArgumentError(
        'tollgate: restore expects a memory snapshot { version: 1, keys }',
      );
    }
    for (const [key, e] of Object.entries(snapshot.keys)) {
      this.#entries.set(key, { policy: e.policy, state: e.state });
    }
  }

  async close(): Promise<void> {}
}

/**
 * memoryStore creates the in-process store (the default of `createLimiterSystem`).
 *
 * @example
 * const system = createLimiterSystem({ store: memoryStore() });
 */
export function memoryStore(snapshot?: MemorySnapshot): MemoryStore {
  return new MemoryStore(snapshot);
}
