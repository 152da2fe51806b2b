/**
 * breakerMachine is the circuit breaker as a statechart: closed, open, halfOpen.
 *
 *            a failure trips the policy          the open time elapses
 *   closed ──────────────────────────────▶ open ───────────────────────▶ halfOpen
 *     ▲                                     ▲                              │  │
 *     │                                     └──────── a probe fails ───────┘  │
 *     └──────────────── successesToClose probes succeed ──────────────────────┘
 *
 * - closed: every call is admitted. Outcomes are counted: failures in a row, and (with a
 *   failure-rate rule) calls and failures in a rolling window of time buckets. When the policy
 *   trips, the breaker opens.
 * - open: every call is refused, with the time left. After the open duration the breaker goes
 *   half-open on its own, through an XState delayed transition (`after: { openFor }`) that runs on
 *   the clock handed to `createActor`, so tests drive it with a VirtualClock.
 * - halfOpen: at most `probes` probe calls are out at once; more are refused. `successesToClose`
 *   probe successes close the breaker; the first probe failure re-opens it for longer
 *   (`openFor × backoffFactor^reopens`, capped at `maxOpenFor`). Closing resets the backoff.
 *
 * Every call is asked for with `PROBE` (a request to make one call) and answered by an emitted
 * `admitted` or `refused` fact; its outcome comes back as `SUCCESS`, `FAILURE` or `CANCEL`. Events
 * carry `now`; the machine reads no clock. Each state entry starts a new `epoch`, and a permit
 * remembers the epoch it was admitted in: an outcome from an earlier epoch (a call admitted while
 * closed that fails after the breaker opened, a probe that ends after the breaker closed) is not
 * counted, so stale news never re-opens or closes the breaker. A probe's slot, however, is held
 * until the probe ends whatever the epoch: half-open never has more than `probes` probe calls in
 * flight, counting those left over from an earlier half-open period.
 */
import { assertEvent, assign, emit, setup } from 'xstate';
import type { Ms } from '../limiter/types.js';
import { openDurationMs, type BreakerPolicy } from './policy.js';
import {
  EMPTY_WINDOW,
  rateReached,
  recordCall,
  windowTotals,
  type RollingWindow,
} from './window.js';

export type { BreakerState } from './policy.js';

/** BreakerContext is the statechart's data. Changed only through `assign`. */
export interface BreakerContext {
  readonly policy: BreakerPolicy;
  /** Bumped on every state entry; outcomes of permits from another epoch are not counted. */
  readonly epoch: number;
  /** Failures in a row in the current closed period; a counted success resets it. */
  readonly consecutiveFailures: number;
  /** Calls and failures counted in the current closed period. */
  readonly calls: number;
  readonly failures: number;
  /** The failure-rate window (empty without a rate rule); cleared when the breaker closes. */
  readonly window: RollingWindow;
  /** Probe permits handed out and not yet ended, whatever epoch they came from. <= policy.probes. */
  readonly probesOut: number;
  /** Probe successes counted in the current half-open period. */
  readonly probeSuccesses: number;
  /** Re-opens from half-open since the breaker last closed: the backoff exponent. */
  readonly reopens: number;
  /** Length of the current (or last) open period. */
  readonly openForMs: Ms;
  /** The instant the current (or last) open period ends: its start + openForMs. */
  readonly openUntil: Ms;
  /** How many times the breaker opened, re-opens included. */
  readonly opens: number;
}

/** BreakerInput is what a breaker actor is created with. */
export interface BreakerInput {
  readonly policy: BreakerPolicy;
}

/**
 * BreakerEvent is every event the statechart takes.
 * - `PROBE`: a request to make one call; answered by an emitted `admitted` or `refused`.
 * - `SUCCESS` / `FAILURE`: the outcome of a permit admitted in `epoch` (`probe` if it took a slot).
 * - `CANCEL`: a permit ended without an outcome; frees its probe slot, counts nothing.
 * The open → halfOpen timer is XState's delayed event of `after: { openFor }`.
 */
