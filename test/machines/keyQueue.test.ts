/**
 * KeyQueue, called directly: the service order (priority, then arrival), removal, deadlines and
 * the set of tries, in table tests and against a plain reference (an array sorted on every read)
 * over random operations long enough to make the queue compact its levels and its heap.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../src/limiter/index.js';
import { KeyQueue } from '../../src/machines/keyQueue.js';
import { Waiter } from '../../src/machines/waiter.js';
import { RUNS } from '../props/schedule.js';

const policy = compilePolicy({ limits: [{ limit: 10, interval: '1s' }] });

/** A waiter of arrival `seq`, with a deadline set as the mailbox would (Infinity: none). */
function waiter(
  seq: number,
  priority = 0,
  deadline = Infinity,
  kind: 'acquire' | 'try' | 'timeout 0' = 'acquire',
): Waiter<string> {
  const w = new Waiter<string>(
    'w',
    seq,
    [1],
    policy,
    false,
    null,
    undefined,
    priority,
    kind === 'timeout 0' ? 0 : Infinity,
    kind === 'try',
    undefined,
    kind === 'try' ? 'tryAcquire' : 'acquire',
  );
  w.deadline = deadline;
  return w;
}

const seqs = (ws: Iterable<Waiter<string>>) => [...ws].map((w) => w.seq);

