/**
 * The options of the Redis store, and their check: what `redisStore(options)` accepts, read once
 * into the {@link StoreSettings} the store keeps. Bad options throw, before the store touches the
 * client.
 */
import type { RedisClient } from './client.js';
import type { Clock } from '../clock.js';
import type { Place } from '../describe.js';
import { InvalidArgumentError } from '../errors.js';
import type { Duration, Ms } from '../limiter/types.js';
import { readDuration } from '../limiter/units.js';
import { checkPrefix } from './keys.js';

/** Who refuses a bad option, in messages. */
const WHERE = 'redisStore';

const at = (path: string): Place => ({ where: WHERE, path });

/** UnavailablePolicy is what happens to requests while Redis cannot answer. */
export type UnavailablePolicy = 'fail-closed' | 'fail-open' | 'insurance';

/** RedisStoreOptions are the options of {@link redisStore}. */
export interface RedisStoreOptions {
  /** An ioredis client: a `Redis` or a `Cluster`. The store does not close it. */
  readonly client: RedisClient;
  /** Prepended to every Redis key and channel; no `{` or `}`. @default 'tollgate:' */
  readonly prefix?: string;
  /**
   * Whose clock decides. `'redis'`: Redis `TIME`, the only right choice across machines.
   * `'runtime'`: the `now` the runtime passes (its injected clock), for tests at fixed instants.
   * @default 'redis'
   */
  readonly time?: 'redis' | 'runtime';
  /** A call that takes longer counts as Redis being unavailable. @default '1s' */
  readonly timeout?: Duration;
  /**
   * What requests get while Redis is unavailable: `'fail-closed'` rejects them with
   * StoreUnavailableError, `'fail-open'` grants them all, `'insurance'` decides them in memory
   * at a fraction of every limit. What `'fail-open'` and `'insurance'` grant is booked into Redis
   * once it answers again. @default 'fail-closed'
   */
  readonly onUnavailable?: UnavailablePolicy;
  /**
   * With `'insurance'`: the fraction of every limit the in-memory stand-in allows (rounded down,
   * at least 1 per limit). @default 0.5, or `1 / processes`
   */
  readonly insuranceFraction?: number;
  /**
   * With `'insurance'`: how many processes share the limits in this Redis. Each one's stand-in
   * then allows `1 / processes` of every limit, so that together they admit at most the limit
   * while Redis is away (rounded down per process; a limit under `processes` still allows 1 per
   * process). Give this or `insuranceFraction`, not both.
   */
  readonly processes?: number;
  /** After a failure, how long the store answers by its policy before asking Redis again. @default '1s' */
  readonly retryInterval?: Duration;
  /**
   * Durability: how many replicas must hold every write (a decision, settle, release, reset or
   * pause) before the store counts it done, by Redis `WAIT` on the same connection. A write that
   * fewer replicas confirm within `timeout` fails as an outage (its grants are not given, by the
   * `onUnavailable` policy), so a failover to a replica loses no acknowledged grant. Each write
   * then costs a replication round trip, and a lagging replica holds the store's connection for
   * up to `timeout`. A single Redis or a Sentinel client only (not a Cluster). @default 0
   */
  readonly replicas?: number;
  /**
   * The lease of a concurrency slot whose limiter sets no `leaseTtl` (the store's
   * `defaultLeaseMs`): a slot whose holder died, or whose decision's answer was lost, comes back
   * after this. At least 1 ms. @default '10m'
   */
  readonly leaseTtl?: Duration;
  /**
   * The clock that times the store's calls (the `timeout`, the retries of a release). Without
   * one, the store takes its system's clock (see `useClock`), or the system clock.
   * @default the system's clock
   */
  readonly clock?: Clock;
}

/** StoreSettings are {@link RedisStoreOptions} checked, with their defaults applied. */
export interface StoreSettings {
  readonly client: RedisClient;
  readonly prefix: string;
  /** Whether the runtime's `now` decides (`time: 'runtime'`) rather than Redis `TIME`. */
  readonly runtimeTime: boolean;
  readonly timeoutMs: Ms;
  readonly retryMs: Ms;
  readonly defaultLeaseMs: Ms;
  readonly policy: UnavailablePolicy;
  /** The insurance fraction, in (0, 1]. */
  readonly fraction: number;
  /** The `processes` option (the insurance store then divides every limit by it), if given. */
  readonly processes: number | undefined;
  /** Replicas that must confirm each write (`WAIT`); 0: none. */
  readonly replicas: number;
  /** The `clock` option: undefined when none was given (the store then takes its system's). */
  readonly clock: Clock | undefined;
}

