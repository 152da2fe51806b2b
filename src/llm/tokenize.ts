/**
 * Counting tokens with o200k_base (`gpt-tokenizer`) in bounded time, whatever the text.
 *
 * gpt-tokenizer's byte-pair merging is quadratic in the length of one pre-token, and a run of one
 * character is one pre-token: 40,000 `-` took 2.1 s and 20,000 emoji 10.4 s in one call. So:
 * - a text is counted in pieces of at most {@link PIECE} characters, cut just before a space when
 *   one is near the end of the piece (o200k joins a space to the word after it, so such a cut
 *   changes no count), else anywhere but inside a surrogate pair (a run without spaces may count
 *   a token or so more per piece: the estimate errs high);
 * - a text longer than {@link EXACT_MAX} characters is not counted whole: three samples of
 *   {@link SAMPLE} characters (start, middle, end) give its tokens per character, and the count is
 *   that rate times its length plus a quarter, never more than its UTF-8 bytes (no token is
 *   shorter than a byte). The settle after the call replaces the estimate with the usage.
 * - {@link countTokensAsync} yields to the event loop every few milliseconds, for limitedFetch.
 *
 * The encoding (the optional peer `gpt-tokenizer`) is loaded by {@link loadEncoding}, with a literal
 * `import()` that bundlers follow and that needs no Node built-in; nothing loads it at import. The
 * synchronous {@link countTokens} counts only once it is loaded, and throws a
 * TokenizerUnavailableError (`'not-loaded'`) before.
 */
import type * as O200k from 'gpt-tokenizer/encoding/o200k_base';
import { TokenizerUnavailableError } from '../errors.js';

type Encoding = typeof O200k;

/** The longest piece counted in one call of the tokenizer. */
export const PIECE = 256;
/** How far back from a piece's end a space is looked for. */
const SPACE_WINDOW = 64;
/** The longest text counted exactly; a longer one is estimated from samples. */
export const EXACT_MAX = 64 * 1024;
/** The length of each of the three samples of a long text. */
const SAMPLE = 8 * 1024;
/** Counting yields to the event loop after this long (countTokensAsync). */
const SLICE_MS = 8;

// Special-token text in user input (`<|endoftext|>`) is counted as plain text, never thrown on.
const AS_TEXT = { allowedSpecial: new Set<string>(), disallowedSpecial: new Set<string>() };

let encoding: Encoding | null = null;
let loading: Promise<Encoding> | null = null;

/**
 * loadEncoding loads o200k_base once, without blocking on file reads.
 *
 * @throws TokenizerUnavailableError (`'not-installed'`) when gpt-tokenizer cannot be found; a
 *   later call tries again.
 */
export function loadEncoding(): Promise<Encoding> {
  if (encoding !== null) return Promise.resolve(encoding);
  loading ??= import('gpt-tokenizer/encoding/o200k_base').then(
    (m) => (encoding = m),
    (e: unknown) => {
      loading = null;
      throw isMissing(e) ? new TokenizerUnavailableError('not-installed', e) : e;
    },
  );
  return loading;
}

/** Whether `e` says that gpt-tokenizer is not there (Node, Deno and bundlers word it so). */
function isMissing(e: unknown): boolean {
  const { code, message } = (e ?? {}) as { code?: unknown; message?: unknown };
  return (
    code === 'ERR_MODULE_NOT_FOUND' ||
    code === 'MODULE_NOT_FOUND' ||
    (typeof message === 'string' && /cannot find|not found|could not resolve/i.test(message))
  );
}

function encodingNow(): Encoding {
  if (encoding === null) throw new TokenizerUnavailableError('not-loaded');
  return encoding;
}

/** The end of the piece that starts at `from`: before a near space, never inside a surrogate pair. */
function pieceEnd(text: string, from: number): number {
  const end = from + PIECE;
  if (end >= text.length) return text.length;
  for (let i = end; i > end - SPACE_WINDOW; i--) if (text.charCodeAt(i) === 32) return i;
  const c = text.charCodeAt(end);
  return c >= 0xdc00 && c <= 0xdfff ? end - 1 : end; // a low surrogate: keep the pair together
}

/** Tokens of `text` (at most EXACT_MAX chars), piece by piece. */
function countPieces(enc: Encoding, text: string): number {
  if (text.length <= PIECE) return enc.countTokens(text, AS_TEXT);
  let n = 0;
  for (let at = 0; at < text.length;) {
    const end = pieceEnd(text, at);
    n += enc.countTokens(text.slice(at, end), AS_TEXT);
    at = end;
  }
  return n;
}

/** The estimate of a text longer than EXACT_MAX, from three samples (see the file comment). */
function countSampled(enc: Encoding, text: string): number {
  const mid = (text.length - SAMPLE) >> 1;
  let tokens = 0;
  let chars = 0;
  for (const from of [0, mid, text.length - SAMPLE]) {
    const sample = text.slice(from, from + SAMPLE);
    tokens += countPieces(enc, sample);
    chars += sample.length;
  }
  const estimate = Math.ceil((tokens / chars) * text.length * 1.25);
  return Math.min(estimate, utf8Bytes(text));
}

function utf8Bytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      bytes += 4; // a surrogate pair: one code point of four bytes
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * countTokens counts `text` as described in the file comment, synchronously.
 *
 * @throws TokenizerUnavailableError (`'not-loaded'`) before {@link loadEncoding} has finished.
 */
export function countTokens(text: string): number {
  if (text.length === 0) return 0;
  const enc = encodingNow();
  return text.length > EXACT_MAX ? countSampled(enc, text) : countPieces(enc, text);
}

/**
 * countTokensAsync counts every text of `texts` as {@link countTokens} does, loading the encoding
 * without blocking and yielding to the event loop every few milliseconds.
 */
export async function countTokensAsync(texts: readonly string[]): Promise<number> {
  if (texts.every((t) => t.length === 0)) return 0;
  const enc = await loadEncoding();
  let n = 0;
  let slice = performance.now();
  const breathe = async (): Promise<void> => {
    if (performance.now() - slice < SLICE_MS) return;
    await new Promise<void>((resolve) => (globalThis.setImmediate ?? setTimeout)(resolve));
    slice = performance.now();
  };
  for (const text of texts) {
    if (text.length > EXACT_MAX) {
      n += countSampled(enc, text);
      await breathe();
      continue;
    }
    for (let at = 0; at < text.length;) {
      const end = pieceEnd(text, at);
      n += enc.countTokens(text.slice(at, end), AS_TEXT);
      at = end;
      await breathe();
    }
  }
  return n;
}
