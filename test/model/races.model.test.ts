/**
 * Races under fc.scheduler: the runtime on an asynchronous store whose answers fast-check's
 * scheduler releases in random order, while calls (acquire with timeouts, aborts and priorities,
 * tryAcquire, settle, cancel, release, reset, time steps, close) land anywhere in between. The
 * store applies each call when it is made (as Redis runs a script when it arrives) and logs it;
 * only its answer waits. The checks:
 * - the store's calls, replayed in their order through the reference model (reference.ts), are
 *   each admissible: a grant only when every limit has room and a slot is free, a refusal only
 *   when the model refuses too, settles and cancels of what was booked, no slot given back twice,
 *   and every read answers what the model holds;
 * - a grant the store made reaches its waiter, or is given back (cancel) when the waiter ended
 *   meanwhile (timeout, abort, close);
 * - every waiter ends exactly once; after close, all have ended;
 * - once everything is released and time passes, every key is back at full capacity, no slot held.
 *
 * Replay: MODEL_SEED=<seed> MODEL_PATH=<path> npx vitest run test/model/races.model.test.ts
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  VirtualClock,
  createLimiterSystem,
  memoryStore,
  type BatchMode,
  type Grant,
  type KeyReading,
  type Policy,
  type Store,
  type StoreDecision,
  type StoreGrant,
  type StoreRequest,
  type Units,
} from '../../src/index.js';
import { show } from './check.js';
import { codeOf } from './real.js';
import { KeyLimits, type MGrant } from './reference.js';
import { KEYS, MAIN_POLICIES, spec } from './setup.js';

const RUNS = Number(process.env.MODEL_RUNS ?? 1000);
const REPLAY =
  process.env.MODEL_SEED === undefined
    ? {}
    : { seed: Number(process.env.MODEL_SEED), path: process.env.MODEL_PATH ?? '' };
const POLICY = MAIN_POLICIES[0]!;
const LEASE = 1500;

type Logged =
  | {
      readonly k: 'decide';
      readonly key: string;
      readonly now: number;
      readonly reqs: readonly { id: string; units: Units; slot: boolean }[];
      readonly decisions: readonly (
        | { ok: true; id: string; at: number; units: Units; slot: boolean }
        | { ok: false; limit: string; retryAfterMs: number }
      )[];
    }
  | {
      readonly k: 'settle';
      readonly key: string;
      readonly now: number;
      readonly grant: Rec;
      readonly actual: Units;
    }
  | {
      readonly k: 'cancel' | 'release';
      readonly key: string;
      readonly now: number;
      readonly grant: Rec;
    }
  | { readonly k: 'reset'; readonly key: string; readonly now: number }
  | {
      readonly k: 'read';
      readonly key: string;
      readonly now: number;
      readonly reading: KeyReading;
    };

interface Rec {
  readonly id: string;
  readonly at: number;
  readonly units: Units;
  readonly slot: boolean;
}

const rec = (g: StoreGrant): Rec => ({ id: g.id, at: g.at, units: [...g.units], slot: g.slot });

/**
 * The memory store made asynchronous: each call is applied at once and logged; its answer is
 * released by the scheduler.
 */
class ScheduledStore implements Store {
  readonly name = 'scheduled';
  readonly sync = false;
  readonly log: Logged[] = [];
  readonly #inner = memoryStore();
  constructor(private readonly s: fc.Scheduler) {}

  #later<T>(value: T, label: string): Promise<T> {
    return this.s.schedule(Promise.resolve(value), label);
  }
  decide(
    key: string,
    policy: Policy,
    batch: readonly StoreRequest[],
    mode: BatchMode,
    now: number,
  ): Promise<StoreDecision[]> {
    const d = this.#inner.decide(key, policy, batch, mode, now);
    this.log.push({
      k: 'decide',
      key,
      now,
      reqs: batch.map((r) => ({ id: r.id, units: [...r.units], slot: r.slot })),
      decisions: d.map((x) =>
        x.ok
          ? { ok: true, ...rec(x.grant) }
          : { ok: false, limit: x.limit, retryAfterMs: x.retryAfterMs },
      ),
    });
    return this.#later(d, `decide ${key}`);
  }
  settle(
    key: string,
    policy: Policy,
    grant: StoreGrant,
    actual: Units,
    now: number,
  ): Promise<void> {
    this.log.push({ k: 'settle', key, now, grant: rec(grant), actual: [...actual] });
    this.#inner.settle(key, policy, grant, actual, now);
    return this.#later(undefined, `settle ${key}`);
  }
  cancel(key: string, policy: Policy, grant: StoreGrant, now: number): Promise<void> {
    this.log.push({ k: 'cancel', key, now, grant: rec(grant) });
    this.#inner.cancel(key, policy, grant, now);
    return this.#later(undefined, `cancel ${key}`);
  }
  release(key: string, policy: Policy, grant: StoreGrant, now: number): Promise<void> {
    this.log.push({ k: 'release', key, now, grant: rec(grant) });
    this.#inner.release(key, policy, grant, now);
    return this.#later(undefined, `release ${key}`);
  }
  read(key: string, policy: Policy, now: number): Promise<KeyReading> {
    const reading = this.#inner.read(key, policy, now);
    this.log.push({ k: 'read', key, now, reading });
    return this.#later(reading, `read ${key}`);
  }
  reset(key: string, now: number): Promise<void> {
    this.log.push({ k: 'reset', key, now });
    (this.#inner as Store).reset(key, now);
    return this.#later(undefined, `reset ${key}`);
  }
  async close(): Promise<void> {}
}

