/**
 * Stats of a whole limiter (`limiter.stats$()`) and of a whole system (`system.stats$()`), as RxJS
 * Observables (#16). Cold, as a key's: nothing is listened to or read until someone subscribes.
 *
 * The cost does not grow with the number of live keys per event: an event marks its key, and
 * each burst of events (coalesced per microtask) reads the marked keys alone, through their
 * mailboxes. The totals are kept by adding each key's change; the fullest keys are found through
 * buckets of fill (per mille), so an emission costs the keys read plus the `top` it lists. What
 * costs one read per live key: the subscription (every live key is read once) and each tick of
 * `every` (which re-reads them all, to show refill over time).
 */
import type { Observable } from 'rxjs';
import { Observable as RxObservable } from 'rxjs/internal/Observable';
import type { Clock, TimerHandle } from '../clock.js';
import { InvalidArgumentError } from '../errors.js';
import type { Duration, Ms } from '../limiter/types.js';
import { readDuration } from '../limiter/units.js';
import type { TollgateEmitter } from './events.js';
import { CHANGES, type KeyStats } from './stats.js';
import { StatsTable } from './statsTable.js';

/** Options of `limiter.stats$()` and `system.stats$()`. */
export interface LimiterStatsOptions {
  /** How many of the fullest live keys each emission lists. 0 to 1,000. @default 10 */
  readonly top?: number;
  /**
   * Also re-read every live key on this period, to show refill over time (one read per live key
   * per tick). Minimum 1 ms. @default only on changes
   */
  readonly every?: Duration;
}

/** One limit's use, summed over the live keys. */
export interface LimitUse {
  readonly name: string;
  readonly dimension: string;
  /** Units in use (capacity − remaining) over every live key. */
  readonly used: number;
}

/** LimiterStats is a whole limiter's state as `limiter.stats$()` reports it. */
export interface LimiterStats {
  readonly limiter: string;
  /** The runtime clock's instant of the emission. */
  readonly at: Ms;
  /** Live keys: those with an actor now (an idle key's is stopped after `idleTimeout`). */
  readonly keys: number;
  /** Waiters queued, over every live key. */
  readonly queued: number;
  /** Concurrency slots held, over every live key. */
  readonly inFlight: number;
  /** Per limit, in the policy's order: what is in use over every live key. */
  readonly limits: readonly LimitUse[];
  /**
   * The fullest live keys, fullest first, at most `top` of them: a key's fill is the highest
   * used / capacity of its limits (1 when it is used up or in debt). Keys whose fills are within
   * one per mille of each other are listed in no particular order among themselves.
   */
  readonly top: readonly KeyStats[];
  /** Keys that became live since the previous emission (none in the first). */
  readonly appeared: readonly string[];
  /** Keys whose actor was stopped, idle, since the previous emission. */
  readonly evicted: readonly string[];
}

/** SystemStats is every limiter's {@link LimiterStats}, as `system.stats$()` reports them. */
export interface SystemStats {
  /** The runtime clock's instant of the emission. */
  readonly at: Ms;
  /** One entry per limiter of the system, in the order they were made. */
  readonly limiters: readonly LimiterStats[];
}

/** What a whole-limiter stream reads of a limiter (a Limiter is one). */
export interface LimiterSource {
  readonly name: string;
  /** The live key actors, by key: a read of a key not there would make it live. */
  readonly actors: ReadonlyMap<string, unknown>;
  /** The policy in force: its limits, in order. */
  readonly policy: {
    readonly limits: readonly { readonly name: string; readonly dimension: string }[];
  };
  stats(key: string): Promise<KeyStats>;
}

/** What a stream needs of the system. */
export interface StatsCore {
  readonly events: TollgateEmitter;
  readonly clock: Clock;
  /** Calls `listener` when the system closes; returns what stops that. */
  onClose(listener: () => void): () => void;
}

/** Events that tell a key is live, though its reading did not change. */
const LIVENESS = ['refused', 'paused'] as const;
const DEFAULT_TOP = 10;
const MAX_TOP = 1000;

/** readLimiterStatsOptions checks the options of a whole-limiter or whole-system stream. */
export function readLimiterStatsOptions(
  options: LimiterStatsOptions | undefined,
  where: string,
): { top: number; everyMs: Ms | null } {
  if (options === undefined) return { top: DEFAULT_TOP, everyMs: null };
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidArgumentError({
      where,
      path: 'options',
      value: options,
      expected: "an object { top?, every? }, e.g. { top: 5, every: '1s' }",
    });
  }
  const top = options.top === undefined ? DEFAULT_TOP : options.top;
  if (typeof top !== 'number' || !Number.isInteger(top) || top < 0 || top > MAX_TOP) {
    throw new InvalidArgumentError({
      where,
      path: 'options.top',
      value: top,
      expected: `a whole number of keys from 0 to ${MAX_TOP}`,
    });
  }
  const everyMs =
    options.every === undefined
      ? null
      : readDuration(options.every, { where, path: 'options.every' });
  return { top, everyMs };
}

/** The stats of a limiter not read yet. */
function emptyStats(limiter: string, at: Ms): LimiterStats {
  const none: readonly string[] = [];
  return {
    limiter,
    at,
    keys: 0,
    queued: 0,
    inFlight: 0,
    limits: [],
    top: [],
    appeared: none,
    evicted: none,
  };
}

/**
 * watchLimiter keeps `table` up to date for `limiter` and calls `emit` after each burst of
 * changes; returns what stops it. Reads of one burst go out together; the next burst's wait until
 * they are in, so emissions follow each other in the order of the reads.
 */
