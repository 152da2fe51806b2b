/**
 * A local stand-in for OpenAI's Chat Completions endpoint (`POST /v1/chat/completions`), for tests
 * and examples: a node:http server on a free port that enforces its own rate limits, the way
 * https://platform.openai.com/docs/guides/rate-limits describes them.
 *
 * - Requests and tokens per window, each a sliding window on real time (`Date.now()`, the
 *   server's own clock, independent of any limiter's; a request stamped {@link SENT_AT} is judged
 *   at its stamp). A request's tokens are counted when it
 *   arrives, like OpenAI does: its input tokens (o200k_base, the cookbook's chat formula: 3 per
 *   message + role + content, + 3) plus its `max_completion_tokens`/`max_tokens` (default 1024).
 * - Over a limit: 429 with `retry-after-ms`, `retry-after` and an OpenAI-style error body; a
 *   refused request is not counted. Every answer carries `x-ratelimit-{limit,remaining,reset}-
 *   {requests,tokens}` for the limits configured (resets as Go durations, e.g. `850ms`).
 * - Answers: a JSON `chat.completion` with `usage`, or with `stream: true` an SSE stream of
 *   `chat.completion.chunk`s ending in `data: [DONE]`, with a usage chunk first when
 *   `stream_options.include_usage` is set.
 * - `failNext(n)` makes the next n requests answer 500 (not counted toward the limits).
 * - `counts` and `usage` tell the tests what the server saw and reported.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The header a test's fetch stamps with the instant it sends a request (`Date.now()`), which is
 * right after the limiter granted it. A fake server judges a stamped request's limits at that
 * instant rather than at its arrival: on a loaded machine requests granted a second apart can
 * arrive bunched (#11: a 429 under two busy loops), which says nothing of the limiter. The
 * server and the test share one process, so one clock.
 */
export const SENT_AT = 'x-test-sent-at';

/** stampSent wraps `inner` (the global fetch) to stamp every request with {@link SENT_AT}. */
export function stampSent(inner: typeof fetch = fetch): typeof fetch {
  return (input, init) => {
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : {}));
    headers.set(SENT_AT, String(Date.now()));
    return inner(input, { ...init, headers });
  };
}

/** The instant a fake server judges `req` at: its {@link SENT_AT} stamp, else now. */
export function judgedAt(req: IncomingMessage): number {
  const sent = Number(req.headers[SENT_AT]);
  return Number.isFinite(sent) && sent > 0 ? sent : Date.now();
}
import { countTokens as count } from 'gpt-tokenizer/encoding/o200k_base';

/** WindowLimit is `limit` units per sliding window of `windowMs` ms. */
export interface WindowLimit {
  readonly limit: number;
  readonly windowMs: number;
}

/** FakeProviderOptions configure {@link startFakeProvider}; every field is optional. */
export interface FakeProviderOptions {
  /** Requests per window. @default unlimited */
  readonly requests?: WindowLimit;
  /** Tokens (input + max output, at arrival) per window. @default unlimited */
  readonly tokens?: WindowLimit;
  /** Output tokens counted for a request that names no maximum. @default 1024 */
  readonly defaultMaxTokens?: number;
  /** Words in a reply (about a token each), at most the request's maximum. @default 12 */
  readonly replyWords?: number;
  /** Ms before the answer's headers. @default 0 */
  readonly latencyMs?: number;
  /** Ms between SSE chunks. @default 0 */
  readonly chunkDelayMs?: number;
  /** A JSON answer sends its headers and half its body, then stalls this long. @default 0 */
  readonly stallBodyMs?: number;
}

/** FakeProvider is a running fake server: where it listens, what it saw, how to stop it. */
export interface FakeProvider {
  /** `http://127.0.0.1:<port>`; the SDK's baseURL is `${url}/v1`. */
  readonly url: string;
  /**
   * What the server answered: every chat request, 200s, 429s and 500s; `other` counts the model
   * list and uploads (`GET /v1/models`, `POST /v1/files`), which it does not limit.
   */
  readonly counts: {
    requests: number;
    ok: number;
    throttled: number;
    failed: number;
    other: number;
  };
  /** The usage reported in every 200, summed. */
  readonly usage: { inputTokens: number; outputTokens: number };
  /** The next `n` requests answer 500. */
  failNext(n: number): void;
  close(): Promise<void>;
}

