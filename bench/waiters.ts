/**
 * Waiters on one key: what a grant costs when one key has a standing queue of N waiters (N = 10,
 * 1,000 and, in a full run, 32,000), memory store, through the public API. A key actor that does
 * O(queue) work per event (a scan of its waiters, an array shift) pays N times more per grant at
 * N waiters; one that keeps its queue in O(1) or O(log N) per event pays about the same.
 *
 * The workload: N callers on one key, each looping `await limiter.acquire('k')`, under a token
 * bucket of 10,000 per second with burst 10, on a clock of the bench's own (a public `Clock`)
 * that moves 1 ms per step. Each step fires the key's wake-up timer, the key grants the 10 waiters
 * at the head of its queue, and those 10 callers ask again at once, joining the back: the queue
 * stays between N − 10 and N waiters, and every grant is a waiter served from the queue (none is
 * granted on arrival, since the bucket is empty between steps). Cost per grant = wall time of the
 * steps / grants, so it includes the clock's step (a `setImmediate` per 10 grants, the same for
 * every N). Virtual time means the rate never makes the CPU wait: the numbers are CPU cost.
 *
 * Run alone: `node --expose-gc --import tsx bench/waiters.ts [--quick]` prints its section.
 */
import { pathToFileURL } from 'node:url';
import { createLimiterSystem, type Clock, type Limiter, type TimerHandle } from '../src/index.js';
import {
  fmtInt,
  fmtNs,
  fmtRate,
  fmtRatio,
  fullGc,
  median,
  renderSection,
  renderTargets,
  settleLoop,
  type Section,
  type Suite,
  type SuiteOptions,
  type Target,
} from './report.js';

/** Grants per step of the clock: the bucket's burst, refilled by each 1 ms step. */
const PER_STEP = 10;
/** The policy: 10,000 per second, burst 10, so each 1 ms step grants exactly 10 waiters. */
const POLICY = { limits: [{ limit: PER_STEP * 1000, interval: '1s' as const, burst: PER_STEP }] };
/** The reference queue length and the one the target compares with it. */
const BASE = 10;
const TARGET_N = 1_000;

interface Params {
  readonly sizes: readonly number[];
  readonly runs: number;
  /** Wall ms of steps measured per size and run (after warm-up). */
  readonly budgetMs: number;
  readonly warmMs: number;
  /** A size whose callers take longer than this to queue up is reported as not measured. */
  readonly setupCapMs: number;
}

const FULL: Params = {
  sizes: [BASE, TARGET_N, 32_000],
  runs: 3,
  budgetMs: 1_000,
  warmMs: 300,
  setupCapMs: 10_000,
};
const QUICK: Params = {
  sizes: [BASE, TARGET_N],
  runs: 1,
  budgetMs: 100,
  warmMs: 30,
  setupCapMs: 5_000,
};

/**
 * StepClock: virtual time that moves only by {@link StepClock.step}, which runs the timers due
 * and then lets every promise callback run (one `setImmediate`). Cheaper than `VirtualClock`,
 * which yields after every timer: here the clock's own cost per step should stay small next to
 * the 10 grants a step makes.
 */
class StepClock implements Clock {
  #now = 0;
  #nextId = 1;
  /** Timers not yet run; the key's wake-up timer and the system's sweep: a handful. */
  readonly #timers = new Map<number, { readonly at: number; readonly fn: () => void }>();

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as number);
  }

  /** Moves time `ms` on, runs every timer due (earliest first), then yields once. */
  async step(ms: number): Promise<void> {
    this.#now += ms;
    for (;;) {
      let next: number | undefined;
      let at = Infinity;
      for (const [id, t] of this.#timers) {
        if (t.at <= this.#now && t.at < at) {
          next = id;
          at = t.at;
        }
      }
      if (next === undefined) break;
      const fn = this.#timers.get(next)!.fn;
      this.#timers.delete(next);
      fn();
    }
    await settleLoop();
  }
}

/** One measurement: ns per grant with `n` waiters, or null when queueing them took too long. */
interface Measured {
  readonly nsPerGrant: number;
  readonly grants: number;
}

const elapsedMs = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

