/**
 * fast-check arbitraries for property tests of code that uses tollgate: policies, costs,
 * durations and schedules of requests. Every value they make is valid (a policy compiles, a cost
 * fits its policy's capacity), so a property fails for what the code under test does, not for
 * what the generator gave it.
 */
import fc from 'fast-check';
import type { AlgorithmName, CostSpec, Duration, LimitSpec, PolicySpec } from '../limiter/types.js';

/** Options of {@link policyArb}. */
export interface PolicyArbOptions {
  /** Dimensions a limit may count. @default ['requests', 'tokens'] */
  readonly dimensions?: readonly string[];
  /** The algorithm, or any of the three. @default any */
  readonly algorithm?: AlgorithmName;
  /** Limits per policy, at most. @default 3 */
  readonly maxLimits?: number;
  /** Whether a concurrency limit may be drawn. @default true */
  readonly concurrency?: boolean;
}

const ALGORITHMS: readonly AlgorithmName[] = ['token-bucket', 'sliding-window', 'fixed-window'];

/** durationArb draws a duration as tollgate takes it: whole ms or a string like `'2s'`. */
export function durationArb(options: { min?: number; max?: number } = {}): fc.Arbitrary<Duration> {
  const min = options.min ?? 1;
  const max = options.max ?? 3_600_000;
  return fc.oneof(
    fc.integer({ min, max }),
    fc
      .integer({ min: Math.ceil(min / 1000), max: Math.floor(max / 1000) })
      .filter((s) => s >= 1)
      .map((s) => `${s}s` as Duration),
  );
}

/**
 * policyArb draws a valid policy: one to `maxLimits` limits with distinct names over the given
 * dimensions, an algorithm, and maybe a concurrency limit.
 */
export function policyArb(options: PolicyArbOptions = {}): fc.Arbitrary<PolicySpec> {
  const dimensions = options.dimensions ?? ['requests', 'tokens'];
  const limitArb: fc.Arbitrary<LimitSpec> = fc.record({
    limit: fc.integer({ min: 1, max: 10_000 }),
    interval: fc.constantFrom<Duration>('1s', '10s', '1m', '1h', 500, 2_000),
    dimension: fc.constantFrom(...dimensions),
  });
  return fc
    .record({
      limits: fc.array(limitArb, { minLength: 1, maxLength: options.maxLimits ?? 3 }),
      algorithm:
        options.algorithm === undefined
          ? fc.constantFrom(...ALGORITHMS)
          : fc.constant(options.algorithm),
      concurrency:
        options.concurrency === false
          ? fc.constant(undefined)
          : fc.option(fc.integer({ min: 1, max: 16 }), { nil: undefined }),
    })
    .map(({ limits, algorithm, concurrency }) => ({
      algorithm,
      limits: limits.map((l, i) => ({ ...l, name: `limit${i}` })),
      ...(concurrency !== undefined && { concurrency }),
    }));
}

/**
 * costArb draws a cost that fits `policy`: for each dimension it counts, a whole number from 0 to
 * the smallest limit on it (a cost above a capacity is refused up front, never admitted).
 */
export function costArb(policy: PolicySpec): fc.Arbitrary<CostSpec> {
  const most = new Map<string, number>();
  for (const l of policy.limits) {
    const d = l.dimension ?? 'requests';
    most.set(d, Math.min(most.get(d) ?? Infinity, l.limit));
  }
  const parts: Record<string, fc.Arbitrary<number>> = {};
  for (const [d, max] of most) parts[d] = fc.integer({ min: 0, max });
  return fc.record(parts) as fc.Arbitrary<CostSpec>;
}

/** One request of a {@link scheduleArb}: when it is made (ms from the start), on which key, at what cost. */
export interface ScheduledRequest {
  readonly at: number;
  readonly key: string;
  readonly cost: CostSpec;
}

/**
 * scheduleArb draws requests over `spanMs` of virtual time on the given keys, earliest first,
 * each with a cost that fits `policy`.
 */
export function scheduleArb(
  policy: PolicySpec,
  options: { keys?: readonly string[]; spanMs?: number; maxLength?: number } = {},
): fc.Arbitrary<ScheduledRequest[]> {
  const keys = options.keys ?? ['k'];
  return fc
    .array(
      fc.record({
        at: fc.integer({ min: 0, max: options.spanMs ?? 10_000 }),
        key: fc.constantFrom(...keys),
        cost: costArb(policy),
      }),
      { maxLength: options.maxLength ?? 30 },
    )
    .map((rs) => rs.sort((a, b) => a.at - b.at));
}
