// A memory-only app: one limiter on the default (memory) store, one acquire.
import { createLimiterSystem } from 'tollgate';

const system = createLimiterSystem();
const limiter = system.limiter('api', { limits: [{ limit: 10, interval: '1s' }] });
await limiter.acquire('user-1');
await system.close();
