/**
 * Waiter is one caller's request while a key's mailbox decides it. The same object is the event
 * sent to the key actor (its `type` is `'acquire'`), the request handed to the store, and the
 * place the outcome is written: on the hot path a grant needs no other allocation, and a caller
 * whose request was decided synchronously never creates a promise.
 */
import type { CostSpec, Ms, Policy, Units } from '../limiter/types.js';

/** Where a waiter is in its life. It leaves `Pending` exactly once. */
export const WaiterState = {
  Pending: 0,
  Granted: 1,
  /** A `tryAcquire` that did not fit: ended with a refusal value, not an error. */
  Refused: 2,
  /** Ended with an error: timeout, abort, queue full, closed, store failure. */
  Failed: 3,
} as const;

/** One of the {@link WaiterState} values. */
export type WaiterState = (typeof WaiterState)[keyof typeof WaiterState];

/** A refusal as `tryAcquire` reports it. */
export interface Refusal {
  readonly retryAfterMs: Ms;
  readonly limit: string;
}

/** Detachable is what a waiter calls once when it ends: its abort listener, taken off its signal. */
export interface Detachable {
  detach(): void;
}

/** Waiter: see the file comment. `G` is the grant type the runtime hands out. */
export class Waiter<G = unknown> {
  readonly type = 'acquire' as const;
  state: WaiterState = WaiterState.Pending as WaiterState;
  /** Whether the waiter sits in the key's queue. Only the queue (keyQueue.ts) sets it. */
  queued = false;
  /** Whether an async store is deciding the waiter now: its units must not change meanwhile. */
  deciding = false;
  /**
   * Queued past `maxQueue` to be decided first (an async store decides a waiter in the queue): a
   * refusal then ends it with QueueFullError, as a synchronous store refuses it before queueing.
   */
  overflow = false;
  /** Absolute instant the waiter times out; `Infinity` when it never does. Set by the mailbox. */
  deadline: Ms = Infinity;
  /** The instant the mailbox received the waiter (set once: `arrived`). */
  arrivedAt: Ms = 0;
  /** Whether the mailbox received the waiter (its arrival and deadline are set). */
  arrived = false;
  /** A reservation: the mailbox estimates `etaMs` when it queues the waiter. */
  wantsEta = false;
  /** Estimated ms from queueing to grant; null when unknown. */
  etaMs: Ms | null = null;
  grant: G | undefined = undefined;
  refusal: Refusal | undefined = undefined;
  error: Error | undefined = undefined;
  /** Detaches the abort listener when the waiter ends; set by the runtime when it attaches one. */
  detach: Detachable | undefined = undefined;
  #id: string | undefined = undefined;
  #resolve: ((g: G) => void) | undefined = undefined;
  #reject: ((e: Error) => void) | undefined = undefined;

  constructor(
    /** Prefix of the grant id, unique per system. */
    readonly idPrefix: string,
    /** Arrival order within the process; ties in priority are served in this order. */
    readonly seq: number,
    /** Units per limit of `policy` (recompiled when the policy changes). */
    public units: Units,
    /** The policy `units` were compiled under; the key recompiles them under any other. */
    public policy: Policy,
    /** Whether the grant takes a concurrency slot. */
    readonly slot: boolean,
    /** Ms a held slot lasts at most, or null. */
    readonly leaseMs: Ms | null,
    /** The cost as the caller gave it, kept to recompile against a new policy. */
    readonly cost: CostSpec | undefined,
    /** Higher first; ties in arrival order (`seq`). */
    readonly priority: number,
    /** Ms to wait at most; `Infinity` for no timeout. */
    readonly timeoutMs: Ms,
    /** A `tryAcquire`: decided once, never queued. */
    readonly tryOnly: boolean,
    readonly signal: AbortSignal | undefined,
    /** The call that asked (`acquire`, `tryAcquire`, `reserve`, `run`), for messages. */
    readonly call: string,
  ) {}

  /**
   * Whether the waiter is decided once and never waits: a try, or an acquire with timeout 0
   * ("unless it fits at once": with an async store, at the store's first answer).
   */
  get once(): boolean {
    return this.tryOnly || this.timeoutMs === 0;
  }

  /** Grant id (built on first use: the memory store's hot path never needs it). */
  get id(): string {
    return (this.#id ??= this.idPrefix + this.seq.toString(36));
  }

  /** The promise of the outcome, created only when the outcome was not known synchronously. */
  promise(): Promise<G> {
    if (this.state === WaiterState.Granted) return Promise.resolve(this.grant as G);
    if (this.state === WaiterState.Failed) return Promise.reject(this.error);
    return new Promise<G>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  /** Ends the waiter with a grant. Returns false (and does nothing) if it had already ended. */
  succeed(grant: G): boolean {
    if (this.state !== WaiterState.Pending) return false;
    this.state = WaiterState.Granted;
    this.grant = grant;
    this.#end();
    this.#resolve?.(grant);
    return true;
  }

  /** Ends a `tryAcquire` with a refusal value. */
  refuse(refusal: Refusal): boolean {
    if (this.state !== WaiterState.Pending) return false;
    this.state = WaiterState.Refused;
    this.refusal = refusal;
    this.#end();
    this.#resolve?.(undefined as G);
    return true;
  }

  /** Ends the waiter with an error. Returns false if it had already ended. */
  fail(error: Error): boolean {
    if (this.state !== WaiterState.Pending) return false;
    this.state = WaiterState.Failed;
    this.error = error;
    this.#end();
    this.#reject?.(error);
    return true;
  }

  #end(): void {
    this.detach?.detach();
    this.detach = undefined;
  }
}
