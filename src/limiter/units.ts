/**
 * Conversions at the boundary: duration strings to integer milliseconds. Parsed once, when a
 * policy is compiled, never on the hot path.
 */
import { describeValue, humanMs, type Place } from '../describe.js';
import { InvalidArgumentError } from '../errors.js';
import type { Duration, Ms } from './types.js';

const MS_PER_UNIT: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/;

/** The longest interval a limit may have: 366 days, so scaled token-bucket units stay exact. */
export const MAX_INTERVAL_MS: Ms = 366 * 86_400_000;

/** What a duration may be, for messages: the range of {@link parseDuration} in human units. */
export const DURATION_ALLOWED = `a duration from 1 ms to ${humanMs(MAX_INTERVAL_MS)}, as ms or a string like '500ms', '2s', '5m', '1h' or '1d'`;

/**
 * parseDuration turns a {@link Duration} into integer milliseconds. `at` names the value in the
 * message: a {@link Place} (`{ where: 'limiter "a"', path: 'limits[0].interval' }`), or just a
 * path.
 *
 * @throws InvalidArgumentError for anything but a positive integer of ms (at most
 *   {@link MAX_INTERVAL_MS}) or a string such as `'1.5s'`, `'1 m'` that resolves to one.
 * @example parseDuration('1m') // 60000
 */
export function parseDuration(
  value: Duration,
  at: Place | string = { where: 'parseDuration', path: 'duration' },
): Ms {
  return readDuration(value, typeof at === 'string' ? { where: '', path: at } : at);
}

/**
 * readDuration is {@link parseDuration} with the allowed values said otherwise in the message
 * (an acquire's timeout also allows 0, which its caller checks first).
 *
 * @throws InvalidArgumentError `<where>: <path> is <value>; expected <expected>`.
 */
export function readDuration(value: unknown, at: Place, expected = DURATION_ALLOWED): Ms {
  let ms = NaN;
  if (typeof value === 'number') {
    ms = value;
  } else if (typeof value === 'string') {
    const m = DURATION.exec(value);
    if (m) {
      ms = Number(m[1]) * (MS_PER_UNIT[m[2]!] ?? NaN);
      // '1.0005s' is not a whole millisecond; round only float noise away ('0.1s' * 1000).
      const rounded = Math.round(ms);
      if (Math.abs(ms - rounded) > 1e-6) {
        const problem = `is ${describeValue(value)}, not a whole number of ms`;
        throw new InvalidArgumentError({ ...at, value, expected, problem });
      }
      ms = rounded;
    }
  }
  if (!Number.isSafeInteger(ms) || ms <= 0 || ms > MAX_INTERVAL_MS) {
    throw new InvalidArgumentError({ ...at, value, expected });
  }
  return ms;
}

/** formatMs gives the shortest exact {@link Duration} string for `ms`: 60000 → '1m'. */
export function formatMs(ms: Ms): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const per = MS_PER_UNIT[unit]!;
    if (ms % per === 0) return `${ms / per}${unit}`;
  }
  return `${ms}ms`;
}
