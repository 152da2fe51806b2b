/**
 * Sim predicts what the runtime does with the main limiter, call by call, on virtual time: the
 * queue of each key (priority, then arrival; decided from its head, stopping at the first that
 * does not fit), timeouts, aborts, leases, pauses, limit changes, resets and close, on top of the
 * reference limits of reference.ts. It is written from the README's contract:
 *
 * - a call fits when every limit has room, a concurrency slot is free and the key is not paused;
 *   a waiter is granted at the first instant it fits while it is the head of its key's queue;
 * - a deadline reached at the instant the head would fit wins (the waiter times out);
 * - a timeout of 0 gives up unless it fits at once: it is decided once and never queues (a full
 *   queue does not matter to it);
 * - tryAcquire is refused with 'queue' while a waiter of equal or higher priority is queued;
 * - a limit change recompiles the waiters (those that can never fit are rejected) and decides the
 *   queue at once; the state of a key is rebased at its next decision, settle or cancel (a new
 *   epoch when a limit's state is dropped or restarted: see reference.ts `rebase`);
 * - reset forgets the key (full capacity, no slots, no pause); a grant from before it gives back
 *   nothing and frees no slot of the new state;
 * - close rejects every waiter with LIMITER_CLOSED and refuses later calls.
 *
 * Keys are independent; time moves only through `advance`.
 */
import {
  KeyLimits,
  units,
  type Cost,
  type MDecision,
  type MGrant,
  type MPolicy,
  type MReading,
  type Predicted,
} from './reference.js';
import { LEASE_MS, MAX_PAUSE_MS, MAX_QUEUE, MAIN_POLICIES } from './setup.js';

/** One call of the test, as the simulator sees it (picks resolved to handle numbers). */
export type SimOp =
  | {
      readonly k: 'acquire';
      readonly hid: number;
      readonly key: string;
      readonly cost: Cost | undefined;
      readonly priority: number;
      readonly timeout: number | undefined;
    }
  | {
      readonly k: 'try';
      readonly hid: number;
      readonly key: string;
      readonly cost: Cost | undefined;
      readonly priority: number;
    }
  | {
      readonly k: 'reserve';
      readonly hid: number;
      readonly key: string;
      readonly cost: Cost | undefined;
      readonly priority: number;
    }
  | {
      readonly k: 'failing';
      readonly hid: number;
      readonly key: string;
      readonly try: boolean;
      /** The store decided, then its answer was lost (else it threw before deciding). */
      readonly lost: boolean;
    }
  | { readonly k: 'settle'; readonly target: number; readonly actual: Cost }
  | { readonly k: 'cancel'; readonly target: number }
  | { readonly k: 'release'; readonly target: number }
  | { readonly k: 'resCancel'; readonly target: number }
  | { readonly k: 'abort'; readonly target: number }
  | { readonly k: 'reset'; readonly key: string }
  | { readonly k: 'pause'; readonly key: string; readonly ms: number }
  | { readonly k: 'stats'; readonly key: string }
  | { readonly k: 'setLimits'; readonly i: number }
  | { readonly k: 'feedback'; readonly key: string; readonly signal: Signal }
  | { readonly k: 'advance'; readonly ms: number }
  | { readonly k: 'close' };

export interface Signal {
  readonly throttled?: boolean;
  readonly retryAfterMs?: number | null;
  readonly limits?: readonly {
    readonly dimension: string;
    readonly remaining: number | null;
    readonly resetMs: number | null;
  }[];
}

/** What a waiter (acquire, tryAcquire, reserve) ends with, as predicted or observed. */
export type WaiterOutcome =
  | { readonly s: 'pending' }
  | { readonly s: 'granted'; readonly at: number; readonly booked: Record<string, number> }
  | { readonly s: 'refused'; readonly limit: string; readonly retryAfterMs: number | null }
  | { readonly s: 'failed'; readonly codes: readonly string[]; readonly at: number };

/** What a call other than a waiter does: throws at once, or its promise's end. */
export interface OpExpect {
  /** The code thrown synchronously, if any. */
  readonly sync?: string;
  /** 'ok' or the rejection's code; undefined: the call returns no promise. */
  readonly async?: string;
  /** stats(): the reading. */
  readonly reading?: Reading;
  /** reserve(): the etaMs read right after the call. */
  readonly etaMs?: number | null;
}

export interface Reading {
  readonly limits: readonly MReading[];
  readonly inFlight: number;
  readonly queued: number;
}

