#!/usr/bin/env node
/**
 * `npm run test:consumers`: the package as its users get it (#11). Packs tollgate (prepack
 * builds it), lints the package (publint, @arethetypeswrong/cli), installs the tarball into a
 * temporary folder with the fixtures of test/consumers, and checks each fixture (see
 * test/consumers/README.md). Dependencies come from the npm cache when they are there
 * (--prefer-offline), at the versions this repo's lock file holds. Every check runs; the exit
 * code is 1 when any failed, and each failure prints what its step printed.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));
const bin = (name) => path.join(root, 'node_modules', '.bin', name);
const versionOf = (pkg) => JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`))).version;
const keep = process.argv.includes('--keep');

const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-consumers-'));
let failed = false;

function run(cmd, args, cwd = dir) {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** check runs one step; a throw or a wrong answer fails the run, and the next steps still run. */
function check(name, step) {
  const started = performance.now();
  try {
    step();
    console.log(`ok   ${name} (${Math.round(performance.now() - started)} ms)`);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${name}`);
    console.log(
      String(e.stdout ?? '') + String(e.stderr ?? '') + (e.stdout ? '' : String(e.stack ?? e)),
    );
  }
}

/** expectJson runs a fixture and compares the one line of JSON it prints with `want`. */
function expectJson(cmd, args, want, cwd = dir) {
  const out = run(cmd, args, cwd).trim().split('\n').at(-1);
  const got = JSON.parse(out);
  for (const [k, v] of Object.entries(want)) {
    const ok = typeof v === 'function' ? v(got[k]) : JSON.stringify(got[k]) === JSON.stringify(v);
    if (!ok)
      throw new Error(
        `${k}: got ${JSON.stringify(got[k])}, want ${typeof v === 'function' ? v : JSON.stringify(v)}`,
      );
  }
}

/** Every declaration file reachable from `entries` by relative imports. */
function declarationsFrom(pkg, entries) {
  const seen = new Set();
  const stack = entries.map((e) => path.join(pkg, e));
  while (stack.length > 0) {
    const file = stack.pop();
    if (seen.has(file)) continue;
    seen.add(file);
    for (const [, spec] of readFileSync(file, 'utf8').matchAll(
      /(?:from|import\()\s*['"](\.[^'"]+)['"]/g,
    )) {
      stack.push(path.join(path.dirname(file), spec.replace(/\.js$/, '.d.ts')));
    }
  }
  return seen;
}

/** bundle bundles the fixture `<name>/app.mjs` into `<name>/out.mjs` with esbuild. */
function bundle(name, options) {
  require('esbuild').buildSync({
    entryPoints: [path.join(dir, name, 'app.mjs')],
    absWorkingDir: dir,
    bundle: true,
    format: 'esm',
    outfile: path.join(dir, name, 'out.mjs'),
    logLevel: 'silent',
    ...options,
  });
}

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const install = (...specs) =>
  run(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', ...specs]);

try {
  let tarball = '';
  check('npm pack', () => {
    const out = run(npm, ['pack', '--pack-destination', dir, '--silent'], root).trim();
    tarball = path.join(dir, out.split('\n').at(-1));
  });
  check('publint', () => run(bin('publint'), ['run', '--strict', root], root));
  // ESM-only on purpose: a CommonJS app loads it with require() on Node >= 20.19 (require(esm)),
  // which attw's node16-from-CJS mode counts as "ESM (dynamic import only)".
  check('attw', () => run(bin('attw'), [tarball, '--ignore-rules', 'cjs-resolves-to-esm'], root));

  cpSync(path.join(root, 'test', 'consumers'), dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: 'consumers', private: true }),
  );
  check('install the tarball (no optional peer)', () => install(tarball));
  check('no optional peer in the install', () => {
    const installed = readdirSync(path.join(dir, 'node_modules'));
    for (const peer of ['ioredis', 'gpt-tokenizer', 'fast-check']) {
      if (installed.includes(peer))
        throw new Error(`${peer} was installed; it is an optional peer`);
    }
  });
  check('public declarations: no @internal member, no XState type in the core', () => {
    const pkg = path.join(dir, 'node_modules', 'tollgate');
    const core = declarationsFrom(pkg, ['dist/index.d.ts', 'dist/redis/index.d.ts']);
    for (const file of core) {
      if (/from ['"]xstate['"]|import\(['"]xstate['"]\)/.test(readFileSync(file, 'utf8'))) {
        throw new Error(`${file} names XState's types`);
      }
    }
    // tollgate/xstate and tollgate/testing name XState's and fast-check's types: their users
    // have them. No entry declares an internal member.
    const all = declarationsFrom(pkg, [
      'dist/index.d.ts',
      'dist/redis/index.d.ts',
      'dist/xstate/index.d.ts',
      'dist/testing/index.d.ts',
    ]);
    for (const file of all) {
      if (readFileSync(file, 'utf8').includes('@internal')) {
        throw new Error(`${file} declares an @internal member`);
      }
    }
  });

  const node = process.execPath;
  const want = { results: [true, true, false], redisStore: 'function', errors: true };
  check('ESM import', () => expectJson(node, ['esm/app.mjs'], want));
  check('CommonJS require', () => expectJson(node, ['cjs/app.cjs'], want));
  check('tollgate/xstate: a machine of the app asks by event and gets its replies', () =>
    expectJson(node, ['esm/xstate.mjs'], { replies: ['tollgate.granted', 'tollgate.refused'] }),
  );
  check('without ioredis and gpt-tokenizer: typed errors that say what to install', () =>
    expectJson(node, ['esm/noPeers.mjs'], {
      redis: (e) => e.code === 'INVALID_ARGUMENT' && e.message.includes('npm install ioredis'),
      tokenizer: (e) =>
        e.code === 'TOKENIZER_UNAVAILABLE' &&
        e.reason === 'not-installed' &&
        e.message.includes('npm install gpt-tokenizer'),
      booked: 0,
    }),
  );

  check('edge: a neutral-platform bundle of the core runs in Deno with no permission', () => {
    bundle('edge', { platform: 'neutral', mainFields: ['module', 'main'], target: 'es2022' });
    expectJson(
      bin('deno'),
      ['run', '--quiet', '--no-prompt', '--no-config', '--no-lock', 'edge/out.mjs'],
      {
        second: 'k',
        refused: true,
        afterRefill: true,
        id: true,
      },
    );
  });

  check('install the optional peers and @types/node', () =>
    install(
      `gpt-tokenizer@${versionOf('gpt-tokenizer')}`,
      `ioredis@${versionOf('ioredis')}`,
      `fast-check@${versionOf('fast-check')}`,
      `@types/node@${versionOf('@types/node')}`,
    ),
  );
  check('tollgate/testing with fast-check proves a property on virtual time', () =>
    expectJson(node, ['esm/testing.mjs'], { runs: 5, policy: true }),
  );
  check('tollgate/redis with ioredis decides on a real Redis', () =>
    expectJson(node, ['esm/redis.mjs'], { results: [true, true, false] }),
  );
  check('esbuild bundle of an app that uses limitedFetch', () => {
    bundle('bundle', { platform: 'node', target: 'node20', external: ['ioredis'] });
    // Run from a folder without node_modules, so that nothing is found outside the bundle.
    const alone = mkdtempSync(path.join(tmpdir(), 'tollgate-bundle-'));
    try {
      cpSync(path.join(dir, 'bundle/out.mjs'), path.join(alone, 'out.mjs'));
      expectJson(node, ['out.mjs'], { estimated: 9 + 1024, booked: 16 }, alone);
    } finally {
      rmSync(alone, { recursive: true, force: true });
    }
  });
  for (const resolution of ['node16', 'nodenext', 'bundler']) {
    check(`TypeScript, moduleResolution ${resolution}, skipLibCheck false`, () =>
      run(bin('tsc'), ['-p', `ts/tsconfig.${resolution}.json`]),
    );
  }
} finally {
  if (keep) console.log(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
