/**
 * Limiter is the facade callers hold: one policy (a set of limits), many keys. It validates every
 * call at the boundary, then hands it to the key's actor; it never touches a key's state itself.
 */
import type { Observable } from 'rxjs';
import { AcquireAbortedError, AcquireTimeoutError, InvalidArgumentError } from '../errors.js';
import type { BreakerPermit, CircuitBreaker } from '../breaker/breaker.js';
import { CircuitOpenError } from '../breaker/errors.js';
import { compileBreakerPolicy, type BreakerOptions } from '../breaker/policy.js';
import { keyStats$, type KeyStats, type StatsOptions } from '../observe/stats.js';
import type { Done, KeyActorRef, KeyEvent } from '../machines/keyContext.js';
import { Waiter, WaiterState } from '../machines/waiter.js';
import { parseDuration } from '../limiter/units.js';
import { compileCost, compilePolicy } from '../limiter/validate.js';
import type { CostSpec, Duration, Ms, Policy, PolicySpec, Units } from '../limiter/types.js';
import type { CallOutcome, Grant, GrantOwner } from './grant.js';
import type { SystemCore } from './core.js';

export type { BreakerOptions };

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

/** The shortest window a provider's remaining is taken to describe (providers count per minute). */
const PROVIDER_WINDOW_MS = 60_000;

/** How long a throttled key pauses when the provider gives no retry-after and no reset. */
const DEFAULT_PAUSE_MS = 1000;

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
}

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
export class Limiter implements GrantOwner {
  #policy: Policy;
  #defaultUnits: Units;
  readonly #core: SystemCore;
  /** @internal live key actors by key (the system creates them; see LimiterSystem.actorFor). */
  readonly actors = new Map<string, KeyActorRef<Grant>>();
  /** @internal */
  readonly maxQueue: number;
  /** @internal */
  readonly leaseMs: Ms | null;
  /** @internal the breaker options, validated; null without a breaker. */
  readonly breaker: BreakerOptions | null;

  /** @internal use `system.limiter()`. */
  constructor(
    core: SystemCore,
    /** The limiter's name: unique in its system, and part of every key's identity in the store. */
    readonly name: string,
    options: LimiterOptions,
  ) {
    this.#core = core;
    this.#policy = compilePolicy(options);
    this.#defaultUnits = compileCost(this.#policy, undefined);
    this.maxQueue = validateMaxQueue(options.maxQueue);
    // A store shared across processes names a default lease (Redis), so that a slot whose
    // holder died is not held forever; the limiter's own leaseTtl wins.
    this.leaseMs =
      options.leaseTtl === undefined
        ? ((core.store as { defaultLeaseMs?: Ms | null }).defaultLeaseMs ?? null)
        : parseDuration(options.leaseTtl, 'leaseTtl');
    this.breaker = validateBreaker(options.breaker);
  }

