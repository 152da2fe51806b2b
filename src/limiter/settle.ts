/**
 * Refund, extra charge and release: what happens to a grant after the call. Exact in integers.
 *
 * A grant of 1,200 tokens settled at 950 gives back 250 to the entry it booked (for windows, to
 * the window it was booked in, if that window is still open). Settled at 1,500 it charges 300
 * more at `now`: the key may go into debt, and later requests wait it out.
 */
import { advance, algorithmOf } from './advance.js';
import type { GrantRecord, KeyState, Ms, Policy, Units } from './types.js';

/**
 * refund gives back what `grant` booked (the slot is not released: see {@link release}).
 * Grant then refund at the same instant gives back `advance(state, now)` exactly.
 */
export function refund(policy: Policy, state: KeyState, grant: GrantRecord, now: Ms): KeyState {
  return adjust(policy, state, grant, grant.units.map(() => 0), now);
}

/**
 * settle moves `grant` from the units it booked to `actual`: each limit gets back the difference
 * when `actual` is lower, and is charged the difference at `now` when it is higher. It returns the
 * new state and the grant as it now stands, so a later settle or refund starts from `actual`.
 */
export function settle(
  policy: Policy,
  state: KeyState,
  grant: GrantRecord,
  actual: Units,
  now: Ms,
): { state: KeyState; grant: GrantRecord } {
  return { state: adjust(policy, state, grant, actual, now), grant: { ...grant, units: actual } };
}

/** release frees the concurrency slot `grant` holds; a grant without one changes nothing. */
export function release(state: KeyState, grant: GrantRecord): KeyState {
  if (!grant.slot || state.inFlight === 0) return state;
  return { at: state.at, inFlight: state.inFlight - 1, limits: state.limits };
}

function adjust(policy: Policy, state: KeyState, grant: GrantRecord, actual: Units, now: Ms): KeyState {
  const s = advance(policy, state, now);
  const limits = policy.limits.map((limit, i) => {
    const alg = algorithmOf(limit);
    const delta = actual[i]! - grant.units[i]!;
    const ls = s.limits[i]!;
    if (delta < 0) return alg.refund(limit, ls, -delta, grant.at, s.at);
    if (delta > 0) return alg.book(limit, ls, delta, s.at);
    return ls;
  });
  return { at: s.at, inFlight: s.inFlight, limits };
}
