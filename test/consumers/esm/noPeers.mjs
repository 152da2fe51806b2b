// Without the optional peers installed: each feature that needs one says which, with a typed error.
import { createLimiterSystem, limitedFetch } from 'tollgate';
import { redisStore } from 'tollgate/redis';

const out = {};
try {
  redisStore({ client: undefined });
} catch (e) {
  out.redis = { name: e.name, code: e.code, message: e.message };
}
const system = createLimiterSystem();
const limiter = system.limiter('openai', {
  limits: [{ limit: 10_000, interval: '1m', dimension: 'tokens' }],
});
const f = limitedFetch({ limiter, fetch: async () => Response.json({}) });
try {
  await f('https://api.openai.com/v1/chat/completions', {
    method: 'POST',
    body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }] }),
  });
} catch (e) {
  out.tokenizer = { name: e.name, code: e.code, reason: e.reason, message: e.message };
}
out.booked = 10_000 - (await limiter.stats('gpt-4o')).limits[0].remaining;
await system.close();
console.log(JSON.stringify(out));
