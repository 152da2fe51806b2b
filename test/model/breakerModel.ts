/**
 * BrkModel checks the limiter with a circuit breaker (whenOpen 'wait'), whose timing the model
 * does not predict: it follows the runtime's own events, key by key in the order they were
 * emitted (its steps make one call each, so that order is the mailbox's), and checks each one
 * against the reference limits:
 * - a grant books the caller's cost compiled under the policy in force (a waiter that waited
 *   behind an open breaker while the limits changed included), and only when the model says it
 *   fits: every limit has room, a slot is free;
 * - settles, cancels, releases and resets move the model as they move the store, and every key
 *   then reads exactly what the model holds;
 * - a key's breaker is forgotten once the key was evicted and the breaker is idle (closed, no
 *   call out, no failure counted), as the README says.
 */
import { show } from './check.js';
import type { Real, Recorded } from './real.js';
import { KeyLimits, units, type MGrant, type MPolicy, type Predicted } from './reference.js';
import { BRK_POLICIES, LEASE_MS } from './setup.js';

interface BrkGrant extends MGrant {
  readonly key: string;
}

export class BrkModel {
  policy: MPolicy = BRK_POLICIES[0]!;
  readonly keys = new Map<string, KeyLimits>();
  readonly grants = new Map<string, BrkGrant>();
  /** Events of `real.events` already followed. */
  #seen = 0;
  /** Waiters in each key's queue (by the events): a limit change decides them at once. */
  readonly #queued = new Map<string, Set<string>>();
  /**
   * Per key, the waiter queued by the step being followed (a brk step makes one call). With an
   * async store a try is queued while the store decides it (a 'queued' event), and its refusal
   * carries no id: the refusal takes it out of the queue again.
   */
  readonly #queuedNow = new Map<string, string>();

  #queue(key: string): Set<string> {
    let q = this.#queued.get(key);
    if (q === undefined) this.#queued.set(key, (q = new Set()));
    return q;
  }

  /**
   * setLimits: a key with waiters queued decides its head at once, which takes its state under the
   * new policy (README, setLimits); other keys take it at their next decision.
   */
  setLimits(policy: MPolicy, t: number): void {
    this.policy = policy;
    for (const [key, q] of this.#queued) if (q.size > 0) this.#key(key, t).take(policy, t);
  }

  #key(key: string, t: number): KeyLimits {
    let k = this.keys.get(key);
    if (k === undefined) {
      k = new KeyLimits(this.policy, t);
      this.keys.set(key, k);
    }
    return k;
  }

  /** Follows the events emitted since the last call; returns the keys evicted meanwhile. */
  follow(real: Real, out: string[]): Set<string> {
    const evicted = new Set<string>();
    const events = real.events;
    this.#queuedNow.clear();
    for (; this.#seen < events.length; this.#seen++) {
      const ev = events[this.#seen]!;
      if (ev.e.limiter !== 'brk') continue;
      const key = String(ev.e.key);
      if (ev.type === 'evicted') evicted.add(key);
      else evicted.delete(key);
      this.#event(real, ev, key, out);
    }
    return evicted;
  }

  #event(real: Real, { type, e }: Recorded, key: string, out: string[]): void {
    const t = e.at;
    const id = String(e.id);
    const where = `brk ${type} of ${key} at ${t}`;
    const q = this.#queue(key);
    switch (type) {
      case 'queued':
        // Decided on arrival (alone in the queue), or behind a head decided since the last change.
        if (q.size === 0) this.#key(key, t).take(this.policy, t);
        q.add(id);
        this.#queuedNow.set(key, id);
        return;
      case 'refused': {
        const tried = this.#queuedNow.get(key);
        if (tried !== undefined) q.delete(tried);
        this.#queuedNow.delete(key);
        if (e.limit !== 'queue') this.#key(key, t).take(this.policy, t);
        return;
      }
      case 'timeout':
      case 'aborted':
        q.delete(id);
        return;
      case 'granted': {
        q.delete(id);
        const h = real.handles.find((x) => x.grant?.id === id);
        if (h === undefined) {
          out.push(`${where}: no caller holds grant ${id}`);
          return;
        }
        let u: number[];
        try {
          u = units(this.policy, h.cost);
        } catch (err) {
          out.push(
            `${where}: granted a cost the policy in force refuses (${(err as Predicted).code})`,
          );
          return;
        }
        if (show(e.units) !== show(u)) {
          out.push(`${where}: booked ${show(e.units)}, the policy in force makes it ${show(u)}`);
        }
        const k = this.#key(key, t);
        const slot = this.policy.concurrency !== null;
        const d = k.decide(this.policy, u, slot, t);
        if (!d.ok)
          out.push(`${where}: granted ${show(h.cost ?? {})}, which the model refuses (${d.limit})`);
        const g: BrkGrant = {
          hid: h.hid,
          key,
          gen: k.gen,
          at: t,
          cost: h.cost,
          booked: new Map(),
          slotHeld: slot,
          leaseEnd: t + LEASE_MS,
          settled: false,
          cancelled: false,
        };
        k.book(this.policy, g, u, slot, t);
        this.grants.set(id, g);
        return;
      }
      case 'settled':
      case 'cancelled': {
        const g = this.grants.get(id);
        if (g === undefined) return void out.push(`${where}: unknown grant ${id}`);
        const k = this.#key(key, t);
        const from = units(this.policy, g.cost, false);
        const to =
          type === 'settled'
            ? units(this.policy, { ...g.cost, ...real.brkSettles.get(id) }, false)
            : from.map(() => 0);
        if (
          type === 'settled' &&
          (show(e.estimated) !== show(from) || show(e.actual) !== show(to))
        ) {
          out.push(
            `${where}: settled ${show(e.estimated)} → ${show(e.actual)}, expected ${show(from)} → ${show(to)}`,
          );
        }
        k.settle(this.policy, g, from, to, t);
        if (type === 'cancelled' && g.slotHeld) {
          g.slotHeld = false;
          if (g.gen === k.gen) k.release(g);
        }
        return;
      }
      case 'released': {
        const g = this.grants.get(id);
        if (g === undefined) return void out.push(`${where}: unknown grant ${id}`);
        if (!g.slotHeld) out.push(`${where}: grant ${id} gave back a slot it no longer held`);
        g.slotHeld = false;
        const k = this.#key(key, t);
        if (g.gen === k.gen) k.release(g);
        return;
      }
      case 'reset':
        this.#key(key, t).reset(this.policy, t);
        return;
    }
  }

  /**
   * Whether `key`'s breaker has no call out that would report to it: every grant of the key gave
   * its slot back (release, cancel, lease end) or was reported, and no caller waits.
   */
  idle(real: Real, key: string): boolean {
    for (const [id, g] of this.grants) {
      if (g.key === key && g.slotHeld && !real.permitEnded.has(id)) return false;
    }
    return !real.handles.some(
      (h) => h.limiter === 'brk' && h.key === key && h.outcome.s === 'pending',
    );
  }

  /** What stats(key) of the breaker limiter should read now. */
  read(key: string, t: number): ReturnType<KeyLimits['read']> {
    return this.#key(key, t).read(this.policy, t);
  }
}
