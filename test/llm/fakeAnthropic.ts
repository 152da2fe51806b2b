/**
 * A local stand-in for Anthropic's Messages API, enforcing limits the way Anthropic documents
 * them (https://docs.anthropic.com/en/api/rate-limits): token buckets (continuous refill up to
 * the limit) for requests, input tokens and output tokens per window; output tokens are counted
 * from `max_tokens` when a request arrives and adjusted to the real output at its end. A refused
 * request gets a 429 with `retry-after` and the `anthropic-ratelimit-*` headers; every answer
 * carries them. `POST /v1/messages/count_tokens` answers `{ input_tokens }` and counts toward
 * nothing here. Answers are JSON or, with `stream: true`, the SSE events of the Messages API.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { judgedAt, json, promptTokens } from './fakeProvider.js';

/** A token bucket: `limit` units, refilled continuously over `windowMs`. */
export interface BucketLimit {
  readonly limit: number;
  readonly windowMs: number;
}

export interface FakeAnthropicOptions {
  readonly requests?: BucketLimit;
  readonly inputTokens?: BucketLimit;
  readonly outputTokens?: BucketLimit;
  /** Words in a reply (about a token each), at most `max_tokens`. @default 12 */
  readonly replyWords?: number;
}

export interface FakeAnthropic {
  /** `http://127.0.0.1:<port>`: the SDK's baseURL. */
  readonly url: string;
  readonly counts: { requests: number; ok: number; throttled: number; countTokens: number };
  /** The usage reported in every 200, summed. */
  readonly usage: { inputTokens: number; outputTokens: number };
  close(): Promise<void>;
}

class Bucket {
  #level: number;
  #at = Date.now();
  constructor(readonly limit: BucketLimit) {
    this.#level = limit.limit;
  }
  /** The units available now. */
  level(now: number): number {
    // A stamped request may be judged at an instant before the last one's (fakeProvider.SENT_AT).
    const at = Math.max(now, this.#at);
    this.#level = Math.min(
      this.limit.limit,
      this.#level + ((at - this.#at) * this.limit.limit) / this.limit.windowMs,
    );
    this.#at = at;
    return this.#level;
  }
  /** Ms until `n` units are available. */
  waitFor(n: number, now: number): number {
    const missing = n - this.level(now);
    return missing <= 0 ? 0 : Math.ceil((missing * this.limit.windowMs) / this.limit.limit);
  }
  take(n: number): void {
    this.#level -= n;
  }
  giveBack(n: number): void {
    this.#level = Math.min(this.limit.limit, this.#level + n);
  }
}

const WORDS = [' Hello', ' from', ' the', ' fake', ' Claude', ' with', ' a', ' short', ' answer'];

export async function startFakeAnthropic(
  options: FakeAnthropicOptions = {},
): Promise<FakeAnthropic> {
  const counts = { requests: 0, ok: 0, throttled: 0, countTokens: 0 };
  const usage = { inputTokens: 0, outputTokens: 0 };
  const buckets = {
    requests: options.requests ? new Bucket(options.requests) : null,
    input: options.inputTokens ? new Bucket(options.inputTokens) : null,
    output: options.outputTokens ? new Bucket(options.outputTokens) : null,
  };

  function headers(now: number): Record<string, string> {
    const out: Record<string, string> = {};
    const reset = new Date(now + 1000).toISOString();
    for (const [name, b] of [
      ['requests', buckets.requests],
      ['input-tokens', buckets.input],
      ['output-tokens', buckets.output],
    ] as const) {
      if (b === null) continue;
      out[`anthropic-ratelimit-${name}-limit`] = String(b.limit.limit);
      out[`anthropic-ratelimit-${name}-remaining`] = String(Math.floor(b.level(now)));
      out[`anthropic-ratelimit-${name}-reset`] = reset;
    }
    return out;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let text = '';
    for await (const chunk of req) text += String(chunk);
    const body = JSON.parse(text || '{}') as {
      system?: string;
      messages?: unknown;
      max_tokens?: number;
      stream?: boolean;
      model?: string;
    };
    const input =
      promptTokens(body.messages) + (typeof body.system === 'string' ? body.system.length >> 2 : 0);
    if (req.url === '/v1/messages/count_tokens') {
      counts.countTokens++;
      return json(res, 200, {}, { input_tokens: input });
    }
    if (req.method !== 'POST' || req.url !== '/v1/messages')
      return json(res, 404, {}, { type: 'error', error: { type: 'not_found_error' } });
    counts.requests++;
    const now = judgedAt(req);
    const maxTokens = body.max_tokens ?? 1024;
    const wait = Math.max(
      buckets.requests?.waitFor(1, now) ?? 0,
      buckets.input?.waitFor(input, now) ?? 0,
      buckets.output?.waitFor(maxTokens, now) ?? 0,
    );
    if (wait > 0) {
      counts.throttled++;
      return json(
        res,
        429,
        { 'retry-after': String(Math.ceil(wait / 1000)), ...headers(now) },
        { type: 'error', error: { type: 'rate_limit_error', message: 'Rate limited' } },
      );
    }
    buckets.requests?.take(1);
    buckets.input?.take(input);
    buckets.output?.take(maxTokens); // at arrival: max_tokens ...
    const words = WORDS.slice(0, Math.min(maxTokens, options.replyWords ?? 12));
    const output = words.length;
    buckets.output?.giveBack(maxTokens - output); // ... adjusted to the real output at the end
    counts.ok++;
    usage.inputTokens += input;
    usage.outputTokens += output;
    const message = {
      id: `msg_${counts.requests}`,
      type: 'message',
      role: 'assistant',
      model: body.model ?? 'claude',
      content: [{ type: 'text', text: words.join('').trim() }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: { input_tokens: input, output_tokens: output },
    };
    if (body.stream !== true) return json(res, 200, headers(now), message);
    res.writeHead(200, { 'content-type': 'text/event-stream', ...headers(now) });
    const send = (event: string, data: unknown): boolean =>
      res.write(
        `event: ${event}\ndata: ${JSON.stringify({ type: event, ...(data as object) })}\n\n`,
      );
    send('message_start', {
      message: { ...message, content: [], usage: { input_tokens: input, output_tokens: 1 } },
    });
    send('content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
    for (const w of words)
      send('content_block_delta', { index: 0, delta: { type: 'text_delta', text: w } });
    send('content_block_stop', { index: 0 });
    send('message_delta', {
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: { output_tokens: output },
    });
    send('message_stop', {});
    res.end();
  }

  const server = createServer((req, res) => {
    void handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    usage,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
