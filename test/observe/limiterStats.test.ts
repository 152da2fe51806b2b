/**
 * limiter.stats$() and system.stats$() on virtual time: the sums are the sums of the live keys'
 * own stats after any run of random operations (grants, holds, settles, tries, time, evictions),
 * the top keys are the fullest, the keys that appeared and were evicted add up to the live set,
 * and one change reads one key however many are live.
 */
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import {
  InvalidArgumentError,
  type Grant,
  type KeyStats,
  type LimiterStats,
  type SystemStats,
} from '../../src/index.js';
import { virtualSystem } from '../actors/support.js';
import { RUNS } from '../props/schedule.js';

type Op =
  | { readonly t: 'acquire'; readonly key: string; readonly n: number }
  | { readonly t: 'hold'; readonly key: string }
  | { readonly t: 'release' }
  | { readonly t: 'settle'; readonly to: number }
  | { readonly t: 'try'; readonly key: string }
  | { readonly t: 'advance'; readonly ms: number };

const keyArb = fc.constantFrom('a', 'b', 'c', 'd', 'e');
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      t: fc.constant('acquire' as const),
      key: keyArb,
      n: fc.integer({ min: 1, max: 3 }),
    }),
    weight: 4,
  },
  { arbitrary: fc.record({ t: fc.constant('hold' as const), key: keyArb }), weight: 3 },
  { arbitrary: fc.constant({ t: 'release' as const }), weight: 2 },
  {
    arbitrary: fc.record({ t: fc.constant('settle' as const), to: fc.integer({ min: 0, max: 4 }) }),
    weight: 2,
  },
  { arbitrary: fc.record({ t: fc.constant('try' as const), key: keyArb }), weight: 2 },
  {
    arbitrary: fc.record({
      t: fc.constant('advance' as const),
      ms: fc.constantFrom(0, 10, 600, 1500),
    }),
    weight: 3,
  },
);

/** A key's fill as the stream defines it. */
const fill = (s: KeyStats) =>
  Math.min(1, Math.max(0, ...s.limits.map((l) => (l.capacity - l.remaining) / l.capacity)));

