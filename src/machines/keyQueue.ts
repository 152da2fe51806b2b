/**
 * KeyQueue holds the waiters of one key in service order: higher priority first, then arrival.
 * Every operation a key does per event is O(log n) or better in the queue's length:
 *
 * - insert: appended to its priority's level (one array per distinct priority, usually one);
 *   O(1), plus O(p) to place a new priority among the p levels in use.
 * - head, take(n): the first live waiters, from each level's head index: O(n) for n waiters.
 * - remove (granted, aborted, timed out, failed): the waiter is marked out and skipped when the
 *   level's head reaches it, so removal is O(1); a level or the deadline heap is compacted once
 *   more than half of it is dead, which keeps the memory bounded and the cost amortised O(1).
 * - deadlines: a binary heap of the waiters that have one, earliest first: the next deadline is
 *   O(1), expiring k waiters O(k log n).
 *
 * For 1,000 waiters on one key the old array queue cost ~35 µs per grant (a scan for deadlines,
 * a scan for the timer and an array shift at each event); see the "waiters on one key" bench.
 *
 * The queue alone sets `Waiter.queued`; a waiter must leave through {@link KeyQueue.remove}
 * before it ends, so that `size` stays exact.
 */
import type { Ms } from '../limiter/types.js';
import type { Waiter } from './waiter.js';

/** A level or heap is compacted when it has at least this many dead entries, and more than live. */
const COMPACT_MIN = 32;

/** The waiters of one priority, in arrival order; `items[head..]` are the ones not yet passed. */
interface Level<G> {
  readonly priority: number;
  items: (Waiter<G> | undefined)[];
  /** Index of the first entry not yet passed (entries before it are gone). */
  head: number;
  /** Entries at or after `head` that left the queue (skipped when reached). */
  dead: number;
}

/** KeyQueue: see the file comment. */
export class KeyQueue<G> {
  /** Levels in service order: highest priority first. */
  #levels: Level<G>[] = [];
  /** Waiters with a deadline, earliest first (may hold waiters that left: skipped at the top). */
  #deadlines: Waiter<G>[] = [];
  /** Entries of `#deadlines` whose waiter left the queue. */
  #deadDeadlines = 0;
  /** Live waiters in the queue. */
  #size = 0;
  /**
   * Queued waiters decided once (tries, timeout 0): only an async store queues them, while it
   * decides. Null until the first: most keys never have one (a key actor is made per key).
   */
  tries: Set<Waiter<G>> | null = null;

  /** The number of waiters in the queue. */
  get size(): number {
    return this.#size;
  }

