/**
 * keyLogic is the mailbox of one rate-limit key: XState actor logic (a custom `ActorLogic`, not a
 * statechart, because the hot path must not pay the interpreter per request; see DESIGN.md).
 *
 * Every operation of the key is an event handled here, one at a time, to completion: acquire,
 * timer tick, abort, settle, cancel, release, read, reset, pause, charge, policy change, the
 * store's answers and close. Each event goes the same way:
 *
 *   1. read the clock once (`now`);
 *   2. handle the event (the handlers below; the store is called in mailbox order);
 *   3. serve the queue: expire deadlines, then decide from the head (a synchronous store) or send
 *      the head as one batch (an async store, asyncBatch.ts);
 *   4. re-arm the key's one timer (wakeSchedule.ts).
 *
 * Steps 2 and 3 run inside one try: a store that throws, or a bug, fails the callers of that
 * event with a typed error and leaves the key working. The parts: keyQueue.ts (service order,
 * deadlines), admit.ts (onAcquire and serve), keyOps.ts (settle, cancel, read, policy, close),
 * wakeSchedule.ts (when to ask the store again, the timer), grants.ts (how waiters end,
 * slots and leases), asyncBatch.ts (the batch in flight), storeOps.ts (guarded store calls). The
 * invariants they keep together are written on {@link KeyContext}.
 *
 * Compromise: for speed the snapshot's context is mutated in place and the same snapshot object
 * is returned; observers that keep snapshots must copy what they need. The context is never
 * shared outside this actor.
 */
import { onLimiter } from '../describe.js';
import { AcquireAbortedError, GrantStateError, InvalidArgumentError } from '../errors.js';
import type { Ms } from '../limiter/types.js';
import { arrive, onAcquire, serve } from './admit.js';
import { decided, failed } from './asyncBatch.js';
import { endWithError, expireHeld, expireLeases, freeSlot } from './grants.js';
import {
  type GrantHandle,
  type KeyContext,
  type KeyEvent,
  type KeyLogic,
  type Scope,
} from './keyContext.js';
import { failCaller, onCancel, onCharge, onClose, onPolicy, onRead, onSettle } from './keyOps.js';
import { KeyQueue } from './keyQueue.js';
import { asInternalError, storeCall, tellStoreError } from './storeOps.js';
import { capacityFreed, rearm, timerFired } from './wakeSchedule.js';
import { WaiterState, type Waiter } from './waiter.js';

/** keyLogic is the logic of every key actor (see the file comment). */
export const keyLogic: KeyLogic = {
  config: undefined,

  getInitialSnapshot(_scope, input) {
    const now = input.rt.clock.now();
    return {
      status: 'active',
      output: undefined,
      error: undefined,
      context: {
        rt: input.rt,
        key: input.key,
        storeKey: input.storeKey,
        queue: new KeyQueue(),
        inFlight: null,
        held: null,
        heldFrom: 0,
        policy: input.rt.policy,
        leases: null,
        leaseNext: Infinity,
        timer: null,
        timerAt: Infinity,
        wakeAt: Infinity,
        wakeHead: null,
        blockedBy: null,
        lastActive: now,
        closed: false,
        storeEntry: undefined,
      },
    };
  },

  transition(snapshot, event, scope) {
    const ctx = snapshot.context;
    const now = readClock(ctx);
    // The hot path is kept apart and small: a synchronous store and nobody queued.
    if (event.type === 'acquire' && ctx.queue.size === 0 && ctx.rt.store.sync)
      acquireAlone(ctx, event, now, scope);
    else onEvent(ctx, event, now, scope);
    return snapshot;
  },

  getPersistedSnapshot(snapshot) {
    // The key's limit state lives in its store (snapshotted there); waiters cannot be persisted.
    return {
      status: snapshot.status,
      output: undefined,
      error: undefined,
      key: snapshot.context.key,
    };
  },
};

/**
 * readClock reads the clock once for the message (step 1). A clock that cannot tell the time
 * leaves the key going on at the last instant it knew.
 */
function readClock<G extends GrantHandle>(ctx: KeyContext<G>): Ms {
  try {
    ctx.lastActive = ctx.rt.clock.now();
  } catch {
    // keep lastActive
  }
  return ctx.lastActive;
}

/**
 * acquireAlone takes an acquire nobody is queued ahead of, with a synchronous store: onAcquire
 * decides it at once (granted, refused, or queued as the refused head), so serving the queue
 * after it would find nothing to do, and nothing is held (a synchronous store has no batch out).
 */
