/**
 * Artifacts: where a notebook saves each figure and table for the report.
 *
 *   const art = new rb.Artifacts('03-mrc', { profile });
 *   await art.figure('mrc-by-module', rb.barChart(rows, {...}), { caption: 'MRC per module' });
 *   art.table('selection', rows, { caption: 'modules selected for k = 1..5', digits: 3 });
 *   art.fact('base clean accuracy', 80.1);
 *
 * Each figure is written as `<name>.svg`, `<name>.png` (2×) and `<name>.vl.json` (the spec),
 * each table as `<name>.csv` (full precision) and `<name>.md`, into `<report>/<notebook>/`,
 * and shown in the notebook (PNG / HTML, display.ts). `<report>/<notebook>/manifest.json`
 * lists them with captions, the profile, the engine and the run id, and is rewritten after
 * every save; the report step (report.ts, scripts/run-notebooks.ts) gathers the manifests.
 * Every file is written atomically (temp file + rename).
 *
 * The report folder: option `root`, else env RIFT_REPORT_DIR (set by the runner), else
 * `<repo>/report`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { VegaLiteSpec } from './charts.js';
import { showMarkdown, showPng, showTable } from './display.js';
import { engineInfo } from '../engine/engine.js';
import { renderSvg, svgSize, svgToPng } from './render.js';
import { tableColumns, tableRows, toCsv, toMarkdown, type TableLike, type TableOptions } from './table-format.js';
import { writeFileAtomic } from '../util/fs.js';
import { reportDir } from '../util/paths.js';

/** Format tag and version of manifest.json. */
export const MANIFEST_FORMAT = 'rift-bn-artifacts';
/** Version written into every manifest.json (`ArtifactManifest.version`). */
export const MANIFEST_VERSION = 1;

/** A saved figure; paths are relative to the report folder. */
export interface FigureArtifact {
  name: string;
  title?: string;
  caption?: string;
  svg: string;
  png: string;
  spec: string;
  /** Size at scale 1, px. */
  width: number;
  height: number;
}

/** A saved table; paths are relative to the report folder. */
export interface TableArtifact {
  name: string;
  caption?: string;
  csv: string;
  md: string;
  rows: number;
  columns: string[];
}

/** `<report>/<notebook>/manifest.json`. */
export interface ArtifactManifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  notebook: string;
  /** Id of the runner's run (env RIFT_RUN_ID); absent when the notebook ran interactively. */
  runId?: string;
  /** Profile the notebook says it ran with. */
  profile?: string;
  createdAt: string;
  updatedAt: string;
  /** Backend, threads and versions at the last save (absent if the engine was never started). */
  engine?: { backend: string; threads: number; versions: Record<string, string> };
  figures: FigureArtifact[];
  tables: TableArtifact[];
  /** Named values worth a line in the summary (e.g. the base accuracies). */
  facts: Record<string, unknown>;
}

/** Options of the Artifacts constructor. */
export interface ArtifactsOptions {
  /** Report folder. Default: env RIFT_REPORT_DIR, else `<repo>/report`. */
  root?: string;
  /** Profile recorded in the manifest. Default: env RIFT_PROFILE (none when unset). */
  profile?: string;
  /** Show each figure and table in the notebook as it is saved. Default true. */
  display?: boolean;
}

/** Options of Artifacts.figure. */
export interface FigureOptions {
  /** Caption (report, summary, alt text). Default none. */
  caption?: string;
  /** PNG pixel density. Default 2. */
  scale?: number;
}

/** Options of Artifacts.table. */
export interface TableSaveOptions extends TableOptions {
  /** Caption (report and summary). Default none. */
  caption?: string;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function checkName(what: string, name: string): void {
  if (!NAME_RE.test(name) || name.includes('..')) {
    throw new Error(`${what} name '${name}' must be a file stem: letters, digits, '.', '_', '-' (no '/' or '..')`);
  }
}


/** Reads `<report>/<notebook>/manifest.json` (undefined if missing); throws on a malformed one. */
export function readManifest(root: string, notebook: string): ArtifactManifest | undefined {
  const file = path.join(root, notebook, 'manifest.json');
  if (!fs.existsSync(file)) return undefined;
  const m = JSON.parse(fs.readFileSync(file, 'utf8')) as ArtifactManifest;
  if (m.format !== MANIFEST_FORMAT) throw new Error(`${file}: not an artifacts manifest (format '${String(m.format)}')`);
  return m;
}

/** Saves the figures and tables of one notebook; see the module comment. */
export class Artifacts {
  /** Folder of this notebook's files: `<report>/<notebook>`. */
  readonly dir: string;
  /** The report folder. */
  readonly root: string;
  private readonly m: ArtifactManifest;
  private readonly show: boolean;

  /**
   * @param notebook name of the folder in the report, normally the notebook's file stem
   *   (e.g. '01-environment'); default env RIFT_NOTEBOOK (set by the runner).
   */
  constructor(notebook: string | undefined = process.env.RIFT_NOTEBOOK, options: ArtifactsOptions = {}) {
    if (!notebook) throw new Error('Artifacts: give the notebook name, e.g. new Artifacts("01-environment")');
    checkName('notebook', notebook);
    this.root = reportDir(options.root);
    this.dir = path.join(this.root, notebook);
    this.show = options.display ?? true;
    fs.mkdirSync(this.dir, { recursive: true });
    const now = new Date().toISOString();
    const profile = options.profile ?? process.env.RIFT_PROFILE;
    this.m = {
      format: MANIFEST_FORMAT, version: MANIFEST_VERSION, notebook,
      ...(process.env.RIFT_RUN_ID ? { runId: process.env.RIFT_RUN_ID } : {}),
      ...(profile ? { profile } : {}),
      createdAt: now, updatedAt: now, figures: [], tables: [], facts: {},
    };
    this.save();
  }

