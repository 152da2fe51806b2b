/**
 * The options and answers of the limiter facade (src/actors/limiter.ts), and the check of a
 * limiter's own options; the checks of each call's arguments are in callArgs.ts.
 */
import { onLimiter } from '../describe.js';
import { InvalidArgumentError } from '../errors.js';
import {
  BREAKER_OPTIONS,
  compileBreakerPolicy,
  type BreakerOptions,
  type BreakerPolicy,
} from '../breaker/policy.js';
import { readDuration } from '../limiter/units.js';
import { checkOptionNames } from '../limiter/validate.js';
import type { CostSpec, Duration, Ms, Policy, PolicySpec } from '../limiter/types.js';
import type { CallOutcome, Grant } from './grant.js';

/** Options of {@link Limiter.acquire}. */
export interface AcquireOptions {
  /** Units per dimension. `requests` defaults to 1. @default { requests: 1 } */
  readonly cost?: CostSpec;
  /** Give up after this long, with AcquireTimeoutError. 0 gives up unless it fits at once. @default no timeout */
  readonly timeout?: Duration | 0;
  /** Abort waiting; the promise rejects with AcquireAbortedError (cause: `signal.reason`). */
  readonly signal?: AbortSignal;
  /** Higher is served first; equal priorities in arrival order. Any finite number. @default 0 */
  readonly priority?: number;
}

/** Options of {@link Limiter.tryAcquire}. */
export interface TryAcquireOptions {
  readonly cost?: CostSpec;
  /** A try with a higher priority than every queued waiter may go ahead of them. @default 0 */
  readonly priority?: number;
}

/** Options of {@link Limiter.run}: those of acquire, plus how to read the actual cost. */
export interface RunOptions<T> extends AcquireOptions {
  /** Maps the call's result to its actual cost; the grant is settled with it. */
  readonly settle?: (result: T) => CostSpec;
  /**
   * What an error thrown by the call says to the key's breaker (if any): `'failure'` (the
   * default), or `'neutral'` for errors that say nothing about the service (a 400, say).
   */
  readonly classify?: (error: unknown) => CallOutcome;
}

/**
 * TryResult is what `tryAcquire` answers: a grant, or why not and for how long.
 * `limit` is the name of the refusing limit, `'concurrency'`, `'queue'` (waiters are queued
 * ahead; tryAcquire does not overtake them), `'paused'` (see `pause`) or `'breaker'` (the key's
 * circuit breaker admits no call now).
 */
export type TryResult =
  | { readonly ok: true; readonly grant: Grant }
  | { readonly ok: false; readonly retryAfterMs: Ms; readonly limit: string };

/**
 * Reservation is a place in a key's queue taken now and decided later: `granted` resolves when the
 * cost fits, `cancel()` gives everything back (the place, or the grant if it came).
 */
export interface Reservation {
  /** Resolves with the grant when the cost fits. Rejects on cancel, close or store failure. */
  readonly granted: Promise<Grant>;
  /**
   * Estimated ms from the reservation until the grant, from the queue ahead and the limits
   * (memory store); `null` when the store cannot estimate. Concurrency slots are not foreseen.
   */
  readonly etaMs: Ms | null;
  /**
   * Gives back the place in the queue (`granted` then rejects with AcquireAbortedError), or the
   * whole grant if it was already granted.
   */
  cancel(): Promise<void>;
}

/**
 * ProviderSignal is what a provider said about a key's limits after a call (see
 * `feedbackFromResponse` in `src/llm/headers.ts`, which builds one from response headers).
 */
export interface ProviderSignal {
  /** The provider refused the call for its rate limits (HTTP 429). */
  readonly throttled?: boolean;
  /** Ms the provider asked to wait (`retry-after`), if it said. */
  readonly retryAfterMs?: Ms | null;
  /** What the provider reports per dimension: units remaining and ms until its window resets. */
  readonly limits?: readonly {
    readonly dimension: string;
    readonly remaining: number | null;
    readonly resetMs: Ms | null;
  }[];
}

/** The refusal `limit` of a `tryAcquire` whose key's circuit breaker admits no call now. */
export const BREAKER = 'breaker';

