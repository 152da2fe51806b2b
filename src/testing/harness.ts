/**
 * A harness for property tests of an app's own code against tollgate (#16): it runs the code
 * against real limiters on a VirtualClock, lets fast-check's scheduler pick the order in which the
 * limiters' answers reach the code's concurrent tasks, moves virtual time whenever nothing else
 * can happen, and reports every grant, refusal, wait, settle and end of the run, so that a test
 * states its own properties over them ("never over budget", "every task finishes").
 */
import type fc from 'fast-check';
import type { Grant } from '../actors/grant.js';
import type { Limiter, LimiterOptions, TryAcquireOptions } from '../actors/limiter.js';
import type { AcquireOptions, RunOptions, TryResult } from '../actors/options.js';
import { createLimiterSystem, type LimiterSystem } from '../actors/system.js';
import { VirtualClock } from '../clock.js';
import { InvalidArgumentError } from '../errors.js';
import type { Duration, Ms } from '../limiter/types.js';
import { parseDuration } from '../limiter/units.js';
import { EVENT_NAMES } from '../observe/eventNames.js';
import type { TollgateEventName, TollgateEvents } from '../observe/events.js';
import type { KeyStats } from '../observe/stats.js';

/**
 * A limiter as the code under test sees it: the calls it makes, each answered when the
 * scheduler says. Its grants are the limiter's own.
 */
export interface ScheduledLimiter {
  readonly name: string;
  acquire(key: string, options?: AcquireOptions): Promise<Grant>;
  tryAcquire(key: string, options?: TryAcquireOptions): Promise<TryResult>;
  run<T>(key: string, fn: (grant: Grant) => Promise<T> | T, options?: RunOptions<T>): Promise<T>;
  stats(key: string): Promise<KeyStats>;
  /** The limiter itself, for what the harness does not schedule. */
  readonly limiter: Limiter;
}

/** What the code under test is given. */
export interface HarnessContext {
  /** The limiters, by the names of {@link HarnessOptions.limiters}. */
  readonly limiters: Readonly<Record<string, ScheduledLimiter>>;
  readonly clock: VirtualClock;
  readonly system: LimiterSystem;
  /** Waits `ms` of virtual time (the harness moves the clock when nothing else can happen). */
  sleep(ms: Ms): Promise<void>;
}

/** Options of {@link runLimited}. */
export interface HarnessOptions {
  /** The scheduler of the property: `fc.scheduler()`. */
  readonly scheduler: fc.Scheduler;
  /** The limiters to make, by name. */
  readonly limiters: Readonly<Record<string, LimiterOptions>>;
  /**
   * Virtual time the run may take: past it, the run is stopped (`finished: false`, the system
   * closed, so every waiter ends). @default '1h'
   */
  readonly timeLimit?: Duration;
}

/** One event of the run, as the system emitted it, with its name. */
export type HarnessEvent = {
  [K in TollgateEventName]: { readonly type: K } & TollgateEvents[K][0];
}[TollgateEventName];

/** What a run did, for the properties of a test. */
export interface HarnessReport<T> {
  /**
   * Whether the code's promise settled while the run went on: false when it was stuck (nothing
   * more could happen) or past the time limit. The system is closed then, which ends the code's
   * waiters; what the code does after that is not reported.
   */
  readonly finished: boolean;
  /** Its value, when it resolved. */
  readonly result: T | undefined;
  /** Its error, when it rejected. */
  readonly error: unknown;
  /** The virtual instant the run ended at (ms from 0). */
  readonly endedAt: Ms;
  /** Every event of the run, in order. */
  readonly events: readonly HarnessEvent[];
  /** The events of one kind: `report.of('granted')`. */
  of<K extends TollgateEventName>(type: K): readonly Extract<HarnessEvent, { type: K }>[];
}

/**
 * runLimited runs `code` against the limiters of `options` on virtual time, with the scheduler
 * ordering the answers, and reports what happened. It never sleeps for real.
 *
 * @example
 * fc.assert(fc.asyncProperty(fc.scheduler(), async (s) => {
 *   const report = await runLimited({ scheduler: s, limiters: { llm: policy } }, (t) => myLoop(t.limiters.llm));
 *   expect(report.finished).toBe(true);
 * }));
 */