async function measure(n: number, p: Params): Promise<Measured | null> {
  await fullGc();
  const clock = new StepClock();
  const system = createLimiterSystem({ clock });
  const limiter: Limiter = system.limiter('waiters', POLICY);
  let grants = 0;
  let stop = false;
  const callers: Promise<void>[] = [];
  const caller = async (): Promise<void> => {
    while (!stop) {
      try {
        await limiter.acquire('k');
      } catch {
        return; // the system closed under a waiting caller
      }
      grants++;
    }
  };
  try {
    // Queue the callers in chunks, so a key that is slow to queue them can be given up on.
    const setup = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      callers.push(caller());
      if (i % 1_000 === 999) {
        await settleLoop();
        if (elapsedMs(setup) > p.setupCapMs) return null;
      }
    }
    await settleLoop();
    const run = async (budgetMs: number): Promise<Measured> => {
      const g0 = grants;
      const t0 = process.hrtime.bigint();
      let ms = 0;
      do {
        for (let i = 0; i < 64; i++) await clock.step(1);
        ms = elapsedMs(t0);
      } while (ms < budgetMs);
      const count = grants - g0;
      return { nsPerGrant: (ms * 1e6) / count, grants: count };
    };
    await run(p.warmMs);
    return await run(p.budgetMs);
  } finally {
    stop = true;
    await system.close();
    await Promise.all(callers);
  }
}

interface Row {
  readonly n: number;
  /** ns per grant of each run; empty when not measured. */
  readonly ns: number[];
  readonly grants: number[];
}

async function run(options: SuiteOptions): Promise<Section> {
  const p = options.quick ? QUICK : FULL;
  const rows: Row[] = p.sizes.map((n) => ({ n, ns: [], grants: [] }));
  for (let r = 0; r < p.runs; r++) {
    for (const row of rows) {
      if (r > 0 && row.ns.length === 0) continue; // too slow to queue up in the first run
      const m = await measure(row.n, p);
      if (m === null) {
        options.log(
          `waiters: ${fmtInt(row.n)} waiters: not measured (queueing took > ${p.setupCapMs} ms)`,
        );
        continue;
      }
      row.ns.push(m.nsPerGrant);
      row.grants.push(m.grants);
      options.log(
        `waiters: run ${r + 1}/${p.runs}, ${fmtInt(row.n)} waiters: ${fmtNs(m.nsPerGrant)}/grant`,
      );
    }
  }
  const cost = (n: number): number => {
    const row = rows.find((x) => x.n === n);
    return row === undefined || row.ns.length === 0 ? NaN : median(row.ns);
  };
  const base = cost(BASE);
  const ratio = cost(TARGET_N) / base;
  const target: Target = {
    name: `grant cost, ${fmtInt(TARGET_N)} waiters on one key vs ${BASE}`,
    measured: fmtRatio(ratio),
    goal: '≤ 2.00× (within 2x)',
    met: Number.isFinite(ratio) ? ratio <= 2 : false,
  };
  return {
    title: 'Waiters on one key',
    blocks: [
      {
        text: [
          `N callers on one key each loop \`await limiter.acquire('k')\` (memory store, token bucket of`,
          `${fmtInt(PER_STEP * 1000)} per second, burst ${PER_STEP}) on a virtual clock moved 1 ms per step: each step`,
          `grants the ${PER_STEP} waiters at the head of the queue, which ask again at once, so the queue stays`,
          `between N − ${PER_STEP} and N. Cost per grant is the wall time of the steps over the grants (the clock's`,
          `step included, the same for every N), after a warm-up; median of ${p.runs} run${p.runs === 1 ? '' : 's'} of`,
          `${fmtInt(p.budgetMs)} ms. A key whose work per event grows with its queue shows here.`,
        ].join('\n'),
      },
      {
        table: {
          headers: ['waiters', 'per grant', 'grants/s', `vs ${BASE} waiters`, 'runs (per grant)'],
          rows: rows.map((row) => {
            if (row.ns.length === 0) {
              return [
                fmtInt(row.n),
                'n/a',
                'n/a',
                'n/a',
                `queueing took > ${p.setupCapMs / 1000} s`,
              ];
            }
            const c = median(row.ns);
            return [
              fmtInt(row.n),
              fmtNs(c),
              fmtRate(1e9 / c),
              fmtRatio(c / base),
              row.ns.map(fmtNs).join(' / '),
            ];
          }),
          align: ['r', 'r', 'r', 'r', 'r'],
        },
      },
    ],
    targets: [target],
  };
}

export const waitersSuite: Suite = { name: 'waiters', run };

// Run alone: prints this section and its target (never writes BENCHMARKS.md).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const quick = process.argv.includes('--quick');
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const section = await run({ quick, log });
  process.stdout.write(`${renderTargets(section.targets ?? [])}\n\n${renderSection(section)}\n`);
}
