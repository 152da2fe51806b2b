/**
 * A limiter's `maxKeys` (#12, item 8): the most keys it keeps (live actors and dormant state),
 * and what a new key does beyond: `onMaxKeys: 'refuse'` rejects it with TooManyKeysError and
 * leaves every key as it was; `'evict-lru'` forgets the least recently used key without work,
 * with a `forgotten` event, and never one with a waiter, a slot held or a pause. Keys back at
 * full capacity are forgotten anyway.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  TooManyKeysError,
  type ForgottenEvent,
  type Grant,
  type Limiter,
  type LimiterSystem,
  type MemoryStore,
} from '../../src/index.js';
import { RUNS } from '../props/schedule.js';
import { track, virtualSystem } from './support.js';

/** Keys of `limiter` whose state the memory store keeps (not at full capacity). */
function storedKeys(system: LimiterSystem, limiter: Limiter): string[] {
  const prefix = `${limiter.name.length}:${limiter.name}:`;
  return Object.keys(system.snapshot().store.keys)
    .filter((k) => k.startsWith(prefix))
    .map((k) => k.slice(prefix.length));
}

const remaining = async (l: Limiter, key: string) => (await l.stats(key)).limits[0]!.remaining;

describe("maxKeys with onMaxKeys: 'refuse'", () => {
  it('refuses a new key with a typed error, books nothing, and leaves the kept keys working', async () => {
    const { system, clock } = virtualSystem({ idleTimeout: '1s' });
    const l = system.limiter('users', { limits: [{ limit: 10, interval: '1m' }], maxKeys: 3 });
    for (const k of ['a', 'b', 'c']) await l.acquire(k, { cost: { requests: 4 } });
    const before = system.snapshot();
    const error = await l.tryAcquire('d').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TooManyKeysError);
    expect(error).toMatchObject({
      code: 'TOO_MANY_KEYS',
      limiter: 'users',
      key: 'd',
      maxKeys: 3,
      onMaxKeys: 'refuse',
      message:
        'tollgate: limiter "users", key "d": the limiter keeps maxKeys 3 keys, none back at full capacity; a new key is refused (onMaxKeys: \'refuse\')',
    });
    await expect(l.acquire('d')).rejects.toBeInstanceOf(TooManyKeysError);
    expect(() => l.reserve('d')).not.toThrow(); // a reservation ends with it
    expect(system.snapshot()).toEqual(before); // nothing booked, nothing dropped
    expect((await l.tryAcquire('a')).ok).toBe(true); // the kept keys go on
    expect(await remaining(l, 'a')).toBe(5);
    // Once a key is back at full capacity it makes room (no sweep needed).
    await clock.increment(60_000);
    expect((await l.tryAcquire('d')).ok).toBe(true);
    expect(l.keyCap!.size).toBeLessThanOrEqual(3);
  });
});

describe("maxKeys with onMaxKeys: 'evict-lru'", () => {
  it('forgets the least recently used key, with an event naming it and what it held', async () => {
    const { system } = virtualSystem();
    const l = system.limiter('users', {
      limits: [{ limit: 10, interval: '1m', name: 'rpm' }],
      maxKeys: 3,
      onMaxKeys: 'evict-lru',
    });
    const forgotten: ForgottenEvent[] = [];
    system.events.on('forgotten', (e) => forgotten.push(e));
    await l.acquire('a', { cost: { requests: 1 } });
    await l.acquire('b', { cost: { requests: 2 } });
    await l.acquire('c', { cost: { requests: 3 } });
    await l.acquire('a'); // a is used again: b is now the least recently used
    await l.acquire('d');
    expect(forgotten).toEqual([{ limiter: 'users', key: 'b', held: { rpm: 2 }, at: 0 }]);
    expect(storedKeys(system, l).sort()).toEqual(['a', 'c', 'd']);
    // b counts as reset: it starts again at full capacity, making room in turn (c is oldest).
    expect(await remaining(l, 'b')).toBe(10);
    expect(forgotten.at(-1)).toMatchObject({ key: 'c', held: { rpm: 3 } });
    expect(await remaining(l, 'a')).toBe(8);
  });

  it('never forgets a key with a waiter, a slot held or a pause: refuses instead', async () => {
    const { system, clock } = virtualSystem();
    const l = system.limiter('users', {
      limits: [{ limit: 1, interval: '1m' }],
      concurrency: 1,
      maxKeys: 3,
      onMaxKeys: 'evict-lru',
    });
    const slot = await l.acquire('slot'); // a call in flight
    const first = await l.acquire('waiter');
    const waiting = track(l.acquire('waiter')); // queued behind the first one's slot
    await l.pause('paused', '10m'); // a provider said 429
    const error = await l.tryAcquire('new').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TooManyKeysError);
    expect((error as Error).message).toBe(
      'tollgate: limiter "users", key "new": the limiter keeps maxKeys 3 keys, and the least recently used hold work (a waiter, a call in flight, a pause); none can be evicted (onMaxKeys: \'evict-lru\')',
    );
    expect((await l.stats('slot')).inFlight).toBe(1);
    expect((await l.stats('waiter')).queued).toBe(1);
    expect(await l.tryAcquire('paused')).toMatchObject({ ok: false, limit: 'paused' });
    // The slot given back, its key holds only charges: it can go.
    slot.release();
    expect((await l.tryAcquire('new')).ok).toBe(true);
    expect(storedKeys(system, l)).not.toContain('slot');
    expect(waiting.done).toBe(false);
    first.release();
    await clock.increment(60_000);
    expect(waiting.done).toBe(true); // the waiter was served, never dropped
  });
});

