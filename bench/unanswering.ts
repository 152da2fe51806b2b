/**
 * A store that does not answer, on real timers (#12, item 4): how long past its `timeout` a
 * decision ends when Redis never replies (a TCP server that accepts and never writes) or is held
 * by `CLIENT PAUSE`. The test (test/faults/unanswering.test.ts) shows on virtual time that a
 * decision ends at the timeout exactly; this measures what a loaded machine adds to it. For
 * reference, rate-limiter-flexible on the same kind of ioredis client, which has no timeout of its
 * own: its calls are cut off by the bench after a second.
 */
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { createLimiterSystem } from '../src/index.js';
import { redisStore } from '../src/redis/index.js';
import { startRedis, startSilentServer } from '../test/redis/harness.js';
import { fmtInt, quantile, type Section, type Suite, type SuiteOptions } from './report.js';

const TIMEOUT_MS = 20;
/** How long the bench waits for a peer's call that has no timeout of its own. */
const CUT_OFF_MS = 1000;

/** Ms past `TIMEOUT_MS` at which each of `n` sequential tollgate decisions ended. */
async function tollgateOvershoot(port: number, n: number): Promise<number[]> {
  const client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: null });
  client.on('error', () => {});
  // retryInterval of 1 ms: every decision asks Redis again and waits out its timeout.
  const store = redisStore({ client, timeout: TIMEOUT_MS, retryInterval: 1 });
  const system = createLimiterSystem({ store });
  const api = system.limiter('bench', { limits: [{ limit: 10, interval: '1s' }] });
  const over: number[] = [];
  for (let i = 0; i < n; i++) {
    await new Promise((r) => setTimeout(r, 2)); // past the retry interval
    const t0 = performance.now();
    await api.tryAcquire(`k${i % 10}`).catch(() => {});
    over.push(performance.now() - t0 - TIMEOUT_MS);
  }
  await system.close();
  await store.close();
  client.disconnect();
  return over;
}

/** Ms past `TIMEOUT_MS` at which each of `n` bare `setTimeout(TIMEOUT_MS)` fired: the machine's share. */
async function timerOvershoot(n: number): Promise<number[]> {
  const over: number[] = [];
  for (let i = 0; i < n; i++) {
    await new Promise((r) => setTimeout(r, 2));
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, TIMEOUT_MS));
    over.push(performance.now() - t0 - TIMEOUT_MS);
  }
  return over;
}

/** Ms each of `n` rate-limiter-flexible calls took, cut off at CUT_OFF_MS. */
async function peerDuration(port: number, n: number): Promise<number[]> {
  const client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: null });
  client.on('error', () => {});
  const rlf = new RateLimiterRedis({ storeClient: client, points: 10, duration: 1 });
  const took: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await Promise.race([
      rlf.consume(`k${i % 10}`).catch(() => {}),
      new Promise((r) => setTimeout(r, CUT_OFF_MS)),
    ]);
    took.push(performance.now() - t0);
  }
  client.disconnect();
  return took;
}

function row(what: string, over: number[]): string[] {
  const s = [...over].sort((a, b) => a - b);
  const ms = (x: number): string => `${x.toFixed(1)} ms`;
  return [what, fmtInt(s.length), ms(quantile(s, 0.5)), ms(quantile(s, 0.99)), ms(s.at(-1)!)];
}

async function run(options: SuiteOptions): Promise<Section> {
  const n = options.quick ? 10 : 300;
  const rows: string[][] = [];

  options.log('unanswering: a server that never replies');
  const hole = await startSilentServer();
  const holeOver = await tollgateOvershoot(hole.port, n);
  rows.push(row('tollgate, a server that never replies', holeOver));
  const peerN = options.quick ? 2 : 3;
  const peer = await peerDuration(hole.port, peerN);
  await hole.close();

  options.log('unanswering: Redis held by CLIENT PAUSE');
  const server = await startRedis();
  const admin = server.client();
  await admin.call('CLIENT', 'PAUSE', String(60_000), 'ALL');
  const pausedOver = await tollgateOvershoot(server.port, n);
  rows.push(row('tollgate, Redis under CLIENT PAUSE', pausedOver));
  await server.stop(); // ends the pause (an UNPAUSE would itself wait for it on Redis 7.0)

  options.log('unanswering: a bare timer, for reference');
  rows.push(row(`a bare \`setTimeout(${TIMEOUT_MS})\`, for reference`, await timerOvershoot(n)));

  const p99 = Math.max(
    quantile(
      [...holeOver].sort((a, b) => a - b),
      0.99,
    ),
    quantile(
      [...pausedOver].sort((a, b) => a - b),
      0.99,
    ),
  );
  const peerEnded = peer.filter((t) => t < CUT_OFF_MS).length;
  return {
    title: 'A store that does not answer',
    blocks: [
      {
        text: [
          `Sequential \`tryAcquire\` calls on a Redis store with \`timeout: '${TIMEOUT_MS}ms'\` and`,
          '`retryInterval: 1ms` (so that every call asks Redis and waits out the timeout), real timers.',
          'The figures are how long past the timeout each decision ended; the last row is how late a bare',
          'timer of the same length fires on this machine in the same run. rate-limiter-flexible on the',
          `same ioredis client, which leaves timing out to the client: ${peerEnded} of ${peer.length} calls`,
          `ended within ${CUT_OFF_MS} ms.`,
        ].join('\n'),
      },
      {
        table: {
          headers: ['store', 'decisions', 'p50 past timeout', 'p99 past timeout', 'max'],
          rows,
          align: ['l', 'r', 'r', 'r', 'r'],
        },
      },
    ],
    targets: [
      {
        name: 'a decision on a store that does not answer ends within timeout + 5 ms (p99)',
        measured: `+${p99.toFixed(1)} ms`,
        goal: '≤ +5 ms',
        met: p99 <= 5,
      },
    ],
  };
}

export const unansweringSuite: Suite = { name: 'unanswering', run };
