/**
 * The message of every error thrown for bad input, across the public surface (#11). Each says, in
 * this order: where (the call or factory, the limiter and the key), the field's path as the caller
 * wrote it, the value with its type, and what is allowed in human units. One line each.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  AcquireTimeoutError,
  CircuitBreaker,
  VirtualClock as Clock,
  compileCost,
  projectCost,
  CostExceedsCapacityError,
  InvalidArgumentError,
  VirtualClock,
  createLimiterSystem,
  limitedFetch,
  memoryStore,
  type Limiter,
  type LimiterSystem,
} from '../../src/index.js';
import { redisStore } from '../../src/redis/index.js';

const DURATION =
  "a duration from 1 ms to 366 days, as ms or a string like '500ms', '2s', '5m', '1h' or '1d'";
const TIMEOUT = `0 (refuse at once) or ${DURATION}`;
const UNITS = 'a whole number of units from 0 to 1,099,511,627,776';

const systems: LimiterSystem[] = [];
afterEach(async () => {
  for (const s of systems.splice(0)) await s.close();
});

function setup(): { system: LimiterSystem; clock: VirtualClock; api: Limiter } {
  const clock = new VirtualClock(0);
  const system = createLimiterSystem({ clock });
  systems.push(system);
  const api = system.limiter('api', {
    limits: [
      { name: 'rpm', limit: 10, interval: '1m' },
      { name: 'tpm', limit: 1000, interval: '1m', dimension: 'tokens' },
    ],
  });
  return { system, clock, api };
}

/** What `f` threw or rejected with. */
async function errorOf(f: () => unknown): Promise<Error> {
  try {
    await f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw or a rejection');
}

/** A client that passes redisStore's check; no bad option below reaches it. */
const client = { defineCommand() {} } as never;

type Row = {
  what: string;
  call: (s: ReturnType<typeof setup>) => unknown;
  message: string;
  /** InvalidArgumentError unless said. */
  type?: typeof CostExceedsCapacityError;
  path?: string;
};

const rows: Row[] = [
  // system.limiter(name, options): the policy.
  {
    what: 'a limit given as a string',
    call: ({ system }) =>
      system.limiter('a', { limits: [{ limit: '5', interval: '1s' }] } as never),
    message:
      'tollgate: limiter "a": limits[0].limit is "5" (a string); expected a positive integer (how many per interval)',
    path: 'limits[0].limit',
  },
  {
    what: 'an interval that is not a duration',
    call: ({ system }) => system.limiter('b', { limits: [{ limit: 5, interval: 'xs' as '1s' }] }),
    message: `tollgate: limiter "b": limits[0].interval is "xs" (a string); expected ${DURATION}`,
    path: 'limits[0].interval',
  },
  {
    what: 'limits given as an object',
    call: ({ system }) =>
      system.limiter('f', { limits: { rpm: { limit: 5, interval: '1m' } } } as never),
    message:
      'tollgate: limiter "f": limits is {"rpm":{"limit":5,"interval":"1m"}} (an object); expected an array of limits, e.g. [{ limit: 10, interval: \'1s\' }]',
    path: 'limits',
  },
  {
    what: 'options that are not an object',
    call: ({ system }) => system.limiter('g', 'fast' as never),
    message:
      'tollgate: limiter "g": options is "fast" (a string); expected an object { limits, algorithm?, concurrency? }',
  },
  {
    what: 'a limit too large to count exactly',
    call: ({ system }) => system.limiter('h', { limits: [{ limit: 1e9, interval: '1d' }] }),
    message:
      'tollgate: limiter "h": limits[0].limit is 1000000000; expected at most 26,062,497 per 1 day, to count exactly (capacity × interval in ms stays under 2^51)',
  },
  {
    what: 'a misspelt limit option',
    call: ({ system }) =>
      system.limiter('i', { limits: [{ limit: 1, interval: '1s', dimenson: 'tokens' }] } as never),
    message:
      'tollgate: limiter "i": limits[0].dimenson is not an option (did you mean "dimension"?); expected one of limit, interval, dimension, burst, name, algorithm',
    path: 'limits[0].dimenson',
  },
  {
    what: 'a zero concurrency',
    call: ({ system }) => system.limiter('j', { limits: [], concurrency: 0 }),
    message:
      'tollgate: limiter "j": concurrency is 0; expected a positive integer (calls in flight at once)',
  },
  {
    what: 'a negative maxQueue',
    call: ({ system }) => system.limiter('k', { limits: [], concurrency: 1, maxQueue: -1 }),
    message:
      'tollgate: limiter "k": maxQueue is -1; expected a whole number of waiters per key from 0, or Infinity',
  },
  {
    what: 'a maxKeys of 0',
    call: ({ system }) => system.limiter('k2', { limits: [], concurrency: 1, maxKeys: 0 }),
    message:
      'tollgate: limiter "k2": maxKeys is 0; expected a whole number of keys from 1, or Infinity',
    path: 'maxKeys',
  },
  {
    what: 'an onMaxKeys that is no policy',
    call: ({ system }) =>
      system.limiter('k3', { limits: [], concurrency: 1, onMaxKeys: 'lru' as never }),
    message: `tollgate: limiter "k3": onMaxKeys is "lru" (a string); expected 'refuse' or 'evict-lru'`,
    path: 'onMaxKeys',
  },
  {
    what: 'a zero leaseTtl',
    call: ({ system }) => system.limiter('l', { limits: [], concurrency: 1, leaseTtl: 0 as never }),
    message: `tollgate: limiter "l": leaseTtl is 0; expected ${DURATION}`,
  },
  {
    what: 'a maxPause that is no duration',
    call: ({ system }) =>
      system.limiter('m', { limits: [], concurrency: 1, maxPause: 'a while' as never }),
    message: `tollgate: limiter "m": maxPause is "a while" (a string); expected ${DURATION}`,
  },
  {
    what: 'an empty limiter name',
    call: ({ system }) => system.limiter('', { limits: [], concurrency: 1 }),
    message: 'tollgate: system.limiter: name is "" (a string); expected a non-empty string',
    path: 'name',
  },
  {
    what: 'a bad policy given to setLimits',
    call: ({ api }) => api.setLimits({ limits: [{ limit: 0, interval: '1s' }] }),
    message:
      'tollgate: setLimits on limiter "api": limits[0].limit is 0; expected a positive integer (how many per interval)',
  },

  // The breaker option.
  {
    what: 'a failure rate above 1',
    call: ({ system }) =>
      system.limiter('n', {
        limits: [],
        concurrency: 1,
        breaker: { failureRate: { rate: 2, window: '1m' } },
      }),
    message:
      'tollgate: limiter "n": breaker.failureRate.rate is 2; expected a share of failed calls above 0 and at most 1, e.g. 0.5',
    path: 'breaker.failureRate.rate',
  },
  {
    what: 'a breaker openFor that is no duration',
    call: ({ system }) =>
      system.limiter('o', { limits: [], concurrency: 1, breaker: { openFor: -1 as never } }),
    message: `tollgate: limiter "o": breaker.openFor is -1; expected ${DURATION}`,
  },
  {
    what: 'a misspelt breaker option',
    call: ({ system }) =>
      system.limiter('p', { limits: [], concurrency: 1, breaker: { whenOpn: 'wait' } as never }),
    message:
      'tollgate: limiter "p": breaker.whenOpn is not an option (did you mean "whenOpen"?); expected one of failureThreshold, failureRate, openFor, backoffFactor, maxOpenFor, probes, successesToClose, whenOpen',
  },
  {
    what: 'an unknown whenOpen',
    call: ({ system }) =>
      system.limiter('q', { limits: [], concurrency: 1, breaker: { whenOpen: 'later' as never } }),
    message: `tollgate: limiter "q": breaker.whenOpen is "later" (a string); expected 'fail' or 'wait'`,
  },
  {
    what: 'a breaker that is not an object',
    call: ({ system }) =>
      system.limiter('r', { limits: [], concurrency: 1, breaker: true as never }),
    message: `tollgate: limiter "r": breaker is true (a boolean); expected an object of breaker options, e.g. { failureThreshold: 5, openFor: '30s' }`,
  },
  {
    what: 'a maxOpenFor below openFor',
    call: ({ system }) =>
      system.limiter('s', {
        limits: [],
        concurrency: 1,
        breaker: { openFor: '1m', maxOpenFor: 30_000 },
      }),
    message:
      'tollgate: limiter "s": breaker.maxOpenFor is 30000; expected a duration no shorter than openFor (1 min)',
  },

  // Per call: the limiter and the key.
  {
    what: 'a negative timeout',
    call: ({ api }) => api.acquire('k', { timeout: -1 as never }),
    message: `tollgate: acquire on limiter "api", key "k": options.timeout is -1; expected ${TIMEOUT}`,
    path: 'options.timeout',
  },
  {
    what: 'a timeout that is no duration',
    call: ({ api }) => api.acquire('k', { timeout: 'x' as never }),
    message: `tollgate: acquire on limiter "api", key "k": options.timeout is "x" (a string); expected ${TIMEOUT}`,
  },
  {
    what: 'a timeout of a fraction of a millisecond',
    call: ({ api }) => api.run('k', () => 1, { timeout: '1.0005s' }),
    message: `tollgate: run on limiter "api", key "k": options.timeout is "1.0005s" (a string), not a whole number of ms; expected ${TIMEOUT}`,
  },
  {
    what: 'a stats$ period that is no duration',
    call: ({ api }) => api.stats$('k', { every: -5 as never }),
    message: `tollgate: stats$ on limiter "api", key "k": options.every is -5; expected ${DURATION}`,
    path: 'options.every',
  },
  {
    what: 'a cost that is a number',
    call: ({ api }) => api.acquire('k', { cost: -1 as never }),
    message:
      'tollgate: acquire on limiter "api", key "k": options.cost is -1; expected an object of units per dimension, e.g. { tokens: 1200 }',
    path: 'options.cost',
  },
  {
    what: 'an unknown dimension',
    call: ({ api }) => api.tryAcquire('k', { cost: { tokenz: 5 } as never }),
    message:
      'tollgate: tryAcquire on limiter "api", key "k": options.cost.tokenz names a dimension no limit counts; expected one of requests, tokens, inputTokens, outputTokens',
    path: 'options.cost.tokenz',
  },
  {
    what: 'an amount given as a string',
    call: ({ api }) => api.acquire('k', { cost: { tokens: '5' as never } }),
    message: `tollgate: acquire on limiter "api", key "k": options.cost.tokens is "5" (a string); expected ${UNITS}`,
  },
  {
    what: 'a cost above a capacity',
    call: ({ api }) => api.acquire('k', { cost: { tokens: 5000 } }),
    message:
      'tollgate: acquire on limiter "api", key "k": options.cost.tokens 5000 exceeds capacity 1000 of limit "tpm"',
    type: CostExceedsCapacityError,
    path: 'options.cost.tokens',
  },
  {
    what: 'input and output tokens above a capacity',
    call: ({ api }) => api.reserve('k', { cost: { inputTokens: 900, outputTokens: 200 } }),
    message:
      'tollgate: reserve on limiter "api", key "k": options.cost.inputTokens + outputTokens 1100 exceeds capacity 1000 of limit "tpm"',
    type: CostExceedsCapacityError,
  },
  {
    what: 'a key of the wrong type',
    call: ({ api }) => api.acquire(5 as never, {}),
    message: 'tollgate: acquire on limiter "api": key is 5; expected a string',
    path: 'key',
  },
  {
    what: 'a missing key',
    call: ({ api }) => api.stats(undefined as never),
    message: 'tollgate: stats on limiter "api": key is undefined; expected a string',
  },
  {
    what: 'options that are not an object',
    call: ({ api }) => api.tryAcquire('k', 5 as never),
    message: `tollgate: tryAcquire on limiter "api", key "k": options is 5; expected an object, e.g. { cost: { tokens: 1200 }, timeout: '10s' }`,
  },
  {
    what: 'a misspelt acquire option',
    call: ({ api }) => api.acquire('k', { timout: '1s' } as never),
    message:
      'tollgate: acquire on limiter "api", key "k": options.timout is not an option (did you mean "timeout"?); expected one of cost, timeout, priority, signal, settle, classify',
  },
  {
    what: 'a NaN priority',
    call: ({ api }) => api.acquire('k', { priority: NaN }),
    message:
      'tollgate: acquire on limiter "api", key "k": options.priority is NaN; expected a finite number (higher is served first)',
  },
  {
    what: 'a signal that is no AbortSignal',
    call: ({ api }) => api.acquire('k', { signal: {} as never }),
    message:
      'tollgate: acquire on limiter "api", key "k": options.signal is {} (an object); expected an AbortSignal, e.g. AbortSignal.timeout(5000)',
  },
  {
    what: 'a zero pause',
    call: ({ api }) => api.pause('k', 0 as never),
    message: `tollgate: pause on limiter "api", key "k": duration is 0; expected ${DURATION}`,
  },
  {
    what: 'a feedback that is not an object',
    call: ({ api }) => api.feedback('k', null as never),
    message:
      'tollgate: feedback on limiter "api", key "k": signal is null; expected an object { throttled?, retryAfterMs?, limits? }',
  },
  {
    what: 'a negative actual cost',
    call: async ({ api }) => (await api.acquire('k')).settle({ tokens: -3 }),
    message: `tollgate: settle on limiter "api", key "k": actual.tokens is -3; expected ${UNITS}`,
    path: 'actual.tokens',
  },
  {
    what: 'a missing actual cost',
    call: async ({ api }) => (await api.acquire('k')).settle(undefined as never),
    message:
      'tollgate: settle on limiter "api", key "k": actual is undefined; expected an object of units per dimension, e.g. { tokens: 1200 }',
  },

  // Factories.
  {
    what: 'a negative idleTimeout',
    call: () => createLimiterSystem({ idleTimeout: -5 as never }),
    message: `tollgate: createLimiterSystem: options.idleTimeout is -5; expected ${DURATION}`,
    path: 'options.idleTimeout',
  },
  {
    what: 'a pollInterval that is no duration',
    call: () => createLimiterSystem({ pollInterval: 'often' as never }),
    message: `tollgate: createLimiterSystem: options.pollInterval is "often" (a string); expected ${DURATION}`,
  },
  {
    what: 'a store that is no Store',
    call: () => createLimiterSystem({ store: { name: 'x', sync: true } as never }),
    message:
      'tollgate: createLimiterSystem: options.store is {"name":"x","sync":true} (an object); expected a Store, e.g. memoryStore() or redisStore({ client }); missing: decide, settle, cancel, release, read, reset, close',
  },
  {
    what: 'a store and a snapshot',
    call: () =>
      createLimiterSystem({
        store: memoryStore(),
        snapshot: { version: 1, store: { version: 1, keys: {} } },
      }),
    message:
      'tollgate: createLimiterSystem: options.snapshot is given with options.store; expected one of them: a snapshot restores the memory store',
  },
  {
    what: 'a memory snapshot of another version',
    call: () => memoryStore({ version: 2 } as never),
    message:
      'tollgate: memoryStore: snapshot is {"version":2} (an object); expected a memory snapshot { version: 1, keys }, e.g. system.snapshot().store',
  },
  {
    what: 'redisStore without options',
    call: () => redisStore(undefined as never),
    message:
      'tollgate: redisStore: options is undefined; expected an object { client, … } with an ioredis Redis or Cluster',
  },
  {
    what: 'redisStore without a client',
    call: () => redisStore({} as never),
    message:
      'tollgate: redisStore: options.client is undefined; expected an ioredis Redis or Cluster',
    path: 'options.client',
  },
  {
    what: 'a Redis prefix with a brace',
    call: () => redisStore({ client, prefix: 'app{1}:' }),
    message: `tollgate: redisStore: options.prefix is "app{1}:" (a string); expected a string without '{' or '}'`,
  },
  {
    what: 'a Redis timeout of zero',
    call: () => redisStore({ client, timeout: 0 as never }),
    message: `tollgate: redisStore: options.timeout is 0; expected ${DURATION}`,
  },
  {
    what: 'an insurance fraction of 0',
    call: () => redisStore({ client, onUnavailable: 'insurance', insuranceFraction: 0 }),
    message:
      'tollgate: redisStore: options.insuranceFraction is 0; expected a share of every limit above 0 and at most 1, e.g. 0.5',
  },
  {
    what: 'a fractional number of processes',
    call: () => redisStore({ client, onUnavailable: 'insurance', processes: 2.5 }),
    message:
      'tollgate: redisStore: options.processes is 2.5; expected a whole number of processes, at least 1',
  },
  {
    what: 'processes and an insurance fraction both',
    call: () =>
      redisStore({ client, onUnavailable: 'insurance', processes: 4, insuranceFraction: 0.25 }),
    message:
      'tollgate: redisStore: options.insuranceFraction is 0.25; expected no insuranceFraction with processes (the fraction is 1 / processes): give one of them',
  },
  {
    what: 'a negative number of replicas',
    call: () => redisStore({ client, replicas: -1 }),
    message:
      'tollgate: redisStore: options.replicas is -1; expected a whole number of replicas, 0 or more',
  },
  {
    what: 'replicas on a Cluster',
    call: () =>
      redisStore({ client: { defineCommand() {}, isCluster: true } as never, replicas: 1 }),
    message:
      'tollgate: redisStore: options.replicas is 1; expected 0 with a Cluster client (WAIT must follow the write on its connection): a single Redis or a Sentinel client',
  },
  {
    what: 'a Redis clock that is no Clock',
    call: () => redisStore({ client, clock: Date as never }),
    message:
      'tollgate: redisStore: options.clock is a function; expected a Clock { now, setTimeout, clearTimeout }',
  },
  {
    what: 'limitedFetch without a limiter',
    call: () => limitedFetch({} as never),
    message:
      'tollgate: limitedFetch: options.limiter is undefined; expected a Limiter from system.limiter()',
    path: 'options.limiter',
  },
  {
    what: 'a limitedFetch estimate that is not a function',
    call: ({ api }) => limitedFetch({ limiter: api, estimate: 1200 as never }),
    message: 'tollgate: limitedFetch: options.estimate is 1200; expected a function',
  },
  {
    what: 'a limitedFetch timeout that is no duration',
    call: ({ api }) => limitedFetch({ limiter: api, timeout: '10 sec' as never }),
    message: `tollgate: limitedFetch: options.timeout is "10 sec" (a string); expected ${TIMEOUT}`,
  },
  {
    what: 'a limitedFetch hungAfter of zero',
    call: ({ api }) => limitedFetch({ limiter: api, hungAfter: 0 as never }),
    message: `tollgate: limitedFetch: options.hungAfter is 0; expected ${DURATION}`,
  },

  // Found by the boundary fuzz (#12): each was a TypeError, or taken and ignored.
  {
    what: 'feedback limits that are not an array',
    call: ({ api }) => api.feedback('k', { limits: 5 } as never),
    message:
      'tollgate: feedback on limiter "api", key "k": signal.limits is 5; expected an array of { dimension, remaining, resetMs }, e.g. from feedbackFromResponse',
    path: 'signal.limits',
  },
  {
    what: 'a run whose fn is not a function',
    call: ({ api }) => api.run('k', 5 as never),
    message:
      'tollgate: run on limiter "api", key "k": fn is 5; expected a function (grant) => result, the call to make',
    path: 'fn',
  },
  {
    what: 'a run whose settle is not a function',
    call: ({ api }) => api.run('k', () => 1, { settle: 'tokens' as never }),
    message:
      'tollgate: run on limiter "api", key "k": options.settle is "tokens" (a string); expected a function (result) => the actual cost',
  },
  {
    what: 'stats$ options that are not an object',
    call: ({ api }) => api.stats$('k', 5 as never),
    message:
      'tollgate: stats$ on limiter "api", key "k": options is 5; expected an object { every? }, e.g. { every: \'1s\' }',
  },
  {
    what: 'a null dimension',
    call: ({ system }) =>
      system.limiter('t', { limits: [{ limit: 1, interval: '1s', dimension: null as never }] }),
    message:
      'tollgate: limiter "t": limits[0].dimension is null; expected a non-empty string, e.g. \'tokens\'',
  },
  {
    what: 'createLimiterSystem options of null',
    call: () => createLimiterSystem(null as never),
    message:
      "tollgate: createLimiterSystem: options is null; expected an object of options, e.g. { clock, idleTimeout: '2s' }",
  },
  {
    what: 'a system clock that is no Clock',
    call: () => createLimiterSystem({ clock: Date as never }),
    message:
      'tollgate: createLimiterSystem: options.clock is a function; expected a Clock { now, setTimeout, clearTimeout }, e.g. new VirtualClock()',
    path: 'options.clock',
  },
  {
    what: 'a system snapshot without its store',
    call: () => createLimiterSystem({ snapshot: { version: 1 } as never }),
    message:
      'tollgate: createLimiterSystem: options.snapshot is {"version":1} (an object); expected a system snapshot { version: 1, store }, from system.snapshot()',
  },
  {
    what: 'a breaker clock that is no Clock',
    call: () => new CircuitBreaker('b', {}, {} as never),
    message:
      'tollgate: new CircuitBreaker: clock is {} (an object); expected a Clock { now, setTimeout, clearTimeout }, e.g. new VirtualClock()',
  },
  {
    what: 'a virtual clock step of NaN',
    call: () => new Clock(0).increment(NaN),
    message: 'tollgate: VirtualClock.increment: ms is NaN; expected a finite number of ms',
  },
  {
    what: 'a virtual clock step back',
    call: () => new Clock(0).increment(-1),
    message:
      'tollgate: VirtualClock.increment: ms is -1; expected a finite number of ms from 0 (time never goes back)',
  },
  {
    what: 'compileCost with a policy that is none',
    call: () => compileCost({} as never, {}),
    message:
      'tollgate: compileCost: policy is {} (an object); expected a Policy, from compilePolicy() or limiter.policy',
    path: 'policy',
  },
  {
    what: 'projectCost with dimensions that are not an array',
    call: () => projectCost({ inputTokens: 1, outputTokens: 1 }, 'tokens' as never),
    message:
      "tollgate: projectCost: dimensions is \"tokens\" (a string); expected an array of dimension names, e.g. limiter.policy.dimensions or ['requests', 'tokens']",
  },
];

describe('messages of bad input (#11)', () => {
  it.each(rows)('$what', async ({ call, message, type, path }) => {
    const e = await errorOf(() => call(setup()));
    expect(e).toBeInstanceOf(type ?? InvalidArgumentError);
    expect(e.message).toBe(message);
    expect(e.message).not.toContain('\n');
    if (path !== undefined) expect((e as InvalidArgumentError).path).toBe(path);
  });

  it('keeps the refused value on the error, out of its enumerable fields', async () => {
    const { api } = setup();
    const e = (await errorOf(() =>
      api.acquire('k', { timeout: '-1s' as never }),
    )) as InvalidArgumentError;
    expect(e.value).toBe('-1s');
    expect(Object.keys(e)).not.toContain('value');
    // An error from a message alone has neither.
    const plain = new InvalidArgumentError('tollgate: something');
    expect([plain.message, plain.path, plain.value]).toEqual([
      'tollgate: something',
      undefined,
      undefined,
    ]);
  });

  it('says of a timeout the limiter, the key, what held it and how long it waited', async () => {
    const { clock, api } = setup();
    await api.acquire('user-7', { cost: { requests: 10 } });
    const waiting = errorOf(() => api.acquire('user-7', { timeout: '1.5s' }));
    await clock.increment(1500);
    const e = await waiting;
    expect(e).toBeInstanceOf(AcquireTimeoutError);
    expect(e.message).toBe(
      'tollgate: acquire on limiter "api", key "user-7", timed out after 1.5 s, held by limit "rpm"',
    );
  });
});
