import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { compileCost, compilePolicy, decide, initialState, read } from '../../src/limiter/index.js';
import { decideInPlace, ownLimits, plain, type OwnedKeyState } from '../../src/limiter/inPlace.js';
import { play, retry } from './play.js';

/** The end of a message about units of another length (#10, #11). */
const TAIL =
  'expected one amount per limit of the policy, 2: compile the cost with the policy it is used with';

describe('decide', () => {
  it('admits a request 1.5 s after the last one under a limit of 1/s (seed: stale counts)', () => {
    const p = compilePolicy({ limits: [{ limit: 1, interval: '1s' }] });
    const first = decide(p, initialState(p, 0), compileCost(p, {}), 0);
    expect(first.ok).toBe(true);
    expect(read(p, first.state, 1500).limits[0]!.remaining).toBe(1);
    expect(decide(p, first.state, compileCost(p, {}), 1500).ok).toBe(true);
  });

  it('books all limits or none, and names the limit with the longest wait', () => {
    // rps: 2 per second, sliding. tpm: 1,000 tokens per minute, token bucket (one token is
    // 60,000 scaled, drained 1,000 per ms, so one token takes 60 ms).
    const p = compilePolicy({
      limits: [
        { name: 'rps', limit: 2, interval: '1s', algorithm: 'sliding-window' },
        { name: 'tpm', limit: 1000, interval: '1m', dimension: 'tokens' },
      ],
    });
    const { state } = play(p, [
      { at: 0, cost: { tokens: 600 }, want: 'granted' }, // rps 1/2, tpm 600/1000
      { at: 0, cost: { tokens: 500 }, want: retry(6000, 'tpm') }, // 100 tokens over: 6,000,000 / 1,000
      { at: 0, cost: { tokens: 100 }, want: 'granted' }, // the refusal booked no request: rps 2/2
      { at: 0, cost: { tokens: 0 }, want: retry(1000, 'rps') }, // the request at 0 leaves at 1000
      { at: 0, cost: { tokens: 400 }, want: retry(6000, 'tpm') }, // both refuse; tpm waits longer
      { at: 1000, cost: { tokens: 400 }, want: retry(5000, 'tpm') }, // 1,000 ms refilled ~16.7 tokens
      { at: 6000, cost: { tokens: 400 }, want: 'granted' },
    ]);
    expect(read(p, state, 6000).limits.map((l) => l.remaining)).toEqual([1, 0]);
  });

  it('refuses when every slot is held, with the limits wait as a lower bound', () => {
    const p = compilePolicy({ limits: [{ limit: 1, interval: '1s' }], concurrency: 1 });
    play(p, [
      { at: 0, want: 'granted' },
      { at: 0, want: retry(1000, 'concurrency') }, // the bucket is also empty until 1000
      { at: 5000, want: retry(0, 'concurrency') }, // room in the bucket, but no slot
    ]);
  });

  it('counts slots alone when the policy has only a concurrency limit', () => {
    const p = compilePolicy({ limits: [], concurrency: 1 });
    const { state } = play(p, [
      { at: 0, want: 'granted' },
      { at: 0, want: retry(0, 'concurrency') },
    ]);
    // A caller that already holds a slot asks without one.
    expect(decide(p, state, [], 0, false).ok).toBe(true);
  });
});

describe('units of another length (#10)', () => {
  // Two limits: units must have two amounts. One or three would be read against the wrong limits.
  const p = compilePolicy({
    limits: [
      { name: 'rps', limit: 10, interval: '1s' },
      { name: 'tpm', limit: 1000, interval: '1m', dimension: 'tokens' },
    ],
  });

  it('decide throws InvalidArgumentError naming both lengths', () => {
    const state = initialState(p, 0);
    for (const units of [[1], [1, 10, 5], []]) {
      expect(() => decide(p, state, units, 0)).toThrow(InvalidArgumentError);
      expect(() => decide(p, state, units, 0)).toThrow(
        `tollgate: decide: units is ${JSON.stringify(units)} (an array), ${units.length} amount${units.length === 1 ? '' : 's'}; expected one amount per limit of the policy, 2: compile the cost with the policy it is used with`,
      );
    }
    expect(decide(p, state, [1, 10], 0).ok).toBe(true);
  });

  it('decideInPlace throws the same and leaves the owned state untouched', () => {
    const owned: OwnedKeyState = { at: 0, inFlight: 0, limits: ownLimits(p, initialState(p, 0)) };
    const before = plain(p, owned);
    expect(() => decideInPlace(p, owned, [1], 5)).toThrow(
      `tollgate: decide: units is [1] (an array), 1 amount; ${TAIL}`,
    );
    expect(plain(p, owned)).toEqual(before);
    expect(decideInPlace(p, owned, [1, 10], 5)).toBeUndefined();
  });
});

describe('decide: the grant record', () => {
  it('carries marks only when the policy has a token bucket (absent, not undefined, otherwise)', () => {
    const windows = compilePolicy({
      limits: [{ limit: 2, interval: '1s' }],
      algorithm: 'fixed-window',
    });
    const d = decide(windows, initialState(windows, 0), [1], 0);
    if (!d.ok) throw new Error('expected a grant');
    expect(Object.keys(d.grant).sort()).toEqual(['at', 'slot', 'units']);
    const mixed = compilePolicy({
      limits: [
        { name: 'w', limit: 2, interval: '1s', algorithm: 'sliding-window' },
        { name: 'b', limit: 2, interval: '1s' },
      ],
    });
    const m = decide(mixed, initialState(mixed, 0), [1, 2], 0);
    if (!m.ok) throw new Error('expected a grant');
    expect(m.grant.marks).toEqual([0, 2000]); // a window's mark is 0
  });
});
