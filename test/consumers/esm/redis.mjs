// tollgate/redis with ioredis installed, against the Redis of CI (127.0.0.1:6379, or REDIS_URL):
// the installed package finds its Lua scripts and decides.
import { Redis } from 'ioredis';
import { createLimiterSystem } from 'tollgate';
import { redisStore } from 'tollgate/redis';

const client = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const store = redisStore({ client, prefix: `consumers-${process.pid}-${Math.random()}:` });
const system = createLimiterSystem({ store });
const limiter = system.limiter('api', { limits: [{ limit: 2, interval: '1m' }] });
const results = [];
for (let i = 0; i < 3; i++) results.push((await limiter.tryAcquire('user-1')).ok);
await system.close();
await store.close();
client.disconnect();
console.log(JSON.stringify({ results }));
