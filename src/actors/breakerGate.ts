/**
 * The breaker gate: with a circuit breaker on a limiter, a waiter passes the key's breaker
 * before it queues. The breaker admits first (fail fast, or wait for half-open), then the waiter
 * is dispatched to its key's mailbox; the grant carries the breaker's permit, and a waiter that
 * ends without a grant (refused try, timeout, abort, failure, close) gives the permit back.
 */
import { CircuitOpenError } from '../breaker/errors.js';
import type { BreakerPermit } from '../breaker/permit.js';
import type { LimiterBreaker } from './options.js';
import { AcquireTimeoutError } from '../errors.js';
import { WaiterState, type Waiter } from '../machines/waiter.js';
import type { SystemCore } from './core.js';
import type { Grant } from './grant.js';
import { BREAKER, type TryResult } from './options.js';

/** Hands a waiter to its key's mailbox; never throws (a failure ends the waiter). */
type Dispatch = (w: Waiter<Grant>) => void;

/**
 * acquireThroughBreaker: `acquire` on a limiter with a breaker. Whatever fails on the way (the
 * system closed while it waited, say), the waiter ends: its abort listener is detached and it
 * holds nothing.
 */
export async function acquireThroughBreaker(
  core: SystemCore,
  place: { readonly limiter: string; readonly key: string },
  w: Waiter<Grant>,
  options: LimiterBreaker,
  dispatch: Dispatch,
): Promise<Grant> {
  try {
    return await admitThenQueue(core, place, w, options, dispatch);
  } catch (e) {
    w.fail(e instanceof Error ? e : new Error(String(e)));
    throw e;
  }
}

async function admitThenQueue(
  core: SystemCore,
  place: { readonly limiter: string; readonly key: string },
  w: Waiter<Grant>,
  options: LimiterBreaker,
  dispatch: Dispatch,
): Promise<Grant> {
  const breaker = core.breaker(`${place.limiter}/${place.key}`, options);
  const clock = core.clock;
  const deadline = w.timeoutMs === Infinity ? Infinity : clock.now() + w.timeoutMs;
  const timedOut = (): AcquireTimeoutError =>
    new AcquireTimeoutError(w.timeoutMs, { ...place, heldBy: 'breaker' });
  for (;;) {
    const r = breaker.tryEnter();
    if (r.ok) return (await dispatchWith(w, r.permit, dispatch))!;
    if (options.whenOpen === 'fail') {
      w.fail(new CircuitOpenError(breaker.name, r.state, r.retryAfterMs));
      return w.promise();
    }
    const left = deadline - clock.now();
    if (left <= 0) {
      w.fail(timedOut());
      return w.promise();
    }
    // Open: until half-open; half-open with every probe out: until a probe ends or it changes.
    const waited = breaker.waitForPermit(w.signal);
    let timer: unknown = null;
    try {
      await Promise.race([
        waited,
        new Promise<never>((_, reject) => {
          if (left !== Infinity) timer = clock.setTimeout(() => reject(timedOut()), left);
        }),
      ]);
    } catch (e) {
      w.fail(e instanceof Error ? e : new Error(String(e)));
      return w.promise();
    } finally {
      if (timer !== null) clock.clearTimeout(timer);
    }
  }
}

/** tryThroughBreaker: a try on a limiter with a breaker; refused with limit `'breaker'` while it admits no call. */
export async function tryThroughBreaker(
  core: SystemCore,
  name: string,
  w: Waiter<Grant>,
  options: LimiterBreaker,
  dispatch: Dispatch,
): Promise<TryResult> {
  const r = core.breaker(name, options).tryEnter();
  if (!r.ok) return { ok: false, retryAfterMs: r.retryAfterMs, limit: BREAKER };
  const grant = await dispatchWith(w, r.permit, dispatch);
  return grant === undefined ? { ok: false, ...w.refusal! } : { ok: true, grant };
}

/** Queues `w` admitted by `permit`; the grant carries the permit, an ending without one returns it. */
async function dispatchWith(
  w: Waiter<Grant>,
  permit: BreakerPermit,
  dispatch: Dispatch,
): Promise<Grant | undefined> {
  dispatch(w);
  try {
    const grant =
      w.state === WaiterState.Granted
        ? w.grant!
        : w.state === WaiterState.Refused
          ? undefined
          : await w.promise();
    if (grant === undefined) permit.cancel();
    else grant.permit = permit;
    return grant;
  } catch (e) {
    permit.cancel();
    throw e;
  }
}
