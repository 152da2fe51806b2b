import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EMPTY_WINDOW,
  rateReached,
  recordCall,
  windowTotals,
  type RollingWindow,
} from '../../src/breaker/window.js';

const W = 1000;
const B = 100;

function record(calls: readonly { at: number; failed: boolean }[]): RollingWindow {
  return calls.reduce((w, c) => recordCall(w, c.at, c.failed, W, B), EMPTY_WINDOW);
}

describe('rolling window', () => {
  it('counts a call until its bucket starts windowMs or more before the bucket of now', () => {
    const w = record([{ at: 250, failed: true }]);
    const rows = [
      { at: 250, want: 1 },
      { at: 1150, want: 1 }, // bucket [1100,1200) keeps buckets starting after 100
      { at: 1199, want: 1 },
      { at: 1200, want: 0 }, // bucket [200,300) is out
    ];
    for (const row of rows)
      expect(windowTotals(w, row.at, W, B), `at ${row.at}`).toEqual({
        calls: row.want,
        failures: row.want,
      });
  });

  it('keeps one bucket per start and drops the ones that left the window', () => {
    const w = record([
      { at: 0, failed: false },
      { at: 50, failed: true },
      { at: 120, failed: false },
      { at: 1050, failed: true },
    ]);
    expect(w).toEqual([
      { start: 100, calls: 1, failures: 0 },
      { start: 1000, calls: 1, failures: 1 },
    ]);
    expect(recordCall(w, 1100, false, W, B)).toEqual([
      { start: 1000, calls: 1, failures: 1 },
      { start: 1100, calls: 1, failures: 0 },
    ]);
  });

  it('counts a call stamped before the newest bucket (clock stepped back) in the newest bucket', () => {
    const w = record([
      { at: 500, failed: false },
      { at: 420, failed: true },
    ]);
    expect(w).toEqual([{ start: 500, calls: 2, failures: 1 }]);
    expect(windowTotals(w, 420, W, B)).toEqual({ calls: 2, failures: 1 });
  });

  it('does not change the window it is given', () => {
    const w = record([{ at: 0, failed: false }]);
    const copy = structuredClone(w);
    recordCall(w, 5000, true, W, B);
    expect(w).toEqual(copy);
  });

  it('reaches the rate by division, so 3 of 10 reaches 0.3', () => {
    expect(rateReached({ calls: 10, failures: 3 }, 0.3, 10)).toBe(true);
    expect(rateReached({ calls: 10, failures: 2 }, 0.3, 10)).toBe(false);
    expect(rateReached({ calls: 9, failures: 9 }, 0.3, 10)).toBe(false); // below minimumCalls
    expect(rateReached({ calls: 0, failures: 0 }, 1, 1)).toBe(false);
  });

  it('agrees with a plain log of calls at bucket granularity (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ dt: fc.integer({ min: 0, max: 400 }), failed: fc.boolean() }), {
          maxLength: 60,
        }),
        fc.integer({ min: 0, max: 3000 }),
        (steps, later) => {
          let at = 0;
          const log = steps.map((s) => ({ at: (at += s.dt), failed: s.failed }));
          const now = at + later;
          const start = now - (now % B);
          const inWindow = log.filter((c) => c.at - (c.at % B) > start - W);
          expect(windowTotals(record(log), now, W, B)).toEqual({
            calls: inWindow.length,
            failures: inWindow.filter((c) => c.failed).length,
          });
          expect(record(log).length).toBeLessThanOrEqual(W / B);
        },
      ),
    );
  });
});
