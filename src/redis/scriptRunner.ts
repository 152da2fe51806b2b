/**
 * How the Redis store sends a script: under its `timeout`, timed by its clock, and not at all once
 * the store is closed. A call that fails for an outage (see storeError.ts) marks Redis down for
 * `retryInterval` from when the failure was noticed; while Redis is down, the store answers
 * decisions by its `onUnavailable` policy instead of asking it.
 */
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';
import { StoreUnavailableError } from '../errors.js';
import type { Ms } from '../limiter/types.js';
import type { Redis } from 'ioredis';
import type { RedisClient } from './client.js';
import type { StoreSettings } from './redisStoreOptions.js';
import { defineScripts, type ScriptClient, type ScriptName } from './scripts.js';
import { storeError } from './storeError.js';

/**
 * ScriptRunner runs the store's scripts on its client (defining them there first), and keeps
 * whether Redis is down and whether the store is closed.
 */
export class ScriptRunner {
  /** The client with the scripts defined; a call made on it directly has no timeout. */
  readonly scripts: ScriptClient;
  readonly #timeoutMs: Ms;
  readonly #retryMs: Ms;
  /** Replicas that must confirm each write (the `replicas` option); 0: none. */
  readonly #replicas: number;
  /** The client, for `WAIT` (a single Redis whenever #replicas > 0). */
  readonly #client: RedisClient;
  /** What times the calls: the `clock` option, else the system's (useClock), else the system clock. */
  #clock: Clock;
  /** Whether the `clock` option was given: then the system's clock does not replace it. */
  readonly #ownClock: boolean;
  /** The instant (runtime clock) before which Redis is not asked again after a failure. */
  #downUntil = -Infinity;
  #closed = false;

  constructor(settings: StoreSettings) {
    this.#timeoutMs = settings.timeoutMs;
    this.#retryMs = settings.retryMs;
    this.#replicas = settings.replicas;
    this.#client = settings.client;
    this.#clock = settings.clock ?? systemClock;
    this.#ownClock = settings.clock !== undefined;
    this.scripts = defineScripts(settings.client);
  }

  /**
   * useClock takes the system's clock to time the calls, unless the store was given its own
   * (`clock` option), which it keeps.
   */
  useClock(clock: Clock): void {
    if (!this.#ownClock) this.#clock = clock;
  }

  /** isDown tells whether Redis is marked down at `now` (after a failure). */
  isDown(now: Ms): boolean {
    return now < this.#downUntil;
  }

  /** closed tells whether {@link close} was called: no call is sent any more. */
  get closed(): boolean {
    return this.#closed;
  }

  /** close stops sending: every later call rejects with StoreUnavailableError. */
  close(): void {
    this.#closed = true;
  }

  /**
   * send runs one script (its keys first in `args`) under the store's timeout. The command is
   * issued synchronously, before the first `await`: the flush relies on it for the order of a
   * key's calls. A failure or a timeout marks Redis down for `retryInterval` from when it was
   * noticed, and rejects with a StoreUnavailableError. An error the script itself raised is an
   * answer, not an outage: it rejects with a StoreRejectedError and marks nothing (see
   * storeError.ts). `now` is when the call started, on the runtime's clock.
   */
  async send<T>(op: string, name: ScriptName, args: (string | number)[], now: Ms): Promise<T> {
    if (this.#closed) throw new StoreUnavailableError('the redis store is closed');
    const clock = this.#clock;
    let timedOut = false;
    let timer: unknown;
    const timeout = new Promise<never>((_, reject) => {
      timer = clock.setTimeout(() => {
        timedOut = true;
        reject(new StoreUnavailableError(`redis did not answer within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
    });
    try {
      const reply = this.scripts[name](...args);
      // Issued right behind the script on the same connection, so it waits for that write.
      const confirmed = name === 'tollgateRead' ? undefined : this.#waitReplicas();
      const result = (await Promise.race([reply, timeout])) as T;
      if (confirmed !== undefined) {
        const n = await Promise.race([confirmed, timeout]);
        if (n < this.#replicas) {
          throw new StoreUnavailableError(
            `redis ${op}: ${n} of ${this.#replicas} replicas confirmed the write within ${this.#timeoutMs} ms`,
          );
        }
      }
      return result;
    } catch (e) {
      const { error, outage } = storeError(op, e, timedOut);
      if (outage) {
        // `now` is when the call started: a timeout was noticed timeoutMs later.
        this.#downUntil = Math.max(
          this.#downUntil,
          now + (timedOut ? this.#timeoutMs : 0) + this.#retryMs,
        );
      }
      throw error;
    } finally {
      clock.clearTimeout(timer);
    }
  }

  /**
   * waitReplicas sends `WAIT replicas timeout` when the store asks for replicas, and resolves with
   * how many confirmed; undefined when it asks for none.
   */
  #waitReplicas(): Promise<number> | undefined {
    if (this.#replicas === 0) return undefined;
    const waited = (this.#client as Redis).wait(this.#replicas, this.#timeoutMs);
    waited.catch(() => {}); // awaited only when the script answered: a failure is the script's
    return waited;
  }

  /**
   * waitRetryInterval resolves after `retryInterval` on the store's clock (on a housekeeping
   * timer when the clock has them).
   */
  waitRetryInterval(): Promise<void> {
    const clock = this.#clock;
    return new Promise<void>((r) => {
      (clock.setHousekeepingTimeout ?? clock.setTimeout).call(clock, r, this.#retryMs);
    });
  }
}
