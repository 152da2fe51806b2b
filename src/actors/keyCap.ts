/**
 * KeyCap is a limiter's `maxKeys`: the keys it keeps in this process, least recently used first,
 * and what a new key does when there are `maxKeys` of them already (`onMaxKeys`).
 *
 * A key counts from its first call until it holds nothing here any more: the system's sweep
 * forgets a key with no live actor whose state the store no longer keeps (back at full capacity).
 * So the count is never below the keys actually kept, and never above `maxKeys`.
 *
 * Making room looks at the least recently used keys, at most {@link SCAN} of them: a key with
 * nothing kept is forgotten (nothing is lost); under `'evict-lru'` a key with only charges is
 * forgotten too, which resets it (the system tells with a `forgotten` event). A key holding work
 * is passed over and goes to the back, as if used now: it is in use, and the next search starts
 * past it, so a new key is not charged a scan of the same busy keys again. When none of those
 * looked at can go, the new key is refused with TooManyKeysError. The bound keeps a refusal
 * O(1) under a flood of new keys; the compromise is that a key that could go, further back than
 * {@link SCAN} busy keys, is not found by that call.
 */
import { TooManyKeysError } from '../errors.js';
import type { Ms } from '../limiter/types.js';

/** The most least-recently-used keys one call looks at to make room. */
export const SCAN = 16;

/**
 * What a key holds in this process: `'work'` (a waiter, a call in flight with a slot, a pause:
 * never forgotten), `'charges'` (units booked: forgetting them resets the key) or `'blank'`
 * (nothing: forgetting it loses nothing).
 */
export type Holding = 'work' | 'charges' | 'blank';

/** What a cap needs from its system to make room. */
export interface CapHost {
  /** What `key` holds now. */
  holding(key: string, now: Ms): Holding;
  /** Forgets `key`, which holds `holding` (never `'work'`): stops its actor, drops its state. */
  drop(key: string, holding: Holding, now: Ms): void;
}

/** KeyCap: see the file comment. */
export class KeyCap {
  /** The keys counted, least recently used first (a Set keeps insertion order). */
  readonly #keys = new Set<string>();
  /** The key used last: using it again needs no move. */
  #last: string | undefined = undefined;

  constructor(
    readonly limiter: string,
    /** The most keys kept; at least 1. */
    readonly max: number,
    readonly onMax: 'refuse' | 'evict-lru',
  ) {}

  /** The number of keys counted. */
  get size(): number {
    return this.#keys.size;
  }

  /** The keys counted, least recently used first. */
  keys(): IterableIterator<string> {
    return this.#keys.values();
  }

  /** touch marks a counted `key` as used now. */
  touch(key: string): void {
    if (key === this.#last) return;
    if (this.#keys.delete(key)) this.#keys.add(key);
    this.#last = key;
  }

  /**
   * use counts `key` as used now; a key not counted yet is admitted, making room first when
   * `max` keys are counted.
   *
   * @throws TooManyKeysError when no room can be made: nothing changed for `key`.
   */
  use(key: string, host: CapHost, now: Ms): void {
    if (this.#keys.has(key)) {
      this.touch(key);
      return;
    }
    if (this.#keys.size >= this.max) this.#makeRoom(key, host, now);
    this.#keys.add(key);
    this.#last = key;
  }

  /** forget stops counting `key` (it holds nothing in this process any more). */
  forget(key: string): void {
    this.#keys.delete(key);
    if (this.#last === key) this.#last = undefined;
  }

  #makeRoom(key: string, host: CapHost, now: Ms): void {
    const keys = this.#keys;
    for (let i = Math.min(keys.size, SCAN); i > 0; i--) {
      const oldest = keys.values().next().value as string;
      const holding = host.holding(oldest, now);
      if (holding === 'blank' || (holding === 'charges' && this.onMax === 'evict-lru')) {
        this.forget(oldest);
        host.drop(oldest, holding, now);
        return;
      }
      keys.delete(oldest); // held: passed over, to the back
      keys.add(oldest);
      this.#last = oldest;
    }
    throw new TooManyKeysError(this.limiter, key, this.max, this.onMax);
  }
}
