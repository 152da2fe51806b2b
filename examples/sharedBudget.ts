/**
 * A controller agent and its delegates share one budget (one limiter, one key), and usage is
 * reported per run: each agent settles its grants with what it really used and keeps its own
 * tally from the grants it holds.
 */
import { createLimiterSystem, type Limiter } from '../src/index.js';

const system = createLimiterSystem();
const budget = system.limiter('anthropic', {
  algorithm: 'sliding-window', // a budget counts what was used in the last minute, exactly
  limits: [
    { limit: 50, interval: '1m' },
    { limit: 20_000, interval: '1m', dimension: 'inputTokens' },
    { limit: 8_000, interval: '1m', dimension: 'outputTokens' },
  ],
  concurrency: 3,
});

interface Usage {
  requests: number;
  inputTokens: number;
  outputTokens: number;
}

/** One agent run: n model calls through the shared limiter, usage tallied for this run only. */
async function agent(name: string, limiter: Limiter, calls: number, usage: Usage): Promise<void> {
  for (let i = 0; i < calls; i++) {
    await limiter.run('claude', async () => ({ input: 400 + i * 10, output: 120 }), {
      cost: { inputTokens: 600, outputTokens: 1_000 },
      settle: (r) => {
        usage.requests += 1;
        usage.inputTokens += r.input;
        usage.outputTokens += r.output;
        return { inputTokens: r.input, outputTokens: r.output };
      },
    });
  }
  console.log(
    `${name}: ${usage.requests} calls, ${usage.inputTokens} in, ${usage.outputTokens} out`,
  );
}

const runUsage = { requests: 0, inputTokens: 0, outputTokens: 0 };
const perAgent = ['researcher', 'writer'].map(() => ({
  requests: 0,
  inputTokens: 0,
  outputTokens: 0,
}));
await agent('controller', budget, 2, runUsage);
await Promise.all([
  agent('researcher', budget, 3, perAgent[0]!),
  agent('writer', budget, 2, perAgent[1]!),
]);
const total = [runUsage, ...perAgent].reduce((t, u) => ({
  requests: t.requests + u.requests,
  inputTokens: t.inputTokens + u.inputTokens,
  outputTokens: t.outputTokens + u.outputTokens,
}));
const s = await budget.stats('claude');
console.log(
  `run total: ${total.requests} calls, ${total.inputTokens} in, ${total.outputTokens} out`,
);
console.log(`budget left: ${s.limits.map((l) => `${l.name}=${l.remaining}`).join(', ')}`);
await system.close();
