/**
 * Chart specs (pure JSON), rendering to SVG / PNG, table formats and DataFrames.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import { lineChart, barChart, kdeChart, METHOD_COLORS, MODULE_KIND_COLORS, VEGA_LITE_SCHEMA, CHART_FONT, type VegaLiteSpec } from '../lib/src/present/charts.js';
import { renderSvg, renderPng, svgToPng, svgSize, compileSpec, chartVersions, readFontWidths, textWidth } from '../lib/src/present/render.js';
import * as fs from 'node:fs';
import { toCsv, toMarkdown, toHtml, tableRows, formatCell, toDataFrame } from '../lib/src/present/table-format.js';
import { densityCurves } from '../lib/src/util/kde.js';

type Layer = { mark: { type: string } | string; transform?: Array<{ filter: string }>; encoding: Record<string, { field?: string; scale?: { domain?: unknown[]; range?: unknown[] } }> };
const values = (s: VegaLiteSpec) => (s.data as { values: Record<string, unknown>[] }).values;

/** Asserts a column facet on `field` in `order` with independent y scales; returns the panel's layers. */
function panelLayers(spec: VegaLiteSpec, field: string, order: string[]): Layer[] {
  const facet = spec.facet as { column: { field: string; sort: string[] } };
  assert.equal(facet.column.field, field);
  assert.deepEqual(facet.column.sort, order);
  assert.deepEqual(spec.resolve, { scale: { y: 'independent' } });
  return (spec.spec as { layer: Layer[] }).layer;
}

function history() {
  const rows: Array<{ epoch: number; method: string; metric: string; accuracy: number; lo: number; hi: number }> = [];
  for (const method of ['BN-only', 'Conv/Linear-only', 'Full']) {
    for (const metric of ['clean', 'PGD-10']) {
      for (let epoch = 0; epoch <= 3; epoch++) {
        const accuracy = (metric === 'clean' ? 80 : 50) + epoch * 0.5;
        rows.push({ epoch, method, metric, accuracy, lo: accuracy - 1, hi: accuracy + 1 });
      }
    }
  }
  return rows;
}

function modules() {
  return ['conv1', 'bn1', 'layer1.0.conv1', 'layer1.0.bn1', 'linear'].map((module, i) => ({
    module, mrc: [0.5, 2, 1, 0.1, 3][i], kind: module === 'linear' ? 'linear' : module.includes('bn') ? 'bn' : 'conv', selected: i === 3,
  }));
}

describe('lineChart', () => {
  test('two panels (clean / robust), one line per method, method colours, reference lines per panel', () => {
    const rows = history();
    const before = JSON.stringify(rows);
    const spec = lineChart(rows, {
      x: 'epoch', y: 'accuracy', series: 'method', panel: 'metric', yLow: 'lo', yHigh: 'hi', title: 'Figure 1',
      rules: [{ y: 81.45, label: 'paper base', panel: 'clean' }, { y: 50 }],
    });
    assert.equal(JSON.stringify(rows), before, 'records are not mutated');
    assert.equal(spec.$schema, VEGA_LITE_SCHEMA);
    assert.equal(spec.title, 'Figure 1');
    assert.equal((spec.config as { font: string }).font, CHART_FONT);
    const layers = panelLayers(spec, 'metric', ['clean', 'PGD-10']);
    assert.deepEqual(layers.map((l) => (typeof l.mark === 'string' ? l.mark : l.mark.type)), ['line', 'rule', 'rule', 'text']);
    const line = layers[0];
    assert.equal(line.encoding.x.field, 'epoch');
    assert.equal(line.encoding.y.field, 'accuracy');
    assert.equal(line.encoding.color.field, 'method');
    assert.deepEqual(line.encoding.color.scale?.domain, ['BN-only', 'Conv/Linear-only', 'Full']);
    assert.deepEqual(line.encoding.color.scale?.range, ['BN-only', 'Conv/Linear-only', 'Full'].map((m) => METHOD_COLORS[m]));
    assert.equal(layers[1].encoding.y.field, 'lo');
    assert.equal(layers[1].encoding.y2.field, 'hi');
    // Data rows + rules: 81.45 in 'clean' only, 50 in both panels.
    const rules = values(spec).filter((r) => r.__kind === 'rule');
    assert.deepEqual(rules.map((r) => [r.metric, r.accuracy]), [['clean', 81.45], ['clean', 50], ['PGD-10', 50]]);
    assert.equal(values(spec).filter((r) => r.__kind === 'data').length, rows.length);
  });

  test('one panel without panel field; colours unknown series with vega defaults; null hides a title', () => {
    const spec = lineChart([{ e: 1, a: 2, s: 'x' }, { e: 2, a: 3, s: 'y' }], { x: 'e', y: 'a', series: 's', xTitle: null });
    assert.equal(spec.facet, undefined);
    const layer = (spec.layer as Layer[])[0];
    assert.equal(layer.encoding.color.scale, undefined);
    assert.equal((layer.encoding.x as { title?: unknown }).title, null);
  });

  test('a missing field, half an interval or a colour map without a series throws a clear error', () => {
    assert.throws(() => lineChart([{ epoch: 1, acc: 2 }], { x: 'epoch', y: 'accuracy' }), /no record has the field 'accuracy'/);
    assert.throws(() => lineChart([{ epoch: 1, acc: 2 }], { x: 'epoch', y: 'acc', yLow: 'acc' }), /both yLow and yHigh/);
    assert.throws(() => lineChart([{ e: 1, a: 2, s: 'x' }], { x: 'e', y: 'a', series: 's', colors: { y: 'red' } }), /no colour for 'x'/);
  });
});

