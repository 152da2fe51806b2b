/**
 * 1M distinct keys touched within one minute fit in under 1 GB of heap, with the default idle
 * timeout: idle key actors are evicted to plain data, and keys back at full capacity are dropped.
 * Peak heapUsed is sampled without forcing GC, so uncollected garbage counts against the budget.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock, createLimiterSystem, type MemoryStore } from '../../src/index.js';

describe('many keys', () => {
  it('keeps 1M keys touched within a minute under 1 GB of heap', async () => {
    const clock = new VirtualClock(0);
    const system = createLimiterSystem({ clock });
    const llm = system.limiter('llm', {
      limits: [
        { limit: 10, interval: '1m' },
        { limit: 1000, interval: '1m', dimension: 'tokens' },
      ],
    });
    let peakHeap = 0;
    let peakLive = 0;
    for (let i = 0; i < 1_000_000; i++) {
      await llm.acquire(`user-${i}`, { cost: { tokens: 100 } });
      if (i % 10_000 === 9_999) {
        await clock.increment(600); // 100 steps of 600 ms: the whole run is one virtual minute
        peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
        peakLive = Math.max(peakLive, system.liveKeys);
      }
    }
    expect(clock.now()).toBe(60_000);
    expect(peakHeap).toBeLessThan(1024 ** 3);
    // Idle actors were evicted (default idleTimeout 2 s, swept every 1 s) rather than kept.
    expect(peakLive).toBeLessThan(100_000);
    // Keys not yet back at full capacity keep their state; the rest were dropped.
    expect((system.store as MemoryStore).size).toBeGreaterThan(0);
    expect((system.store as MemoryStore).size).toBeLessThan(1_000_000);
    await system.close();
  }, 180_000);
});
