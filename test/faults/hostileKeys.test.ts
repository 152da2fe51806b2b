/**
 * Hostile keys (#12, item 7): keys an attacker may choose (names of Object.prototype, the empty
 * string, a 64 KiB string, the characters tollgate's Redis names use, NUL, lone surrogates) go
 * through every call of the API, the queue included, on the memory store and on Redis. Each
 * behaves as an ordinary key, independent of the others, and nothing throws.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLimiterSystem, type Limiter, type LimiterSystem } from '../../src/index.js';
import calculateSlot from 'cluster-key-slot';
import { redisStore } from '../../src/redis/index.js';
import { keyNames } from '../../src/redis/keys.js';
import { startCluster, startRedis, type RedisServer } from '../redis/harness.js';

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

/** The store's id of (limiter, key), as the system makes it. */
const storeKey = (limiter: string, key: string): string => `${limiter.length}:${limiter}:${key}`;

describe('key names', () => {
  it('never collide: 1,000,000 random (limiter, key) pairs with : _ { } % newline NUL and lone surrogates', () => {
    // The store key the system builds (limiter name's length, the name, the key), then the Redis
    // names built from it, compared as the bytes Redis compares.
    const alphabet = [':', '_', '{', '}', '%', '\n', '\0', '\ud800', '\udc00', '\ufffd', 'a', '7'];
    let seed = 42; // mulberry32: a fixed sequence, so the run is repeatable
    const rand = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const word = () => {
      let w = '';
      for (let i = rand(9); i > 0; i--) w += alphabet[rand(alphabet.length)];
      return w;
    };
    const pairs = new Set<string>();
    const names = new Set<string>();
    for (let i = 0; i < 1_000_000; i++) {
      const limiter = word();
      const key = word();
      pairs.add(JSON.stringify([limiter, key]));
      names.add(
        Buffer.from(keyNames('p:', storeKey(limiter, key)).state, 'utf8').toString('latin1'),
      );
    }
    expect(pairs.size).toBeGreaterThan(850_000); // distinct pairs among the million (866,924)
    expect(names.size).toBe(pairs.size);
  });

  it("spread keys that embed one {tag} over the slots, and keep a key's names in one slot", () => {
    const perSlot = new Map<number, number>();
    for (let i = 0; i < 10_000; i++) {
      const names = keyNames('app:', `7:limiter:user{tag}:${i}`);
      const slot = calculateSlot(names.state);
      expect(calculateSlot(names.slots)).toBe(slot);
      perSlot.set(slot, (perSlot.get(slot) ?? 0) + 1);
    }
    expect(Math.max(...perSlot.values())).toBeLessThanOrEqual(100); // 1% of the keys
    expect(perSlot.size).toBeGreaterThan(5_000);
  });
});

describe('on a running 3-master Redis Cluster', () => {
  it(
    "10,000 keys that embed one {tag} spread over the slots, and a key's names share one slot",
    {
      timeout: 120_000,
    },
    async () => {
      await using cluster = await startCluster({ masters: 3 });
      const client = cluster.client();
      const store = redisStore({ client, prefix: 'app:' });
      const system = createLimiterSystem({ store });
      const limiter = system.limiter('limiter', {
        limits: [{ limit: 5, interval: '1m' }],
        concurrency: 2,
      });
      const keys = Array.from({ length: 10_000 }, (_, i) => `user{tag}:${i}`);
      // Each key books a unit and holds a slot, so both of its Redis names exist.
      const grants = [];
      for (let from = 0; from < keys.length; from += 1000) {
        grants.push(
          ...(await Promise.all(keys.slice(from, from + 1000).map((k) => limiter.acquire(k)))),
        );
      }
      expect(grants).toHaveLength(keys.length);
      // Where the cluster itself put each name: CLUSTER KEYSLOT, and the key present on that node.
      const node = client.nodes('master')[0]!;
      const perSlot = new Map<number, number>();
      const perMaster = new Map<string, number>();
      for (let from = 0; from < keys.length; from += 1000) {
        const batch = keys
          .slice(from, from + 1000)
          .map((k) => keyNames('app:', system.storeKey('limiter', k)));
        const pipe = node.pipeline();
        for (const names of batch)
          pipe.cluster('KEYSLOT', names.state).cluster('KEYSLOT', names.slots);
        const slots = (await pipe.exec())!.map(([, slot]) => slot as number);
        for (let i = 0; i < batch.length; i++) {
          const slot = slots[2 * i]!;
          expect(slots[2 * i + 1]).toBe(slot);
          perSlot.set(slot, (perSlot.get(slot) ?? 0) + 1);
        }
        const present = await Promise.all(
          batch.map((names) => client.exists(names.state, names.slots)),
        );
        expect(present.every((n) => n === 2)).toBe(true);
      }
      for (const m of client.nodes('master')) {
        perMaster.set(`${m.options.port}`, await m.dbsize());
      }
      expect(Math.max(...perSlot.values())).toBeLessThanOrEqual(100); // 1% of the keys
      // And the masters share them: none holds more than half of the 20,000 names.
      expect(Math.max(...perMaster.values())).toBeLessThan(10_000);
      for (const g of grants) g.release();
      await system.close();
      await store.close();
    },
  );
});
