/**
 * The Redis suite: tollgate's Redis store against rate-limiter-flexible's RateLimiterRedis on the
 * grant path (a limit so large nobody is refused), with 100 acquires in flight over 1,000 keys for
 * a fixed time, and three "ceiling" lines: a minimal Lua counter of ours driven the same way, once
 * with ~100 requests per script call, once in tollgate's shape (one call in flight per key), once
 * with one call per grant. They show what the round trips cost, apart from what is decided.
 *
 * Every measurement runs on a redis-server of its own (test/redis/harness.ts: a free loopback
 * port, `--save '' --appendonly no`), never the shared one on 6379, and stops it at the end.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import type { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { createLimiterSystem } from '../src/index.js';
import { redisStore } from '../src/redis/index.js';
import { startRedis, type RedisServer } from '../test/redis/harness.js';
import { HUGE } from './peers.js';
import {
  fmtInt,
  fmtNs,
  fmtRate,
  fmtRatio,
  fullGc,
  median,
  type Block,
  type Section,
  type Suite,
  type SuiteOptions,
  type Target,
} from './report.js';
import { makeKeys, rotate, type Acquire } from './workloads.js';
import { mulberry32 } from '../test/random.js';

/** Acquires in flight at any time (each caller awaits its grant, then asks again). */
const IN_FLIGHT = 100;
const KEYS = 1_000;
/** The most requests one ceiling call carries (the key actor's MAX_BATCH). */
const MAX_BATCH = 128;
/** tollgate / RLF, from the issue. */
const GOAL_VS_RLF = 2;

interface Params {
  readonly runs: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  /** Each measurement's fresh instance runs the workload this long, untimed, before its timed run. */
  readonly settleMs: number;
}

const FULL: Params = { runs: 5, durationMs: 2_000, warmupMs: 500, settleMs: 300 };
const QUICK: Params = { runs: 1, durationMs: 250, warmupMs: 100, settleMs: 50 };

// ---------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------

interface Peer {
  readonly acquire: Acquire;
  close(): Promise<void>;
}

interface RedisPeerFactory {
  /** The name in tables. */
  readonly name: string;
  /** A fresh peer on `client` (a fresh, connected ioredis client; the suite quits it). */
  create(client: Redis): Peer;
}

const RLF_NAME = 'rate-limiter-flexible (RateLimiterRedis)';
const TG_NAME = 'tollgate (redis)';

const rlfRedis: RedisPeerFactory = {
  name: RLF_NAME,
  create(client) {
    const rl = new RateLimiterRedis({
      storeClient: client,
      keyPrefix: 'rlf',
      points: HUGE.limit,
      duration: HUGE.intervalMs / 1000,
    });
    return { acquire: (key) => rl.consume(key), close: async () => {} };
  },
};

const tollgateRedis: RedisPeerFactory = {
  name: TG_NAME,
  create(client) {
    const store = redisStore({ client, prefix: 'tg:' });
    const system = createLimiterSystem({ store });
    const limiter = system.limiter('bench', {
      limits: [{ limit: HUGE.limit, interval: HUGE.intervalMs }],
    });
    return {
      acquire: (key) => limiter.acquire(key),
      async close() {
        await system.close();
        await store.close();
      },
    };
  },
};

/**
 * The ceiling's script: a fixed-window counter per key. KEYS: the keys of the batch; ARGV[1] the
 * limit, ARGV[2] the window in ms, ARGV[2 + j] how many requests of KEYS[j] the call carries.
 * Returns, per key, how many of them are granted (a refused remainder is taken back).
 */
const CEILING_LUA = `
local limit = tonumber(ARGV[1])
local out = {}
for j = 1, #KEYS do
  local n = tonumber(ARGV[j + 2])
  local used = redis.call('INCRBY', KEYS[j], n)
  if used == n then
    redis.call('PEXPIRE', KEYS[j], ARGV[2])
  end
  local granted = n
  if used > limit then
    granted = math.max(0, n - (used - limit))
    redis.call('DECRBY', KEYS[j], n - granted)
  end
  out[j] = granted
end
return out
`;