/** Options of `system.limiter(name, options)`: a policy, plus how its keys queue. */
export interface LimiterOptions extends PolicySpec {
  /** The most waiters one key queues; more are refused with QueueFullError. @default Infinity */
  readonly maxQueue?: number;
  /** A held concurrency slot is given back after this long even if never released. @default none */
  readonly leaseTtl?: Duration;
  /**
   * A circuit breaker per key. Calls report their outcome with `grant.report()` (`run` and the
   * fetch wrapper do it for you). @default none
   */
  readonly breaker?: BreakerOptions;
  /**
   * The longest a provider's answer pauses a key (`feedback` of a 429): a `retry-after` of a day
   * pauses it this long, after which one call asks the provider again. @default '1h'
   */
  readonly maxPause?: Duration;
  /**
   * The most keys the limiter keeps in this process: keys with a live actor, and keys whose state
   * the memory store keeps (below full capacity). A key back at full capacity is forgotten anyway,
   * so this bounds memory under a flood of new keys, not normal use. With a store shared across
   * processes (Redis), only keys with a live actor count: their state lives in the store. Minimum
   * 1. @default Infinity
   */
  readonly maxKeys?: number;
  /**
   * What a call on a new key does when the limiter keeps `maxKeys` keys:
   * - `'refuse'`: it rejects with TooManyKeysError (nothing booked); the keys kept go on as usual.
   *   A kept key back at full capacity makes room first.
   * - `'evict-lru'`: the least recently used key that holds no work (no waiter, no call in
   *   flight with a concurrency slot, no pause) is forgotten to make room, with a `forgotten`
   *   event naming it and what it still had booked per limit: for that key this counts as a
   *   `reset` (a grant of it settled later gives nothing back; an extra charge still books). Never
   *   a key with work: when the least recently used all hold work, the call is refused with
   *   TooManyKeysError.
   * @default 'refuse'
   */
  readonly onMaxKeys?: 'refuse' | 'evict-lru';
}

/**
 * limiterDifferences names what differs between two limiters' compiled options (empty when the
 * same): `'limits'`, `'concurrency'`, `'maxQueue'`, `'leaseTtl'`, `'maxPause'`, `'breaker'`,
 * `'maxKeys'`, `'onMaxKeys'`.
 * Compiled values are compared, not what was written: `'10s'` and `10000`, or breaker options in
 * another order, are the same.
 */
export function limiterDifferences(
  a: {
    policy: Policy;
    maxQueue: number;
    leaseMs: Ms | null;
    maxPauseMs: Ms;
    breaker: LimiterBreaker | null;
    maxKeys: number;
    onMaxKeys: string;
  },
  b: {
    policy: Policy;
    maxQueue: number;
    leaseMs: Ms | null;
    maxPauseMs: Ms;
    breaker: LimiterBreaker | null;
    maxKeys: number;
    onMaxKeys: string;
  },
): string[] {
  const out: string[] = [];
  if (JSON.stringify(a.policy.limits) !== JSON.stringify(b.policy.limits)) out.push('limits');
  if (a.policy.concurrency !== b.policy.concurrency) out.push('concurrency');
  if (a.maxQueue !== b.maxQueue) out.push('maxQueue');
  if (a.leaseMs !== b.leaseMs) out.push('leaseTtl');
  if (a.maxPauseMs !== b.maxPauseMs) out.push('maxPause');
  if (JSON.stringify(a.breaker) !== JSON.stringify(b.breaker)) out.push('breaker');
  if (a.maxKeys !== b.maxKeys) out.push('maxKeys');
  if (a.onMaxKeys !== b.onMaxKeys) out.push('onMaxKeys');
  return out;
}

/**
 * LimiterBreaker is a limiter's `breaker` option, validated and compiled once: the policy every
 * key's breaker is created with (and looked up by), and what acquire does while it is open.
 */
export interface LimiterBreaker {
  readonly whenOpen: 'fail' | 'wait';
  readonly policy: BreakerPolicy;
}

/** The options of `system.limiter(name, options)`. */
const LIMITER_OPTIONS = [
  'limits',
  'algorithm',
  'concurrency',
  'maxQueue',
  'leaseTtl',
  'breaker',
  'maxPause',
  'maxKeys',
  'onMaxKeys',
] as const;

