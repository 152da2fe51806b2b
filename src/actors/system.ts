/// <reference lib="esnext.disposable" preserve="true" />
/**
 * The limiter system: it spawns, finds and evicts key actors, owns the clock, the store and the
 * event emitter, and closes everything at once. One XState system per limiter system: key actors
 * are children of its root actor, found through their limiter's index of live actors by key.
 */
import { createActor, type AnyActorRef, type InspectionEvent, type Observer } from 'xstate';
import { InvalidArgumentError, LimiterClosedError } from '../errors.js';
import { onLimiter } from '../describe.js';
import { keyLogic } from '../machines/keyLogic.js';
import type { KeyActorRef, KeyLogic, KeyRuntime } from '../machines/keyContext.js';
import { MemoryStore } from '../memory/memoryStore.js';
import type { Ms } from '../limiter/types.js';
import { TollgateEmitter } from '../observe/events.js';
import {
  readLimiterStatsOptions,
  systemStats$,
  type LimiterSource,
  type LimiterStatsOptions,
  type SystemStats,
} from '../observe/limiterStats.js';
import type { Observable } from 'rxjs';
import { systemClock, type Clock } from '../clock.js';
import type { Grant } from './grant.js';
import { Limiter, type LimiterOptions } from './limiter.js';
import { LimiterRuntime, rootLogic } from './runtime.js';
import {
  randomPrefix,
  readSystemOptions,
  type LimiterSystemOptions,
  type SystemSnapshot,
} from './systemOptions.js';
import { limiterDifferences } from './options.js';
import type { LimiterBreaker } from './options.js';
import type { KeyIndex } from './core.js';
import { KeyRegistry } from './keyRegistry.js';
import { BreakerRegistry } from '../breaker/registry.js';
import type { CircuitBreaker } from '../breaker/breaker.js';
import type { Store, StoreDataLoss } from '../store.js';

export type { LimiterSystemOptions, SystemSnapshot };

interface LimiterEntry {
  readonly limiter: Limiter;
  readonly rt: KeyRuntime<Grant>;
}

/**
 * LimiterSystem holds limiters and their key actors. Create it with {@link createLimiterSystem}.
 *
 * @example
 * const system = createLimiterSystem();
 * const api = system.limiter('api', { limits: [{ limit: 10, interval: '1s' }] });
 * await api.acquire('user-1');
 * await system.close();
 */
export class LimiterSystem {
  /** Every fact of every key: granted, refused, queued, timeout, aborted, settled, released, … */
  readonly events = new TollgateEmitter();
  /** @internal */
  readonly clock: Clock;
  /** @internal */
  readonly idPrefix = randomPrefix();
  /**
   * The circuit breakers of this system's limiters, by name (`limiter/key`): get-or-create cannot
   * race, and no breaker state is shared with another system.
   */
  readonly breakers: BreakerRegistry;
  readonly #store: Store;
  readonly #ownsStore: boolean;
  readonly #pollMs: Ms;
  readonly #root: AnyActorRef;
  readonly #limiters = new Map<string, LimiterEntry>();
  /** The live key actors, the idle sweep and eviction (keyRegistry.ts). */
  readonly #keys: KeyRegistry;
  /** Actors whose facts are relayed to `events` (all of them, once anybody has listened). */
  readonly #relayed = new WeakSet<KeyActorRef<Grant>>();
  /** Stops listening to the store's news of capacity freed by other processes. */
  readonly #unwatch: (() => void) | undefined;
  /** Stops listening to the store's news of data it lost. */
  readonly #unwatchLoss: (() => void) | undefined;
  #closed = false;
  /** What `onClose` was asked to call. */
  readonly #closeListeners = new Set<() => void>();
  /** Whether XState's inspection is on (`options.inspect`). */
  readonly #inspected: boolean;

  constructor(options: LimiterSystemOptions = {}) {
    const settings = readSystemOptions(options);
    this.clock = options.clock ?? systemClock;
    this.breakers = new BreakerRegistry(this.clock);
    this.breakers.events.on('stateChange', (e) => {
      this.events.emit('breaker', { breaker: e.name, from: e.from, to: e.to, at: e.at });
    });
    this.#pollMs = settings.pollMs;
    this.#ownsStore = settings.ownsStore;
    this.#inspected = settings.inspect !== undefined;
    this.#store = settings.store;
    // A store that times its own calls (Redis) does so on this system's clock, unless given one.
    this.#store.useClock?.(this.clock);
    // The root actor anchors the XState system; key actors are its children, and it stops them
    // (XState lets only a parent stop a child). It also hears of a child that failed.
    // Inspection, when asked for, is the system's: the key actors, its children, report to it.
    this.#root = createActor(
      rootLogic(() => this.#keys.removeFailed()),
      {
        clock: this.clock,
        ...(settings.inspect !== undefined && {
          // Inspector is XState's own type, described without naming it (systemOptions.ts).
          inspect: settings.inspect as Observer<InspectionEvent>,
        }),
      },
    );
    this.#root.start();
    const root = this.#root;
    this.#keys = new KeyRegistry(
      {
        clock: this.clock,
        store: this.#store,
        events: this.events,
        breakers: this.breakers,
        root,
        hasBreaker: (name) => this.#limiters.get(name)?.limiter.breaker != null,
        storeKey: (limiter, key) => this.storeKey(limiter, key),
      },
      settings.idleMs,
    );
    this.events.onObserved = () => {
      for (const [actor, limiter] of this.#keys.entries()) this.#relay(actor, limiter);
    };
    // Another process freed capacity of a key: its waiters here ask again now, not at the next poll.
    this.#unwatch = this.#store.watch?.((storeKey) => this.#keys.wake(storeKey));
    this.#unwatchLoss = this.#store.onDataLost?.((loss) => this.#dataLost(loss));
  }

