/**
 * The wake schedule of a key: when its store is asked again, and the key's one timer.
 *
 * A head the store refused is asked again at the instant the store said it fits (`wakeAt`), or
 * as soon as capacity may have freed (a release, refund, reset, limit change, or another process's
 * news through `wake`). This module is the only writer of `wakeAt`, `wakeHead`, `timer` and
 * `timerAt` (but for a key that closes or fails, whose timer is cleared for good): the handlers say what happened ({@link blocked}, {@link capacityFreed}), and the key
 * logic re-arms the timer once, at the end of every event ({@link rearm}).
 */
import { MAX_TIMER_MS } from '../clock.js';
import { CONCURRENCY } from '../limiter/decide.js';
import type { Ms } from '../limiter/types.js';
import type { StoreDecision } from '../store.js';
import type { GrantHandle, KeyContext, Scope } from './keyContext.js';
import { WaiterState, type Waiter } from './waiter.js';

/** blocked records that the store refused `w` (the head) with `d`: it is asked again at wakeAt. */
export function blocked<G extends GrantHandle>(
  ctx: KeyContext<G>,
  w: Waiter<G>,
  d: StoreDecision,
  now: Ms,
): void {
  ctx.wakeAt = wakeFor(ctx, d, now);
  ctx.wakeHead = w;
  ctx.blockedBy = d.ok ? null : d.limit;
}

/** capacityFreed: something may have made room (a refund, a release, a reset): ask again. */
export function capacityFreed<G extends GrantHandle>(ctx: KeyContext<G>): void {
  ctx.wakeHead = null;
}

/** askAgainNow: the head and its wake-up are forgotten (a new policy, an answer to apply). */
export function askAgainNow<G extends GrantHandle>(ctx: KeyContext<G>, now: Ms): void {
  ctx.wakeAt = now;
  ctx.wakeHead = null;
}

/** forget: nothing is known of the head (the store's answers were all applied). */
export function forget<G extends GrantHandle>(ctx: KeyContext<G>): void {
  ctx.wakeAt = Infinity;
  ctx.wakeHead = null;
}

/**
 * shouldAsk tells whether an async store should be asked about the queue now: not while the head
 * is the waiter it refused last and that refusal's wake-up is still ahead.
 */
export function shouldAsk<G extends GrantHandle>(
  ctx: KeyContext<G>,
  head: Waiter<G>,
  now: Ms,
): boolean {
  return ctx.wakeHead !== head || ctx.wakeAt <= now;
}

/** isBlockedHead: `head` is the waiter the store refused last (others queue behind it). */
export function isBlockedHead<G extends GrantHandle>(ctx: KeyContext<G>, head: Waiter<G>): boolean {
  return ctx.wakeHead === head;
}

/** The instant to ask again for a head refused with `d`. */
function wakeFor<G extends GrantHandle>(ctx: KeyContext<G>, d: StoreDecision, now: Ms): Ms {
  if (d.ok) return now;
  const { store, pollMs } = ctx.rt;
  const at = now + Math.max(1, d.retryAfterMs);
  // A slot frees on release: this process hears of its own releases, not of other processes'.
  if (d.limit === CONCURRENCY && d.retryAfterMs === 0) return store.sync ? Infinity : now + pollMs;
  return store.sync ? at : Math.min(at, now + pollMs);
}

/**
 * rearm keeps the key's one timer on the earliest instant anything is due: the head's wake-up,
 * a waiter's deadline, a lease's end. Called once at the end of every event; O(1) but for the
 * leases' earliest end after one ended.
 */
export function rearm<G extends GrantHandle>(ctx: KeyContext<G>, now: Ms, scope: Scope<G>): void {
  // A refused head that has ended (aborted, timed out) is no head again: forgetting it changes no
  // answer (any other head is asked anyway) and lets it go (the last of 1,000 aborted waiters
  // was kept by the key until its next refusal).
  if (ctx.wakeHead !== null && ctx.wakeHead.state !== WaiterState.Pending) ctx.wakeHead = null;
  const { queue } = ctx;
  // While a batch is out, its answer re-opens the question: no wake-up until then.
  let at = queue.size > 0 && ctx.inFlight === null ? ctx.wakeAt : Infinity;
  const deadline = queue.nextDeadline();
  if (deadline < at) at = deadline;
  if (ctx.held !== null) {
    // Waiters held for a batch's answer keep their deadlines too (grants.ts expireHeld).
    for (let i = ctx.heldFrom; i < ctx.held.length; i++) {
      const e = ctx.held[i]!;
      if (e.type === 'acquire' && e.state === WaiterState.Pending && e.deadline < at)
        at = e.deadline;
    }
  }
  if (ctx.leases !== null) {
    if (Number.isNaN(ctx.leaseNext)) {
      ctx.leaseNext = Infinity;
      for (const until of ctx.leases.values()) if (until < ctx.leaseNext) ctx.leaseNext = until;
    }
    if (ctx.leaseNext < at) at = ctx.leaseNext;
  }
  if (ctx.closed) at = Infinity;
  if (at === ctx.timerAt) return;
  const { clock } = ctx.rt;
  if (ctx.timer !== null) clock.clearTimeout(ctx.timer);
  ctx.timer = null;
  ctx.timerAt = at;
  if (at === Infinity) return;
  const self = scope.self;
  const fire = (): void => self.send({ type: 'tick' });
  // No clock is asked for more than Node's timers take: a longer wait ticks early, finds nothing
  // due, and is re-armed for the rest.
  const ms = Math.min(MAX_TIMER_MS, Math.max(0, at - now));
  // Waiters keep the process alive; a timer only for leases is housekeeping.
  const housekeeping =
    queue.size === 0 && ctx.held === null && clock.setHousekeepingTimeout !== undefined;
  ctx.timer = housekeeping ? clock.setHousekeepingTimeout!(fire, ms) : clock.setTimeout(fire, ms);
}

/** The timer fired: it is no longer armed. */
export function timerFired<G extends GrantHandle>(ctx: KeyContext<G>): void {
  ctx.timer = null;
  ctx.timerAt = Infinity;
}
