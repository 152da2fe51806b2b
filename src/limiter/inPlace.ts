/**
 * In-place decisions, for a caller that owns a key's state (the memory store).
 *
 * `decide` is pure: every grant builds a new key state, a new array of limit states and new limit
 * states. A store that keeps thousands of keys then replaces an object graph per grant, and those
 * objects live just long enough (until the key's next grant) to be copied and promoted by the
 * garbage collector before they die: the most expensive kind of garbage. The functions here
 * compute exactly what `decide` and `release` compute, but write the result into the state they
 * are given, so a key's state is allocated once and then only rewritten.
 *
 * They stay plain arithmetic over the data passed in, with `now` as an argument, and they change
 * nothing but the owned state passed in. `test/props/inPlace.props.test.ts` checks them against the
 * pure functions. An owned state must belong to one owner alone: never shared, never frozen, never
 * handed out. Build one with {@link ownLimits}, give out copies with {@link plain}.
 */
import { CONCURRENCY } from './decide.js';
import { waitForWindow, windowsPassed } from './fixedWindow.js';
import { firstLive, waitForLog } from './slidingWindow.js';
import { drainedUsed, waitForUsed } from './tokenBucket.js';
import { checkUnits } from './validate.js';
import type {
  FixedWindowState,
  GrantRecord,
  KeyState,
  Limit,
  LimitState,
  Ms,
  Policy,
  SlidingWindowState,
  TokenBucketState,
  Units,
} from './types.js';

/**
 * A token bucket's state with every field present, so it can be rewritten without changing shape.
 * `emptiedAt` is `-Infinity` when there is no cutoff (absent in {@link TokenBucketState}): no grant
 * is booked before it, so the pure functions read it the same. While `used` is 0, `refunded` is 0
 * and `emptiedAt` is `-Infinity`, as in the pure empty bucket `{ used: 0 }`.
 */
export interface OwnedTokenBucket {
  used: number;
  refunded: number;
  emptiedAt: Ms;
}

/** A sliding window's state whose log is rewritten in place. */
export interface OwnedSlidingWindow {
  used: number;
  readonly log: number[];
}

/** A fixed window's state, rewritten in place. */
export interface OwnedFixedWindow {
  start: Ms;
  used: number;
}

/** The owned state of one limit, in the shape of its algorithm. */
export type OwnedLimitState = OwnedTokenBucket | OwnedSlidingWindow | OwnedFixedWindow;

/**
 * OwnedKeyState is a {@link KeyState} its owner rewrites in place. It is a valid `KeyState`, so the
 * pure functions read it as one (they never mutate it).
 */
export interface OwnedKeyState {
  at: Ms;
  inFlight: number;
  /** One owned state per limit, in the order of the policy's limits. */
  limits: OwnedLimitState[];
}

/** Why {@link decideInPlace} refused: as in `Refused`, without the state (it is untouched). */
export interface InPlaceRefusal {
  readonly ok: false;
  /** As in `Refused`. */
  readonly retryAfterMs: Ms;
  /** As in `Refused`. */
  readonly limit: string;
}

/**
 * ownLimits copies the limit states of `state` (a state under `policy`) into owned objects. Any
 * valid state is accepted, including one from a snapshot (absent fields take their defaults).
 */
export function ownLimits(policy: Policy, state: KeyState): OwnedLimitState[] {
  // `map` allocates the array at its exact size (push would grow it to 17 slots): it lives as long
  // as the key, and with many keys the slack adds up.
  return policy.limits.map((limit, i) => ownLimit(limit, state.limits[i]!));
}

function ownLimit(limit: Limit, s: LimitState): OwnedLimitState {
  if (limit.algorithm !== 'token-bucket') return copyWindow(limit, s);
  // Stryker disable next-line UnaryOperator: overwritten by writeTokenBucket just below
  const owned: OwnedTokenBucket = { used: 0, refunded: 0, emptiedAt: -Infinity };
  writeTokenBucket(owned, s as TokenBucketState);
  return owned;
}

/** A window's state copied into new objects: the same shape owned and pure. */
function copyWindow(limit: Limit, s: LimitState): OwnedSlidingWindow | OwnedFixedWindow {
  if (limit.algorithm === 'sliding-window') {
    const sw = s as SlidingWindowState;
    return { used: sw.used, log: sw.log.slice() };
  }
  const fw = s as FixedWindowState;
  return { start: fw.start, used: fw.used };
}

