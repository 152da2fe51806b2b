/**
 * limitedFetch wraps `fetch` so every call to an LLM API goes through a {@link Limiter}: pass it
 * to an SDK (`new OpenAI({ fetch: limitedFetch({ limiter }) })`) or call it like fetch.
 *
 * The flow of one call (a `data:` or `blob:` URL, or a GET of `/models`, is passed straight to
 * fetch: nothing the provider counts):
 *
 *   parse the JSON body ─▶ key (the body's `model`) ─▶ estimate (input tokens + max output)
 *     ─▶ limiter.acquire(key, { cost, signal })          waits; CircuitOpenError etc. pass through,
 *                                                        an abort rejects with signal.reason as fetch does
 *     ─▶ fetch(input, init)
 *          threw ─▶ report 'failure' ('neutral' if the caller aborted) ─▶ release ─▶ rethrow
 *     ─▶ limiter.feedback(key, headers)   a 429 pauses the key; remaining lowers its capacity
 *     ─▶ report to the breaker: 2xx/3xx success · throttled neutral (429, or 503/529 naming a
 *        retry delay: the provider said when to come back) · other 5xx failure · other 4xx neutral
 *     ─▶ settle and release, once:
 *          error status ─▶ settle { requests: 1 } and 0 tokens, release, return the response
 *          JSON         ─▶ read a clone, settle with its `usage`, release, return the response
 *          SSE / other  ─▶ return a new Response whose body passes the original through, reading
 *                          the usage events on the way; settle and release when the body ends,
 *                          errors, or the consumer cancels it
 *
 * Choices made, and why:
 * - An error status books the request but no tokens: the provider did not process the prompt
 *   (providers count refused requests toward requests-per-minute, not toward tokens).
 * - A thrown fetch (network error, abort) keeps the estimate booked, as `limiter.run` does: the
 *   provider may have processed the call, and it cannot be told.
 * - A stream that is abandoned or breaks settles with what it said so far; a dimension it never
 *   said keeps the estimate. An OpenAI stream says its usage only with
 *   `stream_options: { include_usage: true }`: without it the estimate stays booked.
 * - The grant is settled before the JSON response is handed back, so a caller that awaited the
 *   call sees the booking final. A consumer that neither reads nor cancels a streamed body holds
 *   the concurrency slot until the Response is garbage-collected (or the grant's lease ends, if
 *   the limiter has one), then the call settles with what the stream said so far.
 * - The returned function carries `Response` (the wrapped fetch's, else the global one): the
 *   SDKs read `fetch.Response` before an upload instead of probing with `fetch('data:,')`.
 * - Feedback never throws into the caller: an odd header or a closed limiter must not fail a
 *   call that succeeded.
 */
import { AcquireAbortedError, InvalidArgumentError } from '../errors.js';
import { Limiter } from '../actors/limiter.js';
import type { Grant } from '../actors/grant.js';
import { systemClock, wallClockNow } from '../clock.js';
import type { CostSpec, Duration, Ms } from '../limiter/types.js';
import { parseDuration } from '../limiter/units.js';
import { readTimeout } from '../actors/callArgs.js';
import { Call } from './call.js';
import { accountingOf, fitOutput, generates, isCounted, jsonBody, modelOf } from './endpoints.js';
import {
  estimateTokensAsync,
  loadTokenizer,
  projectCost,
  type TokenEstimator,
} from './estimate.js';
import type { TokenUsage } from './usage.js';

