/**
 * `npm run bench`: runs every suite once, prints the report to stdout and writes it to
 * BENCHMARKS.md (overwriting it). Progress goes to stderr.
 *
 *   npm run bench                      full run (a few minutes at most), writes BENCHMARKS.md
 *   npm run bench -- --quick           smoke run; writes a temp file unless --out is given
 *   npm run bench -- --out FILE        write the report to FILE instead
 *   TOLLGATE_BENCH_OUT=FILE            same as --out
 *
 * A suite is a module returning one `## Section` (see report.ts); add one to SUITES.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { actorsSuite } from './actors.js';
import { durabilitySuite } from './durability.js';
import { estimateSuite } from './estimate.js';
import { footprintSuite } from './footprint.js';
import { limiterStatsSuite } from './limiterStats.js';
import { memorySuite } from './memory.js';
import { redisSuite } from './redis.js';
import { scriptCostSuite } from './scriptCost.js';
import { unansweringSuite } from './unanswering.js';
import { waitersSuite } from './waiters.js';
import {
  machine,
  renderSection,
  renderTargets,
  type Section,
  type Suite,
  type Target,
} from './report.js';

const SUITES: readonly Suite[] = [
  memorySuite,
  actorsSuite,
  limiterStatsSuite,
  waitersSuite,
  estimateSuite,
  redisSuite,
  scriptCostSuite,
  unansweringSuite,
  durabilitySuite,
  footprintSuite,
];

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');

interface Args {
  quick: boolean;
  out: string;
}

function readArgs(argv: readonly string[]): Args {
  let values: { quick?: boolean; out?: string };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { quick: { type: 'boolean' }, out: { type: 'string' } },
    }));
  } catch (e) {
    throw new Error(`bench: ${(e as Error).message} (expected --quick, --out FILE)`);
  }
  const quick = values.quick === true;
  let out = values.out ?? (process.env.TOLLGATE_BENCH_OUT || undefined);
  if (out === undefined || out === '') {
    // A smoke run's numbers mean nothing: never let one overwrite the real report by default.
    out = quick
      ? path.join(os.tmpdir(), 'tollgate-bench-quick.md')
      : path.join(root, 'BENCHMARKS.md');
  }
  return { quick, out: path.resolve(out) };
}

/** The heap workload needs `gc()`: without --expose-gc, run again with it. */
function respawnWithGc(): Promise<number> {
  const args = ['--expose-gc', ...process.execArgv, ...process.argv.slice(1)];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
}

function commandLine(argv: readonly string[]): string {
  const extra = argv.length > 0 ? ` -- ${argv.join(' ')}` : '';
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench${extra}`;
  return `node --expose-gc --import tsx bench/run.ts${argv.length > 0 ? ` ${argv.join(' ')}` : ''}`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const args = readArgs(argv);
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const started = new Date();
  const t0 = process.hrtime.bigint();

  const sections: Section[] = [];
  for (const suite of SUITES) {
    log(`bench: suite ${suite.name}`);
    sections.push(await suite.run({ quick: args.quick, log }));
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;

  const m = machine();
  const targets: Target[] = sections.flatMap((s) => s.targets ?? []);
  const header = [
    '# Benchmarks',
    '',
    '_Written by `npm run bench` (`bench/run.ts`); do not edit by hand, run it again._',
    ...(args.quick ? ['', '**Quick smoke run: the numbers below mean nothing.**'] : []),
    '',
    `- Machine: ${m.cpu}, ${m.cores} logical CPUs, ${m.memGiB.toFixed(1)} GiB RAM, ${m.platform}`,
    `- Node: ${m.node}`,
    `- Date: ${started.toISOString()}`,
    `- Command: \`${commandLine(argv)}\` (${seconds.toFixed(0)} s)`,
    '- The machine is shared with other work: absolute numbers are noisy; the same-run ratios less so.',
  ];
  const parts = [
    header.join('\n'),
    [
      '## Targets',
      '',
      'From the issue; ratios are tollgate / rate-limiter-flexible in this run unless the target names another reference.',
      '',
      renderTargets(targets),
    ].join('\n'),
    ...sections.map(renderSection),
  ];
  const report = parts.join('\n\n') + '\n';

  process.stdout.write(report);
  writeFileSync(args.out, report);
  log(`bench: wrote ${args.out}`);
}

if (typeof (globalThis as { gc?: unknown }).gc !== 'function') {
  process.exit(await respawnWithGc());
}
await main();
// p-queue leaves interval timers armed for a minute after its last task; do not wait for them.
process.exit(0);
