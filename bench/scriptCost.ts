/**
 * The script-cost suite (#12, item 11): Redis runs one script at a time and blocks every client
 * while it runs, so the largest call the Redis store may send must stay short. This suite drives
 * the store's scripts with full-size calls on a redis-server of its own and reads how long each
 * call ran from Redis itself: `SLOWLOG` with `slowlog-log-slower-than 0` gives the microseconds of
 * every call (for p50, p99 and max); `INFO commandstats` and `INFO cpu`, read around each group of
 * calls of one script in a second pass with the slow log off, give the mean wall time and the mean
 * CPU time per call. No timer of Node's is involved.
 *
 * The largest call: a `decide.lua` call carries the decisions of up to MAX_KEYS_PER_CALL keys and
 * MAX_WORK_PER_CALL of estimated work (src/redis/flushQueue.ts; one key over it goes alone), each
 * a batch of up to MAX_BATCH waiters (src/machines/asyncBatch.ts),
 * each with one amount per limit. The policy here has 3 limits over 2 dimensions (requests per
 * minute, tokens per minute, requests per day), so large that nothing is refused: every request is
 * booked, the most work a call can do. `settle.lua` and `release.lua` take one grant per call (a
 * release after a failed decide carries every slotted id of one key: up to MAX_SLOTTED_BATCH).
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { compileCost, compilePolicy } from '../src/limiter/index.js';
import type { AlgorithmName, Policy, PolicySpec } from '../src/limiter/types.js';
import { MAX_BATCH, MAX_SLOTTED_BATCH } from '../src/machines/asyncBatch.js';
import { MAX_KEYS_PER_CALL, MAX_WORK_PER_CALL, workOf } from '../src/redis/flushQueue.js';
import { freeChannel, keyNames } from '../src/redis/keys.js';
import { redisStore, type RedisStore } from '../src/redis/redisStore.js';
import { defineScripts, scriptSources, type ScriptName } from '../src/redis/scripts.js';
import type { StoreGrant, StoreRequest } from '../src/store.js';
import { startRedis } from '../test/redis/harness.js';
import {
  fmtInt,
  quantile,
  type Section,
  type Suite,
  type SuiteOptions,
  type Target,
} from './report.js';

/** The promise of #12: the largest call runs at most this long in Redis at p99. */
const GOAL_US = 1000;

interface Params {
  /** Measured decide calls per workload (after the warm-up). */
  readonly calls: number;
  /** Grants settled (and slots released one by one) per workload that settles. */
  readonly settles: number;
  /** The entries per limit of a sliding window's log in the `long log` workload. */
  readonly logEntries: number;
}
const FULL: Params = { calls: 100, settles: 2000, logEntries: 1000 };
const QUICK: Params = { calls: 2, settles: 20, logEntries: 50 };
const WARMUP_CALLS = 3;

/** One workload: `keys` keys per decide call, `perKey` requests each, under `algorithm`. */
interface Workload {
  readonly name: string;
  readonly keys: number;
  readonly perKey: number;
  readonly algorithm: AlgorithmName;
  /** Whether every request takes a concurrency slot (released after each call, 128 ids a call). */
  readonly slots: boolean;
  /** Whether grants are settled after the decide calls (one settle.lua call each). */
  readonly settle: boolean;
  /** Whether each key's log is filled first with Params.logEntries entries (sliding window). */
  readonly longLog: boolean;
}

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;

/** A workload of `keys` keys × `perKey` requests per decide call. */
function workload(
  keys: number,
  perKey: number,
  algorithm: AlgorithmName,
  { slots = false, settle = false, longLog = false } = {},
): Workload {
  let name = `${plural(keys, 'key')} × ${plural(perKey, 'request')}`;
  if (slots) name += ', each with a slot';
  if (longLog) name += ', long log';
  return {
    name,
    longLog,
    keys,
    perKey,
    algorithm,
    slots,
    settle,
  };
}

/**
 * How many keys of `perKey` requests the store puts in one call: as many as fit in
 * MAX_WORK_PER_CALL (at least one) and MAX_KEYS_PER_CALL, by the flush's own rule.
 */
function keysPerCall(perKey: number, algorithm: AlgorithmName, slots: boolean): number {
  const batch = Array.from({ length: perKey }, () => ({ slot: slots }) as StoreRequest);
  const work = workOf(policyOf(algorithm, slots), batch);
  return Math.min(MAX_KEYS_PER_CALL, Math.max(1, Math.floor(MAX_WORK_PER_CALL / work)));
}

