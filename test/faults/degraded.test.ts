/**
 * Bounded degraded mode (#12, items 4 and 5): what the `onUnavailable` policy grants while Redis
 * is away is booked into Redis once it answers again, exactly (fail-open counts every grant), and
 * the insurance stand-ins of N processes (`processes: N`) together admit at most the limit. Redis
 * is a real server, killed and restarted; the decisions run at fixed instants of a virtual clock
 * (`time: 'runtime'`), so every reading is exact.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLimiterSystem, VirtualClock, type Grant } from '../../src/index.js';
import { redisStore, type UnavailablePolicy } from '../../src/redis/index.js';
import { spawnNode, startRedis, type RedisServer } from '../redis/harness.js';

const RETRY_MS = 1000;
const LIMIT = 10;

let server: RedisServer;
let n = 0;
const fresh = (): string => `d${++n}-${Math.random().toString(36).slice(2, 8)}:`;

beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  await server.stop();
});

/**
 * A system on its own client, which fails a command at once while disconnected (no offline
 * queue): a call made during the outage never runs after it.
 */
function systemOn(
  onUnavailable: UnavailablePolicy,
  prefix: string,
  processes?: number,
  limit = LIMIT,
) {
  const client = new Redis({
    port: server.port,
    host: '127.0.0.1',
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => 20,
  });
  client.on('error', () => {});
  const store = redisStore({
    client,
    prefix,
    time: 'runtime',
    timeout: 200,
    retryInterval: RETRY_MS,
    onUnavailable,
    ...(processes !== undefined && { processes }),
  });
  const clock = new VirtualClock(1_000_000);
  const sys = createLimiterSystem({ store, clock });
  const api = sys.limiter('api', {
    limits: [{ limit, interval: '1d' }], // no refill within the test
  });
  return {
    api,
    clock,
    store,
    client,
    close: async () => {
      await sys.close();
      await store.close();
      client.disconnect();
    },
  };
}

/** Waits (real time) until `client` answers PING again. */
async function answering(client: Redis): Promise<void> {
  for (;;) {
    const ok = await client.ping().then(
      () => true,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('what the policy grants while Redis is away is booked into Redis after', () => {
  it('fail-open: every grant is counted, settles included', async () => {
    const prefix = fresh();
    const { api, clock, store, client, close } = systemOn('fail-open', prefix);
    await answering(client);
    expect((await api.tryAcquire('warm')).ok).toBe(true);
    await server.kill();
    // 3 keys, 7 grants each, over the limit of none of them; then settles and a cancel.
    const grants: Grant[] = [];
    for (let i = 0; i < 21; i++) grants.push(await api.acquire(`k${i % 3}`));
    expect(store.isDegraded(clock.now())).toBe(true);
    await grants[0]!.settle({ requests: 0 }); // k0: a refund of an unbooked grant
    await grants[1]!.settle({ requests: 3 }); // k1: 2 more
    await grants[2]!.cancel(); // k2: nothing booked
    await server.restart();
    await clock.increment(RETRY_MS);
    await answering(client); // the store's own client is connected again
    // The first decision after the outage books what each key owes: k0 6, k1 9, k2 6.
    expect((await api.tryAcquire('again')).ok).toBe(true);
    expect((await api.stats('k0')).limits[0]!.remaining).toBe(LIMIT - 6);
    expect((await api.stats('k1')).limits[0]!.remaining).toBe(LIMIT - 9);
    expect((await api.stats('k2')).limits[0]!.remaining).toBe(LIMIT - 6);
    // A grant settled after its units were booked books only what it used beyond them; its
    // refund is lost (an over-count, never an under-count).
    await grants[3]!.settle({ requests: 2 }); // k0: 1 more
    await grants[4]!.settle({ requests: 0 }); // k1: no refund
    expect((await api.stats('k0')).limits[0]!.remaining).toBe(LIMIT - 7);
    expect((await api.stats('k1')).limits[0]!.remaining).toBe(LIMIT - 9);
    await close();
  });

  it('insurance: the stand-in decides at its share, and what it granted is booked', async () => {
    const prefix = fresh();
    const { api, clock, client, close } = systemOn('insurance', prefix, 2);
    await answering(client);
    expect((await api.tryAcquire('warm')).ok).toBe(true);
    await server.kill();
    const results = await Promise.all(Array.from({ length: 8 }, () => api.tryAcquire('k')));
    expect(results.filter((r) => r.ok)).toHaveLength(LIMIT / 2);
    await server.restart();
    await clock.increment(RETRY_MS);
    await answering(client);
    expect((await api.tryAcquire('again')).ok).toBe(true);
    expect((await api.stats('k')).limits[0]!.remaining).toBe(LIMIT - LIMIT / 2);
    await close();
  });
});

type Line = { granted: number } | { booked: true };

describe('4 processes, each with processes: 4, lose Redis for 60 s', () => {
  it('admit at most the limit in total, and book it into Redis when it is back', async () => {
    const prefix = fresh();
    const limit = 100;
    await server.kill();
    let outageDone = 0;
    let restarted: Promise<void> | undefined;
    const runs = Array.from({ length: 4 }, () =>
      spawnNode<Line>(
        'test/faults/fixtures/insuranceWorker.ts',
        [String(server.port), prefix, String(limit), '4'],
        {},
        {
          timeoutMs: 60_000,
          onLine: (line) => {
            // Redis comes back once every process has lived through its 60 s without it.
            if ('granted' in (line as Line) && ++outageDone === 4) restarted = server.restart();
          },
        },
      ),
    );
    const done = await Promise.all(runs);
    await restarted;
    const granted = done.map(
      (r) => (r.lines.find((l) => 'granted' in l) as { granted: number }).granted,
    );
    expect(done.every((r) => r.lines.some((l) => 'booked' in l))).toBe(true);
    // 1.0× the limit in total (each stand-in: 25 at once, a refill of 25 per day).
    expect(granted.reduce((a, b) => a + b, 0)).toBe(limit);
    expect(granted).toEqual([25, 25, 25, 25]);
    // Booked into Redis: nothing of the day's 100 is left for anybody.
    const { api, client, clock, close } = systemOn('fail-closed', prefix, undefined, limit);
    await answering(client);
    clock.set(1_070_000); // after the processes' bookings (their clocks ran 60 s and more)
    const { remaining, resetMs } = (await api.stats('shared')).limits[0]!;
    expect(remaining).toBe(0);
    // Exactly 100 booked, not more: a full day to refill, less the seconds since the bookings
    // (one token more would take 14.4 min more).
    expect(Math.abs(resetMs - 86_400_000)).toBeLessThan(120_000);
    await close();
  });
});
