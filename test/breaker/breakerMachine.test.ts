/**
 * The statechart on its own, through XState's pure `initialTransition` / `transition`: no actor,
 * no clock. The open → halfOpen timer is the delayed `xstate.raise` the open state schedules; the
 * tests read its delay and feed its event back, as the runtime's clock would.
 */
import { describe, expect, it } from 'vitest';
import { initialTransition, transition, type SnapshotFrom } from 'xstate';
import { compileBreakerPolicy, type BreakerPolicySpec } from '../../src/breaker/index.js';
import { breakerMachine, type BreakerEmitted } from '../../src/breaker/breakerMachine.js';

type Snap = SnapshotFrom<typeof breakerMachine>;
type Actions = ReturnType<typeof transition<typeof breakerMachine>>[1];

function start(spec: BreakerPolicySpec): Snap {
  return initialTransition(breakerMachine, { policy: compileBreakerPolicy(spec) })[0];
}

/** The open-period timer an entry into open scheduled: its delay and the event it raises. */
function timerOf(actions: Actions): { delay: number; event: { type: string } } | undefined {
  const raise = actions.find((a) => a.type === 'xstate.raise');
  return raise === undefined
    ? undefined
    : (raise.params as { delay: number; event: { type: string } });
}

/** A little driver over the pure transition function. */
class Drive {
  actions: Actions = [];
  constructor(public s: Snap) {}
  get state() {
    return this.s.value;
  }
  get ctx() {
    return this.s.context;
  }
  #go(e: Parameters<typeof transition<typeof breakerMachine>>[2]): this {
    [this.s, this.actions] = transition(breakerMachine, this.s, e);
    return this;
  }
  /** PROBE, returning the emitted answer. */
  probe(now: number): BreakerEmitted {
    this.#go({ type: 'PROBE', now });
    // XState's action types do not list the built-in emit; it is there at run time.
    const emitted = (this.actions as readonly { type: string; params?: unknown }[]).find(
      (a) => a.type === 'xstate.emit',
    );
    return (emitted!.params as { event: BreakerEmitted }).event;
  }
  success(now: number, probe = false, epoch = this.ctx.epoch): this {
    return this.#go({ type: 'SUCCESS', now, epoch, probe });
  }
  failure(now: number, probe = false, epoch = this.ctx.epoch): this {
    return this.#go({ type: 'FAILURE', now, epoch, probe });
  }
  cancel(probe: boolean): this {
    return this.#go({ type: 'CANCEL', probe });
  }
  /** Lets the open period elapse; returns the delay it was scheduled with. */
  elapse(timer: { delay: number; event: { type: string } }): number {
    this.#go(timer.event as never);
    return timer.delay;
  }
}

describe('breakerMachine: consecutive failures', () => {
  it('opens after failureThreshold failures in a row, and a success resets the run', () => {
    const d = new Drive(start({ failureThreshold: 3 }));
    d.failure(0).failure(1).success(2).failure(3).failure(4);
    expect(d.state).toBe('closed');
    expect(d.ctx.consecutiveFailures).toBe(2);
    d.failure(5);
    expect(d.state).toBe('open');
    expect(d.ctx.openUntil).toBe(30_005);
    expect(timerOf(d.actions)?.delay).toBe(30_000);
  });

  it('admits every call while closed and refuses with the time left while open', () => {
    const d = new Drive(start({ failureThreshold: 1, openFor: '10s' }));
    expect(d.probe(0)).toEqual({ type: 'admitted', probe: false, epoch: d.ctx.epoch });
    d.failure(1_000);
    expect(d.probe(4_000)).toEqual({ type: 'refused', state: 'open', retryAfterMs: 7_000 });
    expect(d.probe(11_000)).toEqual({ type: 'refused', state: 'open', retryAfterMs: 0 });
  });
});

describe('breakerMachine: failure rate', () => {
  const spec = { failureRate: { rate: 0.5, window: '1s', minimumCalls: 4 } } as const;

  it('does not open below minimumCalls, however many fail', () => {
    const d = new Drive(start(spec));
    d.failure(0).failure(10).failure(20);
    expect(d.state).toBe('closed');
    d.success(30);
    expect(d.state).toBe('closed'); // a success never trips the rule
    d.failure(40);
    expect(d.state).toBe('open'); // 4 of 5 >= 0.5
  });

  it('opens when failures / calls reaches the rate in the window', () => {
    const d = new Drive(start(spec));
    d.success(0).success(10).success(20).failure(30).failure(40);
    expect(d.state).toBe('closed'); // 2 of 5
    d.failure(50);
    expect(d.state).toBe('open'); // 3 of 6
  });

  it('forgets calls that left the window', () => {
    const d = new Drive(start(spec));
    d.failure(0).failure(10).failure(20).success(30).success(40).success(50); // 3 of 6 -> would trip on a failure
    // At 1100 the bucket [0,100) is out of the window: only the failure below counts, 1 of 1 < minimumCalls.
    d.failure(1_100);
    expect(d.state).toBe('closed');
    d.failure(1_110).success(1_120).failure(1_130);
    expect(d.state).toBe('open'); // 3 of 4 in the window
  });

  it('opens on either rule when both are set', () => {
    const d = new Drive(
      start({ failureThreshold: 2, failureRate: { rate: 0.9, window: '1s', minimumCalls: 100 } }),
    );
    d.failure(0).failure(1);
    expect(d.state).toBe('open');
  });
});