/** A full call: as many keys of `perKey` requests as the store puts in one. */
function full(
  perKey: number,
  algorithm: AlgorithmName,
  options: { slots?: boolean; settle?: boolean } = {},
): Workload {
  return workload(
    keysPerCall(perKey, algorithm, options.slots ?? false),
    perKey,
    algorithm,
    options,
  );
}

/** The largest call: the largest batches, as many keys of them as a call carries. */
const LARGEST = full(MAX_BATCH, 'token-bucket', { settle: true });
const WORKLOADS: readonly Workload[] = [
  full(1, 'token-bucket'),
  LARGEST,
  full(MAX_SLOTTED_BATCH, 'token-bucket', { slots: true }),
  full(MAX_BATCH, 'sliding-window', { settle: true }),
  full(MAX_BATCH, 'fixed-window'),
  workload(1, 1, 'sliding-window', { longLog: true }),
];

function policyOf(algorithm: AlgorithmName, slots: boolean): Policy {
  const spec: PolicySpec = {
    algorithm,
    limits: [
      { limit: 1_000_000, interval: '1m', name: 'rpm' },
      { limit: 1_000_000_000, interval: '1m', dimension: 'tokens', name: 'tpm' },
      { limit: 10_000_000, interval: '1d', name: 'rpd' },
    ],
    ...(slots && { concurrency: 1_000_000 }),
  };
  return compilePolicy(spec);
}

/** The times of one row: one script's calls in one workload. */
interface Row {
  readonly workload: string;
  readonly algorithm: AlgorithmName;
  /** The script's file. */
  readonly script: string;
  /** What one call carried. */
  readonly call: string;
  /** Microseconds of each call, from SLOWLOG (the pass with the slow log on). */
  readonly us: number[];
  /** INFO's counts in the pass with the slow log on. */
  logged: { calls: number; usec: number; cpuUs: number };
  /** The same in the pass with the slow log off (its own logging costs the scripts a little). */
  plain: { calls: number; usec: number; cpuUs: number };
}

/** The scripts' SHA-1s, as EVALSHA names them. */
function shaOf(script: ScriptName): string {
  return createHash('sha1').update(scriptSources()[script]).digest('hex');
}

/** What INFO says so far: EVALSHA + EVAL calls and their µs (commandstats), the main thread's CPU µs. */
interface Counters {
  readonly calls: number;
  readonly usec: number;
  readonly cpuUs: number;
}

