/**
 * Exactness over a long run: one key, 1,000,000 mixed operations (acquire, refund, settle up and
 * down, release, time steps) from a seeded generator, against the reference model. Every decision
 * must agree as it happens, every token-bucket refund must give back no more than the grant still
 * holds in the model's queue (exactly that when the model says it must), and at the end (and every
 * 50,000 operations) the accounting must be equal exactly: no float drift after a million
 * operations.
 */
import { describe, expect, it } from 'vitest';
import {
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
  FixedWindowState,
  GrantRecord,
  KeyState,
  SlidingWindowState,
} from '../../src/limiter/index.js';
import { usedOf } from './harness.js';
import { FixedWindowModel, KeyModel, SlidingWindowModel } from './model.js';
import { mulberry32 } from '../random.js';

const OPS = Number(process.env.EXACT_OPS ?? 1_000_000);

describe('exactness over a long run', () => {
  it(`matches the reference model exactly after ${OPS} mixed operations on one key`, () => {
    const policy = compilePolicy({
      limits: [
        { name: 'rps', limit: 7, interval: '1s', algorithm: 'sliding-window' },
        {
          name: 'tpm',
          limit: 90_000,
          interval: '1m',
          burst: 25_000,
          dimension: 'tokens',
          algorithm: 'token-bucket',
        },
        {
          name: 't10s',
          limit: 30_000,
          interval: '10s',
          dimension: 'tokens',
          algorithm: 'fixed-window',
        },
        // An awkward rate, 3 per 700 ms: scaled arithmetic must stay exact where floats would not.
        { name: 'odd', limit: 3, interval: 700, burst: 5, algorithm: 'token-bucket' },
      ],
      concurrency: 4,
    });
    const random = mulberry32(0x5eed);
    const int = (n: number): number => Math.floor(random() * n); // 0 … n−1

    let now = 1_700_000_000_000; // a realistic epoch instant: large numbers, still exact
    let state: KeyState = initialState(policy, now);
    const model = new KeyModel(policy, now);
    const grants: { grant: GrantRecord; released: boolean; id: number }[] = [];
    const count = { grants: 0, refusals: 0, refunds: 0, settles: 0, releases: 0, short: 0 };

    /**
     * What each token bucket gave back moving `h` to `actual` (core states before and after),
     * checked against what the grant holds in the model; then the model follows.
     */
    const follow = (
      h: (typeof grants)[number],
      actual: readonly number[],
      next: KeyState,
    ): void => {
      const before = advance(policy, state, now);
      const back = policy.limits.map((l, i) => {
        if (l.algorithm !== 'token-bucket' || actual[i]! >= h.grant.units[i]!) return undefined;
        const b = usedOf(before.limits[i]!) - usedOf(next.limits[i]!);
        const asked = BigInt(h.grant.units[i]! - actual[i]!) * BigInt(l.intervalMs);
        const { holds, exact } = model.holding(i, h.id, now);
        const most = asked < holds ? asked : holds;
        if (b < 0 || BigInt(b) > most || (exact && BigInt(b) !== most)) {
          expect.fail(`${l.name}: grant ${h.id} gave back ${b}, holds ${holds}, asks ${asked}`);
        }
        if (BigInt(b) < most) count.short++;
        return b;
      });
      model.settle(h.id, h.grant.at, h.grant.units, actual, now, back);
    };
    const refusedBy = new Map<string, number>();

    const compare = (): void => {
      const s = advance(policy, state, now);
      expect(s.limits.map(usedOf)).toEqual(model.used(now));
      expect(
        read(policy, state, now).limits.map(({ remaining, resetMs }) => ({ remaining, resetMs })),
      ).toEqual(model.read(now));
      expect(s.inFlight).toBe(model.inFlight);
      policy.limits.forEach((_, i) => {
        const m = model.limits[i]!;
        const ls = s.limits[i]!;
        expect(Number.isSafeInteger(usedOf(ls))).toBe(true);
        if (m instanceof SlidingWindowModel)
          expect((ls as SlidingWindowState).log).toEqual(m.clone().log(s.at));
        if (m instanceof FixedWindowModel)
          expect((ls as FixedWindowState).start).toBe(m.clone().start(s.at));
      });
    };

    for (let op = 1; op <= OPS; op++) {
      const r = random();
      if (r < 0.3) {
        now += random() < 0.95 ? int(40) : 500 + int(20_000);
      } else if (r < 0.7) {
        const tokens = random() < 0.9 ? int(1500) : int(20_001);
        const units = compileCost(policy, { requests: int(4) === 0 ? 0 : 1, tokens });
        const slot = int(4) !== 0;
        const d = decide(policy, state, units, now, slot);
        const m = model.decide(units, now, slot);
        if (
          d.ok !== m.ok ||
          (!d.ok && !m.ok && (d.retryAfterMs !== m.retryAfterMs || d.limit !== m.limit))
        ) {
          expect.fail(
            `operation ${op} at ${now}: core ${JSON.stringify(d)} but model ${JSON.stringify(m)}`,
          );
        }
        if (d.ok) {
          state = d.state;
          grants.push({ grant: d.grant, released: !slot, id: m.ok ? m.id : -1 });
          count.grants++;
        } else {
          count.refusals++;
          refusedBy.set(d.limit, (refusedBy.get(d.limit) ?? 0) + 1);
        }
      } else if (r < 0.85 && grants.length > 0) {
        // Settle up or down to actual usage (tokens measured after the call).
        const i = int(grants.length);
        const h = grants[i]!;
        const booked = h.grant.units[1]!;
        const tokens = random() < 0.95 ? Math.max(0, booked - 400 + int(600)) : int(22_000);
        const actual = compileCost(
          policy,
          { requests: h.grant.units[0]!, tokens },
          'settle',
          false,
        );
        const next = settle(policy, state, h.grant, actual, now);
        follow(h, actual, next.state);
        state = next.state;
        h.grant = next.grant;
        count.settles++;
      } else if (r < 0.9 && grants.length > 0) {
        const i = int(grants.length);
        const h = grants[i]!;
        const next = refund(policy, state, h.grant, now);
        follow(
          h,
          h.grant.units.map(() => 0),
          next,
        );
        state = next;
        if (!h.released) {
          state = release(state, h.grant);
          model.release();
          count.releases++;
        }
        grants.splice(i, 1);
        count.refunds++;
      } else {
        const i = grants.findIndex((g) => !g.released);
        if (i >= 0) {
          state = release(state, grants[i]!.grant);
          model.release();
          grants[i]!.released = true;
          count.releases++;
        }
      }
      // Forget the oldest finished grants so the list stays short.
      if (grants.length > 32) {
        let i = grants.findIndex((g) => g.released);
        if (i < 0) {
          // Every grant holds a slot: the oldest call ends.
          i = 0;
          state = release(state, grants[0]!.grant);
          model.release();
        }
        grants.splice(i, 1);
      }
      if (op % 50_000 === 0) compare();
    }
    compare();
    // The run exercised everything.
    expect(count.grants).toBeGreaterThan(OPS / 20);
    expect(count.refusals).toBeGreaterThan(OPS / 20);
    expect(count.settles).toBeGreaterThan(OPS / 20);
    expect(count.refunds).toBeGreaterThan(OPS / 100);
    for (const name of [...policy.limits.map((l) => l.name), 'concurrency']) {
      expect(refusedBy.get(name) ?? 0, `refusals by ${name}`).toBeGreaterThan(OPS / 1000);
    }
  });
});
