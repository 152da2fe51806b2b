/**
 * tollgate/redis: the Redis store. A separate entry point, so that apps that never use Redis do
 * not need ioredis (an optional peer dependency).
 */
export { redisStore, RedisStore } from './redisStore.js';
export type { RedisStoreOptions, UnavailablePolicy } from './redisStoreOptions.js';
export { hashTag, keyNames, markerName } from './keys.js';
export type { RedisKeyNames } from './keys.js';
