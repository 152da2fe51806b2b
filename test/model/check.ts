/**
 * Comparisons of what the simulator predicts with what the runtime did, and the checks that need
 * no prediction (a ledger of the recorded events). Each returns the problems it found, as lines.
 */
import type { Real, OpResult, Recorded } from './real.js';
import type { MLimit, MPolicy } from './reference.js';
import type { OpExpect, Reading, Sim, SimOp, WaiterOutcome } from './sim.js';

export function show(x: unknown): string {
  return JSON.stringify(x, (_k, v: unknown) => (v === Infinity ? 'Infinity' : v));
}

function sameOutcome(want: WaiterOutcome, got: Real['handles'][number]['outcome']): boolean {
  if (got.s === 'thrown') return false;
  if (want.s !== got.s) return false;
  switch (want.s) {
    case 'pending':
      return true;
    case 'granted':
      return got.s === 'granted' && got.at === want.at && show(got.booked) === show(want.booked);
    case 'refused':
      return (
        got.s === 'refused' &&
        got.limit === want.limit &&
        (want.retryAfterMs === null || got.retryAfterMs === want.retryAfterMs)
      );
    case 'failed':
      return got.s === 'failed' && want.codes.includes(got.codes[0]!) && got.at === want.at;
  }
}

export function sameReading(want: Reading, got: Reading | undefined, queued: boolean): boolean {
  if (got === undefined) return false;
  return (
    show(got.limits) === show(want.limits) &&
    got.inFlight === want.inFlight &&
    (!queued || got.queued === want.queued)
  );
}

/** One call's expectation against its result; `first`: nothing was in flight when it was made. */
export function compareOp(
  i: number,
  op: SimOp,
  want: OpExpect,
  got: OpResult,
  first: boolean,
  out: string[],
): void {
  const where = `call #${i} ${show(op)}`;
  if (want.sync !== got.sync) {
    out.push(`${where}: threw ${got.sync ?? 'nothing'}, expected ${want.sync ?? 'nothing'}`);
    return;
  }
  if (want.async !== undefined && want.async !== got.async) {
    out.push(`${where}: its promise ended ${got.async ?? '(none)'}, expected ${want.async}`);
  }
  if (
    want.reading !== undefined &&
    got.async === 'ok' &&
    !sameReading(want.reading, got.reading, first)
  ) {
    out.push(`${where}: stats read ${show(got.reading)}, expected ${show(want.reading)}`);
  }
  if (want.etaMs !== undefined && want.etaMs !== got.etaMs) {
    out.push(`${where}: etaMs ${show(got.etaMs)}, expected ${show(want.etaMs)}`);
  }
}

/** Every waiter of the main limiter against its predicted end. */
export function compareWaiters(sim: Sim, real: Real, out: string[]): void {
  for (const h of real.handles) {
    if (h.ends > 1) out.push(`waiter #${h.hid} (${h.kind} ${h.key}) ended ${h.ends} times`);
    const want = sim.outcomes.get(h.hid);
    if (want === undefined) continue; // a reserve that threw: compared as a call
    if (!sameOutcome(want, h.outcome)) {
      out.push(
        `waiter #${h.hid} (${h.kind} ${h.key} ${show(h.cost ?? {})}): ${show(h.outcome)}, expected ${show(want)}`,
      );
    }
  }
}

/**
 * The ledger: from the recorded events alone, no terminal event twice for one waiter, a grant
 * event for every grant a caller holds, and the concurrency slots held by grant and release
 * events never above the policy's.
 */
export function checkEvents(real: Real, out: string[]): void {
  const ends = new Map<string, string[]>();
  for (const { type, e } of real.events) {
    if (type !== 'granted' && type !== 'timeout' && type !== 'aborted') continue;
    const id = `${String(e.limiter)}/${String(e.id)}`;
    const list = ends.get(id) ?? [];
    list.push(type);
    ends.set(id, list);
  }
  for (const [id, list] of ends) {
    if (list.length > 1) out.push(`waiter ${id} has several terminal events: ${list.join(', ')}`);
  }
  for (const h of real.handles) {
    if (h.grant === undefined) continue;
    const list = ends.get(`${h.limiter}/${h.grant.id}`) ?? [];
    if (list.join() !== 'granted')
      out.push(`waiter #${h.hid} holds grant ${h.grant.id}, whose events are [${list.join(', ')}]`);
  }
}

/** A grant as the ledger sees it on one limit: when, and how many units it booked there. */
interface LedgerGrant {
  readonly at: number;
  readonly units: number;
}

