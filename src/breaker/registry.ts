/**
 * BreakerRegistry holds the breakers of one owner (a LimiterSystem owns one), by name: one breaker
 * per provider × API key. `get` is get-or-create and fully synchronous, so two callers asking for
 * the same name at once always get the same breaker and no state is lost. Nothing is shared
 * between registries: two systems in one process (or two tests) never see each other's breakers.
 */
import { EventEmitter } from 'eventemitter3';
import type { Clock } from '../clock.js';
import { InvalidArgumentError, LimiterClosedError } from '../errors.js';
import { CircuitBreaker, checkName, type BreakerEvents } from './breaker.js';
import { onBreaker } from '../describe.js';
import { checkClock } from '../checks.js';
import {
  compileBreakerPolicy,
  samePolicy,
  type BreakerPolicy,
  type BreakerPolicySpec,
} from './policy.js';

/**
 * BreakerRegistry: see the file comment.
 *
 * @example
 * const breakers = new BreakerRegistry(clock);
 * const b = breakers.get(`openai/${keyId}`, { failureThreshold: 5, openFor: '30s' });
 * breakers.events.on('stateChange', (e) => console.log(e.name, e.from, '→', e.to));
 * breakers.stopAll();
 */
export class BreakerRegistry {
  /** Every breaker's `stateChange`, relayed; the payload names the breaker. */
  readonly events = new EventEmitter<BreakerEvents>();
  readonly #clock: Clock;
  readonly #breakers = new Map<string, CircuitBreaker>();
  #stopped = false;

  /**
   * Every breaker of the registry runs on `clock`.
   *
   * @throws InvalidArgumentError for a clock that is not a {@link Clock}.
   */
  constructor(clock: Clock) {
    checkClock(clock, { where: 'new BreakerRegistry', path: 'clock' });
    this.#clock = clock;
  }

  /** The number of breakers held. */
  get size(): number {
    return this.#breakers.size;
  }

  /**
   * get returns the breaker named `name`, creating it with `policy` on first use. Asking again
   * with an equal policy (`'30s'` equals `30000`) returns the same object.
   *
   * @throws InvalidArgumentError for an invalid policy or name, or a policy different from the one
   *   the breaker was created with; LimiterClosedError after `stopAll()`.
   */
  get(name: string, policy: BreakerPolicySpec): CircuitBreaker {
    checkName(name, 'breakers.get');
    if (this.#stopped) throw new LimiterClosedError(onBreaker(name, 'get'));
    return this.getCompiled(
      name,
      compileBreakerPolicy(policy, { where: onBreaker(name), path: '' }),
    );
  }

  /**
   * @internal `get` with a policy compiled already: a limiter compiles its breaker option once,
   * and each acquire looks its key's breaker up by identity of that policy, compiling nothing.
   */
  getCompiled(name: string, policy: BreakerPolicy): CircuitBreaker {
    if (this.#stopped) throw new LimiterClosedError(onBreaker(name, 'get'));
    const existing = this.#breakers.get(name);
    if (existing !== undefined) {
      if (existing.policy !== policy && !samePolicy(existing.policy, policy)) {
        throw new InvalidArgumentError(
          `tollgate: ${onBreaker(name)} exists with policy ${JSON.stringify(existing.policy)}, asked with ${JSON.stringify(policy)}; one name, one policy`,
        );
      }
      return existing;
    }
    const breaker = CircuitBreaker.ofCompiled(name, policy, this.#clock);
    breaker.events.on('stateChange', (e) => this.events.emit('stateChange', e));
    this.#breakers.set(name, breaker);
    return breaker;
  }

  /** peek returns the breaker named `name` if it exists, without creating it. */
  peek(name: string): CircuitBreaker | undefined {
    return this.#breakers.get(name);
  }

  /** delete stops the breaker named `name` and forgets it (e.g. a revoked API key). */
  delete(name: string): boolean {
    const breaker = this.#breakers.get(name);
    if (breaker === undefined) return false;
    this.#breakers.delete(name);
    breaker.stop();
    return true;
  }

  /**
   * deleteIfIdle forgets the breaker named `name` when it is idle (closed, no permit out, no
   * failure counted: see {@link CircuitBreaker.isIdle}), as the limiter system does when the
   * breaker's key goes idle. Returns whether it was forgotten.
   */
  deleteIfIdle(name: string): boolean {
    const breaker = this.#breakers.get(name);
    if (breaker === undefined || !breaker.isIdle) return false;
    return this.delete(name);
  }

  /** stopAll stops every breaker (see {@link CircuitBreaker.stop}); later `get` calls throw. Idempotent. */
  stopAll(): void {
    this.#stopped = true;
    for (const breaker of this.#breakers.values()) breaker.stop();
    this.#breakers.clear();
  }
}
