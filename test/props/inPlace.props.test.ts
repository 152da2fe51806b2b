/**
 * The in-place helpers (`src/limiter/inPlace.ts`) against the pure core they stand in for: random
 * schedules (1–3 limits of any algorithm, concurrency, a clock that steps back) run side by side
 * on a pure state and on an owned one. Every decision, retry, refusing limit, booking instant and
 * mark must be the same, a refusal must leave the owned state exactly as it was, and after every
 * operation the owned state must read as the pure one.
 *
 * Refunds and settles run the way the memory store runs them: the pure function computed from
 * the owned state, then `adopt`ed into it.
 *
 * The memory store's key cache (the entry a key actor keeps, so the store skips a lookup) is
 * checked the same way: a store used through a cache agrees with one used without, whatever
 * drops, sweeps, forgets or restores happen in between. Both stores share every helper (`isFull`,
 * `isIdle`, the in-place arithmetic), so agreeing with each other proves nothing about those:
 * the store is also checked against the reference model (test/props/model.ts), which shares no
 * code with src/limiter. Its readings must be the model's, it never drops a key the model says
 * still holds something, and after a sweep it keeps exactly those keys (#18).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compileCost,
  compilePolicy,
  decide,
  initialState,
  refund,
  release,
  settle,
} from '../../src/limiter/index.js';
import {
  adopt,
  decideInPlace,
  marksOf,
  ownLimits,
  plain,
  releaseInPlace,
  type OwnedKeyState,
} from '../../src/limiter/inPlace.js';
import type {
  AlgorithmName,
  GrantRecord,
  KeyState,
  Policy,
  PolicySpec,
} from '../../src/limiter/index.js';
import type { KeyCache, StoreDecision, StoreGrant } from '../../src/store.js';
import { MemoryStore } from '../../src/memory/memoryStore.js';
import { acquireCost, settleCost, usedOf } from './harness.js';
import { KeyModel } from './model.js';
import { RUNS, scheduleArb, type Op } from './schedule.js';

interface Held {
  grant: GrantRecord;
  refunded: boolean;
  released: boolean;
}

function owned(policy: Policy, state: KeyState): OwnedKeyState {
  return { at: state.at, inFlight: state.inFlight, limits: ownLimits(policy, state) };
}

function run(spec: PolicySpec, start: number, ops: readonly Op[]): void {
  const policy = compilePolicy(spec);
  let now = start;
  let pure: KeyState = initialState(policy, now);
  const mine = owned(policy, pure);
  const held: Held[] = [];
  const live = (pick: number, ok: (h: Held) => boolean): Held | undefined => {
    const xs = held.filter(ok);
    return xs.length === 0 ? undefined : xs[pick % xs.length];
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
        const slot = policy.concurrency !== null && op.slot;
        const before = structuredClone(mine);
        const d = decide(policy, pure, units, now, slot);
        const r = decideInPlace(policy, mine, units, now, slot);
        if (!d.ok) {
          expect(r).toEqual({ ok: false, retryAfterMs: d.retryAfterMs, limit: d.limit });
          // A refusal is not an event: nothing was written, not even the advance.
          expect(mine).toEqual(before);
          break;
        }
        expect(r).toBeUndefined();
        expect({ at: mine.at, marks: marksOf(policy, mine) }).toEqual({
          at: d.grant.at,
          marks: d.grant.marks,
        });
        pure = d.state;
        held.push({ grant: d.grant, refunded: false, released: !d.grant.slot });
        break;
      }
      case 'refund': {
        const h = live(op.pick, (x) => !x.refunded);
        if (h === undefined) break;
        pure = refund(policy, pure, h.grant, now);
        adopt(policy, mine, refund(policy, mine, h.grant, now));
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
        const p = settle(policy, pure, h.grant, actual, now);
        const o = settle(policy, mine, h.grant, actual, now);
        expect(o.grant).toEqual(p.grant);
        pure = p.state;
        adopt(policy, mine, o.state);
        h.grant = p.grant;
        break;
      }
      case 'release': {
        const h = live(op.pick, (x) => !x.released);
        if (h === undefined) break;
        pure = release(pure, h.grant);
        releaseInPlace(mine, h.grant);
        h.released = true;
        break;
      }
    }
    // The owned state reads as the pure one, and copies of it share nothing with it.
    const copy = plain(policy, mine);
    expect(copy).toEqual(plain(policy, pure));
    copy.limits.forEach((l, i) => expect(l).not.toBe(mine.limits[i]));
  }
}

const ALGORITHMS: readonly (AlgorithmName | 'mixed')[] = [
  'token-bucket',
  'sliding-window',
  'fixed-window',
  'mixed',
];

describe('in-place decisions agree with the pure core', () => {
  for (const algorithm of ALGORITHMS) {
    it(`${algorithm}: the same decisions, marks and states; a refusal writes nothing`, () => {
      fc.assert(
        fc.property(scheduleArb(algorithm, { back: true }), ({ spec, start, ops }) => {
          run(spec, start, ops);
        }),
        RUNS,
      );
    });
  }

  it('plain turns an owned state back into the pure shapes, JSON-safe', () => {
    const policy = compilePolicy({
      limits: [
        { name: 'tb', limit: 2, interval: 1000, algorithm: 'token-bucket' },
        { name: 'sw', limit: 2, interval: 1000, algorithm: 'sliding-window' },
        { name: 'fw', limit: 2, interval: 1000, algorithm: 'fixed-window' },
      ],
    });
    const state = initialState(policy, 5000);
    expect(plain(policy, owned(policy, state))).toEqual(state);
    const d = decide(policy, state, [1, 1, 1], 5000);
    if (!d.ok) throw new Error('expected a grant');
    const mine = owned(policy, state);
    decideInPlace(policy, mine, [1, 1, 1], 5000);
    const copy = plain(policy, mine);
    expect(copy).toEqual(d.state);
    expect(JSON.parse(JSON.stringify(copy))).toEqual(copy);
  });
});

/** What a test does to the stores: one key of two, at an instant. */
type StoreOp =
  | { readonly kind: 'acquire'; readonly key: number; readonly units: number }
  | { readonly kind: 'settle'; readonly pick: number; readonly units: number }
  | { readonly kind: 'release'; readonly pick: number }
  | { readonly kind: 'reset' | 'forget'; readonly key: number }
  | { readonly kind: 'sweep' | 'restore' }
  | { readonly kind: 'wait'; readonly ms: number };

