import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  advance,
  compileCost,
  compilePolicy,
  decide,
  initialState,
  read,
  refund,
  release,
  settle,
} from '../../src/limiter/index.js';
import type {
  AlgorithmName,
  CostSpec,
  Duration,
  GrantRecord,
  KeyState,
  Policy,
} from '../../src/limiter/index.js';
import { play, retry } from './play.js';

/** The end of a message about units of another length (#10, #11). */
const TAIL =
  'expected one amount per limit of the policy, 2: compile the cost with the policy it is used with';

const ALGORITHMS: AlgorithmName[] = ['token-bucket', 'sliding-window', 'fixed-window'];

function grant(
  policy: Policy,
  state: KeyState,
  cost: CostSpec,
  now: number,
): { state: KeyState; grant: GrantRecord } {
  const d = decide(policy, state, compileCost(policy, cost), now);
  if (!d.ok)
    throw new Error(`expected a grant at ${now}, refused: retry ${d.retryAfterMs} by ${d.limit}`);
  return { state: d.state, grant: d.grant };
}

const remaining = (policy: Policy, state: KeyState, now: number) =>
  Object.fromEntries(read(policy, state, now).limits.map((l) => [l.name, l.remaining]));

const tokensPolicy = (algorithm: AlgorithmName, limit: number, interval: Duration) =>
  compilePolicy({ limits: [{ name: 'tokens', limit, interval, dimension: 'tokens' }], algorithm });

describe('refund', () => {
  // 3 requests and 100 tokens per second. Before: {1 req, 40 tok} at 0 and {0 req, 30 tok} at 500.
  it.each([
    { algorithm: 'token-bucket', want: { rps: 3, tps: 90 } }, // tokens: 30,000 − 200 ms × 100 = 10,000
    { algorithm: 'sliding-window', want: { rps: 2, tps: 30 } }, // both entries still count at 700
    { algorithm: 'fixed-window', want: { rps: 2, tps: 30 } }, // [0, 1000) holds 1 and 70
  ] as const)(
    'restores exactly what a grant booked at the same instant ($algorithm)',
    ({ algorithm, want }) => {
      const p = compilePolicy({
        limits: [
          { name: 'rps', limit: 3, interval: '1s' },
          { name: 'tps', limit: 100, interval: '1s', dimension: 'tokens' },
        ],
        algorithm,
      });
      let s = initialState(p, 0);
      s = grant(p, s, { tokens: 40 }, 0).state;
      s = grant(p, s, { requests: 0, tokens: 30 }, 500).state;
      const before = structuredClone(s);
      const g = grant(p, s, { tokens: 20 }, 700);
      const back = refund(p, g.state, g.grant, 700);
      expect(back).toEqual(advance(p, before, 700));
      expect(remaining(p, back, 700)).toEqual(want);
      // The capacity is back: the same grant is admitted again, to the same state.
      expect(grant(p, back, { tokens: 20 }, 700).state).toEqual(g.state);
    },
  );

  it.each(ALGORITHMS)('keeps the concurrency slot: release frees it (%s)', (algorithm) => {
    const p = compilePolicy({ limits: [{ limit: 10, interval: '1s' }], concurrency: 1, algorithm });
    const g = grant(p, initialState(p, 0), {}, 0);
    expect(g.grant.slot).toBe(true);
    const refunded = refund(p, g.state, g.grant, 0);
    expect(refunded.inFlight).toBe(1);
    expect(decide(p, refunded, [1], 0)).toMatchObject({ ok: false, limit: 'concurrency' });
    const freed = release(refunded, g.grant);
    expect(freed.inFlight).toBe(0);
    expect(freed.limits).toBe(refunded.limits);
    expect(decide(p, freed, [1], 0).ok).toBe(true);
  });

  it('gives nothing back once the grant has left the sliding window', () => {
    const p = compilePolicy({
      limits: [{ limit: 3, interval: 1000 }],
      algorithm: 'sliding-window',
    });
    const a = grant(p, initialState(p, 0), {}, 0);
    const b = grant(p, a.state, { requests: 2 }, 900);
    const s = refund(p, b.state, a.grant, 1000);
    expect(s).toEqual(advance(p, b.state, 1000));
    expect(s.limits[0]).toEqual({ used: 2, log: [900, 2] });
  });
});

