/**
 * Before any test file:
 * - the Redis tests start redis-server processes of their own, so without the binary `npm test`
 *   stops here with one line that says how to install it, instead of a stack per Redis test file;
 * - dist/ is built once, for the tests that use the package as its users do (the package's
 *   contents, CommonJS `require`, a child node importing the build, the footprint bench). Built
 *   here and nowhere else during a run, so that no test reads dist/ while another rewrites it.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { checkRedisBinaries } from './redis/harness.js';

export default function setup(): void {
  const missing = checkRedisBinaries();
  if (missing !== null) {
    process.stderr.write(`\n${missing}\n\n`);
    process.exit(1);
  }
  const root = fileURLToPath(new URL('..', import.meta.url));
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
}
