/**
 * What an LLM call really used, read from the provider's answer. Pure: nothing here reads a
 * clock, does I/O or keeps state beyond the one {@link SseUsageReader} it is fed.
 *
 * Read (field names as the providers send them):
 * - OpenAI Chat Completions, https://platform.openai.com/docs/api-reference/chat/object :
 *   `usage.prompt_tokens`, `usage.completion_tokens`, `usage.total_tokens`.
 * - OpenAI Responses, https://platform.openai.com/docs/api-reference/responses/object :
 *   `usage.input_tokens`, `usage.output_tokens`, `usage.total_tokens`; streamed, in the
 *   `response.completed` event's `response.usage`.
 * - OpenAI streams: with `stream_options: { include_usage: true }` one chunk before `[DONE]`
 *   carries `usage` (every other chunk has `usage: null`). Without it a stream tells nothing.
 * - Anthropic Messages, https://docs.anthropic.com/en/api/messages :
 *   `usage.input_tokens`, `usage.output_tokens`, plus `cache_creation_input_tokens`, which counts
 *   toward the input-token rate limit and is added to `inputTokens`. `cache_read_input_tokens`
 *   does not count toward it (https://docs.anthropic.com/en/api/rate-limits) and is left out.
 *   Streamed: `message_start` carries `message.usage.input_tokens`; `message_delta` carries the
 *   cumulative `usage.output_tokens`. The `output_tokens` of `message_start` (1 or so, before any
 *   text) is not final, so it is not taken as the output.
 *
 * Worked example, an Anthropic stream cut into arbitrary pieces:
 *   push('event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tok')
 *   push('ens":25,"output_tokens":1}}}\n\n')             → usage { inputTokens: 25 }
 *   push('data: {"type":"message_delta","usage":{"output_tokens":15}}\n\n')
 *                                                         → usage { inputTokens: 25, outputTokens: 15, tokens: 40 }
 *
 * A number that is not a non-negative safe integer is ignored, never thrown on: an odd body from a
 * provider must not crash the caller.
 */
import type { CostSpec } from '../limiter/types.js';

/**
 * TokenUsage is what a call used, as far as it is known. A field is absent when the provider did
 * not say (yet). `tokens` is the provider's total, or `inputTokens + outputTokens` when both are
 * known; it is never derived from one part alone.
 */
export interface TokenUsage {
  readonly inputTokens?: number;
  readonly outputTokens?: number;
  readonly tokens?: number;
}

/**
 * usageFromBody reads the usage of a JSON response body (OpenAI Chat Completions or Responses,
 * Anthropic Messages), already parsed. Returns null when the body names no usage.
 *
 * @example
 * usageFromBody({ usage: { prompt_tokens: 12, completion_tokens: 30, total_tokens: 42 } })
 * // { inputTokens: 12, outputTokens: 30, tokens: 42 }
 */
export function usageFromBody(body: unknown): TokenUsage | null {
  if (!isRecord(body)) return null;
  return usageFromObject(body.usage);
}

/**
 * usageFromObject reads one `usage` object in any of the shapes above. Returns null when it names
 * no count.
 */
export function usageFromObject(usage: unknown): TokenUsage | null {
  if (!isRecord(usage)) return null;
  let input = count(usage.prompt_tokens) ?? count(usage.input_tokens);
  const cacheCreation = count(usage.cache_creation_input_tokens);
  if (input !== undefined && cacheCreation !== undefined) input += cacheCreation;
  const output = count(usage.completion_tokens) ?? count(usage.output_tokens);
  const total = count(usage.total_tokens);
  return make(input, output, total);
}

/**
 * SseUsageReader follows the usage of a server-sent-events stream fed to it as text, in pieces
 * cut anywhere (inside a line, between `\r` and `\n`, inside a multi-byte character only if the
 * caller decodes with `{ stream: true }`). It parses SSE lines (`data:` fields, joined per event;
 * `event:`, `id:` and comments are skipped), JSON-parses each event's data, and keeps the latest
 * usage it saw. `data: [DONE]` and unparsable data are skipped.
 *
 * @example
 * const reader = new SseUsageReader();
 * for await (const chunk of body.pipeThrough(new TextDecoderStream())) reader.push(chunk);
 * reader.end();
 * reader.usage; // { inputTokens, outputTokens, tokens } as far as the stream told
 */
export class SseUsageReader {
  /** Text after the last complete line; never holds a line break, except a final lone `\r`. */
  #pending = '';
  /** The `data:` lines of the event being read, joined with `\n` at dispatch. */
  #data: string[] = [];
  #input: number | undefined;
  #output: number | undefined;
  #total: number | undefined;
  #ended = false;

