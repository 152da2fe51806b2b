/**
 * The store conformance table: plain data, run by `runConformance.ts` against every Store (the
 * memory store now, Redis later). Every expected number is derived by hand from the documented
 * semantics in `src/limiter/` (algorithm file headers, `decide.ts`, `settle.ts`, `read.ts`), never
 * printed from the code. Each row carries a comment that shows the arithmetic.
 *
 * Token bucket arithmetic used below (tokenBucket.ts): a limit of L per I ms with capacity C (burst,
 * default L) keeps `used` in scaled units; one unit of cost is I scaled, the bucket drains L scaled
 * per ms. waitMs = ⌈(used + u·I − C·I) / L⌉, remaining = ⌊(C·I − used) / I⌋, resetMs = ⌈used / L⌉.
 * A refund gives back at most what the grant still holds: a grant booked at t0 with mark m (used +
 * refunded right after its booking) ends, at t, at m − refunded − L·(t − t0), and gives back
 * min(asked·I, used, that), nothing when it was booked before the bucket was last found empty by a
 * booking (emptiedAt); `refunded` grows by what is given back, unless the whole grant is given back
 * from the back of the queue (its end ≥ used).
 */
import type { BatchMode } from '../../src/store.js';
import type { CostSpec, PolicySpec } from '../../src/limiter/types.js';

/** What one decision must be. */
export type Outcome =
  | { readonly ok: true }
  | { readonly ok: false; readonly retryAfterMs: number; readonly limit: string };

/**
 * An acquire the runtime refuses before any store sees it (a cost above a limit's capacity): the
 * error's `code`. Only for single acquires; the rows after it show that nothing changed.
 */
export interface Throws {
  readonly throws: string;
}

interface At {
  /** Absolute instant in ms; steps of a case are in non-decreasing order (see `clockStepsBack`). */
  readonly at: number;
  /** The key of this step (default: the case's key). Grant steps use the grant's own key. */
  readonly key?: string;
}

export interface AcquireStep extends At {
  readonly acquire: CostSpec;
  readonly expect: Outcome | Throws;
  /** Name the grant for later settle / cancel / release steps. */
  readonly as?: string;
  /** Whether the request takes a slot. Default: the policy has a concurrency limit. */
  readonly slot?: boolean;
}
export interface SettleStep extends At {
  readonly settle: string;
  /** The full actual cost (compiled uncapped, as settle does). */
  readonly actual: CostSpec;
}
export interface CancelStep extends At {
  readonly cancel: string;
}
export interface ReleaseStep extends At {
  readonly release: string;
}
export interface ReadStep extends At {
  readonly read: {
    readonly remaining: Readonly<Record<string, number>>;
    readonly resetMs?: Readonly<Record<string, number>>;
    readonly inFlight?: number;
  };
}
export interface ResetStep extends At {
  readonly reset: true;
}
export interface SetPolicyStep extends At {
  /** Later steps use this policy; the store rebases the key's state on first use. */
  readonly setPolicy: PolicySpec;
}
export interface BatchStep extends At {
  readonly batch: readonly CostSpec[];
  readonly mode: BatchMode;
  /** One outcome per request decided ('queue' stops after the first refusal). */
  readonly expect: readonly Outcome[];
  /** Names for the granted requests, by position (`null`: unnamed). */
  readonly as?: readonly (string | null)[];
  readonly slot?: boolean;
}

export type Step =
  | AcquireStep
  | SettleStep
  | CancelStep
  | ReleaseStep
  | ReadStep
  | ResetStep
  | SetPolicyStep
  | BatchStep;

export interface ConformanceCase {
  readonly name: string;
  readonly policy: PolicySpec;
  /** The key of every step that names none (default: a fresh key per case). */
  readonly key?: string;
  /**
   * Steps may go back in time (a clock that steps back); otherwise they must be in non-decreasing
   * order. @default false
   */
  readonly clockStepsBack?: boolean;
  readonly steps: readonly Step[];
}

const OK = { ok: true } as const;
/** A refusal by `limit` with `retryAfterMs`. */
const no = (limit: string, retryAfterMs: number): Outcome => ({ ok: false, retryAfterMs, limit });

/** 1 request per second, token bucket: one unit is 1,000 scaled, drains 1 per ms. */
const ONE_PER_SECOND: PolicySpec = { limits: [{ name: 'rps', limit: 1, interval: '1s' }] };
/** 100 tokens per second, token bucket: one token is 1,000 scaled, drains 100 per ms (1 token / 10 ms). */
const TOKENS_PER_SECOND: PolicySpec = {
  limits: [{ name: 'tps', limit: 100, interval: '1s', dimension: 'tokens' }],
};

/**
 * Steps proving that `keys` never share state under {@link ONE_PER_SECOND}: each key is granted
 * once at 0 (a shared state would refuse a later key here), then each is refused with the full
 * 1000 ms wait (a shared state would show a longer one), and reads as its own full bucket.
 */
function isolated(keys: readonly string[]): Step[] {
  return [
    ...keys.map((key): Step => ({ at: 0, key, acquire: {}, expect: OK })),
    ...keys.map((key): Step => ({ at: 0, key, acquire: {}, expect: no('rps', 1000) })),
    ...keys.map((key): Step => ({
      at: 0,
      key,
      read: { remaining: { rps: 0 }, resetMs: { rps: 1000 } },
    })),
    ...keys.map((key): Step => ({ at: 1000, key, acquire: {}, expect: OK })),
  ];
}

