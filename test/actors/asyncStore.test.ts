/**
 * The runtime with an asynchronous store (as Redis is), on virtual time: a store whose answers
 * the test releases by hand, so the windows while a batch is out can be probed. These pin bugs a
 * review found: a blocked head re-asked at every answer, a try left pending behind a blocked head,
 * capacity leaked when the system closed while a batch was out, and a limit change that
 * re-compiled waiters the store was deciding.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { BatchMode, Store, StoreDecision, StoreRequest } from '../../src/store.js';
import { VirtualClock, createLimiterSystem, type LimiterSystem } from '../../src/index.js';
import type { Ms, Policy } from '../../src/limiter/types.js';
import { MemoryStore } from '../../src/memory/memoryStore.js';

/** A memory store that answers decide() only when the test calls `answer()` (or at once if `auto`). */
class GatedStore implements Store {
  readonly name = 'gated';
  readonly sync = false;
  readonly inner = new MemoryStore();
  decides = 0;
  /** The size of every batch asked for, in order. */
  readonly sizes: number[] = [];
  auto = false;
  readonly #gates: (() => void)[] = [];

  decide(
    key: string,
    policy: Policy,
    batch: readonly StoreRequest[],
    mode: BatchMode,
    now: Ms,
  ): Promise<StoreDecision[]> {
    this.decides++;
    this.sizes.push(batch.length);
    return new Promise((resolve) => {
      const go = () => resolve(this.inner.decide(key, policy, batch, mode, now));
      if (this.auto) queueMicrotask(go);
      else this.#gates.push(go);
    });
  }
  /** Answers every decide asked so far. */
  answer(): void {
    for (const g of this.#gates.splice(0)) g();
  }
  get waiting(): number {
    return this.#gates.length;
  }
  settle = async (...a: Parameters<MemoryStore['settle']>) => this.inner.settle(...a);
  cancel = async (...a: Parameters<MemoryStore['cancel']>) => this.inner.cancel(...a);
  release = async (...a: Parameters<MemoryStore['release']>) => this.inner.release(...a);
  read = async (...a: Parameters<MemoryStore['read']>) => this.inner.read(...a);
  reset = async (...a: Parameters<MemoryStore['reset']>) => this.inner.reset(...a);
  close = async () => {};
}

let system: LimiterSystem | undefined;
let clock: VirtualClock;
let store: GatedStore;

function setup(pollInterval = 250) {
  clock = new VirtualClock(0);
  store = new GatedStore();
  system = createLimiterSystem({ clock, store, pollInterval });
  return system;
}

afterEach(async () => {
  store.auto = true;
  store.answer();
  await system?.close();
  system = undefined;
});

const flush = () => clock.increment(0);

describe('an async store', () => {
  it('asks again for a refused head only at its wake-up, not at every answer', async () => {
    store = new GatedStore();
    setup(250);
    store.auto = true;
    const l = system!.limiter('api', { limits: [{ limit: 1, interval: '10s' }] });
    await l.acquire('k');
    const asked = store.decides;
    const waiter = l.acquire('k', { timeout: 60_000 });
    await clock.increment(1000);
    // Refused once, then asked again at each poll (250 ms): about 4 more, never hundreds.
    expect(store.decides - asked).toBeLessThanOrEqual(6);
    await clock.increment(9000);
    await expect(waiter).resolves.toBeDefined();
  });

  it('answers a try that queued behind a head while the head was being decided', async () => {
    setup();
    const l = system!.limiter('api', { limits: [{ limit: 1, interval: '10s' }] });
    store.auto = true;
    await l.acquire('k'); // the limit is used up
    store.auto = false;
    const head = l.acquire('k', { timeout: 60_000 });
    await flush();
    const tried = l.tryAcquire('k'); // arrives while the head is out
    let answer: unknown;
    void tried.then((r) => (answer = r));
    store.answer(); // the head is refused
    await flush();
    store.answer();
    await flush();
    expect(answer).toMatchObject({ ok: false, limit: 'queue' });
    store.auto = true;
    await clock.increment(10_000);
    await expect(head).resolves.toBeDefined();
  });

  it('gives back what the store granted when the system closed while it was deciding', async () => {
    setup();
    const l = system!.limiter('api', {
      limits: [{ limit: 5, interval: '1m', name: 'rpm' }],
      concurrency: 1,
    });
    const waiter = l.acquire('k').catch((e: unknown) => e);
    await flush();
    expect(store.waiting).toBe(1);
    const closing = system!.close();
    store.answer(); // the store booked the grant just as the system closed
    await closing;
    await flush();
    expect(await waiter).toMatchObject({ code: 'LIMITER_CLOSED' });
    // The key's identity in the store is `<name length>:<limiter>:<key>`.
    const r = store.inner.read('3:api:k', l.policy, clock.now());
    expect([r.inFlight, r.limits[0]!.remaining]).toEqual([0, 5]);
    system = undefined;
  });

  it('does not re-compile waiters the store is deciding when the limits change meanwhile', async () => {
    setup();
    const l = system!.limiter('llm', { limits: [{ limit: 10, interval: '1m', name: 'rpm' }] });
    const g = l.acquire('k', { cost: { requests: 1 } });
    await flush();
    // A tokens limit joins while the request is out: its grant is in the old policy's terms.
    l.setLimits({
      limits: [
        { limit: 10, interval: '1m', name: 'rpm' },
        { limit: 1000, interval: '1m', dimension: 'tokens', name: 'tpm' },
      ],
    });
    store.auto = true;
    store.answer();
    const grant = await g;
    await grant.settle({ requests: 1, tokens: 300 });
    const s = await l.stats('k');
    expect(s.limits.map((x) => [x.name, x.remaining])).toEqual([
      ['rpm', 9],
      ['tpm', 700],
    ]);
  });

  it('times a waiter out at its deadline while it waits behind a batch that is out (#10 review)', async () => {
    setup();
    const l = system!.limiter('api', { limits: [{ limit: 10, interval: '1s' }] });
    const first = l.acquire('k'); // sent: the store holds its answer
    await flush();
    let ended: unknown = 'pending';
    l.acquire('k', { timeout: 100 }).then(
      () => (ended = 'granted'),
      (e: Error) => (ended = e.name),
    ); // held behind the batch out
    await clock.increment(100);
    expect(ended).toBe('AcquireTimeoutError'); // before: only once the store answered
    expect(store.waiting).toBe(1);
    store.answer();
    await expect(first).resolves.toBeDefined();
  });

  it('refuses with QueueFullError a waiter held behind a batch once the head it queues behind is refused and the queue is full (#10)', async () => {
    setup();
    const l = system!.limiter('api', {
      limits: [{ limit: 1, interval: '10s' }],
      maxQueue: 1,
    });
    store.auto = true;
    await l.acquire('k'); // the limit is used up
    store.auto = false;
    const busy = l.acquire('other'); // nothing: a decide of another key keeps the store busy
    void busy;
    const a = l.acquire('k', { timeout: 60_000 }).catch((e: Error) => e.name);
    await flush();
    const b = l.acquire('k', { timeout: 60_000 }).catch((e: Error) => e.name); // held
    store.answer(); // a refused: the head, the queue is full, and b queues behind it
    await flush();
    expect(await b).toBe('QueueFullError');
    expect((await l.stats('k')).queued).toBe(1);
    store.auto = true;
    store.answer();
    void a;
  });
});

describe('batch sizes', () => {
  it('sends at most 128 waiters of a key per call, and 64 when each takes a slot', async () => {
    const sys = setup();
    store.auto = true;
    const plain = sys.limiter('plain', { limits: [{ limit: 1000, interval: '1m' }] });
    const slotted = sys.limiter('slotted', {
      limits: [{ limit: 1000, interval: '1m' }],
      concurrency: 1000,
    });
    await Promise.all(Array.from({ length: 200 }, () => plain.acquire('k')));
    expect(Math.max(...store.sizes)).toBe(128);
    store.sizes.length = 0;
    await Promise.all(Array.from({ length: 200 }, () => slotted.acquire('k')));
    expect(Math.max(...store.sizes)).toBe(64);
    expect(store.sizes.reduce((a, b) => a + b, 0)).toBe(200);
  });
});
