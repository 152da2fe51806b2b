/**
 * Data loss (#12, item 3): Redis loses the limiter's state behind its back, mid-load, with grants
 * outstanding and waiters queued: a FLUSHALL (single Redis and a 3-master Cluster), and evictions
 * under `maxmemory` with `allkeys-lru`. The store notices on the first call after the loss that
 * touches the slot (FLUSHALL) or the key (eviction), through its marker (see lua/keyState.lua),
 * and the system emits `dataLost`. Each key then admits at most one limit more than it should
 * (counted per sliding window), every waiter ends, grants of before give nothing back to the
 * fresh state, their slots' releases free nothing, and every key decides normally afterwards.
 *
 * Virtual time (`time: 'runtime'`): the windows are exact and nothing moves unless the test moves
 * the clock, so the calls after the loss are only the ones the test makes.
 */
import type { Cluster, Redis } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createLimiterSystem,
  VirtualClock,
  type DataLostEvent,
  type Grant,
  type Limiter,
  type LimiterSystem,
} from '../../src/index.js';
import { keyNames, markerName, redisStore } from '../../src/redis/index.js';
import { startCluster, startRedis, type RedisCluster, type RedisServer } from '../redis/harness.js';

const L = 10; // requests per window, per key
const W = 1000; // the window, ms
const WAITERS = 5; // per key, queued when the data goes
const CONCURRENCY = 3;
const KEYS = ['k0', 'k1', 'k2', 'k3'];

/** One script call of the store: which script, and the Redis keys it touched. */
interface Call {
  readonly script: 'decide' | 'settle';
  readonly keys: readonly string[];
}

/**
 * countingClient wraps `client` so that every decide and settle script call is recorded with the
 * Redis keys it touches, in the order the store makes them.
 */
function countingClient<C extends Redis | Cluster>(client: C): { client: C; calls: Call[] } {
  const calls: Call[] = [];
  const proxy = new Proxy(client, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const fn = (value as (...args: unknown[]) => unknown).bind(target);
      if (prop === 'tollgateDecide') {
        return (...args: unknown[]) => {
          calls.push({ script: 'decide', keys: args.slice(1, 1 + Number(args[0])) as string[] });
          return fn(...args);
        };
      }
      if (prop === 'tollgateSettle') {
        return (...args: unknown[]) => {
          calls.push({ script: 'settle', keys: args.slice(0, 3) as string[] });
          return fn(...args);
        };
      }
      return fn;
    },
  });
  return { client: proxy, calls };
}

interface Run {
  readonly system: LimiterSystem;
  readonly clock: VirtualClock;
  readonly api: Limiter;
  readonly pool: Limiter;
  readonly prefix: string;
  readonly calls: Call[];
  /** Each `dataLost` event, with the calls made since `mark` when it came. */
  readonly lost: { readonly event: DataLostEvent; readonly calls: readonly Call[] }[];
  /** Grant instants by `limiter/key`. */
  readonly grants: Map<string, number[]>;
  /** Where the calls after the loss start. */
  mark: number;
}

let prefixes = 0;
const open: LimiterSystem[] = [];

afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

function run(client: Redis | Cluster): Run {
  const prefix = `loss${++prefixes}:`;
  const counted = countingClient(client);
  const clock = new VirtualClock(1_000_000);
  const system = createLimiterSystem({
    clock,
    store: redisStore({ client: counted.client, prefix, time: 'runtime' }),
  });
  open.push(system);
  const api = system.limiter('api', {
    limits: [{ limit: L, interval: W, algorithm: 'sliding-window' }],
  });
  const pool = system.limiter('pool', {
    limits: [{ limit: 1000, interval: W }],
    concurrency: CONCURRENCY,
  });
  const r: Run = {
    system,
    clock,
    api,
    pool,
    prefix,
    calls: counted.calls,
    lost: [],
    grants: new Map(),
    mark: 0,
  };
  system.events.on('granted', (e) => {
    const name = `${e.limiter}/${e.key}`;
    const list = r.grants.get(name) ?? r.grants.set(name, []).get(name)!;
    list.push(e.at);
  });
  system.events.on('dataLost', (event) => {
    r.lost.push({ event, calls: r.calls.slice(r.mark) });
  });
  return r;
}

