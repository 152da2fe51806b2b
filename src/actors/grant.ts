/// <reference lib="esnext.disposable" preserve="true" />
/**
 * Grant is what `acquire` resolves with: the right to make one call. Settle it with the actual
 * usage once known, and release it when the call is over (or let its lease expire).
 */
import type { CallPlace } from '../describe.js';
import {
  GrantStateError,
  InvalidArgumentError,
  LimiterClosedError,
  TooManyKeysError,
} from '../errors.js';
import type { KeyEvent } from '../machines/keyContext.js';
import type { CostSpec, Ms, Policy, Units } from '../limiter/types.js';
import { COST_ALLOWED, compileCost } from '../limiter/validate.js';
import type { BreakerPermit } from '../breaker/breaker.js';
import { reframe, type StoreGrant } from '../store.js';

/** What a call's outcome says about the service, for the key's circuit breaker. */
export type CallOutcome = 'success' | 'failure' | 'neutral';

/** @internal What a grant needs from the limiter that issued it. */
export interface GrantOwner {
  /** The limiter's name, for messages. */
  readonly name: string;
  readonly policy: Policy;
  /** Where the limiter's calls are checked, for messages (reused: point it with `at`). */
  readonly place: CallPlace;
  /** Sends an event to the key's actor, creating the actor if it was evicted. */
  send(key: string, storeKey: string, event: KeyEvent<Grant>): void;
}

/**
 * Grant is one admitted request. Every method is safe to call from anywhere: each goes through the
 * key's mailbox.
 *
 * @example
 * const grant = await limiter.acquire('gpt-4o', { cost: { tokens: 1200 } });
 * try { const r = await callModel(); await grant.settle({ tokens: r.usage.total_tokens }); }
 * finally { grant.release(); }
 */
export class Grant {
  /** @internal what the store booked; updated by settle. */
  record: StoreGrant;
  /** @internal set once the concurrency slot was given back. */
  slotFreed = false;
  readonly #owner: GrantOwner;
  readonly #storeKey: string;
  /** The policy `record` is in the terms of (restated by #reframe after a limit change). */
  #policy: Policy;
  readonly #cost: CostSpec | undefined;
  #settled = false;
  #cancelled = false;
  /** @internal the breaker permit the grant was admitted with, when the limiter has a breaker. */
  permit: BreakerPermit | null = null;

  /** @internal grants are made by the runtime. */
  constructor(
    owner: GrantOwner,
    readonly key: string,
    storeKey: string,
    record: StoreGrant,
    cost: CostSpec | undefined,
    /** The policy the record was booked under (the limiter's, unless it changed meanwhile). */
    policy: Policy = owner.policy,
  ) {
    this.#owner = owner;
    this.#storeKey = storeKey;
    this.#policy = policy;
    this.record = record;
    this.#cost = cost;
  }

  /** The grant's id, unique within the system (events and Redis leases use it). */
  get id(): string {
    return this.record.id;
  }

  /** The instant the grant was booked at (the store's clock). */
  get grantedAt(): Ms {
    return this.record.at;
  }

  /** What the grant books now, per limit name: the estimate, or the actual cost once settled. */
  get booked(): Readonly<Record<string, number>> {
    const out: Record<string, number> = {};
    this.#policy.limits.forEach((l, i) => (out[l.name] = this.record.units[i]!));
    return out;
  }

  /** Whether the grant still holds a concurrency slot. */
  get holdsSlot(): boolean {
    return this.record.slot && !this.slotFreed;
  }

