/**
 * Fuzz at the boundary (#12, item 9). Every public function, method and option is given a valid
 * call with one argument or one option field, at any depth, replaced by a value it must refuse
 * (NaN, ±Infinity, -1, 0.5, 2^53+1, "1", {}, null, symbols, bigints, functions, '0s', '-1s',
 * 'abc', 1e-10…; see ./hostile.ts). Each call must throw or reject, at once, with the expected
 * TollgateError subclass (InvalidArgumentError; CostExceedsCapacityError for a whole cost above a
 * capacity), never a TypeError or a plain Error, and every key's state read before the call must
 * read the same after it.
 *
 * One system and one set of keys serve every run of a property: a refused call changes nothing,
 * which is the point, so the state to compare is built once (and again only after a failure).
 * Last, a tiny rate (one unit per 366 days) never admits more than its burst.
 */
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BreakerRegistry,
  CircuitBreaker,
  CostExceedsCapacityError,
  InvalidArgumentError,
  Limiter,
  VirtualClock,
  compileCost,
  compilePolicy,
  createLimiterSystem,
  SseUsageReader,
  costFromUsage,
  estimateRequestCost,
  estimateTokens,
  feedbackFromResponse,
  isTollgateError,
  limitedFetch,
  projectCost,
  memoryStore,
  parseDuration,
  type Grant,
  type LimiterOptions,
  type LimiterSystem,
} from '../../src/index.js';
import { redisStore } from '../../src/redis/index.js';
import { runLimited } from '../../src/testing/index.js';
import { startRedis, type RedisServer } from '../redis/harness.js';
import {
  ANY,
  KINDS,
  MAX_UNITS,
  describeMutation,
  mutationOf,
  oneOf,
  type Field,
  type Mutation,
  type Schema,
} from './hostile.js';

// ---------------------------------------------------------------------------------------------
// What each call takes.

const opt = (accepts: Field['accepts'], more: Omit<Field, 'accepts'> = {}): Field => ({
  accepts,
  optional: true,
  ...more,
});
const req = (accepts: Field['accepts'], more: Omit<Field, 'accepts'> = {}): Field => ({
  accepts,
  ...more,
});

const ALGORITHMS = ['token-bucket', 'sliding-window', 'fixed-window'] as const;
const LIMIT: Schema = {
  limit: req(KINDS.posInt),
  interval: req(KINDS.duration),
  dimension: opt(KINDS.name),
  burst: opt(KINDS.posInt),
  name: opt(KINDS.name),
  algorithm: opt(oneOf(...ALGORITHMS)),
};
const POLICY: Schema = {
  limits: req(KINDS.array, { elements: req(KINDS.object, { fields: LIMIT }) }),
  algorithm: opt(oneOf(...ALGORITHMS)),
  concurrency: opt(KINDS.posInt),
};
const RATE: Schema = {
  rate: req(KINDS.fraction),
  window: req(KINDS.duration),
  minimumCalls: opt(KINDS.posInt),
};
const BREAKER_POLICY: Schema = {
  failureThreshold: opt(KINDS.posInt),
  failureRate: opt(KINDS.object, { fields: RATE }),
  openFor: opt(KINDS.duration),
  backoffFactor: opt(KINDS.factor),
  maxOpenFor: opt(KINDS.duration),
  probes: opt(KINDS.posInt),
  successesToClose: opt(KINDS.posInt),
};
const LIMITER_OPTIONS: Schema = {
  ...POLICY,
  maxQueue: opt(KINDS.maxQueue),
  leaseTtl: opt(KINDS.duration),
  maxPause: opt(KINDS.duration),
  maxKeys: opt(KINDS.maxKeys),
  onMaxKeys: opt(oneOf('refuse', 'evict-lru')),
  breaker: opt(KINDS.object, {
    fields: { ...BREAKER_POLICY, whenOpen: opt(oneOf('fail', 'wait')) },
  }),
};
const COST: Schema = {
  requests: opt(KINDS.units),
  tokens: opt(KINDS.units),
  inputTokens: opt(KINDS.units),
  outputTokens: opt(KINDS.units),
};
const TRY_OPTIONS: Schema = {
  cost: opt(KINDS.object, { fields: COST }),
  priority: opt(KINDS.finite),
};
const ACQUIRE_OPTIONS: Schema = {
  ...TRY_OPTIONS,
  timeout: opt(KINDS.timeout),
  signal: opt(KINDS.signal),
};
const STATS_OPTIONS: Schema = { top: opt(KINDS.top), every: opt(KINDS.duration) };
const SNAPSHOT: Schema = {
  version: req(oneOf(1)),
  keys: req(KINDS.object),
};
const SYSTEM_OPTIONS: Schema = {
  clock: opt(KINDS.clock),
  idleTimeout: opt(KINDS.duration),
  pollInterval: opt(KINDS.duration),
  inspect: opt(KINDS.inspector),
  store: opt(KINDS.store),
  snapshot: opt(KINDS.object, {
    fields: { version: req(oneOf(1)), store: req(KINDS.object, { fields: SNAPSHOT }) },
  }),
};
const REDIS_OPTIONS: Schema = {
  client: req(KINDS.client),
  prefix: opt(KINDS.prefix),
  time: opt(oneOf('redis', 'runtime')),
  timeout: opt(KINDS.duration),
  onUnavailable: opt(oneOf('fail-closed', 'fail-open', 'insurance')),
  insuranceFraction: opt(KINDS.fraction),
  processes: opt(KINDS.posInt),
  replicas: opt(KINDS.count),
  retryInterval: opt(KINDS.duration),
  leaseTtl: opt(KINDS.duration),
  clock: opt(KINDS.clock),
};
const FETCH_OPTIONS: Schema = {
  limiter: req((v) => v instanceof Limiter),
  key: opt(KINDS.keyOrFn),
  estimate: opt(KINDS.fn),
  fetch: opt(KINDS.fn),
  timeout: opt(KINDS.timeout),
  now: opt(KINDS.fn),
  hungAfter: opt(KINDS.duration),
  accounting: opt(oneOf('max', 'usage')),
};
const FEEDBACK: Schema = {
  limits: opt(KINDS.array, { elements: req(KINDS.object) }),
};

