/**
 * What the Redis store answers while Redis cannot, by its `onUnavailable` policy: `'fail-closed'`
 * rejects with the outage's error, `'fail-open'` grants every request, and `'insurance'` decides
 * with an in-memory store at a fraction of every limit. A grant made here carries its origin, so
 * that its settle, cancel and release come back here: Redis never saw it.
 *
 * Either way the units granted here are owed to Redis: the store books them there once Redis
 * answers again (see {@link Fallback.drain}), so the processes that share the budget see what was
 * spent while it was away. A grant settled after its units were booked books only what its actual
 * usage exceeds them by; a refund of it is lost (the budget over-counts, never under-counts).
 */
import type { Ms, Policy, Units } from '../limiter/types.js';
import { MemoryStore } from '../memory/memoryStore.js';
import {
  restate,
  type BatchMode,
  type StoreDecision,
  type StoreGrant,
  type StoreRequest,
} from '../store.js';
import type { UnavailablePolicy } from './redisStoreOptions.js';

/** Where a grant was booked: in Redis, by the fail-open policy, or by the insurance store. */
type Origin = 'redis' | 'open' | 'insurance';

/** A grant of the Redis store; `origin` routes its settle, cancel and release. */
interface RedisGrant extends StoreGrant {
  readonly origin?: Origin;
}

/** What a key owes Redis: units per limit of `policy`, granted while Redis was away. */
export interface Owed {
  readonly key: string;
  readonly policy: Policy;
  readonly units: readonly number[];
}

/**
 * Fallback answers for Redis by the store's `onUnavailable` policy, and settles, cancels and
 * releases the grants it made. The insurance store keeps its own state per key: a reset or a
 * pause of the key is applied to it too.
 */
export class Fallback {
  readonly #policy: UnavailablePolicy;
  /** The fraction of every limit the insurance store allows, in (0, 1]. */
  readonly #fraction: number;
  /** The `processes` option: the insurance store allows every limit divided by it, when set. */
  readonly #processes: number | undefined;
  readonly #insurance = new MemoryStore();
  /** Each policy scaled by #fraction, made once per policy (see {@link #scale}). */
  readonly #scaled = new WeakMap<Policy, Policy>();
  /**
   * Per policy (a `setLimits` makes a new one) and key, the units granted here and not yet booked
   * into Redis, one amount per limit of that policy.
   */
  readonly #owed = new Map<Policy, Map<string, number[]>>();
  /** Ids of the grants made here whose units are still in #owed (not booked yet). */
  readonly #unbooked = new Set<string>();

  constructor(policy: UnavailablePolicy, fraction: number, processes?: number) {
    this.#policy = policy;
    this.#fraction = fraction;
    this.#processes = processes;
  }

