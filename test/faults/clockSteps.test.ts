/**
 * Clock steps (#12, item 6): the wall clock steps (+61 s, −1 h, ±10 s: NTP, a VM resumed, a date
 * set by hand) while monotonic time does not. Limits are intervals, so no step may move them:
 *
 * - Memory store on the default systemClock: a workload of tryAcquires with the wall clock
 *   stepped between its rounds makes exactly the decisions of the same workload without steps: 0
 *   extra admissions, and nothing refused that the unstepped run grants. A waiter whose wall clock
 *   steps back an hour is still granted after its refill.
 * - Redis store, `time: 'redis'`: two systems whose runtime clocks are 60 s apart (+30 s and
 *   −30 s) share one redis-server and make the decisions, readings, lease ends and grant stamps
 *   of two systems whose clocks agree. What the runtime clock still times there (deadlines,
 *   wake-ups, the runtime's lease timers) is relative, so a constant skew changes none of it.
 *
 * The steps stub `Date.now` only: `performance.now`, the monotonic clock systemClock reads, stays
 * real. Everything runs on real time, so the limits are chosen so that the milliseconds a run
 * takes change no decision: a token every 12 s, windows of a minute, a fixed window picked with
 * 30 s left before its end (see fixedWindowWithRoom).
 */
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AcquireTimeoutError,
  createLimiterSystem,
  limitedFetch,
  systemClock,
  type Clock,
  type Grant,
  type LimiterSystem,
  type PolicySpec,
} from '../../src/index.js';
import { keyNames, redisStore } from '../../src/redis/index.js';
import { startRedis, type RedisServer } from '../redis/harness.js';

/** The wall clock's steps, in order, one between each two rounds of a workload. */
const STEPS = [61_000, -3_600_000, 10_000, -10_000] as const;
const ROUNDS = STEPS.length + 1;
const TRIES_PER_ROUND = 3;
const LIMIT = 5;

/**
 * fixedWindowWithRoom picks the interval of a fixed-window limit (at most a minute, so that a
 * +61 s step lands in another window if the clock steps) whose current window, at `now`, has at
 * least 30 s left: a run of milliseconds then stays inside one window, and its decisions do not
 * depend on where in the minute it started. The remainder `now % interval` moves by about
 * `now / interval` ms from one interval to the next, so one of the first few fits.
 */
function fixedWindowWithRoom(now: number): number {
  for (let interval = 60_000; interval >= 40_000; interval--) {
    if (interval - (now % interval) >= 30_000) return interval;
  }
  throw new Error(`no fixed window with 30 s of room at ${now}`);
}

/** One policy per algorithm, 5 per (about) a minute each, and one with all three at once. */
function policies(fixedMs: number): Record<string, PolicySpec> {
  const bucket = { limit: LIMIT, interval: '1m', algorithm: 'token-bucket' } as const;
  const fixed = { limit: LIMIT, interval: fixedMs, algorithm: 'fixed-window' } as const;
  const sliding = { limit: LIMIT, interval: '1m', algorithm: 'sliding-window' } as const;
  return {
    bucket: { limits: [bucket] },
    fixed: { limits: [fixed] },
    sliding: { limits: [sliding] },
    all: {
      limits: [
        { ...bucket, name: 'bucket' },
        { ...fixed, name: 'fixed' },
        { ...sliding, name: 'sliding' },
      ],
    },
  };
}

/** What a tryAcquire answered, as compared between runs (retryAfterMs moves with real time). */
type Outcome = 'granted' | `refused ${string}`;

const grantsIn = (decisions: readonly string[]): number =>
  decisions.filter((d) => d.endsWith(': granted')).length;

