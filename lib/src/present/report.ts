/**
 * Report: the pure parts of running notebooks headlessly and gathering what they saved.
 * `scripts/run-notebooks.ts` does the processes (nbconvert, Chromium) and
 * the files; this module reads executed notebooks for failures, writes the summary Markdown
 * from the artifact manifests, and joins executed notebooks into one for the HTML/PDF report.
 */
import type { ArtifactManifest } from './artifacts.js';
import { PROGRESS_LINE } from '../util/progress.js';
import { formatSeconds } from '../util/format.js';

/** The subset of nbformat 4 used here. */
export interface NotebookJson {
  cells: NotebookCell[];
  metadata: Record<string, unknown>;
  nbformat: number;
  nbformat_minor: number;
}

/** One cell of an nbformat 4 notebook (code, markdown or raw); only code cells carry `outputs`. */
export interface NotebookCell {
  cell_type: 'code' | 'markdown' | 'raw';
  source: string | string[];
  metadata: Record<string, unknown>;
  outputs?: NotebookOutput[];
  execution_count?: number | null;
  id?: string;
  attachments?: unknown;
}

/** One output of an executed code cell: a stream (stdout/stderr), display data, an execute result or an error. */
export interface NotebookOutput {
  output_type: 'stream' | 'display_data' | 'execute_result' | 'error';
  name?: string;
  text?: string | string[];
  ename?: string;
  evalue?: string;
  traceback?: string[];
  data?: Record<string, unknown>;
}

/** A cell that failed: an error output, or anything written to stderr. */
export interface CellFailure {
  /** 1-based index of the cell in the notebook (all cells, as Jupyter numbers them top to bottom). */
  cell: number;
  /** First non-empty line of the cell's source. */
  source: string;
  kind: 'error' | 'stderr';
  /** The error text (error name/value/traceback, or the stderr text), ANSI codes removed. */
  text: string;
}