describe('barChart', () => {
  test('modules in network order, BN coloured apart, selected ones outlined', () => {
    const spec = barChart(modules(), { x: 'module', y: 'mrc', color: 'kind', highlight: 'selected' });
    const layer = (spec.layer as Layer[])[0];
    assert.deepEqual((layer.encoding.x as unknown as { sort: string[] }).sort, ['conv1', 'bn1', 'layer1.0.conv1', 'layer1.0.bn1', 'linear']);
    assert.deepEqual(layer.encoding.color.scale?.domain, ['conv', 'bn', 'linear']);
    assert.deepEqual(layer.encoding.color.scale?.range, [MODULE_KIND_COLORS.conv, MODULE_KIND_COLORS.bn, MODULE_KIND_COLORS.linear]);
    assert.equal(layer.encoding.stroke.field, 'selected');
    assert.deepEqual((spec.width as { step: number }).step, 14);
  });

  test('grouped bars with error bars and a zero line; sorting by value; horizontal', () => {
    const rows = [1, 2].flatMap((k) => ['RiFT', 'RiFT with BN'].map((method) => ({ k: `k=${k}`, method, delta: k, lo: k - 1, hi: k + 1 })));
    const spec = barChart(rows, { x: 'k', y: 'delta', group: 'method', yLow: 'lo', yHigh: 'hi', rules: [{ y: 0 }] });
    const layers = spec.layer as Layer[];
    assert.equal(layers[0].encoding.xOffset.field, 'method');
    assert.equal(layers[0].encoding.color.field, 'method');
    assert.equal(layers[1].encoding.xOffset.field, 'method');
    assert.equal(layers[2].transform?.[0].filter, "datum.__kind === 'rule'");
    const sorted = barChart(modules(), { x: 'module', y: 'mrc', order: 'descending' });
    assert.deepEqual(((sorted.layer as Layer[])[0].encoding.x as unknown as { sort: unknown }).sort, { field: 'mrc', op: 'sum', order: 'descending' });
    const h = barChart(modules(), { x: 'module', y: 'mrc', horizontal: true });
    assert.equal((h.layer as Layer[])[0].encoding.y.field, 'module');
    assert.equal((h.layer as Layer[])[0].encoding.x.field, 'mrc');
  });
});

