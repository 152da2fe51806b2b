/**
 * The tests `npm run test:mutation` runs against each mutant (stryker.config.mjs): only those fast
 * enough to run per mutant, on virtual time, with no Redis (so no globalSetup). Property-test
 * strength comes from the variables the tests already read: PROP_RUNS (runs per property) and
 * EXACT_OPS (operations of the long exactness run), lowered here unless set in the environment.
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
      'test/limiter/**/*.test.ts',
      'test/props/**/*.test.ts',
      'test/memory/**/*.test.ts',
      'test/machines/**/*.test.ts',
      'test/conformance/memory.test.ts',
    ],
    env: {
      PROP_RUNS: process.env.PROP_RUNS ?? '200',
      EXACT_OPS: process.env.EXACT_OPS ?? '100000',
    },
    testTimeout: 60_000,
  },
});
