/**
 * What a subscriber to a whole limiter's stats (`limiter.stats$()`) costs, with 1,000 and
 * 100,000 live keys: the time of a grant without and with one, and the time to its first value
 * (which reads every live key once). The stream's design says a change costs the same whatever
 * the number of live keys: this measures whether it does.
 */
import { createLimiterSystem, type LimiterStats } from '../src/index.js';
import { fmtInt, fmtNs, median, type Section, type Suite, type SuiteOptions } from './report.js';

/** Subscriptions of the run in progress. */
const subs: { unsubscribe(): void }[] = [];

/** Keys visited in a scattered order (7919 is prime, so every key is visited). */
const scatter = (i: number, n: number): number => (i * 7919) % n;

/** ns per grant of `ops` sequential acquire + release on the `n` keys, scattered. */
async function grants(
  limiter: ReturnType<ReturnType<typeof createLimiterSystem>['limiter']>,
  n: number,
  ops: number,
): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) (await limiter.acquire(`k${scatter(i, n)}`)).release();
  return Number(process.hrtime.bigint() - t0) / ops;
}

async function run(options: SuiteOptions): Promise<Section> {
  const sizes = options.quick ? [1_000] : [1_000, 100_000];
  const ops = options.quick ? 5_000 : 100_000;
  const runs = options.quick ? 1 : 3;
  const rows: string[][] = [];
  for (const n of sizes) {
    options.log(`limiterStats: ${fmtInt(n)} live keys`);
    const system = createLimiterSystem({ idleTimeout: '1h' });
    const limiter = system.limiter('api', { limits: [{ limit: 100_000_000, interval: '1h' }] });
    await Promise.all(Array.from({ length: n }, (_, i) => limiter.tryAcquire(`k${i}`)));
    const without: number[] = [];
    const withSub: number[] = [];
    const firstMs: number[] = [];
    for (let r = 0; r < runs; r++) {
      without.push(await grants(limiter, n, ops));
      const t0 = performance.now();
      let last: LimiterStats | null = null;
      const first = new Promise<void>((resolve) => {
        const sub = limiter.stats$().subscribe((s) => {
          last = s;
          resolve();
        });
        subs.push(sub);
      });
      await first;
      firstMs.push(performance.now() - t0);
      withSub.push(await grants(limiter, n, ops));
      for (const s of subs.splice(0)) s.unsubscribe();
      if ((last as LimiterStats | null)?.keys !== n)
        throw new Error('limiterStats: keys miscounted');
    }
    await system.close();
    const a = median(without);
    const b = median(withSub);
    rows.push([
      fmtInt(n),
      fmtNs(a),
      fmtNs(b),
      `${(b / a).toFixed(2)}×`,
      `${median(firstMs).toFixed(1)} ms`,
    ]);
  }
  return {
    title: 'Whole-limiter stats: the cost of a subscriber',
    blocks: [
      {
        text: [
          `A grant (sequential acquire and release on scattered keys, median of ${runs} run${runs === 1 ? '' : 's'} of ${fmtInt(ops)})`,
          'without a subscriber and with one to `limiter.stats$()`, which reads the key each change',
          'touched and updates the sums; and the time to its first value, which reads every live key.',
          'A grant with a subscriber should cost the same with 100,000 live keys as with 1,000.',
        ].join('\n'),
      },
      {
        table: {
          headers: ['live keys', 'grant', 'grant, stats$() subscribed', 'ratio', 'first value'],
          rows,
          align: ['r', 'r', 'r', 'r', 'r'],
        },
      },
    ],
  };
}

export const limiterStatsSuite: Suite = { name: 'limiterStats', run };
