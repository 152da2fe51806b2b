/**
 * What a provider's answer changes for a key (`limiter.feedback`), as plain arithmetic: how long
 * a throttled key pauses, and how much to book so that no limit shows more remaining than the
 * provider reports.
 */
import type { Ms, Policy, Units } from '../limiter/types.js';
import type { KeyStats } from '../observe/stats.js';
import type { ProviderSignal } from './options.js';

/** What {@link applyFeedback} needs of a limiter. */
interface FeedbackTarget {
  readonly policy: Policy;
  readonly maxPauseMs: Ms;
  pause(key: string, ms: Ms): Promise<void>;
  stats(key: string): Promise<KeyStats>;
  charge(key: string, units: Units): Promise<void>;
}

/**
 * applyFeedback is `limiter.feedback` (see its doc): pause for a throttle or a used-up dimension
 * with a reset, then book what the key has over the provider's remaining. The read and the
 * booking are two mailbox messages: grants in between make the booking err on the safe side.
 */
export async function applyFeedback(
  limiter: FeedbackTarget,
  key: string,
  signal: ProviderSignal,
): Promise<void> {
  const reported = reportedLimits(signal);
  // Throttled: pause as the provider says. A dimension used up with a known reset pauses the
  // key until that reset rather than book a shortfall (exhaustedPauseMs).
  const ms =
    signal.throttled === true
      ? throttledPauseMs(signal, reported, limiter.maxPauseMs)
      : exhaustedPauseMs(reported, limiter.maxPauseMs);
  if (ms > 0) await limiter.pause(key, ms);
  if (reported.length === 0) return;
  const policy = limiter.policy;
  if (!policy.limits.some((l) => reported.some((r) => r.dimension === l.dimension))) return;
  const stats = await limiter.stats(key);
  if (limiter.policy !== policy) return; // limits changed meanwhile: the reading is of another policy
  const units = overReported(policy, stats, reported);
  if (units !== null) await limiter.charge(key, units);
}

/** The shortest window a provider's remaining is taken to describe (providers count per minute). */
const PROVIDER_WINDOW_MS = 60_000;

/** How long a throttled key pauses when the provider gives no retry-after and no reset. */
const DEFAULT_PAUSE_MS = 1000;

/** One dimension the provider reported, with a usable `remaining`. */
export type Reported = NonNullable<ProviderSignal['limits']>[number] & {
  readonly remaining: number;
};

/** reportedLimits keeps the dimensions whose `remaining` is a finite number, 0 or more. */
export function reportedLimits(signal: ProviderSignal): Reported[] {
  return (signal.limits ?? []).filter(
    (l): l is Reported =>
      typeof l.remaining === 'number' && Number.isFinite(l.remaining) && l.remaining >= 0,
  );
}

/**
 * throttledPauseMs: how long a key the provider throttled pauses: its `retryAfterMs`, else the
 * latest reset of a dimension it reports exhausted, else 1 s; at most `maxMs`. A value that is
 * not a finite number of 0 ms or more (a header from a buggy proxy) counts as absent. Whole ms,
 * rounded up.
 */
export function throttledPauseMs(
  signal: ProviderSignal,
  reported: readonly Reported[],
  maxMs: Ms,
): Ms {
  let ms = usable(signal.retryAfterMs);
  if (ms === null) {
    let latest: number | null = null;
    for (const l of reported) {
      const reset = l.remaining === 0 ? usable(l.resetMs) : null;
      if (reset !== null && (latest === null || reset > latest)) latest = reset;
    }
    ms = latest ?? DEFAULT_PAUSE_MS;
  }
  return Math.min(Math.ceil(ms), maxMs);
}

function usable(ms: number | null | undefined): number | null {
  return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 ? ms : null;
}

/**
 * exhaustedPauseMs: how long a key pauses when the provider reports a dimension used up
 * (`remaining: 0`) with the time to its reset: until the latest such reset, at most `maxMs`; 0
 * when none. Booking the shortfall instead would hold it for a whole interval of tollgate's
 * own limit (a minute) where the provider resets in, say, 1.5 s.
 */
export function exhaustedPauseMs(reported: readonly Reported[], maxMs: Ms): Ms {
  let latest = 0;
  for (const r of reported) {
    if (resetsAt(r) && r.resetMs! > latest) latest = r.resetMs!;
  }
  return Math.min(Math.ceil(latest), maxMs);
}

/** A dimension used up with a known reset: paused for, not booked. */
function resetsAt(r: Reported): boolean {
  return r.remaining === 0 && usable(r.resetMs) !== null;
}

/**
 * overReported: per limit of `policy`, how much more the key has remaining (as `stats` read it)
 * than the provider reports for the limit's dimension, counting only limits whose interval is no
 * longer than the provider's window (its reset, at least a minute). Null when no limit is over.
 */
export function overReported(
  policy: Policy,
  stats: KeyStats,
  reported: readonly Reported[],
): Units | null {
  let any = false;
  const units = policy.limits.map((l, i) => {
    const ours = stats.limits[i]?.remaining ?? 0;
    let theirs = Infinity;
    for (const r of reported) {
      const window = Math.max(r.resetMs ?? 0, PROVIDER_WINDOW_MS);
      if (r.dimension === l.dimension && l.intervalMs <= window && !resetsAt(r))
        theirs = Math.min(theirs, r.remaining);
    }
    const over = ours > theirs ? ours - theirs : 0;
    if (over > 0) any = true;
    return over;
  });
  return any ? units : null;
}
