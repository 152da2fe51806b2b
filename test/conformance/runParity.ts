/**
 * runParity runs the runtime parity table (`parityRuntime.ts`) over one store, the way
 * `runConformance.ts` runs the store table: the same harness factory, a fresh harness per case.
 * Each case gets a limiter system on a {@link VirtualClock} over the harness's store (Redis
 * decides at the runtime's clock, `time: 'runtime'`), so every instant is exact.
 *
 * Moving the clock: to reach a step's instant the runner runs the due timers one instant at a
 * time and, after each, waits until the store has answered every call it was sent (a Redis answer
 * takes a round trip, which `VirtualClock.increment` alone does not wait for). A case that lets
 * the clock step back sets it back without running timers.
 *
 * How a waiter ends (granted, or rejected with a code) is recorded with the clock's reading when
 * its promise settled, and checked once the clock has passed every instant the case expects.
 */
import { describe, expect, it } from 'vitest';
import { createLimiterSystem, isTollgateError, VirtualClock } from '../../src/index.js';
import type { Grant, Limiter, LimiterSystem } from '../../src/index.js';
import type { Store } from '../../src/store.js';
import type { ConformanceHarness } from './runConformance.js';
import type { Ends, RuntimeCase, RuntimeStep } from './parityRuntime.js';

/** A store that counts its calls still unanswered, and a way to wait until there are none. */
function counted(store: Store): { store: Store; idle: () => Promise<void> } {
  let pending = 0;
  const proxy = new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        const out: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (out instanceof Promise) {
          pending++;
          out.then(
            () => pending--,
            () => pending--,
          );
        }
        return out;
      };
    },
  });
  const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
  const idle = async (): Promise<void> => {
    // Two quiet turns in a row: an answer's callbacks may send the next call.
    for (let quiet = 0; quiet < 2;) {
      await tick();
      quiet = pending === 0 ? quiet + 1 : 0;
    }
  };
  return { store: proxy, idle };
}

/** How a waiter ended, as recorded. */
type Ended = { grantedAt: number; recordAt: number } | { rejects: string; at: number };

function describeStep(step: RuntimeStep): string {
  const { at: _at, ...rest } = step;
  return JSON.stringify(rest);
}