describe('memory store on the default systemClock, wall clock stepped', () => {
  const realDateNow = Date.now.bind(Date);
  /** How far the stubbed wall clock is from the real one. */
  let wallOffsetMs = 0;
  const stepWallClock = (ms: number): void => void (wallOffsetMs += ms);

  beforeEach(() => {
    wallOffsetMs = 0;
    vi.spyOn(Date, 'now').mockImplementation(() => realDateNow() + wallOffsetMs);
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  /**
   * workload runs ROUNDS rounds of TRIES_PER_ROUND tryAcquires on three keys of each policy,
   * calling `between(i)` after round i, and returns every decision in order and each key's
   * remaining at the end.
   */
  async function workload(
    fixedMs: number,
    between: (round: number) => void,
  ): Promise<{ decisions: string[]; remaining: number[][] }> {
    const system = createLimiterSystem();
    try {
      const limiters = Object.entries(policies(fixedMs)).map(([name, spec]) =>
        system.limiter(name, spec),
      );
      const keys = ['k1', 'k2', 'k3'];
      const decisions: string[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        if (round > 0) between(round - 1);
        for (const limiter of limiters) {
          for (const key of keys) {
            for (let t = 0; t < TRIES_PER_ROUND; t++) {
              const r = await limiter.tryAcquire(key);
              const outcome: Outcome = r.ok ? 'granted' : `refused ${r.limit}`;
              decisions.push(`${round} ${limiter.name}/${key}: ${outcome}`);
            }
          }
        }
      }
      const remaining: number[][] = [];
      for (const limiter of limiters) {
        for (const key of keys) {
          remaining.push((await limiter.stats(key)).limits.map((l) => l.remaining));
        }
      }
      return { decisions, remaining };
    } finally {
      await system.close();
    }
  }

  it('steps Date.now and leaves performance.now alone', () => {
    const mono = performance.now();
    stepWallClock(-3_600_000);
    expect(Date.now() - realDateNow()).toBe(-3_600_000);
    expect(vi.isFakeTimers()).toBe(false);
    expect(performance.now()).toBeGreaterThanOrEqual(mono);
  });

  it('admits nothing extra and refuses nothing more when the wall clock steps +61 s, −1 h, ±10 s', async () => {
    const fixedMs = fixedWindowWithRoom(systemClock.now());
    const plain = await workload(fixedMs, () => {});
    const stepped = await workload(fixedMs, (i) => stepWallClock(STEPS[i]!));
    expect(wallOffsetMs).toBe(STEPS.reduce((a, b) => a + b, 0)); // every step was taken

    // The unstepped run grants each key its 5 and refuses the rest; the stepped one the same.
    const keysRun = Object.keys(policies(fixedMs)).length * 3;
    expect(grantsIn(plain.decisions)).toBe(keysRun * LIMIT);
    const extra = grantsIn(stepped.decisions) - grantsIn(plain.decisions);
    const of = (name: string, ds: readonly string[]): string[] =>
      ds.filter((d) => d.includes(` ${name}/`));
    const perPolicy = Object.keys(policies(fixedMs)).map(
      (name) =>
        `${name} ${grantsIn(of(name, stepped.decisions)) - grantsIn(of(name, plain.decisions))}`,
    );
    console.log(`clock steps, memory store: ${extra} extra admissions (${perPolicy.join(', ')})`);
    expect(extra).toBe(0);
    expect(stepped.decisions).toEqual(plain.decisions);
    expect(stepped.remaining).toEqual(plain.remaining);
    expect(plain.remaining.flat().every((r) => r === 0)).toBe(true);
  });

  it('grants a waiter after its refill when the wall clock steps back an hour while it waits', async () => {
    const system = createLimiterSystem();
    try {
      const limiter = system.limiter('wait', { limits: [{ limit: 1, interval: '300ms' }] });
      expect((await limiter.tryAcquire('k')).ok).toBe(true);
      const waiting = limiter.acquire('k');
      await expect.poll(async () => (await limiter.stats('k')).queued).toBe(1);
      stepWallClock(-3_600_000);
      // On the wall clock the refill would be an hour away: the waiter would outlast the test.
      const grant = await waiting;
      expect(grant.key).toBe('k');
    } finally {
      await system.close();
    }
  }, 20_000);

  it("reads a provider's dated retry-after on the wall clock, however far it stepped since load", async () => {
    stepWallClock(3_600_000); // the wall clock is now an hour ahead of the monotonic runtime clock
    const system = createLimiterSystem();
    try {
      const limiter = system.limiter('llm', { limits: [{ limit: 100, interval: '1m' }] });
      // The provider's own wall clock agrees with ours: come back in 30 s (to the second).
      const retryAt = new Date(Date.now() + 30_000).toUTCString();
      const f = limitedFetch({
        limiter,
        key: 'k',
        estimate: () => ({ requests: 1 }),
        fetch: async () => new Response('{}', { status: 429, headers: { 'retry-after': retryAt } }),
      });
      expect(
        (await f('https://api.openai.com/v1/chat/completions', { method: 'POST', body: '{}' }))
          .status,
      ).toBe(429);
      // The feedback is applied before the response comes back.
      const r = await limiter.tryAcquire('k');
      // About 30 s (the date's rounding down to the second, and the call, take a little), not the
      // hour and 30 s a reading on the runtime clock would make of it.
      expect(r).toMatchObject({ ok: false, limit: 'paused' });
      const waitMs = r.ok ? NaN : r.retryAfterMs;
      expect(waitMs).toBeGreaterThan(20_000);
      expect(waitMs).toBeLessThanOrEqual(30_000);
    } finally {
      await system.close();
    }
  });
});

/** A clock `skewMs` ahead of systemClock (behind, if negative), with its timers. */
const skewed = (skewMs: number): Clock => ({
  ...systemClock,
  now: () => systemClock.now() + skewMs,
});

/** The grant an acquire resolved with, or how it ended otherwise ('timed out', or the error). */
const ended = (p: Promise<Grant>): Promise<Grant | string> =>
  p.catch((e: unknown) => (e instanceof AcquireTimeoutError ? 'timed out' : String(e)));

/** Redis `TIME` in ms. */
async function redisNow(client: Redis): Promise<number> {
  const [s, us] = await client.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

describe('Redis store with time: redis, runtime clocks 30 s apart', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });

  /** A system on the shared server under `prefix`, on a clock skewed by `skewMs`. */
  function side(
    prefix: string,
    skewMs: number,
  ): { system: LimiterSystem; client: Redis; close: () => Promise<void> } {
    const client = server.client({ maxRetriesPerRequest: 1 });
    const store = redisStore({ client, prefix }); // time: 'redis', the default
    const system = createLimiterSystem({ store, clock: skewed(skewMs) });
    return {
      system,
      client,
      close: async () => {
        await system.close();
        await store.close();
      },
    };
  }

  const LEASE_MS = 600_000;

  /**
   * scenario runs one workload on two systems A and B sharing `prefix`, whose clocks are skewed by
   * `skews`, and returns what it saw that a skew could change: every decision, every reading, and
   * where lease ends and grant stamps fall against Redis `TIME`.
   */
  async function scenario(
    prefix: string,
    skews: readonly [number, number],
    fixedMs: number,
  ): Promise<string[]> {
    const a = side(prefix, skews[0]);
    const b = side(prefix, skews[1]);
    const trace: string[] = [];
    try {
      // Each clock is where it was told to be, against the other.
      expect(Math.round((a.system.clock.now() - b.system.clock.now()) / 1000)).toBe(
        Math.round((skews[0] - skews[1]) / 1000),
      );

      // Decisions: A and B take turns on the same keys; grants are stamped with Redis' time.
      const specs = policies(fixedMs);
      for (const [name, spec] of Object.entries(specs)) {
        const onA = a.system.limiter(name, spec);
        const onB = b.system.limiter(name, spec);
        // On k1 A books first, on k2 B: whichever clock is behind, the other would see its
        // bookings as a minute old if the runtime's clock decided.
        for (const [first, key] of ['k1', 'k2'].entries()) {
          for (let t = 0; t < 12; t++) {
            const { who, limiter } =
              (t + first) % 2 === 0 ? { who: 'A', limiter: onA } : { who: 'B', limiter: onB };
            const before = await redisNow(a.client);
            const r = await limiter.tryAcquire(key);
            const after = await redisNow(a.client);
            if (r.ok) {
              trace.push(
                `${name}/${key} ${who}: granted, stamped on Redis time ${
                  r.grant.grantedAt >= before && r.grant.grantedAt <= after
                }`,
              );
            } else {
              trace.push(`${name}/${key} ${who}: refused ${r.limit}`);
            }
          }
          // Readings: both sides read what Redis holds, the same.
          const seenA = (await onA.stats(key)).limits.map((l) => `${l.name} ${l.remaining}`);
          const seenB = (await onB.stats(key)).limits.map((l) => `${l.name} ${l.remaining}`);
          trace.push(`${name}/${key} remaining A ${seenA.join(', ')} | B ${seenB.join(', ')}`);
        }
      }

      // Slots, leases, deadlines and pub/sub wake-ups across the two systems.
      const slotSpec = { limits: [], concurrency: 1, leaseTtl: LEASE_MS } as const;
      const slotA = a.system.limiter('slot', slotSpec);
      const slotB = b.system.limiter('slot', slotSpec);
      const leaseLeft = async (id: string): Promise<string> => {
        const end = Number(
          await a.client.zscore(keyNames(prefix, a.system.storeKey('slot', 's')).slots, id),
        );
        const left = end - (await redisNow(a.client));
        // The lease ends leaseTtl after the grant on Redis' clock: neither side's skew is in it.
        return left > LEASE_MS - 20_000 && left <= LEASE_MS
          ? 'lease on Redis time'
          : `lease ${left}`;
      };
      const gA = await slotA.acquire('s');
      trace.push(`slot A: granted, ${await leaseLeft(gA.id)}`);
      const tried = await slotB.tryAcquire('s');
      trace.push(`slot B try: ${tried.ok ? 'granted' : `refused ${tried.limit}`}`);
      // B waits with a deadline on its own clock; A's release wakes it.
      const waitingB = ended(slotB.acquire('s', { timeout: '10s' }));
      await expect.poll(async () => (await slotB.stats('s')).queued).toBe(1);
      gA.release();
      const gB = await waitingB;
      trace.push(
        `slot B after A released: ${typeof gB === 'string' ? gB : `granted, ${await leaseLeft(gB.id)}`}`,
      );
      // A's deadline comes while B holds the slot: a timeout, whatever A's clock says.
      const late = await ended(slotA.acquire('s', { timeout: 300 }));
      trace.push(`slot A with a 300 ms deadline: ${typeof late === 'string' ? late : 'granted'}`);
      if (typeof gB !== 'string') gB.release();
      if (typeof late !== 'string') late.release();
      await expect.poll(async () => (await slotA.stats('s')).inFlight).toBe(0);

      // A wake-up on refill: B is told when a token comes (Redis' arithmetic), and waits for it
      // on its own clock's timers.
      const wake: PolicySpec = { limits: [{ limit: 1, interval: '2s' }] };
      const wakeA = a.system.limiter('wake', wake);
      const wakeB = b.system.limiter('wake', wake);
      trace.push(`wake A: ${(await wakeA.tryAcquire('w')).ok ? 'granted' : 'refused'}`);
      const refused = await wakeB.tryAcquire('w');
      const within = !refused.ok && refused.retryAfterMs > 0 && refused.retryAfterMs <= 2000;
      trace.push(`wake B try: ${refused.ok ? 'granted' : `refused, retry within 2 s ${within}`}`);
      const woken = await ended(wakeB.acquire('w', { timeout: '10s' }));
      trace.push(`wake B waiting: ${typeof woken === 'string' ? woken : 'granted'}`);
      return trace;
    } finally {
      await a.close();
      await b.close();
    }
  }

  it('makes the decisions of agreeing clocks when the clocks are +30 s and −30 s off', async () => {
    const probe = server.client();
    const fixedMs = fixedWindowWithRoom(await redisNow(probe));
    const agreeing = await scenario('agree:', [0, 0], fixedMs);
    const apart = await scenario('apart:', [30_000, -30_000], fixedMs);
    const changed = apart.filter((line, i) => line !== agreeing[i]).length;
    const granted = (t: readonly string[]): number =>
      t.filter((l) => l.includes(': granted')).length;
    console.log(
      `clock skew ±30 s, redis store: ${granted(apart) - granted(agreeing)} extra admissions, ` +
        `${changed} of ${apart.length} lines of the trace changed`,
    );
    expect(apart).toEqual(agreeing);
    // The agreeing run is what it should be: each key its 5, then refusals by the binding limit.
    expect(agreeing.filter((l) => l.includes(': granted, stamped on Redis time true')).length).toBe(
      4 * 2 * LIMIT,
    );
    expect(agreeing.filter((l) => l.includes('stamped on Redis time false'))).toEqual([]);
    expect(agreeing).toContain('slot B try: refused concurrency');
    expect(agreeing).toContain('slot B after A released: granted, lease on Redis time');
    expect(agreeing).toContain('slot A with a 300 ms deadline: timed out');
    expect(agreeing).toContain('wake B try: refused, retry within 2 s true');
    expect(agreeing).toContain('wake B waiting: granted');
    expect(agreeing.filter((l) => l.includes('lease on Redis time')).length).toBe(2);
  });
});
