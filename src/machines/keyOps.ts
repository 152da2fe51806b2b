/**
 * The key's operations other than admission, each applied in mailbox order: settle, cancel and
 * charge (what a grant books), read, a policy change, close, and ending every waiter of an actor
 * that failed. Store calls go through storeOps.ts, so a store that fails fails only the caller.
 */
import { LimiterClosedError } from '../errors.js';
import type { Ms, Policy, Units } from '../limiter/types.js';
import { restate, type StoreGrant } from '../store.js';
import { compileFor, dropLease } from './grants.js';
import type { Done, GrantHandle, KeyContext, KeyEvent, Scope } from './keyContext.js';
import { asStoreError, storeCall } from './storeOps.js';
import { askAgainNow, capacityFreed } from './wakeSchedule.js';

export function onSettle<G extends GrantHandle>(
  ctx: KeyContext<G>,
  grant: G,
  actual: Units,
  done: Done,
  now: Ms,
  scope: Scope<G>,
): void {
  const { store } = ctx.rt;
  const { policy } = ctx;
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

export function onCancel<G extends GrantHandle>(
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
  const { store } = ctx.rt;
  const { policy } = ctx;
  storeCall(ctx, scope, now, done, () => store.cancel(ctx.storeKey, policy, record, now));
  if (ctx.rt.observed.value)
    scope.emit({ type: 'cancelled', key: ctx.key, id: grant.record.id, at: now });
}

/**
 * charge books `units` now, unconditionally (recalibration to a provider's remaining): the
 * settle of a grant that booked nothing.
 */
export function onCharge<G extends GrantHandle>(
  ctx: KeyContext<G>,
  units: Units,
  done: Done,
  now: Ms,
  scope: Scope<G>,
): void {
  const { store } = ctx.rt;
  const { policy } = ctx;
  if (units.length !== policy.limits.length) {
    done.resolve(); // computed under a policy replaced since: nothing to book
    return;
  }
  const none: StoreGrant = { id: 'charge', at: now, units: units.map(() => 0), slot: false };
  if (!storeCall(ctx, scope, now, done, () => store.settle(ctx.storeKey, policy, none, units, now)))
    return;
  if (ctx.rt.observed.value) scope.emit({ type: 'charged', key: ctx.key, units, at: now });
}

export function onRead<G extends GrantHandle>(
  ctx: KeyContext<G>,
  event: Extract<KeyEvent<G>, { type: 'read' }>,
  now: Ms,
): void {
  const queued = ctx.queue.size;
  try {
    const r = ctx.rt.store.read(ctx.storeKey, ctx.policy, now);
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
 * A new policy (the one `setLimits` put in force when it sent the event, so two changes in a
 * row are each taken in turn): queued waiters are compiled under it (one whose cost no longer fits any capacity
 * ends with CostExceedsCapacityError), and the head is asked about again. Waiters an async store
 * is deciding keep their units until its answer (asyncBatch.decided compiles them then).
 */
export function onPolicy<G extends GrantHandle>(
  ctx: KeyContext<G>,
  policy: Policy,
  now: Ms,
  scope: Scope<G>,
): void {
  ctx.policy = policy;
  for (const w of [...ctx.queue]) if (!w.deciding) compileFor(ctx, w, now, scope);
  askAgainNow(ctx, now);
}

/** onClose ends every waiter and every held event of the key with LimiterClosedError. */
export function onClose<G extends GrantHandle>(ctx: KeyContext<G>): void {
  ctx.closed = true;
  // Most keys have nobody waiting at close: build the error (and its stack) only for those that do.
  const waiting = ctx.queue.clear();
  const deciding = ctx.inFlight?.waiters ?? [];
  ctx.inFlight = null;
  if (waiting.length > 0 || deciding.length > 0 || ctx.held !== null) {
    const error = new LimiterClosedError();
    for (const w of waiting) w.fail(error);
    for (const w of deciding) w.fail(error);
    endHeld(ctx, error);
  }
  ctx.leases = null;
  ctx.leaseNext = Infinity;
}

/**
 * endHeld ends the events held for a batch's answer that will not come: waiters fail, callers
 * awaiting an operation get `error`; a release has nobody to tell.
 */
function endHeld<G extends GrantHandle>(ctx: KeyContext<G>, error: Error): void {
  const held = ctx.held?.slice(ctx.heldFrom) ?? [];
  ctx.held = null;
  ctx.heldFrom = 0;
  for (const e of held) if (!failCaller(e, error) && e.type === 'acquire') e.fail(error);
}

/**
 * failCaller ends the caller awaiting `event` (an operation with `done`, or a read) with `error`;
 * returns false for an event without such a caller (an acquire is the caller's own waiter).
 */
export function failCaller<G extends GrantHandle>(event: KeyEvent<G>, error: Error): boolean {
  switch (event.type) {
    case 'settle':
    case 'cancel':
    case 'reset':
    case 'pause':
    case 'charge':
      event.done.reject(error);
      return true;
    case 'read':
      event.fail(error);
      return true;
    case 'abort':
      // A reservation's cancel: its waiter ends (closed, failed) holding nothing; the cancel is done.
      event.done?.resolve();
      return false;
    default:
      return false;
  }
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
  endHeld(ctx, error);
  if (ctx.timer !== null) ctx.rt.clock.clearTimeout(ctx.timer);
  ctx.timer = null;
  ctx.timerAt = Infinity;
  for (const w of waiting) w.fail(error);
  for (const w of deciding) w.fail(error);
}