/** The arguments of a call, as a schema of positions: `args('0', key)`. */
const args = (...fields: Field[]): Schema =>
  Object.fromEntries(fields.map((f, i) => [String(i), f]));

// ---------------------------------------------------------------------------------------------
// Valid calls.

const durationArb = fc.constantFrom<string | number>(
  '1s',
  1000,
  '1.5s',
  '1m',
  '1 h',
  '1d',
  2 ** 31,
);
const limitArb = fc.oneof(
  fc.record(
    {
      limit: fc.integer({ min: 1, max: 1000 }),
      interval: durationArb,
      dimension: fc.constantFrom('requests', 'tokens', 'images'),
      algorithm: fc.constantFrom(...ALGORITHMS),
    },
    { requiredKeys: ['limit', 'interval'] },
  ),
  fc.record(
    {
      limit: fc.integer({ min: 1, max: 1000 }),
      interval: durationArb,
      dimension: fc.constantFrom('requests', 'tokens'),
      burst: fc.integer({ min: 1, max: 1000 }),
    },
    { requiredKeys: ['limit', 'interval'] },
  ),
);
/** A valid policy: limits named l0, l1… (two limits may count the same dimension and interval). */
const policyArb = fc
  .record(
    {
      limits: fc.array(limitArb, { minLength: 1, maxLength: 3 }),
      algorithm: fc.constant('token-bucket' as const),
      concurrency: fc.integer({ min: 1, max: 10 }),
    },
    { requiredKeys: ['limits'] },
  )
  .map((p) => ({ ...p, limits: p.limits.map((l, i) => ({ ...l, name: `l${i}` })) }));
const breakerPolicyArb = fc.record(
  {
    failureThreshold: fc.integer({ min: 1, max: 10 }),
    failureRate: fc.record(
      {
        rate: fc.double({ min: 0.01, max: 1, noNaN: true }),
        window: durationArb,
        minimumCalls: fc.integer({ min: 1, max: 50 }),
      },
      { requiredKeys: ['rate', 'window'] },
    ),
    openFor: fc.constantFrom('1s', '30s', 60_000),
    backoffFactor: fc.constantFrom(1, 1.5, 2),
    maxOpenFor: fc.constant('366d'),
    probes: fc.integer({ min: 1, max: 3 }),
    successesToClose: fc.integer({ min: 1, max: 3 }),
  },
  { requiredKeys: [] },
);
const limiterOptionsArb = fc
  .tuple(
    policyArb,
    fc.record(
      {
        maxQueue: fc.constantFrom(0, 5, Infinity),
        leaseTtl: durationArb,
        maxPause: durationArb,
        maxKeys: fc.constantFrom(1, 50, Infinity),
        onMaxKeys: fc.constantFrom('refuse', 'evict-lru'),
        breaker: fc.tuple(breakerPolicyArb, fc.constantFrom('fail', 'wait')).map(([b, w]) => ({
          ...b,
          whenOpen: w,
        })),
      },
      { requiredKeys: [] },
    ),
  )
  .map(([p, o]) => ({ ...p, ...o }));

/** Keys the state is read from, plus any string (a refused call must create no key). */
const KEYS = ['a', 'b', 'c', 'p', 'fresh'] as const;
const keyArb = fc.oneof(fc.constantFrom(...KEYS), fc.string({ maxLength: 4 }));
/** A cost that fits the test limiter: at most 10 requests, 1,000 tokens. */
const costArb = fc.oneof(
  fc.record(
    { requests: fc.integer({ min: 0, max: 10 }), tokens: fc.integer({ min: 0, max: 1000 }) },
    { requiredKeys: [] },
  ),
  fc.record(
    {
      requests: fc.integer({ min: 0, max: 10 }),
      inputTokens: fc.integer({ min: 0, max: 500 }),
      outputTokens: fc.integer({ min: 0, max: 500 }),
    },
    { requiredKeys: [] },
  ),
);
const neverAborted = new AbortController().signal;
const tryOptionsArb = fc.record(
  {
    cost: costArb,
    priority: fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true })),
  },
  { requiredKeys: [] },
);
const acquireOptionsArb = fc
  .tuple(
    tryOptionsArb,
    fc.record(
      {
        timeout: fc.constantFrom<string | number>(0, '1s', 5000, '2m', 2 ** 31),
        signal: fc.constant(neverAborted),
      },
      { requiredKeys: [] },
    ),
  )
  .map(([a, b]) => ({ ...a, ...b }));
