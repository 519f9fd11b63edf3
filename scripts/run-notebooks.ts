/**
 * `npm start -- [options]` / `npm run notebooks -- [options]` — the main job: executes
 * notebooks/*.ipynb in name order headlessly and exports the report (`--help` lists the options).
 *
 * Each notebook runs with `jupyter nbconvert --to notebook --execute --allow-errors` in its own
 * kernel (cwd = its folder; env RIFT_PROFILE, RIFT_REPORT_DIR, RIFT_RUN_ID, RIFT_NOTEBOOK). The
 * run FAILS (exit 1, after saving the executed notebook) when any cell has an error output or
 * wrote to stderr, and prints that cell's own error text — nbconvert alone shows only `<Error>:`.
 *
 * report/ then holds: notebooks/<name>.ipynb (executed), <name>/ (figures .svg/.png/.vl.json,
 * tables .csv/.md, manifest.json — written by rb.Artifacts), summary.md (every table and the
 * provenance: profile, backend, commit, date, wall time per notebook), run.json, report.html
 * (all notebooks, inputs hidden, self-contained) and report.pdf (headless Chromium). Files are
 * written atomically; summary.md is also refreshed before each notebook, so a last
 * notebook (99-report) can show it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readManifest, type ArtifactManifest } from '../lib/src/present/artifacts.js';
import { PROFILE_NAMES, profileFromEnv } from '../lib/src/experiments/config.js';
import { combineNotebooks, formatFailures, notebookFailures, stripExternalScripts, summaryMarkdown, type NotebookJson, type NotebookRun, type RunInfo } from '../lib/src/present/report.js';
import { runMain, parseCli, choiceArg, numberArg, IMPORT_OPTIONS, importBasesFromArgs, type CliSpec, type CliOption } from './cli.js';
import { ensureKernel, jupyterEnv, jupyterMissing } from './jupyter.js';
import { writeFileAtomic } from '../lib/src/util/fs.js';
import { repoRoot, defaultCacheDir } from '../lib/src/util/paths.js';
import { formatSeconds } from '../lib/src/util/format.js';

const ROOT = repoRoot();

function git(args: string[]): string | undefined {
  const r = spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Runs one nbconvert execution; resolves with its exit code and the last lines of its log. */
function execute(nbFile: string, outDir: string, env: NodeJS.ProcessEnv, cellTimeout: number | undefined, onCell: (k: number, src: string) => void): Promise<{ code: number; log: string[] }> {
  const name = path.basename(nbFile, '.ipynb');
  const args = [
    'nbconvert', '--to', 'notebook', '--execute', '--allow-errors',
    ...(cellTimeout ? [`--ExecutePreprocessor.timeout=${cellTimeout}`] : []),
    '--output-dir', outDir, '--output', name,
    // DEBUG logs "Executing cell:" before each cell: the progress shown below comes from it.
    '--log-level=DEBUG', nbFile,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('jupyter', args, { cwd: path.dirname(nbFile), env, stdio: ['ignore', 'ignore', 'pipe'] });
    const tail: string[] = [];
    let buf = '';
    let k = 0;
    let expectSource = false;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        // The cell's source follows "Executing cell:"; show its first line that is not a comment.
        if (expectSource) {
          const t = line.trim();
          if (line.startsWith('[NbConvertApp]') || (t !== '' && !t.startsWith('//'))) {
            expectSource = false;
            onCell(k, line.startsWith('[NbConvertApp]') ? '' : t);
          }
        }
        if (line.startsWith('[NbConvertApp] Executing cell:')) {
          k += 1;
          expectSource = true;
        }
        // Keep a tail of the log without the per-message debug noise (content may hold whole images).
        if (!/^\[NbConvertApp\] (msg_type|content|Looking for|Searching|connecting|Connecting)/.test(line)) {
          tail.push(line.length > 500 ? `${line.slice(0, 500)} …` : line);
          if (tail.length > 40) tail.shift();
        }
      }
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, log: tail }));
  });
}

function findChromium(): string | undefined {
  const candidates = [process.env.CHROME_PATH, 'chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'].filter((c): c is string => !!c);
  return candidates.find((c) => spawnSync(c, ['--version'], { encoding: 'utf8' }).status === 0);
}

