/**
 * Random schedules for the differential test (`differential.test.ts`): up to three policies of a
 * key (the first, then others it may change to mid-schedule, often small edits of the first so
 * that limits keep their state by name), and a list of store operations, each a time step away
 * from the one before: 0 (the same instant), forward by a little or a lot, or back.
 *
 * Costs are drawn as shares of the smallest capacity of a dimension and compiled when the step
 * runs, against the policy in force then, so every request is a valid one whatever policy
 * changes came before it.
 */
import fc from 'fast-check';
import type { AlgorithmName, LimitSpec, PolicySpec } from '../../src/limiter/types.js';
import type { BatchMode } from '../../src/store.js';

const ALGORITHMS: readonly AlgorithmName[] = ['token-bucket', 'sliding-window', 'fixed-window'];

/** Limit names: a later policy meets the same names, so limits carry their state across a change. */
const NAMES = ['a', 'b', 'c'] as const;

/** A cost as drawn: `requests` as is, `tokens` in percent of the smallest tokens capacity. */
export interface CostDraw {
  readonly requests: number;
  readonly tokensPct: number;
}

/** One store operation of a schedule. */
export type Op =
  | {
      readonly op: 'decide';
      readonly mode: BatchMode;
      readonly batch: readonly CostDraw[];
      /** For a lone request in 'queue' mode: the memory store decides it through `decideOne`. */
      readonly one: boolean;
    }
  /** `requestsPct`, `tokensPct`: the actual cost in percent of the smallest capacity, up to 250. */
  | {
      readonly op: 'settle';
      readonly pick: number;
      readonly requestsPct: number;
      readonly tokensPct: number;
    }
  | { readonly op: 'cancel'; readonly pick: number }
  | { readonly op: 'release'; readonly pick: number }
  | { readonly op: 'read' }
  | { readonly op: 'pause'; readonly forMs: number }
  | { readonly op: 'reset' }
  /** Later steps use `policies[policy]`. */
  | { readonly op: 'setPolicy'; readonly policy: number };

/** A step: an operation `dt` ms after the previous step (negative: the clock stepped back). */
export type Step = Op & { readonly dt: number };

export interface Schedule {
  /** The instant of the first step, before its `dt`. */
  readonly start: number;
  /** `policies[0]` is in force first; `setPolicy` steps switch among them. */
  readonly policies: readonly PolicySpec[];
  readonly steps: readonly Step[];
}

const interval = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 20 }), weight: 3 },
  { arbitrary: fc.constantFrom(7, 100, 250, 1000, 60_000), weight: 3 },
);

function limitArb(name: string): fc.Arbitrary<LimitSpec> {
  return fc
    .record({
      algorithm: fc.constantFrom(...ALGORITHMS),
      dimension: fc.constantFrom('requests', 'tokens'),
      requests: fc.integer({ min: 1, max: 5 }),
      tokens: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 41, max: 5000 })),
      interval,
      burstPct: fc.option(fc.integer({ min: 1, max: 300 }), { nil: null }),
    })
    .map(({ algorithm, dimension, requests, tokens, interval, burstPct }) => {
      const limit = dimension === 'requests' ? requests : tokens;
      const spec: LimitSpec = { name, limit, interval, dimension, algorithm };
      if (algorithm !== 'token-bucket' || burstPct === null) return spec;
      return { ...spec, burst: Math.max(1, Math.floor((limit * burstPct) / 100)) };
    });
}

/** A policy of 1–3 limits of any mix of algorithms and dimensions, with or without concurrency. */
export const policyArb: fc.Arbitrary<PolicySpec> = fc
  .record({
    names: fc.shuffledSubarray([...NAMES], { minLength: 1 }),
    limits: fc.tuple(limitArb('a'), limitArb('b'), limitArb('c')),
    concurrency: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null, freq: 2 }),
  })
  .map(({ names, limits, concurrency }) => {
    const spec: PolicySpec = {
      limits: names.map((n) => limits[NAMES.indexOf(n as (typeof NAMES)[number])]!),
    };
    return concurrency === null ? spec : { ...spec, concurrency };
  });

/** An edit of one limit: its rate, its interval or its burst scaled, its algorithm swapped, or none. */
const limitEdit = fc.record({
  limitFactor: fc.constantFrom(1, 1, 2, 0.5, 3),
  intervalFactor: fc.constantFrom(1, 1, 1, 2, 0.5),
  algorithm: fc.option(fc.constantFrom(...ALGORITHMS), { nil: null, freq: 4 }),
  keep: fc.oneof({ arbitrary: fc.constant(true), weight: 5 }, fc.constant(false)),
});

const scaled = (n: number, f: number): number => Math.max(1, Math.round(n * f));

