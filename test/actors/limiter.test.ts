import { describe, expect, it } from 'vitest';
import type { VirtualClock } from '../../src/index.js';
import {
  AcquireAbortedError,
  AcquireTimeoutError,
  CostExceedsCapacityError,
  GrantStateError,
  InvalidArgumentError,
  LimiterClosedError,
  QueueFullError,
  createLimiterSystem,
  type LimiterSystem,
  type MemoryStore,
} from '../../src/index.js';
import { track, virtualSystem } from './support.js';

let system: LimiterSystem;
let clock: VirtualClock;

function setup(options: { idleTimeout?: number } = {}) {
  ({ system, clock } = virtualSystem(options));
  return system;
}

describe('acquire', () => {
  it('grants up to the limit at once, then waits exactly until the bucket refills', async () => {
    const l = setup().limiter('api', { limits: [{ limit: 2, interval: '1s' }] });
    await l.acquire('k');
    await l.acquire('k');
    const third = track(l.acquire('k'));
    await clock.increment(499);
    expect(third.done).toBe(false);
    await clock.increment(1);
    expect(third.done).toBe(true);
    expect((third.value as { grantedAt: number }).grantedAt).toBe(500);
  });

  it('keeps keys apart', async () => {
    const l = setup().limiter('api', { limits: [{ limit: 1, interval: '1s' }] });
    await l.acquire('a');
    expect((await l.tryAcquire('b')).ok).toBe(true);
    expect((await l.tryAcquire('a')).ok).toBe(false);
  });

  it('admits a request 1.5 s after the last under 1/s (seed: stale counts)', async () => {
    const l = setup().limiter('api', { limits: [{ limit: 1, interval: '1s' }] });
    await l.acquire('k');
    await clock.increment(1500);
    expect((await l.tryAcquire('k')).ok).toBe(true);
  });

  it('rejects a cost above capacity up front and changes nothing', async () => {
    const l = setup().limiter('api', {
      limits: [{ limit: 100, interval: '1m', dimension: 'tokens' }],
    });
    await expect(l.acquire('k', { cost: { tokens: 101 } })).rejects.toBeInstanceOf(
      CostExceedsCapacityError,
    );
    const s = await l.stats('k');
    expect(s.limits[0]!.remaining).toBe(100);
    expect(s.queued).toBe(0);
  });

  it('rejects bad input with InvalidArgumentError and queues nothing', async () => {
    const l = setup().limiter('api', { limits: [{ limit: 10, interval: '1s' }] });
    const bad: unknown[] = [
      { cost: { requests: -1 } },
      { cost: { requests: 1.5 } },
      { cost: { requests: NaN } },
      { cost: { tokens: 1 } },
      { timeout: -5 },
      { timeout: 'soon' },
      { priority: Infinity },
    ];
    for (const options of bad) {
      await expect(l.acquire('k', options as never)).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    await expect(l.acquire(42 as never)).rejects.toBeInstanceOf(InvalidArgumentError);
    expect((await l.stats('k')).limits[0]!.remaining).toBe(10);
  });

  it('times out at the exact instant, and a timed-out waiter holds nothing', async () => {
    const l = setup().limiter('api', { limits: [{ limit: 1, interval: '10s' }] });
    await l.acquire('k');
    const late = track(l.acquire('k', { timeout: 300 }));
    await clock.increment(299);
    expect(late.done).toBe(false);
    await clock.increment(1);
    expect(late.error).toBeInstanceOf(AcquireTimeoutError);
    await clock.increment(10_000);
    expect((await l.tryAcquire('k')).ok).toBe(true);
  });

  it('ends an aborted waiter with AcquireAbortedError whose cause is the reason', async () => {
    const l = setup().limiter('api', { limits: [{ limit: 1, interval: '10s' }] });
    await l.acquire('k');
    const ac = new AbortController();
    const p = track(l.acquire('k', { signal: ac.signal }));
    ac.abort('user left');
    await clock.increment(0);
    expect(p.error).toBeInstanceOf(AcquireAbortedError);
    expect((p.error as Error).cause).toBe('user left');
    expect((await l.stats('k')).queued).toBe(0);
  });

  it('rejects at once when the signal is already aborted', async () => {
    const l = setup().limiter('api', { limits: [{ limit: 1, interval: '1s' }] });
    const ac = new AbortController();
    ac.abort(new Error('gone'));
    await expect(l.acquire('k', { signal: ac.signal })).rejects.toBeInstanceOf(AcquireAbortedError);
    expect((await l.tryAcquire('k')).ok).toBe(true);
  });

  it('serves waiters by priority, then arrival', async () => {
    const l = setup().limiter('api', { limits: [{ limit: 1, interval: '1s' }] });
    await l.acquire('k');
    const order: string[] = [];
    const names = [
      ['low-1', 0],
      ['high-1', 5],
      ['low-2', 0],
      ['high-2', 5],
    ] as const;
    const all = names.map(([name, priority]) =>
      l.acquire('k', { priority }).then(() => order.push(name)),
    );
    await clock.increment(4000);
    await Promise.all(all);
    expect(order).toEqual(['high-1', 'high-2', 'low-1', 'low-2']);
  });

  it('does not let small requests starve a large one at the head', async () => {
    const l = setup().limiter('api', {
      limits: [{ limit: 10, interval: '1s', dimension: 'tokens' }],
    });
    await l.acquire('k', { cost: { tokens: 10 } });
    const big = track(l.acquire('k', { cost: { tokens: 10 } }));
    const small = track(l.acquire('k', { cost: { tokens: 1 } }));
    // A try of the same priority does not overtake the queue either.
    expect(await l.tryAcquire('k', { cost: { tokens: 1 } })).toMatchObject({
      ok: false,
      limit: 'queue',
    });
    await clock.increment(999);
    expect(big.done).toBe(false);
    expect(small.done).toBe(false);
    await clock.increment(1);
    expect(big.done).toBe(true);
    expect(small.done).toBe(false);
    await clock.increment(100);
    expect(small.done).toBe(true);
  });

  it('refuses a waiter past maxQueue with QueueFullError', async () => {
    const l = setup().limiter('api', { limits: [{ limit: 1, interval: '1s' }], maxQueue: 1 });
    await l.acquire('k');
    const queued = track(l.acquire('k'));
    await expect(l.acquire('k')).rejects.toBeInstanceOf(QueueFullError);
    await clock.increment(1000);
    expect(queued.done).toBe(true);
  });
});

describe('tryAcquire', () => {
  it('returns a refusal value with retryAfterMs and the refusing limit', async () => {
    const l = setup().limiter('api', {
      limits: [
        { limit: 5, interval: '1s', name: 'rps' },
        { limit: 6, interval: '1m', name: 'rpm' },
      ],
    });
    for (let i = 0; i < 5; i++) await l.acquire('k');
    expect(await l.tryAcquire('k')).toEqual({ ok: false, retryAfterMs: 200, limit: 'rps' });
    await clock.increment(1000);
    await l.acquire('k');
    const r = await l.tryAcquire('k');
    expect(r).toMatchObject({ ok: false, limit: 'rpm' });
  });

  it('leaks nothing when a later limit refuses (seed: multi-bucket leak)', async () => {
    const l = setup().limiter('api', {
      limits: [
        { limit: 10, interval: '1s', name: 'rps' },
        { limit: 3, interval: '1m', name: 'rpm' },
      ],
    });
    for (let i = 0; i < 3; i++) await l.acquire('k');
    for (let i = 0; i < 20; i++) expect((await l.tryAcquire('k')).ok).toBe(false);
    const s = await l.stats('k');
    expect(s.limits.map((x) => x.remaining)).toEqual([7, 0]);
  });
});

describe('grants', () => {
  it('settles down exactly and the refund admits the next request', async () => {
    const l = setup().limiter('llm', {
      limits: [{ limit: 1000, interval: '1m', dimension: 'tokens' }],
    });
    const g = await l.acquire('k', { cost: { tokens: 1000 } });
    expect((await l.tryAcquire('k', { cost: { tokens: 300 } })).ok).toBe(false);
    await g.settle({ tokens: 700 });
    expect((await l.tryAcquire('k', { cost: { tokens: 300 } })).ok).toBe(true);
    expect((await l.stats('k')).limits[0]!.remaining).toBe(0);
  });

  it('settles up into debt, and later requests wait it out', async () => {
    const l = setup().limiter('llm', {
      limits: [{ limit: 600, interval: '1m', dimension: 'tokens' }],
    });
    const g = await l.acquire('k', { cost: { tokens: 100 } });
    await g.settle({ tokens: 700 }); // 100 over capacity: 10 s of refill at 10 tokens/s
    const next = track(l.acquire('k', { cost: { tokens: 10 } }));
    await clock.increment(10_999);
    expect(next.done).toBe(false);
    await clock.increment(1);
    expect(next.done).toBe(true);
  });

  it('refuses a second settle and a cancel after settle with GrantStateError', async () => {
    const l = setup().limiter('llm', {
      limits: [{ limit: 1000, interval: '1m', dimension: 'tokens' }],
    });
    const g = await l.acquire('k', { cost: { tokens: 10 } });
    await g.settle({ tokens: 5 });
    expect(() => g.settle({ tokens: 4 })).toThrow(GrantStateError);
    expect(() => g.cancel()).toThrow(GrantStateError);
  });

  it('cancel gives back the cost and the slot', async () => {
    const l = setup().limiter('api', { limits: [{ limit: 1, interval: '1h' }], concurrency: 1 });
    const g = await l.acquire('k');
    expect((await l.tryAcquire('k')).ok).toBe(false);
    await g.cancel();
    const s = await l.stats('k');
    expect(s.inFlight).toBe(0);
    expect(s.limits[0]!.remaining).toBe(1);
  });

  it('holds a concurrency slot until release, and release wakes the next waiter', async () => {
    const l = setup().limiter('api', { limits: [{ limit: 100, interval: '1s' }], concurrency: 1 });
    const g = await l.acquire('k');
    const next = track(l.acquire('k'));
    await clock.increment(5000);
    expect(next.done).toBe(false);
    g.release();
    g.release(); // idempotent
    await clock.increment(0);
    expect(next.done).toBe(true);
    expect((await l.stats('k')).inFlight).toBe(1);
  });

  it('gives an abandoned slot back when its lease expires, with a released event', async () => {
    const sys = setup();
    const l = sys.limiter('api', {
      limits: [{ limit: 100, interval: '1s' }],
      concurrency: 1,
      leaseTtl: '30s',
    });
    const released: unknown[] = [];
    sys.events.on('released', (e) => released.push(e));
    const g = await l.acquire('k');
    const next = track(l.acquire('k'));
    await clock.increment(29_999);
    expect(next.done).toBe(false);
    await clock.increment(1);
    expect(next.done).toBe(true);
    expect(released).toEqual([{ limiter: 'api', key: 'k', id: g.id, expired: true, at: 30_000 }]);
    expect(g.holdsSlot).toBe(false);
  });

  it('gives a lone abandoned slot back when its lease expires, with nobody waiting', async () => {
    const sys = setup();
    const l = sys.limiter('api', {
      limits: [{ limit: 100, interval: '1s' }],
      concurrency: 1,
      leaseTtl: '30s',
    });
    const released: unknown[] = [];
    sys.events.on('released', (e) => released.push(e));
    const g = await l.acquire('k'); // granted on the fast path; nothing else happens on the key
    await clock.increment(30_000);
    expect(released).toEqual([{ limiter: 'api', key: 'k', id: g.id, expired: true, at: 30_000 }]);
    expect((await l.stats('k')).inFlight).toBe(0);
  });

  it('releases with `using`', async () => {
    const l = setup().limiter('api', { limits: [{ limit: 100, interval: '1s' }], concurrency: 1 });
    {
      using _g = await l.acquire('k');
      expect((await l.stats('k')).inFlight).toBe(1);
    }
    expect((await l.stats('k')).inFlight).toBe(0);
  });
});

describe('run', () => {
  it('acquires, settles from the result and releases', async () => {
    const l = setup().limiter('llm', {
      limits: [{ limit: 1000, interval: '1m', dimension: 'tokens' }],
      concurrency: 2,
    });
    const out = await l.run('k', async () => ({ used: 250 }), {
      cost: { tokens: 800 },
      settle: (r) => ({ tokens: r.used }),
    });
    expect(out.used).toBe(250);
    const s = await l.stats('k');
    expect(s.inFlight).toBe(0);
    expect(s.limits[0]!.remaining).toBe(750);
  });

  it('releases the slot when the call throws, and keeps the estimate booked', async () => {
    const l = setup().limiter('llm', {
      limits: [{ limit: 1000, interval: '1m', dimension: 'tokens' }],
      concurrency: 1,
    });
    await expect(
      l.run('k', () => Promise.reject(new Error('boom')), { cost: { tokens: 100 } }),
    ).rejects.toThrow('boom');
    const s = await l.stats('k');
    expect(s.inFlight).toBe(0);
    expect(s.limits[0]!.remaining).toBe(900);
  });
});

describe('reserve', () => {
  it('estimates the wait from the queue ahead, and cancel gives everything back', async () => {
    const l = setup().limiter('api', { limits: [{ limit: 1, interval: '1s' }] });
    await l.acquire('k');
    const first = l.reserve('k');
    const second = l.reserve('k');
    expect(first.etaMs).toBe(1000);
    expect(second.etaMs).toBe(2000);
    await first.cancel();
    await expect(first.granted).rejects.toBeInstanceOf(AcquireAbortedError);
    await clock.increment(1000);
    const g = await second.granted;
    expect(g.grantedAt).toBe(1000);
    await second.cancel();
    expect((await l.stats('k')).limits[0]!.remaining).toBe(1);
  });
});

describe('messages', () => {
  it('name the call and key of each check, though one place is reused by every call', async () => {
    const l = setup().limiter('llm', {
      limits: [{ limit: 1000, interval: '1m', dimension: 'tokens', name: 'tpm' }],
    });
    const g = await l.acquire('a', { cost: { tokens: 10 }, timeout: '1s' });
    await l.acquire('b', { cost: { tokens: 10 } });
    expect(() => g.settle({ tokens: -1 })).toThrow(
      /^tollgate: settle on limiter "llm", key "a": actual\.tokens is -1;/,
    );
    await expect(l.tryAcquire('c', { priority: NaN })).rejects.toThrow(
      /^tollgate: tryAcquire on limiter "llm", key "c": options\.priority is NaN;/,
    );
    expect(() => g.settle({ tokenz: 1 } as never)).toThrow(
      /^tollgate: settle on limiter "llm", key "a": actual\.tokenz names a dimension/,
    );
  });
});

describe('setLimits', () => {
  it('re-decides waiters under the new limits through the mailbox', async () => {
    const l = setup().limiter('api', { limits: [{ limit: 1, interval: '1m', name: 'rpm' }] });
    await l.acquire('k');
    const waiting = track(l.acquire('k'));
    l.setLimits({ limits: [{ limit: 5, interval: '1m', name: 'rpm' }] });
    await clock.increment(0);
    expect(waiting.done).toBe(true);
    expect((await l.stats('k')).limits[0]!.remaining).toBe(3);
  });

  it('rejects a waiter whose cost no longer fits any capacity', async () => {
    const l = setup().limiter('llm', {
      limits: [{ limit: 100, interval: '1m', dimension: 'tokens', name: 'tpm' }],
    });
    await l.acquire('k', { cost: { tokens: 100 } });
    const big = track(l.acquire('k', { cost: { tokens: 80 } }));
    l.setLimits({ limits: [{ limit: 50, interval: '1m', dimension: 'tokens', name: 'tpm' }] });
    await clock.increment(0);
    expect(big.error).toBeInstanceOf(CostExceedsCapacityError);
    expect((big.error as Error).message).toBe(
      'tollgate: acquire on limiter "llm", key "k": options.cost.tokens 80 exceeds capacity 50 of limit "tpm"',
    );
  });

  it('names the call that asked when a queued reservation no longer fits', async () => {
    const l = setup().limiter('llm', {
      limits: [{ limit: 100, interval: '1m', dimension: 'tokens', name: 'tpm' }],
    });
    await l.acquire('k', { cost: { tokens: 100 } });
    const r = l.reserve('k', { cost: { tokens: 80 } });
    const big = track(r.granted);
    l.setLimits({ limits: [{ limit: 50, interval: '1m', dimension: 'tokens', name: 'tpm' }] });
    await clock.increment(0);
    expect((big.error as Error).message).toBe(
      'tollgate: reserve on limiter "llm", key "k": options.cost.tokens 80 exceeds capacity 50 of limit "tpm"',
    );
  });

  it('keeps the old policy when the new one is invalid', async () => {
    const l = setup().limiter('api', { limits: [{ limit: 2, interval: '1s' }] });
    expect(() => l.setLimits({ limits: [{ limit: 0, interval: '1s' }] })).toThrow(
      InvalidArgumentError,
    );
    expect(l.policy.limits[0]!.limit).toBe(2);
  });
});

describe('system', () => {
  it('returns the same limiter for the same name and policy, and refuses another policy', () => {
    const sys = setup();
    const a = sys.limiter('api', { limits: [{ limit: 2, interval: '1s' }] });
    expect(sys.limiter('api', { limits: [{ limit: 2, interval: 1000 }] })).toBe(a);
    expect(() => sys.limiter('api', { limits: [{ limit: 3, interval: '1s' }] })).toThrow(
      InvalidArgumentError,
    );
  });

  it('compares compiled options, and says what differs and what to do (#11)', () => {
    const sys = setup();
    const limits = [{ limit: 2, interval: '1s' as const }];
    const b = sys.limiter('b', {
      limits,
      breaker: { failureThreshold: 3, openFor: '10s', whenOpen: 'wait' },
    });
    // The same breaker, written in another order and with 10000 for '10s'.
    expect(
      sys.limiter('b', {
        limits,
        breaker: { whenOpen: 'wait', openFor: 10_000, failureThreshold: 3 },
      }),
    ).toBe(b);
    expect(() =>
      sys.limiter('b', {
        limits,
        breaker: { failureThreshold: 3, openFor: '30s', whenOpen: 'wait' },
      }),
    ).toThrow(/another breaker; .*fixed at creation: use another name/);
    expect(() =>
      sys.limiter('b', {
        limits: [{ limit: 3, interval: '1s' }],
        breaker: { failureThreshold: 3, openFor: '10s', whenOpen: 'wait' },
      }),
    ).toThrow(/another limits; change limits with limiter\.setLimits/);
    const q = sys.limiter('q', { limits, maxQueue: 5 });
    expect(sys.limiter('q', { limits, maxQueue: 5 })).toBe(q);
    expect(() => sys.limiter('q', { limits, maxQueue: 6, maxPause: '5m' })).toThrow(
      /another maxQueue, maxPause; /,
    );
  });

  it('close rejects every waiter, clears every timer, and refuses later calls', async () => {
    const sys = setup();
    const l = sys.limiter('api', {
      limits: [{ limit: 1, interval: '1h' }],
      concurrency: 5,
      leaseTtl: '1m',
    });
    await l.acquire('k');
    await l.acquire('other'); // holds a leased slot: a lease timer is armed
    const waiters = [track(l.acquire('k')), track(l.acquire('other', { timeout: '1m' }))];
    expect(clock.pendingTimers).toBeGreaterThan(0);
    await sys.close();
    await clock.increment(0);
    for (const w of waiters) expect(w.error).toBeInstanceOf(LimiterClosedError);
    expect(clock.pendingTimers).toBe(0);
    await expect(l.acquire('k')).rejects.toBeInstanceOf(LimiterClosedError);
    await sys.close(); // idempotent
  });

  it('evicts idle key actors and keeps their state in the store', async () => {
    const sys = setup({ idleTimeout: 1000 });
    const l = sys.limiter('api', { limits: [{ limit: 2, interval: '1m' }] });
    const evicted: string[] = [];
    sys.events.on('evicted', (e) => evicted.push(e.key));
    await l.acquire('k');
    expect(sys.liveKeys).toBe(1);
    await clock.increment(2000);
    expect(sys.liveKeys).toBe(0);
    expect(evicted).toEqual(['k']);
    const s = await l.stats('k');
    expect(s.limits[0]!.remaining).toBe(1);
  });

  it('drops dormant keys once back at full capacity, also after the last actor was evicted (#12)', async () => {
    const sys = setup({ idleTimeout: 1000 });
    const l = sys.limiter('api', {
      limits: [{ limit: 2, interval: '1m', algorithm: 'fixed-window' }],
    });
    for (const k of ['a', 'b', 'c']) await l.acquire(k);
    await clock.increment(2000);
    expect(sys.liveKeys).toBe(0);
    expect((sys.store as MemoryStore).size).toBe(3); // dormant: still charged
    // Nobody uses the limiter again: the sweep goes on while the store keeps state, and lets go
    // of it once the window is over.
    await clock.increment(60_000);
    expect((sys.store as MemoryStore).size).toBe(0);
    expect(clock.pendingTimers).toBe(0); // and then stops
  });

  it('sweeps dormant keys when they come back to full capacity, not every half idle period', async () => {
    const sys = setup({ idleTimeout: 1000 });
    const store = sys.store as MemoryStore;
    let sweeps = 0;
    const sweep = store.sweep.bind(store);
    store.sweep = (now) => (sweeps++, sweep(now));
    const l = sys.limiter('api', { limits: [{ limit: 1, interval: '366d' }] });
    await l.acquire('k');
    await clock.increment(2000);
    expect(sys.liveKeys).toBe(0);
    const before = sweeps;
    // A year: one sweep at the instant the key is full again, not one every 500 ms.
    await clock.increment(366 * 86_400_000);
    expect(store.size).toBe(0);
    expect(sweeps - before).toBeLessThanOrEqual(2);
    expect(clock.pendingTimers).toBe(0);
  });
  it('does not carry held concurrency slots into a snapshot (nothing could release them)', async () => {
    const sys = setup();
    const l = sys.limiter('api', { limits: [{ limit: 10, interval: '1m' }], concurrency: 1 });
    await l.acquire('k'); // held, never released
    const restored = createLimiterSystem({
      clock,
      snapshot: JSON.parse(JSON.stringify(sys.snapshot())),
    });
    const r = restored.limiter('api', { limits: [{ limit: 10, interval: '1m' }], concurrency: 1 });
    const s = await r.stats('k');
    expect([s.limits[0]!.remaining, s.inFlight]).toEqual([9, 0]);
    expect((await r.tryAcquire('k')).ok).toBe(true);
    await restored.close();
  });

  it('snapshots to JSON and a restored system keeps its limits', async () => {
    const sys = setup();
    const l = sys.limiter('api', { limits: [{ limit: 2, interval: '1m' }] });
    await l.acquire('k');
    await l.acquire('k');
    const json = JSON.stringify(sys.snapshot());
    const restored = createLimiterSystem({ clock, snapshot: JSON.parse(json) });
    try {
      const l2 = restored.limiter('api', { limits: [{ limit: 2, interval: '1m' }] });
      expect(await l2.tryAcquire('k')).toMatchObject({ ok: false, limit: 'requests/1m' });
      expect((await l2.tryAcquire('fresh')).ok).toBe(true);
    } finally {
      await restored.close();
    }
  });

  it('emits typed events only to listeners', async () => {
    const sys = setup();
    const l = sys.limiter('api', { limits: [{ limit: 1, interval: '1s' }] });
    const seen: string[] = [];
    for (const t of ['granted', 'queued', 'timeout', 'refused'] as const)
      sys.events.on(t, () => seen.push(t));
    await l.acquire('k');
    await l.tryAcquire('k');
    const late = track(l.acquire('k', { timeout: 10 }));
    await clock.increment(10);
    expect(late.error).toBeInstanceOf(AcquireTimeoutError);
    expect(seen).toEqual(['granted', 'refused', 'queued', 'timeout']);
  });
});

describe('stats$', () => {
  it('emits on subscribe and after each change, and stops on unsubscribe', async () => {
    const sys = setup();
    const l = sys.limiter('api', { limits: [{ limit: 3, interval: '1m' }] });
    const seen: number[] = [];
    expect(sys.events.observed.value).toBe(false);
    const sub = l.stats$('k').subscribe((s) => seen.push(s.limits[0]!.remaining));
    expect(sys.events.observed.value).toBe(true);
    await clock.increment(0);
    await l.acquire('k');
    await clock.increment(0);
    await l.acquire('k');
    await clock.increment(0);
    sub.unsubscribe();
    expect(sys.events.observed.value).toBe(false);
    await l.acquire('k');
    await clock.increment(0);
    expect(seen).toEqual([3, 2, 1]);
  });

  it('also emits on the `every` period, showing refill', async () => {
    const sys = setup();
    const l = sys.limiter('api', { limits: [{ limit: 60, interval: '1m' }] });
    for (let i = 0; i < 60; i++) await l.acquire('k');
    const seen: number[] = [];
    const timersBefore = clock.pendingTimers;
    const sub = l.stats$('k', { every: '1s' }).subscribe((s) => seen.push(s.limits[0]!.remaining));
    await clock.increment(0);
    await clock.increment(1000);
    await clock.increment(1000);
    sub.unsubscribe();
    expect(seen).toEqual([0, 1, 2]);
    expect(clock.pendingTimers).toBe(timersBefore);
  });
});

describe('a timeout says where the waiter was (#11)', () => {
  it('names the limiter, the key, and what held it', async () => {
    const sys = setup();
    const l = sys.limiter('api', { limits: [{ limit: 1, interval: '1m' }], concurrency: 5 });
    await l.acquire('user-7');
    const head = track(l.acquire('user-7', { timeout: 100 }));
    const behind = track(l.acquire('user-7', { timeout: 100 }));
    await clock.increment(100);
    expect(head.error).toMatchObject({ code: 'ACQUIRE_TIMEOUT', limiter: 'api', key: 'user-7' });
    expect((head.error as Error).message).toBe(
      'tollgate: acquire on limiter "api", key "user-7", timed out after 100 ms, held by limit "requests/1m"',
    );
    expect(behind.error).toMatchObject({ heldBy: 'queue' });
    expect((behind.error as Error).message).toMatch(/behind the waiters queued ahead of it$/);
    // Timeout 0 is decided once: what refused it is what held it.
    await expect(l.acquire('user-7', { timeout: 0 })).rejects.toMatchObject({
      heldBy: 'requests/1m',
    });
    const slots = sys.limiter('slots', {
      limits: [{ limit: 100, interval: '1s' }],
      concurrency: 1,
    });
    await slots.acquire('k');
    await expect(slots.acquire('k', { timeout: 0 })).rejects.toThrow(/every concurrency slot held/);
  });

  it('names the open breaker a waiter waited on', async () => {
    const sys = setup();
    const l = sys.limiter('brk', {
      limits: [{ limit: 100, interval: '1s' }],
      breaker: { failureThreshold: 1, openFor: '1m', whenOpen: 'wait' },
    });
    (await l.acquire('k')).report('failure');
    const w = track(l.acquire('k', { timeout: 50 }));
    await clock.increment(50);
    expect(w.error).toMatchObject({ limiter: 'brk', key: 'k', heldBy: 'breaker' });
  });
});

describe('plain JavaScript callers get typed errors (#11)', () => {
  it('names a misspelt option and the nearest valid one, and checks the signal', async () => {
    const sys = setup();
    const l = sys.limiter('api', { limits: [{ limit: 5, interval: '1s' }] });
    const acquireOptions = 'expected one of cost, timeout, priority, signal, settle, classify';
    await expect(l.acquire('k', { timout: '1s' } as never)).rejects.toThrow(
      `tollgate: acquire on limiter "api", key "k": options.timout is not an option (did you mean "timeout"?); ${acquireOptions}`,
    );
    await expect(l.tryAcquire('k', { prority: 1 } as never)).rejects.toThrow(
      `tollgate: tryAcquire on limiter "api", key "k": options.prority is not an option (did you mean "priority"?); ${acquireOptions}`,
    );
    await expect(l.acquire('k', { signal: { aborted: false } } as never)).rejects.toThrow(
      'tollgate: acquire on limiter "api", key "k": options.signal is {"aborted":false} (an object); expected an AbortSignal, e.g. AbortSignal.timeout(5000)',
    );
    expect(() => sys.limiter('x', { limits: [{ limit: 1, intervall: '1s' }] } as never)).toThrow(
      'tollgate: limiter "x": limits[0].intervall is not an option (did you mean "interval"?); expected one of limit, interval, dimension, burst, name, algorithm',
    );
    const limiterOptions =
      'expected one of limits, algorithm, concurrency, maxQueue, leaseTtl, breaker, maxPause';
    expect(() =>
      sys.limiter('y', { limits: [{ limit: 1, interval: '1s' }], maxQeue: 3 } as never),
    ).toThrow(
      `tollgate: limiter "y": maxQeue is not an option (did you mean "maxQueue"?); ${limiterOptions}`,
    );
    expect(() =>
      sys.limiter('z', { limits: [{ limit: 1, interval: '1s' }], zzz: 3 } as never),
    ).toThrow(`tollgate: limiter "z": zzz is not an option; ${limiterOptions}`);
    // Nothing was booked or queued by the refused calls.
    expect((await l.stats('k')).limits[0]!.remaining).toBe(5);
    expect(sys.get('x')).toBeUndefined();
  });
});
