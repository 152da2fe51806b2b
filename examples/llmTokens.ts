/**
 * LLM tokens: acquire with an estimate, call, settle with the real usage. The refund is exact,
 * and the next call gets it at once.
 */
import { createLimiterSystem } from '../src/index.js';

const system = createLimiterSystem();
const openai = system.limiter('openai', {
  limits: [
    { limit: 60, interval: '1m' }, // requests per minute
    // Tokens per minute, in a sliding window as providers count them: what the line below prints
    // stays put for a minute (a token bucket would refill a little while the program runs).
    { limit: 4_000, interval: '1m', dimension: 'tokens', algorithm: 'sliding-window' },
  ],
  concurrency: 2,
});

/** Stands in for a model call: uses fewer tokens than the worst case we booked. */
async function fakeCompletion(prompt: string, maxTokens: number) {
  const input = Math.ceil(prompt.length / 4);
  return {
    text: 'ok',
    usage: { prompt_tokens: input, completion_tokens: Math.min(maxTokens, 150) },
  };
}

for (const prompt of ['Summarise the meeting notes.', 'Write a haiku about rate limits.']) {
  const estimate = Math.ceil(prompt.length / 4) + 2_000; // input + max_tokens
  const reply = await openai.run('gpt-4o', () => fakeCompletion(prompt, 2_000), {
    cost: { tokens: estimate },
    settle: (r) => ({ tokens: r.usage.prompt_tokens + r.usage.completion_tokens }),
  });
  const s = await openai.stats('gpt-4o');
  console.log(`${reply.text}: booked ${estimate}, settled; tokens left ${s.limits[1]!.remaining}`);
}
await system.close();
