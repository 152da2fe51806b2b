/**
 * Token bucket, kept exactly in integers (the GCRA idea: track how far ahead of `now` the bucket
 * is booked, rather than a float count of tokens).
 *
 * A limit of 10 per second with burst 20 is a bucket of 20 units that refills 10 units per
 * 1,000 ms. To keep every amount an integer, one unit of cost is stored as `intervalMs` scaled
 * units and the bucket drains `limit` scaled units per millisecond: here a unit is 1,000 scaled,
 * the bucket holds 20,000 and drains 10 per ms. At t = 0 a cost of 20 fills it (`used` = 20,000).
 * At t = 250 it has drained 2,500, so `used` = 17,500 and 2 units fit (2,000 ≤ 2,500). A cost of 5
 * needs 5,000 free: it waits ⌈(17,500 + 5,000 − 20,000) / 10⌉ = 250 ms more.
 *
 * Refunds. The bucket is a queue: each booking joins the back, refill drains the front, and a
 * refund takes the grant's part out of the queue (what is behind it moves forward). A refund
 * gives back at most what the grant still holds: once its part has drained, the capacity has
 * already come back and may have been booked again, and giving it twice would over-admit. To know
 * that without keeping the queue, a grant keeps a mark per limit, `m = used + refunded` right
 * after it was booked (the end of its part, plus the refund counter then). At `now`, its part ends
 * at most at `m − refunded − limit × (now − at)`: the drain since, and every refund since, moved
 * it forward (counting refunds of grants behind it too is what makes this a bound rather than
 * exact). The refund gives back `min(units × intervalMs, used, that end)`, and nothing when the
 * bucket was empty since the grant (`at < emptiedAt`: its part has fully drained).
 *
 * With 1 per second, burst 1 (one unit is 1,000 scaled, drains 1 per ms): A at t = 0 (mark
 * 1,000); at t = 1000 the bucket has drained, B is booked (emptiedAt 1000); a refund of A then
 * gives back nothing (0 < 1000), so a third request at 1000 is refused. Had A been refunded at
 * t = 400 instead, its part would end at 1,000 − 400 = 600: 600 back, `used` 0.
 *
 * Guarantee: over any span of `d` ms the bucket admits at most `burst + limit × d / intervalMs`
 * units, counting each grant net of what a refund gave back at the instant it was booked; a cost
 * that fits is never refused. A refund right after its booking, with nothing in between, gives
 * back exactly what it booked and restores the state exactly.
 */
import type { LimitAlgorithm } from './algorithm.js';
import type { Limit, Ms, TokenBucketState } from './types.js';
import { MAX_SCALED } from './validate.js';

const EMPTY: TokenBucketState = Object.freeze({ used: 0 });

/** A non-empty state; `emptiedAt` is left out when there is no cutoff. */
function filled(used: number, refunded: number, emptiedAt: Ms | undefined): TokenBucketState {
  return emptiedAt === undefined ? { used, refunded } : { used, refunded, emptiedAt };
}

/**
 * The bucket's `used` drained from `from` to `now` (0 once empty): the arithmetic of `advance` on
 * plain numbers, shared with the in-place decision (inPlace.ts).
 */
export function drainedUsed(limit: Limit, used: number, from: Ms, now: Ms): number {
  // Stryker disable next-line ConditionalExpression,LogicalOperator,EqualityOperator: a shortcut: used 0 drains to 0, and no caller passes now < from (at now = from nothing drains)
  if (used === 0 || now <= from) return used;
  const drained = limit.limit * (now - from);
  // Stryker disable next-line EqualityOperator: drained = used gives used − drained = 0 as well
  return drained >= used ? 0 : used - drained;
}

/** Ms until `units` fit a bucket holding `used` (scaled): `waitMs` on plain numbers. */
export function waitForUsed(limit: Limit, used: number, units: number): Ms {
  const over = used + units * limit.intervalMs - limit.capacity * limit.intervalMs;
  // Stryker disable next-line EqualityOperator: over = 0 gives ⌈0 / limit⌉ = 0 as well
  return over <= 0 ? 0 : Math.ceil(over / limit.limit);
}

/** tokenBucket is the token-bucket {@link LimitAlgorithm}. */
export const tokenBucket: LimitAlgorithm<TokenBucketState> = {
  init: () => EMPTY,

  advance(limit, s, from, now) {
    if (s.used === 0 || now <= from) return s;
    const used = drainedUsed(limit, s.used, from, now);
    return used === 0 ? EMPTY : filled(used, s.refunded ?? 0, s.emptiedAt);
  },

  waitMs: (limit, s, units) => waitForUsed(limit, s.used, units),

  book(limit, s, units, now) {
    if (units === 0) return s;
    const add = units * limit.intervalMs;
    // Booking into an empty bucket: every grant before holds nothing, and the counter starts over.
    if (s.used === 0) return { used: add, refunded: 0, emptiedAt: now };
    return filled(s.used + add, s.refunded ?? 0, s.emptiedAt);
  },

  mark: (_limit, s) => s.used + (s.refunded ?? 0),

  // An extra charge joins the back of the queue, not the grant's part: the mark stays. It is only
  // ever lowered, to `used + refunded` now carried back to the grant's instant, so the grant's
  // part can never be taken to end beyond the back of the queue (a mark from before the bucket
  // last emptied at that very instant would).
  remark: (limit, s, mark, grantAt, now) =>
    Math.min(mark, s.used + (s.refunded ?? 0) + limit.limit * (now - grantAt)),

  refund(limit, s, units, grantAt, now, mark = 0, whole = false) {
    if (units === 0 || s.used === 0) return s;
    // Booked before the bucket was last empty (or, from a clock that stepped back across a key
    // that was dropped, after `now`): its part has drained.
    if ((s.emptiedAt !== undefined && grantAt < s.emptiedAt) || grantAt > now) return s;
    const refunded = s.refunded ?? 0;
    const ahead = mark - refunded; // the end of its part, less every refund since its booking
    const drained = limit.limit * (now - grantAt);
    if (drained >= ahead) return s;
    const end = ahead - drained;
    const back = Math.min(units * limit.intervalMs, s.used, end);
    if (back === s.used) return EMPTY;
    // The whole grant at the back of the queue: nothing behind it moves, so the counter stays (a
    // refund right after the booking restores the state exactly).
    if (whole && end >= s.used && back === units * limit.intervalMs) {
      return filled(s.used - back, refunded, s.emptiedAt);
    }
    const total = refunded + back;
    // Keep every mark below 2^53: past MAX_SCALED refunded in one busy spell (months of traffic),
    // start the counter over and let every grant so far give back nothing.
    if (total > MAX_SCALED) return { used: s.used - back, refunded: 0, emptiedAt: now + 1 };
    return filled(s.used - back, total, s.emptiedAt);
  },

  read(limit, s) {
    const free = limit.capacity * limit.intervalMs - s.used;
    return {
      // Stryker disable next-line EqualityOperator: free = 0 gives ⌊0 / interval⌋ = 0 as well
      remaining: free <= 0 ? 0 : Math.floor(free / limit.intervalMs),
      resetMs: Math.ceil(s.used / limit.limit),
    };
  },

  isFull: (_limit: Limit, s: TokenBucketState) => s.used === 0,
};
