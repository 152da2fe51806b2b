/**
 * Runs a schedule against the core and, side by side, the reference model, and checks what a
 * property asks for at every step. A failed check throws (vitest `expect`), which is what
 * fast-check needs to shrink to a counterexample.
 */
import { expect } from 'vitest';
import {
  CONCURRENCY,
  advance,
  compileCost,
  compilePolicy,
  decide,
  initialState,
  read,
  refund,
  release,
  settle,
} from '../../src/limiter/index.js';
import type {
  CostSpec,
  FixedWindowState,
  GrantRecord,
  KeyState,
  LimitState,
  Policy,
  PolicySpec,
  SlidingWindowState,
  TokenBucketState,
  Units,
} from '../../src/limiter/index.js';
import { FixedWindowModel, KeyModel, SlidingWindowModel } from './model.js';
import type { Op } from './schedule.js';

/** Which checks a run makes; each property turns on its own. */
export interface Checks {
  /**
   * Agreement with the reference model: every decision, retry, name, reading and `used` exactly;
   * a token-bucket refund gives back at most what the grant still holds in the model's queue, and
   * exactly that (up to what it asks) when no other refund gave anything back since the grant's
   * booking and it was never charged extra.
   */
  readonly model?: boolean;
  /** A refusal returns the state passed in, deep-equal to a copy taken before. */
  readonly refusal?: boolean;
  /** A grant books every limit by exactly its units; a refusal is justified by some limit or the slots. */
  readonly allOrNothing?: boolean;
  /** Grant then refund (and release) gives back the state advanced to that instant. */
  readonly refund?: boolean;
  /**
   * A refusal's retryAfterMs is exact: the cost fits then, and not a millisecond before. It counts
   * from the key's time, max(now, state.at): after the clock stepped back, a caller waits that gap too.
   */
  readonly retry?: boolean;
  /**
   * No window / interval admits more than the limit allows, net: each grant counts at the instant
   * it was booked, less what refunds gave back; an extra charge counts at the instant it is made.
   */
  readonly overAdmission?: boolean;
  /** Slots: never more than `concurrency` held; release frees exactly one. */
  readonly concurrency?: boolean;
}

interface Held {
  grant: GrantRecord;
  refunded: boolean;
  released: boolean;
  /** The grant's id in the model (when the model runs). */
  id: number;
  /**
   * What the grant booked and still holds, per token-bucket limit, by booking instant: its
   * acquire, then each extra charge of a settle, oldest first. A give-back takes from the
   * newest first, and counts at that booking's instant.
   */
  holds: { bookedAt: number; left: number[] }[];
}

/** One change to usage, for the over-admission ledger. */
interface Entry {
  /**
   * The booking instant it counts at: when it was booked; for a give-back, the instant of what it
   * gave back (token bucket: the grant's newest booking it still holds, see Held.holds; windows:
   * the grant's own).
   */
  readonly bookedAt: number;
  /**
   * Signed amounts per limit, in the core's scale (token bucket: units × interval): for a refund,
   * what it gave back (token bucket) or asked (windows, whose refunds reach only the grant's own
   * entry or window).
   */
  readonly amounts: readonly number[];
}

/** The smallest capacity among the limits counting `dimension`, if any. */
export function minCapacity(policy: Policy, dimension: string): number | undefined {
  const caps = policy.limits.filter((l) => l.dimension === dimension).map((l) => l.capacity);
  return caps.length === 0 ? undefined : Math.min(...caps);
}

/** A cost that fits the policy's capacities. */
export function acquireCost(policy: Policy, requests: number, tokensPct: number): CostSpec {
  const rc = minCapacity(policy, 'requests');
  const tc = minCapacity(policy, 'tokens');
  const cost: Record<string, number> = {
    requests: rc === undefined ? requests : Math.min(requests, rc),
  };
  if (tc !== undefined) cost.tokens = Math.floor((tc * tokensPct) / 100);
  return cost;
}

/** A settle of up to twice the capacities (extra charges included). */
export function settleCost(policy: Policy, requestsPct: number, tokensPct: number): CostSpec {
  const rc = minCapacity(policy, 'requests') ?? 1;
  const tc = minCapacity(policy, 'tokens');
  const cost: Record<string, number> = { requests: Math.floor((rc * requestsPct) / 100) };
  if (tc !== undefined) cost.tokens = Math.floor((tc * tokensPct) / 100);
  return cost;
}