function acquireAlone<G extends GrantHandle>(
  ctx: KeyContext<G>,
  w: Waiter<G>,
  now: Ms,
  scope: Scope<G>,
): void {
  try {
    onAcquire(ctx, w, now, scope);
  } catch (e) {
    recover(ctx, w, e, now, scope);
  }
  // Granted or refused, nothing is left to time: rearm would find nothing to do.
  if (ctx.queue.size !== 0 || ctx.leases !== null || ctx.timer !== null) rearm(ctx, now, scope);
}

/** onEvent takes any other event through steps 2 to 4 of the file comment. */
function onEvent<G extends GrantHandle>(
  ctx: KeyContext<G>,
  event: KeyEvent<G>,
  now: Ms,
  scope: Scope<G>,
): void {
  if (ctx.inFlight !== null && mustWait(event)) {
    hold(ctx, event, now);
    // A held waiter's deadline runs from now: the timer covers it (grants.ts expireHeld).
    if (event.type === 'acquire' && event.deadline !== Infinity) rearm(ctx, now, scope);
    return;
  }
  step(ctx, event, now, scope);
  drain(ctx, now, scope);
  // A clock that cannot arm a timer leaves the key unable to keep its deadlines: the actor
  // fails, and the system ends its waiters (LimiterSystem's #removeFailed).
  rearm(ctx, now, scope);
}

/** step handles one event and serves the queue (steps 2 and 3 of the file comment). */
function step<G extends GrantHandle>(
  ctx: KeyContext<G>,
  event: KeyEvent<G>,
  now: Ms,
  scope: Scope<G>,
): void {
  try {
    handle(ctx, event, now, scope);
    serve(ctx, now, scope);
  } catch (e) {
    recover(ctx, event, e, now, scope);
  }
}

/**
 * mustWait tells whether `event` waits for the answer of the batch in flight: every event that
 * decides, books or reads the key does, and an abort (the waiter it ends may be one of them), so
 * that it meets the state the events before it left, as it would with a synchronous store.
 * (Without this, `acquire(); acquire(); reset()` on Redis decided the second acquire after the
 * reset, which the memory store decides before it.) Timers, wake-ups, answers and close are
 * handled at once: a deadline or a lease ends on time even while the store is slow.
 */
function mustWait<G extends GrantHandle>(event: KeyEvent<G>): boolean {
  switch (event.type) {
    case 'acquire':
    case 'abort':
    case 'settle':
    case 'cancel':
    case 'release':
    case 'read':
    case 'reset':
    case 'pause':
    case 'charge':
    case 'policy':
      return true;
    default:
      return false;
  }
}

/** hold keeps `event` for the batch's answer; a waiter has arrived now (its deadline runs). */
function hold<G extends GrantHandle>(ctx: KeyContext<G>, event: KeyEvent<G>, now: Ms): void {
  if (event.type === 'acquire') arrive(event, now);
  (ctx.held ??= []).push(event);
}

/**
 * drain handles the held events in arrival order once no batch is in flight, until one sends a
 * batch again. A run of held acquires of one priority is decided as one batch, in arrival order:
 * the answer a synchronous store gives when it decides them one after the other ('queue' mode
 * stops where the first one waits, and the rest queue behind it).
 */
function drain<G extends GrantHandle>(ctx: KeyContext<G>, now: Ms, scope: Scope<G>): void {
  const { held } = ctx;
  if (held === null) return;
  while (ctx.inFlight === null && ctx.heldFrom < held.length && !ctx.closed) {
    const first = held[ctx.heldFrom++]!;
    if (first.type !== 'acquire') {
      step(ctx, first, now, scope);
      continue;
    }
    const run = [first];
    for (let next = held[ctx.heldFrom]; next?.type === 'acquire'; next = held[ctx.heldFrom]) {
      if (next.priority !== first.priority) break;
      run.push(next);
      ctx.heldFrom++;
    }
    try {
      for (const w of run) onAcquire(ctx, w, now, scope);
      serve(ctx, now, scope);
    } catch (e) {
      for (const w of run) recover(ctx, w, e, now, scope);
    }
  }
  if (ctx.heldFrom === held.length) {
    ctx.held = null;
    ctx.heldFrom = 0;
  } else if (ctx.heldFrom > 64 && ctx.heldFrom * 2 > held.length) {
    ctx.held = held.slice(ctx.heldFrom); // what was handled is not kept alive
    ctx.heldFrom = 0;
  }
}

