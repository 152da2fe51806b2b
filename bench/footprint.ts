/**
 * Footprint (#11): what a package costs an app before it limits anything, for tollgate and the
 * in-memory peers measured the same way in the same run.
 *
 * - Import time: the wall time of a fresh `node` child that imports the package's entry, minus
 *   that of a child that imports nothing (node's own start-up and exit); median of N children per
 *   package, the packages interleaved round by round so that a slow spell of a shared machine
 *   falls on all of them. tollgate's entry is its build, dist/index.js: when dist/ is missing or
 *   older than src/, this suite runs `npm run build` first. Each child also reports the time
 *   around its `import()` (the in-process column), which start-up noise does not reach.
 * - Bundle: esbuild bundles a minimal memory-only app of each package (bench/bundles/*.mjs:
 *   one limiter, one acquire), for node, as ESM, minified and tree-shaken; the size of the output
 *   and, from esbuild's metafile, the bytes of it that come from each package. Each bundle is run
 *   once, so one that bundles but cannot run does not go unnoticed.
 *
 * Run alone: `node --import tsx bench/footprint.ts [--quick]` prints its section.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import {
  fmtKiB,
  fmtMs,
  fmtRatio,
  median,
  renderSection,
  renderTargets,
  type Section,
  type Suite,
  type SuiteOptions,
  type Target,
} from './report.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const distEntry = path.join(root, 'dist', 'index.js');

interface Package {
  readonly name: string;
  /** What a child imports: a bare specifier resolved from the repository, or a file URL. */
  readonly specifier: string;
  /** The minimal app bundled for this package, under bench/bundles/. */
  readonly app: string;
}

/** rate-limiter-flexible first: the reference of every ratio. */
const RLF = 'rate-limiter-flexible';
const PACKAGES: readonly Package[] = [
  { name: RLF, specifier: RLF, app: 'rate-limiter-flexible.mjs' },
  { name: 'tollgate', specifier: pathToFileURL(distEntry).href, app: 'tollgate.mjs' },
  { name: 'limiter', specifier: 'limiter', app: 'limiter.mjs' },
  { name: 'p-queue', specifier: 'p-queue', app: 'p-queue.mjs' },
];

/** The import-time target of #11: at most this many times rate-limiter-flexible's. */
const TARGET_RATIO = 2;

/** Children per package (after one warm-up round that is not counted). */
const ROUNDS = { full: 15, quick: 3 };

/** The newest modification time of the files under `dir`, in ms. */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    newest = Math.max(newest, statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

/**
 * Builds dist/ when it is missing or older than src/, so the children import the sources' build;
 * with `TOLLGATE_BENCH_NO_BUILD=1` (the bench test) it refuses instead.
 */
function ensureBuilt(log: (line: string) => void): void {
  let built = 0;
  try {
    built = statSync(distEntry).mtimeMs;
  } catch {
    // no build yet
  }
  if (built >= newestMtime(path.join(root, 'src'))) return;
  // Under `npm test` dist/ is built once before any test file, and a build here would delete it
  // under another test's feet: stale there means src/ was edited since, and the run says so.
  if (process.env.TOLLGATE_BENCH_NO_BUILD === '1') {
    throw new Error('footprint: dist/ is missing or older than src/; run npm run build');
  }
  log('footprint: dist/ is missing or older than src/: npm run build');
  // The build's output goes to stderr, with the bench's other progress: stdout is the report.
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: ['ignore', 2, 2] });
}

/** The child: imports argv[1] if given and prints the ms its `import()` took. */
const CHILD = [
  'const specifier = process.argv[1];',
  'const t0 = performance.now();',
  'if (specifier !== undefined) await import(specifier);',
  'process.stdout.write(String(performance.now() - t0));',
].join('\n');

/** The children's environment: no NODE_OPTIONS (a loader such as tsx would be timed too). */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}

