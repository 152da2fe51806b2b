import { describe, expect, it } from 'vitest';
import {
  CostExceedsCapacityError,
  InvalidArgumentError,
  isTollgateError,
} from '../../src/errors.js';
import { compileCost, compilePolicy } from '../../src/limiter/index.js';
import type { CostSpec, PolicySpec } from '../../src/limiter/index.js';
import { MAX_INTERVAL_MS } from '../../src/limiter/units.js';
import {
  checkOptionNames,
  editDistance,
  MAX_SCALED,
  MAX_UNITS,
} from '../../src/limiter/validate.js';

/** Run `f`, expect it to throw, and return what it threw. */
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

function expectInvalid(f: () => unknown, message: string | RegExp): InvalidArgumentError {
  const e = thrown(f);
  expect(e).toBeInstanceOf(InvalidArgumentError);
  expect(isTollgateError(e)).toBe(true);
  const err = e as InvalidArgumentError;
  expect(err.code).toBe('INVALID_ARGUMENT');
  expect(err.name).toBe('InvalidArgumentError');
  expect(err.message).toMatch(/^tollgate: /);
  if (typeof message === 'string') expect(err.message).toBe(message);
  else expect(err.message).toMatch(message);
  return err;
}

const spec = (s: unknown): PolicySpec => s as PolicySpec;
const one = (limit: Record<string, unknown>, rest: Record<string, unknown> = {}): PolicySpec =>
  spec({ limits: [{ limit: 10, interval: '1s', ...limit }], ...rest });

/** What a duration may be, as every message about one says it (#11). */
const DURATION =
  "a duration from 1 ms to 366 days, as ms or a string like '500ms', '2s', '5m', '1h' or '1d'";
const P = 'tollgate: compilePolicy: ';
const LIMIT = 'expected a positive integer (how many per interval)';
const BURST = 'expected a positive integer (the most admitted at once)';
const CONCURRENCY = 'expected a positive integer (calls in flight at once)';
const ALGORITHMS = "expected one of 'token-bucket', 'sliding-window', 'fixed-window'";