const dimensionsArb = fc.subarray(['requests', 'tokens', 'inputTokens', 'outputTokens']);
const statsOptionsArb = fc.record(
  { top: fc.integer({ min: 0, max: 1000 }), every: durationArb },
  { requiredKeys: [] },
);

// ---------------------------------------------------------------------------------------------
// The state every refused call must leave as it was.

/** The test limiter: two limits, a concurrency, a queue bound and a breaker. */
const API: LimiterOptions = {
  limits: [
    { name: 'rpm', limit: 10, interval: '1m' },
    { name: 'tpm', limit: 1000, interval: '1m', dimension: 'tokens' },
  ],
  concurrency: 3,
  maxQueue: 4,
  breaker: { failureThreshold: 5 },
};

/** Names a refused `system.limiter` call tries: none may be registered. */
const NEW_NAMES = ['n1', 'n2', 'n3'] as const;

interface Ctx {
  readonly clock: VirtualClock;
  readonly system: LimiterSystem;
  readonly api: Limiter;
  /** A grant held on key `a` (a slot, 300 tokens), never settled by a refused call. */
  readonly grant: Grant;
  /** Whether a run failed: the next run builds a new context. */
  dirty: boolean;
  /** The state as read before the next case (JSON of {@link stateOf}). */
  baseline: string;
  /** Reads every key's state in Redis, when the store is Redis. */
  readonly raw?: () => Promise<unknown>;
}

/** Builds the context: keys with tokens used, a held slot, a queued waiter and a pause. */
async function contextOn(
  store?: ReturnType<typeof redisStore>,
  raw?: () => Promise<unknown>,
): Promise<Ctx> {
  const clock = new VirtualClock(1_000_000);
  const system = createLimiterSystem({ clock, ...(store !== undefined && { store }) });
  const api = system.limiter('api', API);
  const grant = await api.acquire('a', { cost: { tokens: 300 } });
  await api.tryAcquire('b', { cost: { requests: 4, tokens: 900 } });
  await api.acquire('c', { cost: { requests: 10 } });
  void api.acquire('c', { timeout: '1h' }).catch(() => {}); // waits: queue length 1
  await api.pause('p', '10m');
  const ctx: Ctx = {
    clock,
    system,
    api,
    grant,
    dirty: false,
    baseline: '',
    ...(raw !== undefined && { raw }),
  };
  await stateOf(ctx); // the first read makes each key's breaker: later reads make nothing
  ctx.baseline = JSON.stringify(await stateOf(ctx));
  return ctx;
}

/** Everything a refused call might change, read through public reads. */
async function stateOf(ctx: Ctx): Promise<unknown> {
  const { system, api, clock, grant } = ctx;
  return {
    store: ctx.raw === undefined ? system.snapshot() : await ctx.raw(),
    stats: await Promise.all(KEYS.map((k) => api.stats(k))),
    liveKeys: system.liveKeys,
    timers: clock.pendingTimers,
    now: clock.now(),
    policy: api.policy,
    limiters: NEW_NAMES.map((n) => system.get(n) === undefined),
    breakers: system.breakers.size,
    breakerStates: KEYS.map((k) => api.breakerFor(k)?.state),
    grant: { booked: grant.booked, slot: grant.holdsSlot },
  };
}

// ---------------------------------------------------------------------------------------------
// The check.

const ACCEPTED = Symbol('accepted');
const WAITING = Symbol('waiting');

/**
 * What `f` threw or rejected with. A promise must settle within a few turns of the event loop
 * (virtual time never moves here): a refusal is immediate. Anything it returns or resolves with
 * instead is handed to `cleanUp`, so an accepted call (a bug) frees what it took.
 */
async function refusalOf(f: () => unknown, cleanUp: (v: unknown) => unknown): Promise<unknown> {
  let r: unknown;
  try {
    r = f();
  } catch (e) {
    return e;
  }
  if (typeof (r as Promise<unknown>)?.then !== 'function') {
    await cleanUp(r);
    return ACCEPTED;
  }
  let outcome: { error: unknown } | { value: unknown } | null = null;
  (r as Promise<unknown>).then(
    (value) => (outcome = { value }),
    (error: unknown) => (outcome = { error }),
  );
  for (let i = 0; i < 8 && outcome === null; i++) await null;
  for (let i = 0; i < 3 && outcome === null; i++) await new Promise((res) => setImmediate(res));
  if (outcome === null) return WAITING;
  const o = outcome as { error: unknown } | { value: unknown };
  if ('error' in o) return o.error;
  await cleanUp(o.value);
  return ACCEPTED;
}

