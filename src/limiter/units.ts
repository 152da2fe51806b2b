/**
 * Conversions at the boundary: duration strings to integer milliseconds. Parsed once, when a
 * policy is compiled, never on the hot path.
 */
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

/**
 * parseDuration turns a {@link Duration} into integer milliseconds.
 *
 * @throws InvalidArgumentError for anything but a positive integer of ms (at most
 *   {@link MAX_INTERVAL_MS}) or a string such as `'1.5s'`, `'1 m'` that resolves to one.
 * @example parseDuration('1m') // 60000
 */
export function parseDuration(value: Duration, what = 'interval'): Ms {
  let ms: number;
  if (typeof value === 'number') {
    ms = value;
  } else if (typeof value === 'string') {
    const m = DURATION.exec(value);
    if (!m) {
      throw new InvalidArgumentError(
        `tollgate: ${what} ${JSON.stringify(value)} is not a duration; expected ms or e.g. '500ms', '1s', '1 m', '1h', '1d'`,
      );
    }
    ms = Number(m[1]) * (MS_PER_UNIT[m[2]!] ?? NaN);
    // '1.0005s' is not a whole millisecond; round only float noise away ('0.1s' * 1000).
    const rounded = Math.round(ms);
    if (Math.abs(ms - rounded) > 1e-6) {
      throw new InvalidArgumentError(
        `tollgate: ${what} ${JSON.stringify(value)} is not a whole number of milliseconds`,
      );
    }
    ms = rounded;
  } else {
    throw new InvalidArgumentError(
      `tollgate: ${what} must be a number of ms or a duration string, got ${typeof value}`,
    );
  }
  if (!Number.isSafeInteger(ms) || ms <= 0 || ms > MAX_INTERVAL_MS) {
    throw new InvalidArgumentError(
      `tollgate: ${what} ${String(value)} must be a whole number of ms from 1 to ${MAX_INTERVAL_MS}`,
    );
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
