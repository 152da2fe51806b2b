/**
 * The commands of the model test (fast-check `fc.commands`): each is one step of a random
 * sequence, run against the runtime and the simulator at once, and compared.
 *
 * A Step makes one to three calls in the same synchronous turn (so that, say, `acquire` then
 * `reset` reach a key's mailbox before any store answer), then lets everything settle. Time moves
 * only in Advance. A Failing step makes the store throw from its next decision.
 */
import fc from 'fast-check';
import type { Cost } from './reference.js';
import { compareOp, compareWaiters, sameReading, show } from './check.js';
import type { Op, Real } from './real.js';
import type { Sim } from './sim.js';
import type { BrkModel } from './breakerModel.js';
import { BRK_POLICIES, KEYS, RETRY_MS } from './setup.js';

/** What a run keeps beside the runtime: the simulator, and a trace to compare stores with. */
export interface ModelState {
  readonly sim: Sim;
  readonly brk: BrkModel;
  /** One line per step: every call's end and every waiter's, as observed. */
  readonly trace: string[];
}

/** Raised when the runtime and the simulator disagree; the message lists every disagreement. */
export class Disagreement extends Error {
  override name = 'Disagreement';
}

/** Waits for `p` while the run settles, a bounded number of times (a lost answer never comes). */
export async function answered<T>(r: Real, p: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  const box: { value?: T; error?: unknown; done: boolean } = { done: false };
  p.then(
    (value) => Object.assign(box, { value, done: true }),
    (error: unknown) => Object.assign(box, { error, done: true }),
  );
  for (let i = 0; i < 5 && !box.done; i++) await r.quiesce();
  return box;
}

/** Runs `ops` on both sides and compares; throws a Disagreement listing what differs. */
export async function step(
  m: ModelState,
  r: Real,
  ops: readonly Op[],
  label: string,
): Promise<void> {
  for (const op of ops) {
    if (op.k === 'bSetLimits' && !m.sim.closed) m.brk.setLimits(BRK_POLICIES[op.i]!, r.now);
  }
  const { sims, results } = await r.run(ops);
  const out: string[] = [];
  const evicted = m.brk.follow(r, out);
  results.forEach((res, i) => {
    for (const code of [res.sync, res.async]) {
      if (code?.startsWith('UNTYPED') === true)
        out.push(`call #${i} ${show(ops[i])} failed untyped: ${code}`);
    }
  });
  for (const h of r.handles) {
    if (h.outcome.s === 'failed' && h.outcome.codes[0]!.startsWith('UNTYPED'))
      out.push(
        `waiter #${h.hid} (${h.limiter} ${h.kind} ${h.key}) failed untyped: ${h.outcome.codes[0]}`,
      );
  }
  // A key's breaker goes with its key once idle (README, Circuit breakers).
  for (const key of evicted) {
    const b = r.system.breakers.peek(`brk/${key}`);
    const st = b?.stats();
    if (
      st !== undefined &&
      st.state === 'closed' &&
      st.failures === 0 &&
      st.consecutiveFailures === 0 &&
      st.probesOutstanding === 0 &&
      m.brk.idle(r, key)
    )
      out.push(`the breaker of brk/${key} is kept after its key was evicted, idle: ${show(st)}`);
  }
  sims.forEach((op, i) => {
    if (op === null) return;
    const want = m.sim.apply(op);
    compareOp(i, op, want, results[i]!, i === 0, out);
  });
  compareWaiters(m.sim, r, out);
  // Capacity conserved: every key reads exactly what the model holds.
  if (!m.sim.closed) {
    for (const key of KEYS) {
      const want = m.sim.read(key);
      const got = await answered(r, r.main.stats(key));
      if (got.error !== undefined || got.value === undefined) {
        out.push(
          `at ${r.now} stats(${key}) ${got.error === undefined ? 'never answered' : `failed: ${String(got.error)}`}`,
        );
        continue;
      }
      const reading = {
        limits: got.value.limits.map((l) => ({
          name: l.name,
          remaining: l.remaining,
          resetMs: l.resetMs,
        })),
        inFlight: got.value.inFlight,
        queued: got.value.queued,
      };
      if (!sameReading(want, reading, true))
        out.push(`at ${r.now} stats(${key}) = ${show(reading)}, expected ${show(want)}`);
    }
  }
  if (!m.sim.closed) {
    for (const key of KEYS) {
      const got = await answered(r, r.brk.stats(key));
      const want = m.brk.read(key, r.now);
      if (got.value === undefined) {
        out.push(
          `at ${r.now} brk stats(${key}) ${got.error === undefined ? 'never answered' : `failed: ${String(got.error)}`}`,
        );
        continue;
      }
      const reading = {
        limits: got.value.limits.map((l) => ({
          name: l.name,
          remaining: l.remaining,
          resetMs: l.resetMs,
        })),
        inFlight: got.value.inFlight,
      };
      if (show(reading) !== show(want))
        out.push(`at ${r.now} brk stats(${key}) = ${show(reading)}, expected ${show(want)}`);
    }
  }
  m.trace.push(
    `${label} → ${show(results.map(({ etaMs: _e, reading, ...rest }) => ({ ...rest, ...(reading ? { limits: reading.limits, inFlight: reading.inFlight } : {}) })))} ${show(r.handles.map((h) => (h.outcome.s === 'refused' && h.outcome.limit === 'queue' ? { s: 'refused', limit: 'queue' } : h.outcome)))}`,
  );
  if (out.length > 0)
    throw new Disagreement(`at t=${r.now}, after ${label}:\n  ${out.join('\n  ')}`);
}

