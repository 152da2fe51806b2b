/**
 * Redis test harness: throwaway redis-server processes (standalone or cluster)
 * on free loopback ports, plus a helper to run TypeScript scripts as child
 * Node processes for multi-process tests.
 *
 * Tests never touch the shared server on 6379; every server started here gets
 * its own free port and temp dir, and is SIGKILLed on process exit if a test
 * forgot (or failed) to stop it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  constants as fsConstants,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

/** ioredis' reply mappings (`'legacy'`, `'resp3'`): how RESP3-only replies surface. */
type ReplyMapping = NonNullable<RedisOptions['replyMapping']>;

/**
 * The options of a test client: RedisOptions, except that a `replyMapping`, when present, is set.
 * ioredis' constructors type it without `undefined` (RedisOptions allows it), which
 * exactOptionalPropertyTypes holds them to. The protocol is ioredis' default (RESP3) unless set.
 */
export type ClientOptions = Omit<RedisOptions, 'replyMapping'> & { replyMapping?: ReplyMapping };

/** ClusterOptions with {@link ClientOptions} as their `redisOptions`, for the same reason. */
export type ClusterClientOptions = Omit<ClusterOptions, 'redisOptions'> & {
  redisOptions?: Omit<NonNullable<ClusterOptions['redisOptions']>, 'replyMapping'> & {
    replyMapping?: ReplyMapping;
  };
};

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const CLUSTER_TIMEOUT_MS = 30_000;
const OUTPUT_TAIL_CHARS = 16_384;
/** Repository root (test/redis/ -> ../..). */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

// ---------------------------------------------------------------------------
// Process registry: one per process (kept on globalThis so that a module graph
// re-evaluated by the test runner still shares it) with a single 'exit' hook.
// ---------------------------------------------------------------------------

interface Registry {
  readonly procs: Set<ChildProcess>;
  readonly dirs: Set<string>;
  readonly issuedPorts: Set<number>;
}

const REGISTRY_KEY = '__tollgateRedisHarnessRegistry';

