/**
 * What the model test's runs share: the policies (as the runtime takes them and as the reference
 * model reads them), a clock for asynchronous stores that lets every store answer arrive before
 * time moves on, and a Store wrapper that counts the store calls in flight and fails on demand.
 */
import type { Redis } from 'ioredis';
import {
  StoreUnavailableError,
  type Clock,
  type LimitSpec,
  type PolicySpec,
  type Store,
  type StoreDecision,
  type TimerHandle,
} from '../../src/index.js';
import type { MLimit, MPolicy } from './reference.js';

/** The keys of the model: two per limiter (keys are independent, two show that they are). */
export const KEYS = ['a', 'b'] as const;
export type Key = (typeof KEYS)[number];

export const IDLE_MS = 1000;
export const LEASE_MS = 2500;
export const MAX_QUEUE = 4;
/** The main limiter's maxPause: a provider's longer retry-after pauses a key this long. */
export const MAX_PAUSE_MS = 2500;
/** The Redis store's retryInterval in the model: how long a lost answer marks Redis down. */
export const RETRY_MS = 1;

function limit(
  name: string,
  algorithm: MLimit['algorithm'],
  dimension: string,
  n: number,
  intervalMs: number,
  burst?: number,
): MLimit {
  return { name, algorithm, dimension, limit: n, intervalMs, capacity: burst ?? n };
}

/**
 * The policies of the main limiter, switched at random by setLimits. All keep `rps` (a token bucket
 * of requests) and `tok` (a sliding window of tokens); they differ in rates (a cut and a rise of
 * `rps`), capacities, order, a fixed window dropped and brought back, a new one, and concurrency.
 */
export const MAIN_POLICIES: readonly MPolicy[] = [
  {
    limits: [
      limit('rps', 'token-bucket', 'requests', 2, 1000, 3),
      limit('tok', 'sliding-window', 'tokens', 10, 2000),
      limit('rpw', 'fixed-window', 'requests', 4, 1500),
    ],
    concurrency: 2,
  },
  {
    limits: [
      limit('tok', 'sliding-window', 'tokens', 6, 2000),
      limit('rps', 'token-bucket', 'requests', 1, 1000, 2),
    ],
    concurrency: 1,
  },
  {
    limits: [
      limit('rps', 'token-bucket', 'requests', 3, 1000, 4),
      limit('tok', 'sliding-window', 'tokens', 12, 2000),
      limit('rpw', 'fixed-window', 'requests', 3, 1500),
      limit('tpw', 'fixed-window', 'tokens', 15, 3000),
    ],
    concurrency: 3,
  },
];

/** The policies of the limiter with a circuit breaker; the second has one limit fewer. */
export const BRK_POLICIES: readonly MPolicy[] = [
  {
    limits: [
      limit('rps', 'token-bucket', 'requests', 2, 1000, 2),
      limit('tpw', 'fixed-window', 'tokens', 8, 2000),
    ],
    concurrency: 2,
  },
  {
    limits: [limit('tpw', 'fixed-window', 'tokens', 6, 2000)],
    concurrency: 1,
  },
];

export const BREAKER = { failureThreshold: 2, openFor: 800, whenOpen: 'wait' } as const;

/** The runtime's spelling of a model policy. */
export function spec(p: MPolicy): PolicySpec {
  return {
    limits: p.limits.map((l): LimitSpec => ({
      name: l.name,
      algorithm: l.algorithm,
      dimension: l.dimension,
      limit: l.limit,
      interval: l.intervalMs,
      ...(l.algorithm === 'token-bucket' ? { burst: l.capacity } : {}),
    })),
    ...(p.concurrency === null ? {} : { concurrency: p.concurrency }),
  };
}

/** Lets every queued callback run: one macrotask turn after the microtasks. */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The switch of a {@link lossyClient}: loses the answer of the next decide script. */
export interface AnswerLoss {
  arm(): void;
  disarm(): void;
}

/**
 * lossyClient wraps a Redis client so that, once armed, the next decide script runs on Redis and
 * its answer is lost on the way back: the call rejects as a dropped connection would, after the
 * script booked. The Redis store must then give back the slots it may have booked (bug 2 of the
 * key-actor issue). Everything else passes through to `client`.
 */
export function lossyClient(client: Redis): { client: Redis; loss: AnswerLoss } {
  let armed = false;
  const proxy = new Proxy(client, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (prop === 'tollgateDecide' && armed) {
        armed = false;
        return async (...args: unknown[]) => {
          await fn.apply(target, args);
          throw new Error('model: connection lost after the decide script ran');
        };
      }
      return fn.bind(target);
    },
  });
  const loss: AnswerLoss = {
    arm: () => void (armed = true),
    disarm: () => void (armed = false),
  };
  return { client: proxy, loss };
}

/**
 * ProbeStore wraps a store: it passes every call through (and only the optional methods the
 * inner store has), counts the asynchronous calls in flight so a run can wait until the store has
 * answered everything, throws from the next decision when `failNext` is set (a store that fails
 * synchronously), and loses the answer of the next decision when `loseNext` is set: through the
 * client (a {@link lossyClient}) when it has one, so the store's own recovery runs, else by
 * deciding, giving back the slots booked and throwing StoreUnavailableError (what a store that
 * lost an answer must leave behind). It leaves out `watch` (Redis pub/sub): one process hears of its own
 * releases directly, and a message arriving after the run moved on would wake a key at an
 * instant the model cannot know.
 */
