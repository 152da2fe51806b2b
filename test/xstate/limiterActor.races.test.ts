/**
 * limiterActor under fc.scheduler: agents (XState machines, each with its own client of one
 * limiter) and the promise facade act on one key in an order fast-check picks, each in its own
 * order; agents stop at random, mid-wait or holding grants. After every run, on virtual time:
 * - every request of an agent still running got exactly one reply; a stopped agent got none after
 *   its stop (its client withdrew what waited);
 * - what the key has booked is exactly the estimate of every grant not cancelled, or its settled
 *   amount: nothing of a stopped agent beyond the estimate of the grants it held, nothing for
 *   what it waited for;
 * - slots held are those of grants not released, never more than the concurrency limit;
 * - grants came in the order the requests reached the key, actor and facade alike (one queue).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { memoryStore, type Grant, type Store, type StoreDecision } from '../../src/index.js';
import type { LimiterReply } from '../../src/xstate/index.js';
import { virtualSystem } from '../actors/support.js';
import { RUNS } from '../props/schedule.js';
import { agentLogic } from './agent.js';

type Step =
  | { readonly t: 'acquire'; readonly cost: number }
  | { readonly t: 'try'; readonly cost: number }
  | { readonly t: 'settle'; readonly to: number }
  | { readonly t: 'release' }
  | { readonly t: 'cancel' }
  | { readonly t: 'stop' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    arbitrary: fc.record({
      t: fc.constant('acquire' as const),
      cost: fc.integer({ min: 1, max: 3 }),
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({ t: fc.constant('try' as const), cost: fc.integer({ min: 1, max: 3 }) }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ t: fc.constant('settle' as const), to: fc.integer({ min: 0, max: 3 }) }),
    weight: 2,
  },
  { arbitrary: fc.constant({ t: 'release' as const }), weight: 3 },
  { arbitrary: fc.constant({ t: 'cancel' as const }), weight: 2 },
  { arbitrary: fc.constant({ t: 'stop' as const }), weight: 1 },
);

const LIMIT = 8;
const SLOTS = 2;

/** What became of one request: its cost, the grant it got, and how that grant ended. */
interface Asked {
  readonly label: string;
  readonly cost: number;
  readonly agent: number; // -1: the facade
  readonly once: boolean;
  grant?: Grant;
  settledTo?: number;
  released: boolean;
  cancelled: boolean;
  /** Whether the asker stopped before the grant came (its client cancels it). */
  orphan: boolean;
  /** A facade call's promise settled. */
  ended?: boolean;
}

/**
 * The memory store with its decisions answered when the scheduler says: a grant decided in the
 * key's mailbox reaches its asker at a random point among the askers' steps.
 */
function scheduledStore(s: fc.Scheduler): Store {
  const inner = memoryStore();
  return {
    name: 'scheduled',
    sync: false,
    decide(key, policy, batch, mode, now) {
      const d = inner.decide(key, policy, batch, mode, now) as StoreDecision[];
      return s.schedule(Promise.resolve(d), `decide ${key}`);
    },
    settle: (key, policy, grant, actual, now) => inner.settle(key, policy, grant, actual, now),
    cancel: (key, policy, grant, now) => inner.cancel(key, policy, grant, now),
    release: (key, policy, grant, now) => inner.release(key, policy, grant, now),
    read: (key, policy, now) => inner.read(key, policy, now),
    reset: (key, now) => (inner as Store).reset(key, now),
    close: () => inner.close(),
  };
}