interface Timing {
  /** Wall ms of the whole child, spawn to exit. */
  readonly wallMs: number;
  /** ms around the child's `import()`, as it measured them. */
  readonly importMs: number;
}

function timeChild(specifier: string | null, env: NodeJS.ProcessEnv): Timing {
  const args = ['--input-type=module', '-e', CHILD, ...(specifier === null ? [] : [specifier])];
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { cwd: root, env, encoding: 'utf8' });
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) {
    throw new Error(`footprint: importing ${specifier ?? 'nothing'} failed:\n${r.stderr}`);
  }
  return { wallMs, importMs: Number(r.stdout) };
}

interface ImportRow {
  readonly name: string;
  /** Median child wall time minus the empty child's, ms. */
  readonly ms: number;
  /** Median of the children's own `import()` time, ms. */
  readonly inProcessMs: number;
}

function measureImports(
  rounds: number,
  log: (line: string) => void,
): { rows: ImportRow[]; emptyMs: number } {
  const env = childEnv();
  const targets: (Package | null)[] = [null, ...PACKAGES]; // null: the child that imports nothing
  const timings = targets.map((): Timing[] => []);
  for (let round = 0; round <= rounds; round++) {
    // Round 0 warms the file cache and is not counted; each round starts one further along.
    for (let i = 0; i < targets.length; i++) {
      const j = (i + round) % targets.length;
      const t = timeChild(targets[j]?.specifier ?? null, env);
      if (round > 0) timings[j]!.push(t);
    }
  }
  const emptyMs = median(timings[0]!.map((t) => t.wallMs));
  const rows = PACKAGES.map((p, i) => {
    const row: ImportRow = {
      name: p.name,
      ms: median(timings[i + 1]!.map((t) => t.wallMs)) - emptyMs,
      inProcessMs: median(timings[i + 1]!.map((t) => t.importMs)),
    };
    log(`footprint: import ${p.name}: ${fmtMs(row.ms)} (${rounds} children)`);
    return row;
  });
  return { rows, emptyMs };
}

interface BundleRow {
  readonly name: string;
  readonly bytes: number;
  /** Bytes of the output per package ('app' for the app itself), largest first. */
  readonly split: readonly (readonly [string, number])[];
}

/** The package an input of the bundle belongs to: tollgate's build, a dependency, or the app. */
function packageOf(input: string): string {
  const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (m !== null) return m[1]!;
  if (input.startsWith('dist/') || input.startsWith('src/')) return 'tollgate';
  if (input.startsWith('bench/')) return 'app';
  return input;
}

/** What an ESM bundle for node that holds CommonJS needs; counted in every bundle's size. */
const REQUIRE_SHIM =
  "import{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);";

async function measureBundle(p: Package, dir: string): Promise<BundleRow> {
  const outfile = path.join(dir, `${p.name}.mjs`);
  const result = await build({
    entryPoints: [path.join(root, 'bench', 'bundles', p.app)],
    absWorkingDir: root,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: true,
    treeShaking: true,
    metafile: true,
    write: false,
    outfile,
    // CommonJS in an ESM bundle (rate-limiter-flexible's require('cluster')) needs a require.
    banner: { js: REQUIRE_SHIM },
    logLevel: 'silent',
  });
  const out = result.outputFiles[0]!;
  const [meta] = Object.values(result.metafile.outputs);
  const byPackage = new Map<string, number>();
  for (const [input, { bytesInOutput }] of Object.entries(meta!.inputs)) {
    const name = packageOf(input);
    byPackage.set(name, (byPackage.get(name) ?? 0) + bytesInOutput);
  }
  // What no input accounts for: esbuild's own helpers (CommonJS wrappers) and the banner.
  const attributed = [...byPackage.values()].reduce((a, b) => a + b, 0);
  if (out.contents.length > attributed) {
    byPackage.set('esbuild runtime', out.contents.length - attributed);
  }
  // A bundle that does not run measures nothing: run it once.
  writeFileSync(outfile, out.contents);
  const ran = spawnSync(process.execPath, [outfile], { cwd: dir, encoding: 'utf8' });
  if (ran.status !== 0) {
    const tail = ran.stderr.split('\n').slice(-12).join('\n').slice(-2_000);
    throw new Error(`footprint: the ${p.name} bundle failed:\n${tail}`);
  }
  return {
    name: p.name,
    bytes: out.contents.length,
    split: [...byPackage].sort((a, b) => b[1] - a[1]),
  };
}

