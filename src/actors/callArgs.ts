/**
 * The checks of a limiter call's arguments at the boundary (the key, acquire's options, run's
 * functions, a provider's signal): each refuses bad input with InvalidArgumentError before the
 * call touches a key. The limiter's own options are read in options.ts.
 */
import { type CallPlace, type Place, onLimiter } from '../describe.js';
import { InvalidArgumentError } from '../errors.js';
import { DURATION_ALLOWED, readDuration } from '../limiter/units.js';
import { checkOptionNames, compileCost } from '../limiter/validate.js';
import type { CostSpec, Duration, Ms, Policy, Units } from '../limiter/types.js';
import type { AcquireOptions } from './options.js';

/** The options of acquire, tryAcquire, reserve and run (run's `settle` and `classify` included). */
const ACQUIRE_OPTIONS = ['cost', 'timeout', 'priority', 'signal', 'settle', 'classify'] as const;
const ACQUIRE_OPTION_SET: ReadonlySet<string> = new Set(ACQUIRE_OPTIONS);

/**
 * checkKey throws unless `key` is a string.
 *
 * @throws InvalidArgumentError `<call> on limiter "a": key is 5; expected a string`.
 */
export function checkKey(key: unknown, call: string, limiter: string): asserts key is string {
  if (typeof key !== 'string') {
    throw new InvalidArgumentError({
      where: onLimiter(limiter, call),
      path: 'key',
      value: key,
      expected: 'a string',
    });
  }
}

/**
 * checkRunFunctions throws unless `run`'s `fn`, and its options' `settle` and `classify` when
 * given, are functions: checked before the acquire, since a grant taken for a call that cannot be
 * made would stay booked (run keeps the estimate of a call that threw). `where` names the call.
 *
 * @throws InvalidArgumentError `run on limiter "a", key "k": options.settle is 5; expected a function …`.
 */
export function checkRunFunctions(fn: unknown, options: unknown, where: string): void {
  const bad = (path: string, value: unknown, expected: string): never => {
    throw new InvalidArgumentError({ where, path, value, expected });
  };
  if (typeof fn !== 'function') bad('fn', fn, 'a function (grant) => result, the call to make');
  if (typeof options !== 'object' || options === null) return; // parseAcquireOptions says why
  const { settle, classify } = options as { settle?: unknown; classify?: unknown };
  if (settle !== undefined && typeof settle !== 'function') {
    bad('options.settle', settle, 'a function (result) => the actual cost');
  }
  if (classify !== undefined && typeof classify !== 'function') {
    bad('options.classify', classify, "a function (error) => 'failure', 'neutral' or 'success'");
  }
}

/**
 * checkProviderSignal throws unless `signal` is an object whose `limits`, when given, is an array
 * of objects. The fields of each are read leniently (a `remaining` that is no number counts as
 * unknown: headers come from proxies too); their container must be what it says.
 *
 * @throws InvalidArgumentError `feedback on limiter "a", key "k": signal.limits is 5; expected …`.
 */
export function checkProviderSignal(signal: unknown, where: string): void {
  const isObject = (v: unknown): boolean =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(signal)) {
    throw new InvalidArgumentError({
      where,
      path: 'signal',
      value: signal,
      expected: 'an object { throttled?, retryAfterMs?, limits? }',
    });
  }
  const { limits } = signal as { limits?: unknown };
  if (limits === undefined) return;
  if (!Array.isArray(limits)) {
    throw new InvalidArgumentError({
      where,
      path: 'signal.limits',
      value: limits,
      expected: 'an array of { dimension, remaining, resetMs }, e.g. from feedbackFromResponse',
    });
  }
  limits.forEach((l: unknown, i) => {
    if (!isObject(l)) {
      throw new InvalidArgumentError({
        where,
        path: `signal.limits[${i}]`,
        value: l,
        expected: 'an object { dimension, remaining, resetMs }',
      });
    }
  });
}

/** The options of acquire, tryAcquire and reserve, validated and compiled. */
export interface ParsedAcquire {
  readonly units: Units;
  readonly timeoutMs: Ms;
  readonly priority: number;
  readonly signal: AbortSignal | undefined;
  readonly cost: CostSpec | undefined;
}

/** What an acquire's timeout may be, for messages. */
export const TIMEOUT_ALLOWED = `0 (refuse at once) or ${DURATION_ALLOWED}`;

/**
 * readTimeout reads an acquire's `timeout`: 0 (refuse unless it fits at once) or a duration.
 *
 * @throws InvalidArgumentError naming `at` for anything else.
 */
export function readTimeout(timeout: Duration, at: Place): Ms {
  return timeout === 0 ? 0 : readDuration(timeout, at, TIMEOUT_ALLOWED);
}

/**
 * parseAcquireOptions validates the options of a call and compiles the cost under `policy`
 * (`defaultUnits` when none is given). `place` is the limiter's, pointed at `call` on `key` for
 * messages (`acquire on limiter "a", key "k"`); a valid call builds no message text.
 *
 * @throws InvalidArgumentError, CostExceedsCapacityError for bad options.
 */
export function parseAcquireOptions(
  policy: Policy,
  defaultUnits: Units,
  options: AcquireOptions | undefined,
  place: CallPlace,
  call: string,
  key: string,
): ParsedAcquire {
  if (options === undefined) {
    return {
      units: defaultUnits,
      timeoutMs: Infinity,
      priority: 0,
      signal: undefined,
      cost: undefined,
    };
  }
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidArgumentError({
      ...place.at(call, key, 'options'),
      value: options,
      expected: "an object, e.g. { cost: { tokens: 1200 }, timeout: '10s' }",
    });
  }
  for (const k in options) {
    if (!ACQUIRE_OPTION_SET.has(k)) {
      checkOptionNames(options, ACQUIRE_OPTIONS, place.at(call, key, 'options'));
    }
  }
  const signal = options.signal;
  if (
    signal !== undefined &&
    (typeof signal !== 'object' ||
      signal === null ||
      typeof (signal as { aborted?: unknown }).aborted !== 'boolean' ||
      typeof (signal as { addEventListener?: unknown }).addEventListener !== 'function')
  ) {
    throw new InvalidArgumentError({
      ...place.at(call, key, 'options.signal'),
      value: signal,
      expected: 'an AbortSignal, e.g. AbortSignal.timeout(5000)',
    });
  }
  const cost = options.cost;
  const units =
    cost === undefined
      ? defaultUnits
      : compileCost(policy, cost, place.at(call, key, 'options.cost'));
  const timeoutMs =
    options.timeout === undefined
      ? Infinity
      : readTimeout(options.timeout, place.at(call, key, 'options.timeout'));
  let priority = 0;
  if (options.priority !== undefined) {
    if (typeof options.priority !== 'number' || !Number.isFinite(options.priority)) {
      throw new InvalidArgumentError({
        ...place.at(call, key, 'options.priority'),
        value: options.priority,
        expected: 'a finite number (higher is served first)',
      });
    }
    priority = options.priority;
  }
  return { units, timeoutMs, priority, signal, cost };
}
