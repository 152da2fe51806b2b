/**
 * read reports every limit of a key at an instant: window-aware, so time that passed since the
 * last booking counts (a read never shows a stale count).
 */
import { advance, algorithmOf } from './advance.js';
import type { KeyState, LimitReading, Ms, Policy } from './types.js';

/**
 * read gives one {@link LimitReading} per limit of `policy` as of `now`, and the slots held.
 *
 * @example
 * // 1 per second; one grant at t=0; at t=1500 the request is back:
 * read(policy, state, 1500).limits[0].remaining // 1
 */
export function read(
  policy: Policy,
  state: KeyState,
  now: Ms,
): { limits: LimitReading[]; inFlight: number } {
  const s = advance(policy, state, now);
  const limits = policy.limits.map((limit, i): LimitReading => {
    const { remaining, resetMs } = algorithmOf(limit).read(limit, s.limits[i]!, s.at);
    const { name, dimension, algorithm, capacity } = limit;
    return { name, dimension, algorithm, limit: limit.limit, capacity, remaining, resetMs };
  });
  return { limits, inFlight: s.inFlight };
}