describe('settle up: an extra charge is debt that later requests wait out', () => {
  it('token bucket: 100 tokens/s, 100 booked then settled at 150', () => {
    // One token is 1,000 scaled; the bucket drains 100 per ms.
    const p = tokensPolicy('token-bucket', 100, '1s');
    const g = grant(p, initialState(p, 0), { tokens: 100 }, 0);
    const { state, grant: moved } = settle(
      p,
      g.state,
      g.grant,
      compileCost(p, { tokens: 150 }, 'settle', false),
      0,
    );
    expect(moved.units).toEqual([150]);
    // The extra charge joins the back of the queue; the grant's mark (100,000) stays.
    expect(moved.marks).toEqual([100_000]);
    expect(state.limits[0]).toEqual({ used: 150_000, refunded: 0, emptiedAt: 0 });
    expect(read(p, state, 0).limits[0]).toMatchObject({ remaining: 0, resetMs: 1500 });
    play(
      p,
      [
        { at: 0, cost: { tokens: 1 }, want: retry(510) }, // ⌈(150,000 + 1,000 − 100,000) / 100⌉
        { at: 509, cost: { tokens: 1 }, want: retry(1) },
        { at: 510, cost: { tokens: 1 }, want: 'granted' },
      ],
      state,
    );
  });

  it('sliding window: 100 tokens/s, 100 booked at 0, settled at 150 at t = 200', () => {
    const p = tokensPolicy('sliding-window', 100, '1s');
    const g = grant(p, initialState(p, 0), { tokens: 100 }, 0);
    const { state } = settle(p, g.state, g.grant, [150], 200);
    expect(state.limits[0]).toEqual({ used: 150, log: [0, 100, 200, 50] }); // charged at 200
    expect(read(p, state, 200).limits[0]).toMatchObject({ remaining: 0, resetMs: 1000 });
    play(
      p,
      [
        { at: 500, cost: { tokens: 1 }, want: retry(500) }, // the 100 at 0 leave at 1000
        { at: 1000, cost: { tokens: 51 }, want: retry(200) }, // 50 + 51 > 100 until 1200
        { at: 1000, cost: { tokens: 50 }, want: 'granted' },
      ],
      state,
    );
  });

  it('fixed window: 100 tokens/s, 100 booked at 0, settled at 250 at t = 200', () => {
    const p = tokensPolicy('fixed-window', 100, '1s');
    const g = grant(p, initialState(p, 0), { tokens: 100 }, 0);
    const { state } = settle(p, g.state, g.grant, [250], 200);
    expect(state.limits[0]).toEqual({ start: 0, used: 250 });
    expect(read(p, state, 200).limits[0]).toMatchObject({ remaining: 0, resetMs: 2800 }); // ⌈250 / 100⌉ windows
    play(
      p,
      [
        { at: 200, cost: { tokens: 1 }, want: retry(1800) }, // ⌈151 / 100⌉ = 2 windows
        { at: 1000, cost: { tokens: 1 }, want: retry(1000) }, // 150 carried: 1 more window
        { at: 2000, cost: { tokens: 51 }, want: retry(1000) }, // 50 carried
        { at: 2000, cost: { tokens: 50 }, want: 'granted' },
      ],
      state,
    );
  });

  it('token bucket: an extra charge later is booked after the refill so far (1,200 settled at 1,500)', () => {
    // 2,000 tokens per minute: one token is 60,000 scaled, the bucket drains 2,000 per ms.
    const p = tokensPolicy('token-bucket', 2000, '1m');
    const g = grant(p, initialState(p, 0), { tokens: 1200 }, 0);
    const { state } = settle(p, g.state, g.grant, [1500], 600);
    // 72,000,000 − 600 × 2,000 + 300 × 60,000
    expect(state.limits[0]).toEqual({ used: 88_800_000, refunded: 0, emptiedAt: 0 });
    expect(remaining(p, state, 600)).toEqual({ tokens: 520 });
  });
});

