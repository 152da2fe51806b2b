/**
 * One limitedFetch call from its response on: feedback, the breaker's report, and the one settle
 * and release of its grant, for a JSON body, a stream passed through, or an error status.
 */
import type { CallOutcome, Grant } from '../actors/grant.js';
import type { Limiter } from '../actors/limiter.js';
import type { CostSpec, Ms } from '../limiter/types.js';
import { feedbackFromResponse } from './headers.js';
import { costFromUsage, SseUsageReader, usageFromBody, type TokenUsage } from './usage.js';

/**
 * Calls whose streamed body was handed back: ended (settled with what the stream said so far, and
 * released) when their Response is garbage-collected before its body ended or was cancelled. An
 * SDK that never reads a body, or a caller that drops a response, holds no slot for good.
 */
const abandoned = new FinalizationRegistry<Call>((call) => call.abandon());

/** One call's grant, from the response to its one settle and release. */
export class Call {
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
    readonly accounting: 'max' | 'usage',
  ) {}

  async answer(
    key: string,
    res: Response,
    now: () => Ms,
    signal: AbortSignal | null | undefined,
  ): Promise<Response> {
    let feedback: ReturnType<typeof feedbackFromResponse> | null = null;
    try {
      feedback = feedbackFromResponse({ status: res.status, headers: res.headers }, now());
    } catch {
      // Unreadable headers: no feedback.
    }
    const throttled = feedback?.throttled ?? res.status === 429;
    // Feedback is applied after the settle (the provider's remaining counts this call as
    // settled: a refund after it would land on top of it), and never fails the call.
    const advise = async (): Promise<void> => {
      if (feedback === null) return;
      try {
        await this.limiter.feedback(key, feedback);
      } catch {
        // Feedback is advice: a failure to apply it must not fail the call.
      }
    };
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
      await this.end(this.#requestOnly(), advise);
      return res;
    }
    if (res.body === null || res.status === 204 || res.status === 205 || res.status === 304) {
      await this.end(null, advise);
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
        advise,
      );
      // Aborted while the body was read (an SDK's timeout on a stalled body): the body is
      // unusable now, so reject as fetch would have, with the signal's reason, which the SDK
      // knows for its own timeout or abort and retries as such.
      if (signal?.aborted === true) throw signal.reason;
      return res;
    }
    // A stream settles at its end: its headers' feedback cannot wait for it.
    await advise();
    return this.#watch(res, sse, signal);
  }

  /**
   * end settles with `actual` (null: the estimate stays), runs `then` (the provider's feedback:
   * after the settle, and before the slot is given back, so the next call admitted meets it), and
   * releases, once. Nothing here rejects into the caller.
   */
  async end(actual: CostSpec | null, then?: () => Promise<void>): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    try {
      if (actual !== null) await this.grant.settle(actual);
    } catch {
      // The policy changed under the grant, or the store failed: the estimate stays booked.
    }
    if (then !== undefined) await then();
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
    const actual = costFromUsage(this.cost, usage, this.limiter.policy.dimensions, this.parts);
    if (actual === null || this.accounting === 'usage') return actual;
    // 'max': the provider keeps the estimate counted; only usage above it adds.
    const kept: Record<string, number> = {};
    for (const [dim, n] of Object.entries(actual))
      kept[dim] = Math.max(n ?? 0, this.cost[dim] ?? 0);
    return kept;
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
