/**
 * The slot the Redis store computes for a key (cluster-key-slot, as ioredis does) agrees with
 * Redis' own CLUSTER KEYSLOT, on a real server, for awkward names and every tollgate key name.
 */
import slotOf from 'cluster-key-slot';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyNames } from '../../src/redis/keys.js';
import { startRedis, type RedisServer } from './harness.js';

let server: RedisServer;
beforeAll(async () => {
  server = await startRedis({ args: ['--cluster-enabled', 'yes'] });
});
afterAll(async () => {
  await server.stop();
});

describe('slotOf', () => {
  it('matches the specification examples', () => {
    expect(slotOf('123456789')).toBe(0x31c3 & 16383); // CRC16/XMODEM check value
    expect(slotOf('{user1000}.following')).toBe(slotOf('user1000'));
    expect(slotOf('foo{}{bar}')).toBe(slotOf('foo{}{bar}')); // empty tag: the whole name
  });

  it('matches CLUSTER KEYSLOT for any tollgate key and for arbitrary names', async () => {
    const client = server.client();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.string({ unit: 'grapheme' }),
          fc.constantFrom('', '{', '}', '{}', 'a{b}c', '{{a}}'),
        ),
        async (key) => {
          for (const name of [key, keyNames('p:', key).state, keyNames('p:', key).slots]) {
            const expected = (await client.call('CLUSTER', 'KEYSLOT', name)) as number;
            expect(slotOf(name), JSON.stringify(name)).toBe(expected);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
