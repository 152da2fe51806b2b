/**
 * Heap per key. Each peer is measured in a fresh child process (so one peer's garbage, JIT code
 * and fragmentation do not count against another), run as `node --expose-gc … bench/heap.ts
 * <peer> <n>`; it prints one JSON line.
 *
 * The workload: touch `n` distinct keys with one grant each under a limit of 10 per minute, so no
 * key is back at full capacity and its state must be kept. "Live" is the heap with every key's
 * state in place (for tollgate: with every key actor alive). "Dormant" is the heap after the keys
 * went idle: tollgate's actors are evicted by the idle sweep (idleTimeout 1 ms, driven by a
 * VirtualClock) and only the store's plain data stays; the other peers cannot evict and keep what
 * they had. Bytes per key = (heapUsed after − heapUsed before) / n, after full collections.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MemoryStore, VirtualClock } from '../src/index.js';
import { MEMORY_PEERS, tollgatePeer, tollgate, type PeerPolicy } from './peers.js';
import { fullGc, settleLoop } from './report.js';
import { makeKeys } from './workloads.js';

/** Ten grants per minute: one grant leaves a key below capacity for six seconds. */
export const DORMANT_POLICY: PeerPolicy = { limit: 10, intervalMs: 60_000 };

export interface HeapResult {
  readonly peer: string;
  readonly n: number;
  /** Bytes per key with all keys' state (and tollgate's actors) alive. */
  readonly liveBytesPerKey: number;
  /** Bytes per key once the keys are idle (tollgate: actors evicted). */
  readonly dormantBytesPerKey: number;
  /** tollgate only: actors alive before and after the sweep, and keys the store kept. */
  readonly actorsBefore?: number;
  readonly actorsAfter?: number;
  readonly storeKeys?: number;
}

const heapUsed = (): number => process.memoryUsage().heapUsed;

async function touch(
  acquire: (key: string) => Promise<unknown>,
  keys: readonly string[],
): Promise<void> {
  for (const k of keys) await acquire(k);
}

async function measureTollgate(n: number): Promise<HeapResult> {
  const run = async (keys: readonly string[]) => {
    const clock = new VirtualClock(0);
    const { peer, system } = tollgatePeer(DORMANT_POLICY, { idleTimeout: 1, clock });
    await touch(peer.acquire, keys);
    return { peer, system, clock };
  };
  // Warm-up on other keys, so compiled code and lazily built structures are in the baseline.
  const warm = await run(makeKeys(2_000, 'warm-'));
  await warm.clock.increment(2);
  await warm.peer.close();

  const keys = makeKeys(n, 'dormant-');
  await fullGc();
  const before = heapUsed();
  const { peer, system, clock } = await run(keys);
  await fullGc();
  const live = heapUsed();
  const actorsBefore = system.liveKeys;
  await clock.increment(2); // the idle sweep runs: every actor has been idle for >= 1 ms
  await fullGc();
  const dormant = heapUsed();
  const result: HeapResult = {
    peer: tollgate.name,
    n,
    liveBytesPerKey: (live - before) / n,
    dormantBytesPerKey: (dormant - before) / n,
    actorsBefore,
    actorsAfter: system.liveKeys,
    storeKeys: system.store instanceof MemoryStore ? system.store.size : -1,
  };
  await peer.close();
  return result;
}

async function measureOther(name: string, n: number): Promise<HeapResult> {
  const factory = MEMORY_PEERS.find((p) => p.name === name);
  if (factory === undefined) throw new Error(`bench/heap: unknown peer ${name}`);
  const warm = factory.create(DORMANT_POLICY);
  await touch(warm.acquire, makeKeys(2_000, 'warm-'));
  await warm.close();

  const keys = makeKeys(n, 'dormant-');
  await fullGc();
  const before = heapUsed();
  const peer = factory.create(DORMANT_POLICY);
  await touch(peer.acquire, keys);
  await fullGc();
  const live = heapUsed();
  // The same idle pause tollgate gets; these peers have no eviction of state still in use.
  await new Promise((r) => setTimeout(r, 50));
  await settleLoop();
  await fullGc();
  const dormant = heapUsed();
  const result: HeapResult = {
    peer: name,
    n,
    liveBytesPerKey: (live - before) / n,
    dormantBytesPerKey: (dormant - before) / n,
  };
  void peer; // kept reachable until here
  return result;
}

/** Measures `peer` (a name from MEMORY_PEERS) in a child process. */
export function measureHeap(peer: string, n: number): Promise<HeapResult> {
  const self = fileURLToPath(import.meta.url);
  const args = [
    ...process.execArgv.filter((a) => a !== '--expose-gc'),
    '--expose-gc',
    self,
    peer,
    String(n),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0)
        return reject(new Error(`bench/heap: ${peer} exited with ${String(code)}: ${out}`));
      try {
        resolve(JSON.parse(line) as HeapResult);
      } catch (e) {
        reject(new Error(`bench/heap: ${peer} printed no result: ${out}`, { cause: e }));
      }
    });
  });
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [peer, n] = process.argv.slice(2);
  const count = Number(n);
  if (peer === undefined || !Number.isSafeInteger(count) || count <= 0) {
    console.error('usage: node --expose-gc --import tsx bench/heap.ts <peer name> <keys>');
    process.exit(2);
  }
  const result =
    peer === tollgate.name ? await measureTollgate(count) : await measureOther(peer, count);
  console.log(JSON.stringify(result));
  process.exit(0); // p-queue leaves interval timers armed
}
