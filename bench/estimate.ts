/**
 * Estimating hostile prompts: what limitedFetch's estimate costs per megabyte of prompt, and the
 * longest gap of the event loop while it runs, for text shaped to hurt a BPE tokenizer (one run
 * of a character, emoji, base64) and for prose. Each body is about 1 MB: one message of 1 MB
 * (estimated from samples, src/llm/tokenize.ts), and 16 messages of 64 KiB (counted exactly, in
 * pieces). The tokenizer is loaded before the first measurement (its one-time set-up is
 * reported on its own line).
 *
 * Run alone: `node --import tsx bench/estimate.ts [--quick]` prints its section.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { estimateTokensAsync, loadTokenizer } from '../src/index.js';
import { EXACT_MAX } from '../src/llm/tokenize.js';
import { median, renderSection, type Section, type Suite, type SuiteOptions } from './report.js';

const MB = 1 << 20;

function base64(chars: number, seed = 0): string {
  const bytes = new Uint8Array(Math.ceil((chars * 3) / 4));
  // Different for every seed: the tokenizer's cache of merges must not see the same text twice.
  for (let i = 0; i < bytes.length; i++) bytes[i] = ((i + seed * 7919) * 2654435761) >>> 24;
  return Buffer.from(bytes).toString('base64').slice(0, chars);
}

const SHAPES: readonly [string, (chars: number, seed?: number) => string][] = [
  ['`-` repeated', (n) => '-'.repeat(n)],
  ['tabs', (n) => '\t'.repeat(n)],
  ['emoji', (n) => '😀'.repeat(n >> 1)],
  ['base64', base64],
  [
    'prose',
    (n) => 'The quick brown fox jumps over the lazy dog. '.repeat(Math.ceil(n / 45)).slice(0, n),
  ],
];

/** Wall ms of one estimate, and the longest event-loop gap (ms) while it ran. */
async function measure(body: unknown): Promise<{ ms: number; gap: number }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const t0 = performance.now();
  await estimateTokensAsync(body);
  const ms = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 2));
  h.disable();
  return { ms, gap: h.max / 1e6 };
}

async function run({ quick, log }: SuiteOptions): Promise<Section> {
  const runs = quick ? 1 : 3;
  const t0 = performance.now();
  await loadTokenizer();
  const loadMs = performance.now() - t0;
  const rows: string[][] = [];
  for (const [name, make] of SHAPES) {
    const bodies: [string, unknown][] = [
      ['1 message of 1 MB', { messages: [{ role: 'user', content: make(MB) }] }],
      [
        '16 messages of 64 KiB',
        {
          messages: Array.from({ length: 16 }, (_, i) => ({
            role: 'user',
            content: make(EXACT_MAX - 1, i + 1),
          })),
        },
      ],
    ];
    for (const [shape, body] of bodies) {
      const ms: number[] = [];
      const gaps: number[] = [];
      for (let i = 0; i < runs; i++) {
        const r = await measure(body);
        ms.push(r.ms);
        gaps.push(r.gap);
      }
      log(`estimate: ${name}, ${shape}: ${median(ms).toFixed(0)} ms`);
      rows.push([name, shape, `${median(ms).toFixed(0)} ms`, `${Math.max(...gaps).toFixed(1)} ms`]);
    }
  }
  return {
    title: 'Estimating hostile prompts (limitedFetch)',
    blocks: [
      {
        table: {
          headers: ['text', 'body (~1 MB)', 'estimate, per MB', 'longest event-loop gap'],
          rows,
          align: ['l', 'l', 'r', 'r'],
        },
      },
      {
        text: [
          `\`estimateTokensAsync\` on each body, median of ${runs} run(s); the gap is the largest`,
          `\`monitorEventLoopDelay\` sample (1 ms resolution) while it ran, worst of the runs. Before`,
          `the bounded tokenizer, 40,000 \`-\` took 2.1 s and 20,000 emoji 10.4 s in one blocking call.`,
          `Loading the tokenizer (once, before the runs): ${loadMs.toFixed(0)} ms.`,
        ].join('\n'),
      },
    ],
  };
}

export const estimateSuite: Suite = { name: 'estimate', run };

// Run alone: prints this section (never writes BENCHMARKS.md).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const quick = process.argv.includes('--quick');
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  process.stdout.write(`${renderSection(await run({ quick, log }))}\n`);
}
