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
 * deadlines), wakeSchedule.ts (when to ask the store again, the timer), grants.ts (how waiters end,
 * slots and leases), asyncBatch.ts (the batch in flight), storeOps.ts (guarded store calls). The
 * invariants they keep together are written on {@link KeyContext}.
 *
 * Compromise: for speed the snapshot's context is mutated in place and the same snapshot object
 * is returned; observers that keep snapshots must copy what they need. The context is never
 * shared outside this actor.
 */
import {
  AcquireAbortedError,
  InvalidArgumentError,
  LimiterClosedError,
  QueueFullError,
} from '../errors.js';
import type { Ms, Units } from '../limiter/types.js';
import { restate, type StoreDecision, type StoreGrant } from '../store.js';
import { decided, failed, sendBatch } from './asyncBatch.js';
import {
  compileFor,
  dropLease,
  endWithError,
  expireLeases,
  expireWaiters,
  freeSlot,
  grantTo,
  refuseTry,
} from './grants.js';
import {
  QUEUED,
  type Done,
  type GrantHandle,
  type KeyContext,
  type KeyEvent,
  type KeyLogic,
  type Scope,
} from './keyContext.js';
import { KeyQueue } from './keyQueue.js';
import { asInternalError, asStoreError, storeCall, tellStoreError } from './storeOps.js';
import {
  askAgainNow,
  blocked,
  capacityFreed,
  isBlockedHead,
  rearm,
  shouldAsk,
  timerFired,
} from './wakeSchedule.js';
import { WaiterState, type Waiter } from './waiter.js';

export { QUEUED };

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
        leases: null,
        leaseNext: Infinity,
        timer: null,
        timerAt: Infinity,
        wakeAt: Infinity,
        wakeHead: null,
        lastActive: now,
        closed: false,
        storeEntry: undefined,
      },
    };
  },

  transition(snapshot, event, scope) {
    const ctx = snapshot.context;
    const now = ctx.rt.clock.now(); // one clock read per message
    ctx.lastActive = now;
    try {
      handle(ctx, event, now, scope);
      serve(ctx, now, scope);
    } catch (e) {
      recover(ctx, event, e, now, scope);
    }
    rearm(ctx, now, scope);
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
      return;
    case 'wake': // capacity freed elsewhere (another process): ask the store again
      capacityFreed(ctx);
      return;
    case 'abort':
      endWithError(
        ctx,
        event.waiter,
        new AcquireAbortedError(event.waiter.signal?.reason),
        now,
        scope,
        'aborted',
      );
      return;
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
          new InvalidArgumentError(`tollgate: the ${store.name} store cannot pause a key`),
        );
        return;
      }
      // The head is refused with 'paused' at its next decision and waits the pause out.
      storeCall(ctx, scope, now, event.done, () => store.pause!(ctx.storeKey, event.forMs, now));
      return;
    }
    case 'charge':
      onCharge(ctx, event.units, event.done, now, scope);
      return;
    case 'policy':
      onPolicy(ctx, now, scope);
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
 * serve decides the queue from its head (step 3). A synchronous store decides in place, head by
 * head, until one is refused; an async store gets the head as one batch, unless one is out or
 * the head is the waiter it refused last and its wake-up is still ahead.
 */
function serve<G extends GrantHandle>(ctx: KeyContext<G>, now: Ms, scope: Scope<G>): void {
  if (ctx.closed) return;
  // Deadlines hold even while a slow store is deciding: a waiter granted after it timed out
  // gives its grant straight back (see grantTo).
  expireWaiters(ctx, now, scope);
  const { queue } = ctx;
  if (queue.size === 0 || ctx.inFlight !== null) return;
  // The head the store refused last is asked again at its wake-up, or once capacity may have
  // freed (capacityFreed) or the head changed: not at every event.
  if (!shouldAsk(ctx, queue.head()!, now)) return;
  if (!ctx.rt.store.sync) {
    sendBatch(ctx, now, scope);
    return;
  }
  for (let head = queue.head(); head !== undefined; head = queue.head()) {
    if (!compileFor(ctx, head, now, scope)) continue;
    const d = decideNow(ctx, head, now, scope);
    if (d === null) continue; // the store threw: the head failed with the store's error
    if (d.ok) grantTo(ctx, head, d.grant, now, scope);
    else {
      blocked(ctx, head, d, now);
      return;
    }
  }
}

/**
 * decideNow asks a synchronous store about one waiter. A store that throws fails the waiter with
 * a typed error (null is returned) rather than the key.
 */
