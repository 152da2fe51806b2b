/**
 * How tollgate's error messages show what a caller passed (#11). Every message about bad input
 * has one shape, in this order: where (the call or factory, with the limiter and key), the field's
 * path as the caller wrote it, the value with its type, and what is allowed in human units:
 *
 *   tollgate: limiter "a": limits[0].limit is "5" (a string); expected a positive integer …
 *   tollgate: acquire on limiter "a", key "k": options.timeout is -1; expected 0 (refuse at once) …
 *
 * Numbers are shown bare (the type most fields want); every other value says its type, so a
 * string `'5'` never reads as the number 5.
 */

/** Place is where a bad value was found: the call or factory, and the field's path in it. */
export interface Place {
  /**
   * Who refused it: `limiter "a"`, `acquire on limiter "a", key "k"`, `createLimiterSystem`,
   * `redisStore`, `limitedFetch`; empty when only the path is known.
   */
  readonly where: string;
  /**
   * The field's path as the caller wrote it: `limits[0].limit`, `breaker.failureRate.rate`,
   * `options.timeout`, `options.cost.tokens`, `key`.
   */
  readonly path: string;
}

/**
 * BadArgument is what an `InvalidArgumentError` built from one knows: where, which field, the
 * value and what is allowed. Its message is `tollgate: <where>: <path> is <value>; expected
 * <expected>`.
 */
export interface BadArgument extends Place {
  /** The value refused. */
  readonly value: unknown;
  /** What is allowed, in human units: `a positive integer (how many per interval)`. */
  readonly expected: string;
  /**
   * What is wrong, in place of `is <value>`, when the value alone does not say it (`is not an
   * option (did you mean "timeout"?)`).
   */
  readonly problem?: string;
}

/** badArgumentMessage is the one-line message of a {@link BadArgument}. */
export function badArgumentMessage(bad: BadArgument): string {
  const what = `${bad.path} ${bad.problem ?? `is ${describeValue(bad.value)}`}`;
  return `tollgate: ${bad.where === '' ? '' : `${bad.where}: `}${what}; expected ${bad.expected}`;
}

/** The longest a shown value gets before it is cut with `…`. */
const MAX_SHOWN = 40;
/** The longest a shown name or key gets: longer, as keys (a hashed API key) often are. */
const MAX_NAME = 64;

/**
 * describeValue shows `value` for a message, with its type unless it is a number: `-1`, `NaN`,
 * `"5" (a string)`, `{} (an object)`, `[1,2] (an array)`, `null`, `undefined`, `a function`,
 * `a Map`. Long strings and objects are cut to about 40 characters.
 */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case 'number':
      return Object.is(value, -0) ? '-0' : String(value);
    case 'string':
      return `${cut(JSON.stringify(value))} (a string)`;
    case 'bigint':
      return `${value}n (a bigint)`;
    case 'boolean':
      return `${value} (a boolean)`;
    case 'undefined':
      return 'undefined';
    case 'symbol':
      return `${cut(value.toString())} (a symbol)`;
    case 'function':
      return 'a function';
  }
  if (value === null) return 'null';
  if (Array.isArray(value)) return `${json(value, '[…]')} (an array)`;
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) return `${json(value, '{…}')} (an object)`;
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' && name !== '' ? withArticle(name) : 'an object';
}

/** quote shows a name or key in double quotes, cut if long: `"user-42"`. */
export function quote(text: string): string {
  return cut(JSON.stringify(text), MAX_NAME);
}

/**
 * onBreaker names a circuit breaker, and the call when given: `breaker "llm/gpt"`,
 * `tryEnter of breaker "llm/gpt"`.
 */
export function onBreaker(name: string, call?: string): string {
  return `${call === undefined ? '' : `${call} of `}breaker ${quote(name)}`;
}

/**
 * onLimiter names a limiter, and the call and key when given: `limiter "a"`,
 * `setLimits on limiter "a"`, `acquire on limiter "a", key "k"`.
 */
export function onLimiter(limiter: string, call?: string, key?: string): string {
  const where = `limiter ${quote(limiter)}${key === undefined ? '' : `, key ${quote(key)}`}`;
  return call === undefined ? where : `${call} on ${where}`;
}

/**
 * lazyPlace is a {@link Place} whose `where` is built only when a message reads it: the checks of
 * every acquire and settle name the limiter and key without building the text each time.
 */
export function lazyPlace(where: () => string, path: string): Place {
  return {
    get where() {
      return where();
    },
    path,
  };
}

/**
 * CallPlace is the one {@link Place} a limiter's calls are checked at: {@link CallPlace.at} points
 * it at a call, key and field, and `where` is built only when a message reads it. One is reused
 * for every call, so a valid acquire or settle allocates none; that is safe because a check runs
 * to its end synchronously and an error copies `where` and `path` when it is built.
 */
export interface CallPlace extends Place {
  /** Points the place at `call` on `key`, field `path`; returns the place itself. */
  at(call: string, key: string, path: string): Place;
}

/** callPlace makes the {@link CallPlace} of the limiter `limiter`. */
export function callPlace(limiter: string): CallPlace {
  let call = '';
  let key = '';
  // An object literal: its getter is an own property, so `{ ...place }` copies `where` too.
  const place = {
    path: '',
    get where() {
      return onLimiter(limiter, call, key);
    },
    at(c: string, k: string, path: string): Place {
      call = c;
      key = k;
      place.path = path;
      return place;
    },
  };
  return place;
}

/** joinPath appends a field to a path: `('limits[0]', 'limit')` → `limits[0].limit`. */
export function joinPath(path: string, field: string): string {
  return path === '' ? field : `${path}.${field}`;
}

const HUMAN_UNITS: readonly (readonly [number, string, string])[] = [
  [86_400_000, 'day', 'days'],
  [3_600_000, 'h', 'h'],
  [60_000, 'min', 'min'],
  [1_000, 's', 's'],
];

/**
 * humanMs shows a duration in the largest unit that keeps it to one decimal: `500 ms`, `1.5 s`,
 * `2 min`, `1 h`, `366 days`.
 */
export function humanMs(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  for (const [per, one, many] of HUMAN_UNITS) {
    if (Math.abs(ms) >= per && Number.isInteger((ms * 10) / per)) {
      const n = ms / per;
      return `${n} ${n === 1 ? one : many}`;
    }
  }
  return `${ms} ms`;
}

function json(value: unknown, fallback: string): string {
  try {
    return cut(JSON.stringify(value) ?? fallback);
  } catch {
    return fallback; // a cycle, a bigint
  }
}

function cut(text: string, max = MAX_SHOWN): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function withArticle(name: string): string {
  return `${/^[AEIOU]/i.test(name) ? 'an' : 'a'} ${name}`;
}
