/**
 * Multi-process contention (the seed report about multi-bucket leaks): 4 child processes, each a
 * limiter system of its own on one Redis, hammer one key that has a per-second and a per-minute
 * limit. Every grant's instant is Redis TIME, so the windows below are the ones Redis decided in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compilePolicy } from '../../src/limiter/index.js';
import { redisStore } from '../../src/redis/index.js';
import { CONTENTION_POLICY } from './fixtures/policies.js';
import { spawnNode, startRedis, type RedisServer } from './harness.js';

let server: RedisServer;
beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  await server.stop();
});

type Line = { at: number } | { done: true; grants: number; timeouts: number };

/** The most grants in any window of `windowMs` (instants sorted ascending). */
function busiestWindow(at: readonly number[], windowMs: number): number {
  let most = 0;
  let lo = 0;
  for (let hi = 0; hi < at.length; hi++) {
    while (at[hi]! - at[lo]! >= windowMs) lo++;
    most = Math.max(most, hi - lo + 1);
  }
  return most;
}

describe('4 processes on one key', () => {
  it('stay within every limit, use at least 98% of it, and leak nothing when a later limit refuses', async () => {
    const prefix = `mp${Date.now() % 100000}:`;
    const [perSecond, perMinute] = CONTENTION_POLICY.limits.map((l) => l.limit) as [number, number];
    // 3.5 s of saturation: the per-second limit alone would allow ~140, the per-minute one 100.
    const runs = await Promise.all(
      Array.from({ length: 4 }, () =>
        spawnNode<Line>(
          'test/redis/fixtures/hammer.ts',
          [String(server.port), prefix, 'shared', '3500', '25'],
          {},
          { timeoutMs: 30_000 },
        ),
      ),
    );
    const at = runs
      .flatMap((r) => r.lines)
      .flatMap((l) => ('at' in l ? [l.at] : []))
      .sort((a, b) => a - b);
    const reported = runs.map((r) => r.lines.at(-1) as Extract<Line, { done: true }>);
    expect(reported.reduce((s, r) => s + r.grants, 0)).toBe(at.length);

    // Within each limit, in every window, across all processes.
    expect(busiestWindow(at, 1000)).toBeLessThanOrEqual(perSecond);
    expect(at.length).toBeLessThanOrEqual(perMinute);
    // Saturation: the binding limit (per minute over 3.5 s) is used to at least 98%.
    expect(at.length).toBeGreaterThanOrEqual(Math.ceil(perMinute * 0.98));
    // And while only the per-second limit bound (the first second), it was used to at least 98%.
    expect(busiestWindow(at, 1000)).toBeGreaterThanOrEqual(Math.ceil(perSecond * 0.98));

    // No leak: every request refused by the per-minute limit left the per-second limit untouched,
    // so what the per-second limit holds is exactly the grants of the last second.
    const client = server.client();
    const store = redisStore({ client, prefix });
    const policy = compilePolicy(CONTENTION_POLICY);
    const reading = await store.read('9:contended:shared', policy, 0);
    const lastSecond = at.filter((t) => t > reading.at - 1000).length;
    expect(reading.limits[0]!.remaining).toBe(perSecond - lastSecond);
    expect(reading.limits[1]!.remaining).toBe(perMinute - at.length);
    await store.close();
  }, 60_000);
});
