/**
 * tollgate/testing: fast-check arbitraries and a harness for property tests of an app's own code
 * against tollgate, on virtual time. fast-check is an optional peer: install it to use this entry.
 */
export {
  costArb,
  durationArb,
  policyArb,
  scheduleArb,
  type PolicyArbOptions,
  type ScheduledRequest,
} from './arbitraries.js';
export {
  runLimited,
  type HarnessContext,
  type HarnessEvent,
  type HarnessOptions,
  type HarnessReport,
  type ScheduledLimiter,
} from './harness.js';