  /** A copy of the manifest as saved. */
  get manifest(): ArtifactManifest {
    return structuredClone(this.m);
  }

  private rel(file: string): string {
    return path.relative(this.root, path.join(this.dir, file)).split(path.sep).join('/');
  }

  private save(): void {
    this.m.updatedAt = new Date().toISOString();
    try {
      const e = engineInfo();
      this.m.engine = { backend: e.backend, threads: e.threads, versions: e.versions };
    } catch {
      // engine not started: nothing to record
    }
    writeFileAtomic(path.join(this.dir, 'manifest.json'), JSON.stringify(this.m, null, 2) + '\n');
  }

  private upsert<T extends { name: string }>(list: T[], entry: T): void {
    const i = list.findIndex((e) => e.name === entry.name);
    if (i >= 0) list[i] = entry;
    else list.push(entry);
  }

  /**
   * Renders a vega-lite spec, saves SVG + PNG + spec, shows the PNG. Returns nothing, so that a
   * cell ending with it shows no echo (the entry is in `manifest.figures`).
   */
  async figure(name: string, spec: VegaLiteSpec, options: FigureOptions = {}): Promise<void> {
    checkName('figure', name);
    const scale = options.scale ?? 2;
    const svg = await renderSvg(spec);
    const png = svgToPng(svg, { scale });
    const size = svgSize(svg) ?? { width: 0, height: 0 };
    writeFileAtomic(path.join(this.dir, `${name}.svg`), svg);
    writeFileAtomic(path.join(this.dir, `${name}.png`), png);
    writeFileAtomic(path.join(this.dir, `${name}.vl.json`), JSON.stringify(spec) + '\n');
    const title = typeof spec.title === 'string' ? spec.title : (spec.title as { text?: string } | undefined)?.text;
    const entry: FigureArtifact = {
      name, ...(title ? { title } : {}), ...(options.caption ? { caption: options.caption } : {}),
      svg: this.rel(`${name}.svg`), png: this.rel(`${name}.png`), spec: this.rel(`${name}.vl.json`), ...size,
    };
    this.upsert(this.m.figures, entry);
    this.save();
    if (this.show) showPng(png, { width: size.width || undefined, scale, alt: options.caption ?? title ?? name });
  }

  /** Saves a table (records or a DataFrame) as CSV + Markdown, shows it as HTML (entry in `manifest.tables`). */
  table(name: string, table: TableLike, options: TableSaveOptions = {}): void {
    checkName('table', name);
    const rows = tableRows(table);
    const cols = tableColumns(rows, options.columns);
    writeFileAtomic(path.join(this.dir, `${name}.csv`), toCsv(rows, options));
    writeFileAtomic(path.join(this.dir, `${name}.md`), toMarkdown(rows, options));
    const entry: TableArtifact = {
      name, ...(options.caption ? { caption: options.caption } : {}),
      csv: this.rel(`${name}.csv`), md: this.rel(`${name}.md`), rows: rows.length, columns: cols.map((c) => c.title ?? c.key),
    };
    this.upsert(this.m.tables, entry);
    this.save();
    if (this.show) showTable(rows, options);
  }

  /** Records a named value for the summary (JSON-serialisable). */
  fact(key: string, value: unknown): void {
    this.m.facts[key] = value;
    this.save();
  }
}

/**
 * Every manifest in the report folder (one per notebook folder holding manifest.json), in
 * folder-name order; with `runId`, only those written by that run.
 */
export function readManifests(root: string = reportDir(), runId?: string): ArtifactManifest[] {
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && NAME_RE.test(d.name))
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((d) => readManifest(root, d.name))
    .filter((m): m is ArtifactManifest => !!m && (runId === undefined || m.runId === runId));
}

/**
 * Shows the report's summary.md (written by the runner before each notebook) and then every
 * figure of this run's manifests at `figureWidth` px — the body of the last, report notebook.
 * Returns the manifests shown. Outside a run (no RIFT_RUN_ID) every manifest in the folder counts.
 */
export function showReport(options: { root?: string; figureWidth?: number } = {}): ArtifactManifest[] {
  const root = reportDir(options.root);
  const summary = path.join(root, 'summary.md');
  const text = fs.existsSync(summary) ? fs.readFileSync(summary, 'utf8') : `_No summary.md in ${root}: run the notebooks with \`npm start\`._`;
  // One output per section: a printed page cannot break inside one output, so this paginates better.
  for (const part of text.split(/\n(?=## )/)) showMarkdown(part);
  const manifests = readManifests(root, process.env.RIFT_RUN_ID);
  for (const m of manifests) {
    for (const f of m.figures) {
      showMarkdown(`**${m.notebook} / ${f.caption ?? f.title ?? f.name}**`);
      showPng(fs.readFileSync(path.join(root, f.png)), { width: Math.min(options.figureWidth ?? 480, f.width || Infinity), alt: f.caption ?? f.title ?? f.name });
    }
  }
  return manifests;
}
