// Regenerates README.md's table of contents between <!-- toc --> and <!-- tocstop -->.
// `node scripts/toc.mjs` rewrites it; `node scripts/toc.mjs --check` exits 1 if it is stale.
import { readFileSync, writeFileSync } from 'node:fs';

export function slug(heading) {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s-]/gu, '')
    .replace(/\s/g, '-');
}

export function buildToc(markdown) {
  const lines = [];
  let fence = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fence = !fence;
    const m = !fence && /^(##|###) (.+)$/.exec(line);
    if (!m) continue;
    const indent = m[1] === '###' ? '  ' : '';
    lines.push(`${indent}- [${m[2].replace(/`/g, '')}](#${slug(m[2])})`);
  }
  return lines.join('\n');
}

export function withToc(markdown) {
  return markdown.replace(
    /<!-- toc -->[\s\S]*<!-- tocstop -->/,
    `<!-- toc -->\n\n${buildToc(markdown)}\n\n<!-- tocstop -->`,
  );
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop())) {
  const file = new URL('../README.md', import.meta.url);
  const text = readFileSync(file, 'utf8');
  const next = withToc(text);
  if (process.argv.includes('--check')) {
    if (next !== text) {
      console.error('README.md table of contents is stale: run node scripts/toc.mjs');
      process.exit(1);
    }
  } else {
    writeFileSync(file, next);
  }
}
