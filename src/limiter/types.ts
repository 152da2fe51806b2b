/**
 * Plain, JSON-safe data types of the decision core. Nothing here holds a function or a class, so
 * a key's state can be snapshotted, sent to Redis or compared with `toEqual`.
 */

/** Milliseconds, an integer. Absolute instants are milliseconds since the epoch of the clock. */
export type Ms = number;

/** A duration: integer milliseconds, or a string such as `'500ms'`, `'1s'`, `'1 m'`, `'1h'`, `'1d'`. */
export type Duration = number | `${number}${DurationUnit}` | `${number} ${DurationUnit}`;

/** The units a {@link Duration} string may use. */
export type DurationUnit = 'ms' | 's' | 'm' | 'h' | 'd';

/**
 * The algorithms a limit can use.
 * - `token-bucket`: a bucket of `burst` units refilled at `limit` per `interval`, kept exactly in
 *   integers (GCRA-equivalent).
 * - `sliding-window`: an exact log; no window of length `interval` admits more than `limit`.
 * - `fixed-window`: windows aligned to multiples of `interval`, each admits `limit`.
 */
export type AlgorithmName = 'token-bucket' | 'sliding-window' | 'fixed-window';

/** The dimensions tollgate names; any other string is a custom dimension. */
export type KnownDimension = 'requests' | 'tokens' | 'inputTokens' | 'outputTokens';

/** A dimension of cost: one of {@link KnownDimension} or any custom name. */
export type Dimension = KnownDimension | (string & {});

/**
 * LimitSpec is one limit as a user writes it: `limit` units of `dimension` per `interval`.
 *
 * @example
 * { limit: 90_000, interval: '1m', dimension: 'tokens' }
 */
export interface LimitSpec {
  /** Units admitted per interval. A positive integer. */
  readonly limit: number;
  /** The interval, in ms or as a {@link Duration} string. Positive, at most 366 days. */
  readonly interval: Duration;
  /** What the limit counts. @default 'requests' */
  readonly dimension?: Dimension;
  /**
   * Token bucket only: the most that can be taken at once (the bucket size). A positive integer.
   * @default limit
   */
  readonly burst?: number;
  /** A name for errors, stats and refusals. Unique per policy. @default `${dimension}/${interval}` */
  readonly name?: string;
  /** The algorithm of this limit, overriding the policy's. */
  readonly algorithm?: AlgorithmName;
}

/**
 * PolicySpec is the set of limits one key must stay under, all at once.
 *
 * @example
 * { limits: [{ limit: 10, interval: '1s' }, { limit: 90_000, interval: '1m', dimension: 'tokens' }],
 *   concurrency: 8 }
 */
export interface PolicySpec {
  /** The limits; at least one, unless `concurrency` is set. */
  readonly limits: readonly LimitSpec[];
  /** The algorithm of limits that do not name one. @default 'token-bucket' */
  readonly algorithm?: AlgorithmName;
  /** The most grants of a key held at once (until released). A positive integer. @default unlimited */
  readonly concurrency?: number;
}

/** Limit is a validated {@link LimitSpec}: every field resolved, the interval in ms. */
export interface Limit {
  readonly name: string;
  readonly dimension: string;
  readonly algorithm: AlgorithmName;
  /** Units admitted per interval. */
  readonly limit: number;
  readonly intervalMs: Ms;
  /** The most one grant can take: `burst` for a token bucket, `limit` for windows. */
  readonly capacity: number;
}

/** Policy is a validated {@link PolicySpec}; build one with `compilePolicy`. */
export interface Policy {
  readonly limits: readonly Limit[];
  /** Every dimension some limit counts, `requests` included. */
  readonly dimensions: readonly string[];
  /** The most grants held at once, or `null` for no concurrency limit. */
  readonly concurrency: number | null;
}

/** A cost as a user writes it: units per dimension. `requests` defaults to 1. */
export type CostSpec = Readonly<Partial<Record<Dimension, number>>>;

/** Units per limit, in the order of `policy.limits`: a cost compiled against one policy. */
export type Units = readonly number[];

/**
 * Token bucket state. `used` is the bucket's fill in scaled units (one unit of cost is
 * `intervalMs` scaled units, and the bucket drains `limit` scaled units per ms), so refill and
 * refund stay exact integers. It is at most `capacity × intervalMs`, unless an extra charge from
 * `settle` put the key in debt.
 *
 * The bucket is a queue: what is booked joins the back, refill drains the front, and a refund
 * takes a grant's part out of the middle (see tokenBucket.ts). Two counters let a refund give
 * back no more than the grant still holds. An empty bucket has neither (it is `{ used: 0 }`).
 */
export interface TokenBucketState {
  readonly used: number;
  /**
   * Scaled units given back by refunds since the bucket was last empty (those refunds moved the
   * grants behind them forward). Absent: 0.
   */
  readonly refunded?: number;
  /**
   * Grants booked before this instant hold nothing in the bucket: it is the instant a booking
   * last found the bucket empty (or, after a policy change that makes old marks meaningless, a
   * millisecond after that change). Absent: no such cutoff.
   */
  readonly emptiedAt?: Ms;
}

/**
 * Sliding window state. `log` holds pairs `[at, cost, at, cost, …]` with strictly increasing
 * `at`, one pair per millisecond that booked something; `used` is the sum of the costs in `log`.
 * An entry counts while `now < at + intervalMs`.
 */
export interface SlidingWindowState {
  readonly used: number;
  readonly log: readonly number[];
}

/**
 * Fixed window state. `start` is a multiple of `intervalMs`, the start of the current window;
 * `used` is what that window has booked (above `limit` only when `settle` charged extra, and then
 * the excess carries into the next windows).
 */
export interface FixedWindowState {
  readonly start: Ms;
  readonly used: number;
}

/** The state of one limit, in the shape of its algorithm. */
export type LimitState = TokenBucketState | SlidingWindowState | FixedWindowState;

/**
 * KeyState is everything one key remembers, as plain data.
 * `at` never goes back: it is the latest instant the key was advanced to, and every booking is
 * made at `max(now, at)`, so a clock that steps back cannot re-open capacity.
 */
export interface KeyState {
  readonly at: Ms;
  /** Grants holding a concurrency slot. */
  readonly inFlight: number;
  /** One state per limit, in the order of `policy.limits`. */
  readonly limits: readonly LimitState[];
}

/**
 * GrantRecord is what a grant booked, as the core needs it to refund or settle exactly: the
 * instant it was booked at and the units per limit.
 */
export interface GrantRecord {
  readonly at: Ms;
  readonly units: Units;
  /** Whether the grant holds a concurrency slot. */
  readonly slot: boolean;
  /**
   * Where the grant's units sit in each limit, taken by `decide` when it booked them: one number
   * per limit of the policy, in order. A token bucket's mark is its `used + refunded` right after
   * the booking (the end of the grant's part of the queue, counted so that later refunds can be
   * subtracted); a window limit's is 0 (unused). Absent when the policy has no token bucket. A
   * token bucket gives back nothing to a grant whose mark is 0 or absent.
   */
  readonly marks?: readonly number[] | undefined;
}

/** What one limit looks like at an instant, for stats and headers. */
export interface LimitReading {
  readonly name: string;
  readonly dimension: string;
  readonly algorithm: AlgorithmName;
  readonly limit: number;
  readonly capacity: number;
  /** Units that fit now. 0 while the key is in debt. */
  readonly remaining: number;
  /** Ms until the limit is back to full capacity if nothing else is booked. */
  readonly resetMs: Ms;
}
