/**
 * The memory store: the default. It decides synchronously with `src/limiter`, and keeps each
 * key's state as plain data in one Map, so a key whose actor was stopped costs only its state, and
 * a key back at full capacity costs nothing once swept.
 *
 * The store owns each key's state and rewrites it in place on a grant (`decideInPlace`), rather
 * than replacing it with a new object graph per grant: with many keys those replaced states lived
 * just long enough to be promoted by the garbage collector. Less frequent operations (settle,
 * cancel, a policy change) compute with the pure functions and copy the result back (`adopt`).
 * Owned objects are not handed to callers: snapshots and reads are copies (`plain`). The one place
 * an owned entry leaves the store is the key actor's `KeyCache` slot, which the runtime keeps for
 * the store and never reads.
 */
import {
  PAUSED,
  type BatchMode,
  type KeyCache,
  type KeyReading,
  type Store,
  type StoreDecision,
  type StoreGrant,
  type StoreRequest,
} from '../store.js';
import {
  advance,
  initialState,
  fullAt,
  isIdle,
  rebase,
  restarts,
  sameRecords,
} from '../limiter/advance.js';
import { decide } from '../limiter/decide.js';
import { adopt, decideInPlace, marksOf, releaseInPlace } from '../limiter/inPlace.js';
import { read } from '../limiter/read.js';
import { refund, release, settle } from '../limiter/settle.js';
import type { KeyState, Ms, Policy, Units } from '../limiter/types.js';
import { checkBatchUnits, checkUnits } from '../limiter/validate.js';
import { MemoryGrant, newEntry, reorder, reown, type Entry } from './entry.js';
import { checkSnapshot, savedState, type MemorySnapshot } from './snapshot.js';

export type { MemorySnapshot };

/** MemoryStore is the in-process {@link Store}; create one with {@link memoryStore}. */
export class MemoryStore implements Store {
  readonly name = 'memory';
  readonly sync = true;
  /** Keys whose state is not known to be at full capacity. Absent means full. */
  readonly #entries = new Map<string, Entry>();
  /** Keys paused until an instant (a provider said 429); checked only while non-empty. */
  readonly #paused = new Map<string, Ms>();
  /** The epoch of the last entry made: every new entry takes the next one. */
  #epoch = 0;

  constructor(snapshot?: MemorySnapshot) {
    if (snapshot !== undefined) this.restore(snapshot);
  }

  /** The number of keys holding state. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The entry to decide `key` on: the cached one while it is still in the map, else the map's
   * (brought under `policy`), else a new one that {@link #keep} puts in the map once it booked.
   */
  #entryFor(key: string, policy: Policy, now: Ms, cached?: Entry): Entry {
    // Stryker disable next-line ConditionalExpression: a shortcut: a live cached entry is the one in the map
    const e = cached !== undefined && cached.live ? cached : this.#entries.get(key);
    if (e === undefined) return newEntry(policy, initialState(policy, now), ++this.#epoch);
    // A decision, grant or refusal, takes the key under `policy` (the Redis store's decide.lua
    // writes a rebased state back even when it refuses).
    if (e.policy === policy) return e;
    if (sameRecords(e.policy, policy)) {
      // Only the order, a capacity or the concurrency changed: the state stands as it is (a
      // refusal writes nothing on Redis either); a grant then books it at `now`.
      reorder(e, policy);
      return e;
    }
    this.#rebase(e, policy, rebase(e.policy, policy, e, now));
    this.#clearEndedPause(key, now); // Redis writes a rebased key back, refused or not
    return e;
  }