  /** push feeds the next piece of the stream's text. Ignored after {@link SseUsageReader.end}. */
  push(text: string): void {
    if (this.#ended || text.length === 0) return;
    let buf = this.#pending + text;
    let start = 0;
    for (;;) {
      const cr = buf.indexOf('\r', start);
      const lf = buf.indexOf('\n', start);
      const at = cr === -1 ? lf : lf === -1 ? cr : Math.min(cr, lf);
      if (at === -1) break;
      if (at === cr && at === buf.length - 1) break; // a `\r` at the end may be half of `\r\n`
      this.#line(buf.slice(start, at));
      start = at + (at === cr && buf[at + 1] === '\n' ? 2 : 1);
    }
    buf = buf.slice(start);
    this.#pending = buf;
  }

  /**
   * end says the stream is over: a last line without a line break is read and a last event
   * without a blank line after it is dispatched (a stream cut short may still have said its usage).
   */
  end(): void {
    if (this.#ended) return;
    const rest = this.#pending.endsWith('\r') ? this.#pending.slice(0, -1) : this.#pending;
    this.#pending = '';
    if (rest.length > 0) this.#line(rest);
    this.#dispatch();
    this.#ended = true;
  }

  /** The usage seen so far (only the fields the stream told). */
  get usage(): TokenUsage {
    return make(this.#input, this.#output, this.#total) ?? {};
  }

  #line(line: string): void {
    if (line === '') return this.#dispatch();
    if (line.startsWith(':')) return; // a comment
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    if (field !== 'data') return;
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    this.#data.push(value);
  }

  #dispatch(): void {
    if (this.#data.length === 0) return;
    const data = this.#data.join('\n');
    this.#data = [];
    if (!data.includes('usage')) return; // most events are deltas: skip parsing them
    let event: unknown;
    try {
      event = JSON.parse(data);
    } catch {
      return;
    }
    if (isRecord(event)) this.#take(event);
  }

  #take(event: Record<string, unknown>): void {
    if (event.type === 'message_start') {
      // Anthropic: the input is final here; the output (1 or so) is not, see the file comment.
      const message = isRecord(event.message) ? event.message : {};
      const u = usageFromObject(message.usage);
      if (u?.inputTokens !== undefined) this.#input = u.inputTokens;
      return;
    }
    // OpenAI chat chunks and Anthropic message_delta put it in `usage`; Responses in `response.usage`.
    const u =
      usageFromObject(event.usage) ??
      (isRecord(event.response) ? usageFromObject(event.response.usage) : null);
    if (u === null) return;
    if (u.inputTokens !== undefined) this.#input = u.inputTokens;
    if (u.outputTokens !== undefined) this.#output = u.outputTokens;
    if (u.tokens !== undefined) this.#total = u.tokens;
    else if (u.inputTokens !== undefined || u.outputTokens !== undefined) this.#total = undefined;
  }
}

/**
 * costFromUsage is the cost to settle a grant with, given what it was estimated at, what the call
 * used as far as known, and the dimensions the policy counts. It names only counted token
 * dimensions; a part the usage does not know keeps the estimate's, and `tokens` is the
 * provider's total, or known-or-estimated input plus output. Returns null when the usage knows
 * nothing, so the estimate stands as booked.
 *
 * @example
 * costFromUsage({ requests: 1, tokens: 1100 }, { inputTokens: 60 }, ['requests', 'tokens'], { inputTokens: 100, outputTokens: 1000 })
 * // { tokens: 1060 }: the input is known, the output keeps its estimate
 */
export function costFromUsage(
  estimate: CostSpec,
  usage: TokenUsage,
  dimensions: readonly string[],
  parts: TokenUsage = estimate,
): CostSpec | null {
  const { inputTokens: input, outputTokens: output, tokens: total } = usage;
  if (input === undefined && output === undefined && total === undefined) return null;
  const out: Record<string, number> = {};
  if (dimensions.includes('inputTokens') && input !== undefined) out.inputTokens = input;
  if (dimensions.includes('outputTokens') && output !== undefined) out.outputTokens = output;
  if (dimensions.includes('tokens')) {
    const inPart = input ?? parts.inputTokens;
    const outPart = output ?? parts.outputTokens;
    if (total !== undefined) out.tokens = total;
    else if (inPart !== undefined && outPart !== undefined) out.tokens = inPart + outPart;
  }
  return Object.keys(out).length === 0 ? null : out;
}

function make(
  input: number | undefined,
  output: number | undefined,
  total: number | undefined,
): TokenUsage | null {
  if (input === undefined && output === undefined && total === undefined) return null;
  const tokens =
    total ?? (input !== undefined && output !== undefined ? input + output : undefined);
  return {
    ...(input !== undefined && { inputTokens: input }),
    ...(output !== undefined && { outputTokens: output }),
    ...(tokens !== undefined && { tokens }),
  };
}

function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