/** Replays the store's log through the reference model; returns the problems found. */
function replay(log: readonly Logged[], held: ReadonlySet<string>): string[] {
  const out: string[] = [];
  const keys = new Map<string, KeyLimits>();
  const grants = new Map<string, MGrant>();
  const cancelled = new Set<string>();
  const at = (key: string, t: number): KeyLimits => {
    let k = keys.get(key);
    if (k === undefined) keys.set(key, (k = new KeyLimits(POLICY, t)));
    return k;
  };
  const slot = POLICY.concurrency !== null;
  const freeSlot = (k: KeyLimits, g: MGrant, r: Rec, where: string): void => {
    if (!r.slot) return;
    if (!g.slotHeld) out.push(`${where}: grant ${r.id} gives back a slot it no longer holds`);
    g.slotHeld = false;
    if (g.gen === k.gen) k.release(g);
  };
  log.forEach((e, i) => {
    const k = at(e.key, e.now);
    const where = `store call #${i} (${e.k} ${e.key} at ${e.now})`;
    switch (e.k) {
      case 'decide':
        e.decisions.forEach((d, j) => {
          const r = e.reqs[j]!;
          const m = k.decide(POLICY, r.units, r.slot, e.now);
          if (d.ok !== m.ok) {
            out.push(
              `${where}: the store ${d.ok ? 'granted' : 'refused'} ${show(r.units)}, the model ${m.ok ? 'grants' : `refuses (${m.limit})`}`,
            );
            return;
          }
          if (!d.ok) return;
          const g: MGrant = {
            hid: i,
            gen: k.gen,
            at: e.now,
            cost: undefined,
            booked: new Map(),
            slotHeld: slot,
            leaseEnd: Infinity,
            settled: false,
            cancelled: false,
          };
          k.book(POLICY, g, r.units, r.slot, e.now);
          grants.set(d.id, g);
        });
        return;
      case 'settle':
      case 'cancel': {
        const g = grants.get(e.grant.id);
        if (g === undefined) return void out.push(`${where}: a grant the store never made`);
        const from = e.grant.units;
        const booked = [...g.booked.values()].map((b) => b.units);
        if (g.gen === k.gen && show(from) !== show(booked))
          out.push(
            `${where}: says grant ${e.grant.id} holds ${show(from)}, it booked ${show(booked)}`,
          );
        if (e.k === 'cancel') {
          if (cancelled.has(e.grant.id)) out.push(`${where}: grant ${e.grant.id} cancelled twice`);
          cancelled.add(e.grant.id);
        }
        k.settle(POLICY, g, from, e.k === 'settle' ? e.actual : from.map(() => 0), e.now);
        if (e.k === 'cancel') freeSlot(k, g, e.grant, where); // a cancel gives back the slot too
        return;
      }
      case 'release': {
        const g = grants.get(e.grant.id);
        if (g !== undefined) freeSlot(k, g, e.grant, where);
        return;
      }
      case 'reset':
        k.reset(POLICY, e.now);
        return;
      case 'read': {
        const want = k.read(POLICY, e.now);
        const got = {
          limits: e.reading.limits.map((l) => ({
            name: l.name,
            remaining: l.remaining,
            resetMs: l.resetMs,
          })),
          inFlight: e.reading.inFlight,
        };
        if (show(got) !== show(want))
          out.push(`${where}: read ${show(got)}, the model holds ${show(want)}`);
        return;
      }
    }
  });
  // A grant the store made reached its caller, or was given back.
  for (const [id] of grants) {
    if (!held.has(id) && !cancelled.has(id))
      out.push(`grant ${id} was made by the store, reached no caller and was never given back`);
  }
  return out;
}

type Op =
  | {
      k: 'acquire';
      key: string;
      tokens: number;
      priority: number;
      timeout: number | null;
      abort: boolean;
    }
  | { k: 'try'; key: string; tokens: number }
  | { k: 'settle'; pick: number; tokens: number }
  | { k: 'cancel' | 'release'; pick: number }
  | { k: 'reset'; key: string }
  | { k: 'advance'; ms: number }
  | { k: 'close' }
  | { k: 'abort'; controller: AbortController };

