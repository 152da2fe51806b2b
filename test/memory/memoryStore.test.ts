/**
 * The memory store's sweep, on every algorithm (#18): a key is dropped exactly when it holds
 * nothing, which each algorithm's `isFull` decides. Dropping a key that still holds usage
 * re-opens capacity (over-admission); never dropping one back at full capacity leaks memory.
 * The same rule is checked on random schedules against the reference model in
 * test/props/inPlace.props.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { compilePolicy, type AlgorithmName } from '../../src/limiter/index.js';
import { MemoryStore } from '../../src/memory/memoryStore.js';

const ALGORITHMS: AlgorithmName[] = ['token-bucket', 'sliding-window', 'fixed-window'];
const req = (id: string) => ({ id, units: [1], slot: false, leaseMs: null });

describe('memory store sweep (#18)', () => {
  // 1 per second: a grant at 0 holds the key until 1000 on every algorithm (the bucket drains
  // 1 per ms of 1,000 scaled; the entry at 0 counts while now < 1000; the window [0, 1000)).
  it.each(ALGORITHMS)(
    '%s: keeps a key that still holds usage, so a second request at 20 is refused',
    (algorithm) => {
      const policy = compilePolicy({
        limits: [{ name: 'rps', limit: 1, interval: '1s' }],
        algorithm,
      });
      const store = new MemoryStore();
      expect(store.decideOne('k', policy, req('a'), 0).ok).toBe(true);
      store.sweep(10);
      expect(store.size).toBe(1);
      expect(store.decideOne('k', policy, req('b'), 20)).toEqual({
        ok: false,
        retryAfterMs: 980,
        limit: 'rps',
      });
      store.forget('k', 999);
      expect(store.size).toBe(1);
    },
  );

  it.each(ALGORITHMS)('%s: drops a key once it is back at full capacity', (algorithm) => {
    const policy = compilePolicy({
      limits: [{ name: 'rps', limit: 1, interval: '1s' }],
      algorithm,
    });
    const store = new MemoryStore();
    expect(store.decideOne('k', policy, req('a'), 0).ok).toBe(true);
    expect(store.decideOne('j', policy, req('b'), 1000).ok).toBe(true);
    store.sweep(1000); // k is back at full capacity; j holds its grant until 2000
    expect(store.size).toBe(1);
    expect(Object.keys(store.snapshot(1000).keys)).toEqual(['j']);
    store.forget('j', 1999);
    expect(store.size).toBe(1);
    store.forget('j', 2000);
    expect(store.size).toBe(0);
  });
});
