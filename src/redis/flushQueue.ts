/**
 * The order of the Redis store's calls. Every call of the store (decisions, settles, releases,
 * resets, reads, pauses) waits for the same flush, a microtask queued by the first of them, and
 * the flush sends each key's calls in the order the runtime made them, so Redis applies a key's
 * operations in the runtime's order, as the memory store does. Decisions of one cluster slot go
 * together, in one `decide.lua` call (sent by the store: see {@link FlushQueue}).
 */
import { StoreUnavailableError } from '../errors.js';
import type { Ms, Policy } from '../limiter/types.js';
import type { BatchMode, StoreDecision, StoreRequest } from '../store.js';
import type { KeyPlace } from './keyPlace.js';

/** The most keys one `decide.lua` call decides (Redis runs a script to completion, alone). */
export const MAX_KEYS_PER_CALL = 64;

/**
 * The most work one `decide.lua` call carries, in the units of {@link workOf} (about µs of Redis
 * time): Redis blocks every client while a script runs, so a flush with more is sent as several
 * calls, pipelined on the same connection. One key's batch is never split: a single key over the
 * budget goes alone.
 */
export const MAX_WORK_PER_CALL = 640;

/**
 * workOf estimates the Redis time of one key's decision, in about µs, from the bench's script
 * cost suite (3 limits on a 2-core machine): ~16 per key (its state read and written), ~1 per
 * request and limit, ~6 more per concurrency slot (a ZADD).
 */
export function workOf(policy: Policy, batch: readonly StoreRequest[]): number {
  let work = 16;
  const perRequest = policy.limits.length;
  for (const r of batch) work += r.slot ? perRequest + 6 : perRequest;
  return work;
}

/** The kinds of {@link Queued}. */
const DECIDE = 0;
const OTHER = 1;

/** Pending is one key's decision waiting for the next script call. */
export interface Pending {
  readonly kind: typeof DECIDE;
  readonly place: KeyPlace;
  readonly policy: Policy;
  readonly batch: readonly StoreRequest[];
  readonly mode: BatchMode;
  readonly now: Ms;
  resolve(decisions: StoreDecision[]): void;
  reject(error: unknown): void;
}

/** Any other call on one key waiting for the flush; `send` issues it. */
interface KeyOp {
  readonly kind: typeof OTHER;
  readonly key: string;
  send(): Promise<unknown>;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** What waits for the next flush, in the order it was asked for. */
type Queued = Pending | KeyOp;

/** A decide call being built by a flush, and the calls that must follow it. */
interface Batch {
  readonly entries: Pending[];
  /** The {@link workOf} of `entries`. */
  work: number;
  /** Calls on keys of `entries`, made after their decisions: sent right after the batch. */
  readonly after: KeyOp[];
  /** Whether the batch was sent: later calls of its keys go at once. */
  sent: boolean;
}

/**
 * FlushQueue holds the calls of one store asked for since the last flush, and sends them at the
 * flush (see {@link FlushQueue.flush}). `sendDecisions` sends one `decide.lua` call for the
 * decisions it is given (keys of one cluster slot, at most {@link MAX_KEYS_PER_CALL}) and answers
 * each; it must issue the call before it returns, or the order of a key's calls is lost.
 */
export class FlushQueue {
  /** Every call asked for since the last flush, in the order asked (see {@link flush}). */
  #queue: Queued[] = [];
  /** How many of {@link #queue} are not decisions (a flush of decisions alone skips their bookkeeping). */
  #others = 0;
  #flushScheduled = false;
  readonly #sendDecisions: (entries: Pending[]) => void;

  constructor(sendDecisions: (entries: Pending[]) => void) {
    this.#sendDecisions = sendDecisions;
  }

  /** length is how many calls wait for the next flush. */
  get length(): number {
    return this.#queue.length;
  }

  /** queueDecision queues the decision of a batch of the key at `place` for the next flush. */
  queueDecision(
    place: KeyPlace,
    policy: Policy,
    batch: readonly StoreRequest[],
    mode: BatchMode,
    now: Ms,
    resolve: (decisions: StoreDecision[]) => void,
    reject: (error: unknown) => void,
  ): void {
    this.#queue.push({ kind: DECIDE, place, policy, batch, mode, now, resolve, reject });
    this.#schedule();
  }

