import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import {
  freePort,
  spawnNode,
  startCluster,
  startRedis,
  type RedisCluster,
  type RedisServer,
} from './harness.js';

const ECHO = 'test/redis/fixtures/echo.ts';
const LEAK = 'test/redis/fixtures/leak.ts';

/** True once `pid` is gone (or a zombie nobody has reaped yet). */
function isDead(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    // "pid (comm) S ..." -> state after the last ')'
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

async function eventually(check: () => boolean, timeoutMs = 2_000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

const everything: Array<{ stop(): Promise<void> }> = [];
afterAll(async () => {
  await Promise.all(everything.map((x) => x.stop()));
});

describe('freePort', () => {
  it('returns a loopback port that can be bound', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(port).toBeLessThan(65536);
    expect(port).not.toBe(6379);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});

describe('startRedis', () => {
  let server: RedisServer;
  let client: Redis;

  beforeAll(async () => {
    server = await startRedis();
    everything.push(server);
    client = server.client();
  });

  it('starts its own server on a free port and answers SET/GET', async () => {
    expect(server.host).toBe('127.0.0.1');
    expect(server.port).not.toBe(6379);
    expect(server.running).toBe(true);
    expect(await client.set('greeting', 'hello')).toBe('OK');
    expect(await client.get('greeting')).toBe('hello');
    const config = (await client.config('GET', 'save')) as string[];
    expect(config).toEqual(['save', '']);
  });

  it('restart() comes back on the same port with no data; existing and fresh clients reconnect', async () => {
    await client.set('survives', 'no');
    const { port, pid } = server;
    await server.restart();
    expect(server.port).toBe(port);
    expect(server.pid).not.toBe(pid);
    expect(isDead(pid!)).toBe(true);
    expect(await client.get('survives')).toBeNull(); // the old client reconnected
    const fresh = server.client();
    expect(await fresh.dbsize()).toBe(0);
    await fresh.set('after', 'restart');
    expect(await client.get('after')).toBe('restart');
  });

  it('kill() crashes the server (SIGKILL); restart() brings it back empty', async () => {
    await client.set('crash', 'me');
    const pid = server.pid!;
    await server.kill();
    expect(server.running).toBe(false);
    expect(server.pid).toBeUndefined();
    expect(await eventually(() => isDead(pid))).toBe(true);
    await server.kill(); // idempotent while down
    await server.restart({ signal: 'SIGKILL' });
    expect(server.running).toBe(true);
    expect(await client.get('crash')).toBeNull();
  });

  it('pause(ms) makes commands stall for about ms (real time)', async () => {
    const before = performance.now();
    await client.ping();
    const fastMs = performance.now() - before;

    await server.pause(200);
    const start = performance.now();
    expect(await client.ping()).toBe('PONG');
    const slowMs = performance.now() - start;
    expect(slowMs).toBeGreaterThanOrEqual(150);
    expect(slowMs).toBeLessThan(2_000);
    expect(fastMs).toBeLessThan(150);

    const after = performance.now();
    await client.ping();
    expect(performance.now() - after).toBeLessThan(150); // the pause is over
  });

  it('flushAll() empties the data set and scriptFlush() empties the script cache', async () => {
    await client.set('a', '1');
    const sha = (await client.script('LOAD', 'return 42')) as string;
    expect(await client.evalsha(sha, 0)).toBe(42);

    await server.scriptFlush();
    await expect(client.evalsha(sha, 0)).rejects.toThrow(/NOSCRIPT/);
    expect(await client.get('a')).toBe('1');

    await server.flushAll();
    expect(await client.dbsize()).toBe(0);
  });

  it('passes extra args and honours client options', async () => {
    const custom = await startRedis({ args: ['--maxmemory', '10mb'] });
    everything.push(custom);
    const c = custom.client({ connectionName: 'harness-test', db: 2 });
    expect(await c.config('GET', 'maxmemory')).toEqual(['maxmemory', String(10 * 1024 * 1024)]);
    expect(await c.client('GETNAME')).toBe('harness-test');
    await c.set('in-db-2', 'x');
    expect(await custom.client().get('in-db-2')).toBeNull(); // db 0
    await custom.stop();
  });

  it('stop() quits clients, ends the process, removes the temp dir, and is idempotent', async () => {
    const other = await startRedis();
    const c = other.client();
    await c.ping();
    const { pid, dir } = other;
    expect(existsSync(dir)).toBe(true);

    await Promise.all([other.stop(), other.stop()]);
    await other.stop();
    expect(other.running).toBe(false);
    expect(c.status).toBe('end');
    expect(isDead(pid!)).toBe(true);
    expect(existsSync(dir)).toBe(false);
  });

  it('supports [Symbol.asyncDispose]', async () => {
    const other = await startRedis();
    const pid = other.pid!;
    await other[Symbol.asyncDispose]();
    expect(isDead(pid)).toBe(true);
  });

  it('fails (does not skip) with an install hint when redis-server is missing', async () => {
    const saved = process.env.REDIS_SERVER_BIN;
    process.env.REDIS_SERVER_BIN = '/nonexistent/redis-server';
    const viaEnv = startRedis();
    if (saved === undefined) delete process.env.REDIS_SERVER_BIN;
    else process.env.REDIS_SERVER_BIN = saved;
    await expect(viaEnv).rejects.toThrow(/Redis tests cannot run.*REDIS_SERVER_BIN/s);

    const savedPath = process.env.PATH;
    process.env.PATH = '/nonexistent';
    const viaPath = startRedis();
    process.env.PATH = savedPath;
    await expect(viaPath).rejects.toThrow(
      /Redis tests cannot run: the `redis-server` binary was not found on PATH.*apt-get install redis-server/s,
    );
  });

  it('reports the server output when redis-server refuses to start', async () => {
    await expect(startRedis({ args: ['--no-such-option', 'x'] })).rejects.toThrow(
      /exited with code 1 before answering PING[\s\S]*no-such-option/,
    );
  });
});

describe('startCluster', () => {
  let cluster: RedisCluster;

  beforeAll(async () => {
    cluster = await startCluster();
    everything.push(cluster);
  });

  it('starts 3 masters that all report cluster_state:ok', async () => {
    expect(cluster.ports).toHaveLength(3);
    expect(new Set(cluster.ports).size).toBe(3);
    expect(cluster.ports).not.toContain(6379);
    for (const node of cluster.nodes) {
      const info = await node.client().cluster('INFO');
      expect(info).toMatch(/^cluster_state:ok/m);
      expect(info).toMatch(/^cluster_known_nodes:3/m);
      expect(info).toMatch(/^cluster_size:3/m);
    }
  });

  it('routes keys with different hash tags to different nodes', async () => {
    const client = cluster.client();
    const slots = await client.cluster('SLOTS');
    const ownerOf = (slot: number): number => {
      const range = slots.find(([start, end]) => slot >= start && slot <= end);
      if (range === undefined) throw new Error(`slot ${slot} unassigned`);
      return Number(range[2]![1]);
    };

    const keys = ['{a}k', '{b}k', '{c}k', '{user:1}k', '{user:2}k', '{user:3}k'];
    const owners = new Set<number>();
    for (const key of keys) {
      await client.set(key, `value of ${key}`);
      const slot = await client.cluster('KEYSLOT', key);
      const owner = ownerOf(slot);
      owners.add(owner);
      // the key really lives on the node that owns its slot
      const node = cluster.nodes.find((n) => n.port === owner)!;
      expect(await node.client().get(key)).toBe(`value of ${key}`);
    }
    expect(owners.size).toBe(3);
    for (const key of keys) expect(await client.get(key)).toBe(`value of ${key}`);
  });

  it('runs multi-key commands and transactions within one hash tag; rejects cross-slot ones', async () => {
    const client = cluster.client();
    expect(await client.mset('{a}x', '1', '{a}y', '2')).toBe('OK');
    expect(await client.mget('{a}x', '{a}y')).toEqual(['1', '2']);
    expect(await client.multi().incr('{a}x').incr('{a}y').exec()).toEqual([
      [null, 2],
      [null, 3],
    ]);
    expect(
      await client.eval(
        "return redis.call('GET', KEYS[1]) + redis.call('GET', KEYS[2])",
        2,
        '{a}x',
        '{a}y',
      ),
    ).toBe(5);
    await expect(client.mset('{a}z', '1', '{b}z', '2')).rejects.toThrow(
      /CROSSSLOT|different slots/i,
    );
  });

  it('flushAll() empties every node', async () => {
    const client = cluster.client();
    await client.set('{b}flush', '1');
    await cluster.flushAll();
    for (const node of cluster.nodes) expect(await node.client().dbsize()).toBe(0);
  });
});

describe('spawnNode', () => {
  it('runs a TypeScript script and collects JSON stdout lines', async () => {
    const result = await spawnNode<{
      index?: number;
      arg?: string;
      env?: string | null;
      pid?: number;
    }>(ECHO, ['one', 'two words'], { ECHO_ENV: 'from-parent' });
    expect(result.code).toBe(0);
    expect(result.lines.slice(0, 2)).toEqual([
      { index: 0, arg: 'one' },
      { index: 1, arg: 'two words' },
    ]);
    expect(result.lines[2]).toMatchObject({ env: 'from-parent' });
    expect(result.lines[2]!.pid).not.toBe(process.pid);
  });

  it('rejects with stderr on a non-zero exit', async () => {
    await expect(spawnNode(ECHO, ['--fail'])).rejects.toThrow(
      /exited with code 3[\s\S]*asked to fail/,
    );
  });

  it("kills redis-servers a child forgot to stop (the harness's exit hook)", async () => {
    const { lines } = await spawnNode<{ pid: number; port: number; dir: string }>(LEAK, []);
    const leaked = lines[0]!;
    expect(leaked.pid).toBeGreaterThan(0);
    expect(await eventually(() => isDead(leaked.pid))).toBe(true);
    expect(existsSync(leaked.dir)).toBe(false);
    // The orphan is reaped by PID 1 (a zombie until then); give it a moment so
    // no <defunct> redis-server lingers in `pgrep` output. Not asserted: some
    // container inits never reap.
    await eventually(() => !existsSync(`/proc/${leaked.pid}`), 3_000);
  });
});