describe('settle down: the difference goes back to what the grant booked', () => {
  it('token bucket: 1,200 settled at 950 gives back 250', () => {
    const p = tokensPolicy('token-bucket', 2000, '1m');
    const g = grant(p, initialState(p, 0), { tokens: 1200 }, 0);
    const { state } = settle(p, g.state, g.grant, [950], 0);
    // Its part ends at its mark, 72,000,000: all 250 × 60,000 it asks is still there. Not all of
    // the grant is given back, so the refund counter grows by it.
    expect(state.limits[0]).toEqual({ used: 950 * 60_000, refunded: 250 * 60_000, emptiedAt: 0 });
    expect(remaining(p, state, 0)).toEqual({ tokens: 1050 });
    play(
      p,
      [
        { at: 0, cost: { tokens: 1051 }, want: retry(30) }, // 60,000 over, drained at 2,000 per ms
        { at: 0, cost: { tokens: 1050 }, want: 'granted' },
      ],
      state,
    );
  });

  it('sliding window: the difference goes to the entry the grant booked, and a later settle starts from actual', () => {
    const p = tokensPolicy('sliding-window', 2000, '1m');
    const g = grant(p, initialState(p, 0), { tokens: 1200 }, 0);
    const down = settle(p, g.state, g.grant, [950], 1000);
    expect(down.grant).toEqual({ ...g.grant, units: [950] });
    expect(down.state.limits[0]).toEqual({ used: 950, log: [0, 950] });
    expect(remaining(p, down.state, 1000)).toEqual({ tokens: 1050 });
    // From 950 to 1,500: the 550 more are charged at 2,000.
    const up = settle(p, down.state, down.grant, [1500], 2000);
    expect(up.state.limits[0]).toEqual({ used: 1500, log: [0, 950, 2000, 550] });
    // From 1,500 to 1,000: 500 back, to the entry the grant booked at 0.
    const again = settle(p, up.state, up.grant, [1000], 3000);
    expect(again.state.limits[0]).toEqual({ used: 1000, log: [0, 450, 2000, 550] });
    // Settling at the units it holds changes nothing.
    expect(settle(p, again.state, again.grant, [1000], 3000).state).toEqual(again.state);
  });

  it('fixed window: gives back within the window, and nothing once that window has closed', () => {
    const p = tokensPolicy('fixed-window', 2000, '1m');
    const a = grant(p, initialState(p, 0), { tokens: 1200 }, 0);
    const down = settle(p, a.state, a.grant, [950], 1000);
    expect(down.state.limits[0]).toEqual({ start: 0, used: 950 });
    const b = grant(p, down.state, { tokens: 500 }, 60_000);
    const late = settle(p, b.state, down.grant, [0], 60_500);
    expect(late.state.limits[0]).toEqual({ start: 60_000, used: 500 });
  });
});

describe('release', () => {
  const p = compilePolicy({ limits: [{ limit: 10, interval: '1s' }], concurrency: 2 });

  it('frees exactly one slot per grant that holds one', () => {
    const a = grant(p, initialState(p, 0), {}, 0);
    const b = grant(p, a.state, {}, 0);
    expect(b.state.inFlight).toBe(2);
    expect(decide(p, b.state, [1], 0)).toMatchObject({
      ok: false,
      limit: 'concurrency',
      retryAfterMs: 0,
    });
    const one = release(b.state, a.grant);
    expect(one.inFlight).toBe(1);
    expect(one.at).toBe(b.state.at);
    expect(release(one, b.grant).inFlight).toBe(0);
  });

  it('changes nothing for a grant without a slot, or when no slot is held', () => {
    const d = decide(p, initialState(p, 0), [1], 0, false);
    if (!d.ok) throw new Error('expected a grant');
    expect(d.grant.slot).toBe(false);
    expect(d.state.inFlight).toBe(0);
    expect(release(d.state, d.grant)).toBe(d.state);
    const s = initialState(p, 0);
    expect(release(s, { at: 0, units: [1], slot: true })).toBe(s);
  });
});

