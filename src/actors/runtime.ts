/**
 * The parts a limiter system is assembled from: the runtime its limiters' key actors share
 * ({@link LimiterRuntime}), the root actor's logic, and the check that a store is one.
 */
import type { ActorLogic, AnyActorRef, EventObject, Snapshot } from 'xstate';
import type { Clock } from '../clock.js';
import { InvalidArgumentError } from '../errors.js';
import type { CostSpec, Ms, Policy } from '../limiter/types.js';
import type { KeyRuntime } from '../machines/keyContext.js';
import type { Store, StoreGrant } from '../store.js';
import { Grant } from './grant.js';
import type { Limiter } from './limiter.js';

/**
 * The {@link KeyRuntime} of one limiter's keys. A class rather than an object literal with a
 * closure, so that `makeGrant` is one function for every limiter of every system: the key logic's
 * call to it then stays monomorphic (a closure per limiter made it polymorphic, and slower, as soon
 * as a second limiter or system existed).
 */
export class LimiterRuntime implements KeyRuntime<Grant> {
  readonly limiter: string;
  readonly maxQueue: number;
  readonly leaseMs: Ms | null;

  constructor(
    readonly owner: Limiter,
    readonly store: Store,
    readonly clock: Clock,
    readonly pollMs: Ms,
    readonly observed: { value: boolean },
  ) {
    this.limiter = owner.name;
    this.maxQueue = owner.maxQueue;
    this.leaseMs = owner.leaseMs;
  }

  /** The limiter's policy in force (setLimits replaces it, then tells the key actors). */
  get policy(): Policy {
    return this.owner.policy;
  }

  makeGrant(
    key: string,
    storeKey: string,
    record: StoreGrant,
    cost: CostSpec | undefined,
    policy: Policy,
  ): Grant {
    return new Grant(this.owner, key, storeKey, record, cost, policy);
  }
}

type RootEvent =
  | (EventObject & { type: 'stopChild'; child: AnyActorRef })
  | { type: `xstate.error.actor.${string}`; error: unknown };

/**
 * The root actor's logic: it holds no state, stops the key actors it is the parent of, and calls
 * `onChildError` when XState tells it a child failed (`xstate.error.actor.<id>`).
 */
export function rootLogic(onChildError: () => void): ActorLogic<Snapshot<undefined>, RootEvent> {
  return {
    config: undefined,
    transition(snapshot, event, scope) {
      if (event.type === 'stopChild') scope.stopChild((event as { child: AnyActorRef }).child);
      else if (event.type.startsWith('xstate.error.actor')) onChildError();
      return snapshot;
    },
    getInitialSnapshot: () => ({ status: 'active', output: undefined, error: undefined }),
    getPersistedSnapshot: (snapshot) => snapshot,
  };
}

/** The methods every {@link Store} must have; checked once, when a system is given a store. */
const STORE_METHODS = ['decide', 'settle', 'cancel', 'release', 'read', 'reset', 'close'] as const;

/**
 * checkStore refuses an object that is not a {@link Store} (from plain JavaScript, say), before
 * any key is decided with it.
 */
export function checkStore(store: unknown): void {
  const s = store as Record<string, unknown> | null;
  const missing =
    typeof s !== 'object' || s === null
      ? ['an object']
      : [
          ...STORE_METHODS.filter((m) => typeof s[m] !== 'function'),
          ...(typeof s.sync === 'boolean' ? [] : ['sync (a boolean)']),
          ...(typeof s.name === 'string' ? [] : ['name (a string)']),
        ];
  if (missing.length > 0) {
    throw new InvalidArgumentError({
      where: 'createLimiterSystem',
      path: 'options.store',
      value: store,
      expected: `a Store, e.g. memoryStore() or redisStore({ client }); missing: ${missing.join(', ')}`,
    });
  }
}