function describe(op: Op): string {
  return show(op);
}

export class Step implements fc.AsyncCommand<ModelState, Real> {
  constructor(readonly ops: readonly Op[]) {}
  check(): boolean {
    return true;
  }
  async run(m: ModelState, r: Real): Promise<void> {
    await step(m, r, this.ops, this.toString());
  }
  toString(): string {
    return this.ops.map(describe).join(' ; ');
  }
}

/**
 * A decision of `key` that fails (a plain call when others wait there): the store throws before
 * deciding, or (`lost`) decides and its answer is lost, as a Redis reply after a dropped
 * connection; Redis is then marked down for RETRY_MS, which the step lets pass.
 */
export class Failing implements fc.AsyncCommand<ModelState, Real> {
  constructor(
    readonly key: string,
    readonly tryOnly: boolean,
    readonly lost: boolean,
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: ModelState, r: Real): Promise<void> {
    // Only a lone request is decided alone; with waiters queued, it is a plain call.
    const ops: Op[] =
      m.sim.queueLength(this.key) === 0
        ? [{ k: 'failing', key: this.key, try: this.tryOnly, lost: this.lost }]
        : [
            this.tryOnly
              ? { k: 'try', key: this.key, priority: 0 }
              : { k: 'acquire', key: this.key, priority: 0, signal: false },
          ];
    await step(m, r, ops, this.toString());
    if (this.lost) await step(m, r, [{ k: 'advance', ms: RETRY_MS }], `advance ${RETRY_MS}`);
  }
  toString(): string {
    return `failing(${this.key}, ${this.tryOnly ? 'try' : 'acquire'}${this.lost ? ', lost' : ''})`;
  }
}

const key = fc.constantFrom(...KEYS);
const priority = fc.integer({ min: 0, max: 2 });
const cost: fc.Arbitrary<Cost | undefined> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 4, arbitrary: fc.record({ tokens: fc.integer({ min: 0, max: 8 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      requests: fc.integer({ min: 0, max: 2 }),
      tokens: fc.integer({ min: 0, max: 8 }),
    }),
  },
);
const actual: fc.Arbitrary<Cost> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ tokens: fc.integer({ min: 0, max: 12 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      requests: fc.integer({ min: 0, max: 2 }),
      tokens: fc.integer({ min: 0, max: 12 }),
    }),
  },
);