function watchLimiter(
  limiter: LimiterSource,
  core: StatsCore,
  everyMs: Ms | null,
  table: StatsTable,
  emit: () => void,
  fail: (e: unknown) => void,
): () => void {
  const { events, clock } = core;
  const unwatch = events.watch();
  let dirty = new Set<string>();
  let scheduled = false;
  let reading = false;
  let stopped = false;
  let first = true;

  const flush = (): void => {
    scheduled = false;
    if (stopped || reading) return;
    // A new policy (setLimits): every live key is read again, under it.
    if (table.usePolicy(limiter.policy.limits))
      for (const key of limiter.actors.keys()) dirty.add(key);
    const keys = dirty;
    dirty = new Set();
    const reads: Promise<KeyStats>[] = [];
    for (const key of keys) {
      // A key evicted since its event is not read: a read would make it live again.
      if (limiter.actors.has(key)) reads.push(limiter.stats(key));
      else table.delete(key);
    }
    reading = true;
    Promise.all(reads).then(
      (all) => {
        reading = false;
        if (stopped) return;
        for (const s of all) {
          // Evicted while it was read: its eviction came after, and stands.
          if (limiter.actors.has(s.key)) table.set(s);
          else table.delete(s.key);
        }
        if (keys.size > 0 || first) emit();
        first = false;
        if (dirty.size > 0) schedule();
      },
      (e: unknown) => {
        reading = false;
        if (!stopped) fail(e);
      },
    );
  };
  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(flush);
  };
  const onChange = (e: { limiter: string; key: string }): void => {
    if (e.limiter !== limiter.name) return;
    dirty.add(e.key);
    schedule();
  };
  const onEvicted = (e: { limiter: string; key: string }): void => {
    if (e.limiter !== limiter.name) return;
    dirty.add(e.key); // read as not live: deleted at the flush, in order with its other changes
    schedule();
  };

  table.usePolicy(limiter.policy.limits);
  for (const key of limiter.actors.keys()) dirty.add(key);
  schedule(); // the first emission, even with no live key
  for (const t of CHANGES) events.on(t, onChange);
  // A refusal or a pause changes no reading, but may be all a new key's actor ever did.
  for (const t of LIVENESS) events.on(t, onChange);
  events.on('evicted', onEvicted);
  let tick: TimerHandle | null = null;
  if (everyMs !== null) {
    const arm = clock.setHousekeepingTimeout ?? clock.setTimeout;
    const ticked = (): void => {
      for (const key of limiter.actors.keys()) dirty.add(key);
      schedule();
      tick = arm.call(clock, ticked, everyMs);
    };
    tick = arm.call(clock, ticked, everyMs);
  }
  return () => {
    stopped = true;
    for (const t of CHANGES) events.off(t, onChange);
    for (const t of LIVENESS) events.off(t, onChange);
    events.off('evicted', onEvicted);
    if (tick !== null) clock.clearTimeout(tick);
    unwatch();
  };
}

/**
 * limiterStats$ builds the observable behind `limiter.stats$()`: one value on subscribe, then one
 * after each burst of changes of its keys (and each tick of `every`). A read that fails errors it.
 */
export function limiterStats$(
  limiter: LimiterSource,
  core: StatsCore,
  options: { top: number; everyMs: Ms | null },
): Observable<LimiterStats> {
  return new RxObservable<LimiterStats>((subscriber) => {
    const table = new StatsTable();
    // The system closed: no key is live any more, and none will be; the stream completes.
    const unClose = core.onClose(() => subscriber.complete());
    if (subscriber.closed) return unClose;
    const stop = watchLimiter(
      limiter,
      core,
      options.everyMs,
      table,
      () => subscriber.next(table.emit(limiter.name, core.clock.now(), options.top)),
      (e) => subscriber.error(e),
    );
    return () => {
      unClose();
      stop();
    };
  });
}

/**
 * systemStats$ builds the observable behind `system.stats$()`: every limiter's stats, one value
 * after each burst of changes of any (coalesced per microtask). `limiters()` gives the system's
 * limiters now: one made after the subscription joins at its first event.
 */
export function systemStats$(
  limiters: () => Iterable<LimiterSource>,
  core: StatsCore,
  options: { top: number; everyMs: Ms | null },
): Observable<SystemStats> {
  return new RxObservable<SystemStats>((subscriber) => {
    const latest = new Map<string, LimiterStats>();
    const stops = new Map<string, () => void>();
    let scheduled = false;
    let stopped = false;
    const emit = (): void => {
      scheduled = false;
      if (stopped) return;
      subscriber.next({ at: core.clock.now(), limiters: [...latest.values()] });
    };
    const join = (limiter: LimiterSource): void => {
      if (stops.has(limiter.name)) return;
      const table = new StatsTable();
      latest.set(limiter.name, emptyStats(limiter.name, core.clock.now())); // its place, in order
      stops.set(
        limiter.name,
        watchLimiter(
          limiter,
          core,
          options.everyMs,
          table,
          () => {
            latest.set(limiter.name, table.emit(limiter.name, core.clock.now(), options.top));
            if (!scheduled) {
              scheduled = true;
              queueMicrotask(emit);
            }
          },
          (e) => subscriber.error(e),
        ),
      );
    };
    for (const l of limiters()) join(l);
    const onNew = (e: { limiter: string }): void => {
      if (stops.has(e.limiter)) return;
      for (const l of limiters()) if (l.name === e.limiter) join(l);
    };
    for (const t of CHANGES) core.events.on(t, onNew);
    if (stops.size === 0) queueMicrotask(emit); // a system with no limiter yet says so
    const unClose = core.onClose(() => subscriber.complete());
    return () => {
      unClose();
      stopped = true;
      for (const t of CHANGES) core.events.off(t, onNew);
      for (const stop of stops.values()) stop();
    };
  });
}
