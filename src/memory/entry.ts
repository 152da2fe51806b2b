/**
 * One key of the memory store: its entry (the state the store owns and rewrites in place, with
 * the policy and epoch it is under) and the grant record the store hands out.
 */
import type { StoreGrant, StoreRequest } from '../store.js';
import { ownLimits, type OwnedKeyState } from '../limiter/inPlace.js';
import type { KeyState, Ms, Policy, Units } from '../limiter/types.js';

/**
 * Entry is one key's state, owned by the store and rewritten in place, and the policy it was built
 * under; a key met under another policy (after `setLimits`) is rebased on first use. The state's
 * fields live on the entry itself: one object per key fewer.
 */
export interface Entry extends OwnedKeyState {
  policy: Policy;
  /**
   * The entry's number in its store (see {@link StoreGrant.epoch}): new for every entry, and again
   * when a limit change drops or restarts a limit's state (see `restarts`). An entry leaves the
   * map only when it holds nothing (back at full capacity, no slot held) or by reset, so a grant
   * of another epoch holds no units in this one.
   */
  epoch: number;
  /**
   * The epoch the entry was made with. The slots it counts are those of grants of epochs
   * `firstEpoch` to `epoch` (a limit change does not touch slots; a reset makes a new entry).
   */
  readonly firstEpoch: number;
  /**
   * Whether the entry is in the map: false until it is kept (a key's first request may be
   * refused), and again once it left (reset, swept, forgotten, replaced by a restore). A key
   * actor's {@link KeyCache} may still point at a left entry, and must then look the key up again.
   */
  live: boolean;
}

/** A new entry of epoch `epoch` holding (a copy of) `state`, a state under `policy`; not in the map yet. */
export function newEntry(policy: Policy, state: KeyState, epoch: number): Entry {
  return {
    policy,
    epoch,
    firstEpoch: epoch,
    at: state.at,
    inFlight: state.inFlight,
    limits: ownLimits(policy, state),
    live: false,
  };
}

/** Makes the entry hold (a copy of) `state`, a state under `policy`, another policy than its own. */
/** reorder takes `e` under `policy`, whose limits are `e.policy`'s in another order (sameRecords). */
export function reorder(e: Entry, policy: Policy): void {
  const from = e.policy.limits;
  const limits = e.limits;
  e.limits = policy.limits.map((l) => limits[from.findIndex((o) => o.name === l.name)]!);
  e.policy = policy;
}

export function reown(e: Entry, policy: Policy, state: KeyState): void {
  e.at = state.at;
  e.inFlight = state.inFlight;
  e.limits = ownLimits(policy, state); // another policy's limits: new owned objects
  e.policy = policy;
}

/**
 * A grant record whose id is read from its request only when asked for (ids cost a string). It
 * carries the marks `decide` took (token buckets), which a later refund reads.
 *
 * It is also its own {@link StoreDecision} (`ok: true`, `grant` is itself), so a grant on the hot
 * path costs this one object, the way a Waiter is its own event.
 */
export class MemoryGrant implements StoreGrant {
  /** As a {@link StoreDecision}: a grant. */
  readonly ok = true as const;

  constructor(
    readonly req: StoreRequest,
    readonly at: Ms,
    readonly units: Units,
    readonly slot: boolean,
    readonly marks: readonly number[] | undefined,
    readonly epoch: number,
  ) {}

  /** As a {@link StoreDecision}: the grant is the record itself. */
  get grant(): StoreGrant {
    return this;
  }

  get id(): string {
    return this.req.id;
  }
}
