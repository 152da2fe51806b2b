/**
 * Boundary checks. A policy or a cost is validated once, here, before anything reaches a key's
 * mailbox; bad input throws a typed error and no state changes.
 */
import { CostExceedsCapacityError, InvalidArgumentError } from '../errors.js';
import { formatMs, parseDuration } from './units.js';
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

function bad(message: string): never {
  throw new InvalidArgumentError(`tollgate: ${message}`);
}

/**
 * checkOptionNames refuses an own key of `obj` that is not in `allowed` (a misspelt option from
 * plain JavaScript, which TypeScript would have caught), naming the nearest allowed one.
 *
 * @throws InvalidArgumentError `"<where> has no option "timout"; did you mean "timeout"? (allowed: …)"`
 */
export function checkOptionNames(obj: object, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(obj)) {
    if (allowed.includes(k)) continue;
    const near = nearestName(k, allowed);
    bad(
      `${where} has no option ${JSON.stringify(k)}${near === null ? '' : `; did you mean ${JSON.stringify(near)}?`} (allowed: ${allowed.join(', ')})`,
    );
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

function editDistance(a: string, b: string): number {
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

/**
 * compilePolicy validates a {@link PolicySpec} and resolves it into a {@link Policy}.
 *
 * @throws InvalidArgumentError for an empty policy, a limit or burst that is not a positive
 *   integer, a bad interval, an unknown algorithm, a burst on a window algorithm, duplicate limit
 *   names, or a concurrency that is not a positive integer.
 * @example compilePolicy({ limits: [{ limit: 10, interval: '1s' }] })
 */
export function compilePolicy(spec: PolicySpec): Policy {
  if (typeof spec !== 'object' || spec === null || !Array.isArray(spec.limits)) {
    bad('policy must be an object with a `limits` array');
  }
  const algorithm = spec.algorithm ?? 'token-bucket';
  if (!ALGORITHMS.includes(algorithm)) {
    bad(
      `policy algorithm ${JSON.stringify(algorithm)} is unknown; expected one of ${ALGORITHMS.join(', ')}`,
    );
  }
  let concurrency: number | null = null;
  if (spec.concurrency !== undefined) {
    if (!isPositiveInt(spec.concurrency)) {
      bad(`policy concurrency ${String(spec.concurrency)} must be a positive integer`);
    }
    concurrency = spec.concurrency;
  }
  if (spec.limits.length === 0 && concurrency === null) {
    bad('policy needs at least one limit or a concurrency');
  }
  const names = new Set<string>();
  const limits = spec.limits.map((l, i): Limit => {
    const where = `limit #${i}`;
    if (typeof l !== 'object' || l === null) bad(`${where} must be an object`);
    checkOptionNames(l, LIMIT_OPTIONS, where);
    if (!isPositiveInt(l.limit))
      bad(`${where} limit ${String(l.limit)} must be a positive integer`);
    const intervalMs = parseDuration(l.interval, `${where} interval`);
    const dimension = l.dimension ?? 'requests';
    if (typeof dimension !== 'string' || dimension.length === 0) {
      bad(`${where} dimension must be a non-empty string`);
    }
    const alg = l.algorithm ?? algorithm;
    if (!ALGORITHMS.includes(alg)) {
      bad(
        `${where} algorithm ${JSON.stringify(alg)} is unknown; expected one of ${ALGORITHMS.join(', ')}`,
      );
    }
    let capacity = l.limit;
    if (l.burst !== undefined) {
      if (alg !== 'token-bucket') bad(`${where} burst applies to token-bucket only, not ${alg}`);
      if (!isPositiveInt(l.burst))
        bad(`${where} burst ${String(l.burst)} must be a positive integer`);
      capacity = l.burst;
    }
    if (capacity * intervalMs > MAX_SCALED) {
      bad(
        `${where} ${l.burst !== undefined ? 'burst' : 'limit'} ${capacity} per ${formatMs(intervalMs)} is too large to count exactly: at most ${Math.floor(MAX_SCALED / intervalMs).toLocaleString('en-US')} per ${formatMs(intervalMs)} (capacity × interval in ms must stay under 2^51)`,
      );
    }
    const name = l.name ?? `${dimension}/${formatMs(intervalMs)}`;
    if (typeof name !== 'string' || name.length === 0)
      bad(`${where} name must be a non-empty string`);
    if (names.has(name))
      bad(`limit name ${JSON.stringify(name)} is used twice; give each limit a unique name`);
    names.add(name);
    return { name, dimension, algorithm: alg, limit: l.limit, intervalMs, capacity };
  });
  const dimensions = [...new Set(['requests', ...limits.map((l) => l.dimension)])];
  return { limits, dimensions, concurrency };
}

/**
 * compileCost turns a cost into units per limit of `policy`. `requests` defaults to 1. When the
 * policy counts `tokens` and the cost names none, `tokens` is `inputTokens + outputTokens`.
 *
 * @param capped whether a cost above a limit's capacity is refused (acquire) or allowed (settle,
 *   where actual usage may exceed what could be admitted at once).
 * @throws InvalidArgumentError for a non-object, a negative, non-integer or non-finite amount, or a
 *   dimension no limit of the policy counts.
 * @throws CostExceedsCapacityError when `capped` and an amount exceeds a limit's capacity.
 */
export function compileCost(
  policy: Policy,
  cost: CostSpec | undefined,
  call = 'acquire',
  capped = true,
): Units {
  const dims = costByDimension(policy, cost, call);
  return policy.limits.map((l) => {
    const units = dims.get(l.dimension) ?? 0;
    if (capped && units > l.capacity)
      throw new CostExceedsCapacityError(l.name, units, l.capacity, call);
    return units;
  });
}

function costByDimension(
  policy: Policy,
  cost: CostSpec | undefined,
  call: string,
): Map<string, number> {
  const dims = new Map<string, number>([['requests', 1]]);
  if (cost === undefined) return dims;
  if (typeof cost !== 'object' || cost === null || Array.isArray(cost)) {
    bad(`${call} cost must be an object of units per dimension, e.g. { tokens: 1200 }`);
  }
  const countsTokens = policy.dimensions.includes('tokens');
  for (const [dim, value] of Object.entries(cost)) {
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_UNITS) {
      bad(`${call} cost ${dim}=${String(value)} must be an integer from 0 to ${MAX_UNITS}`);
    }
    const derivable = countsTokens && (dim === 'inputTokens' || dim === 'outputTokens');
    if (!policy.dimensions.includes(dim) && !derivable) {
      bad(
        `${call} cost names dimension ${JSON.stringify(dim)}, which no limit counts; known: ${policy.dimensions.join(', ')}`,
      );
    }
    dims.set(dim, value);
  }
  if (countsTokens && cost.tokens === undefined) {
    const derived = (cost.inputTokens ?? 0) + (cost.outputTokens ?? 0);
    if (derived > 0) dims.set('tokens', derived);
  }
  return dims;
}

/**
 * checkUnits throws unless `units` has one amount per limit of `policy`: units compiled under
 * another policy (one with more or fewer limits) would be read against the wrong limits, so the
 * core and the stores refuse them before anything changes or is sent (issue #10).
 *
 * @throws InvalidArgumentError naming the call and both lengths.
 */
export function checkUnits(policy: Policy, units: Units, call: string): void {
  if (units.length !== policy.limits.length) {
    bad(
      `${call} got ${units.length} units for a policy of ${policy.limits.length} limits; compile the cost with the policy it is used with`,
    );
  }
}
