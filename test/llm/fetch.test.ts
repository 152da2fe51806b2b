/**
 * limitedFetch with a fake `fetch` (no network) on virtual time, and the usage readers it uses.
 * Bodies follow the providers' documented shapes:
 * - OpenAI chat completion and stream chunks (`stream_options.include_usage`):
 *   https://platform.openai.com/docs/api-reference/chat/streaming
 * - Anthropic message and stream events (message_start, message_delta):
 *   https://docs.anthropic.com/en/docs/build-with-claude/streaming
 */
import fc from 'fast-check';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CircuitOpenError,
  VirtualClock,
  createLimiterSystem,
  type LimiterOptions,
  type LimiterSystem,
  type SettledEvent,
} from '../../src/index.js';
import {
  AUDIO_BYTES_PER_TOKEN,
  DEFAULT_MAX_OUTPUT_TOKENS,
  FILE_PAGE_TOKENS,
  estimateRequestCost,
  estimateTokens,
  loadTokenizer,
} from '../../src/llm/estimate.js';
import { limitedFetch as limitedFetchOf, type LimitedFetchOptions } from '../../src/llm/fetch.js';

// These tests are about settling to the usage the provider reports: they take the 'usage'
// accounting. The default for OpenAI's endpoints ('max': the estimate stays counted) is tested
// in openai.test.ts and sdkCalls.test.ts.
const limitedFetch = (options: LimitedFetchOptions): typeof fetch =>
  limitedFetchOf({ accounting: 'usage', ...options });
import { SseUsageReader, costFromUsage, usageFromBody } from '../../src/llm/usage.js';
import { promptTokens } from './fakeProvider.js';

let system: LimiterSystem | undefined;
let clock: VirtualClock;

afterEach(async () => {
  await system?.close();
  system = undefined;
});

const TOKENS: LimiterOptions = {
  limits: [
    { limit: 100, interval: '1m' },
    { limit: 100_000, interval: '1m', dimension: 'tokens' },
  ],
  concurrency: 4,
};

function setup(options: LimiterOptions = TOKENS) {
  clock = new VirtualClock(1_700_000_000_000);
  system = createLimiterSystem({ clock });
  const limiter = system.limiter('llm', options);
  const settled: SettledEvent[] = [];
  system.events.on('settled', (e) => settled.push(e));
  return { limiter, settled };
}

const chat = (extra: object = {}) => ({
  model: 'gpt-4o',
  messages: [{ role: 'user', content: 'Hello world' }],
  max_tokens: 50,
  ...extra,
});
const post = (body: unknown, signal?: AbortSignal): RequestInit => ({
  method: 'POST',
  body: JSON.stringify(body),
  headers: { 'content-type': 'application/json' },
  ...(signal && { signal }),
});
const URL_ = 'https://api.example.test/v1/chat/completions';

function jsonResponse(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

/** An SSE response that sends `chunks` one per read, then ends (or stays open if `open`). */
function sseResponse(chunks: string[], opts: { open?: boolean; failAfter?: boolean } = {}) {
  const encoder = new TextEncoder();
  let i = 0;
  const state = { cancelled: false };
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < chunks.length) controller.enqueue(encoder.encode(chunks[i++]!));
      else if (opts.failAfter) controller.error(new Error('connection reset'));
      else if (!opts.open) controller.close();
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { res: new Response(body, { headers: { 'content-type': 'text/event-stream' } }), state };
}

const openaiStream = (usage: object | null) => [
  'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}],"usage":null}\n\n',
  'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}\n\n',
  'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n',
  ...(usage
    ? [
        `data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":${JSON.stringify(usage)}}\n\n`,
      ]
    : []),
  'data: [DONE]\n\n',
];

const anthropicStream = [
  'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{"input_tokens":25,"output_tokens":1}}}\n\n',
  'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
  'event: ping\ndata: {"type": "ping"}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}\n\n',
  'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
  'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}\n\n',
  'event: message_stop\ndata: {"type":"message_stop"}\n\n',
];