async function runCase(c: RuntimeCase, harness: ConformanceHarness): Promise<void> {
  const clock = new VirtualClock(0);
  const { store, idle } = counted(harness.store);
  const key = `parity:${Math.random().toString(36).slice(2, 10)}`;
  const systems: LimiterSystem[] = [createLimiterSystem({ clock, store })];
  const limiter = (system: LimiterSystem): Limiter => system.limiter('parity', c.policy);
  const main = limiter(systems[0]!);

  /** Runs every timer due up to `to`, one instant at a time, letting the store answer each. */
  const advanceTo = async (to: number): Promise<void> => {
    await idle();
    for (let due = clock.nextDue; due !== null && due <= to; due = clock.nextDue) {
      await clock.advanceTo(Math.max(due, clock.now()));
      await idle();
    }
    await clock.advanceTo(to);
    await idle();
  };

  const ends: { where: string; want: Ends; got: () => Ended | undefined }[] = [];
  const watch = (where: string, want: Ends, p: Promise<Grant>): void => {
    let got: Ended | undefined;
    p.then(
      (g) => (got = { grantedAt: clock.now(), recordAt: g.grantedAt }),
      (e: unknown) => (got = { rejects: isTollgateError(e) ? e.code : String(e), at: clock.now() }),
    );
    ends.push({ where, want, got: () => got });
  };
  const reservations = new Map<string, { cancel(): Promise<void> }>();
  const controllers = new Map<string, AbortController>();
  let last = 0;

  try {
    for (let i = 0; i < c.steps.length; i++) {
      const step = c.steps[i]!;
      const where = `[${c.name}] step #${i} at ${step.at} ms: ${describeStep(step)}`;
      if (step.at < clock.now()) {
        if (c.clockStepsBack !== true) throw new Error(`${where}: steps must not go back in time`);
        await idle();
        clock.set(step.at);
      } else {
        await advanceTo(step.at);
      }
      last = Math.max(last, step.at);

      if ('reserve' in step && 'throws' in step) {
        let thrown: unknown = null;
        try {
          main.reserve(key, { cost: step.reserve });
        } catch (e) {
          thrown = e;
        }
        expect(isTollgateError(thrown) && thrown.code, where).toBe(step.throws);
      } else if ('reserve' in step) {
        const r = main.reserve(key, { cost: step.reserve });
        watch(where, step.ends, r.granted);
        if (step.as !== undefined) reservations.set(step.as, r);
        await idle();
        // The memory store simulates the queue; a store that cannot estimate says null.
        if (step.etaMs !== undefined && r.etaMs !== null) {
          expect(r.etaMs, `${where}: etaMs`).toBe(step.etaMs);
        }
      } else if ('acquire' in step) {
        let signal: AbortSignal | undefined;
        if (step.signal === 'aborted') signal = AbortSignal.abort(new Error('already aborted'));
        else if (step.signal !== undefined) {
          const ac = new AbortController();
          controllers.set(step.signal, ac);
          signal = ac.signal;
        }
        const options = {
          cost: step.acquire,
          ...(step.timeout === undefined ? {} : { timeout: step.timeout }),
          ...(signal === undefined ? {} : { signal }),
        };
        watch(where, step.ends, main.acquire(key, options));
      } else if ('abort' in step) {
        controllers.get(step.abort)!.abort(new Error('aborted by the case'));
      } else if ('cancel' in step) {
        await reservations.get(step.cancel)!.cancel();
      } else if ('try' in step) {
        const r = await main.tryAcquire(key, { cost: step.try });
        expect(
          r.ok ? { ok: true } : { ok: false, limit: r.limit, retryAfterMs: r.retryAfterMs },
          where,
        ).toEqual(step.expect);
      } else if ('setLimits' in step) {
        main.setLimits(step.setLimits);
      } else if ('simultaneous' in step) {
        while (systems.length < step.systems) systems.push(createLimiterSystem({ clock, store }));
        const limiters = systems.slice(0, step.systems).map(limiter);
        const results = await Promise.all(
          Array.from({ length: step.simultaneous }, (_, j) =>
            limiters[j % limiters.length]!.tryAcquire(key),
          ),
        );
        expect(results.filter((r) => r.ok).length, `${where}: granted`).toBe(step.granted);
      } else if ('every' in step) {
        let granted = 0;
        let lastTry = step.at;
        for (let t = step.at; t < step.until; t += step.every) {
          await advanceTo(t);
          if ((await main.tryAcquire(key)).ok) granted++;
          lastTry = t;
        }
        last = Math.max(last, lastTry);
        expect(granted, `${where}: granted`).toBeLessThanOrEqual(step.atMost);
        expect(granted, `${where}: granted`).toBe(step.granted);
      } else {
        const never: never = step;
        throw new Error(`${where}: unknown step ${JSON.stringify(never)}`);
      }
      await idle();
    }

    // Run the clock past every instant a waiter is expected to end at, then check them all.
    const until = Math.max(
      last,
      ...ends.map((e) => ('grantedAt' in e.want ? e.want.grantedAt : e.want.at)),
    );
    await advanceTo(until);
    for (const e of ends) {
      const got = e.got();
      const want: Ended =
        'grantedAt' in e.want
          ? { grantedAt: e.want.grantedAt, recordAt: e.want.grantedAt }
          : { rejects: e.want.rejects, at: e.want.at };
      expect(got, `${e.where}: how it ended`).toEqual(want);
    }
  } finally {
    for (const s of systems) await s.close();
  }
}

/**
 * runParity registers one test per row of `table` in a `describe(suiteName)`, each on a fresh
 * harness from `make`.
 */
export function runParity(
  suiteName: string,
  make: () => Promise<ConformanceHarness>,
  table: readonly RuntimeCase[],
): void {
  describe(suiteName, () => {
    for (const c of table) {
      it(c.name, async () => {
        const harness = await make();
        try {
          await runCase(c, harness);
        } finally {
          await harness.close();
        }
      });
    }
  });
}