describe('barChart panels, markers and scales', () => {
  const bars = () => ['k = 1', 'k = 2'].flatMap((k, i) => ['RiFT', 'RiFT with BN'].flatMap((method) => ['Δ robust', 'Δ clean'].map((metric) => ({
    k, method, metric, delta: i + (method === 'RiFT' ? 0.1 : 0.2), lo: -1, hi: 2, paper: metric === 'Δ clean' && k === 'k = 2' ? null : 0.15,
  }))));

  test('panel facets by a field (independent value scales), rules in every panel, marker ticks skip null', () => {
    const spec = barChart(bars(), { x: 'k', y: 'delta', group: 'method', panel: 'metric', yLow: 'lo', yHigh: 'hi', marker: 'paper', rules: [{ y: 0 }] });
    const layers = panelLayers(spec, 'metric', ['Δ robust', 'Δ clean']);
    assert.deepEqual(layers.map((l) => (typeof l.mark === 'string' ? l.mark : l.mark.type)), ['bar', 'rule', 'tick', 'rule']);
    assert.equal(layers[2].encoding.y.field, 'paper');
    assert.ok(layers[2].encoding.xOffset, 'ticks sit on their own bar of the group');
    assert.match(layers[2].transform![1].filter, /isValid\(datum\["paper"\]\)/);
    const ruleRows = values(spec).filter((r) => r.__kind === 'rule');
    assert.deepEqual(ruleRows.map((r) => r.metric), ['Δ robust', 'Δ clean'], 'a rule without panel goes into every panel');
    assert.throws(() => barChart(bars(), { x: 'k', y: 'delta', panel: 'nope' }), /no record has the field 'nope'/);
  });

  test('faceted bars, ticks and √ scale render; a flat value range gets a visible domain', async () => {
    const svg = await renderSvg(barChart(bars(), { x: 'k', y: 'delta', group: 'method', panel: 'metric', yLow: 'lo', yHigh: 'hi', marker: 'paper', rules: [{ y: 0 }] }));
    assert.match(svg, /Δ robust/);
    const sq = barChart(modules(), { x: 'module', y: 'mrc', scaleType: 'sqrt' });
    assert.deepEqual((sq.layer as Layer[])[0].encoding.y.scale, { type: 'sqrt' });
    await renderSvg(sq);
    const flat = barChart([{ m: 'a', g: 0 }, { m: 'b', g: 0 }], { x: 'm', y: 'g', rules: [{ y: 0 }] });
    assert.deepEqual((flat.layer as Layer[])[0].encoding.y.scale?.domain, [-1, 1]);
    assert.equal((barChart(modules(), { x: 'module', y: 'mrc' }).layer as Layer[])[0].encoding.y.scale, undefined);
  });
});

describe('kdeChart / densityCurves', () => {
  test('areas are not stacked, legend symbols are opaque strokes, trimTails drops the flat tails of a common grid', () => {
    const grid = [0, 1, 2, 3, 4, 5];
    const spec = kdeChart([{ series: 'init', x: grid, density: [0, 0.001, 0.5, 0.4, 0.002, 0] }, { series: 'RiFT', x: grid, density: [0, 0.002, 0.3, 0.6, 0.001, 0] }], { area: true, trimTails: 0.01 });
    const layers = spec.layer as Layer[];
    assert.equal((layers[0].encoding.y as { stack?: unknown }).stack, null);
    assert.equal((layers[1].encoding.color as { legend?: { symbolOpacity?: number } }).legend?.symbolOpacity, 1);
    assert.deepEqual([...new Set(values(spec).map((r) => r.value))], [2, 3], 'both curves keep the same x range');
    assert.equal(values(kdeChart([{ series: 'a', x: grid, density: [0, 0, 1, 1, 0, 0] }])).length, 6, 'no trimming by default');
  });

  test('one line per model from densities on a grid; mismatched lengths throw', () => {
    const grid = [0, 1, 2];
    const spec = kdeChart([{ series: 'init', x: grid, density: [0.1, 0.5, 0.1] }, { series: 'RiFT', x: grid, density: [0.2, 0.4, 0.2] }], { area: true });
    assert.equal(values(spec).length, 6);
    const layers = spec.layer as Layer[];
    assert.deepEqual(layers.map((l) => (l.mark as { type: string }).type), ['area', 'line']);
    assert.deepEqual(layers[1].encoding.color.scale?.range, [METHOD_COLORS.init, METHOD_COLORS.RiFT]);
    assert.throws(() => kdeChart([{ series: 'a', x: [0, 1], density: [1] }]), /2 grid points but 1 densities/);
    assert.throws(() => kdeChart([]), /no curves/);
  });

  test('densityCurves: Gaussian KDE on a common grid that integrates to about 1', () => {
    let s = 1;
    const rnd = () => ((s = (s * 16807) % 2147483647) / 2147483647);
    const a = Array.from({ length: 4000 }, () => rnd() + rnd() + rnd());
    const b = Array.from({ length: 4000 }, () => 2 * rnd());
    const curves = densityCurves({ a, b }, { gridSize: 200, extent: [-1, 4] });
    assert.equal(curves.length, 2);
    assert.equal(curves[0].x, curves[1].x);
    for (const c of curves) {
      let integral = 0;
      for (let i = 1; i < c.x.length; i++) integral += ((c.density[i] + c.density[i - 1]) / 2) * (c.x[i] - c.x[i - 1]);
      assert.ok(Math.abs(integral - 1) < 0.02, `${c.series}: ∫ = ${integral}`);
    }
  });
});