describe('units of another length (#10)', () => {
  const p = compilePolicy({
    limits: [
      { name: 'rps', limit: 10, interval: '1s' },
      { name: 'tpm', limit: 1000, interval: '1m', dimension: 'tokens' },
    ],
  });
  const booked = grant(p, initialState(p, 0), { tokens: 100 }, 0);

  it('settle throws InvalidArgumentError for actual units or a record of another length', () => {
    expect(() => settle(p, booked.state, booked.grant, [1], 10)).toThrow(InvalidArgumentError);
    expect(() => settle(p, booked.state, booked.grant, [1, 50, 0], 10)).toThrow(
      `tollgate: settle: actual is [1,50,0] (an array), 3 amounts; ${TAIL}`,
    );
    const short = { ...booked.grant, units: [1] };
    expect(() => settle(p, booked.state, short, [1, 50], 10)).toThrow(
      `tollgate: settle: grant.units is [1] (an array), 1 amount; ${TAIL}`,
    );
    expect(settle(p, booked.state, booked.grant, [1, 50], 10).grant.units).toEqual([1, 50]);
  });

  it('refund throws InvalidArgumentError for a record of another length', () => {
    const long = { ...booked.grant, units: [1, 100, 7] };
    expect(() => refund(p, booked.state, long, 10)).toThrow(
      `tollgate: refund: grant.units is [1,100,7] (an array), 3 amounts; ${TAIL}`,
    );
  });
});