/** `base` edited: a limit rescaled, retimed, swapped or dropped, one added, concurrency changed. */
function editOf(base: PolicySpec): fc.Arbitrary<PolicySpec> {
  return fc
    .record({
      edits: fc.tuple(limitEdit, limitEdit, limitEdit),
      added: fc.option(limitArb('c'), { nil: null, freq: 3 }),
      concurrency: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null, freq: 2 }),
      keepConcurrency: fc.boolean(),
    })
    .map(({ edits, added, concurrency, keepConcurrency }) => {
      const limits: LimitSpec[] = [];
      base.limits.forEach((l, i) => {
        const e = edits[i]!;
        if (!e.keep) return;
        const algorithm = e.algorithm ?? l.algorithm!;
        const limit = scaled(l.limit, e.limitFactor);
        const spec: LimitSpec = {
          ...l,
          algorithm,
          limit,
          interval: scaled(l.interval as number, e.intervalFactor),
        };
        if (algorithm !== 'token-bucket') delete (spec as { burst?: number }).burst;
        limits.push(spec);
      });
      if (added !== null && !limits.some((l) => l.name === added.name)) limits.push(added);
      if (limits.length === 0) limits.push(base.limits[0]!);
      const c = keepConcurrency ? base.concurrency : (concurrency ?? undefined);
      return c === undefined ? { limits } : { limits, concurrency: c };
    });
}

/** Ms between two steps: mostly forward, sometimes 0, and with `back`, sometimes back. */
function dtArb(back: boolean): fc.Arbitrary<number> {
  const forward: fc.WeightedArbitrary<number>[] = [
    { arbitrary: fc.constant(0), weight: 4 },
    { arbitrary: fc.integer({ min: 1, max: 5 }), weight: 3 },
    { arbitrary: fc.integer({ min: 1, max: 300 }), weight: 3 },
    { arbitrary: fc.integer({ min: 300, max: 5000 }), weight: 2 },
    { arbitrary: fc.integer({ min: 5000, max: 200_000 }), weight: 1 },
  ];
  if (!back) return fc.oneof(...forward);
  return fc.oneof(...forward, { arbitrary: fc.integer({ min: -300, max: -1 }), weight: 2 });
}

const costArb: fc.Arbitrary<CostDraw> = fc.record({
  requests: fc.oneof(
    { arbitrary: fc.constant(1), weight: 4 },
    { arbitrary: fc.integer({ min: 0, max: 5 }), weight: 1 },
  ),
  tokensPct: fc.oneof(fc.constant(100), fc.integer({ min: 0, max: 100 })),
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      op: fc.constant('decide' as const),
      mode: fc.constantFrom<BatchMode>('queue', 'each'),
      batch: fc.array(costArb, { minLength: 1, maxLength: 4 }),
      one: fc.boolean(),
    }),
    weight: 10,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('settle' as const),
      pick: fc.nat(),
      requestsPct: fc.integer({ min: 0, max: 250 }),
      tokensPct: fc.integer({ min: 0, max: 250 }),
    }),
    weight: 4,
  },
  { arbitrary: fc.record({ op: fc.constant('cancel' as const), pick: fc.nat() }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('release' as const), pick: fc.nat() }), weight: 3 },
  { arbitrary: fc.constant({ op: 'read' as const }), weight: 1 },
  {
    arbitrary: fc.record({
      op: fc.constant('pause' as const),
      forMs: fc.oneof(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 3000 })),
    }),
    weight: 1,
  },
  { arbitrary: fc.constant({ op: 'reset' as const }), weight: 1 },
  {
    arbitrary: fc.record({
      op: fc.constant('setPolicy' as const),
      policy: fc.integer({ min: 0, max: 2 }),
    }),
    weight: 1,
  },
);

/**
 * A schedule: a start instant, three policies (edits of the first or new ones), the steps. With
 * `back`, the clock sometimes steps back between steps.
 */
export function scheduleArb(back: boolean): fc.Arbitrary<Schedule> {
  const step: fc.Arbitrary<Step> = fc
    .tuple(opArb, dtArb(back))
    .map(([op, dt]) => ({ ...op, dt }) as Step);
  return policyArb.chain((first) =>
    fc.record({
      start: fc.oneof(
        fc.constant(0),
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.integer({ min: 1_700_000_000_000, max: 1_800_000_000_000 }),
      ),
      policies: fc.tuple(
        fc.constant(first),
        fc.oneof(editOf(first), policyArb),
        fc.oneof(editOf(first), policyArb),
      ),
      steps: fc.array(step, { minLength: 1, maxLength: 40, size: 'max' }),
    }),
  );
}
