/**
 * A permit is one admitted call through a breaker, and the promise to report how it went. The
 * breaker trusts permits to end exactly once: a permit that never ends holds its half-open probe
 * slot for good, so end every permit in a `finally`.
 */
import { onBreaker } from '../describe.js';
import { GrantStateError } from '../errors.js';

/**
 * BreakerPermit is the right to make one call through a breaker. End it exactly once: `success()`
 * or `failure()` report the outcome; `cancel()` reports none (the call was not made, or its
 * outcome says nothing about the service) and frees a half-open probe slot.
 */
export interface BreakerPermit {
  /** Whether this permit holds one of half-open's probe slots. */
  readonly probe: boolean;
  /** Whether the permit was ended. */
  readonly isEnded: boolean;
  /** success reports that the call succeeded. @throws GrantStateError if the permit already ended. */
  success(): void;
  /** failure reports that the call failed. @throws GrantStateError if the permit already ended. */
  failure(): void;
  /** cancel ends the permit without an outcome. @throws GrantStateError if the permit already ended. */
  cancel(): void;
}

/** PermitOutcome is how a permit ended, as the statechart's event type. */
export type PermitOutcome = 'SUCCESS' | 'FAILURE' | 'CANCEL';

/**
 * Permit is the {@link BreakerPermit} `tryEnter` hands out (internal: callers see the interface).
 * It ends once and refuses to end again; the breaker gets its outcome with the epoch it was
 * admitted in.
 */
export class Permit implements BreakerPermit {
  #ended: PermitOutcome | null = null;
  readonly #breaker: string;
  readonly #epoch: number;
  readonly #onEnd: (outcome: PermitOutcome, probe: boolean, epoch: number) => void;

  constructor(
    breaker: string,
    readonly probe: boolean,
    epoch: number,
    onEnd: (outcome: PermitOutcome, probe: boolean, epoch: number) => void,
  ) {
    this.#breaker = breaker;
    this.#epoch = epoch;
    this.#onEnd = onEnd;
  }

  get isEnded(): boolean {
    return this.#ended !== null;
  }

  success(): void {
    this.#end('SUCCESS');
  }

  failure(): void {
    this.#end('FAILURE');
  }

  cancel(): void {
    this.#end('CANCEL');
  }

  #end(outcome: PermitOutcome): void {
    if (this.#ended !== null) {
      throw new GrantStateError(
        `tollgate: ${outcome.toLowerCase()} of a permit of ${onBreaker(this.#breaker)} that already ended with ${this.#ended.toLowerCase()}; end a permit exactly once`,
      );
    }
    this.#ended = outcome;
    this.#onEnd(outcome, this.probe, this.#epoch);
  }
}
