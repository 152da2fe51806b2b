import { describe, expect, it } from 'vitest';
import {
  compileCost,
  compilePolicy,
  decide,
  initialState,
  read,
  refund,
} from '../../src/limiter/index.js';
import { tokenBucket } from '../../src/limiter/tokenBucket.js';
import type { LimitSpec } from '../../src/limiter/index.js';
import { play, retry } from './play.js';

const policyOf = (...limits: LimitSpec[]) => compilePolicy({ limits, algorithm: 'token-bucket' });

describe('tokenBucket', () => {
  // 10 per second, burst 20: one unit is 1,000 scaled units; the bucket holds 20,000 and drains
  // 10 per ms.
  const p = policyOf({ limit: 10, interval: '1s', burst: 20 });
  const L = p.limits[0]!;

  it('follows the worked example of its header, row by row', () => {
    const { state } = play(p, [
      { at: 0, cost: 20, want: 'granted' }, // fills the bucket: used 20,000
      { at: 0, cost: 1, want: retry(100) }, // ⌈1,000 / 10⌉
      { at: 250, cost: 5, want: retry(250) }, // used 17,500: ⌈(17,500 + 5,000 − 20,000) / 10⌉
      { at: 250, cost: 2, want: 'granted' }, // 2,000 ≤ 2,500 free: used 19,500
      { at: 299, cost: 1, want: retry(1) }, // used 19,500 − 490 = 19,010: ⌈10 / 10⌉
      { at: 300, cost: 1, want: 'granted' }, // used 19,000 + 1,000 = 20,000
      { at: 300, cost: 1, want: retry(100) },
      { at: 2300, cost: 20, want: 'granted' }, // 2,000 ms drain 20,000: empty, then full again
      { at: 2300, cost: 1, want: retry(100) },
    ]);
    expect(state.limits[0]).toEqual({ used: 20_000 });
    expect(read(p, state, 2300).limits[0]).toMatchObject({ remaining: 0, resetMs: 2000 });
  });

  it('keeps an awkward rate exact: 3 per second admits exactly burst + rate × span', () => {
    // One unit is 1,000 scaled; the bucket drains 3 per ms, so a unit takes 333⅓ ms.
    const q = policyOf({ limit: 3, interval: 1000 });
    const { state } = play(q, [
      { at: 0, cost: 3, want: 'granted' }, // used 3,000
      { at: 0, cost: 1, want: retry(334) }, // ⌈1,000 / 3⌉
      { at: 333, cost: 1, want: retry(1) }, // used 3,000 − 999 = 2,001: ⌈1 / 3⌉
      { at: 334, cost: 1, want: 'granted' }, // used 3,000 − 1,002 + 1,000 = 2,998
      { at: 334, cost: 1, want: retry(333) }, // ⌈998 / 3⌉
      { at: 667, cost: 1, want: 'granted' }, // 2,998 − 999 + 1,000 = 2,999
      { at: 1000, cost: 1, want: 'granted' }, // 2,999 − 999 + 1,000 = 3,000
      { at: 1000, cost: 1, want: retry(334) },
    ]);
    // Over [0, 1000]: 6 units = burst 3 + 3 × 1,000 / 1,000, and the fill is an exact integer.
    expect(state.limits[0]).toEqual({ used: 3000 });
  });

  it('defaults burst to the limit', () => {
    const q = policyOf({ limit: 5, interval: '1s' });
    expect(q.limits[0]!.capacity).toBe(5);
    play(q, [
      { at: 0, cost: 5, want: 'granted' },
      { at: 0, cost: 1, want: retry(200) }, // 1,000 scaled at 5 per ms
      { at: 200, cost: 1, want: 'granted' },
      { at: 200, cost: 1, want: retry(200) },
    ]);
  });

  it('never holds more than burst, however long the key was idle (burst below the limit)', () => {
    const q = policyOf({ limit: 10, interval: '1s', burst: 2 });
    play(q, [
      { at: 0, cost: 2, want: 'granted' },
      { at: 0, cost: 1, want: retry(100) },
      { at: 100, cost: 1, want: 'granted' },
      { at: 10_000, cost: 2, want: 'granted' },
      { at: 10_000, cost: 1, want: retry(100) },
    ]);
  });

  it('keeps the LLM case exact: 90,000 tokens per minute', () => {
    // One token is 60,000 scaled; the bucket drains 90,000 per ms, so 1,500 tokens take 1,000 ms.
    const q = policyOf({ limit: 90_000, interval: '1m', dimension: 'tokens' });
    const { state } = play(q, [
      { at: 0, cost: { tokens: 90_000 }, want: 'granted' },
      { at: 0, cost: { tokens: 1500 }, want: retry(1000) },
      { at: 999, cost: { tokens: 1500 }, want: retry(1) },
      { at: 1000, cost: { tokens: 1500 }, want: 'granted' },
    ]);
    expect(state.limits[0]).toEqual({ used: 90_000 * 60_000 });
  });

  it('books at the key time when the clock steps back, so capacity does not re-open', () => {
    const q = policyOf({ limit: 5, interval: '1s' });
    const { state, grants } = play(q, [
      { at: 1000, cost: 5, want: 'granted' },
      { at: 1200, cost: 1, want: 'granted' }, // used 5,000 − 1,000 + 1,000 = 5,000
      { at: 500, cost: 1, want: retry(200) }, // the key is at 1,200: ⌈1,000 / 5⌉
    ]);
    expect(grants[1]!.at).toBe(1200);
    expect(state.at).toBe(1200);
  });

  describe('its functions, called directly', () => {
    it('init is an empty bucket', () => {
      expect(tokenBucket.init(L, 0)).toEqual({ used: 0 });
      expect(tokenBucket.isFull(L, { used: 0 })).toBe(true);
      expect(tokenBucket.isFull(L, { used: 1 })).toBe(false);
    });

    it.each([
      { used: 20_000, from: 0, now: 250, want: { used: 17_500 } }, // 250 ms × 10
      { used: 20_000, from: 0, now: 2000, want: { used: 0 } }, // exactly drained
      { used: 20_000, from: 0, now: 99_999, want: { used: 0 } }, // never below empty
      { used: 5, from: 0, now: 1, want: { used: 0 } },
    ])('advance drains $used over $from → $now ms to $want.used', ({ used, from, now, want }) => {
      expect(tokenBucket.advance(L, { used }, from, now)).toEqual(want);
    });

    it('advance returns the state itself when no time passed or the bucket is empty', () => {
      const s = { used: 17_500 };
      expect(tokenBucket.advance(L, s, 250, 250)).toBe(s);
      const empty = { used: 0 };
      expect(tokenBucket.advance(L, empty, 0, 1000)).toBe(empty);
    });

    it.each([
      { used: 17_500, units: 2, want: 0 }, // 2,000 ≤ 2,500 free
      { used: 17_500, units: 3, want: 50 }, // ⌈500 / 10⌉
      { used: 17_500, units: 5, want: 250 },
      { used: 17_500, units: 0, want: 0 },
      { used: 25_000, units: 0, want: 500 }, // in debt: even a zero cost waits the debt out
      { used: 0, units: 20, want: 0 },
    ])('waitMs for $units units at used $used is $want ms', ({ used, units, want }) => {
      expect(tokenBucket.waitMs(L, { used }, units, 0)).toBe(want);
    });

    it('book adds units × interval, and a zero cost changes nothing', () => {
      expect(tokenBucket.book(L, { used: 17_500 }, 2, 250)).toEqual({ used: 19_500 });
      const s = { used: 17_500 };
      expect(tokenBucket.book(L, s, 0, 250)).toBe(s);
    });

    it.each([
      { used: 17_500, units: 5, want: 12_500 },
      { used: 17_500, units: 20, want: 0 }, // clamped: refilled capacity is not given twice
      { used: 0, units: 3, want: 0 },
    ])('refund of $units units at used $used leaves $want', ({ used, units, want }) => {
      expect(tokenBucket.refund(L, { used }, units, 0, 250)).toEqual({ used: want });
    });

    it.each([
      { used: 0, want: { remaining: 20, resetMs: 0 } },
      { used: 17_500, want: { remaining: 2, resetMs: 1750 } }, // ⌊2,500 / 1,000⌋, ⌈17,500 / 10⌉
      { used: 20_000, want: { remaining: 0, resetMs: 2000 } },
      { used: 25_000, want: { remaining: 0, resetMs: 2500 } }, // in debt
      { used: 1, want: { remaining: 19, resetMs: 1 } },
    ])('read at used $used gives $want', ({ used, want }) => {
      expect(tokenBucket.read(L, { used }, 0)).toEqual(want);
    });
  });

  // KNOWN BUG (reported, not fixed: the fix needs the grant to record where its units sit in the
  // bucket, which changes GrantRecord and the Redis scripts). The header promises "capacity that
  // has already refilled is not given twice", but the clamp at empty only holds when nothing was
  // booked after the grant. Here grant A's unit has refilled and been taken again by B; refunding
  // A then frees it a second time, and C is admitted: B and C both hold at t = 1000 with burst 1.
  // The sliding and fixed windows refuse C (A's entry / window has expired). When this is fixed,
  // this test fails: turn `it.fails` into `it`.
  it.fails(
    'does not give back, on a late refund, capacity that already refilled and was re-booked',
    () => {
      const q = policyOf({ limit: 1, interval: '1s' });
      const one = compileCost(q, {});
      const a = decide(q, initialState(q, 0), one, 0);
      if (!a.ok) throw new Error('A is admitted on an empty bucket');
      const b = decide(q, a.state, one, 1000); // A's unit has refilled
      if (!b.ok) throw new Error('B is admitted at 1000');
      const afterRefund = refund(q, b.state, a.grant, 1000);
      expect(decide(q, afterRefund, one, 1000).ok).toBe(false);
    },
  );
});
