/**
 * The reference model of one key's limits, written for the whole-runtime model test
 * (runtime.model.test.ts). It shares no code with src/: it reads plain numbers of the policies
 * below and keeps every amount an exact integer.
 *
 * - Sliding window: the units booked per instant; an instant counts while `t < at + interval`.
 * - Fixed window: the window start and what it holds; what a window holds above `limit` (debt of
 *   an extra charge) is paid by `limit` per window that passes.
 * - Token bucket: the bucket as a queue of parts, one per booking, drained from the front at
 *   `limit` scaled units per ms (one unit is `interval` scaled units). The queue is the truth
 *   of what each grant still holds. How much a refund gives back is the documented conservative
 *   rule (README "Is settle exact?", src/limiter/tokenBucket.ts's header and rebase's comment):
 *   `min(asked, used, mark − refunded − limit × (now − grantAt))`, nothing for a grant from
 *   before the bucket last emptied. The model computes that rule from its own counters and checks
 *   it against the queue: a refund never gives back more than the grant holds.
 *
 * A limit instance is one life of a limit's state: reset(key) starts new ones, and a limit
 * change keeps an instance only for a limit of the same name and algorithm (and interval).
 * A grant gives back only to the instances it booked on: a grant from before a reset, or from
 * before its limit was replaced, gives back nothing. A rebase that drops a limit's state or
 * starts a window's anew is a new epoch of the key (see `rebase`): every kept instance is
 * renumbered, so a grant from before gives back nothing on any limit.
 */

/** A limit as the model reads it: every field explicit. */
export interface MLimit {
  readonly name: string;
  readonly algorithm: 'token-bucket' | 'sliding-window' | 'fixed-window';
  readonly dimension: string;
  readonly limit: number;
  readonly intervalMs: number;
  /** burst for a token bucket, limit for windows */
  readonly capacity: number;
}

/** A policy as the model reads it. */
export interface MPolicy {
  readonly limits: readonly MLimit[];
  readonly concurrency: number | null;
}

/** A cost as callers write it. */
export type Cost = Readonly<Record<string, number | undefined>>;

/** An error the model predicts, by code. */
export class Predicted extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

/**
 * units compiles `cost` for `policy`: `requests` defaults to 1, a dimension no limit counts is an
 * INVALID_ARGUMENT, and (when `capped`) an amount above a limit's capacity COST_EXCEEDS_CAPACITY.
 */
export function units(policy: MPolicy, cost: Cost | undefined, capped = true): number[] {
  const dims = new Map<string, number>([['requests', 1]]);
  for (const [d, v] of Object.entries(cost ?? {})) {
    if (v === undefined) continue;
    if (d !== 'requests' && !policy.limits.some((l) => l.dimension === d)) {
      throw new Predicted('INVALID_ARGUMENT');
    }
    dims.set(d, v);
  }
  return policy.limits.map((l) => {
    const u = dims.get(l.dimension) ?? 0;
    if (capped && u > l.capacity) throw new Predicted('COST_EXCEEDS_CAPACITY');
    return u;
  });
}

/** A grant as the model keeps it: what it booked where. */
export interface MGrant {
  /** The harness's handle number of the call that got it. */
  readonly hid: number;
  readonly gen: number;
  readonly at: number;
  readonly cost: Cost | undefined;
  /** Per limit instance id: the units booked there and, for a token bucket, the mark. */
  readonly booked: Map<number, { units: number; mark: number }>;
  /** Holds a concurrency slot: not released, cancelled or expired. */
  slotHeld: boolean;
  readonly leaseEnd: number;
  settled: boolean;
  cancelled: boolean;
}

/** What one limit reads at an instant. */
export interface MReading {
  readonly name: string;
  readonly remaining: number;
  readonly resetMs: number;
}

let nextInstance = 1;

