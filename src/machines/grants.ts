/**
 * How a key's waiters end, and what their grants hold: grant a waiter, refuse a try, end a waiter
 * with an error, recompile a waiter's cost under a new policy, and the slots grants hold under a
 * lease. Each ending takes the waiter out of the queue first (keyQueue.ts), so the queue never
 * holds an ended waiter, and an ended waiter holds nothing.
 */
import { lazyPlace, onLimiter } from '../describe.js';
import { AcquireTimeoutError, CostExceedsCapacityError } from '../errors.js';
import type { Ms, Policy } from '../limiter/types.js';
import { compileCost } from '../limiter/validate.js';
import type { StoreGrant } from '../store.js';
import { type GrantHandle, type KeyContext, type Scope } from './keyContext.js';
import { QUEUED } from './keyFacts.js';
import { asError, fireAndForget } from './storeOps.js';
import { capacityFreed } from './wakeSchedule.js';
import { WaiterState, type Waiter } from './waiter.js';

/**
 * grantTo ends `w` with a grant of `record`, booked under `policy`. A waiter that ended while the
 * store decided (timeout, abort, close) holds nothing: what the store booked is given back, and
 * grantTo returns false.
 */
export function grantTo<G extends GrantHandle>(
  ctx: KeyContext<G>,
  w: Waiter<G>,
  record: StoreGrant,
  now: Ms,
  scope: Scope<G>,
  policy: Policy = ctx.policy,
): boolean {
  if (w.queued) ctx.queue.remove(w);
  const grant = ctx.rt.makeGrant(ctx.key, ctx.storeKey, record, w.cost, policy);
  if (!w.succeed(grant)) {
    grant.slotFreed = true;
    const { store } = ctx.rt;
    fireAndForget(ctx, scope, now, () => store.cancel(ctx.storeKey, policy, record, now));
    return false;
  }
  if (record.slot && ctx.rt.leaseMs !== null) addLease(ctx, grant, now + ctx.rt.leaseMs);
  if (ctx.rt.observed.value)
    scope.emit({
      type: 'granted',
      key: ctx.key,
      id: record.id,
      units: record.units,
      waitedMs: now - w.arrivedAt,
      at: now,
    });
  return true;
}

/**
 * refuseOnce ends a waiter decided once that did not fit: a try with a refusal value, an acquire
 * with timeout 0 with AcquireTimeoutError. It books nothing.
 */
export function refuseOnce<G extends GrantHandle>(
  ctx: KeyContext<G>,
  w: Waiter<G>,
  retryAfterMs: Ms,
  limit: string,
  now: Ms,
  scope: Scope<G>,
): void {
  if (w.tryOnly) refuseTry(ctx, w, retryAfterMs, limit, now, scope);
  else endWithError(ctx, w, timedOut(ctx, w, limit), now, scope, 'timeout');
}

/**
 * timedOut is the error of `w`'s timeout: the limiter, the key, and what held it (`heldBy`, else
 * the store's last refusal if `w` was the head it refused, else the waiters ahead of it).
 */
function timedOut<G extends GrantHandle>(
  ctx: KeyContext<G>,
  w: Waiter<G>,
  heldBy?: string | null,
): AcquireTimeoutError {
  const by = heldBy !== undefined ? heldBy : ctx.wakeHead === w ? ctx.blockedBy : QUEUED;
  return new AcquireTimeoutError(w.timeoutMs, {
    limiter: ctx.rt.limiter,
    key: ctx.key,
    heldBy: by,
  });
}

/** refuseTry ends the try `w` with a refusal value (it books nothing). */
function refuseTry<G extends GrantHandle>(
  ctx: KeyContext<G>,
  w: Waiter<G>,
  retryAfterMs: Ms,
  limit: string,
  now: Ms,
  scope: Scope<G>,
): void {
  ctx.queue.remove(w);
  if (!w.refuse({ retryAfterMs, limit })) return;
  if (ctx.rt.observed.value)
    scope.emit({ type: 'refused', key: ctx.key, retryAfterMs, limit, at: now });
}

/** endWithError ends `w` with `error`; `fact` names the event emitted for it, if any. */
export function endWithError<G extends GrantHandle>(
  ctx: KeyContext<G>,
  w: Waiter<G>,
  error: Error,
  now: Ms,
  scope: Scope<G>,
  fact?: 'timeout' | 'aborted',
): void {
  ctx.queue.remove(w);
  if (w.fail(error) && fact !== undefined && ctx.rt.observed.value)
    scope.emit({ type: fact, key: ctx.key, id: w.id, at: now });
}