type CeilingCall = (keys: readonly string[], counts: readonly number[]) => Promise<number[]>;

/** Defines the ceiling script on `client` (EVALSHA, EVAL on NOSCRIPT, as the store does). */
function ceilingScript(client: Redis): CeilingCall {
  const c = client as unknown as Record<string, unknown>;
  if (typeof c.benchCeiling !== 'function') {
    client.defineCommand('benchCeiling', { lua: CEILING_LUA });
  }
  const run = c.benchCeiling as (...args: (string | number)[]) => Promise<number[]>;
  return (keys, counts) =>
    run.call(client, keys.length, ...keys, HUGE.limit, HUGE.intervalMs, ...counts);
}

interface Pending {
  readonly key: string;
  readonly resolve: (granted: true) => void;
  readonly reject: (error: unknown) => void;
}

function pending(key: string, push: (p: Pending) => void): Promise<true> {
  return new Promise<true>((resolve, reject) => push({ key, resolve, reject }));
}

/** Resolves the first `granted` of `group`; a refusal fails the run (the limit is HUGE). */
function answer(group: readonly Pending[], granted: number): void {
  group.forEach((p, i) =>
    i < granted ? p.resolve(true) : p.reject(new Error(`bench: ceiling refused ${p.key}`)),
  );
}

/** Requests of one turn of the loop, coalesced into one call over all their keys (one slot). */
const ceilingBatch: RedisPeerFactory = {
  name: 'Lua ceiling: ~100 requests per call (all keys, one slot)',
  create(client) {
    const run = ceilingScript(client);
    let queued: Pending[] = [];
    let scheduled = false;
    const send = (batch: readonly Pending[]): void => {
      const byKey = new Map<string, Pending[]>();
      for (const p of batch) {
        const group = byKey.get(p.key);
        if (group === undefined) byKey.set(p.key, [p]);
        else group.push(p);
      }
      const groups = [...byKey.values()];
      // One hash tag for every key: one slot, so the call would run on a Cluster too.
      const keys = [...byKey.keys()].map((k) => `ceil:{all}:${k}`);
      run(
        keys,
        groups.map((g) => g.length),
      ).then(
        (granted) => groups.forEach((g, j) => answer(g, granted[j]!)),
        (e: unknown) => batch.forEach((p) => p.reject(e)),
      );
    };
    const flush = (): void => {
      scheduled = false;
      const all = queued;
      queued = [];
      for (let s = 0; s < all.length; s += MAX_BATCH) send(all.slice(s, s + MAX_BATCH));
    };
    return {
      acquire: (key) =>
        pending(key, (p) => {
          queued.push(p);
          if (!scheduled) {
            scheduled = true;
            // Callers resumed by one reply run before this: they all join the same call.
            queueMicrotask(flush);
          }
        }),
      close: async () => {},
    };
  },
};

/** tollgate's shape: at most one call in flight per key; requests meanwhile go in its next one. */
const ceilingPerKey: RedisPeerFactory = {
  name: 'Lua ceiling: one call in flight per key, its queue batched',
  create(client) {
    const run = ceilingScript(client);
    const queues = new Map<string, { waiting: Pending[]; busy: boolean }>();
    const pump = (key: string, q: { waiting: Pending[]; busy: boolean }): void => {
      if (q.busy || q.waiting.length === 0) return;
      const batch = q.waiting.splice(0, MAX_BATCH);
      q.busy = true;
      run([`ceil:{${key}}`], [batch.length]).then(
        (granted) => {
          q.busy = false;
          answer(batch, granted[0]!);
          pump(key, q);
        },
        (e: unknown) => {
          q.busy = false;
          batch.forEach((p) => p.reject(e));
        },
      );
    };
    return {
      acquire(key) {
        let q = queues.get(key);
        if (q === undefined) queues.set(key, (q = { waiting: [], busy: false }));
        const queue = q;
        const promise = pending(key, (p) => queue.waiting.push(p));
        pump(key, queue);
        return promise;
      },
      close: async () => queues.clear(),
    };
  },
};

