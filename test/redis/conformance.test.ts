/**
 * The conformance table (`test/conformance/cases.ts`) and the parity tables
 * (`test/conformance/parityCases.ts`, `parityRuntime.ts`) against the Redis store: on one
 * redis-server, and on a 3-master Redis Cluster where the cases' keys spread over the slots of
 * every master. The store decides at the `now` each step passes (`time: 'runtime'`, the test-only
 * override of Redis TIME), so the rows hold at their fixed instants.
 */
import type { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLimiterSystem } from '../../src/index.js';
import { redisStore } from '../../src/redis/index.js';
import { parityCases } from '../conformance/parityCases.js';
import { runtimeParityCases } from '../conformance/parityRuntime.js';
import { runConformance } from '../conformance/runConformance.js';
import { runParity } from '../conformance/runParity.js';
import { startCluster, startRedis, type RedisCluster, type RedisServer } from './harness.js';

let server: RedisServer;
let cluster: RedisCluster;
let single: Redis;
let clustered: Cluster;
let n = 0;

beforeAll(async () => {
  [server, cluster] = await Promise.all([startRedis(), startCluster({ masters: 3 })]);
  single = server.client();
  clustered = cluster.client();
});
afterAll(async () => {
  await Promise.all([server.stop(), cluster.stop()]);
});

/** A harness with a prefix of its own, so cases never see each other's keys. */
function harness(client: () => Redis | Cluster) {
  return async () => {
    const store = redisStore({ client: client(), prefix: `conf${++n}:`, time: 'runtime' });
    return { store, setTime: () => {}, close: () => store.close() };
  };
}

runConformance(
  'redis store conformance (one server)',
  harness(() => single),
);
runConformance(
  'redis store conformance (3-master cluster)',
  harness(() => clustered),
);

// The parity tables (#12): x/time/rate's and redis-cell's table tests, in tollgate's terms.
runConformance(
  'parity: x/time/rate and redis-cell tables, redis (one server)',
  harness(() => single),
  parityCases,
);
runConformance(
  'parity: x/time/rate and redis-cell tables, redis (3-master cluster)',
  harness(() => clustered),
  parityCases,
);
runParity(
  'parity: x/time/rate runtime tables, redis (one server)',
  harness(() => single),
  runtimeParityCases,
);
runParity(
  'parity: x/time/rate runtime tables, redis (3-master cluster)',
  harness(() => clustered),
  runtimeParityCases,
);

describe('redis cluster', () => {
  it('decides concurrent keys on every master through the runtime, exactly', async () => {
    const store = redisStore({ client: clustered, prefix: `rt${++n}:` });
    const system = createLimiterSystem({ store });
    const api = system.limiter('api', { limits: [{ limit: 2, interval: '1m' }] });
    const keys = Array.from({ length: 60 }, (_, i) => `tenant-${i}`);
    const results = await Promise.all(
      keys.flatMap((k) => [api.tryAcquire(k), api.tryAcquire(k), api.tryAcquire(k)]),
    );
    for (let i = 0; i < keys.length; i++) {
      expect(
        results.slice(i * 3, i * 3 + 3).map((r) => r.ok),
        keys[i],
      ).toEqual([true, true, false]);
    }
    await system.close();
    await store.close();
  });

  it('applies each key’s acquire then reset in that order on every master (#10)', async () => {
    const store = redisStore({ client: clustered, prefix: `rt${++n}:` });
    const system = createLimiterSystem({ store });
    const api = system.limiter('api', { limits: [{ limit: 3, interval: '1m' }] });
    const keys = Array.from({ length: 30 }, (_, i) => `tenant-${i}`);
    // Each key's decision and reset leave in one flush; the reset must reach its slot's node after.
    await Promise.all(keys.flatMap((k) => [api.acquire(k), api.reset(k)]));
    const stats = await Promise.all(keys.map((k) => api.stats(k)));
    for (const [i, s] of stats.entries()) expect(s.limits[0]!.remaining, keys[i]).toBe(3);
    await system.close();
    await store.close();
  });

  it('spreads keys over every master, each key in one slot', async () => {
    const perNode = await Promise.all(
      cluster.nodes.map(async (node) => (await node.client().keys('conf*')).length),
    );
    // The table touches dozens of keys; every master must have received some of them.
    for (const count of perNode) expect(count).toBeGreaterThan(0);
  });
});
