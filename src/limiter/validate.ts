/**
 * Boundary checks. A policy or a cost is validated once, here, before anything reaches a key's
 * mailbox; bad input throws a typed error and no state changes.
 */
import { describeValue, humanMs, joinPath, type Place } from '../describe.js';
import { CostExceedsCapacityError, InvalidArgumentError } from '../errors.js';
import { formatMs, readDuration } from './units.js';
import type { AlgorithmName, CostSpec, Limit, Policy, PolicySpec, Units } from './types.js';

const ALGORITHMS: readonly AlgorithmName[] = ['token-bucket', 'sliding-window', 'fixed-window'];

/**
 * The largest `capacity × intervalMs` a token bucket may have. A quarter of 2^53 leaves room for
 * debt from extra charges while every scaled amount stays an exact integer.
 */
export const MAX_SCALED = Math.floor(Number.MAX_SAFE_INTEGER / 4);

/** The largest number of units one cost may name in one dimension. */
export const MAX_UNITS = 2 ** 40;

function isPositiveInt(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n > 0;
}

/** How a positive integer field reads in a message, with what it counts. */
const positiveInteger = (what: string): string => `a positive integer (${what})`;

/**
 * checkOptionNames refuses an own key of `obj` that is not in `allowed` (a misspelt option from
 * plain JavaScript, which TypeScript would have caught), naming the nearest allowed one. `at.path`
 * is the path of `obj` itself (`''` for the top level).
 *
 * @throws InvalidArgumentError `<where>: options.timout is not an option (did you mean "timeout"?);
 *   expected one of cost, timeout, …`
 */
export function checkOptionNames(obj: object, allowed: readonly string[], at: Place): void {
  for (const k of Object.keys(obj)) {
    if (allowed.includes(k)) continue;
    const near = nearestName(k, allowed);
    throw new InvalidArgumentError({
      where: at.where,
      path: joinPath(at.path, k),
      value: (obj as Record<string, unknown>)[k],
      problem: `is not an option${near === null ? '' : ` (did you mean ${JSON.stringify(near)}?)`}`,
      expected: `one of ${allowed.join(', ')}`,
    });
  }
}

/** The name of `names` nearest to `k` by edit distance, if near enough to be a slip. */
function nearestName(k: string, names: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Math.max(2, Math.floor(k.length / 3)) + 1;
  for (const n of names) {
    const d = editDistance(k.toLowerCase(), n.toLowerCase());
    if (d < bestD) [best, bestD] = [n, d];
  }
  return best;
}

/** editDistance is the Levenshtein distance of `a` and `b`: inserts, deletes and substitutions. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(
        prev[j]! + 1,
        row[j - 1]! + 1,
        prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    prev = row;
  }
  return prev[b.length]!;
}

/** The options of one limit ({@link LimitSpec}). */
const LIMIT_OPTIONS = ['limit', 'interval', 'dimension', 'burst', 'name', 'algorithm'] as const;

/** The algorithms, as a message lists them. */
const ALGORITHMS_ALLOWED = `one of ${ALGORITHMS.map((a) => `'${a}'`).join(', ')}`;

/**
 * compilePolicy validates a {@link PolicySpec} and resolves it into a {@link Policy}.
 *
 * @throws InvalidArgumentError for an empty policy, a limit or burst that is not a positive
 *   integer, a bad interval, an unknown algorithm, a burst on a window algorithm, duplicate limit
 *   names, or a concurrency that is not a positive integer.
 * @example compilePolicy({ limits: [{ limit: 10, interval: '1s' }] })
 */
export function compilePolicy(spec: PolicySpec): Policy {
  return compilePolicyOf(spec, 'compilePolicy');
}

/**
 * compilePolicyOf is {@link compilePolicy} for a caller that names itself in messages (`where`:
 * `limiter "a"`) and the policy argument (`root`: `options` of `system.limiter`); paths in the
 * policy are its own (`limits[0].limit`).
 */