describe('KeyQueue', () => {
  it('serves higher priority first, then arrival order', () => {
    const q = new KeyQueue<string>();
    expect(q.head()).toBeUndefined();
    expect(q.take(3)).toEqual([]);
    for (const [seq, priority] of [
      [1, 0],
      [2, 5],
      [3, 0],
      [4, -1],
      [5, 5],
      [6, 2],
    ] as const) {
      q.insert(waiter(seq, priority));
    }
    expect(q.size).toBe(6);
    expect(seqs(q)).toEqual([2, 5, 6, 1, 3, 4]);
    expect(q.head()!.seq).toBe(2);
    expect(seqs(q.take(3))).toEqual([2, 5, 6]);
    expect(seqs(q.take(4))).toEqual([2, 5, 6, 1]);
    expect(seqs(q.take(10))).toEqual([2, 5, 6, 1, 3, 4]);
    expect(q.size).toBe(6); // take leaves them queued
  });

  it('remove takes a waiter out wherever it is, once; head and take skip it', () => {
    const q = new KeyQueue<string>();
    const ws = [waiter(1), waiter(2), waiter(3, 1), waiter(4)];
    ws.forEach((w) => q.insert(w));
    expect(ws.every((w) => w.queued)).toBe(true);
    q.remove(ws[2]!); // the only waiter of priority 1: its level goes
    expect(ws[2]!.queued).toBe(false);
    expect(q.head()!.seq).toBe(1);
    q.remove(ws[0]!);
    expect(q.head()!.seq).toBe(2);
    q.remove(ws[0]!); // not queued any more: nothing happens
    expect(q.size).toBe(2);
    expect(seqs(q.take(2))).toEqual([2, 4]);
    q.remove(ws[3]!); // the last one: head and take stop short of the end
    expect(seqs(q)).toEqual([2]);
    expect(seqs(q.take(5))).toEqual([2]);
    q.remove(ws[1]!);
    expect(q.size).toBe(0);
    expect(q.head()).toBeUndefined();
    expect(seqs(q)).toEqual([]);
  });

  it('expires waiters at or before now, earliest deadline first, ties by arrival', () => {
    const q = new KeyQueue<string>();
    q.insert(waiter(1, 0, 300));
    q.insert(waiter(2, 0)); // no deadline
    q.insert(waiter(3, 9, 100));
    q.insert(waiter(4, 0, 100));
    q.insert(waiter(5, 0, 200));
    expect(q.nextDeadline()).toBe(100);
    expect(q.expired(99)).toBeNull();
    expect(seqs(q.expired(100)!)).toEqual([3, 4]);
    expect(q.size).toBe(3);
    expect(q.nextDeadline()).toBe(200);
    expect(seqs(q)).toEqual([1, 2, 5]);
    expect(seqs(q.expired(1000)!)).toEqual([5, 1]);
    expect(q.nextDeadline()).toBe(Infinity);
    expect(seqs(q)).toEqual([2]);
  });

  it('breaks deadline ties by arrival wherever the heap put them', () => {
    const q = new KeyQueue<string>();
    q.insert(waiter(1, 0, 100));
    q.insert(waiter(2, 0, 50)); // goes on top: 1 moves down
    q.insert(waiter(3, 0, 100)); // a tie with 1, arrived later
    expect(seqs(q.expired(100)!)).toEqual([2, 1, 3]);
  });

  it('keeps the deadline order after the heap is compacted, whatever was removed', () => {
    for (let seed = 0; seed < 40; seed++) {
      const q = new KeyQueue<string>();
      const all = Array.from({ length: 80 }, (_, i) =>
        waiter(i + 1, i % 2, ((seed * 37 + i * 53) % 997) + 1),
      );
      all.forEach((w) => q.insert(w));
      // Remove two of every three (53 dead of 80): the heap is rebuilt from the rest.
      all.forEach((w, i) => {
        if ((i + seed) % 3 !== 0) q.remove(w);
      });
      const live = all.filter((w) => w.queued);
      const byDeadline = [...live].sort((a, b) => a.deadline - b.deadline || a.seq - b.seq);
      expect(q.nextDeadline()).toBe(byDeadline[0]!.deadline);
      expect(seqs(q.expired(1000)!)).toEqual(seqs(byDeadline));
      expect(q.size).toBe(0);
    }
  });

  it('skips a removed waiter at the top of the deadline heap', () => {
    const q = new KeyQueue<string>();
    const early = waiter(1, 0, 100);
    q.insert(early);
    q.insert(waiter(2, 0, 200));
    q.remove(early);
    expect(q.nextDeadline()).toBe(200);
    expect(seqs(q.expired(150) ?? [])).toEqual([]);
    expect(seqs(q.expired(200)!)).toEqual([2]);
  });

  it('keeps the tries (a tryAcquire, or a timeout of 0) in a set of their own', () => {
    const q = new KeyQueue<string>();
    expect(q.tries).toBeNull();
    const a = waiter(1);
    const t = waiter(2, 0, Infinity, 'try');
    const z = waiter(3, 0, Infinity, 'timeout 0');
    q.insert(a);
    expect(q.tries).toBeNull();
    q.insert(t);
    q.insert(z);
    expect([...q.tries!].map((w) => w.seq)).toEqual([2, 3]);
    q.remove(t);
    expect([...q.tries!].map((w) => w.seq)).toEqual([3]);
    q.remove(a);
    expect([...q.tries!].map((w) => w.seq)).toEqual([3]);
    const all = q.clear();
    expect(seqs(all)).toEqual([3]);
    expect(q.tries).toBeNull();
  });

  it('lets go of the entries of waiters served from the front, and of waiters removed anywhere', () => {
    const q = new KeyQueue<string>();
    const ws = Array.from({ length: 200 }, (_, i) => waiter(i + 1, 0, 1000 + i));
    for (const w of ws) q.insert(w);
    for (const w of ws.slice(0, 190)) q.remove(w); // served in order: the front is passed
    expect(q.retained().entries).toBeLessThanOrEqual(3 * 10 + 62);
    expect(q.retained().heap).toBeLessThanOrEqual(2 * 10 + 31);
    for (let i = 0; i < 100; i++) q.insert(waiter(1000 + i, 0, 5000 + i));
    for (const w of ws.slice(190, 199)) q.remove(w); // nine in the middle now
    expect(seqs(q).length).toBe(101);
    expect(q.retained().entries).toBeLessThanOrEqual(3 * 101 + 62);
  });

  it('clear empties the queue and returns what it held in service order', () => {
    const q = new KeyQueue<string>();
    const ws = [waiter(1, 0, 50), waiter(2, 3), waiter(3, 0, 10)];
    ws.forEach((w) => q.insert(w));
    expect(seqs(q.clear())).toEqual([2, 1, 3]);
    expect(ws.some((w) => w.queued)).toBe(false);
    expect(q.size).toBe(0);
    expect(q.head()).toBeUndefined();
    expect(q.nextDeadline()).toBe(Infinity);
    expect(q.expired(1000)).toBeNull();
    q.insert(waiter(4, 0, 20)); // usable again
    expect(q.nextDeadline()).toBe(20);
    expect(seqs(q)).toEqual([4]);
  });
});

/** What a property does to the queue. */
type QueueOp =
  | { readonly kind: 'insert'; readonly priority: number; readonly deadline: number | null }
  | { readonly kind: 'insertMany'; readonly count: number; readonly priority: number }
  | { readonly kind: 'remove'; readonly pick: number }
  | { readonly kind: 'removeMany'; readonly every: number; readonly from: number }
  | { readonly kind: 'expire'; readonly now: number }
  | { readonly kind: 'take'; readonly n: number }
  | { readonly kind: 'clear' };

