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
import type { CallOutcome, Grant } from '../actors/grant.js';
import { systemClock } from '../clock.js';
import type { CostSpec, Duration, Ms, Policy } from '../limiter/types.js';
import { parseDuration } from '../limiter/units.js';
import {
  estimateTokens,
  projectCost,
  type TokenEstimate,
  type TokenEstimator,
} from './estimate.js';
import { feedbackFromResponse } from './headers.js';
import { costFromUsage, SseUsageReader, usageFromBody, type TokenUsage } from './usage.js';

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
   * `hungAfter`. @default systemClock.now
   */
  readonly now?: () => Ms;
  /**
   * An abort that ends a call after the provider kept silent this long (no response yet) counts
   * as a failure for the key's circuit breaker: an SDK's timeout aborts exactly as a user does,
   * so without this a provider that never answers never opens the breaker. An earlier abort is
   * the caller's choice and neutral. @default '60s'
   */
  readonly hungAfter?: Duration;
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
  const { limiter, key, estimate, timeout } = checkOptions(options);
  const hungAfterMs =
    options.hungAfter === undefined
      ? HUNG_AFTER_MS
      : parseDuration(options.hungAfter, 'limitedFetch hungAfter');
  const inner = options.fetch ?? globalThis.fetch;
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
    const k = typeof key === 'function' ? key(url, body) : (key ?? modelOf(body));
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
      const tokens = fitOutput(estimateTokens(body), limiter.policy);
      parts = tokens;
      cost = projectCost(tokens, dims);
    }
    const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined);
    let grant: Grant;
    try {
      grant = await limiter.acquire(k, {
        cost,
        ...(signal != null && { signal }),
        ...(timeout !== undefined && { timeout }),
      });
    } catch (e) {
      // Aborted while waiting: reject as fetch does, with the signal's reason (an AbortError by
      // default), so SDKs tell an abort or their own timeout from a failure.
      if (e instanceof AcquireAbortedError && signal?.aborted === true) throw signal.reason;
      throw e;
    }
    const call = new Call(limiter, grant, cost, parts, generates(url));

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
      return await call.answer(k, res, now, signal);
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

/**
 * fitOutput lowers the output part of an estimate to what the policy's limits can hold at all:
 * `max_tokens: 16000` against 8,000 output tokens a minute books 8,000 (and the settle charges
 * what the call really used), where acquiring 16,000 could never succeed. The output is the
 * most the call may use, not what it will; the input is what it sends, and is never lowered: an
 * input no limit can hold still fails with CostExceedsCapacityError.
 */
function fitOutput(tokens: TokenEstimate, policy: Policy): TokenEstimate {
  let output = tokens.outputTokens;
  for (const l of policy.limits) {
    if (l.dimension === 'outputTokens') output = Math.min(output, l.capacity);
    else if (l.dimension === 'tokens')
      output = Math.min(output, Math.max(0, l.capacity - tokens.inputTokens));
  }
  return output === tokens.outputTokens ? tokens : { ...tokens, outputTokens: output };
}

/**
 * generates: whether the URL is an endpoint that generates or embeds (and so uses tokens the
 * provider counts): `/chat/completions`, `/completions`, `/responses`, `/messages`,
 * `/embeddings`, at the end of the path (Azure's deployment paths included). Others
 * (`/messages/count_tokens`, `/responses/input_tokens`, `/moderations`, `/files`) are counted as
 * requests only when their answer tells no usage.
 */
function generates(url: string): boolean {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    return true;
  }
  return /\/(chat\/completions|completions|responses|messages|embeddings)\/?$/.test(path);
}

/**
 * isCounted: whether a call is one the provider counts. Only http(s) calls are, and of those not
 * a GET of the model list or of one model (`/models`, `/models/{id}`), which providers do not
 * count against the limits tollgate keeps.
 */
function isCounted(url: string, method: string): boolean {
  if (!/^https?:/i.test(url)) return false;
  if (method.toUpperCase() !== 'GET') return true;
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    return true;
  }
  return !/\/models(\/[^/]+)?\/?$/.test(path);
}

