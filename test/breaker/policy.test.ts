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

  const B = 'tollgate: breaker: ';
  const DURATION =
    "expected a duration from 1 ms to 366 days, as ms or a string like '500ms', '2s', '5m', '1h' or '1d'";
  const RATE = 'expected a share of failed calls above 0 and at most 1, e.g. 0.5';
  const BACKOFF = 'expected a finite number from 1 (1: no backoff)';
  // Where, the option's path, the value with its type, and what is allowed (#11).
  const bad: [string, unknown, string][] = [
    [
      'a policy that is not an object',
      'fast',
      `${B}policy is "fast" (a string); expected an object of breaker options, e.g. { failureThreshold: 5, openFor: '30s' }`,
    ],
    [
      'an unknown option',
      { threshold: 3 },
      `${B}threshold is not an option; expected one of failureThreshold, failureRate, openFor, backoffFactor, maxOpenFor, probes, successesToClose`,
    ],
    [
      'a misspelt option',
      { openFr: '1s' },
      `${B}openFr is not an option (did you mean "openFor"?); expected one of failureThreshold, failureRate, openFor, backoffFactor, maxOpenFor, probes, successesToClose`,
    ],
    [
      'a zero threshold',
      { failureThreshold: 0 },
      `${B}failureThreshold is 0; expected a positive integer (failures in a row)`,
    ],
    [
      'a fractional threshold',
      { failureThreshold: 2.5 },
      `${B}failureThreshold is 2.5; expected a positive integer (failures in a row)`,
    ],
    [
      'NaN probes',
      { probes: NaN },
      `${B}probes is NaN; expected a positive integer (probe calls at once)`,
    ],
    [
      'zero successesToClose',
      { successesToClose: 0 },
      `${B}successesToClose is 0; expected a positive integer (probe successes that close it)`,
    ],
    [
      'a failureRate that is not an object',
      { failureRate: 0.5 },
      `${B}failureRate is 0.5; expected an object { rate, window, minimumCalls? }, e.g. { rate: 0.5, window: '1m' }`,
    ],
    [
      'a zero rate',
      { failureRate: { rate: 0, window: '1m' } },
      `${B}failureRate.rate is 0; ${RATE}`,
    ],
    [
      'a rate above 1',
      { failureRate: { rate: 1.5, window: '1m' } },
      `${B}failureRate.rate is 1.5; ${RATE}`,
    ],
    [
      'a NaN rate',
      { failureRate: { rate: NaN, window: '1m' } },
      `${B}failureRate.rate is NaN; ${RATE}`,
    ],
    [
      'a rate given as a string',
      { failureRate: { rate: '0.5', window: '1m' } },
      `${B}failureRate.rate is "0.5" (a string); ${RATE}`,
    ],
    [
      'a bad window',
      { failureRate: { rate: 0.5, window: 'soon' } },
      `${B}failureRate.window is "soon" (a string); ${DURATION}`,
    ],
    [
      'a missing window',
      { failureRate: { rate: 0.5 } },
      `${B}failureRate.window is undefined; ${DURATION}`,
    ],
    [
      'zero minimumCalls',
      { failureRate: { rate: 0.5, window: '1m', minimumCalls: 0 } },
      `${B}failureRate.minimumCalls is 0; expected a positive integer (calls in the window before the rate counts)`,
    ],
    [
      'an unknown rate option',
      { failureRate: { rate: 0.5, window: '1m', min: 3 } },
      `${B}failureRate.min is not an option; expected one of rate, window, minimumCalls`,
    ],
    ['a negative openFor', { openFor: -1 }, `${B}openFor is -1; ${DURATION}`],
    ['a backoffFactor below 1', { backoffFactor: 0.5 }, `${B}backoffFactor is 0.5; ${BACKOFF}`],
    [
      'an infinite backoffFactor',
      { backoffFactor: Infinity },
      `${B}backoffFactor is Infinity; ${BACKOFF}`,
    ],
    [
      'maxOpenFor below openFor',
      { openFor: '1m', maxOpenFor: '30s' },
      `${B}maxOpenFor is "30s" (a string); expected a duration no shorter than openFor (1 min)`,
    ],
  ];
  for (const [what, spec, message] of bad) {
    it(`refuses ${what} with InvalidArgumentError`, () => {
      expect(() => compileBreakerPolicy(spec as BreakerPolicySpec)).toThrow(InvalidArgumentError);
      let err: unknown;
      try {
        compileBreakerPolicy(spec as BreakerPolicySpec);
      } catch (e) {
        err = e;
      }
      expect((err as Error).message).toBe(message);
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