export const cases: ConformanceCase[] = [
  // ───────────────────────── (a) seed scenarios ─────────────────────────
  {
    // Seed: 1/s. After the grant at 0, used = 1000 (remaining 0, resetMs ⌈1000/1⌉ = 1000). At 500
    // used = 500, a unit waits ⌈(500 + 1000 − 1000)/1⌉ = 500. At 1500 the bucket has long drained:
    // the read shows remaining 1 (never a stale count) and the next request is admitted.
    name: 'seed: 1/s, the next request is admitted 1.5 s later and reads show remaining 1',
    policy: ONE_PER_SECOND,
    steps: [
      { at: 0, acquire: {}, expect: OK },
      { at: 0, read: { remaining: { rps: 0 }, resetMs: { rps: 1000 } } },
      { at: 500, acquire: {}, expect: no('rps', 500) },
      { at: 1500, read: { remaining: { rps: 1 }, resetMs: { rps: 0 } } },
      { at: 1500, acquire: {}, expect: OK },
      { at: 1500, read: { remaining: { rps: 0 }, resetMs: { rps: 1000 } } },
    ],
  },
  {
    // Seed: multi-limit leak. perSecond 10/s (unit 1000, drains 10/ms), perMinute 2/min (unit
    // 60,000, drains 2/ms, capacity 120,000). Two grants fill perMinute; the third is refused by
    // perMinute with ⌈(120,000 + 60,000 − 120,000)/2⌉ = 30,000 ms and must charge perSecond
    // nothing: perSecond stays at 2 used (remaining 8, resetMs ⌈2000/10⌉ = 200). At 100:
    // perSecond used 2000 − 1000 = 1000 (remaining 9, resetMs 100), perMinute 120,000 − 200 =
    // 119,800, wait ⌈59,800/2⌉ = 29,900. At 30,000 perMinute has drained 60,000: one more fits.
    name: 'seed: a refusal by a later limit charges no earlier limit (all-or-nothing)',
    policy: {
      limits: [
        { name: 'perSecond', limit: 10, interval: '1s' },
        { name: 'perMinute', limit: 2, interval: '1m' },
      ],
    },
    steps: [
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: no('perMinute', 30_000) },
      { at: 0, acquire: {}, expect: no('perMinute', 30_000) },
      {
        at: 0,
        read: {
          remaining: { perSecond: 8, perMinute: 0 },
          resetMs: { perSecond: 200, perMinute: 60_000 },
        },
      },
      { at: 100, acquire: {}, expect: no('perMinute', 29_900) },
      {
        at: 100,
        read: {
          remaining: { perSecond: 9, perMinute: 0 },
          resetMs: { perSecond: 100, perMinute: 59_900 },
        },
      },
      { at: 30_000, acquire: {}, expect: OK },
      { at: 30_000, acquire: {}, expect: no('perMinute', 30_000) },
    ],
  },
  {
    // Seed: settle up. tps 100/s. Estimate 50 at 0 (used 50,000), actual 250: 200 more charged at
    // 0, used 250,000 > capacity 100,000: debt, remaining 0, resetMs ⌈250,000/100⌉ = 2500. At 1000
    // used 150,000: 10 tokens wait ⌈(150,000 + 10,000 − 100,000)/100⌉ = 600. At 1600 used 90,000,
    // 10 tokens fit exactly (100,000), leaving resetMs ⌈100,000/100⌉ = 1000.
    name: 'seed: settle above the estimate puts the key in debt and later requests wait it out',
    policy: TOKENS_PER_SECOND,
    steps: [
      { at: 0, acquire: { tokens: 50 }, expect: OK, as: 'g1' },
      { at: 0, settle: 'g1', actual: { tokens: 250 } },
      { at: 0, read: { remaining: { tps: 0 }, resetMs: { tps: 2500 } } },
      { at: 1000, acquire: { tokens: 10 }, expect: no('tps', 600) },
      { at: 1599, acquire: { tokens: 10 }, expect: no('tps', 1) },
      { at: 1600, acquire: { tokens: 10 }, expect: OK },
      { at: 1600, read: { remaining: { tps: 0 }, resetMs: { tps: 1000 } } },
    ],
  },
  {
    // Seed: settle down. tps 100/s. Estimate 80 (used 80,000: remaining 20, resetMs 800), actual
    // 30: exactly 50 back, used 30,000 (remaining 70, resetMs 300). 70 then fit exactly, and one
    // more token waits ⌈(100,000 + 1000 − 100,000)/100⌉ = 10.
    name: 'seed: settle below the estimate refunds exactly the difference',
    policy: TOKENS_PER_SECOND,
    steps: [
      { at: 0, acquire: { tokens: 80 }, expect: OK, as: 'g1' },
      { at: 0, read: { remaining: { tps: 20 }, resetMs: { tps: 800 } } },
      { at: 0, settle: 'g1', actual: { tokens: 30 } },
      { at: 0, read: { remaining: { tps: 70 }, resetMs: { tps: 300 } } },
      { at: 0, acquire: { tokens: 70 }, expect: OK },
      { at: 0, acquire: { tokens: 1 }, expect: no('tps', 10) },
    ],
  },

  // ───────────────────────── (b) token bucket ─────────────────────────
  {
    // tps 100/s. 100 at 0 (used 100,000). At 500 used 50,000; settle to 60 gives back 40 tokens
    // (40,000): used 10,000, remaining ⌊90,000/1000⌋ = 90, resetMs ⌈10,000/100⌉ = 100.
    name: 'token bucket: settle down after a partial refill gives back exactly the difference',
    policy: TOKENS_PER_SECOND,
    steps: [
      { at: 0, acquire: { tokens: 100 }, expect: OK, as: 'g1' },
      { at: 500, read: { remaining: { tps: 50 }, resetMs: { tps: 500 } } },
      { at: 500, settle: 'g1', actual: { tokens: 60 } },
      { at: 500, read: { remaining: { tps: 90 }, resetMs: { tps: 100 } } },
      { at: 500, acquire: { tokens: 90 }, expect: OK },
      { at: 500, acquire: { tokens: 1 }, expect: no('tps', 10) },
    ],
  },
  {
    // tps 100/s. 100 at 0; at 900 used 10,000. Settling to 0 would give back 100,000, but only
    // 10,000 is still booked: the refund is clamped at empty (refilled capacity is not given
    // twice). So 100 fit at 900 and not one more: 1 token waits 10.
    name: 'token bucket: a refund after refill is clamped at empty, never above capacity',
    policy: TOKENS_PER_SECOND,
    steps: [
      { at: 0, acquire: { tokens: 100 }, expect: OK, as: 'g1' },
      { at: 900, settle: 'g1', actual: { tokens: 0 } },
      { at: 900, read: { remaining: { tps: 100 }, resetMs: { tps: 0 } } },
      { at: 900, acquire: { tokens: 100 }, expect: OK },
      { at: 900, acquire: { tokens: 1 }, expect: no('tps', 10) },
    ],
  },
  {
    // tps 100/s. Cancel at 600 of a 100-token grant: used 100,000 − 60,000 = 40,000, the refund of
    // 100,000 clamps at empty. Full 100 then fit, and not 101.
    name: 'token bucket: cancel after a partial refill gives back only what is still booked',
    policy: TOKENS_PER_SECOND,
    steps: [
      { at: 0, acquire: { tokens: 100 }, expect: OK, as: 'g1' },
      { at: 600, cancel: 'g1' },
      { at: 600, read: { remaining: { tps: 100 }, resetMs: { tps: 0 } } },
      { at: 600, acquire: { tokens: 100 }, expect: OK },
      { at: 600, acquire: { tokens: 1 }, expect: no('tps', 10) },
    ],
  },
  {
    // 1/s (unit 1000, drains 1/ms). a at 0 (mark 1000). By 1000 its unit has refilled; b at 1000
    // finds the bucket empty (emptiedAt 1000). Cancelling a at 1000: booked at 0 < 1000, it holds
    // nothing, so nothing comes back (giving it back would let a third request in: b and it both
    // held at 1000 with burst 1). The bucket stays full: remaining 0, resetMs 1000, a unit waits
    // 1000.
    name: 'token bucket: a late refund does not give back capacity that refilled and was re-booked',
    policy: ONE_PER_SECOND,
    steps: [
      { at: 0, acquire: {}, expect: OK, as: 'a' },
      { at: 1000, acquire: {}, expect: OK, as: 'b' },
      { at: 1000, cancel: 'a' },
      { at: 1000, read: { remaining: { rps: 0 }, resetMs: { rps: 1000 } } },
      { at: 1000, acquire: {}, expect: no('rps', 1000) },
    ],
  },
  {
    // tps 100/s. a 50 at 0 (mark 50,000), b 50 at 0 (mark 100,000). At 300 the bucket drained
    // 30,000 (used 70,000): a's part ends at 50,000 − 0 − 30,000 = 20,000. a settled to 0: back
    // min(50,000, 70,000, 20,000) = 20,000 (used 50,000, refunded 20,000): remaining 50, resetMs
    // 500. b settled to 20 asks 30,000; its part ends at 100,000 − 20,000 − 30,000 = 50,000:
    // back 30,000 (used 20,000): remaining 80, resetMs 200. 80 fit, 1 more waits 10.
    name: 'token bucket: a refund gives back only the part of the grant still in the bucket',
    policy: TOKENS_PER_SECOND,
    steps: [
      { at: 0, acquire: { tokens: 50 }, expect: OK, as: 'a' },
      { at: 0, acquire: { tokens: 50 }, expect: OK, as: 'b' },
      { at: 300, settle: 'a', actual: { tokens: 0 } },
      { at: 300, read: { remaining: { tps: 50 }, resetMs: { tps: 500 } } },
      { at: 300, settle: 'b', actual: { tokens: 20 } },
      { at: 300, read: { remaining: { tps: 80 }, resetMs: { tps: 200 } } },
      { at: 300, acquire: { tokens: 80 }, expect: OK },
      { at: 300, acquire: { tokens: 1 }, expect: no('tps', 10) },
    ],
  },
  {
    // 10/s burst 20: unit 1000, capacity 20,000, drains 10/ms. 20 at 0 fill it. A unit waits
    // ⌈(20,000 + 1000 − 20,000)/10⌉ = 100. At 100 one fits (19,000 + 1000). At 150 used 19,500:
    // wait ⌈500/10⌉ = 50. At 200 used 19,000: fits. At 250 used 19,500: remaining 0, resetMs
    // ⌈19,500/10⌉ = 1950, so at 2200 the bucket is full again (20).
    name: 'token bucket: burst then steady refill at the limit rate',
    policy: { limits: [{ name: 'tb', limit: 10, interval: '1s', burst: 20 }] },
    steps: [
      { at: 0, acquire: { requests: 20 }, expect: OK },
      { at: 0, acquire: {}, expect: no('tb', 100) },
      { at: 100, acquire: {}, expect: OK },
      { at: 150, acquire: {}, expect: no('tb', 50) },
      { at: 200, acquire: {}, expect: OK },
      { at: 250, read: { remaining: { tb: 0 }, resetMs: { tb: 1950 } } },
      { at: 2199, read: { remaining: { tb: 19 }, resetMs: { tb: 1 } } },
      { at: 2200, read: { remaining: { tb: 20 }, resetMs: { tb: 0 } } },
    ],
  },
  {
    // The tokenBucket.ts header example: 10/s burst 20, 20 at 0. At 250 used 17,500: 2 fit
    // (remaining ⌊2500/1000⌋ = 2, resetMs 1750); 5 wait ⌈(17,500 + 5000 − 20,000)/10⌉ = 250.
    // After taking 2 (used 19,500) one more waits ⌈500/10⌉ = 50. At 500 used 17,000: 5 wait
    // ⌈2000/10⌉ = 200; at 699 used 15,010, over by 10: 1 ms; at 700 used 15,000: 5 fit exactly.
    name: 'token bucket: partial refill, a cost above what refilled waits the exact time',
    policy: { limits: [{ name: 'tb', limit: 10, interval: '1s', burst: 20 }] },
    steps: [
      { at: 0, acquire: { requests: 20 }, expect: OK },
      { at: 250, read: { remaining: { tb: 2 }, resetMs: { tb: 1750 } } },
      { at: 250, acquire: { requests: 5 }, expect: no('tb', 250) },
      { at: 250, acquire: { requests: 2 }, expect: OK },
      { at: 250, acquire: { requests: 1 }, expect: no('tb', 50) },
      { at: 500, acquire: { requests: 5 }, expect: no('tb', 200) },
      { at: 699, acquire: { requests: 5 }, expect: no('tb', 1) },
      { at: 700, acquire: { requests: 5 }, expect: OK },
    ],
  },
  {
    // 3 per 1000 ms: unit 1000, drains 3/ms. Full at 0: one unit waits ⌈1000/3⌉ = 334 (rounded up,
    // never early). At 333 used 3000 − 999 = 2001: over by 1, ⌈1/3⌉ = 1. At 334 used 1998: fits.
    name: 'token bucket: waits round up to the first whole millisecond that fits',
    policy: { limits: [{ name: 'tb', limit: 3, interval: 1000 }] },
    steps: [
      { at: 0, acquire: { requests: 3 }, expect: OK },
      { at: 0, acquire: {}, expect: no('tb', 334) },
      { at: 333, acquire: {}, expect: no('tb', 1) },
      { at: 333, read: { remaining: { tb: 0 }, resetMs: { tb: 667 } } },
      { at: 334, acquire: {}, expect: OK },
    ],
  },
  {
    // 10/s burst 2: capacity 2000 scaled, drains 10/ms. Two fit at 0, the third waits ⌈1000/10⌉ =
    // 100 (resetMs ⌈2000/10⌉ = 200). At 100 used 1000: one fits, the next waits 100 again. By
    // 1000 the bucket is empty but holds at most the burst: remaining 2, not 10.
    name: 'token bucket: burst below the limit caps what can be taken at once',
    policy: { limits: [{ name: 'smooth', limit: 10, interval: '1s', burst: 2 }] },
    steps: [
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: no('smooth', 100) },
      { at: 0, read: { remaining: { smooth: 0 }, resetMs: { smooth: 200 } } },
      { at: 100, acquire: {}, expect: OK },
      { at: 100, acquire: {}, expect: no('smooth', 100) },
      { at: 1000, read: { remaining: { smooth: 2 }, resetMs: { smooth: 0 } } },
      { at: 1000, acquire: { requests: 2 }, expect: OK },
      { at: 1000, acquire: {}, expect: no('smooth', 100) },
    ],
  },
  {
    // 2 per day: unit 86,400,000 scaled, capacity 172,800,000, drains 2/ms. Full at 0: one waits
    // ⌈86,400,000/2⌉ = 43,200,000. At 43,199,999 used 172,800,000 − 86,399,998 = 86,400,002:
    // over by 2, ⌈2/2⌉ = 1. At 43,200,000 it fits and the bucket is full again (resetMs
    // ⌈172,800,000/2⌉ = 86,400,000).
    name: "token bucket: a '1d' interval keeps exact integer waits",
    policy: { limits: [{ name: 'daily', limit: 2, interval: '1d' }] },
    steps: [
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: no('daily', 43_200_000) },
      { at: 43_199_999, acquire: {}, expect: no('daily', 1) },
      { at: 43_200_000, acquire: {}, expect: OK },
      { at: 43_200_000, read: { remaining: { daily: 0 }, resetMs: { daily: 86_400_000 } } },
    ],
  },
  {
    // 1,000,000 tokens per day: one token is 86,400,000 scaled, drains 1,000,000/ms (a token every
    // 86.4 ms). After 999,999 at 0, used 86,399,913,600,000 of 86,400,000,000,000: 2 tokens are
    // over by 86,400,000, wait ⌈86.4⌉ = 87. At 86 used fell by 86,000,000: still over by 400,000,
    // ⌈0.4⌉ = 1. At 87 it fits.
    name: "token bucket: a large token limit per '1d' waits fractional refills rounded up",
    policy: { limits: [{ name: 'tpd', limit: 1_000_000, interval: '1d', dimension: 'tokens' }] },
    steps: [
      { at: 0, acquire: { tokens: 999_999 }, expect: OK },
      { at: 0, read: { remaining: { tpd: 1 }, resetMs: { tpd: 86_399_914 } } },
      { at: 0, acquire: { tokens: 2 }, expect: no('tpd', 87) },
      { at: 86, acquire: { tokens: 2 }, expect: no('tpd', 1) },
      { at: 87, acquire: { tokens: 2 }, expect: OK },
    ],
  },
  {
    // rpm 10/min and tpm 1000/min; tokens derive from inputTokens + outputTokens when the cost
    // names no tokens. 300 + 200 = 500 tokens: tpm used 500 × 60,000 = 30,000,000 (remaining 500,
    // resetMs 30,000,000/1000 = 30,000), rpm remaining 9 (resetMs 60,000/10 = 6000). 400 + 200 =
    // 600 tokens wait ⌈(30e6 + 36e6 − 60e6)/1000⌉ = 6000, charging rpm nothing. An explicit
    // `tokens: 100` wins over the parts: tpm remaining 400, rpm 8.
    name: 'token bucket: tokens derive from inputTokens + outputTokens unless given',
    policy: {
      limits: [
        { name: 'rpm', limit: 10, interval: '1m' },
        { name: 'tpm', limit: 1000, interval: '1m', dimension: 'tokens' },
      ],
    },
    steps: [
      { at: 0, acquire: { inputTokens: 300, outputTokens: 200 }, expect: OK },
      { at: 0, read: { remaining: { rpm: 9, tpm: 500 }, resetMs: { rpm: 6000, tpm: 30_000 } } },
      { at: 0, acquire: { inputTokens: 400, outputTokens: 200 }, expect: no('tpm', 6000) },
      { at: 0, acquire: { inputTokens: 300, outputTokens: 200, tokens: 100 }, expect: OK },
      { at: 0, read: { remaining: { rpm: 8, tpm: 400 } } },
      { at: 0, acquire: { outputTokens: 400 }, expect: OK },
      { at: 0, read: { remaining: { rpm: 7, tpm: 0 } } },
    ],
  },
  {
    // images 5/s (unit 1000, drains 5/ms) and rps 100/s (drains 100/ms). 3 images at 0; 3 more
    // wait ⌈(3000 + 3000 − 5000)/5⌉ = 200, and the refusal charges rps nothing (99 left). At 200
    // images used 2000: 3 fit exactly. A cost naming no images still passes (0 images fit a full
    // limit). rps: 1 at 0 drained by 200, then 2 more: used 2000, remaining 98, resetMs 20.
    name: 'token bucket: a custom dimension is counted only by its own limit',
    policy: {
      limits: [
        { name: 'images', limit: 5, interval: '1s', dimension: 'images' },
        { name: 'rps', limit: 100, interval: '1s' },
      ],
    },
    steps: [
      { at: 0, acquire: { images: 3 }, expect: OK },
      { at: 0, acquire: { images: 3 }, expect: no('images', 200) },
      { at: 0, read: { remaining: { images: 2, rps: 99 } } },
      { at: 200, acquire: { images: 3 }, expect: OK },
      { at: 200, acquire: {}, expect: OK },
      { at: 200, read: { remaining: { images: 0, rps: 98 }, resetMs: { images: 1000, rps: 20 } } },
      { at: 200, acquire: { images: 1 }, expect: no('images', 200) },
    ],
  },
  {
    // a: 1/s (wait for a unit when full: 1000); b: 1 per 2 s (unit 2000, drains 1/ms: 2000). Both
    // refuse at 0; the refusal names the longest wait, b. At 1000 a has refilled, b waits 1000.
    name: 'multi-limit: the refusal names the limit with the longest wait',
    policy: {
      limits: [
        { name: 'a', limit: 1, interval: '1s' },
        { name: 'b', limit: 1, interval: '2s' },
      ],
    },
    steps: [
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: no('b', 2000) },
      { at: 1000, acquire: {}, expect: no('b', 1000) },
      { at: 1000, read: { remaining: { a: 1, b: 0 }, resetMs: { a: 0, b: 1000 } } },
      { at: 2000, acquire: {}, expect: OK },
    ],
  },
  // ───────────────────────── (c) sliding window, exact log ─────────────────────────
  {
    // The slidingWindow.ts header: 3 per 1000 ms. 2 at 0 and 1 at 400 fill it. At 900 the entry
    // at 0 counts while now < 1000: retry 100 (resetMs: last entry 400 + 1000 − 900 = 500). At
    // 999 retry 1. At exactly 1000 the entry at 0 has expired: 2 fit (remaining 2, resetMs 400).
    // Then the log is [400:1, 1000:2]; one more waits for 400 to expire: 1400 − 1000 = 400.
    name: 'sliding window: an entry expires exactly at at + interval',
    policy: { limits: [{ name: 'sw', limit: 3, interval: 1000, algorithm: 'sliding-window' }] },
    steps: [
      { at: 0, acquire: { requests: 2 }, expect: OK },
      { at: 400, acquire: {}, expect: OK },
      { at: 900, acquire: {}, expect: no('sw', 100) },
      { at: 900, read: { remaining: { sw: 0 }, resetMs: { sw: 500 } } },
      { at: 999, acquire: {}, expect: no('sw', 1) },
      { at: 1000, read: { remaining: { sw: 2 }, resetMs: { sw: 400 } } },
      { at: 1000, acquire: { requests: 2 }, expect: OK },
      { at: 1000, acquire: {}, expect: no('sw', 400) },
      { at: 1399, acquire: {}, expect: no('sw', 1) },
      { at: 1400, acquire: {}, expect: OK },
    ],
  },
  {
    // 5 per 1000 ms: 1 at 0, 2 at 100, 2 at 200 (full). At 300, 3 units are over by 3: the entry at
    // 0 frees 1, the entry at 100 frees 2 more, so they fit when 100 expires: 1100 − 300 = 800.
    // At 1099 the entry at 0 is gone (used 4): over by 2, freed by 100's entry: 1 ms. At 1100 they fit.
    name: 'sliding window: a cost waits for as many entries as it needs to expire',
    policy: { algorithm: 'sliding-window', limits: [{ name: 'sw', limit: 5, interval: 1000 }] },
    steps: [
      { at: 0, acquire: { requests: 1 }, expect: OK },
      { at: 100, acquire: { requests: 2 }, expect: OK },
      { at: 200, acquire: { requests: 2 }, expect: OK },
      { at: 300, acquire: { requests: 3 }, expect: no('sw', 800) },
      { at: 300, read: { remaining: { sw: 0 }, resetMs: { sw: 900 } } },
      { at: 1099, acquire: { requests: 3 }, expect: no('sw', 1) },
      { at: 1099, read: { remaining: { sw: 1 }, resetMs: { sw: 101 } } },
      { at: 1100, acquire: { requests: 3 }, expect: OK },
      { at: 1100, read: { remaining: { sw: 0 }, resetMs: { sw: 1000 } } },
    ],
  },
  {
    // 100 tokens per 1000 ms. 60 at 0 (g1), 40 at 500 (g2): full. Settling g1 to 10 at 600 gives
    // 50 back to g1's entry: log [0:10, 500:40], remaining 50, resetMs 500 + 1000 − 600 = 900. At
    // 1000 the entry at 0 expires: remaining 60, resetMs 500. g2 settled to 0 at 1200 empties the
    // log. g3 (100 at 1200) settled to 0 at 2200, when its entry has just expired: nothing to give
    // back, so exactly 100 fit at 2200 and one more token waits for that booking: 1000.
    name: 'sliding window: settle refunds the grant’s own entry, and nothing once it expired',
    policy: {
      limits: [
        {
          name: 'sw',
          limit: 100,
          interval: 1000,
          dimension: 'tokens',
          algorithm: 'sliding-window',
        },
      ],
    },
    steps: [
      { at: 0, acquire: { tokens: 60 }, expect: OK, as: 'g1' },
      { at: 500, acquire: { tokens: 40 }, expect: OK, as: 'g2' },
      { at: 500, acquire: { tokens: 1 }, expect: no('sw', 500) },
      { at: 600, settle: 'g1', actual: { tokens: 10 } },
      { at: 600, read: { remaining: { sw: 50 }, resetMs: { sw: 900 } } },
      { at: 1000, read: { remaining: { sw: 60 }, resetMs: { sw: 500 } } },
      { at: 1200, settle: 'g2', actual: { tokens: 0 } },
      { at: 1200, read: { remaining: { sw: 100 }, resetMs: { sw: 0 } } },
      { at: 1200, acquire: { tokens: 100 }, expect: OK, as: 'g3' },
      { at: 2200, settle: 'g3', actual: { tokens: 0 } },
      { at: 2200, acquire: { tokens: 100 }, expect: OK },
      { at: 2200, acquire: { tokens: 1 }, expect: no('sw', 1000) },
    ],
  },
  {
    // 10 tokens per 1000 ms. 5 at 0, settled to 25 at 100: 20 extra booked at 100, log [0:5,
    // 100:20], used 25 (debt: remaining 0, resetMs 1100 − 100 = 1000). At 500, 1 token is over by
    // 16: entry 0 frees 5 (11 left), entry 100 frees 20: wait 1100 − 500 = 600. At 1000 (entry 0
    // gone, used 20) over by 11, freed when 100 expires: 100. At 1100 the log is empty: 10 fit.
    name: 'sliding window: settle above the estimate is debt booked at the settle instant',
    policy: {
      limits: [
        { name: 'sw', limit: 10, interval: 1000, dimension: 'tokens', algorithm: 'sliding-window' },
      ],
    },
    steps: [
      { at: 0, acquire: { tokens: 5 }, expect: OK, as: 'g1' },
      { at: 100, settle: 'g1', actual: { tokens: 25 } },
      { at: 100, read: { remaining: { sw: 0 }, resetMs: { sw: 1000 } } },
      { at: 500, acquire: { tokens: 1 }, expect: no('sw', 600) },
      { at: 1000, acquire: { tokens: 1 }, expect: no('sw', 100) },
      { at: 1100, acquire: { tokens: 10 }, expect: OK },
    ],
  },
  {
    // 2 per 1000 ms. Grants at 0 and 300; cancel of the one at 300 at 500 removes its entry: one
    // fits at 500. Then log [0:1, 500:1]: one more waits for 0 to expire (1000 − 500 = 500). A
    // cancel at 1200 of the grant from 0 finds its entry expired: no extra capacity (the entry at
    // 500 still counts: one fits at 1200, a second waits 1500 − 1200 = 300). After the cancel at
    // 500 the log is [0:1]: resetMs 0 + 1000 − 500 = 500.
    name: 'sliding window: cancel removes the grant’s entry, and only while it counts',
    policy: { limits: [{ name: 'sw', limit: 2, interval: 1000, algorithm: 'sliding-window' }] },
    steps: [
      { at: 0, acquire: {}, expect: OK, as: 'early' },
      { at: 300, acquire: {}, expect: OK, as: 'late' },
      { at: 500, cancel: 'late' },
      { at: 500, read: { remaining: { sw: 1 }, resetMs: { sw: 500 } } },
      { at: 500, acquire: {}, expect: OK },
      { at: 500, acquire: {}, expect: no('sw', 500) },
      { at: 1200, cancel: 'early' },
      { at: 1200, acquire: {}, expect: OK },
      { at: 1200, acquire: {}, expect: no('sw', 300) },
    ],
  },

  // ───────────────────────── (d) fixed window, aligned ─────────────────────────
  {
    // 2 per 1000 ms, windows [0, 1000), [1000, 2000). Two at 999 fill [0, 1000); a third waits
    // until 1000: 1 ms. At 1000 a new window admits 2 (a window starting at the first request, 999,
    // would refuse here). Full again: wait 2000 − 1000 = 1000, resetMs 1000.
    name: 'fixed window: 999 and 1000 fall in different aligned 1 s windows',
    policy: { limits: [{ name: 'fw', limit: 2, interval: 1000, algorithm: 'fixed-window' }] },
    steps: [
      { at: 999, acquire: {}, expect: OK },
      { at: 999, acquire: {}, expect: OK },
      { at: 999, acquire: {}, expect: no('fw', 1) },
      { at: 999, read: { remaining: { fw: 0 }, resetMs: { fw: 1 } } },
      { at: 1000, read: { remaining: { fw: 2 }, resetMs: { fw: 0 } } },
      { at: 1000, acquire: {}, expect: OK },
      { at: 1000, acquire: {}, expect: OK },
      { at: 1000, acquire: {}, expect: no('fw', 1000) },
      { at: 1000, read: { remaining: { fw: 0 }, resetMs: { fw: 1000 } } },
    ],
  },
  {
    // 1 per 1000 ms; the key's first request is at 1500, inside window [1000, 2000): the next
    // waits to 2000 (at 1999: 1 ms), not to 2500. At 2000 one fits; its window ends at 3000
    // (resetMs 1000 at 2000, 1 at 2999, 0 at 3000).
    name: 'fixed window: a key first used mid-window is aligned to the clock, not to its first use',
    policy: { limits: [{ name: 'fw', limit: 1, interval: 1000, algorithm: 'fixed-window' }] },
    steps: [
      { at: 1500, acquire: {}, expect: OK },
      { at: 1500, acquire: {}, expect: no('fw', 500) },
      { at: 1999, acquire: {}, expect: no('fw', 1) },
      { at: 2000, acquire: {}, expect: OK },
      { at: 2000, read: { remaining: { fw: 0 }, resetMs: { fw: 1000 } } },
      { at: 2999, read: { remaining: { fw: 0 }, resetMs: { fw: 1 } } },
      { at: 3000, read: { remaining: { fw: 1 }, resetMs: { fw: 0 } } },
    ],
  },
  {
    // The fixedWindow.ts header: 100 per minute. 100 at 59,000 fill [0, 60,000); at 59,500 one
    // waits 500; at 60,000 a new window admits 100 more (200 within one second: the known price).
    name: "fixed window: a '1m' window opens at every whole minute",
    policy: { limits: [{ name: 'fw', limit: 100, interval: '1m', algorithm: 'fixed-window' }] },
    steps: [
      { at: 59_000, acquire: { requests: 100 }, expect: OK },
      { at: 59_500, acquire: {}, expect: no('fw', 500) },
      { at: 60_000, acquire: { requests: 100 }, expect: OK },
      { at: 60_000, read: { remaining: { fw: 0 }, resetMs: { fw: 60_000 } } },
      { at: 61_000, acquire: {}, expect: no('fw', 59_000) },
    ],
  },
  {
    // 10 tokens per 1000 ms. 5 at 0 settled to 25 at 100: the window [0, 1000) holds 25 (debt).
    // resetMs 0 + ⌈25/10⌉·1000 − 100 = 2900. At 500, 1 token is over by 16: ⌈16/10⌉ = 2 windows,
    // wait 2000 − 500 = 1500. At 1000 one window passed: 15 carry, resetMs 1000 + 2·1000 − 1000 =
    // 2000. At 2000 two windows passed: 25 − 20 = 5 carry, so 5 fit and the
    // next token waits for window 3000: 1000.
    name: 'fixed window: settle above the limit is debt that carries into later windows',
    policy: {
      limits: [
        { name: 'fw', limit: 10, interval: 1000, dimension: 'tokens', algorithm: 'fixed-window' },
      ],
    },
    steps: [
      { at: 0, acquire: { tokens: 5 }, expect: OK, as: 'g1' },
      { at: 100, settle: 'g1', actual: { tokens: 25 } },
      { at: 100, read: { remaining: { fw: 0 }, resetMs: { fw: 2900 } } },
      { at: 500, acquire: { tokens: 1 }, expect: no('fw', 1500) },
      { at: 1000, read: { remaining: { fw: 0 }, resetMs: { fw: 2000 } } },
      { at: 2000, read: { remaining: { fw: 5 }, resetMs: { fw: 1000 } } },
      { at: 2000, acquire: { tokens: 5 }, expect: OK },
      { at: 2000, acquire: { tokens: 1 }, expect: no('fw', 1000) },
    ],
  },
  {
    // 3 tokens per 1000 ms. 3 at 500 settled to 1 at 900: 2 back to the open window (remaining 2),
    // and 2 at 950 fill it. g2 (from [0, 1000)) settled to 0 at 1100 gives nothing: its window
    // closed. The new window holds 0 (remaining 3); after 3 more, one waits 2000 − 1100 = 900.
    name: 'fixed window: a refund reaches only the window the grant was booked in',
    policy: {
      limits: [
        { name: 'fw', limit: 3, interval: 1000, dimension: 'tokens', algorithm: 'fixed-window' },
      ],
    },
    steps: [
      { at: 500, acquire: { tokens: 3 }, expect: OK, as: 'g1' },
      { at: 900, settle: 'g1', actual: { tokens: 1 } },
      { at: 900, read: { remaining: { fw: 2 }, resetMs: { fw: 100 } } },
      { at: 950, acquire: { tokens: 2 }, expect: OK, as: 'g2' },
      { at: 950, acquire: { tokens: 1 }, expect: no('fw', 50) },
      { at: 1100, settle: 'g2', actual: { tokens: 0 } },
      { at: 1100, read: { remaining: { fw: 3 }, resetMs: { fw: 0 } } },
      { at: 1100, acquire: { tokens: 3 }, expect: OK },
      { at: 1100, acquire: { tokens: 1 }, expect: no('fw', 900) },
    ],
  },

  // ───────────────────────── mixed algorithms ─────────────────────────
  {
    // tb 5/s (drains 5/ms), sw 3/1000 ms, fw 4/1000 ms. 3 at 0. At 100 one more: tb used 2500
    // (+1000 fits), fw 3 + 1 ≤ 4 fits, sw is full until 1000: refused by sw, 900, charging
    // nothing: tb remaining ⌊2500/1000⌋ = 2 (resetMs 500), fw remaining 1 (resetMs 1000 − 100 =
    // 900). At 1000 all three have room for 3; then one more is refused by sw alone (1000).
    name: 'mixed algorithms: all-or-nothing across token bucket, sliding and fixed window',
    policy: {
      limits: [
        { name: 'tb', limit: 5, interval: 1000 },
        { name: 'sw', limit: 3, interval: 1000, algorithm: 'sliding-window' },
        { name: 'fw', limit: 4, interval: 1000, algorithm: 'fixed-window' },
      ],
    },
    steps: [
      { at: 0, acquire: { requests: 3 }, expect: OK },
      { at: 100, acquire: {}, expect: no('sw', 900) },
      {
        at: 100,
        read: { remaining: { tb: 2, sw: 0, fw: 1 }, resetMs: { tb: 500, sw: 900, fw: 900 } },
      },
      { at: 1000, acquire: { requests: 3 }, expect: OK },
      { at: 1000, acquire: {}, expect: no('sw', 1000) },
      { at: 1000, read: { remaining: { tb: 2, sw: 0, fw: 1 } } },
    ],
  },
  {
    // A key never used reads full on every algorithm: remaining = capacity (burst 7 for tb),
    // resetMs 0, no slot held, at any instant (here 12,345).
    name: 'read: a fresh key is at full capacity on every algorithm',
    policy: {
      concurrency: 3,
      limits: [
        { name: 'tb', limit: 5, interval: '1s', burst: 7 },
        { name: 'sw', limit: 4, interval: '1m', algorithm: 'sliding-window' },
        { name: 'fw', limit: 9, interval: '1h', algorithm: 'fixed-window', dimension: 'tokens' },
      ],
    },
    steps: [
      {
        at: 12_345,
        read: { remaining: { tb: 7, sw: 4, fw: 9 }, resetMs: { tb: 0, sw: 0, fw: 0 }, inFlight: 0 },
      },
    ],
  },
  // ───────────────────────── (e) concurrency slots ─────────────────────────
  {
    // concurrency 2, rps 10/s (drains 10/ms). Two slots taken; the third is refused by
    // 'concurrency' with retryAfterMs 0 (the limit itself would admit it: 3000 ≤ 10,000) and
    // charges nothing (remaining 8). Release at 10 frees a slot but keeps the usage: used 2000 −
    // 100 = 1900, remaining 8. A third grant then fits (used 2900, remaining 7), a fourth does not.
    name: 'concurrency: the third of 2 slots is refused by concurrency, release frees one',
    policy: { concurrency: 2, limits: [{ name: 'rps', limit: 10, interval: '1s' }] },
    steps: [
      { at: 0, acquire: {}, expect: OK, as: 'g1' },
      { at: 0, acquire: {}, expect: OK, as: 'g2' },
      { at: 0, acquire: {}, expect: no('concurrency', 0) },
      { at: 0, read: { remaining: { rps: 8 }, resetMs: { rps: 200 }, inFlight: 2 } },
      { at: 10, release: 'g1' },
      { at: 10, read: { remaining: { rps: 8 }, inFlight: 1 } },
      { at: 10, acquire: {}, expect: OK, as: 'g3' },
      { at: 10, read: { remaining: { rps: 7 }, inFlight: 2 } },
      { at: 10, acquire: {}, expect: no('concurrency', 0) },
    ],
  },
  {
    // concurrency 1, rps 1/s. With the slot held and the bucket full, the refusal is named
    // 'concurrency' and its retryAfterMs is the limits' wait, 1000 (a lower bound: decide.ts).
    // After release at 500 the slot is free and the refusal is the bucket's own: 500.
    name: 'concurrency: a refusal for a held slot carries the limits’ wait as a lower bound',
    policy: { concurrency: 1, limits: [{ name: 'rps', limit: 1, interval: '1s' }] },
    steps: [
      { at: 0, acquire: {}, expect: OK, as: 'g1' },
      { at: 0, acquire: {}, expect: no('concurrency', 1000) },
      { at: 500, release: 'g1' },
      { at: 500, acquire: {}, expect: no('rps', 500) },
      { at: 500, read: { remaining: { rps: 0 }, inFlight: 0 } },
      { at: 1000, acquire: {}, expect: OK },
      { at: 1000, read: { remaining: { rps: 0 }, inFlight: 1 } },
    ],
  },
  {
    // concurrency 1, rps 2/s (drains 2/ms). g1 holds the slot; a second is refused by
    // concurrency with 0 (1000 + 1000 fits the bucket). Cancel at 100: used 800, the refund of
    // 1000 clamps at empty, and the slot is back: remaining 2, inFlight 0, and a cost of 2 fits
    // (it would not if only the slot, or only the units, came back).
    name: 'concurrency: cancel gives back both the units and the slot',
    policy: { concurrency: 1, limits: [{ name: 'rps', limit: 2, interval: '1s' }] },
    steps: [
      { at: 0, acquire: {}, expect: OK, as: 'g1' },
      { at: 0, acquire: {}, expect: no('concurrency', 0) },
      { at: 100, cancel: 'g1' },
      { at: 100, read: { remaining: { rps: 2 }, resetMs: { rps: 0 }, inFlight: 0 } },
      { at: 100, acquire: { requests: 2 }, expect: OK },
      { at: 100, read: { remaining: { rps: 0 }, inFlight: 1 } },
    ],
  },
  {
    // concurrency 1, rps 10/s. Requests with slot: false never take or need a slot: two before
    // and one after the only slot is taken all pass; a slotted one is then refused (0). The
    // limit counts all four grants: remaining 6.
    name: 'concurrency: a request without a slot ignores the concurrency limit',
    policy: { concurrency: 1, limits: [{ name: 'rps', limit: 10, interval: '1s' }] },
    steps: [
      { at: 0, acquire: {}, slot: false, expect: OK },
      { at: 0, acquire: {}, slot: false, expect: OK },
      { at: 0, acquire: {}, expect: OK, as: 'slotted' },
      { at: 0, acquire: {}, slot: false, expect: OK },
      { at: 0, acquire: {}, expect: no('concurrency', 0) },
      { at: 0, read: { remaining: { rps: 6 }, inFlight: 1 } },
    ],
  },
  {
    // A policy of concurrency 1 and no limits: the read has no limits, one slot at a time.
    name: 'concurrency: a concurrency-only policy',
    policy: { concurrency: 1, limits: [] },
    steps: [
      { at: 0, acquire: {}, expect: OK, as: 'g1' },
      { at: 0, acquire: {}, expect: no('concurrency', 0) },
      { at: 0, read: { remaining: {}, inFlight: 1 } },
      { at: 5, release: 'g1' },
      { at: 5, read: { remaining: {}, inFlight: 0 } },
      { at: 5, acquire: {}, expect: OK },
      { at: 5, acquire: {}, expect: no('concurrency', 0) },
    ],
  },
  {
    // Releasing g1 frees g1's slot and no other: g2 still holds one (inFlight 1), one more fits
    // and the next is refused by concurrency. (Store.release is called at most once per grant:
    // Grant.release is what is idempotent, see test/actors.)
    name: 'concurrency: a release frees that grant’s slot and no other',
    policy: { concurrency: 2, limits: [] },
    steps: [
      { at: 0, acquire: {}, expect: OK, as: 'g1' },
      { at: 0, acquire: {}, expect: OK, as: 'g2' },
      { at: 0, release: 'g1' },
      { at: 0, read: { remaining: {}, inFlight: 1 } },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: no('concurrency', 0) },
    ],
  },
  {
    // concurrency 2, rps 2/s. g1 released then cancelled (as the runtime does: the cancel's record
    // no longer holds a slot): its unit comes back (remaining 1) but g2's slot stays held
    // (inFlight 1). After g3 both slots and both units are taken: refused by concurrency with
    // the bucket's wait ⌈1000/2⌉ = 500.
    name: 'concurrency: cancel after release gives back the units and frees no other slot',
    policy: { concurrency: 2, limits: [{ name: 'rps', limit: 2, interval: '1s' }] },
    steps: [
      { at: 0, acquire: {}, expect: OK, as: 'g1' },
      { at: 0, acquire: {}, expect: OK, as: 'g2' },
      { at: 0, release: 'g1' },
      { at: 0, cancel: 'g1' },
      { at: 0, read: { remaining: { rps: 1 }, inFlight: 1 } },
      { at: 0, acquire: {}, expect: OK, as: 'g3' },
      { at: 0, acquire: {}, expect: no('concurrency', 500) },
    ],
  },

  // ───────────────────────── (f) batches ─────────────────────────
  {
    // 3 per 1000 ms (drains 3/ms). Queue [2, 2, 1]: 2 fit; the next 2 are over by 1000 scaled:
    // ⌈1000/3⌉ = 334, and the queue stops there (the 1 behind is not decided, so it does not
    // overtake): remaining 1, resetMs ⌈2000/3⌉ = 667.
    name: "batch 'queue': stops at the first refusal, later requests are not decided",
    policy: { limits: [{ name: 'rps', limit: 3, interval: 1000 }] },
    steps: [
      {
        at: 0,
        batch: [{ requests: 2 }, { requests: 2 }, { requests: 1 }],
        mode: 'queue',
        expect: [OK, no('rps', 334)],
      },
      { at: 0, read: { remaining: { rps: 1 }, resetMs: { rps: 667 } } },
    ],
  },
  {
    // Same batch in 'each' mode: 2 fit, 2 refused (334), 1 still fits: used 3000, remaining 0,
    // resetMs ⌈3000/3⌉ = 1000.
    name: "batch 'each': decides every request, a refusal does not stop the rest",
    policy: { limits: [{ name: 'rps', limit: 3, interval: 1000 }] },
    steps: [
      {
        at: 0,
        batch: [{ requests: 2 }, { requests: 2 }, { requests: 1 }],
        mode: 'each',
        expect: [OK, no('rps', 334), OK],
      },
      { at: 0, read: { remaining: { rps: 0 }, resetMs: { rps: 1000 } } },
    ],
  },
  {
    // 1/s, full at 0. An 'each' batch of two is refused twice (1000 each) and charges nothing
    // (resetMs still 1000, not 3000). At 500 a 'queue' batch answers only its first refusal (500).
    // At 1000 a 'queue' batch of two admits one and refuses the next (1000).
    name: 'batch: refusals in a batch charge nothing',
    policy: ONE_PER_SECOND,
    steps: [
      { at: 0, acquire: {}, expect: OK },
      { at: 0, batch: [{}, {}], mode: 'each', expect: [no('rps', 1000), no('rps', 1000)] },
      { at: 0, read: { remaining: { rps: 0 }, resetMs: { rps: 1000 } } },
      { at: 500, batch: [{}, {}], mode: 'queue', expect: [no('rps', 500)] },
      { at: 1000, batch: [{}, {}], mode: 'queue', expect: [OK, no('rps', 1000)] },
      { at: 1000, read: { remaining: { rps: 0 }, resetMs: { rps: 1000 } } },
    ],
  },
  {
    // concurrency 2, rps 10/s. An 'each' batch of 3 slotted requests: 2 slots, the third is
    // refused by concurrency (0) and charges nothing: rps remaining 8, inFlight 2.
    name: 'batch: concurrency is counted within the batch',
    policy: { concurrency: 2, limits: [{ name: 'rps', limit: 10, interval: '1s' }] },
    steps: [
      { at: 0, batch: [{}, {}, {}], mode: 'each', expect: [OK, OK, no('concurrency', 0)] },
      { at: 0, read: { remaining: { rps: 8 }, inFlight: 2 } },
    ],
  },
  {
    // tps 100/s. Three grants of 30 from one batch (used 90,000). Cancel b2: 60,000. Settle b1 to
    // 50: +20 at 0, 80,000 (remaining 20, resetMs 800). An 'each' batch [30, 20]: 30 waits
    // ⌈(80,000 + 30,000 − 100,000)/100⌉ = 100, 20 fits (remaining 0, resetMs 1000).
    name: 'batch: grants of a batch settle and cancel one by one',
    policy: TOKENS_PER_SECOND,
    steps: [
      {
        at: 0,
        batch: [{ tokens: 30 }, { tokens: 30 }, { tokens: 30 }],
        mode: 'queue',
        expect: [OK, OK, OK],
        as: ['b1', 'b2', 'b3'],
      },
      { at: 0, cancel: 'b2' },
      { at: 0, settle: 'b1', actual: { tokens: 50 } },
      { at: 0, read: { remaining: { tps: 20 }, resetMs: { tps: 800 } } },
      {
        at: 0,
        batch: [{ tokens: 30 }, { tokens: 20 }],
        mode: 'each',
        expect: [no('tps', 100), OK],
      },
      { at: 0, read: { remaining: { tps: 0 }, resetMs: { tps: 1000 } } },
    ],
  },

  // ───────────────────────── (g) keys are opaque strings ─────────────────────────
  {
    // Braces (Redis hash tags), colons (key separators).
    name: 'keys: braces and colons never make two keys share state',
    policy: ONE_PER_SECOND,
    steps: isolated(['{', '}', '{}', '{a}', 'a', ':', 'a:b', '{a}:b']),
  },
  {
    // The empty key, whitespace, line breaks and NUL are keys like any other.
    name: 'keys: empty, whitespace, newline and NUL keys are distinct keys',
    policy: ONE_PER_SECOND,
    key: '',
    steps: isolated(['', ' ', '\n', '\r\n', '\t', '\u0000', '\u0000\u0000']),
  },
  {
    // Unicode is compared as the exact string: NFC 'é' and NFD 'e' + U+0301 are two keys, case
    // matters, astral characters work.
    name: 'keys: unicode keys are compared exactly (no normalization, no case folding)',
    policy: ONE_PER_SECOND,
    steps: isolated(['ключ', '鍵', '🔑', '\u00e9', 'e\u0301', 'Key', 'key', '\ud83d\udd11x']),
  },
  {
    // Very long keys that differ only in their last character, and one that is a prefix of both.
    name: 'keys: very long keys differing only at the end are distinct',
    policy: ONE_PER_SECOND,
    steps: isolated([
      'k'.repeat(10_000),
      `${'k'.repeat(10_000)}a`,
      `${'k'.repeat(10_000)}b`,
      'k'.repeat(100_000),
    ]),
  },
  {
    // Keys that a store might build sub-keys from by suffixing (leases, state): with concurrency
    // 1 and rps 1/s, each key holds its own slot (refused by concurrency with 1000), and
    // releasing 'user''s grant frees only 'user': it is then refused by its own bucket (1000).
    name: 'keys: a key never shares slots with a key that extends it',
    policy: { concurrency: 1, limits: [{ name: 'rps', limit: 1, interval: '1s' }] },
    key: 'user',
    steps: [
      { at: 0, acquire: {}, expect: OK, as: 'u' },
      { at: 0, key: 'user:', acquire: {}, expect: OK },
      { at: 0, key: 'user:leases', acquire: {}, expect: OK },
      { at: 0, key: 'user:state', acquire: {}, expect: OK },
      { at: 0, key: 'user:1', acquire: {}, expect: OK },
      { at: 0, key: '*', acquire: {}, expect: OK },
      { at: 0, release: 'u' },
      { at: 0, read: { remaining: { rps: 0 }, inFlight: 0 } },
      { at: 0, acquire: {}, expect: no('rps', 1000) },
      { at: 0, key: 'user:', acquire: {}, expect: no('concurrency', 1000) },
      { at: 0, key: 'user:leases', acquire: {}, expect: no('concurrency', 1000) },
      { at: 0, key: 'user:leases', read: { remaining: { rps: 0 }, inFlight: 1 } },
      { at: 0, key: 'user:state', acquire: {}, expect: no('concurrency', 1000) },
      { at: 0, key: 'user:1', acquire: {}, expect: no('concurrency', 1000) },
      { at: 0, key: '*', acquire: {}, expect: no('concurrency', 1000) },
    ],
  },
  {
    // 1/s on keys 'a' and 'b'. Resetting 'a' at 100 forgets only 'a': it is full again, while 'b'
    // still waits 1000 − 100 = 900.
    name: 'reset: forgets only the key it names',
    policy: ONE_PER_SECOND,
    key: 'a',
    steps: [
      { at: 0, acquire: {}, expect: OK },
      { at: 0, key: 'b', acquire: {}, expect: OK },
      { at: 100, reset: true },
      { at: 100, read: { remaining: { rps: 1 }, resetMs: { rps: 0 } } },
      { at: 100, key: 'b', read: { remaining: { rps: 0 }, resetMs: { rps: 900 } } },
      { at: 100, acquire: {}, expect: OK },
      { at: 100, key: 'b', acquire: {}, expect: no('rps', 900) },
    ],
  },
  {
    // concurrency 1, rps 1/s. Reset at 100 forgets the usage and the held slot: full capacity,
    // inFlight 0, a new grant fits; the next is refused by concurrency with the bucket's 1000.
    name: 'reset: full capacity and no slots held',
    policy: { concurrency: 1, limits: [{ name: 'rps', limit: 1, interval: '1s' }] },
    steps: [
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: no('concurrency', 1000) },
      { at: 100, reset: true },
      { at: 100, read: { remaining: { rps: 1 }, resetMs: { rps: 0 }, inFlight: 0 } },
      { at: 100, acquire: {}, expect: OK },
      { at: 100, acquire: {}, expect: no('concurrency', 1000) },
      { at: 100, read: { remaining: { rps: 0 }, inFlight: 1 } },
    ],
  },

  // Reset epochs (issue #10): a grant booked before a reset holds nothing in the state made after
  // it, so its settle, cancel or release gives nothing back; an extra charge still books.
  {
    // tpm 1000 per minute, fixed window [0, 60,000). a books 1000 at 0; the reset at 1000 forgets
    // it; b books 1000 at 2000 in the key's new state (used 1000). a settled to 0 at 10,000 must
    // not give back b's booking: remaining 0, resetMs 60,000 − 10,000 = 50,000, and a third
    // 1000 waits for the next window (50,000). Without epochs it gave back 1000: 2000 admitted.
    name: 'reset: a refund of a grant from before the reset gives back nothing (fixed window)',
    policy: {
      limits: [
        {
          name: 'tpm',
          limit: 1000,
          interval: '1m',
          dimension: 'tokens',
          algorithm: 'fixed-window',
        },
      ],
    },
    steps: [
      { at: 0, acquire: { tokens: 1000 }, expect: OK, as: 'a' },
      { at: 1000, reset: true },
      { at: 2000, acquire: { tokens: 1000 }, expect: OK, as: 'b' },
      { at: 10_000, settle: 'a', actual: { tokens: 0 } },
      { at: 10_000, read: { remaining: { tpm: 0 }, resetMs: { tpm: 50_000 } } },
      { at: 10_000, acquire: { tokens: 1000 }, expect: no('tpm', 50_000) },
    ],
  },
  {
    // 1/s, everything at 5000: a (mark 1000), reset, b into the new empty bucket (emptiedAt 5000,
    // used 1000). a was booked at 5000, not before emptiedAt, and its mark is b's: without epochs
    // cancelling a gave back b's unit. It must give back nothing: remaining 0, resetMs 1000, a
    // third request waits 1000.
    name: 'reset: a cancel of a grant from before a reset in the same millisecond gives back nothing',
    policy: ONE_PER_SECOND,
    steps: [
      { at: 5000, acquire: {}, expect: OK, as: 'a' },
      { at: 5000, reset: true },
      { at: 5000, acquire: {}, expect: OK, as: 'b' },
      { at: 5000, cancel: 'a' },
      { at: 5000, read: { remaining: { rps: 0 }, resetMs: { rps: 1000 } } },
      { at: 5000, acquire: {}, expect: no('rps', 1000) },
    ],
  },
  {
    // tpm 1000 per minute, fixed window. a books 100 at 0; reset at 1000; a settled to 300 at
    // 2000: nothing back, but the extra 200 is charged in the new state (used 200: remaining 800,
    // resetMs 58,000). 800 fit; one more token waits for the next window: 58,000.
    name: 'reset: an extra charge of a grant from before the reset still books',
    policy: {
      limits: [
        {
          name: 'tpm',
          limit: 1000,
          interval: '1m',
          dimension: 'tokens',
          algorithm: 'fixed-window',
        },
      ],
    },
    steps: [
      { at: 0, acquire: { tokens: 100 }, expect: OK, as: 'a' },
      { at: 1000, reset: true },
      { at: 2000, settle: 'a', actual: { tokens: 300 } },
      { at: 2000, read: { remaining: { tpm: 800 }, resetMs: { tpm: 58_000 } } },
      { at: 2000, acquire: { tokens: 800 }, expect: OK },
      { at: 2000, acquire: { tokens: 1 }, expect: no('tpm', 58_000) },
    ],
  },
  {
    // concurrency 1, rps 10/s. a holds the slot from 0; the reset at 1000 forgets it; b takes the
    // slot at 2000 (rps used 1000, drained by 2100). a released at 3000 must not free b's slot:
    // inFlight 1, and a third request is refused by concurrency (the bucket has room: 0).
    // Without epochs the memory store counted a's release against b's slot: two holders.
    name: 'reset: a release of a slot taken before the reset frees no slot taken after it',
    policy: { concurrency: 1, limits: [{ name: 'rps', limit: 10, interval: '1s' }] },
    steps: [
      { at: 0, acquire: {}, expect: OK, as: 'a' },
      { at: 1000, reset: true },
      { at: 2000, acquire: {}, expect: OK, as: 'b' },
      { at: 3000, release: 'a' },
      { at: 3000, read: { remaining: { rps: 10 }, inFlight: 1 } },
      { at: 3000, acquire: {}, expect: no('concurrency', 0) },
      { at: 3000, release: 'b' },
      { at: 3000, read: { remaining: { rps: 10 }, inFlight: 0 } },
      { at: 3000, acquire: {}, expect: OK },
    ],
  },
  {
    // concurrency 1, rps 2/s (unit 1000, drains 2/ms), all at 0: a, reset, b (used 1000). a
    // cancelled gives back neither b's unit nor b's slot: remaining 1, inFlight 1, and a third
    // request is refused by concurrency (the bucket has room: 0).
    name: 'reset: a cancel of a grant from before the reset gives back neither units nor a slot',
    policy: { concurrency: 1, limits: [{ name: 'rps', limit: 2, interval: '1s' }] },
    steps: [
      { at: 0, acquire: {}, expect: OK, as: 'a' },
      { at: 0, reset: true },
      { at: 0, acquire: {}, expect: OK, as: 'b' },
      { at: 0, cancel: 'a' },
      { at: 0, read: { remaining: { rps: 1 }, resetMs: { rps: 500 }, inFlight: 1 } },
      { at: 0, acquire: {}, expect: no('concurrency', 0) },
    ],
  },

  // ───────────────────────── (h) setPolicy (the store rebases on first use) ─────────────────────────
  // rebase (advance.ts): a limit with the same name, algorithm and interval keeps its state; a
  // token bucket whose interval changed keeps its fill rescaled (rounded up); any other limit
  // starts empty; slots held stay held. Each policy change is followed by a step at the same
  // instant, so the rebase instant is unambiguous.
  {
    // rps 10/s, 5 taken (used 5000). Lowered to 5/s: the fill is kept, now full (5000 of 5000):
    // remaining 0, resetMs ⌈5000/5⌉ = 1000; a unit waits ⌈1000/5⌉ = 200, and fits at 200.
    name: 'setPolicy: lowering a limit keeps what was used, the key may be full at once',
    policy: { limits: [{ name: 'rps', limit: 10, interval: '1s' }] },
    steps: [
      { at: 0, acquire: { requests: 5 }, expect: OK },
      { at: 0, setPolicy: { limits: [{ name: 'rps', limit: 5, interval: '1s' }] } },
      { at: 0, read: { remaining: { rps: 0 }, resetMs: { rps: 1000 } } },
      { at: 0, acquire: {}, expect: no('rps', 200) },
      { at: 200, acquire: {}, expect: OK },
    ],
  },
  {
    // #10: rpw (fixed window, 4 per 1.5 s) is dropped by one change and brought back by the next.
    // A takes 2 at 0. Under the policy without rpw, a decision at 0 rebases the key: rpw's state
    // is dropped, so the key takes a new epoch (advance.ts restarts). rpw comes back empty; B takes
    // 1. A settled to 0 gives nothing back (its 2 were in the dropped state): rpw remaining 3.
    // Before, A's refund went into rpw's new state: remaining 4, one more than the window allows.
    name: 'setPolicy: a grant made before a limit was dropped gives nothing back to it when it returns',
    policy: {
      limits: [
        { name: 'rps', limit: 10, interval: '1s' },
        { name: 'rpw', limit: 4, interval: 1500, algorithm: 'fixed-window' },
      ],
    },
    steps: [
      { at: 0, acquire: { requests: 2 }, expect: OK, as: 'A' },
      { at: 0, setPolicy: { limits: [{ name: 'rps', limit: 10, interval: '1s' }] } },
      { at: 0, acquire: {}, expect: OK },
      {
        at: 0,
        setPolicy: {
          limits: [
            { name: 'rps', limit: 10, interval: '1s' },
            { name: 'rpw', limit: 4, interval: 1500, algorithm: 'fixed-window' },
          ],
        },
      },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, settle: 'A', actual: { requests: 0 } },
      { at: 0, read: { remaining: { rpw: 3 } } },
    ],
  },
  {
    // rps 2/s, full (a unit waits 500). Raised to 4/s: used 2000 of 4000, remaining 2, resetMs
    // ⌈2000/4⌉ = 500. Two more fit; then one waits ⌈1000/4⌉ = 250.
    name: 'setPolicy: raising a limit opens the new room at once',
    policy: { limits: [{ name: 'rps', limit: 2, interval: '1s' }] },
    steps: [
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: no('rps', 500) },
      { at: 0, setPolicy: { limits: [{ name: 'rps', limit: 4, interval: '1s' }] } },
      { at: 0, read: { remaining: { rps: 2 }, resetMs: { rps: 500 } } },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: no('rps', 250) },
    ],
  },
  {
    // rps 2 per 1 s: 2 at 0 (used 2000); at 500 used 1000. The interval becomes 2 s: the fill is
    // rescaled ⌈1000 × 2000 / 1000⌉ = 2000 of 4000 (half full, as before): remaining 1, resetMs
    // ⌈2000/2⌉ = 1000. One fits (4000); the next waits ⌈2000/2⌉ = 1000.
    name: 'setPolicy: a token bucket whose interval changes keeps its fill, rescaled',
    policy: { limits: [{ name: 'rps', limit: 2, interval: '1s' }] },
    steps: [
      { at: 0, acquire: { requests: 2 }, expect: OK },
      { at: 500, setPolicy: { limits: [{ name: 'rps', limit: 2, interval: '2s' }] } },
      { at: 500, read: { remaining: { rps: 1 }, resetMs: { rps: 1000 } } },
      { at: 500, acquire: {}, expect: OK },
      { at: 500, acquire: {}, expect: no('rps', 1000) },
    ],
  },
  {
    // rps token bucket 1/s, full at 0. At 100 rps becomes a fixed window (another algorithm:
    // starts empty, window [0, 1000)) and a new limit perMinute 5/min appears (starts empty).
    // One fits; the next is refused by the window until 1000: 900 (perMinute: 60,000 of 300,000
    // used, remaining 4, resetMs ⌈60,000/5⌉ = 12,000).
    name: 'setPolicy: a limit with a new algorithm or a new name starts empty',
    policy: ONE_PER_SECOND,
    steps: [
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: no('rps', 1000) },
      {
        at: 100,
        setPolicy: {
          limits: [
            { name: 'rps', limit: 1, interval: 1000, algorithm: 'fixed-window' },
            { name: 'perMinute', limit: 5, interval: '1m' },
          ],
        },
      },
      { at: 100, read: { remaining: { rps: 1, perMinute: 5 }, resetMs: { rps: 0, perMinute: 0 } } },
      { at: 100, acquire: {}, expect: OK },
      { at: 100, acquire: {}, expect: no('rps', 900) },
      {
        at: 100,
        read: { remaining: { rps: 0, perMinute: 4 }, resetMs: { rps: 900, perMinute: 12_000 } },
      },
    ],
  },
  {
    // A store takes a new policy at the key's next decision: reads in between see the state
    // rebased but write nothing. rps 2/s, 2 taken at 0 (used 2000, full), raised to 4/s. At 250
    // the stored state (old policy, at 0) drains at the old rate: used 2000 − 2·250 = 1500, kept
    // (same interval, higher rate): remaining ⌊(4000 − 1500)/1000⌋ = 2, resetMs ⌈1500/4⌉ = 375.
    // At 500, again from the stored state: used 1000: remaining 3, resetMs 250 (had the read at
    // 250 taken the policy, the new rate from 250 would leave 500: resetMs 125). The grant at 500
    // books under the new policy: used 2000; at 750 the new rate drains 4·250: used 1000.
    name: 'setPolicy: a read between the change and the next decision changes nothing',
    policy: { limits: [{ name: 'rps', limit: 2, interval: '1s' }] },
    steps: [
      { at: 0, acquire: { requests: 2 }, expect: OK },
      { at: 0, setPolicy: { limits: [{ name: 'rps', limit: 4, interval: '1s' }] } },
      { at: 250, read: { remaining: { rps: 2 }, resetMs: { rps: 375 } } },
      { at: 500, read: { remaining: { rps: 3 }, resetMs: { rps: 250 } } },
      { at: 500, acquire: {}, expect: OK },
      { at: 750, read: { remaining: { rps: 3 }, resetMs: { rps: 250 } } },
    ],
  },
  {
    // A decision does, even a refusal. rps 10/s, 10 taken at 0 (used 10,000), lowered to 1/s
    // (capacity 1). At 100 the stored state drains at the old rate: used 9000, kept (same
    // interval; a lower rate sets emptiedAt); a unit waits ⌈(9000 + 1000 − 1000)/1⌉ = 9000, and
    // the key is now under the new policy: at 200 the new rate drained 100: used 8900, wait 8900
    // (had the refusal written nothing, the old rate would have drained 2000: wait 8000).
    name: 'setPolicy: the first decision after the change, even a refusal, takes the new policy',
    policy: { limits: [{ name: 'rps', limit: 10, interval: '1s' }] },
    steps: [
      { at: 0, acquire: { requests: 10 }, expect: OK },
      { at: 0, setPolicy: { limits: [{ name: 'rps', limit: 1, interval: '1s' }] } },
      { at: 100, acquire: {}, expect: no('rps', 9000) },
      { at: 200, acquire: {}, expect: no('rps', 8900) },
    ],
  },
  {
    // rps 2 per 1 s: g 2 at 0 (used 2000); at 500 used 1000. The interval becomes 2 s: the fill
    // is rescaled to 2000 of 4000 (remaining 1, resetMs ⌈2000/2⌉ = 1000), and g's mark, in the
    // old scale, means nothing: grants booked up to the change give back nothing (emptiedAt 501).
    // Cancelling g leaves the bucket as it was.
    name: 'setPolicy: a grant from before a token bucket’s interval changed gives back nothing',
    policy: { limits: [{ name: 'rps', limit: 2, interval: '1s' }] },
    steps: [
      { at: 0, acquire: { requests: 2 }, expect: OK, as: 'g' },
      { at: 500, setPolicy: { limits: [{ name: 'rps', limit: 2, interval: '2s' }] } },
      { at: 500, read: { remaining: { rps: 1 }, resetMs: { rps: 1000 } } },
      { at: 500, cancel: 'g' },
      { at: 500, read: { remaining: { rps: 1 }, resetMs: { rps: 1000 } } },
      { at: 500, acquire: {}, expect: OK },
      { at: 500, acquire: {}, expect: no('rps', 1000) },
    ],
  },
  {
    // rps 10/s: g 5 at 0 (used 5000). Lowered to 5/s (same interval): the fill is kept, full, but
    // the drain since g at the new rate would be underestimated for a grant booked before, so
    // grants up to the change give back nothing (conservative): after cancelling g, remaining 0,
    // resetMs ⌈5000/5⌉ = 1000, a unit waits ⌈1000/5⌉ = 200.
    name: 'setPolicy: a grant from before a token bucket’s rate was lowered gives back nothing',
    policy: { limits: [{ name: 'rps', limit: 10, interval: '1s' }] },
    steps: [
      { at: 0, acquire: { requests: 5 }, expect: OK, as: 'g' },
      { at: 0, setPolicy: { limits: [{ name: 'rps', limit: 5, interval: '1s' }] } },
      { at: 0, cancel: 'g' },
      { at: 0, read: { remaining: { rps: 0 }, resetMs: { rps: 1000 } } },
      { at: 0, acquire: {}, expect: no('rps', 200) },
    ],
  },
  {
    // Sliding 5 per 1000 ms, 3 at 0. Lowered to 2: the log is kept, 3 > 2 (remaining 0, resetMs
    // 1000). At 500 one unit is over by 2, freed when the entry at 0 expires: 500. At 1000 two fit,
    // the third waits for them: 1000.
    name: 'setPolicy: a sliding window keeps its log when its limit is lowered',
    policy: { limits: [{ name: 'sw', limit: 5, interval: 1000, algorithm: 'sliding-window' }] },
    steps: [
      { at: 0, acquire: { requests: 3 }, expect: OK },
      {
        at: 0,
        setPolicy: {
          limits: [{ name: 'sw', limit: 2, interval: 1000, algorithm: 'sliding-window' }],
        },
      },
      { at: 0, read: { remaining: { sw: 0 }, resetMs: { sw: 1000 } } },
      { at: 500, acquire: {}, expect: no('sw', 500) },
      { at: 1000, acquire: {}, expect: OK },
      { at: 1000, acquire: {}, expect: OK },
      { at: 1000, acquire: {}, expect: no('sw', 1000) },
    ],
  },
  {
    // Fixed window 1 per 1000 ms, full at 0. Its interval becomes 2000: a window limit whose
    // interval changed starts empty (window [0, 2000)): one fits, the next waits 2000.
    name: 'setPolicy: a fixed window whose interval changes starts empty',
    policy: { limits: [{ name: 'fw', limit: 1, interval: 1000, algorithm: 'fixed-window' }] },
    steps: [
      { at: 0, acquire: {}, expect: OK },
      {
        at: 0,
        setPolicy: {
          limits: [{ name: 'fw', limit: 1, interval: 2000, algorithm: 'fixed-window' }],
        },
      },
      { at: 0, read: { remaining: { fw: 1 }, resetMs: { fw: 0 } } },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, acquire: {}, expect: no('fw', 2000) },
    ],
  },
  {
    // tps 100/s, 80 at 0 (used 80,000). Raised to 200/s (same name and interval: fill kept):
    // remaining 120, resetMs ⌈80,000/200⌉ = 400. Settling the old grant to 20 refunds 60 exactly:
    // used 20,000, remaining 180, resetMs 100. 180 fit; one more waits ⌈1000/200⌉ = 5.
    name: 'setPolicy: a grant from before the change settles exactly under the new policy',
    policy: TOKENS_PER_SECOND,
    steps: [
      { at: 0, acquire: { tokens: 80 }, expect: OK, as: 'g1' },
      {
        at: 0,
        setPolicy: { limits: [{ name: 'tps', limit: 200, interval: '1s', dimension: 'tokens' }] },
      },
      { at: 0, read: { remaining: { tps: 120 }, resetMs: { tps: 400 } } },
      { at: 0, settle: 'g1', actual: { tokens: 20 } },
      { at: 0, read: { remaining: { tps: 180 }, resetMs: { tps: 100 } } },
      { at: 0, acquire: { tokens: 180 }, expect: OK },
      { at: 0, acquire: { tokens: 1 }, expect: no('tps', 5) },
    ],
  },
  {
    // concurrency 2 with both slots held, lowered to 1: slots held stay held (inFlight 2).
    // Releasing one leaves 1 held, still at the new maximum: refused (0). Releasing the other
    // frees room for one.
    name: 'setPolicy: lowering concurrency keeps the slots already held',
    policy: { concurrency: 2, limits: [] },
    steps: [
      { at: 0, acquire: {}, expect: OK, as: 'g1' },
      { at: 0, acquire: {}, expect: OK, as: 'g2' },
      { at: 0, setPolicy: { concurrency: 1, limits: [] } },
      { at: 0, read: { remaining: {}, inFlight: 2 } },
      { at: 0, release: 'g1' },
      { at: 0, acquire: {}, expect: no('concurrency', 0) },
      { at: 0, release: 'g2' },
      { at: 0, acquire: {}, expect: OK },
      { at: 0, read: { remaining: {}, inFlight: 1 } },
    ],
  },
];
