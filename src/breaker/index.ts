/**
 * Circuit breakers, one per provider × API key: closed → open → half-open → closed. Public names
 * only; src/index.ts may re-export this list as it is.
 */
export { CircuitBreaker } from './breaker.js';
export type { TryEnterResult, BreakerStateChange, BreakerEvents, BreakerStats } from './breaker.js';
export type { BreakerPermit } from './permit.js';
export { BreakerRegistry } from './registry.js';
export { CircuitOpenError } from './errors.js';
export { compileBreakerPolicy, openDurationMs, WINDOW_BUCKETS } from './policy.js';
export type {
  BreakerPolicySpec,
  FailureRateSpec,
  BreakerPolicy,
  FailureRate,
  BreakerState,
} from './policy.js';
