/**
 * What the runtime tests share: a limiter system on virtual time, closed after each test, and a
 * way to watch a promise settle without letting a rejection go unhandled.
 */
import { afterEach } from 'vitest';
import {
  VirtualClock,
  createLimiterSystem,
  type LimiterSystem,
  type LimiterSystemOptions,
} from '../../src/index.js';

const open: LimiterSystem[] = [];

afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

/** A system on a fresh VirtualClock at 0; it is closed after the current test. */
export function virtualSystem(options: Omit<LimiterSystemOptions, 'clock'> = {}): {
  system: LimiterSystem;
  clock: VirtualClock;
} {
  const clock = new VirtualClock(0);
  const system = createLimiterSystem({ clock, ...options });
  open.push(system);
  return { system, clock };
}

/** Records how `p` ended, without letting a rejection go unhandled. */
export function track<T>(p: Promise<T>): { value?: T; error?: unknown; done: boolean } {
  const r: { value?: T; error?: unknown; done: boolean } = { done: false };
  p.then(
    (v) => Object.assign(r, { value: v, done: true }),
    (e: unknown) => Object.assign(r, { error: e, done: true }),
  );
  return r;
}