export type BreakerEvent =
  | { readonly type: 'PROBE'; readonly now: Ms }
  | { readonly type: 'SUCCESS'; readonly now: Ms; readonly epoch: number; readonly probe: boolean }
  | { readonly type: 'FAILURE'; readonly now: Ms; readonly epoch: number; readonly probe: boolean }
  | { readonly type: 'CANCEL'; readonly probe: boolean };

/**
 * BreakerEmitted is the facts the statechart emits: the answer to each `PROBE`. `retryAfterMs` is
 * the open time left; half-open, where the wait depends on probes in flight, it is the length of
 * the open period that just ended (a conservative hint).
 */
export type BreakerEmitted =
  | { readonly type: 'admitted'; readonly probe: boolean; readonly epoch: number }
  | { readonly type: 'refused'; readonly state: 'open' | 'halfOpen'; readonly retryAfterMs: Ms };

type Outcome = Extract<BreakerEvent, { type: 'SUCCESS' | 'FAILURE' }>;

function isStale(context: BreakerContext, event: BreakerEvent): boolean {
  return (event.type === 'SUCCESS' || event.type === 'FAILURE') && event.epoch !== context.epoch;
}

/** countOutcome is the closed-state counting of one outcome. Pure. */
function countOutcome(context: BreakerContext, event: Outcome): Partial<BreakerContext> {
  const failed = event.type === 'FAILURE';
  const rate = context.policy.failureRate;
  return {
    calls: context.calls + 1,
    failures: context.failures + (failed ? 1 : 0),
    consecutiveFailures: failed ? context.consecutiveFailures + 1 : 0,
    window:
      rate === null
        ? context.window
        : recordCall(context.window, event.now, failed, rate.windowMs, rate.bucketMs),
  };
}

/** tripped tells whether the counts after `event` open the breaker. */
function tripped(context: BreakerContext, event: Outcome): boolean {
  const next = { ...context, ...countOutcome(context, event) };
  const { failureThreshold, failureRate } = context.policy;
  if (failureThreshold !== null && next.consecutiveFailures >= failureThreshold) return true;
  if (failureRate === null) return false;
  const totals = windowTotals(next.window, event.now, failureRate.windowMs, failureRate.bucketMs);
  return rateReached(totals, failureRate.rate, failureRate.minimumCalls);
}