/** Prints report.html to PDF with headless Chromium (fresh profile, no network chatter). */
function printPdf(chromium: string, html: string, pdf: string): void {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rift-chromium-'));
  const tmp = `${pdf}.tmp-${process.pid}`;
  try {
    const args = [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic', `--user-data-dir=${profile}`, '--virtual-time-budget=10000',
      '--no-pdf-header-footer', '--print-to-pdf-no-header', `--print-to-pdf=${tmp}`, `file://${html}`,
    ];
    const r = spawnSync(chromium, args, { encoding: 'utf8', timeout: 180_000 });
    if (r.error || !fs.existsSync(tmp) || fs.statSync(tmp).size === 0) {
      throw new Error(`Chromium could not print ${html} to PDF (${r.error?.message ?? `exit ${r.status}`}): ${(r.stderr ?? '').trim().split('\n').slice(-5).join('\n')}`);
    }
    fs.renameSync(tmp, pdf);
  } finally {
    fs.rmSync(profile, { recursive: true, force: true });
    fs.rmSync(tmp, { force: true });
  }
}

function readNotebook(file: string): NotebookJson {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as NotebookJson;
}

function codeCells(nb: NotebookJson): number {
  return nb.cells.filter((c) => c.cell_type === 'code').length;
}

const CLI = {
  command: 'npm start --',
  summary: 'The main job: executes notebooks/*.ipynb in name order headlessly (jupyter nbconvert, one tslab\n' +
    'kernel each) and exports report/: the executed notebooks, report.html, report.pdf, each figure as\n' +
    'SVG/PNG and each table as CSV/Markdown, summary.md with provenance. Fails with the cell\'s own error\n' +
    'text when a cell errors or writes to stderr. Same as `npm run notebooks --`.',
  options: {
    profile: { type: 'string', default: profileFromEnv(), arg: '<smoke|quick|imported|paper>', help: 'passed to the notebooks as RIFT_PROFILE (default: env RIFT_PROFILE, else quick)' },
    only: { type: 'string', arg: '<a,b>', help: 'only notebooks whose name starts with one of these (e.g. 01,03-mrc)' },
    notebooks: { type: 'string', default: path.join(ROOT, 'notebooks'), arg: '<dir>', help: 'folder of notebooks' },
    report: { type: 'string', default: path.join(ROOT, 'report'), arg: '<dir>', help: 'output folder' },
    'no-pdf': { type: 'boolean', default: false, help: 'skip the PDF (Chromium)' },
    'cell-timeout': { type: 'string', arg: '<s>', help: 'fail a cell that runs longer than this many seconds (default: no limit)' },
    cache: { type: 'string', arg: '<dir>', help: 'experiment cache the notebooks read and fill (env RIFT_CACHE_DIR; default data/cache/experiments)' },
    'render-only': { type: 'boolean', default: false, help: 'compute nothing: a record missing from the cache fails its cell (after npm run sweep)' },
    ...IMPORT_OPTIONS,
  },
} as const satisfies CliSpec<Record<string, CliOption>>;

