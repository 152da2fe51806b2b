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

  const D = 'tollgate: parseDuration: duration is ';
  const ALLOWED =
    "expected a duration from 1 ms to 366 days, as ms or a string like '500ms', '2s', '5m', '1h' or '1d'";
  // The value with its type, and the range in human units, not 31622400000 ms (#11).
  it.each<[unknown, string]>([
    [0, `${D}0; ${ALLOWED}`],
    [-1, `${D}-1; ${ALLOWED}`],
    [1.5, `${D}1.5; ${ALLOWED}`],
    [NaN, `${D}NaN; ${ALLOWED}`],
    [Infinity, `${D}Infinity; ${ALLOWED}`],
    [366 * DAY + 1, `${D}31622400001; ${ALLOWED}`],
    ['0s', `${D}"0s" (a string); ${ALLOWED}`],
    ['367d', `${D}"367d" (a string); ${ALLOWED}`],
    ['', `${D}"" (a string); ${ALLOWED}`],
    ['10', `${D}"10" (a string); ${ALLOWED}`],
    ['1 min', `${D}"1 min" (a string); ${ALLOWED}`],
    ['1M', `${D}"1M" (a string); ${ALLOWED}`],
    ['-1s', `${D}"-1s" (a string); ${ALLOWED}`],
    ['1e3ms', `${D}"1e3ms" (a string); ${ALLOWED}`],
    ['1s1ms', `${D}"1s1ms" (a string); ${ALLOWED}`],
    ['.5s', `${D}".5s" (a string); ${ALLOWED}`],
    ['1.5ms', `${D}"1.5ms" (a string), not a whole number of ms; ${ALLOWED}`],
    ['1.0005s', `${D}"1.0005s" (a string), not a whole number of ms; ${ALLOWED}`],
    ['0.0001s', `${D}"0.0001s" (a string), not a whole number of ms; ${ALLOWED}`],
    // A fraction of 1e-6 ms or less is float noise, rounded away: this one rounds to 0 ms, which is
    // refused as out of range, not as a fraction.
    ['0.000001ms', `${D}"0.000001ms" (a string); ${ALLOWED}`],
    [null, `${D}null; ${ALLOWED}`],
    [undefined, `${D}undefined; ${ALLOWED}`],
    [true, `${D}true (a boolean); ${ALLOWED}`],
  ])('throws InvalidArgumentError for %j', (value, message) => {
    let err: unknown;
    try {
      parseDuration(value as Duration);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toBe(message);
  });

  it('names what it parses in the message: a place, or a path alone', () => {
    expect(() =>
      parseDuration('soon' as Duration, { where: 'limiter "a"', path: 'limits[2].interval' }),
    ).toThrow(`tollgate: limiter "a": limits[2].interval is "soon" (a string); ${ALLOWED}`);
    expect(() => parseDuration('soon' as Duration, 'stats$ every')).toThrow(
      `tollgate: stats$ every is "soon" (a string); ${ALLOWED}`,
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
