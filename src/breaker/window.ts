/**
 * The rolling window of the failure-rate rule, kept as time buckets. Pure: plain data in and out,
 * `now` passed in, nothing mutated.
 *
 * Time is cut into buckets of `bucketMs` aligned to multiples of it; each bucket counts the calls
 * and failures that ended in it. At `now`, the window is the bucket holding `now` and the buckets
 * that start less than `windowMs` before it.
 *
 * Worked example, windowMs = 1000, bucketMs = 100: a failure at t = 250 lands in bucket [200, 300).
 * At now = 1150 (bucket [1100, 1200)) the window keeps buckets starting after 1100 − 1000 = 100,
 * so [200, 300) still counts; at now = 1200 it no longer does.
 *
 * Compromise: the window is bucket-granular. A call is counted for between `windowMs − bucketMs`
 * and `windowMs` after it, never longer; ten buckets keep that within 10% and the state tiny.
 */
import type { Ms } from '../limiter/types.js';

/** Bucket counts the calls that ended in [start, start + bucketMs). */
export interface Bucket {
  /** A multiple of bucketMs. */
  readonly start: Ms;
  /** Calls that ended in the bucket, failures included. */
  readonly calls: number;
  /** Failures among them; <= calls. */
  readonly failures: number;
}

/** RollingWindow is the buckets of one breaker, oldest first, at most one per start instant. */
export type RollingWindow = readonly Bucket[];

/** The counts of a window at one instant. */
export interface WindowTotals {
  readonly calls: number;
  readonly failures: number;
}

/** The empty window. */
export const EMPTY_WINDOW: RollingWindow = [];

function bucketStart(now: Ms, bucketMs: Ms): Ms {
  return now - (((now % bucketMs) + bucketMs) % bucketMs);
}

/**
 * recordCall returns `w` with one call (a failure if `failed`) counted at `now`, and the buckets
 * that fell out of the window dropped. A `now` before the newest bucket (a clock that stepped
 * back) counts in the newest bucket. Does not change `w`.
 */
export function recordCall(
  w: RollingWindow,
  now: Ms,
  failed: boolean,
  windowMs: Ms,
  bucketMs: Ms,
): RollingWindow {
  const last = w[w.length - 1];
  const start = last !== undefined && last.start > now ? last.start : bucketStart(now, bucketMs);
  const kept = w.filter((b) => b.start > start - windowMs);
  const tail = kept[kept.length - 1];
  const failures = failed ? 1 : 0;
  if (tail !== undefined && tail.start === start) {
    return [
      ...kept.slice(0, -1),
      { start, calls: tail.calls + 1, failures: tail.failures + failures },
    ];
  }
  return [...kept, { start, calls: 1, failures }];
}

/** windowTotals sums the buckets of `w` still in the window at `now`. */
export function windowTotals(w: RollingWindow, now: Ms, windowMs: Ms, bucketMs: Ms): WindowTotals {
  const last = w[w.length - 1];
  const start = last !== undefined && last.start > now ? last.start : bucketStart(now, bucketMs);
  let calls = 0;
  let failures = 0;
  for (const b of w) {
    if (b.start > start - windowMs) {
      calls += b.calls;
      failures += b.failures;
    }
  }
  return { calls, failures };
}

/**
 * rateReached tells whether `t` opens a breaker: at least `minimumCalls` calls, and
 * failures / calls >= rate. (Division, not `failures >= rate × calls`: 0.3 × 10 is 3.0000000000000004.)
 */
export function rateReached(t: WindowTotals, rate: number, minimumCalls: number): boolean {
  return t.calls >= minimumCalls && t.calls > 0 && t.failures / t.calls >= rate;
}
