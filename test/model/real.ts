/**
 * Real is the runtime under test, driven through its public API only: one limiter system on
 * virtual time, with the main limiter (whose every outcome the simulator predicts) and a limiter
 * with a circuit breaker (checked by the ledger in check.ts). It runs the test's calls, records
 * how each one ended (the instant of each end included) and every event the system emits.
 */
import type { Redis } from 'ioredis';
import {
  VirtualClock,
  createLimiterSystem,
  isTollgateError,
  memoryStore,
  type CallOutcome,
  type Grant,
  type Limiter,
  type LimiterSystem,
  type Reservation,
  type TryResult,
} from '../../src/index.js';
import { redisStore } from '../../src/redis/index.js';
import type { Cost, MPolicy } from './reference.js';
import type { OpExpect, Reading, Signal, SimOp, WaiterOutcome } from './sim.js';
import {
  BREAKER,
  BRK_POLICIES,
  IDLE_MS,
  LEASE_MS,
  MAIN_POLICIES,
  MAX_PAUSE_MS,
  MAX_QUEUE,
  ProbeStore,
  RETRY_MS,
  SteppingClock,
  lossyClient,
  spec,
} from './setup.js';

/** One call of a generated command; `pick` chooses among the handles that exist when it runs. */
export type Op =
  | {
      readonly k: 'acquire';
      readonly key: string;
      readonly cost?: Cost;
      readonly priority: number;
      readonly timeout?: number;
      readonly signal: boolean;
    }
  | { readonly k: 'try'; readonly key: string; readonly cost?: Cost; readonly priority: number }
  | { readonly k: 'reserve'; readonly key: string; readonly cost?: Cost; readonly priority: number }
  | { readonly k: 'failing'; readonly key: string; readonly try: boolean; readonly lost: boolean }
  | { readonly k: 'settle'; readonly pick: number; readonly actual: Cost }
  | { readonly k: 'cancel'; readonly pick: number }
  | { readonly k: 'release'; readonly pick: number }
  | { readonly k: 'resCancel'; readonly pick: number }
  | { readonly k: 'abort'; readonly pick: number }
  | { readonly k: 'reset'; readonly key: string }
  | { readonly k: 'pause'; readonly key: string; readonly ms: number }
  | { readonly k: 'stats'; readonly key: string }
  | { readonly k: 'setLimits'; readonly i: number }
  | { readonly k: 'feedback'; readonly key: string; readonly signal: Signal }
  | { readonly k: 'advance'; readonly ms: number }
  | { readonly k: 'close' }
  // The limiter with a circuit breaker:
  | {
      readonly k: 'bAcquire';
      readonly key: string;
      readonly cost?: Cost;
      readonly priority: number;
      readonly timeout?: number;
    }
  | { readonly k: 'bTry'; readonly key: string; readonly cost?: Cost }
  | { readonly k: 'bReport'; readonly pick: number; readonly outcome: CallOutcome }
  | { readonly k: 'bRelease'; readonly pick: number }
  | { readonly k: 'bSettle'; readonly pick: number; readonly actual: Cost }
  | { readonly k: 'bCancel'; readonly pick: number }
  | { readonly k: 'bSetLimits'; readonly i: number }
  | { readonly k: 'bReset'; readonly key: string }
  | { readonly k: 'bRun'; readonly key: string; readonly cost?: Cost; readonly fail: boolean };

/** A waiter the test started, and how it ended. */
export interface Handle {
  readonly hid: number;
  readonly limiter: 'main' | 'brk';
  readonly kind: 'acquire' | 'try' | 'reserve' | 'failing' | 'run';
  readonly key: string;
  readonly cost: Cost | undefined;
  outcome: WaiterOutcome | { readonly s: 'thrown'; readonly code: string };
  grant?: Grant;
  controller?: AbortController;
  reservation?: Reservation;
  /** How many times its promise's callbacks ran (a promise settles once; 1 at most). */
  ends: number;
}

