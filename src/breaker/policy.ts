/**
 * Breaker policies: what the user writes ({@link BreakerPolicySpec}) and what the statechart runs
 * on ({@link BreakerPolicy}: validated, defaults filled in, every duration in integer ms).
 *
 * A policy says when a breaker opens and how it comes back:
 * - it opens after `failureThreshold` failures in a row, or when the failure rate over the last
 *   `failureRate.window` reaches `failureRate.rate` (with at least `minimumCalls` calls), or both;
 * - it stays open for `openFor`; each time a probe fails and it re-opens, that time is multiplied
 *   by `backoffFactor`, up to `maxOpenFor`; once it closes, the next opening is `openFor` again;
 * - half-open, it lets `probes` calls through at once, closes after `successesToClose` of them
 *   succeed, and re-opens on the first probe that fails.
 *
 * Worked example with the defaults (5 in a row, 30s, ×2, 5m): failures 1–5 at t=0..4 s open it
 * until 34 s; the probe at 34 s fails, so it re-opens until 34 + 60 = 94 s; that probe fails too:
 * open until 94 + 120 = 214 s; then 240 s, then 300 s (the cap) every time, until a probe succeeds.
 */
import { humanMs, joinPath, type Place } from '../describe.js';
import { InvalidArgumentError } from '../errors.js';
import { readDuration } from '../limiter/units.js';
import { checkOptionNames } from '../limiter/validate.js';
import type { Duration, Ms } from '../limiter/types.js';

/** BreakerState names the three states of a breaker. */
export type BreakerState = 'closed' | 'open' | 'halfOpen';

/**
 * BreakerPolicySpec is a breaker policy as a user writes it. Every field is optional.
 *
 * @example
 * { failureThreshold: 5, openFor: '30s', backoffFactor: 2, maxOpenFor: '5m', probes: 1 }
 * { failureRate: { rate: 0.5, window: '1m', minimumCalls: 20 }, openFor: '10s' }
 */
export interface BreakerPolicySpec {
  /**
   * Open after this many failures in a row (a success resets the run). A positive integer.
   * @default 5, unless `failureRate` is given: then only the rate opens the breaker.
   */
  readonly failureThreshold?: number;
  /** Open when the share of failed calls in a rolling window reaches `rate`. @default off */
  readonly failureRate?: FailureRateSpec;
  /** How long the breaker stays open the first time. 1 ms to 366 days. @default '30s' */
  readonly openFor?: Duration;
  /**
   * Each re-open from half-open multiplies the open time by this. A finite number, at least 1
   * (1: no backoff). @default 2
   */
  readonly backoffFactor?: number;
  /** The open time never exceeds this. At least `openFor`. @default the larger of '5m' and `openFor` */
  readonly maxOpenFor?: Duration;
  /** How many probe calls half-open admits at once. A positive integer. @default 1 */
  readonly probes?: number;
  /** Probe successes that close the breaker. A positive integer. @default probes */
  readonly successesToClose?: number;
}

/** FailureRateSpec is the failure-rate rule of a {@link BreakerPolicySpec}. */
export interface FailureRateSpec {
  /** Open when failures / calls reaches this. A number with 0 < rate <= 1. */
  readonly rate: number;
  /** The rolling window the rate is measured over. 1 ms to 366 days. */
  readonly window: Duration;
  /** Fewer calls than this in the window never open the breaker. A positive integer. @default 10 */
  readonly minimumCalls?: number;
}

/** BreakerPolicy is a validated {@link BreakerPolicySpec}: plain, JSON-safe data. */
export interface BreakerPolicy {
  /** Failures in a row that open the breaker, or null when only the rate rule applies. */
  readonly failureThreshold: number | null;
  /** The rate rule, or null. */
  readonly failureRate: FailureRate | null;
  readonly openForMs: Ms;
  readonly backoffFactor: number;
  /** >= openForMs. */
  readonly maxOpenForMs: Ms;
  readonly probes: number;
  readonly successesToClose: number;
}

/** FailureRate is a validated {@link FailureRateSpec}. */
export interface FailureRate {
  readonly rate: number;
  readonly windowMs: Ms;
  readonly minimumCalls: number;
  /** Width of one time bucket of the rolling window: windowMs / {@link WINDOW_BUCKETS}, rounded up. */
  readonly bucketMs: Ms;
}

/** The number of time buckets a rolling failure-rate window is kept in. */
export const WINDOW_BUCKETS = 10;

/** The options of a breaker policy ({@link BreakerPolicySpec}). */
export const BREAKER_OPTIONS = [
  'failureThreshold',
  'failureRate',
  'openFor',
  'backoffFactor',
  'maxOpenFor',
  'probes',
  'successesToClose',
] as const;
const RATE_OPTIONS = ['rate', 'window', 'minimumCalls'] as const;
const DEFAULT_MAX_OPEN_MS: Ms = 300_000;

/**
 * compileBreakerPolicy validates a {@link BreakerPolicySpec} and fills in its defaults. `at` names
 * the spec in messages: who was given it (`limiter "a"`, `breaker "x"`) and its path (`breaker`).
 *
 * @throws InvalidArgumentError for a spec that is not an object, an unknown option, a threshold,
 *   `probes`, `successesToClose` or `minimumCalls` that is not a positive integer, a rate outside
 *   (0, 1], a bad duration, a `backoffFactor` below 1 or not finite, or `maxOpenFor < openFor`.
 * @example compileBreakerPolicy({ openFor: '10s' }).openForMs // 10000
 */
