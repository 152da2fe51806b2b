/**
 * The memory store's sweep, on every algorithm (#18): a key is dropped exactly when it holds
 * nothing, which each algorithm's `isFull` decides. Dropping a key that still holds usage
 * re-opens capacity (over-admission); never dropping one back at full capacity leaks memory.
 * The same rule is checked on random schedules against the reference model in
 * test/props/inPlace.props.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { compilePolicy, type AlgorithmName } from '../../src/limiter/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { MemoryStore, type MemorySnapshot } from '../../src/memory/memoryStore.js';
import { PAUSED, type StoreDecision, type StoreGrant } from '../../src/store.js';

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

describe('memory store pauses', () => {
  const policy = compilePolicy({ limits: [{ name: 'rps', limit: 100, interval: '1s' }] });

  it('refuses every request of a paused key with the time left, until the pause ends', () => {
    const store = new MemoryStore();
    store.pause('k', 500, 100); // until 600
    expect(store.decideOne('k', policy, req('a'), 200)).toEqual({
      ok: false,
      retryAfterMs: 400,
      limit: PAUSED,
    });
    expect(store.decideOne('j', policy, req('b'), 200).ok).toBe(true); // other keys go on
    expect(store.decideOne('k', policy, req('c'), 599)).toMatchObject({ retryAfterMs: 1 });
    expect(store.decideOne('k', policy, req('d'), 600).ok).toBe(true);
  });

  it('refuses a batch whole: one refusal per request, or one for a queue', () => {
    const store = new MemoryStore();
    store.pause('k', 300, 0);
    const refused = { ok: false, retryAfterMs: 200, limit: PAUSED };
    const batch = [req('a'), req('b')];
    expect(store.decide('k', policy, batch, 'each', 100)).toEqual([refused, refused]);
    expect(store.decide('k', policy, batch, 'queue', 100)).toEqual([refused]);
    expect(store.decide('k', policy, batch, 'each', 300).map((d) => d.ok)).toEqual([true, true]);
  });

  it('never shortens a pause, and lengthens it', () => {
    const store = new MemoryStore();
    store.pause('k', 500, 0);
    store.pause('k', 100, 0);
    expect(store.decideOne('k', policy, req('a'), 400)).toMatchObject({ retryAfterMs: 100 });
    store.pause('k', 1000, 0);
    expect(store.decideOne('k', policy, req('b'), 400)).toMatchObject({ retryAfterMs: 600 });
  });

  it('clears an ended pause where the key is written back, so a clock stepping back is not paused again', () => {
    const store = new MemoryStore();
    store.pause('k', 500, 0);
    store.read('k', policy, 600); // a read writes nothing: the ended pause stays
    expect(store.decideOne('k', policy, req('a'), 300)).toMatchObject({ limit: PAUSED });
    expect(store.decideOne('k', policy, req('b'), 600).ok).toBe(true); // a grant writes: cleared
    expect(store.decideOne('k', policy, req('c'), 300).ok).toBe(true);
  });

  it.each(['settle', 'cancel'] as const)('a %s after the pause ended clears it', (how) => {
    const store = new MemoryStore();
    const d = store.decideOne('k', policy, req('a'), 0);
    if (!d.ok) throw new Error('granted on an empty key');
    store.pause('k', 500, 0);
    if (how === 'settle') store.settle('k', policy, d.grant, [2], 600);
    else store.cancel('k', policy, d.grant, 600);
    expect(store.decideOne('k', policy, req('b'), 300).ok).toBe(true);
  });

  it('keeps the entry of a paused key that holds nothing until the pause ends', () => {
    const store = new MemoryStore();
    const d = store.decideOne('k', policy, req('a'), 0);
    if (!d.ok) throw new Error('granted on an empty key');
    store.pause('k', 500, 0);
    store.cancel('k', policy, d.grant, 100); // the key holds nothing, but is paused
    expect(store.size).toBe(1);
    store.sweep(400);
    expect(store.decideOne('k', policy, req('b'), 400)).toMatchObject({ retryAfterMs: 100 });
    store.sweep(500); // the pause ended and the key holds nothing: both go
    expect(store.size).toBe(0);
    expect(store.decideOne('k', policy, req('c'), 300).ok).toBe(true);
  });

  it('reset ends a pause', () => {
    const store = new MemoryStore();
    store.pause('k', 500, 0);
    store.reset('k');
    expect(store.decideOne('k', policy, req('a'), 100).ok).toBe(true);
  });

  it('estimates a paused key from the end of its pause', () => {
    const store = new MemoryStore();
    const one = compilePolicy({ limits: [{ name: 'rps', limit: 1, interval: '1s' }] });
    expect(store.estimate('k', one, [[1], [1]], 0)).toBe(1000);
    store.pause('k', 300, 0);
    // The first fits at 300, the second 1,000 ms after it.
    expect(store.estimate('k', one, [[1], [1]], 0)).toBe(1300);
    expect(store.estimate('k', one, [], 100)).toBe(200);
  });
});

describe('memory store snapshots, epochs and slots', () => {
  const policy = compilePolicy({
    limits: [{ name: 'rps', limit: 2, interval: '1s' }],
    concurrency: 2,
  });
  const slotted = (id: string) => ({ id, units: [1], slot: true, leaseMs: null });
  const granted = (d: StoreDecision): StoreGrant => {
    if (!d.ok) throw new Error(`refused: ${d.limit}`);
    return d.grant;
  };

  it('snapshots the keys that hold units, advanced to now, without slots', () => {
    // 2 per second: a unit is 1,000 scaled, the bucket drains 2 per ms.
    const store = new MemoryStore();
    granted(store.decideOne('a', policy, slotted('1'), 0));
    granted(store.decideOne('b', policy, slotted('2'), 0));
    granted(store.decideOne('b', policy, slotted('3'), 0));
    // At 600 a holds nothing but its slot; b's bucket drained 1,200 of 2,000.
    const snapshot = store.snapshot(600);
    expect(snapshot).toEqual({
      version: 1,
      keys: {
        b: {
          policy,
          state: { at: 600, inFlight: 0, limits: [{ used: 800, refunded: 0, emptiedAt: 0 }] },
        },
      },
    });
    const copy = new MemoryStore(snapshot);
    expect(copy.size).toBe(1);
    // 1 unit fits (1,200 free); 800 more drain in 400 ms.
    expect(copy.read('b', policy, 600)).toMatchObject({
      at: 600,
      limits: [{ remaining: 1, resetMs: 400 }],
      inFlight: 0,
    });
    expect(store.read('b', policy, 600)).toMatchObject({
      limits: [{ remaining: 1, resetMs: 400 }],
    });
  });

  it.each([
    ['null', null],
    ['undefined', undefined],
    ['a number', 1],
    ['another version', { version: 2, keys: {} }],
    ['no keys', { version: 1 }],
  ])('refuses to restore %s', (_what, snapshot) => {
    const store = new MemoryStore();
    expect(() => store.restore(snapshot as unknown as MemorySnapshot)).toThrow(
      InvalidArgumentError,
    );
  });

  it('says, refusing a snapshot, who refused what, and what a snapshot is', () => {
    const store = new MemoryStore();
    expect(() => store.restore({ version: 2, keys: {} } as unknown as MemorySnapshot)).toThrow(
      'tollgate: memoryStore: snapshot is {"version":2,"keys":{}} (an object); expected a memory snapshot { version: 1, keys }, e.g. system.snapshot().store',
    );
  });

  it('gives a grant from before a restore nothing back, and frees none of its slot', () => {
    const store = new MemoryStore();
    const g = granted(store.decideOne('k', policy, slotted('1'), 0));
    granted(store.decideOne('k', policy, slotted('2'), 0));
    store.restore(store.snapshot(0)); // the key anew: 2 units, no slot
    store.cancel('k', policy, g, 0);
    expect(store.read('k', policy, 0)).toMatchObject({ inFlight: 0, limits: [{ remaining: 0 }] });
  });

  it('frees a slot only for a grant of the entry that counts it', () => {
    const store = new MemoryStore();
    const a = granted(store.decideOne('k', policy, slotted('1'), 0));
    const b = granted(store.decideOne('k', policy, slotted('2'), 0));
    expect(store.decideOne('k', policy, slotted('3'), 1000)).toMatchObject({
      limit: 'concurrency',
    });
    store.release('k', policy, { ...a, slot: false }, 1000); // holds no slot: nothing freed
    store.release('k', policy, { id: 'x', at: 0, units: [1], slot: true }, 1000); // no epoch: nothing
    expect(store.read('k', policy, 1000).inFlight).toBe(2);
    store.release('k', policy, a, 1000);
    expect(store.read('k', policy, 1000).inFlight).toBe(1);
    store.reset('k'); // a new entry: b's slot is not counted in it
    const c = granted(store.decideOne('k', policy, slotted('4'), 1000));
    store.release('k', policy, b, 1000);
    expect(store.read('k', policy, 1000).inFlight).toBe(1);
    store.release('k', policy, { ...c, epoch: c.epoch! + 1 }, 1000); // an epoch to come: nothing
    expect(store.read('k', policy, 1000).inFlight).toBe(1);
    store.release('k', policy, c, 1000);
    expect(store.read('k', policy, 1000).inFlight).toBe(0);
    store.release('gone', policy, c, 1000); // a key without an entry: nothing to do
  });

  it('forgets a key on eviction only once it holds nothing', () => {
    const store = new MemoryStore();
    const g = granted(store.decideOne('k', policy, slotted('1'), 0));
    store.forget('k', 5000); // back at full capacity, but a slot is held
    expect(store.size).toBe(1);
    store.release('k', policy, g, 5000);
    store.forget('k', 5000);
    expect(store.size).toBe(0);
    store.forget('k', 5000); // nothing left to forget
  });
});

describe('memory store: what it keeps, and grants across a limit change', () => {
  const policy = compilePolicy({
    limits: [{ name: 'rps', limit: 2, interval: '1s' }],
    concurrency: 2,
  });
  const plainReq = (id: string, units: number[]) => ({ id, units, slot: false, leaseMs: null });
  const slotted = (id: string) => ({ id, units: [1], slot: true, leaseMs: null });
  const granted = (d: StoreDecision): StoreGrant => {
    if (!d.ok) throw new Error(`refused: ${d.limit}`);
    return d.grant;
  };

  it('is the synchronous store named memory', () => {
    const store = new MemoryStore();
    expect({ name: store.name, sync: store.sync }).toEqual({ name: 'memory', sync: true });
  });

  it('keeps no entry for a grant that books nothing and holds no slot', () => {
    const store = new MemoryStore();
    expect(store.decideOne('k', policy, plainReq('a', [0]), 0).ok).toBe(true);
    expect(store.size).toBe(0);
    expect(
      store
        .decide('j', policy, [plainReq('b', [0]), plainReq('c', [0])], 'each', 0)
        .map((d) => d.ok),
    ).toEqual([true, true]);
    expect(store.size).toBe(0);
    expect(store.decideOne('k', policy, slotted('d'), 0).ok).toBe(true); // a slot is worth keeping
    expect(store.decideOne('j', policy, plainReq('e', [1]), 0).ok).toBe(true);
    expect(store.size).toBe(2);
  });

  it('names the call when units have another length', () => {
    const store = new MemoryStore();
    const g = granted(store.decideOne('k', policy, plainReq('a', [1]), 0));
    expect(() => store.decideOne('k', policy, plainReq('b', [1, 1]), 0)).toThrow(/decide/);
    expect(() => store.settle('k', policy, g, [1, 1], 0)).toThrow(/settle/);
  });

  it('reads at the key’s own instant when the clock steps back', () => {
    const store = new MemoryStore();
    granted(store.decideOne('k', policy, plainReq('a', [1]), 1000));
    expect(store.read('k', policy, 400).at).toBe(1000);
    expect(store.read('k', policy, 1400).at).toBe(1400);
    expect(store.read('new', policy, 400).at).toBe(400);
  });

  it('estimates without foreseeing slots, even when every slot is held', () => {
    const store = new MemoryStore();
    granted(store.decideOne('k', policy, slotted('a'), 0));
    granted(store.decideOne('k', policy, slotted('b'), 0));
    // Full bucket (2 of 2): the next unit fits at 500 (2 per s), the one after at 1000.
    expect(store.estimate('k', policy, [[1], [1]], 0)).toBe(1000);
  });

  // rps 2/s and a sliding window w; a change of w's interval restarts it (a new epoch), a change
  // of rps's rate does not.
  const before = compilePolicy({
    limits: [
      { name: 'rps', limit: 2, interval: '1s' },
      { name: 'w', limit: 5, interval: '1s', algorithm: 'sliding-window' },
    ],
    concurrency: 3,
  });
  const faster = compilePolicy({
    limits: [
      { name: 'rps', limit: 4, interval: '1s' },
      { name: 'w', limit: 5, interval: '1s', algorithm: 'sliding-window' },
    ],
    concurrency: 3,
  });
  const restarted = compilePolicy({
    limits: [
      { name: 'rps', limit: 2, interval: '1s' },
      { name: 'w', limit: 5, interval: '2s', algorithm: 'sliding-window' },
    ],
    concurrency: 3,
  });
  const two = (id: string) => ({ id, units: [1, 1], slot: true, leaseMs: null });

  it('gives back to a grant from before a limit change that keeps every limit’s state', () => {
    const store = new MemoryStore();
    const g = granted(store.decideOne('k', before, two('a'), 0));
    granted(store.decideOne('k', before, two('b'), 0));
    store.settle('k', faster, g, [0, 0], 0); // under the new policy: rps back 1, w back 1
    expect(store.read('k', faster, 0).limits.map((l) => l.remaining)).toEqual([3, 4]);
  });

  it('gives nothing back to a grant from before a limit change that restarts a limit, but frees its slot', () => {
    const store = new MemoryStore();
    const g = granted(store.decideOne('k', before, two('a'), 0));
    granted(store.decideOne('k', before, two('b'), 0));
    store.settle('k', restarted, { ...g, slot: false }, [0, 0], 0); // rps keeps 2, w starts empty
    expect(store.read('k', restarted, 0).limits.map((l) => l.remaining)).toEqual([0, 5]);
    const c = granted(store.decideOne('k', restarted, { ...two('c'), units: [0, 1] }, 0));
    expect(store.read('k', restarted, 0)).toMatchObject({ inFlight: 3 });
    // The grant from before still holds its slot in this entry, and so does the one after.
    store.cancel('k', restarted, g, 0);
    expect(store.read('k', restarted, 0)).toMatchObject({
      inFlight: 2,
      limits: [{ remaining: 0 }, { remaining: 4 }],
    });
    store.release('k', restarted, c, 0);
    expect(store.read('k', restarted, 0).inFlight).toBe(1);
  });
});

describe('memory store: a policy of the same limits in another order', () => {
  it('follows each limit by name, and keeps the state as it stands', () => {
    const ab = compilePolicy({
      limits: [
        { name: 'a', limit: 2, interval: '1s' },
        { name: 't', limit: 100, interval: '1s', dimension: 'tokens' },
      ],
    });
    const ba = compilePolicy({
      limits: [
        { name: 't', limit: 100, interval: '1s', dimension: 'tokens', burst: 150 },
        { name: 'a', limit: 2, interval: '1s' },
      ],
    });
    const store = new MemoryStore();
    expect(
      store.decideOne('k', ab, { id: '1', units: [1, 40], slot: false, leaseMs: null }, 0).ok,
    ).toBe(true);
    // Under the reordered policy (a new burst only): a holds 1 of 2, t 40 of 150.
    expect(
      store.decideOne('k', ba, { id: '2', units: [10, 1], slot: false, leaseMs: null }, 0).ok,
    ).toBe(true);
    expect(store.read('k', ba, 0).limits.map((l) => [l.name, l.remaining])).toEqual([
      ['t', 100],
      ['a', 0],
    ]);
    expect(store.snapshot(0).keys.k!.state.limits).toEqual([
      { used: 50_000, refunded: 0, emptiedAt: 0 },
      { used: 2000, refunded: 0, emptiedAt: 0 },
    ]);
  });
});

describe('memory store: which decisions clear an ended pause (as Redis writes the key back)', () => {
  const ab = compilePolicy({
    limits: [
      { name: 'a', limit: 2, interval: '1s' },
      { name: 't', limit: 100, interval: '1s', dimension: 'tokens' },
    ],
  });
  const reordered = compilePolicy({
    limits: [
      { name: 't', limit: 100, interval: '1s', dimension: 'tokens' },
      { name: 'a', limit: 2, interval: '1s' },
    ],
  });
  const slower = compilePolicy({
    limits: [
      { name: 'a', limit: 1, interval: '1s' },
      { name: 't', limit: 100, interval: '1s', dimension: 'tokens' },
    ],
  });
  const r = (id: string, units: number[]) => ({ id, units, slot: false, leaseMs: null });

  /** A key full on `a` at 0, paused until 500. */
  function pausedFull(): MemoryStore {
    const store = new MemoryStore();
    expect(store.decideOne('k', ab, r('0', [2, 0]), 0).ok).toBe(true);
    store.pause('k', 500, 0);
    return store;
  }

  it('a refusal under the same limits in another order writes nothing: the ended pause holds again when the clock steps back', () => {
    const store = pausedFull();
    expect(store.decideOne('k', reordered, r('1', [0, 2]), 600)).toMatchObject({
      ok: false,
      limit: 'a',
    });
    expect(store.decideOne('k', reordered, r('2', [0, 0]), 300)).toMatchObject({ limit: PAUSED });
  });

  it('a refusal under changed limits rebases the key, which writes it back: the ended pause is gone', () => {
    const store = pausedFull();
    expect(store.decideOne('k', slower, r('1', [2, 0]), 600)).toMatchObject({
      ok: false,
      limit: 'a',
    });
    expect(store.decideOne('k', slower, r('2', [0, 0]), 300).ok).toBe(true);
  });

  it('a batch clears an ended pause when it grants something, not when it grants nothing', () => {
    const store = pausedFull();
    expect(store.decide('k', ab, [r('1', [2, 0])], 'each', 600).map((d) => d.ok)).toEqual([false]);
    expect(store.decideOne('k', ab, r('2', [0, 0]), 300)).toMatchObject({ limit: PAUSED });
    expect(
      store.decide('k', ab, [r('3', [1, 0]), r('4', [2, 0])], 'each', 600).map((d) => d.ok),
    ).toEqual([true, false]);
    expect(store.decideOne('k', ab, r('5', [0, 0]), 300).ok).toBe(true);
  });
});

