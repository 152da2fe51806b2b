import { describe, expect, it } from 'vitest';
import {
  compileBreakerPolicy,
  openDurationMs,
  type BreakerPolicySpec,
} from '../../src/breaker/index.js';
import { InvalidArgumentError } from '../../src/errors.js';

describe('breaker policy', () => {
  it('fills in the defaults: 5 in a row, 30s, ×2, 5m, 1 probe', () => {
    expect(compileBreakerPolicy({})).toEqual({
      failureThreshold: 5,
      failureRate: null,
      openForMs: 30_000,
      backoffFactor: 2,
      maxOpenForMs: 300_000,
      probes: 1,
      successesToClose: 1,
    });
  });

  it('opens on the rate only when a rate is given without a threshold', () => {
    const p = compileBreakerPolicy({ failureRate: { rate: 0.5, window: '1m' } });
    expect(p.failureThreshold).toBeNull();
    expect(p.failureRate).toEqual({
      rate: 0.5,
      windowMs: 60_000,
      minimumCalls: 10,
      bucketMs: 6_000,
    });
    expect(
      compileBreakerPolicy({ failureThreshold: 3, failureRate: { rate: 1, window: 10 } })
        .failureThreshold,
    ).toBe(3);
  });

  it('defaults successesToClose to probes and maxOpenFor to at least openFor', () => {
    expect(compileBreakerPolicy({ probes: 3 }).successesToClose).toBe(3);
    expect(compileBreakerPolicy({ openFor: '10m' }).maxOpenForMs).toBe(600_000);
  });

  const bad: [string, unknown, RegExp][] = [
    ['a policy that is not an object', 'fast', /policy must be an object/],
    [
      'an unknown option',
      { threshold: 3 },
      /unknown option "threshold"; allowed: failureThreshold/,
    ],
    ['a zero threshold', { failureThreshold: 0 }, /failureThreshold 0 must be a positive integer/],
    [
      'a fractional threshold',
      { failureThreshold: 2.5 },
      /failureThreshold 2.5 must be a positive integer/,
    ],
    ['NaN probes', { probes: NaN }, /probes NaN must be a positive integer/],
    [
      'zero successesToClose',
      { successesToClose: 0 },
      /successesToClose 0 must be a positive integer/,
    ],
    [
      'a zero rate',
      { failureRate: { rate: 0, window: '1m' } },
      /rate 0 must be a number with 0 < rate <= 1/,
    ],
    [
      'a rate above 1',
      { failureRate: { rate: 1.5, window: '1m' } },
      /rate 1.5 must be a number with 0 < rate <= 1/,
    ],
    ['a NaN rate', { failureRate: { rate: NaN, window: '1m' } }, /rate NaN must be/],
    [
      'a bad window',
      { failureRate: { rate: 0.5, window: 'soon' } },
      /failureRate.window "soon" is not a duration/,
    ],
    [
      'a missing window',
      { failureRate: { rate: 0.5 } },
      /failureRate.window must be a number of ms or a duration string/,
    ],
    [
      'zero minimumCalls',
      { failureRate: { rate: 0.5, window: '1m', minimumCalls: 0 } },
      /minimumCalls 0 must be a positive integer/,
    ],
    [
      'an unknown rate option',
      { failureRate: { rate: 0.5, window: '1m', min: 3 } },
      /failureRate has unknown option "min"/,
    ],
    ['a negative openFor', { openFor: -1 }, /openFor -1 must be a whole number of ms from 1/],
    [
      'a backoffFactor below 1',
      { backoffFactor: 0.5 },
      /backoffFactor 0.5 must be a finite number >= 1/,
    ],
    [
      'an infinite backoffFactor',
      { backoffFactor: Infinity },
      /backoffFactor Infinity must be a finite number >= 1/,
    ],
    [
      'maxOpenFor below openFor',
      { openFor: '1m', maxOpenFor: '30s' },
      /maxOpenFor 30000 ms must be at least openFor 60000 ms/,
    ],
  ];
  for (const [what, spec, message] of bad) {
    it(`refuses ${what} with InvalidArgumentError`, () => {
      expect(() => compileBreakerPolicy(spec as BreakerPolicySpec)).toThrow(InvalidArgumentError);
      expect(() => compileBreakerPolicy(spec as BreakerPolicySpec)).toThrow(message);
    });
  }

  it('grows the open time by the factor per re-open and caps it', () => {
    const p = compileBreakerPolicy({ openFor: '30s', backoffFactor: 2, maxOpenFor: '5m' });
    expect([0, 1, 2, 3, 4, 5, 2000].map((k) => openDurationMs(p, k))).toEqual([
      30_000, 60_000, 120_000, 240_000, 300_000, 300_000, 300_000,
    ]);
    expect(openDurationMs(compileBreakerPolicy({ openFor: 1000, backoffFactor: 1.5 }), 1)).toBe(
      1500,
    );
  });
});