function registry(): Registry {
  const g = globalThis as typeof globalThis & { [REGISTRY_KEY]?: Registry };
  let reg = g[REGISTRY_KEY];
  if (reg === undefined) {
    const created: Registry = { procs: new Set(), dirs: new Set(), issuedPorts: new Set() };
    reg = created;
    g[REGISTRY_KEY] = created;
    // 'exit' handlers must be synchronous: SIGKILL leftovers, remove temp dirs.
    process.once('exit', () => {
      for (const child of created.procs) {
        if (isRunning(child) && child.pid !== undefined) {
          try {
            process.kill(child.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
      for (const dir of created.dirs) {
        try {
          rmSync(dir, { recursive: true, force: true });
        } catch {
          // best effort
        }
      }
    });
  }
  return reg;
}

function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  registry().dirs.add(dir);
  return dir;
}

function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  registry().dirs.delete(dir);
}

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Keeps the last `max` characters written to it (a process's combined output). */
class OutputTail {
  #text = '';
  constructor(private readonly max = OUTPUT_TAIL_CHARS) {}
  append(chunk: Buffer | string): void {
    this.#text += chunk.toString();
    if (this.#text.length > this.max) this.#text = this.#text.slice(-this.max);
  }
  toString(): string {
    return this.#text.trim() === '' ? '(no output)' : this.#text.trimEnd();
  }
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function missingBinaryMessage(name: string, envVar: string, detail: string): string {
  return (
    `Redis tests cannot run: ${detail}. ` +
    `Install Redis 7+ so that \`${name}\` is on PATH ` +
    `(Debian/Ubuntu: \`sudo apt-get install redis-server\` (also provides redis-cli); ` +
    `macOS: \`brew install redis\`; or build from https://redis.io/download), ` +
    `or set ${envVar} to the binary's absolute path.`
  );
}

/** Resolves a binary from an env override or PATH; throws a clear error if missing. */
function findBinary(name: string, envVar: string): string {
  const override = process.env[envVar];
  if (override !== undefined && override !== '') {
    if (isExecutableFile(override)) return override;
    throw new Error(
      missingBinaryMessage(name, envVar, `${envVar}=${override} is not an executable file`),
    );
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  throw new Error(
    missingBinaryMessage(name, envVar, `the \`${name}\` binary was not found on PATH`),
  );
}

const redisServerBin = (): string => findBinary('redis-server', 'REDIS_SERVER_BIN');
const redisCliBin = (): string => findBinary('redis-cli', 'REDIS_CLI_BIN');

/**
 * checkRedisBinaries returns null when redis-server and redis-cli can be found, else the one
 * line that says what is missing and how to install it (test/globalSetup.ts prints it).
 */
export function checkRedisBinaries(): string | null {
  try {
    redisServerBin();
    redisCliBin();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

function listenOnZero(): Promise<Server> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, HOST, () => resolvePromise(server));
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((r) => server.close(() => r()));
}

/**
 * `n` distinct free loopback ports. All listeners are held open until every
 * port is allocated (so the OS cannot hand out the same port twice), and ports
 * already handed out by this process are never returned again.
 */
async function freePorts(n: number): Promise<number[]> {
  const reg = registry();
  const held: Server[] = [];
  const ports: number[] = [];
  try {
    let attempts = 0;
    while (ports.length < n) {
      if (++attempts > n + 100) throw new Error(`freePorts: could not find ${n} unused ports`);
      const server = await listenOnZero();
      held.push(server);
      const address = server.address();
      if (address === null || typeof address === 'string')
        throw new Error('freePorts: unexpected server address');
      if (reg.issuedPorts.has(address.port)) continue;
      reg.issuedPorts.add(address.port);
      ports.push(address.port);
    }
  } finally {
    await Promise.all(held.map(closeServer));
  }
  return ports;
}

/** A port on 127.0.0.1 that was free a moment ago (listen on 0, read, close). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}

// ---------------------------------------------------------------------------
// Minimal RESP client for admin commands (no reconnect logic, no queues).
// ---------------------------------------------------------------------------

type RawReply = string | number | null;

function encodeCommand(args: readonly string[]): Buffer {
  let out = `*${args.length}\r\n`;
  for (const arg of args) out += `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`;
  return Buffer.from(out);
}

/** Parses one reply (simple string, error, integer, bulk string) or returns undefined if incomplete. */
function parseReply(buf: Buffer): { value: RawReply } | { error: string } | undefined {
  const lineEnd = buf.indexOf('\r\n');
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buf[0]!);
  const line = buf.toString('utf8', 1, lineEnd);
  switch (type) {
    case '+':
      return { value: line };
    case '-':
      return { error: line };
    case ':':
      return { value: Number(line) };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null };
      const start = lineEnd + 2;
      if (buf.length < start + len + 2) return undefined;
      return { value: buf.toString('utf8', start, start + len) };
    }
    default:
      throw new Error(`unsupported RESP reply type ${JSON.stringify(type)}`);
  }
}

/** Sends one command on a fresh connection and returns its reply. */
function rawCommand(
  port: number,
  args: readonly string[],
  timeoutMs = 2_000,
  host = HOST,
): Promise<RawReply> {
  return new Promise((resolvePromise, reject) => {
    let buf = Buffer.alloc(0);
    let settled = false;
    const socket = createConnection({ host, port });
    const finish = (err: Error | undefined, value?: RawReply): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolvePromise(value ?? null);
    };
    const timer = setTimeout(
      () =>
        finish(new Error(`${args.join(' ')} on ${host}:${port} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.once('connect', () => socket.write(encodeCommand(args)));
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      try {
        const reply = parseReply(buf);
        if (reply === undefined) return;
        if ('error' in reply)
          finish(new Error(`${args.join(' ')} on ${host}:${port} failed: ${reply.error}`));
        else finish(undefined, reply.value);
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.once('error', (err) => finish(err));
    socket.once('close', () =>
      finish(new Error(`connection to ${host}:${port} closed before a reply`)),
    );
  });
}

// ---------------------------------------------------------------------------
// redis-server processes
// ---------------------------------------------------------------------------

interface Proc {
  readonly child: ChildProcess;
  readonly output: OutputTail;
  /** Resolves when the process has exited (or failed to spawn). */
  readonly exited: Promise<void>;
  spawnError: Error | undefined;
}

function spawnTracked(bin: string, args: readonly string[], cwd?: string): Proc {
  const child = spawn(bin, [...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(cwd === undefined ? {} : { cwd }),
  });
  const output = new OutputTail();
  child.stdout?.on('data', (c: Buffer) => output.append(c));
  child.stderr?.on('data', (c: Buffer) => output.append(c));
  const reg = registry();
  reg.procs.add(child);
  const proc: Proc = {
    child,
    output,
    spawnError: undefined,
    exited: new Promise<void>((r) => {
      child.once('exit', () => {
        reg.procs.delete(child);
        r();
      });
      child.once('error', (err) => {
        proc.spawnError = err;
        if (child.pid === undefined) {
          reg.procs.delete(child);
          r();
        }
      });
    }),
  };
  return proc;
}

function hasExited(proc: Proc): boolean {
  return proc.spawnError !== undefined || !isRunning(proc.child);
}

function describeExit(proc: Proc): string {
  if (proc.spawnError) return `failed to spawn (${proc.spawnError.message})`;
  const { exitCode, signalCode } = proc.child;
  return signalCode !== null ? `was killed by ${signalCode}` : `exited with code ${exitCode}`;
}

/** Sends `signal`, waits for exit; escalates to SIGKILL after STOP_TIMEOUT_MS. */
async function terminate(proc: Proc, signal: NodeJS.Signals): Promise<void> {
  if (hasExited(proc)) return;
  proc.child.kill(signal);
  try {
    await withTimeout(proc.exited, STOP_TIMEOUT_MS, 'stop timeout');
  } catch {
    proc.child.kill('SIGKILL');
    await proc.exited;
  }
}

class StartError extends Error {
  constructor(
    message: string,
    readonly addressInUse: boolean,
  ) {
    super(message);
    this.name = 'RedisStartError';
  }
}

/** Polls PING until +PONG; fails fast if the process exits, bounded by timeoutMs. */
async function waitForPing(
  proc: Proc,
  port: number,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let lastError = 'no attempt yet';
  for (;;) {
    if (hasExited(proc)) {
      const out = proc.output.toString();
      throw new StartError(
        `${what} ${describeExit(proc)} before answering PING.\n--- redis-server output ---\n${out}`,
        /address already in use/i.test(out),
      );
    }
    try {
      const reply = await rawCommand(port, ['PING'], 500);
      if (reply === 'PONG') return;
      lastError = `unexpected reply ${JSON.stringify(reply)}`;
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (performance.now() > deadline) {
      await terminate(proc, 'SIGKILL');
      throw new StartError(
        `${what} did not answer PING within ${timeoutMs} ms (last error: ${lastError}).\n` +
          `--- redis-server output ---\n${proc.output.toString()}`,
        false,
      );
    }
    await sleep(20);
  }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/** Quit politely if connected (bounded), then force-disconnect (stops reconnecting). */
async function closeClient(client: Redis | Cluster): Promise<void> {
  if (client.status === 'end') return;
  if (client.status === 'ready') {
    try {
      await withTimeout(client.quit(), 1_000, 'quit timeout');
    } catch {
      // fall through to disconnect
    }
  }
  client.disconnect();
}

/**
 * The harness attaches a no-op 'error' listener to every client it creates so
 * that expected connection errors (restarts, kills) are not printed by ioredis
 * as "Unhandled error event". Attach your own listener to observe them.
 */
function silenceErrors<T extends Redis | Cluster>(client: T): T {
  client.on('error', () => {});
  return client;
}

// ---------------------------------------------------------------------------
// Standalone server
// ---------------------------------------------------------------------------

export interface RestartOptions {
  /** 'SIGTERM' (graceful shutdown, the default) or 'SIGKILL' (crash). */
  signal?: 'SIGTERM' | 'SIGKILL';
  /** Keep the server down this long before starting it again. Default 0. */
  downtimeMs?: number;
}

export interface StartRedisOptions {
  /** Extra redis-server arguments, appended after the harness's own. */
  args?: string[];
  /** How long to wait for PING to answer. Default 10 000 ms. */
  readyTimeoutMs?: number;
}

export interface RedisServer extends AsyncDisposable {
  readonly host: string;
  readonly port: number;
  /** Pid of the current redis-server process (undefined while down). */
  readonly pid: number | undefined;
  /** True while the current process is alive. */
  readonly running: boolean;
  /** Its temp dir (the `--dir`). */
  readonly dir: string;
  /** A new ioredis client for this server; quit/disconnected on stop(). Options override host/port. */
  client(options?: ClientOptions): Redis;
  /** SIGTERM, wait for exit, quit tracked clients, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL (a crash), wait for exit. Clients stay open and keep reconnecting. */
  kill(): Promise<void>;
  /** Stop (or kill) if running, then start again on the SAME port and wait for PING. Data is gone. */
  restart(options?: RestartOptions): Promise<void>;
  /** FLUSHALL on this server. */
  flushAll(): Promise<void>;
  /** SCRIPT FLUSH on this server (clears the Lua script cache: EVALSHA then gets NOSCRIPT). */
  scriptFlush(): Promise<void>;
  /**
   * CLIENT PAUSE ms ALL: every client's commands (including new connections
   * and the harness's own admin commands) stall for `ms`. Resolves as soon as
   * the pause is in effect. It cannot be lifted early: on Redis 7.0 a CLIENT
   * UNPAUSE is itself paused. kill()/restart() do end it.
   */
  pause(ms: number): Promise<void>;
}

class RedisServerImpl implements RedisServer {
  readonly host = HOST;
  #port: number;
  #proc: Proc | undefined;
  #dir: string;
  readonly #ownsDir: boolean;
  readonly #baseArgs: (port: number, dir: string) => string[];
  readonly #readyTimeoutMs: number;
  readonly #clients = new Set<Redis>();
  #stopping: Promise<void> | undefined;

  constructor(opts: {
    port: number;
    dir: string;
    ownsDir: boolean;
    baseArgs: (port: number, dir: string) => string[];
    readyTimeoutMs: number;
  }) {
    this.#port = opts.port;
    this.#dir = opts.dir;
    this.#ownsDir = opts.ownsDir;
    this.#baseArgs = opts.baseArgs;
    this.#readyTimeoutMs = opts.readyTimeoutMs;
  }

  get port(): number {
    return this.#port;
  }
  get dir(): string {
    return this.#dir;
  }
  get pid(): number | undefined {
    return this.#proc !== undefined && !hasExited(this.#proc) ? this.#proc.child.pid : undefined;
  }
  get running(): boolean {
    return this.#proc !== undefined && !hasExited(this.#proc);
  }

  /** Spawns on `port` and waits for PING. */
  async up(port = this.#port): Promise<void> {
    if (this.running) throw new Error(`redis-server on port ${this.#port} is already running`);
    if (this.#ownsDir && this.#stopping !== undefined) {
      // restarted after stop(): the old temp dir was removed
      this.#dir = makeTempDir('tollgate-redis-');
    }
    this.#stopping = undefined;
    this.#port = port;
    const args = [
      '--port',
      String(port),
      '--bind',
      HOST,
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      this.#dir,
      ...this.#baseArgs(port, this.#dir),
    ];
    const proc = spawnTracked(redisServerBin(), args, this.#dir);
    this.#proc = proc;
    await waitForPing(proc, port, this.#readyTimeoutMs, `redis-server on ${HOST}:${port}`);
  }

  client(options: ClientOptions = {}): Redis {
    const client = silenceErrors(new Redis({ host: this.host, port: this.#port, ...options }));
    this.#clients.add(client);
    return client;
  }

  async #down(signal: NodeJS.Signals): Promise<void> {
    if (this.#proc !== undefined) await terminate(this.#proc, signal);
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      const clients = [...this.#clients];
      this.#clients.clear();
      await Promise.all(clients.map(closeClient));
      await this.#down('SIGTERM');
      if (this.#ownsDir) removeTempDir(this.#dir);
    })();
    return this.#stopping;
  }

  kill(): Promise<void> {
    return this.#down('SIGKILL');
  }

  async restart(options: RestartOptions = {}): Promise<void> {
    await this.#down(options.signal ?? 'SIGTERM');
    if (options.downtimeMs !== undefined && options.downtimeMs > 0) await sleep(options.downtimeMs);
    await this.up(this.#port);
  }

  async #admin(args: string[]): Promise<RawReply> {
    if (!this.running) throw new Error(`redis-server on port ${this.#port} is not running`);
    return rawCommand(this.#port, args);
  }

  async flushAll(): Promise<void> {
    await this.#admin(['FLUSHALL']);
  }
  async scriptFlush(): Promise<void> {
    await this.#admin(['SCRIPT', 'FLUSH']);
  }
  async pause(ms: number): Promise<void> {
    if (!Number.isInteger(ms) || ms < 0)
      throw new RangeError(`pause(ms): ms must be a non-negative integer, got ${ms}`);
    await this.#admin(['CLIENT', 'PAUSE', String(ms), 'ALL']);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * Starts a throwaway redis-server on a free loopback port with no persistence
 * and waits until it answers PING. Throws (never skips) if redis-server is not
 * installed.
 */
export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  redisServerBin(); // fail early with the install hint
  const extra = opts.args ?? [];
  const dir = makeTempDir('tollgate-redis-');
  const server = new RedisServerImpl({
    port: 0,
    dir,
    ownsDir: true,
    baseArgs: () => [...extra],
    readyTimeoutMs: opts.readyTimeoutMs ?? READY_TIMEOUT_MS,
  });
  // freePort() has a small race (the port could be taken before redis binds
  // it); retry a few times on "Address already in use".
  for (let attempt = 1; ; attempt++) {
    try {
      await server.up(await freePort());
      return server;
    } catch (err) {
      if (err instanceof StartError && err.addressInUse && attempt < 3) continue;
      await server.stop();
      throw err;
    }
  }
}

// ---------------------------------------------------------------------------
// A server that never answers
// ---------------------------------------------------------------------------

/** A TCP server that accepts every connection and never writes a byte. */
export interface SilentServer extends AsyncDisposable {
  readonly port: number;
  /** Destroys its connections and stops listening. */
  close(): Promise<void>;
}

/** Starts a {@link SilentServer} on a free loopback port: a Redis that never replies. */
export async function startSilentServer(): Promise<SilentServer> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, HOST, r));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('silent server: no port');
  const close = (): Promise<void> =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return { port: address.port, close, [Symbol.asyncDispose]: close };
}

// ---------------------------------------------------------------------------
// Sentinel
// ---------------------------------------------------------------------------

/** Sentinels watching one primary under the name `name`; `stop()` ends them all. */
export interface RedisSentinels extends AsyncDisposable {
  readonly name: string;
  /** Where the sentinels listen, for ioredis' `sentinels` option. */
  readonly addresses: readonly { readonly host: string; readonly port: number }[];
  /** The address the sentinels report for the primary now (after a failover, the new one). */
  primary(): Promise<{ host: string; port: number }>;
  stop(): Promise<void>;
}

export interface StartSentinelsOptions {
  /** How many sentinels. Default 3. */
  count?: number;
  /** The primary's port (on 127.0.0.1). */
  primaryPort: number;
  /** Sentinels that must agree the primary is down. Default a majority of `count`. */
  quorum?: number;
  /** `down-after-milliseconds`. Default 1000. */
  downAfterMs?: number;
  /** `failover-timeout`. Default 5000. */
  failoverTimeoutMs?: number;
}

/**
 * Starts `count` Redis Sentinels (`redis-server <conf> --sentinel`, which ships with redis-server)
 * on free loopback ports, each with a config file of its own (a sentinel rewrites it), watching
 * the primary on `primaryPort` as `tollgate`. Resolves once each answers PING.
 */
export async function startSentinels(opts: StartSentinelsOptions): Promise<RedisSentinels> {
  const count = opts.count ?? 3;
  const name = 'tollgate';
  const quorum = opts.quorum ?? Math.floor(count / 2) + 1;
  const procs: Proc[] = [];
  const addresses: { host: string; port: number }[] = [];
  const dirs: string[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(procs.map((p) => terminate(p, 'SIGKILL')));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < count; i++) {
      const dir = makeTempDir('tollgate-sentinel-');
      dirs.push(dir);
      const port = await freePort();
      const conf = join(dir, 'sentinel.conf');
      writeFileSync(
        conf,
        [
          `port ${port}`,
          `bind ${HOST}`,
          `dir ${dir}`,
          `sentinel monitor ${name} ${HOST} ${opts.primaryPort} ${quorum}`,
          `sentinel down-after-milliseconds ${name} ${opts.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${name} ${opts.failoverTimeoutMs ?? 5000}`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      );
      const proc = spawnTracked(redisServerBin(), [conf, '--sentinel'], dir);
      procs.push(proc);
      await waitForPing(proc, port, READY_TIMEOUT_MS, `redis sentinel on ${HOST}:${port}`);
      addresses.push({ host: HOST, port });
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    name,
    addresses,
    async primary() {
      const admin = silenceErrors(new Redis({ ...addresses[0]!, lazyConnect: true }));
      try {
        const [host, port] = (await admin.call('SENTINEL', 'get-master-addr-by-name', name)) as [
          string,
          string,
        ];
        return { host, port: Number(port) };
      } finally {
        admin.disconnect();
      }
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

// ---------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------

export interface StartClusterOptions {
  /** Number of masters (>= 3, redis-cli's minimum). Default 3. No replicas. */
  masters?: number;
  /** Bound on the whole startup (servers, cluster create, cluster_state:ok). Default 30 000 ms. */
  timeoutMs?: number;
}

export interface RedisCluster extends AsyncDisposable {
  readonly host: string;
  /** Client ports of the masters, in creation order (slots split evenly in that order). */
  readonly ports: readonly number[];
  /** The individual nodes, for per-node admin commands or failure injection. */
  readonly nodes: readonly RedisServer[];
  /** A new ioredis Cluster client with every node as a startup node; quit/disconnected on stop(). */
  client(options?: ClusterClientOptions): Cluster;
  /** FLUSHALL on every node. */
  flushAll(): Promise<void>;
  /** SCRIPT FLUSH on every node. */
  scriptFlush(): Promise<void>;
  /** Quits tracked clients, stops every node, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

function runCollect(
  bin: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<{ code: number | null; output: string }> {
  const proc = spawnTracked(bin, args);
  return withTimeout(
    proc.exited.then(() => ({ code: proc.child.exitCode, output: proc.output.toString() })),
    timeoutMs,
    `${bin} ${args.join(' ')} did not finish within ${timeoutMs} ms`,
  ).catch(async (err: unknown) => {
    await terminate(proc, 'SIGKILL');
    throw new Error(`${(err as Error).message}\n--- output ---\n${proc.output.toString()}`);
  });
}

function clusterInfoField(info: string, field: string): string | undefined {
  const match = new RegExp(`^${field}:(\\S+)`, 'm').exec(info);
  return match?.[1];
}

class RedisClusterImpl implements RedisCluster {
  readonly host = HOST;
  readonly #clients = new Set<Cluster>();
  #stopping: Promise<void> | undefined;

  constructor(
    readonly nodes: readonly RedisServerImpl[],
    readonly dir: string,
  ) {}

  get ports(): readonly number[] {
    return this.nodes.map((n) => n.port);
  }

  client(options: ClusterClientOptions = {}): Cluster {
    const client = silenceErrors(
      new Cluster(
        this.ports.map((port) => ({ host: this.host, port })),
        options,
      ),
    );
    this.#clients.add(client);
    return client;
  }

  async flushAll(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.flushAll()));
  }
  async scriptFlush(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.scriptFlush()));
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      const clients = [...this.#clients];
      this.#clients.clear();
      await Promise.all(clients.map(closeClient));
      await Promise.all(this.nodes.map((n) => n.stop()));
      removeTempDir(this.dir);
    })();
    return this.#stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * Starts `masters` (default 3) cluster-enabled redis-servers on free loopback
 * ports, joins them with `redis-cli --cluster create` (no replicas), and waits
 * until every node reports cluster_state:ok and knows every other node.
 */
export async function startCluster(opts: StartClusterOptions = {}): Promise<RedisCluster> {
  const masters = opts.masters ?? 3;
  if (!Number.isInteger(masters) || masters < 3) {
    throw new RangeError(
      `startCluster: masters must be an integer >= 3 (redis-cli's minimum), got ${masters}`,
    );
  }
  const timeoutMs = opts.timeoutMs ?? CLUSTER_TIMEOUT_MS;
  const deadline = performance.now() + timeoutMs;
  const remaining = (): number => Math.max(1, deadline - performance.now());
  redisServerBin();
  const cli = redisCliBin();

  const dir = makeTempDir('tollgate-redis-cluster-');
  // Each node needs a client port and a cluster-bus port. The bus port is set
  // explicitly (--cluster-port) because the default, port + 10000, may be taken
  // or above 65535 for ports from the ephemeral range.
  const allPorts = await freePorts(masters * 2);
  const nodes = Array.from({ length: masters }, (_, i) => {
    const busPort = allPorts[masters + i]!;
    return new RedisServerImpl({
      port: allPorts[i]!,
      dir,
      ownsDir: false,
      readyTimeoutMs: READY_TIMEOUT_MS,
      baseArgs: (port, d) => [
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(d, `nodes-${port}.conf`),
        '--cluster-node-timeout',
        '2000',
        '--cluster-port',
        String(busPort),
      ],
    });
  });
  const cluster = new RedisClusterImpl(nodes, dir);

  try {
    await Promise.all(nodes.map((n) => n.up()));

    const create = await runCollect(
      cli,
      [
        '--cluster',
        'create',
        ...nodes.map((n) => `${HOST}:${n.port}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      remaining(),
    );
    if (create.code !== 0 || !/All 16384 slots covered/.test(create.output)) {
      throw new Error(
        `redis-cli --cluster create failed (exit code ${create.code}).\n--- output ---\n${create.output}`,
      );
    }

    const notReady = new Map<number, string>();
    for (;;) {
      notReady.clear();
      await Promise.all(
        nodes.map(async (n) => {
          try {
            const info = String(await rawCommand(n.port, ['CLUSTER', 'INFO'], 1_000));
            const state = clusterInfoField(info, 'cluster_state');
            const known = Number(clusterInfoField(info, 'cluster_known_nodes'));
            const slots = Number(clusterInfoField(info, 'cluster_slots_ok'));
            if (state !== 'ok' || known !== masters || slots !== 16384) {
              notReady.set(
                n.port,
                `cluster_state:${state} cluster_known_nodes:${known} cluster_slots_ok:${slots}`,
              );
            }
          } catch (err) {
            notReady.set(n.port, (err as Error).message);
          }
        }),
      );
      if (notReady.size === 0) break;
      if (performance.now() > deadline) {
        const detail = [...notReady].map(([p, why]) => `  ${HOST}:${p}: ${why}`).join('\n');
        throw new Error(
          `Redis cluster did not reach cluster_state:ok within ${timeoutMs} ms:\n${detail}`,
        );
      }
      await sleep(50);
    }
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Child Node processes
// ---------------------------------------------------------------------------

export interface SpawnNodeOptions {
  /** Working directory (relative script paths resolve against it). Default: the repository root. */
  cwd?: string;
  /** SIGKILL the child and reject after this long. Default 30 000 ms. */
  timeoutMs?: number;
  /** Called with each parsed stdout line as it arrives (e.g. to wait for "ready" messages). */
  onLine?: (line: unknown) => void;
}

export interface SpawnNodeResult<T = unknown> {
  code: number;
  /** stdout, one JSON.parse'd value per non-empty line. */
  lines: T[];
  stdout: string;
  stderr: string;
}

export class SpawnNodeError extends Error {
  constructor(
    message: string,
    readonly code: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'SpawnNodeError';
  }
}

/**
 * Runs `node --import tsx <script> ...args` as a child process. Every non-empty
 * stdout line must be JSON; resolves with the parsed lines on exit code 0,
 * rejects (with stderr in the message) on a non-zero exit, a signal, a
 * non-JSON stdout line or the timeout. `env` is merged over process.env
 * (an undefined value removes a variable).
 */
export function spawnNode<T = unknown>(
  script: string,
  args: readonly string[] = [],
  env: Record<string, string | undefined> = {},
  opts: SpawnNodeOptions = {},
): Promise<SpawnNodeResult<T>> {
  const cwd = opts.cwd ?? REPO_ROOT;
  const scriptPath = isAbsolute(script) ? script : resolve(cwd, script);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', scriptPath, ...args], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const reg = registry();
    reg.procs.add(child);
    const lines: T[] = [];
    let stdout = '';
    let stderr = '';
    let partial = '';
    let lineError: Error | undefined;
    let timedOut = false;

    const takeLine = (raw: string): void => {
      const text = raw.trim();
      if (text === '') return;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        lineError ??= new Error(
          `non-JSON stdout line from ${script}: ${JSON.stringify(text.slice(0, 500))}`,
        );
        return;
      }
      lines.push(value as T);
      try {
        opts.onLine?.(value);
      } catch (err) {
        lineError ??= err as Error;
      }
    };

    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      partial += chunk;
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      for (const part of parts) takeLine(part);
    });
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });

    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);

    child.once('error', (err) => {
      clearTimeout(timer);
      reg.procs.delete(child);
      reject(
        new SpawnNodeError(
          `could not spawn node for ${script}: ${err.message}`,
          null,
          null,
          stdout,
          stderr,
        ),
      );
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      reg.procs.delete(child);
      takeLine(partial);
      const fail = (why: string): void =>
        reject(
          new SpawnNodeError(
            `${script} ${why}\n--- stderr ---\n${stderr.trimEnd() || '(empty)'}`,
            code,
            signal,
            stdout,
            stderr,
          ),
        );
      if (timedOut) fail(`timed out after ${timeoutMs} ms and was killed`);
      else if (signal !== null) fail(`was killed by ${signal}`);
      else if (code !== 0) fail(`exited with code ${code}`);
      else if (lineError) fail(lineError.message);
      else resolvePromise({ code: 0, lines, stdout, stderr });
    });
  });
}