  /**
   * enqueue queues a call on `key` other than a decision for the next flush, and answers with
   * what `send` (which issues the call when the flush runs it) answers.
   */
  enqueue<T>(key: string, send: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const op: KeyOp = {
        kind: OTHER,
        key,
        send,
        resolve: resolve as (value: unknown) => void,
        reject,
      };
      this.#queue.push(op);
      this.#others++;
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // A microtask, not setImmediate: the callers an answer wakes ask again in its promise
    // callbacks, and their requests leave as soon as that answer is handled, while Redis runs
    // the calls sent before. With setImmediate, the answers that arrived together (and their
    // callers' next requests) merged into one call per turn of the event loop. Measured with
    // the bench's workload: ~1.1 other calls in flight at each send with setImmediate (~44
    // grants per call), ~2.4 with a microtask (~24 per call), and about 10% more grants/s.
    queueMicrotask(() => this.flush());
  }

  /**
   * flush sends everything queued since the last flush, so that each key's calls reach Redis in
   * the order they were made. One connection (per cluster node, and a key's calls all go to its
   * slot's node) runs commands in the order they are written, and each call is written when it
   * is issued, so issuing in the right order is enough:
   * - decisions go into one `decide.lua` call per cluster slot, up to {@link MAX_KEYS_PER_CALL}
   *   keys (the batch being built; a full one is sent and another begun);
   * - any other call on a key that has a decision in the batch being built is sent right after
   *   that batch; any other call (its key has none there) is sent at once, which is after every
   *   earlier call of its key.
   * So a decision is never split from its batch for another key's call. With `closing`, the
   * decisions are refused (a closed store grants nothing) and the other calls still sent.
   *
   * Compromise: after SCRIPT FLUSH, ioredis sends a script again as EVAL when Redis answers
   * NOSCRIPT, behind whatever was written meanwhile; a key's calls made in that window may run
   * out of order once. A reset or restart of Redis loses the keys anyway.
   */
  flush(closing = false): void {
    this.#flushScheduled = false;
    // A new array per flush: the next flush's queue must not keep what this one handled alive.
    const queue = this.#queue;
    const others = this.#others;
    this.#queue = [];
    this.#others = 0;
    // A new Map per flush, not clear(): V8 links a cleared Map's table to its successor (for live
    // iterators), so once one table was promoted to the old generation (a full GC while requests
    // were pending is enough), each dead table kept the next one, and every request it held, alive
    // through minor GCs. Measured with a throwaway driver calling decide directly (the bench's
    // keys and callers) after a full GC: ~500 MB promoted per 10 s and ~8.6 µs of Node CPU per
    // grant with clear(); ~140 MB and ~4 µs with a new Map.
    const open = new Map<number, Batch>();
    // Which batch each key's decision is in: needed only when other calls are queued too.
    const batchOf = others > 0 ? new Map<string, Batch>() : undefined;
    for (const q of queue) {
      if (q.kind === DECIDE) {
        if (closing) {
          q.reject(new StoreUnavailableError('the redis store is closed'));
          continue;
        }
        const group = q.place.group;
        let b = open.get(group);
        // A second decision of one key in a batch (never from the runtime, which has one in
        // flight per key) goes in the next batch when a call of that key waits between them.
        const split =
          b !== undefined && batchOf?.get(q.place.key) === b && waitsFor(b, q.place.key);
        const work = workOf(q.policy, q.batch);
        if (
          b === undefined ||
          b.entries.length === MAX_KEYS_PER_CALL ||
          (b.work + work > MAX_WORK_PER_CALL && b.entries.length > 0) ||
          split
        ) {
          if (b !== undefined) this.#sendBatch(b);
          b = { entries: [], work: 0, after: [], sent: false };
          open.set(group, b);
        }
        b.entries.push(q);
        b.work += work;
        batchOf?.set(q.place.key, b);
      } else {
        const b = batchOf?.get(q.key);
        if (b !== undefined && !b.sent) b.after.push(q);
        else sendOp(q);
      }
    }
    for (const b of open.values()) this.#sendBatch(b);
  }

  /** Sends a batch of decisions, then the calls that wait for it. */
  #sendBatch(b: Batch): void {
    b.sent = true;
    this.#sendDecisions(b.entries);
    for (const op of b.after) sendOp(op);
  }
}

/** Whether a call of `key` waits for batch `b`. */
function waitsFor(b: Batch, key: string): boolean {
  for (const op of b.after) if (op.key === key) return true;
  return false;
}

/** Sends a queued call other than a decision, and answers it with the call's outcome. */
function sendOp(op: KeyOp): void {
  op.send().then(op.resolve, op.reject);
}
