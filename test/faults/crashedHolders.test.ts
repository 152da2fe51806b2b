/**
 * Crashed holders (#12, item 10): a process holding concurrency slots on the Redis store is
 * SIGKILLed, so nothing of it ever releases them; their leases give them back. The holders are
 * real child processes (test/redis/fixtures/holder.ts) on a redis-server this file starts.
 *
 * Every instant compared here is Redis TIME, the clock the leases are judged on: a late timer on a
 * loaded machine changes when this test looks, never what it finds. The memory store's equivalent
 * (a holder that never releases, on virtual time) is at the end.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLimiterSystem, VirtualClock, type Grant } from '../../src/index.js';
import { redisStore } from '../../src/redis/index.js';
import { keyNames } from '../../src/redis/keys.js';
import { HOLDERS_POLICY } from '../redis/fixtures/policies.js';
import { spawnNode, SpawnNodeError, startRedis, type RedisServer } from '../redis/harness.js';
import { mulberry32 } from '../random.js';

/** HOLDERS_POLICY's concurrency. */
const SLOTS = 50;
/** The holders' lease: short, so the test waits little. */
const LEASE_MS = 2000;
/** The promise of #12: every slot is back within the lease plus this, on Redis' clock. */
const GRACE_MS = 1000;
const LIMITER = 'holders';

let server: RedisServer;
let admin: Redis;
let n = 0;
/** A prefix no other test uses. */
const fresh = (): string => `ch${++n}-${Math.random().toString(36).slice(2, 8)}:`;
/** The Redis names of `key` of the holders' limiter (the runtime's store key is length:name:key). */
const namesOf = (prefix: string, key: string): ReturnType<typeof keyNames> =>
  keyNames(prefix, `${LIMITER.length}:${LIMITER}:${key}`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  server = await startRedis();
  admin = server.client();
});
afterAll(async () => {
  await server.stop();
});

