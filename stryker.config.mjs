// @ts-check
/**
 * Mutation testing of the core: `npm run test:mutation` (StrykerJS 9, the last major that runs on
 * Node 20). Each mutant is type-checked first, then run against the tests of
 * vitest.mutation.config.ts that cover it (per-test coverage). One file alone:
 * `npm run test:mutation -- --mutate src/limiter/settle.ts`. The HTML report is written to
 * reports/mutation/ (git-ignored).
 *
 * What is mutated: src/limiter and src/memory whole, and of the key actor (src/machines) the parts
 * that are plain data structures with no store, clock or XState: keyQueue.ts and waiter.ts. The
 * rest of src/machines drives a runtime context (store calls, timers, emits) and is tested through
 * the actor tests, too slow to run per mutant.
 *
 * Equivalent mutants are disabled where they are, with a reason:
 * `// Stryker disable next-line <mutator>: <reason>`.
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts', related: false },
  coverageAnalysis: 'perTest',
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  mutate: [
    'src/limiter/**/*.ts',
    '!src/limiter/types.ts',
    '!src/limiter/algorithm.ts',
    '!src/limiter/index.ts',
    'src/memory/**/*.ts',
    'src/machines/keyQueue.ts',
    'src/machines/waiter.ts',
  ],
  ignorePatterns: ['dist', 'reports', 'coverage', 'bench', 'examples', 'test/consumers'],
  // The machine is shared: two workers at most.
  concurrency: 2,
  timeoutMS: 10_000,
  reporters: ['html', 'clear-text', 'progress'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  thresholds: { high: 95, low: 90, break: null },
  tempDirName: '.stryker-tmp',
};
