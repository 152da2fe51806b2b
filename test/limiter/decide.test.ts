import { describe, expect, it } from 'vitest';
import { compileCost, compilePolicy, decide, initialState, read } from '../../src/limiter/index.js';

describe('decide', () => {
  it('admits a request 1.5 s after the last one under a limit of 1/s (seed: stale counts)', () => {
    const p = compilePolicy({ limits: [{ limit: 1, interval: '1s' }] });
    const first = decide(p, initialState(p, 0), compileCost(p, {}), 0);
    expect(first.ok).toBe(true);
    expect(read(p, first.state, 1500).limits[0]!.remaining).toBe(1);
    expect(decide(p, first.state, compileCost(p, {}), 1500).ok).toBe(true);
  });
});
