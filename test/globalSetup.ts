/**
 * Before any test file: the Redis tests start redis-server processes of their own, so without
 * the binary `npm test` stops here with one line that says how to install it, instead of a stack
 * per Redis test file.
 */
import { checkRedisBinaries } from './redis/harness.js';

export default function setup(): void {
  const missing = checkRedisBinaries();
  if (missing === null) return;
  process.stderr.write(`\n${missing}\n\n`);
  process.exit(1);
}
