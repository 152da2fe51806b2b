/**
 * keyLogic is the mailbox of one rate-limit key: XState actor logic (a custom `ActorLogic`, not a
 * statechart, because the hot path must not pay the interpreter per request; see DESIGN.md).
 *
 * Every mutation of the key goes through `transition`, one event at a time: acquire, timer tick,
 * abort, settle, cancel, release, read, reset, policy change, store answers and close. Time is read
 * once per event from the runtime's clock and passed down as `now`.
 *
 * The waiters of a key form one queue, in order of priority then arrival. The queue is decided
 * head first and stops at the first refusal, so a large request at the head is never overtaken
 * (and starved) by small ones behind it. A refused head arms one timer for the instant the store
 * says it fits; the same single timer also covers the earliest waiter deadline and lease expiry.
 *
 * Compromise: for speed the snapshot's context is mutated in place and the same snapshot object
 * is returned; observers that keep snapshots must copy what they need. The context is never
 * shared outside this actor.
 */
import { restate, type StoreDecision, type StoreGrant } from '../store.js';
import type { Done, GrantHandle, KeyContext, KeyEvent, KeyLogic, Scope } from './keyContext.js';
import {
  AcquireAbortedError,
  AcquireTimeoutError,
  CostExceedsCapacityError,
  InvalidArgumentError,
  LimiterClosedError,
  QueueFullError,
  StoreUnavailableError,
  isTollgateError,
} from '../errors.js';
import { CONCURRENCY } from '../limiter/decide.js';
import type { Ms, Policy, Units } from '../limiter/types.js';
import { compileCost } from '../limiter/validate.js';
import type { Waiter } from './waiter.js';
import { WaiterState, insertWaiter } from './waiter.js';

/** The most waiters of one key sent to an async store in one call (one Redis script run). */
const MAX_BATCH = 128;

/** The refusal `limit` of a `tryAcquire` that found waiters queued ahead of it. */
export const QUEUED = 'queue';

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
        queue: [],
        inFlight: null,
        leases: null,
        timer: null,
        timerAt: Infinity,
        wakeAt: Infinity,
        wakeHead: null,
        policyStale: false,
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
    switch (event.type) {
      case 'acquire':
        onAcquire(ctx, event, now, scope);
        break;
      case 'tick':
        ctx.timer = null;
        ctx.timerAt = Infinity;
        expireLeases(ctx, now, scope);
        pump(ctx, now, scope);
        break;
      case 'wake': // capacity freed elsewhere (another process): ask the store again
        ctx.wakeHead = null;
        pump(ctx, now, scope);
        break;
      case 'abort':
        if (event.waiter.queued) removeWaiter(ctx, event.waiter);
        if (event.waiter.fail(new AcquireAbortedError(event.waiter.signal?.reason))) {
          if (ctx.rt.observed.value)
            scope.emit({ type: 'aborted', key: ctx.key, id: event.waiter.id, at: now });
        }
        pump(ctx, now, scope);
        break;
      case 'settle':
        onSettle(ctx, event.grant, event.actual, event.done, now, scope);
        break;
      case 'cancel':
        onCancel(ctx, event.grant, event.done, now, scope);
        break;
      case 'release':
        freeSlot(ctx, event.grant, false, now, scope);
        pump(ctx, now, scope);
        break;
      case 'read':
        onRead(ctx, event, now);
        break;
      case 'reset':
        ctx.wakeHead = null;
        settleDone(ctx.rt.store.reset(ctx.storeKey, now), event.done, ctx, now, scope);
        if (ctx.rt.observed.value) scope.emit({ type: 'reset', key: ctx.key, at: now });
        pump(ctx, now, scope);
        break;
      case 'pause': {
        const { store } = ctx.rt;
        if (store.pause === undefined) {
          event.done.reject(
            new InvalidArgumentError(`tollgate: the ${store.name} store cannot pause a key`),
          );
          break;
        }
        settleDone(store.pause(ctx.storeKey, event.forMs, now), event.done, ctx, now, scope);
        pump(ctx, now, scope); // the head is refused with 'paused' and waits it out
        break;
      }
      case 'charge': {
        // Book `units` now, unconditionally (recalibration to a provider's remaining): a settle of
        // a grant that booked nothing.
        const { store, policy } = ctx.rt;
        if (event.units.length !== policy.limits.length) {
          event.done.resolve(); // computed under a policy replaced since: nothing to book
          break;
        }
        const none: StoreGrant = {
          id: 'charge',
          at: now,
          units: event.units.map(() => 0),
          slot: false,
        };
        settleDone(
          store.settle(ctx.storeKey, policy, none, event.units, now),
          event.done,
          ctx,
          now,
          scope,
        );
        pump(ctx, now, scope);
        break;
      }
      case 'policy':
        onPolicy(ctx, now, scope);
        break;
      case 'decided':
        ctx.inFlight = null;
        applyDecisions(ctx, event.batch, event.decisions, now, scope, event.policy);
        if (ctx.policyStale) onPolicy(ctx, now, scope);
        else pump(ctx, now, scope);
        break;
      case 'failed':
        ctx.inFlight = null;
        onStoreFailure(ctx, event.batch, event.error, now, scope);
        if (ctx.policyStale) onPolicy(ctx, now, scope);
        else pump(ctx, now, scope);
        break;
      case 'close':
        onClose(ctx);
        break;
    }
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
  const { queue } = ctx;
  const head = queue[0];
  const { store } = ctx.rt;
  // Someone waits ahead when the head has equal or higher priority; with an async store, only
  // once the store refused it (the others are just being decided, not waiting for capacity).
  const ahead =
    head !== undefined && head.priority >= w.priority && (store.sync || ctx.wakeHead === head);
  // The fast path: nobody ahead, a synchronous store, and the request fits or is a try.
  if (!ahead && store.sync && ctx.inFlight === null) {
    const first =
      store.decideOne !== undefined
        ? store.decideOne(ctx.storeKey, ctx.rt.policy, w, now, ctx)
        : (store.decide(ctx.storeKey, ctx.rt.policy, [w], 'queue', now) as StoreDecision[])[0]!;
    if (first.ok) {
      grantTo(ctx, w, first.grant, now, scope);
      return;
    }
    if (w.tryOnly) {
      refuseTry(ctx, w, first.retryAfterMs, first.limit, now, scope);
      return;
    }
    if (enqueue(ctx, w, now, scope) && queue[0] === w) {
      ctx.wakeAt = wakeFor(ctx, first, now);
      ctx.wakeHead = w;
    }
    if (w.wantsEta) w.etaMs = estimate(ctx, w, now);
    arm(ctx, now, scope);
    return;
  }
  if (w.tryOnly && ahead) {
    // The head's wake-up or deadline bounds when the try could pass; 0 when neither is known.
    const until = Math.min(ctx.wakeAt, head.deadline);
    refuseTry(ctx, w, until === Infinity ? 0 : Math.max(0, until - now), QUEUED, now, scope);
    return;
  }
  if (!enqueue(ctx, w, now, scope)) return;
  pump(ctx, now, scope);
  if (w.wantsEta && w.state === WaiterState.Pending) w.etaMs = estimate(ctx, w, now);
}