  /**
   * @internal what the queue keeps, dead entries included, for the test of its memory bound:
   * entries in its levels, levels, and entries in its deadline heap.
   */
  retained(): { entries: number; levels: number; heap: number } {
    let entries = 0;
    for (const level of this.#levels) entries += level.items.length;
    return { entries, levels: this.#levels.length, heap: this.#deadlines.length };
  }

  /** insert puts `w` at its place: behind every waiter of its priority or higher. */
  insert(w: Waiter<G>): void {
    const level = this.#level(w.priority);
    level.items.push(w);
    w.queued = true;
    this.#size++;
    if (w.once) (this.tries ??= new Set()).add(w);
    // Stryker disable next-line ConditionalExpression: a waiter without a deadline on the heap never expires and never tops a live one
    if (w.deadline !== Infinity) heapPush(this.#deadlines, w);
  }

  /** remove takes `w` out of the queue (it is skipped later). Does nothing if it is not queued. */
  remove(w: Waiter<G>): void {
    if (!w.queued) return;
    this.#leave(w);
    // Stryker disable next-line ConditionalExpression,EqualityOperator,UpdateOperator: compaction and dead counts only bound memory; head, take, the iterator and the heap skip waiters that left
    if (w.deadline !== Infinity) this.#deadDeadlines++;
    this.#compactDeadlines();
  }

  /** Takes `w` out of its level (not the deadline heap's count: the callers do that). */
  #leave(w: Waiter<G>): void {
    w.queued = false;
    this.#size--;
    // Stryker disable next-line ConditionalExpression: deleting a waiter that is not in the set changes nothing
    if (w.once) this.tries?.delete(w);
    // Stryker disable next-line all: compaction and dead counts only bound memory; head, take, the iterator and the heap skip waiters that left
    const i = this.#indexOf(w.priority);
    // Stryker disable next-line all: compaction and dead counts only bound memory; head, take, the iterator and the heap skip waiters that left (a queued waiter's level always exists)
    if (i < 0) return;
    const level = this.#levels[i]!;
    // Stryker disable next-line UpdateOperator: compaction and dead counts only bound memory; head, take, the iterator and the heap skip waiters that left
    level.dead++;
    this.#trim(i);
  }

  // Stryker disable all: compaction and dead counts only bound memory; head, take, the iterator and the heap skip waiters that left
  #compactDeadlines(): void {
    if (this.#deadDeadlines >= COMPACT_MIN && this.#deadDeadlines * 2 > this.#deadlines.length) {
      this.#deadlines = heapify(this.#deadlines.filter((x) => x.queued));
      this.#deadDeadlines = 0;
    }
  }
  // Stryker restore all

  /** head is the first waiter in service order, or undefined when the queue is empty. */
  head(): Waiter<G> | undefined {
    // Stryker disable next-line ConditionalExpression: a shortcut: an empty queue has no queued waiter to find
    if (this.#size === 0) return undefined;
    for (const level of this.#levels) {
      const { items } = level;
      // Stryker disable next-line EqualityOperator,UpdateOperator: items[length] is undefined, skipped below; and a level's head is a queued waiter, so the loop returns at its first step
      for (let i = level.head; i < items.length; i++) {
        const w = items[i];
        // Stryker disable next-line ConditionalExpression: a level's head is always a queued waiter (trimmed on every removal)
        if (w !== undefined && w.queued) return w;
      }
    }
    return undefined;
  }

  /** take returns the first `n` waiters in service order (they stay queued). */
  take(n: number): Waiter<G>[] {
    const out: Waiter<G>[] = [];
    for (const level of this.#levels) {
      const { items } = level;
      // Stryker disable next-line EqualityOperator: items[length] is undefined, skipped below
      for (let i = level.head; i < items.length && out.length < n; i++) {
        const w = items[i];
        if (w !== undefined && w.queued) out.push(w);
      }
      // Stryker disable next-line ConditionalExpression,EqualityOperator: a shortcut: the loop above adds nothing once n are taken
      if (out.length >= n) break;
    }
    return out;
  }

  /** Every waiter in service order (O(n): for close, a policy change, an estimate). */
  *[Symbol.iterator](): IterableIterator<Waiter<G>> {
    for (const level of this.#levels) {
      const { items } = level;
      // Stryker disable next-line EqualityOperator: items[length] is undefined, skipped below
      for (let i = level.head; i < items.length; i++) {
        const w = items[i];
        if (w !== undefined && w.queued) yield w;
      }
    }
  }

  /** The earliest deadline of a queued waiter; Infinity when none has one. */
  nextDeadline(): Ms {
    const heap = this.#deadlines;
    while (heap.length > 0 && !heap[0]!.queued) {
      heapPop(heap);
      // Stryker disable next-line UpdateOperator: compaction and dead counts only bound memory; head, take, the iterator and the heap skip waiters that left
      this.#deadDeadlines--;
    }
    return heap.length > 0 ? heap[0]!.deadline : Infinity;
  }

  /**
   * expired takes out of the queue and returns every waiter whose deadline is at or before `now`,
   * earliest first.
   */
  expired(now: Ms): Waiter<G>[] | null {
    let out: Waiter<G>[] | null = null;
    while (this.nextDeadline() <= now) {
      const w = heapPop(this.#deadlines)!; // live: nextDeadline popped the dead ones
      this.#leave(w);
      (out ??= []).push(w);
    }
    return out;
  }

  /** clear empties the queue and returns what it held, in service order. */
  clear(): Waiter<G>[] {
    const all = [...this];
    for (const w of all) w.queued = false;
    this.#levels = [];
    this.#deadlines = [];
    this.#deadDeadlines = 0;
    this.#size = 0;
    this.tries = null;
    return all;
  }

  /** The level of `priority`, created at its place if new. */
  #level(priority: number): Level<G> {
    const levels = this.#levels;
    let i = 0;
    // Stryker disable next-line EqualityOperator: a second level of the same priority, placed after the first, keeps arrival order
    while (i < levels.length && levels[i]!.priority > priority) i++;
    const found = levels[i];
    if (found !== undefined && found.priority === priority) return found;
    const level: Level<G> = { priority, items: [], head: 0, dead: 0 };
    levels.splice(i, 0, level);
    return level;
  }

  // Stryker disable all: compaction and dead counts only bound memory; head, take, the iterator and the heap skip waiters that left
  #indexOf(priority: number): number {
    const levels = this.#levels;
    for (let i = 0; i < levels.length; i++) if (levels[i]!.priority === priority) return i;
    return -1;
  }

  /**
   * Passes the dead entries at the head of level `i`, drops the level once empty, and compacts
   * it when mostly passed or mostly dead.
   */
  #trim(i: number): void {
    const level = this.#levels[i]!;
    const { items } = level;
    while (level.head < items.length && !items[level.head]!.queued) {
      items[level.head++] = undefined;
      level.dead--;
    }
    if (level.head === items.length) {
      this.#levels.splice(i, 1);
      return;
    }
    const live = items.length - level.head - level.dead;
    if (level.dead >= COMPACT_MIN && level.dead > live) {
      level.items = items.filter((w, j) => j >= level.head && w !== undefined && w.queued);
      level.head = 0;
      level.dead = 0;
    } else if (level.head >= COMPACT_MIN && level.head > live) {
      level.items = items.slice(level.head);
      level.head = 0;
    }
  }
  // Stryker restore all
}

// A binary min-heap of waiters by deadline, ties by arrival.

function before<G>(a: Waiter<G>, b: Waiter<G>): boolean {
  return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
}

function heapPush<G>(heap: Waiter<G>[], w: Waiter<G>): void {
  heap.push(w);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!before(heap[i]!, heap[parent]!)) break;
    [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
    i = parent;
  }
}

function heapPop<G>(heap: Waiter<G>[]): Waiter<G> | undefined {
  const top = heap[0];
  const last = heap.pop();
  if (heap.length > 0 && last !== undefined) {
    heap[0] = last;
    siftDown(heap, 0);
  }
  return top;
}

function siftDown<G>(heap: Waiter<G>[], i: number): void {
  const n = heap.length;
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let m = i;
    if (l < n && before(heap[l]!, heap[m]!)) m = l;
    if (r < n && before(heap[r]!, heap[m]!)) m = r;
    if (m === i) return;
    [heap[i], heap[m]] = [heap[m]!, heap[i]!];
    i = m;
  }
}

function heapify<G>(items: Waiter<G>[]): Waiter<G>[] {
  // Stryker disable next-line ArithmeticOperator: starting two places further sifts leaves first, which do not move
  for (let i = (items.length >> 1) - 1; i >= 0; i--) siftDown(items, i);
  return items;
}