/** Writes a pure bucket state into an owned one (an empty bucket has no counters or cutoff). */
function writeTokenBucket(owned: OwnedTokenBucket, from: TokenBucketState): void {
  // Stryker disable next-line ConditionalExpression: a pure empty bucket is { used: 0 }, whose absent counters default to the same
  const empty = from.used === 0;
  owned.used = from.used;
  owned.refunded = empty ? 0 : (from.refunded ?? 0);
  // Stryker disable next-line UnaryOperator: while used is 0 the cutoff is never read, and a booking into the empty bucket sets it
  owned.emptiedAt = empty ? -Infinity : (from.emptiedAt ?? -Infinity);
}

/**
 * adopt writes `from`, a state of the same policy as `owned` (typically what a pure function
 * computed from `owned`), into `owned`, reusing its objects. `from` may share objects with `owned`.
 */
export function adopt(policy: Policy, owned: OwnedKeyState, from: KeyState): void {
  const { limits } = policy;
  // Stryker disable next-line EqualityOperator: one past the end, both limits are undefined, so the next line skips it
  for (let i = 0; i < limits.length; i++) {
    const o = owned.limits[i]!;
    const f = from.limits[i]!;
    // Stryker disable next-line ConditionalExpression: a shortcut: writing a state into itself changes nothing
    if (o === f) continue;
    switch (limits[i]!.algorithm) {
      case 'token-bucket':
        writeTokenBucket(o as OwnedTokenBucket, f as TokenBucketState);
        break;
      case 'sliding-window': {
        const sw = f as SlidingWindowState;
        const os = o as OwnedSlidingWindow;
        os.used = sw.used;
        if (os.log !== sw.log) {
          os.log.length = 0;
          for (const x of sw.log) os.log.push(x);
        }
        break;
      }
      case 'fixed-window': {
        const fw = f as FixedWindowState;
        const of = o as OwnedFixedWindow;
        of.start = fw.start;
        of.used = fw.used;
        break;
      }
    }
  }
  owned.at = from.at;
  owned.inFlight = from.inFlight;
}

/**
 * plain copies an owned state into plain {@link KeyState} data, in the shapes the pure functions
 * produce (an empty token bucket is `{ used: 0 }`, no `emptiedAt` without a cutoff): JSON-safe,
 * and never aliased to the owned objects.
 */
export function plain(policy: Policy, state: KeyState): KeyState {
  const limits = policy.limits.map((limit, i): LimitState => {
    const s = state.limits[i]!;
    if (limit.algorithm !== 'token-bucket') return copyWindow(limit, s);
    const tb = s as TokenBucketState;
    if (tb.used === 0) return { used: 0 };
    const refunded = tb.refunded ?? 0;
    const e = tb.emptiedAt;
    return e === undefined || e === -Infinity
      ? { used: tb.used, refunded }
      : { used: tb.used, refunded, emptiedAt: e };
  });
  return { at: state.at, inFlight: state.inFlight, limits };
}

/**
 * decideInPlace is `decide` for an owned state: the same decision, retry and refusing limit,
 * and on a grant the same new state, written into `state`. `units` and `slot` are as for `decide`.
 *
 * It answers `undefined` for a grant, which needs nothing more: the grant was booked at the new
 * `state.at`, and its marks are {@link marksOf} the state, read before anything else changes it
 * (marks are defined as read right after the booking). A grant on the hot path so allocates no
 * result object. A refusal answers why, and leaves `state` exactly as it was (a refused request
 * is not an event, as with `decide`).
 *
 * @throws InvalidArgumentError when `units` does not have one amount per limit of `policy`
 *   (`state` is untouched).
 */
