// The core with the memory store, for a runtime without Node built-ins: bundled for the neutral
// platform (a `node:` import would not resolve) and run in Deno with no permission.
import { createLimiterSystem, VirtualClock } from 'tollgate';

const clock = new VirtualClock();
const system = createLimiterSystem({ clock });
const limiter = system.limiter('api', {
  limits: [{ limit: 2, interval: '1s' }],
  concurrency: 1,
});
const first = await limiter.acquire('k');
const second = limiter.acquire('k', { timeout: '10s' });
first.release();
const grant = await second;
const refused = await limiter.tryAcquire('k');
grant.release();
await clock.increment(1000);
const afterRefill = await limiter.tryAcquire('k');
if (afterRefill.ok) afterRefill.grant.release();
await system.close();
console.log(
  JSON.stringify({
    second: grant.key,
    refused: !refused.ok,
    afterRefill: afterRefill.ok,
    id: /^[0-9a-f]{8}-/.test(grant.id),
  }),
);