/** The wait a queued waiter can expect: the store simulates the queue ahead when it can. */
function estimate<G extends GrantHandle>(ctx: KeyContext<G>, w: Waiter<G>, now: Ms): Ms | null {
  const { store, policy } = ctx.rt;
  const i = ctx.queue.indexOf(w);
  if (i < 0) return null;
  if (store.estimate !== undefined) {
    return store.estimate(
      ctx.storeKey,
      policy,
      ctx.queue.slice(0, i + 1).map((q) => q.units),
      now,
    );
  }
  return i === 0 && ctx.wakeAt !== Infinity ? ctx.wakeAt - now : null;
}

function enqueue<G extends GrantHandle>(
  ctx: KeyContext<G>,
  w: Waiter<G>,
  now: Ms,
  scope: Scope<G>,
): boolean {
  if (ctx.queue.length >= ctx.rt.maxQueue) {
    w.fail(new QueueFullError(ctx.rt.maxQueue));
    return false;
  }
  insertWaiter(ctx.queue, w);
  w.queued = true;
  if (ctx.rt.observed.value)
    scope.emit({
      type: 'queued',
      key: ctx.key,
      id: w.id,
      queueLength: ctx.queue.length,
      at: now,
    });
  return true;
}

function refuseTry<G extends GrantHandle>(
  ctx: KeyContext<G>,
  w: Waiter<G>,
  retryAfterMs: Ms,
  limit: string,
  now: Ms,
  scope: Scope<G>,
): void {
  if (w.queued) removeWaiter(ctx, w);
  w.refuse({ retryAfterMs, limit });
  if (ctx.rt.observed.value)
    scope.emit({ type: 'refused', key: ctx.key, retryAfterMs, limit, at: now });
}

