/**
 * Every error tollgate throws or rejects with, in one place.
 *
 * Each class has a literal `code` and carries a brand, so `isTollgateError` works even when two
 * copies of tollgate are installed side by side (an `instanceof` check would not).
 */

import { badArgumentMessage, humanMs, onLimiter, type BadArgument } from './describe.js';

export type { BadArgument, Place } from './describe.js';

const BRAND = Symbol.for('tollgate.error');

/** Codes of every tollgate error, one per class. */
export type TollgateErrorCode =
  | 'INVALID_ARGUMENT'
  | 'COST_EXCEEDS_CAPACITY'
  | 'ACQUIRE_TIMEOUT'
  | 'ACQUIRE_ABORTED'
  | 'QUEUE_FULL'
  | 'TOO_MANY_KEYS'
  | 'LIMITER_CLOSED'
  | 'STORE_UNAVAILABLE'
  | 'STORE_REJECTED'
  | 'GRANT_STATE'
  | 'INTERNAL'
  | 'TOKENIZER_UNAVAILABLE'
  | 'CIRCUIT_OPEN';

/**
 * TollgateError is the base class of every error tollgate throws. Its `name` is the subclass
 * name and its `code` a literal, so callers can switch on either.
 */
export abstract class TollgateError extends Error {
  /** A stable, machine-readable code, one per subclass. */
  abstract readonly code: TollgateErrorCode;
  /** @internal brand read by {@link isTollgateError}. */
  readonly [BRAND] = true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * isTollgateError tells whether `e` is an error thrown by tollgate, any copy of it.
 *
 * @example
 * try { await limiter.acquire('k') } catch (e) { if (isTollgateError(e)) console.log(e.code) }
 */
export function isTollgateError(e: unknown): e is TollgateError {
  return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[BRAND] === true;
}

/**
 * InvalidArgumentError: a call got a value it cannot use (NaN, a negative cost, a zero rate, an
 * unknown dimension…). Nothing was changed. The message says where (the call, the limiter and
 * key), the field's path, the value with its type and what is allowed, in one line:
 * `tollgate: acquire on limiter "a", key "k": options.timeout is -1; expected 0 (refuse at once) or
 * a duration from 1 ms to 366 days, as ms or a string like '500ms', '2s', '5m', '1h' or '1d'`.
 */
export class InvalidArgumentError extends TollgateError {
  readonly code = 'INVALID_ARGUMENT' as const;
  /**
   * The path of the refused field as the caller wrote it (`limits[0].limit`, `options.timeout`,
   * `breaker.failureRate.rate`); undefined when the error is not about one field.
   */
  readonly path: string | undefined;
  /**
   * The refused value (undefined when the error is not about one field). Not enumerable, so a
   * logged error does not print it (it may be a whole client object, with its credentials).
   */
  declare readonly value: unknown;

