/**
 * The quick start: one limiter, two limits, a burst of calls. Run it: `npm run demo`.
 */
import { createLimiterSystem } from '../src/index.js';

const system = createLimiterSystem();
const api = system.limiter('api', {
  limits: [
    { limit: 5, interval: '1s' }, // 5 at once, refilled at 5 per second…
    { limit: 8, interval: '1m' }, // …and 8 at once, refilled at 8 per minute (token buckets)
  ],
});

const started = performance.now();
for (let i = 1; i <= 8; i++) {
  await api.acquire('user-42'); // waits until every limit has room
  console.log(`call ${i} at ${Math.round((performance.now() - started) / 100) * 100} ms`);
}
const refused = await api.tryAcquire('user-42'); // never waits
console.log(
  refused.ok
    ? 'granted'
    : `refused by ${refused.limit}, retry in ~${Math.round(refused.retryAfterMs / 1000)} s`,
);
await system.close();