function grantTo<G extends GrantHandle>(
  ctx: KeyContext<G>,
  w: Waiter<G>,
  record: StoreGrant,
  now: Ms,
  scope: Scope<G>,
  policy: Policy = ctx.rt.policy,
): void {
  const grant = ctx.rt.makeGrant(ctx.key, ctx.storeKey, record, w.cost, policy);
  if (!w.succeed(grant)) {
    // The waiter ended (timeout, abort) while the store decided: an ended waiter holds nothing.
    grant.slotFreed = true;
    void Promise.resolve(ctx.rt.store.cancel(ctx.storeKey, policy, record, now)).catch(() => {});
    return;
  }
  if (record.slot && ctx.rt.leaseMs !== null) {
    (ctx.leases ??= new Map()).set(grant, now + ctx.rt.leaseMs);
    arm(ctx, now, scope); // the fast path returns without arming: the lease needs its timer
  }
  if (ctx.rt.observed.value)
    scope.emit({
      type: 'granted',
      key: ctx.key,
      id: record.id,
      units: record.units,
      waitedMs: now - w.arrivedAt,
      at: now,
    });
}

/**
 * pump decides the queue from its head. With a synchronous store it decides in place; with an
 * async one it sends the queue as one batch (one script call) unless a batch is already out, in
 * which case the answer's arrival pumps again.
 */
function pump<G extends GrantHandle>(ctx: KeyContext<G>, now: Ms, scope: Scope<G>): void {
  if (ctx.closed) return;
  // Deadlines hold even while a slow store is deciding: a waiter granted after it timed out
  // gives its grant straight back (see grantTo).
  expireWaiters(ctx, now, scope);
  const { queue } = ctx;
  const { store, policy } = ctx.rt;
  if (queue.length > 0 && ctx.inFlight === null) {
    if (store.sync) {
      const decisions = store.decide(ctx.storeKey, policy, queue, 'queue', now) as StoreDecision[];
      applyDecisions(ctx, queue.slice(0, decisions.length), decisions, now, scope);
    } else if (ctx.wakeHead !== queue[0] || ctx.wakeAt <= now) {
      // (A head the store refused is asked again only at its wake-up, or once capacity frees.)
      const batch = queue.slice(0, MAX_BATCH);
      ctx.inFlight = batch;
      const self = scope.self;
      Promise.resolve(store.decide(ctx.storeKey, policy, batch, 'queue', now, ctx)).then(
        (decisions) => {
          // Closed while the store decided: the waiters ended, so what was booked goes back.
          if (ctx.closed) giveBack(ctx, policy, decisions, now);
          else self.send({ type: 'decided', batch, decisions, policy });
        },
        (error: unknown) => {
          if (!ctx.closed) self.send({ type: 'failed', batch, error });
        },
      );
    }
  }
  arm(ctx, now, scope);
}

function applyDecisions<G extends GrantHandle>(
  ctx: KeyContext<G>,
  batch: readonly Waiter<G>[],
  decisions: readonly StoreDecision[],
  now: Ms,
  scope: Scope<G>,
  policy: Policy = ctx.rt.policy,
): void {
  ctx.wakeAt = Infinity;
  ctx.wakeHead = null;
  let blocked: StoreDecision | null = null;
  for (let i = 0; i < decisions.length; i++) {
    const d = decisions[i]!;
    const w = batch[i]!;
    if (d.ok) {
      if (w.queued) removeWaiter(ctx, w);
      grantTo(ctx, w, d.grant, now, scope, policy);
    } else if (w.tryOnly) {
      refuseTry(ctx, w, d.retryAfterMs, d.limit, now, scope);
    } else if (w.state === WaiterState.Pending) {
      ctx.wakeAt = wakeFor(ctx, d, now);
      ctx.wakeHead = w;
      blocked = d;
    }
  }
  // The head is blocked: tries queued behind it (they arrived while it was being decided) are
  // answered now, as a try arriving later would be, rather than left waiting.
  if (blocked !== null && !ctx.rt.store.sync) {
    const wait = blocked.ok
      ? 0
      : Math.max(0, Math.min(ctx.wakeAt, ctx.queue[0]?.deadline ?? Infinity) - now);
    for (const w of ctx.queue.slice()) {
      if (w.tryOnly && w !== ctx.wakeHead)
        refuseTry(ctx, w, wait === Infinity ? 0 : wait, QUEUED, now, scope);
    }
  }
}

/** giveBack cancels what a store granted to waiters that ended meanwhile (the key closed). */
function giveBack<G extends GrantHandle>(
  ctx: KeyContext<G>,
  policy: Policy,
  decisions: readonly StoreDecision[],
  now: Ms,
): void {
  for (const d of decisions) {
    if (d.ok)
      void Promise.resolve(ctx.rt.store.cancel(ctx.storeKey, policy, d.grant, now)).catch(() => {});
  }
}