const key = fc.constantFrom(...KEYS);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant('acquire' as const),
      key,
      tokens: fc.integer({ min: 0, max: 8 }),
      priority: fc.integer({ min: 0, max: 2 }),
      timeout: fc.option(fc.integer({ min: 0, max: 2000 }), { nil: null }),
      abort: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('try' as const),
      key,
      tokens: fc.integer({ min: 0, max: 8 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('settle' as const),
      pick: fc.nat(),
      tokens: fc.integer({ min: 0, max: 10 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('cancel' as const), pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('reset' as const), key }) },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('advance' as const),
      ms: fc.integer({ min: 0, max: 1200 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 0, max: 3 })
      .map((i): Op => (i === 0 ? { k: 'close' } : { k: 'advance', ms: 0 })),
  },
);

interface Caller {
  grant?: Grant;
  ends: number;
  outcome: string;
}

async function scenario(s: fc.Scheduler, ops: readonly Op[]): Promise<void> {
  const clock = new VirtualClock(0);
  const store = new ScheduledStore(s);
  const system = createLimiterSystem({ clock, store, idleTimeout: 1000 });
  const limiter = system.limiter('main', { ...spec(POLICY), leaseTtl: LEASE });
  const callers: Caller[] = [];
  const held: Caller[] = [];
  const watch = (p: Promise<Grant | undefined>): void => {
    const c: Caller = { ends: 0, outcome: 'pending' };
    callers.push(c);
    p.then(
      (g) => {
        c.ends++;
        c.outcome = g === undefined ? 'refused' : 'granted';
        if (g !== undefined) {
          c.grant = g;
          held.push(c);
        }
      },
      (e: unknown) => {
        c.ends++;
        c.outcome = codeOf(e);
      },
    );
  };
  const pick = (n: number): Caller | undefined =>
    held.length === 0 ? undefined : held[n % held.length];
  const quietly = (f: () => unknown): void => {
    try {
      void Promise.resolve(f()).catch(() => {});
    } catch {
      // a settle twice, a cancel after settle: refused by design
    }
  };
  const controllers = new Map<Op, AbortController>();
  const run = async (op: Op): Promise<void> => {
    switch (op.k) {
      case 'acquire': {
        const ac = controllers.get(op);
        watch(
          limiter.acquire(op.key, {
            cost: { tokens: op.tokens },
            priority: op.priority,
            ...(op.timeout === null ? {} : { timeout: op.timeout }),
            ...(ac === undefined ? {} : { signal: ac.signal }),
          }),
        );
        return;
      }
      case 'try':
        watch(
          limiter
            .tryAcquire(op.key, { cost: { tokens: op.tokens } })
            .then((r) => (r.ok ? r.grant : undefined)),
        );
        return;
      case 'abort':
        op.controller.abort('model');
        return;
      case 'settle':
        quietly(() => pick(op.pick)?.grant?.settle({ tokens: op.tokens }));
        return;
      case 'cancel':
        quietly(() => pick(op.pick)?.grant?.cancel());
        return;
      case 'release':
        quietly(() => pick(op.pick)?.grant?.release());
        return;
      case 'reset':
        quietly(() => limiter.reset(op.key));
        return;
      case 'advance':
        await clock.increment(op.ms);
        return;
      case 'close':
        await system.close();
        return;
    }
  };
  const tasks: Op[] = [...ops];
  for (const op of ops) {
    if (op.k !== 'acquire' || !op.abort) continue;
    const controller = new AbortController();
    controllers.set(op, controller);
    tasks.push({ k: 'abort', controller });
  }
  const all = tasks.map((op) => s.scheduleFunction(run)(op));
  await s.waitAll();
  await Promise.all(all);
  await s.waitAll();

  // Give everything back and let time pass (answers still go through the scheduler).
  for (let i = 0; i < 6 && !system.isClosed; i++) {
    for (const c of held) quietly(() => c.grant?.release());
    await s.waitAll();
    await clock.increment(10_000);
    await s.waitAll();
  }
  const problems: string[] = [];
  if (!system.isClosed) {
    for (const k of KEYS) {
      const read = limiter.stats(k);
      await s.waitAll();
      const st = await read;
      const full = st.limits.every((l) => l.remaining === l.capacity) && st.inFlight === 0;
      if (!full || st.queued !== 0)
        problems.push(`at the end, ${k} is not back to full capacity: ${show(st)}`);
    }
  }
  await system.close();
  await s.waitAll();
  await clock.increment(0);
  await s.waitAll();
  callers.forEach((c, i) => {
    if (c.ends !== 1) problems.push(`caller #${i} ended ${c.ends} times (${c.outcome})`);
  });
  const heldIds = new Set(callers.flatMap((c) => (c.grant === undefined ? [] : [c.grant.id])));
  problems.push(...replay(store.log, heldIds));
  expect(problems, problems.join('\n')).toEqual([]);
}

describe('races (fc.scheduler) against the reference model', () => {
  it(
    'keeps the store calls admissible, every grant delivered or given back, every waiter ending once',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.scheduler(),
          fc.array(opArb, { minLength: 8, maxLength: 30 }),
          scenario,
        ),
        { numRuns: RUNS, ...REPLAY },
      );
    },
    Math.max(60_000, RUNS * 200),
  );
});