export function compilePolicyOf(spec: PolicySpec, where: string, root = 'policy'): Policy {
  const bad = (path: string, value: unknown, expected: string, problem?: string): never => {
    throw new InvalidArgumentError({
      where,
      path,
      value,
      expected,
      ...(problem !== undefined && { problem }),
    });
  };
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    bad(root, spec, 'an object { limits, algorithm?, concurrency? }');
  }
  if (!Array.isArray(spec.limits)) {
    bad('limits', spec.limits, "an array of limits, e.g. [{ limit: 10, interval: '1s' }]");
  }
  const algorithm = spec.algorithm === undefined ? 'token-bucket' : spec.algorithm;
  if (!ALGORITHMS.includes(algorithm)) bad('algorithm', algorithm, ALGORITHMS_ALLOWED);
  let concurrency: number | null = null;
  if (spec.concurrency !== undefined) {
    if (!isPositiveInt(spec.concurrency)) {
      bad('concurrency', spec.concurrency, positiveInteger('calls in flight at once'));
    }
    concurrency = spec.concurrency;
  }
  if (spec.limits.length === 0 && concurrency === null) {
    bad('limits', spec.limits, 'at least one limit, or a concurrency');
  }
  const names = new Map<string, number>();
  const limits = spec.limits.map((l, i): Limit => {
    const at = `limits[${i}]`;
    if (typeof l !== 'object' || l === null || Array.isArray(l)) {
      bad(at, l, "an object, e.g. { limit: 10, interval: '1s' }");
    }
    checkOptionNames(l, LIMIT_OPTIONS, { where, path: at });
    if (!isPositiveInt(l.limit))
      bad(`${at}.limit`, l.limit, positiveInteger('how many per interval'));
    const intervalMs = readDuration(l.interval, { where, path: `${at}.interval` });
    const dimension = l.dimension === undefined ? 'requests' : l.dimension;
    if (typeof dimension !== 'string' || dimension.length === 0) {
      bad(`${at}.dimension`, dimension, "a non-empty string, e.g. 'tokens'");
    }
    const alg = l.algorithm === undefined ? algorithm : l.algorithm;
    if (!ALGORITHMS.includes(alg)) bad(`${at}.algorithm`, alg, ALGORITHMS_ALLOWED);
    let capacity = l.limit;
    if (l.burst !== undefined) {
      if (alg !== 'token-bucket') {
        bad(`${at}.burst`, l.burst, `no burst: a ${alg} limit has none (token-bucket only)`);
      }
      if (!isPositiveInt(l.burst)) {
        bad(`${at}.burst`, l.burst, positiveInteger('the most admitted at once'));
      }
      capacity = l.burst;
    }
    if (capacity * intervalMs > MAX_SCALED) {
      const per = humanMs(intervalMs);
      bad(
        `${at}.${l.burst !== undefined ? 'burst' : 'limit'}`,
        capacity,
        `at most ${Math.floor(MAX_SCALED / intervalMs).toLocaleString('en-US')} per ${per}, to count exactly (capacity × interval in ms stays under 2^51)`,
      );
    }
    const name = l.name === undefined ? `${dimension}/${formatMs(intervalMs)}` : l.name;
    if (typeof name !== 'string' || name.length === 0) {
      bad(`${at}.name`, name, 'a non-empty string');
    }
    const first = names.get(name);
    if (first !== undefined) {
      bad(
        `${at}.name`,
        name,
        'a name no other limit has (the default is dimension/interval)',
        `is ${describeValue(name)}, the name of limits[${first}] too`,
      );
    }
    names.set(name, i);
    return { name, dimension, algorithm: alg, limit: l.limit, intervalMs, capacity };
  });
  const dimensions = [...new Set(['requests', ...limits.map((l) => l.dimension)])];
  return { limits, dimensions, concurrency };
}

/**
 * compileCost turns a cost into units per limit of `policy`. `requests` defaults to 1. When the
 * policy counts `tokens` and the cost names none, `tokens` is `inputTokens + outputTokens`.
 *
 * @param at names the cost in messages: who asked (`acquire on limiter "a", key "k"`) and its
 *   path (`options.cost`); a string names who asked, and the path is `cost`.
 * @param capped whether a cost above a limit's capacity is refused (acquire) or allowed (settle,
 *   where actual usage may exceed what could be admitted at once).
 * @throws InvalidArgumentError for a policy that is not a compiled {@link Policy}, a cost that is
 *   not an object, a negative, non-integer or non-finite amount, or a dimension no limit of the
 *   policy counts.
 * @throws CostExceedsCapacityError when `capped` and an amount exceeds a limit's capacity.
 */