/** The instant to ask again for a refused head. */
function wakeFor<G extends GrantHandle>(ctx: KeyContext<G>, d: StoreDecision, now: Ms): Ms {
  if (d.ok) return now;
  const at = now + Math.max(1, d.retryAfterMs);
  // A slot frees on release: this process hears of its own releases, not of other processes'.
  if (d.limit === CONCURRENCY && d.retryAfterMs === 0)
    return ctx.rt.store.sync ? Infinity : now + ctx.rt.pollMs;
  return ctx.rt.store.sync ? at : Math.min(at, now + ctx.rt.pollMs);
}

function expireWaiters<G extends GrantHandle>(ctx: KeyContext<G>, now: Ms, scope: Scope<G>): void {
  const { queue } = ctx;
  let kept = 0;
  for (let i = 0; i < queue.length; i++) {
    const w = queue[i]!;
    if (w.state === WaiterState.Pending && w.deadline <= now) {
      w.fail(new AcquireTimeoutError(w.timeoutMs));
      if (ctx.rt.observed.value) scope.emit({ type: 'timeout', key: ctx.key, id: w.id, at: now });
    } else if (w.state === WaiterState.Pending) {
      queue[kept++] = w;
    }
  }
  queue.length = kept;
}

function removeWaiter<G extends GrantHandle>(ctx: KeyContext<G>, w: Waiter<G>): void {
  const { queue } = ctx;
  // shift() for the head (the common case): splice would build an array of what it removed.
  if (queue[0] === w) queue.shift();
  else {
    const i = queue.indexOf(w);
    if (i >= 0) queue.splice(i, 1);
  }
  w.queued = false;
}

/** arm keeps the key's one timer on the earliest instant anything is due. */
function arm<G extends GrantHandle>(ctx: KeyContext<G>, now: Ms, scope: Scope<G>): void {
  let at = ctx.queue.length > 0 ? ctx.wakeAt : Infinity;
  for (const w of ctx.queue) if (w.deadline < at) at = w.deadline;
  if (ctx.leases !== null) for (const until of ctx.leases.values()) if (until < at) at = until;
  if (at === ctx.timerAt) return;
  const { clock } = ctx.rt;
  if (ctx.timer !== null) clock.clearTimeout(ctx.timer);
  ctx.timer = null;
  ctx.timerAt = at;
  if (at === Infinity) return;
  const self = scope.self;
  const fire = (): void => self.send({ type: 'tick' });
  // Waiters keep the process alive; a timer only for leases is housekeeping.
  const housekeeping = ctx.queue.length === 0 && clock.setHousekeepingTimeout !== undefined;
  ctx.timer = housekeeping
    ? clock.setHousekeepingTimeout!(fire, at - now)
    : clock.setTimeout(fire, at - now);
}

function expireLeases<G extends GrantHandle>(ctx: KeyContext<G>, now: Ms, scope: Scope<G>): void {
  if (ctx.leases === null) return;
  for (const [grant, until] of ctx.leases) {
    if (until <= now) {
      freeSlot(ctx, grant, true, now, scope);
      grant.leaseExpired?.();
    }
  }
}

function freeSlot<G extends GrantHandle>(
  ctx: KeyContext<G>,
  grant: G,
  expired: boolean,
  now: Ms,
  scope: Scope<G>,
): void {
  ctx.leases?.delete(grant);
  if (grant.slotFreed || !grant.record.slot) return;
  grant.slotFreed = true;
  ctx.wakeHead = null; // a slot is free: the head may fit
  void Promise.resolve(ctx.rt.store.release(ctx.storeKey, ctx.rt.policy, grant.record, now)).catch(
    (e: unknown) => {
      if (ctx.rt.observed.value)
        scope.emit({ type: 'storeError', key: ctx.key, error: asError(e), at: now });
    },
  );
  if (ctx.rt.observed.value)
    scope.emit({ type: 'released', key: ctx.key, id: grant.record.id, expired, at: now });
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
  ctx.wakeHead = null; // a refund may let the head in
  const before = grant.record;
  const r = store.settle(ctx.storeKey, policy, before, actual, now);
  grant.record = restate(before, actual);
  settleDone(r, done, ctx, now, scope);
  if (ctx.rt.observed.value)
    scope.emit({
      type: 'settled',
      key: ctx.key,
      id: before.id,
      estimated: before.units,
      actual,
      at: now,
    });
  pump(ctx, now, scope); // a refund may let the head in
}