/** What the load left outstanding when the data went. */
interface Load {
  /** Per key of `api`: its L grants, unsettled. */
  readonly held: Map<string, Grant[]>;
  /** The slot holders of `pool`'s key 'p'. */
  readonly holders: Grant[];
  /** Every waiter: how it ended (undefined while it waits). */
  readonly waiters: { end?: 'granted' | 'failed'; grant?: Grant }[];
}

/**
 * load books every key of `api` full (L grants, kept unsettled) and fills the slots of `pool`'s
 * key 'p', then queues WAITERS waiters on each key of `waitOn`, and two on 'p' when it is there.
 */
async function load(r: Run, waitOn: readonly string[]): Promise<Load> {
  const held = new Map<string, Grant[]>();
  for (const key of KEYS) {
    held.set(key, await Promise.all(Array.from({ length: L }, () => r.api.acquire(key))));
  }
  const holders = await Promise.all(Array.from({ length: CONCURRENCY }, () => r.pool.acquire('p')));
  const waiters: Load['waiters'] = [];
  const wait = (p: Promise<Grant>): void => {
    const w: Load['waiters'][number] = {};
    waiters.push(w);
    p.then(
      (g) => Object.assign(w, { end: 'granted', grant: g }),
      () => (w.end = 'failed'),
    );
  };
  const onApi = waitOn.filter((k) => k !== 'p');
  for (const key of onApi) {
    for (let i = 0; i < WAITERS; i++) wait(r.api.acquire(key, { timeout: 10 * W }));
  }
  if (waitOn.includes('p')) {
    for (let i = 0; i < 2; i++) wait(r.pool.acquire('p', { timeout: 10 * W }));
    await expect.poll(async () => (await r.pool.stats('p')).queued).toBe(2);
  }
  for (const key of onApi) {
    await expect.poll(async () => (await r.api.stats(key)).queued).toBe(WAITERS);
  }
  return { held, holders, waiters };
}

/** The most grants of `times` in any window (x − W, x]. */
function worstWindow(times: readonly number[]): number {
  const t = [...times].sort((a, b) => a - b);
  let worst = 0;
  let from = 0;
  for (let i = 0; i < t.length; i++) {
    while (t[from]! <= t[i]! - W) from++;
    worst = Math.max(worst, i - from + 1);
  }
  return worst;
}

/** Takes what `api`'s key has left now, one request at a time; returns how many it got. */
async function drain(api: Limiter, key: string): Promise<number> {
  let n = 0;
  while ((await api.tryAcquire(key)).ok) n++;
  return n;
}

/**
 * afterLoss checks what must hold once the loss was noticed: every waiter ends (granted from the
 * fresh state), each key admits at most one limit more than it should in any window, grants of
 * before give nothing back when settled to 0, releases of their slots free nothing, and every
 * key decides normally once the window has passed. `slots`: the slots of 'p' taken since the loss
 * besides its waiters'. Returns the worst window seen.
 */
async function afterLoss(r: Run, l: Load, slots: readonly Grant[] = []): Promise<number> {
  // Every waiter ends.
  await expect.poll(() => l.waiters.filter((w) => w.end === undefined).length).toBe(0);
  expect(l.waiters.every((w) => w.end === 'granted')).toBe(true);
  // Load on after the loss: take everything the fresh state has.
  for (const key of KEYS) await drain(r.api, key);
  let worst = 0;
  for (const key of KEYS) {
    const n = worstWindow(r.grants.get(`api/${key}`)!);
    expect(n, key).toBeLessThanOrEqual(2 * L); // over-admission at most 1× the limit
    worst = Math.max(worst, n);
  }
  // Grants of before give nothing back to the fresh state: settled to 0, the key stays full.
  for (const key of KEYS) {
    for (const g of l.held.get(key)!) await g.settle({ requests: 0 });
    expect((await r.api.stats(key)).limits[0]!.remaining, key).toBe(0);
    expect((await r.api.tryAcquire(key)).ok, key).toBe(false);
  }
  // Slots of before: their releases free nothing; the fresh slots are the waiters'.
  const fresh = [...l.waiters.flatMap((w) => (w.grant?.key === 'p' ? [w.grant] : [])), ...slots];
  expect(fresh.length).toBeGreaterThan(0);
  expect(fresh.length).toBeLessThanOrEqual(CONCURRENCY); // over-admission at most 1× the slots
  for (const g of l.holders) g.release();
  expect((await r.pool.stats('p')).inFlight).toBe(fresh.length);
  for (const g of fresh) g.release();
  expect((await r.pool.stats('p')).inFlight).toBe(0);
  // No key is stuck: a window later each admits exactly its limit, and the pool its slots.
  await r.clock.increment(2 * W);
  for (const key of KEYS) expect(await drain(r.api, key), key).toBe(L);
  const again = await Promise.all(Array.from({ length: CONCURRENCY }, () => r.pool.acquire('p')));
  expect(await r.pool.tryAcquire('p')).toMatchObject({ ok: false, limit: 'concurrency' });
  for (const g of again) g.release();
  return worst;
}