describe('breakerMachine: open duration and backoff', () => {
  it('multiplies the open time per re-open from half-open, caps it, and resets it after closing', () => {
    const d = new Drive(
      start({ failureThreshold: 1, openFor: 1000, backoffFactor: 3, maxOpenFor: 5000 }),
    );
    let now = 0;
    d.failure(now);
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      now += d.elapse(timerOf(d.actions)!);
      delays.push(d.ctx.openForMs);
      expect(d.state).toBe('halfOpen');
      expect(d.probe(now).type).toBe('admitted');
      d.failure(now, true); // the probe fails: re-open
      expect(d.state).toBe('open');
      expect(d.ctx.openUntil).toBe(now + timerOf(d.actions)!.delay);
    }
    expect([...delays, d.ctx.openForMs]).toEqual([1000, 3000, 5000, 5000, 5000]);
    now += d.elapse(timerOf(d.actions)!);
    d.probe(now);
    d.success(now, true);
    expect(d.state).toBe('closed');
    d.failure(now + 1);
    expect(timerOf(d.actions)!.delay).toBe(1000);
  });

  it('does not extend the open period for failures reported while open', () => {
    const d = new Drive(start({ failureThreshold: 1, openFor: 1000 }));
    const stale = d.ctx.epoch;
    d.failure(0);
    d.failure(500, false, stale);
    expect(d.ctx.openUntil).toBe(1000);
    expect(d.actions).toEqual([]);
  });
});

describe('breakerMachine: half-open', () => {
  function halfOpen(spec: BreakerPolicySpec): Drive {
    const d = new Drive(start({ failureThreshold: 1, openFor: 1000, ...spec }));
    d.failure(0);
    d.elapse(timerOf(d.actions)!);
    expect(d.state).toBe('halfOpen');
    return d;
  }

  it('admits at most `probes` probes at once and refuses the rest', () => {
    const d = halfOpen({ probes: 2 });
    expect(d.probe(1000)).toMatchObject({ type: 'admitted', probe: true });
    expect(d.probe(1000)).toMatchObject({ type: 'admitted', probe: true });
    expect(d.probe(1000)).toEqual({ type: 'refused', state: 'halfOpen', retryAfterMs: 1000 });
    expect(d.ctx.probesOut).toBe(2);
  });

  it('frees a probe slot on cancel without counting it', () => {
    const d = halfOpen({ probes: 1 });
    d.probe(1000);
    d.cancel(true);
    expect(d.ctx.probesOut).toBe(0);
    expect(d.ctx.probeSuccesses).toBe(0);
    expect(d.state).toBe('halfOpen');
    expect(d.probe(1001).type).toBe('admitted');
  });

  it('closes after successesToClose probe successes', () => {
    const d = halfOpen({ probes: 2, successesToClose: 3 });
    d.probe(1000);
    d.probe(1000);
    d.success(1001, true).success(1002, true);
    expect(d.state).toBe('halfOpen');
    d.probe(1003);
    d.success(1004, true);
    expect(d.state).toBe('closed');
    expect(d.ctx.reopens).toBe(0);
  });

  it('re-opens on any probe failure, even after some successes', () => {
    const d = halfOpen({ probes: 2 });
    d.probe(1000);
    d.probe(1000);
    d.success(1001, true);
    d.failure(1002, true);
    expect(d.state).toBe('open');
    expect(d.ctx.openUntil).toBe(1002 + 2000);
  });

  it('ignores outcomes of permits from an earlier period but still frees their probe slots', () => {
    const d = new Drive(start({ failureThreshold: 1, openFor: 1000 }));
    const closedEpoch = d.ctx.epoch; // a call admitted while closed, still out
    d.failure(0);
    d.elapse(timerOf(d.actions)!);
    d.probe(1000);
    d.failure(1000, true); // re-open; the probe above is ended
    d.elapse(timerOf(d.actions)!);
    d.probe(3000);
    expect(d.ctx.probesOut).toBe(1);
    // A late success from the closed period must not close the breaker.
    d.success(3001, false, closedEpoch);
    expect(d.state).toBe('halfOpen');
    expect(d.ctx.probeSuccesses).toBe(0);
  });

  it('counts a probe left over from an earlier half-open period against the probe budget', () => {
    const d = halfOpen({ probes: 2 });
    const first = d.ctx.epoch;
    d.probe(1000); // A, still out
    d.probe(1000); // B
    d.failure(1001, true); // B fails: re-open
    d.elapse(timerOf(d.actions)!);
    expect(d.ctx.probesOut).toBe(1); // A
    expect(d.probe(4000).type).toBe('admitted');
    expect(d.probe(4000).type).toBe('refused');
    d.success(4001, true, first); // A ends: frees its slot, counts nothing
    expect(d.state).toBe('halfOpen');
    expect(d.ctx.probesOut).toBe(1);
    expect(d.probe(4002).type).toBe('admitted');
  });
});
