/**
 * What an LLM request will cost, estimated before it is sent, from its JSON body: the input
 * tokens counted with a real BPE tokenizer, plus the most output the request allows.
 *
 * Input, per the OpenAI cookbook's "How to count tokens with tiktoken" (chat format):
 *   3 tokens per message + the tokens of its role, its text, its `name` (+1) and its tool calls,
 *   + 3 tokens that prime the reply.
 * Worked example: `messages: [{ role: 'user', content: 'Hello world' }]` with o200k_base is
 *   3 + tokens('user') 1 + tokens('Hello world') 2 + 3 = 9 input tokens.
 * Read from the body: Chat Completions `messages` (string or text-part content, tool calls,
 * `tools`/`functions`/`response_format` as JSON), Responses `instructions` and `input` (a string,
 * strings, or items), legacy `prompt`, Anthropic `system` and content blocks. Every image counts
 * {@link IMAGE_TOKENS}; a document's text counts as text, a PDF {@link FILE_PAGE_TOKENS} per page
 * (a file by id or URL as one page), audio from its size ({@link AUDIO_BYTES_PER_TOKEN}); JSON tool definitions count as their JSON text (an approximation: the
 * provider renders them in a format of its own).
 *
 * Output: `max_completion_tokens`, else `max_tokens`, else `max_output_tokens` (Responses), else
 * {@link DEFAULT_MAX_OUTPUT_TOKENS}, times `n` choices. An embeddings model (its name contains
 * `embedding`) produces no output tokens. This is the worst case on purpose: OpenAI also counts
 * `max_tokens` toward its tokens-per-minute limit, and the settle after the call refunds the rest.
 *
 * The tokenizer is o200k_base (GPT-4o and later) from the pure-JS `gpt-tokenizer` package, an
 * optional peer dependency (`npm install gpt-tokenizer`) whose ranks ship inside the package:
 * nothing is downloaded at run time. It is loaded by `import()` on first use (~0.3 s, once), so
 * importing tollgate costs nothing when no estimate is made; the synchronous functions here count
 * only once it is loaded ({@link loadTokenizer}). It counts in
 * bounded time whatever the text (tokenize.ts: pieces, and samples of a text over 64 Ki
 * characters); {@link estimateTokensAsync} also yields to the event loop while it counts. Other
 * providers' tokenizers differ by some percent; pass your own {@link Tokenizer} or
 * {@link TokenEstimator} when that matters.
 */
import type { CostSpec } from '../limiter/types.js';
import { checkDimensions, checkObject } from '../checks.js';
import { InvalidArgumentError } from '../errors.js';
import { countTokens, countTokensAsync, loadEncoding } from './tokenize.js';

/**
 * loadTokenizer loads o200k_base (from `gpt-tokenizer`) ahead of the first estimate. The module's
 * own set-up is about 0.3 s of work on the main thread, once; limitedFetch starts it when it is
 * created, and an app can await this at startup so that no request waits for it. The synchronous
 * estimates ({@link estimateTokens}, {@link estimateRequestCost}, {@link defaultTokenizer}) need
 * it done first.
 *
 * @throws TokenizerUnavailableError (`'not-installed'`) when gpt-tokenizer is not installed.
 * @example await loadTokenizer();
 */
export async function loadTokenizer(): Promise<void> {
  await loadEncoding();
}

/** Tokenizer counts the tokens of a text. */
export type Tokenizer = (text: string) => number;

/**
 * TokenEstimator maps a request body (parsed JSON, or undefined when there was none or it did
 * not parse) to the cost to acquire. `dimensions` are those the limiter's policy counts; a cost
 * naming any other dimension is refused by acquire (`tokens` may be left to be derived from
 * `inputTokens + outputTokens`).
 */
export type TokenEstimator = (body: unknown, dimensions: readonly string[]) => CostSpec;

/** DEFAULT_MAX_OUTPUT_TOKENS is the output assumed for a request that names no maximum. */
export const DEFAULT_MAX_OUTPUT_TOKENS = 1024;

/** IMAGE_TOKENS is the input assumed per image (OpenAI's count for 1024 × 1024 in high detail). */
export const IMAGE_TOKENS = 765;

/** TokenEstimate is the tokens a request is expected to take, in and out. */
export interface TokenEstimate {
  readonly inputTokens: number;
  readonly outputTokens: number;
}

/**
 * defaultTokenizer counts tokens with o200k_base (`gpt-tokenizer`) in bounded time (see the file
 * comment): a text over 64 Ki characters is estimated from samples.
 *
 * @throws TokenizerUnavailableError (`'not-loaded'`) before {@link loadTokenizer} has finished.
 * @example await loadTokenizer(); defaultTokenizer('Hello world') // 2
 */
export const defaultTokenizer: Tokenizer = (text) => countTokens(text);

/**
 * estimateTokens estimates the input and output tokens of a request body, as described in the
 * file comment. A body that is not an object estimates 0 in and 0 out.
 *
 * @throws TokenizerUnavailableError (`'not-loaded'`) when it counts with the default tokenizer
 *   before {@link loadTokenizer} has finished (pass a `tokenizer`, or use
 *   {@link estimateTokensAsync}, to do without).
 * @throws InvalidArgumentError for a tokenizer that is not a function.
 *
 * @example
 * estimateTokens({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello world' }], max_tokens: 50 })
 * // { inputTokens: 9, outputTokens: 50 }
 */
