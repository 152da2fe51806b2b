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
  /** Exact agreement with the reference model: every decision, retry, name, reading and `used`. */
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
  /** No window / interval admits more than the limit allows (net usage). */
  readonly overAdmission?: boolean;
  /** Slots: never more than `concurrency` held; release frees exactly one. */
  readonly concurrency?: boolean;
}

interface Held {
  grant: GrantRecord;
  refunded: boolean;
  released: boolean;
}

/** One change to usage, for the over-admission ledger. */
interface Entry {
  /** When it happened (key time). */
  readonly t: number;
  /** The booking instant it counts at: `t`, or for a refund the instant the grant was booked. */
  readonly bookedAt: number;
  /** Signed units per limit. */
  readonly units: readonly number[];
}

function minCapacity(policy: Policy, dimension: string): number | undefined {
  const caps = policy.limits.filter((l) => l.dimension === dimension).map((l) => l.capacity);
  return caps.length === 0 ? undefined : Math.min(...caps);
}

function acquireCost(policy: Policy, requests: number, tokensPct: number): CostSpec {
  const rc = minCapacity(policy, 'requests');
  const tc = minCapacity(policy, 'tokens');
  const cost: Record<string, number> = {
    requests: rc === undefined ? requests : Math.min(requests, rc),
  };
  if (tc !== undefined) cost.tokens = Math.floor((tc * tokensPct) / 100);
  return cost;
}

function settleCost(policy: Policy, requestsPct: number, tokensPct: number): CostSpec {
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
        // Over [a, g], net units admitted (grants + extra charges − refunds, each at the instant
        // it happened) are at most burst + limit × (g − a) / interval. Exact, in BigInt.
        let net = 0n;
        for (let j = ledger.length - 1; j >= 0; j--) {
          const e = ledger[j]!;
          net += BigInt(e.units[i]!);
          const bound =
            BigInt(l.capacity) * BigInt(l.intervalMs) + BigInt(l.limit) * BigInt(g - e.t);
          if (net * BigInt(l.intervalMs) > bound) {
            expect.fail(
              `token bucket ${l.name} admitted net ${net} over [${e.t}, ${g}]: more than ` +
                `burst ${l.capacity} + ${l.limit} × ${g - e.t} / ${l.intervalMs}`,
            );
          }
        }
        return;
      }
      // Windows: net usage counted by booking instant, over the window the grant at g fell in.
      const from = l.algorithm === 'sliding-window' ? g - l.intervalMs + 1 : g - (g % l.intervalMs);
      const to = l.algorithm === 'sliding-window' ? g : from + l.intervalMs - 1;
      let net = 0;
      for (const e of ledger) if (e.bookedAt >= from && e.bookedAt <= to) net += e.units[i]!;
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
    held.push({ grant: d.grant, refunded: false, released: !d.grant.slot });
    ledger.push({ t, bookedAt: t, units });
    if (checks.overAdmission) checkOverAdmission(t);
  };

  /** Ledger entries for moving `h` from its units to `actual` at key time `t`. */
  const adjustLedger = (h: Held, actual: Units, t: number): void => {
    const up = actual.map((a, i) => Math.max(0, a - h.grant.units[i]!));
    if (up.some((x) => x > 0)) ledger.push({ t, bookedAt: t, units: up });
    const down = actual.map((a, i) => Math.min(0, a - h.grant.units[i]!));
    if (down.some((x) => x < 0)) ledger.push({ t, bookedAt: h.grant.at, units: down });
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
        const t = Math.max(now, state.at);
        const next = pure(() => refund(policy, state, h.grant, now));
        if (checks.concurrency) expect(next.inFlight).toBe(state.inFlight);
        if (checks.model)
          model.settle(
            h.grant.at,
            h.grant.units,
            h.grant.units.map(() => 0),
            now,
          );
        adjustLedger(
          h,
          h.grant.units.map(() => 0),
          t,
        );
        state = next;
        h.refunded = true;
        break;
      }
      case 'settle': {
        const h = live(op.pick, (x) => !x.refunded);
        if (h === undefined) break;
        const t = Math.max(now, state.at);
        const actual = compileCost(
          policy,
          settleCost(policy, op.requestsPct, op.tokensPct),
          'settle',
          false,
        );
        const next = pure(() => settle(policy, state, h.grant, actual, now));
        expect(next.grant).toEqual({ ...h.grant, units: actual });
        if (checks.concurrency) expect(next.state.inFlight).toBe(state.inFlight);
        if (checks.model) model.settle(h.grant.at, h.grant.units, actual, now);
        adjustLedger(h, actual, t);
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
