/**
 * advance moves a key's state forward in time (refill and expiry), and the helpers every other
 * core function shares: the algorithm of a limit, and the initial state of a key.
 */
import type { LimitAlgorithm } from './algorithm.js';
import { fixedWindow } from './fixedWindow.js';
import { slidingWindow } from './slidingWindow.js';
import { tokenBucket } from './tokenBucket.js';
import type { AlgorithmName, KeyState, Limit, LimitState, Ms, Policy } from './types.js';

const ALGORITHMS: Readonly<Record<AlgorithmName, LimitAlgorithm<LimitState>>> = {
  'token-bucket': tokenBucket as LimitAlgorithm<LimitState>,
  'sliding-window': slidingWindow as LimitAlgorithm<LimitState>,
  'fixed-window': fixedWindow as LimitAlgorithm<LimitState>,
};

/** algorithmOf gives the arithmetic of `limit`. */
export function algorithmOf(limit: Limit): LimitAlgorithm<LimitState> {
  return ALGORITHMS[limit.algorithm];
}

/** initialState is the state of a key that has booked nothing, as of `now`. */
export function initialState(policy: Policy, now: Ms): KeyState {
  return { at: now, inFlight: 0, limits: policy.limits.map((l) => algorithmOf(l).init(l, now)) };
}

/**
 * advance refills and expires every limit of the key up to `now`. It does not mutate `state`, and
 * returns `state` itself when nothing changed. It tolerates `now < state.at` (a clock that stepped
 * back) by treating it as `state.at`: time in a key never goes backwards.
 */
export function advance(policy: Policy, state: KeyState, now: Ms): KeyState {
  if (now <= state.at) return state;
  const { limits } = policy;
  let next: LimitState[] | undefined;
  for (let i = 0; i < limits.length; i++) {
    const limit = limits[i]!;
    const before = state.limits[i]!;
    const after = algorithmOf(limit).advance(limit, before, state.at, now);
    // Stryker disable next-line ConditionalExpression: copying the array when nothing changed changes no value (an allocation saved)
    if (after !== before) {
      next ??= state.limits.slice();
      next[i] = after;
    }
  }
  return { at: now, inFlight: state.inFlight, limits: next ?? state.limits };
}

/**
 * isIdle tells whether the key holds nothing at `now`: every limit back at full capacity and no
 * concurrency slot held. Such a state equals a fresh one and need not be kept.
 */
export function isIdle(policy: Policy, state: KeyState, now: Ms): boolean {
  if (state.inFlight > 0) return false;
  const s = advance(policy, state, now);
  return policy.limits.every((l, i) => algorithmOf(l).isFull(l, s.limits[i]!));
}

/**
 * fullAt is the instant the key is back at full capacity if nothing else is booked: `now` when it
 * is already (see {@link isIdle}), Infinity while a concurrency slot is held (its release, not
 * time, frees it).
 */
export function fullAt(policy: Policy, state: KeyState, now: Ms): Ms {
  if (state.inFlight > 0) return Infinity;
  const s = advance(policy, state, now);
  let at = now;
  for (let i = 0; i < policy.limits.length; i++) {
    const limit = policy.limits[i]!;
    const algorithm = algorithmOf(limit);
    const st = s.limits[i]!;
    if (!algorithm.isFull(limit, st)) {
      at = Math.max(at, s.at + Math.max(1, algorithm.read(limit, st, s.at).resetMs));
    }
  }
  return at;
}

/**
 * rebase carries a key's state from `from` to the policy `to` (a limit change at runtime). A limit
 * keeps its state when `to` has a limit of the same name, algorithm and interval; a token bucket
 * whose interval changed keeps its fill, rescaled and rounded up; any other limit starts empty.
 * Slots held stay held.
 *
 * Token-bucket refunds stay safe: when a bucket's interval changed (its grants' marks are in the
 * old scale) or its rate went down (the drain since a grant would be overestimated), grants
 * booked up to the change give back nothing there any more (`emptiedAt` is set just after it,
 * conservatively). A bucket whose interval stayed and whose rate stayed or went up keeps its
 * counters, and grants from before settle exactly (their marks follow by name: {@link remapMarks}).
 */