/** expireWaiters ends every queued waiter whose deadline is at or before `now`. */
export function expireWaiters<G extends GrantHandle>(
  ctx: KeyContext<G>,
  now: Ms,
  scope: Scope<G>,
): void {
  const expired = ctx.queue.expired(now);
  if (expired === null) return;
  for (const w of expired) endWithError(ctx, w, timedOut(ctx, w), now, scope, 'timeout');
}

/**
 * expireHeld ends the held acquires (see keyLogic.ts `hold`) whose deadline is at or before
 * `now`: a waiter that arrived while a batch was out times out on time, not at the answer.
 */
export function expireHeld<G extends GrantHandle>(
  ctx: KeyContext<G>,
  now: Ms,
  scope: Scope<G>,
): void {
  const { held } = ctx;
  if (held === null) return;
  for (let i = ctx.heldFrom; i < held.length; i++) {
    const e = held[i]!;
    if (e.type === 'acquire' && e.state === WaiterState.Pending && e.deadline <= now)
      endWithError(ctx, e, timedOut(ctx, e, null), now, scope, 'timeout');
  }
}

/**
 * compileFor brings `w`'s units under the policy in force, if they were compiled under another
 * one (a limit change while it waited, in the queue or behind a breaker). A cost that no longer
 * fits ends the waiter with the error; returns whether it is still pending.
 */
export function compileFor<G extends GrantHandle>(
  ctx: KeyContext<G>,
  w: Waiter<G>,
  now: Ms,
  scope: Scope<G>,
): boolean {
  const { policy } = ctx;
  if (w.policy === policy) return w.state === WaiterState.Pending;
  try {
    // The cost was valid when asked; only a smaller capacity can refuse it now.
    const at = lazyPlace(() => onLimiter(ctx.rt.limiter, w.call, ctx.key), 'options.cost');
    w.units = compileCost(policy, w.cost, at);
    w.policy = policy;
    return w.state === WaiterState.Pending;
  } catch (e) {
    endWithError(ctx, w, e instanceof CostExceedsCapacityError ? e : asError(e), now, scope);
    return false;
  }
}

/** addLease records that `grant`'s slot is given back at `until` unless released before. */
function addLease<G extends GrantHandle>(ctx: KeyContext<G>, grant: G, until: Ms): void {
  (ctx.leases ??= new Map()).set(grant, until);
  if (until < ctx.leaseNext) ctx.leaseNext = until; // (NaN stays NaN: computed at rearm)
}

/** dropLease forgets `grant`'s lease, if any. */
export function dropLease<G extends GrantHandle>(ctx: KeyContext<G>, grant: G): void {
  const until = ctx.leases?.get(grant);
  if (until === undefined) return;
  ctx.leases!.delete(grant);
  if (until === ctx.leaseNext) ctx.leaseNext = NaN; // the earliest left: computed again at rearm
}

/** expireLeases gives back the slot of every grant whose lease ended at or before `now`. */
export function expireLeases<G extends GrantHandle>(
  ctx: KeyContext<G>,
  now: Ms,
  scope: Scope<G>,
): void {
  if (ctx.leases === null || !(ctx.leaseNext <= now || Number.isNaN(ctx.leaseNext))) return;
  for (const [grant, until] of ctx.leases) {
    if (until <= now) {
      freeSlot(ctx, grant, true, now, scope);
      grant.leaseExpired?.();
    }
  }
}

/** freeSlot gives back the slot `grant` holds (once: later calls do nothing). */
export function freeSlot<G extends GrantHandle>(
  ctx: KeyContext<G>,
  grant: G,
  expired: boolean,
  now: Ms,
  scope: Scope<G>,
): void {
  dropLease(ctx, grant);
  if (grant.slotFreed || !grant.record.slot) return;
  grant.slotFreed = true;
  capacityFreed(ctx);
  const { store } = ctx.rt;
  const { policy } = ctx;
  const record = grant.record;
  fireAndForget(ctx, scope, now, () => store.release(ctx.storeKey, policy, record, now));
  if (ctx.rt.observed.value)
    scope.emit({ type: 'released', key: ctx.key, id: record.id, expired, at: now });
}
