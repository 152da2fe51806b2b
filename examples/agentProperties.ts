/**
 * Proving a multi-agent loop's properties with tollgate/testing: agents share a budget of tokens
 * a minute; for random tasks and random orders of the limiter's answers (fast-check's scheduler),
 * on virtual time, every task finishes, the model never uses more than the budget in a minute, and
 * no agent starves. Run it with `--planted-bug over-budget` or `--planted-bug lost-task` to see
 * the property fail on a loop with that bug, with the counterexample fast-check shrank.
 */
import fc from 'fast-check';
import { runLimited, type ScheduledLimiter } from '../src/testing/index.js';

const BUDGET = 2_000; // tokens a minute
const planted = process.argv.includes('--planted-bug')
  ? process.argv[process.argv.indexOf('--planted-bug') + 1]
  : undefined;

interface Task {
  readonly agent: string;
  readonly estimate: number;
  readonly used: number;
}

/**
 * The agent loop under test: each task asks for its estimate, calls the model (100 ms of virtual
 * time), settles with what it used, and tries again after a timeout.
 */
async function runAgents(
  llm: ScheduledLimiter,
  sleep: (ms: number) => Promise<void>,
  now: () => number,
  tasks: readonly Task[],
) {
  const usedPerMinute = new Map<number, number>();
  const doneBy = new Map<string, number>();
  const model = async (used: number) => {
    // Counted in the minute the call starts in, as the provider counts it.
    const minute = Math.floor(now() / 60_000);
    usedPerMinute.set(minute, (usedPerMinute.get(minute) ?? 0) + used);
    await sleep(100);
  };
  await Promise.all(
    tasks.map(async (task) => {
      for (;;) {
        if (planted === 'over-budget') {
          // The bug: a refused try calls the model anyway.
          const r = await llm.tryAcquire(task.agent, { cost: { tokens: task.estimate } });
          await model(task.used);
          if (r.ok) await r.grant.settle({ tokens: task.used });
          break;
        }
        try {
          const grant = await llm.acquire(task.agent, {
            cost: { tokens: task.estimate },
            timeout: '20s',
          });
          await model(task.used);
          await grant.settle({ tokens: task.used });
          break;
        } catch {
          if (planted === 'lost-task') return; // The bug: a timed-out task is dropped.
        }
      }
      doneBy.set(task.agent, (doneBy.get(task.agent) ?? 0) + 1);
    }),
  );
  return { usedPerMinute, doneBy };
}

const taskArb: fc.Arbitrary<Task> = fc
  .record({
    agent: fc.constantFrom('planner', 'coder', 'critic'),
    estimate: fc.integer({ min: 100, max: 900 }),
  })
  .chain((t) =>
    fc.record({
      agent: fc.constant(t.agent),
      estimate: fc.constant(t.estimate),
      used: fc.integer({ min: 0, max: t.estimate }),
    }),
  );

let runs = 0;
let maxMinute = 0;
const result = await fc.check(
  fc.asyncProperty(
    fc.scheduler(),
    fc.array(taskArb, { minLength: 1, maxLength: 15 }),
    async (s, tasks) => {
      // One budget for all: the key is the provider's, shared by every agent.
      const report = await runLimited(
        {
          scheduler: s,
          limiters: {
            llm: {
              algorithm: 'fixed-window',
              limits: [{ limit: BUDGET, interval: '1m', dimension: 'tokens' }],
            },
          },
        },
        (t) => runAgents(withKey(t.limiters.llm!, 'openai'), t.sleep, () => t.clock.now(), tasks),
      );
      runs++;
      if (!report.finished || report.result === undefined)
        throw new Error('the run never finished');
      const { usedPerMinute, doneBy } = report.result;
      for (const [minute, used] of usedPerMinute) {
        maxMinute = Math.max(maxMinute, used);
        if (used > BUDGET)
          throw new Error(`minute ${minute}: the model used ${used} tokens, over ${BUDGET}`);
      }
      for (const agent of new Set(tasks.map((t) => t.agent))) {
        const want = tasks.filter((t) => t.agent === agent).length;
        if (doneBy.get(agent) !== want) {
          throw new Error(`${agent} finished ${doneBy.get(agent) ?? 0} of its ${want} tasks`);
        }
      }
    },
  ),
  { numRuns: 100, seed: 42 },
);

/** The limiter with every agent's calls on one key (one shared budget). */
function withKey(llm: ScheduledLimiter, key: string): ScheduledLimiter {
  return {
    ...llm,
    acquire: (_k, o) => llm.acquire(key, o),
    tryAcquire: (_k, o) => llm.tryAcquire(key, o),
  };
}

if (result.failed) {
  console.log(
    `Property failed after ${result.numRuns} runs: ${(result.errorInstance as Error).message}`,
  );
  console.log(`counterexample: ${fc.stringify(result.counterexample?.[1])}`);
  process.exitCode = 1;
} else {
  console.log(
    `proved over ${runs} runs: every task finishes, every agent gets its turn, at most ${maxMinute} of ${BUDGET} tokens used in any minute`,
  );
}
