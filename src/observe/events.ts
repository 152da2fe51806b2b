/**
 * The events a limiter system emits, typed for eventemitter3. Every payload names its limiter and
 * key. Facts are built only while somebody listens (or a `stats$` is subscribed): an unobserved
 * system pays nothing for them.
 */
import { EventEmitter } from 'eventemitter3';
import type { KeyEmitted } from '../machines/keyFacts.js';

type WithLimiter<T> = T extends unknown ? Omit<T, 'type'> & { readonly limiter: string } : never;
type Payload<K extends KeyEmitted['type']> = WithLimiter<Extract<KeyEmitted, { type: K }>>;

/** GrantedEvent: a request was granted (`waitedMs` after it reached the key's mailbox). */
export type GrantedEvent = Payload<'granted'>;
/** RefusedEvent: a `tryAcquire` did not fit. */
export type RefusedEvent = Payload<'refused'>;
/** QueuedEvent: a request joined the key's queue. */
export type QueuedEvent = Payload<'queued'>;
/** TimeoutEvent: a waiter's timeout passed. */
export type TimeoutEvent = Payload<'timeout'>;
/** AbortedEvent: a waiter's signal aborted. */
export type AbortedEvent = Payload<'aborted'>;
/** SettledEvent: a grant was settled from `estimated` to `actual` units (per limit). */
export type SettledEvent = Payload<'settled'>;
/** ReleasedEvent: a concurrency slot was given back; `expired` when its lease ran out. */
export type ReleasedEvent = Payload<'released'>;
/** CancelledEvent: a grant was cancelled and everything it booked given back. */
export type CancelledEvent = Payload<'cancelled'>;
/** ResetEvent: a key was reset. */
export type ResetEvent = Payload<'reset'>;
/**
 * PausedEvent: the key was paused for `forMs` from `at` (`limiter.pause`, or `feedback` of a
 * provider's 429, at most the limiter's `maxPause`): its requests wait until then.
 */
export type PausedEvent = Payload<'paused'>;
/**
 * ChargedEvent: `feedback` booked `units` (one amount per limit, in the policy's order) on the key
 * so that what it has left matches what the provider says remains.
 */
export type ChargedEvent = Payload<'charged'>;
/** StoreErrorEvent: the store failed a call for this key. */
export type StoreErrorEvent = Payload<'storeError'>;
/** EvictedEvent: an idle key's actor was stopped; its state stays in the store as plain data. */
export interface EvictedEvent {
  readonly limiter: string;
  readonly key: string;
  readonly at: number;
}

/**
 * DataLostEvent: the store found that limit state it kept was lost behind tollgate's back (Redis:
 * a FLUSHALL, a restart without persistence, an eviction under `maxmemory`), noticed by the first
 * call after the loss. The keys go on from the fresh state: each admits at most one limit's worth
 * more than it would have, and nothing booked before is given back to it.
 */
export interface DataLostEvent {
  /** The store's name (`'redis'`). */
  readonly store: string;
  /**
   * `'flushed'`: everything in `slot` (everywhere, on a single Redis) was lost; `'evicted'`: the
   * state of `keys` was lost (evicted, or deleted by someone else).
   */
  readonly reason: 'flushed' | 'evicted';
  /** The keys known lost (`'evicted'`); empty for `'flushed'`, where any key may be. */
  readonly keys: readonly { readonly limiter: string; readonly key: string }[];
  /** The Redis Cluster slot; `null` on a single Redis. */
  readonly slot: number | null;
  readonly at: number;
}

/**
 * ForgottenEvent: a key of a limiter at its `maxKeys` was forgotten to make room for a new key
 * (`onMaxKeys: 'evict-lru'`), though it still had units booked: `held` says how many per limit
 * name, as of `at`. For that key it counts as a reset: it starts again at full capacity, and a
 * grant of it settled later gives nothing back (an extra charge still books). A key with a waiter,
 * a call in flight with a slot, or a pause is never forgotten; a key with nothing booked is
 * forgotten without this event (its idle actor, if any, is `evicted`).
 */
export interface ForgottenEvent {
  readonly limiter: string;
  readonly key: string;
  readonly held: Readonly<Record<string, number>>;
  readonly at: number;
}

/** BreakerEvent: a key's circuit breaker changed state. `breaker` is `limiter/key`. */
export interface BreakerEvent {
  readonly breaker: string;
  readonly from: 'closed' | 'open' | 'halfOpen';
  readonly to: 'closed' | 'open' | 'halfOpen';
  readonly at: number;
}

/** TollgateEvents is the eventemitter3 event map of `system.events`. */
export interface TollgateEvents {
  granted: [GrantedEvent];
  refused: [RefusedEvent];
  queued: [QueuedEvent];
  timeout: [TimeoutEvent];
  aborted: [AbortedEvent];
  settled: [SettledEvent];
  released: [ReleasedEvent];
  cancelled: [CancelledEvent];
  reset: [ResetEvent];
  paused: [PausedEvent];
  charged: [ChargedEvent];
  storeError: [StoreErrorEvent];
  evicted: [EvictedEvent];
  forgotten: [ForgottenEvent];
  breaker: [BreakerEvent];
  dataLost: [DataLostEvent];
}

/** The names of {@link TollgateEvents}. */
export type TollgateEventName = keyof TollgateEvents;

/**
 * TollgateEmitter is an eventemitter3 emitter that knows whether anybody listens, so the key
 * actors build facts only when they will be heard.
 */
export class TollgateEmitter extends EventEmitter<TollgateEvents> {
  /** @internal shared with every key actor of the system. */
  readonly observed: { value: boolean; watchers: number } = { value: false, watchers: 0 };

  override on<T extends TollgateEventName>(
    event: T,
    fn: EventEmitter.EventListener<TollgateEvents, T>,
    context?: unknown,
  ): this {
    super.on(event, fn, context);
    this.#update();
    return this;
  }

  override addListener<T extends TollgateEventName>(
    event: T,
    fn: EventEmitter.EventListener<TollgateEvents, T>,
    context?: unknown,
  ): this {
    return this.on(event, fn, context);
  }

  override once<T extends TollgateEventName>(
    event: T,
    fn: EventEmitter.EventListener<TollgateEvents, T>,
    context?: unknown,
  ): this {
    super.once(event, fn, context);
    this.#update();
    return this;
  }

  override off<T extends TollgateEventName>(
    event: T,
    fn?: EventEmitter.EventListener<TollgateEvents, T>,
    context?: unknown,
    once?: boolean,
  ): this {
    super.off(event, fn, context, once);
    this.#update();
    return this;
  }

  override removeListener<T extends TollgateEventName>(
    event: T,
    fn?: EventEmitter.EventListener<TollgateEvents, T>,
    context?: unknown,
    once?: boolean,
  ): this {
    return this.off(event, fn, context, once);
  }

  override removeAllListeners(event?: TollgateEventName): this {
    super.removeAllListeners(event);
    this.#update();
    return this;
  }

  /** @internal a stats$ subscription counts as a listener while it lasts. */
  watch(): () => void {
    this.observed.watchers++;
    this.#update();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.observed.watchers--;
      this.#update();
    };
  }

  /** @internal called when the emitter goes from unobserved to observed. */
  onObserved: (() => void) | undefined;

  #update(): void {
    const was = this.observed.value;
    this.observed.value = this.observed.watchers > 0 || this.eventNames().length > 0;
    if (!was && this.observed.value) this.onObserved?.();
  }
}
