/**
 * runConformance runs the table in `cases.ts` against one Store implementation. A store suite
 * (`memory.test.ts`, later `redis.test.ts`) provides a harness factory; each case gets a fresh
 * harness and its own keys, and every step is applied at its absolute instant: the harness's
 * `setTime(step.at)` first (for stores that read their own clock), then the store method with
 * `now = step.at`.
 *
 * The harness plays the runtime's part around the store, as `src/actors` and `src/machines` do:
 * it compiles policies and costs with the core, makes unique request ids, keeps each grant's
 * record (restated to the actual units after a settle, and in the new policy's terms after a
 * policy change: its units, and its marks by limit name), and passes a record without its slot to
 * `cancel` once the slot was released.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  reframe,
  restate,
  type Store,
  type StoreDecision,
  type StoreGrant,
  type StoreRequest,
} from '../../src/store.js';
import { compileCost, compilePolicy } from '../../src/limiter/index.js';
import type { CostSpec, Policy, Units } from '../../src/limiter/types.js';
import { isTollgateError } from '../../src/errors.js';
import { cases, type ConformanceCase, type Outcome, type Step } from './cases.js';

/** What a store suite gives the table: a store and a way to set the store's clock. */
export interface ConformanceHarness {
  store: Store;
  /** Make the store's clock read `ms` (a no-op for stores that decide at the `now` argument). */
  setTime(ms: number): void | Promise<void>;
  close(): Promise<void>;
}

/** The unique part of every id and default key of this run (stores may be shared across runs). */
const RUN = randomUUID().slice(0, 8);

/** The key a case uses when neither it nor its step names one. */
function defaultKey(index: number): string {
  return `conformance:${RUN}:case-${index}`;
}

/** A grant the harness keeps by name, as a Grant handle of the runtime would. */
interface Held {
  key: string;
  record: StoreGrant;
  /** The cost the record's units come from: the estimate, then the actual after a settle. */
  cost: CostSpec;
  /** The policy the record's units are in terms of. */
  policy: Policy;
  /** Whether the slot was given back (release or cancel). */
  slotFreed: boolean;
}

function show(s: string): string {
  const j = JSON.stringify(s);
  return j.length > 60 ? `${j.slice(0, 40)}…(${s.length} chars)` : j;
}

function describeStep(step: Step): string {
  const { at: _at, key: _key, ...rest } = step;
  const j = JSON.stringify(rest);
  return j.length > 160 ? `${j.slice(0, 160)}…` : j;
}

/** A decision as the table writes it. */
function outcomeOf(d: StoreDecision): Outcome {
  return d.ok ? { ok: true } : { ok: false, retryAfterMs: d.retryAfterMs, limit: d.limit };
}

/** Whether the store's fast path is used for single acquires. */
type Path = 'decide' | 'decideOne';

