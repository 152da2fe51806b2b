/**
 * What a key actor tells the world, as plain data: the facts it emits and the refusal name of a
 * queue. A module of its own, with no XState type, because the public types (the system's event
 * payloads, `QUEUED`) are built from it and a consumer's compiler should never have to read
 * XState's declarations to check them.
 */
import type { Ms, Units } from '../limiter/types.js';

/** The refusal `limit` of a `tryAcquire` that found waiters queued ahead of it. */
export const QUEUED = 'queue';

/**
 * Facts a key actor emits (through XState `emit`); the system relays them to its event emitter.
 * Every emit is guarded by `ctx.rt.observed.value`, so an unobserved system does not even build
 * the event object.
 */
export type KeyEmitted =
  | { type: 'granted'; key: string; id: string; units: Units; waitedMs: Ms; at: Ms }
  | { type: 'refused'; key: string; retryAfterMs: Ms; limit: string; at: Ms }
  | { type: 'queued'; key: string; id: string; queueLength: number; at: Ms }
  | { type: 'timeout'; key: string; id: string; at: Ms }
  | { type: 'aborted'; key: string; id: string; at: Ms }
  | { type: 'settled'; key: string; id: string; estimated: Units; actual: Units; at: Ms }
  | { type: 'released'; key: string; id: string; expired: boolean; at: Ms }
  | { type: 'cancelled'; key: string; id: string; at: Ms }
  | { type: 'reset'; key: string; at: Ms }
  | { type: 'paused'; key: string; forMs: Ms; at: Ms }
  | { type: 'charged'; key: string; units: Units; at: Ms }
  | { type: 'storeError'; key: string; error: Error; at: Ms };