/**
 * Calls whose streamed body was handed back: ended (settled with what the stream said so far, and
 * released) when their Response is garbage-collected before its body ended or was cancelled. An
 * SDK that never reads a body, or a caller that drops a response, holds no slot for good.
 */
const abandoned = new FinalizationRegistry<Call>((call) => call.abandon());

/** One call's grant, from the response to its one settle and release. */
class Call {
  /** Set once settle and release were done; every later end is a no-op. */
  #ended = false;
  /** The usage reader of a streamed body handed back, if it is an SSE stream. */
  #sse: SseUsageReader | null = null;

  constructor(
    readonly limiter: Limiter,
    readonly grant: Grant,
    readonly cost: CostSpec,
    readonly parts: TokenUsage,
    /** Whether the endpoint generates (see {@link generates}): else a 2xx books no tokens. */
    readonly generating: boolean,
  ) {}

  async answer(
    key: string,
    res: Response,
    now: () => Ms,
    signal: AbortSignal | null | undefined,
  ): Promise<Response> {
    let throttled = res.status === 429;
    try {
      const feedback = feedbackFromResponse({ status: res.status, headers: res.headers }, now());
      throttled = feedback.throttled;
      await this.limiter.feedback(key, feedback);
    } catch {
      // Feedback is advice: a failure to apply it must not fail the call.
    }
    const type = res.headers.get('content-type') ?? '';
    const sse =
      res.status < 300 && res.body !== null && /^\s*text\/event-stream/i.test(type)
        ? new SseUsageReader()
        : null;
    // A 2xx stream is judged at its end: an error event inside it is a failure.
    if (sse === null)
      this.report(
        throttled
          ? 'neutral'
          : res.status >= 500
            ? 'failure'
            : res.status >= 400
              ? 'neutral'
              : 'success',
      );
    if (res.status >= 400) {
      await this.end(this.#requestOnly());
      return res;
    }
    if (res.body === null || res.status === 204 || res.status === 205 || res.status === 304) {
      await this.end(null);
      return res;
    }
    if (/\bjson\b/i.test(type)) {
      let usage: TokenUsage | null = null;
      try {
        usage = usageFromBody(JSON.parse(await res.clone().text()));
      } catch {
        // An unreadable or malformed body: the estimate stays booked.
      }
      // A 2xx without usage from an endpoint that generates nothing (count_tokens, moderations,
      // files): the provider counts the request, not tokens. A generating endpoint that tells no
      // usage keeps the estimate.
      await this.end(
        usage === null && !this.generating ? this.#requestOnly() : this.#actual(usage),
      );
      // Aborted while the body was read (an SDK's timeout on a stalled body): the body is
      // unusable now, so reject as fetch would have, with the signal's reason, which the SDK
      // knows for its own timeout or abort and retries as such.
      if (signal?.aborted === true) throw signal.reason;
      return res;
    }
    return this.#watch(res, sse, signal);
  }

  /**
   * end settles with `actual` (null: the estimate stays) and releases, once. The settle's promise
   * is awaited but never rejects into the caller.
   */
  async end(actual: CostSpec | null): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    try {
      if (actual !== null) await this.grant.settle(actual);
    } catch {
      // The policy changed under the grant, or the store failed: the estimate stays booked.
    }
    try {
      this.grant.release();
    } catch {
      // The system was closed meanwhile: there is nothing left to give back to.
    }
  }

  /** abandon ends a call whose streamed body was collected unread (see {@link abandoned}). */
  abandon(): void {
    void this.end(this.#actual(this.#sse?.usage ?? null));
  }

  /** report tells the key's breaker how the call went; like feedback, it never fails the call. */
  report(outcome: CallOutcome): void {
    try {
      this.grant.report(outcome);
    } catch {
      // The breaker was stopped with the system.
    }
  }

  /** The cost to settle with from the usage the provider told (null: the estimate stays). */
  #actual(usage: TokenUsage | null): CostSpec | null {
    if (usage === null) return null;
    return costFromUsage(this.cost, usage, this.limiter.policy.dimensions, this.parts);
  }

