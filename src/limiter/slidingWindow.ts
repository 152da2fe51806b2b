/**
 * Sliding window, exact: a log of what was booked when, one entry per millisecond that booked
 * anything (never one per unit), so no window of `intervalMs` ever admits more than `limit`.
 *
 * A limit of 3 per 1,000 ms: grants at t = 0 (cost 2) and t = 400 (cost 1) make the log
 * `[0, 2, 400, 1]`, `used` = 3. At t = 900 a cost of 1 is refused: the window (−100, 900] already
 * holds 3. The entry at 0 counts while `now < 0 + 1000`, so the earliest instant the cost fits is
 * t = 1000: retry after 100 ms. At t = 1000 the entry at 0 expires, `used` = 1, and 2 units fit.
 *
 * Guarantee: for every instant `x`, the entries with `at` in `(x − intervalMs, x]` sum to at most
 * `limit` (unless `settle` charged extra, which is debt that later grants wait out). Memory is one
 * pair of numbers per distinct booking millisecond within the last interval.
 */
import type { LimitAlgorithm } from './algorithm.js';
import type { Limit, Ms, SlidingWindowState } from './types.js';

const EMPTY: SlidingWindowState = Object.freeze({
  used: 0,
  log: Object.freeze([]) as readonly number[],
});

/**
 * The index of the first entry of `log` still inside the window at `now` (entries are sorted by
 * time): the arithmetic of `advance`, shared with the in-place decision (inPlace.ts).
 */
export function firstLive(limit: Limit, log: readonly number[], now: Ms): number {
  let i = 0;
  // Stryker disable next-line ConditionalExpression,EqualityOperator: past the end log[i] is undefined, and undefined + interval <= now is false
  while (i < log.length && log[i]! + limit.intervalMs <= now) i += 2;
  return i;
}

/**
 * Ms until `units` fit a window holding `used`, of which the entries of `log` from index `first`
 * on are live: `waitMs` without advancing first.
 */
export function waitForLog(
  limit: Limit,
  used: number,
  log: readonly number[],
  first: number,
  units: number,
  now: Ms,
): Ms {
  let over = used + units - limit.limit;
  if (over <= 0) return 0;
  // Stryker disable next-line EqualityOperator: one step past the end only matters if the loop ends with over > 0, which cannot happen (below)
  for (let i = first; i < log.length; i += 2) {
    over -= log[i + 1]!;
    if (over <= 0) return log[i]! + limit.intervalMs - now;
  }
  // Unreachable while units ≤ limit: once every entry expires, `used` is 0.
  return limit.intervalMs;
}

/** slidingWindow is the exact sliding-window-log {@link LimitAlgorithm}. */
export const slidingWindow: LimitAlgorithm<SlidingWindowState> = {
  init: () => EMPTY,

  advance(limit, s, _from, now) {
    const { log } = s;
    const i = firstLive(limit, log, now);
    if (i === 0) return s;
    // Stryker disable next-line ConditionalExpression: without it, used − freed = 0 and log [] make a state equal to EMPTY
    if (i === log.length) return EMPTY;
    let freed = 0;
    for (let k = 0; k < i; k += 2) freed += log[k + 1]!;
    return { used: s.used - freed, log: log.slice(i) };
  },

  waitMs: (limit, s, units, now) => waitForLog(limit, s.used, s.log, 0, units, now),

  book(_limit, s, units, now) {
    if (units === 0) return s;
    const { log } = s;
    const n = log.length;
    // Stryker disable next-line ConditionalExpression,EqualityOperator: on an empty log, log[-2] is undefined, never now
    if (n > 0 && log[n - 2] === now) {
      const next = log.slice();
      next[n - 1] = log[n - 1]! + units;
      return { used: s.used + units, log: next };
    }
    return { used: s.used + units, log: [...log, now, units] };
  },

  refund(_limit, s, units, grantAt) {
    if (units === 0) return s;
    const { log } = s;
    // Search from the newest entry: refunds usually concern recent grants.
    // Stryker disable next-line ArithmeticOperator: starting past the end reads undefined twice, which matches no instant
    for (let i = log.length - 2; i >= 0; i -= 2) {
      const at = log[i]!;
      // Stryker disable next-line ConditionalExpression: a shortcut: older entries are earlier still, none is at grantAt
      if (at < grantAt) return s; // the grant's entry has expired: nothing left to give back
      if (at !== grantAt) continue;
      const cost = log[i + 1]!;
      const back = Math.min(units, cost);
      const next = log.slice();
      if (back === cost) next.splice(i, 2);
      else next[i + 1] = cost - back;
      // Stryker disable next-line ConditionalExpression: an empty log holds used 0: the same value as EMPTY
      return next.length === 0 ? EMPTY : { used: s.used - back, log: next };
    }
    return s;
  },

  read(limit, s, now) {
    const { log } = s;
    const n = log.length;
    return {
      remaining: Math.max(0, limit.limit - s.used),
      resetMs: n === 0 ? 0 : log[n - 2]! + limit.intervalMs - now,
    };
  },

  isFull: (_limit, s) => s.used === 0,
};
