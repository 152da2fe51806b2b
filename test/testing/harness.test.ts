/**
 * tollgate/testing: the arbitraries make only valid values, and the harness catches what a user's
 * agent loop gets wrong: a planted bug that spends past the budget, and one that loses a task.
 * Each property holds for the right loop and fails, with a counterexample, for the buggy one.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../src/index.js';
import {
  costArb,
  durationArb,
  policyArb,
  runLimited,
  scheduleArb,
  type ScheduledLimiter,
} from '../../src/testing/index.js';
import { parseDuration } from '../../src/limiter/units.js';
import { RUNS } from '../props/schedule.js';

const BUDGET = 1_000; // tokens a minute
const policy = {
  algorithm: 'fixed-window' as const,
  limits: [{ limit: BUDGET, interval: '1m' as const, dimension: 'tokens' }],
  concurrency: 3,
};

type Bug = 'none' | 'over-budget' | 'lost-task';

/**
 * A user's agent loop: each task asks for its estimate, calls the model (which takes 100 ms of
 * virtual time and uses `used` tokens), settles with what it used, and retries after a timeout.
 * Returns the tasks done, and the model's use per minute as the model counted it.
 */
async function agentLoop(
  llm: ScheduledLimiter,
  sleep: (ms: number) => Promise<void>,
  now: () => number,
  tasks: readonly { estimate: number; used: number }[],
  bug: Bug,
): Promise<{ done: number; usedPerMinute: Map<number, number> }> {
  const usedPerMinute = new Map<number, number>();
  let done = 0;
  const model = async (used: number) => {
    // Counted in the minute the call starts in, as the provider counts it.
    const minute = Math.floor(now() / 60_000);
    usedPerMinute.set(minute, (usedPerMinute.get(minute) ?? 0) + used);
    await sleep(100);
  };
  await Promise.all(
    tasks.map(async (task) => {
      for (;;) {
        if (bug === 'over-budget') {
          // Planted: a try that is refused calls the model anyway.
          const r = await llm.tryAcquire('gpt', { cost: { tokens: task.estimate } });
          await model(task.used);
          if (r.ok) {
            await r.grant.settle({ tokens: task.used });
            r.grant.release();
          }
          done++;
          return;
        }
        try {
          const grant = await llm.acquire('gpt', {
            cost: { tokens: task.estimate },
            timeout: '30s',
          });
          await model(task.used);
          await grant.settle({ tokens: task.used });
          grant.release();
          done++;
          return;
        } catch {
          if (bug === 'lost-task') return; // Planted: a timed-out task is dropped.
        }
      }
    }),
  );
  return { done, usedPerMinute };
}

const tasksArb = fc.array(
  fc
    .integer({ min: 50, max: 600 })
    .chain((estimate) =>
      fc.record({ estimate: fc.constant(estimate), used: fc.integer({ min: 0, max: estimate }) }),
    ),
  { minLength: 1, maxLength: 12 },
);

/** The user's properties of their loop, checked over runs the harness makes. */
function loopProperty(bug: Bug) {
  return fc.asyncProperty(fc.scheduler(), tasksArb, async (s, tasks) => {
    const report = await runLimited({ scheduler: s, limiters: { llm: policy } }, (t) =>
      agentLoop(t.limiters.llm!, t.sleep, () => t.clock.now(), tasks, bug),
    );
    // Every task finishes.
    expect(report.finished).toBe(true);
    expect(report.result?.done).toBe(tasks.length);
    // Never over budget: the model used at most the budget in any minute.
    for (const used of report.result!.usedPerMinute.values())
      expect(used).toBeLessThanOrEqual(BUDGET);
    // What the limiter saw agrees: every grant was settled.
    expect(report.of('settled')).toHaveLength(report.of('granted').length);
  });
}

describe('runLimited', () => {
  it('proves a correct agent loop: every task done, never over budget', async () => {
    await fc.assert(loopProperty('none'), { numRuns: Math.ceil(RUNS.numRuns / 10) });
  });

  it('catches a planted bug that spends past the budget', async () => {
    const out = await fc.check(loopProperty('over-budget'), { numRuns: 200 });
    expect(out.failed).toBe(true);
    expect(String(out.errorInstance)).toMatch(
      /toBeLessThanOrEqual|expected \d+ to be less than or equal to 1000/,
    );
  });

  it('catches a planted bug that loses a task', async () => {
    const out = await fc.check(loopProperty('lost-task'), { numRuns: 200 });
    expect(out.failed).toBe(true);
    expect(String(out.errorInstance)).toMatch(/expected \d+ to be \d+/);
  });

  it('reports a deadlock as unfinished, though closing the system ends its waiters', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), async (s) => {
        const report = await runLimited(
          {
            scheduler: s,
            limiters: { one: { limits: [{ limit: 10, interval: '1s' }], concurrency: 1 } },
          },
          async (t) => {
            await t.limiters.one!.acquire('k');
            await t.limiters.one!.acquire('k'); // the first is never released: stuck
            return 'unreachable';
          },
        );
        expect(report.finished).toBe(false);
        expect(report.result).toBeUndefined();
        expect(report.error).toBeUndefined();
      }),
      { numRuns: 5 },
    );
  });

  it('reports a run that does not finish: stuck, or past the time limit', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), async (s) => {
        const report = await runLimited(
          { scheduler: s, limiters: { llm: policy }, timeLimit: '5m' },
          async (t) => {
            await t.limiters.llm!.acquire('gpt', { cost: { tokens: BUDGET } });
            await t.limiters.llm!.acquire('gpt', { cost: { tokens: BUDGET } }); // next minute
            await new Promise<never>(() => {}); // and then never ends
          },
        );
        // Stopped when nothing could happen any more: after the idle key's sweep.
        expect(report.finished).toBe(false);
        expect(report.endedAt).toBeGreaterThanOrEqual(60_000);
        expect(report.endedAt).toBeLessThan(5 * 60_000);
        expect(report.of('granted').map((e) => e.at)).toEqual([0, 60_000]);
        const forever = await runLimited(
          { scheduler: s, limiters: { llm: policy }, timeLimit: '5m' },
          async (t) => {
            for (;;) await t.sleep(1000); // time always moves on: stopped at the limit
          },
        );
        expect(forever.finished).toBe(false);
        expect(forever.endedAt).toBe(5 * 60_000);
      }),
      { numRuns: 5 },
    );
  });
});

describe('arbitraries', () => {
  it('make policies that compile, costs that fit them, and durations that parse', () => {
    fc.assert(
      fc.property(
        policyArb().chain((p) =>
          fc.tuple(fc.constant(p), costArb(p), scheduleArb(p, { keys: ['a', 'b'] })),
        ),
        durationArb(),
        ([p, cost, schedule], d) => {
          const compiled = compilePolicy(p);
          for (const l of compiled.limits) {
            const amount = cost[l.dimension] ?? 0;
            expect(amount).toBeLessThanOrEqual(l.limit);
          }
          expect(schedule.map((r) => r.at)).toEqual(
            [...schedule.map((r) => r.at)].sort((x, y) => x - y),
          );
          expect(parseDuration(d, 'd')).toBeGreaterThan(0);
        },
      ),
      { numRuns: RUNS.numRuns },
    );
  });
});
