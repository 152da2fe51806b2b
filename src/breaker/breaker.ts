/**
 * CircuitBreaker is the handle callers hold for one breaker (one per provider × API key): it runs
 * the {@link breakerMachine} statechart in an XState actor on the injected clock, and turns its
 * answers into permits.
 *
 * A call goes: `tryEnter()` → a permit, or a refusal with the time to wait → make the call →
 * exactly one of `permit.success()`, `permit.failure()` or `permit.cancel()`. Which outcomes are
 * failures is the caller's choice: a 5xx, a timeout or a refused connection is; a 400 the caller
 * caused is not (`success()` or `cancel()`); a 429 is a rate limit rather than an outage, which
 * the limiter's own pause handles, so `cancel()` it unless 429s should trip the breaker too.
 *
 * Every decision is the actor's; this class reads the clock, sends events and relays facts. Sends
 * happen only while the actor is idle, so each `tryEnter` gets its answer synchronously: state
 * changes are announced (events, `state$`) after the actor finished the event that caused them,
 * never from inside it, so a listener may call `tryEnter` or end a permit.
 */
import { EventEmitter } from 'eventemitter3';
import type { Observable } from 'rxjs';
// A deep path, not 'rxjs', which loads all of rxjs under Node: see observe/stats.ts.
import { BehaviorSubject } from 'rxjs/internal/BehaviorSubject';
import { createActor, type Actor } from 'xstate';
import type { Clock } from '../clock.js';
import { AcquireAbortedError, InvalidArgumentError, LimiterClosedError } from '../errors.js';
import type { Ms } from '../limiter/types.js';
import { breakerMachine, type BreakerEmitted, type BreakerMachine } from './breakerMachine.js';
import { Permit, type BreakerPermit, type PermitOutcome } from './permit.js';
import {
  compileBreakerPolicy,
  type BreakerPolicy,
  type BreakerPolicySpec,
  type BreakerState,
} from './policy.js';
import { onBreaker } from '../describe.js';
import { checkClock, checkSignal } from '../checks.js';
import { windowTotals } from './window.js';

/** BreakerPermit lives in permit.ts; re-exported here for imports of this module. */
export type { BreakerPermit } from './permit.js';

/**
 * TryEnterResult is what {@link CircuitBreaker.tryEnter} answers: a permit, or the state that
 * refused and how long to wait (the open time left; half-open, a hint: the last open period).
 */
export type TryEnterResult =
  | { readonly ok: true; readonly permit: BreakerPermit }
  | { readonly ok: false; readonly state: 'open' | 'halfOpen'; readonly retryAfterMs: Ms };

/** BreakerStateChange is the payload of a `stateChange` event. */
export interface BreakerStateChange {
  /** The breaker's name. */
  readonly name: string;
  readonly from: BreakerState;
  readonly to: BreakerState;
  /** The clock's instant of the change. */
  readonly at: Ms;
}

/** BreakerEvents is the eventemitter3 event map of a breaker's (and a registry's) `events`. */
export interface BreakerEvents {
  stateChange: [BreakerStateChange];
}

/** BreakerStats is a breaker's state and counts at one instant. */
export interface BreakerStats {
  readonly name: string;
  readonly state: BreakerState;
  /**
   * Calls and failures counted toward opening: in the rolling window as of now with a
   * failure-rate rule, else in the current (or, while open or half-open, the last) closed period.
   */
  readonly calls: number;
  readonly failures: number;
  /** Failures in a row in the current (or last) closed period. */
  readonly consecutiveFailures: number;
  /** The instant the breaker stops being open; null unless open. */
  readonly openUntil: Ms | null;
  /** Probe permits out and not yet ended. At most `policy.probes`. */
  readonly probesOutstanding: number;
  /** How many times the breaker opened since it was created, re-opens included. */
  readonly opens: number;
}

/**
 * What the next breaker made takes instead of the defaults: its logic (`CircuitBreaker.withLogic`)
 * or its policy compiled already (`CircuitBreaker.ofCompiled`). Not constructor parameters, so
 * that the public declarations never name them.
 */
let next: { logic?: BreakerMachine; policy?: BreakerPolicy } | null = null;

