/**
 * The notebook runner end to end (scripts/run-notebooks.ts): the environment notebook on the
 * smoke profile produces an executed notebook without errors and the report files; a notebook
 * whose cell throws (or writes to stderr) fails the run with the cell's own message.
 *
 * With RIFT_REQUIRE_JUPYTER=1 (set by .ci/run) or RIFT_ALL_NOTEBOOKS=1 it also runs EVERY
 * notebook on the smoke profile, so that none can rot.
 *
 * Needs Jupyter (Debian's jupyter-nbconvert, installed by scripts/setup.sh): skipped with a
 * reason when it is missing, unless RIFT_REQUIRE_JUPYTER=1, which makes a missing Jupyter —
 * or Chromium, for the PDF — a failure.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { readManifest } from '../lib/src/present/artifacts.js';
import { notebookFailures, type NotebookJson } from '../lib/src/present/report.js';
import { jupyterMissing } from '../scripts/jupyter.js';
import { tempDir } from './helpers.js';
import { repoRoot } from '../lib/src/util/paths.js';

const ROOT = repoRoot();
const REQUIRE = process.env.RIFT_REQUIRE_JUPYTER === '1';
const missing = jupyterMissing(ROOT);
const chromium = ['chromium', 'chromium-browser', 'google-chrome'].some((c) => spawnSync(c, ['--version']).status === 0);
const skip = missing && !REQUIRE ? `${missing} (set RIFT_REQUIRE_JUPYTER=1 to make this a failure)` : false;

const ALL = REQUIRE || process.env.RIFT_ALL_NOTEBOOKS === '1';
const PYTHON = '/usr/bin/python3';
const haveTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
const pdftoppm = spawnSync('pdftoppm', ['-v']).status === 0;

/**
 * Renders every page of a PDF to PPM with poppler's pdftoppm (as a reader's viewer would draw
 * it) and counts, per page, the strongly coloured pixels (max − min channel > 80): text is
 * black or grey, so coloured pixels on a page come from the charts.
 */
function colouredPixelsPerPage(pdf: string): number[] {
  const out = tempDir('rift-pdf-pages-');
  const r = spawnSync('pdftoppm', ['-r', '30', pdf, path.join(out, 'p')], { encoding: 'utf8' });
  assert.equal(r.status, 0, `pdftoppm failed on ${pdf}: ${r.stderr}`);
  return fs.readdirSync(out).filter((f) => f.endsWith('.ppm')).sort().map((f) => {
    const b = fs.readFileSync(path.join(out, f));
    // Binary PPM: "P6\n<w> <h>\n255\n" then RGB bytes.
    const header = b.subarray(0, 64).toString('latin1').match(/^P6\s+(\d+)\s+(\d+)\s+255\s/);
    assert.ok(header, `${f}: not a binary PPM`);
    let coloured = 0;
    for (let i = header[0].length; i + 2 < b.length; i += 3) {
      if (Math.max(b[i], b[i + 1], b[i + 2]) - Math.min(b[i], b[i + 1], b[i + 2]) > 80) coloured++;
    }
    return coloured;
  });
}

