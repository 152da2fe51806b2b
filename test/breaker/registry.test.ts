import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/clock.js';
import { BreakerRegistry, type BreakerStateChange } from '../../src/breaker/index.js';
import { InvalidArgumentError, LimiterClosedError } from '../../src/errors.js';

describe('BreakerRegistry', () => {
  it('returns the same breaker for the same name, also for an equal policy spelled differently', () => {
    const reg = new BreakerRegistry(new VirtualClock());
    const a = reg.get('openai/k1', { openFor: '30s', failureThreshold: 3 });
    expect(reg.get('openai/k1', { openFor: 30_000, failureThreshold: 3, backoffFactor: 2 })).toBe(
      a,
    );
    expect(reg.get('openai/k2', { openFor: '30s', failureThreshold: 3 })).not.toBe(a);
    expect(reg.size).toBe(2);
    expect(reg.peek('openai/k1')).toBe(a);
    expect(reg.peek('nope')).toBeUndefined();
    reg.stopAll();
  });

  it('keeps state across get calls: concurrent get-or-create loses nothing', async () => {
    const reg = new BreakerRegistry(new VirtualClock());
    const got = await Promise.all(
      Array.from({ length: 20 }, async () => {
        await Promise.resolve();
        const b = reg.get('anthropic/k', { failureThreshold: 20 });
        const r = b.tryEnter();
        if (r.ok) r.permit.failure();
        return b;
      }),
    );
    expect(new Set(got).size).toBe(1);
    expect(got[0]!.state).toBe('open');
    expect(reg.size).toBe(1);
    reg.stopAll();
  });

  it('refuses the same name with a different policy, and an invalid policy, with InvalidArgumentError', () => {
    const reg = new BreakerRegistry(new VirtualClock());
    reg.get('x', { failureThreshold: 3 });
    expect(() => reg.get('x', { failureThreshold: 4 })).toThrow(InvalidArgumentError);
    expect(() => reg.get('x', { failureThreshold: 4 })).toThrow(
      /breaker "x" exists with policy .*one name, one policy/,
    );
    expect(() => reg.get('y', { failureRate: { rate: 2, window: '1m' } })).toThrow(
      InvalidArgumentError,
    );
    expect(() => reg.get('y', { failureRate: { rate: 2, window: '1m' } })).toThrow(
      'tollgate: breaker "y": failureRate.rate is 2; expected a share of failed calls above 0 and at most 1, e.g. 0.5',
    );
    expect(reg.size).toBe(1);
    reg.stopAll();
  });

  it('shares nothing between registries', () => {
    const clock = new VirtualClock();
    const one = new BreakerRegistry(clock);
    const two = new BreakerRegistry(clock);
    const a = one.get('k', { failureThreshold: 1 });
    const b = two.get('k', { failureThreshold: 2 }); // a different policy is fine in another registry
    expect(a).not.toBe(b);
    const r = a.tryEnter();
    if (r.ok) r.permit.failure();
    expect(a.state).toBe('open');
    expect(b.state).toBe('closed');
    one.stopAll();
    two.stopAll();
  });

  it('relays every breaker’s stateChange, and stopAll stops them all and leaves no timers', () => {
    const clock = new VirtualClock();
    const reg = new BreakerRegistry(clock);
    const changes: BreakerStateChange[] = [];
    reg.events.on('stateChange', (e) => changes.push(e));
    for (const name of ['a', 'b']) {
      const r = reg.get(name, { failureThreshold: 1 }).tryEnter();
      if (r.ok) r.permit.failure();
    }
    expect(changes.map((c) => `${c.name}:${c.to}`)).toEqual(['a:open', 'b:open']);
    expect(clock.pendingTimers).toBe(2);
    const a = reg.peek('a')!;
    reg.stopAll();
    reg.stopAll();
    expect(clock.pendingTimers).toBe(0);
    expect(a.isStopped).toBe(true);
    expect(reg.size).toBe(0);
    expect(() => reg.get('a', { failureThreshold: 1 })).toThrow(LimiterClosedError);
  });

  it('delete stops and forgets one breaker', () => {
    const clock = new VirtualClock();
    const reg = new BreakerRegistry(clock);
    const a = reg.get('a', {});
    expect(reg.delete('a')).toBe(true);
    expect(reg.delete('a')).toBe(false);
    expect(a.isStopped).toBe(true);
    expect(reg.get('a', {})).not.toBe(a);
    reg.stopAll();
  });
});
