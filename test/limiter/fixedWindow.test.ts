import { describe, expect, it } from 'vitest';
import { compilePolicy, initialState } from '../../src/limiter/index.js';
import { fixedWindow } from '../../src/limiter/fixedWindow.js';
import type { LimitSpec } from '../../src/limiter/index.js';
import { play, retry } from './play.js';

const policyOf = (...limits: LimitSpec[]) => compilePolicy({ limits, algorithm: 'fixed-window' });

describe('fixedWindow', () => {
  it('follows the worked example of its header: 200 pass within one second around a boundary', () => {
    // 100 per minute; the key starts at 59,000, inside the window [0, 60,000).
    const p = policyOf({ limit: 100, interval: '1m' });
    const start = initialState(p, 59_000);
    expect(start.limits[0]).toEqual({ start: 0, used: 0 });
    const { state } = play(
      p,
      [
        { at: 59_000, cost: 100, want: 'granted' },
        { at: 59_500, cost: 1, want: retry(500) }, // the next window opens at 60,000
        { at: 60_000, cost: 100, want: 'granted' }, // 200 within [59,000, 60,000]: the known price
        { at: 60_000, cost: 1, want: retry(60_000) },
      ],
      start,
    );
    expect(state.limits[0]).toEqual({ start: 60_000, used: 100 });
  });

  it('admits the limit in each aligned window', () => {
    const p = policyOf({ limit: 3, interval: '1s' });
    const { state } = play(p, [
      { at: 0, cost: 1, want: 'granted' },
      { at: 500, cost: 2, want: 'granted' }, // [0, 1000) holds 3
      { at: 999, cost: 1, want: retry(1) },
      { at: 1000, cost: 3, want: 'granted' }, // [1000, 2000)
      { at: 1999, cost: 1, want: retry(1) },
      { at: 2500, cost: 3, want: 'granted' }, // [2000, 3000)
      { at: 2500, cost: 1, want: retry(500) },
      { at: 5999, cost: 3, want: 'granted' }, // [5000, 6000), after idle windows
    ]);
    expect(state.limits[0]).toEqual({ start: 5000, used: 3 });
  });

  it('aligns windows to multiples of the interval, not to the first request', () => {
    const p = policyOf({ limit: 3, interval: '1s' });
    const s = initialState(p, 1234);
    expect(s.limits[0]).toEqual({ start: 1000, used: 0 });
    const { state } = play(
      p,
      [
        { at: 1234, cost: 3, want: 'granted' },
        { at: 1500, cost: 1, want: retry(500) }, // opens at 2000, not 2234
        { at: 3500, cost: 1, want: 'granted' },
      ],
      s,
    );
    expect(state.limits[0]).toEqual({ start: 3000, used: 1 });
  });

  describe('its functions, called directly', () => {
    // 3 per 1,000 ms.
    const L = policyOf({ limit: 3, interval: 1000 }).limits[0]!;

    it('init aligns to the window of `now`', () => {
      expect(fixedWindow.init(L, 0)).toEqual({ start: 0, used: 0 });
      expect(fixedWindow.init(L, 1234)).toEqual({ start: 1000, used: 0 });
      expect(fixedWindow.init(L, 2000)).toEqual({ start: 2000, used: 0 });
      expect(fixedWindow.isFull(L, { start: 0, used: 0 })).toBe(true);
      expect(fixedWindow.isFull(L, { start: 0, used: 1 })).toBe(false);
    });

    it.each([
      { used: 2, now: 1000, want: { start: 1000, used: 0 } },
      { used: 2, now: 2500, want: { start: 2000, used: 0 } },
      // Debt above the limit carries: each window that opens admits `limit` of it.
      { used: 8, now: 1000, want: { start: 1000, used: 5 } },
      { used: 8, now: 2999, want: { start: 2000, used: 2 } },
      { used: 8, now: 3000, want: { start: 3000, used: 0 } },
    ])('advance from {start 0, used $used} to $now gives $want', ({ used, now, want }) => {
      expect(fixedWindow.advance(L, { start: 0, used }, 0, now)).toEqual(want);
    });

    it('advance returns the state itself within its window', () => {
      const s = { start: 0, used: 2 };
      expect(fixedWindow.advance(L, s, 0, 999)).toBe(s);
    });

    it.each([
      { used: 2, units: 1, want: 0 },
      { used: 2, units: 2, want: 900 }, // the next window, at 1000
      { used: 8, units: 0, want: 1900 }, // debt 5: two windows to pay it
      { used: 8, units: 1, want: 1900 }, // ⌈(8 + 1 − 3) / 3⌉ = 2 windows
      { used: 8, units: 3, want: 2900 }, // ⌈8 / 3⌉ = 3 windows
    ])('waitMs at 100 for $units units at used $used is $want ms', ({ used, units, want }) => {
      expect(fixedWindow.waitMs(L, { start: 0, used }, units, 100)).toBe(want);
    });

    it.each([
      { used: 0, now: 100, want: { remaining: 3, resetMs: 0 } },
      { used: 2, now: 100, want: { remaining: 1, resetMs: 900 } },
      { used: 3, now: 999, want: { remaining: 0, resetMs: 1 } },
      { used: 8, now: 100, want: { remaining: 0, resetMs: 2900 } }, // 3 windows to be empty
    ])('read of {start 0, used $used} at $now gives $want', ({ used, now, want }) => {
      expect(fixedWindow.read(L, { start: 0, used }, now)).toEqual(want);
    });

    it('refund gives back to the current window only, never below zero', () => {
      const s = { start: 1000, used: 3 };
      expect(fixedWindow.refund(L, s, 2, 1500, 1800)).toEqual({ start: 1000, used: 1 });
      expect(fixedWindow.refund(L, s, 5, 1000, 1800)).toEqual({ start: 1000, used: 0 });
      expect(fixedWindow.refund(L, s, 2, 999, 1800)).toBe(s); // booked in a window that closed
      expect(fixedWindow.refund(L, s, 0, 1500, 1800)).toBe(s);
    });

    it('book adds to the current window', () => {
      const s = { start: 1000, used: 1 };
      expect(fixedWindow.book(L, s, 2, 1500)).toEqual({ start: 1000, used: 3 });
      expect(fixedWindow.book(L, s, 0, 1500)).toBe(s);
    });
  });
});