/** Frees what an accepted call took, so that a failure does not cascade into later runs. */
async function cleanUp(v: unknown): Promise<void> {
  const x = v as Record<string, unknown> | null;
  if (typeof x !== 'object' || x === null) return;
  try {
    if (typeof x.close === 'function')
      await (x.close as () => unknown)(); // a system, a store
    else if ('granted' in x && typeof x.cancel === 'function') await (x.cancel as () => unknown)();
    else if (typeof x.stop === 'function')
      (x.stop as () => unknown)(); // a breaker
    else if (typeof x.subscribe === 'function')
      (x.subscribe as () => { unsubscribe(): void })().unsubscribe();
  } catch {
    // the failure is reported as "accepted" already
  }
}

/** The error a mutation must bring: a whole cost above a capacity is too big, the rest is bad. */
type Expected = typeof InvalidArgumentError | typeof CostExceedsCapacityError;

/** One call under test: its valid arguments, their schema, and how to make it. */
interface Site {
  readonly name: string;
  readonly args: (ctx: Ctx) => fc.Arbitrary<unknown[]>;
  readonly schema: Schema;
  readonly call: (ctx: Ctx, a: unknown[]) => unknown;
  /** Whether the call reaches a store (and so is tried against Redis too). */
  readonly store?: boolean;
}

interface Case {
  readonly site: Site;
  readonly m: Mutation<unknown[]>;
  readonly expected: Expected;
}

/** Checks one case: refused at once with `expected`, and the state read the same before and after. */
/**
 * Checks one case: refused at once with `expected`, and the state read after the call the same as
 * before it. The reading before is the one taken after the previous case (or when the context was
 * built): nothing runs between two cases (virtual time stands still), so it is the same reading,
 * and each case reads the state once.
 */
async function check(ctx: Ctx, { site, m, expected }: Case): Promise<void> {
  const e = await refusalOf(() => site.call(ctx, m.mutated), cleanUp);
  const what = `${site.name}: ${describeMutation(m)}`;
  if (e === ACCEPTED) throw new Error(`${what} was accepted`);
  if (e === WAITING) throw new Error(`${what} neither was refused nor answered: it waits`);
  if (!isTollgateError(e) || !(e instanceof expected)) {
    throw new Error(`${what} failed with ${String(e)}, not a ${expected.name}`, { cause: e });
  }
  if (!/^tollgate: [^\n]*$/.test(e.message)) expect(e.message, what).toMatch(/^tollgate: /);
  // Compared as JSON text (every part of a reading is JSON data); expect only shows a difference.
  const after = JSON.stringify(await stateOf(ctx));
  if (after !== ctx.baseline) {
    expect(JSON.parse(after), `${what} changed the state`).toEqual(JSON.parse(ctx.baseline));
  }
}

/** A case of `site`: a valid call with one field replaced. */
const caseOf = (ctx: Ctx, site: Site): fc.Arbitrary<Case> =>
  mutationOf(site.args(ctx), site.schema).map((m) =>
    printable({ site, m, expected: InvalidArgumentError }),
  );

/** `c`, printed in a counterexample as the call and the mutation, not as its functions' source. */
function printable(c: Case): Case {
  return Object.assign(c, {
    [fc.toStringMethod]: () =>
      `${c.site.name}: ${describeMutation(c.m)} (valid: ${fc.stringify(c.m.valid)})`,
  });
}

