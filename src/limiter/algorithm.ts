/**
 * The shape every algorithm file exports, so `decide` can combine any mix of limits. Every
 * function is pure: it returns a new state (or the same one when nothing changes) and never
 * mutates its argument.
 */
import type { Limit, LimitState, Ms } from './types.js';

/** LimitAlgorithm is one algorithm's arithmetic over its own state shape `S`. */
export interface LimitAlgorithm<S extends LimitState> {
  /** The state of a limit that has booked nothing, at instant `now`. */
  init(limit: Limit, now: Ms): S;
  /** Refill and expiry for the time from `from` to `now` (`now >= from`). */
  advance(limit: Limit, s: S, from: Ms, now: Ms): S;
  /** Ms from `now` until `units` fit, if nothing else happens; 0 when they fit now. */
  waitMs(limit: Limit, s: S, units: number, now: Ms): Ms;
  /** Book `units` at `now`. The caller has checked that they fit (or is charging debt). */
  book(limit: Limit, s: S, units: number, now: Ms): S;
  /** Give back at most `units` that a grant booked at `grantAt`; what has expired is not given. */
  refund(limit: Limit, s: S, units: number, grantAt: Ms, now: Ms): S;
  /** Units that fit now, and ms until full capacity. */
  read(limit: Limit, s: S, now: Ms): { remaining: number; resetMs: Ms };
  /** Whether `s` is back at full capacity, i.e. the same as `init` for every later instant. */
  isFull(limit: Limit, s: S): boolean;
}
