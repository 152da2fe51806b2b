/**
 * Hostile keys (#12, item 7): keys an attacker may choose (names of Object.prototype, the empty
 * string, a 64 KiB string, the characters tollgate's Redis names use, NUL, lone surrogates) go
 * through every call of the API, the queue included, on the memory store and on Redis. Each
 * behaves as an ordinary key, independent of the others, and nothing throws.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLimiterSystem, type Limiter, type LimiterSystem } from '../../src/index.js';
import { redisStore } from '../../src/redis/index.js';
import { startRedis, type RedisServer } from '../redis/harness.js';

const HOSTILE = [
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'valueOf',
  '',
  'x'.repeat(64 * 1024),
  'a:b',
  '{tag}',
  '}',
  '%7D',
  '%',
  'k\0',
  'k\n',
  '\ud800', // lone surrogates: two of them must stay two keys
  '\udc00',
  '\ud800\udc00', // and the pair they make is a third
];

const LIMIT = 10;

/** Every call of the API on each hostile key, then their independence. */
async function throughEveryCall(limiter: Limiter): Promise<void> {
  // Each key books its own amount, so that two keys sharing state would show it.
  const cost = (i: number): number => (i % 4) + 1;
  for (const [i, key] of HOSTILE.entries()) {
    const first = await limiter.acquire(key, { cost: { requests: cost(i) + 1 } });
    const tried = await limiter.tryAcquire(key);
    expect(tried).toMatchObject({ ok: false, limit: 'concurrency' });
    const waiting = limiter.acquire(key, { cost: { requests: 1 } }); // queued behind the slot
    await expect.poll(async () => (await limiter.stats(key)).queued).toBe(1);
    await first.settle({ requests: cost(i) }); // gives 1 back
    first.release();
    const second = await waiting;
    await second.cancel(); // gives back everything it booked, and its slot
    const r = limiter.reserve(key);
    const reserved = await r.granted;
    expect(reserved.key).toBe(key);
    await r.cancel();
    const seen = await new Promise<number>((resolve) => {
      const sub = limiter.stats$(key).subscribe((s) => {
        resolve(s.limits[0]!.remaining);
        queueMicrotask(() => sub.unsubscribe());
      });
    });
    expect(seen).toBe(LIMIT - cost(i));
  }
  // Independent: each key holds its own amount, whatever the others did.
  for (const [i, key] of HOSTILE.entries()) {
    const s = await limiter.stats(key);
    expect({
      key: key.slice(0, 20),
      remaining: s.limits[0]!.remaining,
      inFlight: s.inFlight,
    }).toEqual({ key: key.slice(0, 20), remaining: LIMIT - cost(i), inFlight: 0 });
  }
  // A pause and a reset of one key touch no other.
  await limiter.pause('__proto__', '1m');
  expect(await limiter.tryAcquire('__proto__')).toMatchObject({ ok: false, limit: 'paused' });
  expect((await limiter.tryAcquire('constructor')).ok).toBe(true);
  await limiter.reset('__proto__');
  expect((await limiter.stats('__proto__')).limits[0]!.remaining).toBe(LIMIT);
  expect((await limiter.stats('toString')).limits[0]!.remaining).toBe(LIMIT - cost(2));
}

function limiterOf(system: LimiterSystem): Limiter {
  return system.limiter('hostile', {
    algorithm: 'fixed-window',
    limits: [{ limit: LIMIT, interval: '1h' }],
    concurrency: 1,
  });
}

describe('hostile keys', () => {
  it('are ordinary, independent keys on the memory store', async () => {
    const system = createLimiterSystem();
    try {
      await throughEveryCall(limiterOf(system));
    } finally {
      await system.close();
    }
  });

  describe('on Redis', () => {
    let server: RedisServer;
    beforeAll(async () => {
      server = await startRedis();
    });
    afterAll(async () => {
      await server.stop();
    });

    it('are ordinary, independent keys, and every Redis name stays under the prefix', async () => {
      const client = server.client({ maxRetriesPerRequest: 1 });
      const store = redisStore({ client, prefix: 'hostile:' });
      const system = createLimiterSystem({ store });
      try {
        await throughEveryCall(limiterOf(system));
        const names: string[] = [];
        let cursor = '0';
        do {
          const [next, batch] = await client.scan(cursor, 'COUNT', 1000);
          cursor = next;
          names.push(...batch);
        } while (cursor !== '0');
        expect(names.length).toBeGreaterThan(0);
        expect(names.filter((n) => !n.startsWith('hostile:'))).toEqual([]);
      } finally {
        await system.close();
        await store.close();
      }
    });
  });
});
