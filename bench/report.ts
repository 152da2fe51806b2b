/**
 * Shared pieces of the benchmark report: statistics, number formats, markdown tables and the
 * section shape every suite (memory, Redis, …) returns. Suites build sections; `run.ts` prints
 * them and writes BENCHMARKS.md, so the stdout and the file are the same text.
 */
import os from 'node:os';

/** A markdown table. `align` is per column: 'l' (default for the first) or 'r'. */
export interface Table {
  readonly title?: string;
  readonly headers: readonly string[];
  readonly rows: readonly (readonly string[])[];
  readonly align?: readonly ('l' | 'r')[];
}

/** A block of a section: a table or a paragraph of markdown. */
export type Block = { readonly table: Table } | { readonly text: string };

/** One target of the issue and whether this run met it. */
export interface Target {
  readonly name: string;
  readonly measured: string;
  readonly goal: string;
  /** `null`: reported for reference, no goal to meet. */
  readonly met: boolean | null;
}

/** What a suite returns: one `## title` section of BENCHMARKS.md, and the targets it checked. */
export interface Section {
  readonly title: string;
  readonly blocks: readonly Block[];
  readonly targets?: readonly Target[];
}

/** Options every suite receives. */
export interface SuiteOptions {
  /** A short smoke run: small counts, one run; the numbers mean nothing. */
  readonly quick: boolean;
  /** Progress lines (stderr), so stdout carries only the report. */
  readonly log: (line: string) => void;
}

/** A suite measures one family of peers and returns its section. */
export interface Suite {
  readonly name: string;
  run(options: SuiteOptions): Promise<Section>;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The `q` quantile (0..1) of sorted values, nearest rank. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

/** 1234567 → "1.23M", 45678 → "45.7k". */
export function fmtRate(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(0);
}

/** Nanoseconds as "850 ns", "12.3 µs", "4.56 ms". */
export function fmtNs(ns: number): string {
  if (!Number.isFinite(ns)) return 'n/a';
  if (ns < 1e3) return `${ns.toFixed(0)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(1)} µs`;
  return `${(ns / 1e6).toFixed(2)} ms`;
}

export function fmtBytes(b: number): string {
  if (!Number.isFinite(b)) return 'n/a';
  if (Math.abs(b) >= 10_000) return `${(b / 1024).toFixed(1)} KiB`;
  return `${b.toFixed(0)} B`;
}

/** Bytes as KiB with one decimal, whatever the size: "48.3 KiB", "0.1 KiB". */
export function fmtKiB(b: number): string {
  return Number.isFinite(b) ? `${(b / 1024).toFixed(1)} KiB` : 'n/a';
}

/** Milliseconds with one decimal: "252.7 ms". */
export function fmtMs(ms: number): string {
  return Number.isFinite(ms) ? `${ms.toFixed(1)} ms` : 'n/a';
}

export function fmtRatio(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}×` : 'n/a';
}

export function fmtInt(n: number): string {
  return n.toLocaleString('en-US');
}

export function renderTable(t: Table): string {
  const align = t.headers.map((_, i) => t.align?.[i] ?? (i === 0 ? 'l' : 'r'));
  const cells = [t.headers, ...t.rows].map((r) => r.map((c) => c.replace(/\|/g, '\\|')));
  const widths = t.headers.map((_, i) =>
    Math.max(3, ...cells.map((r) => [...(r[i] ?? '')].length)),
  );
  const pad = (s: string, i: number): string => {
    const fill = ' '.repeat(Math.max(0, widths[i]! - [...s].length));
    return align[i] === 'r' ? fill + s : s + fill;
  };
  const line = (r: readonly string[]): string =>
    `| ${r.map((c, i) => pad(c ?? '', i)).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (align[i] === 'r' ? `${'-'.repeat(w + 1)}:` : `:${'-'.repeat(w + 1)}`)).join('|')}|`;
  const out = [line(cells[0]!), rule, ...cells.slice(1).map(line)];
  return (t.title !== undefined ? `### ${t.title}\n\n` : '') + out.join('\n');
}

export function renderSection(s: Section): string {
  const parts = [`## ${s.title}`];
  for (const b of s.blocks) parts.push('table' in b ? renderTable(b.table) : b.text);
  return parts.join('\n\n');
}

export function renderTargets(targets: readonly Target[]): string {
  return renderTable({
    headers: ['target', 'measured', 'goal', 'met'],
    rows: targets.map((t) => [
      t.name,
      t.measured,
      t.goal,
      t.met === null ? '–' : t.met ? 'yes' : '**no**',
    ]),
    align: ['l', 'r', 'l', 'l'],
  });
}

/** The machine, as the report's header states it. */
export function machine(): {
  cpu: string;
  cores: number;
  memGiB: number;
  node: string;
  platform: string;
} {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memGiB: os.totalmem() / 2 ** 30,
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
  };
}

/** Runs every queued callback and timer due now, so one measurement does not leak into the next. */
export function settleLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A full collection (the bench runs with --expose-gc), then a turn of the loop, twice. */
export async function fullGc(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('bench: run node with --expose-gc (npm run bench does)');
  for (let i = 0; i < 2; i++) {
    gc();
    await settleLoop();
  }
  gc();
}