export async function runLimited<T>(
  options: HarnessOptions,
  code: (context: HarnessContext) => Promise<T>,
): Promise<HarnessReport<T>> {
  const isObject = (v: unknown): boolean =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(options)) {
    throw new InvalidArgumentError({
      where: 'runLimited',
      path: 'options',
      value: options,
      expected: 'an object { scheduler, limiters, timeLimit? }',
    });
  }
  if (!isObject(options.limiters)) {
    throw new InvalidArgumentError({
      where: 'runLimited',
      path: 'options.limiters',
      value: options.limiters,
      expected:
        "an object of limiter options by name, e.g. { api: { limits: [{ limit: 10, interval: '1s' }] } }",
    });
  }
  if (typeof code !== 'function') {
    throw new InvalidArgumentError({
      where: 'runLimited',
      path: 'code',
      value: code,
      expected: 'a function (context) => Promise, the code under test',
    });
  }
  const s = options.scheduler;
  const limitMs =
    options.timeLimit === undefined
      ? 3_600_000
      : parseDuration(options.timeLimit, { where: 'runLimited', path: 'options.timeLimit' });
  if (typeof s?.schedule !== 'function' || typeof s.waitOne !== 'function') {
    throw new InvalidArgumentError({
      where: 'runLimited',
      path: 'options.scheduler',
      value: s,
      expected: 'a fast-check scheduler, from fc.scheduler()',
    });
  }
  const clock = new VirtualClock(0);
  const system = createLimiterSystem({ clock });
  const events: HarnessEvent[] = [];
  const record = (type: TollgateEventName) => (e: object) =>
    events.push({ type, ...e } as HarnessEvent);
  for (const type of EVENT_NAMES) system.events.on(type, record(type));

  const limiters: Record<string, ScheduledLimiter> = {};
  try {
    for (const [name, spec] of Object.entries(options.limiters)) {
      limiters[name] = scheduled(system.limiter(name, spec), s);
    }
  } catch (e) {
    await system.close(); // a bad limiter option: the system made for the run is not left open
    throw e;
  }
  const context: HarnessContext = {
    limiters,
    clock,
    system,
    sleep: (ms) => new Promise<void>((resolve) => clock.setTimeout(resolve, ms)),
  };

  let settled = false;
  let stopped = false;
  let result: T | undefined;
  let error: unknown;
  void (async () => {
    try {
      const value = await code(context);
      if (!stopped) result = value;
    } catch (e) {
      if (!stopped) error = e;
    } finally {
      if (!stopped) settled = true;
    }
  })();
  // Whatever can happen now happens: the scheduled answers, one at a time in the scheduler's
  // order; when none is left, time moves to the next timer; past the limit, the run stops.
  for (;;) {
    await clock.increment(0);
    if (settled) break;
    if (s.count() > 0) {
      await s.waitOne();
      continue;
    }
    const next = clock.nextDue;
    if (next === null || next > limitMs) break;
    await clock.advanceTo(next);
  }
  const endedAt = clock.now();
  // What the code does after this (the close ends its waiters) is not the run's: a deadlock
  // the close breaks is still reported unfinished.
  stopped = true;
  await system.close();
  await s.waitAll(); // answers of the calls the close ended
  await clock.increment(0);
  return {
    finished: settled,
    result,
    error,
    endedAt,
    events,
    of: (type) => events.filter((e) => e.type === type) as never,
  };
}

/**
 * `limiter` with each answer released by the scheduler `s`: an answer is handed to the scheduler
 * once the limiter gave it (a wait for capacity is the limiter's, on virtual time), and reaches
 * the caller when the scheduler picks it.
 */
function scheduled(limiter: Limiter, s: fc.Scheduler): ScheduledLimiter {
  const later = <T>(answer: Promise<T>, call: string, key: string): Promise<T> => {
    const label = `${limiter.name} ${call} ${key}`;
    return answer.then(
      (value) => s.schedule(Promise.resolve(value), label),
      // The rejection is made when the scheduler picks it: a rejected promise waiting for its
      // turn would be reported unhandled.
      (error: unknown) =>
        s.schedule(Promise.resolve(), `${label} (rejected)`).then(() => {
          throw error;
        }),
    );
  };
  return {
    name: limiter.name,
    limiter,
    acquire: (key, options) => later(limiter.acquire(key, options), 'acquire', key),
    tryAcquire: (key, options) => later(limiter.tryAcquire(key, options), 'tryAcquire', key),
    run: (key, fn, options) => later(limiter.run(key, fn, options), 'run', key),
    stats: (key) => later(limiter.stats(key), 'stats', key),
  };
}