function opArb(omit: ReadonlySet<string>): fc.Arbitrary<Op> {
  const all: { kind: string; weight: number; arbitrary: fc.Arbitrary<Op> }[] = [
    {
      kind: 'acquire',
      weight: 8,
      arbitrary: fc
        .record({
          key,
          cost,
          priority,
          timeout: fc.option(
            omit.has('timeout0')
              ? fc.integer({ min: 1, max: 3000 })
              : fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3000 })),
            { nil: undefined },
          ),
          signal: fc.boolean(),
        })
        .map(({ cost: c, timeout, ...rest }): Op => ({
          k: 'acquire',
          ...rest,
          ...(c === undefined ? {} : { cost: c }),
          ...(timeout === undefined ? {} : { timeout }),
        })),
    },
    {
      kind: 'try',
      weight: 4,
      arbitrary: fc.record({ key, cost, priority }).map(({ cost: c, ...rest }): Op => ({
        k: 'try',
        ...rest,
        ...(c === undefined ? {} : { cost: c }),
      })),
    },
    {
      kind: 'reserve',
      weight: 2,
      arbitrary: fc.record({ key, cost, priority }).map(({ cost: c, ...rest }): Op => ({
        k: 'reserve',
        ...rest,
        ...(c === undefined ? {} : { cost: c }),
      })),
    },
    {
      kind: 'settle',
      weight: 4,
      arbitrary: fc.record({ pick: fc.nat(), actual }).map((x): Op => ({ k: 'settle', ...x })),
    },
    { kind: 'cancel', weight: 2, arbitrary: fc.nat().map((pick): Op => ({ k: 'cancel', pick })) },
    { kind: 'release', weight: 4, arbitrary: fc.nat().map((pick): Op => ({ k: 'release', pick })) },
    {
      kind: 'resCancel',
      weight: 1,
      arbitrary: fc.nat().map((pick): Op => ({ k: 'resCancel', pick })),
    },
    { kind: 'abort', weight: 2, arbitrary: fc.nat().map((pick): Op => ({ k: 'abort', pick })) },
    { kind: 'reset', weight: 2, arbitrary: key.map((k): Op => ({ k: 'reset', key: k })) },
    {
      kind: 'pause',
      weight: 1,
      arbitrary: fc
        .record({ key, ms: fc.integer({ min: 1, max: 2000 }) })
        .map((x): Op => ({ k: 'pause', ...x })),
    },
    { kind: 'stats', weight: 2, arbitrary: key.map((k): Op => ({ k: 'stats', key: k })) },
    {
      kind: 'setLimits',
      weight: 2,
      arbitrary: fc.integer({ min: 0, max: 2 }).map((i): Op => ({ k: 'setLimits', i })),
    },
  ];
  return fc.oneof(...all.filter((a) => !omit.has(a.kind)));
}

const brkCost: fc.Arbitrary<Cost | undefined> = fc.option(
  fc.record({ tokens: fc.integer({ min: 0, max: 6 }) }),
  { nil: undefined },
);

