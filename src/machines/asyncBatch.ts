/**
 * The batch in flight: with an async store (Redis) a key sends the head of its queue, up to
 * {@link MAX_BATCH} waiters, as one call, and sends nothing more until the answer is back. The
 * answer comes back through the mailbox as `decided` or `failed`, so it is applied in order with
 * everything else the key does. Waiters stay queued while they are decided (an abort or a
 * timeout still ends them; a grant that comes for an ended waiter is given back), and their units
 * stay as sent (`deciding`) even if the limits change meanwhile: the answer is applied under the
 * policy the batch was sent with.
 */
import { QueueFullError } from '../errors.js';
import type { Ms } from '../limiter/types.js';
import type { StoreDecision } from '../store.js';
import { compileFor, endWithError, grantTo, refuseOnce } from './grants.js';
import { type Batch, type GrantHandle, type KeyContext, type Scope } from './keyContext.js';
import { QUEUED } from './keyFacts.js';
import { asStoreError, fireAndForget, tellStoreError } from './storeOps.js';
import { askAgainNow, blocked, capacityFreed, forget } from './wakeSchedule.js';
import { WaiterState, type Waiter } from './waiter.js';

/** The most waiters of one key sent to an async store in one call (one Redis script run). */
export const MAX_BATCH = 128;

/**
 * The most waiters of a key with a concurrency limit in one call: each takes a slot, which costs
 * Redis a ZADD, and Redis blocks every client while a script runs (128 slotted requests took
 * ~1.3 ms of Redis CPU in the bench's "Redis script cost"; 64 stay under 1 ms).
 */
export const MAX_SLOTTED_BATCH = 64;

/** sendBatch sends the head of the queue to the store, unless every waiter there ended. */
export function sendBatch<G extends GrantHandle>(
  ctx: KeyContext<G>,
  now: Ms,
  scope: Scope<G>,
): void {
  const { store } = ctx.rt;
  const { policy } = ctx;
  const waiters: Waiter<G>[] = [];
  const most = policy.concurrency === null ? MAX_BATCH : MAX_SLOTTED_BATCH;
  for (const w of ctx.queue.take(most)) if (compileFor(ctx, w, now, scope)) waiters.push(w);
  if (waiters.length === 0) return;
  for (const w of waiters) w.deciding = true;
  const batch: Batch<G> = { waiters, policy };
  ctx.inFlight = batch;
  let answer: Promise<StoreDecision[]>;
  try {
    answer = Promise.resolve(store.decide(ctx.storeKey, policy, waiters, 'queue', now, ctx));
  } catch (e) {
    failed(ctx, batch, e, now, scope); // the store threw at once: the batch fails as if rejected
    askAgainNow(ctx, now); // and the rest of the queue is asked about at the next tick
    return;
  }
  const self = scope.self;
  answer.then(
    (decisions) => {
      // Closed while the store decided: the waiters ended, so what was booked goes back.
      if (ctx.closed) giveBack(ctx, batch, decisions, now, scope);
      else self.send({ type: 'decided', batch, decisions });
    },
    (error: unknown) => {
      if (!ctx.closed) self.send({ type: 'failed', batch, error });
    },
  );
}

/**
 * decided applies the store's answer: grants for the waiters it admitted, refusals for tries,
 * and the wake-up of the waiter it refused (decisions stop there: 'queue' mode). Waiters decided
 * once (tries, timeout 0) queued behind a refused head are answered now, as one arriving later
 * would be.
 */
export function decided<G extends GrantHandle>(
  ctx: KeyContext<G>,
  batch: Batch<G>,
  decisions: readonly StoreDecision[],
  now: Ms,
  scope: Scope<G>,
): void {
  ctx.inFlight = null;
  for (const w of batch.waiters) w.deciding = false;
  forget(ctx);
  let refusedHead = false;
  let refusedPriority = -Infinity;
  const n = Math.min(decisions.length, batch.waiters.length);
  let gaveBack = false;
  for (let i = 0; i < n; i++) {
    const d = decisions[i]!;
    const w = batch.waiters[i]!;
    if (d.ok) gaveBack = !grantTo(ctx, w, d.grant, now, scope, batch.policy) || gaveBack;
    else if (w.once) refuseOnce(ctx, w, d.retryAfterMs, d.limit, now, scope);
    else if (w.overflow && w.queued)
      endWithError(ctx, w, new QueueFullError(ctx.rt.maxQueue), now, scope);
    else if (w.state === WaiterState.Pending && w.queued) {
      blocked(ctx, w, d, now);
      refusedHead = true;
      refusedPriority = w.priority;
    }
  }
  // A grant given back (its waiter ended meanwhile) freed what the refusal counted: ask again.
  if (gaveBack) capacityFreed(ctx);
  // Waiters queued past maxQueue to be decided first, left undecided behind the refused head, are
  // refused now, as a synchronous store refuses them before they queue.
  if (refusedHead)
    for (const w of batch.waiters)
      if (w.overflow && w.queued && w !== ctx.wakeHead)
        endWithError(ctx, w, new QueueFullError(ctx.rt.maxQueue), now, scope);
  const { tries } = ctx.queue;
  if (refusedHead && tries !== null && tries.size > 0) {
    const until = Math.min(ctx.wakeAt, ctx.queue.head()?.deadline ?? Infinity);
    const wait = until === Infinity ? 0 : Math.max(0, until - now);
    for (const t of [...tries])
      // Only those the refused head outranks or ties: one of higher priority is decided next.
      if (t !== ctx.wakeHead && t.priority <= refusedPriority)
        refuseOnce(ctx, t, wait, QUEUED, now, scope);
  }
  // Waiters sent but not decided keep units of the batch's policy: bring them under the new one.
  if (batch.policy !== ctx.policy)
    for (const w of batch.waiters) if (w.queued) compileFor(ctx, w, now, scope);
}

/** failed ends every waiter of a batch the store could not decide (fail closed). */
export function failed<G extends GrantHandle>(
  ctx: KeyContext<G>,
  batch: Batch<G>,
  error: unknown,
  now: Ms,
  scope: Scope<G>,
): void {
  if (ctx.inFlight === batch) ctx.inFlight = null;
  const e = asStoreError(error);
  tellStoreError(ctx, scope, now, e);
  for (const w of batch.waiters) {
    w.deciding = false;
    endWithError(ctx, w, e, now, scope);
  }
}

/** giveBack cancels what the store granted to waiters that ended meanwhile (the key closed). */
function giveBack<G extends GrantHandle>(
  ctx: KeyContext<G>,
  batch: Batch<G>,
  decisions: readonly StoreDecision[],
  now: Ms,
  scope: Scope<G>,
): void {
  const { store } = ctx.rt;
  for (const d of decisions) {
    if (d.ok)
      fireAndForget(ctx, scope, now, () => store.cancel(ctx.storeKey, batch.policy, d.grant, now));
  }
}
