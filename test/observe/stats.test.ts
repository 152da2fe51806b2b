/**
 * keyStats$ is written out by hand (#11: rxjs's operators cost ~50 modules at import). The
 * reference is the operator pipeline it replaced, kept here: for random runs of acquires,
 * refusals, time steps, microtask and loop turns, unsubscribing and closing, on a virtual clock,
 * both must emit the same values at the same virtual times, and end the same way.
 */
import fc from 'fast-check';
import {
  Observable,
  asapScheduler,
  auditTime,
  filter,
  from,
  fromEvent,
  merge,
  startWith,
  switchMap,
} from 'rxjs';
import { describe, expect, it } from 'vitest';
import {
  VirtualClock,
  createLimiterSystem,
  type KeyStats,
  type Grant,
  type Reservation,
  type StatsOptions,
} from '../../src/index.js';
import { parseDuration } from '../../src/limiter/units.js';
import { keyStats$ } from '../../src/observe/stats.js';

/**
 * The events after which a key's stats read otherwise, written here and not imported, so that an
 * event the implementation forgets is caught: the random runs below produce each of them. The
 * others change nothing a reading shows: a refusal costs nothing, a pause shows in no reading, a
 * store error leaves the state as it was, an eviction keeps it in the store.
 */
const CHANGES = [
  'granted',
  'queued',
  'timeout',
  'aborted',
  'settled',
  'released',
  'cancelled',
  'reset',
  'charged',
] as const;

type StatsSource = Parameters<typeof keyStats$>[0];
type Core = Parameters<typeof keyStats$>[1];

/** keyStats$ as it was: the same facts, through rxjs operators. */
function pipelineStats$(
  limiter: StatsSource,
  core: Core,
  key: string,
  options?: StatsOptions,
): Observable<KeyStats> {
  const everyMs = options?.every === undefined ? null : parseDuration(options.every, 'every');
  const changes = merge(
    ...CHANGES.map(
      (t) => fromEvent(core.events, t) as Observable<{ limiter: string; key: string }>,
    ),
  ).pipe(filter((e) => e.limiter === limiter.name && e.key === key));
  const ticks =
    everyMs === null
      ? []
      : [
          new Observable<null>((subscriber) => {
            const { clock } = core;
            const arm = clock.setHousekeepingTimeout ?? clock.setTimeout;
            const tick = (): void => {
              subscriber.next(null);
              handle = arm.call(clock, tick, everyMs);
            };
            let handle = arm.call(clock, tick, everyMs);
            return () => clock.clearTimeout(handle);
          }),
        ];
  return new Observable<KeyStats>((subscriber) => {
    const unwatch = core.events.watch();
    const sub = merge(changes, ...ticks)
      .pipe(
        startWith(null),
        auditTime(0, asapScheduler),
        switchMap(() => from(limiter.stats(key))),
      )
      .subscribe(subscriber);
    return () => {
      sub.unsubscribe();
      unwatch();
    };
  });
}

type Op =
  | { readonly t: 'acquire'; readonly key: string; readonly n: number; readonly timeout: number }
  | { readonly t: 'tryAcquire'; readonly key: string }
  | { readonly t: 'hold'; readonly key: string }
  | { readonly t: 'settle'; readonly to: number }
  | { readonly t: 'release' }
  | { readonly t: 'reserve'; readonly key: string }
  | { readonly t: 'cancel' }
  | { readonly t: 'abortable'; readonly key: string }
  | { readonly t: 'abort' }
  | { readonly t: 'reset'; readonly key: string }
  | { readonly t: 'feedback'; readonly key: string; readonly remaining: number }
  | { readonly t: 'advance'; readonly ms: number }
  | { readonly t: 'microtasks'; readonly n: number }
  | { readonly t: 'loop' }
  | { readonly t: 'unsubscribe' }
  | { readonly t: 'close' };