const joinText = (t: string | string[] | undefined): string => (Array.isArray(t) ? t.join('') : (t ?? ''));
// eslint-disable-next-line no-control-regex
const stripAnsi = (s: string): string => s.replace(/\u001b\[[0-9;]*[A-Za-z]/g, '');

/** Source of a cell as one string. */
export function cellSource(cell: NotebookCell): string {
  return joinText(cell.source);
}

/**
 * Every failed cell of an executed notebook: outputs of type 'error' and stderr streams.
 * (tslab reports a thrown error as a stderr stream — the nbconvert CLI itself only shows
 * `<Error>:` — and an error in a timer after the cell as stderr of a later cell.)
 */
export function notebookFailures(nb: NotebookJson): CellFailure[] {
  const out: CellFailure[] = [];
  nb.cells.forEach((cell, i) => {
    if (cell.cell_type !== 'code') return;
    const source = cellSource(cell).split('\n').find((l) => l.trim() !== '')?.trim() ?? '';
    for (const o of cell.outputs ?? []) {
      if (o.output_type === 'error') {
        const tb = (o.traceback ?? []).map(stripAnsi).join('\n');
        out.push({ cell: i + 1, source, kind: 'error', text: [`${o.ename ?? 'Error'}: ${o.evalue ?? ''}`, tb].filter((s) => s.trim()).join('\n') });
      } else if (o.output_type === 'stream' && o.name === 'stderr') {
        out.push({ cell: i + 1, source, kind: 'stderr', text: stripAnsi(joinText(o.text)) });
      }
    }
  });
  return out;
}

/** Drops stack frames of the kernel's own machinery (tslab, node:vm) from an error text, keeps at most `maxLines`. */
export function cleanErrorText(text: string, maxLines = 30): string {
  const lines = text.replace(/\s+$/, '').split('\n').filter((l) => !/^\s+at .*(node_modules[\\/]tslab[\\/]|node:vm|sigintHandlersWrap|node:internal)/.test(l));
  return lines.length > maxLines ? [...lines.slice(0, maxLines), `  … (${lines.length - maxLines} more lines)`].join('\n') : lines.join('\n');
}

/** A readable multi-line message for the failures of one notebook. */
export function formatFailures(notebook: string, failures: readonly CellFailure[]): string {
  const parts = failures.map((f) => {
    const what = f.kind === 'error' ? 'raised an error' : 'wrote to stderr';
    const body = cleanErrorText(f.text).split('\n').map((l) => `    ${l}`).join('\n');
    return `  cell ${f.cell} (${f.source.slice(0, 80)}) ${what}:\n${body}`;
  });
  return `${notebook}: ${failures.length} failed cell output${failures.length === 1 ? '' : 's'}\n${parts.join('\n')}`;
}

/** One notebook of a run, as the runner timed it. */
export interface NotebookRun {
  /** File stem, e.g. '01-environment'. */
  name: string;
  /** Wall time in seconds. */
  seconds: number;
  status: 'ok' | 'failed';
}

/** Provenance of a run of the notebooks. */
export interface RunInfo {
  runId: string;
  profile: string;
  /** ISO dates. */
  startedAt: string;
  finishedAt?: string;
  /** Git commit (full hash) and whether the work tree had uncommitted changes; 'unknown' outside git. */
  commit: string;
  dirty: boolean;
  node: string;
  cpu: string;
  /** Bases imported from PyTorch for this run (`npm start -- --base`), per dataset; absent: the profiles' own bases. */
  bases?: Array<{ dataset: string; label: string; file: string; sha256: string; format: string; normalization: unknown; checkpoint: string }>;
  notebooks: NotebookRun[];
}


function backendLine(manifests: readonly ArtifactManifest[]): string {
  const seen = new Map<string, string[]>();
  for (const m of manifests) {
    if (!m.engine) continue;
    const k = `${m.engine.backend} (${m.engine.threads} thread${m.engine.threads === 1 ? '' : 's'})`;
    seen.set(k, [...(seen.get(k) ?? []), m.notebook]);
  }
  if (seen.size === 0) return 'not recorded';
  if (seen.size === 1) return [...seen.keys()][0];
  return [...seen].map(([k, nbs]) => `${k}: ${nbs.join(', ')}`).join('; ');
}

function mdEscape(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/**
 * `summary.md`: provenance (profile, backend, commit, date), the wall time of each notebook,
 * then per notebook every table (its Markdown, read through `readText(relativePath)`), every
 * figure (file links) and every fact. Manifests of another run id are listed as stale.
 */
export function summaryMarkdown(run: RunInfo, manifests: readonly ArtifactManifest[], readText: (rel: string) => string): string {
  const total = run.notebooks.reduce((a, n) => a + n.seconds, 0);
  const versions = manifests.find((m) => m.engine)?.engine?.versions ?? {};
  const L: string[] = [];
  L.push('# rift-bn report: summary', '');
  L.push('| provenance | |', '| --- | --- |');
  L.push(`| profile | ${run.profile} |`);
  L.push(`| backend | ${mdEscape(backendLine(manifests))} |`);
  L.push(`| commit | ${run.commit}${run.dirty ? ' (with uncommitted changes)' : ''} |`);
  L.push(`| date | ${run.startedAt}${run.finishedAt ? ` → ${run.finishedAt}` : ''} |`);
  L.push(`| run id | ${run.runId} |`);
  for (const b of run.bases ?? []) {
    L.push(`| ${b.dataset} base (imported) | ${mdEscape(`${b.label}; ${b.file} (sha256 ${b.sha256}, ${b.format}; normalization ${JSON.stringify(b.normalization)})`)} |`);
  }
  L.push(`| machine | ${mdEscape(run.cpu)}; Node ${run.node}${versions['tfjs-core'] ? `; tfjs-core ${versions['tfjs-core']}` : ''} |`);
  L.push(`| total notebook time | ${formatSeconds(total)} |`, '');
  L.push('## Notebooks', '', '| notebook | wall time | status | figures | tables |', '| --- | ---: | --- | ---: | ---: |');
  for (const n of run.notebooks) {
    const m = manifests.find((x) => x.notebook === n.name);
    L.push(`| ${n.name} | ${formatSeconds(n.seconds)} | ${n.status} | ${m?.figures.length ?? 0} | ${m?.tables.length ?? 0} |`);
  }
  L.push('');
  for (const m of manifests) {
    L.push(`## ${m.notebook}`, '');
    if (m.runId !== run.runId) L.push(`> **Stale:** these artifacts are from run ${m.runId ?? '(interactive)'}, not from this run (${run.runId}).`, '');
    if (m.profile && m.profile !== run.profile) L.push(`> **Note:** the notebook recorded profile \`${m.profile}\`; the run asked for \`${run.profile}\`.`, '');
    for (const t of m.tables) {
      L.push(`**${t.caption ?? t.name}** — [${t.csv}](${t.csv}), [${t.md}](${t.md})`, '');
      L.push(readText(t.md).trimEnd(), '');
    }
    if (m.figures.length) {
      L.push('Figures:', '');
      for (const f of m.figures) L.push(`- ${f.caption ?? f.title ?? f.name}: [${f.svg}](${f.svg}), [${f.png}](${f.png})`);
      L.push('');
    }
    const facts = Object.entries(m.facts);
    if (facts.length) {
      L.push('| fact | value |', '| --- | --- |');
      for (const [k, v] of facts) L.push(`| ${mdEscape(k)} | ${mdEscape(typeof v === 'string' ? v : JSON.stringify(v))} |`);
      L.push('');
    }
  }
  return L.join('\n').trimEnd() + '\n';
}

function markdownCell(source: string): NotebookCell {
  return { cell_type: 'markdown', metadata: {}, source };
}

/**
 * Text of a stdout stream without `Progress` lines (carriage-return updates included): they
 * help while a notebook runs and stay in the executed notebooks, but are noise in a report.
 */
export function withoutProgressLines(text: string): string {
  return text.split('\n').map((line) => line.split('\r').filter((seg) => seg.trim() !== '' && !PROGRESS_LINE.test(seg)).pop() ?? (line.trim() === '' ? line : null))
    .filter((l): l is string => l !== null).join('\n');
}

/**
 * One notebook made of several executed ones, in order, each starting on a new page in print,
 * after an optional title cell (Markdown). Cell ids are made unique; progress lines are left
 * out of stdout streams (withoutProgressLines). Used for the single HTML report (nbconvert)
 * and its PDF.
 */
export function combineNotebooks(parts: ReadonlyArray<{ name: string; nb: NotebookJson }>, title?: string): NotebookJson {
  if (parts.length === 0) throw new Error('combineNotebooks: no notebooks');
  const cells: NotebookCell[] = [];
  if (title) cells.push(markdownCell(title));
  parts.forEach(({ name, nb }, i) => {
    if (i > 0 || title) cells.push(markdownCell(`<div style="page-break-before: always; break-before: page"></div>\n\n<small>notebook <code>${name}.ipynb</code></small>`));
    for (const c of nb.cells) {
      const copy = structuredClone(c);
      if (copy.id !== undefined) copy.id = `${name.replace(/[^A-Za-z0-9-]/g, '-')}-${copy.id}`.slice(0, 64);
      if (copy.outputs) {
        copy.outputs = copy.outputs.flatMap((o) => {
          if (o.output_type !== 'stream' || o.name !== 'stdout') return [o];
          const text = withoutProgressLines(Array.isArray(o.text) ? o.text.join('') : o.text ?? '');
          return text.trim() === '' ? [] : [{ ...o, text }];
        });
      }
      cells.push(copy);
    }
  });
  return { ...structuredClone(parts[0].nb), cells };
}

/**
 * Removes `<script src=…>` tags that load files from elsewhere (nbconvert's template loads
 * require.js and MathJax from a CDN, or on Debian from file:///usr/share/javascript/): the report
 * must be self-contained and open anywhere, and the notebooks use no widgets or LaTeX. Inline
 * scripts, styles and data: URIs stay.
 */
export function stripExternalScripts(html: string): string {
  return html.replace(/<script\b[^>]*\ssrc=["'](?!data:)[^"']*["'][^>]*>\s*<\/script>/gi, '');
}
