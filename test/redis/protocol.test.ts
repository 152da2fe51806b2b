/**
 * The Redis store on a client of each protocol ioredis speaks: RESP2 (`protocol: 2`, ioredis 5's
 * only one), RESP3 (ioredis 6's default) with the `'legacy'` reply mapping (its default), and
 * RESP3 with `replyMapping: 'resp3'`. Users pass their own client, so the store must answer alike
 * on each: the same fixed sequence of calls (grants with marks, refusals by a limit, by the
 * concurrency limit and by a pause, a settle that refunds, a cancel, a release, a read, a reset, a
 * script error, and the pub/sub announcements `watch` hears) gives the same transcript on all
 * three. The scripts return arrays of integers and strings only, which RESP3 encodes as RESP2
 * does (no doubles, maps or booleans), so nothing in the store depends on the protocol; this test
 * keeps it that way.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreRejectedError } from '../../src/index.js';
import { compileCost, compilePolicy } from '../../src/limiter/index.js';
import { keyNames, redisStore } from '../../src/redis/index.js';
import type { StoreDecision, StoreGrant } from '../../src/store.js';
import { startRedis, type ClientOptions, type RedisServer } from './harness.js';

let server: RedisServer;

beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  await server.stop();
});

const CLIENTS: readonly (readonly [string, ClientOptions, 2 | 3])[] = [
  ['RESP2 (protocol: 2)', { protocol: 2 }, 2],
  ['RESP3 (the default), legacy reply mapping', {}, 3],
  ["RESP3, replyMapping: 'resp3'", { replyMapping: 'resp3' }, 3],
];

const policy = compilePolicy({
  limits: [
    { name: 'tps', limit: 10, interval: '1s', dimension: 'tokens', algorithm: 'token-bucket' },
    { name: 'rpm', limit: 3, interval: '1m', algorithm: 'sliding-window' },
  ],
  concurrency: 1,
});

const request = (id: string, tokens: number, slot = true) => ({
  id,
  units: compileCost(policy, { tokens }),
  slot,
  leaseMs: 5000,
});

/** A decision without its epoch (each key incarnation's own), which must be a positive integer. */
function view(d: StoreDecision): unknown {
  if (!d.ok) return d;
  const { epoch, ...rest } = d.grant;
  expect(Number.isSafeInteger(epoch) && epoch! > 0, `epoch ${String(epoch)}`).toBe(true);
  return { ok: true, grant: rest };
}

function grantOf(d: StoreDecision | undefined): StoreGrant {
  if (d === undefined || !d.ok) throw new Error(`expected a grant, got ${JSON.stringify(d)}`);
  return d.grant;
}

/** Resolves with the next key `watch` hears, or 'none' after 2 s. */
function nextKey(heard: string[]): Promise<string> {
  const start = heard.length;
  return new Promise((resolve) => {
    const since = Date.now();
    const poll = setInterval(() => {
      if (heard.length > start || Date.now() - since > 2000) {
        clearInterval(poll);
        resolve(heard[start] ?? 'none');
      }
    }, 5);
  });
}

/** Plays the fixed sequence on `client` under `prefix` and returns what the store answered. */
async function play(client: Redis, prefix: string): Promise<unknown[]> {
  const store = redisStore({ client, prefix, time: 'runtime' });
  const out: unknown[] = [];
  const heard: string[] = [];
  const unwatch = store.watch((key) => heard.push(key));
  try {
    // The subscription is made on its own connection: wait until Redis counts it. (PUBSUB NUMSUB
    // answers a flat array on every protocol.)
    for (let i = 0; i < 200; i++) {
      const [, subs] = (await client.call('PUBSUB', 'NUMSUB', `${prefix}free`)) as [string, number];
      if (subs > 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const first = await store.decide('k', policy, [request('a', 4), request('b', 1)], 'each', 100);
    out.push(first.map(view));
    // 6 tokens left: 8 more are refused by 'tps' (a request without a slot: not by concurrency).
    out.push((await store.decide('k', policy, [request('c', 8, false)], 'queue', 100)).map(view));
    const a = grantOf(first[0]);
    // A settle below the booked units gives tokens back, and announces it.
    const refunded = nextKey(heard);
    await store.settle('k', policy, a, compileCost(policy, { tokens: 1 }, 'settle', false), 150);
    out.push(await refunded);
    out.push(await store.read('k', policy, 150));
    // The release frees the slot (announced); the next request takes it.
    const released = nextKey(heard);
    await store.release('k', policy, a, 160);
    out.push(await released);
    const d = await store.decide('k', policy, [request('d', 2)], 'queue', 170);
    out.push(d.map(view));
    const cancelled = nextKey(heard);
    await store.cancel('k', policy, grantOf(d[0]), 180);
    out.push(await cancelled);
    out.push((await store.decide('k', policy, [request('e', 1)], 'queue', 190)).map(view));
    // 'e' holds the one slot.
    out.push((await store.decide('k', policy, [request('f', 1)], 'each', 200)).map(view));
    await store.pause('p', 500, 300);
    out.push((await store.decide('p', policy, [request('g', 1)], 'queue', 400)).map(view));
    out.push(await store.read('p', policy, 400));
    const reset = nextKey(heard);
    await store.reset('k', 500);
    out.push(await reset);
    out.push(await store.read('k', policy, 500));
    // A script error is a refusal of the call, not an outage, on every protocol.
    await client.set(keyNames(prefix, 'bad').state, 'not a state');
    const bad = await store.decide('bad', policy, [request('h', 1)], 'queue', 600).then(
      () => 'granted',
      (e: unknown) => (e instanceof StoreRejectedError ? e.code : String(e)),
    );
    out.push(bad, store.isDegraded(600));
  } finally {
    unwatch();
    await store.close();
  }
  return out;
}

describe('redis store on RESP2 and RESP3 clients', () => {
  it('answers every call alike whatever protocol and reply mapping the client speaks', async () => {
    const transcripts: unknown[][] = [];
    for (const [name, options, resp] of CLIENTS) {
      const client = server.client(options);
      // The client speaks the protocol it was made for (ioredis 6 negotiates RESP3 by default).
      const info = String(await client.call('CLIENT', 'INFO'));
      expect(info, name).toContain(`resp=${resp}`);
      transcripts.push(await play(client, `proto-${resp}-${transcripts.length}:`));
      client.disconnect();
    }
    const [resp2, ...others] = transcripts;
    for (const [i, t] of others.entries()) expect(t, CLIENTS[i + 1]![0]).toEqual(resp2);
    // The transcript itself, so that three equally wrong answers do not pass.
    expect(resp2).toMatchObject([
      [
        { ok: true, grant: { id: 'a', at: 100, slot: true, marks: [4000, 0] } },
        { ok: false, limit: 'concurrency' },
      ],
      [{ ok: false, limit: 'tps' }],
      'k',
      { at: 150, inFlight: 1 },
      'k',
      [{ ok: true, grant: { id: 'd', at: 170, slot: true } }],
      'k',
      [{ ok: true, grant: { id: 'e', at: 190, slot: true } }],
      [{ ok: false, limit: 'concurrency' }],
      [{ ok: false, retryAfterMs: 400, limit: 'paused' }],
      { at: 400, inFlight: 0 },
      'k',
      { at: 500, inFlight: 0 },
      'STORE_REJECTED',
      false,
    ]);
  });
});
