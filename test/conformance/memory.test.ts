/**
 * The conformance table (`cases.ts`) against the memory store. The memory store decides at the
 * `now` it is given, so the harness's clock is a no-op.
 */
import { describe, expect, it } from 'vitest';
import { createLimiterSystem, InvalidArgumentError, VirtualClock } from '../../src/index.js';
import { compilePolicy } from '../../src/limiter/index.js';
import { MemoryStore } from '../../src/memory/memoryStore.js';
import type { StoreGrant } from '../../src/store.js';
import { runConformance } from './runConformance.js';

/** The end of a message about units of another length (#10, #11). */
const TAIL =
  'expected one amount per limit of the policy, 2: compile the cost with the policy it is used with';

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

describe('memory store: units of another length (#10)', () => {
  const two = compilePolicy({
    limits: [
      { name: 'rps', limit: 2, interval: '1s' },
      { name: 'tpm', limit: 100, interval: '1m', dimension: 'tokens' },
    ],
  });
  const req = (id: string, units: number[]) => ({ id, units, slot: false, leaseMs: null });
  const remaining = (store: MemoryStore) => store.read('k', two, 0).limits.map((l) => l.remaining);

  it('refuses them before anything changes: decideOne, decide, settle and cancel', () => {
    const store = new MemoryStore();
    const d = store.decideOne('k', two, req('a', [1, 10]), 0);
    expect(d.ok).toBe(true);
    const grant = (d as { ok: true; grant: StoreGrant }).grant;
    expect(remaining(store)).toEqual([1, 90]);
    expect(() => store.decideOne('k', two, req('b', [1]), 0)).toThrow(InvalidArgumentError);
    // A batch whose last request is bad books none of it, the good one before included.
    expect(() =>
      store.decide('k', two, [req('c', [1, 10]), req('d', [1, 10, 1])], 'each', 0),
    ).toThrow(`tollgate: decide: batch[1].units is [1,10,1] (an array), 3 amounts; ${TAIL}`);
    expect(() => store.settle('k', two, grant, [1], 0)).toThrow(InvalidArgumentError);
    expect(() => store.settle('k', two, { ...grant, units: [1] }, [1, 0], 0)).toThrow(
      `tollgate: settle: grant.units is [1] (an array), 1 amount; ${TAIL}`,
    );
    expect(() => store.cancel('k', two, { ...grant, units: [1, 10, 0] }, 0)).toThrow(
      `tollgate: cancel: grant.units is [1,10,0] (an array), 3 amounts; ${TAIL}`,
    );
    expect(remaining(store)).toEqual([1, 90]);
  });
});

describe('memory store: reset epochs through the runtime (#10)', () => {
  it('a refund of a grant from before a reset does not give back a later grant (fixed window)', async () => {
    // The numbers: 1,000 tokens per minute; A 1,000 at 0 s, reset at 1 s, B 1,000 at 2 s,
    // A settled to 0 at 10 s. Giving A's 1,000 back would admit C: 2,000 in one window.
    const clock = new VirtualClock(0);
    const system = createLimiterSystem({ clock });
    const llm = system.limiter('llm', {
      limits: [
        {
          name: 'tpm',
          limit: 1000,
          interval: '1m',
          dimension: 'tokens',
          algorithm: 'fixed-window',
        },
      ],
    });
    const a = await llm.acquire('k', { cost: { tokens: 1000 } });
    await clock.increment(1000);
    await llm.reset('k');
    await clock.increment(1000);
    await llm.acquire('k', { cost: { tokens: 1000 } });
    await clock.increment(8000);
    await a.settle({ tokens: 0 });
    const c = await llm.tryAcquire('k', { cost: { tokens: 1000 } });
    expect(c).toEqual({ ok: false, limit: 'tpm', retryAfterMs: 50_000 });
    expect((await llm.stats('k')).limits[0]!.remaining).toBe(0);
    await system.close();
  });

  it('a slot taken before a reset and released after it frees no later holder’s slot', async () => {
    const clock = new VirtualClock(0);
    const system = createLimiterSystem({ clock });
    const llm = system.limiter('llm', { limits: [{ limit: 100, interval: '1s' }], concurrency: 1 });
    const a = await llm.acquire('k');
    await llm.reset('k');
    const b = await llm.acquire('k');
    a.release();
    expect((await llm.stats('k')).inFlight).toBe(1);
    expect((await llm.tryAcquire('k')).ok).toBe(false);
    b.release();
    expect((await llm.stats('k')).inFlight).toBe(0);
    expect((await llm.tryAcquire('k')).ok).toBe(true);
    await system.close();
  });
});
