/**
 * Table helper for the core: play rows `{ at, cost, want }` through `decide` on one key, in
 * order, and check each outcome. Expected numbers in the tables are derived by hand from the
 * documented semantics (see the comments next to each row), never printed from the code.
 */
import { expect } from 'vitest';
import { compileCost, decide, initialState } from '../../src/limiter/index.js';
import type { CostSpec, GrantRecord, KeyState, Ms, Policy } from '../../src/limiter/index.js';

/** What a row expects: a grant, or a refusal with its retry (and the limit that refused). */
export type Want = 'granted' | { readonly retryAfterMs: Ms; readonly limit?: string };

export interface Row {
  readonly at: Ms;
  /** A number is a count of requests. @default 1 request */
  readonly cost?: number | CostSpec;
  readonly want: Want;
}

/** Play `rows` from `state` (a fresh key at 0 by default); returns the last state and the grants. */
export function play(
  policy: Policy,
  rows: readonly Row[],
  state: KeyState = initialState(policy, 0),
): { state: KeyState; grants: GrantRecord[] } {
  const grants: GrantRecord[] = [];
  rows.forEach((row, i) => {
    const cost = typeof row.cost === 'number' ? { requests: row.cost } : row.cost;
    const d = decide(policy, state, compileCost(policy, cost), row.at);
    const where = `row ${i}: at ${row.at} cost ${JSON.stringify(row.cost ?? 1)}`;
    if (row.want === 'granted') {
      expect(d.ok ? 'granted' : `refused, retry ${d.retryAfterMs} by ${d.limit}`, where).toBe(
        'granted',
      );
      if (d.ok) {
        grants.push(d.grant);
        state = d.state;
      }
    } else {
      expect(d.ok, where).toBe(false);
      if (!d.ok) {
        expect(d.retryAfterMs, where).toBe(row.want.retryAfterMs);
        if (row.want.limit !== undefined) expect(d.limit, where).toBe(row.want.limit);
        expect(d.state, `${where}: a refusal returns the state itself`).toBe(state);
      }
    }
  });
  return { state, grants };
}

/** A refusal row. */
export const retry = (retryAfterMs: Ms, limit?: string): Want =>
  limit === undefined ? { retryAfterMs } : { retryAfterMs, limit };
