/**
 * How a flush cuts decisions into `decide.lua` calls (#12, item 11): Redis blocks every client
 * while a script runs, so a call carries at most MAX_KEYS_PER_CALL keys and MAX_WORK_PER_CALL of
 * estimated work, one key's batch is never split, and every decision is sent once, in order.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../src/limiter/index.js';
import {
  FlushQueue,
  MAX_KEYS_PER_CALL,
  MAX_WORK_PER_CALL,
  workOf,
  type Pending,
} from '../../src/redis/flushQueue.js';
import { placeOf } from '../../src/redis/keyPlace.js';
import type { StoreRequest } from '../../src/store.js';

const THREE = compilePolicy({
  limits: [
    { limit: 100, interval: '1m' },
    { limit: 1000, interval: '1m', dimension: 'tokens' },
    { limit: 10_000, interval: '1d' },
  ],
  concurrency: 1000,
});
const owner = {};

const batchOf = (n: number, slot: boolean): StoreRequest[] =>
  Array.from({ length: n }, (_, i) => ({ id: `r${i}`, units: [1, 1, 1], slot, leaseMs: null }));

/** The calls one flush of `batches` (one per key, on one Redis) is cut into. */
function calls(batches: readonly StoreRequest[][]): Pending[][] {
  const sent: Pending[][] = [];
  const queue = new FlushQueue((entries) => sent.push([...entries]));
  batches.forEach((batch, i) => {
    const place = placeOf(owner, 'p:', false, `k${i}`, undefined);
    queue.queueDecision(
      place,
      THREE,
      batch,
      'each',
      0,
      () => {},
      () => {},
    );
  });
  queue.flush();
  return sent;
}

const work = (call: readonly Pending[]): number =>
  call.reduce((sum, e) => sum + workOf(e.policy, e.batch), 0);

describe('a flush cuts decisions into calls', () => {
  it('64 keys of one request each: two calls, each within the work budget', () => {
    const sent = calls(Array.from({ length: 64 }, () => batchOf(1, false)));
    expect(sent.map((c) => c.length)).toEqual([33, 31]); // 16 + 3 per key: 33 × 19 = 627
    for (const c of sent) expect(work(c)).toBeLessThanOrEqual(MAX_WORK_PER_CALL);
  });

  it('one key over the budget goes alone, never split', () => {
    const sent = calls([batchOf(1, false), batchOf(128, true), batchOf(1, false)]);
    expect(sent.map((c) => c.map((e) => e.batch.length))).toEqual([[1], [128], [1]]);
  });

  it('any flush: every decision once and in order, each call within both caps or one key alone', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 128 }), fc.boolean()), { maxLength: 300 }),
        (shapes) => {
          const batches = shapes.map(([n, slot]) => batchOf(n, slot));
          const sent = calls(batches);
          expect(sent.flat().map((e) => e.batch)).toEqual(batches);
          for (const c of sent) {
            expect(c.length).toBeLessThanOrEqual(MAX_KEYS_PER_CALL);
            if (c.length > 1) expect(work(c)).toBeLessThanOrEqual(MAX_WORK_PER_CALL);
          }
          // And no call could have taken the next key's decision too.
          for (let i = 0; i + 1 < sent.length; i++) {
            const next = sent[i + 1]![0]!;
            const full =
              sent[i]!.length === MAX_KEYS_PER_CALL ||
              work(sent[i]!) + workOf(next.policy, next.batch) > MAX_WORK_PER_CALL;
            expect(full).toBe(true);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
