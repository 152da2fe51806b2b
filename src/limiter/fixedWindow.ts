/**
 * Fixed window: time is cut into windows aligned to multiples of `intervalMs` (a 1-minute limit
 * opens a window at every whole minute of the clock), and each window admits `limit` units.
 *
 * A limit of 100 per 60,000 ms: 100 grants at t = 59,000 fill the window [0, 60,000); a request
 * at t = 59,500 is refused with retry after 500 ms; at t = 60,000 a new window opens and admits 100
 * more. So 200 can pass within one second around a boundary: that is the known price of fixed
 * windows, and what providers that count per calendar minute do. Use the sliding window when any
 * span of `intervalMs` must hold at most `limit`.
 *
 * Guarantee: each aligned window admits at most `limit` units. An extra charge from `settle` that
 * takes a window above `limit` is debt and carries into the following windows.
 */
import type { LimitAlgorithm } from './algorithm.js';
import type { FixedWindowState, Limit, Ms } from './types.js';

/**
 * How many whole windows have closed between the window starting at `start` and `now`: the
 * arithmetic of `advance` on plain numbers, shared with the in-place decision (inPlace.ts).
 */
export function windowsPassed(limit: Limit, start: Ms, now: Ms): number {
  const elapsed = now - start;
  // Stryker disable next-line ConditionalExpression: a shortcut: 0 ≤ elapsed < interval floors to 0 as well
  return elapsed < limit.intervalMs ? 0 : Math.floor(elapsed / limit.intervalMs);
}

/** Ms until `units` fit the window starting at `start` holding `used`: `waitMs` on plain numbers. */
export function waitForWindow(limit: Limit, start: Ms, used: number, units: number, now: Ms): Ms {
  const over = used + units - limit.limit;
  if (over <= 0) return 0;
  return start + Math.ceil(over / limit.limit) * limit.intervalMs - now;
}

/** fixedWindow is the aligned fixed-window {@link LimitAlgorithm}. */
export const fixedWindow: LimitAlgorithm<FixedWindowState> = {
  init: (limit, now) => ({ start: now - (now % limit.intervalMs), used: 0 }),

  advance(limit, s, _from, now) {
    const windows = windowsPassed(limit, s.start, now);
    if (windows === 0) return s;
    return {
      start: s.start + windows * limit.intervalMs,
      used: Math.max(0, s.used - windows * limit.limit),
    };
  },

  waitMs: (limit, s, units, now) => waitForWindow(limit, s.start, s.used, units, now),

  book: (_limit, s, units) => (units === 0 ? s : { start: s.start, used: s.used + units }),

  refund(_limit, s, units, grantAt) {
    // A grant from a window that has closed has nothing left to give back.
    if (units === 0 || grantAt < s.start) return s;
    return { start: s.start, used: s.used - Math.min(units, s.used) };
  },

  read(limit, s, now) {
    return {
      remaining: Math.max(0, limit.limit - s.used),
      resetMs:
        s.used === 0 ? 0 : s.start + Math.ceil(s.used / limit.limit) * limit.intervalMs - now,
    };
  },

  isFull: (_limit, s) => s.used === 0,
};