/** Redis TIME in ms: the clock the scripts decide and lease on. */
async function redisNow(): Promise<number> {
  const [s, us] = await admin.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

/** The lease ends held in the slot set `slots` (grant id → lease end), read by the admin client. */
async function leaseEnds(slots: string): Promise<Map<string, number>> {
  // Flat pairs (RESP2) or nested ones (RESP3, by the client's reply mapping): flat either way.
  const reply = (await admin.zrange(slots, '0', '-1', 'WITHSCORES')) as unknown[];
  const flat = reply.flat() as (string | number)[];
  const out = new Map<string, number>();
  for (let i = 0; i < flat.length; i += 2) out.set(String(flat[i]), Number(flat[i + 1]));
  return out;
}

type HoldLine = { pid: number; held: number; ids: string[]; at: number[] };
type ChurnLine = { pid: number; ready: true };

/** A holder child: its first line, and `killed`, which resolves once it died of our SIGKILL. */
interface Holder<L> {
  readonly first: Promise<L>;
  readonly killed: Promise<void>;
}

function holder<L extends { pid: number }>(
  prefix: string,
  key: string,
  mode: 'hold' | 'churn',
  arg: number,
): Holder<L> {
  let onFirst!: (line: L) => void;
  let noFirst!: (e: unknown) => void;
  const first = new Promise<L>((resolve, reject) => {
    onFirst = resolve;
    noFirst = reject;
  });
  const run = spawnNode<L>(
    'test/redis/fixtures/holder.ts',
    [String(server.port), prefix, key, String(LEASE_MS), mode, String(arg)],
    {},
    { timeoutMs: 30_000, onLine: (line) => onFirst(line as L) },
  );
  run.catch(noFirst);
  const killed = run.then(
    (r) => {
      throw new Error(`the holder exited by itself:\n${r.stdout}`);
    },
    (e: unknown) => {
      // Our SIGKILL, not spawnNode's timeout (which kills too, and says so).
      const ours = e instanceof SpawnNodeError && e.signal === 'SIGKILL';
      if (!ours || /timed out/.test(e.message)) throw e;
    },
  );
  return { first, killed };
}

/** A system of this process on the holders' key space, and a limiter with a long lease. */
function parent(prefix: string): {
  limiter: ReturnType<ReturnType<typeof createLimiterSystem>['limiter']>;
  close: () => Promise<void>;
} {
  const client = server.client();
  const store = redisStore({ client, prefix });
  const sys = createLimiterSystem({ store });
  const limiter = sys.limiter(LIMITER, { ...HOLDERS_POLICY, leaseTtl: '1m' });
  return {
    limiter,
    close: async () => {
      await sys.close();
      await store.close();
    },
  };
}

describe('a SIGKILLed holder of 50 slots (redis)', () => {
  it('gets all 50 back when their lease ends on Redis time, never before, within leaseTtl + 1 s of the kill', async () => {
    const prefix = fresh();
    const names = namesOf(prefix, 'k');
    const child = holder<HoldLine>(prefix, 'k', 'hold', SLOTS);
    const held = await child.first;
    expect(held.held).toBe(SLOTS);

    // Redis holds the 50 slots, each under its grant id, leased until its grant's instant + lease.
    const ends = await leaseEnds(names.slots);
    expect([...ends.keys()].sort()).toEqual([...held.ids].sort());
    held.ids.forEach((id, i) => expect(ends.get(id)).toBe(held.at[i]! + LEASE_MS));

    const killedAt = await redisNow();
    process.kill(held.pid, 'SIGKILL');
    await child.killed;

    // This process asks for slots until it holds all 50. A grant's instant is when the script
    // decided it (Redis TIME), however late this loop polled. It gives up only once Redis' clock
    // is far past the promise (a refusal then means a slot was never given back).
    const giveUpAt = killedAt + LEASE_MS + GRACE_MS + 10_000;
    const { limiter, close } = parent(prefix);
    const mine: Grant[] = [];
    let refused = 0;
    while (mine.length < SLOTS) {
      const r = await limiter.tryAcquire('k');
      if (r.ok) mine.push(r.grant);
      else {
        expect(r.limit).toBe('concurrency');
        refused++;
        if ((await redisNow()) > giveUpAt) break;
        await sleep(25);
      }
    }
    expect(mine).toHaveLength(SLOTS);
    // Never early: our k-th slot (k from 1) needs k of the holder's leases over at its instant.
    const sortedEnds = [...ends.values()].sort((a, b) => a - b);
    const sortedGrants = mine.map((g) => g.grantedAt).sort((a, b) => a - b);
    sortedGrants.forEach((at, k) => expect(at).toBeGreaterThanOrEqual(sortedEnds[k]!));
    // Within the lease + 1 s of the kill, on Redis' clock: the slots are free from the instant
    // the last lease ends, whenever this process happened to look.
    const freeAfterKill = sortedEnds.at(-1)! - killedAt;
    expect(freeAfterKill).toBeLessThanOrEqual(LEASE_MS + GRACE_MS);
    // Nothing of the holder's is left: the slot set holds exactly our 50.
    expect([...(await leaseEnds(names.slots)).keys()].sort()).toEqual(mine.map((g) => g.id).sort());
    expect((await limiter.tryAcquire('k')).ok).toBe(false);
    console.info(
      `crashed holder: 50 slots free ${freeAfterKill} ms after the kill (Redis TIME; lease ${LEASE_MS} ms), ` +
        `all re-acquired ${sortedGrants.at(-1)! - killedAt} ms after it, ${refused} polls refused before`,
    );
    for (const g of mine) g.release();
    await limiter.stats('k'); // the releases were applied before this read (one flush order)
    expect(await admin.exists(names.slots)).toBe(0);
    await close();
  });

  it('leaks no slot after rounds of holders killed at random moments, some mid-acquire', async () => {
    const seed = Number(process.env.HOLDERS_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const rand = mulberry32(seed);
    console.info(`crashed holders: seed ${seed} (HOLDERS_SEED=${seed} replays the kill moments)`);
    const prefix = fresh();
    const names = namesOf(prefix, 'k');
    const ROUNDS = 4;
    const CHILDREN = 3;
    // 3 × 30 callers on 50 slots: some always wait, so a kill finds acquires in flight.
    const CALLERS = 30;
    let lastKill = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const children = Array.from({ length: CHILDREN }, () =>
        holder<ChurnLine>(prefix, 'k', 'churn', CALLERS),
      );
      await Promise.all(
        children.map(async (c) => {
          const { pid } = await c.first;
          await sleep(Math.floor(rand() * 500)); // 0: killed in its first acquires
          process.kill(pid, 'SIGKILL');
          await c.killed;
        }),
      );
      lastKill = await redisNow();
    }
    // Every lease ends within one lease of the last kill (on Redis time); wait that out.
    const ends = [...(await leaseEnds(names.slots)).values()];
    const lastEnd = Math.max(0, ...ends);
    expect(lastEnd).toBeLessThanOrEqual(lastKill + LEASE_MS);
    while ((await redisNow()) <= lastEnd + 1) await sleep(50);

    // No entry holds a slot any more: none leases past now.
    expect(await admin.zcount(names.slots, `(${await redisNow()}`, '+inf')).toBe(0);
    // And no stale entry stays: the slot set expires with its last lease. (Its expiry counts from
    // when the script ran PEXPIRE, a little after the instant it decided at: a script that waited
    // for a core on a loaded machine sets it that much later. Wait for it on Redis' clock.)
    while ((await admin.exists(names.slots)) === 1 && (await redisNow()) < lastEnd + 10_000) {
      await sleep(50);
    }
    expect(await admin.exists(names.slots)).toBe(0);
    // And the full concurrency is there, not one more.
    const { limiter, close } = parent(prefix);
    const all = await Promise.all(Array.from({ length: SLOTS }, () => limiter.tryAcquire('k')));
    expect(all.filter((r) => r.ok)).toHaveLength(SLOTS);
    expect((await limiter.tryAcquire('k')).ok).toBe(false);
    console.info(
      `crashed holders: ${ROUNDS * CHILDREN} holders killed, ${ends.length} slot entries ` +
        `left at the last kill, 0 leaked`,
    );
    for (const r of all) if (r.ok) r.grant.release();
    await limiter.stats('k');
    expect(await admin.exists(names.slots)).toBe(0);
    await close();
  }, 120_000); // 12 child processes start: slow on a loaded machine (nothing here is timed)
});

describe('a holder that never releases (memory store, virtual time)', () => {
  it('keeps all 50 slots until the lease ends, then gives all 50 back at once', async () => {
    const clock = new VirtualClock();
    const sys = createLimiterSystem({ clock });
    const limiter = sys.limiter(LIMITER, { ...HOLDERS_POLICY, leaseTtl: LEASE_MS });
    const abandoned = await Promise.all(Array.from({ length: SLOTS }, () => limiter.acquire('k')));
    await clock.increment(LEASE_MS - 1);
    expect((await limiter.tryAcquire('k')).ok).toBe(false);
    expect((await limiter.stats('k')).inFlight).toBe(SLOTS);
    await clock.increment(1);
    expect((await limiter.stats('k')).inFlight).toBe(0);
    expect(abandoned.some((g) => g.holdsSlot)).toBe(false);
    const again = await Promise.all(Array.from({ length: SLOTS }, () => limiter.tryAcquire('k')));
    expect(again.every((r) => r.ok)).toBe(true);
    expect((await limiter.tryAcquire('k')).ok).toBe(false);
    await sys.close();
  });
});