async function counters(admin: Redis): Promise<Counters> {
  const info = String(await admin.call('INFO', 'cpu', 'commandstats'));
  let calls = 0;
  let usec = 0;
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+),usec=(\d+)/gm)) {
    calls += Number(m[1]);
    usec += Number(m[2]);
  }
  const cpu = (field: string): number =>
    Number(new RegExp(`^${field}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
  const cpuUs = (cpu('used_cpu_user_main_thread') + cpu('used_cpu_sys_main_thread')) * 1e6;
  return { calls, usec, cpuUs };
}

/**
 * Meter measures segments: calls of one script, counted by INFO commandstats read before and
 * after, and, with the slow log on, each call's microseconds read from SLOWLOG right after. Redis
 * logs the commands a script runs too (before the script's own entry), so the log is read after
 * every segment, newest first, as far as the segment's entries go.
 */
class Meter {
  readonly rows: Row[] = [];
  #slowlog = false;

  constructor(private readonly admin: Redis) {}

  /** Turns the slow log on (every command) or off, and starts it empty. */
  async slowlog(on: boolean): Promise<void> {
    await this.admin.config('SET', 'slowlog-log-slower-than', on ? '0' : '-1');
    await this.admin.call('SLOWLOG', 'RESET');
    this.#slowlog = on;
  }

  /** The row of `script` carrying `call` in workload `w` (made on first use). */
  row(w: Workload, script: ScriptName, call: string): Row {
    const file = SCRIPT_FILE[script];
    let r = this.rows.find(
      (x) =>
        x.workload === w.name &&
        x.algorithm === w.algorithm &&
        x.script === file &&
        x.call === call,
    );
    if (r === undefined) {
      r = {
        workload: w.name,
        algorithm: w.algorithm,
        script: file,
        call,
        us: [],
        logged: { calls: 0, usec: 0, cpuUs: 0 },
        plain: { calls: 0, usec: 0, cpuUs: 0 },
      };
      this.rows.push(r);
    }
    return r;
  }

  /** Runs `calls` calls of `script` (by `run`) and adds their times to `row`. */
  async segment(
    row: Row,
    script: ScriptName,
    calls: number,
    run: () => Promise<unknown>,
  ): Promise<void> {
    if (this.#slowlog) await this.admin.call('SLOWLOG', 'RESET');
    const before = await counters(this.admin);
    await run();
    const after = await counters(this.admin);
    const counted = after.calls - before.calls;
    if (counted !== calls)
      throw new Error(`bench: ${calls} calls of ${script} sent, Redis counted ${counted}`);
    const into = this.#slowlog ? row.logged : row.plain;
    into.calls += counted;
    into.usec += after.usec - before.usec;
    into.cpuUs += after.cpuUs - before.cpuUs;
    if (!this.#slowlog) return;
    // A script's own commands and the INFO calls are logged too: a few per call at most, but for
    // decide.lua (one call a segment), whose entry is among the newest.
    const entries = (await this.admin.call(
      'SLOWLOG',
      'GET',
      String(calls * 16 + 8),
    )) as unknown[][];
    const sha = shaOf(script);
    let found = 0;
    for (const e of entries) {
      const args = e[3] as unknown[];
      if (String(args[0]).toLowerCase() === 'evalsha' && String(args[1]) === sha) {
        row.us.push(Number(e[2]));
        found++;
      }
    }
    if (found !== calls)
      throw new Error(`bench: SLOWLOG shows ${found} of ${calls} calls of ${script}`);
  }
}

/** Calls per segment of settles and single releases (their entries must fit one SLOWLOG read). */
const CHUNK = 100;

/** Runs one workload on `prefix` (fresh for each pass), adding to the meter's rows. */
async function runWorkload(
  w: Workload,
  p: Params,
  client: Redis,
  meter: Meter,
  prefix: string,
): Promise<void> {
  const store: RedisStore = redisStore({ client, prefix, timeout: '1m' });
  const policy = policyOf(w.algorithm, w.slots);
  const units = compileCost(policy, { requests: 1, tokens: 1000 });
  const actual = compileCost(policy, { requests: 1, tokens: 400 });
  const keys = Array.from({ length: w.keys }, (_, k) => `key${k}`);
  const scripts = defineScripts(client);
  const keyOf = (k: number): string => keys[Math.floor(k / w.perKey)]!;
  let nextId = 0;

  /** One decide call (all keys queued before the store's flush), every request granted. */
  const decideOnce = async (): Promise<StoreGrant[][]> => {
    const answers = await Promise.all(
      keys.map((key) => {
        const batch: StoreRequest[] = Array.from({ length: w.perKey }, () => ({
          id: `g${++nextId}`,
          units,
          slot: w.slots,
          leaseMs: w.slots ? 600_000 : null,
        }));
        return store.decide(key, policy, batch, 'queue', 0);
      }),
    );
    return answers.map((ds) =>
      ds.map((d) => {
        if (!d.ok) throw new Error(`bench: a script-cost request was refused (${d.limit})`);
        return d.grant;
      }),
    );
  };
  /** Frees each key's slots in one release.lua call, as the store does after a failed decide. */
  const releaseAll = (grants: StoreGrant[][]): Promise<unknown> =>
    Promise.all(
      keys.map((key, k) => {
        const names = keyNames(prefix, key);
        const ids = grants[k]!.map((g) => g.id);
        return scripts.tollgateRelease(names.state, names.slots, freeChannel(prefix), key, ...ids);
      }),
    );
  /** `each` for every item, CHUNK calls per segment. */
  const chunked = async <T>(
    row: Row,
    script: ScriptName,
    items: readonly T[],
    each: (x: T, i: number) => Promise<unknown>,
  ): Promise<void> => {
    for (let i = 0; i < items.length; i += CHUNK) {
      const part = items.slice(i, i + CHUNK);
      await meter.segment(row, script, part.length, () =>
        Promise.all(part.map((x, j) => each(x, i + j))),
      );
    }
  };

  if (w.longLog) {
    // One grant per ms over the last logEntries ms of Redis' clock, decided at those instants (the
    // store's `time: 'runtime'`), so that each limit's log holds one entry per grant.
    const fill = redisStore({ client, prefix, time: 'runtime', timeout: '1m' });
    const [sec] = await client.time();
    const end = Number(sec) * 1000;
    for (let i = 0; i < p.logEntries; i += 50) {
      const instants = Array.from({ length: Math.min(50, p.logEntries - i) }, (_, j) => i + j);
      await Promise.all(
        instants.flatMap((t) =>
          keys.map((key) =>
            fill.decide(
              key,
              policy,
              [{ id: `f${++nextId}`, units, slot: false, leaseMs: null }],
              'queue',
              end - p.logEntries + t,
            ),
          ),
        ),
      );
    }
    await fill.close();
  }
  for (let i = 0; i < WARMUP_CALLS; i++) {
    const g = await decideOnce();
    if (w.slots) await releaseAll(g);
  }
  const decideRow = meter.row(w, 'tollgateDecide', w.name);
  let last: StoreGrant[][] = [];
  for (let i = 0; i < p.calls; i++) {
    await meter.segment(decideRow, 'tollgateDecide', 1, async () => (last = await decideOnce()));
    if (w.slots) {
      const held = last;
      await meter.segment(
        meter.row(w, 'tollgateRelease', MANY_IDS),
        'tollgateRelease',
        keys.length,
        () => releaseAll(held),
      );
    }
  }
  if (w.settle) {
    // Grants of the last call, spread over its keys, each settled below its estimate (a refund).
    const picked = last.flat().slice(0, p.settles);
    await chunked(meter.row(w, 'tollgateSettle', '1 grant'), 'tollgateSettle', picked, (g, k) =>
      store.settle(keyOf(k), policy, g, actual, 0),
    );
  }
  if (w.slots) {
    // Single releases, as Grant.release sends them: the slots of one more call, freed one by one.
    const held = (await decideOnce()).flat().slice(0, p.settles);
    await chunked(meter.row(w, 'tollgateRelease', ONE_ID), 'tollgateRelease', held, (g, k) =>
      store.release(keyOf(k), policy, g, 0),
    );
  }
  await store.close();
}

const MANY_IDS = `${MAX_SLOTTED_BATCH} ids`;
const ONE_ID = '1 id';

const SCRIPT_FILE: Readonly<Record<ScriptName, string>> = {
  tollgateDecide: 'decide.lua',
  tollgateSettle: 'settle.lua',
  tollgateRead: 'read.lua',
  tollgateRelease: 'release.lua',
  tollgateReset: 'reset.lua',
  tollgatePause: 'pause.lua',
};

const fmtUs = (us: number): string =>
  Number.isFinite(us) ? `${fmtInt(Math.round(us))} µs` : 'n/a';

async function run(options: SuiteOptions): Promise<Section> {
  const p = options.quick ? QUICK : FULL;
  const { log } = options;
  log('script cost: starting a redis-server of its own');
  const server = await startRedis();
  let version = 'unknown';
  let meter: Meter;
  try {
    const admin = server.client();
    const client = server.client();
    version = /^redis_version:(\S+)/m.exec(await admin.info('server'))?.[1] ?? 'unknown';
    await admin.config('SET', 'slowlog-max-len', '20000');
    // Loaded ahead, so every measured call is an EVALSHA (a first call would go as EVAL).
    for (const lua of Object.values(scriptSources())) await admin.script('LOAD', lua);
    meter = new Meter(admin);
    // Twice: with the slow log off, for commandstats' mean untouched by the log's own work; then
    // with every command logged, for each call's time.
    for (const on of [false, true]) {
      await meter.slowlog(on);
      for (const [i, w] of WORKLOADS.entries()) {
        log(`script cost: ${on ? 'SLOWLOG' : 'commandstats'}: ${w.algorithm}, ${w.name}`);
        await runWorkload(w, p, client, meter, `sc${i}${on ? 'b' : 'a'}:`);
      }
    }
  } finally {
    await server.stop();
  }

  const rows = meter.rows;
  const decides = rows.filter((r) => r.script === 'decide.lua');
  const largest = decides.find(
    (r) => r.workload === LARGEST.name && r.algorithm === 'token-bucket',
  )!;
  const worst = decides.reduce((a, b) => (p99(b) > p99(a) ? b : a));
  const targets: Target[] = [
    {
      name: `Largest decide.lua call (${LARGEST.name}, 3 limits, token bucket): p99 of Redis time`,
      measured: fmtUs(p99(largest)),
      goal: `≤ ${fmtInt(GOAL_US)} µs`,
      met: p99(largest) <= GOAL_US,
    },
    {
      name: `Slowest decide.lua call measured (${worst.workload}, ${worst.algorithm}): p99 of Redis time`,
      measured: fmtUs(p99(worst)),
      goal: `≤ ${fmtInt(GOAL_US)} µs`,
      met: p99(worst) <= GOAL_US,
    },
  ];
  return {
    title: 'Redis script cost',
    blocks: [
      {
        table: {
          title: 'Redis time per script call',
          headers: [
            'script',
            'one call carries',
            'algorithm',
            'calls',
            'p50',
            'p99',
            'max',
            'mean (SLOWLOG)',
            'mean (commandstats, log off)',
            'Redis CPU per call (log off)',
            'p99 ≤ 1 ms',
          ],
          rows: rows.map((r) => {
            const sorted = [...r.us].sort((a, b) => a - b);
            const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
            return [
              r.script,
              r.call,
              r.algorithm,
              fmtInt(sorted.length),
              fmtUs(quantile(sorted, 0.5)),
              fmtUs(quantile(sorted, 0.99)),
              fmtUs(sorted.at(-1) ?? NaN),
              fmtUs(mean),
              fmtUs(r.plain.usec / r.plain.calls),
              fmtUs(r.plain.cpuUs / r.plain.calls),
              quantile(sorted, 0.99) <= GOAL_US ? 'yes' : '**no**',
            ];
          }),
        },
      },
      {
        text: [
          `Redis ${version}, a server of the suite's own. Redis runs one script at a time and every other`,
          'client waits meanwhile, so each time here is a stall of every client of that Redis. The times',
          "are Redis' own, with no timer of Node's: `SLOWLOG` with `slowlog-log-slower-than 0` gives each",
          "call's microseconds (p50, p99, max, and their mean); the last mean is `INFO commandstats`",
          'read around each call in a pass with the slow log off (logging every command a script runs',
          'costs the script a little: the SLOWLOG figures are the upper ones). These are wall time inside',
          'Redis: on a loaded machine they include the time Redis waited for a core. Redis CPU per call is',
          "the server's main-thread CPU time (`INFO cpu`) over the same calls, which load does not inflate",
          "(it includes parsing the call's arguments and a share of the two INFO calls around each segment).",
          `A \`decide.lua\` call carries up to ${MAX_KEYS_PER_CALL} keys and ${MAX_WORK_PER_CALL} of estimated work`,
          '(MAX_KEYS_PER_CALL, MAX_WORK_PER_CALL, src/redis/flushQueue.ts: one key over it goes alone, since a',
          `key's batch is never split), each with up to ${MAX_BATCH} requests (MAX_BATCH, src/machines/asyncBatch.ts;`,
          `${MAX_SLOTTED_BATCH} when each takes a concurrency slot, MAX_SLOTTED_BATCH);`,
          'each workload is the largest call the store sends for its shape. The policy has 3 limits',
          'over 2 dimensions (requests/min, tokens/min, requests/day), so large that every request is',
          'booked: the most work a call can do. With a slot, every request also takes a concurrency slot',
          `(a ZADD each), and the slots are freed after each call by one \`release.lua\` call per key (${MAX_SLOTTED_BATCH}`,
          'ids: what the store sends after a failed decide); `1 id` is `Grant.release`. `settle.lua`',
          `settles one grant below its estimate (a refund). ${fmtInt(p.calls)} decide calls per workload.`,
          `\`long log\`: a sliding-window key whose every limit holds ${fmtInt(p.logEntries)} entries (one grant per ms over the`,
          'last ones before the calls): a sliding window keeps one entry per instant with a grant in its window,',
          'and every call reads and writes them all.',
        ].join('\n'),
      },
    ],
    targets,
  };
}

/** The p99 of a row's per-call times. */
function p99(r: Row): number {
  return quantile(
    [...r.us].sort((a, b) => a - b),
    0.99,
  );
}

export const scriptCostSuite: Suite = { name: 'script cost', run };
