/**
 * Every file in examples/ runs as it is, with node (and tsx for TypeScript), on the real clock.
 * Each must exit 0 and print what it promises.
 */
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));

const expected: Record<string, RegExp[]> = {
  'agentLoop.ts': [
    /agent loop done: 12 calls in \d+ ms, 0 refused by the server \(429\)/,
    /counted by the server (\d+), booked \1 \(/,
  ],
  'agentProperties.ts': [
    /proved over 100 runs: every task finishes, every agent gets its turn, at most \d+ of 2000 tokens used in any minute/,
  ],
  'basic.ts': [/call 1 at 0 ms/, /call 8 at \d+ ms/, /refused by requests\/1m, retry in ~\d+ s/],
  'perUser.ts': [/alice: wait \d+ ms/, /bob: ok/, /alice has 0 left, bob has 2/],
  'llmTokens.ts': [/booked 2007, settled; tokens left 3843/],
  'dashboard.ts': [/\[[#.]{20}\] queued \d+/, /dashboard done/],
  'sharedBudget.ts': [/run total: 7 calls, 2850 in, 840 out/, /budget left: requests\/1m=43/],
  'xstateAgents.ts': [
    /researcher: 3 calls, 951 in, 450 out/,
    /run total: 7 calls, 2203 in, 1050 out/,
    /budget left: requests\/1m=43, inputTokens\/1m=17797, outputTokens\/1m=6950/,
    /inspected: \d+ events to \d+ actors, the key actor of anthropic's claude among them: true/,
  ],
};

describe('examples', () => {
  const files = readdirSync(new URL('../examples', import.meta.url)).filter((f) =>
    f.endsWith('.ts'),
  );

  it('has an expectation for every example', () => {
    expect(files.sort()).toEqual(Object.keys(expected).sort());
  });

  // The property example fails, as it should, on a loop with a bug planted in it.
  for (const [bug, message] of [
    [
      'over-budget',
      /Property failed after \d+ runs: minute \d+: the model used \d+ tokens, over 2000/,
    ],
    ['lost-task', /Property failed after \d+ runs: \w+ finished \d+ of its \d+ tasks/],
  ] as const) {
    it(`examples/agentProperties.ts --planted-bug ${bug} fails with a counterexample`, async () => {
      const failed = await run(
        process.execPath,
        ['--import', 'tsx', 'examples/agentProperties.ts', '--planted-bug', bug],
        { cwd: root, timeout: 30_000 },
      ).then(
        () => null,
        (e: { code?: number; stdout?: string }) => e,
      );
      expect(failed?.code).toBe(1);
      expect(failed?.stdout).toMatch(message);
      expect(failed?.stdout).toMatch(/counterexample: \[/);
    });
  }

  for (const file of files) {
    it(`runs examples/${file}`, async () => {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', `examples/${file}`], {
        cwd: root,
        timeout: 30_000,
      });
      for (const re of expected[file] ?? []) expect(stdout).toMatch(re);
    });
  }
});