/** A breaker made by `make` with `set` as {@link next}. */
function madeWith(
  set: { logic?: BreakerMachine; policy?: BreakerPolicy },
  make: () => CircuitBreaker,
): CircuitBreaker {
  next = set;
  try {
    return make();
  } finally {
    next = null;
  }
}

interface StateWaiter {
  resolve(): void;
  reject(e: Error): void;
}

/**
 * CircuitBreaker: see the file comment.
 *
 * @throws InvalidArgumentError (constructor) for an empty name, an invalid policy or a clock that
 *   is not a Clock.
 * @example
 * const breaker = new CircuitBreaker('openai/key-1', { failureThreshold: 5, openFor: '30s' }, systemClock);
 * const r = breaker.tryEnter();
 * if (!r.ok) throw new CircuitOpenError(breaker.name, r.state, r.retryAfterMs);
 * try { const reply = await callModel(); r.permit.success(); return reply; }
 * catch (e) { if (isRetryable(e)) r.permit.failure(); else r.permit.cancel(); throw e; }
 */
export class CircuitBreaker {
  /** The breaker's name, unique in its registry. Use a key id, never the API key itself. */
  readonly name: string;
  /** The validated policy. */
  readonly policy: BreakerPolicy;
  /** `stateChange` {name, from, to, at} on every transition, in order. */
  readonly events = new EventEmitter<BreakerEvents>();
  /**
   * state$ gives the current state on subscribe, then every change, in order; it completes when
   * the breaker is stopped.
   */
  readonly state$: Observable<BreakerState>;
  readonly #clock: Clock;
  readonly #actor: Actor<BreakerMachine>;
  readonly #subject: BehaviorSubject<BreakerState>;
  /** The actor's state as of its last processed event (announcements may lag behind it). */
  #state: BreakerState = 'closed';
  /** Changes seen in the actor and not yet announced, oldest first. */
  readonly #pending: BreakerStateChange[] = [];
  /** True while #announce runs: a nested call leaves the queue to it, so order is kept. */
  #announcing = false;
  /** The actor's answer to the PROBE being sent; read right after the send. */
  #answer: BreakerEmitted | null = null;
  /** waitForHalfOpen callers, while open. */
  readonly #waiters = new Set<StateWaiter>();
  /** waitForPermit callers, while half-open with every probe out. */
  readonly #slotWaiters = new Set<StateWaiter>();
  #stopped = false;
  /** Permits given out and not yet ended (a call still running reports to this breaker). */
  #permitsOut = 0;

  /**
   * @internal a breaker that runs `logic`, a variant made with `breakerMachine.provide(...)`:
   * tests seed bugs with it.
   */
  static withLogic(
    logic: BreakerMachine,
    name: string,
    policy: BreakerPolicySpec,
    clock: Clock,
  ): CircuitBreaker {
    return madeWith({ logic }, () => new CircuitBreaker(name, policy, clock));
  }

  /**
   * @internal a breaker on a policy compiled already (a limiter compiles its breaker option once),
   * taken as it is: the same object, not a copy.
   */
  static ofCompiled(name: string, policy: BreakerPolicy, clock: Clock): CircuitBreaker {
    return madeWith({ policy }, () => new CircuitBreaker(name, {}, clock));
  }