function decideNow<G extends GrantHandle>(
  ctx: KeyContext<G>,
  w: Waiter<G>,
  now: Ms,
  scope: Scope<G>,
): StoreDecision | null {
  const { store, policy } = ctx.rt;
  try {
    return store.decideOne !== undefined
      ? store.decideOne(ctx.storeKey, policy, w, now, ctx)
      : (store.decide(ctx.storeKey, policy, [w], 'queue', now, ctx) as StoreDecision[])[0]!;
  } catch (e) {
    const error = asStoreError(e);
    tellStoreError(ctx, scope, now, error);
    endWithError(ctx, w, error, now, scope);
    return null;
  }
}

function onAcquire<G extends GrantHandle>(
  ctx: KeyContext<G>,
  w: Waiter<G>,
  now: Ms,
  scope: Scope<G>,
): void {
  if (w.state !== WaiterState.Pending) return; // aborted before the mailbox got to it
  w.arrivedAt = now;
  if (w.timeoutMs !== Infinity) w.deadline = now + w.timeoutMs;
  if (ctx.closed) {
    w.fail(new LimiterClosedError());
    return;
  }
  // Compiled before a limit change (e.g. while it waited behind a breaker): compile it again.
  if (!compileFor(ctx, w, now, scope)) return;
  const { queue } = ctx;
  const head = queue.head();
  const { store } = ctx.rt;
  // Someone waits ahead when the head has equal or higher priority; with an async store, only
  // once the store refused it (the others are just being decided, not waiting for capacity).
  const ahead =
    head !== undefined && head.priority >= w.priority && (store.sync || isBlockedHead(ctx, head));
  // The fast path: nobody ahead, a synchronous store, and the request fits or is a try.
  if (!ahead && store.sync && ctx.inFlight === null) {
    const d = decideNow(ctx, w, now, scope);
    if (d === null) return;
    if (d.ok) {
      grantTo(ctx, w, d.grant, now, scope);
      return;
    }
    if (w.tryOnly) {
      refuseTry(ctx, w, d.retryAfterMs, d.limit, now, scope);
      return;
    }
    if (!enqueue(ctx, w, now, scope)) return;
    if (queue.head() === w) blocked(ctx, w, d, now);
    if (w.wantsEta) w.etaMs = estimate(ctx, w, now);
    return;
  }
  if (w.tryOnly && ahead) {
    // The head's wake-up or deadline bounds when the try could pass; 0 when neither is known.
    const until = Math.min(ctx.wakeAt, head.deadline);
    refuseTry(ctx, w, until === Infinity ? 0 : Math.max(0, until - now), QUEUED, now, scope);
    return;
  }
  if (!enqueue(ctx, w, now, scope)) return;
  if (w.wantsEta) {
    serve(ctx, now, scope); // decide first: a reservation that fits at once has no wait
    if (w.state === WaiterState.Pending) w.etaMs = estimate(ctx, w, now);
  }
}

function enqueue<G extends GrantHandle>(
  ctx: KeyContext<G>,
  w: Waiter<G>,
  now: Ms,
  scope: Scope<G>,
): boolean {
  const { queue } = ctx;
  if (queue.size >= ctx.rt.maxQueue) {
    w.fail(new QueueFullError(ctx.rt.maxQueue));
    return false;
  }
  queue.insert(w);
  if (ctx.rt.observed.value)
    scope.emit({ type: 'queued', key: ctx.key, id: w.id, queueLength: queue.size, at: now });
  return true;
}

/**
 * The wait a queued waiter can expect: the store simulates the queue ahead when it can. O(its
 * place in the queue): only reservations ask.
 */
function estimate<G extends GrantHandle>(ctx: KeyContext<G>, w: Waiter<G>, now: Ms): Ms | null {
  const { store, policy } = ctx.rt;
  if (store.estimate === undefined) {
    return ctx.queue.head() === w && ctx.wakeAt !== Infinity ? ctx.wakeAt - now : null;
  }
  const ahead: Units[] = [];
  for (const q of ctx.queue) {
    ahead.push(q.units);
    if (q === w) return store.estimate(ctx.storeKey, policy, ahead, now);
  }
  return null;
}

function onSettle<G extends GrantHandle>(
  ctx: KeyContext<G>,
  grant: G,
  actual: Units,
  done: Done,
  now: Ms,
  scope: Scope<G>,
): void {
  const { store, policy } = ctx.rt;
  capacityFreed(ctx); // a refund may let the head in
  const before = grant.record;
  if (
    !storeCall(ctx, scope, now, done, () => store.settle(ctx.storeKey, policy, before, actual, now))
  )
    return;
  grant.record = restate(before, actual);
  if (ctx.rt.observed.value)
    scope.emit({
      type: 'settled',
      key: ctx.key,
      id: before.id,
      estimated: before.units,
      actual,
      at: now,
    });
}

