/**
 * The benchmark runs end to end in quick mode, writing its report to a temp file (never to
 * BENCHMARKS.md). No timing is asserted: only that it completes and prints the report's tables.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'tollgate-bench-'));

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('npm run bench -- --quick', () => {
  it(
    'completes, prints every table header, and writes only to the given file',
    { timeout: 180_000 },
    async () => {
      const out = path.join(tmp, 'BENCHMARKS.quick.md');
      const committed = path.join(root, 'BENCHMARKS.md');
      const before = existsSync(committed) ? readFileSync(committed, 'utf8') : null;

      const { stdout } = await run(
        process.execPath,
        ['--expose-gc', '--import', 'tsx', 'bench/run.ts', '--quick'],
        {
          cwd: root,
          // dist/ was built by the global setup: the bench must not rebuild it mid-run.
          env: { ...process.env, TOLLGATE_BENCH_OUT: out, TOLLGATE_BENCH_NO_BUILD: '1' },
          maxBuffer: 16 * 1024 * 1024,
        },
      );

      for (const header of [
        '# Benchmarks',
        '## Targets',
        '## Memory store',
        '### Throughput (awaited grants per second)',
        '### Grant latency',
        '### Heap per key',
        '## Mailbox hop by live actors',
        '| live keys',
        '## Redis',
        '### Batch-Lua ceiling',
        '### Where the time goes',
        '## Redis script cost\n\n### Redis time per script call',
        '| decide.lua ',
        '| settle.lua ',
        '| release.lua ',
        '## Waiters on one key',
        '## A store that does not answer',
        '## Redis durability mode: the cost of WAIT',
        '## Footprint: import time and bundle size',
        '### Import time',
        '### Minified bundle of a memory-only app',
        '| import time at most 2x rate-limiter-flexible',
        '| peer',
        '| target',
      ]) {
        expect(stdout).toContain(header);
      }
      for (const peer of [
        'tollgate (memory)',
        'rate-limiter-flexible (memory)',
        'limiter',
        'p-queue',
        'tollgate (redis)',
        'rate-limiter-flexible (RateLimiterRedis)',
        '| tollgate ',
      ]) {
        expect(stdout).toContain(peer);
      }
      expect(readFileSync(out, 'utf8')).toBe(stdout);
      expect(existsSync(committed) ? readFileSync(committed, 'utf8') : null).toBe(before);
    },
  );
});
