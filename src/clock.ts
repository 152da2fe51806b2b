/**
 * The runtime's only source of time. Everything in `src/limiter` takes `now` as an argument; the
 * runtime reads it from a Clock once per mailbox drain and arms its timers on the same Clock, so
 * tests swap in a {@link VirtualClock} and run on virtual time.
 *
 * Every limit is a matter of intervals (a refill, a window, a deadline, a lease), so the clock that
 * times them must not step. The wall clock does (NTP, a VM resumed, someone setting the date):
 * read as `Date.now()`, a step of +61 s opened a fresh minute window and let a key through twice
 * its limit within one real minute (#12). {@link systemClock} is monotonic instead.
 */
import { InvalidArgumentError } from './errors.js';
import type { Ms } from './limiter/types.js';

/** An opaque timer handle returned by {@link Clock.setTimeout}. */
export type TimerHandle = unknown;

/**
 * Clock is a superset of XState's clock (which has no `now()`), so the same object can be handed
 * to `createActor`.
 */
export interface Clock {
  /**
   * Current instant, integer ms. Every interval the runtime keeps is a difference of two readings,
   * so a clock that steps moves every limit with it: it should be monotonic (as
   * {@link systemClock} is). Must not go backwards by much; the core tolerates small steps back.
   */
  now(): Ms;
  /**
   * Run `fn` after `ms`. Key actors ask for at most {@link MAX_TIMER_MS} and re-arm for the rest;
   * other timers (the idle sweep, a breaker's `openFor`) may ask for more, which a clock must wait
   * out (systemClock does, in steps).
   */
  setTimeout(fn: () => void, ms: Ms): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /**
   * Like `setTimeout`, for housekeeping (eviction sweeps, lease expiry): such a timer must not keep
   * an idle process alive. Defaults to `setTimeout` when a clock has no such notion.
   */
  setHousekeepingTimeout?(fn: () => void, ms: Ms): TimerHandle;
}

/**
 * The longest delay Node's timers accept: 2^31 − 1 ms (about 24.8 days). Node runs a longer one
 * after 1 ms with a TimeoutOverflowWarning, so a key paused for a month, or a window of a year
 * with a waiter, would wake every millisecond.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

type NodeTimer = ReturnType<typeof setTimeout>;

/** A systemClock timer longer than {@link MAX_TIMER_MS}: a chain of timers, the current one here. */
class ChainedTimer {
  current: NodeTimer | undefined;
}

/**
 * arm runs `fn` after `ms` on Node's timers; a delay over {@link MAX_TIMER_MS} waits in steps of
 * at most that, re-armed as each one ends.
 */
function arm(fn: () => void, ms: Ms, unref: boolean): NodeTimer | ChainedTimer {
  if (!(ms > MAX_TIMER_MS)) {
    const t = setTimeout(fn, ms);
    if (unref) t.unref();
    return t;
  }
  const chain = new ChainedTimer();
  const step = (left: number): void => {
    const t =
      left > MAX_TIMER_MS
        ? setTimeout(() => step(left - MAX_TIMER_MS), MAX_TIMER_MS)
        : setTimeout(fn, left);
    if (unref) t.unref();
    chain.current = t;
  };
  step(ms);
  return chain;
}

/**
 * The wall clock when this module loaded, minus the monotonic clock then: {@link systemClock}
 * reads this plus `performance.now()`.
 */
// eslint-disable-next-line no-restricted-syntax -- read once, only to make instants look like epoch ms
const EPOCH_AT_ORIGIN: Ms = Date.now() - performance.now();

/**
 * systemClock is monotonic: its `now()` is the wall clock as it read when tollgate loaded, plus the
 * monotonic time elapsed since (`performance.now()`), floored to integer ms. Its instants look like
 * epoch ms, but they never step: a wall clock stepped forward or back (NTP, a VM resumed, a date
 * set by hand) moves no refill, window, deadline or lease. So they drift from `Date.now()` by
 * every step the wall clock took since load, and stamps (`at` in events and stats, a snapshot's
 * instants) are on this clock, not the wall clock. Where an instant must be compared with another
 * machine's wall clock (a provider's dated `retry-after` in `limitedFetch`), tollgate reads
 * `Date.now()` instead. Time the host spent suspended may not count (Linux's monotonic clock stops
 * during suspend): limits then refill later than the wall clock says, never earlier.
 *
 * It uses Node's timers. Waiter timers keep the process alive (a pending `acquire` is work);
 * housekeeping timers are `unref`ed. A delay longer than Node's timers take ({@link MAX_TIMER_MS})
 * is waited out in steps.
 */