/** The default of {@link LimiterOptions.maxPause}: 1 hour. */
export const DEFAULT_MAX_PAUSE_MS = 3_600_000;

/**
 * readLimiterOptions validates the options of the limiter `name` beside its policy.
 * `storeLeaseMs` is the store's default lease (Redis names one, so that a slot whose holder died
 * is not held forever); the limiter's own `leaseTtl` wins.
 */
export function readLimiterOptions(
  name: string,
  options: LimiterOptions,
  storeLeaseMs: Ms | null,
): {
  maxQueue: number;
  leaseMs: Ms | null;
  breaker: LimiterBreaker | null;
  maxPauseMs: Ms;
  maxKeys: number;
  onMaxKeys: 'refuse' | 'evict-lru';
} {
  const where = onLimiter(name);
  checkOptionNames(options, LIMITER_OPTIONS, { where, path: '' });
  return {
    maxQueue: validateMaxQueue(options.maxQueue, where),
    leaseMs:
      options.leaseTtl === undefined
        ? storeLeaseMs
        : readDuration(options.leaseTtl, { where, path: 'leaseTtl' }),
    breaker: readBreaker(options.breaker, where),
    maxPauseMs:
      options.maxPause === undefined
        ? DEFAULT_MAX_PAUSE_MS
        : readDuration(options.maxPause, { where, path: 'maxPause' }),
    maxKeys: validateMaxKeys(options.maxKeys, where),
    onMaxKeys: validateOnMaxKeys(options.onMaxKeys, where),
  };
}

/** validateMaxKeys checks a limiter's `maxKeys` option; `where` names the limiter. */
function validateMaxKeys(n: number | undefined, where: string): number {
  if (n === undefined) return Infinity;
  if (n === Infinity || (Number.isSafeInteger(n) && n >= 1)) return n;
  throw new InvalidArgumentError({
    where,
    path: 'maxKeys',
    value: n,
    expected: 'a whole number of keys from 1, or Infinity',
  });
}

/** validateOnMaxKeys checks a limiter's `onMaxKeys` option; `where` names the limiter. */
function validateOnMaxKeys(policy: unknown, where: string): 'refuse' | 'evict-lru' {
  if (policy === undefined) return 'refuse';
  if (policy === 'refuse' || policy === 'evict-lru') return policy;
  throw new InvalidArgumentError({
    where,
    path: 'onMaxKeys',
    value: policy,
    expected: "'refuse' or 'evict-lru'",
  });
}

/** readBreaker checks and compiles a limiter's `breaker` option; `where` names the limiter. */
function readBreaker(options: BreakerOptions | undefined, where: string): LimiterBreaker | null {
  if (options === undefined) return null;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidArgumentError({
      where,
      path: 'breaker',
      value: options,
      expected: "an object of breaker options, e.g. { failureThreshold: 5, openFor: '30s' }",
    });
  }
  if (
    options.whenOpen !== undefined &&
    options.whenOpen !== 'fail' &&
    options.whenOpen !== 'wait'
  ) {
    throw new InvalidArgumentError({
      where,
      path: 'breaker.whenOpen',
      value: options.whenOpen,
      expected: "'fail' or 'wait'",
    });
  }
  checkOptionNames(options, BREAKER_LIMITER_OPTIONS, { where, path: 'breaker' });
  const { whenOpen, ...policy } = options;
  return {
    whenOpen: whenOpen ?? 'fail',
    policy: compileBreakerPolicy(policy, { where, path: 'breaker' }),
  };
}

/** The fields of a limiter's `breaker` option: a breaker policy's, and `whenOpen`. */
const BREAKER_LIMITER_OPTIONS = [...BREAKER_OPTIONS, 'whenOpen'] as const;

/** validateMaxQueue checks a limiter's `maxQueue` option; `where` names the limiter. */
function validateMaxQueue(n: number | undefined, where: string): number {
  if (n === undefined) return Infinity;
  if (n === Infinity || (Number.isSafeInteger(n) && n >= 0)) return n;
  throw new InvalidArgumentError({
    where,
    path: 'maxQueue',
    value: n,
    expected: 'a whole number of waiters per key from 0, or Infinity',
  });
}
