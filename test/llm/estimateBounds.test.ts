/**
 * Estimating hostile prompts (#17, finding 2): gpt-tokenizer is quadratic in the length of one
 * pre-token (40,000 `-` took 2.1 s, 20,000 emoji 10.4 s), and the estimate ran before acquire,
 * on the event loop. Now a prompt of a megabyte, of any shape, is estimated in bounded time and
 * without stalling other callers: the longest stretch of work between two turns of the event
 * loop while limitedFetch's estimate runs is compared with plain JSON parsing of the same body
 * (a ratio, not a clock). Both are measured in this process's CPU time, not wall time: on a
 * loaded machine the process waits for a core between any two turns, however little it does
 * (wall-clock gaps of 108 ms against a bound of 50 failed a run beside two busy loops, #11).
 */
import { countTokens as wholeCount } from 'gpt-tokenizer/encoding/o200k_base';
import { beforeAll, describe, expect, it } from 'vitest';
import { estimateTokens, estimateTokensAsync, loadTokenizer } from '../../src/index.js';
import { EXACT_MAX } from '../../src/llm/tokenize.js';

// Loading the encoding is one-time work on the main thread (~0.3 s): limitedFetch starts it when
// it is created, and an app can await loadTokenizer() at startup. Measured apart, here.
beforeAll(() => loadTokenizer());

const MB = 1 << 20;

function randomBase64(chars: number, seed = 0): string {
  const bytes = new Uint8Array(Math.ceil((chars * 3) / 4));
  // Different for every seed: the tokenizer's cache of merges must not see the same text twice.
  for (let i = 0; i < bytes.length; i++) bytes[i] = ((i + seed * 7919) * 2654435761) >>> 24;
  return Buffer.from(bytes).toString('base64').slice(0, chars);
}

const prose = (chars: number): string =>
  'The quick brown fox jumps over the lazy dog. '.repeat(Math.ceil(chars / 45)).slice(0, chars);

/** Hostile texts: one run of a character, emoji, base64, and prose for comparison. */
const shapes: [string, (chars: number, seed?: number) => string][] = [
  ['dashes', (n) => '-'.repeat(n)],
  ['tabs', (n) => '\t'.repeat(n)],
  ['emoji', (n) => '😀'.repeat(n >> 1)],
  ['base64', randomBase64],
  ['prose', prose],
];

/** A body of about 1 MB: one message of it, or many messages just under the exact-count size. */
function bodies(make: (chars: number, seed?: number) => string): [string, unknown][] {
  return [
    ['one 1 MB message', { messages: [{ role: 'user', content: make(MB) }] }],
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
}

/** CPU time (user + system) this process has used, in ms. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * The most CPU time (ms) spent between two turns of the event loop while `work` runs: a
 * setImmediate loop notes the CPU clock at every turn it gets.
 */
async function longestCpuGap(work: () => Promise<unknown>): Promise<number> {
  let last = cpuMs();
  let longest = 0;
  let running = true;
  const turn = (): void => {
    const now = cpuMs();
    longest = Math.max(longest, now - last);
    last = now;
    if (running) setImmediate(turn);
  };
  setImmediate(turn);
  await work();
  running = false;
  await new Promise((r) => setImmediate(r));
  return longest;
}

describe('estimating a hostile prompt of a megabyte', () => {
  it.each(shapes)('%s: bounded, and the event loop keeps turning', async (_, make) => {
    const exactPiece = estimateTokens({ prompt: make(EXACT_MAX - 1) }).inputTokens;
    for (const [name, body] of bodies(make)) {
      const text = JSON.stringify(body);
      const t0 = cpuMs();
      for (let i = 0; i < 5; i++) JSON.parse(text);
      const parseMs = Math.max(1, (cpuMs() - t0) / 5);
      let estimate = { inputTokens: 0, outputTokens: 0 };
      let took = 0;
      const gap = await longestCpuGap(async () => {
        const started = cpuMs();
        estimate = await estimateTokensAsync(body);
        took = cpuMs() - started;
      });
      expect(gap).toBeLessThan(Math.max(50, 10 * parseMs));
      // Bounded as a whole too: `npm run bench` prints the time per MB ("Estimating hostile
      // prompts"), some tens of JSON parses of the same body; the unbounded tokenizer took minutes.
      expect(took / parseMs).toBeLessThan(400);
      // Sampled or counted, the estimate is at least what counting it in 64 KiB parts gives
      // (less 10%: a sample of a uniform text is the text's rate), and never above its bytes.
      const parts = name.startsWith('one') ? MB / (EXACT_MAX - 1) : 16;
      expect(estimate.inputTokens).toBeGreaterThan(0.9 * parts * exactPiece);
      expect(estimate.inputTokens).toBeLessThanOrEqual(Buffer.byteLength(text) + 100);
      // The synchronous estimate counts the same.
      expect(estimateTokens(body).inputTokens).toBe(estimate.inputTokens);
    }
  });

  it('counts prose in pieces exactly as one call of the tokenizer does', () => {
    const text = prose(EXACT_MAX - 2000) + '\n' + prose(1000);
    const whole = wholeCount(text, { allowedSpecial: new Set(), disallowedSpecial: new Set() });
    expect(estimateTokens({ prompt: text }).inputTokens).toBe(whole);
  });
});
