/**
 * Parity tables (#12): the table tests of golang.org/x/time/rate (`rate/rate_test.go`) and of
 * redis-cell (`src/cell/mod.rs`, `it_rate_limits`), restated in tollgate's terms and run on every
 * store. This file holds the rows a store decides alone (x/time/rate's `AllowN`, redis-cell's
 * `CL.THROTTLE`), in the format of `cases.ts`; the rows that need the runtime (reserve, cancel,
 * wait, simultaneous and long-running requests) are in `parityRuntime.ts`.
 *
 * Each row names the test it comes from. The cases are written here from what those tests assert,
 * not copied; where tollgate differs on purpose, the comment says so and the row asserts tollgate's
 * documented behaviour.
 *
 * Units. x/time/rate's `NewLimiter(r, b)` is a bucket of `b` refilled at `r` per second: here
 * `{ limit: r, interval: '1s', burst: b }`. Its tests step in `d = 100 ms`: t1 = 100, t2 = 200,
 * and so on. A token bucket of L per I ms keeps `used` in scaled units: one unit is I scaled, the
 * bucket drains L per ms and holds `burst × I` (see the header of `cases.ts`). With 10 per second
 * one unit is 1000 scaled and drains in 100 ms.
 *
 * redis-cell's `CL.THROTTLE key max_burst count period` is a GCRA of `max_burst + 1` at once and
 * `count` per `period`: the same bucket, `{ limit: count, interval: period, burst: max_burst + 1 }`.
 * Its `remaining` and `reset_after` are tollgate's `read` (`remaining`, `resetMs`), its
 * `retry_after` the refusal's `retryAfterMs`.
 */
import type { ConformanceCase, Outcome, Throws } from './cases.js';
import type { PolicySpec } from '../../src/limiter/types.js';

const OK = { ok: true } as const;
/** A refusal by `limit` with `retryAfterMs`. */
const no = (limit: string, retryAfterMs: number): Outcome => ({ ok: false, retryAfterMs, limit });
/** A cost above the capacity: tollgate throws where x/time/rate answers false (see Burst1). */
const TOO_BIG: Throws = { throws: 'COST_EXCEEDS_CAPACITY' };

/** x/time/rate `NewLimiter(10, burst)`: 10 per second, one unit drains in 100 ms (= d). */
function tenPerSecond(burst: number): PolicySpec {
  return { limits: [{ name: 'r', limit: 10, interval: '1s', burst }] };
}

/** redis-cell's `it_rate_limits` quota: max_burst 4, 1 per second, that is burst 5. */
const CELL: PolicySpec = { limits: [{ name: 'cell', limit: 1, interval: '1s', burst: 5 }] };