interface SimWaiter {
  readonly hid: number;
  readonly key: string;
  readonly cost: Cost | undefined;
  readonly priority: number;
  readonly seq: number;
  readonly deadline: number;
  units: number[];
}

interface SimKey {
  readonly limits: KeyLimits;
  readonly queue: SimWaiter[];
  /**
   * When the head is decided again: the instant its last refusal said it fits (at least 1 ms on),
   * or never for a refusal by concurrency alone (a release wakes it). The README: "A refused head
   * sets one timer for the instant the store says it fits."
   */
  wakeAt: number;
}

function wakeFor(d: MDecision, t: number): number {
  if (d.ok) return t;
  if (d.limit === 'concurrency' && d.retryAfterMs === 0) return Infinity;
  return t + Math.max(1, d.retryAfterMs);
}

/** A store that throws fails its callers with a typed error (README, Guarantees 8). */
const STORE_FAILURE = ['STORE_UNAVAILABLE', 'STORE_REJECTED', 'INTERNAL'] as const;

/** Sim: see the file comment. `etaKnown`: the store estimates reservations (memory). */
export class Sim {
  now = 0;
  policy: MPolicy = MAIN_POLICIES[0]!;
  closed = false;
  /** Every pause applied, as `key:forMs@at` (what the 'paused' events must say). */
  readonly pauses: string[] = [];
  readonly keys = new Map<string, SimKey>();
  readonly outcomes = new Map<number, WaiterOutcome>();
  readonly grants = new Map<number, MGrant>();
  readonly #waiters = new Map<number, SimWaiter>();
  #seq = 0;

  constructor(private readonly etaKnown: boolean) {}

