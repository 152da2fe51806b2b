/**
 * What an LLM provider says about its own limits, read from response headers. Pure: `now` (ms
 * since the epoch) is an argument, nothing here reads a clock or keeps state. Dated headers are
 * instants of the provider's wall clock, so pass the wall clock (`Date.now()`), not the runtime's
 * monotonic systemClock, which drifts from it by every step the wall clock took.
 *
 * Parsed (names in any case):
 * - OpenAI, https://platform.openai.com/docs/guides/rate-limits :
 *   `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`. Resets are Go durations, the
 *   time until the window is back to full: `1s`, `6m0s`, `12ms`, `1h2m3.5s`.
 * - Anthropic, https://docs.anthropic.com/en/api/rate-limits :
 *   `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`.
 *   Resets are RFC 3339 instants (`2024-05-01T12:00:30Z`), turned into ms from `now`.
 * - `retry-after` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date; and OpenAI's
 *   `retry-after-ms`, which the official SDKs prefer when present.
 *
 * Worked example at now = Date.UTC(2024, 4, 1, 12, 0, 0):
 *   x-ratelimit-reset-tokens: 6m0s                         → resetMs 360000
 *   anthropic-ratelimit-tokens-reset: 2024-05-01T12:00:30Z → resetMs 30000
 *   retry-after: 2.5                                       → retryAfterMs 2500
 *
 * A malformed, negative or unrepresentable value is ignored (its field is null) and never
 * throws: an odd header from a provider must not crash the caller. Every duration rounds up to
 * a whole ms, so waiting for it never comes back early. Not parsed: OpenAI's
 * `*-tokens_usage_based` and Anthropic's `priority-*` and `unified-*` families.
 */
import { checkObject } from '../checks.js';
import type { KnownDimension, Ms } from '../limiter/types.js';

/** The providers whose header families are parsed. */
export type Provider = 'openai' | 'anthropic';

/**
 * HeaderSource is anything that holds response headers: a WHATWG `Headers` (it iterates as
 * pairs), a Node-style record such as `IncomingHttpHeaders` (names in any case, array values
 * for repeated headers), or an iterable of `[name, value]` pairs such as a `Map`. When a name
 * repeats, the first value wins. A comma-joined value (what `Headers` makes of repeats) is
 * malformed for every numeric header and is ignored.
 */
export type HeaderSource =
  | Readonly<Record<string, string | readonly string[] | undefined>>
  | Iterable<readonly [string, string]>;

/** ProviderLimit is one limit a provider reported: a dimension's ceiling, what is left, when it resets. */
export interface ProviderLimit {
  /** What the limit counts. Anthropic's `tokens` is the most restrictive token limit in effect. */
  readonly dimension: KnownDimension;
  /** Units per window, a non-negative safe integer, or null when absent or malformed. */
  readonly limit: number | null;
  /** Units left in the window, a non-negative safe integer, or null when absent or malformed. */
  readonly remaining: number | null;
  /** Ms from `now` until the limit is back to full, >= 0; null when absent or malformed. */
  readonly resetMs: Ms | null;
  /** The header family it was read from. */
  readonly provider: Provider;
}

/**
 * ProviderFeedback is everything one response said about rate limits. `limits` holds one entry
 * per family and dimension with at least one field parsed, in a fixed order (OpenAI requests,
 * tokens; Anthropic requests, tokens, inputTokens, outputTokens); it is empty when none was sent.
 */
export interface ProviderFeedback {
  /** Ms to wait before retrying, >= 0, from `retry-after-ms` or else `retry-after`; null if neither parsed. */
  readonly retryAfterMs: Ms | null;
  readonly limits: ProviderLimit[];
}

// One family's dimensions: [dimension, infix in the header name].
const OPENAI: ReadonlyArray<readonly [KnownDimension, string]> = [
  ['requests', 'requests'],
  ['tokens', 'tokens'],
];
const ANTHROPIC: ReadonlyArray<readonly [KnownDimension, string]> = [
  ['requests', 'requests'],
  ['tokens', 'tokens'],
  ['inputTokens', 'input-tokens'],
  ['outputTokens', 'output-tokens'],
];

/**
 * parseRateLimitHeaders reads the OpenAI and Anthropic rate-limit headers and `retry-after`
 * from `headers`, with `now` in ms since the epoch. Both families are read when both are
 * present (a proxy may forward either). It never throws: bad values become null.
 *
 * @example
 * parseRateLimitHeaders({ 'x-ratelimit-remaining-requests': '59', 'x-ratelimit-reset-requests': '1s' }, now)
 * // { retryAfterMs: null, limits: [{ dimension: 'requests', limit: null, remaining: 59, resetMs: 1000, provider: 'openai' }] }
 */
