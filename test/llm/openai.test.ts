/**
 * The official `openai` SDK through limitedFetch, against the local fake provider
 * (./fakeProvider.ts), on real time. Windows are 1 s instead of 1 min so the suite takes seconds.
 *
 * Real time has jitter: tollgate books a call when it admits it, the server counts it when it
 * arrives some ms later, and those delays differ from call to call (by over 100 ms when CI runs
 * other test files on both cores: a 10% margin failed there). The server's window is half the
 * limiter's (500 ms against 1000 ms): 11 arrivals fall in one server window only if the delays of
 * two consecutive batches differ by more than 500 ms. A client of a real provider keeps a margin
 * for the same reason.
 */
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CircuitOpenError,
  createLimiterSystem,
  type Limiter,
  type LimiterOptions,
  type LimiterSystem,
} from '../../src/index.js';
import { limitedFetch } from '../../src/llm/fetch.js';
import {
  stampSent,
  startFakeProvider,
  type FakeProvider,
  type FakeProviderOptions,
} from './fakeProvider.js';

let system: LimiterSystem | undefined;
let fake: FakeProvider | undefined;

afterEach(async () => {
  await system?.close();
  await fake?.close();
  system = undefined;
  fake = undefined;
});

async function setup(
  server: FakeProviderOptions,
  policy: LimiterOptions,
  maxRetries = 0,
  accounting?: 'max' | 'usage',
) {
  fake = await startFakeProvider(server);
  system = createLimiterSystem();
  const limiter = system.limiter('openai', policy);
  const client = (retries = maxRetries) =>
    new OpenAI({
      apiKey: 'test',
      baseURL: `${fake!.url}/v1`,
      // The server judges each call at the instant limitedFetch sent it (SENT_AT).
      fetch: limitedFetch({ limiter, fetch: stampSent(), ...(accounting && { accounting }) }),
      maxRetries: retries,
    });
  return { limiter, client, fake };
}

const ask = (i: number) => ({
  model: 'gpt-4o',
  messages: [{ role: 'user' as const, content: `Question number ${i}: what is ${i} + ${i}?` }],
  max_tokens: 40,
});

// Requests per second like the server's, and a tokens-per-minute limit that never binds here:
// it is there to show that every grant was settled to the usage the server reported.
const matching: LimiterOptions = {
  algorithm: 'sliding-window',
  limits: [
    { limit: 10, interval: 1000 },
    { limit: 1_000_000, interval: '1m', dimension: 'tokens' },
  ],
};

async function tokensBooked(limiter: Limiter): Promise<number> {
  const s = await limiter.stats('gpt-4o');
  return 1_000_000 - s.limits[1]!.remaining;
}