const tokensLeft = async (
  limiter: { stats(k: string): Promise<{ limits: readonly { remaining: number }[] }> },
  key = 'gpt-4o',
) => (await limiter.stats(key)).limits[1]!.remaining;

async function drain(res: Response): Promise<string> {
  return await res.text();
}

// The synchronous estimates below count with the default tokenizer, which must be loaded first.
beforeAll(() => loadTokenizer());

describe('limitedFetch: JSON answers', () => {
  it('acquires the estimate, then settles to the usage exactly and releases before returning', async () => {
    const { limiter, settled } = setup();
    const est = estimateTokens(chat());
    expect(est).toEqual({ inputTokens: 9, outputTokens: 50 });
    const f = limitedFetch({
      limiter,
      now: () => clock.now(),
      fetch: async () => {
        const s = await limiter.stats('gpt-4o');
        expect(s.inFlight).toBe(1);
        expect(s.limits[1]!.remaining).toBe(100_000 - 59); // input 9 + max_tokens 50 booked
        return jsonResponse({
          usage: { prompt_tokens: 9, completion_tokens: 30, total_tokens: 39 },
        });
      },
    });
    const res = await f(URL_, post(chat()));
    expect(await res.json()).toEqual({
      usage: { prompt_tokens: 9, completion_tokens: 30, total_tokens: 39 },
    });
    expect(settled).toHaveLength(1);
    expect(settled[0]!.estimated).toEqual([1, 59]);
    expect(settled[0]!.actual).toEqual([1, 39]);
    const s = await limiter.stats('gpt-4o');
    expect(s.inFlight).toBe(0);
    expect(s.limits[1]!.remaining).toBe(100_000 - 39);
  });

  it('settles inputTokens and outputTokens apart when the policy counts them (Anthropic body)', async () => {
    const { limiter, settled } = setup({
      limits: [
        { limit: 50, interval: '1m' },
        { limit: 20_000, interval: '1m', dimension: 'inputTokens' },
        { limit: 8_000, interval: '1m', dimension: 'outputTokens' },
      ],
    });
    const body = {
      model: 'claude-x',
      system: 'Be brief.',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello world' }] }],
      max_tokens: 400,
    };
    const f = limitedFetch({
      limiter,
      fetch: async () =>
        jsonResponse({
          type: 'message',
          usage: {
            input_tokens: 20,
            cache_creation_input_tokens: 5,
            cache_read_input_tokens: 100,
            output_tokens: 7,
          },
        }),
    });
    await f('https://api.example.test/v1/messages', post(body));
    const est = estimateTokens(body);
    expect(settled[0]!.estimated).toEqual([1, est.inputTokens, 400]);
    expect(settled[0]!.actual).toEqual([1, 25, 7]); // cache creation counts toward input; cache reads do not
  });

  it('keys by the body model, a fixed key, or a key function', async () => {
    const { limiter } = setup();
    const seen: string[] = [];
    system!.events.on('granted', (e) => seen.push(e.key));
    const ok = async () => jsonResponse({});
    await limitedFetch({ limiter, fetch: ok })(URL_, post(chat({ model: 'gpt-4o-mini' })));
    await limitedFetch({ limiter, fetch: ok })(URL_, { method: 'POST', body: 'not json' });
    await limitedFetch({ limiter, fetch: ok, key: 'fixed' })(URL_, post(chat()));
    await limitedFetch({
      limiter,
      fetch: ok,
      key: (url, b) => `${new URL(url).host}:${(b as { model: string }).model}`,
    })(URL_, post(chat()));
    expect(seen).toEqual(['gpt-4o-mini', 'default', 'fixed', 'api.example.test:gpt-4o']);
  });

  it('books only requests: 1 for a body that is not a JSON string, and keeps it without usage', async () => {
    const { limiter, settled } = setup();
    const f = limitedFetch({ limiter, fetch: async () => jsonResponse({ ok: true }) });
    const form = new FormData();
    form.set('model', 'whisper-1');
    await f(URL_, { method: 'POST', body: form });
    expect(settled).toHaveLength(0);
    expect(await tokensLeft(limiter, 'default')).toBe(100_000);
    expect((await limiter.stats('default')).limits[0]!.remaining).toBe(99);
  });

  it('reads the body of a Request given as input', async () => {
    const { limiter, settled } = setup();
    const f = limitedFetch({
      limiter,
      fetch: async () => jsonResponse({ usage: { prompt_tokens: 1, completion_tokens: 2 } }),
    });
    await f(new Request(URL_, post(chat())));
    expect(settled[0]!.estimated).toEqual([1, 59]);
    expect(settled[0]!.actual).toEqual([1, 3]);
  });

  it('uses a custom estimator and only the dimensions the policy counts', async () => {
    const { limiter, settled } = setup();
    const f = limitedFetch({
      limiter,
      estimate: (_body, dims) =>
        dims.includes('tokens') ? { requests: 1, tokens: 500 } : { requests: 1 },
      fetch: async () => jsonResponse({ usage: { total_tokens: 120 } }),
    });
    await f(URL_, post(chat()));
    expect(settled[0]!.estimated).toEqual([1, 500]);
    expect(settled[0]!.actual).toEqual([1, 120]);
    // A policy without tokens: usage is read but there is nothing to settle.
    const { limiter: plain, settled: none } = setup({ limits: [{ limit: 5, interval: '1s' }] });
    await limitedFetch({
      limiter: plain,
      fetch: async () => jsonResponse({ usage: { total_tokens: 120 } }),
    })(URL_, post(chat()));
    expect(none).toHaveLength(0);
  });
});