  constructor(name: string, policy: BreakerPolicySpec, clock: Clock) {
    const logic = next?.logic ?? breakerMachine;
    const compiled = next?.policy;
    next = null;
    checkName(name, 'new CircuitBreaker');
    checkClock(clock, { where: 'new CircuitBreaker', path: 'clock' });
    this.name = name;
    this.policy = compiled ?? compileBreakerPolicy(policy, { where: onBreaker(name), path: '' });
    this.#clock = clock;
    this.#subject = new BehaviorSubject<BreakerState>('closed');
    this.state$ = this.#subject.asObservable();
    // The open → halfOpen timer is an XState delayed event on our clock. When it fires, the actor
    // handles it inside the callback; the changes are announced once it returns.
    const actorClock = {
      setTimeout: (fn: () => void, ms: number) =>
        clock.setTimeout(() => {
          fn();
          this.#announce();
        }, ms),
      clearTimeout: (handle: unknown) => clock.clearTimeout(handle),
    };
    this.#actor = createActor(logic, { input: { policy: this.policy }, clock: actorClock });
    this.#actor.on('admitted', (e) => (this.#answer = e));
    this.#actor.on('refused', (e) => (this.#answer = e));
    this.#actor.subscribe({
      next: (snapshot) => {
        const to = snapshot.value;
        if (to === this.#state) return;
        const from = this.#state;
        this.#state = to;
        this.#pending.push({ name: this.name, from, to, at: this.#clock.now() });
        // Resolving is safe here: the waiters' callbacks run later, as microtasks.
        if (from === 'open') this.#settle(this.#waiters, null);
        this.#settle(this.#slotWaiters, null); // any change may open a probe slot
      },
      error: (err) => {
        // Only a bug in the statechart gets here; fail loudly rather than admit blindly.
        this.#stopped = true;
        const e = err instanceof Error ? err : new Error(String(err));
        this.#settle(this.#waiters, e);
        this.#settle(this.#slotWaiters, e);
        this.#subject.error(err);
      },
    });
    this.#actor.start();
  }

  /** The current state. */
  get state(): BreakerState {
    return this.#state;
  }

  /**
   * isIdle tells whether forgetting the breaker loses nothing: it is closed, no permit is out
   * (no call will report to it), nobody waits on it, and it counts no failure (in a row, or in
   * its failure-rate window as of now). A new breaker for the same name would be the same.
   */
  get isIdle(): boolean {
    if (this.#state !== 'closed' || this.#permitsOut > 0) return false;
    if (this.#waiters.size > 0 || this.#slotWaiters.size > 0) return false;
    const stats = this.stats();
    return stats.consecutiveFailures === 0 && stats.failures === 0;
  }

  /** Whether `stop()` was called. */
  get isStopped(): boolean {
    return this.#stopped;
  }

  /**
   * tryEnter asks to make one call now. Closed, it always admits. Open, it refuses with the time
   * left. Half-open, it admits a probe while fewer than `probes` probes are out, else refuses.
   * A refusal changes nothing.
   *
   * @throws LimiterClosedError if the breaker was stopped.
   * @example
   * const r = breaker.tryEnter();
   * if (r.ok) { try { await call(); r.permit.success() } catch (e) { r.permit.failure(); throw e } }
   * else console.log(`${r.state}: retry in ${r.retryAfterMs} ms`);
   */
  tryEnter(): TryEnterResult {
    if (this.#stopped) throw new LimiterClosedError(onBreaker(this.name, 'tryEnter'));
    this.#answer = null;
    this.#actor.send({ type: 'PROBE', now: this.#clock.now() });
    const answer = this.#answer as BreakerEmitted | null;
    this.#answer = null;
    this.#announce();
    if (answer === null)
      throw new Error(`tollgate: internal: ${onBreaker(this.name)} did not answer tryEnter`);
    if (answer.type === 'refused')
      return { ok: false, state: answer.state, retryAfterMs: answer.retryAfterMs };
    this.#permitsOut++;
    return {
      ok: true,
      permit: new Permit(this.name, answer.probe, answer.epoch, (o, p, e) => this.#end(o, p, e)),
    };
  }

  /**
   * waitForHalfOpen resolves once the breaker is not open: at once if it is closed or half-open,
   * else when the open period ends. It does not hold a probe slot: call `tryEnter` next, which may
   * still refuse when other callers took the slots first.
   *
   * @throws (rejects) LimiterClosedError when the breaker is (or gets) stopped; AcquireAbortedError
   *   with `cause: signal.reason` when `signal` aborts; InvalidArgumentError for a signal that is
   *   not an AbortSignal.
   * @example
   * let r = breaker.tryEnter();
   * while (!r.ok && r.state === 'open') { await breaker.waitForHalfOpen(signal); r = breaker.tryEnter(); }
   */
  waitForHalfOpen(signal?: AbortSignal): Promise<void> {
    try {
      checkSignal(signal, { where: onBreaker(this.name, 'waitForHalfOpen'), path: 'signal' });
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#wait(this.#waiters, this.#state === 'open', 'waitForHalfOpen', signal);
  }

  /**
   * waitForPermit resolves once `tryEnter` may admit: when the breaker is closed, or half-open
   * with a probe slot free (at once), else when the open period ends, a probe ends or the state
   * changes. Like waitForHalfOpen it holds nothing, and `tryEnter` may still refuse.
   *
   * @throws (rejects) as waitForHalfOpen.
   */
  waitForPermit(signal?: AbortSignal): Promise<void> {
    try {
      checkSignal(signal, { where: onBreaker(this.name, 'waitForPermit'), path: 'signal' });
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.#state === 'open') return this.waitForHalfOpen(signal);
    const full = this.#state === 'halfOpen' && this.stats().probesOutstanding >= this.policy.probes;
    return this.#wait(this.#slotWaiters, full, 'waitForPermit', signal);
  }

  /** Waits in `set` while `blocked`, rejecting on stop and on abort. */
  #wait(
    set: Set<StateWaiter>,
    blocked: boolean,
    call: string,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    if (this.#stopped) return Promise.reject(new LimiterClosedError(onBreaker(this.name, call)));
    if (signal?.aborted) return Promise.reject(new AcquireAbortedError(signal.reason));
    if (!blocked) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        set.delete(waiter);
        reject(new AcquireAbortedError(signal?.reason));
      };
      const waiter: StateWaiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      set.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** stats reads the breaker's state and counts as of now. */
  stats(): BreakerStats {
    const { context: c } = this.#actor.getSnapshot();
    const rate = this.policy.failureRate;
    const counts =
      rate === null
        ? { calls: c.calls, failures: c.failures }
        : windowTotals(c.window, this.#clock.now(), rate.windowMs, rate.bucketMs);
    return {
      name: this.name,
      state: this.#state,
      calls: counts.calls,
      failures: counts.failures,
      consecutiveFailures: c.consecutiveFailures,
      openUntil: this.#state === 'open' ? c.openUntil : null,
      probesOutstanding: c.probesOut,
      opens: c.opens,
    };
  }

  /**
   * stop stops the actor and its timer, rejects every `waitForHalfOpen` with LimiterClosedError
   * and completes `state$`. Later `tryEnter` calls throw; permits still out may be ended and count
   * nothing. Idempotent.
   */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#actor.stop();
    this.#settle(this.#waiters, new LimiterClosedError(onBreaker(this.name, 'waitForHalfOpen')));
    this.#settle(this.#slotWaiters, new LimiterClosedError(onBreaker(this.name, 'waitForPermit')));
    this.#announce();
    this.#subject.complete();
  }

  #end(outcome: PermitOutcome, probe: boolean, epoch: number): void {
    this.#permitsOut--;
    if (this.#stopped) return;
    const now = this.#clock.now();
    this.#actor.send(
      outcome === 'CANCEL' ? { type: 'CANCEL', probe } : { type: outcome, now, epoch, probe },
    );
    if (probe) this.#settle(this.#slotWaiters, null); // a probe slot is free again
    this.#announce();
  }

  #settle(set: Set<StateWaiter>, error: Error | null): void {
    const waiters = [...set];
    set.clear();
    for (const w of waiters) {
      if (error === null) w.resolve();
      else w.reject(error);
    }
  }

  /** Announces the changes the actor made, in order, once it is idle. */
  #announce(): void {
    if (this.#announcing) return;
    this.#announcing = true;
    try {
      for (
        let change = this.#pending.shift();
        change !== undefined;
        change = this.#pending.shift()
      ) {
        this.#subject.next(change.to);
        this.events.emit('stateChange', change);
      }
    } finally {
      this.#announcing = false;
    }
  }
}

/**
 * checkName throws unless a breaker's `name` is a non-empty string; `where` names the call.
 *
 * @throws InvalidArgumentError `<where>: name is 5; expected a non-empty string`.
 */
export function checkName(name: unknown, where: string): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new InvalidArgumentError({
      where,
      path: 'name',
      value: name,
      expected: 'a non-empty string',
    });
  }
}