const ceilingPerGrant: RedisPeerFactory = {
  name: 'Lua ceiling: one call per grant',
  create(client) {
    const run = ceilingScript(client);
    return {
      acquire: (key) =>
        run([`ceil:{${key}}`], [1]).then((granted) => {
          if (granted[0] !== 1) throw new Error(`bench: ceiling refused ${key}`);
          return true;
        }),
      close: async () => {},
    };
  },
};

const PEERS: readonly RedisPeerFactory[] = [rlfRedis, tollgateRedis];
const CEILINGS: readonly RedisPeerFactory[] = [ceilingBatch, ceilingPerKey, ceilingPerGrant];
/** The ceiling of the target: ~100 requests decided per script call. */
const BATCH_CEILING = ceilingBatch.name;

// ---------------------------------------------------------------------------
// Workload and measurement
// ---------------------------------------------------------------------------

/**
 * `callers` callers, each looping: pick a key uniformly at random, `await acquire(key)`, until `ms`
 * have passed; the clock stops when the last caller's last acquire returns. Grants and seconds.
 * (Random, not the memory suite's `keyIndex`: its callers walk the keys in lockstep, so two of
 * them never ask for one key at once, which no real caller guarantees.)
 */
async function forDuration(
  acquire: Acquire,
  keys: readonly string[],
  callers: number,
  ms: number,
): Promise<{ grants: number; seconds: number }> {
  const n = keys.length;
  let grants = 0;
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(Math.round(ms * 1e6));
  const caller = async (c: number): Promise<void> => {
    // Seeded, one per caller: every run picks the same keys, whatever order callers resume in.
    const pick = mulberry32(0x9e3779b9 ^ (c + 1));
    for (;;) {
      await acquire(keys[Math.floor(pick() * n)]!);
      grants++;
      if (process.hrtime.bigint() >= deadline) return;
    }
  };
  const all: Promise<void>[] = [];
  for (let c = 0; c < callers; c++) all.push(caller(c));
  await Promise.all(all);
  return { grants, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

/** One measurement of one peer. */
interface Sample {
  readonly rate: number;
  readonly grants: number;
  /** EVALSHA + EVAL calls Redis ran (commandstats). */
  readonly scriptCalls: number;
  /** Redis' time in those calls, µs (commandstats `usec`). */
  readonly scriptUs: number;
  /** Redis process CPU (user + sys), µs. */
  readonly redisCpuUs: number;
  /** This Node process's CPU (user + sys), µs. */
  readonly nodeCpuUs: number;
}

function infoNumber(info: string, field: string): number {
  const m = new RegExp(`^${field}:([0-9.]+)`, 'm').exec(info);
  if (m === null) throw new Error(`bench: INFO has no ${field}`);
  return Number(m[1]);
}

async function redisCpuUs(admin: Redis): Promise<number> {
  const info = await admin.info('cpu');
  return (infoNumber(info, 'used_cpu_user') + infoNumber(info, 'used_cpu_sys')) * 1e6;
}

async function scriptStats(admin: Redis): Promise<{ calls: number; us: number }> {
  const info = await admin.info('commandstats');
  let calls = 0;
  let us = 0;
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+),usec=(\d+)/gm)) {
    calls += Number(m[1]);
    us += Number(m[2]);
  }
  return { calls, us };
}

