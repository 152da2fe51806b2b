/**
 * SystemCore is what a limiter and its grants need from their system, in a module of its own so
 * that the limiter (src/actors/limiter.ts) and the system (src/actors/system.ts) do not import
 * each other: the system builds limiters, and limiters see the system only through this.
 */
import type { CircuitBreaker } from '../breaker/breaker.js';
import type { LimiterBreaker } from './options.js';
import type { Clock } from '../clock.js';
import type { KeyActorRef } from '../machines/keyContext.js';
import type { TollgateEmitter } from '../observe/events.js';
import type { Policy } from '../limiter/types.js';
import type { Store } from '../store.js';
import type { Grant } from './grant.js';
import type { KeyCap } from './keyCap.js';

/** KeyIndex is a limiter as its system sees it: a name and the live key actors by key. */
export interface KeyIndex {
  readonly name: string;
  /** The policy in force (setLimits replaces it, then tells the live keys). */
  readonly policy: Policy;
  /** Live key actors by the caller's key string; the system adds and removes them. */
  readonly actors: Map<string, KeyActorRef<Grant>>;
  /** The keys counted against the limiter's `maxKeys`; null without a cap. */
  readonly keyCap: KeyCap | null;
}

/** @internal what limiters and grants need from their system. */
export interface SystemCore {
  readonly idPrefix: string;
  readonly clock: Clock;
  readonly events: TollgateEmitter;
  /** The store the system decides with. */
  readonly store: Store;
  storeKey(limiter: string, key: string): string;
  /** Get-or-create of the key's actor, synchronous, so one key never gets two actors. */
  actorFor(limiter: KeyIndex, key: string, storeKey?: string): KeyActorRef<Grant>;
  /** `limiter` has a new policy: its live keys take it through their mailboxes. */
  policyChanged(limiter: KeyIndex): void;
  checkOpen(call: string): void;
  breaker(name: string, breaker: LimiterBreaker): CircuitBreaker;
  /** Calls `listener` once when the system closes; returns what stops that. */
  onClose(listener: () => void): () => void;
}
