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
  /**
   * The mark a grant keeps of a booking (see `GrantRecord.marks`), read from the state right after
   * `book`. Only algorithms whose refunds need one have it; a grant's mark is 0 for the others.
   */
  mark?(limit: Limit, s: S): number;
  /**
   * The grant's mark after an extra charge for it was booked at `now` (`s` is the state after
   * that booking). Only algorithms that have `mark` have it.
   */
  remark?(limit: Limit, s: S, mark: number, grantAt: Ms, now: Ms): number;
  /**
   * Give back at most `units` of what a grant booked at `grantAt` still holds; what has expired or
   * refilled is not given. `mark` is the grant's mark for this limit (0 when it has none), and
   * `whole` says that `units` are all the units the grant holds in this limit (a cancel, or a
   * settle to 0). Algorithms without `mark` ignore both.
   */
  refund(
    limit: Limit,
    s: S,
    units: number,
    grantAt: Ms,
    now: Ms,
    mark?: number,
    whole?: boolean,
  ): S;
  /** Units that fit now, and ms until full capacity. */
  read(limit: Limit, s: S, now: Ms): { remaining: number; resetMs: Ms };
  /** Whether `s` is back at full capacity, i.e. the same as `init` for every later instant. */
  isFull(limit: Limit, s: S): boolean;
}
