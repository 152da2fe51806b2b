/**
 * Where a key lives in Redis: its Redis names and the cluster slot they hash to. The Redis store
 * finds them once per key and keeps them in the key actor's cache slot ({@link KeyCache}), so that
 * a decision costs no new strings, no new object and, on a Cluster, no CRC16.
 */
import calculateSlot from 'cluster-key-slot';
import type { KeyCache } from '../store.js';
import { keyNames, markerName, type RedisKeyNames } from './keys.js';

/** KeyPlace is where a key lives in Redis, for the Redis store (kept in the key's KeyCache). */
export class KeyPlace {
  constructor(
    /** The store that found it: a cache slot that holds another store's place is not used. */
    readonly owner: object,
    readonly key: string,
    readonly names: RedisKeyNames,
    /** The cluster slot of its names (0 on a single Redis: one group). */
    readonly group: number,
    /** The name of the store's marker for its slot (see {@link markerName}). */
    readonly marker: string,
  ) {}
}

/**
 * placeOf gives the place of `key` for the store `owner`, whose keys take `prefix` and live on a
 * Cluster when `cluster`: the place kept in `cache` when it is `owner`'s place of `key`, else a
 * new one, then kept in `cache` (when there is one).
 */
export function placeOf(
  owner: object,
  prefix: string,
  cluster: boolean,
  key: string,
  cache: KeyCache | undefined,
): KeyPlace {
  const held = cache?.storeEntry;
  if (held instanceof KeyPlace && held.owner === owner && held.key === key) return held;
  const names = keyNames(prefix, key);
  const slot = cluster ? calculateSlot(names.state) : null;
  const place = new KeyPlace(owner, key, names, slot ?? 0, markerName(prefix, slot));
  if (cache !== undefined) cache.storeEntry = place;
  return place;
}
