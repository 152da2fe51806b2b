/**
 * How the default tokenizer is loaded (#11): by `import()` only, never at import of tollgate and
 * never with `createRequire` (which bundlers cannot follow and non-Node runtimes lack). So the
 * synchronous estimates count only after `loadTokenizer()`, and say so with a typed error before.
 * This file must be the first in its worker to load src/llm/tokenize.ts: vitest gives each test
 * file a fresh module graph, so nothing here has loaded gpt-tokenizer when the first test runs.
 * That the package's absence gives `'not-installed'` is tested by the consumer fixtures
 * (scripts/consumers.mjs), where it really is absent.
 */
import { describe, expect, it } from 'vitest';
import {
  TokenizerUnavailableError,
  defaultTokenizer,
  estimateRequestCost,
  estimateTokens,
  estimateTokensAsync,
  isTollgateError,
  loadTokenizer,
} from '../../src/index.js';

const body = { model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello world' }] };

describe('loading the default tokenizer', () => {
  it('refuses a synchronous estimate before loadTokenizer with a typed error that says what to do', () => {
    let caught: unknown;
    try {
      estimateTokens(body);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(TokenizerUnavailableError);
    expect(isTollgateError(caught) && caught.code).toBe('TOKENIZER_UNAVAILABLE');
    expect((caught as TokenizerUnavailableError).reason).toBe('not-loaded');
    expect((caught as Error).message).toContain('await loadTokenizer()');
    expect(() => estimateRequestCost(body, ['tokens'])).toThrow(TokenizerUnavailableError);
    expect(() => defaultTokenizer('Hello world')).toThrow(TokenizerUnavailableError);
  });

  it('counts without loading anything when there is no text, or with a tokenizer of your own', () => {
    expect(estimateTokens({ messages: [], max_tokens: 5 })).toEqual({
      inputTokens: 0,
      outputTokens: 5,
    });
    expect(estimateTokens(body, (t) => t.length).inputTokens).toBe(3 + 4 + 11 + 3);
    expect(() => defaultTokenizer('')).not.toThrow();
    // Nothing of that loaded the tokenizer: text still needs loadTokenizer first.
    expect(() => defaultTokenizer('x')).toThrow(TokenizerUnavailableError);
  });

  it('counts synchronously once loaded; the async estimate loads it itself', async () => {
    expect(await estimateTokensAsync(body)).toEqual({ inputTokens: 9, outputTokens: 1024 });
    await loadTokenizer();
    expect(defaultTokenizer('Hello world')).toBe(2);
    expect(estimateTokens(body)).toEqual({ inputTokens: 9, outputTokens: 1024 });
  });
});