/** The property over `sites`, run `numRuns` times on one context (rebuilt after a failure). */
async function fuzz(
  make: () => Promise<Ctx>,
  sites: readonly Site[],
  numRuns: number,
  extra: (ctx: Ctx) => fc.Arbitrary<Case>[] = () => [],
): Promise<void> {
  let ctx = await make();
  const cases = fc.oneof(...sites.map((s) => caseOf(ctx, s)), ...extra(ctx));
  try {
    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
        if (ctx.dirty) {
          await ctx.system.close();
          ctx = await make();
        }
        try {
          await check(ctx, c);
        } catch (e) {
          ctx.dirty = true;
          throw e;
        }
      }),
      { numRuns },
    );
  } finally {
    await ctx.system.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The sites.

/** Calls of a limiter and its grants: each reaches a key's mailbox once past the checks. */
const CALL_SITES: readonly Site[] = [
  {
    name: 'acquire',
    args: () => fc.tuple(keyArb, acquireOptionsArb),
    schema: args(req(KINDS.string), opt(KINDS.object, { fields: ACQUIRE_OPTIONS })),
    call: ({ api }, [k, o]) => api.acquire(k as never, o as never),
    store: true,
  },
  {
    name: 'tryAcquire',
    args: () => fc.tuple(keyArb, tryOptionsArb),
    schema: args(req(KINDS.string), opt(KINDS.object, { fields: TRY_OPTIONS })),
    call: ({ api }, [k, o]) => api.tryAcquire(k as never, o as never),
    store: true,
  },
  {
    name: 'reserve',
    args: () => fc.tuple(keyArb, tryOptionsArb),
    schema: args(req(KINDS.string), opt(KINDS.object, { fields: TRY_OPTIONS })),
    call: ({ api }, [k, o]) => api.reserve(k as never, o as never),
    store: true,
  },
  {
    name: 'run',
    args: () =>
      fc.tuple(
        keyArb,
        fc.constant(() => 1),
        fc
          .tuple(
            acquireOptionsArb,
            fc.record(
              { settle: fc.constant(() => ({})), classify: fc.constant(() => 'neutral') },
              { requiredKeys: [] },
            ),
          )
          .map(([a, b]) => ({ ...a, ...b })),
      ),
    schema: args(
      req(KINDS.string),
      req(KINDS.fn),
      opt(KINDS.object, {
        fields: { ...ACQUIRE_OPTIONS, settle: opt(KINDS.fn), classify: opt(KINDS.fn) },
      }),
    ),
    call: ({ api }, [k, f, o]) => api.run(k as never, f as never, o as never),
    store: true,
  },
  {
    name: 'stats',
    args: () => fc.tuple(keyArb),
    schema: args(req(KINDS.string)),
    call: ({ api }, [k]) => api.stats(k as never),
    store: true,
  },
  {
    name: 'reset',
    args: () => fc.tuple(keyArb),
    schema: args(req(KINDS.string)),
    call: ({ api }, [k]) => api.reset(k as never),
    store: true,
  },
  {
    name: 'pause',
    args: () => fc.tuple(keyArb, durationArb),
    schema: args(req(KINDS.string), req(KINDS.duration)),
    call: ({ api }, [k, d]) => api.pause(k as never, d as never),
    store: true,
  },
  {
    name: 'feedback',
    args: () =>
      fc.tuple(
        keyArb,
        fc.record(
          {
            throttled: fc.boolean(),
            retryAfterMs: fc.integer({ min: 0, max: 60_000 }),
            limits: fc.array(
              fc.record({
                dimension: fc.constantFrom('requests', 'tokens'),
                remaining: fc.integer({ min: 0, max: 10 }),
                resetMs: fc.integer({ min: 0, max: 60_000 }),
              }),
              { maxLength: 2 },
            ),
          },
          { requiredKeys: [] },
        ),
      ),
    schema: args(req(KINDS.string), req(KINDS.object, { fields: FEEDBACK })),
    call: ({ api }, [k, s]) => api.feedback(k as never, s as never),
    store: true,
  },
  {
    name: 'breakerFor',
    args: () => fc.tuple(keyArb),
    schema: args(req(KINDS.string)),
    call: ({ api }, [k]) => api.breakerFor(k as never),
  },
  {
    name: 'stats$ of a key',
    args: () => fc.tuple(keyArb, fc.record({ every: durationArb }, { requiredKeys: [] })),
    schema: args(req(KINDS.string), opt(KINDS.object, { fields: { every: opt(KINDS.duration) } })),
    call: ({ api }, [k, o]) => api.stats$(k as never, o as never),
  },
  {
    name: 'stats$ of a limiter',
    args: () => fc.tuple(statsOptionsArb),
    // A string is a key: the key's stream (the site above).
    schema: args(opt((v) => KINDS.object(v) || typeof v === 'string', { fields: STATS_OPTIONS })),
    call: ({ api }, [o]) => api.stats$(o as never),
  },
  {
    name: 'system.stats$',
    args: () => fc.tuple(statsOptionsArb),
    schema: args(opt(KINDS.object, { fields: STATS_OPTIONS })),
    call: ({ system }, [o]) => system.stats$(o as never),
  },
  {
    name: 'setLimits',
    args: () => fc.tuple(policyArb),
    schema: args(req(KINDS.object, { fields: POLICY })),
    call: ({ api }, [p]) => api.setLimits(p as never),
    store: true,
  },
  {
    name: 'system.limiter',
    args: () => fc.tuple(fc.constantFrom(...NEW_NAMES), limiterOptionsArb),
    schema: args(req(KINDS.name), req(KINDS.object, { fields: LIMITER_OPTIONS })),
    call: ({ system }, [n, o]) => system.limiter(n as never, o as never),
    store: true,
  },
  {
    name: 'grant.settle',
    args: () =>
      fc.tuple(
        fc.record({ requests: fc.nat(5000), tokens: fc.nat(MAX_UNITS) }, { requiredKeys: [] }),
      ),
    schema: args(req(KINDS.object, { fields: COST })),
    call: ({ grant }, [c]) => grant.settle(c as never),
    store: true,
  },
];

/** A whole cost above a capacity: refused with CostExceedsCapacityError, nothing queued. */
const overCapacity = (ctx: Ctx): fc.Arbitrary<Case> =>
  fc
    .tuple(
      fc.constantFrom(
        ...CALL_SITES.filter((s) => ['acquire', 'tryAcquire', 'reserve', 'run'].includes(s.name)),
      ),
      keyArb,
      fc.oneof(
        fc.record({ requests: fc.integer({ min: 11, max: MAX_UNITS }) }),
        fc.record({ tokens: fc.integer({ min: 1001, max: MAX_UNITS }) }),
        fc.record({ inputTokens: fc.integer({ min: 1001, max: MAX_UNITS }) }),
        fc
          .integer({ min: 1001, max: 2000 })
          .map((t) => ({ inputTokens: t - 500, outputTokens: 500 })),
      ),
    )
    .map(([site, key, cost]) => {
      const valid = site.name === 'run' ? [key, () => 1, {}] : [key, {}];
      const mutated = site.name === 'run' ? [key, () => 1, { cost }] : [key, { cost }];
      void ctx;
      return printable({
        site,
        m: {
          valid,
          mutated,
          hostile: cost,
          slot: { path: [mutated.length - 1, 'cost'], field: req(KINDS.object) },
        },
        expected: CostExceedsCapacityError,
      });
    });

/** Factories and functions that hold no key state: refused before they make anything. */
const FACTORY_SITES: readonly Site[] = [
  {
    name: 'createLimiterSystem',
    args: () =>
      fc.tuple(
        fc.oneof(
          fc.record(
            {
              clock: fc.constant(new VirtualClock(0)),
              idleTimeout: durationArb,
              pollInterval: durationArb,
              inspect: fc.constantFrom(() => {}, { next() {} }),
              store: fc.constant(memoryStore()),
            },
            { requiredKeys: ['clock'] },
          ),
          fc.constant({
            clock: new VirtualClock(0),
            snapshot: { version: 1, store: { version: 1, keys: {} } },
          }),
        ),
      ),
    schema: args(opt(KINDS.object, { fields: SYSTEM_OPTIONS })),
    call: (_, [o]) => createLimiterSystem(o as never),
  },
  {
    name: 'redisStore',
    args: () =>
      fc.tuple(
        fc.record(
          {
            client: fc.constant({ defineCommand() {} }),
            prefix: fc.constantFrom('app:', '', 'x'),
            time: fc.constantFrom('redis', 'runtime'),
            timeout: durationArb,
            onUnavailable: fc.constantFrom('fail-closed', 'fail-open', 'insurance'),
            insuranceFraction: fc.constantFrom(0.5, 1, 1e-10),
            replicas: fc.constantFrom(0, 1, 2),
            retryInterval: durationArb,
            leaseTtl: durationArb,
            clock: fc.constant(new VirtualClock(0)),
          },
          { requiredKeys: ['client'] },
        ),
      ),
    schema: args(req(KINDS.object, { fields: REDIS_OPTIONS })),
    call: (_, [o]) => redisStore(o as never),
  },
  {
    name: 'limitedFetch',
    args: (ctx) =>
      fc.tuple(
        fc.record(
          {
            limiter: fc.constant(ctx.api),
            key: fc.constantFrom('k', () => 'k'),
            estimate: fc.constant(() => ({})),
            fetch: fc.constant(fetch),
            timeout: fc.constantFrom(0, '10s', 2 ** 31),
            now: fc.constant(() => 0),
            hungAfter: durationArb,
            accounting: fc.constantFrom('max', 'usage'),
          },
          { requiredKeys: ['limiter'] },
        ),
      ),
    schema: args(req(KINDS.object, { fields: FETCH_OPTIONS })),
    call: (_, [o]) => limitedFetch(o as never),
  },
  {
    name: 'new CircuitBreaker',
    args: (ctx) =>
      fc.tuple(fc.constantFrom('b', 'openai/k'), breakerPolicyArb, fc.constant(ctx.clock)),
    schema: args(req(KINDS.name), opt(KINDS.object, { fields: BREAKER_POLICY }), req(KINDS.clock)),
    call: (_, [n, p, c]) => new CircuitBreaker(n as never, p as never, c as never),
  },
  {
    name: 'BreakerRegistry',
    args: (ctx) => fc.tuple(fc.constant(ctx.clock), fc.constantFrom('b', 'x/y'), breakerPolicyArb),
    schema: args(req(KINDS.clock), req(KINDS.name), opt(KINDS.object, { fields: BREAKER_POLICY })),
    call: (_, [c, n, p]) => new BreakerRegistry(c as never).get(n as never, p as never),
  },
  {
    name: 'breaker.waitForPermit',
    args: () => fc.tuple(fc.constant(neverAborted)),
    schema: args(opt(KINDS.signal)),
    call: ({ api }, [s]) => api.breakerFor('a')!.waitForPermit(s as never),
  },
  {
    name: 'breaker.waitForHalfOpen',
    args: () => fc.tuple(fc.constant(neverAborted)),
    schema: args(opt(KINDS.signal)),
    call: ({ api }, [s]) => api.breakerFor('a')!.waitForHalfOpen(s as never),
  },
  {
    name: 'new VirtualClock',
    args: () => fc.tuple(fc.integer()),
    schema: args(opt(KINDS.instant)),
    call: (_, [t]) => new VirtualClock(t as never),
  },
  {
    name: 'VirtualClock.increment',
    args: () => fc.tuple(fc.nat()),
    schema: args(req(KINDS.step)),
    call: (_, [ms]) => new VirtualClock(0).increment(ms as never),
  },
  {
    name: 'VirtualClock.advanceTo',
    args: () => fc.tuple(fc.integer()),
    schema: args(req(KINDS.instant)),
    call: (_, [t]) => new VirtualClock(0).advanceTo(t as never),
  },
  {
    name: 'VirtualClock.set',
    args: () => fc.tuple(fc.integer()),
    schema: args(req(KINDS.instant)),
    call: (_, [t]) => new VirtualClock(0).set(t as never),
  },
  {
    name: 'memoryStore',
    args: () => fc.tuple(fc.constant({ version: 1, keys: {} })),
    schema: args(opt(KINDS.object, { fields: SNAPSHOT })),
    call: (_, [s]) => memoryStore(s as never),
  },
  {
    name: 'parseDuration',
    args: () => fc.tuple(durationArb),
    schema: args(req(KINDS.duration)),
    call: (_, [d]) => parseDuration(d as never),
  },
  {
    name: 'compilePolicy',
    args: () => fc.tuple(policyArb),
    schema: args(req(KINDS.object, { fields: POLICY })),
    call: (_, [p]) => compilePolicy(p as never),
  },
  {
    name: 'compileCost',
    args: (ctx) => fc.tuple(fc.constant(ctx.api.policy), costArb),
    schema: args(
      req(
        (v) =>
          typeof v === 'object' &&
          v !== null &&
          Array.isArray((v as { limits?: unknown }).limits) &&
          Array.isArray((v as { dimensions?: unknown }).dimensions),
      ),
      opt(KINDS.object, { fields: COST }),
    ),
    call: (_, [p, c]) => compileCost(p as never, c as never),
  },
  {
    name: 'estimateTokens',
    args: () =>
      fc.tuple(
        fc.constantFrom({}, { max_tokens: 5 }),
        fc.constant(() => 1),
      ),
    schema: args(opt(ANY), opt(KINDS.fn)),
    call: (_, [b, t]) => estimateTokens(b, t as never),
  },
  {
    name: 'estimateRequestCost',
    args: () =>
      fc.tuple(
        fc.constantFrom({}, { max_tokens: 5 }),
        dimensionsArb,
        fc.constant(() => 1),
      ),
    schema: args(opt(ANY), req(KINDS.dimensions), opt(KINDS.fn)),
    call: (_, [b, d, t]) => estimateRequestCost(b, d as never, t as never),
  },
  {
    name: 'projectCost',
    args: () =>
      fc.tuple(fc.record({ inputTokens: fc.nat(), outputTokens: fc.nat() }), dimensionsArb),
    schema: args(req(KINDS.object), req(KINDS.dimensions)),
    call: (_, [t, d]) => projectCost(t as never, d as never),
  },
  {
    name: 'costFromUsage',
    args: () =>
      fc.tuple(
        fc.constant({ requests: 1, tokens: 100 }),
        fc.record({ inputTokens: fc.nat(), outputTokens: fc.nat() }, { requiredKeys: [] }),
        dimensionsArb,
        fc.constant({ inputTokens: 50, outputTokens: 50 }),
      ),
    schema: args(req(KINDS.object), req(KINDS.object), req(KINDS.dimensions), opt(KINDS.object)),
    call: (_, [e, u, d, p]) => costFromUsage(e as never, u as never, d as never, p as never),
  },
  {
    name: 'SseUsageReader.push',
    args: () => fc.tuple(fc.constantFrom('', 'data: {}\n\n', 'event: x\n')),
    schema: args(req(KINDS.string)),
    call: (_, [t]) => new SseUsageReader().push(t as never),
  },
  {
    name: 'feedbackFromResponse',
    args: () => fc.tuple(fc.constant({ status: 429, headers: new Headers() }), fc.nat()),
    schema: args(req(KINDS.object), opt(ANY)),
    call: (_, [r, now]) => feedbackFromResponse(r as never, now as never),
  },
  {
    name: 'runLimited',
    args: () =>
      fc.tuple(
        fc.record(
          {
            scheduler: fc.constant({ schedule() {}, waitOne() {} }),
            limiters: fc.constant({ api: API }),
            timeLimit: durationArb,
          },
          { requiredKeys: ['scheduler', 'limiters'] },
        ),
        fc.constant(async () => 1),
      ),
    schema: args(
      req(KINDS.object, {
        fields: {
          scheduler: req(
            (v) =>
              typeof v === 'object' &&
              v !== null &&
              typeof (v as { schedule?: unknown }).schedule === 'function' &&
              typeof (v as { waitOne?: unknown }).waitOne === 'function',
          ),
          limiters: req(KINDS.object),
          timeLimit: opt(KINDS.duration),
        },
      }),
      req(KINDS.fn),
    ),
    call: (_, [o, code]) => runLimited(o as never, code as never),
  },
];

// ---------------------------------------------------------------------------------------------

/** Generated inputs per property; their sum is the 100,000. */
const RUNS = { calls: 50_000, overCapacity: 10_000, factories: 40_000, redis: 2_000 };

describe('hostile input at the boundary, memory store (#12)', () => {
  it(`refuses ${RUNS.calls.toLocaleString('en-US')} mutated limiter and grant calls with InvalidArgumentError, state unchanged`, async () => {
    await fuzz(() => contextOn(), CALL_SITES, RUNS.calls);
  });

  it(`refuses ${RUNS.overCapacity.toLocaleString('en-US')} whole costs above a capacity with CostExceedsCapacityError, nothing queued`, async () => {
    await fuzz(
      () => contextOn(),
      [],
      RUNS.overCapacity,
      (ctx) => [overCapacity(ctx)],
    );
  });

  it(`refuses ${RUNS.factories.toLocaleString('en-US')} mutated factory and function calls with InvalidArgumentError`, async () => {
    await fuzz(() => contextOn(), FACTORY_SITES, RUNS.factories);
  });

  it('adds up to at least 100,000 generated inputs', () => {
    expect(RUNS.calls + RUNS.overCapacity + RUNS.factories).toBeGreaterThanOrEqual(100_000);
  });

  it('accepts every valid call the mutations start from (the refusals come from the mutation)', async () => {
    const sites = [...CALL_SITES, ...FACTORY_SITES].filter(
      (s) =>
        ![
          'reset',
          'pause',
          'feedback',
          'setLimits',
          'grant.settle',
          'acquire',
          'run',
          'runLimited',
        ].includes(s.name),
    );
    // Arguments are drawn against one context, each call made on a new one.
    const template = await contextOn();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(...sites.map((s) => s.args(template).map((a) => ({ s, a })))),
        async ({ s, a }) => {
          const ctx = await contextOn();
          try {
            const r = await refusalOf(() => s.call(ctx, a), cleanUp);
            expect(r, `${s.name}(${fc.stringify(a)})`).toBe(ACCEPTED);
          } finally {
            await ctx.system.close();
          }
        },
      ),
      { numRuns: 300 },
    );
    await template.system.close();
  });
});

