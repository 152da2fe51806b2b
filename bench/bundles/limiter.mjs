// The same memory-only app with limiter: one token bucket, one removeTokens.
import { RateLimiter } from 'limiter';

const limiter = new RateLimiter({ tokensPerInterval: 10, interval: 'second' });
await limiter.removeTokens(1);