export function rebase(from: Policy, to: Policy, state: KeyState, now: Ms): KeyState {
  const s = advance(from, state, now);
  const limits = to.limits.map((limit) => {
    const i = from.limits.findIndex(
      (l) => l.name === limit.name && l.algorithm === limit.algorithm,
    );
    // Stryker disable next-line ConditionalExpression: limits[-1] is undefined as well
    const old = i < 0 ? undefined : from.limits[i]!;
    // Stryker disable next-line ConditionalExpression: limits[-1] is undefined as well
    const st = i < 0 ? undefined : s.limits[i]!;
    if (old === undefined || st === undefined) return algorithmOf(limit).init(limit, s.at);
    if (limit.algorithm === 'token-bucket' && 'used' in st) {
      const same = old.intervalMs === limit.intervalMs;
      if (same && limit.limit >= old.limit) return st;
      const used = same ? st.used : Math.ceil((st.used * limit.intervalMs) / old.intervalMs);
      return used === 0
        ? algorithmOf(limit).init(limit, s.at)
        : { used, refunded: 0, emptiedAt: s.at + 1 };
    }
    if (old.intervalMs === limit.intervalMs) return st;
    return algorithmOf(limit).init(limit, s.at);
  });
  return { at: s.at, inFlight: s.inFlight, limits };
}

/**
 * sameRecords tells whether a key's state under `from` is, limit by limit, its state under `to`:
 * the same limits by name and algorithm, each with the same rate (`limit`) and interval, in any
 * order (the capacity and the concurrency may differ: the state does not hold them). The Redis
 * store's decide.lua writes a refused key back under a new policy only when they are not the
 * same; the memory store takes the same rule, so the two agree on the key's instant.
 */
export function sameRecords(from: Policy, to: Policy): boolean {
  if (from.limits.length !== to.limits.length) return false;
  return to.limits.every((l) =>
    from.limits.some(
      (o) =>
        o.name === l.name &&
        o.algorithm === l.algorithm &&
        o.limit === l.limit &&
        o.intervalMs === l.intervalMs,
    ),
  );
}

/**
 * restarts tells whether rebasing a state from `from` to `to` drops or starts anew the state of
 * some limit (whether or not it holds anything: a cheap, safe test): a limit of `from` that `to` has not (by name and algorithm), or
 * a window whose interval changed. Grants booked before such a rebase may hold units in a state
 * that is gone, so the stores give them nothing back after it (a new epoch, see `StoreGrant`).
 * Without it, a limit dropped by one change and brought back by the next took refunds of
 * grants made before the drop into its new, empty state.
 */
export function restarts(from: Policy, to: Policy): boolean {
  return from.limits.some((old) => {
    const kept = to.limits.find((l) => l.name === old.name && l.algorithm === old.algorithm);
    return (
      kept === undefined || (old.algorithm !== 'token-bucket' && kept.intervalMs !== old.intervalMs)
    );
  });
}

/**
 * remapMarks carries a grant's marks (see `GrantRecord.marks`) from the policy `from` it was booked
 * under to `to`, by limit name, as {@link rebase} carries the state: a token bucket of the same
 * name and interval keeps the mark, any other limit gets 0 (nothing to give back there).
 * `undefined` when `to` has no token bucket.
 */
export function remapMarks(
  from: Policy,
  to: Policy,
  marks: readonly number[] | undefined,
): number[] | undefined {
  if (!to.limits.some((l) => l.algorithm === 'token-bucket')) return undefined;
  return to.limits.map((limit) => {
    // Stryker disable next-line ConditionalExpression: a window's mark is always 0 (decide, marksOf and settle mark token buckets only), so reading it gives 0 as well
    if (limit.algorithm !== 'token-bucket' || marks === undefined) return 0;
    const i = from.limits.findIndex(
      // Stryker disable next-line ConditionalExpression: names are unique in a policy, and a window of that name has mark 0 (decide, marksOf and settle mark token buckets only)
      (l) => l.name === limit.name && l.algorithm === limit.algorithm,
    );
    return i >= 0 && from.limits[i]!.intervalMs === limit.intervalMs ? (marks[i] ?? 0) : 0;
  });
}