/** Calls of the limiter with a circuit breaker (one per step: see breakerModel.ts). */
function brkOp(omit: ReadonlySet<string>): fc.Arbitrary<Op> {
  const all: { kind: string; weight: number; arbitrary: fc.Arbitrary<Op> }[] = [
    {
      kind: 'bAcquire',
      weight: 5,
      arbitrary: fc
        .record({
          key,
          cost: brkCost,
          priority,
          timeout: fc.option(fc.integer({ min: 1, max: 3000 }), { nil: undefined }),
        })
        .map(({ cost: c, timeout, ...rest }): Op => ({
          k: 'bAcquire',
          ...rest,
          ...(c === undefined ? {} : { cost: c }),
          ...(timeout === undefined ? {} : { timeout }),
        })),
    },
    {
      kind: 'bTry',
      weight: 1,
      arbitrary: fc.record({ key, cost: brkCost }).map(({ key: k, cost: c }): Op => ({
        k: 'bTry',
        key: k,
        ...(c === undefined ? {} : { cost: c }),
      })),
    },
    {
      kind: 'bReport',
      weight: 6,
      arbitrary: fc
        .record({
          pick: fc.nat(),
          outcome: fc.constantFrom(
            'failure' as const,
            'failure' as const,
            'success' as const,
            'neutral' as const,
          ),
        })
        .map((x): Op => ({ k: 'bReport', ...x })),
    },
    {
      kind: 'bRelease',
      weight: 2,
      arbitrary: fc.nat().map((pick): Op => ({ k: 'bRelease', pick })),
    },
    {
      kind: 'bSettle',
      weight: 1,
      arbitrary: fc
        .record({ pick: fc.nat(), actual: fc.record({ tokens: fc.integer({ min: 0, max: 9 }) }) })
        .map((x): Op => ({ k: 'bSettle', ...x })),
    },
    { kind: 'bCancel', weight: 1, arbitrary: fc.nat().map((pick): Op => ({ k: 'bCancel', pick })) },
    {
      kind: 'bSetLimits',
      weight: 2,
      arbitrary: fc.integer({ min: 0, max: 1 }).map((i): Op => ({ k: 'bSetLimits', i })),
    },
    { kind: 'bReset', weight: 1, arbitrary: key.map((k): Op => ({ k: 'bReset', key: k })) },
    {
      kind: 'bRun',
      weight: 4,
      arbitrary: fc
        .record({ key, cost: brkCost, fail: fc.constantFrom(true, true, false) })
        .map(({ cost: c, ...rest }): Op => ({
          k: 'bRun',
          ...rest,
          ...(c === undefined ? {} : { cost: c }),
        })),
    },
  ];
  return fc.oneof(...all.filter((a) => !omit.has(a.kind)));
}

const signal = fc.oneof(
  fc.record({
    throttled: fc.constant(true),
    // Past MAX_PAUSE_MS now and then: the limiter's maxPause caps the pause.
    retryAfterMs: fc.option(fc.integer({ min: 0, max: 4000 }), { nil: null }),
  }),
  fc.record({
    limits: fc.array(
      fc.record({
        dimension: fc.constantFrom('tokens', 'requests'),
        remaining: fc.option(fc.integer({ min: 0, max: 10 }), { nil: null }),
        resetMs: fc.option(fc.integer({ min: 0, max: 90_000 }), { nil: null }),
      }),
      { minLength: 1, maxLength: 2 },
    ),
  }),
);

/** The command arbitraries of the model test. */
export function commandArbs(
  omit: ReadonlySet<string> = new Set(),
): fc.Arbitrary<fc.AsyncCommand<ModelState, Real>>[] {
  const ops = opArb(omit);
  const advance = fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max: 400 }) },
    { weight: 3, arbitrary: fc.integer({ min: 400, max: 1600 }) },
    { weight: 1, arbitrary: fc.integer({ min: 2500, max: 4000 }) }, // past the idle timeout: eviction
  );
  const steps = [
    {
      kind: 'calls',
      weight: 10,
      arbitrary: fc
        .array(ops, { minLength: 1, maxLength: omit.has('sameTurn') ? 1 : 3 })
        .map((list) => new Step(list)),
    },
    {
      kind: 'advance',
      weight: 5,
      arbitrary: advance.map((ms) => new Step([{ k: 'advance', ms }])),
    },
    {
      kind: 'feedback',
      weight: 1,
      arbitrary: fc
        .record({ key, signal })
        .map(({ key: k, signal: s }) => new Step([{ k: 'feedback', key: k, signal: s }])),
    },
    {
      kind: 'breaker',
      weight: 8,
      arbitrary: brkOp(omit).map((op) => new Step([op])),
    },
    // close in the middle of a run now and then, alone in its step: with Redis, a decision still
    // in flight at close ends its waiter closed, where the memory store had granted it already.
    {
      kind: 'close',
      weight: 1,
      arbitrary: fc
        .integer({ min: 0, max: 2 })
        .map((i) => new Step(i === 0 ? [{ k: 'close' }] : [{ k: 'stats', key: 'a' }])),
    },
    {
      kind: 'failing',
      weight: 1,
      arbitrary: fc
        .record({ key, t: fc.boolean(), lost: fc.boolean() })
        .map(({ key: k, t, lost }) => new Failing(k, t, lost)),
    },
  ];
  return [fc.oneof(...steps.filter((x) => !omit.has(x.kind)))];
}
