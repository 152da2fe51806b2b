/**
 * How the Redis store tells a refusal from an outage when a script call fails. Redis refusing the
 * call itself (an error reply the script raised, or a bad argument: `ReplyError` in ioredis) is an
 * answer: the call rejects with StoreRejectedError, and Redis is asked again at once. Anything else
 * (a timeout, a lost connection, an error reply that means Redis cannot serve now) is an outage:
 * the call rejects with StoreUnavailableError, and the store answers by its `onUnavailable` policy
 * for `retryInterval`.
 */
import { StoreRejectedError, StoreUnavailableError, isTollgateError } from '../errors.js';

/**
 * storeError is what a script call for `op` that failed with `e` rejects with, and whether the
 * failure is an outage (the store then marks Redis down). `timedOut`: the call got no answer in
 * time, which is an outage whatever `e` is. A tollgate error (the timeout's own) is passed on as
 * it is; any other outage becomes a StoreUnavailableError with `e` as its cause.
 */
export function storeError(
  op: string,
  e: unknown,
  timedOut: boolean,
): { readonly error: unknown; readonly outage: boolean } {
  if (!timedOut && isScriptError(e)) {
    return { error: new StoreRejectedError(op, e.message, e), outage: false };
  }
  if (isTollgateError(e)) return { error: e, outage: true };
  return {
    error: new StoreUnavailableError(e instanceof Error ? e.message : String(e), e),
    outage: true,
  };
}

/**
 * The first word of a Redis error reply that means Redis cannot serve now (loading, busy with a
 * long script, a replica or cluster not ready, out of memory, not authorised): an outage, not a
 * refusal of the call.
 */
const OUTAGE_CODES = new Set([
  'LOADING',
  'BUSY',
  'MASTERDOWN',
  'READONLY',
  'CLUSTERDOWN',
  'TRYAGAIN',
  'NOREPLICAS',
  'MISCONF',
  'OOM',
  'NOAUTH',
  'WRONGPASS',
  'NOPERM',
  'NOSCRIPT',
  'MOVED',
  'ASK',
]);

/**
 * isScriptError tells whether `e` is Redis refusing the call itself (an error reply the script
 * raised, or a bad argument: `ReplyError` in ioredis) rather than Redis being unable to serve.
 * Compromise: the line is drawn by the reply's code (see {@link OUTAGE_CODES}); a reply with
 * another code is taken for a refusal.
 */
function isScriptError(e: unknown): e is Error {
  if (!(e instanceof Error) || e.name !== 'ReplyError') return false;
  const code = /^[A-Z]+/.exec(e.message)?.[0];
  return code === undefined || !OUTAGE_CODES.has(code);
}
