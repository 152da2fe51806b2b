/**
 * A reference model of the decision core, written to be obviously right rather than fast. It
 * shares no code with src/limiter: it reads only the numbers of a compiled policy.
 *
 * - token bucket: the fill in tokens is an exact rational (BigInt), refilled at limit/interval
 *   tokens per ms;
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
const ZERO = q(0);

// ---------------------------------------------------------------------------------------------
// One limit

/** What one limit of the model answers, at the instant it was last moved to. */
export interface LimitModel {
  /** Move to instant `t` (t never decreases). */
  moveTo(t: number): void;
  /** Ms from `t` until `units` fit if nothing else happens; 0 when they fit now. */
  waitMs(units: number, t: number): number;
  book(units: number, t: number): void;
  /** Give back at most `units` of what a grant booked at `grantAt`. */
  refund(units: number, grantAt: number, t: number): void;
  read(t: number): { remaining: number; resetMs: number };
  /** The core's `used` for this limit at `t`, in the core's scale (token bucket: units × interval). */
  used(t: number): number;
  /** An independent copy, to look ahead without moving this one. */
  clone(): LimitModel;
}

/** Token bucket: `fill` tokens (a rational) as of `at`; refills `limit / intervalMs` per ms. */
export class TokenBucketModel implements LimitModel {
  private fill: Q = ZERO;
  private at = -Infinity;
  private readonly rate: Q;
  private readonly capacity: Q;
  constructor(private readonly limit: Limit) {
    this.rate = q(limit.limit, limit.intervalMs);
    this.capacity = q(limit.capacity);
  }
  moveTo(t: number): void {
    if (this.at !== -Infinity && t > this.at) {
      this.fill = max(ZERO, sub(this.fill, mul(this.rate, q(t - this.at))));
    }
    this.at = Math.max(this.at, t);
  }
  /** The fill in tokens, exactly. */
  tokens(t: number): Q {
    this.moveTo(t);
    return this.fill;
  }
  waitMs(units: number, t: number): number {
    this.moveTo(t);
    const over = sub(add(this.fill, q(units)), this.capacity);
    return over.n <= 0n ? 0 : Number(ceil(div(over, this.rate)));
  }
  book(units: number, t: number): void {
    this.moveTo(t);
    this.fill = add(this.fill, q(units));
  }
  refund(units: number, _grantAt: number, t: number): void {
    this.moveTo(t);
    this.fill = max(ZERO, sub(this.fill, q(units)));
  }
  read(t: number): { remaining: number; resetMs: number } {
    this.moveTo(t);
    const free = sub(this.capacity, this.fill);
    return {
      remaining: free.n <= 0n ? 0 : Number(floor(free)),
      resetMs: Number(ceil(div(this.fill, this.rate))),
    };
  }
  clone(): TokenBucketModel {
    const c = new TokenBucketModel(this.limit);
    c.fill = this.fill;
    c.at = this.at;
    return c;
  }
  used(t: number): number {
    const scaled = mul(this.tokens(t), q(this.limit.intervalMs));
    if (scaled.d !== 1n)
      throw new Error(`model: scaled fill ${scaled.n}/${scaled.d} is not an integer`);
    return Number(scaled.n);
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
  | { readonly ok: true; readonly at: number }
  | { readonly ok: false; readonly retryAfterMs: number; readonly limit: string };

/** KeyModel is one key: every limit of the policy, and the slots held. */
export class KeyModel {
  at: number;
  inFlight = 0;
  readonly limits: LimitModel[];
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
    this.limits.forEach((l, i) => l.book(units[i]!, t));
    if (slot) this.inFlight++;
    return { ok: true, at: t };
  }
  /** Move a grant booked at `grantAt` from `from` units to `to` units, at `now`. */
  settle(grantAt: number, from: readonly number[], to: readonly number[], now: number): void {
    const t = this.time(now);
    this.limits.forEach((l, i) => {
      const delta = to[i]! - from[i]!;
      if (delta < 0) l.refund(-delta, grantAt, t);
      else if (delta > 0) l.book(delta, t);
      else l.moveTo(t);
    });
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
