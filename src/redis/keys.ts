/**
 * How a tollgate key becomes Redis key names. Every Redis key of one tollgate key carries the same
 * hash tag, so Redis Cluster puts them in one slot and one script can touch them all.
 *
 * Keys are opaque strings: `{`, `}`, `:`, newlines and the empty string are all fine. Inside the
 * tag, `%` and `}` are escaped (`%25`, `%7D`), which is injective (two keys never share names) and
 * keeps the tag closed where we close it. The tag starts with `k`, so it is never empty (an empty
 * tag `{}` would make Redis hash the whole name, and split a key's names over two slots). The
 * prefix may not contain `{` or `}`, so no key can move its tag into the prefix or escape it.
 */
import calculateSlot from 'cluster-key-slot';
import { InvalidArgumentError } from '../errors.js';

/** The names of one tollgate key's Redis keys. */
export interface RedisKeyNames {
  /** The packed state string: the limits' states and the instant a pause ends (see lua/keyState.lua). */
  readonly state: string;
  /** The sorted set of concurrency slots (grant id → lease end). */
  readonly slots: string;
}

/** checkPrefix throws unless `prefix` is a string without `{` or `}`. */
export function checkPrefix(prefix: unknown): string {
  if (typeof prefix !== 'string' || /[{}]/.test(prefix)) {
    throw new InvalidArgumentError({
      where: 'redisStore',
      path: 'options.prefix',
      value: prefix,
      expected: "a string without '{' or '}'",
    });
  }
  return prefix;
}

/** A UTF-16 surrogate with no partner: UTF-8 has no encoding for it. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** What {@link hashTag} escapes: `%`, `}` and lone surrogates. */
const ESCAPED = new RegExp(`[%}]|${LONE_SURROGATE.source}`, 'g');

/**
 * hashTag is the tag of `key`: `{k<escaped key>}`. `%` and `}` are escaped (`%25`, `%7D`), and so
 * is a lone surrogate (`%uD800`): Redis names are bytes, and UTF-8 would write every lone
 * surrogate as the same U+FFFD, so two such keys would share one state (#12).
 */
export function hashTag(key: string): string {
  if (!key.includes('%') && !key.includes('}') && !LONE_SURROGATE.test(key)) return `{k${key}}`;
  return `{k${key.replace(ESCAPED, escapeOne)}}`;
}

function escapeOne(c: string): string {
  if (c === '%') return '%25';
  if (c === '}') return '%7D';
  return `%u${c.charCodeAt(0).toString(16).toUpperCase()}`;
}

/** keyNames gives the Redis key names of `key` under `prefix`. */
export function keyNames(prefix: string, key: string): RedisKeyNames {
  const base = prefix + hashTag(key);
  // ':v3': the state's layout (lua/keyState.lua); a build with another layout uses another name.
  return { state: base + ':v3', slots: base + ':c' };
}

/** The pub/sub channel on which freed capacity is announced. */
export function freeChannel(prefix: string): string {
  return prefix + 'free';
}

/**
 * markerName is the name of the store's marker for the keys of cluster slot `slot` (`null`: a
 * single Redis, one marker for every key): a sorted set under `prefix` that tells the scripts
 * whether Redis lost the store's data (see lua/keyState.lua). Its hash tag, `{m…}`, hashes to
 * `slot`, so a script can touch it with the keys of that slot; no key's tag starts with `m`.
 */
export function markerName(prefix: string, slot: number | null): string {
  return `${prefix}{${slot === null ? 'm' : slotTags()[slot]}}:live`;
}

/** CLUSTER_SLOTS is the number of hash slots of a Redis Cluster. */
const CLUSTER_SLOTS = 16384;

let tags: string[] | undefined;

/**
 * slotTags gives, per cluster slot, the shortest tag `m<base 36>` that hashes to it: found once by
 * trying `m0`, `m1`, … (about 170,000 CRC16s, some 30 ms) when a Cluster first needs one.
 */
function slotTags(): string[] {
  if (tags !== undefined) return tags;
  const found = new Array<string>(CLUSTER_SLOTS);
  let left = CLUSTER_SLOTS;
  for (let i = 0; left > 0; i++) {
    const tag = `m${i.toString(36)}`;
    const slot = calculateSlot(tag);
    if (found[slot] === undefined) {
      found[slot] = tag;
      left--;
    }
  }
  return (tags = found);
}
