/**
 * Redis key names (src/redis/keys.ts): the hash tag of a key is injective and always closed where
 * we close it, whether or not the key has characters to escape (two code paths).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hashTag, keyNames } from '../../src/redis/keys.js';

/** Keys drawn mostly from the characters that matter to a tag, lone surrogates among them. */
const key = fc.string({
  unit: fc.constantFrom(
    'a',
    '%',
    '}',
    '{',
    '7',
    'D',
    '2',
    '5',
    ':',
    '\n',
    'u',
    '8',
    '0',
    'C',
    '\ud800',
    '\udc00',
    '\ufffd',
  ),
});
/** What Redis compares: the name's bytes, as ioredis writes them (UTF-8). */
const bytes = (s: string): string => Buffer.from(s, 'utf8').toString('hex');

describe('hashTag', () => {
  it('is injective on the bytes Redis compares, and its only closing brace is the last character', () => {
    fc.assert(
      fc.property(key, key, (a, b) => {
        const ta = hashTag(a);
        expect(ta.startsWith('{k')).toBe(true);
        expect(ta.indexOf('}')).toBe(ta.length - 1);
        if (a !== b) expect(bytes(hashTag(b))).not.toBe(bytes(ta));
      }),
      { numRuns: 2000 },
    );
  });

  it('escapes % and } and leaves every other key as it is', () => {
    expect(hashTag('user:{7}')).toBe('{kuser:{7%7D}');
    expect(hashTag('100%')).toBe('{k100%25}');
    expect(hashTag('a%7Db')).toBe('{ka%257Db}');
    expect(hashTag('plain key\n')).toBe('{kplain key\n}');
    expect(hashTag('\ud800|\udc00|\ud800\udc00|\ufffd')).toBe(
      '{k%uD800|%uDC00|\ud800\udc00|\ufffd}',
    );
    expect(keyNames('p:', 'k')).toEqual({ state: 'p:{kk}:v3', slots: 'p:{kk}:c' });
  });
});
