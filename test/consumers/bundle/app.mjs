// An app that uses limitedFetch, bundled by esbuild: the tokenizer's import() is followed into
// the bundle, and the first call estimates, acquires and settles.
import { createLimiterSystem, limitedFetch } from 'tollgate';

const system = createLimiterSystem();
const limiter = system.limiter('openai', {
  limits: [{ limit: 100_000, interval: '1m', dimension: 'tokens', algorithm: 'sliding-window' }],
});
const answer = async () =>
  Response.json({ usage: { prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 } });
const f = limitedFetch({ limiter, fetch: answer, accounting: 'usage' });
let estimated = 0;
system.events.on('granted', (e) => (estimated = e.units[0]));
await f('https://api.openai.com/v1/chat/completions', {
  method: 'POST',
  body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello world' }] }),
});
const booked = 100_000 - (await limiter.stats('gpt-4o')).limits[0].remaining;
await system.close();
console.log(JSON.stringify({ estimated, booked }));
