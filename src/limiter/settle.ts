/**
 * Refund, extra charge and release: what happens to a grant after the call. Exact in integers.
 *
 * A grant of 1,200 tokens settled at 950 gives back 250 to the entry it booked (for windows, to
 * the window it was booked in, if that window is still open). Settled at 1,500 it charges 300
 * more at `now`: the key may go into debt, and later requests wait it out.
 */
import { advance, algorithmOf } from './advance.js';
import type { GrantRecord, KeyState, Ms, Policy, Units } from './types.js';
import { checkUnits } from './validate.js';

/**
 * refund gives back what `grant` booked and still holds (the slot is not released: see
 * {@link release}). A token bucket gives back only the part of the grant that has not drained yet
 * (see tokenBucket.ts). Grant then refund with nothing in between gives back
 * `advance(state, now)` exactly.
 *
 * @throws InvalidArgumentError when the grant's units do not have one amount per limit of `policy`.
 */
export function refund(policy: Policy, state: KeyState, grant: GrantRecord, now: Ms): KeyState {
  checkUnits(policy, grant.units, 'refund', 'grant.units');
  return adjust(
    policy,
    state,
    grant,
    grant.units.map(() => 0),
    now,
  ).state;
}

/**
 * settle moves `grant` from the units it booked to `actual`: each limit gets back the difference
 * when `actual` is lower (at most what the grant still holds there), and is charged the
 * difference at `now` when it is higher. It returns the new state and the grant as it now stands
 * (its units are `actual`), so a later settle or refund starts from there.
 *
 * @throws InvalidArgumentError when the grant's units or `actual` do not have one amount per limit
 *   of `policy`.
 */
export function settle(
  policy: Policy,
  state: KeyState,
  grant: GrantRecord,
  actual: Units,
  now: Ms,
): { state: KeyState; grant: GrantRecord } {
  checkUnits(policy, grant.units, 'settle', 'grant.units');
  checkUnits(policy, actual, 'settle', 'actual');
  const { state: next, marks } = adjust(policy, state, grant, actual, now);
  return { state: next, grant: { ...grant, units: actual, marks } };
}

/** release frees the concurrency slot `grant` holds; a grant without one changes nothing. */
export function release(state: KeyState, grant: GrantRecord): KeyState {
  if (!grant.slot || state.inFlight === 0) return state;
  return { at: state.at, inFlight: state.inFlight - 1, limits: state.limits };
}

function adjust(
  policy: Policy,
  state: KeyState,
  grant: GrantRecord,
  actual: Units,
  now: Ms,
): { state: KeyState; marks: readonly number[] | undefined } {
  const s = advance(policy, state, now);
  let marks = grant.marks;
  const limits = policy.limits.map((limit, i) => {
    const alg = algorithmOf(limit);
    const delta = actual[i]! - grant.units[i]!;
    const ls = s.limits[i]!;
    const mark = marks?.[i] ?? 0;
    // Stryker disable next-line EqualityOperator: a refund of 0 units returns the state itself
    if (delta < 0) return alg.refund(limit, ls, -delta, grant.at, s.at, mark, actual[i] === 0);
    if (delta > 0) {
      const after = alg.book(limit, ls, delta, s.at);
      if (alg.remark !== undefined && marks !== undefined) {
        const m = alg.remark(limit, after, mark, grant.at, s.at);
        // Stryker disable next-line ConditionalExpression: copying the marks with the same mark changes no value (an allocation saved)
        if (m !== mark) {
          const next = marks.slice();
          next[i] = m;
          marks = next;
        }
      }
      return after;
    }
    return ls;
  });
  return { state: { at: s.at, inFlight: s.inFlight, limits }, marks };
}