runMain(async () => {
  const { values } = parseCli(CLI);
  const profile = choiceArg('profile', values.profile, PROFILE_NAMES);
  const nbDir = path.resolve(values.notebooks);
  if (!fs.statSync(nbDir, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`--notebooks ${nbDir}: no such folder`);
  const reportDir = path.resolve(values.report);
  const cellTimeout = values['cell-timeout'] === undefined ? undefined : numberArg('cell-timeout', values['cell-timeout'], 1);
  // The notebooks' kernels inherit both from this process's environment.
  if (values.cache) process.env.RIFT_CACHE_DIR = path.resolve(values.cache);
  if (values['render-only']) process.env.RIFT_CACHE_READONLY = '1';

  const all = fs.readdirSync(nbDir).filter((f) => f.endsWith('.ipynb')).sort();
  const only = values.only?.split(',').map((s) => s.trim()).filter(Boolean);
  const selected = only ? all.filter((f) => only.some((p) => f.startsWith(p))) : all;
  if (selected.length === 0) throw new Error(`no notebooks to run in ${nbDir}${only ? ` matching --only ${values.only}` : ''}`);

  // Imported bases are checked (and converted once) before any notebook runs; the notebooks
  // inherit RIFT_BASE_<DATASET> from this process's environment.
  const bases = importBasesFromArgs(values, say);

  const missing = jupyterMissing(ROOT);
  if (missing) throw new Error(missing);
  ensureKernel(ROOT, say);
  // Notebooks import the compiled library (lib/dist): rebuild first so that an edit to lib/src
  // is what runs (incremental: about a second when nothing changed).
  const build = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-b', path.join(ROOT, 'lib')], { cwd: ROOT, encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`building lib/ (tsc -b lib) failed before running the notebooks:\n${build.stdout}${build.stderr}`);
  const chromium = values['no-pdf'] ? undefined : findChromium();
  if (!values['no-pdf'] && !chromium) {
    throw new Error('Chromium not found for the PDF (install Debian\'s chromium: bash scripts/setup.sh, set CHROME_PATH, or pass --no-pdf)');
  }

  // Fresh outputs: a full run replaces the whole report; --only replaces those notebooks' parts.
  fs.mkdirSync(reportDir, { recursive: true });
  const stems = selected.map((f) => path.basename(f, '.ipynb'));
  const toClear = only ? stems.flatMap((s) => [s, path.join('notebooks', `${s}.ipynb`)]) : [...all.map((f) => path.basename(f, '.ipynb')), 'notebooks', 'summary.md', 'run.json', 'report.html', 'report.pdf', 'report.ipynb'];
  for (const p of toClear) fs.rmSync(path.join(reportDir, p), { recursive: true, force: true });
  fs.mkdirSync(path.join(reportDir, 'notebooks'), { recursive: true });

  const commit = git(['rev-parse', 'HEAD']) ?? 'unknown';
  const dirty = (git(['status', '--porcelain', '--untracked-files=no']) ?? '') !== '';
  const run: RunInfo = {
    runId: `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${randomBytes(3).toString('hex')}`,
    profile, startedAt: new Date().toISOString(), commit, dirty,
    node: process.versions.node, cpu: `${os.cpus()[0]?.model ?? 'unknown'}, ${os.availableParallelism()} cores`,
    ...(bases.length ? {
      bases: bases.map((b) => ({ dataset: b.dataset, label: b.label, file: b.source.file, sha256: b.source.sha256, format: b.source.format, normalization: b.source.normalization, checkpoint: b.checkpoint })),
    } : {}),
    notebooks: [],
  };
  const manifests = (): ArtifactManifest[] => run.notebooks.map((n) => readManifest(reportDir, n.name)).filter((m): m is ArtifactManifest => !!m);
  const writeSummary = () => {
    writeFileAtomic(path.join(reportDir, 'summary.md'), summaryMarkdown(run, manifests(), (rel) => fs.readFileSync(path.join(reportDir, rel), 'utf8')));
    writeFileAtomic(path.join(reportDir, 'run.json'), JSON.stringify(run, null, 2) + '\n');
  };

  say(`notebooks: ${selected.length} to run with profile '${profile}' → ${path.relative(process.cwd(), reportDir) || '.'}/ (run ${run.runId}, commit ${commit.slice(0, 10)}${dirty ? '+changes' : ''})` +
    `${values['render-only'] ? `; render only: records from ${defaultCacheDir()}, nothing computed` : ''}`);
  const t0 = Date.now();
  const tty = process.stdout.isTTY === true;
  const tmpOut = fs.mkdtempSync(path.join(os.tmpdir(), 'rift-nb-'));
  try {
    for (const [i, file] of selected.entries()) {
      const name = path.basename(file, '.ipynb');
      const src = path.join(nbDir, file);
      const n = codeCells(readNotebook(src));
      const tag = `[${i + 1}/${selected.length}] ${name}`;
      writeSummary();
      say(`${tag}: running (${n} code cells)`);
      const start = Date.now();
      let cell = 0;
      let cellLine = '';
      const status = () => `${tag}: cell ${cell}/${n} ${cellLine.slice(0, 60)} — ${formatSeconds((Date.now() - start) / 1000)} (total ${formatSeconds((Date.now() - t0) / 1000)})`;
      // Progress: one line per cell, plus a heartbeat every minute for long cells (rewritten in place on a TTY).
      const beat = setInterval(() => (tty ? process.stdout.write(`\r${status()}\u001b[K`) : say(`${status()} …`)), tty ? 1000 : 60_000);
      const env = jupyterEnv(ROOT, { RIFT_PROFILE: profile, RIFT_REPORT_DIR: reportDir, RIFT_RUN_ID: run.runId, RIFT_NOTEBOOK: name });
      let res: { code: number; log: string[] };
      try {
        res = await execute(src, tmpOut, env, cellTimeout, (k, line) => {
          cell = k;
          cellLine = line;
          if (tty) process.stdout.write(`\r${status()}\u001b[K`);
          else say(`${tag}: cell ${k}/${n} ${line.slice(0, 80)}`);
        });
      } finally {
        clearInterval(beat);
        if (tty) process.stdout.write('\r\u001b[K');
      }
      const seconds = (Date.now() - start) / 1000;
      const executed = path.join(tmpOut, `${name}.ipynb`);
      if (res.code !== 0 || !fs.existsSync(executed)) {
        run.notebooks.push({ name, seconds, status: 'failed' });
        writeSummary();
        throw new Error(`${name}: jupyter nbconvert failed (exit ${res.code}) after ${formatSeconds(seconds)}; last log lines:\n${res.log.join('\n')}`);
      }
      const dest = path.join(reportDir, 'notebooks', `${name}.ipynb`);
      fs.copyFileSync(executed, `${dest}.tmp-${process.pid}`);
      fs.renameSync(`${dest}.tmp-${process.pid}`, dest);
      const failures = notebookFailures(readNotebook(dest));
      const entry: NotebookRun = { name, seconds, status: failures.length ? 'failed' : 'ok' };
      run.notebooks.push(entry);
      if (failures.length) {
        run.finishedAt = new Date().toISOString();
        writeSummary();
        throw new Error(`notebook ${name} failed (executed notebook: ${path.relative(process.cwd(), dest)})\n${formatFailures(name, failures)}`);
      }
      say(`${tag}: ok in ${formatSeconds(seconds)} (total ${formatSeconds((Date.now() - t0) / 1000)})`);
    }
    run.finishedAt = new Date().toISOString();
    writeSummary();

    // One HTML report of every executed notebook (inputs hidden), then its PDF.
    say('report: HTML …');
    const title = [
      '# rift-bn report', '',
      `Profile \`${profile}\` · commit \`${commit.slice(0, 10)}\`${dirty ? ' (with uncommitted changes)' : ''} · run ${run.runId} · ${run.startedAt}`, '',
      '| notebook | wall time |', '| --- | ---: |',
      ...run.notebooks.map((x) => `| ${x.name} | ${formatSeconds(x.seconds)} |`), '',
      'Figures (SVG, PNG), tables (CSV, Markdown) and summary.md are beside this file in report/.',
    ].join('\n');
    const combined = combineNotebooks(run.notebooks.map((x) => ({ name: x.name, nb: readNotebook(path.join(reportDir, 'notebooks', `${x.name}.ipynb`)) })), title);
    const combinedFile = path.join(tmpOut, 'report.ipynb');
    fs.writeFileSync(combinedFile, JSON.stringify(combined));
    const h = spawnSync('jupyter', ['nbconvert', '--to', 'html', '--no-input', '--no-prompt', '--output-dir', tmpOut, '--output', 'report', combinedFile], { env: jupyterEnv(ROOT), encoding: 'utf8' });
    const htmlTmp = path.join(tmpOut, 'report.html');
    if (h.status !== 0 || !fs.existsSync(htmlTmp)) throw new Error(`jupyter nbconvert --to html failed: ${(h.stderr ?? '').trim().split('\n').slice(-10).join('\n')}`);
    const html = path.join(reportDir, 'report.html');
    writeFileAtomic(html, stripExternalScripts(fs.readFileSync(htmlTmp, 'utf8')));
    if (chromium) {
      say('report: PDF …');
      printPdf(chromium, html, path.join(reportDir, 'report.pdf'));
    }
    const total = (Date.now() - t0) / 1000;
    say(`done in ${formatSeconds(total)}: ${path.relative(process.cwd(), reportDir) || '.'}/ — summary.md, report.html${chromium ? ', report.pdf' : ''}, notebooks/, per-notebook figures and tables`);
    for (const x of run.notebooks) say(`  ${x.name.padEnd(28)} ${formatSeconds(x.seconds).padStart(10)}`);
  } finally {
    fs.rmSync(tmpOut, { recursive: true, force: true });
  }
});