// Issue #18: a token bucket's refunds after settles that interleave with other grants. A grant's
// mark is where its part of the queue ended; once the bucket has emptied and been booked again at
// the grant's own instant, an extra charge of that grant must lower the mark to the back of the
// new queue, or a later refund takes back capacity that has already drained.
describe('refunds after interleaved settles never give back drained capacity (#18)', () => {
  // 10 per second: a unit is 1,000 scaled, the bucket holds 10,000 and drains 10 per ms.
  const p = compilePolicy({ limits: [{ name: 'rps', limit: 10, interval: '1s' }] });
  const units = (n: number) => [n];

  /**
   * The sequence at `t0`: X 5 and Y 3, refund X, A 2, refund Y, settle A to 0, B 1.
   * Returns the state, A (0 units, its mark from before the bucket emptied) and B.
   */
  function staleMark(t0: number) {
    const x = grant(p, initialState(p, t0), { requests: 5 }, t0); // used 5,000, mark 5,000
    const y = grant(p, x.state, { requests: 3 }, t0); // used 8,000, mark 8,000
    // X's part, [0, 5,000), is all there: 5,000 back; Y moves forward (refunded 5,000).
    let s = refund(p, y.state, x.grant, t0);
    expect(s.limits[0]).toEqual({ used: 3000, refunded: 5000, emptiedAt: t0 });
    const a = grant(p, s, { requests: 2 }, t0); // used 5,000, mark 5,000 + 5,000 = 10,000
    expect(a.grant.marks).toEqual([10_000]);
    // Y's part ends at 8,000 − 5,000 = 3,000: all 3,000 back (refunded 8,000, used 2,000).
    s = refund(p, a.state, y.grant, t0);
    expect(s.limits[0]).toEqual({ used: 2000, refunded: 8000, emptiedAt: t0 });
    // A's part ends at 10,000 − 8,000 = 2,000 = used: the bucket is empty again.
    const zero = settle(p, s, a.grant, units(0), t0);
    expect(zero.state.limits[0]).toEqual({ used: 0 });
    // B books into the empty bucket at the same instant: the counter starts over, and A, booked
    // at that instant too, is not cut off by emptiedAt. A's mark (10,000) is now stale.
    const b = grant(p, zero.state, { requests: 1 }, t0);
    expect(b.state.limits[0]).toEqual({ used: 1000, refunded: 0, emptiedAt: t0 });
    expect(zero.grant.marks).toEqual([10_000]);
    expect(b.grant.marks).toEqual([1000]);
    return { state: b.state, a: zero.grant, b: b.grant };
  }

  it('lowers a stale mark on an extra charge, so a later refund gives back only what is left', () => {
    const { state, a } = staleMark(0);
    // A is charged 2 again: its 2,000 join the back, behind B. Its mark is lowered to the back
    // of the queue, 1,000 + 2,000 + 0 refunded = 3,000.
    const up = settle(p, state, a, units(2), 0);
    expect(up.state.limits[0]).toEqual({ used: 3000, refunded: 0, emptiedAt: 0 });
    expect(up.grant.marks).toEqual([3000]);
    // At 200 the bucket drained 2,000: all of B's 1,000 and 1,000 of A's 2,000. C books 9.
    const c = grant(p, up.state, { requests: 9 }, 200);
    expect(c.state.limits[0]).toEqual({ used: 10_000, refunded: 0, emptiedAt: 0 });
    // A's part ends at 3,000 − 0 − 10 × 200 = 1,000: that is all it gets back (not 2,000).
    const back = settle(p, c.state, up.grant, units(0), 200);
    expect(back.state.limits[0]).toEqual({ used: 9000, refunded: 1000, emptiedAt: 0 });
    // So a cost of 2 does not fit at 200 (9,000 + 2,000 > 10,000): it waits 100 ms.
    play(p, [{ at: 200, cost: 2, want: retry(100) }], back.state);
  });

  it('changes neither the state nor the grant’s mark when settled at the units it holds', () => {
    // A holds 0 units with a stale mark. Settling it at 0 is no event: the mark stays 10,000. Were
    // it lowered to the back of the queue now (1,000), a later extra charge could not raise it to
    // where that charge really ends, and A's refunds would give back less than A holds.
    const { state, a } = staleMark(0);
    const same = settle(p, state, a, units(0), 0);
    expect(same.state).toEqual(state);
    expect(same.grant).toEqual(a);
    const c = grant(p, state, { requests: 5 }, 0); // behind B: the back is at 6,000
    const up = settle(p, c.state, same.grant, units(2), 0);
    expect(up.grant.marks).toEqual([8000]);
  });

  it('carries the back of the queue to the grant’s instant, counting refunds, when the charge comes later', () => {
    const { state, a, b } = staleMark(1000);
    // D 4 at 1000 behind B (used 5,000); B refunded at 1000 from the front: 1,000 back, D moves
    // forward, so the counter grows (refunded 1,000, used 4,000).
    const d = grant(p, state, { requests: 4 }, 1000);
    const s = refund(p, d.state, b, 1000);
    expect(s.limits[0]).toEqual({ used: 4000, refunded: 1000, emptiedAt: 1000 });
    // A charged 2 at 1050: used 4,000 − 500 + 2,000 = 5,500. The back of the queue at 1050, in
    // counter terms and carried back to A's instant 1000: 5,500 + 1,000 + 10 × 50 = 7,000.
    const up = settle(p, s, a, units(2), 1050);
    expect(up.state.limits[0]).toEqual({ used: 5500, refunded: 1000, emptiedAt: 1000 });
    expect(up.grant.marks).toEqual([7000]);
    // E books 3 behind A at 1050 (used 8,500). At 1500 the bucket drained 4,500: D's 3,500 and
    // 1,000 of A's 2,000; A holds 1,000, E 3,000 (used 4,000).
    const e = grant(p, up.state, { requests: 3 }, 1050);
    // A's part ends at 7,000 − 1,000 − 10 × 500 = 1,000: exactly what it holds comes back.
    const back = settle(p, e.state, up.grant, units(0), 1500);
    expect(back.state.limits[0]).toEqual({ used: 3000, refunded: 2000, emptiedAt: 1000 });
    play(
      p,
      [
        { at: 1500, cost: 8, want: retry(100) }, // 3,000 + 8,000 − 10,000 = 1,000 over
        { at: 1500, cost: 7, want: 'granted' },
      ],
      back.state,
    );
  });
});