/** Measures one peer once: empty database, fresh connection and instance, full GC first. */
async function once(
  factory: RedisPeerFactory,
  server: RedisServer,
  admin: Redis,
  keys: readonly string[],
  ms: number,
  settleMs: number,
): Promise<Sample> {
  await admin.flushall();
  const client = server.client();
  await client.ping();
  const peer = factory.create(client);
  try {
    await fullGc();
    // Untimed: the instance's start (its keys' first requests, and for tollgate their actors)
    // and the young generation growing back after the full GC are not what is measured.
    if (settleMs > 0) await forDuration(peer.acquire, keys, IN_FLIGHT, settleMs);
    await admin.config('RESETSTAT');
    const redis0 = await redisCpuUs(admin);
    const node0 = process.cpuUsage();
    const { grants, seconds } = await forDuration(peer.acquire, keys, IN_FLIGHT, ms);
    const node = process.cpuUsage(node0);
    const redisCpu = (await redisCpuUs(admin)) - redis0;
    const script = await scriptStats(admin);
    return {
      rate: grants / seconds,
      grants,
      scriptCalls: script.calls,
      scriptUs: script.us,
      redisCpuUs: redisCpu,
      nodeCpuUs: node.user + node.system,
    };
  } finally {
    await peer.close();
    await client.quit();
  }
}

// ---------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------