/** What a settle or cancel asked back on one limit: when, of a grant booked when. */
interface LedgerRefund {
  readonly at: number;
  readonly grantAt: number;
  readonly units: number;
}

interface LedgerLimit {
  readonly algorithm: MLimit['algorithm'];
  readonly intervalMs: number;
  /** The largest limit (windows) or burst (bucket), and the largest rate, over every policy. */
  readonly most: number;
  readonly rate: number;
}

/**
 * Events that show the key's state was written under the policy in force when they were emitted
 * (a decision, a settle, a cancel), and so rebased to it: a limit that policy lacks (by name,
 * algorithm and, for a window, interval) lost its state there, and comes back empty (README,
 * setLimits: "A limit keeps its state when the new policy has a limit of the same name and
 * algorithm"). A refusal by 'queue' or 'breaker' never reaches the store, nor does one by
 * 'paused' (the store refuses a paused key before it rebases). A 'queued' event follows a
 * decision under the same policy (its own, or the head's at setLimits), unless the key is paused.
 * A setLimits decides at once the keys with waiters queued (README), which emits nothing when
 * the head is refused: the ledger takes a key whose events left a waiter queued as rebased there
 * (a waiter that ended without an event, e.g. a cost above the new capacity, is still counted).
 * Where the ledger takes a key as rebased and the store did not (a paused key; the main limiter
 * only: the breaker limiter is never paused), it starts a limit's life where the store kept it,
 * which can only hide an over-admission (the simulator's exact readings still catch it), never
 * report one that did not happen.
 */
function rebasedBy(type: string, e: Recorded['e']): boolean {
  switch (type) {
    case 'granted':
    case 'settled':
    case 'cancelled':
    case 'queued':
      return true;
    case 'refused':
      return e.limit !== 'queue' && e.limit !== 'breaker' && e.limit !== 'paused';
    default:
      return false;
  }
}

/**
 * The ledger: from the events alone (grants, settles, cancels, resets), per key and per life of
 * each limit's state (a reset starts new lives; so does a rebase under a policy without that
 * limit, see {@link rebasedBy}), what each limit admitted, net of what settles and cancels asked
 * back (an upper bound of what they gave), against the largest limit any policy gave it:
 * - a fixed window admits at most its limit per aligned window;
 * - a sliding window at most its limit in any span of its interval;
 * - a token bucket at most its burst plus its rate over any span.
 * Events are read in emission order, which is the mailbox order on the memory store.
 */
