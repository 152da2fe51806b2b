/**
 * The conformance table (`cases.ts`) against the memory store. The memory store decides at the
 * `now` it is given, so the harness's clock is a no-op.
 */
import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../src/limiter/index.js';
import { MemoryStore } from '../../src/memory/memoryStore.js';
import { runConformance } from './runConformance.js';

runConformance('memory store conformance', async () => ({
  store: new MemoryStore(),
  setTime: () => {},
  close: async () => {},
}));

describe('memory store: what writes nothing after a limit change', () => {
  // rps 10/s, 10 taken at 0 (used 10,000), lowered to 1/s. An estimate or a read at 100 sees the
  // key rebased (used 9000) but writes nothing, so the first decision, at 200, rebases from the
  // old state: the old rate drained 2000, used 8000, a unit waits 8000 (9000 − 100 = 8900 had the
  // estimate taken the new policy at 100, as it once did).
  const ten = compilePolicy({ limits: [{ name: 'rps', limit: 10, interval: '1s' }] });
  const one = compilePolicy({ limits: [{ name: 'rps', limit: 1, interval: '1s' }] });
  const req = (units: number[]) => ({ id: 'r', units, slot: false, leaseMs: null });

  it('an estimate (reserve) and a read leave the key under its old policy', () => {
    const store = new MemoryStore();
    expect(store.decideOne('k', ten, req([10]), 0).ok).toBe(true);
    expect(store.estimate('k', one, [[1]], 100)).toBe(9000);
    expect(store.read('k', one, 100).limits[0]!.resetMs).toBe(9000);
    expect(store.decideOne('k', one, req([1]), 200)).toEqual({
      ok: false,
      retryAfterMs: 8000,
      limit: 'rps',
    });
  });
});