  /**
   * One request, and no tokens in any counted dimension: the cost of a call the provider refused
   * (an error status), or of one that generates nothing (see {@link generates}).
   */
  #requestOnly(): CostSpec {
    const dims = this.limiter.policy.dimensions;
    const tokens = ['inputTokens', 'outputTokens', 'tokens'].filter((d) => dims.includes(d));
    return { requests: 1, ...Object.fromEntries(tokens.map((d) => [d, 0])) };
  }

  /** A Response whose body is `res.body` passed through, ending the call when the body is done. */
  #watch(
    res: Response,
    sse: SseUsageReader | null,
    signal: AbortSignal | null | undefined,
  ): Response {
    this.#sse = sse;
    const source = res.body!.getReader();
    const decoder = new TextDecoder();
    // Set when the consumer cancels: a read still pending then must not touch the controller.
    let cancelled = false;
    /** The body ended (`broke`: with an error), or the consumer cancelled it. */
    const finish = (broke = false): void => {
      if (sse !== null) {
        sse.push(decoder.decode());
        sse.end();
        // An error event is a failure of the provider; so is a stream that broke, unless the
        // caller aborted it. A stream read to its end, or cancelled by its reader, succeeded.
        this.report(
          sse.failed || (broke && signal?.aborted !== true)
            ? 'failure'
            : broke
              ? 'neutral'
              : 'success',
        );
      }
      abandoned.unregister(this);
      void this.end(this.#actual(sse?.usage ?? null));
    };
    const body = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          let chunk: Awaited<ReturnType<typeof source.read>>;
          try {
            chunk = await source.read();
          } catch (e) {
            finish(true); // the stream broke (network, abort): settle with what it said so far
            if (!cancelled) controller.error(e);
            return;
          }
          if (chunk.done || cancelled) {
            finish();
            if (!cancelled) controller.close();
            return;
          }
          if (sse !== null) sse.push(decoder.decode(chunk.value, { stream: true }));
          controller.enqueue(chunk.value);
        },
        cancel(reason) {
          cancelled = true;
          finish(); // the consumer abandoned the stream
          return source.cancel(reason).catch(() => {});
        },
      },
      { highWaterMark: 0 },
    );
    const wrapped = new Response(body, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
    Object.defineProperty(wrapped, 'url', { value: res.url });
    Object.defineProperty(wrapped, 'redirected', { value: res.redirected });
    abandoned.register(wrapped, this, this);
    return wrapped;
  }
}

// The parsed JSON body of a call, or undefined: a string body (or a Request's) that parses.
async function jsonBody(
  input: string | URL | Request,
  init: RequestInit | undefined,
): Promise<unknown> {
  let text: string | undefined;
  if (typeof init?.body === 'string') text = init.body;
  else if (init?.body == null && input instanceof Request && input.body !== null) {
    text = await input
      .clone()
      .text()
      .catch(() => undefined);
  }
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function modelOf(body: unknown): string {
  const model =
    typeof body === 'object' && body !== null ? (body as { model?: unknown }).model : undefined;
  return typeof model === 'string' && model.length > 0 ? model : 'default';
}

function checkOptions(options: LimitedFetchOptions): LimitedFetchOptions {
  if (typeof options !== 'object' || options === null || !(options.limiter instanceof Limiter)) {
    throw new InvalidArgumentError(
      'tollgate: limitedFetch expects { limiter } with a Limiter from system.limiter()',
    );
  }
  const { key, estimate, fetch: f, now } = options;
  if (key !== undefined && typeof key !== 'string' && typeof key !== 'function') {
    throw new InvalidArgumentError(
      `tollgate: limitedFetch key must be a string or a function, got ${typeof key}`,
    );
  }
  for (const [name, fn] of [
    ['estimate', estimate],
    ['fetch', f],
    ['now', now],
  ] as const) {
    if (fn !== undefined && typeof fn !== 'function') {
      throw new InvalidArgumentError(
        `tollgate: limitedFetch ${name} must be a function, got ${typeof fn}`,
      );
    }
  }
  if (f === undefined && typeof globalThis.fetch !== 'function') {
    throw new InvalidArgumentError(
      'tollgate: limitedFetch found no global fetch; pass options.fetch',
    );
  }
  return options;
}
