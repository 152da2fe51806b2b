/**
 * What the Redis store answers while Redis cannot, by its `onUnavailable` policy: `'fail-closed'`
 * rejects with the outage's error, `'fail-open'` grants every request and keeps no account, and
 * `'insurance'` decides with an in-memory store at a fraction of every limit. A grant made here
 * carries its origin, so that its settle, cancel and release come back here: Redis never saw it.
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

/**
 * Fallback answers for Redis by the store's `onUnavailable` policy, and settles, cancels and
 * releases the grants it made. The insurance store keeps its own state per key: a reset or a
 * pause of the key is applied to it too.
 */
export class Fallback {
  readonly #policy: UnavailablePolicy;
  /** The fraction of every limit the insurance store allows, in (0, 1]. */
  readonly #fraction: number;
  readonly #insurance = new MemoryStore();
  /** Each policy scaled by #fraction, made once per policy (see {@link #scale}). */
  readonly #scaled = new WeakMap<Policy, Policy>();

  constructor(policy: UnavailablePolicy, fraction: number) {
    this.#policy = policy;
    this.#fraction = fraction;
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
    if (origin === 'open') return true;
    if (origin === 'insurance') {
      const scaled = this.#scale(policy);
      if (free) this.#insurance.cancel(key, scaled, grant, now);
      else this.#insurance.settle(key, scaled, grant, actual, now);
      return true;
    }
    return false;
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

  /** reset forgets what the insurance store keeps for `key`. */
  reset(key: string): void {
    this.#insurance.reset(key);
  }

  /** pause pauses `key` in the insurance store for `forMs` from `now`. */
  pause(key: string, forMs: Ms, now: Ms): void {
    this.#insurance.pause(key, forMs, now);
  }

  /** sweep drops what the insurance store keeps for keys back at full capacity. */
  sweep(now: Ms): void {
    this.#insurance.sweep(now);
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
}