/** LimitedFetchOptions are the options of {@link limitedFetch}. */
export interface LimitedFetchOptions {
  /** The limiter every call goes through. Its policy's dimensions decide what is estimated. */
  readonly limiter: Limiter;
  /**
   * The limiter key of a call: a fixed string, or a function of the URL and the parsed JSON body
   * (undefined when there is none). @default the body's `model`, else `'default'`
   */
  readonly key?: string | ((url: string, body: unknown) => string);
  /**
   * The cost to acquire, from the parsed JSON body (undefined when the body is not a JSON string)
   * and the policy's dimensions. @default estimateRequestCost with o200k_base; `{ requests: 1 }`
   * for a body that is not JSON
   */
  readonly estimate?: TokenEstimator;
  /** The fetch to call. @default globalThis.fetch */
  readonly fetch?: typeof fetch;
  /** Give up waiting for the limiter after this long (AcquireTimeoutError). @default no timeout */
  readonly timeout?: Duration;
  /**
   * Ms since the epoch, to read dated headers (`retry-after: <HTTP-date>`) and to time
   * `hungAfter`. @default the wall clock (`Date.now()`) for dated headers, which are instants of
   * the provider's wall clock; the monotonic systemClock.now for `hungAfter`, an interval that a
   * step of the wall clock must not stretch or cut
   */
  readonly now?: () => Ms;
  /**
   * An abort that ends a call after the provider kept silent this long (no response yet) counts
   * as a failure for the key's circuit breaker: an SDK's timeout aborts exactly as a user does,
   * so without this a provider that never answers never opens the breaker. An earlier abort is
   * the caller's choice and neutral. @default '60s'
   */
  readonly hungAfter?: Duration;
  /**
   * How the provider counts a call's tokens against its per-minute limits, so the settle books
   * what the provider counts:
   * - `'max'`: the input and the output maximum (`max_tokens`) when the call arrives, kept for the
   *   window whatever the call used (OpenAI documents this). A token dimension settles to the
   *   estimate, or to the usage where the usage is larger.
   * - `'usage'`: what the call used; the unused maximum is given back at the end (Anthropic). A
   *   token dimension settles to the usage.
   *
   * @default `'usage'` for Anthropic's `/v1/messages`, `'max'` for every other endpoint (also the
   *   safe choice for a provider that does not say)
   */
  readonly accounting?: 'max' | 'usage';
}

/** The default of {@link LimitedFetchOptions.hungAfter}. */
const HUNG_AFTER_MS = 60_000;

/**
 * limitedFetch returns a `fetch` that acquires from `options.limiter` before each call, feeds
 * the provider's rate-limit headers back to it, reports each outcome to the key's circuit
 * breaker, and settles the grant with the usage the provider reports. See the file comment for
 * the flow. The returned function rejects with whatever acquire or the wrapped fetch rejects with
 * (AcquireTimeoutError, CircuitOpenError, QueueFullError, a network error, …), except that an
 * abort while waiting for the limiter rejects, as fetch does, with `signal.reason` (an
 * AbortError DOMException unless the caller gave another reason). Every grant it took is
 * released whatever happens, and settled at most once.
 *
 * @throws InvalidArgumentError (synchronously) for options that are not what they should be.
 * @example
 * const limiter = system.limiter('openai', {
 *   limits: [{ limit: 500, interval: '1m' }, { limit: 200_000, interval: '1m', dimension: 'tokens' }],
 * });
 * const client = new OpenAI({ fetch: limitedFetch({ limiter }) });
 */
