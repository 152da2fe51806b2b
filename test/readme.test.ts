/** README.md stays navigable: its table of contents is current and every relative link resolves. */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { slug, withToc } from '../scripts/toc.mjs';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('README', () => {
  it('has a current table of contents (node scripts/toc.mjs regenerates it)', () => {
    expect(withToc(readme)).toBe(readme);
  });

  it('links only to files that exist and anchors that exist', () => {
    const anchors = new Set([...readme.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1]!)));
    const broken: string[] = [];
    for (const [, target] of readme.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue; // external
      const [path, anchor] = target!.split('#');
      if (path === '' || path === undefined) {
        if (!anchors.has(anchor!)) broken.push(target!);
      } else if (!existsSync(new URL(`../${path}`, import.meta.url))) {
        broken.push(target!);
      }
    }
    expect(broken).toEqual([]);
  });

  it('shows the install, the demo and the test commands', () => {
    expect(readme).toContain('npm install tollgate');
    expect(readme).toContain('npm run demo');
    expect(readme).toContain('npm test');
  });
});