/** handle applies one event (step 2 of the file comment). */
function handle<G extends GrantHandle>(
  ctx: KeyContext<G>,
  event: KeyEvent<G>,
  now: Ms,
  scope: Scope<G>,
): void {
  switch (event.type) {
    case 'acquire':
      onAcquire(ctx, event, now, scope);
      return;
    case 'tick':
      timerFired(ctx);
      expireLeases(ctx, now, scope);
      expireHeld(ctx, now, scope);
      return;
    case 'wake': // capacity freed elsewhere (another process): ask the store again
      capacityFreed(ctx);
      return;
    case 'abort': {
      const w = event.waiter;
      // A reservation cancelled while its decision was out: the grant that came is given back
      // here, in mailbox order, as if the cancel had found it granted (see Limiter.reserve).
      if (event.done !== undefined && w.state === WaiterState.Granted) {
        const grant = w.grant!;
        if (grant.cancelling?.(ctx.policy) === true) onCancel(ctx, grant, event.done, now, scope);
        else
          // Cancelled or settled already (a second cancel of the reservation): as Grant.cancel.
          event.done.reject(
            new GrantStateError(
              `tollgate: cancel of grant ${grant.record.id}, which was settled or cancelled`,
            ),
          );
        return;
      }
      endWithError(ctx, w, new AcquireAbortedError(w.signal?.reason), now, scope, 'aborted');
      event.done?.resolve();
      return;
    }
    case 'settle':
      onSettle(ctx, event.grant, event.actual, event.done, now, scope);
      return;
    case 'cancel':
      onCancel(ctx, event.grant, event.done, now, scope);
      return;
    case 'release':
      freeSlot(ctx, event.grant, false, now, scope);
      return;
    case 'read':
      onRead(ctx, event, now);
      return;
    case 'reset': {
      capacityFreed(ctx);
      const { store } = ctx.rt;
      storeCall(ctx, scope, now, event.done, () => store.reset(ctx.storeKey, now));
      if (ctx.rt.observed.value) scope.emit({ type: 'reset', key: ctx.key, at: now });
      return;
    }
    case 'pause': {
      const { store } = ctx.rt;
      if (store.pause === undefined) {
        event.done.reject(
          new InvalidArgumentError(
            `tollgate: ${onLimiter(ctx.rt.limiter, 'pause', ctx.key)}: the ${store.name} store cannot pause a key`,
          ),
        );
        return;
      }
      // The head is refused with 'paused' at its next decision and waits the pause out.
      storeCall(ctx, scope, now, event.done, () => store.pause!(ctx.storeKey, event.forMs, now));
      if (ctx.rt.observed.value)
        scope.emit({ type: 'paused', key: ctx.key, forMs: event.forMs, at: now });
      return;
    }
    case 'charge':
      onCharge(ctx, event.units, event.done, now, scope);
      return;
    case 'policy':
      onPolicy(ctx, event.policy, now, scope);
      return;
    case 'decided':
      decided(ctx, event.batch, event.decisions, now, scope);
      return;
    case 'failed':
      failed(ctx, event.batch, event.error, now, scope);
      return;
    case 'close':
      onClose(ctx);
      return;
  }
}

/**
 * recover: handling `event` threw (a bug, or a store that threw where no guard expected it). The
 * callers of the event get a typed error; the key goes on (its queue is served again).
 */
function recover<G extends GrantHandle>(
  ctx: KeyContext<G>,
  event: KeyEvent<G>,
  e: unknown,
  now: Ms,
  scope: Scope<G>,
): void {
  const error = asInternalError(`the ${event.type} of key ${JSON.stringify(ctx.key)}`, e);
  tellStoreError(ctx, scope, now, error);
  try {
    if (event.type === 'acquire') endWithError(ctx, event, error, now, scope);
    else if (event.type === 'decided' || event.type === 'failed')
      failed(ctx, event.batch, error, now, scope);
    else failCaller(event, error);
    serve(ctx, now, scope);
  } catch (again) {
    // Serving failed too: the head is what fails; end it so the key is not stuck behind it.
    const head = ctx.queue.head();
    if (head !== undefined)
      endWithError(ctx, head, asInternalError('serving the queue', again), now, scope);
  }
}

/** isKeyIdle tells whether a key actor holds nothing worth keeping alive (no waiter, timer or lease). */
export function isKeyIdle<G extends GrantHandle>(ctx: KeyContext<G>): boolean {
  return (
    ctx.queue.size === 0 &&
    ctx.inFlight === null &&
    ctx.held === null &&
    (ctx.leases === null || ctx.leases.size === 0) &&
    ctx.timer === null
  );
}