  /** Builds the message from `bad` (see {@link BadArgument}), or takes `message` as it is. */
  constructor(bad: BadArgument | string) {
    super(typeof bad === 'string' ? bad : badArgumentMessage(bad));
    this.path = typeof bad === 'string' ? undefined : bad.path;
    Object.defineProperty(this, 'value', {
      value: typeof bad === 'string' ? undefined : bad.value,
      enumerable: false,
    });
  }
}

/**
 * CostExceedsCapacityError: a cost larger than a limit's capacity can never be admitted, so it is
 * refused up front instead of waiting forever. The message names where, the cost's path, the
 * amount and the limit: `tollgate: acquire on limiter "a", key "k": options.cost.tokens 1200
 * exceeds capacity 1000 of limit "tpm"`.
 */
export class CostExceedsCapacityError extends TollgateError {
  readonly code = 'COST_EXCEEDS_CAPACITY' as const;
  constructor(
    /** Name of the limit whose capacity the cost exceeds. */
    readonly limit: string,
    /** The cost asked for, in the limit's dimension. */
    readonly cost: number,
    /** The most that limit can ever admit at once. */
    readonly capacity: number,
    /** Who refused it: `acquire on limiter "a", key "k"`, or the call's name. */
    where = 'acquire',
    /** The cost's path as the caller wrote it: `options.cost.tokens`. */
    readonly path = 'cost',
  ) {
    super(
      `tollgate: ${where}: ${path} ${cost} exceeds capacity ${capacity} of limit ${JSON.stringify(limit)}`,
    );
  }
}

/** Where a waiter was when its timeout passed (see {@link AcquireTimeoutError}). */
export interface TimeoutPlace {
  readonly limiter: string;
  readonly key: string;
  /**
   * What held it: a limit's name, `'concurrency'`, `'paused'`, `'breaker'`, or `'queue'` (waiters
   * ahead of it); null when it was never refused (the store had not answered yet).
   */
  readonly heldBy: string | null;
}

/**
 * AcquireTimeoutError: a waiter's `timeout` passed before its cost fitted. It holds nothing. The
 * message names the limiter, the key and what held the waiter, when known (`place`).
 */
export class AcquireTimeoutError extends TollgateError {
  readonly code = 'ACQUIRE_TIMEOUT' as const;
  readonly limiter: string | undefined;
  readonly key: string | undefined;
  readonly heldBy: string | null | undefined;
  constructor(
    readonly timeoutMs: number,
    place?: TimeoutPlace,
  ) {
    super(
      place === undefined
        ? `tollgate: acquire timed out after ${humanMs(timeoutMs)}`
        : `tollgate: ${onLimiter(place.limiter, 'acquire', place.key)}, timed out after ${humanMs(timeoutMs)}${heldByText(place.heldBy)}`,
    );
    this.limiter = place?.limiter;
    this.key = place?.key;
    this.heldBy = place?.heldBy;
  }
}

function heldByText(heldBy: string | null): string {
  if (heldBy === null) return '';
  if (heldBy === 'queue') return ', behind the waiters queued ahead of it';
  if (heldBy === 'concurrency') return ', every concurrency slot held';
  if (heldBy === 'paused') return ', the key paused (a provider said 429)';
  if (heldBy === 'breaker') return ', its circuit breaker open';
  return `, held by limit ${JSON.stringify(heldBy)}`;
}

/**
 * AcquireAbortedError: the waiter's `AbortSignal` fired. `cause` is `signal.reason`. It holds
 * nothing.
 */
export class AcquireAbortedError extends TollgateError {
  readonly code = 'ACQUIRE_ABORTED' as const;
  constructor(reason: unknown) {
    super('tollgate: acquire aborted', { cause: reason });
  }
}

/** QueueFullError: the key already has `maxQueue` waiters; this one was not queued. */
export class QueueFullError extends TollgateError {
  readonly code = 'QUEUE_FULL' as const;
  constructor(readonly maxQueue: number) {
    super(`tollgate: acquire refused, the queue is full (maxQueue ${maxQueue})`);
  }
}

/**
 * TooManyKeysError: a call on a new key of a limiter that keeps `maxKeys` keys already, none of
 * which could be forgotten to make room: with `onMaxKeys: 'refuse'`, none back at full capacity;
 * with `'evict-lru'`, every one of the least recently used holding work (a waiter, a call in
 * flight, a pause). Nothing was booked or queued, and every key kept is as it was.
 */
export class TooManyKeysError extends TollgateError {
  readonly code = 'TOO_MANY_KEYS' as const;
  constructor(
    readonly limiter: string,
    readonly key: string,
    readonly maxKeys: number,
    readonly onMaxKeys: 'refuse' | 'evict-lru',
  ) {
    super(
      `tollgate: ${onLimiter(limiter, undefined, key)}: the limiter keeps maxKeys ${maxKeys} keys, ` +
        (onMaxKeys === 'refuse'
          ? "none back at full capacity; a new key is refused (onMaxKeys: 'refuse')"
          : "and the least recently used hold work (a waiter, a call in flight, a pause); none can be evicted (onMaxKeys: 'evict-lru')"),
    );
  }
}

/** LimiterClosedError: the system was closed; waiters end with it and new calls are refused. */
export class LimiterClosedError extends TollgateError {
  readonly code = 'LIMITER_CLOSED' as const;
  constructor(call = 'acquire') {
    super(`tollgate: ${call} on a closed limiter system`);
  }
}

/** StoreUnavailableError: the store (Redis) could not decide; `cause` is the store's error. */
export class StoreUnavailableError extends TollgateError {
  readonly code = 'STORE_UNAVAILABLE' as const;
  constructor(message: string, cause?: unknown) {
    super(`tollgate: store unavailable: ${message}`, { cause });
  }
}

/**
 * StoreRejectedError: the store answered, but refused the call itself: a Redis script raised an
 * error (a bug, a bad argument, a key holding something else). It is not an outage: the store is
 * not marked down, and no `onUnavailable` fallback answers in its place. `cause` is the store's
 * error.
 */
export class StoreRejectedError extends TollgateError {
  readonly code = 'STORE_REJECTED' as const;
  constructor(
    /** The store operation that was refused: `'decide'`, `'settle'`, `'release'`… */
    readonly op: string,
    message: string,
    cause?: unknown,
  ) {
    super(`tollgate: store rejected ${op}: ${message}`, { cause });
  }
}

/** GrantStateError: a grant was settled twice, or settled after it was cancelled. */
export class GrantStateError extends TollgateError {
  readonly code = 'GRANT_STATE' as const;
}

/**
 * InternalError: an operation of a key failed on a bug (in tollgate, or in a custom store that
 * threw something unexpected). Only that operation's callers get it; the key goes on working.
 * `cause` is what was thrown.
 */
export class InternalError extends TollgateError {
  readonly code = 'INTERNAL' as const;
  constructor(what: string, cause: unknown) {
    super(
      `tollgate: internal error in ${what}: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
  }
}

/**
 * TokenizerUnavailableError: the default tokenizer (o200k_base from the optional peer
 * `gpt-tokenizer`) cannot count. `reason` says why:
 * - `'not-installed'`: the package is not installed (`npm install gpt-tokenizer`), or was left out
 *   of a bundle; pass your own `estimate` or `Tokenizer` to do without it;
 * - `'not-loaded'`: a synchronous estimate (`estimateTokens`, `estimateRequestCost`,
 *   `defaultTokenizer`) ran before the tokenizer was loaded; `await loadTokenizer()` first, once
 *   (the async paths, limitedFetch among them, load it themselves).
 */
export class TokenizerUnavailableError extends TollgateError {
  readonly code = 'TOKENIZER_UNAVAILABLE' as const;
  constructor(
    readonly reason: 'not-installed' | 'not-loaded',
    cause?: unknown,
  ) {
    super(
      reason === 'not-installed'
        ? 'tollgate: the default token estimate needs the package gpt-tokenizer, which is not installed: run `npm install gpt-tokenizer`, or pass your own `estimate` (limitedFetch) or `Tokenizer`'
        : 'tollgate: the tokenizer is not loaded yet: `await loadTokenizer()` once before a synchronous estimate (estimateTokens, estimateRequestCost, defaultTokenizer), or use estimateTokensAsync',
      { cause },
    );
  }
}
