/**
 * StatsTable: the latest reading of every live key of one limiter and their sums, kept by adding
 * each key's change, with the keys in buckets of fill so that the fullest are found without a
 * scan (#16). The whole-limiter streams of limiterStats.ts keep one per subscription.
 */
import type { Ms } from '../limiter/types.js';
import type { LimiterStats } from './limiterStats.js';
import type { KeyStats } from './stats.js';

/** Buckets of fill: per mille. */
const BUCKETS = 1000;
/** A live key's last reading, with what it adds to the totals. */
interface Row {
  stats: KeyStats;
  /** Its bucket of fill, per mille (see {@link fillOf}). */
  bucket: number;
}

/**
 * StatsTable is the latest reading of every live key of one limiter, and their sums, kept by
 * adding each key's change.
 */
export class StatsTable {
  readonly #rows = new Map<string, Row>();
  /** Keys by fill, per mille: `#buckets[b]` holds the keys whose fill is in [b, b + 1) ‰. */
  readonly #buckets: Set<string>[] = Array.from({ length: BUCKETS + 1 }, () => new Set());
  #queued = 0;
  #inFlight = 0;
  /** The limits of the policy in force, as the source gave them: a row read under another is out of the sums. */
  #policy: readonly { readonly name: string; readonly dimension: string }[] = [];
  /** Per limit of `#policy`: its name, dimension and sum of use over the rows read under it. */
  #limits: { name: string; dimension: string; used: number }[] = [];
  #appeared: string[] = [];
  #evicted: string[] = [];
  /** Whether the first emission went out (it lists no key as appeared). */
  #started = false;

  get size(): number {
    return this.#rows.size;
  }

  has(key: string): boolean {
    return this.#rows.has(key);
  }

  /**
   * usePolicy sets the limits in force (the limiter's policy); returns whether they changed, and
   * then the sums are of the rows read under them only, until the others are read again.
   */
  usePolicy(limits: readonly { readonly name: string; readonly dimension: string }[]): boolean {
    if (limits === this.#policy) return false;
    this.#policy = limits;
    this.#limits = limits.map((l) => ({ name: l.name, dimension: l.dimension, used: 0 }));
    for (const row of this.#rows.values()) {
      if (this.#current(row.stats)) this.#addUse(row.stats, 1);
    }
    return true;
  }

  /** set records `stats` as the latest reading of its key. */
  set(stats: KeyStats): void {
    const old = this.#rows.get(stats.key);
    if (old !== undefined) this.#remove(old);
    else if (this.#started) this.#appeared.push(stats.key);
    const row: Row = { stats, bucket: Math.min(BUCKETS, Math.floor(fillOf(stats) * BUCKETS)) };
    this.#add(row);
    this.#rows.set(stats.key, row);
  }

  /** delete forgets `key`, evicted. */
  delete(key: string): void {
    const old = this.#rows.get(key);
    if (old === undefined) return;
    this.#remove(old);
    this.#rows.delete(key);
    this.#evicted.push(key);
  }

  /**
   * emit gives the sums and the `top` fullest keys, and starts the next lists of changes.
   */
  emit(limiter: string, at: Ms, top: number): LimiterStats {
    const limits = this.#limits.map((l) => ({ ...l }));
    const out: LimiterStats = {
      limiter,
      at,
      keys: this.#rows.size,
      queued: this.#queued,
      inFlight: this.#inFlight,
      limits,
      top: this.#top(top),
      appeared: this.#appeared,
      evicted: this.#evicted,
    };
    this.#appeared = [];
    this.#evicted = [];
    this.#started = true;
    return out;
  }

  /** The `n` fullest keys: whole buckets from the fullest down, the last one cut short. */
  #top(n: number): KeyStats[] {
    const out: KeyStats[] = [];
    for (let b = BUCKETS; b >= 0 && out.length < n; b--) {
      const bucket = this.#buckets[b]!;
      if (bucket.size === 0) continue; // most are: no iterator for them
      for (const key of bucket) {
        out.push(this.#rows.get(key)!.stats);
        if (out.length === n) break;
      }
    }
    return out;
  }

  #add(row: Row): void {
    const { stats } = row;
    this.#queued += stats.queued;
    this.#inFlight += stats.inFlight;
    if (this.#current(stats)) this.#addUse(stats, 1);
    this.#buckets[row.bucket]!.add(stats.key);
  }

  #remove(row: Row): void {
    const { stats } = row;
    this.#queued -= stats.queued;
    this.#inFlight -= stats.inFlight;
    if (this.#current(stats)) this.#addUse(stats, -1);
    this.#buckets[row.bucket]!.delete(stats.key);
  }

  /** Adds (`sign` 1) or takes away (-1) what `stats` uses of each limit. */
  #addUse(stats: KeyStats, sign: 1 | -1): void {
    stats.limits.forEach((l, i) => (this.#limits[i]!.used += sign * (l.capacity - l.remaining)));
  }

  /** Whether `stats` was read under the limits in force (same names, same order). */
  #current(stats: KeyStats): boolean {
    const limits = this.#policy;
    return (
      limits.length === stats.limits.length &&
      stats.limits.every((l, i) => l.name === limits[i]!.name)
    );
  }
}

/** A key's fill: the highest used / capacity of its limits; 0 for a key with no limit. */
function fillOf(stats: KeyStats): number {
  let fill = 0;
  for (const l of stats.limits) {
    if (l.capacity > 0) fill = Math.max(fill, (l.capacity - l.remaining) / l.capacity);
  }
  return Math.min(1, Math.max(0, fill));
}
