/**
 * advance.ts called directly: advance, isIdle, and what a limit change does to a key's state and
 * its grants' marks (rebase, sameRecords, restarts, remapMarks). Expected values are derived by
 * hand from the doc comments of advance.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  advance,
  compilePolicy,
  initialState,
  isIdle,
  rebase,
  remapMarks,
} from '../../src/limiter/index.js';
import { fullAt, restarts, sameRecords } from '../../src/limiter/advance.js';
import type { KeyState, LimitSpec, Policy } from '../../src/limiter/index.js';

const policyOf = (...limits: LimitSpec[]): Policy => compilePolicy({ limits });
const tb = (name: string, limit: number, interval: number, burst?: number): LimitSpec =>
  burst === undefined ? { name, limit, interval } : { name, limit, interval, burst };
const sw = (name: string, limit: number, interval: number): LimitSpec => ({
  name,
  limit,
  interval,
  algorithm: 'sliding-window',
});
const fw = (name: string, limit: number, interval: number): LimitSpec => ({
  name,
  limit,
  interval,
  algorithm: 'fixed-window',
});

describe('advance', () => {
  const p = policyOf(tb('b', 10, 1000));
  const s: KeyState = { at: 100, inFlight: 1, limits: [{ used: 5000, refunded: 0, emptiedAt: 0 }] };

  it('returns the state itself at its own instant or before it', () => {
    expect(advance(p, s, 100)).toBe(s);
    expect(advance(p, s, 50)).toBe(s);
  });

  it('moves the key to now, and keeps the limits array when no limit changed', () => {
    // 10 per s drains 10 scaled per ms: 200 ms drain 2,000.
    expect(advance(p, s, 300)).toEqual({
      at: 300,
      inFlight: 1,
      limits: [{ used: 3000, refunded: 0, emptiedAt: 0 }],
    });
    const w = policyOf(fw('w', 5, 1000));
    const ws: KeyState = { at: 100, inFlight: 0, limits: [{ start: 0, used: 2 }] };
    expect(advance(w, ws, 900).limits).toBe(ws.limits); // the window [0, 1000) still open
  });
});

describe('isIdle', () => {
  const p = policyOf(tb('b', 10, 1000), sw('w', 2, 1000));
  const booked: KeyState = {
    at: 0,
    inFlight: 0,
    limits: [
      { used: 5000, refunded: 0, emptiedAt: 0 },
      { used: 1, log: [0, 1] },
    ],
  };

  it.each([
    { what: 'a fresh key', state: initialState(p, 0), now: 0, idle: true },
    {
      what: 'a fresh key holding a slot',
      state: { ...initialState(p, 0), inFlight: 1 },
      now: 0,
      idle: false,
    },
    { what: 'a key holding units', state: booked, now: 499, idle: false },
    // The bucket is empty at 500, the window's entry still counts until 1000.
    { what: 'a key with one limit still holding', state: booked, now: 500, idle: false },
    { what: 'a key back at full capacity', state: booked, now: 1000, idle: true },
    {
      what: 'a key back at full capacity, a slot held',
      state: { ...booked, inFlight: 2 },
      now: 1000,
      idle: false,
    },
  ])('$what at $now: $idle', ({ state, now, idle }) => {
    expect(isIdle(p, state, now)).toBe(idle);
  });
});

describe('fullAt', () => {
  const p = policyOf(tb('b', 10, 1000), sw('w', 2, 1000));
  const booked: KeyState = {
    at: 0,
    inFlight: 0,
    limits: [
      { used: 5000, refunded: 0, emptiedAt: 0 },
      { used: 1, log: [0, 1] },
    ],
  };

  it('is the instant the last limit is full again, now once it is, Infinity with a slot held', () => {
    // The bucket is full at 500, the window's entry counts until 1000.
    expect(fullAt(p, booked, 0)).toBe(1000);
    expect(fullAt(p, booked, 600)).toBe(1000);
    expect(isIdle(p, booked, 999)).toBe(false);
    expect(fullAt(p, booked, 1000)).toBe(1000);
    expect(fullAt(p, booked, 1500)).toBe(1500);
    expect(fullAt(p, { ...booked, inFlight: 1 }, 5000)).toBe(Infinity);
    expect(fullAt(p, initialState(p, 0), 7)).toBe(7);
  });
});

describe('rebase', () => {
  // 10 per s, burst 20: a unit is 1,000 scaled; 5 units held, refunds counted since 0.
  const from = policyOf(tb('b', 10, 1000, 20), sw('w', 5, 1000), fw('f', 5, 1000));
  const state: KeyState = {
    at: 100,
    inFlight: 1,
    limits: [
      { used: 5000, refunded: 2000, emptiedAt: 0 },
      { used: 2, log: [100, 2] },
      { start: 0, used: 3 },
    ],
  };

  it('keeps every limit of the same name, algorithm and interval as it is (another burst, another order)', () => {
    const to = policyOf(fw('f', 7, 1000), sw('w', 9, 1000), tb('b', 10, 1000, 30));
    expect(rebase(from, to, state, 100)).toEqual({
      at: 100,
      inFlight: 1,
      limits: [state.limits[2], state.limits[1], state.limits[0]],
    });
  });

  it('keeps a bucket whose rate went up with its counters; cuts off its grants when the rate went down', () => {
    const up = rebase(from, policyOf(tb('b', 11, 1000, 20)), state, 100);
    expect(up.limits).toEqual([state.limits[0]]);
    // Rate down: the fill stays, the counter starts over, grants booked up to now give nothing.
    const down = rebase(from, policyOf(tb('b', 9, 1000, 20)), state, 100);
    expect(down.limits).toEqual([{ used: 5000, refunded: 0, emptiedAt: 101 }]);
  });

  it('rescales a bucket whose interval changed, rounding up, and cuts off its grants', () => {
    // 5,000 scaled of 1,000 per unit is 5 units; at 1,500 per unit (10 per 1.5 s) 7,500.
    const s = rebase(from, policyOf(tb('b', 10, 1500, 20)), state, 100);
    expect(s.limits).toEqual([{ used: 7500, refunded: 0, emptiedAt: 101 }]);
    // 1 scaled of 1,000 per unit at 3 per unit: 0.003, rounded up to 1.
    const one: KeyState = { at: 0, inFlight: 0, limits: [{ used: 1, refunded: 0, emptiedAt: 0 }] };
    const q = policyOf(tb('b', 10, 1000));
    expect(rebase(q, policyOf(tb('b', 10, 3)), one, 0).limits).toEqual([
      { used: 1, refunded: 0, emptiedAt: 1 },
    ]);
  });

  it('starts an empty bucket empty, whatever changed', () => {
    const empty: KeyState = { at: 0, inFlight: 0, limits: [{ used: 0 }] };
    const q = policyOf(tb('b', 10, 1000));
    expect(rebase(q, policyOf(tb('b', 5, 1000)), empty, 0).limits).toEqual([{ used: 0 }]);
    expect(rebase(q, policyOf(tb('b', 10, 2000)), empty, 0).limits).toEqual([{ used: 0 }]);
  });

  it('starts a new limit, a renamed one, one of another algorithm and a window of another interval empty', () => {
    const to = policyOf(tb('new', 10, 1000), sw('f', 5, 1000), sw('w', 5, 2000), fw('b', 5, 1000));
    expect(rebase(from, to, state, 1500)).toEqual({
      at: 1500,
      inFlight: 1,
      limits: [{ used: 0 }, { used: 0, log: [] }, { used: 0, log: [] }, { start: 1000, used: 0 }],
    });
  });

  it('advances the state to now first', () => {
    const to = policyOf(tb('b', 10, 1000, 20));
    expect(rebase(from, to, state, 300).limits).toEqual([
      { used: 3000, refunded: 2000, emptiedAt: 0 },
    ]);
  });
});

describe('sameRecords and restarts', () => {
  const from = policyOf(tb('b', 10, 1000), sw('w', 5, 1000));
  it.each([
    { what: 'the same policy', to: from, same: true, restart: false },
    {
      what: 'another order',
      to: policyOf(sw('w', 5, 1000), tb('b', 10, 1000)),
      same: true,
      restart: false,
    },
    {
      what: 'another burst',
      to: policyOf(tb('b', 10, 1000, 50), sw('w', 5, 1000)),
      same: true,
      restart: false,
    },
    {
      what: 'another rate',
      to: policyOf(tb('b', 11, 1000), sw('w', 5, 1000)),
      same: false,
      restart: false,
    },
    {
      what: 'a bucket of another interval',
      to: policyOf(tb('b', 10, 2000), sw('w', 5, 1000)),
      same: false,
      restart: false,
    },
    {
      what: 'a window of another interval',
      to: policyOf(tb('b', 10, 1000), sw('w', 5, 2000)),
      same: false,
      restart: true,
    },
    {
      what: 'a window of another rate',
      to: policyOf(tb('b', 10, 1000), sw('w', 6, 1000)),
      same: false,
      restart: false,
    },
    {
      what: 'a limit renamed',
      to: policyOf(tb('b', 10, 1000), sw('v', 5, 1000)),
      same: false,
      restart: true,
    },
    {
      what: 'a limit of another algorithm',
      to: policyOf(tb('b', 10, 1000), fw('w', 5, 1000)),
      same: false,
      restart: true,
    },
    { what: 'a limit dropped', to: policyOf(tb('b', 10, 1000)), same: false, restart: true },
    {
      what: 'a limit added',
      to: policyOf(tb('b', 10, 1000), sw('w', 5, 1000), fw('f', 1, 1000)),
      same: false,
      restart: false,
    },
    {
      what: 'two limits swapped by name',
      to: policyOf(tb('w', 10, 1000), sw('b', 5, 1000)),
      same: false,
      restart: true,
    },
  ])('$what: same records $same, restarts $restart', ({ to, same, restart }) => {
    expect(sameRecords(from, to)).toBe(same);
    expect(restarts(from, to)).toBe(restart);
  });
});

describe('remapMarks', () => {
  const from = policyOf(tb('a', 10, 1000), sw('w', 5, 1000), tb('b', 10, 1000));
  const marks = [5000, 0, 7000];

  it('carries each bucket’s mark by name while its interval stays', () => {
    const to = policyOf(tb('b', 20, 1000), tb('a', 5, 1000), sw('w', 5, 1000));
    expect(remapMarks(from, to, marks)).toEqual([7000, 5000, 0]);
  });

  it('gives 0 to a bucket of another interval, a new or renamed one, and to windows', () => {
    const to = policyOf(tb('a', 10, 2000), tb('c', 10, 1000), fw('b', 10, 1000), sw('w', 5, 1000));
    expect(remapMarks(from, to, marks)).toEqual([0, 0, 0, 0]);
  });

  it('gives 0 to every bucket of a grant without marks', () => {
    expect(remapMarks(from, policyOf(sw('w', 5, 1000), tb('a', 10, 1000)), undefined)).toEqual([
      0, 0,
    ]);
  });

  it('gives no marks for a policy without a token bucket', () => {
    expect(remapMarks(from, policyOf(sw('w', 5, 1000)), marks)).toBeUndefined();
    expect(remapMarks(from, policyOf(fw('a', 5, 1000), sw('w', 5, 1000)), marks)).toBeUndefined();
  });
});
