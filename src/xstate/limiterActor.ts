/**
 * A limiter as XState actor logic (#16): an app's own machines spawn or invoke it, ask by event
 * and get their grants as events, in their own statechart. Each spawned actor is one asker's
 * client of the limiter: it replies to the actor that spawned it, and only to it, and when that
 * actor stops (and so its children), what it waits for is withdrawn and what it holds released.
 *
 * Every request goes through the limiter's promise facade, so an actor's requests and the
 * facade's calls on one key wait in one queue, in one order, through the key's mailbox.
 *
 *   const agent = setup({ actors: { limiter: limiterActor(openai) } }).createMachine({
 *     entry: spawnChild('limiter', { id: 'limiter' }),
 *     on: {
 *       ask: { actions: sendTo('limiter', { type: 'tollgate.acquire', id: 'q1', key: 'gpt-4o' }) },
 *       'tollgate.granted': { actions: ({ event }) => call(event.grant) },
 *     },
 *   });
 */
import { fromCallback, type CallbackActorLogic, type EventObject } from 'xstate';
import type { Grant } from '../actors/grant.js';
import type { Limiter } from '../actors/limiter.js';
import {
  AcquireAbortedError,
  AcquireTimeoutError,
  InvalidArgumentError,
  GrantStateError,
} from '../errors.js';
import type { CostSpec, Duration, Ms } from '../limiter/types.js';
import { onLimiter, quote } from '../describe.js';

/** Fields every request names: the asker's `id` for it, echoed in its reply. */
interface Asked {
  /** The asker's name for the request, unique among its requests still waiting or held. */
  readonly id: string;
}

/**
 * Ask for a grant of `cost` on `key`, waiting in the key's queue (as `limiter.acquire`). The reply
 * is one of `tollgate.granted`, `tollgate.timeout`, `tollgate.aborted` (a `tollgate.cancel` of it
 * while it waited) or `tollgate.failed`.
 */
export interface AcquireRequest extends Asked {
  readonly type: 'tollgate.acquire';
  readonly key: string;
  readonly cost?: CostSpec;
  readonly priority?: number;
  /** Give up after this long: `tollgate.timeout`. @default no timeout */
  readonly timeout?: Duration;
}

/**
 * Ask for a grant only if it fits now (as `limiter.tryAcquire`): `tollgate.granted`,
 * `tollgate.refused` or `tollgate.failed`.
 */
export interface TryAcquireRequest extends Asked {
  readonly type: 'tollgate.tryAcquire';
  readonly key: string;
  readonly cost?: CostSpec;
  readonly priority?: number;
}

/** Settle the grant of request `id` with what the call used (as `grant.settle`). */
export interface SettleRequest extends Asked {
  readonly type: 'tollgate.settle';
  readonly actual: CostSpec;
}

/** The call of request `id` ended: give its slot back (as `grant.release`); usage stays booked. */
export interface ReleaseRequest extends Asked {
  readonly type: 'tollgate.release';
}

/**
 * Withdraw request `id`: while it waits, it ends with `tollgate.aborted` and books nothing; once
 * granted and not settled, everything it booked is given back (as `grant.cancel`), with no reply.
 */
export interface CancelRequest extends Asked {
  readonly type: 'tollgate.cancel';
}

/** LimiterRequest is every event a {@link limiterActor} takes. */
export type LimiterRequest =
  AcquireRequest | TryAcquireRequest | SettleRequest | ReleaseRequest | CancelRequest;

/**
 * The grant of request `id`. The actor holds it for the asker until `tollgate.release` or
 * `tollgate.cancel` of `id`, or the asker's stop, which releases it. The grant's own methods work
 * too, but only those events free the id (and what the actor keeps of it).
 */
export interface GrantedReply {
  readonly type: 'tollgate.granted';
  readonly id: string;
  readonly key: string;
  readonly grant: Grant;
}

/** A `tollgate.tryAcquire` that did not fit: retry after `retryAfterMs`; `limit` is what held it. */
export interface RefusedReply {
  readonly type: 'tollgate.refused';
  readonly id: string;
  readonly key: string;
  readonly retryAfterMs: Ms;
  readonly limit: string;
}

/** A `tollgate.acquire` whose timeout passed: it booked nothing. */
export interface TimeoutReply {
  readonly type: 'tollgate.timeout';
  readonly id: string;
  readonly key: string;
  readonly error: AcquireTimeoutError;
}

/** A `tollgate.acquire` withdrawn by `tollgate.cancel` while it waited: it booked nothing. */
export interface AbortedReply {
  readonly type: 'tollgate.aborted';
  readonly id: string;
  readonly key: string;
}

