/**
 * The breaker's own error. Everything else a breaker throws comes from src/errors.ts:
 * InvalidArgumentError (bad policy or name), LimiterClosedError (the breaker was stopped),
 * AcquireAbortedError (a wait was aborted) and GrantStateError (a permit ended twice).
 */
import { TollgateError } from '../errors.js';
import type { Ms } from '../limiter/types.js';

/**
 * CircuitOpenError: a call was refused because its circuit breaker is open (or half-open with
 * every probe slot taken). Nothing was booked. Retry after `retryAfterMs`, or wait with
 * `breaker.waitForHalfOpen()`.
 *
 * @example
 * try { await limiter.acquire('gpt-4o') } catch (e) {
 *   if (e instanceof CircuitOpenError) console.log(`${e.breaker} is ${e.state}, retry in ${e.retryAfterMs} ms`);
 * }
 */
export class CircuitOpenError extends TollgateError {
  readonly code = 'CIRCUIT_OPEN' as const;

  constructor(
    /** Name of the breaker that refused (e.g. `openai/key-1`). */
    readonly breaker: string,
    /** The breaker's state when it refused. */
    readonly state: 'open' | 'halfOpen',
    /** Ms until the breaker may admit again: the open time left, or a hint when half-open. */
    readonly retryAfterMs: Ms,
    call = 'acquire',
  ) {
    super(
      state === 'open'
        ? `tollgate: ${call} refused, circuit breaker "${breaker}" is open; retry after ${retryAfterMs} ms`
        : `tollgate: ${call} refused, circuit breaker "${breaker}" is half-open and its probe slots are taken; retry after ${retryAfterMs} ms`,
    );
  }
}