describe('limitedFetch: streams', () => {
  it('settles an OpenAI stream to its final usage chunk and releases at the end of the body', async () => {
    const { limiter, settled } = setup();
    const { res } = sseResponse(
      openaiStream({ prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 }),
    );
    const f = limitedFetch({ limiter, fetch: async () => res });
    const out = await f(
      URL_,
      post(chat({ stream: true, stream_options: { include_usage: true } })),
    );
    expect(out.headers.get('content-type')).toBe('text/event-stream');
    expect((await limiter.stats('gpt-4o')).inFlight).toBe(1); // the body is still to be read
    expect(settled).toHaveLength(0);
    const text = await drain(out);
    expect(text).toBe(
      openaiStream({ prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 }).join(''),
    );
    const s = await limiter.stats('gpt-4o');
    expect(s.inFlight).toBe(0);
    expect(settled.map((e) => e.actual)).toEqual([[1, 12]]);
    expect(s.limits[1]!.remaining).toBe(100_000 - 12);
  });

  it('keeps the estimate of a stream that never says its usage', async () => {
    const { limiter, settled } = setup();
    const f = limitedFetch({ limiter, fetch: async () => sseResponse(openaiStream(null)).res });
    await drain(await f(URL_, post(chat({ stream: true }))));
    expect(settled).toHaveLength(0);
    expect(await tokensLeft(limiter)).toBe(100_000 - 59);
    expect((await limiter.stats('gpt-4o')).inFlight).toBe(0);
  });

  it('settles an Anthropic stream from message_start and message_delta', async () => {
    const { limiter, settled } = setup();
    const f = limitedFetch({ limiter, fetch: async () => sseResponse(anthropicStream).res });
    await drain(await f(URL_, post(chat({ stream: true }))));
    expect(settled.map((e) => e.actual)).toEqual([[1, 40]]);
  });

  it('settles an abandoned stream once with what it said, keeps the estimate for the rest, and releases', async () => {
    const { limiter, settled } = setup();
    const released: string[] = [];
    system!.events.on('released', (e) => released.push(e.id));
    const { res, state } = sseResponse(anthropicStream.slice(0, 4), { open: true });
    const f = limitedFetch({ limiter, fetch: async () => res });
    const out = await f(URL_, post(chat({ stream: true })));
    const reader = out.body!.getReader();
    await reader.read(); // message_start: input 25 is known, output is not
    await reader.cancel('user went away');
    await reader.cancel('again').catch(() => {});
    const s = await limiter.stats('gpt-4o');
    expect(state.cancelled).toBe(true); // the cancel reached the provider's stream
    expect(s.inFlight).toBe(0);
    expect(released).toHaveLength(1);
    expect(settled.map((e) => e.actual)).toEqual([[1, 25 + 50]]); // input seen + max_tokens estimate
  });

  it('ends once when the consumer cancels while a read is pending', async () => {
    const { limiter, settled } = setup();
    const released: string[] = [];
    system!.events.on('released', (e) => released.push(e.id));
    const { res, state } = sseResponse(openaiStream(null).slice(0, 1), { open: true });
    const out = await limitedFetch({ limiter, fetch: async () => res })(
      URL_,
      post(chat({ stream: true })),
    );
    const reader = out.body!.getReader();
    await reader.read();
    const pending = reader.read(); // the provider sends nothing more
    await reader.cancel();
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(state.cancelled).toBe(true);
    expect(released).toHaveLength(1);
    expect(settled).toHaveLength(0); // nothing said: the estimate stays
    expect((await limiter.stats('gpt-4o')).inFlight).toBe(0);
  });

  it('settles and releases a stream that breaks, and the consumer sees the error', async () => {
    const { limiter, settled } = setup();
    const { res } = sseResponse(openaiStream(null).slice(0, 2), { failAfter: true });
    const f = limitedFetch({ limiter, fetch: async () => res });
    const out = await f(URL_, post(chat({ stream: true })));
    await expect(out.text()).rejects.toThrow('connection reset');
    expect((await limiter.stats('gpt-4o')).inFlight).toBe(0);
    expect(settled).toHaveLength(0); // nothing said: the estimate stays
    expect(await tokensLeft(limiter)).toBe(100_000 - 59);
  });

  it('passes through a body of another type and releases at its end', async () => {
    const { limiter } = setup();
    const f = limitedFetch({
      limiter,
      fetch: async () =>
        new Response(new Uint8Array([1, 2, 3]), { headers: { 'content-type': 'audio/mpeg' } }),
    });
    const out = await f(URL_, post(chat()));
    expect((await limiter.stats('gpt-4o')).inFlight).toBe(1);
    expect(new Uint8Array(await out.arrayBuffer())).toEqual(new Uint8Array([1, 2, 3]));
    expect((await limiter.stats('gpt-4o')).inFlight).toBe(0);
  });
});

