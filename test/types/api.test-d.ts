import { describe, expectTypeOf, it } from 'vitest';
import {
  createLimiterSystem,
  isTollgateError,
  type Grant,
  type KeyStats,
  type Limiter,
  type TollgateError,
  type TryResult,
} from '../../src/index.js';
import type { Observable } from 'rxjs';

const system = createLimiterSystem();
const limiter = system.limiter('api', { limits: [{ limit: 10, interval: '1s' }] });

describe('public types', () => {
  it('types acquire, tryAcquire and stats$', () => {
    expectTypeOf(limiter).toEqualTypeOf<Limiter>();
    expectTypeOf(limiter.acquire('k')).toEqualTypeOf<Promise<Grant>>();
    expectTypeOf(limiter.tryAcquire('k')).toEqualTypeOf<Promise<TryResult>>();
    expectTypeOf(limiter.stats$('k')).toEqualTypeOf<Observable<KeyStats>>();
  });

  it('narrows a TryResult on ok', async () => {
    const r = await limiter.tryAcquire('k');
    if (r.ok) expectTypeOf(r.grant).toEqualTypeOf<Grant>();
    else expectTypeOf(r.retryAfterMs).toEqualTypeOf<number>();
  });

  it('accepts duration strings and refuses malformed ones', () => {
    system.limiter('a', { limits: [{ limit: 1, interval: '1 m' }] });
    system.limiter('b', { limits: [{ limit: 1, interval: 500 }] });
    // @ts-expect-error not a duration unit
    system.limiter('c', { limits: [{ limit: 1, interval: '1 week' }] });
    // @ts-expect-error unknown algorithm
    system.limiter('d', { limits: [{ limit: 1, interval: '1s' }], algorithm: 'leaky' });
  });

  it('types run with the callback result', async () => {
    const out = await limiter.run('k', async () => ({ used: 3 }), {
      settle: (r) => ({ requests: r.used }),
    });
    expectTypeOf(out).toEqualTypeOf<{ used: number }>();
  });

  it('narrows errors with isTollgateError', () => {
    const e: unknown = new Error('x');
    if (isTollgateError(e)) expectTypeOf(e).toEqualTypeOf<TollgateError>();
  });

  it('types event payloads', () => {
    system.events.on('granted', (e) => {
      expectTypeOf(e.limiter).toEqualTypeOf<string>();
      expectTypeOf(e.waitedMs).toEqualTypeOf<number>();
    });
    // @ts-expect-error no such event
    system.events.on('grant', () => {});
  });
});
