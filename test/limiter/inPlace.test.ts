/**
 * The in-place helpers called directly, on hand-made steps: what the random schedules of
 * test/props/inPlace.props.test.ts reach only rarely (a log that expires in part, a fixed window
 * that closes under debt), owned copies of states with counters, and the edges of adopt, plain and
 * releaseInPlace.
 */
import { describe, expect, it } from 'vitest';
import { compilePolicy, decide, initialState } from '../../src/limiter/index.js';
import type { KeyState, LimitSpec, Policy } from '../../src/limiter/index.js';
import {
  adopt,
  decideInPlace,
  marksOf,
  ownLimits,
  plain,
  releaseInPlace,
  type OwnedKeyState,
  type OwnedSlidingWindow,
} from '../../src/limiter/inPlace.js';

const own = (policy: Policy, state: KeyState): OwnedKeyState => ({
  at: state.at,
  inFlight: state.inFlight,
  limits: ownLimits(policy, state),
});

/**
 * Decide `steps` (instant, units, granted) on a pure state and on an owned one side by side: the same
 * outcome every time, and the same state after. Returns the last pure state.
 */
function sideBySide(policy: Policy, steps: readonly [number, number[], boolean][]): KeyState {
  let pure = initialState(policy, 0);
  const mine = own(policy, pure);
  for (const [at, units, ok] of steps) {
    const d = decide(policy, pure, units, at);
    const r = decideInPlace(policy, mine, units, at);
    expect(d.ok, `outcome at ${at}`).toBe(ok);
    if (d.ok) {
      expect(r, `grant at ${at}`).toBeUndefined();
      expect(marksOf(policy, mine)).toEqual(d.grant.marks);
      pure = d.state;
    } else {
      expect(r, `refusal at ${at}`).toEqual({
        ok: false,
        retryAfterMs: d.retryAfterMs,
        limit: d.limit,
      });
    }
    expect(plain(policy, mine), `state after ${at}`).toEqual(plain(policy, pure));
  }
  return pure;
}

const one = (spec: LimitSpec) => compilePolicy({ limits: [spec] });

describe('decideInPlace, step by step against decide', () => {
  it('sliding window: drops the entries that left the window, some or all, before booking', () => {
    const p = one({ name: 'w', limit: 3, interval: 1000, algorithm: 'sliding-window' });
    const s = sideBySide(p, [
      [0, [1], true],
      [500, [1], true],
      [600, [1], true],
      [900, [1], false], // (−100, 900] holds 3; the entry at 0 leaves at 1000
      [1200, [1], true], // the entry at 0 left: [500, 1, 600, 1, 1200, 1]
      [1550, [2], false], // 500 left: 600 and 1200 stay, 2 more do not fit until 1600
      [1600, [2], true], // 600 left too: [1200, 1, 1600, 2]
      [5000, [1], true], // every entry left
      [5000, [0], true],
    ]);
    expect(s.limits[0]).toEqual({ used: 1, log: [5000, 1] });
  });

  it('fixed window: a closed window carries its debt forward, window by window', () => {
    const p = one({ name: 'f', limit: 3, interval: 1000, algorithm: 'fixed-window' });
    // An extra charge left the window [0, 1000) holding 8: 5 of debt, 3 paid per window.
    let pure: KeyState = { at: 0, inFlight: 0, limits: [{ start: 0, used: 8 }] };
    const mine = own(p, pure);
    for (const [at, units, want] of [
      [100, [1], 1900], // ⌈(8 + 1 − 3) / 3⌉ = 2 windows: until 2000
      [1500, [1], 500], // [1000, 2000) holds 5: ⌈(5 + 1 − 3) / 3⌉ = 1 window, until 2000
      [2500, [1], 0], // [2000, 3000) holds 8 − 2 × 3 = 2: fits
      [2600, [1], 400], // 3: until 3000
      [3000, [3], 0], // [3000, 4000) holds 0
    ] as const) {
      const d = decide(p, pure, units, at);
      expect(d.ok ? 0 : d.retryAfterMs, `at ${at}`).toBe(want);
      const r = decideInPlace(p, mine, units, at);
      expect(r).toEqual(
        d.ok ? undefined : { ok: false, retryAfterMs: d.retryAfterMs, limit: d.limit },
      );
      if (d.ok) pure = d.state;
      expect(plain(p, mine)).toEqual(plain(p, pure));
    }
    expect(pure.limits[0]).toEqual({ start: 3000, used: 3 });
  });

  it('token bucket: drains in part or to empty before booking, and books 0 into an empty bucket', () => {
    const p = one({ name: 'b', limit: 10, interval: 1000, burst: 20 });
    const s = sideBySide(p, [
      [0, [20], true],
      [250, [5], false], // 17,500 + 5,000 − 20,000 over: 250 ms
      [250, [2], true],
      [5000, [0], true], // drained empty: nothing booked
      [5000, [3], true], // into an empty bucket: the counter starts over at 5000
    ]);
    expect(s.limits[0]).toEqual({ used: 3000, refunded: 0, emptiedAt: 5000 });
  });

  it('takes a slot by default when the policy has a concurrency limit, as decide does', () => {
    const p = compilePolicy({ limits: [{ limit: 5, interval: '1s' }], concurrency: 1 });
    const mine = own(p, initialState(p, 0));
    expect(decideInPlace(p, mine, [1], 0)).toBeUndefined();
    expect(mine.inFlight).toBe(1);
    expect(decideInPlace(p, mine, [1], 0)).toEqual({
      ok: false,
      retryAfterMs: 0,
      limit: 'concurrency',
    });
  });
});

