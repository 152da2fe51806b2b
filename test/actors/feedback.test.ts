/**
 * Provider feedback on virtual time: a 429 pauses the key (waiters rescheduled, not failed), and a
 * provider's remaining lowers the key's capacity, never raises it.
 */
import { describe, expect, it } from 'vitest';
import type { VirtualClock } from '../../src/index.js';
import { InvalidArgumentError, type LimiterSystem } from '../../src/index.js';
import { track, virtualSystem } from './support.js';
import { feedbackFromResponse } from '../../src/llm/headers.js';

let system: LimiterSystem;
let clock: VirtualClock;

function setup() {
  ({ system, clock } = virtualSystem());
  return system;
}

describe('pause', () => {
  it('refuses tries with the time left and grants queued waiters right after the pause', async () => {
    const l = setup().limiter('llm', { limits: [{ limit: 100, interval: '1s' }] });
    await l.pause('gpt', 2000);
    expect(await l.tryAcquire('gpt')).toEqual({ ok: false, retryAfterMs: 2000, limit: 'paused' });
    const waiter = track(l.acquire('gpt'));
    await clock.increment(1999);
    expect(waiter.done).toBe(false);
    await clock.increment(1);
    expect(waiter.done).toBe(true);
    expect((waiter.value as { grantedAt: number }).grantedAt).toBe(2000);
    expect((await l.tryAcquire('other')).ok).toBe(true); // other keys are not paused
  });

  it('never cuts a longer pause short', async () => {
    const l = setup().limiter('llm', { limits: [{ limit: 100, interval: '1s' }] });
    await l.pause('gpt', 5000);
    await l.pause('gpt', 1000);
    await clock.increment(1000);
    expect(await l.tryAcquire('gpt')).toEqual({ ok: false, retryAfterMs: 4000, limit: 'paused' });
  });

  it('pauses a key with waiters already queued: they wait it out and none fails', async () => {
    const l = setup().limiter('llm', { limits: [{ limit: 1, interval: '1s' }] });
    await l.acquire('gpt');
    const a = track(l.acquire('gpt', { timeout: 10_000 }));
    const b = track(l.acquire('gpt', { timeout: 10_000 }));
    await l.pause('gpt', 3000);
    await clock.increment(2999);
    expect([a.done, b.done]).toEqual([false, false]);
    await clock.increment(1);
    expect(a.done).toBe(true);
    expect(a.error).toBeUndefined();
    await clock.increment(1000);
    expect(b.done && b.error === undefined).toBe(true);
  });

  it('rejects a bad duration with a typed error and pauses nothing', async () => {
    const l = setup().limiter('llm', { limits: [{ limit: 1, interval: '1s' }] });
    await expect(l.pause('gpt', -5)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(l.pause('gpt', 'soon' as '1s')).rejects.toBeInstanceOf(InvalidArgumentError);
    expect((await l.tryAcquire('gpt')).ok).toBe(true);
  });
});

describe('feedback', () => {
  const spec = {
    limits: [
      { limit: 60, interval: '1m' as const, name: 'rpm' },
      { limit: 10_000, interval: '1m' as const, dimension: 'tokens', name: 'tpm' },
    ],
  };

  it('on a 429 pauses until retry-after', async () => {
    const l = setup().limiter('llm', spec);
    const fb = feedbackFromResponse({ status: 429, headers: { 'retry-after': '3' } }, clock.now());
    await l.feedback('gpt', fb);
    expect(await l.tryAcquire('gpt')).toEqual({ ok: false, retryAfterMs: 3000, limit: 'paused' });
  });

  it('on a 429 without retry-after pauses until the exhausted dimension resets', async () => {
    const l = setup().limiter('llm', spec);
    const headers = {
      'x-ratelimit-remaining-requests': '12',
      'x-ratelimit-reset-requests': '1s',
      'x-ratelimit-remaining-tokens': '0',
      'x-ratelimit-reset-tokens': '6.5s',
    };
    await l.feedback('gpt', feedbackFromResponse({ status: 429, headers }, clock.now()));
    const r = await l.tryAcquire('gpt');
    expect(r).toEqual({ ok: false, retryAfterMs: 6500, limit: 'paused' });
  });

  it('lowers remaining to what the provider reports, per dimension', async () => {
    const l = setup().limiter('llm', spec);
    await l.acquire('gpt', { cost: { tokens: 1000 } }); // ours: rpm 59, tpm 9000
    const charged: unknown[] = [];
    system.events.on('charged', (e) => charged.push(e));
    const headers = {
      'x-ratelimit-remaining-requests': '40',
      'x-ratelimit-remaining-tokens': '2500',
    };
    await l.feedback('gpt', feedbackFromResponse({ status: 200, headers }, clock.now()));
    const s = await l.stats('gpt');
    expect(s.limits.map((x) => x.remaining)).toEqual([40, 2500]);
    // One booking, told as a `charged` event: 59 - 40 requests, 9000 - 2500 tokens.
    expect(charged).toEqual([{ limiter: 'llm', key: 'gpt', units: [19, 6500], at: clock.now() }]);
  });

  it('never raises capacity above its own limits', async () => {
    const l = setup().limiter('llm', spec);
    await l.acquire('gpt', { cost: { tokens: 9000 } }); // ours: rpm 59, tpm 1000
    const headers = {
      'x-ratelimit-remaining-requests': '1000',
      'x-ratelimit-remaining-tokens': '50000',
    };
    await l.feedback('gpt', feedbackFromResponse({ status: 200, headers }, clock.now()));
    const s = await l.stats('gpt');
    expect(s.limits.map((x) => x.remaining)).toEqual([59, 1000]);
  });

  it('leaves limits longer than the provider window alone (a daily budget)', async () => {
    const l = setup().limiter('llm', {
      limits: [
        { limit: 10_000, interval: '1m', dimension: 'tokens', name: 'tpm' },
        { limit: 1_000_000, interval: '1d', dimension: 'tokens', name: 'tpd' },
      ],
    });
    const headers = { 'x-ratelimit-remaining-tokens': '2500', 'x-ratelimit-reset-tokens': '45s' };
    await l.feedback('gpt', feedbackFromResponse({ status: 200, headers }, clock.now()));
    const s = await l.stats('gpt');
    expect(s.limits.map((x) => x.remaining)).toEqual([2500, 1_000_000]);
  });

  it('rejects feedback that is not an object', async () => {
    const l = setup().limiter('llm', spec);
    await expect(l.feedback('gpt', null as never)).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

describe('long pauses (#17, finding 6)', () => {
  const DAY = 86_400_000;
  const HOUR = 3_600_000;

  function paused(s: LimiterSystem): { forMs: number; at: number; key: string }[] {
    const seen: { forMs: number; at: number; key: string }[] = [];
    s.events.on('paused', (e) => seen.push({ forMs: e.forMs, at: e.at, key: e.key }));
    return seen;
  }

  it("caps a provider's retry-after at maxPause (1h by default) and says so with a paused event", async () => {
    const s = setup();
    const seen = paused(s);
    const l = s.limiter('llm', { limits: [{ limit: 100, interval: '1s' }] });
    await l.feedback('gpt', { throttled: true, retryAfterMs: DAY });
    expect(seen).toEqual([{ key: 'gpt', forMs: HOUR, at: 0 }]);
    const waiter = track(l.acquire('gpt'));
    await clock.increment(HOUR - 1);
    expect(waiter.done).toBe(false);
    await clock.increment(1);
    expect(waiter.done && waiter.error === undefined).toBe(true);
  });

  it('takes maxPause from the limiter options, and caps a reset-derived pause too', async () => {
    const s = setup();
    const seen = paused(s);
    const l = s.limiter('llm', { limits: [{ limit: 100, interval: '1s' }], maxPause: '10m' });
    await l.feedback('gpt', { throttled: true, retryAfterMs: 2 * HOUR });
    await l.feedback('o1', {
      throttled: true,
      limits: [{ dimension: 'requests', remaining: 0, resetMs: 3 * HOUR }],
    });
    expect(seen.map((e) => e.forMs)).toEqual([600_000, 600_000]);
    expect(() =>
      s.limiter('bad', { limits: [{ limit: 1, interval: '1s' }], maxPause: -1 }),
    ).toThrow(InvalidArgumentError);
  });

  it('a retry-after past what pause() takes (over 366 days) still pauses, for maxPause', async () => {
    const s = setup();
    const seen = paused(s);
    const l = s.limiter('llm', { limits: [{ limit: 100, interval: '1s' }] });
    // Before, pause() threw on it and limitedFetch swallowed the error: no pause at all.
    await l.feedback('gpt', { throttled: true, retryAfterMs: 400 * DAY });
    expect(seen.map((e) => e.forMs)).toEqual([HOUR]);
    expect(await l.tryAcquire('gpt')).toEqual({ ok: false, retryAfterMs: HOUR, limit: 'paused' });
  });

  it('a retry-after that is no usable number pauses for the default 1 s', async () => {
    const s = setup();
    const seen = paused(s);
    const l = s.limiter('llm', { limits: [{ limit: 100, interval: '1s' }] });
    for (const retryAfterMs of [Number.NaN, -5, Infinity])
      await l.feedback('gpt', { throttled: true, retryAfterMs });
    expect(seen.map((e) => e.forMs)).toEqual([1000, 1000, 1000]);
  });

  it('limiter.pause emits the paused event as well', async () => {
    const s = setup();
    const seen = paused(s);
    const l = s.limiter('llm', { limits: [{ limit: 100, interval: '1s' }] });
    await clock.increment(5);
    await l.pause('gpt', '2s');
    expect(seen).toEqual([{ key: 'gpt', forMs: 2000, at: 5 }]);
  });
});

describe('a dimension used up with a short reset (#17, finding 7)', () => {
  it('pauses until the reset instead of booking a shortfall that lasts the whole window', async () => {
    const s = setup();
    const l = s.limiter('llm', {
      algorithm: 'sliding-window',
      limits: [
        { limit: 100, interval: '1m' },
        { limit: 10_000, interval: '1m', dimension: 'tokens' },
      ],
    });
    await l.feedback('gpt', {
      limits: [{ dimension: 'tokens', remaining: 0, resetMs: 1500 }],
    });
    expect(await l.tryAcquire('gpt', { cost: { tokens: 10 } })).toEqual({
      ok: false,
      retryAfterMs: 1500,
      limit: 'paused',
    });
    await clock.increment(1500);
    // Before, 10,000 tokens were booked here and came back only as the minute's window slid.
    expect((await l.tryAcquire('gpt', { cost: { tokens: 10 } })).ok).toBe(true);
    expect((await l.stats('gpt')).limits[1]!.remaining).toBe(9_990);
  });

  it('still books a partial shortfall, and a used-up dimension without a reset', async () => {
    const s = setup();
    const l = s.limiter('llm', {
      limits: [{ limit: 10_000, interval: '1m', dimension: 'tokens' }],
    });
    await l.feedback('a', { limits: [{ dimension: 'tokens', remaining: 400, resetMs: 1500 }] });
    expect((await l.stats('a')).limits[0]!.remaining).toBe(400);
    await l.feedback('b', { limits: [{ dimension: 'tokens', remaining: 0, resetMs: null }] });
    expect((await l.stats('b')).limits[0]!.remaining).toBe(0);
  });
});