describe('compilePolicy', () => {
  // Each message says where, the field's path, the value with its type, and what is allowed (#11).
  it.each([
    [
      'a policy that is not an object',
      spec(null),
      `${P}policy is null; expected an object { limits, algorithm?, concurrency? }`,
    ],
    [
      'limits that are not an array',
      spec({ limits: 'x' }),
      `${P}limits is "x" (a string); expected an array of limits, e.g. [{ limit: 10, interval: '1s' }]`,
    ],
    [
      'no limit and no concurrency',
      spec({ limits: [] }),
      `${P}limits is [] (an array); expected at least one limit, or a concurrency`,
    ],
    [
      'a limit that is not an object',
      spec({ limits: [3] }),
      `${P}limits[0] is 3; expected an object, e.g. { limit: 10, interval: '1s' }`,
    ],
    ['a zero limit', one({ limit: 0 }), `${P}limits[0].limit is 0; ${LIMIT}`],
    ['a negative limit', one({ limit: -5 }), `${P}limits[0].limit is -5; ${LIMIT}`],
    ['a fractional limit', one({ limit: 1.5 }), `${P}limits[0].limit is 1.5; ${LIMIT}`],
    ['a NaN limit', one({ limit: NaN }), `${P}limits[0].limit is NaN; ${LIMIT}`],
    ['an infinite limit', one({ limit: Infinity }), `${P}limits[0].limit is Infinity; ${LIMIT}`],
    // A string is shown as one, never as the number it spells (#11).
    [
      'a limit given as a string',
      one({ limit: '10' }),
      `${P}limits[0].limit is "10" (a string); ${LIMIT}`,
    ],
    [
      'an unsafe integer limit',
      one({ limit: 2 ** 53 }),
      `${P}limits[0].limit is 9007199254740992; ${LIMIT}`,
    ],
    ['a zero burst', one({ burst: 0 }), `${P}limits[0].burst is 0; ${BURST}`],
    ['a negative burst', one({ burst: -1 }), `${P}limits[0].burst is -1; ${BURST}`],
    ['a fractional burst', one({ burst: 2.5 }), `${P}limits[0].burst is 2.5; ${BURST}`],
    ['a NaN burst', one({ burst: NaN }), `${P}limits[0].burst is NaN; ${BURST}`],
    ['an infinite burst', one({ burst: Infinity }), `${P}limits[0].burst is Infinity; ${BURST}`],
    [
      'a burst on a sliding window',
      one({ burst: 20, algorithm: 'sliding-window' }),
      `${P}limits[0].burst is 20; expected no burst: a sliding-window limit has none (token-bucket only)`,
    ],
    [
      'a burst on a fixed window (policy algorithm)',
      one({ burst: 20 }, { algorithm: 'fixed-window' }),
      `${P}limits[0].burst is 20; expected no burst: a fixed-window limit has none (token-bucket only)`,
    ],
    ['a zero interval', one({ interval: 0 }), `${P}limits[0].interval is 0; expected ${DURATION}`],
    [
      'a negative interval',
      one({ interval: -1000 }),
      `${P}limits[0].interval is -1000; expected ${DURATION}`,
    ],
    [
      'a NaN interval',
      one({ interval: NaN }),
      `${P}limits[0].interval is NaN; expected ${DURATION}`,
    ],
    [
      'an infinite interval',
      one({ interval: Infinity }),
      `${P}limits[0].interval is Infinity; expected ${DURATION}`,
    ],
    [
      'a fractional interval',
      one({ interval: 1.5 }),
      `${P}limits[0].interval is 1.5; expected ${DURATION}`,
    ],
    [
      'a bad duration string',
      one({ interval: '1 min' }),
      `${P}limits[0].interval is "1 min" (a string); expected ${DURATION}`,
    ],
    [
      'a duration without a unit',
      one({ interval: '10' }),
      `${P}limits[0].interval is "10" (a string); expected ${DURATION}`,
    ],
    [
      'a negative duration string',
      one({ interval: '-1s' }),
      `${P}limits[0].interval is "-1s" (a string); expected ${DURATION}`,
    ],
    [
      'a missing interval',
      one({ interval: undefined }),
      `${P}limits[0].interval is undefined; expected ${DURATION}`,
    ],
    [
      'a sub-millisecond duration',
      one({ interval: '1.0005s' }),
      `${P}limits[0].interval is "1.0005s" (a string), not a whole number of ms; expected ${DURATION}`,
    ],
    [
      'an interval above 366 days',
      one({ interval: '367d' }),
      `${P}limits[0].interval is "367d" (a string); expected ${DURATION}`,
    ],
    [
      'capacity × interval beyond exact integers',
      one({ limit: 100_000_000, interval: '1d' }),
      // What is allowed, in the limit's own units (#11): about 26 million a day.
      `${P}limits[0].limit is 100000000; expected at most 26,062,497 per 1 day, to count exactly (capacity × interval in ms stays under 2^51)`,
    ],
    [
      'a burst × interval beyond exact integers',
      one({ limit: 1, burst: 100_000_000, interval: '1d' }),
      `${P}limits[0].burst is 100000000; expected at most 26,062,497 per 1 day, to count exactly (capacity × interval in ms stays under 2^51)`,
    ],
    [
      'an unknown policy algorithm',
      one({}, { algorithm: 'leaky-bucket' }),
      `${P}algorithm is "leaky-bucket" (a string); ${ALGORITHMS}`,
    ],
    [
      'an unknown limit algorithm',
      one({ algorithm: 'gcra' }),
      `${P}limits[0].algorithm is "gcra" (a string); ${ALGORITHMS}`,
    ],
    [
      'an empty dimension',
      one({ dimension: '' }),
      `${P}limits[0].dimension is "" (a string); expected a non-empty string, e.g. 'tokens'`,
    ],
    [
      'an empty name',
      one({ name: '' }),
      `${P}limits[0].name is "" (a string); expected a non-empty string`,
    ],
    [
      'two limits with the same default name',
      spec({
        limits: [
          { limit: 10, interval: '1s' },
          { limit: 20, interval: 1000 },
        ],
      }),
      `${P}limits[1].name is "requests/1s" (a string), the name of limits[0] too; expected a name no other limit has (the default is dimension/interval)`,
    ],
    ['a zero concurrency', one({}, { concurrency: 0 }), `${P}concurrency is 0; ${CONCURRENCY}`],
    [
      'a negative concurrency',
      one({}, { concurrency: -2 }),
      `${P}concurrency is -2; ${CONCURRENCY}`,
    ],
    [
      'a fractional concurrency',
      one({}, { concurrency: 1.5 }),
      `${P}concurrency is 1.5; ${CONCURRENCY}`,
    ],
    ['a NaN concurrency', one({}, { concurrency: NaN }), `${P}concurrency is NaN; ${CONCURRENCY}`],
  ])('throws InvalidArgumentError for %s', (_what, bad, message) => {
    expectInvalid(() => compilePolicy(bad), message);
  });

  it('names the limit by its position, and keeps the path and value on the error', () => {
    const err = expectInvalid(
      () =>
        compilePolicy(
          spec({
            limits: [
              { limit: 1, interval: '1s' },
              { limit: '0', interval: '1s', name: 'b' },
            ],
          }),
        ),
      `${P}limits[1].limit is "0" (a string); ${LIMIT}`,
    );
    expect(err.path).toBe('limits[1].limit');
    expect(err.value).toBe('0');
    // The value is not enumerable: a logged error does not print it.
    expect(Object.keys(err)).not.toContain('value');
  });

  it('resolves defaults: requests, token bucket, capacity = limit, a name from dimension and interval', () => {
    expect(compilePolicy({ limits: [{ limit: 10, interval: '1s' }] })).toEqual({
      limits: [
        {
          name: 'requests/1s',
          dimension: 'requests',
          algorithm: 'token-bucket',
          limit: 10,
          intervalMs: 1000,
          capacity: 10,
        },
      ],
      dimensions: ['requests'],
      concurrency: null,
    });
  });

  it('resolves burst, dimensions, algorithms and concurrency', () => {
    const p = compilePolicy({
      limits: [
        {
          limit: 90_000,
          interval: '1 m',
          dimension: 'tokens',
          burst: 100_000,
          algorithm: 'token-bucket',
        },
        { limit: 5, interval: 1500, name: 'rps', algorithm: 'fixed-window' },
        { limit: 7, interval: '2s', name: 'sw' },
      ],
      algorithm: 'sliding-window',
      concurrency: 4,
    });
    expect(p).toEqual({
      limits: [
        {
          name: 'tokens/1m',
          dimension: 'tokens',
          algorithm: 'token-bucket',
          limit: 90_000,
          intervalMs: 60_000,
          capacity: 100_000,
        },
        {
          name: 'rps',
          dimension: 'requests',
          algorithm: 'fixed-window',
          limit: 5,
          intervalMs: 1500,
          capacity: 5,
        },
        // A limit without its own algorithm takes the policy's.
        {
          name: 'sw',
          dimension: 'requests',
          algorithm: 'sliding-window',
          limit: 7,
          intervalMs: 2000,
          capacity: 7,
        },
      ],
      dimensions: ['requests', 'tokens'],
      concurrency: 4,
    });
  });

  it('accepts a policy with only a concurrency limit', () => {
    expect(compilePolicy({ limits: [], concurrency: 2 })).toEqual({
      limits: [],
      dimensions: ['requests'],
      concurrency: 2,
    });
  });

  it('accepts capacity × interval up to the exact bound, and not one more', () => {
    expect(
      compilePolicy({ limits: [{ limit: MAX_SCALED, interval: 1 }] }).limits[0]!.capacity,
    ).toBe(MAX_SCALED);
    expectInvalid(
      () => compilePolicy({ limits: [{ limit: MAX_SCALED + 1, interval: 1 }] }),
      `${P}limits[0].limit is 2251799813685248; expected at most 2,251,799,813,685,247 per 1 ms, to count exactly (capacity × interval in ms stays under 2^51)`,
    );
    expect(compilePolicy({ limits: [{ limit: 1, interval: '366d' }] }).limits[0]!.intervalMs).toBe(
      366 * 86_400_000,
    );
  });
});

