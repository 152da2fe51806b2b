/**
 * The Lua scripts of the Redis store, read from `lua/*.lua` next to this file (the build copies
 * them to `dist/redis/lua`), and their registration on a client ({@link defineScripts}). The
 * shared Lua ({@link COMMON_FILES}: the arithmetic, the clock and epochs, the key's state) is
 * prepended, in order, to the scripts that use it, so each script sent to Redis is self-contained
 * and atomic.
 *
 * They are registered on the client with ioredis `defineCommand`: it sends EVALSHA, and when Redis
 * answers NOSCRIPT (after SCRIPT FLUSH or a restart) it sends the script with EVAL, which loads it
 * again. No recovery code of ours is needed, and a test flushes scripts to prove it.
 */
import { readFileSync } from 'node:fs';
import type { RedisClient } from './client.js';

/**
 * SCRIPTS are the commands defined on a client, by the name the store calls them with: each one's
 * file, whether {@link COMMON_FILES} go before it, and how many keys it takes (the key's state
 * and slot set, and the store's marker for scripts that keep it; `null`: given per call, as
 * decide takes two keys per tollgate key it decides, and the marker).
 */
export const SCRIPTS = {
  tollgateDecide: { file: 'decide.lua', common: true, keys: null },
  tollgateSettle: { file: 'settle.lua', common: true, keys: 3 },
  tollgateRead: { file: 'read.lua', common: true, keys: 2 },
  tollgateRelease: { file: 'release.lua', common: false, keys: 2 },
  tollgateReset: { file: 'reset.lua', common: false, keys: 3 },
  tollgatePause: { file: 'pause.lua', common: true, keys: 3 },
} as const;

/**
 * COMMON_FILES are the Lua files prepended, in this order, to every script of {@link SCRIPTS}
 * marked `common`. A Lua `local` is seen only by the code after it, so each file comes after the
 * ones it uses: keyState.lua uses both others.
 */
export const COMMON_FILES = ['arithmetic.lua', 'clock.lua', 'keyState.lua'] as const;

/** ScriptName is the name of one of {@link SCRIPTS}. */
export type ScriptName = keyof typeof SCRIPTS;

type ScriptFn = (...args: (string | number)[]) => Promise<unknown>;

/** ScriptClient is a client on which {@link defineScripts} defined the scripts, by name. */
export type ScriptClient = Record<ScriptName, ScriptFn>;

function readLua(file: string): string {
  return readFileSync(new URL(`./lua/${file}`, import.meta.url), 'utf8');
}

let sources: Record<ScriptName, string> | undefined;

/** scriptSources gives the full text of every script (read once). */
export function scriptSources(): Record<ScriptName, string> {
  if (sources !== undefined) return sources;
  const common = COMMON_FILES.map(readLua).join('\n');
  const out = {} as Record<ScriptName, string>;
  for (const [name, { file, common: withCommon }] of Object.entries(SCRIPTS)) {
    out[name as ScriptName] = (withCommon ? common + '\n' : '') + readLua(file);
  }
  return (sources = out);
}

/**
 * defineScripts defines every script of {@link SCRIPTS} on `client` that it does not have yet
 * (another store on the same client may have defined them), and returns the client as a
 * {@link ScriptClient}.
 */
export function defineScripts(client: RedisClient): ScriptClient {
  const lua = scriptSources();
  const defined = client as unknown as Record<string, unknown>;
  for (const name of Object.keys(SCRIPTS) as ScriptName[]) {
    if (typeof defined[name] !== 'function') {
      const count = SCRIPTS[name].keys;
      const keys = count === null ? {} : { numberOfKeys: count };
      client.defineCommand(name, { ...keys, lua: lua[name] });
    }
  }
  return client as unknown as ScriptClient;
}
