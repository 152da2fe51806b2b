/**
 * How the Redis store tells that Redis lost its data: the marker generations each group (cluster
 * slot; 0 on a single Redis) answered, and who hears of a loss (`RedisStore.onDataLost`).
 */
import type { Ms } from '../limiter/types.js';
import type { StoreDataLoss } from '../store.js';

/** LossWatch follows the marker generations the scripts answer, and tells listeners of losses. */
export class LossWatch {
  /** Whether groups are cluster slots (they are named in losses) or the one group of a Redis. */
  readonly #cluster: boolean;
  readonly #listeners = new Set<(loss: StoreDataLoss) => void>();
  /**
   * The latest generation of the marker (Redis TIME in µs when it was made) each group answered:
   * a later one means the marker was made anew since, so the data of before is gone.
   */
  readonly #generations = new Map<number, number>();

  constructor(cluster: boolean) {
    this.#cluster = cluster;
  }

  /**
   * notice takes the marker's generation (`'#'` and µs) that a call on `group` answered: a later
   * one than the group answered before means its data was lost since ('flushed'). An earlier one
   * is an answer sent before the loss that arrives after a later one (a settle's answer takes
   * more promise hops than a decision's): it tells nothing. So does a group's first answer: a
   * marker made by that call may be the first ever. Compromise: a marker made anew while the
   * Redis host's clock is stepped back before the old one was made goes unnoticed by the stores
   * that saw the old one.
   */
  notice(group: number, answered: string, now: Ms): void {
    const gen = Number(answered.slice(1));
    const seen = this.#generations.get(group);
    if (seen !== undefined && gen <= seen) return;
    this.#generations.set(group, gen);
    if (seen !== undefined) this.lost('flushed', [], group, now);
  }

  /** lost tells every listener of a loss in `group`; a listener's failure is its own. */
  lost(reason: StoreDataLoss['reason'], keys: string[], group: number, now: Ms): void {
    const loss: StoreDataLoss = { reason, keys, slot: this.#cluster ? group : null, at: now };
    for (const listener of this.#listeners) {
      try {
        listener(loss);
      } catch {
        // The others still hear.
      }
    }
  }

  /** listen adds `listener`; the function returned removes it. */
  listen(listener: (loss: StoreDataLoss) => void): () => void {
    const own = (loss: StoreDataLoss): void => listener(loss);
    this.#listeners.add(own);
    return () => void this.#listeners.delete(own);
  }
}