describe('hostile input at the boundary, Redis store (#12)', () => {
  let server: RedisServer;
  let client: Redis;
  beforeAll(async () => {
    server = await startRedis();
    client = server.client();
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  it(`refuses ${RUNS.redis.toLocaleString('en-US')} mutated calls that reach the store; every Redis key reads the same`, async () => {
    let n = 0;
    const make = (): Promise<Ctx> => {
      const prefix = `fz${++n}:`;
      const raw = async (): Promise<unknown> => {
        const keys = (await client.keys(`${prefix}*`)).sort();
        return Promise.all(keys.map(async (k) => [k, await client.dumpBuffer(k)]));
      };
      return contextOn(redisStore({ client, prefix, time: 'runtime' }), raw);
    };
    await fuzz(
      make,
      CALL_SITES.filter((s) => s.store === true),
      RUNS.redis,
      (ctx) => [overCapacity(ctx)],
    );
  });
});

// ---------------------------------------------------------------------------------------------
// A tiny rate.

describe('a tiny rate (#12)', () => {
  /** One unit per 366 days: the longest interval, so the smallest rate a limit can have. */
  const YEAR_MS = 366 * 86_400_000;

  it('never admits more than its burst before a whole unit has refilled', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 20 }),
        fc.constantFrom('token-bucket', 'sliding-window', 'fixed-window'),
        fc.array(fc.integer({ min: 1, max: 40 * 86_400_000 }), { minLength: 1, maxLength: 12 }),
        async (burst, tries, algorithm, steps) => {
          const clock = new VirtualClock(0);
          const system = createLimiterSystem({ clock });
          const limit = algorithm === 'token-bucket' ? { limit: 1, burst } : { limit: burst };
          const api = system.limiter('tiny', {
            limits: [{ ...limit, interval: '366d', algorithm } as never],
          });
          let admitted = 0;
          let asked = 0;
          const ask = async (): Promise<void> => {
            for (let i = 0; i < tries; i++, asked++) if ((await api.tryAcquire('k')).ok) admitted++;
          };
          try {
            await ask();
            for (const step of steps) {
              if (clock.now() + step >= YEAR_MS) break; // the horizon: just short of one unit
              await clock.increment(step);
              await ask();
            }
            // All of the burst at once, then nothing until a whole unit has come back.
            expect(admitted).toBe(Math.min(burst, asked));
          } finally {
            await system.close();
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('grants a waiter on an exhausted tiny rate exactly when a whole unit has refilled', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 50 }), async (burst) => {
        const clock = new VirtualClock(0);
        // A long idle timeout: the sweep timer would otherwise fire every second for a year.
        const system = createLimiterSystem({ clock, idleTimeout: '366d' });
        const api = system.limiter('tiny', { limits: [{ limit: 1, burst, interval: '366d' }] });
        try {
          for (let i = 0; i < burst; i++) await api.acquire('k');
          let granted = false;
          void api.acquire('k').then(() => (granted = true));
          // Looked at on the way: the waiter still waits, its one timer armed for the whole unit.
          for (const at of [1, YEAR_MS / 2, YEAR_MS - 1]) {
            await clock.advanceTo(at);
            await api.stats('k');
            expect(granted, `granted at ${at} ms`).toBe(false);
          }
          await clock.advanceTo(YEAR_MS);
          expect(granted).toBe(true);
        } finally {
          await system.close();
        }
      }),
      { numRuns: 50 },
    );
  });
});
