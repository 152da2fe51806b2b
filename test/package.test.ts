/**
 * What `npm pack` would publish (#11): the build runs first (`prepack`), the tarball holds the
 * LICENSE, the README, both entry points and the Lua scripts, every source map carries its
 * sources (the tarball ships no `src/`), and CommonJS can `require` both entry points. Runs
 * `npm pack --dry-run --json` on the build the global setup made, with scripts off: a prepack
 * here would rewrite dist/ while other test files read it. A real pack, prepack and all, is
 * scripts/consumers.mjs's first step (in .ci/run).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('the package as npm pack makes it', () => {
  it('builds first, and ships the license, both entry points, the Lua and self-contained maps', () => {
    const manifest = JSON.parse(readFileSync(`${root}/package.json`, 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(manifest.scripts.prepack).toBe('npm run build');
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const [pack] = JSON.parse(out.slice(out.indexOf('['))) as [{ files: { path: string }[] }];
    const files = pack.files.map((f) => f.path);
    for (const f of [
      'LICENSE',
      'README.md',
      'package.json',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/redis/index.js',
      'dist/redis/lua/decide.lua',
    ])
      expect(files).toContain(f);
    expect(files.some((f) => f.startsWith('src/') || f.startsWith('test/'))).toBe(false);
    // One map per bundled file (scripts/build.mjs: the two entry points and the shared chunk).
    const maps = files.filter((f) => f.endsWith('.js.map'));
    expect(maps.sort()).toEqual(
      files
        .filter((f) => f.endsWith('.js'))
        .map((f) => `${f}.map`)
        .sort(),
    );
    expect(maps).toContain('dist/index.js.map');
    const without = maps.filter((f) => {
      const map = JSON.parse(readFileSync(`${root}/${f}`, 'utf8')) as {
        sourcesContent?: unknown[];
      };
      return !Array.isArray(map.sourcesContent) || map.sourcesContent.length === 0;
    });
    expect(without).toEqual([]);
    // CommonJS: `require` of both entry points (Node >= 20.19 loads ESM that way; the exports map
    // needs a `default` condition for it), through the package's own exports (self-reference).
    const required = execFileSync(
      process.execPath,
      [
        '-e',
        "const t = require('tollgate'); const r = require('tollgate/redis'); console.log(typeof t.createLimiterSystem, typeof r.redisStore)",
      ],
      { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    expect(required.trim()).toBe('function function');
  }, 120_000);
});