/**
 * readOptions checks `options` and applies the defaults.
 *
 * @throws InvalidArgumentError when there is no ioredis client, the prefix holds `{` or `}`,
 *   `time`, `onUnavailable` or `clock` is none of the allowed values, a duration does not parse,
 *   `insuranceFraction` is not in (0, 1], `processes` is not a whole number at least 1, or both
 *   of these are given, or `replicas` is not a whole number 0 or more (or above 0 on a Cluster).
 */
export function readOptions(options: RedisStoreOptions): StoreSettings {
  const bad = (path: string, value: unknown, expected: string): never => {
    throw new InvalidArgumentError({ where: WHERE, path, value, expected });
  };
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    bad('options', options, 'an object { client, … } with an ioredis Redis or Cluster');
  }
  if (typeof options.client?.defineCommand !== 'function') {
    bad(
      'options.client',
      options.client,
      ioredisMissing()
        ? 'an ioredis Redis or Cluster (ioredis is not installed: npm install ioredis)'
        : 'an ioredis Redis or Cluster',
    );
  }
  // Only undefined means "the default": null is refused like any other bad value.
  const or = <T>(value: T | undefined, fallback: T): T => (value === undefined ? fallback : value);
  const prefix = checkPrefix(or(options.prefix, 'tollgate:'));
  const time = or(options.time, 'redis');
  if (time !== 'redis' && time !== 'runtime') bad('options.time', time, "'redis' or 'runtime'");
  const timeoutMs = readDuration(or(options.timeout, '1s'), at('options.timeout'));
  const retryMs = readDuration(or(options.retryInterval, '1s'), at('options.retryInterval'));
  const defaultLeaseMs = readDuration(or(options.leaseTtl, '10m'), at('options.leaseTtl'));
  const policy = or(options.onUnavailable, 'fail-closed');
  if (policy !== 'fail-closed' && policy !== 'fail-open' && policy !== 'insurance') {
    bad('options.onUnavailable', policy, "'fail-closed', 'fail-open' or 'insurance'");
  }
  const processes = options.processes;
  if (processes !== undefined) {
    if (typeof processes !== 'number' || !Number.isSafeInteger(processes) || processes < 1) {
      bad('options.processes', processes, 'a whole number of processes, at least 1');
    }
    if (options.insuranceFraction !== undefined) {
      bad(
        'options.insuranceFraction',
        options.insuranceFraction,
        'no insuranceFraction with processes (the fraction is 1 / processes): give one of them',
      );
    }
  }
  const fraction = or(options.insuranceFraction, processes === undefined ? 0.5 : 1 / processes);
  if (typeof fraction !== 'number' || !(fraction > 0 && fraction <= 1)) {
    bad(
      'options.insuranceFraction',
      fraction,
      'a share of every limit above 0 and at most 1, e.g. 0.5',
    );
  }
  const replicas = or(options.replicas, 0);
  if (typeof replicas !== 'number' || !Number.isSafeInteger(replicas) || replicas < 0) {
    bad('options.replicas', replicas, 'a whole number of replicas, 0 or more');
  }
  if (replicas > 0 && options.client.isCluster === true) {
    bad(
      'options.replicas',
      replicas,
      '0 with a Cluster client (WAIT must follow the write on its connection): a single Redis or a Sentinel client',
    );
  }
  const clock = options.clock;
  if (
    clock !== undefined &&
    (typeof clock !== 'object' ||
      clock === null ||
      typeof clock.setTimeout !== 'function' ||
      typeof clock.clearTimeout !== 'function')
  ) {
    bad('options.clock', clock, 'a Clock { now, setTimeout, clearTimeout }');
  }
  return {
    client: options.client,
    prefix,
    runtimeTime: time === 'runtime',
    timeoutMs,
    retryMs,
    defaultLeaseMs,
    policy,
    fraction,
    processes,
    replicas,
    clock,
  };
}

/** Whether ioredis cannot be found from here (the error for a missing client then says so). */
function ioredisMissing(): boolean {
  if (typeof import.meta.resolve !== 'function') return false; // a bundle: no way to tell
  try {
    import.meta.resolve('ioredis');
    return false;
  } catch {
    return true;
  }
}