function onCancel<G extends GrantHandle>(
  ctx: KeyContext<G>,
  grant: G,
  done: Done,
  now: Ms,
  scope: Scope<G>,
): void {
  ctx.leases?.delete(grant);
  ctx.wakeHead = null;
  const record = grant.slotFreed ? restate(grant.record, grant.record.units, false) : grant.record;
  grant.slotFreed = true;
  settleDone(ctx.rt.store.cancel(ctx.storeKey, ctx.rt.policy, record, now), done, ctx, now, scope);
  if (ctx.rt.observed.value)
    scope.emit({ type: 'cancelled', key: ctx.key, id: grant.record.id, at: now });
  pump(ctx, now, scope);
}

function settleDone<G extends GrantHandle>(
  r: void | Promise<void>,
  done: Done,
  ctx: KeyContext<G>,
  now: Ms,
  scope: Scope<G>,
): void {
  if (r === undefined) {
    done.resolve();
    return;
  }
  r.then(
    () => done.resolve(),
    (e: unknown) => {
      const error = asStoreError(e);
      if (ctx.rt.observed.value) scope.emit({ type: 'storeError', key: ctx.key, error, at: now });
      done.reject(error);
    },
  );
}

function onRead<G extends GrantHandle>(
  ctx: KeyContext<G>,
  event: Extract<KeyEvent<G>, { type: 'read' }>,
  now: Ms,
): void {
  const queued = ctx.queue.length + (ctx.inFlight?.length ?? 0);
  try {
    const r = ctx.rt.store.read(ctx.storeKey, ctx.rt.policy, now);
    if (r instanceof Promise)
      r.then(
        (x) => event.reply({ ...x, queued }),
        (e: unknown) => event.fail(asStoreError(e)),
      );
    else event.reply({ ...r, queued });
  } catch (e) {
    event.fail(asError(e));
  }
}

function onPolicy<G extends GrantHandle>(ctx: KeyContext<G>, now: Ms, scope: Scope<G>): void {
  // Waiters were compiled against the old policy: recompile, and end those that can never fit now.
  // Not while a batch is out: the store is deciding those waiters' units under the old policy
  // (the answer comes back here, and the recompile happens then).
  if (ctx.inFlight !== null) {
    ctx.policyStale = true;
    return;
  }
  ctx.policyStale = false;
  const { policy } = ctx.rt;
  for (const w of ctx.queue.slice()) {
    try {
      w.units = compileCost(policy, w.cost);
    } catch (e) {
      removeWaiter(ctx, w);
      w.fail(e instanceof CostExceedsCapacityError ? e : asError(e));
    }
  }
  ctx.wakeAt = now;
  ctx.wakeHead = null;
  pump(ctx, now, scope);
}

function onStoreFailure<G extends GrantHandle>(
  ctx: KeyContext<G>,
  batch: readonly Waiter<G>[],
  error: unknown,
  now: Ms,
  scope: Scope<G>,
): void {
  const e = asStoreError(error);
  if (ctx.rt.observed.value) scope.emit({ type: 'storeError', key: ctx.key, error: e, at: now });
  // Fail closed: every waiter of the failed batch ends with the store's error.
  for (const w of batch) {
    if (w.queued) removeWaiter(ctx, w);
    w.fail(e);
  }
}

function onClose<G extends GrantHandle>(ctx: KeyContext<G>): void {
  ctx.closed = true;
  if (ctx.timer !== null) ctx.rt.clock.clearTimeout(ctx.timer);
  ctx.timer = null;
  ctx.timerAt = Infinity;
  // Most keys have nobody waiting at close: build the error (and its stack) only for those that do.
  if (ctx.queue.length > 0 || ctx.inFlight !== null) {
    const error = new LimiterClosedError();
    for (const w of ctx.queue) w.fail(error);
    for (const w of ctx.inFlight ?? []) w.fail(error);
  }
  ctx.queue.length = 0;
  ctx.leases = null;
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

function asStoreError(e: unknown): Error {
  if (isTollgateError(e)) return e;
  return new StoreUnavailableError(asError(e).message, e);
}

/** isKeyIdle tells whether a key actor holds nothing worth keeping alive (no waiter, timer or lease). */
export function isKeyIdle<G extends GrantHandle>(ctx: KeyContext<G>): boolean {
  return (
    ctx.queue.length === 0 &&
    ctx.inFlight === null &&
    (ctx.leases === null || ctx.leases.size === 0) &&
    ctx.timer === null
  );
}
