/**
 * The JSON form of the memory store (`system.snapshot()`, `memoryStore(snapshot)`): what one key
 * saves, and the check of a snapshot handed back.
 */
import { InvalidArgumentError } from '../errors.js';
import { advance, isIdle } from '../limiter/advance.js';
import { plain } from '../limiter/inPlace.js';
import type { KeyState, Ms, Policy } from '../limiter/types.js';
import type { Entry } from './entry.js';

/** MemorySnapshot is the JSON form of a memory store: every key that is not at full capacity. */
export interface MemorySnapshot {
  readonly version: 1;
  readonly keys: Readonly<Record<string, { readonly policy: Policy; readonly state: KeyState }>>;
}

/**
 * savedState is what a snapshot keeps of the entry `e`: a copy advanced to `now` (the entry's
 * objects are rewritten in place by later grants), without the concurrency slots (the grants
 * holding them do not survive a restart, so nothing could ever release them); null when that
 * holds nothing.
 */
export function savedState(e: Entry, now: Ms): KeyState | null {
  const s = plain(e.policy, advance(e.policy, e, now));
  const state: KeyState = { at: s.at, inFlight: 0, limits: s.limits };
  return isIdle(e.policy, state, now) ? null : state;
}

/**
 * checkSnapshot throws unless `snapshot` is a version-1 memory snapshot.
 *
 * @throws InvalidArgumentError naming `memoryStore` and `snapshot`.
 */
export function checkSnapshot(snapshot: unknown): asserts snapshot is MemorySnapshot {
  const s = snapshot as Partial<MemorySnapshot> | null;
  if (
    typeof s !== 'object' ||
    s === null ||
    s.version !== 1 ||
    typeof s.keys !== 'object' ||
    s.keys === null ||
    Array.isArray(s.keys)
  ) {
    throw new InvalidArgumentError({
      where: 'memoryStore',
      path: 'snapshot',
      value: snapshot,
      expected: 'a memory snapshot { version: 1, keys }, e.g. system.snapshot().store',
    });
  }
}
