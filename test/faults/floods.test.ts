/**
 * Floods (#12, item 8): a hostile caller sends more than a limiter can hold, and memory stays
 * bounded.
 *
 * - 100,000 waiters on one key with `maxQueue: 1000`: 99,000 are refused with QueueFullError
 *   before any time passes; each queued waiter retains at most 1 KiB beside its signal; aborting
 *   them all ends every one with AcquireAbortedError, brings the heap back within 10 MiB of where
 *   it was, and leaves the key with nothing booked.
 * - 1,000,000 one-off keys: at most 400 B per dormant key, and the heap back within 10 MiB of
 *   where it was one interval after the last use (keys back at full capacity are forgotten).
 *
 * Heap figures are not timing: they hold on a loaded machine. Each reading is the median of five
 * after two full collections, on virtual time, with a warm-up run first (so compiled code and
 * lazily built structures are in the baseline). `gc` is exposed to this worker with V8's flag.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import {
  AcquireAbortedError,
  QueueFullError,
  VirtualClock,
  createLimiterSystem,
  type Limiter,
  type MemoryStore,
} from '../../src/index.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const KiB = 1024;
const MiB = 1024 * KiB;

/** heapUsed after full collections: the median of five readings. */
async function heapUsed(): Promise<number> {
  const readings: number[] = [];
  for (let i = 0; i < 5; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
    gc();
    readings.push(process.memoryUsage().heapUsed);
  }
  return readings.sort((a, b) => a - b)[2]!;
}

interface Flood {
  readonly refused: number;
  readonly aborted: number;
  readonly other: number;
  /** The first `queued` promises, still pending unless aborted. */
  readonly ended: Promise<unknown>;
  /** The promises `acquire` returned for them: a waiter kept after its end keeps its promise. */
  readonly promises: readonly WeakRef<Promise<unknown>>[];
}

/**
 * Sends 100,000 acquires to the paused key `key`, each with a signal of its own (the first 1,000
 * from `queued`, the controllers a caller keeps); returns the counts as they stand.
 */
function flood(l: Limiter, key: string, queued: readonly AbortController[]): Flood {
  const counts = { refused: 0, aborted: 0, other: 0 };
  const waiting: Promise<unknown>[] = [];
  const promises: WeakRef<Promise<unknown>>[] = [];
  for (let i = 0; i < 100_000; i++) {
    const signal = (queued[i] ?? new AbortController()).signal;
    const acquired = l.acquire(key, { signal });
    if (i < queued.length) promises.push(new WeakRef(acquired));
    const p = acquired.then(
      () => counts.other++,
      (e: unknown) => {
        if (e instanceof QueueFullError) counts.refused++;
        else if (e instanceof AcquireAbortedError) counts.aborted++;
        else counts.other++;
      },
    );
    if (i < queued.length) waiting.push(p);
  }
  return {
    get refused() {
      return counts.refused;
    },
    get aborted() {
      return counts.aborted;
    },
    get other() {
      return counts.other;
    },
    ended: Promise.all(waiting),
    promises,
  };
}

describe('a flood of waiters on one key', () => {
  it('refuses all but maxQueue at once, keeps each queued waiter small, and lets go of every aborted one', async () => {
    const clock = new VirtualClock(0);
    const system = createLimiterSystem({ clock });
    const l = system.limiter('api', { limits: [{ limit: 10, interval: '1m' }], maxQueue: 1000 });
    const controllers = () => Array.from({ length: 1000 }, () => new AbortController());

    // Warm-up on another key, the same way.
    await l.pause('warm', '1h'); // a provider said 429: every acquire waits
    const warmControllers = controllers();
    const warm = flood(l, 'warm', warmControllers);
    for (const c of warmControllers) c.abort();
    await warm.ended;
    await l.reset('warm');

    const queued = controllers();
    await l.pause('k', '1h');
    const base = await heapUsed();
    const f = flood(l, 'k', queued);
    await new Promise((r) => setImmediate(r)); // the rejections' callbacks run; no time passes
    expect(clock.now()).toBe(0);
    expect({ refused: f.refused, aborted: f.aborted, other: f.other }).toEqual({
      refused: 99_000,
      aborted: 0,
      other: 0,
    });
    expect((await l.stats('k')).queued).toBe(1000);

    const queuedHeap = await heapUsed();
    for (const c of queued) c.abort();
    await f.ended;
    expect({ refused: f.refused, aborted: f.aborted, other: f.other }).toEqual({
      refused: 99_000,
      aborted: 1000,
      other: 0,
    });
    // What a queued waiter retains is what its end lets go of. (The caller's controllers stay,
    // and so does the listener table Node's AbortSignal built for its first listener, ~0.8 KB
    // per signal that any listener would cost: neither is the limiter's.)
    const ended = await heapUsed();
    expect(f.promises.filter((p) => p.deref() !== undefined)).toHaveLength(0); // nothing kept them
    const perWaiter = (queuedHeap - ended) / 1000;
    console.log(
      `floods: ${perWaiter.toFixed(0)} B retained per queued waiter (${((queuedHeap - base) / 1000).toFixed(0)} B with its signal's listener table and the caller's promise)`,
    );
    expect(perWaiter).toBeLessThanOrEqual(KiB);
    const reading = await l.stats('k');
    expect(reading).toMatchObject({ queued: 0, inFlight: 0, limits: [{ remaining: 10 }] });
    const after = ended - base;
    console.log(`floods: heap ${(after / MiB).toFixed(2)} MiB over the baseline after the aborts`);
    expect(after).toBeLessThanOrEqual(10 * MiB);
    void queued.length; // the caller's controllers stay reachable until here
    await system.close();
  });
});

describe('a flood of one-off keys', () => {
  it('keeps 1,000,000 dormant keys in at most 400 B each, and forgets them one interval after', async () => {
    const clock = new VirtualClock(0);
    const system = createLimiterSystem({ clock, idleTimeout: '1s' });
    const store = system.store as MemoryStore;
    // Ten a minute: one grant leaves a key below capacity for 6 s; a minute refills any key.
    const l = system.limiter('flood', { limits: [{ limit: 10, interval: '1m' }] });
    const touch = async (prefix: string, n: number) => {
      for (let i = 0; i < n; i++) {
        const r = l.tryAcquire(`${prefix}${i}`);
        if (i % 1000 === 999 && !(await r).ok) throw new Error(`refused ${prefix}${i}`);
      }
    };
    await touch('warm-', 20_000);
    await clock.increment(61_000);
    expect(store.size).toBe(0);
    const base = await heapUsed();

    const n = 1_000_000;
    await touch('user-', n);
    const lastUse = clock.now();
    expect(store.size).toBe(n);
    await clock.increment(1500); // idle: any key actor is evicted to plain data
    expect(system.liveKeys).toBe(0);
    expect(store.size).toBe(n);
    const dormant = ((await heapUsed()) - base) / n;
    console.log(`floods: ${dormant.toFixed(0)} B per dormant key`);
    expect(dormant).toBeLessThanOrEqual(400);

    // One interval after the last use, plus one sweep (every half idleTimeout): all forgotten.
    await clock.advanceTo(lastUse + 60_000 + 500);
    expect(store.size).toBe(0);
    const after = (await heapUsed()) - base;
    console.log(
      `floods: heap ${(after / MiB).toFixed(2)} MiB over the baseline one interval after`,
    );
    expect(after).toBeLessThanOrEqual(10 * MiB);
    expect(clock.pendingTimers).toBe(0); // nothing left to sweep
    await system.close();
  }, 120_000);
});