/** One life of one limit's state (see the file comment). */
export abstract class Instance {
  readonly id = nextInstance++;
  constructor(public limit: MLimit) {}
  /** Move to `t` (never back). */
  abstract advance(t: number): void;
  /** Ms from `t` until `u` units fit; 0 when they fit now. */
  abstract waitMs(u: number, t: number): number;
  /** Book `u` at `t` for `g` (null: an extra charge); returns the mark to keep. */
  abstract book(g: MGrant | null, u: number, t: number): number;
  /** Give back at most `asked` of what `g` booked here; `whole`: the grant is settled at 0 here. */
  abstract refund(g: MGrant, asked: number, whole: boolean, t: number): void;
  abstract read(t: number): MReading;
  /** Back at full capacity. */
  abstract isFull(): boolean;
  /** Takes a limit of the same name and algorithm at `t` (after advance to `t`). */
  abstract retune(next: MLimit, t: number): void;
  abstract clone(): Instance;
  /** The same state as a new life (another id): grants booked on this one give nothing back to it. */
  renumbered(): Instance {
    const c = this.clone();
    Object.defineProperty(c, 'id', { value: nextInstance++ });
    return c;
  }
}

/** Token bucket (see the file comment). */
export class TokenBucket extends Instance {
  at: number;
  used = 0;
  refunded = 0;
  emptiedAt: number | undefined = undefined;
  /** The queue of parts, front first; its sum is `used`. */
  parts: { g: MGrant | null; held: number }[] = [];
  constructor(limit: MLimit, t: number) {
    super(limit);
    this.at = t;
  }
  advance(t: number): void {
    if (t <= this.at) return;
    let drain = this.limit.limit * (t - this.at);
    this.at = t;
    if (this.used === 0) return;
    if (drain >= this.used) {
      this.empty();
      return;
    }
    this.used -= drain;
    while (drain > 0) {
      const front = this.parts[0]!;
      const d = Math.min(front.held, drain);
      front.held -= d;
      drain -= d;
      if (front.held === 0) this.parts.shift();
    }
  }
  private empty(): void {
    this.used = 0;
    this.refunded = 0;
    this.emptiedAt = undefined;
    this.parts = [];
  }
  waitMs(u: number): number {
    const over =
      this.used + u * this.limit.intervalMs - this.limit.capacity * this.limit.intervalMs;
    return over <= 0 ? 0 : Math.ceil(over / this.limit.limit);
  }
  book(g: MGrant | null, u: number, t: number): number {
    if (u > 0) {
      const add = u * this.limit.intervalMs;
      if (this.used === 0) {
        this.refunded = 0;
        this.emptiedAt = t;
      }
      this.used += add;
      this.parts.push({ g, held: add });
    }
    return this.used + this.refunded;
  }
  /** What `g` still holds, by the queue. */
  holds(g: MGrant): number {
    let sum = 0;
    for (const p of this.parts) if (p.g === g) sum += p.held;
    return sum;
  }
  refund(g: MGrant, asked: number, whole: boolean, t: number): void {
    const b = g.booked.get(this.id);
    if (b === undefined || asked === 0 || this.used === 0) return;
    if ((this.emptiedAt !== undefined && g.at < this.emptiedAt) || g.at > t) return;
    const ahead = b.mark - this.refunded;
    const drained = this.limit.limit * (t - g.at);
    if (drained >= ahead) return;
    const end = ahead - drained;
    const askedScaled = asked * this.limit.intervalMs;
    const back = Math.min(askedScaled, this.used, end);
    const holds = this.holds(g);
    if (back > holds) {
      throw new Error(
        `reference: the token-bucket rule gives back ${back} to grant #${g.hid}, which holds ${holds}`,
      );
    }
    let take = back;
    for (const p of this.parts) {
      if (take === 0) break;
      if (p.g !== g) continue;
      const d = Math.min(p.held, take);
      p.held -= d;
      take -= d;
    }
    this.parts = this.parts.filter((p) => p.held > 0);
    if (back === this.used) {
      this.empty();
      return;
    }
    this.used -= back;
    // The whole grant at the back of the queue: nothing behind it moves, the counter stays.
    if (!(whole && end >= this.used + back && back === askedScaled)) this.refunded += back;
  }
  read(): MReading {
    const free = this.limit.capacity * this.limit.intervalMs - this.used;
    return {
      name: this.limit.name,
      remaining: free <= 0 ? 0 : Math.floor(free / this.limit.intervalMs),
      resetMs: Math.ceil(this.used / this.limit.limit),
    };
  }
  isFull(): boolean {
    return this.used === 0;
  }
  retune(next: MLimit, t: number): void {
    if (next.intervalMs !== this.limit.intervalMs) throw new Error('reference: interval change');
    const cut = next.limit < this.limit.limit;
    this.limit = next;
    // A rate cut: grants booked up to now give back nothing here (the drain since them would be
    // overestimated); the counter starts over.
    if (cut && this.used > 0) {
      this.refunded = 0;
      this.emptiedAt = t + 1;
    }
  }
  clone(): TokenBucket {
    const c = new TokenBucket(this.limit, this.at);
    Object.defineProperty(c, 'id', { value: this.id });
    c.used = this.used;
    c.refunded = this.refunded;
    c.emptiedAt = this.emptiedAt;
    c.parts = this.parts.map((p) => ({ ...p }));
    return c;
  }
}

