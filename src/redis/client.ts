/**
 * The ioredis client the Redis store runs on: a `Redis` or a `Cluster`, from ioredis 5 or 6. Types
 * only (ioredis is an optional peer dependency): the store never constructs a client, it is given
 * one.
 *
 * ioredis 6 makes both classes generic in their reply mapping and types their `duplicate` apart
 * (a Redis takes override options, a Cluster startup nodes and options), so a method called on
 * the union does not type-check; {@link duplicateOf} narrows first. The store's scripts return
 * only arrays of integers and strings, which every protocol and reply mapping (RESP2, RESP3
 * `'legacy'`, RESP3 `'resp3'`) hands back alike, so a client of any of them is accepted as it is.
 */
import type { Cluster, Redis } from 'ioredis';

/** RedisClient is what the store accepts: an ioredis `Redis` or `Cluster`. */
export type RedisClient = Redis | Cluster;

/** isCluster tells a `Cluster` from a single `Redis` (by ioredis' own `isCluster` flag). */
export function isCluster(client: RedisClient): client is Cluster {
  return client.isCluster === true;
}

/**
 * duplicateOf opens a new connection with the options of `client` (its protocol and reply
 * mapping too), for pub/sub: a subscribed connection takes no other commands under RESP2. A
 * single Redis connection is opened without ioredis' own resubscription, whose SUBSCRIBE after a
 * reconnect has no rejection handler: closed before it answered (a store closed just after Redis
 * came back), it was an unhandled rejection, which ends a Node process. The store subscribes
 * again itself on every `ready` (see RedisStore.watch).
 */
export function duplicateOf(client: RedisClient): RedisClient {
  return isCluster(client) ? client.duplicate() : client.duplicate({ autoResubscribe: false });
}

/** Whether {@link duplicateOf} left resubscribing to the caller (a single Redis). */
export function resubscribesItself(sub: RedisClient): boolean {
  return !isCluster(sub);
}