type Op =
  | { readonly t: 'try'; readonly key: number }
  | { readonly t: 'acquire'; readonly key: number; readonly timeoutMs: number }
  | { readonly t: 'release'; readonly pick: number }
  | { readonly t: 'wait'; readonly ms: number };

const keyArb = fc.integer({ min: 0, max: 11 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ t: fc.constant('try' as const), key: keyArb }), weight: 4 },
  {
    arbitrary: fc.record({
      t: fc.constant('acquire' as const),
      key: keyArb,
      timeoutMs: fc.constantFrom(0, 500, 5000),
    }),
    weight: 3,
  },
  { arbitrary: fc.record({ t: fc.constant('release' as const), pick: fc.nat() }), weight: 2 },
  {
    arbitrary: fc.record({ t: fc.constant('wait' as const), ms: fc.constantFrom(0, 300, 2000) }),
    weight: 2,
  },
);

describe('maxKeys under random calls on many keys', () => {
  it('never keeps more keys than maxKeys, and never forgets a key with work', async () => {
    let refusals = 0;
    let evictions = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('refuse' as const, 'evict-lru' as const),
        fc.integer({ min: 1, max: 4 }),
        fc.boolean(),
        fc.array(opArb, { minLength: 1, maxLength: 40 }),
        async (onMaxKeys, maxKeys, observed, ops) => {
          const { system, clock } = virtualSystem({ idleTimeout: '1s' });
          const l = system.limiter('users', {
            limits: [{ limit: 2, interval: '1s' }],
            concurrency: 1,
            maxKeys,
            onMaxKeys,
          });
          // Work per key, as the calls left it: waiters not ended, slots held.
          const waiters = new Map<string, number>();
          const held: Grant[] = [];
          const forgotten: string[] = [];
          if (observed)
            system.events.on('forgotten', (e) => {
              forgotten.push(e.key);
              evictions++;
              expect(waiters.get(e.key) ?? 0).toBe(0);
              expect(held.some((g) => g.key === e.key && g.holdsSlot)).toBe(false);
            });
          const count = (key: string, d: number) => waiters.set(key, (waiters.get(key) ?? 0) + d);
          const grantOf = (p: Promise<unknown>, key: string) => {
            count(key, 1);
            p.then(
              (r) => {
                const g = (r as { grant?: Grant }).grant ?? (r as Grant);
                if (g !== undefined && 'holdsSlot' in g) held.push(g);
              },
              (e: unknown) => {
                if (!(e instanceof TooManyKeysError)) return;
                refusals++;
                expect(storedKeys(system, l)).not.toContain(key);
              },
            ).finally(() => count(key, -1));
          };
          for (const op of ops) {
            switch (op.t) {
              case 'try':
                grantOf(l.tryAcquire(`k${op.key}`), `k${op.key}`);
                break;
              case 'acquire':
                grantOf(l.acquire(`k${op.key}`, { timeout: op.timeoutMs }), `k${op.key}`);
                break;
              case 'release':
                held.splice(op.pick % Math.max(1, held.length), 1)[0]?.release();
                break;
              case 'wait':
                await clock.increment(op.ms);
                break;
            }
            await clock.increment(0);
            const kept = new Set([...l.actors.keys(), ...storedKeys(system, l)]);
            expect(kept.size).toBeLessThanOrEqual(maxKeys);
            expect(l.keyCap!.size).toBeLessThanOrEqual(maxKeys);
            for (const k of kept) expect([...l.keyCap!.keys()]).toContain(k);
          }
          // Releasing a slot may grant a waiter a slot in turn: until none is held.
          for (let i = 0; i < 50 && held.some((g) => g.holdsSlot); i++) {
            for (const g of held) g.release();
            await clock.increment(1000);
          }
          await clock.increment(10_000);
          expect((system.store as MemoryStore).size).toBe(0);
          await system.close();
        },
      ),
      { numRuns: Math.ceil(RUNS.numRuns / 5) },
    );
    expect(refusals).toBeGreaterThan(0);
    expect(evictions).toBeGreaterThan(0);
  });
});