export function estimateTokens(
  body: unknown,
  tokenizer: Tokenizer = defaultTokenizer,
): TokenEstimate {
  if (typeof tokenizer !== 'function') {
    throw new InvalidArgumentError({
      where: 'estimateTokens',
      path: 'tokenizer',
      value: tokenizer,
      expected: 'a function (text) => number of tokens',
    });
  }
  if (!isRecord(body)) return { inputTokens: 0, outputTokens: 0 };
  return { inputTokens: inputTokens(body, tokenizer), outputTokens: outputTokens(body) };
}

/**
 * estimateTokensAsync is {@link estimateTokens} with the default tokenizer, loading it without
 * blocking and yielding to the event loop every few milliseconds while it counts: one hostile
 * prompt does not stall every other caller of the process. limitedFetch uses it.
 *
 * @example
 * await estimateTokensAsync({ messages: [{ role: 'user', content: 'Hello world' }], max_tokens: 50 })
 * // { inputTokens: 9, outputTokens: 50 }
 */
export async function estimateTokensAsync(body: unknown): Promise<TokenEstimate> {
  if (!isRecord(body)) return { inputTokens: 0, outputTokens: 0 };
  // The walk's own tokens (per message, images, priming) with every text recorded, not counted.
  const texts: string[] = [];
  const fixed = inputTokens(body, (t) => (texts.push(t), 0));
  return {
    inputTokens: fixed + (await countTokensAsync(texts)),
    outputTokens: outputTokens(body),
  };
}

/**
 * estimateRequestCost is the default {@link TokenEstimator}: `requests: 1`, plus the estimated
 * tokens in the dimensions the policy counts. `inputTokens` and `outputTokens` are given when
 * counted; `tokens` (their sum) when counted. With the default tokenizer, {@link loadTokenizer}
 * must have finished (see {@link estimateTokens}).
 *
 * @throws InvalidArgumentError for dimensions that are not an array of strings.
 * @example
 * estimateRequestCost(body, limiter.policy.dimensions) // { requests: 1, tokens: 59 }
 */
export function estimateRequestCost(
  body: unknown,
  dimensions: readonly string[],
  tokenizer: Tokenizer = defaultTokenizer,
): CostSpec {
  checkDimensions(dimensions, 'estimateRequestCost'); // before the count, which may need the tokenizer
  return projectCost(estimateTokens(body, tokenizer), dimensions);
}

/**
 * projectCost turns input and output tokens into a cost in the dimensions given: `requests: 1`,
 * and `inputTokens`, `outputTokens` and `tokens` (their sum) where counted.
 *
 * @throws InvalidArgumentError for tokens that are not an object, or dimensions that are not an
 *   array of strings.
 */
export function projectCost(tokens: TokenEstimate, dimensions: readonly string[]): CostSpec {
  checkObject(
    tokens,
    { where: 'projectCost', path: 'tokens' },
    'an object { inputTokens, outputTokens }',
  );
  checkDimensions(dimensions, 'projectCost');
  const cost: Record<string, number> = { requests: 1 };
  if (dimensions.includes('inputTokens')) cost.inputTokens = tokens.inputTokens;
  if (dimensions.includes('outputTokens')) cost.outputTokens = tokens.outputTokens;
  if (dimensions.includes('tokens')) cost.tokens = tokens.inputTokens + tokens.outputTokens;
  return cost;
}

const PER_MESSAGE = 3;
const REPLY_PRIMING = 3;

function inputTokens(body: Record<string, unknown>, count: Tokenizer): number {
  let n = 0;
  let messages = 0;
  const text = (t: string): void => {
    n += count(t);
  };
  if (typeof body.system === 'string') text(body.system);
  else if (Array.isArray(body.system)) n += contentTokens(body.system, count);
  if (typeof body.instructions === 'string') text(body.instructions);
  if (Array.isArray(body.messages)) {
    for (const m of body.messages) {
      messages++;
      n += messageTokens(m, count);
    }
  }
  // Responses / embeddings `input` and legacy `prompt`: a string, strings, or items.
  for (const field of [body.input, body.prompt]) {
    if (typeof field === 'string') text(field);
    else if (Array.isArray(field)) {
      for (const item of field) {
        if (typeof item === 'string') text(item);
        else if (isRecord(item)) {
          messages++;
          n += messageTokens(item, count);
        }
      }
    }
  }
  for (const field of [body.tools, body.functions, body.response_format, body.text]) {
    if (field !== undefined && field !== null) text(stringify(field));
  }
  if (messages > 0) n += REPLY_PRIMING;
  return n;
}

