/**
 * The circuit breaker wired into acquire, on virtual time: fail fast while open (nothing booked),
 * wait for half-open when configured, probes limited, outcomes reported by run and grants.
 */
import { describe, expect, it } from 'vitest';
import type { VirtualClock } from '../../src/index.js';
import {
  AcquireTimeoutError,
  CircuitOpenError,
  InvalidArgumentError,
  type LimiterSystem,
} from '../../src/index.js';
import { track, virtualSystem } from './support.js';

let system: LimiterSystem;
let clock: VirtualClock;

function setup() {
  ({ system, clock } = virtualSystem());
  return system;
}

const boom = () => Promise.reject(new Error('503 from the provider'));

describe('breaker in acquire', () => {
  it("compiles the breaker option once: every key's breaker takes that one policy", async () => {
    const l = setup().limiter('llm', {
      limits: [{ limit: 100, interval: '1m' }],
      breaker: { failureThreshold: 2, openFor: '10s', whenOpen: 'wait' },
    });
    await l.run('gpt', () => 'ok');
    await l.run('claude', () => 'ok');
    const policy = l.breakerFor('gpt')!.policy;
    expect(l.breakerFor('claude')!.policy).toBe(policy);
    expect(policy).toMatchObject({ failureThreshold: 2, openForMs: 10_000 });
  });

  it('opens after consecutive failures and then fails fast without booking anything', async () => {
    const l = setup().limiter('llm', {
      limits: [{ limit: 100, interval: '1m' }],
      breaker: { failureThreshold: 2, openFor: '10s' },
    });
    await expect(l.run('gpt', boom)).rejects.toThrow('503');
    await expect(l.run('gpt', boom)).rejects.toThrow('503');
    expect(l.breakerFor('gpt')!.state).toBe('open');
    const before = (await l.stats('gpt')).limits[0]!.remaining;
    const e = await l.acquire('gpt').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CircuitOpenError);
    expect((e as CircuitOpenError).retryAfterMs).toBe(10_000);
    expect((await l.stats('gpt')).limits[0]!.remaining).toBe(before);
    // Other keys have breakers of their own.
    await expect(l.run('claude', () => 'ok')).resolves.toBe('ok');
  });

  it('waits for half-open when asked to, admits one probe, and closes on its success', async () => {
    const l = setup().limiter('llm', {
      limits: [{ limit: 100, interval: '1m' }],
      breaker: { failureThreshold: 1, openFor: '5s', probes: 1, whenOpen: 'wait' },
    });
    await expect(l.run('gpt', boom)).rejects.toThrow();
    const probe = track(l.acquire('gpt', { timeout: 60_000 }));
    const second = track(l.acquire('gpt', { timeout: 60_000 }));
    await clock.increment(4999);
    expect([probe.done, second.done]).toEqual([false, false]);
    await clock.increment(1);
    expect(probe.done).toBe(true);
    expect(second.done).toBe(false); // one probe at a time in half-open
    const grant = probe.value as { report(o: string): void; release(): void };
    grant.report('success');
    grant.release();
    await clock.increment(0);
    expect(l.breakerFor('gpt')!.state).toBe('closed');
    expect(second.done && second.error === undefined).toBe(true);
  });

  it('hands a probe slot to the next waiter as soon as a probe ends without an outcome', async () => {
    const l = setup().limiter('llm', {
      limits: [{ limit: 100, interval: '1m' }],
      breaker: { failureThreshold: 1, openFor: '5s', probes: 1, whenOpen: 'wait' },
    });
    await expect(l.run('gpt', boom)).rejects.toThrow();
    await clock.increment(5000);
    const probe = await l.acquire('gpt');
    const next = track(l.acquire('gpt', { timeout: 60_000 }));
    await clock.increment(0);
    expect(next.done).toBe(false);
    probe.report('neutral'); // frees the slot; the breaker stays half-open
    await clock.increment(0); // no time passes: the waiter hears of it, it does not poll
    expect(next.done && next.error === undefined).toBe(true);
    expect(l.breakerFor('gpt')!.state).toBe('halfOpen');
  });

  it('gives up waiting for half-open at the acquire timeout', async () => {
    const l = setup().limiter('llm', {
      limits: [{ limit: 100, interval: '1m' }],
      breaker: { failureThreshold: 1, openFor: '30s', whenOpen: 'wait' },
    });
    await expect(l.run('gpt', boom)).rejects.toThrow();
    const w = track(l.acquire('gpt', { timeout: 1000 }));
    await clock.increment(1000);
    expect(w.error).toBeInstanceOf(AcquireTimeoutError);
  });

  it('does not count neutral outcomes, and a grant released without a report is neutral', async () => {
    const l = setup().limiter('llm', {
      limits: [{ limit: 100, interval: '1m' }],
      breaker: { failureThreshold: 2 },
    });
    for (let i = 0; i < 5; i++) {
      await expect(l.run('gpt', boom, { classify: () => 'neutral' })).rejects.toThrow();
      (await l.acquire('gpt')).release();
    }
    expect(l.breakerFor('gpt')!.state).toBe('closed');
  });

  it('reports state changes on the breaker and its stream', async () => {
    const l = setup().limiter('llm', {
      limits: [{ limit: 100, interval: '1m' }],
      breaker: { failureThreshold: 1, openFor: 1000 },
    });
    const states: string[] = [];
    const events: string[] = [];
    system.events.on('breaker', (e) => events.push(`${e.breaker}:${e.from}>${e.to}@${e.at}`));
    l.breakerFor('gpt')!.state$.subscribe((s) => states.push(s));
    await expect(l.run('gpt', boom)).rejects.toThrow();
    await clock.increment(1000);
    await l.run('gpt', () => 'ok');
    expect(states).toEqual(['closed', 'open', 'halfOpen', 'closed']);
    expect(events).toEqual([
      'llm/gpt:closed>open@0',
      'llm/gpt:open>halfOpen@1000',
      'llm/gpt:halfOpen>closed@1000',
    ]);
  });

  it('refuses tries while the breaker is open, with limit breaker, and books nothing', async () => {
    const l = setup().limiter('llm', {
      limits: [{ limit: 100, interval: '1m' }],
      breaker: { failureThreshold: 1, openFor: '5s' },
    });
    await expect(l.run('gpt', boom)).rejects.toThrow();
    expect(await l.tryAcquire('gpt')).toEqual({ ok: false, retryAfterMs: 5000, limit: 'breaker' });
    expect((await l.stats('gpt')).limits[0]!.remaining).toBe(99);
    await clock.increment(5000);
    const r = await l.tryAcquire('gpt'); // half-open: the try is the probe
    expect(r.ok).toBe(true);
    expect(await l.tryAcquire('gpt')).toMatchObject({ ok: false, limit: 'breaker' }); // one probe only
    if (r.ok) r.grant.report('success');
    expect(l.breakerFor('gpt')!.state).toBe('closed');
  });

  it('frees the half-open probe of a call abandoned until its lease ended', async () => {
    const l = setup().limiter('llm', {
      limits: [{ limit: 100, interval: '1m' }],
      concurrency: 1,
      leaseTtl: 2000,
      breaker: { failureThreshold: 1, openFor: 1000 },
    });
    await expect(l.run('gpt', boom)).rejects.toThrow();
    await clock.increment(1000);
    await l.acquire('gpt'); // the probe; never released nor reported
    expect(await l.tryAcquire('gpt')).toMatchObject({ ok: false, limit: 'breaker' });
    await clock.increment(2000); // the lease ends: the slot and the probe come back
    const r = await l.tryAcquire('gpt');
    expect(r.ok).toBe(true);
  });

  it('rejects bad breaker options with a typed error', () => {
    const s = setup();
    expect(() =>
      s.limiter('a', { limits: [{ limit: 1, interval: 1 }], breaker: { failureThreshold: 0 } }),
    ).toThrow(InvalidArgumentError);
    expect(() =>
      s.limiter('b', {
        limits: [{ limit: 1, interval: 1 }],
        breaker: { whenOpen: 'later' as 'wait' },
      }),
    ).toThrow(InvalidArgumentError);
  });
});