describe('rendering', () => {
  test('text is measured with DejaVu Sans widths: a long subtitle does not widen the chart', async (t) => {
    const font = '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf';
    if (!fs.existsSync(font)) return t.skip('DejaVu Sans is not installed (fonts-dejavu-core)');
    const w = readFontWidths(font);
    assert.ok(Math.abs(w.advance(0x57)! - 0.989) < 0.01, 'W is about 1 em');
    assert.ok(Math.abs(w.advance(0x69)! - 0.278) < 0.01, 'i is about 0.28 em');
    assert.ok(w.advance(0x394)! > 0.5, 'Greek Δ is in the font');
    assert.equal(w.advance(0x1f600), undefined);
    assert.ok(Math.abs(textWidth(w, 'Hello', 10) - 25.3) < 0.5);
    const rows = [{ epoch: 1, acc: 10 }, { epoch: 2, acc: 12 }];
    const plain = svgSize(await renderSvg(lineChart(rows, { x: 'epoch', y: 'acc' })))!;
    const sub = svgSize(await renderSvg(lineChart(rows, { x: 'epoch', y: 'acc', title: 'T', subtitle: 'profile smoke · per-epoch evaluation on 128 images · epoch 2' })))!;
    assert.equal(sub.width, plain.width, 'a subtitle narrower than the plot leaves the width alone');
  });

  test('renderSvg gives an SVG with the title and axis text; renderPng a PNG of 2x the SVG size', async () => {
    const spec = lineChart(history(), { x: 'epoch', y: 'accuracy', series: 'method', panel: 'metric', title: 'Figure 1 test' });
    const svg = await renderSvg(spec);
    assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /Figure 1 test/);
    assert.match(svg, /Conv\/Linear-only/);
    const size = svgSize(svg)!;
    assert.ok(size.width > 500 && size.height > 200, JSON.stringify(size));
    const png = svgToPng(svg);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal(png.readUInt32BE(16), Math.round(size.width * 2));
    const png1 = await renderPng(barChart(modules(), { x: 'module', y: 'mrc', color: 'kind' }), { scale: 1 });
    assert.equal(png1.subarray(1, 4).toString('latin1'), 'PNG');
    assert.ok(png1.length < 200_000);
  });

  test('a bad spec fails with vega-lite\'s message; warnings are not printed', async () => {
    await assert.rejects(compileSpec({ mark: 'bar', encoding: { x: { field: 'a', type: 'nonsense' } } }), /nonsense|type/i);
    const v = await chartVersions();
    assert.match(v['vega-lite'], /^6\.4\./);
    assert.match(v.vega, /^6\.4\./);
  });
});

describe('table formats', () => {
  const rows = [
    { k: 1, method: 'RiFT', clean: 81.234, note: 'a, "quoted" | piped' },
    { k: 2, method: 'RiFT with BN', clean: 82, note: null },
  ];

  test('CSV: header, full precision, RFC 4180 quoting', () => {
    assert.equal(toCsv(rows), 'k,method,clean,note\n1,RiFT,81.234,"a, ""quoted"" | piped"\n2,RiFT with BN,82,\n');
    assert.equal(toCsv(rows, { columns: [{ key: 'method', title: 'Method' }, 'k'] }), 'Method,k\nRiFT,1\nRiFT with BN,2\n');
  });

  test('Markdown: rounded numbers right-aligned, pipes escaped', () => {
    const md = toMarkdown(rows, { digits: 1 });
    assert.equal(md.split('\n')[1], '| ---: | --- | ---: | --- |');
    assert.match(md, /\| 1 \| RiFT \| 81\.2 \| a, "quoted" \\\| piped \|/);
    assert.match(md, /\| 2 \| RiFT with BN \| 82 \| {2}\|/);
    assert.equal(formatCell(Number.NaN), '');
  });

  test('HTML: escaped, numbers right-aligned, caption', () => {
    const html = toHtml([{ a: '<b>', n: 1.5 }], { caption: 'T & C' });
    assert.match(html, /<caption[^>]*>T &amp; C<\/caption>/);
    assert.match(html, /<td style="text-align:left">&lt;b&gt;<\/td><td style="text-align:right">1\.50<\/td>/);
  });

  test('DataFrame round trip through danfojs-node (installed with the tfjs-node override)', () => {
    const df = toDataFrame(rows, { columns: ['k', 'method', 'clean'] });
    assert.deepEqual(df.columns, ['k', 'method', 'clean']);
    assert.equal(df.shape[0], 2);
    assert.deepEqual(tableRows(df), [{ k: 1, method: 'RiFT', clean: 81.234 }, { k: 2, method: 'RiFT with BN', clean: 82 }]);
    assert.equal(toCsv(df), 'k,method,clean\n1,RiFT,81.234\n2,RiFT with BN,82\n');
  });
});