describe('openai SDK through limitedFetch', () => {
  it("lets no 429 reach the caller under a burst of 40 JSON calls, and books exactly the usage ('usage' accounting)", async () => {
    const { limiter, client, fake } = await setup(
      { requests: { limit: 10, windowMs: 500 } },
      matching,
      0,
      'usage',
    );
    const openai = client();
    const start = performance.now();
    const replies = await Promise.all(
      Array.from({ length: 40 }, (_, i) => openai.chat.completions.create(ask(i))),
    );
    const elapsed = performance.now() - start;

    expect(fake.counts).toEqual({ requests: 40, ok: 40, throttled: 0, failed: 0, other: 0 });
    expect(elapsed).toBeGreaterThan(2900); // 4 windows of 10: the limiter did the waiting
    const reported = replies.reduce((s, r) => s + r.usage!.total_tokens, 0);
    expect(reported).toBe(fake.usage.inputTokens + fake.usage.outputTokens);
    expect(await tokensBooked(limiter)).toBe(reported);
    expect((await limiter.stats('gpt-4o')).inFlight).toBe(0);
  });

  it('lets no 429 reach the caller under a burst of 40 streamed calls, and books what the provider counts', async () => {
    const { limiter, client, fake } = await setup(
      { requests: { limit: 10, windowMs: 500 }, chunkDelayMs: 1 },
      matching,
    );
    const openai = client();
    const usages = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const stream = await openai.chat.completions.create({
          ...ask(i),
          stream: true,
          stream_options: { include_usage: true },
        });
        let text = '';
        let total = 0;
        for await (const chunk of stream) {
          text += chunk.choices[0]?.delta.content ?? '';
          if (chunk.usage) total = chunk.usage.total_tokens;
        }
        expect(text.trim().split(' ')).toHaveLength(12);
        return total;
      }),
    );
    expect(fake.counts).toEqual({ requests: 40, ok: 40, throttled: 0, failed: 0, other: 0 });
    const reported = usages.reduce((s, n) => s + n, 0);
    expect(reported).toBe(fake.usage.inputTokens + fake.usage.outputTokens);
    // OpenAI counts the input and max_tokens when a call arrives ('max', the default here): that
    // is what stays booked, the input exactly as the server counted it, 40 output each.
    expect(await tokensBooked(limiter)).toBe(fake.usage.inputTokens + 40 * 40);
    expect((await limiter.stats('gpt-4o')).inFlight).toBe(0);
  });

  it('keeps the estimate and frees the slot when the caller stops reading a stream early', async () => {
    const { limiter, client, fake } = await setup(
      { chunkDelayMs: 5 },
      { ...matching, concurrency: 1 },
    );
    const settled: number[][] = [];
    system!.events.on('settled', (e) => settled.push([...e.actual]));
    const stream = await client().chat.completions.create({
      ...ask(1),
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) break; // the first word is enough
    }
    // The abandoned call keeps its estimate (the usage chunk never came); the slot is free again.
    const next = await client().chat.completions.create(ask(2));
    expect(fake.counts.ok).toBe(2);
    // The next call settles to what the server counted: its input and its max_tokens.
    expect(settled).toEqual([[1, next.usage!.prompt_tokens + 40]]);
    expect((await limiter.stats('gpt-4o')).inFlight).toBe(0);
  });

  it('lets no 429 reach the caller when a tokens limit binds, against a server that counts max_tokens on arrival (#17)', async () => {
    // The server counts input + max_tokens (200) per call when it arrives, and keeps it; its
    // window is half the limiter's (jitter margin, see the file comment). Refunding the unused
    // output (the 'usage' accounting) let the limiter admit about twice what the server takes.
    const { limiter, client, fake } = await setup(
      { tokens: { limit: 2_400, windowMs: 500 } },
      {
        algorithm: 'sliding-window',
        limits: [
          { limit: 100, interval: 1000 },
          { limit: 2_400, interval: 1000, dimension: 'tokens' },
        ],
        concurrency: 8,
      },
    );
    const openai = client(0);
    const replies = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        openai.chat.completions.create({ ...ask(i), max_tokens: 200 }),
      ),
    );
    expect(replies).toHaveLength(40);
    expect(fake.counts).toEqual({ requests: 40, ok: 40, throttled: 0, failed: 0, other: 0 });
    expect((await limiter.stats('gpt-4o')).inFlight).toBe(0);
  });

  it('recovers by itself when the server allows less than configured: a 429 pauses the key, and 429s stay few', async () => {
    // Configured for 40/s, the server allows 10/s. Feedback can only correct what it hears: with
    // at most 2 calls in flight, the limiter hears the server's remaining before it admits more.
    const { limiter, client, fake } = await setup(
      { requests: { limit: 10, windowMs: 1000 } },
      { algorithm: 'sliding-window', limits: [{ limit: 40, interval: 1000 }], concurrency: 2 },
    );
    // Another process on the same API key used the server's whole window just now.
    for (let i = 0; i < 10; i++) {
      await fetch(`${fake.url}/v1/chat/completions`, {
        method: 'POST',
        body: JSON.stringify(ask(i)),
      }).then((r) => r.text());
    }
    await expect(client(0).chat.completions.create(ask(0))).rejects.toBeInstanceOf(
      OpenAI.RateLimitError,
    );
    expect(await limiter.tryAcquire('gpt-4o')).toMatchObject({ ok: false, limit: 'paused' });

    // Now 30 calls, the SDK retrying 429s twice: every one succeeds, and few are refused. The
    // limiter books a call when it admits it and the server counts it on arrival, a few ms
    // later: at the edge of a window the server may still count a call the limiter no longer
    // does, so about one 429 per window is left (each pausing the key for the few ms the server
    // names). Without feedback the limiter would admit 40 per window and 30 of them would be 429s.
    const before = fake.counts.throttled;
    const openai = client(2);
    const start = performance.now();
    const replies = await Promise.all(
      Array.from({ length: 30 }, (_, i) => openai.chat.completions.create(ask(i))),
    );
    const windows = Math.ceil((performance.now() - start) / 1000);
    expect(replies).toHaveLength(30);
    const throttled = fake.counts.throttled - before;
    expect(throttled).toBeLessThanOrEqual(windows + 1);
    expect(throttled).toBeLessThanOrEqual(6);
  });

  it('opens the key breaker after three 500s; later calls fail fast without reaching the server', async () => {
    const { limiter, client, fake } = await setup(
      {},
      { limits: [{ limit: 100, interval: '1s' }], breaker: { failureThreshold: 3, openFor: '1m' } },
    );
    fake.failNext(5);
    const openai = client(0);
    for (let i = 0; i < 3; i++) {
      await expect(openai.chat.completions.create(ask(i))).rejects.toBeInstanceOf(
        OpenAI.InternalServerError,
      );
    }
    expect(limiter.breakerFor('gpt-4o')!.state).toBe('open');
    const error = await openai.chat.completions.create(ask(3)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIConnectionError);
    expect((error as { cause: unknown }).cause).toBeInstanceOf(CircuitOpenError);
    expect(fake.counts).toEqual({ requests: 3, ok: 0, throttled: 0, failed: 3, other: 0 });
  });
});
