// The same memory-only app with rate-limiter-flexible: one limiter in memory, one consume.
import { RateLimiterMemory } from 'rate-limiter-flexible';

const limiter = new RateLimiterMemory({ points: 10, duration: 1 });
await limiter.consume('user-1');
