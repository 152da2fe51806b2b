/** How messages show values and durations (#11): see src/describe.ts. */
import { describe, expect, it } from 'vitest';
import { describeValue, humanMs, onBreaker, onLimiter, quote } from '../src/describe.js';

describe('describeValue', () => {
  it.each<[unknown, string]>([
    [-1, '-1'],
    [0, '0'],
    [-0, '-0'],
    [1.5, '1.5'],
    [NaN, 'NaN'],
    [Infinity, 'Infinity'],
    ['5', '"5" (a string)'],
    ['', '"" (a string)'],
    ['x'.repeat(60), `"${'x'.repeat(38)}… (a string)`],
    [5n, '5n (a bigint)'],
    [true, 'true (a boolean)'],
    [undefined, 'undefined'],
    [null, 'null'],
    [{}, '{} (an object)'],
    [{ a: 1 }, '{"a":1} (an object)'],
    [Object.create(null), '{} (an object)'],
    [[1, 2], '[1,2] (an array)'],
    [() => 1, 'a function'],
    [new Map(), 'a Map'],
    [new AbortController(), 'an AbortController'],
    [Symbol('s'), 'Symbol(s) (a symbol)'],
  ])('shows %s as %s', (value, shown) => {
    expect(describeValue(value)).toBe(shown);
  });

  it('shows an object it cannot turn into JSON', () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(describeValue(cycle)).toBe('{…} (an object)');
  });
});

describe('humanMs', () => {
  it.each<[number, string]>([
    [1, '1 ms'],
    [999, '999 ms'],
    [1000, '1 s'],
    [1500, '1.5 s'],
    [1234, '1234 ms'],
    [60_000, '1 min'],
    [90_000, '1.5 min'],
    [3_600_000, '1 h'],
    [86_400_000, '1 day'],
    [366 * 86_400_000, '366 days'],
    [Infinity, 'Infinity'],
  ])('shows %i ms as %s', (ms, shown) => {
    expect(humanMs(ms)).toBe(shown);
  });
});

describe('onBreaker', () => {
  it('names the breaker, and the call when given, quoted as keys are', () => {
    expect(onBreaker('llm/gpt')).toBe('breaker "llm/gpt"');
    expect(onBreaker('llm/gpt', 'tryEnter')).toBe('tryEnter of breaker "llm/gpt"');
    expect(onBreaker('llm/say "hi"')).toBe('breaker "llm/say \\"hi\\""');
  });
});

describe('onLimiter and quote', () => {
  it('name the limiter, and the call and key when given', () => {
    expect(onLimiter('api')).toBe('limiter "api"');
    expect(onLimiter('api', 'setLimits')).toBe('setLimits on limiter "api"');
    expect(onLimiter('api', 'acquire', 'k')).toBe('acquire on limiter "api", key "k"');
  });

  it('cut a long key, and escape what JSON escapes', () => {
    expect(quote('a"b\n')).toBe('"a\\"b\\n"');
    expect(quote('k'.repeat(100))).toBe(`"${'k'.repeat(62)}…`);
  });
});