/**
 * A request that could not be served: bad input (InvalidArgumentError,
 * CostExceedsCapacityError), a full queue, an open circuit, a closed system, a store that failed;
 * or a settle, release or cancel of an id the actor does not hold (GrantStateError).
 */
export interface FailedReply {
  readonly type: 'tollgate.failed';
  readonly id: string;
  /** The type of the event that failed: `'tollgate.acquire'`, `'tollgate.settle'`, … */
  readonly request: string;
  readonly error: Error;
}

/** LimiterReply is every event a {@link limiterActor} sends back to the actor that spawned it. */
export type LimiterReply = GrantedReply | RefusedReply | TimeoutReply | AbortedReply | FailedReply;

/** The logic {@link limiterActor} returns: spawn or invoke it; it takes {@link LimiterRequest}s. */
export type LimiterActorLogic = CallbackActorLogic<LimiterRequest>;

/**
 * limiterActor is `limiter` as XState actor logic, for an app's own machines to spawn or invoke.
 * Each spawned actor serves the actor that spawned it: it takes {@link LimiterRequest} events and
 * sends that actor {@link LimiterReply} events, exactly one per acquire and tryAcquire (none for
 * a request withdrawn by its asker's stop). When it stops (its parent stopped, or left the state
 * that invoked it): requests still waiting are withdrawn and book nothing; grants it holds are
 * released, their estimate booked, as `limiter.run` does when the call throws; a grant that comes
 * after the stop is cancelled; and nothing is sent to the stopped asker.
 *
 * @example
 * const agent = setup({ actors: { limiter: limiterActor(openai) } }).createMachine({
 *   invoke: { src: 'limiter', id: 'limiter' },
 *   entry: sendTo('limiter', { type: 'tollgate.acquire', id: 'q1', key: 'gpt-4o', cost: { tokens: 900 } }),
 *   on: { 'tollgate.granted': { actions: ({ event }) => start(event.grant) } },
 * });
 */
export function limiterActor(limiter: Limiter): LimiterActorLogic {
  return fromCallback<LimiterRequest>(({ sendBack, receive }) => {
    const client = new Client(limiter, sendBack);
    receive((event) => client.take(event));
    return () => client.stop();
  });
}

/** What one spawned actor keeps: the requests of its asker that wait, and the grants it holds. */
class Client {
  readonly #limiter: Limiter;
  readonly #sendBack: (event: EventObject) => void;
  /** Acquires waiting, by id: their abort withdraws them. */
  readonly #waiting = new Map<string, AbortController>();
  /** Grants given and not ended through this actor, by id. */
  readonly #held = new Map<string, Grant>();
  /** Ids of tries being decided (a try cannot be withdrawn, but its id is taken meanwhile). */
  readonly #trying = new Set<string>();
  #stopped = false;

  constructor(limiter: Limiter, sendBack: (event: EventObject) => void) {
    this.#limiter = limiter;
    this.#sendBack = sendBack;
  }

