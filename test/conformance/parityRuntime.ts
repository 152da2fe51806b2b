/**
 * Parity tables (#12), the rows that need the runtime: golang.org/x/time/rate's reservation,
 * cancel and wait tests (`rate/rate_test.go`), TestSimultaneousRequests and TestLongRunningQPS,
 * restated for tollgate's `reserve`, `acquire` (with `timeout` or `signal`: x/time/rate's `Wait`
 * with a context) and `tryAcquire` (`Allow`). `runParity.ts` runs them on a virtual clock over
 * every store; `parityCases.ts` has the rows a store decides alone, and its header the units.
 *
 * What differs in kind. x/time/rate books a reservation when it is made: its tokens go negative
 * and `timeToAct` is fixed then. Tollgate queues the reservation (or the acquire) and books it
 * when it fits, in queue order; `etaMs` is the estimate at the time of the call (the memory store
 * simulates the queue; the Redis store gives none, `null`). So a cancel of a queued reservation
 * gives back its whole place, and the waiters behind it move up; x/time/rate gives back only the
 * tokens no later reservation was booked against. Both stay within burst + rate × time; the rows
 * below say where the instants differ, and why.
 */
import type { CostSpec, PolicySpec } from '../../src/limiter/types.js';
import type { Outcome } from './cases.js';

/** How a waiter ends: granted at an instant, or rejected with an error code at an instant. */
export type Ends =
  { readonly grantedAt: number } | { readonly rejects: string; readonly at: number };

interface At {
  /** Absolute instant in ms on the virtual clock. */
  readonly at: number;
}

/** `limiter.reserve(key, { cost })`; `etaMs` is checked where the store estimates (non-null). */
export interface ReserveStep extends At {
  readonly reserve: CostSpec;
  readonly as?: string;
  readonly etaMs?: number;
  readonly ends: Ends;
}
/** A `reserve` that throws at once (bad input), with this error code. */
export interface ReserveThrowsStep extends At {
  readonly reserve: CostSpec;
  readonly throws: string;
}
/** `limiter.acquire(key, { cost, timeout, signal })`: x/time/rate's `WaitN`. */
export interface AcquireStep extends At {
  readonly acquire: CostSpec;
  readonly timeout?: number;
  /** `'aborted'`: a signal already aborted; another name: a signal a later `abort` step aborts. */
  readonly signal?: string;
  readonly ends: Ends;
}
/** Aborts the signal of the acquire that named it. */
export interface AbortStep extends At {
  readonly abort: string;
}
/** `reservation.cancel()`: gives back the place in the queue, or the grant if it came. */
export interface CancelStep extends At {
  readonly cancel: string;
}
/** `limiter.tryAcquire(key, { cost })`: x/time/rate's `AllowN`. */
export interface TryStep extends At {
  readonly try: CostSpec;
  readonly expect: Outcome;
}
/** `limiter.setLimits(policy)`: x/time/rate's `SetLimitAt`. */
export interface SetLimitsStep extends At {
  readonly setLimits: PolicySpec;
}
/**
 * `count` tryAcquires of the key sent at once, spread over `systems` limiter systems that share
 * the store (one is the case's): exactly `granted` of them are granted.
 */
export interface SimultaneousStep extends At {
  readonly simultaneous: number;
  readonly systems: number;
  readonly granted: number;
}
/**
 * A tryAcquire every `every` ms from `at` while before `until`: exactly `granted` are granted,
 * and never more than `atMost` (burst + rate × the time from the first try to the last).
 */
export interface SeriesStep extends At {
  readonly every: number;
  readonly until: number;
  readonly granted: number;
  readonly atMost: number;
}

export type RuntimeStep =
  | ReserveStep
  | ReserveThrowsStep
  | AcquireStep
  | AbortStep
  | CancelStep
  | TryStep
  | SetLimitsStep
  | SimultaneousStep
  | SeriesStep;

export interface RuntimeCase {
  readonly name: string;
  readonly policy: PolicySpec;
  /** The clock may be set back between steps (without running timers). @default false */
  readonly clockStepsBack?: boolean;
  readonly steps: readonly RuntimeStep[];
}

