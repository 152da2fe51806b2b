/**
 * SseUsageReader on random streams (#17): random events of each provider's shape, random line
 * endings, comments and fields, cut at random places, give the usage the stream said; and a line
 * of tens of megabytes costs time linear in its length, however finely it is cut.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SseUsageReader, type TokenUsage } from '../../src/index.js';

interface Stream {
  /** The events' JSON, in order. */
  readonly events: { readonly name?: string; readonly data: string }[];
  readonly usage: TokenUsage;
}

const count = fc.integer({ min: 0, max: 1_000_000 });
/** Text a delta might carry, "usage" and quotes included (escaped by JSON.stringify). */
const text = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.constantFrom('"usage": {"prompt_tokens": 9}', 'data: x\n\n', '\r\n', 'usage'),
);

const openai: fc.Arbitrary<Stream> = fc
  .record({ deltas: fc.array(text, { maxLength: 5 }), i: count, o: count })
  .map(({ deltas, i, o }) => ({
    events: [
      ...deltas.map((d) => ({
        data: JSON.stringify({ choices: [{ delta: { content: d } }], usage: null }),
      })),
      {
        data: JSON.stringify({
          choices: [],
          usage: { prompt_tokens: i, completion_tokens: o, total_tokens: i + o },
        }),
      },
      { data: '[DONE]' },
    ],
    usage: { inputTokens: i, outputTokens: o, tokens: i + o },
  }));

const responses: fc.Arbitrary<Stream> = fc
  .record({ deltas: fc.array(text, { maxLength: 5 }), i: count, o: count })
  .map(({ deltas, i, o }) => ({
    events: [
      {
        name: 'response.created',
        data: JSON.stringify({ type: 'response.created', response: { usage: null } }),
      },
      ...deltas.map((d) => ({
        name: 'response.output_text.delta',
        data: JSON.stringify({ type: 'response.output_text.delta', delta: d }),
      })),
      {
        name: 'response.completed',
        data: JSON.stringify({
          type: 'response.completed',
          response: {
            output: deltas,
            usage: { input_tokens: i, output_tokens: o, total_tokens: i + o },
          },
        }),
      },
    ],
    usage: { inputTokens: i, outputTokens: o, tokens: i + o },
  }));

const anthropic: fc.Arbitrary<Stream> = fc
  .record({
    deltas: fc.array(text, { maxLength: 5 }),
    i: count,
    outs: fc.array(count, { minLength: 1, maxLength: 3 }),
  })
  .map(({ deltas, i, outs }) => ({
    events: [
      {
        name: 'message_start',
        data: JSON.stringify({
          type: 'message_start',
          message: { usage: { input_tokens: i, output_tokens: 1 } },
        }),
      },
      ...deltas.map((d) => ({
        name: 'content_block_delta',
        data: JSON.stringify({ type: 'content_block_delta', delta: { text: d } }),
      })),
      ...outs.map((o) => ({
        name: 'message_delta',
        data: JSON.stringify({ type: 'message_delta', usage: { output_tokens: o } }),
      })),
      { name: 'message_stop', data: JSON.stringify({ type: 'message_stop' }) },
    ],
    usage: { inputTokens: i, outputTokens: outs.at(-1)!, tokens: i + outs.at(-1)! },
  }));

/** The stream as SSE text: `ending` between lines, with comments and other fields here and there. */
function encode(s: Stream, ending: string, extras: readonly boolean[]): string {
  const lines: string[] = [];
  s.events.forEach((e, n) => {
    if (extras[n % extras.length] === true) lines.push(': ping', 'id: ' + String(n));
    if (e.name !== undefined) lines.push(`event: ${e.name}`);
    lines.push(`data: ${e.data}`, '');
  });
  return lines.join(ending) + ending;
}

function read(text: string, cuts: readonly number[]): TokenUsage {
  const reader = new SseUsageReader();
  let at = 0;
  for (const p of [...cuts].sort((a, b) => a - b).map((c) => c % (text.length + 1))) {
    reader.push(text.slice(at, Math.max(at, p)));
    at = Math.max(at, p);
  }
  reader.push(text.slice(at));
  reader.end();
  return reader.usage;
}

describe('SseUsageReader on random streams', () => {
  it('any cut of any valid stream gives the usage the stream said', () => {
    fc.assert(
      fc.property(
        fc.oneof(openai, responses, anthropic),
        fc.constantFrom('\n', '\r\n', '\r'),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (stream, ending, extras, cuts) => {
          const sse = encode(stream, ending, extras);
          expect(read(sse, [])).toEqual(stream.usage);
          expect(read(sse, cuts)).toEqual(stream.usage);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('SseUsageReader on a line of many megabytes', () => {
  const MB = 1 << 20;
  // A Responses stream's last event repeats the whole output: here an image of 20 MB in base64.
  const image = 'QUJD'.repeat((20 * MB) / 4);
  const completed = JSON.stringify({
    type: 'response.completed',
    response: {
      output: [{ type: 'image_generation_call', result: image, note: 'a "usage": {} in text' }],
      usage: { input_tokens: 31, output_tokens: 4160, total_tokens: 4191 },
    },
  });
  const stream = `event: response.completed\ndata: ${completed}\n\n`;

  function feed(chunk: number): TokenUsage {
    const r = new SseUsageReader();
    for (let at = 0; at < stream.length; at += chunk) r.push(stream.slice(at, at + chunk));
    r.end();
    return r.usage;
  }

  it('reads the usage of an event too long to parse whole, in any chunking', () => {
    const want = { inputTokens: 31, outputTokens: 4160, tokens: 4191 };
    expect(feed(64 * 1024)).toEqual(want);
    expect(feed(stream.length)).toEqual(want);
    // The same event short enough to parse whole gives the same answer.
    const small = completed.replace(image, 'QUJD');
    const r = new SseUsageReader();
    r.push(`data: ${small}\n\n`);
    expect(r.usage).toEqual(want);
  });

  it('costs time linear in the line, not in the line times its pieces', () => {
    // Measured against JSON.parse of the same text on the same machine (a ratio, not a clock):
    // before, 64 KB pieces of a 20 MB line took seconds, over a hundred times the parse.
    const best = (f: () => unknown): number => {
      let min = Infinity;
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        f();
        min = Math.min(min, performance.now() - t0);
      }
      return min;
    };
    const parse = best(() => JSON.parse(completed));
    const read = best(() => feed(64 * 1024));
    expect(read / parse).toBeLessThan(15);
  });
});

describe('SseUsageReader.failed', () => {
  it.each([
    [
      'Anthropic error',
      'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n',
      true,
    ],
    ['Responses error', 'data: {"type":"error","code":"server_error","message":"x"}\n\n', true],
    ['Responses failed', 'data: {"type":"response.failed","response":{"usage":null}}\n\n', true],
    [
      'a delta that says "error"',
      'data: {"type":"content_block_delta","delta":{"text":"error failed"}}\n\n',
      false,
    ],
  ])('%s → %s', (_, text, failed) => {
    const r = new SseUsageReader();
    r.push(text);
    r.end();
    expect(r.failed).toBe(failed);
  });
});