  take(event: LimiterRequest): void {
    if (this.#stopped) return;
    if (typeof event !== 'object' || event === null || typeof event.id !== 'string') {
      // No id to answer to: the reply names the id as ''.
      const id: unknown = (event as { id?: unknown } | null)?.id;
      const type: unknown = (event as { type?: unknown } | null)?.type;
      this.#failed('', String(type), this.#bad('event.id', id, 'a string naming the request'));
      return;
    }
    switch (event.type) {
      case 'tollgate.acquire':
        this.#acquire(event);
        return;
      case 'tollgate.tryAcquire':
        this.#try(event);
        return;
      case 'tollgate.settle':
        this.#withGrant(event.id, 'settle', (g) => {
          g.settle(event.actual).catch((e: unknown) => this.#failed(event.id, event.type, e));
        });
        return;
      case 'tollgate.release':
        this.#withGrant(event.id, 'release', (g) => {
          this.#held.delete(event.id);
          g.release();
        });
        return;
      case 'tollgate.cancel': {
        const waiting = this.#waiting.get(event.id);
        if (waiting !== undefined) {
          waiting.abort(); // the acquire ends with AcquireAbortedError: `tollgate.aborted`
          return;
        }
        this.#withGrant(event.id, 'cancel', (g) => {
          // A settled grant cannot be cancelled (it throws): then it stays held, to be released.
          const done = g.cancel();
          this.#held.delete(event.id);
          done.catch((e: unknown) => this.#failed(event.id, event.type, e));
        });
        return;
      }
      default:
        this.#failed(
          (event as Asked).id,
          String((event as { type?: unknown }).type),
          this.#bad(
            'event.type',
            (event as { type?: unknown }).type,
            "one of 'tollgate.acquire', 'tollgate.tryAcquire', 'tollgate.settle', 'tollgate.release', 'tollgate.cancel'",
          ),
        );
    }
  }

  /** The asker stopped: withdraw what waits, release what is held, and never reply again. */
  stop(): void {
    this.#stopped = true;
    for (const controller of this.#waiting.values()) controller.abort();
    this.#waiting.clear();
    for (const grant of this.#held.values()) grant.release();
    this.#held.clear();
  }

  #acquire(event: AcquireRequest): void {
    const { id, key } = event;
    if (!this.#free(id, event.type)) return;
    const controller = new AbortController();
    this.#waiting.set(id, controller);
    this.#limiter
      .acquire(key, {
        ...(event.cost !== undefined && { cost: event.cost }),
        ...(event.priority !== undefined && { priority: event.priority }),
        ...(event.timeout !== undefined && { timeout: event.timeout }),
        signal: controller.signal,
      })
      .then(
        (grant) => {
          this.#waiting.delete(id);
          if (controller.signal.aborted) {
            // Granted in the key's mailbox before the cancel reached it: withdrawn all the same.
            grant.cancel().catch(() => {});
            if (!this.#stopped) this.#reply({ type: 'tollgate.aborted', id, key });
            return;
          }
          this.#granted(id, key, grant);
        },
        (e: unknown) => {
          this.#waiting.delete(id);
          if (this.#stopped) return;
          if (e instanceof AcquireTimeoutError) {
            this.#reply({ type: 'tollgate.timeout', id, key, error: e });
          } else if (e instanceof AcquireAbortedError && controller.signal.aborted) {
            this.#reply({ type: 'tollgate.aborted', id, key });
          } else this.#failed(id, event.type, e);
        },
      );
  }

  #try(event: TryAcquireRequest): void {
    const { id, key } = event;
    if (!this.#free(id, event.type)) return;
    this.#trying.add(id);
    this.#limiter
      .tryAcquire(key, {
        ...(event.cost !== undefined && { cost: event.cost }),
        ...(event.priority !== undefined && { priority: event.priority }),
      })
      .then(
        (r) => {
          this.#trying.delete(id);
          if (r.ok) this.#granted(id, key, r.grant);
          else if (!this.#stopped) {
            this.#reply({
              type: 'tollgate.refused',
              id,
              key,
              retryAfterMs: r.retryAfterMs,
              limit: r.limit,
            });
          }
        },
        (e: unknown) => {
          this.#trying.delete(id);
          this.#failed(id, event.type, e);
        },
      );
  }

  /** A grant came: held for the asker, or, if the asker stopped meanwhile, given back whole. */
  #granted(id: string, key: string, grant: Grant): void {
    if (this.#stopped) {
      grant.cancel().catch(() => {}); // nothing was called with it
      return;
    }
    this.#held.set(id, grant);
    this.#reply({ type: 'tollgate.granted', id, key, grant });
  }

  /** Whether `id` names no request of this asker that waits or is held; else it fails. */
  #free(id: string, request: string): boolean {
    if (!this.#waiting.has(id) && !this.#held.has(id) && !this.#trying.has(id)) return true;
    this.#failed(
      id,
      request,
      this.#bad(
        'event.id',
        id,
        'an id no request of this asker still waits or holds a grant under',
      ),
    );
    return false;
  }

  #bad(path: string, value: unknown, expected: string): InvalidArgumentError {
    return new InvalidArgumentError({
      where: onLimiter(this.#limiter.name, 'limiterActor'),
      path,
      value,
      expected,
    });
  }

  #withGrant(id: string, call: 'settle' | 'release' | 'cancel', use: (grant: Grant) => void): void {
    const grant = this.#held.get(id);
    if (grant === undefined) {
      this.#failed(
        id,
        `tollgate.${call}`,
        new GrantStateError(
          `tollgate: ${onLimiter(this.#limiter.name, 'limiterActor')}: ${call} of request ${quote(id)}, but this actor holds no grant by that id`,
        ),
      );
      return;
    }
    try {
      use(grant);
    } catch (e) {
      this.#failed(id, `tollgate.${call}`, e);
    }
  }

  #failed(id: string, request: string, e: unknown): void {
    if (this.#stopped) return;
    const error = e instanceof Error ? e : new Error(String(e));
    this.#reply({ type: 'tollgate.failed', id, request, error });
  }

  #reply(reply: LimiterReply): void {
    this.#sendBack(reply);
  }
}