export function compileCost(
  policy: Policy,
  cost: CostSpec | undefined,
  where: Place | string = 'compileCost',
  capped = true,
): Units {
  const at = typeof where === 'string' ? { where, path: 'cost' } : where;
  const p = policy as Partial<Policy> | null;
  if (
    typeof p !== 'object' ||
    p === null ||
    !Array.isArray(p.limits) ||
    !Array.isArray(p.dimensions)
  ) {
    throw new InvalidArgumentError({
      where: at.where,
      path: 'policy',
      value: policy,
      expected: 'a Policy, from compilePolicy() or limiter.policy',
    });
  }
  const dims = costByDimension(policy, cost, at);
  return policy.limits.map((l) => {
    const units = dims.get(l.dimension) ?? 0;
    if (capped && units > l.capacity) {
      const path =
        l.dimension === 'tokens' && cost?.tokens === undefined
          ? `${joinPath(at.path, 'inputTokens')} + outputTokens`
          : joinPath(at.path, l.dimension);
      throw new CostExceedsCapacityError(l.name, units, l.capacity, at.where, path);
    }
    return units;
  });
}

/** What a cost may be, for messages. */
export const COST_ALLOWED = 'an object of units per dimension, e.g. { tokens: 1200 }';

/** What one amount of a cost may be. */
// Stryker disable next-line StringLiteral: killed in fact: '' is no locale, so this line throws a RangeError as the module loads and every test file importing it fails, which Stryker's vitest runner counts as no failed test
const UNITS_ALLOWED = `a whole number of units from 0 to ${MAX_UNITS.toLocaleString('en-US')}`;

function costByDimension(
  policy: Policy,
  cost: CostSpec | undefined,
  at: Place,
): Map<string, number> {
  const dims = new Map<string, number>([['requests', 1]]);
  if (cost === undefined) return dims;
  if (typeof cost !== 'object' || cost === null || Array.isArray(cost)) {
    throw new InvalidArgumentError({ ...at, value: cost, expected: COST_ALLOWED });
  }
  const countsTokens = policy.dimensions.includes('tokens');
  // The path and the list of known dimensions are built only for a message: a valid cost, on
  // every acquire and settle, allocates neither.
  for (const [dim, value] of Object.entries(cost)) {
    if (value === undefined) continue;
    const known =
      policy.dimensions.includes(dim) ||
      (countsTokens && (dim === 'inputTokens' || dim === 'outputTokens'));
    if (!known) {
      const names = countsTokens
        ? [...policy.dimensions, 'inputTokens', 'outputTokens']
        : policy.dimensions;
      throw new InvalidArgumentError({
        where: at.where,
        path: joinPath(at.path, dim),
        value,
        problem: 'names a dimension no limit counts',
        expected: `one of ${names.join(', ')}`,
      });
    }
    // Stryker disable next-line ConditionalExpression: Number.isInteger is false for every non-number as well
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_UNITS) {
      throw new InvalidArgumentError({
        where: at.where,
        path: joinPath(at.path, dim),
        value,
        expected: UNITS_ALLOWED,
      });
    }
    dims.set(dim, value);
  }
  if (countsTokens && cost.tokens === undefined) {
    const derived = (cost.inputTokens ?? 0) + (cost.outputTokens ?? 0);
    // Stryker disable next-line ConditionalExpression,EqualityOperator: setting tokens to 0 changes nothing: an absent dimension reads as 0 (`?? 0` above)
    if (derived > 0) dims.set('tokens', derived);
  }
  return dims;
}

/**
 * checkUnits throws unless `units` has one amount per limit of `policy`: units compiled under
 * another policy (one with more or fewer limits) would be read against the wrong limits, so the
 * core and the stores refuse them before anything changes or is sent (issue #10).
 *
 * @throws InvalidArgumentError naming the call, the units' path and both lengths.
 */
export function checkUnits(policy: Policy, units: Units, call: string, path = 'units'): void {
  if (units.length !== policy.limits.length) {
    throw new InvalidArgumentError({
      where: call,
      path,
      value: units,
      problem: `is ${describeValue(units)}, ${units.length} ${units.length === 1 ? 'amount' : 'amounts'}`,
      expected: `one amount per limit of the policy, ${policy.limits.length}: compile the cost with the policy it is used with`,
    });
  }
}

/** checkBatchUnits is {@link checkUnits} for every request of a batch (`batch[2].units`). */
export function checkBatchUnits(
  policy: Policy,
  batch: readonly { readonly units: Units }[],
  call: string,
): void {
  for (let i = 0; i < batch.length; i++) {
    const units = batch[i]!.units;
    // Stryker disable next-line ConditionalExpression: a shortcut: checkUnits tests the same lengths and returns when they match
    if (units.length !== policy.limits.length) checkUnits(policy, units, call, `batch[${i}].units`);
  }
}