/** Sliding window: units per booking instant. */
export class SlidingWindow extends Instance {
  entries = new Map<number, number>();
  advance(t: number): void {
    for (const at of [...this.entries.keys()])
      if (at + this.limit.intervalMs <= t) this.entries.delete(at);
  }
  private used(): number {
    let s = 0;
    for (const u of this.entries.values()) s += u;
    return s;
  }
  waitMs(u: number, t: number): number {
    let over = this.used() + u - this.limit.limit;
    if (over <= 0) return 0;
    for (const at of [...this.entries.keys()].sort((a, b) => a - b)) {
      over -= this.entries.get(at)!;
      if (over <= 0) return at + this.limit.intervalMs - t;
    }
    return this.limit.intervalMs;
  }
  book(_g: MGrant | null, u: number, t: number): number {
    if (u > 0) this.entries.set(t, (this.entries.get(t) ?? 0) + u);
    return 0;
  }
  refund(g: MGrant, asked: number, _whole: boolean, t: number): void {
    const b = g.booked.get(this.id);
    if (b === undefined || asked === 0 || g.at + this.limit.intervalMs <= t) return;
    const there = this.entries.get(g.at);
    if (there === undefined) return;
    const left = there - Math.min(asked, there);
    if (left === 0) this.entries.delete(g.at);
    else this.entries.set(g.at, left);
  }
  read(t: number): MReading {
    const ats = [...this.entries.keys()];
    return {
      name: this.limit.name,
      remaining: Math.max(0, this.limit.limit - this.used()),
      resetMs: ats.length === 0 ? 0 : Math.max(...ats) + this.limit.intervalMs - t,
    };
  }
  isFull(): boolean {
    return this.entries.size === 0;
  }
  retune(next: MLimit): void {
    if (next.intervalMs !== this.limit.intervalMs) throw new Error('reference: interval change');
    this.limit = next;
  }
  clone(): SlidingWindow {
    const c = new SlidingWindow(this.limit);
    Object.defineProperty(c, 'id', { value: this.id });
    c.entries = new Map(this.entries);
    return c;
  }
}

/** Fixed window aligned to multiples of the interval; debt is paid by `limit` per window. */
export class FixedWindow extends Instance {
  start: number;
  used = 0;
  constructor(limit: MLimit, t: number) {
    super(limit);
    this.start = t - (t % limit.intervalMs);
  }
  advance(t: number): void {
    const k = Math.floor((t - this.start) / this.limit.intervalMs);
    if (k <= 0) return;
    this.start += k * this.limit.intervalMs;
    this.used = Math.max(0, this.used - k * this.limit.limit);
  }
  waitMs(u: number, t: number): number {
    const over = this.used + u - this.limit.limit;
    if (over <= 0) return 0;
    return this.start + Math.ceil(over / this.limit.limit) * this.limit.intervalMs - t;
  }
  book(_g: MGrant | null, u: number): number {
    this.used += u;
    return 0;
  }
  refund(g: MGrant, asked: number): void {
    const b = g.booked.get(this.id);
    if (b === undefined || asked === 0 || g.at < this.start) return;
    this.used -= Math.min(asked, this.used);
  }
  read(t: number): MReading {
    return {
      name: this.limit.name,
      remaining: Math.max(0, this.limit.limit - this.used),
      resetMs:
        this.used === 0
          ? 0
          : this.start + Math.ceil(this.used / this.limit.limit) * this.limit.intervalMs - t,
    };
  }
  isFull(): boolean {
    return this.used === 0;
  }
  retune(next: MLimit): void {
    if (next.intervalMs !== this.limit.intervalMs) throw new Error('reference: interval change');
    this.limit = next;
  }
  clone(): FixedWindow {
    const c = new FixedWindow(this.limit, this.start);
    Object.defineProperty(c, 'id', { value: this.id });
    c.start = this.start;
    c.used = this.used;
    return c;
  }
}