describe('compileCost', () => {
  const p = compilePolicy({
    limits: [
      { name: 'rpm', limit: 10, interval: '1m' },
      { name: 'tpm', limit: 1000, interval: '1m', dimension: 'tokens' },
    ],
  });

  it.each<[string, CostSpec | undefined, number[]]>([
    ['no cost: one request', undefined, [1, 0]],
    ['an empty cost: one request', {}, [1, 0]],
    ['tokens', { tokens: 1000 }, [1, 1000]],
    ['zero requests', { requests: 0, tokens: 5 }, [0, 5]],
    [
      'input + output tokens when tokens is not given',
      { inputTokens: 300, outputTokens: 200 },
      [1, 500],
    ],
    ['tokens over input + output', { tokens: 100, inputTokens: 300 }, [1, 100]],
    ['an undefined amount as absent', { tokens: undefined } as unknown as CostSpec, [1, 0]],
    ['the capacity exactly', { requests: 10, tokens: 1000 }, [10, 1000]],
  ])('compiles %s', (_what, cost, want) => {
    expect(compileCost(p, cost)).toEqual(want);
  });

  const C = 'tollgate: compileCost: ';
  const UNITS = 'expected a whole number of units from 0 to 1,099,511,627,776';
  const COST = 'expected an object of units per dimension, e.g. { tokens: 1200 }';
  it.each<[string, unknown, string]>([
    ['a negative amount', { requests: -1 }, `${C}cost.requests is -1; ${UNITS}`],
    ['a fractional amount', { tokens: 1.5 }, `${C}cost.tokens is 1.5; ${UNITS}`],
    ['a NaN amount', { tokens: NaN }, `${C}cost.tokens is NaN; ${UNITS}`],
    ['an infinite amount', { tokens: Infinity }, `${C}cost.tokens is Infinity; ${UNITS}`],
    ['an amount given as a string', { tokens: '5' }, `${C}cost.tokens is "5" (a string); ${UNITS}`],
    [
      'an amount above 2^40',
      { tokens: MAX_UNITS + 1 },
      `${C}cost.tokens is 1099511627777; ${UNITS}`,
    ],
    ['a negative input token count', { inputTokens: -3 }, `${C}cost.inputTokens is -3; ${UNITS}`],
    [
      'an unknown dimension',
      { images: 1 },
      `${C}cost.images names a dimension no limit counts; expected one of requests, tokens, inputTokens, outputTokens`,
    ],
    ['a number', 5, `${C}cost is 5; ${COST}`],
    ['an array', [1], `${C}cost is [1] (an array); ${COST}`],
    ['null', null, `${C}cost is null; ${COST}`],
  ])('throws InvalidArgumentError for %s', (_what, cost, message) => {
    expectInvalid(() => compileCost(p, cost as CostSpec), message);
  });

  it('names the call, or the place and path it is given, in the message', () => {
    expectInvalid(
      () => compileCost(p, { tokens: -1 }, 'reserve'),
      `tollgate: reserve: cost.tokens is -1; ${UNITS}`,
    );
    const err = expectInvalid(
      () =>
        compileCost(p, { tokens: -1 }, { where: 'acquire on limiter "a"', path: 'options.cost' }),
      `tollgate: acquire on limiter "a": options.cost.tokens is -1; ${UNITS}`,
    );
    expect([err.path, err.value]).toEqual(['options.cost.tokens', -1]);
  });

  it('refuses input/output tokens when no limit counts tokens', () => {
    const q = compilePolicy({ limits: [{ limit: 10, interval: '1s' }] });
    expectInvalid(
      () => compileCost(q, { inputTokens: 5 }),
      `${C}cost.inputTokens names a dimension no limit counts; expected one of requests`,
    );
  });

  it.each([
    { cost: { tokens: 1001 }, limit: 'tpm', amount: 1001, capacity: 1000, path: 'cost.tokens' },
    { cost: { requests: 11 }, limit: 'rpm', amount: 11, capacity: 10, path: 'cost.requests' },
    {
      cost: { inputTokens: 800, outputTokens: 201 },
      limit: 'tpm',
      amount: 1001,
      capacity: 1000,
      path: 'cost.inputTokens + outputTokens',
    },
  ])(
    'throws CostExceedsCapacityError for $cost: it could never be admitted',
    ({ cost, limit, amount, capacity, path }) => {
      const e = thrown(() => compileCost(p, cost));
      expect(e).toBeInstanceOf(CostExceedsCapacityError);
      expect(isTollgateError(e)).toBe(true);
      const err = e as CostExceedsCapacityError;
      expect(err.code).toBe('COST_EXCEEDS_CAPACITY');
      expect(err.name).toBe('CostExceedsCapacityError');
      expect({ limit: err.limit, cost: err.cost, capacity: err.capacity }).toEqual({
        limit,
        cost: amount,
        capacity,
      });
      expect(err.path).toBe(path);
      expect(err.message).toBe(
        `tollgate: compileCost: ${path} ${amount} exceeds capacity ${capacity} of limit "${limit}"`,
      );
    },
  );

  it('measures capacity as burst for a token bucket', () => {
    const q = compilePolicy({ limits: [{ name: 'b', limit: 10, interval: '1s', burst: 20 }] });
    expect(compileCost(q, { requests: 20 })).toEqual([20]);
    const e = thrown(() => compileCost(q, { requests: 21 }, 'tryAcquire'));
    expect(e).toBeInstanceOf(CostExceedsCapacityError);
    expect((e as Error).message).toBe(
      'tollgate: tryAcquire: cost.requests 21 exceeds capacity 20 of limit "b"',
    );
  });

  it('allows a cost above capacity when not capped (settle: actual usage)', () => {
    expect(compileCost(p, { tokens: 5000 }, 'settle', false)).toEqual([1, 5000]);
  });
});