// Special-token text in a prompt is plain text to the API.
const countTokens = (text: string): number => count(text, { disallowedSpecial: new Set() });

const WORDS = [
  ' The',
  ' quick',
  ' brown',
  ' fox',
  ' jumps',
  ' over',
  ' the',
  ' lazy',
  ' dog',
  ' and',
  ' runs',
  ' away',
];

/** promptTokens counts a chat request's input, by the OpenAI cookbook's formula (text content only). */
export function promptTokens(messages: unknown): number {
  if (!Array.isArray(messages)) return 0;
  let n = 3;
  for (const m of messages as { role?: unknown; content?: unknown; name?: unknown }[]) {
    n += 3;
    if (typeof m.role === 'string') n += countTokens(m.role);
    if (typeof m.name === 'string') n += countTokens(m.name) + 1;
    if (typeof m.content === 'string') n += countTokens(m.content);
    else if (Array.isArray(m.content)) {
      for (const p of m.content as { text?: unknown }[])
        if (typeof p.text === 'string') n += countTokens(p.text);
    }
  }
  return n;
}

/** startFakeProvider starts the server on 127.0.0.1 and a free port; `close()` stops it. */
export async function startFakeProvider(options: FakeProviderOptions = {}): Promise<FakeProvider> {
  const counts = { requests: 0, ok: 0, throttled: 0, failed: 0, other: 0 };
  const usage = { inputTokens: 0, outputTokens: 0 };
  const requestLog: Entry[] = [];
  const tokenLog: Entry[] = [];
  let failing = 0;

  const server = createServer((req, res) => {
    void handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const text = await readAll(req);
    // Endpoints the provider does not count here: the model list, and uploads (multipart).
    if (req.method === 'GET' && req.url === '/v1/models') {
      counts.other++;
      return json(res, 200, {}, { object: 'list', data: [{ id: 'gpt-4o', object: 'model' }] });
    }
    if (req.method === 'POST' && req.url === '/v1/files') {
      counts.other++;
      return json(
        res,
        200,
        {},
        {
          id: `file-${counts.other}`,
          object: 'file',
          bytes: text.length,
          created_at: Math.floor(Date.now() / 1000),
          filename: /filename="([^"]*)"/.exec(text)?.[1] ?? 'upload',
          purpose: 'batch',
        },
      );
    }
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      return json(res, 404, {}, { error: { message: 'not found', type: 'invalid_request_error' } });
    }
    counts.requests++;
    let body: Record<string, any>;
    try {
      body = JSON.parse(text) as Record<string, any>;
    } catch {
      return json(
        res,
        400,
        {},
        { error: { message: 'invalid JSON', type: 'invalid_request_error' } },
      );
    }
    if (options.latencyMs) await sleep(options.latencyMs);
    if (failing > 0) {
      failing--;
      counts.failed++;
      return json(
        res,
        500,
        {},
        { error: { message: 'The server had an error', type: 'server_error' } },
      );
    }
    const now = judgedAt(req);
    const input = promptTokens(body.messages);
    const maxTokens: number =
      body.max_completion_tokens ?? body.max_tokens ?? options.defaultMaxTokens ?? 1024;
    const cost = input + maxTokens;
    const waitRequests = options.requests ? waitFor(requestLog, options.requests, 1, now) : 0;
    const waitTokens = options.tokens ? waitFor(tokenLog, options.tokens, cost, now) : 0;
    if (waitRequests > 0 || waitTokens > 0) {
      counts.throttled++;
      const waitMs = Math.max(waitRequests, waitTokens);
      const which = waitRequests > 0 ? 'requests' : 'tokens';
      return json(
        res,
        429,
        {
          'retry-after-ms': String(waitMs),
          'retry-after': String(Math.ceil(waitMs / 1000)),
          ...limitHeaders(now),
        },
        {
          error: {
            message: `Rate limit reached for ${which}`,
            type: which,
            param: null,
            code: 'rate_limit_exceeded',
          },
        },
      );
    }
    record(requestLog, { at: now, n: 1 });
    record(tokenLog, { at: now, n: cost });
    // Each answer starts one word further into the list, so replies differ.
    const size = Math.min(maxTokens, options.replyWords ?? 12);
    const words = Array.from({ length: size }, (_, i) => WORDS[(counts.ok + i) % WORDS.length]!);
    const output = countTokens(words.join(''));
    const reported = {
      prompt_tokens: input,
      completion_tokens: output,
      total_tokens: input + output,
    };
    counts.ok++;
    usage.inputTokens += input;
    usage.outputTokens += output;
    const id = `chatcmpl-${counts.requests}`;
    const created = Math.floor(now / 1000);
    const model = String(body.model);
    if (body.stream !== true) {
      const answer = {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: words.join('').trim() },
            finish_reason: 'stop',
          },
        ],
        usage: reported,
      };
      if (!options.stallBodyMs) return json(res, 200, limitHeaders(now), answer);
      const text = JSON.stringify(answer);
      res.writeHead(200, { 'content-type': 'application/json', ...limitHeaders(now) });
      res.write(text.slice(0, text.length >> 1));
      await sleep(options.stallBodyMs);
      res.end(text.slice(text.length >> 1));
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      ...limitHeaders(now),
    });
    const chunk = (choices: unknown[], extra: object = {}) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices, ...extra })}\n\n`;
    const withUsage = body.stream_options?.include_usage === true;
    const nul = withUsage ? { usage: null } : {};
    const events = [
      chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }], nul),
      ...words.map((w) => chunk([{ index: 0, delta: { content: w }, finish_reason: null }], nul)),
      chunk([{ index: 0, delta: {}, finish_reason: 'stop' }], nul),
      ...(withUsage ? [chunk([], { usage: reported })] : []),
      'data: [DONE]\n\n',
    ];
    for (const e of events) {
      if (res.destroyed) return;
      res.write(e);
      if (options.chunkDelayMs) await sleep(options.chunkDelayMs);
    }
    res.end();
  }

  // The limit headers of every answer, for the limits configured, as of `now`.
  function limitHeaders(now: number): Record<string, string> {
    const h: Record<string, string> = {};
    for (const [dim, log, limit] of [
      ['requests', requestLog, options.requests],
      ['tokens', tokenLog, options.tokens],
    ] as const) {
      if (!limit) continue;
      prune(log, limit.windowMs, now);
      const used = log.reduce((s, e) => s + e.n, 0);
      const last = log[log.length - 1];
      h[`x-ratelimit-limit-${dim}`] = String(limit.limit);
      h[`x-ratelimit-remaining-${dim}`] = String(Math.max(0, limit.limit - used));
      h[`x-ratelimit-reset-${dim}`] = `${last ? Math.max(0, last.at + limit.windowMs - now) : 0}ms`;
    }
    return h;
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    usage,
    failNext(n) {
      failing = n;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

interface Entry {
  readonly at: number;
  readonly n: number;
}

/** Adds `entry` to `log`, kept in order of `at` (stamped requests may arrive out of order). */
function record(log: Entry[], entry: Entry): void {
  let i = log.length;
  while (i > 0 && log[i - 1]!.at > entry.at) i--;
  log.splice(i, 0, entry);
}

function prune(log: Entry[], windowMs: number, now: number): void {
  while (log.length > 0 && log[0]!.at + windowMs <= now) log.shift();
}

// Ms until `cost` fits `limit` in the sliding window (0: it fits now). A cost above the limit
// never fits; it is told to come back after a whole window.
function waitFor(log: Entry[], limit: WindowLimit, cost: number, now: number): number {
  prune(log, limit.windowMs, now);
  let used = log.reduce((s, e) => s + e.n, 0);
  if (used + cost <= limit.limit) return 0;
  if (cost > limit.limit) return limit.windowMs;
  for (const e of log) {
    used -= e.n;
    if (used + cost <= limit.limit) return Math.max(1, e.at + limit.windowMs - now);
  }
  return limit.windowMs;
}

/** json answers `status` with `body` as JSON (both fake servers use it). */
export function json(
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
  body: unknown,
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function readAll(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