/** x/time/rate `NewLimiter(rate, burst)`: `rate` per second. */
function perSecond(rate: number, burst: number): PolicySpec {
  return { limits: [{ name: 'r', limit: rate, interval: '1s', burst }] };
}

const TOO_BIG = 'COST_EXCEEDS_CAPACITY';
const ABORTED = 'ACQUIRE_ABORTED';
const TIMEOUT = 'ACQUIRE_TIMEOUT';
const at = (ms: number): Ends => ({ grantedAt: ms });

export const runtimeParityCases: RuntimeCase[] = [
  {
    // TestSimpleReserve: NewLimiter(10, 2): 10 per second, capacity 2000, a unit drains in 100 ms.
    // 2 at 0 fit; 2 more wait ⌈2000 / 10⌉ = 200; at t3 used 1000 (the second, booked at 200, has
    // drained 1000): 2 wait 100, granted at t4. The same instants as x/time/rate's timeToAct.
    name: 'x/time/rate TestSimpleReserve: reservations are granted at t0, t2, t4',
    policy: perSecond(10, 2),
    steps: [
      { at: 0, reserve: { requests: 2 }, etaMs: 0, ends: at(0) },
      { at: 0, reserve: { requests: 2 }, etaMs: 200, ends: at(200) },
      { at: 300, reserve: { requests: 2 }, etaMs: 100, ends: at(400) },
    ],
  },
  {
    // TestMix: NewLimiter(10, 2). 3 > burst: x/time/rate's reservation is not ok, tollgate's reserve
    // throws CostExceedsCapacityError (difference: bad input, nothing queued). 2 at 0; at t1 used
    // 1000: AllowN(2) is refused, 100 ms; a reservation of 2 is granted at t2. AllowN(1) at t1 is
    // refused: x/time/rate's tokens are negative, tollgate's try does not overtake the queued
    // reservation (`'queue'`, retry when its head wakes: 100). At t3 used 1000: 1 fits.
    name: 'x/time/rate TestMix: reserve, allow and the queue ahead of a try',
    policy: perSecond(10, 2),
    steps: [
      { at: 0, reserve: { requests: 3 }, throws: TOO_BIG },
      { at: 0, reserve: { requests: 2 }, etaMs: 0, ends: at(0) },
      { at: 100, try: { requests: 2 }, expect: { ok: false, limit: 'r', retryAfterMs: 100 } },
      { at: 100, reserve: { requests: 2 }, etaMs: 100, ends: at(200) },
      { at: 100, try: {}, expect: { ok: false, limit: 'queue', retryAfterMs: 100 } },
      { at: 300, try: {}, expect: { ok: true } },
    ],
  },
  {
    // TestCancelInvalid: NewLimiter(10, 2). A reservation above the burst is no reservation: its
    // cancel has no effect in x/time/rate; in tollgate the reserve throws and there is nothing to
    // cancel. The next reservation of 2 gets no extra tokens: granted at t2.
    name: 'x/time/rate TestCancelInvalid: a refused reservation gives nothing back',
    policy: perSecond(10, 2),
    steps: [
      { at: 0, reserve: { requests: 2 }, etaMs: 0, ends: at(0) },
      { at: 0, reserve: { requests: 3 }, throws: TOO_BIG },
      { at: 0, reserve: { requests: 2 }, etaMs: 200, ends: at(200) },
    ],
  },
  {
    // TestCancelLast: NewLimiter(10, 2). r (2 at 0, due at t2) is cancelled at t1, still queued:
    // it ends with AcquireAbortedError and held nothing. At t1 used 1000: 2 more wait 100, granted at
    // t2, as in x/time/rate ("got 2 tokens back").
    name: 'x/time/rate TestCancelLast: cancelling the last reservation gives its place back',
    policy: perSecond(10, 2),
    steps: [
      { at: 0, reserve: { requests: 2 }, etaMs: 0, ends: at(0) },
      { at: 0, reserve: { requests: 2 }, as: 'r', etaMs: 200, ends: { rejects: ABORTED, at: 100 } },
      { at: 100, cancel: 'r' },
      { at: 100, reserve: { requests: 2 }, etaMs: 100, ends: at(200) },
    ],
  },
  {
    // TestCancelTooLate: NewLimiter(10, 2). r is granted at t2 (booked into the bucket emptied at
    // t2) and cancelled at t3. Difference: x/time/rate gives nothing back once the time to act has
    // passed, so the next 2 wait until t4; tollgate's cancel of a grant gives back what the grant
    // still holds in the bucket (tokenBucket.ts, refunds): at t3 it has drained 1000 of its 2000,
    // the other 1000 comes back and the bucket is empty, so 2 fit at once at t3. Over [0, 300] that
    // is 2 + (2 − 1) + 2 = 5 = burst 2 + 10/s × 0.3 s: within the bound.
    name: 'x/time/rate TestCancelTooLate: a late cancel gives back only what the grant still holds',
    policy: perSecond(10, 2),
    steps: [
      { at: 0, reserve: { requests: 2 }, etaMs: 0, ends: at(0) },
      { at: 0, reserve: { requests: 2 }, as: 'r', etaMs: 200, ends: at(200) },
      { at: 300, cancel: 'r' },
      { at: 300, reserve: { requests: 2 }, etaMs: 0, ends: at(300) },
    ],
  },
  {
    // TestCancel0Tokens: NewLimiter(10, 2). 2 at 0, then r (1, due t1) and q (1, due t2); r is
    // cancelled at t0. Difference: x/time/rate gives r's token back only if no later reservation
    // was booked against it, so it restores 0 and the next waits until t3; tollgate books nothing
    // until a waiter fits, so r's place simply goes: q moves up to t1, and the next 1 is granted
    // at t2.
    name: 'x/time/rate TestCancel0Tokens: cancelling a queued reservation moves the later ones up',
    policy: perSecond(10, 2),
    steps: [
      { at: 0, reserve: { requests: 2 }, etaMs: 0, ends: at(0) },
      { at: 0, reserve: {}, as: 'r', etaMs: 100, ends: { rejects: ABORTED, at: 0 } },
      { at: 0, reserve: {}, etaMs: 200, ends: at(100) },
      { at: 0, cancel: 'r' },
      { at: 0, reserve: {}, etaMs: 200, ends: at(200) },
    ],
  },
  {
    // TestCancel1Token: NewLimiter(10, 2). 2 at 0; r (2) is granted at t2, q (1) queued behind it
    // (due t3); r is cancelled at t2, right after its grant. Difference: x/time/rate restores 1
    // token (q's was booked against r's), and the next 2 wait until t4. Tollgate: a cancel right
    // after the booking gives back exactly what it booked (2000, the bucket is empty again), the
    // queue is served at once: q is granted at t2 (used 1000), and the next 2 wait ⌈1000 / 10⌉ =
    // 100, granted at t3. Over [0, 300]: 2 + 1 + 2 = 5 = burst 2 + 10/s × 0.3 s.
    name: 'x/time/rate TestCancel1Token: a cancel right after the grant gives it all back',
    policy: perSecond(10, 2),
    steps: [
      { at: 0, reserve: { requests: 2 }, etaMs: 0, ends: at(0) },
      { at: 0, reserve: { requests: 2 }, as: 'r', etaMs: 200, ends: at(200) },
      { at: 0, reserve: {}, etaMs: 300, ends: at(200) },
      { at: 200, cancel: 'r' },
      { at: 200, reserve: { requests: 2 }, etaMs: 100, ends: at(300) },
    ],
  },
  {
    // TestCancelMulti: NewLimiter(10, 4): capacity 4000. 4 at 0, then A (3, due t3), B (1, due t4)
    // and C (1, due t5). At t1 C, then A, are cancelled while queued. Difference: in x/time/rate B
    // keeps its booked time t4 and the next 3 wait until t5; in tollgate B moves up to the head and
    // fits at once at t1 (used 3000 + 1000), and the next 3 wait ⌈3000 / 10⌉ = 300: granted at t4.
    name: 'x/time/rate TestCancelMulti: cancelling several queued reservations',
    policy: perSecond(10, 4),
    steps: [
      { at: 0, reserve: { requests: 4 }, etaMs: 0, ends: at(0) },
      { at: 0, reserve: { requests: 3 }, as: 'A', etaMs: 300, ends: { rejects: ABORTED, at: 100 } },
      { at: 0, reserve: {}, etaMs: 400, ends: at(100) },
      { at: 0, reserve: {}, as: 'C', etaMs: 500, ends: { rejects: ABORTED, at: 100 } },
      { at: 100, cancel: 'C' },
      { at: 100, cancel: 'A' },
      { at: 100, reserve: { requests: 3 }, etaMs: 300, ends: at(400) },
    ],
  },
  {
    // TestReserveJumpBack: NewLimiter(10, 2). 2 at t1, then the clock steps back to t0 and 1 is
    // reserved. x/time/rate grants it at t1 (its comment: "should violate Limit,Burst": 3 within
    // one instant with burst 2). Difference: tollgate decides at the key's latest instant, t1
    // (advance.ts), where the bucket is full: the unit waits 100 ms of the key's time, and the
    // runtime, whose clock reads t0, asks at t1 and again at t2, where it fits. At t2 used 2000
    // again: the next 2 wait 200, granted at t4 (x/time/rate: t3). Over [100, 400]: 5 = 2 + 3.
    name: 'x/time/rate TestReserveJumpBack: a clock stepping back does not violate the burst',
    policy: perSecond(10, 2),
    clockStepsBack: true,
    steps: [
      { at: 100, reserve: { requests: 2 }, etaMs: 0, ends: at(100) },
      { at: 0, reserve: {}, etaMs: 200, ends: at(200) },
      { at: 200, reserve: { requests: 2 }, etaMs: 200, ends: at(400) },
    ],
  },
  {
    // TestReserveJumpBackCancel: NewLimiter(10, 2). At t1: 2 (granted), r (2, due t3) and q (1,
    // due t4: after r, at 300 used 2000, 1 waits 100). The clock steps back to t0 and r is
    // cancelled, still queued: x/time/rate gets 1 token back, tollgate gives back r's place. q is
    // then decided at the key's instant t1, where the bucket is full: it waits 100 ms of the
    // key's time, asked again at t1 and t2, and fits at t2. The next 2, reserved at t1, wait 200
    // after q: granted at t4, the instant x/time/rate gives ("should violate Limit,Burst" there;
    // not here: over [100, 400] 2 + 1 + 2 = 5 = burst 2 + 10/s × 0.3 s).
    name: 'x/time/rate TestReserveJumpBackCancel: a cancel on a clock that stepped back',
    policy: perSecond(10, 2),
    clockStepsBack: true,
    steps: [
      { at: 100, reserve: { requests: 2 }, etaMs: 0, ends: at(100) },
      { at: 100, reserve: { requests: 2 }, as: 'r', etaMs: 200, ends: { rejects: ABORTED, at: 0 } },
      { at: 100, reserve: {}, etaMs: 300, ends: at(200) },
      { at: 0, cancel: 'r' },
      { at: 100, reserve: { requests: 2 }, etaMs: 300, ends: at(400) },
    ],
  },
  {
    // TestReserveSetBurst: NewLimiter(5, 2): capacity 2000, drains 5 per ms. 2 at 0; 2 more wait
    // 400 (x/time/rate books them for t4). At t3 the burst becomes 4 (capacity 4000), and 4 are
    // reserved; x/time/rate asserts them at t9 (its row is written at t0 after the change at t3).
    // Difference: tollgate's queued 2 are re-decided under the new burst at t3 (used 2000 − 1500 =
    // 500, 500 + 2000 ≤ 4000): granted at once. Then 4 wait ⌈(2500 + 4000 − 4000) / 5⌉ = 500:
    // granted at 800. Over [0, 800]: 8 = burst 4 + 5/s × 0.8 s.
    name: 'x/time/rate TestReserveSetBurst: a larger burst lets the queued reservation in at once',
    policy: perSecond(5, 2),
    steps: [
      { at: 0, reserve: { requests: 2 }, etaMs: 0, ends: at(0) },
      { at: 0, reserve: { requests: 2 }, etaMs: 400, ends: at(300) },
      { at: 300, setLimits: perSecond(5, 4) },
      { at: 300, reserve: { requests: 4 }, etaMs: 500, ends: at(800) },
    ],
  },
  {
    // TestReserveSetLimitCancel: NewLimiter(5, 2). 2 at 0; r (2, due t4); at t2 the limit becomes
    // 10 per second and r is cancelled ("2 tokens back"). At t2 used 2000 − 1000 = 1000: the next
    // 2 wait ⌈1000 / 10⌉ = 100, granted at t3, as in x/time/rate.
    name: 'x/time/rate TestReserveSetLimitCancel: cancel after a limit change',
    policy: perSecond(5, 2),
    steps: [
      { at: 0, reserve: { requests: 2 }, etaMs: 0, ends: at(0) },
      { at: 0, reserve: { requests: 2 }, as: 'r', etaMs: 400, ends: { rejects: ABORTED, at: 200 } },
      { at: 200, setLimits: perSecond(10, 2) },
      { at: 200, cancel: 'r' },
      { at: 200, reserve: { requests: 2 }, etaMs: 100, ends: at(300) },
    ],
  },
  {
    // TestReserveMax: NewLimiter(10, 2), reservations that may wait at most d: tollgate's acquire
    // with a timeout. 2 at 0; 1 with timeout 101 fits at t1, inside its timeout ("reserve for close
    // future"); another 1 with timeout 101 would fit at t2, past it. Difference: x/time/rate refuses
    // that one at once (its wait is known); tollgate waits out the timeout (a cancel ahead could
    // still make room) and rejects with AcquireTimeoutError at 101.
    name: 'x/time/rate TestReserveMax: an acquire with a timeout waits only that long',
    policy: perSecond(10, 2),
    steps: [
      { at: 0, acquire: { requests: 2 }, timeout: 101, ends: at(0) },
      { at: 0, acquire: {}, timeout: 101, ends: at(100) },
      { at: 0, acquire: {}, timeout: 101, ends: { rejects: TIMEOUT, at: 101 } },
    ],
  },
  {
    // TestReserveMax at the edge: x/time/rate grants a reservation whose wait equals its maximum
    // (`waitDuration <= maxFutureReserve`). Difference: a tollgate waiter whose deadline is the very
    // instant it would fit ends with AcquireTimeoutError: the queue expires deadlines at or before
    // `now` before it decides (keyLogic.ts, grants.ts expireWaiters). 1 at 0, then 1 with timeout
    // 100 that fits at 100.
    name: 'x/time/rate TestReserveMax edge: a timeout ending at the instant it would fit expires',
    policy: perSecond(10, 1),
    steps: [
      { at: 0, acquire: {}, ends: at(0) },
      { at: 0, acquire: {}, timeout: 100, ends: { rejects: TIMEOUT, at: 100 } },
      { at: 100, try: {}, expect: { ok: true } },
    ],
  },
  {
    // TestReserveSetLimit: NewLimiter(5, 2): capacity 2000, drains 5 per ms. 2 at 0; 2 more wait
    // 400 (x/time/rate books them for t4). At t2 the limit becomes 10 per second. Difference:
    // x/time/rate keeps the booked t4 and books 1 more also for t4 ("violates Limit and Burst": 3
    // at once with burst 2). Tollgate's queued reservation is re-decided under the new rate: at t2
    // used 2000 − 1000 = 1000, it waits ⌈1000 / 10⌉ = 100, granted at t3; the 1 behind it fits at
    // t4 (used 2000 − 1000 + 1000). Over [0, 400]: 5 ≤ 2 + (5 × 0.2 + 10 × 0.2) = 5.
    name: 'x/time/rate TestReserveSetLimit: queued reservations take the new limit',
    policy: perSecond(5, 2),
    steps: [
      { at: 0, reserve: { requests: 2 }, etaMs: 0, ends: at(0) },
      { at: 0, reserve: { requests: 2 }, etaMs: 400, ends: at(300) },
      { at: 200, setLimits: perSecond(10, 2) },
      { at: 200, reserve: {}, etaMs: 200, ends: at(400) },
    ],
  },
  {
    // TestWaitSimple: NewLimiter(10, 3): capacity 3000. An already-cancelled context fails: an
    // already-aborted signal rejects with AcquireAbortedError. 4 > burst fails: tollgate rejects
    // with CostExceedsCapacityError. 2 act now; 3 act at 2d: used 2000, ⌈2000 / 10⌉ = 200.
    name: 'x/time/rate TestWaitSimple: aborted, above the burst, now and later',
    policy: perSecond(10, 3),
    steps: [
      { at: 0, acquire: {}, signal: 'aborted', ends: { rejects: ABORTED, at: 0 } },
      { at: 0, acquire: { requests: 4 }, ends: { rejects: TOO_BIG, at: 0 } },
      { at: 0, acquire: { requests: 2 }, ends: at(0) },
      { at: 0, acquire: { requests: 3 }, ends: at(200) },
    ],
  },
  {
    // TestWaitCancel: NewLimiter(10, 3). 2 at 0; 3 wait (due t2) and are aborted at t1: they end
    // with AcquireAbortedError and held nothing, so at t1 (used 1000) 2 act at once.
    name: 'x/time/rate TestWaitCancel: an aborted wait holds nothing',
    policy: perSecond(10, 3),
    steps: [
      { at: 0, acquire: { requests: 2 }, ends: at(0) },
      { at: 0, acquire: { requests: 3 }, signal: 'w', ends: { rejects: ABORTED, at: 100 } },
      { at: 100, abort: 'w' },
      { at: 100, acquire: { requests: 2 }, ends: at(100) },
    ],
  },
  {
    // TestWaitTimeout: NewLimiter(10, 3), a context that times out after d. 2 act now; 3 would act
    // at t2, past the deadline. Difference: x/time/rate fails at once (the wait is known);
    // tollgate's acquire ends with AcquireTimeoutError at its deadline, t1. Nothing was booked:
    // at t1 used 1000, so 2 fit.
    name: 'x/time/rate TestWaitTimeout: a wait past the timeout ends at the timeout',
    policy: perSecond(10, 3),
    steps: [
      { at: 0, acquire: { requests: 2 }, timeout: 100, ends: at(0) },
      { at: 0, acquire: { requests: 3 }, timeout: 100, ends: { rejects: TIMEOUT, at: 100 } },
      { at: 100, try: { requests: 2 }, expect: { ok: true } },
    ],
  },
  {
    // TestWaitInf: NewLimiter(Inf, 0) admits any n at once. Difference: tollgate has no infinite
    // rate; the nearest policy has no rate limit at all, only a concurrency limit (a policy needs
    // one or the other): 3 requests are granted at once.
    name: 'x/time/rate TestWaitInf: a policy without rate limits admits any cost at once',
    policy: { limits: [], concurrency: 1 },
    steps: [{ at: 0, acquire: { requests: 3 }, ends: at(0) }],
  },
  {
    // TestSimultaneousRequests: NewLimiter(1, 5), 15 Allow at once from 15 goroutines: exactly 5.
    // Here 15 tryAcquires sent together from 3 systems sharing the store (so the same key is
    // decided by 3 actors at once, as by 3 processes on Redis): exactly the burst, 5.
    name: 'x/time/rate TestSimultaneousRequests: 15 at once at 1/s burst 5 grant exactly 5',
    policy: perSecond(1, 5),
    steps: [{ at: 0, simultaneous: 15, systems: 3, granted: 5 }],
  },
  {
    // TestLongRunningQPS: NewLimiter(100, 100), an Allow every 2 ms for 5 s; x/time/rate asserts at
    // most burst + rate × elapsed (+1) and at least 99.9 % of it. On the virtual clock: tries at
    // 0, 2, …, 4998 (2500). The bucket starts full (100) and a unit comes back every 10 ms, each
    // taken by the first try after it: 100 + ⌊4998 / 10⌋ = 599 exactly. The bound: 100 + 100/s ×
    // 4.998 s = 599.8, so at most 599.
    name: 'x/time/rate TestLongRunningQPS: 100/s for 5 s grants burst + rate × time',
    policy: perSecond(100, 100),
    steps: [{ at: 0, every: 2, until: 5000, granted: 599, atMost: 599 }],
  },
];