export function compileBreakerPolicy(
  spec: BreakerPolicySpec = {},
  at: Place = { where: 'breaker', path: '' },
): BreakerPolicy {
  const { where } = at;
  const path = (field: string): string => joinPath(at.path, field);
  const bad = (field: string, value: unknown, expected: string): never => {
    throw new InvalidArgumentError({ where, path: path(field), value, expected });
  };
  const positiveInt = (field: string, value: unknown, what: string): number => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
      bad(field, value, `a positive integer (${what})`);
    }
    return value as number;
  };
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new InvalidArgumentError({
      where,
      path: at.path === '' ? 'policy' : at.path,
      value: spec,
      expected: "an object of breaker options, e.g. { failureThreshold: 5, openFor: '30s' }",
    });
  }
  checkOptionNames(spec, BREAKER_OPTIONS, at);
  let failureRate: FailureRate | null = null;
  if (spec.failureRate !== undefined) {
    const r = spec.failureRate;
    if (typeof r !== 'object' || r === null || Array.isArray(r))
      bad(
        'failureRate',
        r,
        "an object { rate, window, minimumCalls? }, e.g. { rate: 0.5, window: '1m' }",
      );
    checkOptionNames(r, RATE_OPTIONS, { where, path: path('failureRate') });
    if (typeof r.rate !== 'number' || !(r.rate > 0 && r.rate <= 1)) {
      bad('failureRate.rate', r.rate, 'a share of failed calls above 0 and at most 1, e.g. 0.5');
    }
    const windowMs = readDuration(r.window, { where, path: path('failureRate.window') });
    failureRate = {
      rate: r.rate,
      windowMs,
      minimumCalls:
        r.minimumCalls === undefined
          ? 10
          : positiveInt(
              'failureRate.minimumCalls',
              r.minimumCalls,
              'calls in the window before the rate counts',
            ),
      bucketMs: Math.ceil(windowMs / WINDOW_BUCKETS),
    };
  }
  let failureThreshold: number | null = null;
  if (spec.failureThreshold !== undefined)
    failureThreshold = positiveInt('failureThreshold', spec.failureThreshold, 'failures in a row');
  else if (failureRate === null) failureThreshold = 5;
  const openForMs = readDuration(spec.openFor === undefined ? '30s' : spec.openFor, {
    where,
    path: path('openFor'),
  });
  const maxOpenForMs =
    spec.maxOpenFor === undefined
      ? Math.max(DEFAULT_MAX_OPEN_MS, openForMs)
      : readDuration(spec.maxOpenFor, { where, path: path('maxOpenFor') });
  if (maxOpenForMs < openForMs) {
    bad(
      'maxOpenFor',
      spec.maxOpenFor,
      `a duration no shorter than openFor (${humanMs(openForMs)})`,
    );
  }
  const backoffFactor = spec.backoffFactor === undefined ? 2 : spec.backoffFactor;
  if (typeof backoffFactor !== 'number' || !Number.isFinite(backoffFactor) || backoffFactor < 1) {
    bad('backoffFactor', backoffFactor, 'a finite number from 1 (1: no backoff)');
  }
  const probes =
    spec.probes === undefined ? 1 : positiveInt('probes', spec.probes, 'probe calls at once');
  const successesToClose =
    spec.successesToClose === undefined
      ? probes
      : positiveInt('successesToClose', spec.successesToClose, 'probe successes that close it');
  return {
    failureThreshold,
    failureRate,
    openForMs,
    backoffFactor,
    maxOpenForMs,
    probes,
    successesToClose,
  };
}

/**
 * openDurationMs is how long the breaker stays open after `reopens` re-opens from half-open in a
 * row: `openForMs × backoffFactor^reopens`, rounded to whole ms, capped at `maxOpenForMs`.
 *
 * @example openDurationMs({ openForMs: 30_000, backoffFactor: 2, maxOpenForMs: 300_000 }, 2) // 120000
 */
export function openDurationMs(
  policy: Pick<BreakerPolicy, 'openForMs' | 'backoffFactor' | 'maxOpenForMs'>,
  reopens: number,
): Ms {
  // factor ** reopens may overflow to Infinity; the cap absorbs it.
  const ms = Math.round(policy.openForMs * policy.backoffFactor ** reopens);
  return Math.min(policy.maxOpenForMs, ms);
}

/** samePolicy tells whether two compiled policies behave the same ('30s' and 30000 do). */
export function samePolicy(a: BreakerPolicy, b: BreakerPolicy): boolean {
  // Both come from compileBreakerPolicy, which builds every field in the same order.
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * BreakerOptions puts a circuit breaker in front of every key of a limiter (one breaker per key,
 * e.g. per provider × API key): the breaker's policy, and what acquire does while it is open.
 */
export interface BreakerOptions extends BreakerPolicySpec {
  /**
   * While the breaker is open: `'fail'` rejects acquire at once with CircuitOpenError; `'wait'`
   * waits (within the acquire's timeout and signal) until it is half-open and admits a probe.
   * @default 'fail'
   */
  readonly whenOpen?: 'fail' | 'wait';
}