function onCancel<G extends GrantHandle>(
  ctx: KeyContext<G>,
  grant: G,
  done: Done,
  now: Ms,
  scope: Scope<G>,
): void {
  dropLease(ctx, grant);
  capacityFreed(ctx);
  // A slot given back already (released, lease ended) is not given back twice.
  const record = grant.slotFreed ? restate(grant.record, grant.record.units, false) : grant.record;
  grant.slotFreed = true;
  const { store, policy } = ctx.rt;
  storeCall(ctx, scope, now, done, () => store.cancel(ctx.storeKey, policy, record, now));
  if (ctx.rt.observed.value)
    scope.emit({ type: 'cancelled', key: ctx.key, id: grant.record.id, at: now });
}

/**
 * charge books `units` now, unconditionally (recalibration to a provider's remaining): the
 * settle of a grant that booked nothing.
 */
function onCharge<G extends GrantHandle>(
  ctx: KeyContext<G>,
  units: Units,
  done: Done,
  now: Ms,
  scope: Scope<G>,
): void {
  const { store, policy } = ctx.rt;
  if (units.length !== policy.limits.length) {
    done.resolve(); // computed under a policy replaced since: nothing to book
    return;
  }
  const none: StoreGrant = { id: 'charge', at: now, units: units.map(() => 0), slot: false };
  storeCall(ctx, scope, now, done, () => store.settle(ctx.storeKey, policy, none, units, now));
}

function onRead<G extends GrantHandle>(
  ctx: KeyContext<G>,
  event: Extract<KeyEvent<G>, { type: 'read' }>,
  now: Ms,
): void {
  const queued = ctx.queue.size;
  try {
    const r = ctx.rt.store.read(ctx.storeKey, ctx.rt.policy, now);
    if (r instanceof Promise)
      r.then(
        (x) => event.reply({ ...x, queued }),
        (e: unknown) => event.fail(asStoreError(e)),
      );
    else event.reply({ ...r, queued });
  } catch (e) {
    event.fail(asStoreError(e));
  }
}

/**
 * A new policy: queued waiters are compiled under it (one whose cost no longer fits any capacity
 * ends with CostExceedsCapacityError), and the head is asked about again. Waiters an async store
 * is deciding keep their units until its answer (asyncBatch.decided compiles them then).
 */
function onPolicy<G extends GrantHandle>(ctx: KeyContext<G>, now: Ms, scope: Scope<G>): void {
  for (const w of [...ctx.queue]) if (!w.deciding) compileFor(ctx, w, now, scope);
  askAgainNow(ctx, now);
}

function onClose<G extends GrantHandle>(ctx: KeyContext<G>): void {
  ctx.closed = true;
  // Most keys have nobody waiting at close: build the error (and its stack) only for those that do.
  const waiting = ctx.queue.clear();
  const deciding = ctx.inFlight?.waiters ?? [];
  ctx.inFlight = null;
  if (waiting.length > 0 || deciding.length > 0) {
    const error = new LimiterClosedError();
    for (const w of waiting) w.fail(error);
    for (const w of deciding) w.fail(error);
  }
  ctx.leases = null;
  ctx.leaseNext = Infinity;
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
    switch (event.type) {
      case 'acquire':
        endWithError(ctx, event, error, now, scope);
        break;
      case 'settle':
      case 'cancel':
      case 'reset':
      case 'pause':
      case 'charge':
        event.done.reject(error);
        break;
      case 'read':
        event.fail(error);
        break;
      case 'decided':
      case 'failed':
        failed(ctx, event.batch, error, now, scope);
        break;
    }
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
    (ctx.leases === null || ctx.leases.size === 0) &&
    ctx.timer === null
  );
}

/**
 * endAll ends every waiter of a key whose actor failed (the system calls it when XState stopped
 * the actor on an error that got past {@link recover}): nobody is left waiting on a dead actor.
 */
export function endAll<G extends GrantHandle>(ctx: KeyContext<G>, error: Error): void {
  const waiting = ctx.queue.clear();
  const deciding = ctx.inFlight?.waiters ?? [];
  ctx.closed = true;
  ctx.inFlight = null;
  if (ctx.timer !== null) ctx.rt.clock.clearTimeout(ctx.timer);
  ctx.timer = null;
  ctx.timerAt = Infinity;
  for (const w of waiting) w.fail(error);
  for (const w of deciding) w.fail(error);
}