async function run({ quick, log }: SuiteOptions): Promise<Section> {
  ensureBuilt(log);
  const rounds = quick ? ROUNDS.quick : ROUNDS.full;
  const { rows: imports, emptyMs } = measureImports(rounds, log);

  const dir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-footprint-'));
  const bundles: BundleRow[] = [];
  try {
    for (const p of PACKAGES) {
      const b = await measureBundle(p, dir);
      log(`footprint: bundle ${p.name}: ${fmtKiB(b.bytes)}`);
      bundles.push(b);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const importOf = (name: string): number => imports.find((r) => r.name === name)?.ms ?? NaN;
  const bytesOf = (name: string): number => bundles.find((r) => r.name === name)?.bytes ?? NaN;
  const ratio = importOf('tollgate') / importOf(RLF);
  const targets: Target[] = [
    {
      name: `import time at most ${TARGET_RATIO}x ${RLF}`,
      measured: `${fmtMs(importOf('tollgate'))}, ${fmtRatio(ratio)}`,
      goal: `≤ ${TARGET_RATIO.toFixed(2)}×`,
      met: Number.isFinite(ratio) ? ratio <= TARGET_RATIO : false,
    },
    {
      name: 'memory-only app, minified bundle',
      measured: `${fmtKiB(bytesOf('tollgate'))}, ${fmtRatio(bytesOf('tollgate') / bytesOf(RLF))}`,
      goal: `reported beside ${RLF} (${fmtKiB(bytesOf(RLF))})`,
      met: null,
    },
  ];

  return {
    title: 'Footprint: import time and bundle size',
    blocks: [
      {
        text: [
          `Import time: the wall time of a fresh \`node\` child that imports the package's entry`,
          `(tollgate: dist/index.js), minus that of a child that imports nothing (${fmtMs(emptyMs)} in`,
          `this run); median of ${rounds} children per package, the packages interleaved round by`,
          `round after a warm-up round. In-process is the time around the child's own \`import()\`.`,
        ].join('\n'),
      },
      {
        table: {
          title: 'Import time',
          headers: ['package', 'import', `vs ${RLF}`, 'in-process'],
          rows: imports.map((r) => [
            r.name,
            fmtMs(r.ms),
            fmtRatio(r.ms / importOf(RLF)),
            fmtMs(r.inProcessMs),
          ]),
        },
      },
      {
        text: [
          'Bundle: esbuild bundles a minimal memory-only app per package (bench/bundles/: one',
          'limiter, one acquire) for node as ESM, minified and tree-shaken; the split is the bytes of',
          "the output each package's files account for, from esbuild's metafile.",
        ].join('\n'),
      },
      {
        table: {
          title: 'Minified bundle of a memory-only app',
          headers: ['package', 'bundle', `vs ${RLF}`, 'by package'],
          rows: bundles.map((b) => [
            b.name,
            fmtKiB(b.bytes),
            fmtRatio(b.bytes / bytesOf(RLF)),
            b.split.map(([name, bytes]) => `${name} ${fmtKiB(bytes)}`).join(', '),
          ]),
          align: ['l', 'r', 'r', 'l'],
        },
      },
    ],
    targets,
  };
}

export const footprintSuite: Suite = { name: 'footprint', run };

// Run alone: prints this section and its targets (never writes BENCHMARKS.md).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const quick = process.argv.includes('--quick');
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const section = await run({ quick, log });
  process.stdout.write(`${renderTargets(section.targets ?? [])}\n\n${renderSection(section)}\n`);
}