/** `used` of one limit state in the core's own scale. */
export function usedOf(s: LimitState): number {
  return (s as TokenBucketState | SlidingWindowState | FixedWindowState).used;
}

/** The scale of `used` per unit of cost: interval for a token bucket, 1 for windows. */
function scaleOf(policy: Policy, i: number): number {
  const l = policy.limits[i]!;
  return l.algorithm === 'token-bucket' ? l.intervalMs : 1;
}

/** Run `ops` from `start` and make the checks asked for. */
export function runSchedule(
  spec: PolicySpec,
  start: number,
  ops: readonly Op[],
  checks: Checks,
): void {
  const policy = compilePolicy(spec);
  let now = start;
  let state: KeyState = initialState(policy, now);
  const model = new KeyModel(policy, now);
  const held: Held[] = [];
  const ledger: Entry[] = [];

  const live = (pick: number, ok: (h: Held) => boolean): Held | undefined => {
    const options = held.filter(ok);
    return options.length === 0 ? undefined : options[pick % options.length];
  };

  /** The core call `f` must not mutate the state it is given. */
  const pure = <T>(f: () => T): T => {
    const before = structuredClone(state);
    const out = f();
    expect(state).toEqual(before);
    return out;
  };

  const compareWithModel = (): void => {
    const got = read(policy, state, now);
    const want = model.read(now);
    expect(got.limits.map(({ remaining, resetMs }) => ({ remaining, resetMs }))).toEqual(want);
    expect(got.inFlight).toBe(model.inFlight);
    const s = advance(policy, state, now);
    expect(s.limits.map(usedOf)).toEqual(model.used(now));
    policy.limits.forEach((l, i) => {
      const ls = s.limits[i]!;
      const m = model.limits[i]!;
      if (m instanceof SlidingWindowModel)
        expect((ls as SlidingWindowState).log).toEqual(m.clone().log(s.at));
      if (m instanceof FixedWindowModel)
        expect((ls as FixedWindowState).start).toBe(m.clone().start(s.at));
      expect(Number.isSafeInteger(usedOf(ls)), `limit ${l.name} used is an exact integer`).toBe(
        true,
      );
    });
  };

  const checkOverAdmission = (g: number): void => {
    policy.limits.forEach((l, i) => {
      if (l.algorithm === 'token-bucket') {
        // Over [a, g], the net amount booked at instants in [a, g] (each grant net of what its
        // refunds gave back, extra charges at their own instant) is at most
        // burst × interval + limit × (g − a). Exact, in BigInt.
        for (const a of new Set(ledger.map((e) => e.bookedAt))) {
          if (a > g) continue;
          let net = 0n;
          for (const e of ledger)
            if (e.bookedAt >= a && e.bookedAt <= g) net += BigInt(e.amounts[i]!);
          const bound = BigInt(l.capacity) * BigInt(l.intervalMs) + BigInt(l.limit) * BigInt(g - a);
          if (net > bound) {
            expect.fail(
              `token bucket ${l.name} admitted net ${net} scaled booked in [${a}, ${g}]: more than ` +
                `burst ${l.capacity} × ${l.intervalMs} + ${l.limit} × ${g - a}`,
            );
          }
        }
        return;
      }
      // Windows: net usage counted by booking instant, over the window the grant at g fell in.
      const from = l.algorithm === 'sliding-window' ? g - l.intervalMs + 1 : g - (g % l.intervalMs);
      const to = l.algorithm === 'sliding-window' ? g : from + l.intervalMs - 1;
      let net = 0;
      for (const e of ledger) if (e.bookedAt >= from && e.bookedAt <= to) net += e.amounts[i]!;
      if (net > l.limit) {
        expect.fail(
          `${l.algorithm} ${l.name} holds net ${net} in [${from}, ${to}], limit ${l.limit}`,
        );
      }
    });
  };

  const checkRefund = (before: KeyState, granted: KeyState, grant: GrantRecord): void => {
    // At the grant's instant, then later with nothing in between: exactly as if never granted.
    const laters = [
      0,
      1,
      ...policy.limits.flatMap((l) => [l.intervalMs - 1, l.intervalMs, l.intervalMs + 1]),
    ];
    for (const dt of new Set(laters)) {
      const t = grant.at + dt;
      const back = release(refund(policy, granted, grant, t), grant);
      expect(back, `refund ${dt} ms after the grant`).toEqual(advance(policy, before, t));
      const zero = settle(
        policy,
        granted,
        grant,
        grant.units.map(() => 0),
        t,
      );
      expect(release(zero.state, grant)).toEqual(back);
    }
    // Settling at the units booked changes nothing.
    expect(settle(policy, granted, grant, grant.units, grant.at).state).toEqual(granted);
  };

  const acquire = (units: Units, slot: boolean): void => {
    const before = state;
    const copy = structuredClone(state);
    const t = Math.max(now, state.at);
    const d = pure(() => decide(policy, state, units, now, slot));
    const m = checks.model ? model.decide(units, now, slot) : undefined;
    const slotsFull = slot && policy.concurrency !== null && state.inFlight >= policy.concurrency;

    if (m !== undefined) {
      expect(d.ok).toBe(m.ok);
      if (!d.ok && !m.ok) {
        expect({ retryAfterMs: d.retryAfterMs, limit: d.limit }).toEqual({
          retryAfterMs: m.retryAfterMs,
          limit: m.limit,
        });
      }
    }
    if (checks.concurrency && slotsFull) {
      expect(d.ok).toBe(false);
      if (!d.ok) expect(d.limit).toBe(CONCURRENCY);
    }
    if (!d.ok) {
      if (checks.refusal) {
        expect(d.state).toBe(before);
        expect(d.state).toEqual(copy);
      }
      if (checks.allOrNothing) {
        // Some limit (or the slots) really has no room, and the refusal names one that has none.
        const s = advance(policy, state, now);
        const lacks = policy.limits.map((l, i) => {
          const room = l.algorithm === 'token-bucket' ? l.capacity * l.intervalMs : l.limit;
          return usedOf(s.limits[i]!) + units[i]! * scaleOf(policy, i) > room;
        });
        if (d.limit === CONCURRENCY) expect(slotsFull).toBe(true);
        else expect(lacks[policy.limits.findIndex((l) => l.name === d.limit)]).toBe(true);
      }
      if (checks.retry && d.limit !== CONCURRENCY) {
        expect(d.retryAfterMs).toBeGreaterThan(0);
        expect(
          decide(policy, state, units, t + d.retryAfterMs, slot).ok,
          'admitted at retryAfterMs',
        ).toBe(true);
        expect(
          decide(policy, state, units, t + d.retryAfterMs - 1, slot).ok,
          'refused 1 ms before',
        ).toBe(false);
      }
      return;
    }

    const adv = advance(policy, before, now);
    if (checks.allOrNothing) {
      expect(d.grant.at).toBe(t);
      expect(d.grant.units).toEqual(units);
      policy.limits.forEach((_, i) => {
        expect(usedOf(d.state.limits[i]!) - usedOf(adv.limits[i]!)).toBe(
          units[i]! * scaleOf(policy, i),
        );
      });
    }
    if (checks.concurrency) {
      expect(d.state.inFlight).toBe(before.inFlight + (slot ? 1 : 0));
      if (policy.concurrency !== null)
        expect(d.state.inFlight).toBeLessThanOrEqual(policy.concurrency);
    }
    if (checks.refund) checkRefund(before, d.state, d.grant);

    state = d.state;
    const amounts = units.map((u, i) => u * scaleOf(policy, i));
    held.push({
      grant: d.grant,
      refunded: false,
      released: !d.grant.slot,
      id: m?.ok === true ? m.id : -1,
      holds: [{ bookedAt: t, left: [...amounts] }],
    });
    ledger.push({ bookedAt: t, amounts });
    if (checks.overAdmission) checkOverAdmission(t);
  };

  /**
   * Move `h` to `actual` at `now` with the core's `next` state: what each token bucket gave back,
   * checked against the model, then the model and the ledger follow.
   */
  const adjust = (h: Held, actual: Units, next: KeyState): void => {
    const t = Math.max(now, state.at);
    const before = advance(policy, state, now);
    const back = policy.limits.map((l, i) =>
      l.algorithm === 'token-bucket' && actual[i]! < h.grant.units[i]!
        ? usedOf(before.limits[i]!) - usedOf(next.limits[i]!)
        : undefined,
    );
    if (checks.model) {
      back.forEach((b, i) => {
        if (b === undefined) return;
        const asked = BigInt(h.grant.units[i]! - actual[i]!) * BigInt(policy.limits[i]!.intervalMs);
        const { holds, exact } = model.holding(i, h.id, now);
        const most = asked < holds ? asked : holds;
        const where = `token bucket l${i}: refund of grant ${h.id} gave back ${b}; it holds ${holds} and asks ${asked}`;
        expect(b >= 0 && BigInt(b) <= most, where).toBe(true);
        if (exact) expect(BigInt(b), `${where} (exact)`).toBe(most);
      });
      model.settle(h.id, h.grant.at, h.grant.units, actual, now, back);
    }
    const up = actual.map((a, i) => Math.max(0, a - h.grant.units[i]!) * scaleOf(policy, i));
    if (up.some((x) => x > 0)) {
      ledger.push({ bookedAt: t, amounts: up });
      h.holds.push({ bookedAt: t, left: [...up] });
    }
    // A window's give-back counts at the grant's own instant. A token bucket's takes back what the
    // grant holds, newest booking first: what an extra charge booked at t and a refund then gave
    // back was booked at t, not at the grant's instant (counting it there over-counted [t, now]).
    const windows = actual.map((a, i) =>
      back[i] === undefined ? -Math.max(0, h.grant.units[i]! - a) : 0,
    );
    if (windows.some((x) => x < 0)) ledger.push({ bookedAt: h.grant.at, amounts: windows });
    back.forEach((b, i) => {
      let rest = b ?? 0;
      for (let k = h.holds.length - 1; k >= 0 && rest > 0; k--) {
        const hold = h.holds[k]!;
        const take = Math.min(rest, hold.left[i]!);
        if (take <= 0) continue;
        hold.left[i]! -= take;
        rest -= take;
        const amounts = actual.map((_, j) => (j === i ? -take : 0));
        ledger.push({ bookedAt: hold.bookedAt, amounts });
      }
      // A bucket never gives back more than the grant holds (the model check says so too).
      expect(rest, `token bucket l${i} gave back more than grant ${h.id} holds`).toBe(0);
    });
  };

  for (const op of ops) {
    switch (op.kind) {
      case 'wait':
        now += op.ms;
        break;
      case 'back':
        now = Math.max(0, now - op.ms);
        break;
      case 'acquire': {
        const units = compileCost(policy, acquireCost(policy, op.requests, op.tokensPct));
        acquire(units, policy.concurrency !== null && op.slot);
        break;
      }
      case 'refund': {
        const h = live(op.pick, (x) => !x.refunded);
        if (h === undefined) break;
        const next = pure(() => refund(policy, state, h.grant, now));
        if (checks.concurrency) expect(next.inFlight).toBe(state.inFlight);
        adjust(
          h,
          h.grant.units.map(() => 0),
          next,
        );
        state = next;
        h.refunded = true;
        break;
      }
      case 'settle': {
        const h = live(op.pick, (x) => !x.refunded);
        if (h === undefined) break;
        const actual = compileCost(
          policy,
          settleCost(policy, op.requestsPct, op.tokensPct),
          'settle',
          false,
        );
        const next = pure(() => settle(policy, state, h.grant, actual, now));
        const { marks, ...rest } = next.grant;
        expect(rest).toEqual({ at: h.grant.at, units: actual, slot: h.grant.slot });
        // Marks only ever go down (an extra charge never claims more of the queue).
        expect(marks?.length).toBe(h.grant.marks?.length);
        marks?.forEach((m, i) => expect(m).toBeLessThanOrEqual(h.grant.marks![i]!));
        if (checks.concurrency) expect(next.state.inFlight).toBe(state.inFlight);
        adjust(h, actual, next.state);
        state = next.state;
        h.grant = next.grant;
        break;
      }
      case 'release': {
        const h = live(op.pick, (x) => !x.released);
        if (h === undefined) break;
        const next = pure(() => release(state, h.grant));
        if (checks.concurrency) {
          expect(next.inFlight).toBe(state.inFlight - 1);
          expect(next.limits).toBe(state.limits);
          // A grant without a slot releases nothing.
          expect(release(state, { ...h.grant, slot: false })).toBe(state);
        }
        if (checks.model) model.release();
        state = next;
        h.released = true;
        break;
      }
    }
    if (checks.concurrency) {
      expect(state.inFlight).toBe(held.filter((h) => !h.released).length);
    }
    if (checks.model) compareWithModel();
  }
}
