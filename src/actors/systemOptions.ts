/**
 * What `createLimiterSystem(options)` accepts, and its check: read once into the settings the
 * system keeps. Bad options throw before the system starts anything.
 */
import { checkClock } from '../checks.js';
import { InvalidArgumentError } from '../errors.js';
import { parseDuration } from '../limiter/units.js';
import type { Duration, Ms } from '../limiter/types.js';
import { memoryStore, type MemorySnapshot } from '../memory/memoryStore.js';
import type { Clock } from '../clock.js';
import type { Store } from '../store.js';
import { checkStore } from './runtime.js';

/** Options of {@link createLimiterSystem}. */
export interface LimiterSystemOptions {
  /** Where limit state lives. @default memoryStore() */
  readonly store?: Store;
  /** The source of time and timers; tests pass a VirtualClock. @default systemClock */
  readonly clock?: Clock;
  /**
   * A key actor with no waiter, timer or lease for this long is stopped; its state stays in the
   * store as plain data (the memory store drops it once back at full capacity). A live actor
   * costs a few KB and a new one ~20 µs, so keep this short when keys are many. Minimum 1 ms.
   * @default '2s'
   */
  readonly idleTimeout?: Duration;
  /**
   * With a store shared across processes (Redis), a blocked queue asks again at least this often,
   * because another process may free capacity without this one hearing of it. @default '250ms'
   */
  readonly pollInterval?: Duration;
  /** State to start from, as returned by `system.snapshot()` (memory store only). */
  readonly snapshot?: SystemSnapshot;
  /**
   * XState's inspection of the key actors: what each was sent and what it became, in the same
   * stream as an app's own actors (pass the `inspect` of `@statelyai/inspect`, or a function). Off,
   * it costs nothing. @default none
   */
  readonly inspect?: Inspector;
}

/**
 * An event of XState's inspection (its `InspectionEvent`: `@xstate.actor`, `@xstate.event`,
 * `@xstate.snapshot`, `@xstate.microstep`, `@xstate.action`), typed by its `type` alone here, so
 * that tollgate's main declarations name no XState type.
 */
export interface InspectionEvent {
  readonly type: string;
}

/** Takes XState's inspection events: a function, or an observer with `next`. */
export type Inspector =
  | Bivariant<(event: InspectionEvent) => void>
  | { readonly next?: Bivariant<(event: InspectionEvent) => void> };

/** `F` with its parameter checked both ways, so a function of XState's own event type fits. */
type Bivariant<F extends (event: never) => void> = {
  check(...args: Parameters<F>): void;
}['check'];

/**
 * Eight random hex digits and a dash, so that grant ids of two systems never collide. Web Crypto
 * (`globalThis.crypto`, in Node 20, Deno, Bun, browsers and edge runtimes), not `node:crypto`:
 * the core runs without Node's built-ins.
 */
export function randomPrefix(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(4));
  let hex = '';
  for (const b of bytes) hex += b.toString(16).padStart(2, '0');
  return hex + '-';
}

/** SystemSnapshot is the JSON form of a system's memory store. */
export interface SystemSnapshot {
  readonly version: 1;
  readonly store: MemorySnapshot;
}

/** SystemSettings are {@link LimiterSystemOptions} checked, with their defaults applied. */
export interface SystemSettings {
  readonly idleMs: Ms;
  readonly pollMs: Ms;
  readonly store: Store;
  /** XState's inspection, when asked for. */
  readonly inspect: Inspector | undefined;
  /** Whether the system made its store (a memory store), and so closes it. */
  readonly ownsStore: boolean;
}

/**
 * readSystemOptions checks `options` and applies the defaults.
 *
 * @throws InvalidArgumentError for options that are not an object, a duration that does not
 *   parse, a clock that is not a {@link Clock}, a store that is not a {@link Store}, a snapshot
 *   that is not a system snapshot, or a snapshot given with a store.
 */
export function readSystemOptions(options: LimiterSystemOptions): SystemSettings {
  const where = 'createLimiterSystem';
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidArgumentError({
      where,
      path: 'options',
      value: options,
      expected: "an object of options, e.g. { clock, idleTimeout: '2s' }",
    });
  }
  // Only undefined means "the default": null is refused like any other value that is no duration.
  const idleMs = parseDuration(options.idleTimeout === undefined ? '2s' : options.idleTimeout, {
    where,
    path: 'options.idleTimeout',
  });
  const pollMs = parseDuration(
    options.pollInterval === undefined ? '250ms' : options.pollInterval,
    { where, path: 'options.pollInterval' },
  );
  if (options.clock !== undefined) checkClock(options.clock, { where, path: 'options.clock' });
  const { snapshot } = options;
  if (
    snapshot !== undefined &&
    (typeof snapshot !== 'object' ||
      snapshot === null ||
      snapshot.version !== 1 ||
      typeof snapshot.store !== 'object' ||
      snapshot.store === null)
  ) {
    throw new InvalidArgumentError({
      where,
      path: 'options.snapshot',
      value: snapshot,
      expected: 'a system snapshot { version: 1, store }, from system.snapshot()',
    });
  }
  if (options.store !== undefined && options.snapshot !== undefined) {
    throw new InvalidArgumentError({
      where,
      path: 'options.snapshot',
      value: options.snapshot,
      problem: 'is given with options.store',
      expected: 'one of them: a snapshot restores the memory store',
    });
  }
  if (options.store !== undefined) checkStore(options.store);
  const { inspect } = options;
  if (
    inspect !== undefined &&
    typeof inspect !== 'function' &&
    (typeof inspect !== 'object' || inspect === null || typeof inspect.next !== 'function')
  ) {
    throw new InvalidArgumentError({
      where,
      path: 'options.inspect',
      value: inspect,
      expected: 'a function of an inspection event, or an observer { next(event) }',
    });
  }
  return {
    inspect,
    idleMs,
    pollMs,
    store: options.store ?? memoryStore(snapshot === undefined ? undefined : snapshot.store),
    ownsStore: options.store === undefined,
  };
}
