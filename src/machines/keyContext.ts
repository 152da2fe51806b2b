/**
 * The types of a key actor, in a module of their own so that the parts of the key logic
 * (keyQueue, wakeSchedule, grants, asyncBatch) and the runtime can import them without importing
 * the logic itself: its context, runtime, events, snapshot and what it emits.
 */
import type { ActorLogic, ActorRef, ActorScope, ActorSystem, Snapshot } from 'xstate';
import type { Clock, TimerHandle } from '../clock.js';
import type { KeyCache, KeyReading, Store, StoreDecision, StoreGrant } from '../store.js';
import type { Ms, Policy, Units } from '../limiter/types.js';
import type { KeyQueue } from './keyQueue.js';
import type { KeyEmitted } from './keyFacts.js';
import type { Waiter } from './waiter.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- xstate's own alias for any system
type AnyActorSystem = ActorSystem<any>;

/** What the key logic needs from its grants. The runtime's grant class implements it. */
export interface GrantHandle {
  /** What the store booked for the grant; `settle` replaces it with the actual units. */
  record: StoreGrant;
  /** Set by the logic when the slot is given back (released, cancelled or lease expired). */
  slotFreed: boolean;
  /** Called when the grant's lease ended before a release (the call was abandoned). */
  leaseExpired?(): void;
  /**
   * Marks the grant cancelled and restates its record under `policy`, as its own `cancel()`
   * does before it sends; false (and nothing changes) when it was settled or cancelled already.
   * The key cancels a reservation's grant with it (see the `abort` event).
   */
  cancelling?(policy: Policy): boolean;
}

/**
 * KeyRuntime is what all keys of one limiter share: the store, the clock, the policy in force and
 * the options. The facade owns it; a policy change replaces `policy` and then tells each live key.
 */
export interface KeyRuntime<G extends GrantHandle = GrantHandle> {
  readonly limiter: string;
  readonly store: Store;
  readonly clock: Clock;
  /** The policy in force; it changes before the key actors get their `policy` message. */
  readonly policy: Policy;
  /** The most waiters a key queues; more are refused with QueueFullError. */
  readonly maxQueue: number;
  /** Ms a concurrency slot is held at most before it is given back, or null. */
  readonly leaseMs: Ms | null;
  /**
   * With a store shared by other processes, capacity can free up without this process knowing
   * (another process released a slot). A blocked queue re-asks at least this often.
   */
  readonly pollMs: Ms;
  /** Whether anybody listens to events or stats; facts are not even built otherwise. */
  readonly observed: { value: boolean };
  /** Builds the grant handed to the caller. */
  makeGrant(
    key: string,
    storeKey: string,
    record: StoreGrant,
    cost: Waiter['cost'],
    policy: Policy,
  ): G;
}

/**
 * Batch is one call to an async store in flight: the waiters sent (they stay queued, and are
 * marked `deciding` until the answer), and the policy their units were compiled under.
 */
export interface Batch<G extends GrantHandle = GrantHandle> {
  readonly waiters: readonly Waiter<G>[];
  readonly policy: Policy;
}

/**
 * KeyContext is one key's mailbox state; it is also the key's {@link KeyCache} for its store.
 *
 * Invariants, kept by the parts of the key logic and checked by test/model:
 * - every waiter in `queue` is pending; a waiter leaves the queue before it ends;
 * - at most one batch is in flight, and its waiters are queued or ended; while it is, every
 *   event that decides, books or reads is held, and handled in arrival order after its answer;
 * - `wakeHead` is null or a waiter the store refused at its last answer, `wakeAt` the instant the
 *   store said it fits (wakeSchedule.ts is the only writer of both);
 * - `timer` is armed for `timerAt`, the earliest of the head's wake-up, a waiter's deadline and
 *   a lease's end, and is re-armed once at the end of every event (wakeSchedule.rearm);
 * - a grant in `leases` holds a slot (`slotFreed` false).
 */