  #keep(key: string, e: Entry): void {
    // Stryker disable next-line ConditionalExpression: setting the same entry in the map again changes nothing
    if (e.live) return;
    e.live = true;
    this.#entries.set(key, e);
  }

  /**
   * The key's state under `policy` without changing anything (owned when it is the entry itself:
   * read it, never keep it): a key still under an older policy is seen rebased and stays as it is
   * until its next decision or settle, as in the Redis store (whose read writes nothing). Settle
   * and cancel compute from it, and {@link #put} takes the result under `policy`.
   */
  #view(key: string, policy: Policy, now: Ms): KeyState {
    const e = this.#entries.get(key);
    if (e === undefined) return initialState(policy, now);
    return e.policy === policy ? e : rebase(e.policy, policy, e, now);
  }

  /** Stores `state` (computed under `policy`, possibly from the entry's own objects) for `key`. */
  #put(key: string, policy: Policy, state: KeyState): void {
    const e = this.#entries.get(key);
    if (e === undefined) this.#keep(key, newEntry(policy, state, ++this.#epoch));
    else if (e.policy === policy) adopt(policy, e, state);
    else this.#rebase(e, policy, state);
  }

  /**
   * Takes `e` under `policy` with `state` (its state rebased there). A change that drops or
   * restarts a limit's state starts a new epoch: grants made before give nothing back.
   */
  #rebase(e: Entry, policy: Policy, state: KeyState): void {
    if (restarts(e.policy, policy)) e.epoch = ++this.#epoch;
    reown(e, policy, state);
  }

  /**
   * Whether `grant` was booked in the key's entry as it is now: false after the key was reset or
   * dropped since (the grant holds nothing here any more), and for a record without an epoch.
   */
  #holds(key: string, policy: Policy, grant: StoreGrant): boolean {
    const e = this.#entries.get(key);
    if (e === undefined || grant.epoch !== e.epoch) return false;
    // Settled under a policy whose rebase will drop or restart a limit (a new epoch).
    // Stryker disable next-line ConditionalExpression: a shortcut: restarts(p, p) is false (every limit kept, at its interval)
    return e.policy === policy || !restarts(e.policy, policy);
  }

  /** Removes the key's entry, if any, and tells a key actor that may still hold it. */
  #drop(key: string, e: Entry | undefined = this.#entries.get(key)): void {
    if (e === undefined) return;
    e.live = false;
    this.#entries.delete(key);
  }

  /**
   * decideOne decides a single request in place: the hot path. With the key actor's `cache`, the
   * key's entry is found there rather than looked up (it is checked to be still live).
   */
  decideOne(
    key: string,
    policy: Policy,
    req: StoreRequest,
    now: Ms,
    cache?: KeyCache,
  ): StoreDecision {
    checkUnits(policy, req.units, 'decide', 'request.units');
    // Stryker disable next-line ConditionalExpression,EqualityOperator: a shortcut: with no pause on, #pausedFor gives 0
    if (this.#paused.size > 0) {
      const wait = this.#pausedFor(key, now);
      if (wait > 0) return { ok: false, retryAfterMs: wait, limit: PAUSED };
    }
    // Only this store fills the cache, and only with the entry of the cache's own key.
    const e = this.#entryFor(key, policy, now, cache?.storeEntry as Entry | undefined);
    const refused = decideInPlace(policy, e, req.units, now, req.slot);
    if (refused !== undefined) return refused; // the state is untouched (a new entry is not kept)
    this.#keep(key, e);
    if (cache !== undefined) cache.storeEntry = e;
    const grant = new MemoryGrant(req, e.at, req.units, req.slot, marksOf(policy, e), e.epoch);
    this.#clearEndedPause(key, now);
    // Stryker disable next-line ConditionalExpression,LogicalOperator: a shortcut: #forgetIfBlank drops only a key that holds nothing anyway
    if (!req.slot && allZero(req.units)) this.#forgetIfBlank(key, now);
    return grant;
  }

  decide(
    key: string,
    policy: Policy,
    batch: readonly StoreRequest[],
    mode: BatchMode,
    now: Ms,
  ): StoreDecision[] {
    // Every request is checked before the first is booked: a batch is refused whole.
    checkBatchUnits(policy, batch, 'decide');
    // Stryker disable next-line ConditionalExpression,EqualityOperator: a shortcut: with no pause on, #pausedFor gives 0
    const wait = this.#paused.size > 0 ? this.#pausedFor(key, now) : 0;
    if (wait > 0) {
      const refused: StoreDecision = { ok: false, retryAfterMs: wait, limit: PAUSED };
      return mode === 'queue' ? [refused] : batch.map(() => refused);
    }
    const e = this.#entryFor(key, policy, now);
    const out: StoreDecision[] = [];
    for (const req of batch) {
      const refused = decideInPlace(policy, e, req.units, now, req.slot);
      if (refused === undefined) {
        this.#keep(key, e);
        out.push(new MemoryGrant(req, e.at, req.units, req.slot, marksOf(policy, e), e.epoch));
      } else {
        out.push(refused);
        if (mode === 'queue') break;
      }
    }
    if (out.some((d) => d.ok)) this.#clearEndedPause(key, now);
    // Stryker disable next-line ConditionalExpression: a shortcut: an entry not kept is a new one, and the map holds none for the key
    if (e.live) this.#forgetIfBlank(key, now);
    return out;
  }

  /**
   * Drops the key's entry once it holds nothing: every limit back at full capacity, no slot held,
   * no pause on. The Redis store deletes the state at the same points (after a decision that
   * booked, a settle or a cancel), so both forget the key's latest instant alike, and book at
   * the same instant when the clock then steps back.
   */
  #forgetIfBlank(key: string, now: Ms): void {
    const e = this.#entries.get(key);
    // Stryker disable next-line ConditionalExpression: a shortcut: isIdle below is false while a slot is held
    if (e === undefined || e.inFlight > 0) return;
    if (
      // Stryker disable next-line ConditionalExpression,EqualityOperator: a shortcut: with no pause on, #pausedFor gives 0
      this.#paused.size > 0 &&
      this.#pausedFor(key, now) > 0
    )
      return;
    if (isIdle(e.policy, e, now)) this.#drop(key, e);
  }

  /**
   * settle moves `grant` to `actual`. A grant of another epoch (booked before a reset, or
   * without an epoch) gets nothing back, but an extra charge still books: that usage was real.
   *
   * @throws InvalidArgumentError when `grant.units` or `actual` has not one amount per limit.
   */
  settle(key: string, policy: Policy, grant: StoreGrant, actual: Units, now: Ms): void {
    checkUnits(policy, grant.units, 'settle', 'grant.units');
    checkUnits(policy, actual, 'settle', 'actual');
    // A grant of another epoch gets only the extra charge: each limit settles at the larger of
    // booked and actual. Either way the key is advanced to now and taken under `policy`, as the
    // Redis store's settle writes its state back.
    const units = this.#holds(key, policy, grant)
      ? actual
      : actual.map((u, i) => Math.max(u, grant.units[i]!));
    this.#put(key, policy, settle(policy, this.#view(key, policy, now), grant, units, now).state);
    this.#clearEndedPause(key, now);
    this.#forgetIfBlank(key, now);
  }

  /**
   * cancel gives back the grant's units and slot; no units for a grant of another epoch (and no
   * slot either after a reset: the entry made after it does not count that slot).
   */
  cancel(key: string, policy: Policy, grant: StoreGrant, now: Ms): void {
    checkUnits(policy, grant.units, 'cancel', 'grant.units');
    if (this.#holds(key, policy, grant)) {
      const s = refund(policy, this.#view(key, policy, now), grant, now);
      this.#put(key, policy, release(s, grant));
    } else {
      // No units back; the key is advanced to now (as Redis writes it back); its slot, if this
      // entry counts it.
      this.#put(key, policy, advance(policy, this.#view(key, policy, now), now));
      this.release(key, policy, grant, now);
    }
    this.#clearEndedPause(key, now);
    this.#forgetIfBlank(key, now);
  }

  /**
   * release frees the grant's slot: one of the key's slots, so only for a grant of the entry's
   * epoch (a slot taken before a reset is not counted in the entry made after it).
   */
  release(key: string, _policy: Policy, grant: StoreGrant, _now: Ms): void {
    // Stryker disable next-line ConditionalExpression: a shortcut: releaseInPlace frees nothing for a grant without a slot
    if (!grant.slot) return;
    const e = this.#entries.get(key);
    if (e === undefined || grant.epoch === undefined) return;
    if (grant.epoch < e.firstEpoch || grant.epoch > e.epoch) return;
    // Slots do not depend on the policy: a key still under an older one stays under it until its
    // next decision (as in the Redis store, whose release touches only the slot set).
    releaseInPlace(e, grant);
  }

  read(key: string, policy: Policy, now: Ms): KeyReading {
    const r = read(policy, this.#view(key, policy, now), now);
    return {
      at: Math.max(now, this.#entries.get(key)?.at ?? now),
      limits: r.limits,
      inFlight: r.inFlight,
    };
  }

  reset(key: string): void {
    this.#drop(key);
    this.#paused.delete(key);
  }

  /** pause refuses the key's requests for `forMs` from `now` (never shortening a longer pause). */
  pause(key: string, forMs: Ms, now: Ms): void {
    const until = now + forMs;
    // Stryker disable next-line EqualityOperator: setting the pause to the instant it already has changes nothing
    if ((this.#paused.get(key) ?? -Infinity) < until) this.#paused.set(key, until);
  }

  /** Ms the key stays paused after `now`; 0 when it is not paused. Changes nothing. */
  #pausedFor(key: string, now: Ms): Ms {
    const until = this.#paused.get(key);
    // Stryker disable next-line EqualityOperator: at until = now, until - now is 0 as well
    return until === undefined || until <= now ? 0 : until - now;
  }

  /**
   * Forgets the key's pause once it has ended at `now`, where the Redis store writes the key back
   * (a decision that booked, a settle, a cancel) and clears an ended pause with it. Only there:
   * when the clock steps back, a pause not yet cleared holds again in both stores alike.
   */
  #clearEndedPause(key: string, now: Ms): void {
    // Stryker disable next-line ConditionalExpression: a shortcut: with no pause on, the key has none to clear
    if (this.#paused.size === 0) return;
    const until = this.#paused.get(key);
    if (until !== undefined && until <= now) this.#paused.delete(key);
  }

  /**
   * sweep drops every key that is back at full capacity with no slot held, and ended pauses.
   * Returns the earliest instant at which a key kept comes back to full capacity with time alone
   * (a pause's end, or units booked with no slot held), or null: a key holding a slot waits for
   * its release, which comes through the key's actor.
   */
  sweep(now: Ms): Ms | null {
    let next = Infinity;
    for (const [key, until] of this.#paused) {
      if (until <= now) this.#paused.delete(key);
      else next = Math.min(next, until);
    }
    for (const [key, e] of this.#entries) {
      const full = fullAt(e.policy, e, now);
      if (full <= now) this.#drop(key, e);
      else if (full < next) next = full;
    }
    return next === Infinity ? null : next;
  }

  /** kept tells what the store keeps of `key` at `now` (see {@link Store.kept}). Changes nothing. */
  kept(key: string, now: Ms): { readonly inFlight: number; readonly pausedMs: Ms } | undefined {
    const e = this.#entries.get(key);
    const pausedMs = this.#paused.size > 0 ? this.#pausedFor(key, now) : 0;
    if (pausedMs === 0 && (e === undefined || isIdle(e.policy, e, now))) return undefined;
    return { inFlight: e?.inFlight ?? 0, pausedMs };
  }

  /** forget drops one key if it is back at full capacity (the runtime calls it on eviction). */
  forget(key: string, now: Ms): void {
    const e = this.#entries.get(key);
    if (e !== undefined && isIdle(e.policy, e, now)) this.#drop(key, e);
  }

  /**
   * estimate simulates the queue with the pure core: each request booked at the first instant it
   * fits, in order. Slots are not foreseen (releases cannot be).
   */
  estimate(key: string, policy: Policy, queue: readonly Units[], now: Ms): Ms {
    let state = this.#view(key, policy, now);
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
      const state = savedState(e, now);
      if (state !== null) keys[key] = { policy: e.policy, state };
    }
    return { version: 1, keys };
  }

  /**
   * restore loads a {@link MemorySnapshot}, replacing the state of the keys it names.
   * @throws InvalidArgumentError when `snapshot` is not a version-1 memory snapshot.
   */
  restore(snapshot: MemorySnapshot): void {
    checkSnapshot(snapshot);
    for (const [key, e] of Object.entries(snapshot.keys)) {
      this.#drop(key);
      this.#keep(key, newEntry(e.policy, e.state, ++this.#epoch));
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

/** allZero tells whether `units` books nothing (a loop: the grant path allocates no closure). */
function allZero(units: Units): boolean {
  // Stryker disable next-line all: a shortcut for the hot path: #forgetIfBlank drops only a key that holds nothing anyway
  for (let i = 0; i < units.length; i++) if (units[i] !== 0) return false;
  // Stryker disable next-line BooleanLiteral: as above
  return true;
}
