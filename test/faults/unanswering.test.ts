/**
 * A store that does not answer (#12, item 4): a TCP server that accepts connections and never
 * replies, and a real Redis held by `CLIENT PAUSE`. Each decision ends at the store's `timeout`,
 * measured on the runtime's clock (virtual here, so the figure is exact on a loaded machine: the
 * bench measures the same on real timers), never later; the `onUnavailable` policy then holds
 * exactly: fail-closed admits 0, fail-open admits every request, insurance its fraction.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createLimiterSystem,
  StoreUnavailableError,
  VirtualClock,
  type LimiterSystem,
} from '../../src/index.js';
import { redisStore, type UnavailablePolicy } from '../../src/redis/index.js';
import {
  startRedis,
  startSilentServer,
  type RedisServer,
  type SilentServer,
} from '../redis/harness.js';

const TIMEOUT_MS = 100;
const RETRY_MS = 1000;
const KEYS = 5;
const PER_KEY = 10;
const LIMIT = 10;

/** How each call ended, and at which instant of the virtual clock. */
interface Ending {
  readonly ok: boolean;
  readonly error?: unknown;
  readonly at: number;
}

/** Drives the virtual clock 1 ms at a time until `calls` have all ended (or `untilMs`). */
async function runUntilEnded(
  clock: VirtualClock,
  calls: readonly Promise<Ending>[],
  untilMs: number,
): Promise<Ending[]> {
  let ended = 0;
  for (const c of calls) void c.then(() => ended++);
  while (ended < calls.length && clock.now() < untilMs) await clock.increment(1);
  await Promise.resolve();
  expect(ended, `calls still open at ${clock.now()} ms`).toBe(calls.length);
  return Promise.all(calls);
}

/** `KEYS` keys × `PER_KEY` acquires, each timed from its start on the virtual clock. */
function acquireAll(sys: LimiterSystem, clock: VirtualClock): Promise<Ending>[] {
  const api = sys.limiter('api', { limits: [{ limit: LIMIT, interval: '1m' }] });
  const calls: Promise<Ending>[] = [];
  for (let i = 0; i < KEYS * PER_KEY; i++) {
    calls.push(
      api.acquire(`k${i % KEYS}`, { timeout: 60_000 }).then(
        () => ({ ok: true, at: clock.now() }),
        (error: unknown) => ({ ok: false, error, at: clock.now() }),
      ),
    );
  }
  return calls;
}

/** A system on a store whose client talks to `port`; the store is timed by the virtual clock. */
function systemOn(
  port: number,
  onUnavailable: UnavailablePolicy,
): { sys: LimiterSystem; clock: VirtualClock; granted: () => number; close: () => Promise<void> } {
  const client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: null });
  client.on('error', () => {});
  const store = redisStore({
    client,
    timeout: TIMEOUT_MS,
    retryInterval: RETRY_MS,
    onUnavailable,
    insuranceFraction: 0.5,
  });
  const clock = new VirtualClock();
  const sys = createLimiterSystem({ store, clock });
  let granted = 0;
  sys.events.on('granted', () => granted++);
  return {
    sys,
    clock,
    granted: () => granted,
    close: async () => {
      await sys.close();
      await store.close();
      client.disconnect();
    },
  };
}