// #18. These assert the error's class and code, and at most that the message names the field:
// the wording of validate.ts's messages is not pinned here.
describe('what compilePolicy and compileCost refuse and accept, by type and at every edge (#18)', () => {
  function expectRefused(f: () => unknown, field?: string): void {
    const e = thrown(f);
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect((e as InvalidArgumentError).code).toBe('INVALID_ARGUMENT');
    if (field !== undefined) expect((e as Error).message).toContain(field);
  }

  it.each([
    ['undefined', undefined],
    ['a number', 5],
    ['a string', 'limits'],
    ['null', null],
    ['an object without limits', {}],
  ])('refuses a policy that is %s with InvalidArgumentError, not a TypeError', (_what, bad) => {
    expectRefused(() => compilePolicy(spec(bad)));
  });

  it.each([
    ['null', null],
    ['undefined', undefined],
    ['a string', 'rps'],
  ])('refuses a limit entry that is %s with InvalidArgumentError', (_what, entry) => {
    expectRefused(
      () => compilePolicy(spec({ limits: [{ limit: 1, interval: '1s' }, entry] })),
      'limit',
    );
  });

  it.each([
    ['a number', 5],
    ['an object', { name: 'tokens' }],
    ['true', true],
  ])('refuses a dimension that is %s', (_what, dimension) => {
    expectRefused(() => compilePolicy(one({ dimension })), 'dimension');
  });

  it.each([
    ['a number', 5],
    ['an object', { first: 'rps' }],
    ['true', true],
  ])('refuses a name that is %s', (_what, name) => {
    expectRefused(() => compilePolicy(one({ name })), 'name');
  });

  it.each([
    ['a misspelt option', { intervall: '1s' }, 'intervall'],
    ['an unknown option', { window: 5 }, 'window'],
  ])('refuses a limit with %s, naming it', (_what, extra, field) => {
    expectRefused(() => compilePolicy(one(extra)), field);
  });

  it('a limit that counts a custom dimension charges it (a dimension is a string key)', () => {
    const p = compilePolicy({ limits: [{ limit: 3, interval: '1s', dimension: 'images' }] });
    expect(compileCost(p, { images: 2 })).toEqual([2]);
  });

  it.each<[string, Record<string, unknown>, Record<string, unknown>?]>([
    ['limit 1', { limit: 1 }],
    ['burst 1', { burst: 1 }],
    ['an interval of 1 ms', { interval: 1 }],
    ["an interval of '1ms'", { interval: '1ms' }],
    ['an interval of 366 days in ms', { limit: 1, interval: MAX_INTERVAL_MS }],
    ['concurrency 1', {}, { concurrency: 1 }],
  ])('accepts %s, the low or high edge of its range', (_what, limit, rest) => {
    expect(() => compilePolicy(one(limit, rest))).not.toThrow();
  });

  it.each<[string, Record<string, unknown>, Record<string, unknown> | undefined, string]>([
    ['limit 0', { limit: 0 }, undefined, 'limit'],
    ['burst 0', { burst: 0 }, undefined, 'burst'],
    ['an interval of 0 ms', { interval: 0 }, undefined, 'interval'],
    [
      'an interval of 366 days + 1 ms',
      { limit: 1, interval: MAX_INTERVAL_MS + 1 },
      undefined,
      'interval',
    ],
    ['concurrency 0', {}, { concurrency: 0 }, 'concurrency'],
  ])('refuses %s, one past the edge', (_what, limit, rest, field) => {
    expectRefused(() => compilePolicy(one(limit, rest)), field);
  });

  it('accepts a cost of 0 and of MAX_UNITS (2^40) in a dimension, and refuses one more or one less', () => {
    const p = compilePolicy({
      limits: [{ limit: 10, interval: '1s', dimension: 'tokens' }],
    });
    expect(compileCost(p, { tokens: 0 })).toEqual([0]);
    // Above the capacity, so only a settle (uncapped) takes it.
    expect(compileCost(p, { tokens: MAX_UNITS }, 'settle', false)).toEqual([MAX_UNITS]);
    expect(compileCost(p, { inputTokens: MAX_UNITS }, 'settle', false)).toEqual([MAX_UNITS]);
    expectRefused(() => compileCost(p, { tokens: MAX_UNITS + 1 }, 'settle', false), 'tokens');
    expectRefused(() => compileCost(p, { tokens: -1 }), 'tokens');
  });
});

