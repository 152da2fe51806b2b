/**
 * stats$: a key's stats as an RxJS Observable, built from the system's events. Cold: nothing is
 * listened to, read or computed until someone subscribes, and all of it stops on unsubscribe.
 */
// rxjs values come through its exported deep paths ("./internal/*"), not 'rxjs': under Node,
// 'rxjs' is its CommonJS index, which loads all of rxjs (some 220 modules) to export them. The
// deep paths resolve, under the same conditions, to the very modules that index re-exports, so
// an Observable made here is `instanceof` the one users import from 'rxjs'. Types still come
// from 'rxjs', so the declarations this package ships name only 'rxjs'.
import type { Observable } from 'rxjs';
import { Observable as RxObservable } from 'rxjs/internal/Observable';
import { asapScheduler } from 'rxjs/internal/scheduler/asap';
import { auditTime } from 'rxjs/internal/operators/auditTime';
import { filter } from 'rxjs/internal/operators/filter';
import { startWith } from 'rxjs/internal/operators/startWith';
import { switchMap } from 'rxjs/internal/operators/switchMap';
import { from } from 'rxjs/internal/observable/from';
import { fromEvent } from 'rxjs/internal/observable/fromEvent';
import { merge } from 'rxjs/internal/observable/merge';
import type { Clock, TimerHandle } from '../clock.js';
import type { KeyReading } from '../store.js';
import type { Duration } from '../limiter/types.js';
import { parseDuration } from '../limiter/units.js';
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

const CHANGES: readonly TollgateEventName[] = [
  'granted',
  'queued',
  'timeout',
  'aborted',
  'settled',
  'released',
  'cancelled',
  'reset',
];

interface StatsSource {
  readonly name: string;
  stats(key: string): Promise<KeyStats>;
}

/** keyStats$ builds the observable behind `limiter.stats$(key)`. */
export function keyStats$(
  limiter: StatsSource,
  core: { readonly events: TollgateEmitter; readonly clock: Clock },
  key: string,
  options?: StatsOptions,
): Observable<KeyStats> {
  const everyMs =
    options?.every === undefined ? null : parseDuration(options.every, 'stats$ every');
  const ofThisKey = (e: { limiter: string; key: string }): boolean =>
    e.limiter === limiter.name && e.key === key;
  const changes = merge(
    ...CHANGES.map(
      (t) => fromEvent(core.events, t) as Observable<{ limiter: string; key: string }>,
    ),
  ).pipe(filter(ofThisKey));
  const ticks = everyMs === null ? [] : [clockTicks(core.clock, everyMs)];
  return new RxObservable<KeyStats>((subscriber) => {
    const unwatch = core.events.watch(); // facts are built only while somebody watches
    const sub = merge(changes, ...ticks)
      .pipe(
        startWith(null),
        auditTime(0, asapScheduler), // one read per burst of changes
        switchMap(() => from(limiter.stats(key))),
      )
      .subscribe(subscriber);
    return () => {
      sub.unsubscribe();
      unwatch();
    };
  });
}

/** An observable that emits every `ms` on the injected clock (virtual in tests). */
function clockTicks(clock: Clock, ms: number): Observable<null> {
  return new RxObservable<null>((subscriber) => {
    let handle: TimerHandle | null = null;
    const arm = clock.setHousekeepingTimeout ?? clock.setTimeout;
    const tick = (): void => {
      subscriber.next(null);
      handle = arm.call(clock, tick, ms);
    };
    handle = arm.call(clock, tick, ms);
    return () => {
      if (handle !== null) clock.clearTimeout(handle);
    };
  });
}
