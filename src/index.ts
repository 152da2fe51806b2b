/**
 * tollgate: a rate-limiting runtime for code that calls rate-limited services.
 * Public surface: explicit named re-exports only.
 */
export { createLimiterSystem, LimiterSystem } from './actors/system.js';
export type { LimiterSystemOptions, SystemSnapshot } from './actors/system.js';
export type { InspectionEvent, Inspector } from './actors/systemOptions.js';
export { Limiter } from './actors/limiter.js';
export type {
  AcquireOptions,
  TryAcquireOptions,
  RunOptions,
  TryResult,
  Reservation,
  LimiterOptions,
} from './actors/limiter.js';
export { Grant } from './actors/grant.js';
export { MAX_TIMER_MS, systemClock, VirtualClock } from './clock.js';
export type { Clock, TimerHandle } from './clock.js';
export type {
  Store,
  StoreRequest,
  StoreGrant,
  StoreDecision,
  BatchMode,
  KeyReading,
  StoreDataLoss,
  MaybePromise,
} from './store.js';
export { memoryStore, MemoryStore } from './memory/memoryStore.js';
export type { MemorySnapshot } from './memory/memoryStore.js';
export { TollgateEmitter } from './observe/events.js';
export type * from './observe/events.js';
export type { KeyStats, StatsOptions } from './observe/stats.js';
export type {
  LimiterStats,
  LimiterStatsOptions,
  LimitUse,
  SystemStats,
} from './observe/limiterStats.js';
export {
  TollgateError,
  isTollgateError,
  InvalidArgumentError,
  CostExceedsCapacityError,
  AcquireTimeoutError,
  AcquireAbortedError,
  QueueFullError,
  TooManyKeysError,
  LimiterClosedError,
  StoreUnavailableError,
  StoreRejectedError,
  GrantStateError,
  InternalError,
  TokenizerUnavailableError,
} from './errors.js';
export type { TollgateErrorCode } from './errors.js';
export {
  decide,
  advance,
  initialState,
  isIdle,
  rebase,
  refund,
  settle,
  release,
  read,
  compilePolicy,
  compileCost,
  parseDuration,
  formatMs,
  CONCURRENCY,
} from './limiter/index.js';
export type * from './limiter/types.js';
export type { Decision, Granted, Refused } from './limiter/decide.js';
export type { BreakerOptions, ProviderSignal } from './actors/limiter.js';
export type { CallOutcome } from './actors/grant.js';
export { CircuitBreaker, BreakerRegistry, CircuitOpenError } from './breaker/index.js';
export type {
  BreakerPermit,
  TryEnterResult,
  BreakerStateChange,
  BreakerEvents,
  BreakerStats,
  BreakerState,
  BreakerPolicySpec,
  FailureRateSpec,
} from './breaker/index.js';
export {
  parseRateLimitHeaders,
  feedbackFromResponse,
  parseGoDuration,
  parseRetryAfter,
} from './llm/headers.js';
export type { HeaderSource, ProviderFeedback, ProviderLimit, Provider } from './llm/headers.js';
export { PAUSED } from './store.js';
export { BREAKER } from './actors/limiter.js';
export { QUEUED } from './machines/keyFacts.js';
export { limitedFetch } from './llm/fetch.js';
export type { LimitedFetchOptions } from './llm/fetch.js';
export {
  estimateRequestCost,
  estimateTokens,
  estimateTokensAsync,
  loadTokenizer,
  projectCost,
  defaultTokenizer,
  DEFAULT_MAX_OUTPUT_TOKENS,
  IMAGE_TOKENS,
  FILE_PAGE_TOKENS,
  AUDIO_BYTES_PER_TOKEN,
} from './llm/estimate.js';
export type { Tokenizer, TokenEstimator, TokenEstimate } from './llm/estimate.js';
export { usageFromBody, usageFromObject, costFromUsage, SseUsageReader } from './llm/usage.js';
export type { TokenUsage } from './llm/usage.js';