describe('owned copies', () => {
  const p = compilePolicy({
    limits: [
      { name: 'b', limit: 10, interval: 1000 },
      { name: 'w', limit: 5, interval: 1000, algorithm: 'sliding-window' },
      { name: 'f', limit: 5, interval: 1000, algorithm: 'fixed-window' },
    ],
  });
  const state: KeyState = {
    at: 300,
    inFlight: 1,
    limits: [
      { used: 4000, refunded: 2500, emptiedAt: 100 },
      { used: 3, log: [100, 1, 300, 2] },
      { start: 0, used: 4 },
    ],
  };

  it('keeps a bucket’s counters and cutoff, and gives back the same plain data', () => {
    const mine = own(p, state);
    expect(mine.limits[0]).toEqual({ used: 4000, refunded: 2500, emptiedAt: 100 });
    expect(plain(p, mine)).toEqual(state);
    expect(marksOf(p, mine)).toEqual([6500, 0, 0]);
  });

  it('reads a bucket without a cutoff (as a snapshot may hold it) as having none, and gives it back without one', () => {
    const noCutoff: KeyState = {
      at: 300,
      inFlight: 0,
      limits: [{ used: 4000, refunded: 0 }, state.limits[1]!, state.limits[2]!],
    };
    const mine = own(p, noCutoff);
    expect(mine.limits[0]).toEqual({ used: 4000, refunded: 0, emptiedAt: -Infinity });
    const back = plain(p, mine);
    expect(Object.keys(back.limits[0]!)).toEqual(['used', 'refunded']);
    expect(JSON.parse(JSON.stringify(back))).toEqual(noCutoff);
    // A pure state without a cutoff too.
    expect(Object.keys(plain(p, noCutoff).limits[0]!)).toEqual(['used', 'refunded']);
  });

  it('adopt takes a state that shares a log with the owned one without losing it', () => {
    const mine = own(p, state);
    const log = (mine.limits[1] as OwnedSlidingWindow).log;
    const from: KeyState = {
      at: 400,
      inFlight: 1,
      limits: [mine.limits[0]!, { used: 3, log }, { start: 0, used: 5 }],
    };
    adopt(p, mine, from);
    expect(plain(p, mine)).toEqual({
      ...from,
      limits: [state.limits[0], { used: 3, log: [100, 1, 300, 2] }, { start: 0, used: 5 }],
    });
  });

  it('releaseInPlace frees a slot only for a grant that holds one, and never below 0', () => {
    const mine = own(p, state);
    releaseInPlace(mine, { at: 0, units: [1, 1, 1], slot: false });
    expect(mine.inFlight).toBe(1);
    releaseInPlace(mine, { at: 0, units: [1, 1, 1], slot: true });
    expect(mine.inFlight).toBe(0);
    releaseInPlace(mine, { at: 0, units: [1, 1, 1], slot: true });
    expect(mine.inFlight).toBe(0);
  });
});