  #key(key: string): SimKey {
    let k = this.keys.get(key);
    if (k === undefined) {
      k = { limits: new KeyLimits(this.policy, this.now), queue: [], wakeAt: Infinity };
      this.keys.set(key, k);
    }
    return k;
  }

  /** Handles granted and not yet given back, in handle order: what settle/cancel/release pick from. */
  queueLength(key: string): number {
    return this.keys.get(key)?.queue.length ?? 0;
  }

  apply(op: SimOp): OpExpect {
    const t = this.now;
    switch (op.k) {
      case 'acquire':
      case 'reserve': {
        const r = this.#arrive(op, op.k === 'acquire' ? op.timeout : undefined, t);
        if (op.k === 'acquire') return {};
        if (r !== undefined) return { sync: r };
        const o = this.outcomes.get(op.hid)!;
        // Without a store estimate, etaMs is the head's wake-up when known (the README says null).
        if (!this.etaKnown) return {};
        if (o.s === 'granted') return { etaMs: 0 };
        const k = this.#key(op.key);
        const i = k.queue.findIndex((w) => w.hid === op.hid);
        if (i < 0) return { etaMs: null };
        const eta = k.limits.estimate(
          this.policy,
          k.queue.slice(0, i + 1).map((w) => w.units),
          t,
        );
        return { etaMs: eta };
      }
      case 'try':
        this.#try(op, t);
        return {};
      case 'failing': {
        if (this.closed) {
          this.#end(op.hid, 'LIMITER_CLOSED', t);
          return {};
        }
        if (op.lost) this.#lost(op.key, t);
        this.outcomes.set(op.hid, { s: 'failed', codes: STORE_FAILURE, at: t });
        return {};
      }
      case 'settle':
        return this.#settle(op.target, op.actual, t);
      case 'cancel':
        return this.#cancel(op.target, t, false);
      case 'release': {
        const g = this.grants.get(op.target);
        if (g === undefined || !g.slotHeld || this.closed) return {};
        g.slotHeld = false;
        const k = this.#key(this.#waiterKey(op.target));
        if (g.gen === k.limits.gen) k.limits.release(g);
        this.#pump(k, t);
        return {};
      }
      case 'resCancel': {
        const o = this.outcomes.get(op.target);
        if (o?.s === 'pending') {
          this.#abort(op.target, t);
          return { async: 'ok' };
        }
        if (o?.s === 'granted') return this.#cancel(op.target, t, true);
        return { async: 'ok' };
      }
      case 'abort':
        if (this.outcomes.get(op.target)?.s === 'pending') this.#abort(op.target, t);
        return {};
      case 'reset': {
        if (this.closed) return { async: 'LIMITER_CLOSED' };
        const k = this.#key(op.key);
        k.limits.reset(this.policy, t);
        this.#pump(k, t);
        return { async: 'ok' };
      }
      case 'pause': {
        if (this.closed) return { async: 'LIMITER_CLOSED' };
        const k = this.#key(op.key);
        k.limits.pause(op.ms, t);
        this.pauses.push(`${op.key}:${op.ms}@${t}`);
        this.#pump(k, t);
        return { async: 'ok' };
      }
      case 'stats':
        if (this.closed) return { async: 'LIMITER_CLOSED' };
        return { async: 'ok', reading: this.read(op.key) };
      case 'setLimits': {
        if (this.closed) return { sync: 'LIMITER_CLOSED' };
        this.policy = MAIN_POLICIES[op.i]!;
        for (const k of this.keys.values()) {
          for (const w of k.queue.slice()) {
            try {
              w.units = units(this.policy, w.cost);
            } catch (e) {
              this.#remove(k, w);
              this.#end(w.hid, (e as Predicted).code, t);
            }
          }
          if (k.queue.length > 0) this.#pump(k, t);
        }
        return {};
      }
      case 'feedback':
        return this.#feedback(op.key, op.signal, t);
      case 'advance':
        this.#advance(t + op.ms);
        return {};
      case 'close':
        if (!this.closed) {
          this.closed = true;
          for (const k of this.keys.values()) {
            for (const w of k.queue) this.#end(w.hid, 'LIMITER_CLOSED', t);
            k.queue.length = 0;
          }
        }
        return { async: 'ok' };
    }
  }

  /** What stats(key) reads now. */
  read(key: string): Reading {
    const k = this.#key(key);
    const r = k.limits.read(this.policy, this.now);
    return { limits: r.limits, inFlight: r.inFlight, queued: k.queue.length };
  }

  #waiterKey(hid: number): string {
    return this.#waiters.get(hid)!.key;
  }

  #end(hid: number, code: string, t: number): void {
    this.outcomes.set(hid, { s: 'failed', codes: [code], at: t });
  }

  /** An acquire or reserve arrives; returns a code thrown synchronously (reserve), if any. */
  #arrive(
    op: { hid: number; key: string; cost: Cost | undefined; priority: number; k: string },
    timeout: number | undefined,
    t: number,
  ): string | undefined {
    const sync = op.k === 'reserve';
    if (this.closed) {
      if (sync) return 'LIMITER_CLOSED';
      this.#end(op.hid, 'LIMITER_CLOSED', t);
      return undefined;
    }
    let u: number[];
    try {
      u = units(this.policy, op.cost);
    } catch (e) {
      if (sync) return (e as Predicted).code;
      this.#end(op.hid, (e as Predicted).code, t);
      return undefined;
    }
    const w: SimWaiter = {
      hid: op.hid,
      key: op.key,
      cost: op.cost,
      priority: op.priority,
      seq: ++this.#seq,
      deadline: timeout === undefined ? Infinity : t + timeout,
      units: u,
    };
    this.#waiters.set(w.hid, w);
    this.outcomes.set(w.hid, { s: 'pending' });
    const k = this.#key(op.key);
    const head = k.queue[0];
    if (head === undefined || head.priority < w.priority) {
      // Nobody ahead: decided at once.
      const d = k.limits.decide(this.policy, u, this.#slot(), t);
      if (d.ok) {
        this.#grant(k, w, t);
        return undefined;
      }
      // A timeout of 0 is decided once: it never queues (a full queue does not matter to it).
      if (timeout === 0) {
        this.#end(w.hid, 'ACQUIRE_TIMEOUT', t);
        return undefined;
      }
      if (!this.#enqueue(k, w, t)) return undefined;
      k.wakeAt = wakeFor(d, t);
      if (w.deadline <= t) {
        this.#remove(k, w);
        this.#end(w.hid, 'ACQUIRE_TIMEOUT', t);
      }
      return undefined;
    }
    if (timeout === 0) {
      this.#end(w.hid, 'ACQUIRE_TIMEOUT', t); // someone waits ahead
      return undefined;
    }
    if (this.#enqueue(k, w, t)) this.#pump(k, t);
    return undefined;
  }

  #try(op: Extract<SimOp, { k: 'try' }>, t: number): void {
    if (this.closed) return this.#end(op.hid, 'LIMITER_CLOSED', t);
    let u: number[];
    try {
      u = units(this.policy, op.cost);
    } catch (e) {
      return this.#end(op.hid, (e as Predicted).code, t);
    }
    const w: SimWaiter = {
      hid: op.hid,
      key: op.key,
      cost: op.cost,
      priority: op.priority,
      seq: ++this.#seq,
      deadline: Infinity,
      units: u,
    };
    this.#waiters.set(w.hid, w);
    const k = this.#key(op.key);
    const head = k.queue[0];
    if (head !== undefined && head.priority >= w.priority) {
      this.outcomes.set(w.hid, { s: 'refused', limit: 'queue', retryAfterMs: null });
      return;
    }
    const d = k.limits.decide(this.policy, u, this.#slot(), t);
    if (d.ok) this.#grant(k, w, t);
    else this.outcomes.set(w.hid, { s: 'refused', limit: d.limit, retryAfterMs: d.retryAfterMs });
  }

  /**
   * A lone request of `key` (default cost) that the store decided and whose answer was lost: its
   * units stay booked if it fit (failures over-count, never under-count), and its slot comes back
   * at once (the Redis store releases by grant id after a failed decide).
   */
  #lost(key: string, t: number): void {
    const k = this.#key(key);
    const u = units(this.policy, undefined);
    const slot = this.#slot();
    if (!k.limits.decide(this.policy, u, slot, t).ok) return;
    const g: MGrant = {
      hid: -1,
      gen: k.limits.gen,
      at: t,
      cost: undefined,
      booked: new Map(),
      slotHeld: slot,
      leaseEnd: t + LEASE_MS,
      settled: false,
      cancelled: false,
    };
    k.limits.book(this.policy, g, u, slot, t);
    if (slot) k.limits.release(g);
  }

  #slot(): boolean {
    return this.policy.concurrency !== null;
  }

  #enqueue(k: SimKey, w: SimWaiter, t: number): boolean {
    if (k.queue.length >= MAX_QUEUE) {
      this.#end(w.hid, 'QUEUE_FULL', t);
      return false;
    }
    let i = k.queue.length;
    while (i > 0 && k.queue[i - 1]!.priority < w.priority) i--;
    k.queue.splice(i, 0, w);
    return true;
  }

  #remove(k: SimKey, w: SimWaiter): void {
    const i = k.queue.indexOf(w);
    if (i >= 0) k.queue.splice(i, 1);
  }

  #grant(k: SimKey, w: SimWaiter, t: number): void {
    const slot = this.#slot();
    const g: MGrant = {
      hid: w.hid,
      gen: k.limits.gen,
      at: t,
      cost: w.cost,
      booked: new Map(),
      slotHeld: slot,
      leaseEnd: t + LEASE_MS,
      settled: false,
      cancelled: false,
    };
    k.limits.book(this.policy, g, w.units, slot, t);
    this.grants.set(w.hid, g);
    const booked: Record<string, number> = {};
    this.policy.limits.forEach((l, i) => (booked[l.name] = w.units[i]!));
    this.outcomes.set(w.hid, { s: 'granted', at: t, booked });
  }

  /** Decides the queue from its head, after ending the waiters whose deadline has come. */
  #pump(k: SimKey, t: number): void {
    if (this.closed) return;
    for (const w of k.queue.slice()) {
      if (w.deadline <= t) {
        this.#remove(k, w);
        this.#end(w.hid, 'ACQUIRE_TIMEOUT', t);
      }
    }
    while (k.queue.length > 0) {
      const head = k.queue[0]!;
      const d = k.limits.decide(this.policy, head.units, this.#slot(), t);
      if (!d.ok) {
        k.wakeAt = wakeFor(d, t);
        break;
      }
      k.queue.shift();
      this.#grant(k, head, t);
    }
  }

  #abort(hid: number, t: number): void {
    const w = this.#waiters.get(hid)!;
    const k = this.#key(w.key);
    this.#remove(k, w);
    this.#end(hid, 'ACQUIRE_ABORTED', t);
    this.#pump(k, t);
  }

  #settle(hid: number, actual: Cost, t: number): OpExpect {
    const g = this.grants.get(hid)!;
    if (g.cancelled || g.settled) return { sync: 'GRANT_STATE' };
    let to: number[];
    try {
      to = units(this.policy, { ...g.cost, ...actual }, false);
    } catch (e) {
      return { sync: (e as Predicted).code };
    }
    g.settled = true;
    if (this.closed) return { async: 'LIMITER_CLOSED' }; // README: settle after close rejects
    const k = this.#key(this.#waiterKey(hid));
    const from = units(this.policy, g.cost, false);
    k.limits.settle(this.policy, g, from, to, t);
    this.#pump(k, t);
    return { async: 'ok' };
  }

  #cancel(hid: number, t: number, viaReservation: boolean): OpExpect {
    const g = this.grants.get(hid)!;
    if (g.cancelled || g.settled)
      return viaReservation ? { async: 'GRANT_STATE' } : { sync: 'GRANT_STATE' };
    g.cancelled = true;
    if (this.closed) return { async: 'LIMITER_CLOSED' };
    const k = this.#key(this.#waiterKey(hid));
    const from = units(this.policy, g.cost, false);
    k.limits.settle(
      this.policy,
      g,
      from,
      from.map(() => 0),
      t,
    );
    if (g.slotHeld) {
      g.slotHeld = false;
      if (g.gen === k.limits.gen) k.limits.release(g);
    }
    this.#pump(k, t);
    return { async: 'ok' };
  }

  #feedback(key: string, signal: Signal, t: number): OpExpect {
    const k = this.#key(key);
    const reported = (signal.limits ?? []).filter(
      (l) => typeof l.remaining === 'number' && l.remaining >= 0,
    );
    if (signal.throttled !== true) {
      // A dimension used up with a known reset: pause until the latest such reset.
      let latest = 0;
      for (const r of reported)
        if (r.remaining === 0 && r.resetMs !== null && r.resetMs! > latest) latest = r.resetMs!;
      const forMs = Math.min(latest, MAX_PAUSE_MS);
      if (forMs > 0) {
        if (this.closed) return { async: 'LIMITER_CLOSED' };
        k.limits.pause(forMs, t);
        this.pauses.push(`${key}:${forMs}@${t}`);
        this.#pump(k, t);
      }
    }
    if (signal.throttled === true) {
      let ms = signal.retryAfterMs ?? null;
      if (ms === null) {
        const out = reported.filter((l) => l.remaining === 0 && l.resetMs !== null);
        ms = out.length > 0 ? Math.max(...out.map((l) => l.resetMs!)) : 1000;
      }
      if (ms > 0) {
        if (this.closed) return { async: 'LIMITER_CLOSED' };
        const forMs = Math.min(Math.ceil(ms), MAX_PAUSE_MS);
        k.limits.pause(forMs, t);
        this.pauses.push(`${key}:${forMs}@${t}`);
        this.#pump(k, t);
      }
    }
    if (reported.length === 0) return { async: 'ok' };
    if (!this.policy.limits.some((l) => reported.some((r) => r.dimension === l.dimension)))
      return { async: 'ok' };
    if (this.closed) return { async: 'LIMITER_CLOSED' };
    const ours = k.limits.read(this.policy, t).limits;
    let any = false;
    const over = this.policy.limits.map((l, i) => {
      let theirs = Infinity;
      for (const r of reported) {
        if (
          r.dimension === l.dimension &&
          l.intervalMs <= Math.max(r.resetMs ?? 0, 60_000) &&
          !(r.remaining === 0 && r.resetMs !== null)
        )
          theirs = Math.min(theirs, r.remaining!);
      }
      const o = ours[i]!.remaining > theirs ? ours[i]!.remaining - theirs : 0;
      if (o > 0) any = true;
      return o;
    });
    if (any) {
      k.limits.charge(this.policy, over, t);
      this.#pump(k, t);
    }
    return { async: 'ok' };
  }

  /** The next instant something is due on key `name` after `t` (a lease, a deadline, the head fitting). */
  #due(name: string, k: SimKey, t: number): number {
    let at = Infinity;
    for (const g of this.grants.values()) {
      if (g.slotHeld && g.leaseEnd > t && this.#waiterKey(g.hid) === name)
        at = Math.min(at, g.leaseEnd);
    }
    for (const w of k.queue) at = Math.min(at, w.deadline);
    if (k.queue.length > 0) at = Math.min(at, k.wakeAt);
    return at;
  }

  #advance(to: number): void {
    if (this.closed) {
      this.now = to;
      return;
    }
    for (;;) {
      const dues = new Map<string, number>();
      let next = Infinity;
      for (const [name, k] of this.keys) {
        const d = this.#due(name, k, this.now);
        dues.set(name, d);
        next = Math.min(next, d);
      }
      if (next > to) break;
      this.now = next;
      for (const [name, k] of this.keys) {
        if (dues.get(name) !== next) continue;
        // The key's timer: leases that end now give their slot back, then the queue is decided.
        for (const g of this.grants.values()) {
          if (g.slotHeld && g.leaseEnd <= next && this.#waiterKey(g.hid) === name) {
            g.slotHeld = false;
            if (g.gen === k.limits.gen) k.limits.release(g);
          }
        }
        this.#pump(k, next);
      }
    }
    this.now = to;
  }
}