export class ProbeStore implements Store {
  readonly name: string;
  readonly sync: boolean;
  readonly #inner: Store;
  readonly #inFlight = new Set<Promise<unknown>>();
  /** Throw from the next decide (or decideOne), once. */
  failNext = false;
  /** Lose the answer of the next decide, once. */
  loseNext = false;
  /** How many times a decision was failed on demand. */
  failures = 0;
  readonly #loss: AnswerLoss | undefined;
  readonly defaultLeaseMs?: number | null;
  useClock?: NonNullable<Store['useClock']>;
  decideOne?: NonNullable<Store['decideOne']>;
  estimate?: NonNullable<Store['estimate']>;
  sweep?: NonNullable<Store['sweep']>;
  forget?: NonNullable<Store['forget']>;
  pause?: NonNullable<Store['pause']>;

  constructor(inner: Store, loss?: AnswerLoss) {
    this.#inner = inner;
    this.#loss = loss;
    this.name = inner.name;
    this.sync = inner.sync;
    if (inner.decideOne !== undefined) {
      const one = inner.decideOne.bind(inner);
      this.decideOne = (...args) => {
        this.#maybeFail();
        const d = one(...args);
        if (this.#mustLose()) this.#lose(args[0], args[1], [d], args[3]);
        return d;
      };
    }
    if (inner.defaultLeaseMs !== undefined) this.defaultLeaseMs = inner.defaultLeaseMs;
    if (inner.useClock !== undefined) this.useClock = inner.useClock.bind(inner);
    if (inner.estimate !== undefined) this.estimate = inner.estimate.bind(inner);
    if (inner.sweep !== undefined) this.sweep = inner.sweep.bind(inner);
    if (inner.forget !== undefined) this.forget = inner.forget.bind(inner);
    if (inner.pause !== undefined) {
      const pause = inner.pause.bind(inner);
      this.pause = (...args) => this.#track(pause(...args));
    }
  }

  #maybeFail(): void {
    if (!this.failNext) return;
    this.failNext = false;
    this.failures++;
    throw new Error('model: the store failed on demand');
  }

  #mustLose(): boolean {
    if (!this.loseNext) return false;
    this.loseNext = false;
    this.failures++;
    return true;
  }

  /** After a synchronous store decided: give back the slots booked, and lose the answer. */
  #lose(
    key: string,
    policy: Parameters<Store['release']>[1],
    ds: StoreDecision[],
    now: number,
  ): never {
    for (const d of ds)
      if (d.ok && d.grant.slot) void this.#inner.release(key, policy, d.grant, now);
    throw new StoreUnavailableError('model: the answer of a decision was lost');
  }

  #track<T>(r: T): T {
    if (r instanceof Promise) {
      this.#inFlight.add(r);
      const done = (): void => void this.#inFlight.delete(r);
      r.then(done, done);
    }
    return r;
  }

  /** Resolves once no store call is in flight and every callback has run. */
  async idle(): Promise<void> {
    for (let i = 0; ; i++) {
      await turn();
      if (this.#inFlight.size === 0) {
        await turn();
        if (this.#inFlight.size === 0) return;
      }
      await Promise.allSettled([...this.#inFlight]);
      if (i > 10_000) throw new Error('model: the store never went idle');
    }
  }

  decide(...args: Parameters<Store['decide']>): ReturnType<Store['decide']> {
    this.#maybeFail();
    if (!this.#mustLose()) return this.#track(this.#inner.decide(...args));
    const loss = this.#loss;
    if (loss === undefined) {
      const ds = this.#inner.decide(...args);
      if (ds instanceof Promise) throw new Error('model: loseNext needs a lossy client here');
      this.#lose(args[0], args[1], ds, args[4]);
    }
    // The client loses the answer of the next decide it sends; disarmed if none was sent.
    loss!.arm();
    const p = this.#inner.decide(...args);
    const disarm = (): void => loss!.disarm();
    if (p instanceof Promise) p.then(disarm, disarm);
    else disarm();
    return this.#track(p);
  }
  settle(...args: Parameters<Store['settle']>): ReturnType<Store['settle']> {
    return this.#track(this.#inner.settle(...args));
  }
  cancel(...args: Parameters<Store['cancel']>): ReturnType<Store['cancel']> {
    return this.#track(this.#inner.cancel(...args));
  }
  release(...args: Parameters<Store['release']>): ReturnType<Store['release']> {
    return this.#track(this.#inner.release(...args));
  }
  read(...args: Parameters<Store['read']>): ReturnType<Store['read']> {
    return this.#track(this.#inner.read(...args));
  }
  reset(...args: Parameters<Store['reset']>): ReturnType<Store['reset']> {
    return this.#track(this.#inner.reset(...args));
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}

interface Timer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
}

/**
 * SteppingClock is VirtualClock's semantics (timers run in order of due time, then of arming,
 * with `now()` at each timer's instant) for an asynchronous store: after each timer it waits
 * until `settle` resolves (the store answered everything, and the answers were handled) before
 * the next, so a decision taken at a timer's instant is applied at that instant, as the memory
 * store's is. With VirtualClock only `setImmediate` separates the timers, and a Redis answer
 * arrives after time has moved on.
 */
export class SteppingClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, Timer>();
  constructor(
    start: number,
    private readonly settle: () => Promise<void>,
  ) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.#nextId++;
    this.#timers.set(id, { id, at: this.#now + Math.max(0, ms), fn });
    return id;
  }
  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as number);
  }
  get pendingTimers(): number {
    return this.#timers.size;
  }
  async increment(ms: number): Promise<void> {
    const to = this.#now + ms;
    await this.settle();
    for (;;) {
      let next: Timer | undefined;
      for (const t of this.#timers.values()) {
        if (
          t.at <= to &&
          (next === undefined || t.at < next.at || (t.at === next.at && t.id < next.id))
        )
          next = t;
      }
      if (next === undefined) break;
      this.#timers.delete(next.id);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
      await this.settle();
    }
    this.#now = Math.max(this.#now, to);
    await this.settle();
  }
}