describe('memory store: epochs, pauses and argument checks at their edges (#18)', () => {
  const p1 = compilePolicy({ limits: [{ name: 'rps', limit: 10, interval: '1s' }] });
  const units = (id: string, n: number) => ({ id, units: [n], slot: false, leaseMs: null });
  const granted = (d: StoreDecision): StoreGrant => {
    if (!d.ok) throw new Error(`refused: ${d.limit}`);
    return d.grant;
  };
  const remaining = (store: MemoryStore, policy = p1): number =>
    store.read('k', policy, 0).limits[0]!.remaining;

  // A grant's epoch names the entry it was booked in; an entry made later never takes it again,
  // or a grant from before a reset would give units back to a key that never held them.
  it.each([
    [
      'a reset after a restart',
      (store: MemoryStore) => {
        // Another limit in place of rps restarts the key's state: a new epoch.
        const other = compilePolicy({ limits: [{ name: 'other', limit: 10, interval: '1s' }] });
        granted(store.decideOne('k', other, units('x', 1), 0));
        store.reset('k');
      },
    ],
    [
      'a settle that made the entry anew, then a reset',
      (store: MemoryStore, g: StoreGrant) => {
        store.reset('k');
        store.settle('k', p1, g, [6], 0); // no entry any more: books the extra charge anew
        store.reset('k');
      },
    ],
    [
      'a restore, then a reset',
      (store: MemoryStore) => {
        store.restore(store.snapshot(0));
        store.reset('k');
      },
    ],
  ])('a grant from before %s gives nothing back to a later entry', (_what, between) => {
    const store = new MemoryStore();
    const g = granted(store.decideOne('k', p1, units('a', 5), 0));
    between(store, g);
    granted(store.decideOne('k', p1, units('b', 5), 0));
    store.cancel('k', p1, g, 0);
    expect(remaining(store)).toBe(5);
  });

  it('a grant from before a rate increase (no limit restarted) still gives its units back after a decision under the new rate', () => {
    const store = new MemoryStore();
    const up = compilePolicy({ limits: [{ name: 'rps', limit: 20, interval: '1s' }] });
    const g = granted(store.decideOne('k', p1, units('a', 5), 0));
    granted(store.decideOne('k', up, units('b', 1), 0)); // takes the key under `up`
    store.cancel('k', up, g, 0);
    expect(remaining(store, up)).toBe(19);
  });

  it('forgets a key that holds nothing while another key is paused', () => {
    const store = new MemoryStore();
    store.pause('j', 500, 0);
    const g = granted(store.decideOne('k', p1, units('a', 1), 0));
    expect(store.size).toBe(1);
    store.cancel('k', p1, g, 100);
    expect(store.size).toBe(0);
  });

  it('a grant at the very instant a pause ends clears it: the clock stepping back is not paused', () => {
    const store = new MemoryStore();
    store.pause('k', 500, 0);
    granted(store.decideOne('k', p1, units('a', 1), 500));
    expect(store.decideOne('k', p1, units('b', 1), 300).ok).toBe(true);
  });

  it('estimates a key whose pause has ended from now, not from the end of the pause', () => {
    const store = new MemoryStore();
    store.pause('k', 300, 0);
    expect(store.estimate('k', p1, [], 500)).toBe(0);
    expect(store.estimate('k', p1, [[1]], 500)).toBe(0);
  });

  it('names the call and the field of units of the wrong length', () => {
    const store = new MemoryStore();
    const expected =
      'expected one amount per limit of the policy, 1: compile the cost with the policy it is used with';
    expect(() =>
      store.decideOne('k', p1, { id: 'a', units: [1, 2], slot: false, leaseMs: null }, 0),
    ).toThrow(`tollgate: decide: request.units is [1,2] (an array), 2 amounts; ${expected}`);
    const g = granted(store.decideOne('k', p1, units('a', 1), 0));
    expect(() => store.settle('k', p1, g, [1, 2], 0)).toThrow(
      `tollgate: settle: actual is [1,2] (an array), 2 amounts; ${expected}`,
    );
  });
});
