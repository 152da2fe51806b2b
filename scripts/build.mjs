#!/usr/bin/env node
/**
 * `npm run build`: dist/ as the package ships it.
 * - The JavaScript is bundled by esbuild, one file per entry point (`tollgate`, `tollgate/redis`,
 *   `tollgate/xstate`, `tollgate/testing`) and shared chunks for what they have in common (so an
 *   error class is one class across them), with every dependency and peer left external. Loading
 *   a few files instead of some fifty modules halves the import time (#11; `npm run bench`
 *   measures it). Source maps carry their sources.
 * - The declarations come from tsc (`tsconfig.build.json`: `stripInternal`), one per module.
 * - The Redis store's Lua scripts are copied next to the Redis entry, which reads them from
 *   `./lua` (src/redis/scripts.ts).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const external = [
  ...Object.keys(pkg.dependencies ?? {}),
  ...Object.keys(pkg.peerDependencies ?? {}),
].flatMap((name) => [name, `${name}/*`]);

rmSync(dist, { recursive: true, force: true });
execFileSync(
  process.execPath,
  [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
  { cwd: root, stdio: 'inherit' },
);
await build({
  absWorkingDir: root,
  entryPoints: {
    index: 'src/index.ts',
    'redis/index': 'src/redis/index.ts',
    'xstate/index': 'src/xstate/index.ts',
    'testing/index': 'src/testing/index.ts',
  },
  outdir: dist,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external,
  sourcemap: true,
  logLevel: 'warning',
});
cpSync(path.join(root, 'src/redis/lua'), path.join(dist, 'redis/lua'), { recursive: true });