const key = fc.constantFrom('k', 'k', 'other');
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      t: fc.constant('acquire' as const),
      key,
      n: fc.integer({ min: 1, max: 4 }),
      timeout: fc.constantFrom(2000, 350),
    }),
    weight: 6,
  },
  { arbitrary: fc.record({ t: fc.constant('tryAcquire' as const), key }), weight: 3 },
  { arbitrary: fc.record({ t: fc.constant('hold' as const), key }), weight: 3 },
  {
    arbitrary: fc.record({ t: fc.constant('settle' as const), to: fc.integer({ min: 0, max: 3 }) }),
    weight: 3,
  },
  { arbitrary: fc.constant({ t: 'release' as const }), weight: 2 },
  { arbitrary: fc.record({ t: fc.constant('reserve' as const), key }), weight: 2 },
  { arbitrary: fc.constant({ t: 'cancel' as const }), weight: 2 },
  { arbitrary: fc.record({ t: fc.constant('abortable' as const), key }), weight: 2 },
  { arbitrary: fc.constant({ t: 'abort' as const }), weight: 2 },
  { arbitrary: fc.record({ t: fc.constant('reset' as const), key }), weight: 1 },
  {
    arbitrary: fc.record({
      t: fc.constant('feedback' as const),
      key,
      remaining: fc.integer({ min: 0, max: 3 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      t: fc.constant('advance' as const),
      ms: fc.constantFrom(0, 1, 5, 100, 1000, 2500),
    }),
    weight: 5,
  },
  {
    arbitrary: fc.record({
      t: fc.constant('microtasks' as const),
      n: fc.integer({ min: 1, max: 6 }),
    }),
    weight: 4,
  },
  { arbitrary: fc.constant({ t: 'loop' as const }), weight: 3 },
  { arbitrary: fc.constant({ t: 'unsubscribe' as const }), weight: 1 },
  { arbitrary: fc.constant({ t: 'close' as const }), weight: 1 },
);

/** What a subscriber to `make`'s observable of key 'k' sees over `ops`, stamped with virtual time. */
async function observe(
  make: typeof keyStats$,
  ops: readonly Op[],
  every: boolean,
): Promise<string[]> {
  const clock = new VirtualClock(0);
  const system = createLimiterSystem({ clock });
  const limiter = system.limiter('api', {
    limits: [{ limit: 5, interval: '1s' }],
    concurrency: 3,
  });
  const reservations: Reservation[] = [];
  const held: { grant: Grant; settled: boolean }[] = [];
  const controllers: AbortController[] = [];
  const ignore = (): void => {};
  const seen: string[] = [];
  const sub = make(
    limiter,
    { events: system.events, clock },
    'k',
    every ? { every: '300ms' } : undefined,
  ).subscribe({
    next: (s) =>
      seen.push(
        `${clock.now()}: ${s.limits[0]!.remaining} left, ${s.inFlight} in flight, ${s.queued} queued`,
      ),
    error: (e: unknown) => seen.push(`${clock.now()}: error ${(e as Error).name}`),
    complete: () => seen.push(`${clock.now()}: complete`),
  });
  let closed = false;
  for (const op of ops) {
    switch (op.t) {
      case 'acquire':
        if (closed) break;
        for (let i = 0; i < op.n; i++) {
          limiter.acquire(op.key, { timeout: op.timeout }).then(
            (g) => g.release(),
            () => {},
          );
        }
        break;
      case 'tryAcquire':
        if (!closed) limiter.tryAcquire(op.key).then((r) => r.ok && r.grant.release(), ignore);
        break;
      case 'hold':
        if (closed) break;
        limiter.acquire(op.key, { cost: { requests: 2 }, timeout: 2000 }).then((g) => {
          held.push({ grant: g, settled: false });
        }, ignore);
        break;
      case 'settle': {
        const h = held.find((x) => !x.settled);
        if (h === undefined) break;
        h.settled = true;
        h.grant.settle({ requests: op.to }).catch(ignore);
        break;
      }
      case 'release':
        held.shift()?.grant.release();
        break;
      case 'reserve':
        if (closed) break;
        reservations.push(limiter.reserve(op.key));
        reservations.at(-1)!.granted.catch(ignore);
        break;
      case 'cancel':
        reservations.shift()?.cancel().catch(ignore);
        break;
      case 'abortable': {
        if (closed) break;
        const c = new AbortController();
        controllers.push(c);
        limiter.acquire(op.key, { signal: c.signal }).then((g) => g.release(), ignore);
        break;
      }
      case 'abort':
        controllers.shift()?.abort();
        break;
      case 'reset':
        if (!closed) limiter.reset(op.key).catch(ignore);
        break;
      case 'feedback':
        if (closed) break;
        limiter
          .feedback(op.key, {
            limits: [{ dimension: 'requests', remaining: op.remaining, resetMs: null }],
          })
          .catch(ignore);
        break;
      case 'advance':
        await clock.increment(op.ms);
        break;
      case 'microtasks':
        for (let i = 0; i < op.n; i++) await Promise.resolve();
        break;
      case 'loop':
        await new Promise((r) => setImmediate(r));
        break;
      case 'unsubscribe':
        sub.unsubscribe();
        seen.push(`${clock.now()}: unsubscribed`);
        break;
      case 'close':
        if (!closed) await system.close();
        closed = true;
        break;
    }
  }
  for (const c of controllers) c.abort();
  for (const h of held) h.grant.release();
  for (const r of reservations) r.cancel().catch(ignore);
  await clock.increment(5000);
  sub.unsubscribe();
  if (!closed) await system.close();
  return seen;
}

describe('stats$ written out', () => {
  it('emits what the rxjs operator pipeline emitted, at the same virtual times', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 40 }), fc.boolean(), async (ops, every) => {
        const expected = await observe(pipelineStats$, ops, every);
        expect(await observe(keyStats$, ops, every)).toEqual(expected);
      }),
      { numRuns: 1000 },
    );
  }, 60_000);

  it('emits after a settle alone, and after a charge by feedback alone', async () => {
    const clock = new VirtualClock(0);
    const system = createLimiterSystem({ clock });
    const limiter = system.limiter('api', { limits: [{ limit: 5, interval: '1m' }] });
    const remaining: number[] = [];
    const sub = limiter.stats$('k').subscribe((s) => remaining.push(s.limits[0]!.remaining));
    await clock.increment(1);
    const g = await limiter.acquire('k', { cost: { requests: 3 } });
    await clock.increment(1);
    expect(remaining).toEqual([5, 2]);
    await g.settle({ requests: 1 });
    await clock.increment(1);
    expect(remaining).toEqual([5, 2, 4]);
    await limiter.feedback('k', {
      limits: [{ dimension: 'requests', remaining: 1, resetMs: null }],
    });
    await clock.increment(1);
    expect(remaining).toEqual([5, 2, 4, 1]);
    sub.unsubscribe();
    await system.close();
  });
});