export const parityCases: ConformanceCase[] = [
  // ───────────────────────── golang.org/x/time/rate ─────────────────────────
  {
    // TestLimiterBurst1: NewLimiter(10, 1). Capacity 1000, drains 10 per ms. A refusal waits
    // ⌈(1000 + 1000 − 1000) / 10⌉ = 100 ms: x/time/rate answers only false, tollgate says how long.
    // Difference: n = 2 > burst, which x/time/rate answers false, is bad input here: the runtime
    // throws CostExceedsCapacityError before any store sees it, and nothing changes (the next grant
    // at t2 shows it).
    name: 'x/time/rate TestLimiterBurst1: 10/s burst 1, one per 100 ms',
    policy: tenPerSecond(1),
    steps: [
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: no('r', 100) },
      { at: 0, acquire: {}, expect: no('r', 100) },
      { at: 100, acquire: {}, expect: OK },
      { at: 100, acquire: {}, expect: no('r', 100) },
      { at: 100, acquire: {}, expect: no('r', 100) },
      { at: 200, acquire: { requests: 2 }, expect: TOO_BIG },
      { at: 200, acquire: {}, expect: OK },
      { at: 200, acquire: {}, expect: no('r', 100) },
    ],
  },
  {
    // TestLimiterBurst3: NewLimiter(10, 3), capacity 3000. At 0: 2 (used 2000); 2 more need
    // ⌈(2000 + 2000 − 3000) / 10⌉ = 100; 1 fits (3000); 1 more waits 100. At t1, 4 > burst
    // (tollgate throws, as in Burst1). At t2 used 3000 − 2000 = 1000: 1 fits; at t3 and t4 used is
    // 1000 again: 1 fits, and at t4 one more (3000), then each waits 100. At t9 the bucket is empty:
    // 3 fit; a cost of 0 always fits (x/time/rate's AllowN(t9, 0)).
    name: 'x/time/rate TestLimiterBurst3: 10/s burst 3, partial takes and refills',
    policy: tenPerSecond(3),
    steps: [
      { at: 0, acquire: { requests: 2 }, expect: OK },
      { at: 0, acquire: { requests: 2 }, expect: no('r', 100) },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: no('r', 100) },
      { at: 100, acquire: { requests: 4 }, expect: TOO_BIG },
      { at: 200, acquire: {}, expect: OK },
      { at: 300, acquire: {}, expect: OK },
      { at: 400, acquire: {}, expect: OK },
      { at: 400, acquire: {}, expect: OK },
      { at: 400, acquire: {}, expect: no('r', 100) },
      { at: 400, acquire: {}, expect: no('r', 100) },
      { at: 900, acquire: { requests: 3 }, expect: OK },
      { at: 900, acquire: { requests: 0 }, expect: OK },
    ],
  },
  {
    // TestLimiterJumpBackwards: NewLimiter(10, 3), the clock starts at t1 and steps back to t0.
    // Tollgate books at max(now, the key's latest instant) (KeyState.at, advance.ts), so the steps at
    // t0 are decided at 100: 1 at t1 (1000), 2 "at t0" (3000), then refusals of ⌈1000 / 10⌉ = 100
    // ms, counted from the key's instant, not from the stepped-back clock.
    // Difference: x/time/rate moves its last instant back to t0, so at t1 it refills the 100 ms
    // between t0 and t1 a second time and grants; tollgate refuses at t1 (nothing drained since
    // the key's instant 100) and grants again at t2, as x/time/rate does.
    name: 'x/time/rate TestLimiterJumpBackwards: a clock that steps back re-opens no capacity',
    policy: tenPerSecond(3),
    clockStepsBack: true,
    steps: [
      { at: 100, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: no('r', 100) },
      { at: 0, acquire: {}, expect: no('r', 100) },
      { at: 100, acquire: {}, expect: no('r', 100) },
      { at: 100, acquire: {}, expect: no('r', 100) },
      { at: 100, read: { remaining: { r: 0 }, resetMs: { r: 300 } } },
      { at: 200, acquire: {}, expect: OK },
      { at: 200, acquire: {}, expect: no('r', 100) },
      { at: 200, acquire: {}, expect: no('r', 100) },
    ],
  },
  {
    // TestLimiter_noTruncationErrors (golang.org/issue/34861), the tiny-rate case: a limit of
    // 0.7692307692307693 per second is 10 per 13 s. x/time/rate once truncated the nanoseconds of
    // such a rate and refused the very first request. Tollgate keeps it in integers: one unit is
    // 13,000 scaled, drains 10 per ms, capacity (burst 1) 13,000. The first request fits, the next
    // waits ⌈13,000 / 10⌉ = 1300 ms (exactly 1 / 0.769… s); at 1299 used is 10: 1 ms more.
    name: 'x/time/rate TestLimiter_noTruncationErrors: a tiny rate (10 per 13 s) admits the first request',
    policy: { limits: [{ name: 'r', limit: 10, interval: '13s', burst: 1 }] },
    steps: [
      { at: 0, acquire: {}, expect: OK },
      { at: 0, read: { remaining: { r: 0 }, resetMs: { r: 1300 } } },
      { at: 0, acquire: {}, expect: no('r', 1300) },
      { at: 1299, acquire: {}, expect: no('r', 1) },
      { at: 1300, acquire: {}, expect: OK },
    ],
  },
  {
    // TestZeroLimit: NewLimiter(0, 1) admits its burst once and then nothing.
    // Difference: a zero rate is bad input in tollgate (InvalidArgumentError, asserted in
    // parity.test.ts); the nearest policy is the slowest rate, 1 per 366 days with burst 1: the
    // first request fits, the next waits the whole 31,622,400,000 ms (one unit is that many scaled
    // units, draining 1 per ms).
    name: 'x/time/rate TestZeroLimit: the slowest rate (1 per 366 days) admits its burst once',
    policy: { limits: [{ name: 'r', limit: 1, interval: '366d', burst: 1 }] },
    steps: [
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: no('r', 31_622_400_000) },
      { at: 86_400_000, acquire: {}, expect: no('r', 31_536_000_000) },
      { at: 86_400_000, read: { remaining: { r: 0 }, resetMs: { r: 31_536_000_000 } } },
    ],
  },

  // ───────────────────────── redis-cell ─────────────────────────
  {
    // redis-cell it_rate_limits: max_burst 4 (burst 5), 1 per second. One unit is 1000 scaled,
    // drains 1 per ms, capacity 5000. Rows by redis-cell's case number:
    //  0  6 at 0: more than the burst. redis-cell answers limited, remaining 5, reset 0, retry −1
    //     (never). Difference: tollgate throws CostExceedsCapacityError (bad input) and the key
    //     reads as redis-cell's, untouched: remaining 5, resetMs 0.
    //  1–5  1 at 0 each: used 1000…5000, remaining 4…0, resetMs 1000…5000.
    //  6  1 at 0: refused, retry ⌈(5000 + 1000 − 5000) / 1⌉ = 1000; remaining 0, reset 5000.
    //  7  at 3000 used 2000, +1 = 3000: remaining 2, reset 3000.
    //  8  at 3100 used 2900, +1 = 3900: remaining 1, reset 3900.
    //  9  at 4000 used 3000, +1 = 4000: remaining 1, reset 4000.
    // 10  at 8000 empty, +1: remaining 4, reset 1000.
    // 11  at 9500 empty, +1: remaining 4, reset 1000.
    // 12  quantity 0 peeks: a read, remaining 4, reset 1000.
    // 13  2 at 9500: used 3000, remaining 2, reset 3000.
    // 14  5 at 9500: refused, retry ⌈(3000 + 5000 − 5000) / 1⌉ = 3000; remaining 2, reset 3000.
    name: 'redis-cell it_rate_limits: burst 5 at 1/s, remaining, reset and retry per request',
    policy: CELL,
    steps: [
      { at: 0, acquire: { requests: 6 }, expect: TOO_BIG },
      { at: 0, read: { remaining: { cell: 5 }, resetMs: { cell: 0 } } },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, read: { remaining: { cell: 4 }, resetMs: { cell: 1000 } } },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, read: { remaining: { cell: 3 }, resetMs: { cell: 2000 } } },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, read: { remaining: { cell: 2 }, resetMs: { cell: 3000 } } },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, read: { remaining: { cell: 1 }, resetMs: { cell: 4000 } } },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, read: { remaining: { cell: 0 }, resetMs: { cell: 5000 } } },
      { at: 0, acquire: {}, expect: no('cell', 1000) },
      { at: 0, read: { remaining: { cell: 0 }, resetMs: { cell: 5000 } } },
      { at: 3000, acquire: {}, expect: OK },
      { at: 3000, read: { remaining: { cell: 2 }, resetMs: { cell: 3000 } } },
      { at: 3100, acquire: {}, expect: OK },
      { at: 3100, read: { remaining: { cell: 1 }, resetMs: { cell: 3900 } } },
      { at: 4000, acquire: {}, expect: OK },
      { at: 4000, read: { remaining: { cell: 1 }, resetMs: { cell: 4000 } } },
      { at: 8000, acquire: {}, expect: OK },
      { at: 8000, read: { remaining: { cell: 4 }, resetMs: { cell: 1000 } } },
      { at: 9500, acquire: {}, expect: OK },
      { at: 9500, read: { remaining: { cell: 4 }, resetMs: { cell: 1000 } } },
      { at: 9500, read: { remaining: { cell: 4 }, resetMs: { cell: 1000 } } },
      { at: 9500, acquire: { requests: 2 }, expect: OK },
      { at: 9500, read: { remaining: { cell: 2 }, resetMs: { cell: 3000 } } },
      { at: 9500, acquire: { requests: 5 }, expect: no('cell', 3000) },
      { at: 9500, read: { remaining: { cell: 2 }, resetMs: { cell: 3000 } } },
    ],
  },
  {
    // redis-cell's GCRA compares `now − allow_at` in whole seconds (`diff.num_seconds() < 0`,
    // which truncates toward zero), so with 1 per second a request up to a second early reads as
    // on time and is allowed. Difference: tollgate is exact to the millisecond. Burst 5 taken at 0
    // (used 5000): at 500 one unit waits 500, at 999 it waits 1, at 1000 it fits.
    name: 'redis-cell: a request less than a second early is refused (whole-second compare in redis-cell)',
    policy: CELL,
    steps: [
      { at: 0, acquire: { requests: 5 }, expect: OK },
      { at: 500, acquire: {}, expect: no('cell', 500) },
      { at: 999, acquire: {}, expect: no('cell', 1) },
      { at: 1000, acquire: {}, expect: OK },
      { at: 1000, read: { remaining: { cell: 0 }, resetMs: { cell: 5000 } } },
    ],
  },
];