describe('limitedFetch: errors and feedback', () => {
  it('releases the grant and rethrows when fetch throws; the estimate stays booked', async () => {
    const { limiter } = setup({ ...TOKENS, breaker: { failureThreshold: 1 } });
    const boom = new TypeError('fetch failed');
    const f = limitedFetch({ limiter, fetch: async () => Promise.reject(boom) });
    await expect(f(URL_, post(chat()))).rejects.toBe(boom);
    const s = await limiter.stats('gpt-4o');
    expect(s.inFlight).toBe(0);
    expect(s.limits[1]!.remaining).toBe(100_000 - 59);
    // It counted as a failure: with a threshold of 1 the breaker is open now.
    await expect(f(URL_, post(chat()))).rejects.toBeInstanceOf(CircuitOpenError);
  });

  it('counts an abort by the caller as neutral for the breaker', async () => {
    const { limiter } = setup({ ...TOKENS, breaker: { failureThreshold: 1 } });
    const ac = new AbortController();
    const f = limitedFetch({
      limiter,
      fetch: async () => {
        ac.abort();
        throw new DOMException('aborted', 'AbortError');
      },
    });
    await expect(f(URL_, post(chat(), ac.signal))).rejects.toThrow('aborted');
    expect(limiter.breakerFor('gpt-4o')!.state).toBe('closed');
    expect((await limiter.stats('gpt-4o')).inFlight).toBe(0);
    // An already aborted signal never reaches fetch; it rejects as fetch does, with the reason.
    await expect(f(URL_, post(chat(), ac.signal))).rejects.toBe(ac.signal.reason);
  });

  it('rejects with the signal reason when aborted while waiting for the limiter, holding nothing', async () => {
    const { limiter } = setup({ limits: [{ limit: 1, interval: '1m' }] });
    let calls = 0;
    const f = limitedFetch({ limiter, fetch: async () => (calls++, jsonResponse({})) });
    await f(URL_, post(chat()));
    const ac = new AbortController();
    const waiting = f(URL_, post(chat(), ac.signal));
    ac.abort(new Error('user cancelled'));
    await expect(waiting).rejects.toThrow('user cancelled');
    expect(calls).toBe(1);
    expect((await limiter.stats('gpt-4o')).queued).toBe(0);
  });

  it('pauses the key on a 429, books the request without tokens, and counts it neutral', async () => {
    const { limiter, settled } = setup({ ...TOKENS, breaker: { failureThreshold: 1 } });
    const f = limitedFetch({
      limiter,
      now: () => clock.now(),
      fetch: async () =>
        jsonResponse({ error: { code: 'rate_limit_exceeded' } }, 429, {
          'retry-after-ms': '1500',
          'x-ratelimit-remaining-requests': '0',
        }),
    });
    const res = await f(URL_, post(chat()));
    expect(res.status).toBe(429);
    expect(await res.json()).toEqual({ error: { code: 'rate_limit_exceeded' } });
    expect(settled.map((e) => e.actual)).toEqual([[1, 0]]);
    expect(await limiter.tryAcquire('gpt-4o')).toEqual({
      ok: false,
      retryAfterMs: 1500,
      limit: 'paused',
    });
    expect(limiter.breakerFor('gpt-4o')!.state).toBe('closed');
    expect((await limiter.stats('gpt-4o')).inFlight).toBe(0);
  });

  it('lowers the key to the remaining the provider reports', async () => {
    const { limiter } = setup();
    const f = limitedFetch({
      limiter,
      fetch: async () => jsonResponse({}, 200, { 'x-ratelimit-remaining-requests': '10' }),
    });
    await f(URL_, post(chat()));
    expect((await limiter.stats('gpt-4o')).limits[0]!.remaining).toBe(10);
  });

  it('reports 5xx as failures and other 4xx as neutral', async () => {
    const { limiter } = setup({ ...TOKENS, breaker: { failureThreshold: 2 } });
    let status = 400;
    const f = limitedFetch({ limiter, fetch: async () => jsonResponse({}, status) });
    for (let i = 0; i < 3; i++) await f(URL_, post(chat()));
    expect(limiter.breakerFor('gpt-4o')!.state).toBe('closed');
    status = 500;
    await f(URL_, post(chat()));
    await f(URL_, post(chat()));
    expect(limiter.breakerFor('gpt-4o')!.state).toBe('open');
    await expect(f(URL_, post(chat()))).rejects.toBeInstanceOf(CircuitOpenError);
  });

  it('never fails a call because feedback or settling failed', async () => {
    const { limiter } = setup();
    const f = limitedFetch({
      limiter,
      fetch: async () => {
        await system!.close(); // the limiter goes away while the call is out
        return jsonResponse({ usage: { total_tokens: 3 } }, 429, { 'retry-after': '1' });
      },
    });
    const res = await f(URL_, post(chat()));
    expect(res.status).toBe(429);
  });

  it('rejects bad options up front', () => {
    const { limiter } = setup();
    expect(() => limitedFetch({} as never)).toThrow(
      'tollgate: limitedFetch: options.limiter is undefined; expected a Limiter from system.limiter()',
    );
    expect(() => limitedFetch({ limiter, key: 3 as never })).toThrow(
      'tollgate: limitedFetch: options.key is 3; expected a string, or a function (url, body) => string',
    );
    expect(() => limitedFetch({ limiter, fetch: 'x' as never })).toThrow(
      'tollgate: limitedFetch: options.fetch is "x" (a string); expected a function',
    );
    // Checked when the fetch is made, not at its first call (#11).
    expect(() => limitedFetch({ limiter, timeout: -1 as never })).toThrow(
      "tollgate: limitedFetch: options.timeout is -1; expected 0 (refuse at once) or a duration from 1 ms to 366 days, as ms or a string like '500ms', '2s', '5m', '1h' or '1d'",
    );
    expect(() => limitedFetch({ limiter, accounting: 'min' as never })).toThrow(
      "tollgate: limitedFetch: options.accounting is \"min\" (a string); expected 'max' or 'usage'",
    );
  });
});

