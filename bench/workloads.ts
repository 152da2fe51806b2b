/**
 * The workload drivers, independent of any peer: each takes `acquire(key) => Promise` and awaits
 * every grant. The Redis suite can drive its peers with the same functions.
 */

/** Awaits one grant of cost 1 on `key`. */
export type Acquire = (key: string) => Promise<unknown>;

/** The key caller `c` uses at its `i`-th call: every caller walks all `n` keys (104729 is prime). */
export function keyIndex(c: number, i: number, n: number): number {
  return (c * 7919 + i * 104729) % n;
}

export function makeKeys(n: number, prefix = 'key-'): string[] {
  return Array.from({ length: n }, (_, i) => prefix + i);
}

/**
 * How many distinct keys `callers` callers use for `total` calls in all (as the concurrent workload
 * splits them: about `total / callers` each). The report states it, so "10k keys" is checked.
 */
export function keyCoverage(callers: number, n: number, total: number): number {
  const seen = new Uint8Array(n);
  const per = Math.ceil(total / callers);
  let distinct = 0;
  for (let c = 0; c < callers; c++) {
    for (let i = 0; i < per; i++) {
      const k = keyIndex(c, i, n);
      if (seen[k] === 0) {
        seen[k] = 1;
        distinct++;
      }
    }
  }
  return distinct;
}

/** Sequential awaited grants on one key for about `budgetMs`; grants per second. */
export async function sequential(acquire: Acquire, budgetMs: number, key = 'k'): Promise<number> {
  const chunk = 1024;
  const budgetNs = BigInt(Math.round(budgetMs * 1e6));
  const t0 = process.hrtime.bigint();
  let ops = 0;
  let elapsed = 0n;
  do {
    for (let i = 0; i < chunk; i++) await acquire(key);
    ops += chunk;
    elapsed = process.hrtime.bigint() - t0;
  } while (elapsed < budgetNs);
  return ops / (Number(elapsed) / 1e9);
}

/**
 * `callers` concurrent callers, each looping `await acquire(keys[keyIndex(c, i)])`, until `total`
 * grants were taken in all; grants per second.
 */
export async function concurrent(
  acquire: Acquire,
  keys: readonly string[],
  callers: number,
  total: number,
): Promise<number> {
  let remaining = total;
  const n = keys.length;
  const caller = async (c: number): Promise<void> => {
    for (let i = 0; remaining > 0; i++) {
      remaining--;
      await acquire(keys[keyIndex(c, i, n)]!);
    }
  };
  const t0 = process.hrtime.bigint();
  const all: Promise<void>[] = [];
  for (let c = 0; c < callers; c++) all.push(caller(c));
  await Promise.all(all);
  const ns = Number(process.hrtime.bigint() - t0);
  return total / (ns / 1e9);
}

/**
 * The concurrent workload, timing every awaited acquire (call to resumption) with
 * `process.hrtime.bigint`. Every key gets one untimed grant first, so the latencies are those of
 * keys already known (first-touch costs are in the throughput numbers). Returns the latencies in
 * ns, sorted, and the grants per second of the timed part.
 */
export async function latencies(
  acquire: Acquire,
  keys: readonly string[],
  callers: number,
  total: number,
): Promise<{ sorted: Float64Array; rate: number }> {
  for (const k of keys) await acquire(k);
  const out = new Float64Array(total);
  let next = 0;
  const n = keys.length;
  const caller = async (c: number): Promise<void> => {
    for (let i = 0; next < total; i++) {
      const slot = next++;
      const t = process.hrtime.bigint();
      await acquire(keys[keyIndex(c, i, n)]!);
      out[slot] = Number(process.hrtime.bigint() - t);
    }
  };
  const t0 = process.hrtime.bigint();
  const all: Promise<void>[] = [];
  for (let c = 0; c < callers; c++) all.push(caller(c));
  await Promise.all(all);
  const ns = Number(process.hrtime.bigint() - t0);
  return { sorted: out.sort(), rate: total / (ns / 1e9) };
}

/** The order of peers in round `r`: rotated, so no peer always runs first or last. */
export function rotate<T>(xs: readonly T[], r: number): T[] {
  const k = r % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}