  /**
   * dataLost relays a loss of the store's data as the `dataLost` event, and wakes the keys it hit
   * (every live key for a 'flushed' loss), so their waiters ask the fresh state now rather than
   * at the instant the lost state had them wait for (a pause that is gone, a slot never released).
   */
  #dataLost(loss: StoreDataLoss): void {
    const keys = loss.keys.map((k) => parseStoreKey(k));
    this.events.emit('dataLost', {
      store: this.#store.name,
      reason: loss.reason,
      keys,
      slot: loss.slot,
      at: loss.at,
    });
    if (loss.reason === 'flushed') {
      for (const [actor] of this.#keys.entries()) actor.send({ type: 'wake' });
    } else {
      for (const k of loss.keys) this.#keys.wake(k);
    }
  }

  /** The store this system decides with. */
  get store(): Store {
    return this.#store;
  }

  /** Whether `close()` was called. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** The number of key actors alive now (idle ones are evicted). */
  get liveKeys(): number {
    return this.#keys.size;
  }

  /**
   * limiter creates the limiter `name` with a policy, or returns the existing one when called
   * again with the same name and an equal policy.
   *
   * @throws InvalidArgumentError for an invalid policy, or a name already used with another policy.
   * @throws LimiterClosedError after close.
   */
  limiter(name: string, options: LimiterOptions): Limiter {
    this.checkOpen('limiter');
    if (typeof name !== 'string' || name.length === 0) {
      throw new InvalidArgumentError({
        where: 'system.limiter',
        path: 'name',
        value: name,
        expected: 'a non-empty string',
      });
    }
    const limiter = new Limiter(this, name, options);
    const existing = this.#limiters.get(name);
    if (existing !== undefined) {
      const differs = limiterDifferences(existing.limiter, limiter);
      if (differs.length === 0) return existing.limiter;
      const limitsOnly = differs.every((d) => d === 'limits' || d === 'concurrency');
      throw new InvalidArgumentError(
        `tollgate: limiter ${JSON.stringify(name)} exists with another ${differs.join(', ')}; ` +
          (limitsOnly
            ? 'change limits with limiter.setLimits(policy)'
            : 'maxQueue, leaseTtl, maxPause, breaker, maxKeys and onMaxKeys are fixed at creation: use another name'),
      );
    }
    const rt = new LimiterRuntime(
      limiter,
      this.#store,
      this.clock,
      this.#pollMs,
      this.events.observed,
    );
    this.#limiters.set(name, { limiter, rt });
    return limiter;
  }

  /** get returns the limiter named `name`, if any. */
  get(name: string): Limiter | undefined {
    return this.#limiters.get(name)?.limiter;
  }

  /** @internal a key's identity in the store: unambiguous for any limiter name and key. */
  storeKey(limiter: string, key: string): string {
    return `${limiter.length}:${limiter}:${key}`;
  }