describe('usage readers', () => {
  it('reads OpenAI chat, OpenAI responses and Anthropic bodies', () => {
    expect(
      usageFromBody({ usage: { prompt_tokens: 12, completion_tokens: 30, total_tokens: 42 } }),
    ).toEqual({ inputTokens: 12, outputTokens: 30, tokens: 42 });
    expect(
      usageFromBody({
        object: 'response',
        usage: { input_tokens: 5, output_tokens: 6, total_tokens: 11 },
      }),
    ).toEqual({ inputTokens: 5, outputTokens: 6, tokens: 11 });
    expect(
      usageFromBody({ type: 'message', usage: { input_tokens: 5, output_tokens: 6 } }),
    ).toEqual({ inputTokens: 5, outputTokens: 6, tokens: 11 });
    expect(
      usageFromBody({ usage: { prompt_tokens: -1, completion_tokens: 1.5, total_tokens: 'x' } }),
    ).toBeNull();
    expect(usageFromBody({ usage: null })).toBeNull();
    expect(usageFromBody('nope')).toBeNull();
  });

  it('reads a Responses stream from response.completed', () => {
    const r = new SseUsageReader();
    r.push(
      'event: response.created\ndata: {"type":"response.created","response":{"usage":null}}\n\n',
    );
    r.push(
      'event: response.completed\ndata: {"type":"response.completed","response":{"usage":{"input_tokens":7,"output_tokens":8,"total_tokens":15}}}\n\n',
    );
    expect(r.usage).toEqual({ inputTokens: 7, outputTokens: 8, tokens: 15 });
  });

  it('joins multi-line data, skips comments, [DONE] and garbage, and reads a last event without a blank line', () => {
    const r = new SseUsageReader();
    r.push(': keep-alive\r\n\r\ndata: not json\r\n\r\ndata: [DONE]\n\n');
    expect(r.usage).toEqual({});
    r.push('data: {"usage":\ndata: {"prompt_tokens":1,"completion_tokens":2}}');
    expect(r.usage).toEqual({});
    r.end();
    expect(r.usage).toEqual({ inputTokens: 1, outputTokens: 2, tokens: 3 });
    r.push('data: {"usage":{"prompt_tokens":100}}\n\n'); // ignored after end
    expect(r.usage).toEqual({ inputTokens: 1, outputTokens: 2, tokens: 3 });
  });

  // An event whose data spans two lines (joined with a line feed, still one JSON document).
  const multiLine =
    'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}\n\n' +
    'data: {"id":"c1","choices":[],\ndata: "usage":{"prompt_tokens":4,"completion_tokens":5}}\n\n' +
    'data: [DONE]\n\n';
  const transcripts = [
    [
      openaiStream({ prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 }).join(''),
      { inputTokens: 9, outputTokens: 3, tokens: 12 },
    ],
    [anthropicStream.join(''), { inputTokens: 25, outputTokens: 15, tokens: 40 }],
    [multiLine, { inputTokens: 4, outputTokens: 5, tokens: 9 }],
  ] as const;

  function readSplit(text: string, points: readonly number[]) {
    const reader = new SseUsageReader();
    let at = 0;
    for (const p of [...points, text.length]) {
      reader.push(text.slice(at, p));
      at = p;
    }
    reader.end();
    return reader.usage;
  }

  it('takes a \\r\\n cut between two pushes as one line break', () => {
    const text = multiLine.replace(/\n/g, '\r\n');
    const cut = text.indexOf('\r\ndata: "usage"') + 1; // between the \r and the \n
    expect(readSplit(text, [cut])).toEqual({ inputTokens: 4, outputTokens: 5, tokens: 9 });
  });

  it('gives the same usage for any split of a transcript, with any line endings', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...transcripts),
        fc.constantFrom('\n', '\r\n', '\r'),
        fc.array(fc.nat(), { maxLength: 64 }),
        ([transcript, want], ending, cuts) => {
          const text = transcript.replace(/\n/g, ending);
          const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
          expect(readSplit(text, [])).toEqual(want);
          expect(readSplit(text, points)).toEqual(want);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('settles the same through limitedFetch for any cut of the bytes, inside characters too', async () => {
    const { limiter, settled } = setup({
      limits: [{ limit: 1_000_000, interval: '1m', dimension: 'tokens' }],
    });
    const text = openaiStream({ prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 })
      .join('')
      .replace('"Hi"', '"héllo ✓ 日本 🚦"');
    const bytes = new TextEncoder().encode(text);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(), { maxLength: 16 }), async (cuts) => {
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const pieces: Uint8Array[] = [];
        let at = 0;
        for (const p of [...points, bytes.length]) {
          pieces.push(bytes.slice(at, p));
          at = p;
        }
        const body = new ReadableStream<Uint8Array>({
          pull(c) {
            const next = pieces.shift();
            if (next === undefined) c.close();
            else c.enqueue(next);
          },
        });
        const f = limitedFetch({
          limiter,
          fetch: async () =>
            new Response(body, { headers: { 'content-type': 'text/event-stream' } }),
        });
        const before = settled.length;
        const out = await (await f(URL_, post(chat({ stream: true })))).text();
        expect(out).toBe(text);
        expect(settled.slice(before).map((e) => e.actual)).toEqual([[12]]);
      }),
      { numRuns: 50 },
    );
  });

  it('settles only what is known, and keeps the estimate of the rest', () => {
    const dims = ['requests', 'tokens', 'inputTokens'];
    const estimate = { requests: 1, tokens: 1100, inputTokens: 100 };
    const parts = { inputTokens: 100, outputTokens: 1000 };
    expect(costFromUsage(estimate, {}, dims, parts)).toBeNull();
    expect(costFromUsage(estimate, { inputTokens: 60 }, dims, parts)).toEqual({
      inputTokens: 60,
      tokens: 1060,
    });
    expect(costFromUsage(estimate, { outputTokens: 7 }, dims, parts)).toEqual({ tokens: 107 });
    expect(
      costFromUsage(estimate, { inputTokens: 60, outputTokens: 7, tokens: 70 }, dims, parts),
    ).toEqual({ inputTokens: 60, tokens: 70 });
    expect(costFromUsage(estimate, { tokens: 70 }, ['requests'], parts)).toBeNull();
  });
});

