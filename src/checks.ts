/**
 * Checks of values the runtime keeps and calls later (a clock, an abort signal), shared by the
 * factories and calls that take them: a bad one is refused where it is passed, with a typed error,
 * rather than failing with a TypeError the first time it is used.
 */
import type { Place } from './describe.js';
import { InvalidArgumentError } from './errors.js';

/**
 * checkClock throws unless `clock` is a {@link Clock}: an object with `now`, `setTimeout` and
 * `clearTimeout`.
 *
 * @throws InvalidArgumentError `<where>: <path> is 5; expected a Clock { now, setTimeout, clearTimeout }`.
 */
export function checkClock(clock: unknown, at: Place): void {
  const c = clock as Record<string, unknown> | null;
  if (
    typeof c !== 'object' ||
    c === null ||
    typeof c.now !== 'function' ||
    typeof c.setTimeout !== 'function' ||
    typeof c.clearTimeout !== 'function'
  ) {
    throw new InvalidArgumentError({
      ...at,
      value: clock,
      expected: 'a Clock { now, setTimeout, clearTimeout }, e.g. new VirtualClock()',
    });
  }
}

/**
 * checkSignal throws unless `signal` is undefined or an AbortSignal (an object with a boolean
 * `aborted` and an `addEventListener`).
 *
 * @throws InvalidArgumentError `<where>: <path> is {} (an object); expected an AbortSignal, …`.
 */
export function checkSignal(signal: unknown, at: Place): void {
  const s = signal as { aborted?: unknown; addEventListener?: unknown } | null;
  if (
    signal !== undefined &&
    (typeof s !== 'object' ||
      s === null ||
      typeof s.aborted !== 'boolean' ||
      typeof s.addEventListener !== 'function')
  ) {
    throw new InvalidArgumentError({
      ...at,
      value: signal,
      expected: 'an AbortSignal, e.g. AbortSignal.timeout(5000)',
    });
  }
}

/**
 * checkDimensions throws unless `dimensions` is an array of strings (a policy's `dimensions`, as
 * the LLM helpers take them).
 *
 * @throws InvalidArgumentError `<where>: dimensions is "tokens" (a string); expected an array …`.
 */
export function checkDimensions(dimensions: unknown, where: string): void {
  if (!Array.isArray(dimensions) || !dimensions.every((d) => typeof d === 'string')) {
    throw new InvalidArgumentError({
      where,
      path: 'dimensions',
      value: dimensions,
      expected:
        "an array of dimension names, e.g. limiter.policy.dimensions or ['requests', 'tokens']",
    });
  }
}

/**
 * checkObject throws unless `value` is an object (not null, not an array); `expected` says what.
 *
 * @throws InvalidArgumentError `<where>: <path> is 5; expected <expected>`.
 */
export function checkObject(value: unknown, at: Place, expected: string): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidArgumentError({ ...at, value, expected });
  }
}