export const systemClock: Clock = {
  now: () => Math.floor(EPOCH_AT_ORIGIN + performance.now()),
  setTimeout: (fn, ms) => arm(fn, ms, false),
  clearTimeout: (handle) =>
    clearTimeout(handle instanceof ChainedTimer ? handle.current : (handle as NodeTimer)),
  setHousekeepingTimeout: (fn, ms) => arm(fn, ms, true),
};

/**
 * wallClockNow reads the wall clock, `Date.now()`: only for instants compared with another
 * machine's wall clock (a provider's dated headers). Never for an interval: it steps (see
 * {@link systemClock}).
 */
// eslint-disable-next-line no-restricted-syntax -- the one place that reads the wall clock
export const wallClockNow = (): Ms => Date.now();

interface VirtualTimer {
  readonly id: number;
  readonly at: Ms;
  readonly fn: () => void;
}

/**
 * VirtualClock is a {@link Clock} that moves only when told to, for tests: `increment(ms)` runs
 * every timer due within the step, in order of due time, with `now()` set to each timer's instant.
 *
 * @example
 * const clock = new VirtualClock(0);
 * const system = createLimiterSystem({ clock });
 * const p = limiter.acquire('k');        // queued behind a full bucket
 * await clock.increment(1000);            // the wake-up timer fires; p resolves
 */
export class VirtualClock implements Clock {
  #now: Ms;
  #nextId = 1;
  /** Pending timers; due order is found by scanning (tests hold few timers). */
  readonly #timers = new Map<number, VirtualTimer>();

  /** @throws InvalidArgumentError for a start that is not a finite number. */
  constructor(start: Ms = 0) {
    this.#now = finite(start, 'new VirtualClock', 'start');
  }

  now(): Ms {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: Ms): TimerHandle {
    const id = this.#nextId++;
    this.#timers.set(id, { id, at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as number);
  }

  /** The number of timers armed and not yet run: tests assert it is 0 after close. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** The instant the earliest pending timer is due, or null when none is armed. */
  get nextDue(): Ms | null {
    let at: Ms | null = null;
    for (const t of this.#timers.values()) if (at === null || t.at < at) at = t.at;
    return at;
  }

  /**
   * increment moves time forward by `ms`, running due timers in order, and lets promise callbacks
   * settle after each one, so awaiting it observes every effect of the step.
   *
   * @throws (rejects) InvalidArgumentError for a step that is not a finite number from 0.
   */
  async increment(ms: Ms): Promise<void> {
    // A step of NaN would make now() NaN for good, and one of Infinity would run timers forever.
    if (!(finite(ms, 'VirtualClock.increment', 'ms') >= 0)) {
      throw new InvalidArgumentError({
        where: 'VirtualClock.increment',
        path: 'ms',
        value: ms,
        expected: 'a finite number of ms from 0 (time never goes back)',
      });
    }
    await this.advanceTo(this.#now + ms);
  }

  /**
   * advanceTo moves time forward to the instant `to` (never backwards), as {@link increment}.
   *
   * @throws (rejects) InvalidArgumentError for an instant that is not a finite number.
   */
  async advanceTo(to: Ms): Promise<void> {
    finite(to, 'VirtualClock.advanceTo', 'to');
    await flushMicrotasks();
    for (;;) {
      let next: VirtualTimer | undefined;
      for (const t of this.#timers.values()) {
        if (
          t.at <= to &&
          (next === undefined || t.at < next.at || (t.at === next.at && t.id < next.id))
        )
          next = t;
      }
      if (next === undefined) break;
      this.#timers.delete(next.id);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
      await flushMicrotasks();
    }
    this.#now = Math.max(this.#now, to);
    await flushMicrotasks();
  }

  /**
   * set jumps the clock to `to` without running timers: for tests of a clock that steps back or
   * jumps.
   *
   * @throws InvalidArgumentError for an instant that is not a finite number.
   */
  set(to: Ms): void {
    this.#now = finite(to, 'VirtualClock.set', 'to');
  }
}

/** `value` if it is a finite number (an instant or a step of a virtual clock), else it throws. */
function finite(value: unknown, where: string, path: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidArgumentError({ where, path, value, expected: 'a finite number of ms' });
  }
  return value;
}

/** Let every queued promise callback run: `setImmediate` fires once the microtask queue is empty. */
function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