export function limitedFetch(options: LimitedFetchOptions): typeof fetch {
  const { limiter, key, estimate } = checkOptions(options);
  // Read now, not at the first call (the acquire would refuse it then, on every call), and once:
  // each call passes the ms, with no Duration to parse again.
  const timeoutMs =
    options.timeout === undefined
      ? undefined
      : readTimeout(options.timeout, { where: WHERE, path: 'options.timeout' });
  const hungAfterMs =
    options.hungAfter === undefined
      ? HUNG_AFTER_MS
      : parseDuration(options.hungAfter, { where: WHERE, path: 'options.hungAfter' });
  // The tokenizer's one-time set-up runs now, not in the first call's path.
  if (estimate === undefined) void loadTokenizer().catch(() => {});
  const inner = options.fetch ?? globalThis.fetch;
  // Dated headers are compared with the wall clock, not the runtime's monotonic one, which drifts
  // from it by every step the wall clock took since load; hungAfter is an interval, on the
  // monotonic clock. A `now` given times both (tests on a virtual clock).
  const wallNow = options.now ?? wallClockNow;
  const now = options.now ?? systemClock.now;

  const limited = async function limited(
    input: string | URL | Request,
    init?: RequestInit,
  ): Promise<Response> {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    // Not a call to the provider: a `data:` or `blob:` URL (the SDKs' probe of fetch before an
    // upload), or a listing of models. Nothing to limit, and nothing may hold a slot for it.
    if (!isCounted(url, init?.method ?? (input instanceof Request ? input.method : 'GET')))
      return inner(input, init);
    const body = await jsonBody(input, init);
    const k = typeof key === 'function' ? key(url, body) : (key ?? modelOf(body, url));
    // Estimate: the parts (input, output) are kept for settling a stream that told only one of them.
    const dims = limiter.policy.dimensions;
    let cost: CostSpec;
    let parts: TokenUsage;
    if (estimate !== undefined) {
      cost = estimate(body, dims);
      parts = cost;
    } else if (body === undefined) {
      cost = { requests: 1 };
      parts = {};
    } else {
      const tokens = fitOutput(await estimateTokensAsync(body), limiter.policy);
      parts = tokens;
      cost = projectCost(tokens, dims);
    }
    const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined);
    let grant: Grant;
    try {
      grant = await limiter.acquire(k, {
        cost,
        ...(signal != null && { signal }),
        ...(timeoutMs !== undefined && { timeout: timeoutMs }),
      });
    } catch (e) {
      // Aborted while waiting: reject as fetch does, with the signal's reason (an AbortError by
      // default), so SDKs tell an abort or their own timeout from a failure.
      if (e instanceof AcquireAbortedError && signal?.aborted === true) throw signal.reason;
      throw e;
    }
    const call = new Call(
      limiter,
      grant,
      cost,
      parts,
      generates(url),
      options.accounting ?? accountingOf(url),
    );

    let res: Response;
    const sent = now();
    try {
      res = await inner(input, init);
    } catch (e) {
      // A network error is a failure; an abort too once the provider kept silent past hungAfter
      // (an SDK's timeout), else it is the caller's and neutral.
      call.report(signal?.aborted === true && now() - sent < hungAfterMs ? 'neutral' : 'failure');
      void call.end(null);
      throw e;
    }
    try {
      return await call.answer(k, res, wallNow, signal);
    } catch (e) {
      void call.end(null); // not expected: the steps above catch their own errors; never hold the grant
      throw e;
    }
  };
  // The SDKs take `fetch.Response` when there is one, instead of probing with fetch('data:,').
  Object.defineProperty(limited, 'Response', {
    value: (inner as { Response?: unknown }).Response ?? globalThis.Response,
  });
  return limited;
}

/** Who refuses a bad option, in messages. */
const WHERE = 'limitedFetch';

function checkOptions(options: LimitedFetchOptions): LimitedFetchOptions {
  const bad = (path: string, value: unknown, expected: string): never => {
    throw new InvalidArgumentError({ where: WHERE, path, value, expected });
  };
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    bad('options', options, 'an object { limiter, … }');
  }
  if (!(options.limiter instanceof Limiter)) {
    bad('options.limiter', options.limiter, 'a Limiter from system.limiter()');
  }
  const { key, estimate, fetch: f, now, accounting } = options;
  if (key !== undefined && typeof key !== 'string' && typeof key !== 'function') {
    bad('options.key', key, 'a string, or a function (url, body) => string');
  }
  for (const [name, fn] of [
    ['estimate', estimate],
    ['fetch', f],
    ['now', now],
  ] as const) {
    if (fn !== undefined && typeof fn !== 'function') bad(`options.${name}`, fn, 'a function');
  }
  if (f === undefined && typeof globalThis.fetch !== 'function') {
    bad('options.fetch', f, 'a fetch function: this runtime has no global fetch');
  }
  if (accounting !== undefined && accounting !== 'max' && accounting !== 'usage') {
    bad('options.accounting', accounting, "'max' or 'usage'");
  }
  return options;
}