/** How a call other than a waiter ended, as observed. */
export interface OpResult {
  sync?: string;
  async?: string;
  reading?: Reading;
  etaMs?: number | null;
}

/** A recorded event: its type and payload. */
export interface Recorded {
  readonly type: string;
  readonly e: Record<string, unknown> & { at: number; limiter?: string; key?: string };
  /** The policy of the event's limiter when it was emitted. */
  readonly policy: MPolicy;
}

/** What a call made through `limiter.run` throws when the test makes it fail. */
export class CallFailed extends Error {
  override name = 'CallFailed';
}

export function codeOf(e: unknown): string {
  if (isTollgateError(e)) return e.code;
  if (e instanceof CallFailed) return 'CALL_FAILED';
  return `UNTYPED(${e instanceof Error ? `${e.name}: ${e.message}` : String(e)})`;
}

export type StoreKind = 'memory' | 'redis';

export interface RealOptions {
  readonly kind: StoreKind;
  /** A client of the test's redis-server (redis runs). */
  readonly client?: Redis;
  readonly prefix?: string;
  /** Wrap the store to fail a decision on demand (runs with a 'failing' call). */
  readonly probe: boolean;
}

const EVENTS = [
  'granted',
  'refused',
  'queued',
  'timeout',
  'aborted',
  'settled',
  'released',
  'cancelled',
  'reset',
  'paused',
  'storeError',
  'evicted',
  'breaker',
] as const;

export class Real {
  readonly handles: Handle[] = [];
  readonly events: Recorded[] = [];
  /**
   * Every setLimits made, in order: `after` is how many events were recorded before it (the
   * events it causes, waiters decided at once, come after). The ledger (check.ts) reads it.
   */
  readonly limitChanges: {
    readonly after: number;
    readonly limiter: 'main' | 'brk';
    readonly policy: MPolicy;
  }[] = [];
  /** The breaker limiter's settles, by grant id: the actual cost given. */
  readonly brkSettles = new Map<string, Cost>();
  /** The policies in force (indexes), as the test set them. */
  mainPolicy = 0;
  brkPolicy = 0;
  /** Breaker limiter grants whose permit the test ended (report, release, cancel), by id. */
  readonly permitEnded = new Set<string>();
  readonly system: LimiterSystem;
  readonly main: Limiter;
  readonly brk: Limiter;
  readonly probe: ProbeStore | undefined;
  readonly clock: VirtualClock | SteppingClock;
  /** Promises of calls (close included) still to settle before the run ends. */
  readonly #open = new Set<Promise<unknown>>();

  constructor(readonly options: RealOptions) {
    // The Redis store marks Redis down for retryInterval after a lost answer: 1 ms, which a
    // 'failing' step that loses an answer lets pass (commands.ts, Failing).
    const lossy = options.kind === 'redis' ? lossyClient(options.client!) : undefined;
    let store =
      lossy === undefined
        ? undefined
        : redisStore({
            client: lossy.client,
            prefix: options.prefix!,
            time: 'runtime',
            retryInterval: RETRY_MS,
          });
    if (options.kind === 'redis' || options.probe) {
      this.probe = new ProbeStore(store ?? memoryStore(), lossy?.loss);
      store = undefined;
    }
    const probe = this.probe;
    this.clock =
      options.kind === 'redis' ? new SteppingClock(0, () => probe!.idle()) : new VirtualClock(0);
    this.system = createLimiterSystem({
      clock: this.clock,
      idleTimeout: IDLE_MS,
      ...(probe === undefined ? {} : { store: probe }),
    });
    for (const type of EVENTS) {
      this.system.events.on(type, (e: unknown) => {
        const ev = e as Recorded['e'];
        const policy =
          ev.limiter === 'brk' ? BRK_POLICIES[this.brkPolicy]! : MAIN_POLICIES[this.mainPolicy]!;
        this.events.push({ type, e: ev, policy });
      });
    }
    this.main = this.system.limiter('main', {
      ...spec(MAIN_POLICIES[0]!),
      leaseTtl: LEASE_MS,
      maxQueue: MAX_QUEUE,
      maxPause: MAX_PAUSE_MS,
    });
    this.brk = this.system.limiter('brk', {
      ...spec(BRK_POLICIES[0]!),
      breaker: BREAKER,
      leaseTtl: LEASE_MS,
    });
  }

