/** CircuitBreaker on virtual time: the actor, its timer on the injected clock, permits and waiters. */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/clock.js';
import {
  CircuitBreaker,
  CircuitOpenError,
  type BreakerPolicySpec,
  type BreakerState,
  type BreakerStateChange,
} from '../../src/breaker/index.js';
import {
  AcquireAbortedError,
  GrantStateError,
  InvalidArgumentError,
  LimiterClosedError,
  TollgateError,
  isTollgateError,
} from '../../src/errors.js';

function make(spec: BreakerPolicySpec, start = 0) {
  const clock = new VirtualClock(start);
  const breaker = new CircuitBreaker('openai/key-1', spec, clock);
  const changes: BreakerStateChange[] = [];
  breaker.events.on('stateChange', (e) => changes.push(e));
  return { clock, breaker, changes };
}

function fail(breaker: CircuitBreaker, n = 1): void {
  for (let i = 0; i < n; i++) {
    const r = breaker.tryEnter();
    if (!r.ok) throw new Error(`refused: ${r.state}`);
    r.permit.failure();
  }
}

describe('CircuitBreaker', () => {
  it('goes closed → open → halfOpen → closed on the clock, announcing each change with its instant', async () => {
    const { clock, breaker, changes } = make({ failureThreshold: 2, openFor: '1s' }, 5_000);
    fail(breaker, 2);
    expect(breaker.state).toBe('open');
    expect(breaker.stats()).toMatchObject({
      state: 'open',
      failures: 2,
      calls: 2,
      openUntil: 6_000,
      opens: 1,
    });
    await clock.increment(999);
    expect(breaker.tryEnter()).toEqual({ ok: false, state: 'open', retryAfterMs: 1 });
    await clock.increment(1);
    expect(breaker.state).toBe('halfOpen');
    const r = breaker.tryEnter();
    expect(r.ok && r.permit.probe).toBe(true);
    if (r.ok) r.permit.success();
    expect(breaker.state).toBe('closed');
    expect(changes).toEqual([
      { name: 'openai/key-1', from: 'closed', to: 'open', at: 5_000 },
      { name: 'openai/key-1', from: 'open', to: 'halfOpen', at: 6_000 },
      { name: 'openai/key-1', from: 'halfOpen', to: 'closed', at: 6_000 },
    ]);
    breaker.stop();
  });

  it('opens on the failure rate in a rolling window', async () => {
    const { clock, breaker } = make({ failureRate: { rate: 0.5, window: '10s', minimumCalls: 4 } });
    for (const failed of [false, true, false]) {
      const r = breaker.tryEnter();
      if (r.ok && failed) r.permit.failure();
      else if (r.ok) r.permit.success();
      await clock.increment(1_000);
    }
    expect(breaker.stats()).toMatchObject({ state: 'closed', calls: 3, failures: 1 });
    await clock.increment(20_000); // all three leave the window
    expect(breaker.stats()).toMatchObject({ calls: 0, failures: 0 });
    fail(breaker, 3);
    expect(breaker.state).toBe('closed'); // 3 calls < minimumCalls
    fail(breaker, 1);
    expect(breaker.state).toBe('open');
    breaker.stop();
  });

  it('backs off on each re-open from half-open, caps it, and starts from openFor again after closing', async () => {
    const { clock, breaker } = make({
      failureThreshold: 1,
      openFor: '1s',
      backoffFactor: 2,
      maxOpenFor: '5s',
    });
    fail(breaker);
    const openFor: number[] = [];
    for (let i = 0; i < 5; i++) {
      openFor.push(breaker.stats().openUntil! - clock.now());
      await clock.advanceTo(breaker.stats().openUntil!);
      expect(breaker.state).toBe('halfOpen');
      fail(breaker); // the probe fails
    }
    expect(openFor).toEqual([1_000, 2_000, 4_000, 5_000, 5_000]);
    await clock.advanceTo(breaker.stats().openUntil!);
    const r = breaker.tryEnter();
    if (r.ok) r.permit.success();
    expect(breaker.state).toBe('closed');
    fail(breaker);
    expect(breaker.stats().openUntil! - clock.now()).toBe(1_000);
    breaker.stop();
  });

  it('admits at most `probes` probes while half-open; cancel frees a slot', async () => {
    const { clock, breaker } = make({
      failureThreshold: 1,
      openFor: 100,
      probes: 2,
      successesToClose: 2,
    });
    fail(breaker);
    await clock.increment(100);
    const a = breaker.tryEnter();
    const b = breaker.tryEnter();
    expect(a.ok && b.ok).toBe(true);
    expect(breaker.tryEnter()).toEqual({ ok: false, state: 'halfOpen', retryAfterMs: 100 });
    expect(breaker.stats().probesOutstanding).toBe(2);
    if (a.ok) a.permit.cancel();
    const c = breaker.tryEnter();
    expect(c.ok).toBe(true);
    if (b.ok) b.permit.success();
    expect(breaker.state).toBe('halfOpen'); // the cancel counted nothing: one success of two
    if (c.ok) c.permit.success();
    expect(breaker.state).toBe('closed');
    breaker.stop();
  });

  it('ends a permit exactly once: a second end throws GrantStateError and changes nothing', () => {
    const { breaker } = make({ failureThreshold: 2 });
    const r = breaker.tryEnter();
    if (!r.ok) throw new Error('refused');
    r.permit.failure();
    expect(r.permit.isEnded).toBe(true);
    expect(() => r.permit.failure()).toThrow(GrantStateError);
    expect(() => r.permit.success()).toThrow(
      /already ended with failure; end a permit exactly once/,
    );
    expect(breaker.stats()).toMatchObject({ state: 'closed', failures: 1, consecutiveFailures: 1 });
    breaker.stop();
  });

  it('does not count a call admitted while closed that fails after the breaker opened', async () => {
    const { clock, breaker } = make({ failureThreshold: 1, openFor: 100 });
    const late = breaker.tryEnter();
    fail(breaker);
    await clock.increment(100);
    expect(breaker.state).toBe('halfOpen');
    if (late.ok) late.permit.failure(); // stale news: must not re-open
    expect(breaker.state).toBe('halfOpen');
    expect(breaker.stats().opens).toBe(1);
    breaker.stop();
  });

  it('lets a stateChange listener call tryEnter and get its answer at once, with changes announced in order', async () => {
    const { clock, breaker } = make({ failureThreshold: 1, openFor: 100 });
    const seen: string[] = [];
    breaker.events.on('stateChange', (e) => {
      seen.push(`${e.from}>${e.to}`);
      if (e.to === 'halfOpen') {
        const r = breaker.tryEnter(); // inside the announcement of the timer's change
        seen.push(r.ok ? 'probe' : 'refused');
        if (r.ok) r.permit.success(); // closes it: announced after this change, not in the middle
      }
    });
    const states: BreakerState[] = [];
    breaker.state$.subscribe((s) => states.push(s));
    fail(breaker);
    await clock.increment(100);
    expect(seen).toEqual(['closed>open', 'open>halfOpen', 'probe', 'halfOpen>closed']);
    expect(states).toEqual(['closed', 'open', 'halfOpen', 'closed']);
    breaker.stop();
  });

  describe('state$', () => {
    it('gives the current state on subscribe and completes on stop', () => {
      const { breaker } = make({ failureThreshold: 1 });
      fail(breaker);
      const states: BreakerState[] = [];
      let completed = false;
      breaker.state$.subscribe({ next: (s) => states.push(s), complete: () => (completed = true) });
      breaker.stop();
      expect(states).toEqual(['open']);
      expect(completed).toBe(true);
    });
  });

  describe('waitForHalfOpen', () => {
    it('resolves at once unless open', async () => {
      const { breaker } = make({});
      await expect(breaker.waitForHalfOpen()).resolves.toBeUndefined();
      breaker.stop();
    });

    it('resolves when the open period ends, not before', async () => {
      const { clock, breaker } = make({ failureThreshold: 1, openFor: '2s' });
      fail(breaker);
      let resolvedAt: number | null = null;
      const p = breaker.waitForHalfOpen().then(() => (resolvedAt = clock.now()));
      await clock.increment(1_999);
      expect(resolvedAt).toBeNull();
      await clock.increment(1);
      await p;
      expect(resolvedAt).toBe(2_000);
      expect(breaker.tryEnter().ok).toBe(true);
      breaker.stop();
    });

    it('rejects with AcquireAbortedError (cause: signal.reason) when aborted, and forgets the waiter', async () => {
      const { clock, breaker } = make({ failureThreshold: 1, openFor: '2s' });
      fail(breaker);
      const ac = new AbortController();
      const p = breaker.waitForHalfOpen(ac.signal);
      ac.abort('user left');
      await expect(p).rejects.toBeInstanceOf(AcquireAbortedError);
      await expect(p).rejects.toMatchObject({ cause: 'user left' });
      const already = new AbortController();
      already.abort('before');
      await expect(breaker.waitForHalfOpen(already.signal)).rejects.toMatchObject({
        code: 'ACQUIRE_ABORTED',
        cause: 'before',
      });
      await clock.increment(2_000); // resolving nobody: the aborted waiter is gone
      breaker.stop();
    });

    it('rejects with LimiterClosedError when the breaker stops, and after', async () => {
      const { breaker } = make({ failureThreshold: 1 });
      fail(breaker);
      const p = breaker.waitForHalfOpen();
      breaker.stop();
      await expect(p).rejects.toBeInstanceOf(LimiterClosedError);
      await expect(breaker.waitForHalfOpen()).rejects.toThrow(
        /waitForHalfOpen of breaker "openai\/key-1"/,
      );
    });
  });

  describe('stop', () => {
    it('clears the open timer, refuses new calls and lets outstanding permits end harmlessly', async () => {
      const { clock, breaker, changes } = make({ failureThreshold: 1, openFor: '1m' });
      const out = breaker.tryEnter();
      fail(breaker);
      expect(clock.pendingTimers).toBe(1);
      breaker.stop();
      breaker.stop(); // idempotent
      expect(clock.pendingTimers).toBe(0);
      expect(breaker.isStopped).toBe(true);
      expect(() => breaker.tryEnter()).toThrow(LimiterClosedError);
      if (out.ok) out.permit.success();
      await clock.increment(120_000);
      expect(breaker.state).toBe('open');
      expect(changes.map((c) => c.to)).toEqual(['open']);
    });
  });

  describe('validation', () => {
    it('refuses a bad name or policy with InvalidArgumentError', () => {
      const clock = new VirtualClock();
      expect(() => new CircuitBreaker('', {}, clock)).toThrow(
        'tollgate: new CircuitBreaker: name is "" (a string); expected a non-empty string',
      );
      expect(() => new CircuitBreaker('x', { probes: 0 }, clock)).toThrow(InvalidArgumentError);
      expect(() => new CircuitBreaker('x', { probes: 0 }, clock)).toThrow(
        'tollgate: breaker "x": probes is 0; expected a positive integer (probe calls at once)',
      );
      expect(clock.pendingTimers).toBe(0);
    });
  });
});

describe('CircuitOpenError', () => {
  it('is a TollgateError with a code, the breaker, its state and the wait', () => {
    const e = new CircuitOpenError('openai/key-1', 'open', 1_200);
    expect(e).toBeInstanceOf(TollgateError);
    expect(isTollgateError(e)).toBe(true);
    expect(e).toMatchObject({
      name: 'CircuitOpenError',
      code: 'CIRCUIT_OPEN',
      breaker: 'openai/key-1',
      state: 'open',
      retryAfterMs: 1_200,
    });
    expect(e.message).toBe(
      'tollgate: acquire refused, circuit breaker "openai/key-1" is open; retry after 1200 ms',
    );
    expect(new CircuitOpenError('b', 'halfOpen', 5, 'run').message).toMatch(
      /^tollgate: run refused, .* half-open and its probe slots are taken/,
    );
  });
});