export function parseRateLimitHeaders(headers: HeaderSource, now: Ms): ProviderFeedback {
  const h = normalize(headers);
  const limits: ProviderLimit[] = [];
  for (const [dimension, infix] of OPENAI) {
    push(limits, {
      dimension,
      limit: parseCount(h.get(`x-ratelimit-limit-${infix}`)),
      remaining: parseCount(h.get(`x-ratelimit-remaining-${infix}`)),
      resetMs: parseGoDuration(h.get(`x-ratelimit-reset-${infix}`)),
      provider: 'openai',
    });
  }
  for (const [dimension, infix] of ANTHROPIC) {
    const prefix = `anthropic-ratelimit-${infix}`;
    const at = parseRfc3339(h.get(`${prefix}-reset`));
    push(limits, {
      dimension,
      limit: parseCount(h.get(`${prefix}-limit`)),
      remaining: parseCount(h.get(`${prefix}-remaining`)),
      resetMs: at === null ? null : msUntil(at, now),
      provider: 'anthropic',
    });
  }
  const retryAfterMs =
    parseSeconds(h.get('retry-after-ms'), 1) ?? parseRetryAfter(h.get('retry-after'), now);
  return { retryAfterMs, limits };
}

/**
 * feedbackFromResponse is {@link parseRateLimitHeaders} plus the status, and whether the
 * response means "slow down". `throttled` is true for 429, and for 503 or 529 (Anthropic's
 * "overloaded") only when a retry delay over 0 parsed: then the server named a time to come
 * back, which is throttling; without one (or with `retry-after: 0`, which some proxies send on
 * every error) such a status is an outage for a circuit breaker to judge, not a rate limit.
 *
 * @throws InvalidArgumentError for a response that is not an object.
 * @example
 * feedbackFromResponse({ status: res.status, headers: res.headers }, Date.now()).throttled
 */
export function feedbackFromResponse(
  res: { readonly status: number; readonly headers: HeaderSource },
  now: Ms,
): ProviderFeedback & { status: number; throttled: boolean } {
  checkObject(
    res,
    { where: 'feedbackFromResponse', path: 'res' },
    'a Response, or { status, headers }',
  );
  const feedback = parseRateLimitHeaders(res.headers, now);
  const throttled =
    res.status === 429 ||
    ((res.status === 503 || res.status === 529) &&
      feedback.retryAfterMs !== null &&
      feedback.retryAfterMs > 0);
  return { ...feedback, status: res.status, throttled };
}

const UNIT_NS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n, // U+00B5 micro sign
  μs: 1_000n, // U+03BC Greek mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};