describe('a server that accepts and never replies', () => {
  let hole: SilentServer;
  beforeAll(async () => {
    hole = await startSilentServer();
  });
  afterAll(async () => {
    await hole.close();
  });

  it('fail-closed: every decision ends at the timeout, none later, and admits 0', async () => {
    const { sys, clock, granted, close } = systemOn(hole.port, 'fail-closed');
    const endings = await runUntilEnded(clock, acquireAll(sys, clock), 10 * TIMEOUT_MS);
    expect(endings.filter((e) => e.ok)).toHaveLength(0);
    for (const e of endings) expect(e.error).toBeInstanceOf(StoreUnavailableError);
    // The first decision of each key waited out the timeout; the rest were answered at once,
    // since the store does not ask again within retryInterval.
    expect(Math.max(...endings.map((e) => e.at))).toBe(TIMEOUT_MS);
    expect(granted()).toBe(0);

    // After retryInterval the store asks again, and that decision too ends at its timeout.
    await clock.increment(RETRY_MS);
    const start = clock.now();
    const later = await runUntilEnded(clock, acquireAll(sys, clock), start + 10 * TIMEOUT_MS);
    expect(later.every((e) => !e.ok && e.error instanceof StoreUnavailableError)).toBe(true);
    expect(Math.max(...later.map((e) => e.at)) - start).toBe(TIMEOUT_MS);
    await close();
  });

  it('fail-open: every request is admitted at the timeout, and each grant is counted', async () => {
    const { sys, clock, granted, close } = systemOn(hole.port, 'fail-open');
    const endings = await runUntilEnded(clock, acquireAll(sys, clock), 10 * TIMEOUT_MS);
    expect(endings.filter((e) => e.ok)).toHaveLength(KEYS * PER_KEY);
    expect(Math.max(...endings.map((e) => e.at))).toBe(TIMEOUT_MS);
    expect(granted()).toBe(KEYS * PER_KEY);
    await close();
  });

  it('insurance: exactly its fraction of the limit per key, decided at the timeout', async () => {
    const { sys, clock, close } = systemOn(hole.port, 'insurance');
    const api = sys.limiter('api', { limits: [{ limit: LIMIT, interval: '1m' }] });
    const calls = Array.from({ length: KEYS * PER_KEY }, (_, i) =>
      api.tryAcquire(`k${i % KEYS}`).then((r) => ({ ok: r.ok, at: clock.now() })),
    );
    const endings = await runUntilEnded(clock, calls, 10 * TIMEOUT_MS);
    expect(endings.filter((e) => e.ok)).toHaveLength(KEYS * LIMIT * 0.5);
    expect(Math.max(...endings.map((e) => e.at))).toBe(TIMEOUT_MS);
    await close();
  });
});

describe('a real Redis held by CLIENT PAUSE', () => {
  for (const policy of ['fail-closed', 'fail-open', 'insurance'] as const) {
    it(`${policy}: decisions end at the timeout while Redis is paused`, async () => {
      // A server of its own: stopping it ends the pause, which nothing else can (on Redis 7.0 a
      // CLIENT UNPAUSE is itself paused).
      await using server: RedisServer = await startRedis();
      const { sys, clock, granted, close } = systemOn(server.port, policy);
      const api = sys.limiter('api', { limits: [{ limit: LIMIT, interval: '1m' }] });
      expect((await api.tryAcquire('warm')).ok).toBe(true); // connected, scripts loaded
      // Long enough in real time to outlast the virtual milliseconds driven below.
      await server.pause(5000);
      const before = granted();
      const calls = Array.from({ length: KEYS * PER_KEY }, (_, i) =>
        api.tryAcquire(`k${i % KEYS}`).then(
          (r) => ({ ok: r.ok, at: clock.now() }),
          (error: unknown) => ({ ok: false, error, at: clock.now() }),
        ),
      );
      const endings = await runUntilEnded(clock, calls, 10 * TIMEOUT_MS);
      expect(Math.max(...endings.map((e) => e.at))).toBe(TIMEOUT_MS);
      const admitted = endings.filter((e) => e.ok).length;
      const expected = { 'fail-closed': 0, 'fail-open': KEYS * PER_KEY, insurance: KEYS * 5 };
      expect(admitted).toBe(expected[policy]);
      expect(granted() - before).toBe(admitted);
      if (policy === 'fail-closed') {
        for (const e of endings)
          expect(e).toMatchObject({ error: expect.any(StoreUnavailableError) });
      }
      await close();
    });
  }
});