  /**
   * decide answers a batch of `key` that Redis could not, by the policy.
   *
   * @throws `error` (the outage), with `'fail-closed'`.
   */
  decide(
    error: unknown,
    key: string,
    policy: Policy,
    batch: readonly StoreRequest[],
    mode: BatchMode,
    now: Ms,
  ): StoreDecision[] {
    if (this.#policy === 'fail-closed') throw error;
    if (this.#policy === 'fail-open') {
      return batch.map((r) => {
        this.#owe(key, policy, r.units, r.id);
        return {
          ok: true,
          grant: {
            id: r.id,
            at: now,
            units: r.units,
            slot: r.slot,
            origin: 'open',
          } satisfies RedisGrant,
        };
      });
    }
    const scaled = this.#scale(policy);
    return this.#insurance.decide(key, scaled, batch, mode, now).map((d) => {
      if (!d.ok) return d;
      this.#owe(key, policy, d.grant.units, d.grant.id);
      return {
        ok: true,
        grant: {
          ...restate(d.grant, d.grant.units),
          origin: 'insurance',
        } satisfies RedisGrant,
      };
    });
  }

  /** Whether units granted here wait to be booked into Redis. */
  get owes(): boolean {
    return this.#owed.size > 0;
  }

  /**
   * drain hands over what every key owes Redis, and forgets it: the store books it there. Grants
   * made before are booked from then on (a later settle books only its extra usage).
   */
  drain(): Owed[] {
    const owed: Owed[] = [];
    for (const [policy, keys] of this.#owed) {
      for (const [key, units] of keys) owed.push({ key, policy, units });
    }
    this.#owed.clear();
    this.#unbooked.clear();
    return owed;
  }

  /** owe adds `units` to what `key` owes Redis under `policy` (a booking that failed, again). */
  owe(key: string, policy: Policy, units: Units): void {
    this.#owe(key, policy, units);
  }

  /** #owe adds `units` to what `key` owes Redis under `policy`; with `id`, that grant is unbooked. */
  #owe(key: string, policy: Policy, units: Units, id?: string): void {
    let keys = this.#owed.get(policy);
    if (keys === undefined) this.#owed.set(policy, (keys = new Map()));
    let owed = keys.get(key);
    if (owed === undefined) keys.set(key, (owed = units.map(() => 0)));
    for (let i = 0; i < units.length; i++) owed[i]! += units[i]!;
    if (id !== undefined) this.#unbooked.add(id);
  }

  /**
   * The change in what a grant made here owes Redis when it is settled to `actual`: the
   * difference while its units are unbooked; once booked, only what `actual` exceeds them by.
   */
  #reowe(key: string, policy: Policy, grant: StoreGrant, actual: Units): void {
    const unbooked = this.#unbooked.delete(grant.id);
    const delta = actual.map((a, i) => {
      const d = a - grant.units[i]!;
      return unbooked ? d : Math.max(0, d);
    });
    if (delta.some((d) => d !== 0)) this.#owe(key, policy, delta);
  }

  /**
   * adjust settles `grant` to `actual` (with `free`, cancels it) when it was granted here, and
   * tells whether it was: a fail-open grant holds nothing, an insurance grant goes back to the
   * insurance store. False: Redis holds the grant, and nothing was done.
   */
  adjust(
    key: string,
    policy: Policy,
    grant: StoreGrant,
    actual: Units,
    free: boolean,
    now: Ms,
  ): boolean {
    const origin = (grant as RedisGrant).origin;
    if (origin !== 'open' && origin !== 'insurance') return false;
    this.#reowe(key, policy, grant, actual);
    if (origin === 'insurance') {
      const scaled = this.#scale(policy);
      if (free) this.#insurance.cancel(key, scaled, grant, now);
      else this.#insurance.settle(key, scaled, grant, actual, now);
    }
    return true;
  }

  /**
   * release frees the slot of `grant` when it was granted here, and tells whether it was (a
   * fail-open grant holds none). False: Redis holds the slot, and nothing was done.
   */
  release(key: string, policy: Policy, grant: StoreGrant, now: Ms): boolean {
    const origin = (grant as RedisGrant).origin;
    if (origin === 'open') return true;
    if (origin === 'insurance') {
      this.#insurance.release(key, this.#scale(policy), grant, now);
      return true;
    }
    return false;
  }

  /** reset forgets what the insurance store keeps for `key`, and what the key owes Redis. */
  reset(key: string): void {
    this.#insurance.reset(key);
    for (const keys of this.#owed.values()) keys.delete(key);
  }

  /** pause pauses `key` in the insurance store for `forMs` from `now`. */
  pause(key: string, forMs: Ms, now: Ms): void {
    this.#insurance.pause(key, forMs, now);
  }

  /** sweep drops what the insurance store keeps for keys back at full capacity. */
  sweep(now: Ms): void {
    this.#insurance.sweep(now);
  }

  /** The insurance policy: every limit at `insuranceFraction` (or over `processes`), at least 1. */
  #scale(policy: Policy): Policy {
    let scaled = this.#scaled.get(policy);
    if (scaled === undefined) {
      // Divided by a whole number of processes exactly (49 * (1 / 49) is below 1 in floats).
      const f = this.#fraction;
      const n = this.#processes;
      const part = (x: number): number =>
        Math.max(1, n === undefined ? Math.floor(x * f) : Math.floor(x / n));
      scaled = {
        limits: policy.limits.map((l) => ({
          ...l,
          limit: part(l.limit),
          capacity: part(l.capacity),
        })),
        dimensions: policy.dimensions,
        concurrency: policy.concurrency === null ? null : part(policy.concurrency),
      };
      this.#scaled.set(policy, scaled);
    }
    return scaled;
  }
}
