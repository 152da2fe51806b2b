/**
 * Comparisons of what the simulator predicts with what the runtime did, and the checks that need
 * no prediction (a ledger of the recorded events). Each returns the problems it found, as lines.
 */
import type { Real, OpResult } from './real.js';
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

interface LedgerGrant {
  readonly at: number;
  readonly units: ReadonlyMap<string, number>;
}

interface LedgerLimit {
  readonly algorithm: MLimit['algorithm'];
  readonly intervalMs: number;
  /** The largest limit (windows) or burst (bucket), and the largest rate, over every policy. */
  readonly most: number;
  readonly rate: number;
}

/**
 * The ledger: from the events alone (grants, settles, cancels, resets), per key and per reset,
 * what each limit admitted, net of what settles and cancels asked back (an upper bound of what
 * they gave), against the largest limit any policy gave it:
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
        limits.set(id, {
          algorithm: l.algorithm,
          intervalMs: l.intervalMs,
          most: Math.max(was?.most ?? 0, l.capacity),
          rate: Math.max(was?.rate ?? 0, l.limit),
        });
      }
    }
  }
  // Per key: the current reset generation; per grant, what it booked; per generation, the lists.
  const gens = new Map<string, number>();
  const grants = new Map<string, LedgerGrant & { readonly gen: string }>();
  const booked = new Map<string, LedgerGrant[]>();
  const refunds = new Map<string, { at: number; grantAt: number; units: Map<string, number> }[]>();
  for (const { type, e, policy } of real.events) {
    const key = `${String(e.limiter)}/${String(e.key)}`;
    const gen = `${key}#${gens.get(key) ?? 0}`;
    const byName = (arr: unknown): Map<string, number> =>
      new Map(policy.limits.map((l, i) => [l.name, (arr as number[])[i] ?? 0]));
    if (type === 'reset') gens.set(key, (gens.get(key) ?? 0) + 1);
    else if (type === 'granted') {
      const g = { at: e.at, units: byName(e.units), gen };
      grants.set(`${String(e.limiter)}/${String(e.id)}`, g);
      booked.set(gen, [...(booked.get(gen) ?? []), g]);
    } else if (type === 'settled' || type === 'cancelled') {
      const g = grants.get(`${String(e.limiter)}/${String(e.id)}`);
      if (g === undefined) continue;
      const back = new Map<string, number>();
      if (type === 'settled') {
        const est = byName(e.estimated);
        const act = byName(e.actual);
        for (const [name, u] of est) back.set(name, Math.max(0, u - (act.get(name) ?? 0)));
      } else for (const [name, u] of g.units) back.set(name, u);
      refunds.set(g.gen, [...(refunds.get(g.gen) ?? []), { at: e.at, grantAt: g.at, units: back }]);
    }
  }
  for (const [gen, list] of booked) {
    const backs = refunds.get(gen) ?? [];
    const limiter = gen.split('/')[0]!;
    for (const [id, l] of limits) {
      if (!id.startsWith(`${limiter}/`)) continue;
      const name = id.slice(limiter.length + 1);
      const u = (g: LedgerGrant): number => g.units.get(name) ?? 0;
      const back = (r: (typeof backs)[number]): number => r.units.get(name) ?? 0;
      for (const b of list) {
        if (u(b) === 0) continue;
        let admitted = 0;
        let given = 0;
        let allowed = l.most;
        if (l.algorithm === 'fixed-window') {
          const w = Math.floor(b.at / l.intervalMs);
          const inW = (t: number): boolean => Math.floor(t / l.intervalMs) === w && t <= b.at;
          for (const g of list) if (inW(g.at)) admitted += u(g);
          for (const r of backs) if (inW(r.at) && inW(r.grantAt)) given += back(r);
        } else if (l.algorithm === 'sliding-window') {
          const inW = (t: number): boolean => t > b.at - l.intervalMs && t <= b.at;
          for (const g of list) if (inW(g.at)) admitted += u(g);
          for (const r of backs) if (r.at <= b.at && inW(r.grantAt)) given += back(r);
        } else {
          // Every span [a.at, b.at] that starts at a grant: the burst, and the rate over the span.
          for (const a of list) {
            if (a.at > b.at) continue;
            let n = 0;
            let m = 0;
            for (const g of list) if (g.at >= a.at && g.at <= b.at) n += u(g);
            for (const r of backs) if (r.at >= a.at && r.at <= b.at) m += back(r);
            const most = l.most + Math.floor((l.rate * (b.at - a.at)) / l.intervalMs);
            if (n - m > most) {
              [admitted, given, allowed] = [n, m, most];
              break;
            }
          }
        }
        if (admitted - given > allowed) {
          out.push(
            `ledger: ${gen} limit ${name} admitted ${admitted} (net of ${given} asked back) by ${b.at}, more than ${allowed}`,
          );
          return;
        }
      }
    }
  }
}