async function run(options: SuiteOptions): Promise<Section> {
  const p = options.quick ? QUICK : FULL;
  const { log } = options;
  const all = [...PEERS, ...CEILINGS];
  const keys = makeKeys(KEYS);
  const samples = new Map<string, Sample[]>(all.map((f) => [f.name, []]));

  log('redis: starting a redis-server of its own');
  const server = await startRedis();
  let version: string;
  let pinned: Pinning = { restore: null, why: 'not in a --quick run' };
  try {
    const admin = server.client();
    const info = await admin.info('server');
    version = infoString(info, 'redis_version');
    log(`redis: redis-server ${version} on ${server.host}:${server.port}`);
    // (Not in a smoke run, whose numbers mean nothing: it runs beside the test suite.)
    if (!options.quick) pinned = pinCores(Number(infoString(info, 'process_id')), log);
    log('redis: warm-up');
    for (const f of all) await once(f, server, admin, keys, p.warmupMs, p.settleMs);
    for (let r = 0; r < p.runs; r++) {
      // tollgate and RLF back to back (which goes first alternates), then the ceilings: the
      // ratio's two sides see the same moment of a shared machine as nearly as they can.
      for (const f of [...rotate(PEERS, r), ...rotate(CEILINGS, r)]) {
        const s = await once(f, server, admin, keys, p.durationMs, p.settleMs);
        samples.get(f.name)!.push(s);
        log(
          `redis: run ${r + 1}/${p.runs} ${f.name}: ${fmtRate(s.rate)}/s, ` +
            `${(s.grants / s.scriptCalls).toFixed(2)} grants per script call`,
        );
      }
    }
  } finally {
    pinned.restore?.();
    await server.stop();
  }

  // Every ratio is against rate-limiter-flexible (or a ceiling) measured in this same run.
  const rates = (name: string): number[] => samples.get(name)!.map((s) => s.rate);
  const med = (name: string): number => median(rates(name));
  const runsOf = (name: string): string => rates(name).map(fmtRate).join(' / ');
  /** The median over runs of a per-grant (or per-call) quantity. */
  const medOf = (name: string, f: (s: Sample) => number): number =>
    median(samples.get(name)!.map(f));
  const rlf = med(RLF_NAME);
  const tg = med(TG_NAME);
  const perCall = (name: string): number => medOf(name, (s) => s.grants / s.scriptCalls);
  const tgPerCall = perCall(TG_NAME);
  const batchPerCall = perCall(BATCH_CEILING);
  const runsWord = `${p.runs} run${p.runs === 1 ? '' : 's'}`;

  const blocks: Block[] = [
    {
      text: [
        `Workload: ${IN_FLIGHT} callers in flight, each looping: pick one of ${fmtInt(KEYS)} keys uniformly at`,
        `random (a seeded sequence per caller), \`await acquire(key)\`, repeat; for ${p.durationMs} ms. Grants/s is`,
        `the grants taken over the time until the last caller's last acquire returned. Limit`,
        `${fmtInt(HUGE.limit)} per ${HUGE.intervalMs / 1000} s, so nobody is refused.`,
        `Redis ${version} of the bench's own (loopback, \`--save '' --appendonly no\`) on the same machine as`,
        `Node; each measurement uses a fresh ioredis connection (default options) and instance on an`,
        `emptied database, after a full GC and ${p.settleMs} ms of the workload untimed (the instance's start is not`,
        `measured); in each run tollgate and RLF go back to back (alternating which goes first), then the`,
        `ceilings. ${pinned.restore === null ? `Node and Redis are not pinned to cores (${pinned.why}).` : 'This process runs on CPU 0 and redis-server on CPU 1 (`taskset`), so the scheduler never'}`,
        ...(pinned.restore === null ? [] : ['puts both on one core for part of a measurement.']),
        `tollgate: \`redisStore({ client })\` (time: 'redis', defaults) through \`createLimiterSystem\` and`,
        `\`limiter.acquire\`; rate-limiter-flexible: \`RateLimiterRedis({ storeClient })\`, \`consume(key)\`.`,
        `Median of ${runsWord} (all runs listed); ratios are to rate-limiter-flexible in this run (higher is better).`,
      ].join('\n'),
    },
    {
      table: {
        title: `Throughput (awaited grants per second, ${IN_FLIGHT} in flight, ${fmtInt(KEYS)} keys)`,
        headers: ['peer', 'grants/s', 'vs RLF', 'runs'],
        rows: PEERS.map((f) => [
          f.name,
          fmtRate(med(f.name)),
          fmtRatio(med(f.name) / rlf),
          runsOf(f.name),
        ]),
      },
    },
    {
      table: {
        title: 'Batch-Lua ceiling (same workload, a minimal script of ours)',
        headers: ['ceiling', 'grants/s', 'vs RLF', 'tollgate / ceiling', 'runs'],
        rows: CEILINGS.map((f) => [
          f.name,
          fmtRate(med(f.name)),
          fmtRatio(med(f.name) / rlf),
          fmtRatio(tg / med(f.name)),
          runsOf(f.name),
        ]),
      },
    },
    {
      text: [
        `The ceiling script is a fixed-window counter per key (\`INCRBY\` by the call's count for the key,`,
        `\`PEXPIRE\` when new, refuse past the limit), sent with EVALSHA through the same driver: requests`,
        `of one turn of the event loop coalesced into one call over all their keys (the keys share one hash`,
        `tag, so it would run on a Cluster too); tollgate's shape (at most one call in flight per key, the`,
        `requests that arrive meanwhile go in its next call, up to ${MAX_BATCH}); one call per grant. It decides`,
        `much less than either library (one counter; no \`TIME\`, no multi-limit state), so it is a bound on`,
        `what the round trips allow, not a competitor.`,
      ].join('\n'),
    },
    {
      table: {
        title: 'Where the time goes (median of runs)',
        headers: [
          'peer',
          'grants per script call',
          'Node CPU per grant',
          'Redis CPU per grant',
          'in scripts per grant',
        ],
        rows: all.map((f) => [
          f.name,
          perCall(f.name).toFixed(2),
          fmtNs(medOf(f.name, (s) => (s.nodeCpuUs * 1e3) / s.grants)),
          fmtNs(medOf(f.name, (s) => (s.redisCpuUs * 1e3) / s.grants)),
          fmtNs(medOf(f.name, (s) => (s.scriptUs * 1e3) / s.grants)),
        ]),
      },
    },
    {
      text: [
        `Script calls and the time in them are Redis' \`INFO commandstats\` (EVALSHA + EVAL), reset before each`,
        `measurement; Redis CPU is the server's \`used_cpu_user + used_cpu_sys\`; Node CPU is \`process.cpuUsage()\``,
        `of the bench process (the peer, ioredis and the driver). ${pinned.restore === null ? "Node and Redis share the machine's cores." : 'Node and Redis have one core each (above).'}`,
        `With ${IN_FLIGHT} requests in flight over ${fmtInt(KEYS)} keys a key rarely has a second request queued while`,
        `its call is out, so tollgate's store sends the requests of all keys asked before its flush (a microtask) in one script call (per`,
        `cluster slot): ${tgPerCall.toFixed(2)} requests per script call here (rate-limiter-flexible: one per grant by design),`,
        `against ${batchPerCall.toFixed(1)} for the cross-key batch ceiling.`,
      ].join('\n'),
    },
  ];

  const vsRlf = tg / rlf;
  const vsCeiling = tg / med(BATCH_CEILING);
  const targets: Target[] = [
    {
      name: `Redis grants/s (${IN_FLIGHT} in flight, ${fmtInt(KEYS)} keys) vs RLF RateLimiterRedis`,
      measured: fmtRatio(vsRlf),
      goal: `≥ ${GOAL_VS_RLF.toFixed(2)}×`,
      met: vsRlf >= GOAL_VS_RLF,
    },
    {
      name: `Redis grants/s vs batch-Lua ceiling (~${Math.round(batchPerCall)} requests per call), tollgate / ceiling`,
      measured: fmtRatio(vsCeiling),
      goal: 'reported (no goal)',
      met: null,
    },
  ];

  return { title: 'Redis', blocks, targets };
}

