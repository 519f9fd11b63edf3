/**
 * Table formats: plain records → CSV, Markdown and HTML strings, and → danfojs-node DataFrames.
 *
 * The string formats are pure functions (no dependency, fast, testable). The DataFrame side
 * loads `danfojs-node` lazily on first use: it takes 2–3 s and ~340 MB, so nothing else in the
 * library pays for it. (danfojs-node installs only with the root package.json `overrides` that
 * map its `@tensorflow/tfjs-node` to plain `@tensorflow/tfjs` — see environment.md.)
 *
 * A table is an array of records (one object per row). Columns default to the keys in order
 * of first appearance; `columns` picks, orders, renames and formats them. CSV keeps full
 * precision; Markdown and HTML round numbers (`digits`, default 2; integers stay integers).
 */
import type { DataFrame } from 'danfojs-node';

/** One row: column key → value. */
export type TableRow = Record<string, unknown>;

/** A column of a formatted table. */
export interface TableColumn {
  /** Key in the records. */
  key: string;
  /** Header text. Default: the key. */
  title?: string;
  /** Decimal places of numbers in Markdown / HTML. Default: the table's `digits`. */
  digits?: number;
}

/** Options shared by toCsv / toMarkdown / toHtml. */
export interface TableOptions {
  /** Columns to show, in order: keys or TableColumn objects. Default: every key, in order of first appearance. */
  columns?: ReadonlyArray<string | TableColumn>;
  /** Decimal places of non-integer numbers in Markdown / HTML (not CSV). Default 2. */
  digits?: number;
}

/** What the table helpers accept: records, or a danfojs-node DataFrame (anything with `columns` and `values`). */
export type TableLike = readonly TableRow[] | DataFrameLike;

/** The part of a danfojs DataFrame the helpers read. */
export interface DataFrameLike {
  columns: string[];
  values: unknown[] | unknown[][];
}

function isDataFrameLike(t: unknown): t is DataFrameLike {
  return typeof t === 'object' && t !== null && !Array.isArray(t) && Array.isArray((t as DataFrameLike).columns) && Array.isArray((t as DataFrameLike).values);
}

/** Records of a table-like value (a DataFrame becomes one record per row). */
export function tableRows(t: TableLike): TableRow[] {
  if (Array.isArray(t)) return t as TableRow[];
  if (!isDataFrameLike(t)) throw new Error('tableRows: expected an array of records or a DataFrame');
  const cols = t.columns;
  return (t.values as unknown[]).map((row) => {
    const cells = Array.isArray(row) ? row : [row];
    return Object.fromEntries(cols.map((c, i) => [c, cells[i]]));
  });
}

/** The resolved columns of a table. */
export function tableColumns(rows: readonly TableRow[], columns?: ReadonlyArray<string | TableColumn>): TableColumn[] {
  if (columns) return columns.map((c) => (typeof c === 'string' ? { key: c } : c));
  const keys = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) keys.add(k);
  return [...keys].map((key) => ({ key }));
}

/** A value as display text: numbers rounded to `digits` (integers kept), NaN/null/undefined as ''. */
export function formatCell(v: unknown, digits = 2): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return '';
    return Number.isInteger(v) ? String(v) : v.toFixed(digits);
  }
  if (typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function rawCell(v: unknown): string {
  if (v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v))) return '';
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function csvField(s: string): string {
  return /[",\n\r]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;
}

/** RFC 4180 CSV (header row, `\n` line ends, full-precision numbers). */
export function toCsv(table: TableLike, options: TableOptions = {}): string {
  const rows = tableRows(table);
  const cols = tableColumns(rows, options.columns);
  const lines = [cols.map((c) => csvField(c.title ?? c.key)).join(',')];
  for (const r of rows) lines.push(cols.map((c) => csvField(rawCell(r[c.key]))).join(','));
  return lines.join('\n') + '\n';
}

function mdCell(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, '<br>');
}

/** A GitHub-flavoured Markdown table; numeric columns right-aligned. */
export function toMarkdown(table: TableLike, options: TableOptions = {}): string {
  const rows = tableRows(table);
  const cols = tableColumns(rows, options.columns);
  if (cols.length === 0) return '_(empty table)_\n';
  const digits = options.digits ?? 2;
  const numeric = cols.map((c) => rows.length > 0 && rows.every((r) => r[c.key] === undefined || r[c.key] === null || typeof r[c.key] === 'number'));
  const head = `| ${cols.map((c) => mdCell(c.title ?? c.key)).join(' | ')} |`;
  const rule = `|${numeric.map((n) => (n ? ' ---: ' : ' --- ')).join('|')}|`;
  const body = rows.map((r) => `| ${cols.map((c) => mdCell(formatCell(r[c.key], c.digits ?? digits))).join(' | ')} |`);
  return [head, rule, ...body].join('\n') + '\n';
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** An HTML `<table>` (numeric columns right-aligned, text left-aligned), with an optional caption. */
export function toHtml(table: TableLike, options: TableOptions & { caption?: string } = {}): string {
  const rows = tableRows(table);
  const cols = tableColumns(rows, options.columns);
  const digits = options.digits ?? 2;
  const align = cols.map((c) => (rows.length > 0 && rows.every((r) => r[c.key] === undefined || r[c.key] === null || typeof r[c.key] === 'number') ? 'right' : 'left'));
  const caption = options.caption ? `<caption style="caption-side:top;text-align:left;font-weight:bold">${escapeHtml(options.caption)}</caption>` : '';
  const head = `<thead><tr>${cols.map((c, j) => `<th style="text-align:${align[j]}">${escapeHtml(c.title ?? c.key)}</th>`).join('')}</tr></thead>`;
  const body = rows.map((r) => `<tr>${cols.map((c, j) => `<td style="text-align:${align[j]}">${escapeHtml(formatCell(r[c.key], c.digits ?? digits))}</td>`).join('')}</tr>`).join('\n');
  return `<table class="rift-table">${caption}${head}<tbody>\n${body}\n</tbody></table>`;
}

type Danfo = typeof import('danfojs-node');
let danfo: Danfo | undefined;

/** The danfojs-node module, loaded on first call (2–3 s, ~340 MB). */
export function loadDanfo(): Danfo {
  // A plain require on purpose: loading danfojs-node is expensive and only tables need it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  danfo ??= require('danfojs-node') as Danfo;
  return danfo;
}

/** A danfojs-node DataFrame of the records (columns as in `columns`, default every key). */
export function toDataFrame(rows: readonly TableRow[], options: Pick<TableOptions, 'columns'> = {}): DataFrame {
  const dfd = loadDanfo();
  const cols = tableColumns(rows, options.columns);
  const data = rows.map((r) => Object.fromEntries(cols.map((c) => [c.title ?? c.key, r[c.key] ?? null])));
  return new dfd.DataFrame(data, { columns: cols.map((c) => c.title ?? c.key) });
}