export function decideInPlace(
  policy: Policy,
  state: OwnedKeyState,
  units: Units,
  now: Ms,
  slot: boolean = policy.concurrency !== null,
): InPlaceRefusal | undefined {
  checkUnits(policy, units, 'decide');
  const { limits } = policy;
  // `decide` advances only when time moved on; `from` = `t` makes every advance below a no-op.
  const from = state.at;
  // Stryker disable next-line EqualityOperator: now = from gives the same t
  const t = now > from ? now : from;

  // Decide on the state as advanced to `t`, computed without writing it.
  let retryAfterMs = 0;
  let by = -1;
  for (let i = 0; i < limits.length; i++) {
    const limit = limits[i]!;
    const s = state.limits[i]!;
    const u = units[i]!;
    const wait =
      limit.algorithm === 'token-bucket'
        ? tokenBucketWait(limit, s as OwnedTokenBucket, u, from, t)
        : limit.algorithm === 'sliding-window'
          ? slidingWindowWait(limit, s as OwnedSlidingWindow, u, from, t)
          : fixedWindowWait(limit, s as OwnedFixedWindow, u, from, t);
    if (wait > retryAfterMs) {
      retryAfterMs = wait;
      by = i;
    }
  }
  if (slot && policy.concurrency !== null && state.inFlight >= policy.concurrency) {
    return { ok: false, retryAfterMs, limit: CONCURRENCY };
  }
  if (by >= 0) return { ok: false, retryAfterMs, limit: limits[by]!.name };

  // Commit: advance and book every limit.
  for (let i = 0; i < limits.length; i++) {
    const limit = limits[i]!;
    const s = state.limits[i]!;
    const u = units[i]!;
    if (limit.algorithm === 'token-bucket') {
      tokenBucketBook(limit, s as OwnedTokenBucket, u, from, t);
    } else if (limit.algorithm === 'sliding-window') {
      slidingWindowBook(limit, s as OwnedSlidingWindow, u, from, t);
    } else {
      fixedWindowBook(limit, s as OwnedFixedWindow, u, from, t);
    }
  }
  state.at = t;
  if (slot) state.inFlight++;
  return undefined;
}

/**
 * marksOf gives the marks of a grant just booked into `state` by {@link decideInPlace}, as `decide`
 * takes them (see `GrantRecord.marks`): a token bucket's is its `used + refunded` right after the
 * booking, any other limit's is 0; `undefined` when the policy has no token bucket. Read it before
 * anything else changes `state`. Built at its exact size (a literal for one limit, the common
 * case), not grown by push.
 */
export function marksOf(policy: Policy, state: OwnedKeyState): number[] | undefined {
  const { limits } = policy;
  let tokenBuckets = 0;
  for (let i = 0; i < limits.length; i++) {
    // Stryker disable next-line UpdateOperator: only whether it is 0 is read, and counting down from 0 never reaches 0 again
    if (limits[i]!.algorithm === 'token-bucket') tokenBuckets++;
  }
  if (tokenBuckets === 0) return undefined;
  // Stryker disable next-line ConditionalExpression: a shortcut: the map below gives the same one mark
  if (limits.length === 1) return [markOf(limits[0]!, state.limits[0]!)];
  return limits.map((limit, i) => markOf(limit, state.limits[i]!));
}

function markOf(limit: Limit, s: OwnedLimitState): number {
  if (limit.algorithm !== 'token-bucket') return 0;
  const tb = s as OwnedTokenBucket;
  return tb.used + tb.refunded;
}

/** releaseInPlace is `release` for an owned state: frees the slot `grant` holds, if any. */
export function releaseInPlace(state: OwnedKeyState, grant: GrantRecord): void {
  if (grant.slot && state.inFlight > 0) state.inFlight--;
}

// ---------------------------------------------------------------------------------------------
// Per algorithm: `advance` from `from` to `t`, then `waitMs` or `book`, on owned states. The
// arithmetic is the algorithms' own (tokenBucket.ts, slidingWindow.ts and fixedWindow.ts export it
// on plain numbers); only the writing into owned objects is here. `from` = `t` means no advance.

function tokenBucketWait(limit: Limit, s: OwnedTokenBucket, units: number, from: Ms, t: Ms): Ms {
  return waitForUsed(limit, drainedUsed(limit, s.used, from, t), units);
}

