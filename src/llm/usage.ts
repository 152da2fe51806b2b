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
import { checkDimensions, checkObject } from '../checks.js';
import { InvalidArgumentError } from '../errors.js';
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
  /** The pieces of the line being read (text after the last line break), joined once it ends. */
  #pending: string[] = [];
  /** The last piece ended in `\r`: a `\n` at the start of the next one belongs to it. */
  #afterCr = false;
  /** The `data:` lines of the event being read, joined with `\n` at dispatch. */
  #data: string[] = [];
  #input: number | undefined;
  #output: number | undefined;
  #total: number | undefined;
  #failed = false;
  #ended = false;

  /**
   * push feeds the next piece of the stream's text. Ignored after {@link SseUsageReader.end}.
   * Only the new text is scanned: a line of many megabytes (an image in a Responses stream) costs
   * time linear in its length, however finely it is cut.
   *
   * @throws InvalidArgumentError for text that is not a string.
   */
  push(text: string): void {
    if (typeof text !== 'string') {
      throw new InvalidArgumentError({
        where: 'SseUsageReader.push',
        path: 'text',
        value: text,
        expected: 'a string, the next piece of the stream (decode bytes with a TextDecoder)',
      });
    }
    if (this.#ended || text.length === 0) return;
    let start = 0;
    if (this.#afterCr && text.charCodeAt(0) === 10) start = 1; // the `\n` of a `\r\n`
    this.#afterCr = false;
    // The next `\n` and `\r` at or after `start`, each searched again only once passed.
    let lf = text.indexOf('\n', start);
    let cr = text.indexOf('\r', start);
    while (lf !== -1 || cr !== -1) {
      const at = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
      this.#pending.push(text.slice(start, at));
      this.#line(this.#pending.length === 1 ? this.#pending[0]! : this.#pending.join(''));
      this.#pending = [];
      start = at + 1;
      if (at === cr) {
        if (start === text.length) this.#afterCr = true;
        else if (lf === start) start++;
        cr = text.indexOf('\r', start);
      }
      if (lf !== -1 && lf < start) lf = text.indexOf('\n', start);
    }
    if (start < text.length) this.#pending.push(text.slice(start));
  }

  /**
   * end says the stream is over: a last line without a line break is read and a last event
   * without a blank line after it is dispatched (a stream cut short may still have said its usage).
   */
  end(): void {
    if (this.#ended) return;
    const rest = this.#pending.join('');
    this.#pending = [];
    if (rest.length > 0) this.#line(rest);
    this.#dispatch();
    this.#ended = true;
  }

  /** The usage seen so far (only the fields the stream told). */
  get usage(): TokenUsage {
    return make(this.#input, this.#output, this.#total) ?? {};
  }

  /**
   * Whether the stream carried an error event: Anthropic's `error` (`overloaded_error` inside a
   * 200), OpenAI Responses' `error` or `response.failed`. The provider failed mid-stream.
   */
  get failed(): boolean {
    return this.#failed;
  }

  #line(line: string): void {
    if (line === '') return this.#dispatch();
    if (line.charCodeAt(0) === 58) return; // ':' a comment
    if (!line.startsWith('data')) return; // another field (event, id, retry)
    const colon = line.indexOf(':');
    if (colon !== -1 && colon !== 4) return; // a field whose name only starts with "data"
    if (colon === -1 && line.length !== 4) return;
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    this.#data.push(value);
  }

  #dispatch(): void {
    if (this.#data.length === 0) return;
    const data = this.#data.length === 1 ? this.#data[0]! : this.#data.join('\n');
    this.#data = [];
    // Most events are deltas: parsed only when they may carry usage or an error.
    if (!data.includes('"usage"') && !data.includes('error') && !data.includes('failed')) return;
    const event =
      data.length <= WHOLE_EVENT_MAX ? parseObject(data) : (usageEvent(data) ?? typeOf(data));
    if (event === null) return;
    if (event.type === 'error' || event.type === 'response.failed') this.#failed = true;
    this.#take(event);
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
 * nothing, so the estimate stands as booked. The usage's amounts are read leniently (a provider's
 * JSON); its arguments must be what they say.
 *
 * @throws InvalidArgumentError for an estimate, usage or parts that is not an object, or dimensions
 *   that are not an array of strings.
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
  const expected = 'an object { inputTokens?, outputTokens?, tokens? }';
  checkObject(estimate, { where: 'costFromUsage', path: 'estimate' }, expected);
  checkObject(usage, { where: 'costFromUsage', path: 'usage' }, expected);
  checkDimensions(dimensions, 'costFromUsage');
  checkObject(parts, { where: 'costFromUsage', path: 'parts' }, expected);
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

/**
 * Events up to this many characters are parsed whole. A longer one (a Responses stream's
 * `response.completed` repeats the whole output, images included) is not: its usage object is
 * found and parsed alone ({@link usageEvent}), so a 30 MB event costs a scan, not a parse.
 */
const WHOLE_EVENT_MAX = 1 << 20;

function parseObject(text: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(text);
    return isRecord(v) ? v : null;
  } catch {
    return null;
  }
}

/**
 * usageEvent reads a long event's usage without parsing the event: the last `"usage":` key whose
 * value is an object, that object parsed alone, shaped as the event would carry it (inside
 * `message` for Anthropic's `message_start`, whose `type` comes first). Inside a JSON string a
 * quote is escaped, so `"usage":` there is never taken for a key.
 */
function usageEvent(data: string): Record<string, unknown> | null {
  const type = typeOf(data)?.type;
  for (let at = data.lastIndexOf('"usage"'); at !== -1; at = data.lastIndexOf('"usage"', at - 1)) {
    let i = at + 7;
    while (i < data.length && /\s/.test(data[i]!)) i++;
    if (data[i] !== ':') continue;
    i++;
    while (i < data.length && /\s/.test(data[i]!)) i++;
    if (data[i] !== '{') continue;
    const end = objectEnd(data, i);
    if (end === -1) continue;
    const usage = parseObject(data.slice(i, end));
    if (usage === null) continue;
    return type === 'message_start' ? { type, message: { usage } } : { type, usage };
  }
  return null;
}

/** The event's `type` when it comes first (both providers put it first), without parsing it. */
function typeOf(data: string): { type: string } | null {
  const type = /^\s*\{\s*"type"\s*:\s*"([^"\\]*)"/.exec(data)?.[1];
  return type === undefined ? null : { type };
}

/** The index just past the JSON object that opens at `from`, or -1 if it does not close. */
function objectEnd(text: string, from: number): number {
  let depth = 0;
  let inString = false;
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92)
        i++; // a backslash escapes the next character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123) depth++;
    else if (c === 125 && --depth === 0) return i + 1;
  }
  return -1;
}