  /**
   * @internal get-or-create, synchronous, so two callers can never create one key twice. Each
   * limiter indexes its live actors by the caller's key string, which spares the hot path building
   * and hashing a new string per call.
   */
  actorFor(limiter: KeyIndex, key: string, storeKey?: string): KeyActorRef<Grant> {
    const existing = limiter.actors.get(key);
    if (existing !== undefined) return existing;
    this.checkOpen('acquire');
    this.#keys.admit(limiter, key);
    const entry = this.#limiters.get(limiter.name)!;
    storeKey ??= this.storeKey(limiter.name, key);
    // No `clock`: children use their system's, which is the root's (this.clock). Every option
    // costs: XState spreads them into a new object per actor.
    // Under inspection a key actor is named `limiter "a", key "k"` (quoted: a name may hold a
    // slash), so a reader of the stream knows it.
    const actor = createActor(
      keyLogic as unknown as KeyLogic<Grant>,
      this.#inspected
        ? {
            parent: this.#root,
            input: { rt: entry.rt, key, storeKey },
            id: onLimiter(limiter.name, undefined, key),
          }
        : { parent: this.#root, input: { rt: entry.rt, key, storeKey } },
    );
    // Facts are relayed to `events` only once somebody observes (see #relayAll).
    if (this.events.observed.value) this.#relay(actor, limiter);
    actor.start();
    this.#keys.add(actor, limiter, key, storeKey);
    return actor;
  }

  /** Relays the facts `actor` emits to `events`, once per actor. */
  #relay(actor: KeyActorRef<Grant>, limiter: KeyIndex): void {
    if (this.#relayed.has(actor)) return;
    this.#relayed.add(actor);
    actor.on('*', (e) => {
      const { type, ...rest } = e;
      (this.events.emit as (t: string, p: unknown) => boolean)(type, {
        limiter: limiter.name,
        ...rest,
      });
    });
  }

  /** @internal `limiter` has a new policy: its keys take it through their mailboxes. */
  policyChanged(limiter: KeyIndex): void {
    const { policy } = limiter;
    for (const actor of limiter.actors.values()) actor.send({ type: 'policy', policy });
  }

  /** @internal the breaker `name`, created on first use with the policy of `breaker`. */
  breaker(name: string, breaker: LimiterBreaker): CircuitBreaker {
    return this.breakers.getCompiled(name, breaker.policy);
  }

  /** @internal */
  checkOpen(call: string): void {
    if (this.#closed) throw new LimiterClosedError(call);
  }

  /**
   * stats$ is an RxJS Observable of every limiter's {@link LimiterStats} (see `limiter.stats$()`):
   * one value on subscribe and one after each burst of changes of any key of any limiter; a
   * limiter made after the subscription joins at its first change. Nothing is computed while
   * nobody subscribes.
   *
   * @throws InvalidArgumentError for bad options.
   */
  stats$(options?: LimiterStatsOptions): Observable<SystemStats> {
    const read = readLimiterStatsOptions(options, 'system.stats$');
    const sources = (): LimiterSource[] =>
      [...this.#limiters.values()].map(({ limiter }) => limiter);
    return systemStats$(sources, this, read);
  }

  /**
   * snapshot returns the state of every key that is not at full capacity, as JSON-safe data.
   * Restore it with `createLimiterSystem({ snapshot })` after a restart. Its instants are the
   * system clock's: the monotonic {@link systemClock} matches the wall clock as it was when
   * tollgate loaded, so a snapshot restored in another process is off by whatever steps the wall
   * clock took while this one ran: after a step forward its keys refill that much early at the
   * restore, after a step back they wait that much longer.
   *
   * @throws InvalidArgumentError when the store is not the memory store (Redis keeps its own state).
   */
  snapshot(): SystemSnapshot {
    if (!(this.#store instanceof MemoryStore)) {
      throw new InvalidArgumentError(
        `tollgate: snapshot works with the memory store, not ${this.#store.name}`,
      );
    }
    return { version: 1, store: this.#store.snapshot(this.clock.now()) };
  }

  /**
   * close rejects every waiter with LimiterClosedError, stops every key actor, clears every timer,
   * and closes the store if the system created it. Later calls are refused. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unwatch?.();
    this.#unwatchLoss?.();
    this.#keys.close();
    for (const entry of this.#limiters.values()) entry.limiter.actors.clear();
    this.breakers.stopAll();
    this.#root.stop();
    for (const listener of this.#closeListeners) listener();
    this.#closeListeners.clear();
    if (this.#ownsStore) await this.#store.close();
  }

  /** @internal calls `listener` once when the system closes (at once if it has); returns what stops that. */
  onClose(listener: () => void): () => void {
    if (this.#closed) {
      listener();
      return () => {};
    }
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  /** `await using system = createLimiterSystem()` closes it at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * createLimiterSystem creates a {@link LimiterSystem}: in memory and on the real clock unless told
 * otherwise.
 *
 * @example
 * const system = createLimiterSystem({ idleTimeout: '30s' });
 */
export function createLimiterSystem(options?: LimiterSystemOptions): LimiterSystem {
  return new LimiterSystem(options);
}

/**
 * parseStoreKey reads back the limiter and key of a store key made by `LimiterSystem.storeKey`
 * (`<length of limiter>:<limiter>:<key>`); a string of another form is all key, limiter ''.
 */
function parseStoreKey(storeKey: string): { limiter: string; key: string } {
  const colon = storeKey.indexOf(':');
  const length = Number(storeKey.slice(0, colon));
  if (colon <= 0 || !Number.isInteger(length) || storeKey[colon + 1 + length] !== ':') {
    return { limiter: '', key: storeKey };
  }
  return {
    limiter: storeKey.slice(colon + 1, colon + 1 + length),
    key: storeKey.slice(colon + 2 + length),
  };
}