describe('limiter.stats$()', () => {
  it('sums exactly the live keys’ own stats, lists the fullest, and tracks the live set', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 30 }), async (ops) => {
        // Fixed windows of an hour: nothing refills during a run, so a reading stays true until
        // an event changes it; idle keys are evicted after 1 s.
        const { system, clock } = virtualSystem({ idleTimeout: '1s' });
        const limiter = system.limiter('api', {
          algorithm: 'fixed-window',
          limits: [
            { limit: 6, interval: '1h', name: 'rph' },
            { limit: 9, interval: '1h', name: 'wide' },
          ],
          concurrency: 2,
        });
        const seen: LimiterStats[] = [];
        const sub = limiter.stats$({ top: 2 }).subscribe((s) => seen.push(s));
        const held: Grant[] = [];
        const settled = new Set<Grant>();
        const check = async () => {
          await clock.increment(0);
          const last = seen.at(-1)!;
          const live = [...limiter.actors.keys()];
          const own = await Promise.all(live.map((k) => limiter.stats(k)));
          await clock.increment(0); // the reads are events of nobody: no new emission
          expect(seen.at(-1)).toBe(last);
          expect(last.keys).toBe(live.length);
          expect(last.queued).toBe(own.reduce((t, s) => t + s.queued, 0));
          expect(last.inFlight).toBe(own.reduce((t, s) => t + s.inFlight, 0));
          expect(last.limits.map((l) => l.used)).toEqual(
            [0, 1].map((i) =>
              own.reduce((t, s) => t + s.limits[i]!.capacity - s.limits[i]!.remaining, 0),
            ),
          );
          const fills = own.map(fill).sort((x, y) => y - x);
          expect(last.top.map(fill)).toEqual(fills.slice(0, 2));
          // Every key that appeared and was not evicted since the first emission is live.
          const appeared = new Set<string>();
          for (const s of seen.slice(1)) {
            for (const k of s.appeared) appeared.add(k);
            for (const k of s.evicted) appeared.delete(k);
          }
          for (const k of appeared) expect(live).toContain(k);
        };
        for (const op of ops) {
          switch (op.t) {
            case 'acquire':
              for (let i = 0; i < op.n; i++) {
                limiter.acquire(op.key, { timeout: 1000 }).then(
                  (g) => g.release(),
                  () => {},
                );
              }
              break;
            case 'hold':
              limiter.acquire(op.key, { cost: { requests: 2 }, timeout: 1000 }).then(
                (g) => held.push(g),
                () => {},
              );
              break;
            case 'release':
              held.shift()?.release();
              break;
            case 'settle': {
              const g = held.find((h) => !settled.has(h));
              if (g === undefined) break;
              settled.add(g);
              g.settle({ requests: op.to }).catch(() => {});
              break;
            }
            case 'try':
              limiter.tryAcquire(op.key).then(
                (r) => r.ok && r.grant.release(),
                () => {},
              );
              break;
            case 'advance':
              await clock.increment(op.ms);
              break;
          }
          await check();
        }
        for (const g of held) g.release();
        sub.unsubscribe();
      }),
      { numRuns: Math.ceil(RUNS.numRuns / 5) },
    );
  });

  it('lists the keys that appear and are evicted, and the fullest first', async () => {
    const { system, clock } = virtualSystem({ idleTimeout: '1s' });
    const limiter = system.limiter('api', { limits: [{ limit: 10, interval: '1h' }] });
    await limiter.acquire('old', { cost: { requests: 1 } });
    const seen: LimiterStats[] = [];
    const sub = limiter.stats$({ top: 2 }).subscribe((s) => seen.push(s));
    await clock.increment(0);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ keys: 1, appeared: [], evicted: [], limits: [{ used: 1 }] });
    await limiter.acquire('x', { cost: { requests: 7 } });
    await limiter.acquire('y', { cost: { requests: 3 } });
    await clock.increment(0);
    const last = seen.at(-1)!;
    expect(seen.slice(1).flatMap((s) => s.appeared)).toEqual(['x', 'y']);
    expect(last.top.map((s) => s.key)).toEqual(['x', 'y']);
    expect(last).toMatchObject({ keys: 3, limits: [{ name: 'requests/1h', used: 11 }] });
    await clock.increment(1500); // every key idle: evicted
    const after = seen.at(-1)!;
    expect([...after.evicted].sort()).toEqual(['old', 'x', 'y']);
    expect(after).toMatchObject({
      keys: 0,
      queued: 0,
      inFlight: 0,
      limits: [{ used: 0 }],
      top: [],
    });
    sub.unsubscribe();
  });

  it('reads one key per change of one key, however many keys are live', async () => {
    const { system, clock } = virtualSystem({ idleTimeout: '1h' });
    const limiter = system.limiter('api', { limits: [{ limit: 10, interval: '1h' }] });
    for (let i = 0; i < 2_000; i++) limiter.tryAcquire(`k${i}`);
    await clock.increment(0);
    const reads = vi.spyOn(limiter, 'stats');
    const stream = limiter.stats$();
    await limiter.acquire('k1');
    await clock.increment(0);
    expect(reads).not.toHaveBeenCalled(); // nothing is read before a subscription
    const seen: LimiterStats[] = [];
    const sub = stream.subscribe((s) => seen.push(s));
    await clock.increment(0);
    expect(reads).toHaveBeenCalledTimes(2_000); // the subscription reads every live key once
    await limiter.acquire('k7');
    await clock.increment(0);
    expect(reads).toHaveBeenCalledTimes(2_001);
    expect(seen.at(-1)).toMatchObject({ keys: 2_000, limits: [{ used: 2_002 }] });
    sub.unsubscribe();
    await limiter.acquire('k8');
    await clock.increment(0);
    expect(reads).toHaveBeenCalledTimes(2_001); // nothing once unsubscribed
  });

  it('sums under the new policy after setLimits, every live key read again', async () => {
    const { system, clock } = virtualSystem();
    const limiter = system.limiter('llm', {
      limits: [
        { limit: 10, interval: '1h', name: 'rph' },
        { limit: 1000, interval: '1h', name: 'tph', dimension: 'tokens' },
      ],
    });
    await limiter.acquire('a', { cost: { requests: 2, tokens: 100 } });
    await limiter.acquire('b', { cost: { requests: 2, tokens: 100 } });
    const seen: LimiterStats[] = [];
    const sub = limiter.stats$().subscribe((s) => seen.push(s));
    await clock.increment(0);
    expect(seen.at(-1)!.limits.map((l) => [l.name, l.used])).toEqual([
      ['rph', 4],
      ['tph', 200],
    ]);
    // rph goes; tph stays, with its usage, doubled.
    limiter.setLimits({
      limits: [{ limit: 2000, interval: '1h', name: 'tph', dimension: 'tokens' }],
    });
    await limiter.acquire('a', { cost: { tokens: 5 } });
    await clock.increment(0);
    // Every key is read again under the new limits: b, which had no event, too.
    expect(seen.at(-1)!.limits.map((l) => [l.name, l.used])).toEqual([['tph', 205]]);
    sub.unsubscribe();
  });

  it('counts a key whose only event was a refusal, and completes when the system closes', async () => {
    const { system, clock } = virtualSystem();
    const limiter = system.limiter('api', { limits: [{ limit: 1, interval: '1h' }] });
    const seen: LimiterStats[] = [];
    let completed = false;
    const sub = limiter
      .stats$()
      .subscribe({ next: (s) => seen.push(s), complete: () => (completed = true) });
    await clock.increment(0);
    await limiter.tryAcquire('k', { cost: { requests: 2 } }).catch(() => {}); // over capacity: refused up front
    await limiter.acquire('k');
    await limiter.tryAcquire('other'); // granted
    const refused = await limiter.tryAcquire('k'); // a refusal changes nothing, but k is live
    expect(refused.ok).toBe(false);
    await clock.increment(0);
    expect(seen.at(-1)!.keys).toBe(2);
    await system.close();
    expect(completed).toBe(true);
    sub.unsubscribe();
  });

  it('refuses bad options with a typed error', () => {
    const { system } = virtualSystem();
    const limiter = system.limiter('api', { limits: [{ limit: 10, interval: '1h' }] });
    expect(() => limiter.stats$({ top: -1 })).toThrow(
      'tollgate: stats$ on limiter "api": options.top is -1; expected a whole number of keys from 0 to 1000',
    );
    expect(() => limiter.stats$({ every: 'soon' as never })).toThrow(InvalidArgumentError);
    expect(() => system.stats$({ top: 1.5 })).toThrow(
      'tollgate: system.stats$: options.top is 1.5; expected a whole number of keys from 0 to 1000',
    );
  });
});

describe('system.stats$()', () => {
  it('gives every limiter’s stats, and a limiter made after the subscription joins', async () => {
    const { system, clock } = virtualSystem();
    const a = system.limiter('a', { limits: [{ limit: 10, interval: '1h' }] });
    await a.acquire('k', { cost: { requests: 4 } });
    const seen: SystemStats[] = [];
    const sub = system.stats$().subscribe((s) => seen.push(s));
    await clock.increment(0);
    expect(seen.at(-1)!.limiters.map((l) => [l.limiter, l.limits[0]?.used])).toEqual([['a', 4]]);
    const b = system.limiter('b', { limits: [{ limit: 5, interval: '1h' }] });
    await b.acquire('k', { cost: { requests: 2 } });
    await clock.increment(0);
    expect(seen.at(-1)!.limiters.map((l) => [l.limiter, l.limits[0]?.used])).toEqual([
      ['a', 4],
      ['b', 2],
    ]);
    sub.unsubscribe();
  });
});
