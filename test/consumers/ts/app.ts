// Uses the public types the way an app does; compiled with strict, exactOptionalPropertyTypes and
// skipLibCheck: false, under node16, nodenext and bundler resolution. Nothing here runs.
import {
  AcquireTimeoutError,
  createLimiterSystem,
  isTollgateError,
  limitedFetch,
  type AcquireOptions,
  type Grant,
  type GrantedEvent,
  type KeyStats,
  type LimiterOptions,
  type Store,
  type TryResult,
} from 'tollgate';

const options: LimiterOptions = {
  limits: [
    { limit: 500, interval: '1m' },
    { limit: 30_000, interval: '1m', dimension: 'tokens', algorithm: 'sliding-window' },
  ],
  concurrency: 8,
  maxQueue: 100,
  breaker: { failureThreshold: 5, openFor: '30s' },
};

export async function use(store?: Store): Promise<number> {
  const system = createLimiterSystem(store === undefined ? {} : { store });
  const limiter = system.limiter('openai', options);
  system.events.on('granted', (e: GrantedEvent) => void e.units[0]);
  const acquire: AcquireOptions = { cost: { tokens: 1200 }, timeout: '5s', priority: 1 };
  let grant: Grant | undefined;
  try {
    grant = await limiter.acquire('gpt-4o', acquire);
    await grant.settle({ tokens: 900 });
  } catch (e) {
    if (e instanceof AcquireTimeoutError) return -1;
    if (isTollgateError(e)) return -2;
    throw e;
  } finally {
    grant?.release();
  }
  const tried: TryResult = await limiter.tryAcquire('gpt-4o');
  if (tried.ok) tried.grant.release();
  else void tried.retryAfterMs;
  const stats: KeyStats = await limiter.stats('gpt-4o');
  const sub = limiter.stats$('gpt-4o').subscribe((s) => void s.limits.length);
  sub.unsubscribe();
  const f: typeof fetch = limitedFetch({ limiter });
  void f;
  await system.close();
  return stats.limits.length;
}