function fresh(limit: MLimit, t: number): Instance {
  switch (limit.algorithm) {
    case 'token-bucket':
      return new TokenBucket(limit, t);
    case 'sliding-window':
      return new SlidingWindow(limit);
    case 'fixed-window':
      return new FixedWindow(limit, t);
  }
}

/** A decision of the model. */
export type MDecision =
  | { readonly ok: true }
  | { readonly ok: false; readonly limit: string; readonly retryAfterMs: number };

/**
 * KeyLimits is one key's limit state: the instances of the policy its state is under (a limit
 * change takes it under the new one at its next decision or settle, as the README says), the
 * slots held, and a pause.
 */
export class KeyLimits {
  gen = 0;
  /** The policy the state was last written under. */
  policy: MPolicy;
  instances: Instance[];
  /** Grants of this generation holding a slot. */
  readonly slots = new Set<MGrant>();
  pausedUntil = -Infinity;

  constructor(policy: MPolicy, t: number) {
    this.policy = policy;
    this.instances = policy.limits.map((l) => fresh(l, t));
  }

  private advance(t: number): void {
    for (const i of this.instances) i.advance(t);
  }

  /** The instances as they would be under `policy` at `t`, without writing (copies when rebased). */
  private view(policy: MPolicy, t: number): Instance[] {
    this.advance(t);
    if (policy === this.policy) return this.instances;
    return rebase(
      this.policy,
      this.instances.map((i) => i.clone()),
      policy,
      t,
    );
  }

  /** Takes the state under `policy` (what a decision, even a refusal, or a settle does). */
  take(policy: MPolicy, t: number): void {
    this.advance(t);
    if (policy === this.policy) return;
    this.instances = rebase(this.policy, this.instances, policy, t);
    this.policy = policy;
  }

  pausedFor(t: number): number {
    return this.pausedUntil > t ? this.pausedUntil - t : 0;
  }

  /**
   * decide: whether `u` (units of `policy`) fits at `t`, with a slot when `slot`. A decision that
   * reaches the limits takes the key under `policy`; a paused key is refused before that.
   */
  decide(policy: MPolicy, u: readonly number[], slot: boolean, t: number): MDecision {
    const paused = this.pausedFor(t);
    if (paused > 0) return { ok: false, limit: 'paused', retryAfterMs: paused };
    this.take(policy, t);
    let retry = 0;
    let by = -1;
    this.instances.forEach((inst, i) => {
      const w = inst.waitMs(u[i]!, t);
      if (w > retry) {
        retry = w;
        by = i;
      }
    });
    if (slot && policy.concurrency !== null && this.slots.size >= policy.concurrency) {
      return { ok: false, limit: 'concurrency', retryAfterMs: retry };
    }
    if (by >= 0) return { ok: false, limit: policy.limits[by]!.name, retryAfterMs: retry };
    return { ok: true };
  }

  /** Books `g` (decided under `policy` at `t`, just now). */
  book(policy: MPolicy, g: MGrant, u: readonly number[], slot: boolean, t: number): void {
    this.take(policy, t);
    this.instances.forEach((inst, i) => {
      const mark = inst.book(g, u[i]!, t);
      g.booked.set(inst.id, { units: u[i]!, mark });
    });
    if (slot) this.slots.add(g);
  }

