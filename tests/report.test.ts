/**
 * Artifacts sink (files + manifest) and the report helpers: failures of an executed notebook,
 * summary Markdown, combined notebook, self-contained HTML.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Artifacts, readManifest, readManifests } from '../lib/src/present/artifacts.js';
import { barChart } from '../lib/src/present/charts.js';
import {
  cleanErrorText, combineNotebooks, formatFailures, notebookFailures, stripExternalScripts, summaryMarkdown, withoutProgressLines,
  type NotebookJson, type RunInfo,
} from '../lib/src/present/report.js';
import { tempDir } from './helpers.js';
import { PassThrough } from 'node:stream';
import { Progress, PROGRESS_LINE } from '../lib/src/util/progress.js';
import { reportDir } from '../lib/src/util/paths.js';

function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const old = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(old)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }
}

describe('Artifacts', () => {
  test('saves figures (SVG, PNG, spec) and tables (CSV, MD) with a manifest, atomically', async () => {
    const root = tempDir();
    const art = withEnv({ RIFT_RUN_ID: 'run-1', RIFT_PROFILE: 'smoke' }, () => new Artifacts('03-mrc', { root, display: false }));
    assert.equal(art.dir, path.join(root, '03-mrc'));
    await art.figure('mrc', barChart([{ m: 'conv1', v: 1, kind: 'conv' }, { m: 'bn1', v: 2, kind: 'bn' }], { x: 'm', y: 'v', color: 'kind', title: 'MRC' }), { caption: 'MRC per module' });
    art.table('ranking', [{ module: 'conv1', mrc: 1.23456 }, { module: 'bn1', mrc: 2 }], { caption: 'Ranking', digits: 3 });
    art.table('ranking', [{ module: 'conv1', mrc: 1.5 }], { caption: 'Ranking v2' }); // same name: replaced
    art.fact('selected', ['bn1']);
    for (const f of ['mrc.svg', 'mrc.png', 'mrc.vl.json', 'ranking.csv', 'ranking.md', 'manifest.json']) {
      assert.ok(fs.existsSync(path.join(art.dir, f)), f);
    }
    assert.deepEqual(fs.readdirSync(art.dir).filter((f) => f.includes('.tmp-')), [], 'no temp files left');
    assert.equal(fs.readFileSync(path.join(art.dir, 'ranking.csv'), 'utf8'), 'module,mrc\nconv1,1.5\n');
    const m = readManifest(root, '03-mrc')!;
    assert.equal(m.runId, 'run-1');
    assert.equal(m.profile, 'smoke');
    assert.equal(m.figures.length, 1);
    assert.deepEqual({ ...m.figures[0], width: 0, height: 0 }, {
      name: 'mrc', title: 'MRC', caption: 'MRC per module', svg: '03-mrc/mrc.svg', png: '03-mrc/mrc.png', spec: '03-mrc/mrc.vl.json', width: 0, height: 0,
    });
    assert.ok(m.figures[0].width > 0);
    assert.deepEqual(m.tables, [{ name: 'ranking', caption: 'Ranking v2', csv: '03-mrc/ranking.csv', md: '03-mrc/ranking.md', rows: 1, columns: ['module', 'mrc'] }]);
    assert.deepEqual(m.facts, { selected: ['bn1'] });
    assert.deepEqual(readManifests(root, 'run-1').map((x) => x.notebook), ['03-mrc']);
    assert.deepEqual(readManifests(root, 'other-run'), []);
  });

  test('names must be file stems; the report folder comes from RIFT_REPORT_DIR', () => {
    const root = tempDir();
    assert.throws(() => new Artifacts('../escape', { root }), /file stem/);
    const art = new Artifacts('ok', { root, display: false });
    assert.throws(() => art.table('a/b', []), /file stem/);
    assert.equal(withEnv({ RIFT_REPORT_DIR: root }, () => reportDir()), path.resolve(root));
    assert.throws(() => withEnv({ RIFT_NOTEBOOK: undefined }, () => new Artifacts(undefined, { root })), /give the notebook name/);
  });
});

function notebook(cells: Array<{ source: string; outputs: NotebookJson['cells'][number]['outputs'] }>): NotebookJson {
  return {
    nbformat: 4, nbformat_minor: 5, metadata: { kernelspec: { name: 'tslab' } },
    cells: [{ cell_type: 'markdown', source: '# title', metadata: {} }, ...cells.map((c, i) => ({ cell_type: 'code' as const, id: `c${i}`, metadata: {}, execution_count: i + 1, ...c }))],
  };
}

describe('report helpers', () => {
  const failing = notebook([
    { source: 'console.log(1)', outputs: [{ output_type: 'stream', name: 'stdout', text: ['1\n'] }] },
    { source: '// comment\nthrow new Error("boom")', outputs: [{ output_type: 'stream', name: 'stderr', text: ['evalmachine.<anonymous>:2\n', 'Error: boom\n', '    at evalmachine.<anonymous>:2:7\n', '    at Script.runInThisContext (node:vm:135:14)\n', '    at Object.execute (/x/node_modules/tslab/dist/executor.js:160:38)\n'] }] },
    { source: 'x', outputs: [{ output_type: 'error', ename: 'TypeError', evalue: 'x is not a function', traceback: ['\u001b[31mTypeError\u001b[0m: x is not a function'] }] },
  ]);

  test('notebookFailures finds stderr streams and error outputs with the cell number and source', () => {
    const f = notebookFailures(failing);
    assert.deepEqual(f.map((x) => [x.cell, x.kind, x.source]), [[3, 'stderr', '// comment'], [4, 'error', 'x']]);
    assert.match(f[1].text, /^TypeError: x is not a function\nTypeError: x is not a function$/);
    const msg = formatFailures('02-base', f);
    assert.match(msg, /02-base: 2 failed cell outputs/);
    assert.match(msg, /cell 3 \(\/\/ comment\) wrote to stderr:\n {4}evalmachine/);
    assert.match(msg, /Error: boom/);
    assert.doesNotMatch(msg, /node:vm|tslab[\\/]dist/);
    assert.deepEqual(notebookFailures(notebook([{ source: 'ok', outputs: [] }])), []);
    assert.equal(cleanErrorText('a\nb\nc\nd', 2), 'a\nb\n  … (2 more lines)');
  });

  test('summaryMarkdown: provenance, wall times, every table, figures, facts; stale manifests flagged', () => {
    const run: RunInfo = {
      runId: 'r1', profile: 'smoke', startedAt: '2026-01-01T00:00:00.000Z', finishedAt: '2026-01-01T00:01:00.000Z', commit: 'abc123', dirty: false,
      node: '20.0.0', cpu: 'CPU, 2 cores', notebooks: [{ name: '01-environment', seconds: 12.3, status: 'ok' }, { name: '02-base', seconds: 75, status: 'ok' }],
    };
    const base = { format: 'rift-bn-artifacts' as const, version: 1, createdAt: '', updatedAt: '', facts: {} };
    const md = summaryMarkdown(run, [
      { ...base, notebook: '01-environment', runId: 'r1', profile: 'smoke', engine: { backend: 'onednn', threads: 2, versions: { 'tfjs-core': '4.22.0' } },
        figures: [{ name: 'f', caption: 'Fig', svg: '01-environment/f.svg', png: '01-environment/f.png', spec: '01-environment/f.vl.json', width: 1, height: 1 }],
        tables: [{ name: 't', caption: 'Tab', csv: '01-environment/t.csv', md: '01-environment/t.md', rows: 1, columns: ['a'] }], facts: { backend: 'onednn | x' } },
      { ...base, notebook: '02-base', runId: 'old', figures: [], tables: [] },
    ], (rel) => (rel === '01-environment/t.md' ? '| a |\n| ---: |\n| 1 |\n' : assert.fail(rel)));
    for (const want of ['| profile | smoke |', '| backend | onednn (2 threads) |', '| commit | abc123 |', '| date | 2026-01-01T00:00:00.000Z → 2026-01-01T00:01:00.000Z |',
      '| 01-environment | 12.3 s | ok | 1 | 1 |', '| 02-base | 1m 15s | ok | 0 | 0 |', '| total notebook time | 1m 27s |', '**Tab**', '| a |\n| ---: |\n| 1 |',
      '- Fig: [01-environment/f.svg]', '| backend | onednn \\| x |', '**Stale:**', 'tfjs-core 4.22.0']) {
      assert.ok(md.includes(want), `summary lacks ${JSON.stringify(want)}:\n${md}`);
    }
  });

  test('combineNotebooks keeps order, adds a title and page breaks, makes ids unique', () => {
    const a = notebook([{ source: 'a', outputs: [] }]);
    const b = notebook([{ source: 'b', outputs: [] }]);
    const c = combineNotebooks([{ name: '01-a', nb: a }, { name: '02-b', nb: b }], '# Report');
    assert.equal(c.cells.length, 1 + 1 + 2 + 1 + 2);
    assert.equal(c.cells[0].source, '# Report');
    assert.match(String(c.cells[1].source), /page-break-before/);
    const ids = c.cells.map((x) => x.id).filter(Boolean);
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual(c.metadata, a.metadata);
    assert.equal(a.cells[1].id, 'c0', 'inputs not mutated');
  });

  test('stripExternalScripts removes CDN and file:// scripts, keeps inline ones and data URIs', () => {
    const html = '<head><script src="https://cdn.x/require.js"></script><script src="file:///usr/share/javascript/mathjax/MathJax.js?config=x"></script>' +
      '<script>var a = 1;</script><script src="data:text/javascript,1"></script></head>';
    assert.equal(stripExternalScripts(html), '<head><script>var a = 1;</script><script src="data:text/javascript,1"></script></head>');
  });
});

test('withoutProgressLines drops Progress updates (\\r and \\n separated) and keeps everything else', () => {
  const p = (d: number) => `finetune epoch 1/4 ${d}/9984 (${((100 * d) / 9984).toFixed(1)}%) 934.4 img/s elapsed 00:11 ETA 00:0${d === 9984 ? 0 : 5} loss 1.0955`;
  const text = `k = 5; base 66.42% clean\n${p(128)}\r${p(9984)}\nrift-bn k=5 seed 0: clean 66.90%\n\ninterpolate α=0.25 256/1000 (25.6%) 94.8 img/s elapsed 00:03 ETA 00:08 clean 66.02%\n`;
  assert.equal(withoutProgressLines(text), 'k = 5; base 66.42% clean\nrift-bn k=5 seed 0: clean 66.90%\n\n');
  assert.equal(withoutProgressLines('ratio 1/2 (50%) of the way'), 'ratio 1/2 (50%) of the way');
  const nb = { cells: [{ cell_type: 'code', metadata: {}, source: 'x', outputs: [{ output_type: 'stream', name: 'stdout', text: [`${p(128)}\n`, `${p(9984)}\n`] }, { output_type: 'stream', name: 'stdout', text: 'kept\n' }] }], metadata: {}, nbformat: 4, nbformat_minor: 5 };
  const c = combineNotebooks([{ name: 'a', nb: nb as unknown as NotebookJson }]);
  assert.deepEqual(c.cells[0].outputs, [{ output_type: 'stream', name: 'stdout', text: 'kept\n' }]);
});

test('PROGRESS_LINE matches what Progress writes, on a terminal and off it', () => {
  for (const isTTY of [false, true]) {
    let text = '';
    const stream = Object.assign(new PassThrough(), { isTTY, write: (s: string) => { text += s; return true; } });
    const p = new Progress('finetune epoch 1/4', 300, { unit: 'img', stream, intervalMs: 0 });
    p.update(100, 'loss 1.2');
    p.update(300, 'loss 1.1');
    const segs = text.split(/[\r\n]/).filter((s) => s.trim() !== '');
    assert.ok(segs.length >= 2 && segs.every((s) => PROGRESS_LINE.test(s)), JSON.stringify(segs));
    assert.equal(withoutProgressLines(text).trim(), '');
  }
});