  /**
   * settle replaces the estimated cost with the actual one: the difference is given back (exactly)
   * or charged (the key may go into debt, and later requests wait it out). Once per grant.
   * Dimensions `actual` leaves out keep their estimate.
   * The returned promise resolves when the store applied it; ignoring it is safe.
   *
   * @throws GrantStateError if the grant was already settled or cancelled.
   * @throws InvalidArgumentError for a cost that is not a valid {@link CostSpec} for the policy.
   */
  settle(actual: CostSpec): Promise<void> {
    if (this.#cancelled)
      throw new GrantStateError(`tollgate: settle of grant ${this.id}, which was cancelled`);
    if (this.#settled)
      throw new GrantStateError(`tollgate: settle of grant ${this.id}, which was already settled`);
    const policy = this.#owner.policy;
    const at = this.#owner.place.at('settle', this.key, 'actual');
    if (typeof actual !== 'object' || actual === null || Array.isArray(actual)) {
      throw new InvalidArgumentError({ ...at, value: actual, expected: COST_ALLOWED });
    }
    const units = compileCost(policy, mergeActual(this.#cost, actual), at, false);
    this.#reframe(policy, units);
    this.#settled = true;
    return this.#send((done) => ({ type: 'settle', grant: this, actual: units, done }));
  }

  /** @internal the runtime gave the slot back at the lease's end: a probe, if any, says nothing. */
  leaseExpired(): void {
    if (this.permit !== null && !this.permit.isEnded) this.permit.cancel();
  }

  /**
   * report tells the key's circuit breaker how the call went: `'failure'` for a server error or a
   * timeout (it counts toward opening), `'success'`, or `'neutral'` (the outcome says nothing
   * about the service, e.g. a 400). The first report counts; later ones, and reports on a limiter
   * without a breaker, do nothing. A grant released without a report counts as neutral.
   */
  report(outcome: CallOutcome): void {
    const p = this.permit;
    if (p === null || p.isEnded) return;
    if (outcome === 'success') p.success();
    else if (outcome === 'failure') p.failure();
    else p.cancel();
  }

  /**
   * release gives back the concurrency slot (a no-op without one, and when called again). Usage
   * stays booked: release is the end of the call, not a refund.
   */
  release(): void {
    if (this.permit !== null && !this.permit.isEnded) this.permit.cancel();
    if (!this.holdsSlot) return;
    try {
      this.#owner.send(this.key, this.#storeKey, { type: 'release', grant: this });
    } catch (e) {
      // After the system closed there is nothing left to release into (a `finally` that releases
      // must not turn a result into an error).
      // Nor after the key was forgotten (reset) and its limiter keeps maxKeys others: the slot went
      // with the key's state.
      if (!(e instanceof LimiterClosedError) && !(e instanceof TooManyKeysError)) throw e;
    }
  }

  /** @internal GrantHandle: the key cancels a reservation's grant that came after its cancel(). */
  cancelling(policy: Policy): boolean {
    if (this.#settled || this.#cancelled) return false;
    this.#cancelled = true;
    if (this.permit !== null && !this.permit.isEnded) this.permit.cancel();
    this.#reframe(
      policy,
      policy.limits.map(() => 0),
    );
    return true;
  }

  /**
   * cancel gives back everything the grant booked and its slot, as if it was never granted (for a
   * call that was not made).
   *
   * @throws GrantStateError if the grant was settled or already cancelled.
   */
  cancel(): Promise<void> {
    if (this.#settled)
      throw new GrantStateError(`tollgate: cancel of grant ${this.id}, which was settled`);
    if (this.#cancelled)
      throw new GrantStateError(
        `tollgate: cancel of grant ${this.id}, which was already cancelled`,
      );
    this.#cancelled = true;
    if (this.permit !== null && !this.permit.isEnded) this.permit.cancel();
    const policy = this.#owner.policy;
    this.#reframe(
      policy,
      policy.limits.map(() => 0),
    );
    return this.#send((done) => ({ type: 'cancel', grant: this, done }));
  }

  /**
   * When the limits changed since the grant, restate what it booked in the new policy's terms
   * (its units, and its marks by limit name), so the store never reads another limit's numbers.
   */
  #reframe(policy: Policy, actual: Units): void {
    if (policy === this.#policy) return;
    let units: Units;
    try {
      units = compileCost(policy, this.#cost, 'settle', false);
    } catch {
      units = policy.limits.map(() => 0); // the new limits no longer count its cost: nothing to give back
    }
    this.record = reframe(this.record, this.#policy, policy, units, actual);
    this.#policy = policy;
  }

  /** `using grant = await limiter.acquire(…)` releases the slot at the end of the block. */
  [Symbol.dispose](): void {
    this.release();
  }

  /** `await using` works too. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.release();
  }

  #send(
    make: (done: { resolve(): void; reject(e: Error): void }) => KeyEvent<Grant>,
  ): Promise<void> {
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const p = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    p.catch(() => {}); // a caller that ignores the promise gets no unhandled rejection
    try {
      this.#owner.send(this.key, this.#storeKey, make({ resolve, reject }));
    } catch (e) {
      reject(e instanceof Error ? e : new Error(String(e))); // closed: the promise says so
    }
    return p;
  }
}

/**
 * A settle names what it knows: every dimension it leaves out keeps the estimate. When it names
 * `inputTokens` or `outputTokens` but not `tokens`, `tokens` is derived from them again.
 */
function mergeActual(estimate: CostSpec | undefined, actual: CostSpec): CostSpec {
  const merged: Record<string, number | undefined> = { ...estimate, ...actual };
  const namesParts = actual.inputTokens !== undefined || actual.outputTokens !== undefined;
  if (namesParts && actual.tokens === undefined) delete merged.tokens;
  return merged;
}
