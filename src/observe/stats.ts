/**
 * stats$: a key's stats as an RxJS Observable, built from the system's events. Cold: nothing is
 * listened to, read or computed until someone subscribes, and all of it stops on unsubscribe.
 */
// rxjs through its exported deep path ("./internal/*"), not 'rxjs': under Node, 'rxjs' is its
// CommonJS index, which loads all of rxjs (some 220 modules) to export them. The deep path
// resolves, under the same conditions, to the very module that index re-exports, so an
// Observable made here is `instanceof` the one users import from 'rxjs', and their operators
// work on it. The type comes from 'rxjs', so the declarations this package ships name only it.
import type { Observable } from 'rxjs';
import { Observable as RxObservable } from 'rxjs/internal/Observable';
import type { Clock, TimerHandle } from '../clock.js';
import type { KeyReading } from '../store.js';
import type { Duration } from '../limiter/types.js';
import { onLimiter } from '../describe.js';
import { InvalidArgumentError } from '../errors.js';
import { readDuration } from '../limiter/units.js';
import type { TollgateEmitter, TollgateEventName } from './events.js';

/** KeyStats is one key's state as `stats()` and `stats$()` report it. */
export interface KeyStats extends KeyReading {
  readonly limiter: string;
  readonly key: string;
  /** Waiters queued (or being decided) for the key. */
  readonly queued: number;
}

/** Options of `stats$`. */
export interface StatsOptions {
  /** Also emit on this period, to show refill over time. Minimum 1 ms. @default only on changes */
  readonly every?: Duration;
}

/** @internal the events that change what a key's stats read. */
export const CHANGES = [
  'granted',
  'queued',
  'timeout',
  'aborted',
  'settled',
  'released',
  'cancelled',
  'reset',
  'charged',
] as const satisfies readonly TollgateEventName[];

interface StatsSource {
  readonly name: string;
  stats(key: string): Promise<KeyStats>;
}

/**
 * keyStats$ builds the observable behind `limiter.stats$(key)`: a read on subscribe, then one
 * after each burst of changes of the key (or tick of `every`): the first change of a burst
 * schedules a read for the next microtask, and the changes until then join it. A read that a
 * newer one overtakes is dropped, so values arrive in the order of the reads, each newer than
 * the last; a read that fails errors the observable. Unsubscribing stops the listening, the
 * ticks and any read in flight.
 *
 * This is `merge(changes, ticks).pipe(startWith(null), auditTime(0, asapScheduler),
 * switchMap(() => from(limiter.stats(key))))` written out: those operators would load some 50
 * more of rxjs's modules at import (#11). test/observe/stats.test.ts keeps that pipeline as the
 * reference the two must agree with.
 */
export function keyStats$(
  limiter: StatsSource,
  core: { readonly events: TollgateEmitter; readonly clock: Clock },
  key: string,
  options?: StatsOptions,
): Observable<KeyStats> {
  if (
    options !== undefined &&
    (typeof options !== 'object' || options === null || Array.isArray(options))
  ) {
    throw new InvalidArgumentError({
      where: onLimiter(limiter.name, 'stats$', key),
      path: 'options',
      value: options,
      expected: "an object { every? }, e.g. { every: '1s' }",
    });
  }
  const everyMs =
    options?.every === undefined
      ? null
      : readDuration(options.every, {
          where: onLimiter(limiter.name, 'stats$', key),
          path: 'options.every',
        });
  const { events, clock } = core;
  return new RxObservable<KeyStats>((subscriber) => {
    const unwatch = events.watch(); // facts are built only while somebody watches
    let readScheduled = false;
    /** The number of the latest read; the result of any other is dropped. */
    let latest = 0;
    const read = (): void => {
      readScheduled = false;
      if (subscriber.closed) return;
      const n = ++latest;
      let reading: Promise<KeyStats>;
      try {
        reading = limiter.stats(key);
      } catch (e) {
        subscriber.error(e);
        return;
      }
      reading.then(
        (stats) => {
          if (n === latest) subscriber.next(stats);
        },
        (e: unknown) => {
          if (n === latest) subscriber.error(e);
        },
      );
    };
    const changed = (): void => {
      if (readScheduled) return;
      readScheduled = true;
      queueMicrotask(read); // one read per burst of changes
    };
    const onEvent = (e: { limiter: string; key: string }): void => {
      if (e.limiter === limiter.name && e.key === key) changed();
    };

    changed(); // the read on subscribe
    for (const t of CHANGES) events.on(t, onEvent);
    let tick: TimerHandle | null = null;
    if (everyMs !== null) {
      const arm = clock.setHousekeepingTimeout ?? clock.setTimeout; // on the injected clock
      const ticked = (): void => {
        changed();
        tick = arm.call(clock, ticked, everyMs);
      };
      tick = arm.call(clock, ticked, everyMs);
    }

    return () => {
      for (const t of CHANGES) events.off(t, onEvent);
      if (tick !== null) clock.clearTimeout(tick);
      latest = -1; // drops the read in flight, if any
      unwatch();
    };
  });
}