const GO_DURATION = /^\+?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;
const GO_PART = /(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/g;
const MAX_LENGTH = 64;

/**
 * parseGoDuration reads a Go `time.Duration` string (`1h2m3.5s`, `6m0s`, `12ms`, `0.5s`,
 * `500us`, `500µs`, `10ns`, or the bare `0`) as whole ms, rounded up: `1ns` → 1. Exact (no
 * float error). Returns null for anything else: absent, empty, negative, no unit (`60`), an
 * unknown unit, over 64 characters, or more than `Number.MAX_SAFE_INTEGER` ms.
 *
 * @example parseGoDuration('1m30s') // 90000
 */
export function parseGoDuration(s: string | null | undefined): Ms | null {
  if (typeof s !== 'string') return null;
  const t = s.trim();
  if (t === '0' || t === '+0') return 0;
  if (t.length > MAX_LENGTH || !GO_DURATION.test(t)) return null;
  let ns = 0n;
  for (const [, int = '', frac = '', unit = ''] of t.matchAll(GO_PART)) {
    const per = UNIT_NS[unit] ?? 0n;
    ns += BigInt(int || '0') * per;
    // The fraction in ns, truncated as Go does; the one ms rounding below happens after summing.
    if (frac !== '') ns += (BigInt(frac) * per) / 10n ** BigInt(frac.length);
  }
  return toMs(ceilDiv(ns, 1_000_000n));
}

const IMF_FIXDATE =
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const RFC_850 = /^[A-Z][a-z]+day, (\d{2})-([A-Z][a-z]{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const ASCTIME = /^[A-Z][a-z]{2} ([A-Z][a-z]{2}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * parseRetryAfter reads a `retry-after` value as ms from `now`, >= 0. Delay-seconds may carry
 * a fraction (`1.5` → 1500, rounded up to whole ms). Dates may be IMF-fixdate
 * (`Wed, 21 Oct 2015 07:28:00 GMT`) or the obsolete RFC 850 and asctime forms RFC 9110 asks
 * recipients to accept; a date in the past gives 0; the weekday is not checked. Returns null
 * for anything else, a negative number included, or when `now` is not finite and a date needs it.
 *
 * @example parseRetryAfter('Wed, 21 Oct 2015 07:28:30 GMT', Date.UTC(2015, 9, 21, 7, 28)) // 30000
 */
export function parseRetryAfter(value: string | null | undefined, now: Ms): Ms | null {
  if (typeof value !== 'string') return null;
  const v = value.trim();
  const seconds = parseSeconds(v, 1000);
  if (seconds !== null) return seconds;
  let d: string | undefined, mon: string | undefined, y: string | undefined, hms: string[];
  let m = IMF_FIXDATE.exec(v);
  if (m) {
    [, d, mon, y, ...hms] = m;
  } else if ((m = RFC_850.exec(v))) {
    [, d, mon, y, ...hms] = m;
    y = String(fullYear(Number(y), now));
  } else if ((m = ASCTIME.exec(v))) {
    [, mon, d, ...hms] = m;
    y = hms.pop();
  } else {
    return null;
  }
  const at = utc(Number(y), MONTHS.indexOf(mon ?? '') + 1, Number(d), hms.map(Number));
  return at === null ? null : msUntil(at, now);
}

// Helpers. Each returns null for what it cannot read.

function normalize(headers: HeaderSource): Map<string, string> {
  const out = new Map<string, string>();
  const add = (name: unknown, value: unknown): void => {
    if (Array.isArray(value)) value = value.find((x) => typeof x === 'string');
    if (typeof name !== 'string' || typeof value !== 'string') return;
    const key = name.toLowerCase();
    if (!out.has(key)) out.set(key, value); // the first value wins
  };
  try {
    if (Symbol.iterator in headers) {
      for (const pair of headers as Iterable<unknown>) {
        if (Array.isArray(pair)) add(pair[0], pair[1]);
      }
    } else {
      for (const [name, value] of Object.entries(headers)) add(name, value);
    }
  } catch {
    // A hostile iterable or getter: keep what was read so far rather than throw.
  }
  return out;
}

function push(limits: ProviderLimit[], l: ProviderLimit): void {
  if (l.limit !== null || l.remaining !== null || l.resetMs !== null) limits.push(l);
}

// A count: a non-negative integer of digits only ("1000"), as a safe integer.
function parseCount(s: string | undefined): number | null {
  if (s === undefined || !/^\d+$/.test(s.trim())) return null;
  return toMs(Number(s));
}

// Non-negative decimal `s` in a unit of `msPer` ms (1 or 1000) as whole ms, rounded up exactly.
function parseSeconds(s: string | undefined, msPer: 1 | 1000): Ms | null {
  if (s !== undefined && s.includes(',')) {
    // A header sent twice is joined with ", " (Fetch's Headers): `retry-after: 5, 10`. Take the
    // longest delay, if every part is one.
    let most: Ms | null = null;
    for (const part of s.split(',')) {
      const ms = parseSeconds(part, msPer);
      if (ms === null) return null;
      most = most === null ? ms : Math.max(most, ms);
    }
    return most;
  }
  const m = s === undefined ? null : /^(\d+)(?:\.(\d+))?$/.exec(s.trim());
  if (!m || m[1]!.length > 20) return null;
  const frac = (m[2] ?? '').slice(0, 20); // digits past 1e-20 of a unit cannot change the ms
  const scale = 10n ** BigInt(frac.length);
  const units = BigInt(m[1]!) * scale + BigInt(frac || '0');
  return toMs(ceilDiv(units * BigInt(msPer), scale));
}

const RFC_3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

// An RFC 3339 instant as ms since the epoch, sub-ms fractions rounded up.
function parseRfc3339(s: string | undefined): number | null {
  const m = s === undefined ? null : RFC_3339.exec(s.trim());
  if (!m) return null;
  const [, y, mo, d, hh, mi, ss, frac = '', z, sign, oh = '0', om = '0'] = m;
  const at = utc(Number(y), Number(mo), Number(d), [Number(hh), Number(mi), Number(ss)]);
  if (at === null || Number(oh) > 23 || Number(om) > 59) return null;
  const fracMs = Number(frac.slice(0, 3).padEnd(3, '0')) + (/[1-9]/.test(frac.slice(3)) ? 1 : 0);
  const offsetMs = z ? 0 : (sign === '-' ? -1 : 1) * (Number(oh) * 60 + Number(om)) * 60_000;
  return at + fracMs - offsetMs;
}

// Ms since the epoch of a UTC date and time, every field range-checked (a second of 60 is a
// leap second and rolls over). Date.UTC would read years 0-99 as 1900-1999, so set the year apart.
function utc(
  y: number,
  mo: number,
  d: number,
  [h = NaN, mi = NaN, s = NaN]: number[],
): number | null {
  const fields = [y, mo, d, h, mi, s];
  if (!fields.every(Number.isInteger) || fields.some((f) => f < 0)) return null;
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  const days = mo === 2 ? (leap ? 29 : 28) : [4, 6, 9, 11].includes(mo) ? 30 : 31;
  if (mo < 1 || mo > 12 || d < 1 || d > days || h > 23 || mi > 59 || s > 60) return null;
  const t = new Date(0);
  t.setUTCFullYear(y, mo - 1, d);
  return t.setUTCHours(h, mi, s, 0);
}

// RFC 9110: a two-digit year more than 50 years ahead of now is in the past century.
function fullYear(yy: number, now: Ms): number {
  const current = Number.isFinite(now) ? new Date(now).getUTCFullYear() : 2000;
  const year = Math.floor(current / 100) * 100 + yy;
  return year > current + 50 ? year - 100 : year;
}

function msUntil(at: number, now: Ms): Ms | null {
  if (!Number.isFinite(now)) return null;
  return Math.max(0, Math.ceil(at - now));
}

function ceilDiv(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b;
}

function toMs(v: bigint | number): Ms | null {
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}
