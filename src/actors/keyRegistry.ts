/**
 * KeyRegistry is where a limiter system keeps track of its keys: the index of live key actors,
 * the idle sweep that evicts them to plain data (and lets the store drop keys back at full
 * capacity), the removal of an actor that failed, and, for a limiter with `maxKeys`, what a key
 * holds and how one is forgotten to make room (keyCap.ts decides which).
 *
 * The sweep runs every half idle period while anything is left to sweep: a live actor, a breaker
 * of an evicted key not yet idle, or state the store still keeps (the memory store's dormant keys,
 * dropped once back at full capacity). Before, it stopped with the last actor, and dormant keys
 * that came back to full capacity afterwards stayed in memory until some key was used again.
 */
import type { AnyActorRef } from 'xstate';
import type { BreakerRegistry } from '../breaker/registry.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { Ms } from '../limiter/types.js';
import { isKeyIdle } from '../machines/keyLogic.js';
import { endAll } from '../machines/keyOps.js';
import type { KeyActorRef, KeyContext } from '../machines/keyContext.js';
import { asInternalError } from '../machines/storeOps.js';
import type { TollgateEmitter } from '../observe/events.js';
import type { Store } from '../store.js';
import type { KeyIndex } from './core.js';
import type { Grant } from './grant.js';
import type { Holding } from './keyCap.js';

/** What the registry needs from its system. */
export interface RegistryHost {
  readonly clock: Clock;
  readonly store: Store;
  readonly events: TollgateEmitter;
  readonly breakers: BreakerRegistry;
  /** The root actor: key actors are its children, and only it can stop them. */
  readonly root: AnyActorRef;
  /** Whether the limiter `name` has a circuit breaker per key. */
  hasBreaker(name: string): boolean;
  storeKey(limiter: string, key: string): string;
}

/** KeyRegistry: see the file comment. */
export class KeyRegistry {
  readonly #host: RegistryHost;
  readonly #idleMs: Ms;
  /** Live key actors and the limiter each belongs to, for sweeps, broadcasts and close. */
  readonly #live = new Map<KeyActorRef<Grant>, KeyIndex>();
  /**
   * Live key actors by store key, kept only for a store that reports capacity freed elsewhere
   * (`Store.watch`, which names keys by store key); null otherwise, so the memory store's keys do
   * not pay for an index nothing reads. (Registering actors under an XState `systemId` did the
   * same for every store, at two Map entries and a slower actor creation per key.)
   */
  readonly #byStoreKey: Map<string, KeyActorRef<Grant>> | null;
  #sweepTimer: TimerHandle | null = null;
  /** Breakers of evicted keys, by name, not forgotten yet (not idle at the eviction). */
  readonly #breakersOfEvicted = new Map<string, { limiter: KeyIndex; key: string }>();
  /**
   * When the store's kept state next comes back to full capacity with time alone, as its last
   * sweep said (it is swept again then); null: never by itself.
   */
  #storeNext: Ms | null = null;
  /** Limiters with `maxKeys`, whose count of keys the sweep brings down to what is still kept. */
  readonly #capped = new Set<KeyIndex>();
  #closed = false;

  constructor(host: RegistryHost, idleMs: Ms) {
    this.#host = host;
    this.#idleMs = idleMs;
    this.#byStoreKey = host.store.watch === undefined ? null : new Map();
  }

  /** The number of key actors alive now. */
  get size(): number {
    return this.#live.size;
  }

  /** Every live actor with its limiter. */
  entries(): IterableIterator<[KeyActorRef<Grant>, KeyIndex]> {
    return this.#live.entries();
  }

  /** Records a new actor of `limiter`'s `key`, and makes sure a sweep is coming. */
  add(actor: KeyActorRef<Grant>, limiter: KeyIndex, key: string, storeKey: string): void {
    limiter.actors.set(key, actor);
    this.#live.set(actor, limiter);
    this.#byStoreKey?.set(storeKey, actor);
    this.scheduleSweep();
  }