const queueOpArb: fc.Arbitrary<QueueOp> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('insert' as const),
      priority: fc.integer({ min: -1, max: 2 }),
      deadline: fc.option(fc.integer({ min: 0, max: 1000 }), { nil: null }),
    }),
    weight: 6,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('insertMany' as const),
      count: fc.integer({ min: 30, max: 90 }),
      priority: fc.integer({ min: -1, max: 2 }),
    }),
    weight: 1,
  },
  { arbitrary: fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }), weight: 4 },
  {
    arbitrary: fc.record({
      kind: fc.constant('removeMany' as const),
      every: fc.integer({ min: 1, max: 3 }),
      from: fc.nat(2),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('expire' as const),
      now: fc.integer({ min: 0, max: 1000 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('take' as const), n: fc.integer({ min: 0, max: 8 }) }),
    weight: 2,
  },
  { arbitrary: fc.constant({ kind: 'clear' as const }), weight: 1 },
);

/** The reference: every waiter ever inserted, and which are still in. */
function serviceOrder(ws: readonly Waiter<string>[]): Waiter<string>[] {
  return ws.filter((w) => w.queued).sort((a, b) => b.priority - a.priority || a.seq - b.seq);
}

describe('KeyQueue against a sorted array', () => {
  it('agrees on size, order, head, take, the next deadline and what expires, across compactions', () => {
    fc.assert(
      fc.property(fc.array(queueOpArb, { minLength: 1, maxLength: 60 }), (ops) => {
        const q = new KeyQueue<string>();
        const all: Waiter<string>[] = [];
        let seq = 0;
        const add = (priority: number, deadline: number) => {
          const w = waiter(++seq, priority, deadline);
          q.insert(w);
          all.push(w);
        };
        for (const op of ops) {
          switch (op.kind) {
            case 'insert':
              add(op.priority, op.deadline ?? Infinity);
              break;
            case 'insertMany':
              for (let i = 0; i < op.count; i++) add(op.priority, 1000 - ((i * 7) % 900));
              break;
            case 'remove': {
              // Any waiter ever inserted: removing one that left already changes nothing.
              if (all.length > 0) q.remove(all[op.pick % all.length]!);
              break;
            }
            case 'removeMany': {
              const live = serviceOrder(all);
              live.forEach((w, i) => {
                if (i >= op.from && (i - op.from) % op.every === 0) q.remove(w);
              });
              break;
            }
            case 'expire': {
              const want = all
                .filter((w) => w.queued && w.deadline <= op.now)
                .sort((a, b) => a.deadline - b.deadline || a.seq - b.seq);
              const got = q.expired(op.now);
              expect(got === null ? [] : seqs(got)).toEqual(seqs(want));
              if (want.length === 0) expect(got).toBeNull();
              break;
            }
            case 'take':
              expect(seqs(q.take(op.n))).toEqual(seqs(serviceOrder(all).slice(0, op.n)));
              break;
            case 'clear': {
              const want = seqs(serviceOrder(all));
              expect(seqs(q.clear())).toEqual(want);
              break;
            }
          }
          const order = serviceOrder(all);
          expect(q.size).toBe(order.length);
          expect(seqs(q)).toEqual(seqs(order));
          expect(q.head()).toBe(order[0]);
          const deadlines = order.map((w) => w.deadline);
          expect(q.nextDeadline()).toBe(Math.min(Infinity, ...deadlines));
          // Memory stays bounded by what is live: a level keeps fewer than 32 passed and 32 dead
          // entries or no more of each than live ones, the heap as many dead as live or fewer
          // than 32, and a level lives only while a waiter of its priority is queued.
          const kept = q.retained();
          const priorities = new Set(order.map((w) => w.priority));
          expect(kept.levels).toBe(priorities.size);
          expect(kept.entries).toBeGreaterThanOrEqual(order.length); // each live waiter is one
          expect(kept.entries).toBeLessThanOrEqual(3 * order.length + 62 * kept.levels);
          const timed = order.filter((w) => w.deadline !== Infinity).length;
          expect(kept.heap).toBeLessThanOrEqual(2 * timed + 31);
        }
      }),
      RUNS,
    );
  });
});