describe('data loss on a single Redis', () => {
  let server: RedisServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it('notices a FLUSHALL on the first call after it, emits dataLost once, and over-admits at most one limit per key', async () => {
    server = await startRedis();
    const r = run(server.client());
    const l = await load(r, [...KEYS, 'p']);
    // A pause goes with the data: k3's waiters must not wait it out.
    await r.api.pause('k3', '1m');
    r.mark = r.calls.length;
    await server.flushAll();
    // The first call after the flush, on a key of its own, notices it.
    expect((await r.api.tryAcquire('probe')).ok).toBe(true);
    expect(r.lost).toHaveLength(1);
    expect(r.lost[0]!.event).toMatchObject({ store: 'redis', reason: 'flushed', keys: [] });
    expect(r.lost[0]!.event.slot).toBeNull();
    expect(r.lost[0]!.calls).toHaveLength(1);
    const worst = await afterLoss(r, l);
    expect(worst).toBe(2 * L); // the fresh state did admit a full limit more
    expect(r.lost).toHaveLength(1); // told once
    console.log(`FLUSHALL: noticed after 1 call; worst window ${worst} grants for a limit of ${L}`);
  });

  it('notices keys evicted under maxmemory allkeys-lru on the first call on each', async () => {
    server = await startRedis();
    const admin = server.client();
    const r = run(server.client());
    // Waiters on k0 only: k0 is first touched after the eviction by a settle, the others by a
    // decision, so both scripts are seen noticing.
    const l = await load(r, ['k0']);
    const storeKey = (limiter: string, key: string): string => r.system.storeKey(limiter, key);
    const lostNames = [
      ...KEYS.map((k) => keyNames(r.prefix, storeKey('api', k)).state),
      keyNames(r.prefix, storeKey('pool', 'p')).state,
      keyNames(r.prefix, storeKey('pool', 'p')).slots,
    ];
    expect(await admin.exists(...lostNames)).toBe(lostNames.length);
    // Rarely, Redis evicts the marker too (its LRU is approximate): then the first call finds the
    // marker gone and tells the whole store lost ('flushed'), which covers every key.
    const kept = await evict(admin, lostNames, markerName(r.prefix, null));
    r.mark = r.calls.length;
    // Each key's first call since the eviction is one made here: a settle of a grant of before
    // (to 0: it gives nothing back) on k0, whose waiters the system then wakes, and a decision
    // on each other key. Once it is answered, the key was told lost.
    const first = async (limiter: string, key: string, call: () => Promise<unknown>) => {
      const state = keyNames(r.prefix, storeKey(limiter, key)).state;
      const since = r.calls.length;
      await call();
      const touched = r.calls.slice(since).filter((c) => c.keys.includes(state));
      expect(
        r.calls.slice(r.mark, since).some((c) => c.keys.includes(state)),
        key,
      ).toBe(false);
      expect(touched[0]?.script, key).toBe(key === 'k0' ? 'settle' : 'decide');
      const told = r.lost.filter(
        (e) =>
          e.event.reason === 'flushed' ||
          e.event.keys.some((k) => k.limiter === limiter && k.key === key),
      );
      expect(told, key).toHaveLength(1);
      expect(told[0]!.event).toMatchObject({
        store: 'redis',
        reason: kept ? 'evicted' : 'flushed',
        slot: null,
      });
    };
    await first('api', 'k0', () => l.held.get('k0')!.pop()!.settle({ requests: 0 }));
    for (const key of ['k1', 'k2', 'k3']) {
      await first('api', key, async () => expect((await r.api.tryAcquire(key)).ok).toBe(true));
    }
    let slot: Grant | undefined;
    await first('pool', 'p', async () => {
      const tried = await r.pool.tryAcquire('p');
      if (tried.ok) slot = tried.grant;
    });
    expect(slot, 'a slot of the fresh state').toBeDefined();
    const told = (): string[] =>
      r.lost.flatMap(({ event }) => event.keys.map((k) => `${k.limiter}/${k.key}`)).sort();
    expect(told()).toEqual(kept ? ['api/k0', 'api/k1', 'api/k2', 'api/k3', 'pool/p'] : []);
    const events = r.lost.length;
    const worst = await afterLoss(r, l, [slot!]);
    expect(r.lost).toHaveLength(events); // told once
    console.log(
      `eviction (marker ${kept ? 'kept' : 'evicted too'}): 5 keys noticed after 1 call each;` +
        ` worst window ${worst} for ${L}`,
    );
  });
});