export function checkLedger(real: Real, policies: readonly MPolicy[][], out: string[]): void {
  const limits = new Map<string, LedgerLimit>();
  for (const [limiter, list] of [
    ['main', policies[0]!],
    ['brk', policies[1]!],
  ] as const) {
    for (const p of list) {
      for (const l of p.limits) {
        const id = `${limiter}/${l.name}`;
        const was = limits.get(id);
        if (was !== undefined && (was.algorithm !== l.algorithm || was.intervalMs !== l.intervalMs))
          throw new Error(
            `checkLedger: limit ${id} changes algorithm or interval between policies`,
          );
        limits.set(id, {
          algorithm: l.algorithm,
          intervalMs: l.intervalMs,
          most: Math.max(was?.most ?? 0, l.capacity),
          rate: Math.max(was?.rate ?? 0, l.limit),
        });
      }
    }
  }
  // Per key, the resets so far; per key, reset and limit, the lives of its state so far.
  const resets = new Map<string, number>();
  const lives = new Map<string, number>();
  const lifeOf = (key: string, name: string): string => {
    const base = `${key}#${resets.get(key) ?? 0}/${name}`;
    return `${base}.${lives.get(base) ?? 0}`;
  };
  // Per grant, when and the life it booked each limit in; per life, its grants and refunds.
  const grants = new Map<
    string,
    { at: number; lives: Map<string, { life: string; units: number }> }
  >();
  const booked = new Map<string, LedgerGrant[]>();
  const refunds = new Map<string, LedgerRefund[]>();
  const push = <T>(m: Map<string, T[]>, k: string, v: T): void =>
    void m.set(k, [...(m.get(k) ?? []), v]);
  /** `key` (limiter/key) was rebased under `policy`: limits it lacks start a new life. */
  const rebased = (key: string, policy: MPolicy): void => {
    const limiter = key.slice(0, key.indexOf('/'));
    for (const [id, l] of limits) {
      if (!id.startsWith(`${limiter}/`)) continue;
      const name = id.slice(limiter.length + 1);
      const kept = policy.limits.some(
        (x) => x.name === name && x.algorithm === l.algorithm && x.intervalMs === l.intervalMs,
      );
      if (kept) continue;
      const base = `${key}#${resets.get(key) ?? 0}/${name}`;
      lives.set(base, (lives.get(base) ?? 0) + 1);
    }
  };
  // Waiters queued per key, by the events (queued, then granted, timed out or aborted).
  const queued = new Map<string, Set<string>>();
  let change = 0;
  for (const [index, { type, e, policy }] of real.events.entries()) {
    for (
      ;
      change < real.limitChanges.length && real.limitChanges[change]!.after <= index;
      change++
    ) {
      const c = real.limitChanges[change]!;
      for (const [key, ids] of queued)
        if (ids.size > 0 && key.startsWith(`${c.limiter}/`)) rebased(key, c.policy);
    }
    if (e.limiter === undefined || e.key === undefined) continue;
    const limiter = String(e.limiter);
    const key = `${limiter}/${String(e.key)}`;
    const byName = (arr: unknown): Map<string, number> =>
      new Map(policy.limits.map((l, i) => [l.name, (arr as number[])[i] ?? 0]));
    if (type === 'reset') resets.set(key, (resets.get(key) ?? 0) + 1);
    if (rebasedBy(type, e)) rebased(key, policy);
    if (type === 'queued') {
      if (!queued.has(key)) queued.set(key, new Set());
      queued.get(key)!.add(String(e.id));
    } else if (type === 'granted' || type === 'timeout' || type === 'aborted') {
      queued.get(key)?.delete(String(e.id));
    }
    if (type === 'granted') {
      const g = { at: e.at, lives: new Map<string, { life: string; units: number }>() };
      grants.set(`${limiter}/${String(e.id)}`, g);
      for (const [name, u] of byName(e.units)) {
        const life = lifeOf(key, name);
        g.lives.set(name, { life, units: u });
        push(booked, life, { at: e.at, units: u });
      }
    } else if (type === 'settled' || type === 'cancelled') {
      const g = grants.get(`${limiter}/${String(e.id)}`);
      if (g === undefined) continue;
      const est = type === 'settled' ? byName(e.estimated) : new Map<string, number>();
      const act = type === 'settled' ? byName(e.actual) : new Map<string, number>();
      for (const [name, { life, units }] of g.lives) {
        // What it asks back of the life it booked in (a settle reports the estimate and actual
        // under the policy in force; a limit the grant did not book on is not among its lives).
        const u =
          type === 'settled' ? Math.max(0, (est.get(name) ?? 0) - (act.get(name) ?? 0)) : units;
        if (u > 0) push(refunds, life, { at: e.at, grantAt: g.at, units: u });
      }
    }
  }
  for (const [life, list] of booked) {
    const backs = refunds.get(life) ?? [];
    const limiter = life.split('/')[0]!;
    const name = life.slice(life.lastIndexOf('/') + 1, life.lastIndexOf('.'));
    const l = limits.get(`${limiter}/${name}`)!;
    for (const b of list) {
      if (b.units === 0) continue;
      let admitted = 0;
      let given = 0;
      let allowed = l.most;
      if (l.algorithm === 'fixed-window') {
        const w = Math.floor(b.at / l.intervalMs);
        const inW = (t: number): boolean => Math.floor(t / l.intervalMs) === w && t <= b.at;
        for (const g of list) if (inW(g.at)) admitted += g.units;
        for (const r of backs) if (inW(r.at) && inW(r.grantAt)) given += r.units;
      } else if (l.algorithm === 'sliding-window') {
        const inW = (t: number): boolean => t > b.at - l.intervalMs && t <= b.at;
        for (const g of list) if (inW(g.at)) admitted += g.units;
        for (const r of backs) if (r.at <= b.at && inW(r.grantAt)) given += r.units;
      } else {
        // Every span [a.at, b.at] that starts at a grant: the burst, and the rate over the span.
        for (const a of list) {
          if (a.at > b.at) continue;
          let n = 0;
          let m = 0;
          for (const g of list) if (g.at >= a.at && g.at <= b.at) n += g.units;
          for (const r of backs) if (r.at >= a.at && r.at <= b.at) m += r.units;
          const most = l.most + Math.floor((l.rate * (b.at - a.at)) / l.intervalMs);
          if (n - m > most) {
            [admitted, given, allowed] = [n, m, most];
            break;
          }
        }
      }
      if (admitted - given > allowed) {
        out.push(
          `ledger: ${life} (key#reset/limit.life) admitted ${admitted} (net of ${given} asked back) by ${b.at}, more than ${allowed}`,
        );
        return;
      }
    }
  }
}
