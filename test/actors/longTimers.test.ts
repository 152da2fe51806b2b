/**
 * Timers longer than Node's timers take (2^31 − 1 ms): Node runs such a timer after 1 ms with a
 * TimeoutOverflowWarning, so a key paused for a month, or a window of a year with a waiter,
 * woke every millisecond. systemClock waits them out in steps. These tests use real timers (the
 * point is Node's), and assert only what holds however late the machine runs them.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  LimiterClosedError,
  MAX_TIMER_MS,
  VirtualClock,
  createLimiterSystem,
  systemClock,
  type TimerHandle,
} from '../../src/index.js';

const warnings: string[] = [];
const onWarning = (w: Error): void => void warnings.push(w.name);
beforeEach(() => {
  warnings.length = 0;
  process.on('warning', onWarning);
});
afterEach(() => {
  process.off('warning', onWarning);
  vi.useRealTimers();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const timeouts = (): number =>
  process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('systemClock with delays over 2^31 − 1 ms', () => {
  it('does not fire early, warns of nothing, and clears', async () => {
    const before = timeouts();
    const fn = vi.fn();
    const h = systemClock.setTimeout(fn, MAX_TIMER_MS * 2 + 5);
    const hk = systemClock.setHousekeepingTimeout!(fn, 40 * 86_400_000);
    await sleep(30);
    expect(fn).not.toHaveBeenCalled();
    expect(warnings).not.toContain('TimeoutOverflowWarning');
    systemClock.clearTimeout(h);
    systemClock.clearTimeout(hk);
    expect(timeouts()).toBe(before);
  });

  it('fires once the whole delay has passed, stepping through Node-sized timers', () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    const h = systemClock.setTimeout(fn, MAX_TIMER_MS * 2 + 5);
    vi.advanceTimersByTime(MAX_TIMER_MS);
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(4);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledTimes(1);
    // Cleared in the middle of the chain: never fires.
    const g = vi.fn();
    const h2 = systemClock.setTimeout(g, MAX_TIMER_MS + 10);
    vi.advanceTimersByTime(MAX_TIMER_MS + 1);
    systemClock.clearTimeout(h2);
    vi.advanceTimersByTime(100);
    expect(g).not.toHaveBeenCalled();
    systemClock.clearTimeout(h);
  });
});

describe('a key on the system clock with a wait longer than 24.8 days', () => {
  it('a waiter behind a window of 300 days neither spins nor warns, and ends at close', async () => {
    const system = createLimiterSystem();
    const l = system.limiter('yearly', { limits: [{ limit: 1, interval: '300d' }] });
    await l.acquire('k');
    const waiting = l.acquire('k');
    await l.pause('p', 3_000_000_000); // retry-after: 3,000,000 s
    const paused = l.acquire('p'); // waits the pause out
    await sleep(30);
    expect(warnings).not.toContain('TimeoutOverflowWarning');
    expect((await l.stats('k')).queued).toBe(1);
    expect((await l.stats('p')).queued).toBe(1);
    await system.close();
    await expect(waiting).rejects.toBeInstanceOf(LimiterClosedError);
    await expect(paused).rejects.toBeInstanceOf(LimiterClosedError);
  });
});

describe('the key actor asks no clock for more than 2^31 − 1 ms', () => {
  /** A VirtualClock that records every delay it is asked for. */
  class RecordingClock extends VirtualClock {
    readonly delays: number[] = [];
    override setTimeout(fn: () => void, ms: number): TimerHandle {
      this.delays.push(ms);
      return super.setTimeout(fn, ms);
    }
  }

  it('a wait of 300 days is armed in Node-sized steps and the waiter is granted at its end', async () => {
    const clock = new RecordingClock(0);
    // The idle sweep runs every idleTimeout: 20 days keeps 300 days of virtual time short.
    const system = createLimiterSystem({ clock, idleTimeout: '20d' });
    const l = system.limiter('yearly', {
      limits: [{ limit: 1, interval: '300d', algorithm: 'fixed-window' }],
    });
    await l.acquire('k');
    let granted = false;
    const waiting = l.acquire('k').then((g) => {
      granted = true;
      return g;
    });
    await clock.increment(299 * 86_400_000);
    expect(granted).toBe(false);
    await clock.increment(86_400_000);
    await waiting;
    expect(granted).toBe(true);
    expect(Math.max(...clock.delays)).toBeLessThanOrEqual(MAX_TIMER_MS);
    expect(clock.delays.length).toBeGreaterThan(10); // 300 days in steps of ~24.8
    await system.close();
  });
});