function runner(args: string[], timeoutMs = 240_000) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts', 'run-notebooks.ts'), ...args], {
    cwd: ROOT, encoding: 'utf8', timeout: timeoutMs,
  });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}`, stderr: r.stderr };
}

describe('notebook runner', { skip }, () => {
  test('Jupyter and Chromium are installed (RIFT_REQUIRE_JUPYTER=1)', { skip: !REQUIRE && 'only checked with RIFT_REQUIRE_JUPYTER=1' }, () => {
    assert.equal(missing, undefined, missing);
    assert.ok(chromium, 'chromium not found: scripts/setup.sh installs it');
  });

  test('01-environment on the smoke profile: executed notebook without errors, figures, tables, summary, HTML, PDF', () => {
    const report = tempDir('rift-report-');
    const r = runner(['--profile', 'smoke', '--only', '01', '--report', report, ...(chromium ? [] : ['--no-pdf'])]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /\[1\/1\] 01-environment: ok in/);
    const executed = JSON.parse(fs.readFileSync(path.join(report, 'notebooks', '01-environment.ipynb'), 'utf8')) as NotebookJson;
    assert.deepEqual(notebookFailures(executed), []);
    const code = executed.cells.filter((c) => c.cell_type === 'code');
    // tslab reports no execution counts; nbclient records when each cell went idle.
    assert.ok(code.length > 0 && code.every((c) => (c.metadata.execution as Record<string, string> | undefined)?.['iopub.status.idle']), 'every code cell ran');
    const m = readManifest(report, '01-environment')!;
    assert.equal(m.profile, 'smoke');
    assert.ok(m.engine?.backend, 'engine recorded');
    assert.ok(m.tables.some((t) => t.name === 'engine') && m.tables.some((t) => t.name === 'data'), JSON.stringify(m.tables));
    for (const t of m.tables) for (const f of [t.csv, t.md]) assert.ok(fs.statSync(path.join(report, f)).size > 0, f);
    for (const f of m.figures) {
      assert.match(fs.readFileSync(path.join(report, f.svg), 'utf8'), /^<svg/);
      assert.equal(fs.readFileSync(path.join(report, f.png)).subarray(1, 4).toString('latin1'), 'PNG');
    }
    const summary = fs.readFileSync(path.join(report, 'summary.md'), 'utf8');
    const run = JSON.parse(fs.readFileSync(path.join(report, 'run.json'), 'utf8')) as { runId: string; commit: string };
    assert.equal(m.runId, run.runId, 'the tables come from this run');
    for (const want of ['| profile | smoke |', `| backend | ${m.engine!.backend}`, `| commit | ${run.commit}`, '| 01-environment |', '**Engine, threads and versions**']) {
      assert.ok(summary.includes(want), `summary.md lacks ${want}`);
    }
    const html = fs.readFileSync(path.join(report, 'report.html'), 'utf8');
    assert.match(html, /data:image\/png;base64,/);
    assert.doesNotMatch(html, /<script[^>]*src=/, 'self-contained');
    assert.doesNotMatch(html, /import \* as rb/, 'inputs hidden');
    if (chromium) assert.equal(fs.readFileSync(path.join(report, 'report.pdf')).subarray(0, 5).toString('latin1'), '%PDF-');
  });

  test('a cell that throws or writes to stderr fails the run with its own message', () => {
    const dir = tempDir('rift-nb-bad-');
    const cells = [
      'console.log("fine");',
      'process.stderr.write("written to stderr 777\\n");',
      'const n: number = 1;\nthrow new Error(`deliberate failure ${n + 12344}`);',
    ];
    const nb = {
      nbformat: 4, nbformat_minor: 5,
      metadata: { kernelspec: { name: 'tslab', display_name: 'TypeScript', language: 'typescript' } },
      cells: cells.map((source, i) => ({ cell_type: 'code', id: `c${i}`, metadata: {}, execution_count: null, outputs: [], source })),
    };
    fs.writeFileSync(path.join(dir, '01-bad.ipynb'), JSON.stringify(nb));
    const report = tempDir('rift-report-bad-');
    const r = runner(['--profile', 'smoke', '--notebooks', dir, '--report', report, '--no-pdf']);
    assert.equal(r.code, 1, r.out);
    assert.match(r.stderr, /notebook 01-bad failed/);
    assert.match(r.stderr, /cell 2 \(process\.stderr\.write[^\n]*\) wrote to stderr:\n\s+written to stderr 777/);
    assert.match(r.stderr, /cell 3 \(const n: number = 1;\)[^\n]*:[\s\S]*Error: deliberate failure 12345/);
    assert.ok(fs.existsSync(path.join(report, 'notebooks', '01-bad.ipynb')), 'the executed notebook is kept for inspection');
    assert.ok(!fs.existsSync(path.join(report, 'report.html')), 'no report from a failed run');
  });

  test('every notebook on the smoke profile (CI)', { skip: !ALL && 'runs with RIFT_REQUIRE_JUPYTER=1 (CI) or RIFT_ALL_NOTEBOOKS=1', timeout: 50 * 60_000 }, () => {
    const report = tempDir('rift-report-all-');
    const r = runner(['--profile', 'smoke', '--report', report, ...(chromium ? [] : ['--no-pdf'])], 45 * 60_000);
    process.stdout.write(r.out.split('\n').filter((l) => /^\[\d+\/\d+\] \S+: ok in|^done in/.test(l)).map((l) => `# ${l}\n`).join(''));
    assert.equal(r.code, 0, r.out);
    const names = fs.readdirSync(path.join(ROOT, 'notebooks')).filter((f) => f.endsWith('.ipynb'));
    for (const f of names) {
      const nb = JSON.parse(fs.readFileSync(path.join(report, 'notebooks', f), 'utf8')) as NotebookJson;
      assert.deepEqual(notebookFailures(nb), [], f);
    }
    assert.ok(fs.existsSync(path.join(report, 'report.html')));
    if (chromium && (pdftoppm || REQUIRE)) {
      assert.ok(pdftoppm, 'pdftoppm not found: scripts/setup.sh installs poppler-utils');
      const pages = colouredPixelsPerPage(path.join(report, 'report.pdf'));
      const withCharts = pages.filter((c) => c > 200).length;
      const figures = names.reduce((a, f) => a + (readManifest(report, f.replace(/\.ipynb$/, ''))?.figures.length ?? 0), 0);
      process.stdout.write(`# report.pdf: ${pages.length} pages, ${withCharts} with charts (${figures} figures)\n`);
      assert.ok(pages.length >= names.length, `report.pdf has ${pages.length} pages for ${names.length} notebooks`);
      assert.ok(withCharts >= Math.min(figures, 3), `only ${withCharts} PDF pages show coloured chart pixels (${figures} figures in the run)`);
    }
  });

  test('every notebook on the smoke profile with a base imported from PyTorch (npm start -- --base model.pt, CI)', {
    skip: (!ALL && 'runs with RIFT_REQUIRE_JUPYTER=1 (CI) or RIFT_ALL_NOTEBOOKS=1') || (!haveTorch && process.env.RIFT_REQUIRE_TORCH !== '1' && `PyTorch not importable by ${PYTHON}`),
    timeout: 50 * 60_000,
  }, () => {
    // A Kuang Liu ResNet-18 with random weights, saved by PyTorch itself as a DataParallel checkpoint under 'net'.
    const dir = tempDir('rift-imported-');
    const spec = { arch: 'resnet18', width: 0.125, numClasses: 10, wrapper: 'module', key: 'net', extras: true, normalization: 'cifar10', seed: 9, batch: 1 };
    const made = spawnSync(PYTHON, [path.join(ROOT, 'tests', 'reference', 'torch_checkpoints.py'), 'make', dir, JSON.stringify(spec)], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const file = path.join(dir, 'rift-smoke-model.pt');
    fs.renameSync(path.join(dir, 'ckpt'), file);
    const sha = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
    const report = tempDir('rift-report-imported-');
    const r = runner(['--profile', 'smoke', '--base', file, '--normalization', 'cifar10', '--report', report, '--no-pdf'], 45 * 60_000);
    process.stdout.write(r.out.split('\n').filter((l) => /^\[\d+\/\d+\] \S+: ok in|^base for/.test(l)).map((l) => `# ${l}\n`).join(''));
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /base for cifar10: resnet18 width 0\.125, .*rift-smoke-model\.pt \(sha256 [0-9a-f]{12}, torch-zip\).*state_dict taken from key 'net'; left out: epoch, acc, optimizer.*prefix 'module\.' removed/);
    const summary = fs.readFileSync(path.join(report, 'summary.md'), 'utf8');
    assert.ok(summary.includes(`| cifar10 base (imported) | resnet18 width 0.125;`) && summary.includes(sha), 'summary.md names the imported base and its SHA-256');
    const setup = fs.readFileSync(path.join(report, '02-base-model', 'base-setup.md'), 'utf8');
    assert.match(setup, new RegExp(`imported from rift-smoke-model\\.pt \\(sha256 ${sha.slice(0, 12)}\\)`));
    assert.match(setup, /imported: trained outside this project/);
    for (const f of fs.readdirSync(path.join(ROOT, 'notebooks')).filter((x) => x.endsWith('.ipynb'))) {
      const nb = JSON.parse(fs.readFileSync(path.join(report, 'notebooks', f), 'utf8')) as NotebookJson;
      assert.deepEqual(notebookFailures(nb), [], f);
    }
  });
});
