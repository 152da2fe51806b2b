/**
 * An agent loop on the official `openai` SDK, every model call going through tollgate: three
 * agents share one limiter (one API key), each runs four turns and streams its replies. The
 * wrapper estimates each call (prompt tokens + max_tokens), waits for room, and settles the
 * grant with the usage the stream reports, so the token budget counts what was really used.
 *
 * A local fake of OpenAI's API stands in for api.openai.com (it enforces 5 requests per second
 * itself, and answers 429 over it). In an app, drop `baseURL` and pass your real key.
 */
import OpenAI from 'openai';
import { createLimiterSystem } from '../src/index.js';
import { limitedFetch } from '../src/llm/fetch.js';
import { stampSent, startFakeProvider } from '../test/llm/fakeProvider.js';

// The stand-in judges each call at the instant it was sent (`stampSent` below marks it), not at
// its arrival: on a busy machine (the test suite runs this example under load) calls granted a
// second apart can arrive bunched, which says nothing of the limiter. Its window is half the
// limiter's besides.
const server = await startFakeProvider({ requests: { limit: 5, windowMs: 500 }, replyWords: 8 });

const system = createLimiterSystem();
const openai = system.limiter('openai', {
  algorithm: 'sliding-window', // the provider counts requests in a sliding window too
  limits: [
    { limit: 5, interval: '1s' }, // stricter than the server's 5 per 0.5 s: room for jitter
    { limit: 30_000, interval: '1m', dimension: 'tokens' }, // tokens per minute
  ],
  concurrency: 4,
});

const client = new OpenAI({
  apiKey: 'sk-example',
  baseURL: `${server.url}/v1`,
  // The only line tollgate adds to an SDK client. `fetch: stampSent()` is for the stand-in
  // server only; with the real API, `limitedFetch({ limiter: openai })`.
  fetch: limitedFetch({ limiter: openai, fetch: stampSent() }),
  maxRetries: 2,
});

const started = performance.now();
const ms = () => Math.round(performance.now() - started);
let used = 0;
let counted = 0; // what the server counts: input + max_tokens, on arrival (as OpenAI does)
let calls = 0;

/** One agent: asks, reads the streamed reply, adds it to the conversation, asks again. */
async function agent(name: string, task: string, turns: number): Promise<void> {
  const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [
    { role: 'system', content: 'You are a terse assistant.' },
    { role: 'user', content: task },
  ];
  for (let turn = 1; turn <= turns; turn++) {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages,
      max_tokens: 64,
      stream: true,
      stream_options: { include_usage: true }, // without it a stream does not say its usage
    });
    let reply = '';
    let tokens = 0;
    let input = 0;
    for await (const chunk of stream) {
      reply += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) ({ total_tokens: tokens, prompt_tokens: input } = chunk.usage);
    }
    calls++;
    used += tokens;
    counted += input + 64;
    console.log(
      `${String(ms()).padStart(5)} ms  ${name} turn ${turn}: ${tokens} tokens, "${reply.trim()}"`,
    );
    messages.push({ role: 'assistant', content: reply }, { role: 'user', content: 'Go on.' });
  }
}

await Promise.all([
  agent('planner ', 'Plan a trip to Lisbon.', 4),
  agent('coder   ', 'Write a haiku about rate limits.', 4),
  agent('reviewer', 'Review the haiku.', 4),
]);

const left = (await openai.stats('gpt-4o-mini')).limits[1]!.remaining;
console.log(
  `agent loop done: ${calls} calls in ${ms()} ms, ${server.counts.throttled} refused by the server (429)`,
);
console.log(
  `tokens used ${used}, counted by the server ${counted}, booked ${30_000 - left} (what the server counts), left ${left} of 30000`,
);
await system.close();
await server.close();
