// An ES module app: the main entry and the Redis entry load, and a limiter decides.
import { createLimiterSystem, isTollgateError, QueueFullError } from 'tollgate';
import { redisStore } from 'tollgate/redis';

const system = createLimiterSystem();
const limiter = system.limiter('api', { limits: [{ limit: 2, interval: '1m' }] });
const results = [];
for (let i = 0; i < 3; i++) results.push((await limiter.tryAcquire('user-1')).ok);
await system.close();
console.log(
  JSON.stringify({
    results,
    redisStore: typeof redisStore,
    errors: isTollgateError(new QueueFullError(1)),
  }),
);