  get now(): number {
    return this.clock.now();
  }

  /** Lets everything due at the current instant run, and every store call answer. */
  async quiesce(): Promise<void> {
    await this.clock.increment(0);
  }

  #newHandle(
    kind: Handle['kind'],
    key: string,
    cost: Cost | undefined,
    limiter: Handle['limiter'] = 'main',
  ): Handle {
    const h: Handle = {
      hid: this.handles.length,
      limiter,
      kind,
      key,
      cost,
      outcome: { s: 'pending' },
      ends: 0,
    };
    this.handles.push(h);
    return h;
  }

  #watchGrant(h: Handle, p: Promise<Grant>): void {
    this.#open.add(p);
    p.then(
      (g) => {
        h.ends++;
        h.grant = g;
        h.outcome = { s: 'granted', at: g.grantedAt, booked: { ...g.booked } };
      },
      (e: unknown) => {
        h.ends++;
        h.outcome = { s: 'failed', codes: [codeOf(e)], at: this.now };
      },
    );
  }

  #watchTry(h: Handle, p: Promise<TryResult>): void {
    this.#open.add(p);
    p.then(
      (r) => {
        h.ends++;
        if (r.ok) {
          h.grant = r.grant;
          h.outcome = { s: 'granted', at: r.grant.grantedAt, booked: { ...r.grant.booked } };
        } else h.outcome = { s: 'refused', limit: r.limit, retryAfterMs: r.retryAfterMs };
      },
      (e: unknown) => {
        h.ends++;
        h.outcome = { s: 'failed', codes: [codeOf(e)], at: this.now };
      },
    );
  }

  #watchOp(r: OpResult, p: Promise<unknown>, reading = false): void {
    r.async = 'pending';
    this.#open.add(p);
    p.then(
      (v) => {
        r.async = 'ok';
        if (reading) {
          const s = v as {
            limits: { name: string; remaining: number; resetMs: number }[];
            inFlight: number;
            queued: number;
          };
          r.reading = {
            limits: s.limits.map((l) => ({
              name: l.name,
              remaining: l.remaining,
              resetMs: l.resetMs,
            })),
            inFlight: s.inFlight,
            queued: s.queued,
          };
        }
      },
      (e: unknown) => {
        r.async = codeOf(e);
      },
    );
  }

  /** The main limiter's handles a grant call can pick from: granted ones, in order. */
  granted(limiter: Handle['limiter'] = 'main'): Handle[] {
    return this.handles.filter((h) => h.limiter === limiter && h.outcome.s === 'granted');
  }

  /**
   * run makes `ops` one after the other in the same synchronous turn (no await in between), then
   * lets everything settle. Returns each call as the simulator sees it, and how it ended.
   */
  async run(ops: readonly Op[]): Promise<{ sims: (SimOp | null)[]; results: OpResult[] }> {
    const granted = this.granted();
    const brkGranted = this.granted('brk');
    const reserves = this.handles.filter(
      (h) => h.kind === 'reserve' && h.reservation !== undefined,
    );
    const abortable = this.handles.filter((h) => h.controller !== undefined);
    const sims: (SimOp | null)[] = [];
    const results: OpResult[] = [];
    const pick = (list: Handle[], n: number): Handle | undefined =>
      list.length === 0 ? undefined : list[n % list.length];
    for (const op of ops) {
      const r: OpResult = {};
      results.push(r);
      const sync = (f: () => void): void => {
        try {
          f();
        } catch (e) {
          r.sync = codeOf(e);
        }
      };
      switch (op.k) {
        case 'acquire': {
          const h = this.#newHandle('acquire', op.key, op.cost);
          if (op.signal) h.controller = new AbortController();
          const p = this.main.acquire(op.key, {
            ...(op.cost === undefined ? {} : { cost: op.cost }),
            priority: op.priority,
            ...(op.timeout === undefined ? {} : { timeout: op.timeout }),
            ...(h.controller === undefined ? {} : { signal: h.controller.signal }),
          });
          this.#watchGrant(h, p);
          sims.push({
            k: 'acquire',
            hid: h.hid,
            key: op.key,
            cost: op.cost,
            priority: op.priority,
            timeout: op.timeout,
          });
          break;
        }
        case 'try': {
          const h = this.#newHandle('try', op.key, op.cost);
          const p = this.main.tryAcquire(op.key, {
            ...(op.cost === undefined ? {} : { cost: op.cost }),
            priority: op.priority,
          });
          this.#watchTry(h, p);
          sims.push({ k: 'try', hid: h.hid, key: op.key, cost: op.cost, priority: op.priority });
          break;
        }
        case 'reserve': {
          const h = this.#newHandle('reserve', op.key, op.cost);
          try {
            const res = this.main.reserve(op.key, {
              ...(op.cost === undefined ? {} : { cost: op.cost }),
              priority: op.priority,
            });
            h.reservation = res;
            r.etaMs = res.etaMs;
            this.#watchGrant(h, res.granted);
          } catch (e) {
            r.sync = codeOf(e);
            h.outcome = { s: 'thrown', code: codeOf(e) };
          }
          sims.push({
            k: 'reserve',
            hid: h.hid,
            key: op.key,
            cost: op.cost,
            priority: op.priority,
          });
          break;
        }
        case 'failing': {
          const h = this.#newHandle('failing', op.key, undefined);
          if (op.lost) this.probe!.loseNext = true;
          else this.probe!.failNext = true;
          if (op.try) this.#watchTry(h, this.main.tryAcquire(op.key));
          else this.#watchGrant(h, this.main.acquire(op.key));
          this.probe!.failNext = false;
          this.probe!.loseNext = false;
          sims.push({ k: 'failing', hid: h.hid, key: op.key, try: op.try, lost: op.lost });
          break;
        }
        case 'settle':
        case 'cancel':
        case 'release': {
          const h = pick(granted, op.pick);
          if (h === undefined) {
            sims.push(null);
            break;
          }
          const g = h.grant!;
          if (op.k === 'settle') {
            sync(() => this.#watchOp(r, g.settle(op.actual)));
            sims.push({ k: 'settle', target: h.hid, actual: op.actual });
          } else if (op.k === 'cancel') {
            sync(() => this.#watchOp(r, g.cancel()));
            sims.push({ k: 'cancel', target: h.hid });
          } else {
            sync(() => g.release());
            sims.push({ k: 'release', target: h.hid });
          }
          break;
        }
        case 'resCancel': {
          const h = pick(reserves, op.pick);
          if (h === undefined) {
            sims.push(null);
            break;
          }
          sync(() => this.#watchOp(r, h.reservation!.cancel()));
          sims.push({ k: 'resCancel', target: h.hid });
          break;
        }
        case 'abort': {
          const h = pick(abortable, op.pick);
          if (h === undefined) {
            sims.push(null);
            break;
          }
          sync(() => h.controller!.abort('model'));
          sims.push({ k: 'abort', target: h.hid });
          break;
        }
        case 'reset':
          sync(() => this.#watchOp(r, this.main.reset(op.key)));
          sims.push(op);
          break;
        case 'pause':
          sync(() => this.#watchOp(r, this.main.pause(op.key, op.ms)));
          sims.push(op);
          break;
        case 'stats':
          sync(() => this.#watchOp(r, this.main.stats(op.key), true));
          sims.push(op);
          break;
        case 'setLimits':
          // Events emitted while it runs (waiters decided at once) are under the new policy.
          sync(() => {
            const was = this.mainPolicy;
            this.mainPolicy = op.i;
            const policy = MAIN_POLICIES[op.i]!;
            this.limitChanges.push({ after: this.events.length, limiter: 'main', policy });
            try {
              this.main.setLimits(spec(policy));
            } catch (e) {
              this.mainPolicy = was;
              this.limitChanges.pop();
              throw e;
            }
          });
          sims.push(op);
          break;
        case 'feedback':
          sync(() => this.#watchOp(r, this.main.feedback(op.key, op.signal)));
          sims.push(op);
          break;
        case 'close':
          sync(() => this.#watchOp(r, this.system.close()));
          sims.push(op);
          break;
        case 'advance':
          sims.push(op);
          break;
        case 'bAcquire': {
          const h = this.#newHandle('acquire', op.key, op.cost, 'brk');
          const p = this.brk.acquire(op.key, {
            ...(op.cost === undefined ? {} : { cost: op.cost }),
            priority: op.priority,
            ...(op.timeout === undefined ? {} : { timeout: op.timeout }),
          });
          this.#watchGrant(h, p);
          sims.push(null);
          break;
        }
        case 'bTry': {
          const h = this.#newHandle('try', op.key, op.cost, 'brk');
          this.#watchTry(
            h,
            this.brk.tryAcquire(op.key, op.cost === undefined ? {} : { cost: op.cost }),
          );
          sims.push(null);
          break;
        }
        case 'bReport':
        case 'bRelease':
        case 'bSettle':
        case 'bCancel': {
          sims.push(null);
          const h = pick(brkGranted, op.pick);
          if (h === undefined) break;
          const g = h.grant!;
          if (op.k !== 'bSettle') this.permitEnded.add(g.id);
          if (op.k === 'bReport') sync(() => g.report(op.outcome));
          else if (op.k === 'bRelease') sync(() => g.release());
          else if (op.k === 'bCancel') sync(() => this.#watchOp(r, g.cancel()));
          else {
            this.brkSettles.set(g.id, op.actual);
            sync(() => this.#watchOp(r, g.settle(op.actual)));
          }
          break;
        }
        case 'bRun': {
          // A whole call through run(): acquire, the call (it throws when `fail`), report, release.
          const h = this.#newHandle('run', op.key, op.cost, 'brk');
          const p = this.brk.run(
            op.key,
            (g) => {
              h.grant = g;
              this.permitEnded.add(g.id);
              if (op.fail) throw new CallFailed('model: the call failed');
              return g;
            },
            op.cost === undefined ? {} : { cost: op.cost },
          );
          this.#watchGrant(h, p);
          sims.push(null);
          break;
        }
        case 'bSetLimits':
          // Events emitted while it runs (waiters decided at once) are under the new policy.
          sync(() => {
            const was = this.brkPolicy;
            this.brkPolicy = op.i;
            const policy = BRK_POLICIES[op.i]!;
            this.limitChanges.push({ after: this.events.length, limiter: 'brk', policy });
            try {
              this.brk.setLimits(spec(policy));
            } catch (e) {
              this.brkPolicy = was;
              this.limitChanges.pop();
              throw e;
            }
          });
          sims.push(null);
          break;
        case 'bReset':
          sync(() => this.#watchOp(r, this.brk.reset(op.key)));
          sims.push(null);
          break;
      }
    }
    const advance = ops.find((o) => o.k === 'advance');
    if (advance !== undefined && advance.k === 'advance') await this.clock.increment(advance.ms);
    else await this.quiesce();
    return { sims, results };
  }

  /** Every promise of the run has settled (after close). */
  async settled(): Promise<boolean> {
    let done = false;
    const all = Promise.allSettled([...this.#open]).then(() => (done = true));
    for (let i = 0; i < 50 && !done; i++) await this.quiesce();
    await Promise.race([all, Promise.resolve()]);
    return done;
  }
}

export type { OpExpect };
