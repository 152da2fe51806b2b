/**
 * The Redis suite: a placeholder. The Redis benchmark (tollgate's Redis store against
 * rate-limiter-flexible's RateLimiterRedis, same-run ratios) replaces `run` below; it keeps the
 * section title "Redis" and can reuse the drivers of `workloads.ts` and the formats of `report.ts`,
 * and return its targets (they join the Targets table).
 */
import type { Section, Suite } from './report.js';

export const REDIS_PLACEHOLDER =
  '_Filled by the Redis benchmark (`bench/redis.ts`), which another engineer adds; no Redis numbers in this run._';

export const redisSuite: Suite = {
  name: 'redis',
  run: async (): Promise<Section> => ({ title: 'Redis', blocks: [{ text: REDIS_PLACEHOLDER }] }),
};
