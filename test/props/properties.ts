/**
 * The core properties, defined once and run per algorithm (one test file each, so they run in
 * parallel): for random schedules of time steps, acquires with cost vectors (requests and tokens,
 * 1–3 limits, sometimes a concurrency limit), refunds, settles, releases and a clock that may
 * step back.
 */
import fc from 'fast-check';
import { describe, it } from 'vitest';
import type { AlgorithmName } from '../../src/limiter/index.js';
import { runSchedule } from './harness.js';
import type { Checks } from './harness.js';
import { RUNS, scheduleArb } from './schedule.js';

const PROPERTIES: readonly [string, Checks][] = [
  [
    'never admits more than the limit allows (each grant net of what refunds gave back, at its booking instant)',
    { overAdmission: true },
  ],
  [
    'returns the same state on a refusal, deep-equal to a copy taken before: a refusal costs nothing',
    { refusal: true },
  ],
  [
    'books every limit by exactly its units on a grant, and refuses only when some limit or the slots lack room',
    { allOrNothing: true },
  ],
  ['restores the state exactly when a grant is refunded with nothing in between', { refund: true }],
  [
    'admits the same cost at exactly retryAfterMs after a refusal, and not 1 ms earlier',
    { retry: true },
  ],
  [
    'agrees exactly with the reference model on every decision, retry, reading and count, and a refund never gives back more than the grant still holds',
    { model: true },
  ],
  [
    'never holds more slots than the concurrency limit, and a release frees exactly one',
    { concurrency: true },
  ],
];

/** Define every core property for `algorithm` ('mixed': each limit picks its own). */
export function coreProperties(algorithm: AlgorithmName | 'mixed'): void {
  describe(`core properties: ${algorithm}`, () => {
    for (const [name, checks] of PROPERTIES) {
      it(name, () => {
        fc.assert(
          fc.property(scheduleArb(algorithm, { back: true }), ({ spec, start, ops }) => {
            runSchedule(spec, start, ops, checks);
          }),
          RUNS,
        );
      });
    }
  });
}