/** breakerMachine: see the file comment. */
export const breakerMachine = setup({
  types: {
    context: {} as BreakerContext,
    events: {} as BreakerEvent,
    input: {} as BreakerInput,
    emitted: {} as BreakerEmitted,
  },
  guards: {
    /** The outcome is of a permit from an earlier epoch: count nothing. */
    isStale: ({ context, event }) => isStale(context, event),
    /** Counting this failure reaches the consecutive threshold or the failure rate. */
    tripsOpen: ({ context, event }) => event.type === 'FAILURE' && tripped(context, event),
    /** Fewer than `probes` probe permits are out. */
    probeBudgetLeft: ({ context }) => context.probesOut < context.policy.probes,
    /** This probe success is the `successesToClose`-th of the half-open period. */
    closesOnThis: ({ context, event }) =>
      event.type === 'SUCCESS' &&
      event.probe &&
      context.probeSuccesses + 1 >= context.policy.successesToClose,
  },
  actions: {
    releaseProbe: assign(({ context, event }) =>
      (event.type === 'SUCCESS' || event.type === 'FAILURE' || event.type === 'CANCEL') &&
      event.probe
        ? { probesOut: Math.max(0, context.probesOut - 1) }
        : {},
    ),
    countOutcome: assign(({ context, event }) => {
      assertEvent(event, ['SUCCESS', 'FAILURE']);
      return countOutcome(context, event);
    }),
    countProbeSuccess: assign(({ context }) => ({ probeSuccesses: context.probeSuccesses + 1 })),
    countReopen: assign(({ context }) => ({ reopens: context.reopens + 1 })),
    takeProbe: assign(({ context }) => ({ probesOut: context.probesOut + 1 })),
    admitCall: emit(({ context }) => ({
      type: 'admitted' as const,
      probe: false,
      epoch: context.epoch,
    })),
    admitProbe: emit(({ context }) => ({
      type: 'admitted' as const,
      probe: true,
      epoch: context.epoch,
    })),
    refuseOpen: emit(({ context, event }) => {
      assertEvent(event, 'PROBE');
      return {
        type: 'refused' as const,
        state: 'open' as const,
        retryAfterMs: Math.max(0, context.openUntil - event.now),
      };
    }),
    refuseHalfOpen: emit(({ context }) => ({
      type: 'refused' as const,
      state: 'halfOpen' as const,
      retryAfterMs: context.openForMs,
    })),
    enterClosed: assign(({ context }) => ({
      epoch: context.epoch + 1,
      consecutiveFailures: 0,
      calls: 0,
      failures: 0,
      window: EMPTY_WINDOW,
      reopens: 0,
    })),
    enterOpen: assign(({ context, event }) => {
      assertEvent(event, 'FAILURE');
      const openForMs = openDurationMs(context.policy, context.reopens);
      return {
        epoch: context.epoch + 1,
        openForMs,
        openUntil: event.now + openForMs,
        opens: context.opens + 1,
      };
    }),
    enterHalfOpen: assign(({ context }) => ({ epoch: context.epoch + 1, probeSuccesses: 0 })),
  },
  delays: {
    /** The length of this open period, fixed on entry (backoff included). */
    openFor: ({ context }) => context.openForMs,
  },
}).createMachine({
  id: 'breaker',
  context: ({ input }) => ({
    policy: input.policy,
    epoch: 0,
    consecutiveFailures: 0,
    calls: 0,
    failures: 0,
    window: EMPTY_WINDOW,
    probesOut: 0,
    probeSuccesses: 0,
    reopens: 0,
    openForMs: input.policy.openForMs,
    openUntil: 0,
    opens: 0,
  }),
  initial: 'closed',
  states: {
    closed: {
      entry: 'enterClosed',
      on: {
        PROBE: { actions: 'admitCall' },
        SUCCESS: [
          { guard: 'isStale', actions: 'releaseProbe' },
          { actions: ['releaseProbe', 'countOutcome'] },
        ],
        FAILURE: [
          { guard: 'isStale', actions: 'releaseProbe' },
          { guard: 'tripsOpen', target: 'open', actions: ['releaseProbe', 'countOutcome'] },
          { actions: ['releaseProbe', 'countOutcome'] },
        ],
        CANCEL: { actions: 'releaseProbe' },
      },
    },
    open: {
      entry: 'enterOpen',
      after: { openFor: { target: 'halfOpen' } },
      on: {
        PROBE: { actions: 'refuseOpen' },
        SUCCESS: { actions: 'releaseProbe' },
        FAILURE: { actions: 'releaseProbe' },
        CANCEL: { actions: 'releaseProbe' },
      },
    },
    halfOpen: {
      entry: 'enterHalfOpen',
      on: {
        PROBE: [
          { guard: 'probeBudgetLeft', actions: ['takeProbe', 'admitProbe'] },
          { actions: 'refuseHalfOpen' },
        ],
        SUCCESS: [
          { guard: 'isStale', actions: 'releaseProbe' },
          { guard: 'closesOnThis', target: 'closed', actions: 'releaseProbe' },
          { actions: ['releaseProbe', 'countProbeSuccess'] },
        ],
        FAILURE: [
          { guard: 'isStale', actions: 'releaseProbe' },
          { target: 'open', actions: ['releaseProbe', 'countReopen'] },
        ],
        CANCEL: { actions: 'releaseProbe' },
      },
    },
  },
});

/** BreakerMachine is the type of {@link breakerMachine}. */
export type BreakerMachine = typeof breakerMachine;
