/**
 * Limiter is the facade callers hold: one policy (a set of limits), many keys. It validates every
 * call at the boundary, then hands it to the key's actor; it never touches a key's state itself.
 */
import type { Observable } from 'rxjs';
import { AcquireAbortedError } from '../errors.js';
import type { CircuitBreaker } from '../breaker/breaker.js';
import type { BreakerOptions } from '../breaker/policy.js';
import { keyStats$, type KeyStats, type StatsOptions } from '../observe/stats.js';
import {
  limiterStats$,
  readLimiterStatsOptions,
  type LimiterStats,
  type LimiterStatsOptions,
} from '../observe/limiterStats.js';
import type { Done, KeyActorRef, KeyEvent } from '../machines/keyContext.js';
import { Waiter, WaiterState, type Detachable } from '../machines/waiter.js';
import { type CallPlace, callPlace, onLimiter } from '../describe.js';
import { readDuration } from '../limiter/units.js';
import { compileCost, compilePolicyOf } from '../limiter/validate.js';
import type { Duration, Ms, Policy, PolicySpec, Units } from '../limiter/types.js';
import type { Grant } from './grant.js';
import type { SystemCore } from './core.js';
import { acquireThroughBreaker, tryThroughBreaker } from './breakerGate.js';
import { applyFeedback } from './feedback.js';
import { KeyCap } from './keyCap.js';
import { reservationOf } from './reservation.js';
import {
  BREAKER,
  readLimiterOptions,
  type AcquireOptions,
  type LimiterBreaker,
  type LimiterOptions,
  type ProviderSignal,
  type Reservation,
  type RunOptions,
  type TryAcquireOptions,
  type TryResult,
} from './options.js';
import {
  checkKey,
  checkProviderSignal,
  checkRunFunctions,
  parseAcquireOptions,
} from './callArgs.js';

export type {
  AcquireOptions,
  BreakerOptions,
  LimiterOptions,
  ProviderSignal,
  Reservation,
  RunOptions,
  TryAcquireOptions,
  TryResult,
};
export { BREAKER };

let seq = 0;

/**
 * Limiter: see the file comment. Create one with `system.limiter(name, options)`.
 *
 * @example
 * const openai = system.limiter('openai', {
 *   limits: [{ limit: 500, interval: '1m' }, { limit: 90_000, interval: '1m', dimension: 'tokens' }],
 *   concurrency: 8,
 * });
 * const grant = await openai.acquire('gpt-4o', { cost: { tokens: 1200 }, timeout: '30s' });
 */
export class Limiter {
  #policy: Policy;
  #defaultUnits: Units;
  readonly #core: SystemCore;
  /** @internal live key actors by key (the system creates them; see LimiterSystem.actorFor). */
  readonly actors = new Map<string, KeyActorRef<Grant>>();
  /** @internal */
  readonly maxQueue: number;
  /** @internal */
  readonly leaseMs: Ms | null;
  /** @internal the breaker option, compiled; null without a breaker. */
  readonly breaker: LimiterBreaker | null;
  /** @internal the longest pause `feedback` applies (LimiterOptions.maxPause). */
  readonly maxPauseMs: Ms;
  /** @internal LimiterOptions.maxKeys (Infinity: no cap). */
  readonly maxKeys: number;
  /** @internal LimiterOptions.onMaxKeys. */
  readonly onMaxKeys: 'refuse' | 'evict-lru';
  /** @internal the keys counted against `maxKeys`; null without a cap. */
  readonly keyCap: KeyCap | null;

  /** @internal use `system.limiter()`. */
  constructor(
    core: SystemCore,
    /** The limiter's name: unique in its system, and part of every key's identity in the store. */
    readonly name: string,
    options: LimiterOptions,
  ) {
    this.#core = core;
    this.#policy = compilePolicyOf(options, onLimiter(name), 'options');
    this.#defaultUnits = compileCost(this.#policy, undefined);
    this.place = callPlace(name);
    ({
      maxQueue: this.maxQueue,
      leaseMs: this.leaseMs,
      breaker: this.breaker,
      maxPauseMs: this.maxPauseMs,
      maxKeys: this.maxKeys,
      onMaxKeys: this.onMaxKeys,
    } = readLimiterOptions(name, options, core.store.defaultLeaseMs ?? null));
    this.keyCap = this.maxKeys === Infinity ? null : new KeyCap(name, this.maxKeys, this.onMaxKeys);
  }