describe('estimates', () => {
  it('counts documents, files and audio (#17, finding 10)', () => {
    const count = (t: string): number => t.split(' ').length; // one token per word, for the test
    const words = Array.from({ length: 5000 }, (_, i) => `w${i}`).join(' ');
    const one = (part: unknown): number =>
      estimateTokens({ messages: [{ role: 'user', content: [part] }] }, count).inputTokens - 7;
    // Anthropic: a text document counts its text (it was 7 tokens for 5,000 words before).
    expect(one({ type: 'document', source: { type: 'text', data: words } })).toBe(5000);
    // A PDF: FILE_PAGE_TOKENS per page object (not the /Pages tree).
    const pdf = btoa(
      '%PDF-1.7\n1 0 obj << /Type /Pages /Count 3 >> endobj\n' +
        '2 0 obj << /Type /Page >> endobj 3 0 obj << /Type/Page >> endobj 4 0 obj << /Type /Page >>',
    );
    const doc = {
      type: 'document',
      source: { type: 'base64', media_type: 'application/pdf', data: pdf },
    };
    expect(one(doc)).toBe(3 * FILE_PAGE_TOKENS);
    // OpenAI chat `file` (data URL or file id) and Responses `input_file` (file URL).
    expect(one({ type: 'file', file: { file_data: `data:application/pdf;base64,${pdf}` } })).toBe(
      3 * FILE_PAGE_TOKENS,
    );
    expect(one({ type: 'file', file: { file_id: 'file-abc' } })).toBe(FILE_PAGE_TOKENS);
    expect(one({ type: 'input_file', file_url: 'https://example.com/a.pdf' })).toBe(
      FILE_PAGE_TOKENS,
    );
    // Audio, from its size: 16,000 bytes.
    const audio = btoa('x'.repeat(16_000));
    expect(one({ type: 'input_audio', input_audio: { data: audio, format: 'wav' } })).toBe(
      16_000 / AUDIO_BYTES_PER_TOKEN,
    );
  });

  it('walks a tool_result nested 5,000 deep without overflowing the stack (#17)', () => {
    let content: unknown = 'deep';
    for (let i = 0; i < 5000; i++) content = [{ type: 'tool_result', content }];
    const input = { type: 'tool_use', input: {} as Record<string, unknown> };
    let o = input.input;
    for (let i = 0; i < 20_000; i++) o = o.next = {}; // too deep for JSON.stringify: counts 0
    const body = { messages: [{ role: 'user', content: [...(content as unknown[]), input] }] };
    const count = (t: string): number => t.length;
    expect(estimateTokens(body, count).inputTokens).toBe(3 + 4 + 4 + 3);
  });

  it('counts chat input like the cookbook (and like the fake provider) and the output maximum', () => {
    const body = chat({
      messages: [
        { role: 'system', content: 'You are terse.' },
        {
          role: 'user',
          name: 'ann',
          content: [{ type: 'text', text: 'Count <|endoftext|> as text.' }],
        },
      ],
      max_completion_tokens: 77,
      max_tokens: 5,
    });
    const est = estimateTokens(body);
    expect(est.inputTokens).toBe(promptTokens(body.messages));
    expect(est.outputTokens).toBe(77);
  });

  it('defaults the output, multiplies by n, and gives embeddings no output', () => {
    expect(estimateTokens({ messages: [] }).outputTokens).toBe(DEFAULT_MAX_OUTPUT_TOKENS);
    expect(estimateTokens({ messages: [], max_tokens: 10, n: 3 }).outputTokens).toBe(30);
    expect(estimateTokens({ model: 'text-embedding-3-small', input: ['a b', 'c'] })).toEqual({
      inputTokens: 3,
      outputTokens: 0,
    });
    expect(
      estimateTokens({
        model: 'gpt-4o',
        instructions: 'Be brief.',
        input: 'Hello world',
        max_output_tokens: 9,
      }),
    ).toEqual({ inputTokens: 5, outputTokens: 9 });
    expect(estimateTokens('a string')).toEqual({ inputTokens: 0, outputTokens: 0 });
  });

  it('names only the dimensions the policy counts', () => {
    const body = chat();
    expect(estimateRequestCost(body, ['requests'])).toEqual({ requests: 1 });
    expect(estimateRequestCost(body, ['requests', 'tokens'])).toEqual({ requests: 1, tokens: 59 });
    expect(estimateRequestCost(body, ['requests', 'inputTokens', 'outputTokens'])).toEqual({
      requests: 1,
      inputTokens: 9,
      outputTokens: 50,
    });
    expect(estimateRequestCost(body, ['requests'], () => 1000)).toEqual({ requests: 1 });
    expect(estimateRequestCost(body, ['tokens'], (t) => t.length)).toEqual({
      requests: 1,
      tokens: 3 + 4 + 11 + 3 + 50,
    });
  });
});
