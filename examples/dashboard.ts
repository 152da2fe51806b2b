/**
 * A terminal dashboard: stats$ is an RxJS Observable of a key's remaining capacity. Four agents
 * share one budget for a second; the bar shows it drain and refill.
 */
import { take } from 'rxjs';
import { createLimiterSystem } from '../src/index.js';

const system = createLimiterSystem();
const llm = system.limiter('llm', {
  limits: [{ limit: 20, interval: '1s', dimension: 'tokens', burst: 20 }],
});

const bar = (n: number, of: number) => '#'.repeat(n) + '.'.repeat(of - n);
const done = new Promise<void>((resolve) => {
  llm
    .stats$('shared', { every: '100ms' })
    .pipe(take(12))
    .subscribe({
      next: (s) => console.log(`[${bar(s.limits[0]!.remaining, 20)}] queued ${s.queued}`),
      complete: resolve,
    });
});
const agents = [1, 2, 3, 4].map(async (agent) => {
  for (let i = 0; i < 3; i++) await llm.acquire('shared', { cost: { tokens: 3 } });
  return agent;
});
await Promise.all([done, ...agents]);
console.log('dashboard done');
await system.close();
