/**
 * A reference model of the decision core, written to be obviously right rather than fast. It
 * shares no code with src/limiter: it reads only the numbers of a compiled policy.
 *
 * - token bucket: an explicit queue of each grant's part, front to back, in exact BigInt amounts
 *   of `tokens × interval` (so the drain, `limit` per ms, is an integer too): booking appends a
 *   part at the back, time drains the front, a refund takes from the grant's own parts (oldest
 *   first) and what is behind moves forward. What a grant still holds is the sum of its parts:
 *   that is what a refund may give back at most (the core approximates it from below);
 * - sliding window: a map from booking instant to the units still counted there, summed over
 *   (now − interval, now];
 * - fixed window: a counter per aligned window index ⌊t / interval⌋, with what a window holds
 *   above `limit` (debt from an extra charge) carried into the next ones.
 *
 * Every operation happens at `max(now, latest instant seen)`, the way the core never goes back.
 */
import type { Limit, Policy } from '../../src/limiter/types.js';

// ---------------------------------------------------------------------------------------------
// Exact rationals

/** Q is an exact rational n/d with d > 0, kept reduced. */
export interface Q {
  readonly n: bigint;
  readonly d: bigint;
}

function gcd(a: bigint, b: bigint): bigint {
  a = a < 0n ? -a : a;
  b = b < 0n ? -b : b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

export function q(n: bigint | number, d: bigint | number = 1n): Q {
  let nn = BigInt(n);
  let dd = BigInt(d);
  if (dd < 0n) [nn, dd] = [-nn, -dd];
  const g = gcd(nn, dd) || 1n;
  return { n: nn / g, d: dd / g };
}
export const add = (a: Q, b: Q): Q => q(a.n * b.d + b.n * a.d, a.d * b.d);
export const sub = (a: Q, b: Q): Q => q(a.n * b.d - b.n * a.d, a.d * b.d);
export const mul = (a: Q, b: Q): Q => q(a.n * b.n, a.d * b.d);
export const div = (a: Q, b: Q): Q => q(a.n * b.d, a.d * b.n);
export const cmp = (a: Q, b: Q): number => {
  const x = a.n * b.d - b.n * a.d;
  return x < 0n ? -1 : x > 0n ? 1 : 0;
};
export const max = (a: Q, b: Q): Q => (cmp(a, b) >= 0 ? a : b);
/** ⌊a⌋ */
export function floor(a: Q): bigint {
  const r = a.n / a.d; // truncates toward zero
  return a.n < 0n && r * a.d !== a.n ? r - 1n : r;
}
/** ⌈a⌉ */
export const ceil = (a: Q): bigint => -floor(q(-a.n, a.d));

// ---------------------------------------------------------------------------------------------
// One limit

/** What one limit of the model answers, at the instant it was last moved to. */
export interface LimitModel {
  /** Move to instant `t` (t never decreases). */
  moveTo(t: number): void;
  /** Ms from `t` until `units` fit if nothing else happens; 0 when they fit now. */
  waitMs(units: number, t: number): number;
  /** Book `units` at `t` for grant `owner`; `extra` when it is an extra charge of a settle. */
  book(units: number, t: number, owner: number, extra?: boolean): void;
  /**
   * Give back at most `units` of what grant `owner`, booked at `grantAt`, booked. A token bucket
   * gives back `back` scaled units when given (what the core gave: at most what the grant still
   * holds, checked), else all it can: min(units × interval, what the grant holds).
   */
  refund(units: number, grantAt: number, t: number, owner: number, back?: number): void;
  read(t: number): { remaining: number; resetMs: number };
  /** The core's `used` for this limit at `t`, in the core's scale (token bucket: units × interval). */
  used(t: number): number;
  /** An independent copy, to look ahead without moving this one. */
  clone(): LimitModel;
}

/** One grant's part of a token bucket: what of it is still in the bucket, in tokens × interval. */
interface Part {
  readonly owner: number;
  held: bigint;
}

/**
 * Token bucket as a queue of parts, front (drains first) to back, as of `at`. Amounts are
 * `tokens × intervalMs`, and the bucket drains `limit` of them per ms: exact integers.
 */
export class TokenBucketModel implements LimitModel {
  private queue: Part[] = [];
  private at = -Infinity;
  private readonly scale: bigint;
  private readonly rate: Q;
  private readonly capacity: Q;
  /** How many refunds gave something back so far. */
  private refunds = 0;
  /**
   * Per grant: `refunds` when it was booked, and how many of its own refunds gave something back
   * since; `extra` once it was charged extra (that part is not where its mark points).
   */
  private readonly grants = new Map<number, { since: number; own: number; extra: boolean }>();
  constructor(private readonly limit: Limit) {
    this.scale = BigInt(limit.intervalMs);
    this.rate = q(limit.limit, limit.intervalMs);
    this.capacity = q(limit.capacity);
  }
  moveTo(t: number): void {
    if (this.at !== -Infinity && t > this.at) {
      let drain = BigInt(this.limit.limit) * BigInt(t - this.at);
      while (drain > 0n && this.queue.length > 0) {
        const front = this.queue[0]!;
        if (front.held > drain) {
          front.held -= drain;
          drain = 0n;
        } else {
          drain -= front.held;
          this.queue.shift();
        }
      }
    }
    this.at = Math.max(this.at, t);
  }
  private scaled(): bigint {
    let sum = 0n;
    for (const p of this.queue) sum += p.held;
    return sum;
  }
  /** The fill in tokens, exactly. */
  tokens(t: number): Q {
    this.moveTo(t);
    return q(this.scaled(), this.scale);
  }
  waitMs(units: number, t: number): number {
    const over = sub(add(this.tokens(t), q(units)), this.capacity);
    return over.n <= 0n ? 0 : Number(ceil(div(over, this.rate)));
  }
  book(units: number, t: number, owner: number, extra = false): void {
    this.moveTo(t);
    const g = this.grants.get(owner);
    if (g === undefined) this.grants.set(owner, { since: this.refunds, own: 0, extra });
    else if (extra) g.extra = true;
    if (units > 0) this.queue.push({ owner, held: BigInt(units) * this.scale });
  }
  /** What grant `owner` still holds at `t`, in tokens × interval (without moving the model). */
  holds(owner: number, t: number): bigint {
    // The drain from `at` to `t` takes the front `drain` of the queue.
    const drain =
      t > this.at && this.at !== -Infinity ? BigInt(this.limit.limit) * BigInt(t - this.at) : 0n;
    let start = 0n;
    let sum = 0n;
    for (const p of this.queue) {
      const end = start + p.held;
      if (p.owner === owner && end > drain) sum += end - (start > drain ? start : drain);
      start = end;
    }
    return sum;
  }
  /**
   * Whether a refund of `owner` must give back exactly what it holds (up to what it asks): no
   * other grant's refund gave anything back since its booking (those move it by less than the
   * core can tell), and it was never charged extra.
   */
  exact(owner: number): boolean {
    const g = this.grants.get(owner);
    return g !== undefined && !g.extra && this.refunds - g.since === g.own;
  }
  refund(units: number, _grantAt: number, t: number, owner: number, back?: number): void {
    this.moveTo(t);
    const holds = this.holds(owner, t);
    const asked = BigInt(units) * this.scale;
    const most = asked < holds ? asked : holds;
    let take = back === undefined ? most : BigInt(back);
    if (take < 0n || take > most) {
      throw new Error(
        `model: grant ${owner} gives back ${take}, but holds ${holds} and asks ${asked}`,
      );
    }
    if (take > 0n) {
      this.refunds++;
      const g = this.grants.get(owner);
      if (g !== undefined) g.own++;
    }
    // From its own parts, oldest first; what is behind moves forward (nothing else changes).
    for (const p of this.queue) {
      if (take === 0n) break;
      if (p.owner !== owner) continue;
      const d = p.held < take ? p.held : take;
      p.held -= d;
      take -= d;
    }
    this.queue = this.queue.filter((p) => p.held > 0n);
  }
  read(t: number): { remaining: number; resetMs: number } {
    const fill = this.tokens(t);
    const free = sub(this.capacity, fill);
    return {
      remaining: free.n <= 0n ? 0 : Number(floor(free)),
      resetMs: Number(ceil(div(fill, this.rate))),
    };
  }
  /** A copy of the queue, to look ahead (wait, read, count): it does not track grants. */
  clone(): TokenBucketModel {
    const c = new TokenBucketModel(this.limit);
    c.queue = this.queue.map((p) => ({ ...p }));
    c.at = this.at;
    return c;
  }
  used(t: number): number {
    this.moveTo(t);
    return Number(this.scaled());
  }
}

/** Sliding window: units still counted per booking instant; an instant counts while t < at + interval. */
export class SlidingWindowModel implements LimitModel {
  private readonly booked = new Map<number, number>();
  constructor(private readonly limit: Limit) {}
  private inWindow(at: number, t: number): boolean {
    return at <= t && t < at + this.limit.intervalMs;
  }
  private usageAt(t: number): number {
    let sum = 0;
    for (const [at, units] of this.booked) if (this.inWindow(at, t)) sum += units;
    return sum;
  }
  moveTo(t: number): void {
    // What left the window can never count again (time never goes back): forget it.
    for (const at of [...this.booked.keys()])
      if (at + this.limit.intervalMs <= t) this.booked.delete(at);
  }
  waitMs(units: number, t: number): number {
    this.moveTo(t);
    if (this.usageAt(t) + units <= this.limit.limit) return 0;
    // Usage only drops when an instant leaves the window: try those instants in order.
    const exits = [...this.booked.keys()]
      .map((at) => at + this.limit.intervalMs)
      .sort((a, b) => a - b);
    for (const x of exits) if (this.usageAt(x) + units <= this.limit.limit) return x - t;
    return Infinity;
  }
  book(units: number, t: number): void {
    this.moveTo(t);
    if (units > 0) this.booked.set(t, (this.booked.get(t) ?? 0) + units);
  }
  refund(units: number, grantAt: number, t: number): void {
    this.moveTo(t);
    const there = this.booked.get(grantAt);
    if (there === undefined || !this.inWindow(grantAt, t)) return;
    const left = there - Math.min(units, there);
    if (left === 0) this.booked.delete(grantAt);
    else this.booked.set(grantAt, left);
  }
  read(t: number): { remaining: number; resetMs: number } {
    this.moveTo(t);
    let last = -Infinity;
    for (const [at, units] of this.booked)
      if (units > 0 && this.inWindow(at, t)) last = Math.max(last, at);
    return {
      remaining: Math.max(0, this.limit.limit - this.usageAt(t)),
      resetMs: last === -Infinity ? 0 : last + this.limit.intervalMs - t,
    };
  }
  used(t: number): number {
    this.moveTo(t);
    return this.usageAt(t);
  }
  clone(): SlidingWindowModel {
    const c = new SlidingWindowModel(this.limit);
    for (const [at, units] of this.booked) c.booked.set(at, units);
    return c;
  }
  /** The counted (instant, units) pairs in time order, as the core's log holds them. */
  log(t: number): number[] {
    this.moveTo(t);
    return [...this.booked.entries()].sort((a, b) => a[0] - b[0]).flat();
  }
}

/**
 * Fixed window: `booked` per aligned window index. What a window holds above `limit` is debt and
 * carries into the next window: held(w) = booked(w) + max(0, held(w − 1) − limit).
 */
export class FixedWindowModel implements LimitModel {
  /** Windows before `base.index` are folded into `base.held`, the amount window `base.index` held. */
  private base = { index: -Infinity, held: 0 };
  private readonly booked = new Map<number, number>();
  constructor(private readonly limit: Limit) {}
  private index(t: number): number {
    return Math.floor(t / this.limit.intervalMs);
  }
  /** What window `w` holds, if nothing is booked after the windows known now. */
  private held(w: number): number {
    let index = this.base.index;
    let held = this.base.held;
    const windows = [...this.booked.keys()].filter((i) => i <= w).sort((a, b) => a - b);
    for (const i of [...windows, w]) {
      if (i > index) {
        // Each window in between admitted `limit` of the debt.
        held = index === -Infinity ? 0 : Math.max(0, held - (i - index) * this.limit.limit);
        index = i;
        held += this.booked.get(i) ?? 0;
      }
    }
    return held;
  }
  moveTo(t: number): void {
    const w = this.index(t);
    if (w <= this.base.index) return;
    // Fold the windows that closed: nothing can be booked in them any more.
    const prev = w - 1;
    const heldPrev = this.held(prev);
    for (const i of [...this.booked.keys()]) if (i <= prev) this.booked.delete(i);
    this.base = { index: prev, held: heldPrev };
  }
  waitMs(units: number, t: number): number {
    this.moveTo(t);
    const w = this.index(t);
    for (let k = 0; ; k++) {
      if (this.held(w + k) + units <= this.limit.limit)
        return k === 0 ? 0 : (w + k) * this.limit.intervalMs - t;
    }
  }
  book(units: number, t: number): void {
    this.moveTo(t);
    const w = this.index(t);
    if (units > 0) this.booked.set(w, (this.booked.get(w) ?? 0) + units);
  }
  refund(units: number, grantAt: number, t: number): void {
    this.moveTo(t);
    const w = this.index(t);
    if (this.index(grantAt) !== w) return; // the grant's window has closed
    const back = Math.min(units, this.held(w));
    this.booked.set(w, (this.booked.get(w) ?? 0) - back);
  }
  read(t: number): { remaining: number; resetMs: number } {
    this.moveTo(t);
    const w = this.index(t);
    let k = 0;
    while (this.held(w + k) > 0) k++;
    return {
      remaining: Math.max(0, this.limit.limit - this.held(w)),
      resetMs: k === 0 ? 0 : (w + k) * this.limit.intervalMs - t,
    };
  }
  used(t: number): number {
    this.moveTo(t);
    return this.held(this.index(t));
  }
  clone(): FixedWindowModel {
    const c = new FixedWindowModel(this.limit);
    c.base = { ...this.base };
    for (const [i, units] of this.booked) c.booked.set(i, units);
    return c;
  }
  /** Start of the current aligned window. */
  start(t: number): number {
    return this.index(t) * this.limit.intervalMs;
  }
}

export function limitModel(limit: Limit): LimitModel {
  switch (limit.algorithm) {
    case 'token-bucket':
      return new TokenBucketModel(limit);
    case 'sliding-window':
      return new SlidingWindowModel(limit);
    case 'fixed-window':
      return new FixedWindowModel(limit);
  }
}

// ---------------------------------------------------------------------------------------------
// One key

export type ModelDecision =
  | { readonly ok: true; readonly at: number; readonly id: number }
  | { readonly ok: false; readonly retryAfterMs: number; readonly limit: string };

/** KeyModel is one key: every limit of the policy, and the slots held. */
export class KeyModel {
  at: number;
  inFlight = 0;
  readonly limits: LimitModel[];
  private grants = 0;
  constructor(
    readonly policy: Policy,
    now: number,
  ) {
    this.at = now;
    this.limits = policy.limits.map(limitModel);
    for (const l of this.limits) l.moveTo(now);
  }
  private time(now: number): number {
    this.at = Math.max(this.at, now);
    return this.at;
  }
  /** Whether every limit has room for `units` now (and a slot is free when one is asked for). */
  decide(units: readonly number[], now: number, slot: boolean): ModelDecision {
    // A refusal is not an event: look at the limits on copies, and move only to book.
    const t = Math.max(this.at, now);
    const waits = this.limits.map((l, i) => l.clone().waitMs(units[i]!, t));
    const longest = Math.max(0, ...waits);
    if (slot && this.policy.concurrency !== null && this.inFlight >= this.policy.concurrency) {
      return { ok: false, retryAfterMs: longest, limit: 'concurrency' };
    }
    if (longest > 0) {
      // The first limit with the longest wait names the refusal.
      return {
        ok: false,
        retryAfterMs: longest,
        limit: this.policy.limits[waits.indexOf(longest)]!.name,
      };
    }
    this.at = t;
    const id = this.grants++;
    this.limits.forEach((l, i) => l.book(units[i]!, t, id));
    if (slot) this.inFlight++;
    return { ok: true, at: t, id };
  }
  /**
   * Move grant `id`, booked at `grantAt`, from `from` units to `to` units, at `now`. `back` gives,
   * per token-bucket limit that refunds, the scaled units the core gave back (see
   * TokenBucketModel.refund); without it the model gives back all it can.
   */
  settle(
    id: number,
    grantAt: number,
    from: readonly number[],
    to: readonly number[],
    now: number,
    back?: readonly (number | undefined)[],
  ): void {
    const t = this.time(now);
    this.limits.forEach((l, i) => {
      const delta = to[i]! - from[i]!;
      if (delta < 0) l.refund(-delta, grantAt, t, id, back?.[i]);
      else if (delta > 0) l.book(delta, t, id, true);
      else l.moveTo(t);
    });
  }
  /**
   * For a token-bucket limit `i`: what grant `id` still holds at `now` (tokens × interval), and
   * whether a refund must give back exactly that (see TokenBucketModel.exact). Does not move the
   * key.
   */
  holding(i: number, id: number, now: number): { holds: bigint; exact: boolean } {
    const l = this.limits[i]!;
    if (!(l instanceof TokenBucketModel))
      throw new Error(`model: limit ${i} is not a token bucket`);
    return { holds: l.holds(id, Math.max(this.at, now)), exact: l.exact(id) };
  }
  release(): void {
    if (this.inFlight > 0) this.inFlight--;
  }
  /** Readings at `now`, without moving the key (a read is not an event). */
  read(now: number): { remaining: number; resetMs: number }[] {
    const t = Math.max(this.at, now);
    return this.limits.map((l) => l.clone().read(t));
  }
  /** The core's `used` per limit at `now`, without moving the key. */
  used(now: number): number[] {
    const t = Math.max(this.at, now);
    return this.limits.map((l) => l.clone().used(t));
  }
}
