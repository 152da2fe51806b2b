/**
 * tollgate/xstate: a limiter as XState actor logic, for apps whose agents are XState machines.
 * An entry of its own so that the main entry's declarations never name XState's types.
 */
export {
  limiterActor,
  type AbortedReply,
  type AcquireRequest,
  type CancelRequest,
  type FailedReply,
  type GrantedReply,
  type LimiterActorLogic,
  type LimiterReply,
  type LimiterRequest,
  type RefusedReply,
  type ReleaseRequest,
  type SettleRequest,
  type TimeoutReply,
  type TryAcquireRequest,
} from './limiterActor.js';
