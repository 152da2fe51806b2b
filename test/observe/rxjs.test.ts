/**
 * tollgate imports rxjs through its deep paths (`rxjs/internal/...`, #11: 'rxjs' loads all of
 * rxjs under Node). The observables it hands out must still be the rxjs users import: the same
 * `Observable` class for `instanceof`, and operators imported from 'rxjs' must work on them. Checked
 * on the sources, on the build (dist/, in a child node, as a user of the package sees it), and
 * in esbuild bundles for node and for the browser (rxjs's ESM build).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { BehaviorSubject, Observable, firstValueFrom, map, take, toArray } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import { CircuitBreaker, createLimiterSystem, VirtualClock } from '../../src/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tollgate-rxjs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the observables tollgate returns are the rxjs users import', () => {
  it('stats$ is an rxjs Observable, and rxjs operators work on it', async () => {
    const system = createLimiterSystem();
    try {
      const limiter = system.limiter('api', { limits: [{ limit: 3, interval: '1m' }] });
      const stats$ = limiter.stats$('k');
      expect(stats$).toBeInstanceOf(Observable);
      const remaining = firstValueFrom(
        stats$.pipe(
          map((s) => s.limits[0]!.remaining),
          take(2),
          toArray(),
        ),
      );
      await new Promise((r) => setImmediate(r)); // the first reading is out
      await limiter.acquire('k');
      expect(await remaining).toEqual([3, 2]);
    } finally {
      await system.close();
    }
  });

  it("a breaker's state$ is an rxjs Observable, fed by an rxjs BehaviorSubject", async () => {
    const breaker = new CircuitBreaker('p', {}, new VirtualClock());
    expect(breaker.state$).toBeInstanceOf(Observable);
    expect(breaker.state$).not.toBeInstanceOf(BehaviorSubject); // asObservable() hides it
    expect(await firstValueFrom(breaker.state$.pipe(map((s) => s.toUpperCase())))).toBe('CLOSED');
  });

  it('holds for the build, imported by a child node', () => {
    // dist/ is the build test/globalSetup.ts made for this run.
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', CHECK], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(out.trim()).toBe('true true 1');
  }, 60_000);

  for (const platform of ['node', 'browser'] as const) {
    it(`holds in an esbuild bundle for ${platform}`, async () => {
      const outfile = join(dir, `${platform}.mjs`);
      await build({
        stdin: { contents: CHECK, resolveDir: root, loader: 'js', sourcefile: 'check.mjs' },
        // The sources, through the same deep paths; 'tollgate' names the build instead.
        alias: { tollgate: join(root, 'src', 'index.ts') },
        bundle: true,
        platform,
        format: 'esm',
        target: 'es2022',
        outfile,
        external: ['node:*'],
        logLevel: 'silent',
      });
      const out = execFileSync(process.execPath, [outfile], { encoding: 'utf8', cwd: dir });
      expect(out.trim()).toBe('true true 1');
    }, 60_000);
  }
});

/** What a user of the package does: rxjs from 'rxjs', tollgate from 'tollgate'. */
const CHECK = `
import { Observable, firstValueFrom, map } from 'rxjs';
import { CircuitBreaker, createLimiterSystem, systemClock } from 'tollgate';
const system = createLimiterSystem();
const limiter = system.limiter('api', { limits: [{ limit: 1, interval: '1m' }] });
const stats$ = limiter.stats$('k');
const breaker = new CircuitBreaker('p', {}, systemClock);
const limit = await firstValueFrom(stats$.pipe(map((s) => s.limits[0].limit)));
console.log(stats$ instanceof Observable, breaker.state$ instanceof Observable, limit);
await system.close();
`;
