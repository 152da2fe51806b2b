/**
 * decide is the one decision behind tryAcquire, acquire and reserve: start reading here.
 *
 * It refills every limit of the key up to `now`, then books the cost against all of them and a
 * concurrency slot, or against none. The runtime differs only in what it does with a refusal:
 * tryAcquire returns it, acquire and reserve queue the caller and ask again at `retryAfterMs`.
 */
import { advance, algorithmOf } from './advance.js';
import type { GrantRecord, KeyState, LimitState, Ms, Policy, Units } from './types.js';
import { checkUnits } from './validate.js';

/** The name a refusal gives when the key's concurrency slots are all held. */
export const CONCURRENCY = 'concurrency';

/** Granted: the new state, and what was booked (keep it to settle or refund). */
export interface Granted {
  readonly ok: true;
  readonly state: KeyState;
  readonly grant: GrantRecord;
}

/** Refused: `state` is the state passed in, untouched. */
export interface Refused {
  readonly ok: false;
  readonly state: KeyState;
  /**
   * Ms until the same cost fits if nothing else happens. When `limit` is `'concurrency'` it is a
   * lower bound: a slot frees only when a grant is released.
   */
  readonly retryAfterMs: Ms;
  /** Name of the limit that refused (the one with the longest wait), or `'concurrency'`. */
  readonly limit: string;
}

/** The outcome of {@link decide}. */
export type Decision = Granted | Refused;

/**
 * decide admits `units` (one amount per limit of `policy`, from `compileCost`) at `now`, against
 * every limit, all-or-nothing. A refusal returns `state` itself: a refused request costs nothing.
 * `slot` says whether the grant takes a concurrency slot (it does whenever the policy has a
 * concurrency limit, unless the caller already holds one).
 *
 * @throws InvalidArgumentError when `units` does not have one amount per limit of `policy`.
 * @example
 * const d = decide(policy, state, [1, 1200], now);
 * if (d.ok) state = d.state; else console.log(`retry in ${d.retryAfterMs} ms (${d.limit})`);
 */
export function decide(
  policy: Policy,
  state: KeyState,
  units: Units,
  now: Ms,
  slot = policy.concurrency !== null,
): Decision {
  checkUnits(policy, units, 'decide');
  const s = advance(policy, state, now); // Refill; `s.at` is max(now, state.at)
  const t = s.at;
  const { limits } = policy;

  // Decide: the longest wait over all limits is when the whole cost fits.
  let retryAfterMs = 0;
  let by = -1;
  for (let i = 0; i < limits.length; i++) {
    const limit = limits[i]!;
    const wait = algorithmOf(limit).waitMs(limit, s.limits[i]!, units[i]!, t);
    if (wait > retryAfterMs) {
      retryAfterMs = wait;
      by = i;
    }
  }
  if (slot && policy.concurrency !== null && s.inFlight >= policy.concurrency) {
    return { ok: false, state, retryAfterMs, limit: CONCURRENCY };
  }
  if (by >= 0) return { ok: false, state, retryAfterMs, limit: limits[by]!.name };

  // Commit: book every limit, and take the grant's marks (token buckets only; see GrantRecord).
  // advance() made a fresh array when some limit refilled: book into it rather than another.
  const booked: LimitState[] =
    // Stryker disable next-line ConditionalExpression,ArrayDeclaration: which array is written changes no value (an allocation saved)
    s.limits !== state.limits ? (s.limits as LimitState[]) : new Array<LimitState>(limits.length);
  let marks: number[] | undefined;
  for (let i = 0; i < limits.length; i++) {
    const limit = limits[i]!;
    const alg = algorithmOf(limit);
    const after = alg.book(limit, s.limits[i]!, units[i]!, t);
    booked[i] = after;
    // Built by push, so it stays a packed array (cheaper than a pre-sized one on the hot path).
    if (alg.mark !== undefined) {
      if (marks === undefined) {
        marks = [];
        for (let j = 0; j < i; j++) marks.push(0);
      }
      marks.push(alg.mark(limit, after));
    } else if (marks !== undefined) {
      marks.push(0);
    }
  }
  return {
    ok: true,
    state: { at: t, inFlight: slot ? s.inFlight + 1 : s.inFlight, limits: booked },
    grant: marks === undefined ? { at: t, units, slot } : { at: t, units, slot, marks },
  };
}