export interface KeyContext<G extends GrantHandle = GrantHandle> extends KeyCache {
  readonly rt: KeyRuntime<G>;
  readonly key: string;
  readonly storeKey: string;
  /** Waiters not yet granted or ended, in service order (keyQueue.ts). */
  readonly queue: KeyQueue<G>;
  /** The call to an async store whose answer has not come back, or null. */
  inFlight: Batch<G> | null;
  /**
   * Events held while a batch is in flight (an async store), in arrival order from `heldFrom`:
   * they are handled once its answer is, so that each decides against the state the events
   * before it left, as with a synchronous store (keyLogic.ts, `mustWait`).
   */
  held: KeyEvent<G>[] | null;
  heldFrom: number;
  /**
   * The policy as this key's mailbox has taken it: the runtime's, as of the last `policy` event
   * handled. Everything the key decides, books or reads uses it, so a limit change is ordered
   * with the key's other events.
   */
  policy: Policy;
  /** Grants holding a slot under a lease, with the instant the lease ends. Allocated on the first lease. */
  leases: Map<G, Ms> | null;
  /** The earliest lease end in `leases` (Infinity: none); NaN when it must be computed again. */
  leaseNext: Ms;
  timer: TimerHandle | null;
  /** The instant `timer` fires; Infinity when none is armed. */
  timerAt: Ms;
  /** The instant the head of the queue fits, as the store last said; Infinity if unknown. */
  wakeAt: Ms;
  /**
   * The waiter `wakeAt` was said for. While it is still the head and `wakeAt` is ahead, an async
   * store is not asked again (the timer, a freed capacity or a new head re-opens the question).
   */
  wakeHead: Waiter<G> | null;
  /** The limit the store refused `wakeHead` by (for a timeout's message), or null. */
  blockedBy: string | null;
  /** Last instant the key handled an event; the system evicts keys idle for long enough. */
  lastActive: Ms;
  closed: boolean;
  /** The store's own slot (see {@link KeyCache}): never read here. */
  storeEntry: unknown;
}

/** The snapshot of a key actor. */
export type KeySnapshot<G extends GrantHandle = GrantHandle> = Snapshot<undefined> & {
  readonly status: 'active' | 'stopped';
  readonly context: KeyContext<G>;
};

/** Every event a key actor handles. */
export type KeyEvent<G extends GrantHandle = GrantHandle> =
  | Waiter<G>
  | { type: 'tick' }
  | { type: 'wake' }
  /**
   * The waiter's signal aborted, or its reservation was cancelled (`done`: then a grant that came
   * meanwhile is cancelled too, at this place in the mailbox, and `done` ends with that cancel).
   */
  | { type: 'abort'; waiter: Waiter<G>; done?: Done }
  | { type: 'settle'; grant: G; actual: Units; done: Done }
  | { type: 'cancel'; grant: G; done: Done }
  | { type: 'release'; grant: G }
  | { type: 'read'; reply: (r: KeyReading & { queued: number }) => void; fail: (e: Error) => void }
  | { type: 'reset'; done: Done }
  | { type: 'pause'; forMs: Ms; done: Done }
  | { type: 'charge'; units: Units; done: Done }
  /** A limit change: `policy` is the one `setLimits` put in force when it sent this event. */
  | { type: 'policy'; policy: Policy }
  | { type: 'decided'; batch: Batch<G>; decisions: StoreDecision[] }
  | { type: 'failed'; batch: Batch<G>; error: unknown }
  | { type: 'close' };

/** Completion callbacks of a mailbox operation whose caller awaits it. */
export interface Done {
  resolve(): void;
  reject(e: Error): void;
}

/** The input a key actor is created with. */
export interface KeyInput<G extends GrantHandle = GrantHandle> {
  readonly rt: KeyRuntime<G>;
  readonly key: string;
  readonly storeKey: string;
}

/** The scope the key logic runs in (emits {@link KeyEmitted}). */
export type Scope<G extends GrantHandle> = ActorScope<
  KeySnapshot<G>,
  KeyEvent<G>,
  AnyActorSystem,
  KeyEmitted
>;
/** A running key actor. */
export type KeyActorRef<G extends GrantHandle = GrantHandle> = ActorRef<
  KeySnapshot<G>,
  KeyEvent<G>,
  KeyEmitted
>;

/** The logic of every key actor. */
export type KeyLogic<G extends GrantHandle = GrantHandle> = ActorLogic<
  KeySnapshot<G>,
  KeyEvent<G>,
  KeyInput<G>,
  AnyActorSystem,
  KeyEmitted
>;