interface Pinning {
  /** Gives this process back the CPUs it had; null when nothing was pinned. */
  readonly restore: (() => void) | null;
  /** Why nothing was pinned (when `restore` is null). */
  readonly why: string;
}

/**
 * pinCores runs this process (every thread) on CPU 0 and the server on CPU 1 with `taskset`, so
 * Node and Redis never share a core during a measurement. When it cannot (fewer than two CPUs,
 * no taskset, a CPU it may not use), it leaves both as they were and says why.
 */
function pinCores(redisPid: number, log: (line: string) => void): Pinning {
  const none = (why: string): Pinning => {
    log(`redis: Node and Redis are not pinned to cores (${why})`);
    return { restore: null, why };
  };
  if (os.cpus().length < 2) return none('fewer than 2 CPUs');
  if (!Number.isInteger(redisPid) || redisPid <= 0) return none('no redis-server pid');
  const taskset = (...args: string[]): string =>
    execFileSync('taskset', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const maskOf = (pid: number): string =>
    /:\s*([0-9a-f,]+)\s*$/i.exec(taskset('-p', String(pid)))?.[1] ?? '';
  let mine: string;
  let theirs: string;
  try {
    mine = maskOf(process.pid);
    theirs = maskOf(redisPid);
  } catch {
    return none('taskset is not available');
  }
  if (mine === '' || theirs === '') return none('taskset printed no affinity mask');
  try {
    taskset('-a', '-p', '-c', '1', String(redisPid));
  } catch {
    return none('taskset could not put redis-server on CPU 1');
  }
  try {
    taskset('-a', '-p', '-c', '0', String(process.pid));
  } catch {
    try {
      taskset('-a', '-p', theirs, String(redisPid));
    } catch {
      // the server is stopped at the end of the suite anyway
    }
    return none('taskset could not put this process on CPU 0');
  }
  log(`redis: pinned this process to CPU 0 and redis-server (pid ${redisPid}) to CPU 1`);
  return {
    restore() {
      try {
        taskset('-a', '-p', mine, String(process.pid));
      } catch {
        // the process ends after the suites anyway
      }
    },
    why: '',
  };
}

function infoString(info: string, field: string): string {
  const m = new RegExp(`^${field}:(\\S+)`, 'm').exec(info);
  return m?.[1] ?? 'unknown';
}

export const redisSuite: Suite = { name: 'redis', run };