const storeOpArb: fc.Arbitrary<StoreOp> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('acquire' as const),
      key: fc.nat(1),
      units: fc.integer({ min: 0, max: 3 }),
    }),
    weight: 6,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('settle' as const),
      pick: fc.nat(),
      units: fc.integer({ min: 0, max: 5 }),
    }),
    weight: 1,
  },
  { arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }), weight: 1 },
  {
    arbitrary: fc.record({
      kind: fc.constantFrom('reset' as const, 'forget' as const),
      key: fc.nat(1),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({ kind: fc.constantFrom('sweep' as const, 'restore' as const) }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('wait' as const),
      ms: fc.integer({ min: 0, max: 1500 }),
    }),
    weight: 3,
  },
);

const policyArbForCache: fc.Arbitrary<PolicySpec> = fc
  .record({
    algorithm: fc.constantFrom<AlgorithmName>('token-bucket', 'sliding-window', 'fixed-window'),
    limit: fc.integer({ min: 3, max: 6 }),
    interval: fc.constantFrom(100, 1000),
    concurrency: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
  })
  .map(({ algorithm, limit, interval, concurrency }) => ({
    limits: [{ limit, interval, algorithm }],
    ...(concurrency === undefined ? {} : { concurrency }),
  }));

describe('memory store key cache', () => {
  it('a store used through key caches agrees with one used without, across drops and restores', () => {
    fc.assert(
      fc.property(
        policyArbForCache,
        fc.array(storeOpArb, { minLength: 1, maxLength: 60 }),
        (spec, ops) => {
          const policy = compilePolicy(spec);
          const plainStore = new MemoryStore();
          const cachedStore = new MemoryStore();
          const keys = ['a', 'b'];
          const caches: KeyCache[] = keys.map(() => ({ storeEntry: undefined }));
          let now = 1000;
          // The reference model of each key; a reset starts the key's model over.
          const models = keys.map(() => new KeyModel(policy, now));
          const grants: {
            key: number;
            plain: StoreGrant;
            cached: StoreGrant;
            /** The grant's id in its key's model. */
            id: number;
            /** Booked before its key was reset: it holds nothing, an extra charge still books. */
            dead: boolean;
          }[] = [];
          let n = 0;
          const outcome = (d: StoreDecision) =>
            d.ok ? { ok: true, at: d.grant.at, marks: d.grant.marks } : d;
          /** The store's `used` of `key` at `now`, in the core's scale (0 when it holds nothing). */
          const usedIn = (key: string): number => {
            const kept = plainStore.snapshot(now).keys[key];
            return kept === undefined ? 0 : usedOf(kept.state.limits[0]!);
          };
          /** Whether the model says the key holds nothing: every limit empty, no slot held. */
          const idle = (m: KeyModel): boolean =>
            m.inFlight === 0 && m.used(now).every((u) => u === 0);
          for (const op of ops) {
            switch (op.kind) {
              case 'wait':
                now += op.ms;
                break;
              case 'acquire': {
                const units = policy.limits.map(() => op.units);
                const req = {
                  id: `r${++n}`,
                  units,
                  slot: policy.concurrency !== null,
                  leaseMs: null,
                };
                const key = keys[op.key]!;
                const p = plainStore.decideOne(key, policy, req, now);
                const c = cachedStore.decideOne(key, policy, req, now, caches[op.key]);
                expect(outcome(c)).toEqual(outcome(p));
                const m = models[op.key]!.decide(units, now, req.slot);
                expect(p.ok ? { ok: true, at: p.grant.at } : p).toEqual(
                  m.ok ? { ok: true, at: m.at } : m,
                );
                if (p.ok && c.ok && m.ok) {
                  grants.push({
                    key: op.key,
                    plain: p.grant,
                    cached: c.grant,
                    id: m.id,
                    dead: false,
                  });
                }
                break;
              }
              case 'settle':
              case 'release': {
                if (grants.length === 0) break;
                const g = grants[op.pick % grants.length]!;
                const key = keys[g.key]!;
                const model = models[g.key]!;
                if (op.kind === 'release') {
                  plainStore.release(key, policy, g.plain, now);
                  cachedStore.release(key, policy, g.cached, now);
                  if (!g.dead && g.plain.slot) model.release();
                } else {
                  const actual = policy.limits.map(() => op.units);
                  const before = usedIn(key);
                  plainStore.settle(key, policy, g.plain, actual, now);
                  cachedStore.settle(key, policy, g.cached, actual, now);
                  const booked = g.plain.units;
                  if (g.dead) {
                    // Only the extra charge: the grant's units went with the reset.
                    const to = actual.map((a, i) => Math.max(a, booked[i]!));
                    model.settle(g.id, g.plain.at, booked, to, now);
                  } else {
                    // What a token bucket gave back is the store's to choose (at most what the
                    // grant still holds, exactly that when the model says so): the model checks it.
                    const tb = policy.limits[0]!.algorithm === 'token-bucket';
                    const back = tb && actual[0]! < booked[0]! ? before - usedIn(key) : undefined;
                    model.settle(g.id, g.plain.at, booked, actual, now, [back]);
                  }
                }
                grants.splice(op.pick % grants.length, 1);
                break;
              }
              case 'reset':
                plainStore.reset(keys[op.key]!);
                cachedStore.reset(keys[op.key]!);
                models[op.key] = new KeyModel(policy, now);
                for (const g of grants) if (g.key === op.key) g.dead = true;
                break;
              case 'forget':
                plainStore.forget(keys[op.key]!, now);
                cachedStore.forget(keys[op.key]!, now);
                break;
              case 'sweep':
                plainStore.sweep(now);
                cachedStore.sweep(now);
                break;
              case 'restore': {
                // A restore replaces every entry: what the caches hold must not be used again.
                const p = plainStore.snapshot(now);
                const c = cachedStore.snapshot(now);
                expect(c).toEqual(p);
                plainStore.restore(p);
                cachedStore.restore(c);
                grants.length = 0; // slots are not carried by snapshots
                // A restore replaces the keys the snapshot names (without their slots), and only
                // those: a key that held nothing but slots is not in it, and keeps them.
                keys.forEach((key, k) => {
                  if (key in p.keys) models[k]!.inFlight = 0;
                });
                break;
              }
            }
            keys.forEach((key, k) => {
              const r = plainStore.read(key, policy, now);
              expect(cachedStore.read(key, policy, now)).toEqual(r);
              const m = models[k]!;
              expect({
                limits: r.limits.map(({ remaining, resetMs }) => ({ remaining, resetMs })),
                inFlight: r.inFlight,
              }).toEqual({ limits: m.read(now), inFlight: m.inFlight });
            });
            expect(cachedStore.size).toBe(plainStore.size);
            // A key that holds something is never dropped; after a sweep, no other key is kept.
            const holding = models.filter((m) => !idle(m)).length;
            if (op.kind === 'sweep') expect(plainStore.size).toBe(holding);
            else expect(plainStore.size).toBeGreaterThanOrEqual(holding);
          }
        },
      ),
      RUNS,
    );
  });
});