  /** Settle of `g` from `from` to `to` units of `policy`, at `t`. */
  settle(policy: MPolicy, g: MGrant, from: readonly number[], to: readonly number[], t: number) {
    this.take(policy, t);
    this.instances.forEach((inst, i) => {
      const delta = to[i]! - from[i]!;
      if (delta < 0) inst.refund(g, -delta, to[i] === 0, t);
      else if (delta > 0) inst.book(null, delta, t);
    });
  }

  /** An extra charge of `u` (feedback's recalibration), at `t`. */
  charge(policy: MPolicy, u: readonly number[], t: number): void {
    this.take(policy, t);
    this.instances.forEach((inst, i) => {
      if (u[i]! > 0) inst.book(null, u[i]!, t);
    });
  }

  /** Frees the slot of `g` if it holds one of this generation. */
  release(g: MGrant): void {
    this.slots.delete(g);
  }

  reset(policy: MPolicy, t: number): void {
    this.gen++;
    this.policy = policy;
    this.instances = policy.limits.map((l) => fresh(l, t));
    this.slots.clear();
    this.pausedUntil = -Infinity;
  }

  pause(forMs: number, t: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, t + forMs);
  }

  /** What stats() reads at `t` under `policy` (no write). */
  read(policy: MPolicy, t: number): { limits: MReading[]; inFlight: number } {
    return { limits: this.view(policy, t).map((i) => i.read(t)), inFlight: this.slots.size };
  }

  /**
   * estimate: ms from `t` until the last of `queue` would be granted, each booked as soon as it
   * fits, slots not foreseen (what a reservation's etaMs promises, memory store).
   */
  estimate(policy: MPolicy, queue: readonly (readonly number[])[], t: number): number {
    const view = this.view(policy, t).map((i) => i.clone());
    let at = t + this.pausedFor(t);
    for (const u of queue) {
      for (;;) {
        for (const i of view) i.advance(at);
        const wait = Math.max(0, ...view.map((inst, k) => inst.waitMs(u[k]!, at)));
        if (wait === 0) {
          view.forEach((inst, k) => inst.book(null, u[k]!, at));
          break;
        }
        at += Math.max(1, wait);
      }
    }
    return at - t;
  }
}

/**
 * rebase carries `instances` (under `from`) to `to` at `t`: a limit of the same name and
 * algorithm keeps its instance (windows: also the same interval), retuned; any other starts
 * fresh.
 *
 * When the change drops a limit of `from` (no limit of `to` has its name and algorithm) or starts
 * a window anew (another interval), the key takes a new epoch: the kept instances keep their
 * state but are renumbered, so grants booked before give nothing back on any limit (an extra
 * charge still books). This is the runtime's documented rule since #10's commit "A limit change
 * that drops or restarts a limit's state starts a new epoch of the key, in both stores"
 * (src/limiter/advance.ts `restarts`, keyState.lua `restarted`, and the conformance row "a grant
 * made before a limit was dropped gives nothing back to it when it returns"). With one instance
 * per limit alone, a limit dropped by one change and brought back by the next (P0 -> P1 -> P0)
 * would take back a refund of an older grant into its new state; the epoch errs on the safe side
 * for every limit. It is checked at each rebase of the key's state, which happens at its first
 * decision, settle or cancel under the new policy (both stores write the state back then), not at
 * setLimits itself: a key that saw none of them under P1 goes from P0 to P0 and keeps everything.
 */
function rebase(from: MPolicy, instances: Instance[], to: MPolicy, t: number): Instance[] {
  const restarted = from.limits.some((o) => {
    const kept = to.limits.find((l) => l.name === o.name && l.algorithm === o.algorithm);
    return (
      kept === undefined || (o.algorithm !== 'token-bucket' && kept.intervalMs !== o.intervalMs)
    );
  });
  return to.limits.map((l) => {
    const i = from.limits.findIndex((o) => o.name === l.name && o.algorithm === l.algorithm);
    const inst = i < 0 ? undefined : instances[i];
    if (inst === undefined) return fresh(l, t);
    if (l.algorithm !== 'token-bucket' && inst.limit.intervalMs !== l.intervalMs) {
      return fresh(l, t);
    }
    inst.retune(l, t);
    return restarted ? inst.renumbered() : inst;
  });
}
