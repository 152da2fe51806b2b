/**
 * Provider rate-limit feedback, parsed from headers. Header sets follow the providers' docs:
 * - OpenAI: https://platform.openai.com/docs/guides/rate-limits ("Rate limits in headers":
 *   x-ratelimit-limit-requests 60, ..., x-ratelimit-reset-tokens 6m0s), plus a set seen on
 *   https://community.openai.com/t/how-to-get-rate-limit-reset-time-for-response-api/1268905
 * - Anthropic: https://docs.anthropic.com/en/api/rate-limits ("Response headers": RFC 3339
 *   resets, input/output token families, retry-after)
 * - retry-after: RFC 9110 §10.2.3 and §5.6.7 (HTTP-date), https://www.rfc-editor.org/rfc/rfc9110
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  feedbackFromResponse,
  parseGoDuration,
  parseRateLimitHeaders,
  parseRetryAfter,
  type HeaderSource,
  type ProviderLimit,
} from '../../src/llm/headers.js';

const t0 = Date.UTC(2024, 4, 1, 12, 0, 0); // 2024-05-01T12:00:00Z

const openai = (
  dimension: ProviderLimit['dimension'],
  limit: number | null,
  remaining: number | null,
  resetMs: number | null,
): ProviderLimit => ({ dimension, limit, remaining, resetMs, provider: 'openai' });
const anthropic = (
  dimension: ProviderLimit['dimension'],
  limit: number | null,
  remaining: number | null,
  resetMs: number | null,
): ProviderLimit => ({ dimension, limit, remaining, resetMs, provider: 'anthropic' });

describe('parseRateLimitHeaders: OpenAI', () => {
  const rows: { name: string; headers: Record<string, string>; want: ProviderLimit[] }[] = [
    {
      name: 'the sample set of the rate-limits guide',
      headers: {
        'x-ratelimit-limit-requests': '60',
        'x-ratelimit-limit-tokens': '150000',
        'x-ratelimit-remaining-requests': '59',
        'x-ratelimit-remaining-tokens': '149984',
        'x-ratelimit-reset-requests': '1s',
        'x-ratelimit-reset-tokens': '6m0s',
      },
      want: [openai('requests', 60, 59, 1000), openai('tokens', 150000, 149984, 360000)],
    },
    {
      name: 'a set with ms resets and the unparsed tokens_usage_based family',
      headers: {
        'x-ratelimit-limit-requests': '5000',
        'x-ratelimit-limit-tokens': '160000',
        'x-ratelimit-limit-tokens_usage_based': '160000',
        'x-ratelimit-remaining-requests': '4999',
        'x-ratelimit-remaining-tokens': '159976',
        'x-ratelimit-remaining-tokens_usage_based': '159976',
        'x-ratelimit-reset-requests': '12ms',
        'x-ratelimit-reset-tokens': '9ms',
        'x-ratelimit-reset-tokens_usage_based': '9ms',
      },
      want: [openai('requests', 5000, 4999, 12), openai('tokens', 160000, 159976, 9)],
    },
    {
      name: 'an exhausted token limit with a fractional reset',
      headers: {
        'x-ratelimit-limit-tokens': '30000',
        'x-ratelimit-remaining-tokens': '0',
        'x-ratelimit-reset-tokens': '20.123s',
      },
      want: [openai('tokens', 30000, 0, 20123)],
    },
    {
      name: 'only the request family',
      headers: { 'x-ratelimit-remaining-requests': '9999', 'x-ratelimit-reset-requests': '1m30s' },
      want: [openai('requests', null, 9999, 90000)],
    },
    {
      name: "Azure's -1 / 0 placeholders: negatives ignored, a bare 0 reset is 0",
      headers: {
        'x-ratelimit-limit-tokens': '-1',
        'x-ratelimit-remaining-tokens': '-1',
        'x-ratelimit-reset-tokens': '0',
      },
      want: [openai('tokens', null, null, 0)],
    },
  ];
  for (const { name, headers, want } of rows) {
    it(`reads ${name}`, () => {
      expect(parseRateLimitHeaders(headers, t0)).toEqual({ retryAfterMs: null, limits: want });
    });
  }
});

describe('parseRateLimitHeaders: Anthropic', () => {
  const rows: { name: string; headers: Record<string, string>; want: ProviderLimit[] }[] = [
    {
      name: 'all four families of a 200 response',
      headers: {
        'anthropic-ratelimit-requests-limit': '1000',
        'anthropic-ratelimit-requests-remaining': '999',
        'anthropic-ratelimit-requests-reset': '2024-05-01T12:00:01Z',
        'anthropic-ratelimit-tokens-limit': '96000',
        'anthropic-ratelimit-tokens-remaining': '95000',
        'anthropic-ratelimit-tokens-reset': '2024-05-01T12:00:30Z',
        'anthropic-ratelimit-input-tokens-limit': '80000',
        'anthropic-ratelimit-input-tokens-remaining': '79000',
        'anthropic-ratelimit-input-tokens-reset': '2024-05-01T12:00:30Z',
        'anthropic-ratelimit-output-tokens-limit': '16000',
        'anthropic-ratelimit-output-tokens-remaining': '16000',
        'anthropic-ratelimit-output-tokens-reset': '2024-05-01T12:00:00Z',
        'request-id': 'req_011CSLsW7mFqvHHnzrKdKjAE',
      },
      want: [
        anthropic('requests', 1000, 999, 1000),
        anthropic('tokens', 96000, 95000, 30000),
        anthropic('inputTokens', 80000, 79000, 30000),
        anthropic('outputTokens', 16000, 16000, 0),
      ],
    },
    {
      name: 'fractional seconds, rounded up to whole ms',
      headers: { 'anthropic-ratelimit-requests-reset': '2024-05-01T12:00:00.123456Z' },
      want: [anthropic('requests', null, null, 124)],
    },
    {
      name: 'a positive offset (12:00:30Z written as 14:00:30+02:00)',
      headers: { 'anthropic-ratelimit-tokens-reset': '2024-05-01T14:00:30+02:00' },
      want: [anthropic('tokens', null, null, 30000)],
    },
    {
      name: 'a negative offset (12:00:30Z written as 06:30:30-05:30)',
      headers: { 'anthropic-ratelimit-tokens-reset': '2024-05-01T06:30:30-05:30' },
      want: [anthropic('tokens', null, null, 30000)],
    },
    {
      name: 'a reset already in the past as 0',
      headers: { 'anthropic-ratelimit-requests-reset': '2024-05-01T11:59:00Z' },
      want: [anthropic('requests', null, null, 0)],
    },
    {
      name: 'lower-case t and z, which RFC 3339 allows',
      headers: { 'anthropic-ratelimit-requests-reset': '2024-05-01t12:00:02z' },
      want: [anthropic('requests', null, null, 2000)],
    },
  ];
  for (const { name, headers, want } of rows) {
    it(`reads ${name}`, () => {
      expect(parseRateLimitHeaders(headers, t0)).toEqual({ retryAfterMs: null, limits: want });
    });
  }

  it('reads a 429 with retry-after and an exhausted input-token limit', () => {
    const got = parseRateLimitHeaders(
      {
        'retry-after': '27',
        'anthropic-ratelimit-input-tokens-limit': '40000',
        'anthropic-ratelimit-input-tokens-remaining': '0',
        'anthropic-ratelimit-input-tokens-reset': '2024-05-01T12:00:27Z',
      },
      t0,
    );
    expect(got).toEqual({
      retryAfterMs: 27000,
      limits: [anthropic('inputTokens', 40000, 0, 27000)],
    });
  });

  it.each([
    '2024-05-01',
    '2024-05-01T12:00:30',
    'Wed, 01 May 2024 12:00:30 GMT',
    '1714564830',
    '2024-13-01T12:00:30Z',
    '2024-02-30T12:00:30Z',
    '2024-05-01T24:00:00Z',
    '2024-05-01T12:00:30+24:00',
    '2024-05-01T12:00:30.Z',
  ])('ignores the reset %j, which is not RFC 3339', (reset) => {
    const got = parseRateLimitHeaders(
      {
        'anthropic-ratelimit-requests-reset': reset,
        'anthropic-ratelimit-requests-remaining': '3',
      },
      t0,
    );
    expect(got.limits).toEqual([anthropic('requests', null, 3, null)]);
  });

  it('accepts 29 February of a leap year and a leap second', () => {
    const leap = Date.UTC(2024, 1, 29, 0, 0, 0);
    const h = (reset: string): HeaderSource => ({ 'anthropic-ratelimit-tokens-reset': reset });
    expect(parseRateLimitHeaders(h('2024-02-29T00:00:05Z'), leap).limits[0]!.resetMs).toBe(5000);
    expect(parseRateLimitHeaders(h('2023-02-29T00:00:05Z'), leap).limits).toEqual([]);
    const eod = Date.UTC(2016, 11, 31, 23, 59, 59);
    expect(parseRateLimitHeaders(h('2016-12-31T23:59:60Z'), eod).limits[0]!.resetMs).toBe(1000);
  });
});

describe('parseRateLimitHeaders: mixed and odd inputs', () => {
  it('reads both families when a proxy forwards both', () => {
    const got = parseRateLimitHeaders(
      {
        'x-ratelimit-remaining-requests': '1',
        'anthropic-ratelimit-requests-remaining': '2',
      },
      t0,
    );
    expect(got.limits).toEqual([
      openai('requests', null, 1, null),
      anthropic('requests', null, 2, null),
    ]);
  });

  it('returns no limits and no retry delay for a response without rate-limit headers', () => {
    const headers = { 'content-type': 'application/json', date: 'Wed, 01 May 2024 12:00:00 GMT' };
    expect(parseRateLimitHeaders(headers, t0)).toEqual({ retryAfterMs: null, limits: [] });
    expect(parseRateLimitHeaders({}, t0)).toEqual({ retryAfterMs: null, limits: [] });
    expect(parseRateLimitHeaders([], t0)).toEqual({ retryAfterMs: null, limits: [] });
  });

  const sample = {
    'X-RateLimit-Limit-Requests': '60',
    'x-ratelimit-remaining-REQUESTS': '59',
    'X-RATELIMIT-RESET-REQUESTS': '1s',
    'Retry-After': '2',
  };
  const want = { retryAfterMs: 2000, limits: [openai('requests', 60, 59, 1000)] };
  const sources: [string, HeaderSource][] = [
    ['a record with mixed-case names', sample],
    ['a WHATWG Headers', new Headers(sample)],
    ['an array of pairs', Object.entries(sample)],
    ['a Map', new Map(Object.entries(sample))],
    [
      'a record with array values',
      Object.fromEntries(Object.entries(sample).map(([k, v]) => [k, [v]])),
    ],
  ];
  for (const [name, source] of sources) {
    it(`reads ${name} the same way`, () => {
      expect(parseRateLimitHeaders(source, t0)).toEqual(want);
    });
  }

  it('takes the first of repeated values, and ignores a comma-joined one', () => {
    const pairs: [string, string][] = [
      ['x-ratelimit-remaining-requests', '4'],
      ['X-Ratelimit-Remaining-Requests', '9'],
    ];
    expect(parseRateLimitHeaders(pairs, t0).limits).toEqual([openai('requests', null, 4, null)]);
    const record = {
      'x-ratelimit-remaining-requests': ['4', '9'],
      'x-ratelimit-limit-requests': undefined,
    };
    expect(parseRateLimitHeaders(record, t0).limits).toEqual([openai('requests', null, 4, null)]);
    const joined = new Headers(pairs); // Headers joins repeats: "4, 9"
    expect(joined.get('x-ratelimit-remaining-requests')).toBe('4, 9');
    expect(parseRateLimitHeaders(joined, t0).limits).toEqual([]);
  });

  it('reads a retry-after sent twice (joined "5, 10" by Headers) as the longer delay', () => {
    const joined = new Headers([
      ['retry-after', '5'],
      ['retry-after', '10'],
      ['retry-after-ms', '250'],
      ['retry-after-ms', '1500.5'],
    ]);
    expect(joined.get('retry-after')).toBe('5, 10');
    expect(parseRateLimitHeaders(joined, t0).retryAfterMs).toBe(1501);
    expect(parseRetryAfter('5, 10', t0)).toBe(10_000);
    expect(parseRetryAfter('5, soon', t0)).toBeNull(); // not every part is a delay
    // An HTTP-date has a comma of its own and is still a date.
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:30 GMT', Date.UTC(2015, 9, 21, 7, 28))).toBe(
      30_000,
    );
  });

  it.each([
    ['negative', '-5'],
    ['a decimal', '59.5'],
    ['empty', ''],
    ['a word', 'unlimited'],
    ['exponent notation', '6e4'],
    ['hexadecimal', '0x3c'],
    ['beyond a safe integer', '9007199254740993'],
    ['a huge number', '1'.repeat(400)],
  ])('ignores a count that is %s and keeps the other fields', (_, bad) => {
    const got = parseRateLimitHeaders(
      {
        'x-ratelimit-limit-tokens': bad,
        'x-ratelimit-remaining-tokens': '100',
        'x-ratelimit-reset-tokens': 'soon',
      },
      t0,
    );
    expect(got.limits).toEqual([openai('tokens', null, 100, null)]);
  });

  it('trims whitespace around values', () => {
    const got = parseRateLimitHeaders(
      { 'x-ratelimit-remaining-tokens': ' 100 ', 'x-ratelimit-reset-tokens': ' 2s\t' },
      t0,
    );
    expect(got.limits).toEqual([openai('tokens', null, 100, 2000)]);
  });

  it('keeps the largest safe count and ignores the next', () => {
    const max = String(Number.MAX_SAFE_INTEGER);
    const got = parseRateLimitHeaders({ 'x-ratelimit-limit-tokens': max }, t0);
    expect(got.limits).toEqual([openai('tokens', Number.MAX_SAFE_INTEGER, null, null)]);
  });

  it('nulls time-dependent fields when now is not finite, without throwing', () => {
    const got = parseRateLimitHeaders(
      { 'anthropic-ratelimit-requests-reset': '2024-05-01T12:00:01Z', 'retry-after': '3' },
      Number.NaN,
    );
    expect(got).toEqual({ retryAfterMs: 3000, limits: [] });
  });

  it('never throws, whatever the names and values', () => {
    const name = fc.oneof(
      fc.string(),
      fc.constantFrom(
        'retry-after',
        'retry-after-ms',
        'x-ratelimit-limit-requests',
        'x-ratelimit-reset-tokens',
        'anthropic-ratelimit-tokens-reset',
        'anthropic-ratelimit-output-tokens-remaining',
      ),
    );
    const value = fc.oneof(fc.string(), fc.stringMatching(/^[\d.:TZ+\-hmsµun ]{0,30}$/));
    fc.assert(
      fc.property(fc.array(fc.tuple(name, value)), fc.integer(), (pairs, now) => {
        const got = parseRateLimitHeaders(pairs, now);
        for (const l of got.limits) {
          for (const v of [l.limit, l.remaining, l.resetMs]) {
            expect(v === null || (Number.isSafeInteger(v) && v >= 0)).toBe(true);
          }
        }
        expect(got.retryAfterMs === null || got.retryAfterMs >= 0).toBe(true);
      }),
    );
  });

  it('does not throw on inputs a JavaScript caller might pass by mistake', () => {
    for (const bad of [null, undefined, 42, 'x-ratelimit-limit-requests: 5', [1, 2], [[1, 2]]]) {
      expect(parseRateLimitHeaders(bad as unknown as HeaderSource, t0)).toEqual({
        retryAfterMs: null,
        limits: [],
      });
    }
  });
});

describe('parseGoDuration', () => {
  const rows: [string, number | null][] = [
    ['1s', 1000],
    ['6m0s', 360000],
    ['12ms', 12],
    ['1h2m3.5s', 3723500],
    ['0.5s', 500],
    ['20.123s', 20123],
    ['1m30s', 90000],
    ['1.5ms', 2], // rounded up
    ['500us', 1],
    ['500µs', 1], // U+00B5
    ['500μs', 1], // U+03BC
    ['1500000ns', 2],
    ['1ns', 1],
    ['0', 0],
    ['0s', 0],
    ['+3s', 3000],
    ['.5s', 500],
    ['1.s', 1000],
    ['2h45m', 9900000],
    ['1h1h', 7200000], // Go allows repeats
    ['0.0000000001s', 0], // below 1 ns, truncated as Go does
    ['', null],
    ['60', null], // a unit is required
    ['-1s', null],
    ['1d', null],
    ['1S', null],
    ['1 s', null],
    ['1e3s', null],
    ['.s', null],
    ['s', null],
    ['NaN', null],
    ['Infinity', null],
    ['9'.repeat(20) + 'h', null], // beyond a safe integer of ms
    ['1' + '0'.repeat(70) + 's', null], // over the length cap
  ];
  it.each(rows)('parses %j as %j', (s, want) => {
    expect(parseGoDuration(s)).toBe(want);
  });

  it('returns null for null and undefined', () => {
    expect(parseGoDuration(null)).toBeNull();
    expect(parseGoDuration(undefined)).toBeNull();
  });

  it('round-trips: formatting d ≥ 0 ms as a Go duration and parsing it gives ceil(d)', () => {
    // ns up to ~104 days; d = ns / 1e6 ms; also whole ms written with ms/s/m/h.
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 9n * 10n ** 15n }), (ns) => {
        const ceilMs = Number((ns + 999_999n) / 1_000_000n);
        expect(parseGoDuration(formatGo(ns))).toBe(ceilMs);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), (ms) => {
        expect(parseGoDuration(formatGo(BigInt(ms) * 1_000_000n))).toBe(ms);
      }),
    );
  });

  it('formats the way Go does (checks the formatter itself)', () => {
    expect(formatGo(0n)).toBe('0s');
    expect(formatGo(1n)).toBe('1ns');
    expect(formatGo(1_500n)).toBe('1.5µs');
    expect(formatGo(12_000_000n)).toBe('12ms');
    expect(formatGo(360_000_000_000n)).toBe('6m0s');
    expect(formatGo(3_723_500_000_000n)).toBe('1h2m3.5s');
  });
});

describe('parseRetryAfter', () => {
  const now = Date.UTC(2015, 9, 21, 7, 28, 0); // Wed, 21 Oct 2015 07:28:00 GMT
  const rows: [string, number | null][] = [
    ['120', 120000],
    ['0', 0],
    ['1.5', 1500],
    ['0.0001', 1], // rounded up
    ['007', 7000],
    [' 3 ', 3000],
    ['Wed, 21 Oct 2015 07:28:30 GMT', 30000],
    ['Wed, 21 Oct 2015 07:28:00 GMT', 0],
    ['Wed, 21 Oct 2015 07:27:00 GMT', 0], // in the past
    ['Thu, 22 Oct 2015 07:28:00 GMT', 86400000],
    ['Wednesday, 21-Oct-15 07:28:30 GMT', 30000], // RFC 850
    ['Wed Oct 21 07:28:30 2015', 30000], // asctime
    ['Sun Nov  6 08:49:37 1994', 0], // asctime, one-digit day, in the past
    ['-5', null],
    ['', null],
    ['soon', null],
    ['1e3', null],
    ['0x10', null],
    ['+5', null],
    ['5s', null],
    ['Wed, 32 Oct 2015 07:28:30 GMT', null],
    ['Wed, 21 Foo 2015 07:28:30 GMT', null],
    ['Wed, 21 Oct 2015 07:28:30 UTC', null],
    ['Wed, 21 Oct 2015 07:28:30 +0000', null],
    ['2015-10-21T07:28:30Z', null],
    ['9'.repeat(30), null], // beyond a safe integer of ms
  ];
  it.each(rows)('reads %j as %j', (value, want) => {
    expect(parseRetryAfter(value, now)).toBe(want);
  });

  it('returns null for null and undefined', () => {
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter(undefined, now)).toBeNull();
  });

  it('reads an RFC 850 two-digit year as the most recent past one when 50+ years ahead', () => {
    const in2080 = Date.UTC(2080, 0, 1);
    // "99" is 2099 from 2080 (19 years ahead), but 1999 from 2015 (84 years ahead).
    expect(parseRetryAfter('Friday, 01-Jan-99 00:00:00 GMT', in2080)).toBe(
      Date.UTC(2099, 0, 1) - in2080,
    );
    expect(parseRetryAfter('Friday, 01-Jan-99 00:00:00 GMT', now)).toBe(0);
  });

  it('agrees with delay-seconds for any whole number of seconds', () => {
    fc.assert(
      fc.property(fc.nat({ max: 10 ** 9 }), fc.integer(), (s, at) => {
        expect(parseRetryAfter(String(s), at)).toBe(s * 1000);
      }),
    );
  });

  it('prefers a valid retry-after-ms over retry-after, and falls back when it is not', () => {
    const at = (h: HeaderSource): number | null => parseRateLimitHeaders(h, t0).retryAfterMs;
    expect(at({ 'retry-after-ms': '1234', 'retry-after': '5' })).toBe(1234);
    expect(at({ 'retry-after-ms': '0.2', 'retry-after': '5' })).toBe(1);
    expect(at({ 'retry-after-ms': '-1', 'retry-after': '5' })).toBe(5000);
    expect(at({ 'retry-after-ms': 'abc', 'retry-after': '5' })).toBe(5000);
    expect(at({ 'Retry-After-Ms': '20' })).toBe(20);
    expect(at({ 'retry-after': 'Wed, 01 May 2024 12:00:10 GMT' })).toBe(10000);
  });
});

describe('feedbackFromResponse', () => {
  const rows: { status: number; headers: Record<string, string>; throttled: boolean }[] = [
    { status: 200, headers: { 'x-ratelimit-remaining-requests': '0' }, throttled: false },
    { status: 429, headers: { 'retry-after': '20' }, throttled: true },
    { status: 429, headers: {}, throttled: true },
    { status: 503, headers: { 'retry-after': '20' }, throttled: true },
    { status: 503, headers: {}, throttled: false },
    { status: 503, headers: { 'retry-after': 'later' }, throttled: false },
    { status: 529, headers: { 'retry-after': '5' }, throttled: true },
    { status: 529, headers: {}, throttled: false },
    // A proxy that sends retry-after: 0 with every error is not throttling (#17).
    { status: 503, headers: { 'retry-after': '0' }, throttled: false },
    { status: 529, headers: { 'retry-after-ms': '0' }, throttled: false },
    { status: 500, headers: { 'retry-after': '5' }, throttled: false },
  ];
  it.each(rows)('reads status $status with $headers as throttled $throttled', (row) => {
    const got = feedbackFromResponse({ status: row.status, headers: row.headers }, t0);
    expect(got.status).toBe(row.status);
    expect(got.throttled).toBe(row.throttled);
  });

  it('carries the parsed feedback of a real-looking OpenAI 429', () => {
    const headers = new Headers({
      'retry-after': '1',
      'retry-after-ms': '680',
      'x-ratelimit-limit-tokens': '30000',
      'x-ratelimit-remaining-tokens': '0',
      'x-ratelimit-reset-tokens': '679ms',
    });
    expect(feedbackFromResponse({ status: 429, headers }, t0)).toEqual({
      status: 429,
      throttled: true,
      retryAfterMs: 680,
      limits: [openai('tokens', 30000, 0, 679)],
    });
  });
});

/**
 * formatGo writes `ns` nanoseconds as Go's `time.Duration.String` does: `0s`; under a second
 * one unit with a decimal fraction (`1.5µs`, `12ms`); otherwise `[Nh][Nm]N[.fff]s`, with `0m`
 * kept after hours (`1h0m5s`, `6m0s`).
 */
function formatGo(ns: bigint): string {
  if (ns === 0n) return '0s';
  const frac = (v: bigint, per: bigint): string => {
    const whole = v / per;
    const rest = (v % per)
      .toString()
      .padStart(per.toString().length - 1, '0')
      .replace(/0+$/, '');
    return rest === '' ? `${whole}` : `${whole}.${rest}`;
  };
  if (ns < 1_000n) return `${ns}ns`;
  if (ns < 1_000_000n) return `${frac(ns, 1_000n)}µs`;
  if (ns < 1_000_000_000n) return `${frac(ns, 1_000_000n)}ms`;
  const h = ns / 3_600_000_000_000n;
  const m = (ns / 60_000_000_000n) % 60n;
  const s = `${frac(ns % 60_000_000_000n, 1_000_000_000n)}s`;
  if (h > 0n) return `${h}h${m}m${s}`;
  return m > 0n ? `${m}m${s}` : s;
}