describe('checkOptionNames: an unknown option is refused, with the nearest allowed name when it is a slip (#18)', () => {
  const ALLOWED = ['abc', 'abd', 'timeout', 'successesToClose'];
  const EXPECTED = 'expected one of abc, abd, timeout, successesToClose';
  const refusal = (key: string): string => {
    const e = thrown(() =>
      checkOptionNames({ [key]: 1 }, ALLOWED, { where: 'w', path: 'options' }),
    );
    expect(e).toBeInstanceOf(InvalidArgumentError);
    return (e as Error).message;
  };

  it('accepts an object whose every own key is allowed', () => {
    expect(() =>
      checkOptionNames({ abc: 1, timeout: 2 }, ALLOWED, { where: 'w', path: 'options' }),
    ).not.toThrow();
  });

  it.each([
    // A key of up to 8 characters is a slip at edit distance 2 or less: 'tmeot' is 2 from 'timeout'.
    ['tmeot', ' (did you mean "timeout"?)'],
    // ... and not at 3: 'tmot' is 3 from 'timeout'.
    ['tmot', ''],
    // A longer key may be further off, up to a third of its length: 12 characters, 4 edits.
    ['sccssstclose', ' (did you mean "successesToClose"?)'],
    // 11 characters allow 3 edits; 'scssstclose' is 5 away.
    ['scssstclose', ''],
    // Case does not count.
    ['TIMEOUT', ' (did you mean "timeout"?)'],
    // Of two names equally near, the first allowed one is named.
    ['abe', ' (did you mean "abc"?)'],
    ['window', ''],
  ])('refuses %s, naming the list of options, with the suggestion %j', (key, suggestion) => {
    expect(refusal(key)).toBe(
      `tollgate: w: options.${key} is not an option${suggestion}; ${EXPECTED}`,
    );
  });

  it('names the nearest allowed option, not the last one within reach', () => {
    expectInvalid(
      () => compilePolicy(one({ intervall: '1s' })),
      `${P}limits[0].intervall is not an option (did you mean "interval"?); expected one of limit, interval, dimension, burst, name, algorithm`,
    );
  });
});

describe('editDistance: the fewest inserts, deletes and substitutions from one string to the other (#18)', () => {
  it.each<[string, string, number]>([
    ['abc', 'abc', 0],
    ['', 'abc', 3],
    ['abc', '', 3],
    ['ab', 'ba', 2],
    ['flaw', 'lawn', 2],
    ['kitten', 'sitting', 3],
    ['sitting', 'kitten', 3],
    ['abcdef', 'abdef', 1],
    ['abdef', 'abcdef', 1],
    ['abcdef', 'abXdef', 1],
  ])('%j to %j: %i', (a, b, d) => {
    expect(editDistance(a, b)).toBe(d);
  });
});