// One message or item: the cookbook's per-message overhead, its role, content, name, tool calls.
function messageTokens(m: unknown, count: Tokenizer): number {
  if (!isRecord(m)) return 0;
  let n = PER_MESSAGE;
  if (typeof m.role === 'string') n += count(m.role);
  if (typeof m.name === 'string') n += count(m.name) + 1;
  n += contentTokens(m.content, count);
  if (Array.isArray(m.tool_calls)) {
    for (const call of m.tool_calls) {
      const fn = isRecord(call) && isRecord(call.function) ? call.function : {};
      if (typeof fn.name === 'string') n += count(fn.name);
      if (typeof fn.arguments === 'string') n += count(fn.arguments);
    }
  }
  if (typeof m.tool_call_id === 'string') n += count(m.tool_call_id);
  // Responses items: function_call (name, arguments) and function_call_output (output).
  if (m.type === 'function_call' && typeof m.name === 'string' && typeof m.arguments === 'string') {
    n += count(m.arguments);
  }
  if (typeof m.output === 'string') n += count(m.output);
  return n;
}

// A content: a string, or parts/blocks (text, images, Anthropic tool_use and tool_result). A
// tool_result's content is walked with a stack of our own, not by recursion: a body nested
// thousands deep must not overflow the call stack.
function contentTokens(content: unknown, count: Tokenizer): number {
  let n = 0;
  const todo: unknown[] = [content];
  for (let next = todo.pop(); todo.length > 0 || next !== undefined; next = todo.pop()) {
    if (typeof next === 'string') {
      n += count(next);
      continue;
    }
    if (!Array.isArray(next)) continue;
    for (const part of next) {
      if (typeof part === 'string') n += count(part);
      else if (isRecord(part)) {
        if (typeof part.text === 'string') n += count(part.text);
        else if (typeof part.type === 'string' && /image/.test(part.type)) n += IMAGE_TOKENS;
        else if (part.type === 'document' && isRecord(part.source)) {
          // Anthropic: text, content blocks, or a file (base64 PDF, URL, file id).
          const src = part.source;
          if (src.type === 'text' && typeof src.data === 'string') n += count(src.data);
          else if (src.type === 'content') todo.push(src.content);
          else n += fileTokens(typeof src.data === 'string' ? src.data : null);
        } else if (part.type === 'file' || part.type === 'input_file') {
          // OpenAI chat `file: { file_data | file_id }`, Responses `input_file`.
          const f = isRecord(part.file) ? part.file : part;
          n += fileTokens(typeof f.file_data === 'string' ? f.file_data : null);
        } else if (part.type === 'input_audio' && isRecord(part.input_audio)) {
          const data = part.input_audio.data;
          n += typeof data === 'string' ? audioTokens(data) : 0;
        }
        if (part.type === 'tool_use' && part.input !== undefined) n += count(stringify(part.input));
        if (part.type === 'tool_result') todo.push(part.content);
      }
    }
  }
  return n;
}

/**
 * FILE_PAGE_TOKENS is the input assumed per page of a PDF, and for a file sent by reference (a
 * file id or URL, whose size is not known here): Anthropic documents 1,500 to 3,000 tokens per
 * page; the settle replaces the estimate with the usage.
 */
export const FILE_PAGE_TOKENS = 3000;

/**
 * AUDIO_BYTES_PER_TOKEN: an audio part is estimated at one token per this many bytes of audio
 * (its base64 decoded). A rough rule from the size alone, which the settle corrects.
 */
export const AUDIO_BYTES_PER_TOKEN = 100;

/**
 * The tokens of a file part: a base64 PDF (a data URL or bare base64) at FILE_PAGE_TOKENS per page
 * (pages counted by their `/Type /Page` objects), other data at one token per 4 bytes, and a file
 * by reference (null) as one page.
 */
function fileTokens(data: string | null): number {
  if (data === null) return FILE_PAGE_TOKENS;
  const base64 = data.startsWith('data:') ? data.slice(data.indexOf(',') + 1) : data;
  let bytes: string;
  try {
    bytes = atob(base64);
  } catch {
    return Math.ceil(data.length / 4); // not base64: its length as text
  }
  if (!bytes.startsWith('%PDF')) return Math.ceil(bytes.length / 4);
  const pages = bytes.match(/\/Type\s*\/Page(?![a-zA-Z])/g)?.length ?? 0;
  return Math.max(1, pages) * FILE_PAGE_TOKENS;
}

/** The tokens of base64 audio, from its decoded size (AUDIO_BYTES_PER_TOKEN). */
function audioTokens(base64: string): number {
  const bytes = Math.floor((base64.replace(/=+$/, '').length * 3) / 4);
  return Math.ceil(bytes / AUDIO_BYTES_PER_TOKEN);
}

/** JSON text of `v`, or '' when it cannot be written (a cycle, a nesting too deep for it). */
function stringify(v: unknown): string {
  try {
    return JSON.stringify(v) ?? '';
  } catch {
    return '';
  }
}

function outputTokens(body: Record<string, unknown>): number {
  if (typeof body.model === 'string' && body.model.includes('embedding')) return 0;
  const max =
    count(body.max_completion_tokens) ??
    count(body.max_tokens) ??
    count(body.max_output_tokens) ??
    DEFAULT_MAX_OUTPUT_TOKENS;
  const n = count(body.n) ?? 1;
  return max * Math.max(1, n);
}

function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