/**
 * evict makes Redis evict `names` under `maxmemory` with `allkeys-lru`: it waits past Redis' LRU
 * clock resolution (1 s) so that they are older than anything written after, then fills Redis
 * with other data until they are gone, reading the marker meanwhile (as the traffic of other keys
 * would), so that it is not among the oldest keys, and stops as soon as they are gone. Then it
 * lifts the limit again, and tells whether the marker is still there.
 */
async function evict(admin: Redis, names: readonly string[], marker: string): Promise<boolean> {
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const info = await admin.info('memory');
  const used = Number(/used_memory:(\d+)/.exec(info)![1]);
  await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
  // Redis' LRU is approximate: it evicts the idlest of a few keys it samples. More samples make
  // the limiter keys (idle a second) go before the marker (idle 0, as the newest filler).
  await admin.config('SET', 'maxmemory-samples', '64');
  await admin.config('SET', 'maxmemory', String(used + 2 * 1024 * 1024));
  const filler = 'x'.repeat(10_000);
  for (let i = 0; (await admin.exists(...names)) > 0; i++) {
    expect(i, 'the limiter keys were not evicted').toBeLessThan(100_000);
    await admin.pipeline().set(`filler:${i}`, filler).zscore(marker, '').exec();
  }
  await admin.config('SET', 'maxmemory', '0');
  return (await admin.exists(marker)) === 1;
}

describe('data loss on a Redis Cluster', () => {
  let cluster: RedisCluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it('notices a FLUSHALL of every node on the first call to each slot', async () => {
    cluster = await startCluster({ masters: 3 });
    const r = run(cluster.client());
    const l = await load(r, [...KEYS, 'p']);
    expect((await r.api.acquire('probe')).key).toBe('probe'); // a key without waiters
    const slotOf = (call: Call): number => calculateSlot(call.keys[0]!);
    const storeKeys = [
      ...[...KEYS, 'probe'].map((k) => r.system.storeKey('api', k)),
      r.system.storeKey('pool', 'p'),
    ];
    const slots = new Set(storeKeys.map((k) => calculateSlot(keyNames(r.prefix, k).state)));
    expect(slots.size).toBeGreaterThan(1);
    r.mark = r.calls.length;
    await cluster.flushAll();
    // The first call, on 'probe', notices its slot; the system then wakes every key, whose
    // waiters' calls notice the other slots.
    expect((await r.api.tryAcquire('probe')).ok).toBe(true);
    expect(r.lost).toHaveLength(1);
    expect(r.lost[0]!.calls).toHaveLength(1); // the only call made when it was told
    await expect.poll(() => new Set(r.lost.map((e) => e.event.slot)).size).toBe(slots.size);
    for (const { event, calls } of r.lost) {
      expect(event).toMatchObject({ store: 'redis', reason: 'flushed', keys: [] });
      // The first call on the slot since the flush noticed it.
      expect(calls.filter((c) => slotOf(c) === event.slot)).toHaveLength(1);
    }
    expect(r.lost).toHaveLength(slots.size); // each slot told once
    const worst = await afterLoss(r, l);
    expect(r.lost).toHaveLength(slots.size);
    console.log(`Cluster FLUSHALL: ${r.lost.length} slots, each after 1 call; worst ${worst}`);
  });
});
