/**
 * The parity tables (#12) on the memory store: golang.org/x/time/rate's and redis-cell's table
 * tests restated in tollgate's terms (`parityCases.ts` for the store, `parityRuntime.ts` for the
 * runtime). `test/redis/conformance.test.ts` runs the same tables on Redis and on Redis Cluster.
 */
import { describe, expect, it } from 'vitest';
import { createLimiterSystem, InvalidArgumentError } from '../../src/index.js';
import { MemoryStore } from '../../src/memory/memoryStore.js';
import { parityCases } from './parityCases.js';
import { runtimeParityCases } from './parityRuntime.js';
import { runConformance } from './runConformance.js';
import { runParity } from './runParity.js';

const memory = async () => ({ store: new MemoryStore(), setTime: () => {}, close: async () => {} });

runConformance('parity: x/time/rate and redis-cell tables, memory store', memory, parityCases);
runParity('parity: x/time/rate runtime tables, memory store', memory, runtimeParityCases);

describe('parity: what tollgate refuses as bad input', () => {
  it('x/time/rate TestZeroLimit: a zero rate is an InvalidArgumentError, not a limiter', async () => {
    // x/time/rate's NewLimiter(0, 1) admits its burst once; tollgate refuses a zero rate (the
    // slowest it takes, 1 per 366 days, is in parityCases.ts).
    const system = createLimiterSystem();
    expect(() => system.limiter('zero', { limits: [{ limit: 0, interval: '1s' }] })).toThrow(
      InvalidArgumentError,
    );
    await system.close();
  });
});