  /**
   * admit counts `key` against its limiter's `maxKeys` (if any) before the key gets an actor or
   * state, making room if needed (keyCap.ts).
   *
   * @throws TooManyKeysError when no room can be made.
   */
  admit(limiter: KeyIndex, key: string): void {
    const cap = limiter.keyCap;
    if (cap === null) return;
    this.#capped.add(limiter);
    cap.use(
      key,
      {
        holding: (k, now) => this.holding(limiter, k, now),
        drop: (k, holding, now) => this.drop(limiter, k, holding, now),
      },
      this.#host.clock.now(),
    );
  }

  /** The store says capacity of `storeKey` freed elsewhere: its waiters here ask again now. */
  wake(storeKey: string): void {
    this.#byStoreKey?.get(storeKey)?.send({ type: 'wake' });
  }

  /**
   * scheduleSweep arms the sweep if it is not armed (cheap when it is: every new actor calls it):
   * every half idle period while actors or breakers live, else when the store's kept state next
   * comes back to full capacity (a key of 1 per 366 days need not be swept every 30 s).
   */
  scheduleSweep(): void {
    if (this.#sweepTimer !== null || this.#closed) return;
    // Sweeping every half idle period keeps an idle actor alive at most 1.5 × idleTimeout.
    const every = Math.max(1, Math.floor(this.#idleMs / 2));
    const { clock } = this.#host;
    const alive = this.#live.size > 0 || this.#breakersOfEvicted.size > 0;
    const delay =
      alive || this.#storeNext === null ? every : Math.max(every, this.#storeNext - clock.now());
    const arm = clock.setHousekeepingTimeout ?? clock.setTimeout;
    this.#sweepTimer = arm.call(
      clock,
      () => {
        this.#sweepTimer = null;
        this.#sweep();
        if (this.#live.size > 0 || this.#breakersOfEvicted.size > 0 || this.#storeNext !== null)
          this.scheduleSweep();
      },
      delay,
    );
  }

  /**
   * Stops key actors idle for `idleTimeout`; their state stays in the store. A key's circuit
   * breaker goes with it once the breaker is idle too (closed, no call out, no failure counted);
   * one that is not idle yet is looked at again at each sweep.
   */
  #sweep(): void {
    const host = this.#host;
    const now = host.clock.now();
    for (const [actor, limiter] of this.#live) {
      const ctx = actor.getSnapshot().context;
      if (!isKeyIdle(ctx) || now - ctx.lastActive < this.#idleMs) continue;
      this.#stop(actor, limiter, ctx.key, ctx.storeKey, now);
    }
    for (const [name, { limiter, key }] of this.#breakersOfEvicted) {
      // A key that came back keeps its breaker: it is looked at again at its next eviction.
      if (limiter.actors.has(key) || host.breakers.peek(name) === undefined)
        this.#breakersOfEvicted.delete(name);
      else if (host.breakers.deleteIfIdle(name)) this.#breakersOfEvicted.delete(name);
    }
    const next = host.store.sweep?.(now);
    this.#storeNext = typeof next === 'number' ? next : null;
    for (const limiter of this.#capped) {
      const cap = limiter.keyCap!;
      for (const key of cap.keys()) {
        if (!limiter.actors.has(key) && this.#kept(limiter, key, now) === undefined)
          cap.forget(key);
      }
    }
  }

  /** Stops the idle actor of `key`: its state stays in the store (dropped there if blank). */
  #stop(actor: KeyActorRef<Grant>, limiter: KeyIndex, key: string, storeKey: string, now: Ms) {
    const host = this.#host;
    host.root.send({ type: 'stopChild', child: actor });
    this.forgetActor(actor, limiter, key, storeKey);
    host.store.forget?.(storeKey, now);
    if (host.hasBreaker(limiter.name))
      this.#breakersOfEvicted.set(`${limiter.name}/${key}`, { limiter, key });
    if (host.events.observed.value)
      host.events.emit('evicted', { limiter: limiter.name, key, at: now });
  }

  /** Takes `actor` out of every index: the next call for its key creates a new actor. */
  forgetActor(actor: KeyActorRef<Grant>, limiter: KeyIndex, key: string, storeKey: string): void {
    this.#live.delete(actor);
    if (limiter.actors.get(key) === actor) limiter.actors.delete(key);
    if (this.#byStoreKey?.get(storeKey) === actor) this.#byStoreKey.delete(storeKey);
  }

  /** What the store keeps of `key` in this process (undefined: nothing, or a store that keeps none). */
  #kept(limiter: KeyIndex, key: string, now: Ms) {
    const host = this.#host;
    return host.store.kept?.(host.storeKey(limiter.name, key), now);
  }

  /**
   * holding tells what `limiter`'s `key` holds now, for `maxKeys`: `'work'` (a live actor that is
   * not idle: a waiter, a batch out, a lease or a timer; or a slot held or a pause the store
   * keeps), `'charges'` (units booked the store keeps: forgetting them resets the key), or
   * `'blank'` (nothing this process keeps: back at full capacity, or kept by a store shared with
   * other processes, such as Redis, which keeps it whatever happens here).
   */
  holding(limiter: KeyIndex, key: string, now: Ms): Holding {
    const actor = limiter.actors.get(key);
    if (actor !== undefined && !isKeyIdle(actor.getSnapshot().context)) return 'work';
    const kept = this.#kept(limiter, key, now);
    if (kept === undefined) return 'blank';
    return kept.inFlight > 0 || kept.pausedMs > 0 ? 'work' : 'charges';
  }

  /**
   * drop forgets `limiter`'s `key`, which holds no work (see {@link holding}): its idle actor is
   * stopped (`evicted`), and state it still had is reset, told by a `forgotten` event with what
   * it held per limit.
   */
  drop(limiter: KeyIndex, key: string, holding: Holding, now: Ms): void {
    const host = this.#host;
    const storeKey = host.storeKey(limiter.name, key);
    const actor = limiter.actors.get(key);
    if (actor !== undefined) this.#stop(actor, limiter, key, storeKey, now);
    else host.store.forget?.(storeKey, now); // back at full capacity, not dropped yet
    if (holding !== 'charges') return;
    const held: Record<string, number> = {};
    if (host.events.observed.value) {
      // A store that keeps state in this process (`kept`) reads it synchronously.
      const reading = host.store.read(storeKey, limiter.policy, now) as Awaited<
        ReturnType<Store['read']>
      >;
      for (const l of reading.limits) held[l.name] = l.capacity - l.remaining;
    }
    void host.store.reset(storeKey, now);
    if (host.events.observed.value)
      host.events.emit('forgotten', { limiter: limiter.name, key, held, at: now });
  }

  /**
   * A key actor failed on an error its own guards did not catch (XState stopped it). It is taken
   * out of the indexes, and its waiters end with the error, so none waits on a dead actor; the
   * next call for the key gets a new actor (the key's state is in the store).
   */
  removeFailed(): void {
    for (const [actor, limiter] of this.#live) {
      const snapshot = actor.getSnapshot() as {
        status: string;
        error?: unknown;
        context: KeyContext<Grant>;
      };
      if (snapshot.status !== 'error') continue;
      const ctx = snapshot.context;
      this.forgetActor(actor, limiter, ctx.key, ctx.storeKey);
      endAll(ctx, asInternalError(`the actor of key ${JSON.stringify(ctx.key)}`, snapshot.error));
    }
  }

  /** close ends every key actor's waiters (LimiterClosedError), stops it, and the sweep. */
  close(): void {
    this.#closed = true;
    if (this.#sweepTimer !== null) this.#host.clock.clearTimeout(this.#sweepTimer);
    this.#sweepTimer = null;
    for (const [actor, limiter] of this.#live) {
      actor.send({ type: 'close' });
      this.#host.root.send({ type: 'stopChild', child: actor });
      limiter.actors.clear();
    }
    this.#live.clear();
    this.#byStoreKey?.clear();
  }
}