async function runCase(
  c: ConformanceCase,
  index: number,
  harness: ConformanceHarness,
  path: Path,
): Promise<void> {
  const { store } = harness;
  const caseKey = c.key ?? defaultKey(index);
  let policy = compilePolicy(c.policy);
  const grants = new Map<string, Held>();
  let seq = 0;
  const nextId = (): string => `${RUN}:${index}:${++seq}`;

  // Start every key of the case from a clean state, so a shared store (Redis) can rerun the table.
  const keys = new Set<string>([caseKey]);
  for (const step of c.steps) if (step.key !== undefined) keys.add(step.key);
  const first = c.steps[0]?.at ?? 0;
  await harness.setTime(first);
  for (const key of keys) await store.reset(key, first);

  let last = -Infinity;
  // The latest instant the case reached: with a clock that steps back, a grant is booked there,
  // not at the earlier `now` (a key's time never goes back, see KeyState.at).
  let latest = -Infinity;
  for (let i = 0; i < c.steps.length; i++) {
    const step = c.steps[i]!;
    const key = step.key ?? caseKey;
    const where = `[${c.name}] step #${i} at ${step.at} ms (${path}), key ${show(key)}: ${describeStep(step)}`;
    if (step.at < last && c.clockStepsBack !== true)
      throw new Error(`${where}: steps must be in non-decreasing time order`);
    last = step.at;
    latest = Math.max(latest, step.at);
    const now = step.at;
    await harness.setTime(now);

    const request = (cost: CostSpec, slot: boolean | undefined): StoreRequest => ({
      id: nextId(),
      units: compileCost(policy, cost),
      slot: slot ?? policy.concurrency !== null,
      leaseMs: null,
    });
    const checkDecision = (
      d: StoreDecision | undefined,
      want: Outcome,
      req: StoreRequest,
      cost: CostSpec,
      name: string | null | undefined,
      what: string,
    ): void => {
      expect(d, `${where}: ${what}: no decision`).toBeDefined();
      expect(outcomeOf(d!), `${where}: ${what}`).toEqual(want);
      if (!d!.ok) return;
      const g = d!.grant;
      expect(
        { id: g.id, at: g.at, units: [...g.units], slot: g.slot },
        `${where}: ${what}: the grant record`,
      ).toEqual({
        id: req.id,
        at: c.clockStepsBack === true ? latest : now,
        units: [...req.units],
        slot: req.slot,
      });
      if (name !== undefined && name !== null) {
        if (grants.has(name))
          throw new Error(`${where}: grant name ${name} is used twice in the case`);
        grants.set(name, { key, record: g, cost, policy, slotFreed: false });
      }
    };
    const held = (name: string): Held => {
      const g = grants.get(name);
      if (g === undefined)
        throw new Error(`${where}: no grant named ${name} (was its acquire refused?)`);
      return g;
    };
    /** The grant's record in the current policy's terms (what the runtime does after setLimits). */
    const current = (g: Held, actual?: Units): StoreGrant =>
      g.policy === policy
        ? g.record
        : reframe(
            g.record,
            g.policy,
            policy,
            compileCost(policy, g.cost, 'settle', false),
            actual ?? policy.limits.map(() => 0),
          );

    if ('acquire' in step && 'throws' in step.expect) {
      // Refused at the boundary, as the facade does (it compiles the cost before the mailbox).
      let thrown: unknown = null;
      try {
        request(step.acquire, step.slot);
      } catch (e) {
        thrown = e;
      }
      expect(isTollgateError(thrown) && thrown.code, `${where}: the error`).toBe(
        step.expect.throws,
      );
    } else if ('acquire' in step) {
      const req = request(step.acquire, step.slot);
      let d: StoreDecision | undefined;
      if (path === 'decideOne' && store.decideOne !== undefined) {
        d = store.decideOne(key, policy, req, now);
      } else {
        const ds = await store.decide(key, policy, [req], 'queue', now);
        expect(ds.length, `${where}: decide of one request answers one decision`).toBe(1);
        d = ds[0];
      }
      checkDecision(d, step.expect as Outcome, req, step.acquire, step.as, 'acquire');
    } else if ('batch' in step) {
      const reqs = step.batch.map((cost) => request(cost, step.slot));
      const ds = await store.decide(key, policy, reqs, step.mode, now);
      expect(ds.map(outcomeOf), `${where}: batch decisions (${step.mode})`).toEqual(step.expect);
      ds.forEach((d, j) =>
        checkDecision(
          d,
          step.expect[j]!,
          reqs[j]!,
          step.batch[j]!,
          step.as?.[j],
          `batch request #${j}`,
        ),
      );
    } else if ('settle' in step) {
      const g = held(step.settle);
      const actual = compileCost(policy, step.actual, 'settle', false);
      const record = current(g, actual);
      await store.settle(g.key, policy, record, actual, now);
      g.record = restate(record, actual);
      g.cost = step.actual;
      g.policy = policy;
    } else if ('cancel' in step) {
      const g = held(step.cancel);
      let record = current(g);
      if (g.slotFreed) record = restate(record, record.units, false);
      await store.cancel(g.key, policy, record, now);
      g.slotFreed = true;
    } else if ('release' in step) {
      // Passed as booked, even when released before: Store.release is idempotent.
      const g = held(step.release);
      await store.release(g.key, policy, current(g), now);
      g.slotFreed = true;
    } else if ('read' in step) {
      const r = await store.read(key, policy, now);
      expect(
        r.limits.map((l) => ({
          name: l.name,
          dimension: l.dimension,
          algorithm: l.algorithm,
          limit: l.limit,
          capacity: l.capacity,
        })),
        `${where}: read reports every limit of the policy, in order`,
      ).toEqual(
        policy.limits.map((l) => ({
          name: l.name,
          dimension: l.dimension,
          algorithm: l.algorithm,
          limit: l.limit,
          capacity: l.capacity,
        })),
      );
      const byName = new Map(r.limits.map((l) => [l.name, l]));
      const remaining = Object.fromEntries(
        Object.keys(step.read.remaining).map((n) => [n, byName.get(n)?.remaining]),
      );
      expect(remaining, `${where}: remaining`).toEqual(step.read.remaining);
      if (step.read.resetMs !== undefined) {
        const resetMs = Object.fromEntries(
          Object.keys(step.read.resetMs).map((n) => [n, byName.get(n)?.resetMs]),
        );
        expect(resetMs, `${where}: resetMs`).toEqual(step.read.resetMs);
      }
      if (step.read.inFlight !== undefined) {
        expect(r.inFlight, `${where}: inFlight`).toBe(step.read.inFlight);
      }
    } else if ('reset' in step) {
      await store.reset(key, now);
    } else if ('setPolicy' in step) {
      policy = compilePolicy(step.setPolicy);
    } else {
      const never: never = step;
      throw new Error(`${where}: unknown step ${JSON.stringify(never)}`);
    }
  }
}

/**
 * runConformance registers one test per row of `table` (default: `cases.ts`) in a
 * `describe(suiteName)`. Each test runs the row on a fresh harness through `Store.decide`; when the
 * store has the `decideOne` fast path, it runs the row again on another fresh harness with single
 * acquires through `decideOne`.
 */
export function runConformance(
  suiteName: string,
  make: () => Promise<ConformanceHarness>,
  table: readonly ConformanceCase[] = cases,
): void {
  describe(suiteName, () => {
    table.forEach((c, index) => {
      it(c.name, async () => {
        for (const path of ['decide', 'decideOne'] as const) {
          const harness = await make();
          try {
            if (path === 'decideOne' && harness.store.decideOne === undefined) return;
            await runCase(c, index, harness, path);
          } finally {
            await harness.close();
          }
        }
      });
    });
  });
}
