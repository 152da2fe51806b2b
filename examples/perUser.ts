/**
 * Per-user keys: one limiter, a budget per end user. A noisy user waits; the others do not.
 */
import { createLimiterSystem } from '../src/index.js';

const system = createLimiterSystem();
const perUser = system.limiter('chat', { limits: [{ limit: 3, interval: '1s' }] });

const results = await Promise.all(
  ['alice', 'alice', 'alice', 'alice', 'bob', 'carol'].map(async (user) => {
    const r = await perUser.tryAcquire(user);
    return `${user}: ${r.ok ? 'ok' : `wait ${r.retryAfterMs} ms`}`;
  }),
);
console.log(results.join('\n'));
const alice = await perUser.stats('alice');
console.log(
  `alice has ${alice.limits[0]!.remaining} left, bob has ${(await perUser.stats('bob')).limits[0]!.remaining}`,
);
await system.close();
