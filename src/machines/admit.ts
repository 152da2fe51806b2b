/**
 * Admission: how a key decides its waiters. `onAcquire` takes a new waiter (the synchronous
 * store's fast path grants it or refuses a try at once), and `serve` decides the queue from its
 * head after every event: a synchronous store head by head until one is refused, an async store
 * as one batch (asyncBatch.ts). A head the store refused is asked again only at its wake-up or
 * once capacity may have freed (wakeSchedule.ts).
 */
import { QueueFullError, LimiterClosedError } from '../errors.js';
import type { Ms, Units } from '../limiter/types.js';
import type { StoreDecision } from '../store.js';
import { sendBatch } from './asyncBatch.js';
import { compileFor, endWithError, expireWaiters, grantTo, refuseOnce } from './grants.js';
import { type GrantHandle, type KeyContext, type Scope } from './keyContext.js';
import { QUEUED } from './keyFacts.js';
import { asStoreError, tellStoreError } from './storeOps.js';
import { blocked, isBlockedHead, shouldAsk } from './wakeSchedule.js';
import { WaiterState, type Waiter } from './waiter.js';

/**
 * serve decides the queue from its head (step 3). A synchronous store decides in place, head by
 * head, until one is refused; an async store gets the head as one batch, unless one is out or
 * the head is the waiter it refused last and its wake-up is still ahead.
 */
export function serve<G extends GrantHandle>(ctx: KeyContext<G>, now: Ms, scope: Scope<G>): void {
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
  const { store } = ctx.rt;
  const { policy } = ctx;
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

export function onAcquire<G extends GrantHandle>(
  ctx: KeyContext<G>,
  w: Waiter<G>,
  now: Ms,
  scope: Scope<G>,
): void {
  if (w.state !== WaiterState.Pending) return; // aborted before the mailbox got to it
  arrive(w, now);
  if (ctx.closed) {
    w.fail(new LimiterClosedError());
    return;
  }
  // Compiled before a limit change (e.g. while it waited behind a breaker): compile it again.
  if (w.policy !== ctx.policy && !compileFor(ctx, w, now, scope)) return;
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
    if (w.once) {
      refuseOnce(ctx, w, d.retryAfterMs, d.limit, now, scope);
      return;
    }
    if (!enqueue(ctx, w, now, scope)) return;
    if (queue.head() === w) blocked(ctx, w, d, now);
    if (w.wantsEta) w.etaMs = estimate(ctx, w, now);
    return;
  }
  if (w.once && ahead) {
    // The head's wake-up or deadline bounds when the try could pass; 0 when neither is known.
    const until = Math.min(ctx.wakeAt, head.deadline);
    refuseOnce(ctx, w, until === Infinity ? 0 : Math.max(0, until - now), QUEUED, now, scope);
    return;
  }
  // With an async store a waiter nobody is ahead of is queued to be decided: a full queue does not
  // refuse it before the store did (a synchronous store decides it first), nor a once-waiter.
  if (!enqueue(ctx, w, now, scope, !ahead)) return;
  if (w.wantsEta) {
    serve(ctx, now, scope); // decide first: a reservation that fits at once has no wait
    if (w.state === WaiterState.Pending) w.etaMs = estimate(ctx, w, now);
  }
}

/**
 * arrive stamps the waiter's arrival and deadline, once (a waiter held while a batch was in
 * flight arrived when it was held). Timeout 0 is decided once instead (`once`): a deadline of
 * `now` would expire it unasked.
 */
export function arrive<G extends GrantHandle>(w: Waiter<G>, now: Ms): void {
  if (w.arrived) return;
  w.arrived = true;
  w.arrivedAt = now;
  if (w.timeoutMs !== Infinity && w.timeoutMs > 0) w.deadline = now + w.timeoutMs;
}

function enqueue<G extends GrantHandle>(
  ctx: KeyContext<G>,
  w: Waiter<G>,
  now: Ms,
  scope: Scope<G>,
  toDecide = false,
): boolean {
  const { queue } = ctx;
  if (queue.size >= ctx.rt.maxQueue) {
    if (!toDecide) {
      w.fail(new QueueFullError(ctx.rt.maxQueue));
      return false;
    }
    w.overflow = !w.once; // a refusal ends it with QueueFullError (asyncBatch.decided)
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
  const { store } = ctx.rt;
  const { policy } = ctx;
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
