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
 * Guarantee: over any span of `d` ms the bucket admits at most `burst + limit × d / intervalMs`
 * units, and a cost that fits is never refused. A refund subtracts exactly what the grant added,
 * clamped at empty: capacity that has already refilled is not given twice.
 */
import type { LimitAlgorithm } from './algorithm.js';
import type { Limit, TokenBucketState } from './types.js';

const EMPTY: TokenBucketState = Object.freeze({ used: 0 });

/** tokenBucket is the token-bucket {@link LimitAlgorithm}. */
export const tokenBucket: LimitAlgorithm<TokenBucketState> = {
  init: () => EMPTY,

  advance(limit, s, from, now) {
    if (s.used === 0 || now <= from) return s;
    const drained = limit.limit * (now - from);
    return drained >= s.used ? EMPTY : { used: s.used - drained };
  },

  waitMs(limit, s, units) {
    const over = s.used + units * limit.intervalMs - limit.capacity * limit.intervalMs;
    return over <= 0 ? 0 : Math.ceil(over / limit.limit);
  },

  book(limit, s, units) {
    return units === 0 ? s : { used: s.used + units * limit.intervalMs };
  },

  refund(limit, s, units) {
    const back = units * limit.intervalMs;
    if (back === 0 || s.used === 0) return s;
    return back >= s.used ? EMPTY : { used: s.used - back };
  },

  read(limit, s) {
    const free = limit.capacity * limit.intervalMs - s.used;
    return {
      remaining: free <= 0 ? 0 : Math.floor(free / limit.intervalMs),
      resetMs: Math.ceil(s.used / limit.limit),
    };
  },

  isFull: (_limit: Limit, s: TokenBucketState) => s.used === 0,
};

