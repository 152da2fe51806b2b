import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../src/limiter/index.js';
import { slidingWindow } from '../../src/limiter/slidingWindow.js';
import type { LimitSpec } from '../../src/limiter/index.js';
import { play, retry } from './play.js';

const policyOf = (...limits: LimitSpec[]) => compilePolicy({ limits, algorithm: 'sliding-window' });

describe('slidingWindow', () => {
  // 3 per 1,000 ms: an entry booked at `at` counts while now < at + 1000.
  const p = policyOf({ limit: 3, interval: 1000 });

  it('follows the worked example of its header, row by row', () => {
    const { state } = play(p, [
      { at: 0, cost: 2, want: 'granted' },
      { at: 400, cost: 1, want: 'granted' }, // log [0, 2, 400, 1]
      { at: 900, cost: 1, want: retry(100) }, // (−100, 900] holds 3; the entry at 0 leaves at 1000
      { at: 999, cost: 1, want: retry(1) },
      { at: 1000, cost: 2, want: 'granted' }, // the entry at 0 expired: 1 + 2
      { at: 1000, cost: 1, want: retry(400) }, // the entry at 400 leaves at 1400
      { at: 1399, cost: 1, want: retry(1) },
      { at: 1400, cost: 1, want: 'granted' }, // log [1000, 2, 1400, 1]
      { at: 1999, cost: 3, want: retry(401) }, // needs both entries gone: 1400 + 1000 − 1999
      { at: 2399, cost: 1, want: 'granted' }, // the entry at 1000 left at 2000: 1 + 1
      { at: 2399, cost: 2, want: retry(1) },
    ]);
    expect(state.limits[0]).toEqual({ used: 2, log: [1400, 1, 2399, 1] });
  });

  it('counts an entry through the last millisecond of its window, and not one more', () => {
    const q = policyOf({ limit: 1, interval: '1s' });
    play(q, [
      { at: 0, want: 'granted' },
      { at: 999, want: retry(1) },
      { at: 1000, want: 'granted' },
      { at: 1999, want: retry(1) },
    ]);
  });

  it('keeps one entry per millisecond that booked, never one per unit', () => {
    const q = policyOf({ limit: 5, interval: 100 });
    const { state } = play(q, [
      { at: 10, want: 'granted' },
      { at: 10, want: 'granted' },
      { at: 10, want: 'granted' },
      { at: 20, cost: 2, want: 'granted' },
      { at: 109, want: retry(1) }, // the entry at 10 (3 units) leaves at 110
    ]);
    expect(state.limits[0]).toEqual({ used: 5, log: [10, 3, 20, 2] });
    const { state: later } = play(q, [{ at: 110, cost: 3, want: 'granted' }], state);
    expect(later.limits[0]).toEqual({ used: 5, log: [20, 2, 110, 3] });
  });

  it('admits any window of its length at most the limit, unlike a fixed window at a boundary', () => {
    // 100 per minute: 100 at 59,000 fill the window; at 60,000 the sliding window still holds them.
    const q = policyOf({ limit: 100, interval: '1m' });
    play(q, [
      { at: 59_000, cost: 100, want: 'granted' },
      { at: 60_000, cost: 1, want: retry(59_000) }, // they leave at 119,000
      { at: 119_000, cost: 100, want: 'granted' },
    ]);
  });

  describe('its functions, called directly', () => {
    // 5 per 1,000 ms for the rows below.
    const F = policyOf({ limit: 5, interval: 1000 }).limits[0]!;
    const s = { used: 5, log: [0, 2, 100, 2, 200, 1] };

    it.each([
      { now: 999, want: s }, // nothing has left yet
      { now: 1000, want: { used: 3, log: [100, 2, 200, 1] } },
      { now: 1150, want: { used: 1, log: [200, 1] } },
      { now: 1200, want: { used: 0, log: [] } },
      { now: 50_000, want: { used: 0, log: [] } },
    ])('advance to $now keeps the entries still in the window', ({ now, want }) => {
      expect(slidingWindow.advance(F, s, 0, now)).toEqual(want);
    });

    it('advance returns the state itself when nothing expired', () => {
      expect(slidingWindow.advance(F, s, 0, 999)).toBe(s);
    });

    it.each([
      { units: 0, want: 0 },
      { units: 1, want: 700 }, // the entry at 0 (2 units) leaves at 1000
      { units: 2, want: 700 },
      { units: 3, want: 800 }, // needs the entry at 100 gone too
      { units: 4, want: 800 },
      { units: 5, want: 900 },
    ])('waitMs at 300 for $units units is $want ms', ({ units, want }) => {
      expect(slidingWindow.waitMs(F, s, units, 300)).toBe(want);
    });

    it.each([
      { units: 2, grantAt: 100, want: { used: 3, log: [0, 2, 200, 1] } }, // the whole entry
      { units: 1, grantAt: 100, want: { used: 4, log: [0, 2, 100, 1, 200, 1] } }, // part of it
      { units: 9, grantAt: 200, want: { used: 4, log: [0, 2, 100, 2] } }, // at most the entry
      { units: 1, grantAt: 50, want: s }, // no entry at 50: nothing to give back
    ])(
      'refund of $units booked at $grantAt gives back to that entry only',
      ({ units, grantAt, want }) => {
        expect(slidingWindow.refund(F, s, units, grantAt, 300)).toEqual(want);
      },
    );

    it('refund of a grant whose entry has expired gives nothing back', () => {
      const later = { used: 1, log: [200, 1] };
      expect(slidingWindow.refund(F, later, 2, 0, 1150)).toBe(later);
    });

    it('refund of 0 units returns the state itself', () => {
      const s = { used: 3, log: [200, 1, 250, 2] };
      expect(slidingWindow.refund(F, s, 0, 250, 300)).toBe(s);
    });

    it('refund of the last entry leaves an empty log', () => {
      expect(slidingWindow.refund(F, { used: 1, log: [200, 1] }, 1, 200, 300)).toEqual({
        used: 0,
        log: [],
      });
    });

    it.each([
      { now: 300, want: { remaining: 0, resetMs: 900 } }, // full until the entry at 200 leaves
      { now: 1199, want: { remaining: 0, resetMs: 1 } }, // (state not advanced: `used` still 5)
    ])('read at $now gives $want', ({ now, want }) => {
      expect(slidingWindow.read(F, s, now)).toEqual(want);
    });

    it('read of an empty window is full now', () => {
      expect(slidingWindow.read(F, { used: 0, log: [] }, 300)).toEqual({
        remaining: 5,
        resetMs: 0,
      });
      expect(slidingWindow.read(F, { used: 2, log: [250, 2] }, 300)).toEqual({
        remaining: 3,
        resetMs: 950,
      });
    });

    it('book merges into the entry of the same millisecond and appends a new one otherwise', () => {
      expect(slidingWindow.book(F, s, 1, 200)).toEqual({ used: 6, log: [0, 2, 100, 2, 200, 2] });
      expect(slidingWindow.book(F, s, 1, 300)).toEqual({
        used: 6,
        log: [0, 2, 100, 2, 200, 1, 300, 1],
      });
      expect(slidingWindow.book(F, s, 0, 300)).toBe(s);
      expect(s).toEqual({ used: 5, log: [0, 2, 100, 2, 200, 1] }); // not mutated
    });
  });
});
