// tollgate/testing with the app's fast-check: a property of a small loop, on virtual time.
import fc from 'fast-check';
import { policyArb, runLimited } from 'tollgate/testing';

let runs = 0;
await fc.assert(
  fc.asyncProperty(fc.scheduler(), async (s) => {
    const report = await runLimited(
      { scheduler: s, limiters: { api: { limits: [{ limit: 2, interval: '1s' }] } } },
      async (t) => {
        for (let i = 0; i < 3; i++) (await t.limiters.api.acquire('k')).release();
        return t.clock.now();
      },
    );
    if (!report.finished || report.of('granted').length !== 3) throw new Error('not all granted');
    runs++;
  }),
  { numRuns: 5 },
);
const policy = fc.sample(policyArb(), 1)[0];
console.log(JSON.stringify({ runs, policy: Array.isArray(policy.limits) }));
