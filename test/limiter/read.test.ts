import { describe, expect, it } from 'vitest';
import { compileCost, compilePolicy, decide, initialState, read } from '../../src/limiter/index.js';
import type { AlgorithmName, KeyState, Policy } from '../../src/limiter/index.js';

function granted(policy: Policy, state: KeyState, now: number, cost = {}): KeyState {
  const d = decide(policy, state, compileCost(policy, cost), now);
  if (!d.ok) throw new Error(`expected a grant at ${now}`);
  return d.state;
}

describe('read', () => {
  // The seed: limit 1 per second, one request at t = 0. A read must count the time that passed.
  // Token bucket: used 1,000 scaled, drained 1 per ms. Windows: the request counts in [0, 1000).
  describe.each<[AlgorithmName, { at: number; remaining: number; resetMs: number }[]]>([
    [
      'token-bucket',
      [
        { at: 0, remaining: 0, resetMs: 1000 },
        { at: 500, remaining: 0, resetMs: 500 }, // half a token back: not a whole one
        { at: 999, remaining: 0, resetMs: 1 },
        { at: 1000, remaining: 1, resetMs: 0 },
        { at: 1500, remaining: 1, resetMs: 0 },
      ],
    ],
    [
      'sliding-window',
      [
        { at: 0, remaining: 0, resetMs: 1000 },
        { at: 500, remaining: 0, resetMs: 500 },
        { at: 999, remaining: 0, resetMs: 1 },
        { at: 1000, remaining: 1, resetMs: 0 },
        { at: 1500, remaining: 1, resetMs: 0 },
      ],
    ],
    [
      'fixed-window',
      [
        { at: 0, remaining: 0, resetMs: 1000 },
        { at: 500, remaining: 0, resetMs: 500 },
        { at: 999, remaining: 0, resetMs: 1 },
        { at: 1000, remaining: 1, resetMs: 0 },
        { at: 1500, remaining: 1, resetMs: 0 },
      ],
    ],
  ])('%s, limit 1/s, one request at 0', (algorithm, rows) => {
    const p = compilePolicy({ limits: [{ limit: 1, interval: '1s' }], algorithm });
    const state = granted(p, initialState(p, 0), 0);

    it.each(rows)(
      'reads remaining $remaining, resetMs $resetMs at $at',
      ({ at, remaining, resetMs }) => {
        expect(read(p, state, at).limits[0]).toMatchObject({ remaining, resetMs });
      },
    );

    it('admits the next request at +1500 ms, as the read said', () => {
      expect(read(p, state, 1500).limits[0]!.remaining).toBe(1);
      expect(decide(p, state, compileCost(p, {}), 1500).ok).toBe(true);
    });

    it('does not change the state it reads', () => {
      const copy = structuredClone(state);
      read(p, state, 1500);
      expect(state).toEqual(copy);
    });

    it('reads as of the key time when the clock is behind it', () => {
      expect(read(p, state, -500)).toEqual(read(p, state, 0));
    });
  });

  it.each<[AlgorithmName, number]>([
    ['token-bucket', 750], // used 1,000 at 250, 750 left at 500
    ['sliding-window', 750], // the entry at 250 leaves at 1250
    ['fixed-window', 500], // the window [0, 1000) closes at 1000, whenever the request came
  ])('%s: a request at 250 read at 500 resets in %i ms', (algorithm, resetMs) => {
    const p = compilePolicy({ limits: [{ limit: 1, interval: '1s' }], algorithm });
    const state = granted(p, initialState(p, 0), 250);
    expect(read(p, state, 500).limits[0]).toMatchObject({ remaining: 0, resetMs });
  });

  it('describes every limit of the policy, and the slots held', () => {
    const p = compilePolicy({
      limits: [
        { name: 'rps', limit: 10, interval: '1s', algorithm: 'sliding-window' },
        { name: 'tpm', limit: 90_000, interval: '1m', burst: 100_000, dimension: 'tokens' },
      ],
      concurrency: 2,
    });
    const state = granted(p, initialState(p, 0), 0, { tokens: 30_000 });
    // tpm: used 30,000 × 60,000 = 1.8e9 of 6e9 scaled, drained 90,000 per ms.
    expect(read(p, state, 0)).toEqual({
      inFlight: 1,
      limits: [
        {
          name: 'rps',
          dimension: 'requests',
          algorithm: 'sliding-window',
          limit: 10,
          capacity: 10,
          remaining: 9,
          resetMs: 1000,
        },
        {
          name: 'tpm',
          dimension: 'tokens',
          algorithm: 'token-bucket',
          limit: 90_000,
          capacity: 100_000,
          remaining: 70_000,
          resetMs: 20_000,
        },
      ],
    });
    // 10 s later: 9e8 scaled left, i.e. 15,000 tokens; the request has left the 1 s window.
    expect(
      read(p, state, 10_000).limits.map(({ remaining, resetMs }) => ({ remaining, resetMs })),
    ).toEqual([
      { remaining: 10, resetMs: 0 },
      { remaining: 85_000, resetMs: 10_000 },
    ]);
  });

  it('reads 0 remaining while the key is in debt', () => {
    const p = compilePolicy({
      limits: [{ limit: 2, interval: '1s' }],
      algorithm: 'sliding-window',
    });
    const debt: KeyState = { at: 0, inFlight: 0, limits: [{ used: 5, log: [0, 5] }] };
    expect(read(p, debt, 10).limits[0]).toMatchObject({ remaining: 0, resetMs: 990 });
  });
});