/** Advances and books. */
function tokenBucketBook(limit: Limit, s: OwnedTokenBucket, units: number, from: Ms, t: Ms): void {
  const used = drainedUsed(limit, s.used, from, t);
  if (used === 0) {
    // Empty (or drained empty): as the pure empty bucket, counters and cutoff gone.
    s.refunded = 0;
    // Stryker disable next-line UnaryOperator: while used is 0 the cutoff is never read, and a booking into the empty bucket sets it
    s.emptiedAt = -Infinity;
  }
  s.used = used;
  // Stryker disable next-line ConditionalExpression: booking 0 adds nothing; into an empty bucket it sets a cutoff that is never read while empty
  if (units !== 0) {
    const add = units * limit.intervalMs;
    // Booking into an empty bucket: every grant before holds nothing, and the counter starts over.
    if (used === 0) s.emptiedAt = t;
    s.used = used + add;
  }
}

/** The index of the first entry of the log still inside the window at `t` (advanced from `from`). */
function slidingWindowFirst(limit: Limit, log: readonly number[], from: Ms, t: Ms): number {
  // Stryker disable next-line ConditionalExpression,EqualityOperator: a shortcut: an owned log holds only entries live at its key's instant `from`
  return t <= from ? 0 : firstLive(limit, log, t);
}

function slidingWindowWait(
  limit: Limit,
  s: OwnedSlidingWindow,
  units: number,
  from: Ms,
  t: Ms,
): Ms {
  const { log } = s;
  const first = slidingWindowFirst(limit, log, from, t);
  let used = s.used;
  for (let i = 0; i < first; i += 2) used -= log[i + 1]!;
  // Stryker disable next-line ConditionalExpression,EqualityOperator: used is the sum of the log, so subtracting every entry gives 0 already
  if (first > 0 && first === log.length) used = 0; // as the pure empty window
  return waitForLog(limit, used, log, first, units, t);
}

function slidingWindowBook(
  limit: Limit,
  s: OwnedSlidingWindow,
  units: number,
  from: Ms,
  t: Ms,
): void {
  const { log } = s;
  const first = slidingWindowFirst(limit, log, from, t);
  // Stryker disable next-line ConditionalExpression: a shortcut: the branch below empties the log and subtracts all of used as well
  if (first === log.length) {
    // Stryker disable next-line ConditionalExpression,EqualityOperator: an empty log already has used 0
    if (first > 0) {
      log.length = 0;
      s.used = 0;
    }
    // Stryker disable next-line ConditionalExpression,EqualityOperator: with first 0 the block frees nothing
  } else if (first > 0) {
    let freed = 0;
    for (let i = 0; i < first; i += 2) freed += log[i + 1]!;
    log.splice(0, first);
    s.used -= freed;
  }
  if (units === 0) return;
  const n = log.length;
  // Stryker disable next-line ConditionalExpression,EqualityOperator: on an empty log, log[-2] is undefined, never t
  if (n > 0 && log[n - 2] === t) log[n - 1] = log[n - 1]! + units;
  else log.push(t, units);
  s.used += units;
}

/** How many whole windows advancing from `from` to `t` moves the state on (0 when `t` is not past `from`). */
function fixedWindowAt(limit: Limit, s: OwnedFixedWindow, from: Ms, t: Ms): number {
  // Stryker disable next-line ConditionalExpression,EqualityOperator: a shortcut: an owned window is the current one at its key's instant `from`
  return t <= from ? 0 : windowsPassed(limit, s.start, t);
}

function fixedWindowWait(limit: Limit, s: OwnedFixedWindow, units: number, from: Ms, t: Ms): Ms {
  const windows = fixedWindowAt(limit, s, from, t);
  // Stryker disable next-line ConditionalExpression,EqualityOperator: each window pays `limit` of the debt and moves start by one interval, so the wait is the same from the old window (or ≤ 0 once clear)
  if (windows === 0) return waitForWindow(limit, s.start, s.used, units, t);
  const start = s.start + windows * limit.intervalMs;
  return waitForWindow(limit, start, Math.max(0, s.used - windows * limit.limit), units, t);
}

function fixedWindowBook(limit: Limit, s: OwnedFixedWindow, units: number, from: Ms, t: Ms): void {
  const windows = fixedWindowAt(limit, s, from, t);
  // Stryker disable next-line ConditionalExpression,EqualityOperator: 0 windows move nothing
  if (windows > 0) {
    s.start += windows * limit.intervalMs;
    s.used = Math.max(0, s.used - windows * limit.limit);
  }
  s.used += units;
}
