/**
 * Regression tests of the key-actor issue (#10), runtime side, each on the memory store and
 * virtual time: a waiter compiled under an older policy (bug 1), a store or clock that throws
 * (bug 3), breakers evicted with their key (bug 6), a long queue (bug 8), and the edges of close
 * (bug 9). The store side (reset epochs, Redis order and slots) is tested with the stores.
 */
import { describe, expect, it } from 'vitest';
import {
  AcquireAbortedError,
  AcquireTimeoutError,
  InternalError,
  InvalidArgumentError,
  LimiterClosedError,
  MemoryStore,
  StoreUnavailableError,
  VirtualClock,
  createLimiterSystem,
  memoryStore,
  type Grant,
  type Store,
} from '../../src/index.js';
import { track, virtualSystem } from './support.js';

/** A memory store whose decisions throw while `failing` is set (a custom store with a bug). */
function flakyStore(): { store: Store; fail(on: boolean): void } {
  const inner = memoryStore();
  let failing = false;
  const store: Store = {
    name: 'flaky',
    sync: true,
    decide: (key, policy, batch, mode, now) => {
      if (failing) throw new Error('flaky store: decide');
      return inner.decide(key, policy, batch, mode, now);
    },
    settle: (...a) => inner.settle(...a),
    cancel: (...a) => inner.cancel(...a),
    release: (...a) => inner.release(...a),
    read: (...a) => inner.read(...a),
    reset: (key) => inner.reset(key),
    close: () => inner.close(),
  };
  return { store, fail: (on) => (failing = on) };
}

