/**
 * The official `@anthropic-ai/sdk` through limitedFetch, against a local server that enforces
 * limits as Anthropic documents them (./fakeAnthropic.ts: token buckets for requests, input and
 * output tokens; output counted from max_tokens at arrival and adjusted to the real output at the
 * end). Real time: the server's buckets refill twice as fast as the limiter's (a margin for the
 * delay between the limiter's grant and the server's arrival, as in openai.test.ts).
 */
import Anthropic from '@anthropic-ai/sdk';
import { afterEach, describe, expect, it } from 'vitest';
import {
  VirtualClock,
  createLimiterSystem,
  type Clock,
  type LimiterOptions,
  type LimiterSystem,
} from '../../src/index.js';
import { limitedFetch } from '../../src/llm/fetch.js';
import {
  startFakeAnthropic,
  type FakeAnthropic,
  type FakeAnthropicOptions,
} from './fakeAnthropic.js';
import { stampSent } from './fakeProvider.js';

let system: LimiterSystem | undefined;
let fake: FakeAnthropic | undefined;

afterEach(async () => {
  await system?.close();
  await fake?.close();
  system = fake = undefined;
});

async function setup(server: FakeAnthropicOptions, policy: LimiterOptions, clock?: Clock) {
  fake = await startFakeAnthropic(server);
  system = createLimiterSystem(clock === undefined ? {} : { clock });
  const limiter = system.limiter('anthropic', policy);
  const client = new Anthropic({
    apiKey: 'test',
    baseURL: fake.url,
    fetch: limitedFetch({ limiter, fetch: stampSent() }), // judged when sent (SENT_AT)
    maxRetries: 0,
  });
  return { limiter, client, fake };
}

// The server: 10 requests and 4,000 output tokens per 500 ms; the limiter: the same per second.
const server: FakeAnthropicOptions = {
  requests: { limit: 10, windowMs: 500 },
  outputTokens: { limit: 4_000, windowMs: 500 },
};
const policy: LimiterOptions = {
  limits: [
    { limit: 10, interval: 1000 },
    { limit: 4_000, interval: 1000, dimension: 'outputTokens' },
    // A window, so that what is booked does not refill before the test reads it.
    { limit: 1_000_000, interval: '1m', dimension: 'inputTokens', algorithm: 'sliding-window' },
  ],
  concurrency: 8,
};

const ask = (i: number) => ({
  model: 'claude-sonnet-4',
  max_tokens: 1_000, // four calls' worth fill the output bucket at arrival
  messages: [{ role: 'user' as const, content: `Question ${i}: what is ${i} + ${i}?` }],
});

describe('@anthropic-ai/sdk through limitedFetch', () => {
  it('lets no 429 through when the output-token limit binds, and books exactly the usage', async () => {
    const { limiter, client, fake } = await setup(server, policy);
    const replies = await Promise.all(
      Array.from({ length: 24 }, (_, i) => client.messages.create(ask(i))),
    );
    expect(replies).toHaveLength(24);
    expect(fake.counts).toMatchObject({ requests: 24, ok: 24, throttled: 0 });
    // Anthropic adjusts output to the real count at the end ('usage' accounting): so does tollgate.
    const s = await limiter.stats('claude-sonnet-4');
    expect(1_000_000 - s.limits[2]!.remaining).toBe(fake.usage.inputTokens);
    expect(s.inFlight).toBe(0);
  });

  it('streams: settles to the usage of message_start and message_delta', async () => {
    const { limiter, client, fake } = await setup({}, policy);
    const stream = client.messages.stream(ask(1));
    const final = await stream.finalMessage();
    expect(final.usage.output_tokens).toBeGreaterThan(0);
    const s = await limiter.stats('claude-sonnet-4');
    expect(1_000_000 - s.limits[2]!.remaining).toBe(fake.usage.inputTokens);
    expect(s.inFlight).toBe(0);
  });

  it('counts a countTokens call as one request and no tokens', async () => {
    // Virtual time: the requests bucket refills one every 100 ms, and a loaded machine read 10.
    const { limiter, client, fake } = await setup({}, policy, new VirtualClock());
    const counted = await client.messages.countTokens({
      model: 'claude-sonnet-4',
      messages: [{ role: 'user', content: 'How many tokens is this?' }],
    });
    expect(counted.input_tokens).toBeGreaterThan(0);
    expect(fake.counts.countTokens).toBe(1);
    const s = await limiter.stats('claude-sonnet-4');
    expect(s.limits.map((l) => l.remaining)).toEqual([9, 4_000, 1_000_000]);
  });
});
