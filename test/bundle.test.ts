/**
 * An app bundled with esbuild that uses limitedFetch (#11): the tokenizer was loaded with
 * `createRequire`, which a bundler cannot follow, so the first call failed with "Cannot find
 * module 'gpt-tokenizer/encoding/o200k_base'". limitedFetch now loads it with `import()`, which
 * esbuild bundles. The app is bundled from the sources, run by a child node, and must estimate,
 * acquire and settle one call.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tollgate-bundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const app = `
import { createLimiterSystem, limitedFetch } from './src/index.ts';
const system = createLimiterSystem();
const limiter = system.limiter('openai', {
  limits: [{ limit: 100_000, interval: '1m', dimension: 'tokens', algorithm: 'sliding-window' }],
});
const answer = async () =>
  Response.json({ usage: { prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 } });
const f = limitedFetch({ limiter, fetch: answer, accounting: 'usage' });
await f('https://api.openai.com/v1/chat/completions', {
  method: 'POST',
  body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello world' }] }),
});
const booked = 100_000 - (await limiter.stats('gpt-4o')).limits[0].remaining;
console.log('booked ' + booked);
await system.close();
`;

describe('an esbuild bundle of an app that uses limitedFetch', () => {
  it('estimates, acquires and settles its first call', async () => {
    const outfile = join(dir, 'app.mjs');
    await build({
      stdin: { contents: app, resolveDir: root, loader: 'ts', sourcefile: 'app.ts' },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile,
      external: ['ioredis'],
      logLevel: 'silent',
    });
    const out = execFileSync(process.execPath, [outfile], { encoding: 'utf8', cwd: dir });
    expect(out.trim()).toBe('booked 16');
  }, 60_000);
});
