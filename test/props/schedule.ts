/**
 * Random schedules for the property tests: a policy of 1–3 limits over the `requests` and `tokens`
 * dimensions, and a list of operations on one key (time steps, acquires with a cost vector,
 * refunds, settles and releases of earlier grants).
 */
import fc from 'fast-check';
import type { AlgorithmName, LimitSpec, PolicySpec } from '../../src/limiter/types.js';

export const ALGORITHMS: readonly AlgorithmName[] = [
  'token-bucket',
  'sliding-window',
  'fixed-window',
];

/** Runs per property: 1,000 unless PROP_RUNS says otherwise. */
export const RUNS = { numRuns: Number(process.env.PROP_RUNS ?? 1000) };

/** What a schedule's costs may use: a share of the smallest capacity of a dimension, in percent. */
export type Op =
  | { readonly kind: 'wait'; readonly ms: number }
  | { readonly kind: 'back'; readonly ms: number }
  | {
      readonly kind: 'acquire';
      readonly requests: number;
      readonly tokensPct: number;
      readonly slot: boolean;
    }
  | { readonly kind: 'refund'; readonly pick: number }
  | {
      readonly kind: 'settle';
      readonly pick: number;
      readonly requestsPct: number;
      readonly tokensPct: number;
    }
  | { readonly kind: 'release'; readonly pick: number };

const interval = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 20 }), weight: 3 },
  { arbitrary: fc.constantFrom(7, 50, 100, 1000), weight: 2 },
);

function limitArb(algorithm: AlgorithmName | 'mixed', i: number): fc.Arbitrary<LimitSpec> {
  const alg: fc.Arbitrary<AlgorithmName> =
    algorithm === 'mixed' ? fc.constantFrom(...ALGORITHMS) : fc.constant(algorithm);
  return fc
    .record({
      alg,
      dimension: fc.constantFrom('requests', 'tokens'),
      small: fc.integer({ min: 1, max: 6 }),
      large: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constant(90_000)),
      intervalMs: interval,
      burstPct: fc.option(fc.integer({ min: 1, max: 300 }), { nil: null }),
    })
    .map(({ alg, dimension, small, large, intervalMs, burstPct }) => {
      const limit = dimension === 'requests' ? small : large;
      const spec: LimitSpec = {
        name: `l${i}`,
        limit,
        interval: intervalMs,
        dimension,
        algorithm: alg,
      };
      if (alg === 'token-bucket' && burstPct !== null) {
        return { ...spec, burst: Math.max(1, Math.floor((limit * burstPct) / 100)) };
      }
      return spec;
    });
}

/** A policy whose limits all use `algorithm`, or any mix of them for 'mixed'. */
export function policyArb(algorithm: AlgorithmName | 'mixed'): fc.Arbitrary<PolicySpec> {
  return fc
    .record({
      n: fc.integer({ min: 1, max: 3 }),
      limits: fc.tuple(limitArb(algorithm, 0), limitArb(algorithm, 1), limitArb(algorithm, 2)),
      concurrency: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null, freq: 3 }),
    })
    .map(({ n, limits, concurrency }) => {
      const spec: PolicySpec = { limits: limits.slice(0, n) };
      return concurrency === null ? spec : { ...spec, concurrency };
    });
}

const step = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 1, max: 3 }),
  fc.integer({ min: 1, max: 60 }),
  fc.integer({ min: 100, max: 1500 }),
);

/** One operation; `back` (the clock stepping back) only when `back` is true. */
export function opArb(back: boolean): fc.Arbitrary<Op> {
  const pct = fc.oneof(fc.constant(100), fc.integer({ min: 0, max: 100 }));
  const ops: fc.WeightedArbitrary<Op>[] = [
    { arbitrary: step.map((ms) => ({ kind: 'wait' as const, ms })), weight: 4 },
    {
      arbitrary: fc.record({
        kind: fc.constant('acquire' as const),
        requests: fc.oneof(fc.constant(1), fc.integer({ min: 0, max: 6 })),
        tokensPct: pct,
        slot: fc.oneof(
          { arbitrary: fc.constant(true), weight: 3 },
          { arbitrary: fc.constant(false), weight: 1 },
        ),
      }),
      weight: 6,
    },
    { arbitrary: fc.record({ kind: fc.constant('refund' as const), pick: fc.nat() }), weight: 1 },
    {
      arbitrary: fc.record({
        kind: fc.constant('settle' as const),
        pick: fc.nat(),
        requestsPct: fc.integer({ min: 0, max: 200 }),
        tokensPct: fc.integer({ min: 0, max: 200 }),
      }),
      weight: 2,
    },
    { arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }), weight: 1 },
  ];
  if (back) ops.push({ arbitrary: step.map((ms) => ({ kind: 'back' as const, ms })), weight: 1 });
  return fc.oneof(...ops);
}

export function scheduleArb(
  algorithm: AlgorithmName | 'mixed',
  options: { back?: boolean; maxOps?: number } = {},
): fc.Arbitrary<{ spec: PolicySpec; start: number; ops: Op[] }> {
  return fc.record({
    spec: policyArb(algorithm),
    start: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 100_000 })),
    ops: fc.array(opArb(options.back ?? false), {
      minLength: 1,
      maxLength: options.maxOps ?? 40,
      size: 'max',
    }),
  });
}