  /**
   * breakerFor returns the circuit breaker of `key` (created on first use), or null when the
   * limiter has none. Its `state$` and `events` tell every state change.
   */
  breakerFor(key: string): CircuitBreaker | null {
    checkKey(key, 'breakerFor', this.name);
    return this.breaker === null ? null : this.#core.breaker(`${this.name}/${key}`, this.breaker);
  }

  /** The policy in force, validated. */
  get policy(): Policy {
    return this.#policy;
  }

  /**
   * acquire waits until `cost` fits every limit of `key` (and a concurrency slot is free), then
   * books it and resolves with a {@link Grant}. Waiters are served by priority, then arrival.
   *
   * @throws (rejects) InvalidArgumentError, CostExceedsCapacityError for bad input (nothing queued);
   *   AcquireTimeoutError, AcquireAbortedError, QueueFullError, LimiterClosedError,
   *   StoreUnavailableError. Whatever the end, a waiter that did not get its grant holds nothing.
   * @example const grant = await limiter.acquire('user-42', { cost: { tokens: 800 }, timeout: '10s' });
   */
  acquire(key: string, options?: AcquireOptions): Promise<Grant> {
    return this.#acquire(key, options, 'acquire');
  }

  /** acquire, naming `call` (`acquire` or `run`) in the messages of bad input. */
  #acquire(key: string, options: AcquireOptions | undefined, call: string): Promise<Grant> {
    try {
      const w = this.#waiter(key, options, false, call);
      if (w.state !== WaiterState.Pending) return w.promise();
      if (this.breaker !== null)
        return acquireThroughBreaker(
          this.#core,
          { limiter: this.name, key },
          w,
          this.breaker,
          (x) => this.#dispatch(key, x),
        );
      this.#dispatch(key, w);
      return w.promise();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * tryAcquire books `cost` if it fits now and nobody of equal or higher priority is queued for the
   * key; otherwise it answers how long to wait. A refusal books nothing.
   *
   * @throws (rejects) InvalidArgumentError, CostExceedsCapacityError, LimiterClosedError, StoreUnavailableError.
   * @example
   * const r = await limiter.tryAcquire('k');
   * if (!r.ok) console.log(`retry in ${r.retryAfterMs} ms (${r.limit})`);
   */
  tryAcquire(key: string, options?: TryAcquireOptions): Promise<TryResult> {
    try {
      const w = this.#waiter(key, options, true, 'tryAcquire');
      if (this.breaker !== null)
        return tryThroughBreaker(this.#core, `${this.name}/${key}`, w, this.breaker, (x) =>
          this.#dispatch(key, x),
        );
      this.#dispatch(key, w);
      if (w.state === WaiterState.Granted) return Promise.resolve({ ok: true, grant: w.grant! });
      if (w.state === WaiterState.Refused) return Promise.resolve({ ok: false, ...w.refusal! });
      return w
        .promise()
        .then((grant): TryResult =>
          grant === undefined ? { ok: false, ...w.refusal! } : { ok: true, grant },
        );
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * reserve takes a place in the key's queue now and returns at once; the grant comes when the
   * cost fits. Use it to learn the wait (`etaMs`) and decide later: `cancel()` gives everything back.
   *
   * @throws InvalidArgumentError, CostExceedsCapacityError, LimiterClosedError (synchronously).
   * @example
   * const r = limiter.reserve('k', { cost: { tokens: 5000 } });
   * if ((r.etaMs ?? Infinity) > 2000) await r.cancel(); else await r.granted;
   */
  reserve(key: string, options?: Omit<AcquireOptions, 'timeout' | 'signal'>): Reservation {
    const w = this.#waiter(key, options, false, 'reserve');
    w.wantsEta = true;
    this.#dispatch(key, w);
    const storeKey = this.#core.storeKey(this.name, key);
    return reservationOf(w, (done) => this.send(key, storeKey, { type: 'abort', waiter: w, done }));
  }

  /**
   * run acquires, calls `fn`, settles with `options.settle(result)` if given, and releases the
   * slot, also when `fn` throws (the estimate then stays booked: the call may have been made).
   *
   * @example
   * const reply = await limiter.run('gpt-4o', () => callModel(prompt), {
   *   cost: { tokens: 1200 }, settle: (r) => ({ tokens: r.usage.total_tokens }),
   * });
   */
  async run<T>(
    key: string,
    fn: (grant: Grant) => T | Promise<T>,
    options?: RunOptions<T>,
  ): Promise<T> {
    checkKey(key, 'run', this.name);
    checkRunFunctions(fn, options, onLimiter(this.name, 'run', key));
    const grant = await this.#acquire(key, options, 'run');
    try {
      let result: T;
      try {
        result = await fn(grant);
      } catch (e) {
        grant.report(options?.classify?.(e) ?? 'failure');
        throw e;
      }
      grant.report('success');
      if (options?.settle !== undefined) await grant.settle(options.settle(result));
      return result;
    } finally {
      grant.release();
    }
  }

  /**
   * stats reads every limit of `key` (window-aware: remaining and reset as of now), the slots held
   * and the waiters queued, through the key's mailbox.
   */
  stats(key: string): Promise<KeyStats> {
    try {
      checkKey(key, 'stats', this.name);
      this.#core.checkOpen('stats');
      return new Promise<KeyStats>((resolve, reject) => {
        this.send(key, this.#core.storeKey(this.name, key), {
          type: 'read',
          reply: (r) => resolve({ limiter: this.name, key, ...r }),
          fail: reject,
        });
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * stats$(key) is an RxJS Observable of the key's {@link KeyStats}: one value on subscribe, one
   * after each change of the key (coalesced per tick), and one every `every` if set.
   * stats$() without a key is one of the whole limiter's {@link LimiterStats}: every live key
   * summed, the `top` fullest, the keys that appeared and were evicted; one value on subscribe and
   * one after each burst of changes of any key. Nothing is computed while nobody subscribes.
   *
   * @throws InvalidArgumentError for a key that is not a string, or bad options.
   */
  stats$(key: string, options?: StatsOptions): Observable<KeyStats>;
  stats$(options?: LimiterStatsOptions): Observable<LimiterStats>;
  stats$(
    keyOrOptions?: string | LimiterStatsOptions,
    options?: StatsOptions,
  ): Observable<KeyStats> | Observable<LimiterStats> {
    // stats$() and stats$(options) are the limiter's stream; with two arguments it is a key's,
    // whatever the first is (a key that is not a string is refused, not read as options).
    const forLimiter =
      options === undefined &&
      (keyOrOptions === undefined || (typeof keyOrOptions === 'object' && keyOrOptions !== null));
    if (forLimiter) {
      const read = readLimiterStatsOptions(keyOrOptions, onLimiter(this.name, 'stats$'));
      return limiterStats$(this, this.#core, read);
    }
    checkKey(keyOrOptions, 'stats$', this.name);
    return keyStats$(this, this.#core, keyOrOptions, options);
  }

  /**
   * setLimits replaces the policy. Each live key takes it through its mailbox and re-decides its
   * waiters (one whose cost no longer fits any capacity is rejected with CostExceedsCapacityError);
   * idle keys take it on their next use.
   *
   * @throws InvalidArgumentError for an invalid policy; the old one stays in force.
   */
  setLimits(spec: PolicySpec): void {
    const policy = compilePolicyOf(spec, onLimiter(this.name, 'setLimits'));
    this.#core.checkOpen('setLimits');
    this.#policy = policy;
    this.#defaultUnits = compileCost(policy, undefined);
    this.#core.policyChanged(this);
  }

  /** reset forgets `key`'s state (full capacity, no slots), through its mailbox. */
  reset(key: string): Promise<void> {
    try {
      checkKey(key, 'reset', this.name);
      this.#core.checkOpen('reset');
      return this.#ask(key, (done) => ({ type: 'reset', done }));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * pause refuses every request of `key` for `duration` (limit `'paused'`): waiters stay queued
   * and are granted after the pause; tries are refused with the time left. With the Redis store
   * the pause holds in every process. A shorter pause never cuts a longer one short.
   *
   * @throws (rejects) InvalidArgumentError for a bad key or duration, or a store that cannot pause.
   */
  pause(key: string, duration: Duration): Promise<void> {
    try {
      checkKey(key, 'pause', this.name);
      const forMs = readDuration(duration, {
        where: onLimiter(this.name, 'pause', key),
        path: 'duration',
      });
      this.#core.checkOpen('pause');
      return this.#ask(key, (done) => ({ type: 'pause', forMs, done }));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * feedback applies what a provider said after a call on `key`:
   * - throttled (429): the key pauses for `retryAfterMs`, else until the latest reset of a
   *   dimension the provider reports exhausted, else 1 s; waiters are rescheduled, not failed.
   * - a dimension used up (`remaining: 0`) with a reset: the key pauses until that reset (at
   *   most `maxPause`), instead of booking what would last a whole interval of its own limits.
   * - remaining per dimension: each limit counting that dimension whose interval is no longer
   *   than the provider's window (its reported reset, at least a minute) is lowered to what the
   *   provider reports, by booking the difference now. Longer limits (a daily budget) are left
   *   alone: a per-minute remaining says nothing about them. It is never raised above what
   *   tollgate's own limits allow: a provider that reports more remaining changes nothing.
   *
   * The read and the booking are two mailbox messages: grants in between make the booking err on
   * the safe side (lower), never higher.
   *
   * @example await limiter.feedback('gpt-4o', feedbackFromResponse(res, Date.now()));
   */
  async feedback(key: string, signal: ProviderSignal): Promise<void> {
    checkKey(key, 'feedback', this.name);
    checkProviderSignal(signal, onLimiter(this.name, 'feedback', key));
    await applyFeedback(this, key, signal);
  }

  /** @internal books `units` on `key` now (feedback's lowering to the provider's remaining). */
  charge(key: string, units: Units): Promise<void> {
    return this.#ask(key, (done) => ({ type: 'charge', units, done }));
  }

  /** Sends the key's mailbox an operation and resolves when it is done. */
  #ask(key: string, make: (done: Done) => KeyEvent<Grant>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.send(key, this.#core.storeKey(this.name, key), make({ resolve, reject }));
    });
  }

  /** @internal GrantOwner: where this limiter's calls are checked, reused by every call. */
  readonly place: CallPlace;

  /** @internal GrantOwner: send to a key's actor, creating it if needed. */
  send(key: string, storeKey: string, event: KeyEvent<Grant>): void {
    this.#actor(key, storeKey).send(event);
  }

  /** The key's live actor straight from this limiter's index; the system creates one if none. */
  #actor(key: string, storeKey?: string): KeyActorRef<Grant> {
    const actor = this.actors.get(key);
    if (actor === undefined) return this.#core.actorFor(this, key, storeKey);
    this.keyCap?.touch(key);
    return actor;
  }

  #waiter(
    key: string,
    options: AcquireOptions | undefined,
    tryOnly: boolean,
    call: string,
  ): Waiter<Grant> {
    checkKey(key, call, this.name);
    this.#core.checkOpen(call);
    const { units, timeoutMs, priority, signal, cost } = parseAcquireOptions(
      this.#policy,
      this.#defaultUnits,
      options,
      this.place,
      call,
      key,
    );
    const w = new Waiter<Grant>(
      this.#core.idPrefix,
      ++seq,
      units,
      this.#policy,
      this.#policy.concurrency !== null,
      this.leaseMs,
      cost,
      priority,
      timeoutMs,
      tryOnly,
      signal,
      call,
    );
    if (signal !== undefined) {
      if (signal.aborted) {
        w.fail(new AcquireAbortedError(signal.reason));
        return w;
      }
      const link = new AbortLink(this, key, w, signal);
      signal.addEventListener('abort', link, { once: true });
      w.detach = link;
    }
    return w;
  }

  /** @internal the store key of `key` (built again at each call: no waiter keeps one). */
  storeKey(key: string): string {
    return this.#core.storeKey(this.name, key);
  }

  /**
   * Hands `w` to its key's mailbox. It never throws: a failure (the system closed meanwhile, say)
   * ends the waiter with the error, which also detaches its abort listener.
   */
  #dispatch(key: string, w: Waiter<Grant>): void {
    try {
      const actor = this.actors.get(key);
      if (actor !== undefined) {
        this.keyCap?.touch(key);
        actor.send(w);
      } else this.#core.actorFor(this, key).send(w);
    } catch (e) {
      w.fail(e instanceof Error ? e : new Error(String(e)));
    }
  }
}

/**
 * AbortLink is a waiter's abort listener: one small object (an `EventListenerObject`) rather than
 * two closures over the call's scope, since a key may hold many queued waiters (at 1,000 queued
 * waiters on a key, the closures and their scope were a fifth of each waiter's heap). When the
 * signal aborts, the key's mailbox ends the waiter; when the waiter ends first, it detaches.
 */
class AbortLink implements Detachable {
  constructor(
    readonly limiter: Limiter,
    readonly key: string,
    readonly w: Waiter<Grant>,
    readonly signal: AbortSignal,
  ) {}

  handleEvent(): void {
    const { limiter, key } = this;
    limiter.send(key, limiter.storeKey(key), { type: 'abort', waiter: this.w });
  }

  detach(): void {
    this.signal.removeEventListener('abort', this);
  }
}
