import { describe, expect, it } from 'vitest';
import {
  advance,
  compileCost,
  compilePolicy,
  decide,
  initialState,
  read,
  refund,
  settle,
} from '../../src/limiter/index.js';
import { tokenBucket } from '../../src/limiter/tokenBucket.js';
import { MAX_SCALED } from '../../src/limiter/validate.js';
import type { KeyState, LimitSpec } from '../../src/limiter/index.js';
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
    // Booked into an empty bucket at 2300: the refund counter starts over, and grants from before
    // 2300 hold nothing.
    expect(state.limits[0]).toEqual({ used: 20_000, refunded: 0, emptiedAt: 2300 });
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
    // The bucket was never empty again after the first grant at 0.
    expect(state.limits[0]).toEqual({ used: 3000, refunded: 0, emptiedAt: 0 });
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
    expect(state.limits[0]).toEqual({ used: 90_000 * 60_000, refunded: 0, emptiedAt: 0 });
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
    /** A non-empty bucket: nothing refunded, last found empty at 0. */
    const tb = (used: number, refunded = 0, emptiedAt = 0) => ({ used, refunded, emptiedAt });

    it('init is an empty bucket', () => {
      expect(tokenBucket.init(L, 0)).toEqual({ used: 0 });
      expect(tokenBucket.isFull(L, { used: 0 })).toBe(true);
      expect(tokenBucket.isFull(L, tb(1))).toBe(false);
    });

    it.each([
      { used: 20_000, from: 0, now: 250, want: tb(17_500) }, // 250 ms × 10; the counters stay
      { used: 20_000, from: 0, now: 2000, want: { used: 0 } }, // exactly drained: empty again
      { used: 20_000, from: 0, now: 99_999, want: { used: 0 } }, // never below empty
      { used: 5, from: 0, now: 1, want: { used: 0 } },
    ])('advance drains $used over $from → $now ms to $want.used', ({ used, from, now, want }) => {
      expect(tokenBucket.advance(L, tb(used, 3000), from, now)).toEqual(
        want.used === 0 ? want : { ...want, refunded: 3000 },
      );
    });

    it('advance returns the state itself when no time passed or the bucket is empty', () => {
      const s = tb(17_500);
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
      expect(tokenBucket.waitMs(L, tb(used), units, 0)).toBe(want);
    });

    it('book adds units × interval and keeps the counters; a zero cost changes nothing', () => {
      expect(tokenBucket.book(L, tb(17_500, 4000, 100), 2, 250)).toEqual(tb(19_500, 4000, 100));
      const s = tb(17_500);
      expect(tokenBucket.book(L, s, 0, 250)).toBe(s);
    });

    it('book into an empty bucket starts the counter over and records the instant', () => {
      expect(tokenBucket.book(L, { used: 0 }, 3, 250)).toEqual(tb(3000, 0, 250));
    });

    it('mark is used + refunded right after the booking', () => {
      expect(tokenBucket.mark!(L, tb(19_500, 4000))).toBe(23_500);
      expect(tokenBucket.mark!(L, { used: 0 })).toBe(0);
    });

    // A grant booked at 0 that took the bucket to 20,000 (mark 20,000: 20 units into an empty
    // bucket, or 3 on top of 17). At 250 the bucket has drained 2,500 (used 17,500): its part ends
    // at 20,000 − 0 − 10 × 250 = 17,500, the back of the queue.
    it.each([
      // 5 of its 20 back (not all it holds): the counter grows by 5,000.
      { s: tb(17_500), units: 5, whole: false, want: tb(12_500, 5000) },
      // All 20 asked, 17,500 still held: the rest refilled already and is not given twice.
      { s: tb(17_500), units: 20, whole: true, want: { used: 0 } },
      // 7,000 refunded since its booking moved its part forward: it ends at 20,000 − 7,000 −
      // 2,500 = 10,500, and that is all it gives back of 20 (the rest is 7,000 refunded before it).
      { s: tb(17_500, 7000), units: 20, whole: true, want: tb(7000, 17_500) },
      // The grant of 3, whole, at the back of the queue: all 3,000 back, and nothing behind it
      // moves, so the counter stays.
      { s: tb(17_500), units: 3, whole: true, want: tb(14_500) },
      { s: { used: 0 }, units: 3, whole: true, want: { used: 0 } }, // nothing to give back
      // Booked before the bucket was last found empty (at 100): it holds nothing.
      { s: tb(17_500, 0, 100), units: 5, whole: false, want: tb(17_500, 0, 100) },
    ])('refund of $units units at $s.used gives $want', ({ s, units, whole, want }) => {
      expect(tokenBucket.refund(L, s, units, 0, 250, 20_000, whole)).toEqual(want);
    });

    // #18: with a clock that stepped back across a key that was dropped, a grant can carry an
    // instant after the key's `now`. It was booked in a state that is gone: nothing to give back.
    it('refund gives nothing to a grant booked after now (the key was dropped and rebuilt earlier)', () => {
      // A 5 at 1000 into an empty bucket (mark 5,000); the key is dropped, the clock steps back to
      // 500, and a new key is filled with 10 at 500 (emptiedAt 500).
      const s = tb(10_000, 0, 500);
      expect(tokenBucket.refund(L, s, 5, 1000, 500, 5000, true)).toBe(s);
      // The same grant booked at 500 (the first 5 of the 10) is there, and gives back 5,000.
      expect(tokenBucket.refund(L, s, 5, 500, 500, 5000, true)).toEqual(tb(5000, 5000, 500));
    });

    it('refund returns the state itself when it gives nothing: 0 units, an empty bucket, a part drained to its end', () => {
      const s = tb(17_500);
      expect(tokenBucket.refund(L, s, 0, 0, 250, 20_000, true)).toBe(s);
      const empty = { used: 0 };
      expect(tokenBucket.refund(L, empty, 3, 250, 250, 3000, true)).toBe(empty);
      // mark 2,500: its part ends at 2,500 − 10 × 250 = 0, exactly drained.
      expect(tokenBucket.refund(L, s, 2, 0, 250, 2500, true)).toBe(s);
    });

    it('refund without `whole` takes the units as a part of the grant: the counter grows', () => {
      // 3 of a grant at the back of the queue (its part ends at 17,500 = used): had they been the
      // whole grant, nothing behind would move and the counter would stay.
      expect(tokenBucket.refund(L, tb(17_500), 3, 0, 250, 20_000)).toEqual(tb(14_500, 3000));
      expect(tokenBucket.refund(L, tb(17_500), 3, 0, 250, 20_000, true)).toEqual(tb(14_500));
    });

    it('refund gives nothing once the part has drained, or without a mark', () => {
      const s = tb(17_500);
      // mark 2,000: its part ended at 2,000 − 2,500 < 0 by 250.
      expect(tokenBucket.refund(L, s, 2, 0, 250, 2000, true)).toBe(s);
      expect(tokenBucket.refund(L, s, 2, 0, 250, 0, true)).toBe(s);
      expect(tokenBucket.refund(L, s, 2, 0, 250)).toBe(s);
    });

    it('remark keeps a mark that a booking now could make, and lowers one that claims more', () => {
      // used + refunded + limit × (now − at) = 19,500 + 0 + 2,500 = 22,000.
      expect(tokenBucket.remark!(L, tb(19_500), 20_000, 0, 250)).toBe(20_000);
      expect(tokenBucket.remark!(L, tb(19_500), 30_000, 0, 250)).toBe(22_000);
    });

    // #18: a grant booked at 100, charged extra at 200. The back of the queue at 200 is used +
    // refunded = 8,000 in counter terms; carried back to 100 by the 10 × 100 drained since: 9,000.
    // Adding the grant's instant instead of subtracting it (11,000) would let a refund over-admit;
    // subtracting the refunds (3,000) would lose capacity.
    it.each([
      { mark: 20_000, want: 9000 }, // lowered to the back of the queue
      { mark: 9000, want: 9000 }, // exactly the back: kept
      { mark: 8999, want: 8999 }, // below it: kept, never raised
    ])(
      'remark at grant time 100 and now 200, with refunds, lowers mark $mark to $want',
      ({ mark, want }) => {
        expect(tokenBucket.remark!(L, tb(5000, 3000), mark, 100, 200)).toBe(want);
      },
    );

    it.each([
      { used: 0, want: { remaining: 20, resetMs: 0 } },
      { used: 17_500, want: { remaining: 2, resetMs: 1750 } }, // ⌊2,500 / 1,000⌋, ⌈17,500 / 10⌉
      { used: 20_000, want: { remaining: 0, resetMs: 2000 } },
      { used: 25_000, want: { remaining: 0, resetMs: 2500 } }, // in debt
      { used: 1, want: { remaining: 19, resetMs: 1 } },
    ])('read at used $used gives $want', ({ used, want }) => {
      expect(tokenBucket.read(L, used === 0 ? { used } : tb(used), 0)).toEqual(want);
    });
  });

  // Grant A's unit refills by 1000 and is taken again by B; a late refund of A must not free it a
  // second time (C would then be admitted: B and C both held at 1000 with burst 1). A booked at 0
  // into an empty bucket; B at 1000 found it empty again (emptiedAt 1000), so A, booked before,
  // holds nothing. The sliding and fixed windows refuse C too (A's entry / window has expired).
  it('does not give back, on a late refund, capacity that already refilled and was re-booked', () => {
    const q = policyOf({ limit: 1, interval: '1s' });
    const one = compileCost(q, {});
    const a = decide(q, initialState(q, 0), one, 0);
    if (!a.ok) throw new Error('A is admitted on an empty bucket');
    const b = decide(q, a.state, one, 1000); // A's unit has refilled
    if (!b.ok) throw new Error('B is admitted at 1000');
    const afterRefund = refund(q, b.state, a.grant, 1000);
    expect(afterRefund).toEqual(b.state);
    expect(decide(q, afterRefund, one, 1000).ok).toBe(false);
  });

  // #18: the refund counter only grows while the bucket never empties; marks are counted on it,
  // so it is started over before it passes MAX_SCALED, and every grant booked until then gives
  // back nothing more (emptiedAt just after the refund). Months of busy traffic get there; here a
  // key restored from a snapshot is that far already.
  describe('the refund counter starts over before marks leave exact integers', () => {
    // G booked 20 at 0 at the back of the queue: its mark is the counter then plus 20,000. At 250
    // the bucket drained 2,500; G settles from 20 to 15: 5,000 back.
    const keyAt = (refunded: number): KeyState => ({
      at: 250,
      inFlight: 0,
      limits: [{ used: 17_500, refunded, emptiedAt: 0 }],
    });
    const g = (refunded: number) => ({
      at: 0,
      units: [20],
      slot: false,
      marks: [refunded + 20_000],
    });

    it('keeps counting when the counter reaches MAX_SCALED exactly', () => {
      const r = MAX_SCALED - 5000;
      const s = settle(p, keyAt(r), g(r), [15], 250).state;
      expect(s.limits[0]).toEqual({ used: 12_500, refunded: MAX_SCALED, emptiedAt: 0 });
    });

    it('starts over one unit past MAX_SCALED, and grants booked before give back nothing', () => {
      const r = MAX_SCALED - 4999;
      const moved = settle(p, keyAt(r), g(r), [15], 250);
      // The 5,000 still come back; the counter starts over, and the cutoff is just after now.
      expect(moved.state.limits[0]).toEqual({ used: 12_500, refunded: 0, emptiedAt: 251 });
      // G's other 15 units (its part still holds 12,500) are not given back any more.
      const again = settle(p, moved.state, moved.grant, [0], 250).state;
      expect(again).toEqual(moved.state);
      // A grant booked after the cutoff settles exactly on the new counter.
      const d = decide(p, moved.state, [2], 251);
      if (!d.ok) throw new Error('2 fit: 12,490 + 2,000 ≤ 20,000');
      expect(d.grant.marks).toEqual([14_490]);
      expect(refund(p, d.state, d.grant, 251)).toEqual(advance(p, moved.state, 251));
    });
  });

  // Refunds, row by row, on 10/s burst 20 (a unit is 1,000 scaled, the bucket drains 10 per ms):
  // a grant's part of the queue ends at its mark − (refunded since) − 10 × (ms since), and a
  // refund gives back at most that (see the header of tokenBucket.ts).
  describe('refunds give back at most what the grant still holds', () => {
    /** Grants by name, booked with `play`-checked rows; then `back` refunds them one by one. */
    function scene(rows: { at: number; cost: number }[]) {
      const { state, grants } = play(
        p,
        rows.map(({ at, cost }) => ({ at, cost, want: 'granted' as const })),
      );
      return { state, grants };
    }
    const remaining = (state: KeyState, at: number) => read(p, state, at).limits[0]!.remaining;

    it('a late refund after refill gives nothing back, even though the bucket never emptied', () => {
      // A 5 at 0 (marks 5,000), B 15 at 0 (used 20,000). By 500 the bucket drained 5,000: A's
      // part, [0, 5,000), is gone; A's part ends at 5,000 − 0 − 5,000 = 0: nothing back (the old
      // refund gave 5,000 back, and 6 more units would have fit).
      const { state, grants } = scene([
        { at: 0, cost: 5 },
        { at: 0, cost: 15 },
      ]);
      expect(grants[0]!.marks).toEqual([5000]);
      const s = refund(p, state, grants[0]!, 500);
      expect(s.limits[0]).toEqual({ used: 15_000, refunded: 0, emptiedAt: 0 });
      play(p, [{ at: 500, cost: 6, want: retry(100) }], s); // ⌈(15,000 + 6,000 − 20,000) / 10⌉
    });

    it('no refund for a grant booked in the key’s future (#18)', () => {
      // A 5 at 1000 (mark 5,000). Its key is dropped, the clock steps back to 500, and the key,
      // built anew, is filled with 20 at 500. A's refund at 500 must not take 5,000 of B's.
      const { grants } = scene([{ at: 1000, cost: 5 }]);
      const { state } = scene([{ at: 500, cost: 20 }]);
      const s = refund(p, state, grants[0]!, 500);
      expect(s).toEqual(state);
      play(p, [{ at: 500, cost: 1, want: retry(100) }], s);
    });

    it('a late refund after the bucket emptied and was booked again gives nothing back', () => {
      // A 20 at 0; by 2000 the bucket is empty; B 20 at 2000 (emptiedAt 2000). A, booked at 0 <
      // 2000, holds nothing: the bucket stays full, a unit waits 100.
      const { state, grants } = scene([
        { at: 0, cost: 20 },
        { at: 2000, cost: 20 },
      ]);
      const s = refund(p, state, grants[0]!, 2000);
      expect(s.limits[0]).toEqual({ used: 20_000, refunded: 0, emptiedAt: 2000 });
      play(p, [{ at: 2000, cost: 1, want: retry(100) }], s);
    });

    it('a partly drained grant gives back the part still held', () => {
      // A 5 at 0, B 15 at 0. At 300 the bucket drained 3,000 of A: A holds 2,000 (its part ends
      // at 5,000 − 3,000). Back 2,000: used 17,000 − 2,000 = 15,000, 5 units fit (the old
      // refund gave back all 5,000: 8 would fit).
      const { state, grants } = scene([
        { at: 0, cost: 5 },
        { at: 0, cost: 15 },
      ]);
      const s = refund(p, state, grants[0]!, 300);
      expect(s.limits[0]).toEqual({ used: 15_000, refunded: 2000, emptiedAt: 0 });
      expect(remaining(s, 300)).toBe(5);
      play(
        p,
        [
          { at: 300, cost: 5, want: 'granted' },
          { at: 300, cost: 1, want: retry(100) },
        ],
        s,
      );
    });

    it('a whole grant refunded from the front of the queue moves the grants behind it forward', () => {
      // A 5, B 3, C 2 at 0 (marks 5,000, 8,000, 10,000). A back whole at 0: 5,000, but B and C
      // move forward, so the counter grows (refunded 5,000) even though all of A came back.
      const { state, grants } = scene([
        { at: 0, cost: 5 },
        { at: 0, cost: 3 },
        { at: 0, cost: 2 },
      ]);
      const s1 = refund(p, state, grants[0]!, 0);
      expect(s1.limits[0]).toEqual({ used: 5000, refunded: 5000, emptiedAt: 0 });
      // At 300 the bucket drained 3,000: all of B. B's part ends at 8,000 − 5,000 − 3,000 = 0:
      // nothing back, and C's 2,000 stay (giving B 2,000 would free C's units).
      const s2 = refund(p, s1, grants[1]!, 300);
      expect(s2.limits[0]).toEqual({ used: 2000, refunded: 5000, emptiedAt: 0 });
      expect(remaining(s2, 300)).toBe(18);
    });

    it('an earlier grant refunded first moves a later one forward: both exact', () => {
      // A 5 (mark 5,000), B 5 (mark 10,000), C 10 at 0. At 300: A holds 2,000, B all 5,000.
      // A gives back 2,000 (refunded 2,000, used 15,000); B's part ends at 10,000 − 2,000 −
      // 3,000 = 5,000 ≥ 5,000: all 5,000 back. Used 10,000: 10 units fit, as in the queue.
      const { state, grants } = scene([
        { at: 0, cost: 5 },
        { at: 0, cost: 5 },
        { at: 0, cost: 10 },
      ]);
      const s1 = refund(p, state, grants[0]!, 300);
      expect(s1.limits[0]).toEqual({ used: 15_000, refunded: 2000, emptiedAt: 0 });
      const s2 = refund(p, s1, grants[1]!, 300);
      expect(s2.limits[0]).toEqual({ used: 10_000, refunded: 7000, emptiedAt: 0 });
      expect(remaining(s2, 300)).toBe(10);
    });

    it('a later grant refunded first is counted against an earlier one: conservative', () => {
      // Same grants, the other order. B first: its part ends at 10,000 − 3,000 = 7,000: all
      // 5,000 back (refunded 5,000, used 12,000). A's part ends at 5,000 − 5,000 − 3,000 < 0 by
      // the bound, though A still holds 2,000 (B was behind it): nothing back. Used stays 12,000:
      // 8 units fit where the queue would allow 10; never more.
      const { state, grants } = scene([
        { at: 0, cost: 5 },
        { at: 0, cost: 5 },
        { at: 0, cost: 10 },
      ]);
      const s1 = refund(p, state, grants[1]!, 300);
      expect(s1.limits[0]).toEqual({ used: 12_000, refunded: 5000, emptiedAt: 0 });
      const s2 = refund(p, s1, grants[0]!, 300);
      expect(s2).toEqual(s1);
      expect(remaining(s2, 300)).toBe(8);
    });

    it('a refund at the instant of the booking is exact', () => {
      // A 5 at 0; at 100 used 4,000. B 3 at 100 (used 7,000, mark 7,000), C 2 at 100 (9,000).
      // B's part ends at 7,000 − 0 − 0: all 3,000 back (refunded 3,000, used 6,000); C's part
      // ends at 9,000 − 3,000 = 6,000 = used (the back of the queue): all 2,000 back, the counter
      // stays. Used 4,000 as before B and C: 16 fit.
      const { state, grants } = scene([
        { at: 0, cost: 5 },
        { at: 100, cost: 3 },
        { at: 100, cost: 2 },
      ]);
      const s1 = refund(p, state, grants[1]!, 100);
      expect(s1.limits[0]).toEqual({ used: 6000, refunded: 3000, emptiedAt: 0 });
      const s2 = refund(p, s1, grants[2]!, 100);
      expect(s2.limits[0]).toEqual({ used: 4000, refunded: 3000, emptiedAt: 0 });
      expect(remaining(s2, 100)).toBe(16);
      // The last booking refunded at once restores the state exactly, counters included.
      const { state: before } = scene([{ at: 0, cost: 5 }]);
      const d = decide(p, before, compileCost(p, { requests: 3 }), 100);
      if (!d.ok) throw new Error('B fits');
      expect(refund(p, d.state, d.grant, 100)).toEqual(advance(p, before, 100));
    });
  });
});
