/**
 * Waiter, called directly: it leaves Pending exactly once, its promise is made only when the
 * outcome is not known yet, and its abort listener is detached when it ends.
 */
import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../src/limiter/index.js';
import { Waiter, WaiterState } from '../../src/machines/waiter.js';

const policy = compilePolicy({ limits: [{ limit: 10, interval: '1s' }] });

function waiter(options: { timeoutMs?: number; tryOnly?: boolean; seq?: number } = {}) {
  return new Waiter<string>(
    'sys-',
    options.seq ?? 35,
    [1],
    policy,
    false,
    null,
    undefined,
    0,
    options.timeoutMs ?? Infinity,
    options.tryOnly ?? false,
    undefined,
    'acquire',
  );
}

describe('Waiter', () => {
  it('starts pending, unqueued, with no deadline, outcome or estimate', () => {
    const w = waiter();
    expect(w.type).toBe('acquire');
    expect({
      state: w.state,
      queued: w.queued,
      deciding: w.deciding,
      overflow: w.overflow,
      deadline: w.deadline,
      arrived: w.arrived,
      arrivedAt: w.arrivedAt,
      wantsEta: w.wantsEta,
      etaMs: w.etaMs,
      grant: w.grant,
      refusal: w.refusal,
      error: w.error,
    }).toEqual({
      state: WaiterState.Pending,
      queued: false,
      deciding: false,
      overflow: false,
      deadline: Infinity,
      arrived: false,
      arrivedAt: 0,
      wantsEta: false,
      etaMs: null,
      grant: undefined,
      refusal: undefined,
      error: undefined,
    });
  });

  it.each([
    { timeoutMs: Infinity, tryOnly: false, once: false },
    { timeoutMs: 1, tryOnly: false, once: false },
    { timeoutMs: 0, tryOnly: false, once: true }, // an acquire that must fit at once
    { timeoutMs: Infinity, tryOnly: true, once: true }, // a tryAcquire
  ])('is decided once when timeout is $timeoutMs and try is $tryOnly: $once', (o) => {
    expect(waiter(o).once).toBe(o.once);
  });

  it('builds its id from the system prefix and its arrival in base 36', () => {
    expect(waiter({ seq: 35 }).id).toBe('sys-z');
    const w = waiter({ seq: 36 });
    expect(w.id).toBe('sys-10');
    expect(w.id).toBe('sys-10');
  });

  it('succeeds once: a later outcome changes nothing, and the promise resolves with the grant', async () => {
    const w = waiter();
    const p = w.promise();
    let detached = 0;
    w.detach = { detach: () => detached++ };
    expect(w.succeed('g1')).toBe(true);
    expect(w.state).toBe(WaiterState.Granted);
    expect(w.detach).toBeUndefined();
    expect(w.succeed('g2')).toBe(false);
    expect(w.refuse({ retryAfterMs: 5, limit: 'x' })).toBe(false);
    expect(w.fail(new Error('late'))).toBe(false);
    expect({ state: w.state, grant: w.grant, refusal: w.refusal, error: w.error }).toEqual({
      state: WaiterState.Granted,
      grant: 'g1',
      refusal: undefined,
      error: undefined,
    });
    expect(detached).toBe(1);
    await expect(p).resolves.toBe('g1');
    // Asked for after the grant: an already resolved promise.
    await expect(w.promise()).resolves.toBe('g1');
  });

  it('refuses once (a tryAcquire): the promise resolves without a grant', async () => {
    const w = waiter({ tryOnly: true });
    const p = w.promise();
    let detached = 0;
    w.detach = { detach: () => detached++ };
    expect(w.refuse({ retryAfterMs: 250, limit: 'rps' })).toBe(true);
    expect(w.state).toBe(WaiterState.Refused);
    expect(w.refusal).toEqual({ retryAfterMs: 250, limit: 'rps' });
    expect(w.refuse({ retryAfterMs: 1, limit: 'other' })).toBe(false);
    expect(w.succeed('g')).toBe(false);
    expect(w.fail(new Error('late'))).toBe(false);
    expect(w.refusal).toEqual({ retryAfterMs: 250, limit: 'rps' });
    expect(w.state).toBe(WaiterState.Refused);
    expect(detached).toBe(1);
    await expect(p).resolves.toBeUndefined();
  });

  it('fails once: the promise rejects with the error, before or after it was asked for', async () => {
    const w = waiter();
    const p = w.promise();
    const error = new Error('timed out');
    let detached = 0;
    w.detach = { detach: () => detached++ };
    expect(w.fail(error)).toBe(true);
    expect(w.state).toBe(WaiterState.Failed);
    expect(w.fail(new Error('again'))).toBe(false);
    expect(w.succeed('g')).toBe(false);
    expect(w.refuse({ retryAfterMs: 1, limit: 'x' })).toBe(false);
    expect(w.error).toBe(error);
    expect(w.grant).toBeUndefined();
    expect(detached).toBe(1);
    await expect(p).rejects.toBe(error);
    await expect(w.promise()).rejects.toBe(error);
  });

  it('ends without a promise or a listener when none was made', () => {
    const a = waiter();
    expect(a.succeed('g')).toBe(true);
    const b = waiter();
    expect(b.refuse({ retryAfterMs: 1, limit: 'x' })).toBe(true);
    const c = waiter();
    expect(c.fail(new Error('x'))).toBe(true);
    expect([a.state, b.state, c.state]).toEqual([
      WaiterState.Granted,
      WaiterState.Refused,
      WaiterState.Failed,
    ]);
  });

  it('has four states, Pending first', () => {
    expect(WaiterState).toEqual({ Pending: 0, Granted: 1, Refused: 2, Failed: 3 });
  });
});