describe('key actor (#10)', () => {
  it('decides a waiter that waited behind an open breaker under the limits in force when it queues (bug 1)', async () => {
    const { system, clock } = virtualSystem();
    const l = system.limiter('llm', {
      limits: [{ limit: 10, interval: '1m' }],
      breaker: { failureThreshold: 1, openFor: '1s', whenOpen: 'wait' },
    });
    await expect(l.run('k', () => Promise.reject(new Error('503')))).rejects.toThrow('503');
    const waiting = track(l.acquire('k', { timeout: '10s' }));
    l.setLimits({
      limits: [
        { limit: 3, interval: '1m' },
        { limit: 1000, interval: '1m', dimension: 'tokens' },
      ],
    });
    await clock.increment(1000); // half-open: the waiter is the probe
    expect(waiting.done).toBe(true);
    const grant = waiting.value as Grant;
    expect(grant.booked).toEqual({ 'requests/1m': 1, 'tokens/1m': 0 });
    grant.report('success');
    const tries = await Promise.all(Array.from({ length: 50 }, () => l.tryAcquire('k')));
    // 3 per minute under the new policy: the failed call and the probe took one each (old code:
    // the probe's units had one amount for two limits, NaN was booked, and 50 of 50 passed).
    expect(tries.filter((r) => r.ok)).toHaveLength(1);
    const stats = await l.stats('k');
    expect(stats.limits.map((x) => x.remaining)).toEqual([0, 1000]);
  });

  it('fails a waiter with StoreUnavailableError when the store throws, and goes on working (bug 3)', async () => {
    const flaky = flakyStore();
    const clock = new VirtualClock(0);
    const system = createLimiterSystem({ clock, store: flaky.store });
    const l = system.limiter('api', { limits: [{ limit: 1, interval: '1s' }] });
    await l.acquire('k'); // the only unit: the next waits
    const waiting = track(l.acquire('k', { timeout: 100 }));
    flaky.fail(true);
    await clock.increment(100); // the timer fires; the decision... never happens: the timeout ends it
    expect(waiting.error).toBeInstanceOf(AcquireTimeoutError);
    const failing = track(l.acquire('other'));
    await clock.increment(0);
    expect(failing.error).toBeInstanceOf(StoreUnavailableError);
    flaky.fail(false);
    await clock.increment(1000);
    await expect(l.acquire('k', { timeout: 0 })).resolves.toBeDefined();
    await expect(l.acquire('other', { timeout: 0 })).resolves.toBeDefined();
    await system.close();
  });

  it('fails the head with the store error when a queued decision throws, and serves the rest later', async () => {
    const flaky = flakyStore();
    const clock = new VirtualClock(0);
    const system = createLimiterSystem({ clock, store: flaky.store });
    const l = system.limiter('api', { limits: [{ limit: 1, interval: '1s' }] });
    await l.acquire('k');
    const first = track(l.acquire('k', { timeout: 5000 }));
    await clock.increment(999);
    flaky.fail(true);
    await clock.increment(1); // the wake-up: the store throws for the head
    expect(first.error).toBeInstanceOf(StoreUnavailableError);
    flaky.fail(false);
    const second = track(l.acquire('k', { timeout: 5000 }));
    await clock.increment(0);
    expect(second.done).toBe(true);
    expect(second.error).toBeUndefined();
    await system.close();
  });

  it('ends the waiters of an actor whose clock cannot arm its timer, and makes a new actor for the key (bug 3)', async () => {
    class BrokenClock extends VirtualClock {
      broken = false;
      override setTimeout(fn: () => void, ms: number): unknown {
        if (this.broken) throw new Error('broken clock');
        return super.setTimeout(fn, ms);
      }
    }
    const clock = new BrokenClock(0);
    const system = createLimiterSystem({ clock });
    const l = system.limiter('api', { limits: [{ limit: 1, interval: '1s' }] });
    await l.acquire('k');
    clock.broken = true;
    const waiting = track(l.acquire('k', { timeout: '1m' }));
    await clock.increment(0);
    expect(waiting.error).toBeInstanceOf(InternalError);
    expect((waiting.error as InternalError).message).toMatch(/broken clock/);
    clock.broken = false;
    await clock.increment(1000);
    await expect(l.acquire('k', { timeout: 0 })).resolves.toBeDefined();
    await system.close();
  });

  it('refuses a store that does not implement Store (bug 3)', () => {
    expect(() => createLimiterSystem({ store: {} as Store })).toThrow(InvalidArgumentError);
    expect(() => createLimiterSystem({ store: {} as Store })).toThrow(/missing: decide/);
  });

  it('evicts a key breaker with its key once the breaker is closed and idle (bug 6)', async () => {
    const { system, clock } = virtualSystem({ idleTimeout: '1s' });
    const l = system.limiter('llm', {
      limits: [{ limit: 100, interval: '1s' }],
      breaker: { failureThreshold: 2, openFor: '1s' },
    });
    for (let i = 0; i < 200; i++) await l.run(`user-${i}`, () => 'ok');
    await expect(l.run('flaky', () => Promise.reject(new Error('x')))).rejects.toThrow();
    expect(system.breakers.size).toBe(201);
    await clock.increment(5000);
    expect(system.liveKeys).toBe(0);
    // A breaker that counts a failure is kept (forgetting it would forget the failure).
    expect(system.breakers.size).toBe(1);
    expect(system.breakers.peek('llm/flaky')).toBeDefined();
  });

  it('keeps a breaker whose call is still out when its key is evicted, and forgets it once idle', async () => {
    const { system, clock } = virtualSystem({ idleTimeout: '1s' });
    const l = system.limiter('llm', {
      limits: [{ limit: 100, interval: '1s' }],
      breaker: { failureThreshold: 1, openFor: '1s' },
    });
    const grant = await l.acquire('slow'); // a long call: no slot, so the key can be evicted
    await clock.increment(5000);
    expect(system.liveKeys).toBe(0);
    expect(system.breakers.peek('llm/slow')).toBeDefined(); // its report would be lost
    grant.report('success');
    await clock.increment(2000);
    expect(system.breakers.peek('llm/slow')).toBeUndefined();
  });

  it('ends a waiter that waits behind a breaker when the system closes, and gives the probe back (bug 9)', async () => {
    const { system, clock } = virtualSystem();
    const l = system.limiter('llm', {
      limits: [{ limit: 10, interval: '1m' }],
      breaker: { failureThreshold: 1, openFor: '10s', whenOpen: 'wait' },
    });
    await expect(l.run('k', () => Promise.reject(new Error('503')))).rejects.toThrow();
    const controller = new AbortController();
    const waiting = track(l.acquire('k', { signal: controller.signal }));
    await system.close();
    await clock.increment(0);
    expect(waiting.error).toBeInstanceOf(LimiterClosedError);
    // The abort listener was detached: aborting now reaches no actor and throws nothing.
    controller.abort();
    expect(system.liveKeys).toBe(0);
  });

  it('rejects settle and cancel after close instead of throwing (bug 9)', async () => {
    const { system } = virtualSystem();
    const l = system.limiter('api', { limits: [{ limit: 10, interval: '1m' }] });
    const a = await l.acquire('k');
    const b = await l.acquire('k');
    await system.close();
    let settled: Promise<void> | undefined;
    expect(() => (settled = a.settle({ requests: 0 }))).not.toThrow();
    await expect(settled).rejects.toBeInstanceOf(LimiterClosedError);
    let cancelled: Promise<void> | undefined;
    expect(() => (cancelled = b.cancel())).not.toThrow();
    await expect(cancelled).rejects.toBeInstanceOf(LimiterClosedError);
  });

  it('serves a queue of 5,000 waiters in order, with aborts and timeouts in the middle (bug 8)', async () => {
    const { system, clock } = virtualSystem();
    const l = system.limiter('api', { limits: [{ limit: 1000, interval: '1s', burst: 1 }] });
    const controllers: AbortController[] = [];
    const order: number[] = [];
    const waiters = Array.from({ length: 5000 }, (_, i) => {
      const controller = new AbortController();
      controllers.push(controller);
      const timeout = i % 7 === 3 ? 100 : undefined;
      return track(
        l
          .acquire('k', {
            signal: controller.signal,
            ...(timeout === undefined ? {} : { timeout }),
          })
          .then((g) => (order.push(i), g)),
      );
    });
    for (let i = 5; i < 5000; i += 11) controllers[i]!.abort();
    await clock.increment(6000);
    const aborted = waiters.filter((w) => w.error instanceof AcquireAbortedError).length;
    const timedOut = waiters.filter((w) => w.error instanceof AcquireTimeoutError).length;
    expect(aborted + timedOut + order.length).toBe(5000);
    expect(order).toEqual([...order].sort((a, b) => a - b)); // arrival order kept
    expect(timedOut).toBeGreaterThan(0);
    expect((await l.stats('k')).queued).toBe(0);
  });
});

describe('MemoryStore as a Store', () => {
  it('is what createLimiterSystem uses by default', () => {
    expect(createLimiterSystem().store).toBeInstanceOf(MemoryStore);
  });
});
