/**
 * How the key logic calls its store for everything but decide: each call is guarded, so a store
 * that throws or rejects fails only the operation's caller, with a typed error, and the key goes
 * on working. A failure is also told as a `storeError` event.
 */
import { InternalError, StoreUnavailableError, isTollgateError } from '../errors.js';
import type { Ms } from '../limiter/types.js';
import type { Done, GrantHandle, KeyContext, Scope } from './keyContext.js';

/**
 * storeCall runs `call` (a store operation) and ends `done` with its outcome: resolved when the
 * store applied it, rejected with a typed error when it threw or rejected. Returns false when the
 * store threw synchronously (nothing was applied).
 */
export function storeCall<G extends GrantHandle>(
  ctx: KeyContext<G>,
  scope: Scope<G>,
  now: Ms,
  done: Done,
  call: () => void | Promise<void>,
): boolean {
  let r: void | Promise<void>;
  try {
    r = call();
  } catch (e) {
    const error = asStoreError(e);
    tellStoreError(ctx, scope, now, error);
    done.reject(error);
    return false;
  }
  if (r === undefined) {
    done.resolve();
    return true;
  }
  r.then(
    () => done.resolve(),
    (e: unknown) => {
      const error = asStoreError(e);
      tellStoreError(ctx, scope, now, error);
      done.reject(error);
    },
  );
  return true;
}

/** fireAndForget runs a store operation nobody awaits (a release, a give-back); failures are told. */
export function fireAndForget<G extends GrantHandle>(
  ctx: KeyContext<G>,
  scope: Scope<G>,
  now: Ms,
  call: () => void | Promise<void>,
): void {
  storeCall(ctx, scope, now, IGNORED, call);
}

const IGNORED: Done = { resolve() {}, reject() {} };

/** tellStoreError emits a `storeError` fact when anybody listens. */
export function tellStoreError<G extends GrantHandle>(
  ctx: KeyContext<G>,
  scope: Scope<G>,
  now: Ms,
  error: Error,
): void {
  if (ctx.rt.observed.value) scope.emit({ type: 'storeError', key: ctx.key, error, at: now });
}

/** asError makes an Error of anything thrown. */
export function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/** asStoreError: a store's failure as callers see it (tollgate errors pass as they are). */
export function asStoreError(e: unknown): Error {
  if (isTollgateError(e)) return e;
  return new StoreUnavailableError(asError(e).message, e);
}

/** asInternalError: a failure of the key logic itself, as callers see it. */
export function asInternalError(what: string, e: unknown): Error {
  if (isTollgateError(e)) return e;
  return new InternalError(what, e);
}
