import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { formatMs, parseDuration } from '../../src/limiter/index.js';
import type { Duration } from '../../src/limiter/index.js';
import { MAX_INTERVAL_MS } from '../../src/limiter/units.js';

const DAY = 86_400_000;

describe('parseDuration', () => {
  it.each<[unknown, number]>([
    [1, 1],
    [1500, 1500],
    ['500ms', 500],
    ['1s', 1000],
    ['1.5s', 1500],
    ['0.1s', 100], // 0.1 × 1000 is float noise away from 100
    ['0.001s', 1],
    ['1m', 60_000],
    ['1 m', 60_000],
    ['0.5m', 30_000],
    ['2h', 7_200_000],
    ['1.25h', 4_500_000],
    ['1d', DAY],
    ['  3 s ', 3000],
    ['366d', 366 * DAY],
    [366 * DAY, 366 * DAY],
  ])('parses %j as %i ms', (value, ms) => {
    expect(parseDuration(value as Duration)).toBe(ms);
  });

  it('allows at most 366 days', () => {
    expect(MAX_INTERVAL_MS).toBe(31_622_400_000);
  });

  it.each<[unknown, RegExp]>([
    [0, /^tollgate: interval 0 must be a whole number of ms from 1 to 31622400000$/],
    [-1, /interval -1 must be a whole number of ms from 1 to/],
    [1.5, /interval 1\.5 must be a whole number of ms/],
    [NaN, /interval NaN must be a whole number of ms/],
    [Infinity, /interval Infinity must be a whole number of ms/],
    [366 * DAY + 1, /interval 31622400001 must be a whole number of ms from 1 to 31622400000/],
    ['0s', /interval 0s must be a whole number of ms from 1 to/],
    ['367d', /interval 367d must be a whole number of ms from 1 to 31622400000/],
    ['', /interval "" is not a duration; expected ms or e\.g\. '500ms', '1s', '1 m', '1h', '1d'/],
    ['10', /interval "10" is not a duration/],
    ['1 min', /interval "1 min" is not a duration/],
    ['1M', /interval "1M" is not a duration/],
    ['-1s', /interval "-1s" is not a duration/],
    ['1e3ms', /interval "1e3ms" is not a duration/],
    ['1s1ms', /interval "1s1ms" is not a duration/],
    ['.5s', /interval "\.5s" is not a duration/],
    ['1.5ms', /interval "1\.5ms" is not a whole number of milliseconds/],
    ['1.0005s', /interval "1\.0005s" is not a whole number of milliseconds/],
    ['0.0001s', /interval "0\.0001s" is not a whole number of milliseconds/],
    [null, /interval must be a number of ms or a duration string, got object/],
    [undefined, /interval must be a number of ms or a duration string, got undefined/],
    [true, /interval must be a number of ms or a duration string, got boolean/],
  ])('throws InvalidArgumentError for %j', (value, message) => {
    let err: unknown;
    try {
      parseDuration(value as Duration);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toMatch(message);
  });

  it('names what it parses in the message', () => {
    expect(() => parseDuration('soon' as Duration, 'limit #2 interval')).toThrow(
      'tollgate: limit #2 interval "soon" is not a duration',
    );
  });
});

describe('formatMs', () => {
  it.each<[number, string]>([
    [1, '1ms'],
    [999, '999ms'],
    [1000, '1s'],
    [1500, '1500ms'],
    [60_000, '1m'],
    [90_000, '90s'],
    [3_600_000, '1h'],
    [5_400_000, '90m'],
    [DAY, '1d'],
    [2 * DAY, '2d'],
    [36 * 3_600_000, '36h'],
    [366 * DAY, '366d'],
  ])('formats %i ms as %s', (ms, text) => {
    expect(formatMs(ms)).toBe(text);
  });

  it('gives a string that parses back to the same ms, for every valid interval', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.integer({ min: 1, max: MAX_INTERVAL_MS }),
          fc.integer({ min: 1, max: 366 }).map((d) => d * DAY),
          fc.integer({ min: 1, max: 1000 }).map((s) => s * 1000),
        ),
        (ms) => parseDuration(formatMs(ms) as Duration) === ms,
      ),
      { numRuns: Number(process.env.PROP_RUNS ?? 1000) },
    );
  });
});
