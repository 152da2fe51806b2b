import { describe, expect, it } from 'vitest';
import {
  CostExceedsCapacityError,
  InvalidArgumentError,
  isTollgateError,
} from '../../src/errors.js';
import { compileCost, compilePolicy } from '../../src/limiter/index.js';
import type { CostSpec, PolicySpec } from '../../src/limiter/index.js';
import { MAX_SCALED, MAX_UNITS } from '../../src/limiter/validate.js';

/** Run `f`, expect it to throw, and return what it threw. */
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

function expectInvalid(f: () => unknown, message: RegExp): void {
  const e = thrown(f);
  expect(e).toBeInstanceOf(InvalidArgumentError);
  expect(isTollgateError(e)).toBe(true);
  const err = e as InvalidArgumentError;
  expect(err.code).toBe('INVALID_ARGUMENT');
  expect(err.name).toBe('InvalidArgumentError');
  expect(err.message).toMatch(/^tollgate: /);
  expect(err.message).toMatch(message);
}

const spec = (s: unknown): PolicySpec => s as PolicySpec;
const one = (limit: Record<string, unknown>, rest: Record<string, unknown> = {}): PolicySpec =>
  spec({ limits: [{ limit: 10, interval: '1s', ...limit }], ...rest });

describe('compilePolicy', () => {
  it.each([
    [
      'a policy that is not an object',
      spec(null),
      /policy must be an object with a `limits` array/,
    ],
    [
      'limits that are not an array',
      spec({ limits: 'x' }),
      /policy must be an object with a `limits` array/,
    ],
    [
      'no limit and no concurrency',
      spec({ limits: [] }),
      /policy needs at least one limit or a concurrency/,
    ],
    ['a limit that is not an object', spec({ limits: [3] }), /limit #0 must be an object/],
    ['a zero limit', one({ limit: 0 }), /limit #0 limit 0 must be a positive integer/],
    ['a negative limit', one({ limit: -5 }), /limit #0 limit -5 must be a positive integer/],
    ['a fractional limit', one({ limit: 1.5 }), /limit #0 limit 1\.5 must be a positive integer/],
    ['a NaN limit', one({ limit: NaN }), /limit #0 limit NaN must be a positive integer/],
    [
      'an infinite limit',
      one({ limit: Infinity }),
      /limit #0 limit Infinity must be a positive integer/,
    ],
    [
      'a limit given as a string',
      one({ limit: '10' }),
      /limit #0 limit 10 must be a positive integer/,
    ],
    [
      'an unsafe integer limit',
      one({ limit: 2 ** 53 }),
      /limit #0 limit 9007199254740992 must be a positive integer/,
    ],
    ['a zero burst', one({ burst: 0 }), /limit #0 burst 0 must be a positive integer/],
    ['a negative burst', one({ burst: -1 }), /limit #0 burst -1 must be a positive integer/],
    ['a fractional burst', one({ burst: 2.5 }), /limit #0 burst 2\.5 must be a positive integer/],
    ['a NaN burst', one({ burst: NaN }), /limit #0 burst NaN must be a positive integer/],
    [
      'an infinite burst',
      one({ burst: Infinity }),
      /limit #0 burst Infinity must be a positive integer/,
    ],
    [
      'a burst on a sliding window',
      one({ burst: 20, algorithm: 'sliding-window' }),
      /limit #0 burst applies to token-bucket only, not sliding-window/,
    ],
    [
      'a burst on a fixed window (policy algorithm)',
      one({ burst: 20 }, { algorithm: 'fixed-window' }),
      /limit #0 burst applies to token-bucket only, not fixed-window/,
    ],
    [
      'a zero interval',
      one({ interval: 0 }),
      /limit #0 interval 0 must be a whole number of ms from 1 to 31622400000/,
    ],
    [
      'a negative interval',
      one({ interval: -1000 }),
      /limit #0 interval -1000 must be a whole number of ms/,
    ],
    [
      'a NaN interval',
      one({ interval: NaN }),
      /limit #0 interval NaN must be a whole number of ms/,
    ],
    [
      'an infinite interval',
      one({ interval: Infinity }),
      /limit #0 interval Infinity must be a whole number of ms/,
    ],
    [
      'a fractional interval',
      one({ interval: 1.5 }),
      /limit #0 interval 1\.5 must be a whole number of ms/,
    ],
    [
      'a bad duration string',
      one({ interval: '1 min' }),
      /limit #0 interval "1 min" is not a duration; expected ms or e\.g\./,
    ],
    [
      'a duration without a unit',
      one({ interval: '10' }),
      /limit #0 interval "10" is not a duration/,
    ],
    [
      'a negative duration string',
      one({ interval: '-1s' }),
      /limit #0 interval "-1s" is not a duration/,
    ],
    [
      'a missing interval',
      one({ interval: undefined }),
      /limit #0 interval must be a number of ms or a duration string, got undefined/,
    ],
    [
      'a sub-millisecond duration',
      one({ interval: '1.0005s' }),
      /limit #0 interval "1\.0005s" is not a whole number of milliseconds/,
    ],
    [
      'an interval above 366 days',
      one({ interval: '367d' }),
      /limit #0 interval 367d must be a whole number of ms from 1 to 31622400000/,
    ],
    [
      'capacity × interval beyond exact integers',
      one({ limit: 100_000_000, interval: '1d' }),
      // What is allowed, in the limit's own units (#11): about 26 million a day.
      /limit #0 limit 100000000 per 1d is too large to count exactly: at most 26,062,497 per 1d/,
    ],
    [
      'a burst × interval beyond exact integers',
      one({ limit: 1, burst: 100_000_000, interval: '1d' }),
      /limit #0 burst 100000000 per 1d is too large to count exactly: at most 26,062,497 per 1d/,
    ],
    [
      'an unknown policy algorithm',
      one({}, { algorithm: 'leaky-bucket' }),
      /policy algorithm "leaky-bucket" is unknown; expected one of token-bucket, sliding-window, fixed-window/,
    ],
    [
      'an unknown limit algorithm',
      one({ algorithm: 'gcra' }),
      /limit #0 algorithm "gcra" is unknown; expected one of/,
    ],
    ['an empty dimension', one({ dimension: '' }), /limit #0 dimension must be a non-empty string/],
    ['an empty name', one({ name: '' }), /limit #0 name must be a non-empty string/],
    [
      'two limits with the same default name',
      spec({
        limits: [
          { limit: 10, interval: '1s' },
          { limit: 20, interval: 1000 },
        ],
      }),
      /limit name "requests\/1s" is used twice; give each limit a unique name/,
    ],
    [
      'a zero concurrency',
      one({}, { concurrency: 0 }),
      /policy concurrency 0 must be a positive integer/,
    ],
    [
      'a negative concurrency',
      one({}, { concurrency: -2 }),
      /policy concurrency -2 must be a positive integer/,
    ],
    [
      'a fractional concurrency',
      one({}, { concurrency: 1.5 }),
      /policy concurrency 1\.5 must be a positive integer/,
    ],
    [
      'a NaN concurrency',
      one({}, { concurrency: NaN }),
      /policy concurrency NaN must be a positive integer/,
    ],
  ])('throws InvalidArgumentError for %s', (_what, bad, message) => {
    expectInvalid(() => compilePolicy(bad), message);
  });

  it('names the limit by its position in the message', () => {
    expectInvalid(
      () =>
        compilePolicy(
          spec({
            limits: [
              { limit: 1, interval: '1s' },
              { limit: 0, interval: '1s', name: 'b' },
            ],
          }),
        ),
      /limit #1 limit 0 must be a positive integer/,
    );
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
      /too large to count exactly: at most 2,251,799,813,685,247 per /,
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

  it.each<[string, unknown, RegExp]>([
    [
      'a negative amount',
      { requests: -1 },
      /acquire cost requests=-1 must be an integer from 0 to 1099511627776/,
    ],
    [
      'a fractional amount',
      { tokens: 1.5 },
      /acquire cost tokens=1\.5 must be an integer from 0 to/,
    ],
    ['a NaN amount', { tokens: NaN }, /acquire cost tokens=NaN must be an integer/],
    ['an infinite amount', { tokens: Infinity }, /acquire cost tokens=Infinity must be an integer/],
    ['an amount given as a string', { tokens: '5' }, /acquire cost tokens=5 must be an integer/],
    [
      'an amount above 2^40',
      { tokens: MAX_UNITS + 1 },
      /acquire cost tokens=1099511627777 must be an integer from 0 to 1099511627776/,
    ],
    [
      'a negative input token count',
      { inputTokens: -3 },
      /acquire cost inputTokens=-3 must be an integer/,
    ],
    [
      'an unknown dimension',
      { images: 1 },
      /acquire cost names dimension "images", which no limit counts; known: requests, tokens/,
    ],
    ['a number', 5, /acquire cost must be an object of units per dimension/],
    ['an array', [1], /acquire cost must be an object of units per dimension/],
    ['null', null, /acquire cost must be an object of units per dimension/],
  ])('throws InvalidArgumentError for %s', (_what, cost, message) => {
    expectInvalid(() => compileCost(p, cost as CostSpec), message);
  });

  it('names the call in the message', () => {
    expectInvalid(
      () => compileCost(p, { tokens: -1 }, 'reserve'),
      /^tollgate: reserve cost tokens=-1/,
    );
  });

  it('refuses input/output tokens when no limit counts tokens', () => {
    const q = compilePolicy({ limits: [{ limit: 10, interval: '1s' }] });
    expectInvalid(
      () => compileCost(q, { inputTokens: 5 }),
      /names dimension "inputTokens", which no limit counts; known: requests/,
    );
  });

  it.each([
    { cost: { tokens: 1001 }, limit: 'tpm', amount: 1001, capacity: 1000 },
    { cost: { requests: 11 }, limit: 'rpm', amount: 11, capacity: 10 },
    { cost: { inputTokens: 800, outputTokens: 201 }, limit: 'tpm', amount: 1001, capacity: 1000 },
  ])(
    'throws CostExceedsCapacityError for $cost: it could never be admitted',
    ({ cost, limit, amount, capacity }) => {
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
      expect(err.message).toBe(
        `tollgate: acquire cost ${amount} exceeds capacity ${capacity} of limit "${limit}"`,
      );
    },
  );

  it('measures capacity as burst for a token bucket', () => {
    const q = compilePolicy({ limits: [{ name: 'b', limit: 10, interval: '1s', burst: 20 }] });
    expect(compileCost(q, { requests: 20 })).toEqual([20]);
    const e = thrown(() => compileCost(q, { requests: 21 }, 'tryAcquire'));
    expect(e).toBeInstanceOf(CostExceedsCapacityError);
    expect((e as Error).message).toBe(
      'tollgate: tryAcquire cost 21 exceeds capacity 20 of limit "b"',
    );
  });

  it('allows a cost above capacity when not capped (settle: actual usage)', () => {
    expect(compileCost(p, { tokens: 5000 }, 'settle', false)).toEqual([1, 5000]);
  });
});