async function scenario(
  s: fc.Scheduler,
  plans: readonly (readonly Step[])[],
  facade: readonly Step[],
  scheduled: boolean,
) {
  const { system, clock } = virtualSystem(scheduled ? { store: scheduledStore(s) } : {});
  const limiter = system.limiter('llm', {
    // A fixed window: every give-back is whole (a token bucket's may be less, by design).
    limits: [{ limit: LIMIT, interval: '1h', name: 'rph', algorithm: 'fixed-window' }],
    concurrency: SLOTS,
  });
  const asked: Asked[] = [];
  const arrival: string[] = []; // labels of acquires, in the order they reached the limiter
  const grantOrder: string[] = []; // grant ids in the order the key granted them
  system.events.on('granted', (e) => grantOrder.push(e.id));
  const agents = plans.map(() => createActor(agentLogic(limiter)));
  for (const a of agents) a.start();
  const stopped = agents.map(() => false);
  const repliesAtStop: (LimiterReply[] | null)[] = agents.map(() => null);

  const latest = (agent: number) => asked.filter((x) => x.agent === agent).at(-1);
  const doStep = (agent: number, step: Step, n: number): void => {
    const label = `${agent}:${n}`;
    const a = agents[agent];
    if (agent >= 0 && stopped[agent]) return;
    const last = latest(agent);
    switch (step.t) {
      case 'acquire':
      case 'try': {
        const x: Asked = {
          label,
          cost: step.cost,
          agent,
          once: step.t === 'try',
          released: false,
          cancelled: false,
          orphan: false,
        };
        asked.push(x);
        if (step.t === 'acquire') arrival.push(label);
        const cost = { requests: step.cost };
        if (a === undefined) {
          const p =
            step.t === 'acquire'
              ? limiter.acquire('k', { cost, timeout: 5000 })
              : limiter
                  .tryAcquire('k', { cost })
                  .then((r) => (r.ok ? r.grant : Promise.reject(new Error('refused'))));
          p.then(
            (g) => {
              x.grant = g;
              x.ended = true;
            },
            () => {
              x.ended = true;
            },
          );
        } else {
          a.send({
            type: 'ask',
            request:
              step.t === 'acquire'
                ? { type: 'tollgate.acquire', id: label, key: 'k', cost, timeout: 5000 }
                : { type: 'tollgate.tryAcquire', id: label, key: 'k', cost },
          });
        }
        return;
      }
      case 'settle':
        if (last?.grant === undefined || last.settledTo !== undefined || last.cancelled) return;
        // Through an actor a release ends the hold: a settle after it fails (unit-tested).
        if (a !== undefined && last.released) return;
        last.settledTo = step.to;
        if (a === undefined) void last.grant.settle({ requests: step.to });
        else
          a.send({
            type: 'ask',
            request: { type: 'tollgate.settle', id: last.label, actual: { requests: step.to } },
          });
        return;
      case 'release':
        if (last?.grant === undefined || last.released || last.cancelled) return;
        last.released = true;
        if (a === undefined) last.grant.release();
        else a.send({ type: 'ask', request: { type: 'tollgate.release', id: last.label } });
        return;
      case 'cancel':
        if (last === undefined || last.released || last.settledTo !== undefined || last.cancelled)
          return;
        if (a === undefined) {
          if (last.grant === undefined) return;
          last.cancelled = true;
          void last.grant.cancel();
        } else {
          if (last.grant !== undefined) last.cancelled = true;
          a.send({ type: 'ask', request: { type: 'tollgate.cancel', id: last.label } });
        }
        return;
      case 'stop':
        if (a === undefined) return;
        repliesAtStop[agent] = [...a.getSnapshot().context.replies];
        stopped[agent] = true;
        a.stop();
        for (const x of asked) if (x.agent === agent && x.grant === undefined) x.orphan = true;
        return;
    }
  };
  // The replies tell the grants of agents' requests (read as they come, like an agent would).
  const collect = () => {
    agents.forEach((a, i) => {
      for (const r of a.getSnapshot().context.replies) {
        const x = asked.find((y) => y.label === r.id && y.agent === i);
        if (x !== undefined && r.type === 'tollgate.granted') x.grant = r.grant;
      }
    });
  };

  const sequences = [...plans.map((plan, i) => ({ plan, i })), { plan: facade, i: -1 }].map(
    ({ plan, i }) =>
      s.scheduleSequence(
        plan.map((step, n) => ({
          label: `${i}:${n} ${step.t}`,
          // No flush after a step: a grant decided in the key's mailbox may not have reached its
          // asker when the next step (a cancel, a stop) comes.
          builder: () => {
            collect();
            doStep(i, step, n);
            return Promise.resolve();
          },
        })),
      ),
  );
  await s.waitFor(Promise.all(sequences.map((q) => q.task)));
  // Until nothing is left: an answer released may lead the key to ask the store again.
  const quiet = async (): Promise<void> => {
    for (;;) {
      await clock.increment(0);
      if (s.count() === 0) return;
      await s.waitAll();
    }
  };
  await quiet();
  collect();
  // What waits in the key's queue is what running askers wait for: a stopped agent's requests
  // were withdrawn with it.
  const waiting = asked.filter(
    (x) =>
      !x.once &&
      !(x.agent >= 0 && stopped[x.agent]) &&
      (x.agent >= 0
        ? !agents[x.agent]!.getSnapshot().context.replies.some((r) => r.id === x.label)
        : !x.ended),
  );
  expect((await s.waitFor(limiter.stats('k'))).queued).toBe(waiting.length);
  await clock.increment(5000); // every acquire still waiting times out
  await quiet();
  collect();

  // Exactly one reply per request of a running agent; none after a stop.
  agents.forEach((a, i) => {
    const replies = a.getSnapshot().context.replies;
    if (stopped[i]) {
      expect(replies).toEqual(repliesAtStop[i]);
      return;
    }
    const mine = asked.filter((x) => x.agent === i);
    // The replies to the requests themselves (a failed settle, release or cancel is its own).
    const ends = replies.filter(
      (r) =>
        r.type !== 'tollgate.failed' ||
        r.request === 'tollgate.acquire' ||
        r.request === 'tollgate.tryAcquire',
    );
    expect(
      ends.map((r) => r.id).sort(),
      replies.map((r) => `${r.id} ${r.type}`).join(', '),
    ).toEqual(mine.map((x) => x.label).sort());
  });
  // Booked: estimates of grants not cancelled, or what they were settled to. A stopped agent's
  // grant that came after its stop was cancelled by its client.
  let booked = 0;
  let slots = 0;
  for (const x of asked) {
    if (x.grant === undefined || x.cancelled) continue;
    booked += x.settledTo ?? x.cost;
    if (!x.released && !(x.agent >= 0 && stopped[x.agent])) slots++;
  }
  const stats = await s.waitFor(limiter.stats('k'));
  expect(LIMIT - stats.limits[0]!.remaining).toBe(Math.min(LIMIT, booked));
  expect(stats.inFlight).toBe(slots);
  expect(stats.queued).toBe(0);
  // One queue: the acquires that were granted were granted in the order they arrived.
  const grantedIds = new Set(grantOrder);
  const acquiredInArrival = arrival
    .map((label) => asked.find((x) => x.label === label)!)
    .filter((x) => x.grant !== undefined && grantedIds.has(x.grant.id))
    .map((x) => x.grant!.id);
  expect(grantOrder.filter((id) => acquiredInArrival.includes(id))).toEqual(acquiredInArrival);
}

describe('limiterActor races (fc.scheduler)', () => {
  it('keeps its promises under random interleavings of agents and the facade, with agents stopping', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(fc.array(stepArb, { maxLength: 8 }), { minLength: 1, maxLength: 3 }),
        fc.array(
          stepArb.filter((x) => x.t !== 'stop'),
          { maxLength: 6 },
        ),
        fc.boolean(),
        (s, plans, facade, scheduled) => scenario(s, plans, facade, scheduled),
      ),
      { numRuns: Math.ceil(RUNS.numRuns / 4) },
    );
  });
});
