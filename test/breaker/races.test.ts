/**
 * Race tests: fast-check's scheduler runs many callers through one breaker in random
 * interleavings. Each caller does tryEnter → (scheduled async work) → success / failure / cancel;
 * some wait for half-open when refused while open; time advances in between. Checked:
 * - half-open never has more than `probes` probe permits out, and no permit is given while open;
 * - every permit ends exactly once (a second end throws GrantStateError);
 * - the test's own count of probes out always equals the breaker's;
 * - every state change is a legal one and starts from the state the previous one ended in;
 * - stop leaves no timer behind.
 * The last test seeds a bug (half-open not counting outstanding probes, through
 * `breakerMachine.provide`) and checks that the same property catches it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/clock.js';
import {
  CircuitBreaker,
  type BreakerPermit,
  type BreakerPolicySpec,
} from '../../src/breaker/index.js';
import { breakerMachine, type BreakerMachine } from '../../src/breaker/breakerMachine.js';
import { GrantStateError } from '../../src/errors.js';

const RUNS = Number(process.env.RACE_RUNS ?? 500);
const LEGAL = new Set(['closed>open', 'open>halfOpen', 'halfOpen>open', 'halfOpen>closed']);

type Outcome = 'success' | 'failure' | 'cancel';

interface Caller {
  readonly outcome: Outcome;
  /** Refused while open, wait for half-open and try once more. */
  readonly waits: boolean;
}

interface Scenario {
  readonly probes: number;
  readonly successesToClose: number;
  readonly failureThreshold: number;
  readonly withRate: boolean;
  readonly callers: readonly Caller[];
  /** Time steps, in ms, interleaved with the callers. */
  readonly steps: readonly number[];
}

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  probes: fc.integer({ min: 1, max: 3 }),
  successesToClose: fc.integer({ min: 1, max: 3 }),
  failureThreshold: fc.integer({ min: 1, max: 3 }),
  withRate: fc.boolean(),
  callers: fc.array(
    fc.record({
      outcome: fc.constantFrom<Outcome>('success', 'failure', 'failure', 'cancel'),
      waits: fc.boolean(),
    }),
    { minLength: 1, maxLength: 30 },
  ),
  steps: fc.array(fc.integer({ min: 0, max: 250 }), { maxLength: 12 }),
});

interface Tracked {
  readonly permit: BreakerPermit;
  ends: number;
}

async function run(s: fc.Scheduler, sc: Scenario, logic: BreakerMachine): Promise<void> {
  const clock = new VirtualClock(0);
  const policy: BreakerPolicySpec = {
    failureThreshold: sc.failureThreshold,
    openFor: 100,
    backoffFactor: 2,
    maxOpenFor: 400,
    probes: sc.probes,
    successesToClose: sc.successesToClose,
    ...(sc.withRate ? { failureRate: { rate: 0.5, window: 200, minimumCalls: 2 } } : {}),
  };
  const breaker = CircuitBreaker.withLogic(logic, 'race', policy, clock);
  const violations: string[] = [];
  const tracked: Tracked[] = [];
  let probesOut = 0;

  // Legal transitions, each starting where the last one ended.
  let last = breaker.state;
  breaker.events.on('stateChange', (e) => {
    if (e.from !== last) violations.push(`change ${e.from}>${e.to} after the breaker was ${last}`);
    if (!LEGAL.has(`${e.from}>${e.to}`)) violations.push(`illegal change ${e.from}>${e.to}`);
    last = e.to;
  });

  const enter = (): Tracked | null => {
    const r = breaker.tryEnter();
    if (!r.ok) {
      if (r.state !== breaker.state)
        violations.push(`refused as ${r.state} while ${breaker.state}`);
      return null;
    }
    const state = breaker.state;
    if (r.permit.probe) {
      probesOut++;
      if (state !== 'halfOpen') violations.push(`probe permit while ${state}`);
      if (probesOut > sc.probes)
        violations.push(`${probesOut} probes out, at most ${sc.probes} allowed`);
    } else if (state !== 'closed') {
      violations.push(`plain permit while ${state}`);
    }
    const t = { permit: r.permit, ends: 0 };
    tracked.push(t);
    return t;
  };

  const end = (t: Tracked, outcome: Outcome): void => {
    t.ends++;
    if (t.permit.probe) probesOut--;
    t.permit[outcome]();
    try {
      t.permit.cancel();
      violations.push('a permit ended twice without GrantStateError');
    } catch (e) {
      if (!(e instanceof GrantStateError)) violations.push(`second end threw ${String(e)}`);
    }
    const theirs = breaker.stats().probesOutstanding;
    if (theirs !== probesOut)
      violations.push(`breaker counts ${theirs} probes out, the callers hold ${probesOut}`);
  };

  const call = async (c: Caller): Promise<void> => {
    let t = enter();
    if (t === null && c.waits && breaker.state === 'open') {
      await breaker.waitForHalfOpen();
      t = enter();
    }
    if (t === null) return;
    const outcome = await s.schedule(Promise.resolve(c.outcome), 'call');
    end(t, outcome);
  };

  // fast-check calls a scheduleFunction's function at once and only delays its result, so each
  // caller starts from a scheduled resolved promise instead. A time step is a sequence item: the
  // scheduler releases nothing else until its increment (timers included) has run.
  const start = (c: Caller): Promise<void> =>
    s.schedule(Promise.resolve(), 'start').then(() => call(c));
  const step = (ms: number): Promise<unknown> =>
    s.scheduleSequence([{ label: `advance ${ms}`, builder: () => clock.increment(ms) }]).task;
  let finished = false;
  const all = Promise.all([...sc.callers.map(start), ...sc.steps.map(step)]);
  void all.then(() => (finished = true));
  for (let round = 0; !finished && round < 100; round++) {
    await s.waitIdle();
    // Callers waiting for half-open need time to pass once the scheduled steps are spent.
    if (!finished && s.count() === 0) await clock.increment(500);
  }
  await all;

  // Every violation in the error's message: an assertion on the array prints it truncated
  // ("[ …(3) ]") once it holds several, and the seeded-bug test reads the message.
  if (violations.length > 0) throw new Error(`violations:\n  ${violations.join('\n  ')}`);
  expect(tracked.every((t) => t.ends === 1)).toBe(true);
  expect(breaker.stats().probesOutstanding).toBe(0);
  breaker.stop();
  expect(clock.pendingTimers).toBe(0);
}

function property(logic: BreakerMachine) {
  return fc.asyncProperty(fc.scheduler(), scenarioArb, (s, sc) => run(s, sc, logic));
}

describe('breaker races (fc.scheduler)', () => {
  it('never has more than `probes` probes out, ends every permit once and makes only legal changes', async () => {
    await fc.assert(property(breakerMachine), { numRuns: RUNS, timeout: 5000 });
  });

  it('catches a seeded bug: half-open that does not count outstanding probes', async () => {
    const buggy = breakerMachine.provide({ guards: { probeBudgetLeft: () => true } });
    const details = await fc.check(property(buggy), { numRuns: RUNS, timeout: 5000 });
    expect(details.failed).toBe(true);
    expect(String(details.errorInstance)).toMatch(/probes out, at most \d allowed/);
  });
});