  /**
   * breakerFor returns the circuit breaker of `key` (created on first use), or null when the
   * limiter has none. Its `state$` and `events` tell every state change.
   */
  breakerFor(key: string): CircuitBreaker | null {
    checkKey(key, 'breakerFor');
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
    try {
      const w = this.#waiter(key, options, false, 'acquire');
      if (w.state !== WaiterState.Pending) return w.promise();
      if (this.breaker !== null) return this.#throughBreaker(key, w, this.breaker);
      this.#dispatch(key, w);
      return w.promise();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * The breaker admits first (fail fast, or wait for half-open), then the waiter queues; the
   * grant carries the breaker's permit, and a waiter that ends without a grant gives it back.
   */
  async #throughBreaker(key: string, w: Waiter<Grant>, options: BreakerOptions): Promise<Grant> {
    try {
      return await this.#breakerThenQueue(key, w, options);
    } catch (e) {
      // Whatever failed (the system closed while it waited, say), the waiter ends: its abort
      // listener is detached and it holds nothing.
      w.fail(e instanceof Error ? e : new Error(String(e)));
      throw e;
    }
  }

  async #breakerThenQueue(key: string, w: Waiter<Grant>, options: BreakerOptions): Promise<Grant> {
    const breaker = this.#core.breaker(`${this.name}/${key}`, options);
    const clock = this.#core.clock;
    const deadline = w.timeoutMs === Infinity ? Infinity : clock.now() + w.timeoutMs;
    for (;;) {
      const r = breaker.tryEnter();
      if (r.ok) return (await this.#dispatchWith(key, w, r.permit))!;
      if ((options.whenOpen ?? 'fail') === 'fail') {
        w.fail(new CircuitOpenError(breaker.name, r.state, r.retryAfterMs));
        return w.promise();
      }
      const left = deadline - clock.now();
      if (left <= 0) {
        w.fail(new AcquireTimeoutError(w.timeoutMs));
        return w.promise();
      }
      // Open: until half-open; half-open with every probe out: until a probe ends or it changes.
      const waited = breaker.waitForPermit(w.signal);
      let timer: unknown = null;
      try {
        await Promise.race([
          waited,
          new Promise<never>((_, reject) => {
            if (left !== Infinity)
              timer = clock.setTimeout(() => reject(new AcquireTimeoutError(w.timeoutMs)), left);
          }),
        ]);
      } catch (e) {
        w.fail(e instanceof Error ? e : new Error(String(e)));
        return w.promise();
      } finally {
        if (timer !== null) clock.clearTimeout(timer);
      }
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
      if (this.breaker !== null) return this.#tryThroughBreaker(key, w, this.breaker);
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

  /** A try with a breaker: refused with limit `'breaker'` while it admits no call. */
  async #tryThroughBreaker(
    key: string,
    w: Waiter<Grant>,
    options: BreakerOptions,
  ): Promise<TryResult> {
    const r = this.#core.breaker(`${this.name}/${key}`, options).tryEnter();
    if (!r.ok) return { ok: false, retryAfterMs: r.retryAfterMs, limit: BREAKER };
    const grant = await this.#dispatchWith(key, w, r.permit);
    return grant === undefined ? { ok: false, ...w.refusal! } : { ok: true, grant };
  }

  /**
   * Queues `w` admitted by the breaker's `permit`: the grant carries the permit, and a waiter
   * that ends without a grant (refused try, timeout, abort, failure) gives it back.
   */
  async #dispatchWith(
    key: string,
    w: Waiter<Grant>,
    permit: BreakerPermit,
  ): Promise<Grant | undefined> {
    this.#dispatch(key, w);
    try {
      const grant =
        w.state === WaiterState.Granted
          ? w.grant!
          : w.state === WaiterState.Refused
            ? undefined
            : await w.promise();
      if (grant === undefined) permit.cancel();
      else grant.permit = permit;
      return grant;
    } catch (e) {
      permit.cancel();
      throw e;
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
    const granted = w.promise();
    granted.catch(() => {});
    const storeKey = this.#core.storeKey(this.name, key);
    return {
      granted,
      get etaMs() {
        return w.state === WaiterState.Granted ? 0 : w.etaMs;
      },
      cancel: async () => {
        if (w.state === WaiterState.Pending) this.send(key, storeKey, { type: 'abort', waiter: w });
        else if (w.state === WaiterState.Granted) await w.grant!.cancel();
      },
    };
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
    const grant = await this.acquire(key, options);
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
      checkKey(key, 'stats');
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
   * stats$ is an RxJS Observable of the key's {@link KeyStats}: one value on subscribe, one after
   * each change of the key (coalesced per tick), and one every `everyMs` if set. Nothing is
   * computed while nobody subscribes.
   */
  stats$(key: string, options?: StatsOptions): Observable<KeyStats> {
    checkKey(key, 'stats$');
    return keyStats$(this, this.#core, key, options);
  }

  /**
   * setLimits replaces the policy. Each live key takes it through its mailbox and re-decides its
   * waiters (one whose cost no longer fits any capacity is rejected with CostExceedsCapacityError);
   * idle keys take it on their next use.
   *
   * @throws InvalidArgumentError for an invalid policy; the old one stays in force.
   */
  setLimits(spec: PolicySpec): void {
    const policy = compilePolicy(spec);
    this.#core.checkOpen('setLimits');
    this.#policy = policy;
    this.#defaultUnits = compileCost(policy, undefined);
    this.#core.policyChanged(this);
  }

  /** reset forgets `key`'s state (full capacity, no slots), through its mailbox. */
  reset(key: string): Promise<void> {
    try {
      checkKey(key, 'reset');
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
      checkKey(key, 'pause');
      const forMs = parseDuration(duration, 'pause duration');
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
    checkKey(key, 'feedback');
    if (typeof signal !== 'object' || signal === null) {
      throw new InvalidArgumentError(
        'tollgate: feedback expects { throttled?, retryAfterMs?, limits? }',
      );
    }
    const reported = (signal.limits ?? []).filter(
      (l) => typeof l.remaining === 'number' && Number.isFinite(l.remaining) && l.remaining >= 0,
    );
    if (signal.throttled === true) {
      let ms = signal.retryAfterMs ?? null;
      if (ms === null) {
        const exhausted = reported
          .filter((l) => l.remaining === 0 && l.resetMs !== null)
          .map((l) => l.resetMs!);
        ms = exhausted.length > 0 ? Math.max(...exhausted) : DEFAULT_PAUSE_MS;
      }
      if (ms > 0) await this.pause(key, Math.ceil(ms));
    }
    if (reported.length === 0) return;
    const policy = this.#policy;
    if (!policy.limits.some((l) => reported.some((r) => r.dimension === l.dimension))) return;
    const stats = await this.stats(key);
    if (this.#policy !== policy) return; // limits changed meanwhile: the reading is of another policy
    let any = false;
    const units = policy.limits.map((l, i) => {
      const ours = stats.limits[i]?.remaining ?? 0;
      let theirs = Infinity;
      for (const r of reported) {
        const window = Math.max(r.resetMs ?? 0, PROVIDER_WINDOW_MS);
        if (r.dimension === l.dimension && l.intervalMs <= window)
          theirs = Math.min(theirs, r.remaining!);
      }
      const over = ours > theirs ? ours - theirs : 0;
      if (over > 0) any = true;
      return over;
    });
    if (!any) return;
    await this.#ask(key, (done) => ({ type: 'charge', units, done }));
  }

  /** Sends the key's mailbox an operation and resolves when it is done. */
  #ask(key: string, make: (done: Done) => KeyEvent<Grant>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.send(key, this.#core.storeKey(this.name, key), make({ resolve, reject }));
    });
  }

  /** @internal GrantOwner: send to a key's actor, creating it if needed. */
  send(key: string, storeKey: string, event: KeyEvent<Grant>): void {
    this.#actor(key, storeKey).send(event);
  }

  /** The key's live actor straight from this limiter's index; the system creates one if none. */
  #actor(key: string, storeKey?: string): KeyActorRef<Grant> {
    return this.actors.get(key) ?? this.#core.actorFor(this, key, storeKey);
  }

  #waiter(
    key: string,
    options: AcquireOptions | undefined,
    tryOnly: boolean,
    call: string,
  ): Waiter<Grant> {
    checkKey(key, call);
    this.#core.checkOpen(call);
    let units = this.#defaultUnits;
    let timeoutMs = Infinity;
    let priority = 0;
    let signal: AbortSignal | undefined;
    let cost: CostSpec | undefined;
    if (options !== undefined) {
      if (typeof options !== 'object' || options === null) {
        throw new InvalidArgumentError(`tollgate: ${call} options must be an object`);
      }
      cost = options.cost;
      if (cost !== undefined) units = compileCost(this.#policy, cost, call);
      if (options.timeout !== undefined) {
        timeoutMs = options.timeout === 0 ? 0 : parseDuration(options.timeout, `${call} timeout`);
      }
      if (options.priority !== undefined) {
        if (typeof options.priority !== 'number' || !Number.isFinite(options.priority)) {
          throw new InvalidArgumentError(
            `tollgate: ${call} priority ${String(options.priority)} must be a finite number`,
          );
        }
        priority = options.priority;
      }
      signal = options.signal;
    }
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
    );
    if (signal !== undefined) {
      if (signal.aborted) {
        w.fail(new AcquireAbortedError(signal.reason));
        return w;
      }
      const storeKey = this.#core.storeKey(this.name, key);
      const onAbort = (): void => this.send(key, storeKey, { type: 'abort', waiter: w });
      signal.addEventListener('abort', onAbort, { once: true });
      w.detach = () => signal.removeEventListener('abort', onAbort);
    }
    return w;
  }

  /**
   * Hands `w` to its key's mailbox. It never throws: a failure (the system closed meanwhile, say)
   * ends the waiter with the error, which also detaches its abort listener.
   */
  #dispatch(key: string, w: Waiter<Grant>): void {
    try {
      this.#actor(key).send(w);
    } catch (e) {
      w.fail(e instanceof Error ? e : new Error(String(e)));
    }
  }
}

function checkKey(key: unknown, call: string): asserts key is string {
  if (typeof key !== 'string') {
    throw new InvalidArgumentError(`tollgate: ${call} key must be a string, got ${typeof key}`);
  }
}

function validateBreaker(options: BreakerOptions | undefined): BreakerOptions | null {
  if (options === undefined) return null;
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('tollgate: breaker must be an object of breaker options');
  }
  if (
    options.whenOpen !== undefined &&
    options.whenOpen !== 'fail' &&
    options.whenOpen !== 'wait'
  ) {
    throw new InvalidArgumentError(
      `tollgate: breaker.whenOpen must be 'fail' or 'wait' (got ${String(options.whenOpen)})`,
    );
  }
  const { whenOpen: _whenOpen, ...policy } = options;
  compileBreakerPolicy(policy); // throws InvalidArgumentError for a bad policy
  return options;
}

function validateMaxQueue(n: number | undefined): number {
  if (n === undefined) return Infinity;
  if (n === Infinity || (Number.isSafeInteger(n) && n >= 0)) return n;
  throw new InvalidArgumentError(
    `tollgate: maxQueue ${String(n)} must be a non-negative integer or Infinity`,
  );
}
