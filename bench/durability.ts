/**
 * The cost of the Redis store's durability mode (#12, item 2): `replicas: 1` sends `WAIT 1` after
 * every write, so a grant is acknowledged only once a replica holds it. A primary and one replica
 * on this machine; sequential grants and 100 concurrent callers, with and without it.
 */
import { Redis } from 'ioredis';
import { createLimiterSystem } from '../src/index.js';
import { redisStore } from '../src/redis/index.js';
import { startRedis } from '../test/redis/harness.js';
import { fmtInt, fmtNs, median, type Section, type Suite, type SuiteOptions } from './report.js';

/** ns per grant: `ops` acquires by `callers` concurrent loops on 100 keys, each then released. */
async function perGrant(port: number, replicas: number, callers: number, ops: number) {
  const client = new Redis({ port, host: '127.0.0.1' });
  const store = redisStore({ client, prefix: `dur${replicas}:`, replicas });
  const system = createLimiterSystem({ store });
  const api = system.limiter('bench', { limits: [{ limit: 1_000_000, interval: '1s' }] });
  await api.tryAcquire('warm'); // connected, scripts loaded
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (next < ops) {
        const i = next++;
        await api.acquire(`k${i % 100}`);
      }
    }),
  );
  const ns = Number(process.hrtime.bigint() - t0) / ops;
  await system.close();
  await store.close();
  client.disconnect();
  return ns;
}

async function run(options: SuiteOptions): Promise<Section> {
  const primary = await startRedis();
  const replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(primary.port)] });
  const admin = replica.client();
  while (!(await admin.info('replication')).includes('master_link_status:up')) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const runs = options.quick ? 1 : 3;
  const rows: string[][] = [];
  for (const callers of [1, 100]) {
    const ops = options.quick ? 200 : callers === 1 ? 2_000 : 10_000;
    const plain: number[] = [];
    const waited: number[] = [];
    for (let r = 0; r < runs; r++) {
      options.log(`durability: ${callers} caller(s), run ${r + 1}`);
      plain.push(await perGrant(primary.port, 0, callers, ops));
      waited.push(await perGrant(primary.port, 1, callers, ops));
    }
    const a = median(plain);
    const b = median(waited);
    rows.push([fmtInt(callers), fmtNs(a), fmtNs(b), `${(b / a).toFixed(2)}×`]);
  }
  await replica.stop();
  await primary.stop();
  return {
    title: 'Redis durability mode: the cost of WAIT',
    blocks: [
      {
        text: [
          '`redisStore({ replicas: 1 })` acknowledges a grant only once a replica holds it (`WAIT 1`',
          'after each write), so a failover loses none. Time per grant (acquire on 100 keys), median of',
          `${runs} run${runs === 1 ? '' : 's'}, against a primary and one replica on this machine. One WAIT`,
          'covers a whole script call, which carries the decisions of every key flushed together: with',
          'many callers the calls are fewer and larger, and the cost per grant is spread.',
        ].join('\n'),
      },
      {
        table: {
          headers: ['callers', 'replicas: 0', 'replicas: 1', 'cost'],
          rows,
          align: ['r', 'r', 'r', 'r'],
        },
      },
    ],
  };
}

export const durabilitySuite: Suite = { name: 'durability', run };
