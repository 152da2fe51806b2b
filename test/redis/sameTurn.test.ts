/**
 * Calls of one key made in one turn while its decision is out on Redis: Redis must answer as the
 * memory store does (README "Guarantees", mailbox order). Each runs the same calls on both
 * stores. Found by the model-based test (#10); each failed before its fix (R1: the policy event
 * carries its policy; R2: a full queue does not refuse a waiter the store decides first; R3: a
 * reservation cancelled while its decision is out gives back the grant that came; R4: a try that
 * outranks the refused head is not refused with 'queue').
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import {
  VirtualClock,
  createLimiterSystem,
  memoryStore,
  type Limiter,
  type Store,
} from '../../src/index.js';
import { redisStore } from '../../src/redis/index.js';
import { startRedis, type RedisServer } from './harness.js';

let server: RedisServer;
let client: Redis;
let n = 0;
beforeAll(async () => {
  server = await startRedis();
  client = server.client();
});
afterAll(async () => {
  await server.stop();
});
/**
 * Lets the key's store answer: a read of the key waits in its mailbox behind everything sent
 * before it (a decision out on Redis included), so once it is answered, they are.
 */
const settled = (l: Limiter) => l.stats('k').then(() => undefined);
async function both<T>(
  f: (
    l: (spec: Parameters<ReturnType<typeof createLimiterSystem>['limiter']>[1]) => Limiter,
  ) => Promise<T>,
) {
  const out: T[] = [];
  for (const store of [
    memoryStore(),
    redisStore({ client, prefix: `repro${++n}:`, time: 'runtime' }),
  ] as Store[]) {
    const system = createLimiterSystem({ clock: new VirtualClock(0), store });
    out.push(await f((spec) => system.limiter('l', spec)));
    await system.close();
  }
  return { memory: out[0], redis: out[1] };
}

it('R1: a key takes each setLimits in mailbox order (two in one turn while a decision is out)', async () => {
  const X = { limits: [{ name: 'rps', limit: 1, interval: 1000, burst: 2 }], concurrency: 1 };
  const A = { limits: [{ name: 'rps', limit: 2, interval: 1000, burst: 3 }], concurrency: 2 };
  const r = await both(async (make) => {
    const l = make(X);
    const g1 = await l.acquire('k'); // holds the slot, rps 1 of 2
    let state = 'pending';
    l.acquire('k', { cost: { requests: 2 } }).then(
      () => (state = 'granted'),
      (e: Error) => (state = e.name),
    );
    await settled(l);
    g1.release(); // the head is decided again under X: refused (1 + 2 > 2)
    l.setLimits(A); // under A it fits (1 + 2 <= 3, 2 slots): memory grants it here
    l.setLimits(X);
    await settled(l);
    return state;
  });
  expect(r).toEqual({ memory: 'granted', redis: 'granted' }); // redis: 'pending' (it skipped A)
});

it('R2: a higher-priority request that fits is not refused QueueFullError by a full queue', async () => {
  const r = await both(async (make) => {
    const l = make({ limits: [{ limit: 10, interval: 1000, dimension: 'tokens' }], maxQueue: 1 });
    await l.acquire('k', { cost: { tokens: 8 } }); // 2 left
    l.acquire('k', { cost: { tokens: 5 } }).catch(() => {}); // queued: the queue is full
    await settled(l);
    const res = await Promise.allSettled([
      l.acquire('k', { cost: { tokens: 1 }, priority: 1 }),
      l.tryAcquire('k', { cost: { tokens: 1 }, priority: 1 }),
    ]);
    return res.map((x) =>
      x.status === 'rejected'
        ? (x.reason as Error).name
        : 'ok' in x.value
          ? x.value.ok
            ? 'granted'
            : x.value.limit
          : 'granted',
    );
  });
  // memory: both granted (nobody of priority >= 1 waits); redis: QueueFullError for both
  expect(r.redis).toEqual(r.memory);
});

it('R3: reservation.cancel() made while its decision is out gives back the grant that came', async () => {
  const r = await both(async (make) => {
    const l = make({ limits: [{ limit: 1, interval: 1000 }] });
    const g = await l.acquire('k'); // full
    const res = l.reserve('k'); // queued
    res.granted.catch(() => {});
    await settled(l);
    void g.cancel(); // memory grants the reservation here; Redis sends the decision
    const first = await res.cancel().then(
      () => 'ok',
      (e: Error) => e.name,
    ); // gives the grant back
    const second = await res.cancel().then(
      () => 'ok',
      (e: Error) => e.name,
    ); // cancel twice
    await settled(l);
    return { first, second, remaining: (await l.stats('k')).limits[0]!.remaining };
  });
  // memory: { first: 'ok', second: 'GrantStateError', remaining: 1 }
  // redis:  { first: 'ok', second: 'ok', remaining: 0 } (the grant stays booked, and so does its reservation)
  expect(r.redis).toEqual(r.memory);
});

it('R4: a try of higher priority than every waiter is not refused with queue', async () => {
  const r = await both(async (make) => {
    const l = make({ limits: [{ limit: 10, interval: 1000, dimension: 'tokens' }] });
    const g = await l.acquire('k', { cost: { tokens: 6 } }); // 4 left
    l.acquire('k', { cost: { tokens: 5 } }).catch(() => {}); // queued, priority 0
    await settled(l);
    void g.settle({ tokens: 6 }); // the head is asked again (Redis: a decision out)
    l.reserve('k', { priority: 2, cost: { tokens: 0 } }).granted.catch(() => {});
    const t = await l.tryAcquire('k', { priority: 2, cost: { tokens: 0 } });
    return t.ok ? 'granted' : `refused by ${t.limit}`;
  });
  expect(r).toEqual({ memory: 'granted', redis: 'granted' }); // redis: 'refused by queue'
});
