// Copies what tsc does not emit (the Redis store's Lua scripts) from src/ to dist/.
import { cpSync } from 'node:fs';

cpSync(
  new URL('../src/redis/lua', import.meta.url),
  new URL('../dist/redis/lua', import.meta.url),
  {
    recursive: true,
  },
);
