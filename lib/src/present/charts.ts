/**
 * Chart specs: pure functions from plain records to vega-lite JSON.
 *
 * Compute and show are separate layers: the experiments return plain records, these functions
 * turn records into a vega-lite spec (plain JSON, testable as JSON, nothing rendered), and
 * `render.ts` / `display.ts` / `artifacts.ts` render, show and save a spec. No function here
 * touches TF.js, the file system or vega itself.
 *
 *   const spec = lineChart(history, { x: 'epoch', y: 'accuracy', series: 'method', panel: 'metric',
 *     rules: [{ y: 81.45, label: 'paper base', panel: 'clean' }] });
 *   await art.figure('figure1', spec);          // SVG + PNG in report/<notebook>/, shown as PNG
 *
 * Every spec carries CHART_CONFIG (DejaVu Sans, white background), so the SVG, the PNG and the
 * report look the same on every machine that has the font. Records are copied, never mutated.
 */
import type { DensityCurve } from '../util/kde.js';
export type { DensityCurve } from '../util/kde.js';

/** A vega-lite (top-level) spec as plain JSON. */
export type VegaLiteSpec = Record<string, unknown>;

/** One input record: field name → value (numbers, strings, booleans). */
export type ChartRecord = Record<string, unknown>;

/** vega-lite schema the specs are written for (vega-lite 6). */
export const VEGA_LITE_SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

/** Font of every chart: on Debian in fonts-dejavu-core, and what resvg is given (render.ts). */
export const CHART_FONT = 'DejaVu Sans';

/** The `config` block of every spec. */
export const CHART_CONFIG = {
  font: CHART_FONT,
  background: 'white',
  // Room around the chart: label widths are measured without kerning (render.ts), so keep a margin.
  padding: 8,
  view: { stroke: '#ddd' },
  axis: { labelFontSize: 11, titleFontSize: 12, grid: true, gridColor: '#eee' },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 240 },
  header: { labelFontSize: 12, titleFontSize: 12 },
  title: { fontSize: 14, subtitleFontSize: 11, anchor: 'start' },
} as const;

/**
 * Colours of the models/methods that recur across figures, so one method has one colour in
 * every notebook. Pass as `colors` (or extend: `{ ...METHOD_COLORS, mine: '#123456' }`).
 */
export const METHOD_COLORS: Readonly<Record<string, string>> = {
  base: '#7f7f7f',
  init: '#7f7f7f',
  RiFT: '#1f77b4',
  rift: '#1f77b4',
  'RiFT with BN': '#d62728',
  'rift-bn': '#d62728',
  'BN-only': '#d62728',
  'bn-only': '#d62728',
  'Conv/Linear-only': '#1f77b4',
  'conv-linear-only': '#1f77b4',
  Full: '#2ca02c',
  full: '#2ca02c',
  paper: '#9467bd',
};

/** Colours of module kinds in per-module charts (MRC bars): BN layers stand out. */
export const MODULE_KIND_COLORS: Readonly<Record<string, string>> = {
  conv: '#4c78a8',
  linear: '#72b7b2',
  bn: '#e45756',
};

/** Fields shared by every chart's options. */
export interface ChartOptions {
  /** Title above the chart. Default none. */
  title?: string;
  /** Second, smaller title line (e.g. profile and n). Default none. */
  subtitle?: string;
  /** Width of the plot area (of one panel) in px. Default 360. */
  width?: number;
  /** Height of the plot area (of one panel) in px. Default 220. */
  height?: number;
  /** Colour per series value (legend order follows `seriesOrder`, else this map's order). Default: METHOD_COLORS where it names every series, else vega's category10. */
  colors?: Readonly<Record<string, string>>;
}

/** A horizontal reference line (the paper's number, the base model, chance level). */
export interface ReferenceLine {
  /** Value on the y axis. */
  y: number;
  /** Text drawn just above the line at its left end. Default none. */
  label?: string;
  /** Only in the panel with this value of the `panel` field. Default: every panel. */
  panel?: string;
}

/** Options of lineChart. */
export interface LineChartOptions extends ChartOptions {
  /** Field on the x axis (e.g. 'epoch'). */
  x: string;
  /** Field on the y axis (e.g. 'accuracy'). */
  y: string;
  /** Field whose values are separate lines with a colour legend (e.g. 'method'). Default: one line. */
  series?: string;
  /** Field whose values are separate side-by-side panels (e.g. 'metric' = clean / robust). Default: one panel. */
  panel?: string;
  /** Fields of a lower/upper bound per point, drawn as error bars (e.g. 95% interval). Default none. */
  yLow?: string;
  yHigh?: string;
  /** Axis and legend titles; null hides one. Defaults: the field names. */
  xTitle?: string | null;
  yTitle?: string | null;
  seriesTitle?: string | null;
  /** Order of the series in the legend. Default: first appearance in the records. */
  seriesOrder?: string[];
  /** Order of the panels. Default: first appearance in the records. */
  panelOrder?: string[];
  /** Reference lines. Default none. */
  rules?: ReferenceLine[];
  /** Draw a point on every record. Default true. */
  points?: boolean;
  /** x values are integers (epochs): integer ticks only. Default true. */
  xInteger?: boolean;
  /** Include 0 in the y scale. Default false (accuracy differences are small). */
  yZero?: boolean;
  /** Panels get their own y scale (clean and robust accuracy lie far apart). Default true. */
  independentY?: boolean;
}

/** Options of barChart. */
export interface BarChartOptions extends ChartOptions {
  /** Category field, one bar (group) per value (e.g. 'module'). */
  x: string;
  /** Value field (e.g. 'mrc'). */
  y: string;
  /** Field that colours the bars (e.g. 'kind' = conv / bn / linear). Default: one colour. */
  color?: string;
  /** Field of side-by-side bars within one category (e.g. 'method'); coloured by it when `color` is not given. Default none. */
  group?: string;
  /** Boolean field: bars where it is true get a black outline (e.g. 'selected'). Default none. */
  highlight?: string;
  /** Legend title of `highlight`. Default the field name. */
  highlightTitle?: string | null;
  /** Category order: 'data' keeps the records' order (network order), or sort by the value. Default 'data'. */
  order?: 'data' | 'ascending' | 'descending';
  /** Bars left to right (false) or top to bottom (true, better for many long names). Default false. */
  horizontal?: boolean;
  /** Width per category in px (overrides `width`, or `height` when horizontal). Default: `width` when set, else 14 px per category. */
  step?: number;
  /** Error-bar fields (lower / upper). Default none. */
  yLow?: string;
  yHigh?: string;
  /** Axis and legend titles; null hides one. Defaults: the field names. */
  xTitle?: string | null;
  yTitle?: string | null;
  colorTitle?: string | null;
  /** Order of the colour legend. Default: first appearance. */
  colorOrder?: string[];
  /** Reference lines on the value axis (a rule's `panel` picks its panel when `panel` is set, else it is ignored). Default none. */
  rules?: ReferenceLine[];
  /** Angle of category labels (vertical bars). Default -60 when there are more than 8 categories, else 0. */
  labelAngle?: number;
  /** Field whose values are separate side-by-side panels (e.g. 'metric' = Δ clean / Δ robust). Default: one panel. */
  panel?: string;
  /** Order of the panels. Default: first appearance in the records. */
  panelOrder?: string[];
  /** Panels get their own value scale. Default true. */
  independentY?: boolean;
  /** Type of the value scale: 'sqrt' spreads small values (e.g. MRC from 0.05 to 10) while bars still start at 0. Default 'linear'. */
  scaleType?: 'linear' | 'sqrt';
  /** Numeric field drawn as a black tick on its bar (e.g. the paper's value beside ours); null/absent values draw nothing. Default none. */
  marker?: string;
}


/** Options of kdeChart. */
export interface KdeChartOptions extends ChartOptions {
  /** x-axis title (null hides it). Default 'value'. */
  xTitle?: string | null;
  /** y-axis title (null hides it). Default 'density'. */
  yTitle?: string | null;
  /** Legend title (null hides it). Default 'model'. */
  seriesTitle?: string | null;
  /** Fill the area under each curve (translucent, not stacked). Default false. */
  area?: boolean;
  /**
   * Drop the leading and trailing grid points where every curve's density is below this
   * fraction of the highest density (heavy tails otherwise squeeze the bulk into a few pixels).
   * Default 0 (keep the whole grid).
   */
  trimTails?: number;
}

const DEFAULT_WIDTH = 360;
const DEFAULT_HEIGHT = 220;
/** Internal field that tells data rows from reference-line rows. */
const KIND = '__kind';
const LABEL = '__label';

function uniqueInOrder(rows: readonly ChartRecord[], field: string): string[] {
  const seen = new Set<string>();
  for (const r of rows) {
    const v = r[field];
    if (v !== undefined && v !== null) seen.add(String(v));
  }
  return [...seen];
}

function requireField(rows: readonly ChartRecord[], field: string, what: string): void {
  if (rows.length > 0 && !rows.some((r) => field in r)) {
    throw new Error(`${what}: no record has the field '${field}' (fields: ${Object.keys(rows[0]).join(', ')})`);
  }
}

/** Colour scale for a nominal field: explicit map → that map; every value in METHOD_COLORS → those; else undefined (vega default). */
function colorScale(values: string[], colors?: Readonly<Record<string, string>>, order?: string[]): Record<string, unknown> | undefined {
  const domain = order ?? values;
  const map = colors ?? (domain.length > 0 && domain.every((v) => v in METHOD_COLORS) ? METHOD_COLORS : undefined);
  if (!map) return order ? { domain } : undefined;
  const missing = domain.filter((v) => !(v in map));
  if (missing.length) throw new Error(`colors: no colour for ${missing.map((m) => `'${m}'`).join(', ')}`);
  return { domain, range: domain.map((v) => map[v]) };
}

function titles(o: ChartOptions): Record<string, unknown> {
  if (!o.title) return {};
  return { title: o.subtitle ? { text: o.title, subtitle: o.subtitle } : o.title };
}

function ruleLayers(yField: string, yTitle: string | null): Record<string, unknown>[] {
  const onlyRules = { filter: `datum.${KIND} === 'rule'` };
  return [
    {
      transform: [onlyRules],
      mark: { type: 'rule', strokeDash: [5, 4], color: '#555' },
      encoding: { y: { field: yField, type: 'quantitative', title: yTitle } },
    },
    {
      transform: [onlyRules, { filter: `datum.${LABEL} != null` }],
      mark: { type: 'text', align: 'left', baseline: 'bottom', dx: 3, dy: -2, fontSize: 10, color: '#555' },
      encoding: { y: { field: yField, type: 'quantitative', title: yTitle }, x: { value: 0 }, text: { field: LABEL } },
    },
  ];
}

/** Reference-line rows, one per (rule, panel it appears in). */
function ruleRows(rules: readonly ReferenceLine[], yField: string, panelField: string | undefined, panels: string[]): ChartRecord[] {
  const out: ChartRecord[] = [];
  for (const r of rules) {
    if (!Number.isFinite(r.y)) throw new Error(`rules: y must be a finite number, got ${r.y}`);
    const targets = panelField === undefined ? [undefined] : r.panel !== undefined ? [r.panel] : panels;
    for (const p of targets) {
      const row: ChartRecord = { [KIND]: 'rule', [yField]: r.y, [LABEL]: r.label ?? null };
      if (panelField !== undefined) row[panelField] = p;
      out.push(row);
    }
  }
  return out;
}

/**
 * Lines of `y` against `x`, one per `series` value, in one panel per `panel` value, with optional
 * error bars and reference lines. E.g. Figures 1–2: accuracy per fine-tuning epoch per method,
 * panels clean / PGD-10 — records `{ epoch, accuracy, method, metric }`.
 */
export function lineChart(records: readonly ChartRecord[], options: LineChartOptions): VegaLiteSpec {
  const o = { points: true, xInteger: true, yZero: false, independentY: true, ...options };
  for (const f of [o.x, o.y, o.series, o.panel, o.yLow, o.yHigh]) if (f !== undefined) requireField(records, f, 'lineChart');
  if ((o.yLow === undefined) !== (o.yHigh === undefined)) throw new Error('lineChart: give both yLow and yHigh, or neither');
  const panels = o.panel !== undefined ? (o.panelOrder ?? uniqueInOrder(records, o.panel)) : [];
  const rows: ChartRecord[] = [
    ...records.map((r) => ({ ...r, [KIND]: 'data' })),
    ...ruleRows(o.rules ?? [], o.y, o.panel, panels),
  ];
  const yTitle = o.yTitle !== undefined ? o.yTitle : o.y;
  const x = {
    field: o.x, type: 'quantitative', title: o.xTitle !== undefined ? o.xTitle : o.x,
    ...(o.xInteger ? { axis: { tickMinStep: 1, format: 'd' } } : {}),
    scale: { zero: false, nice: false },
  };
  const y = { field: o.y, type: 'quantitative', title: yTitle, scale: { zero: o.yZero } };
  const color = o.series !== undefined
    ? { color: { field: o.series, type: 'nominal', title: o.seriesTitle !== undefined ? o.seriesTitle : o.series, ...withScale(colorScale(o.seriesOrder ?? uniqueInOrder(records, o.series), o.colors, o.seriesOrder)) } }
    : {};
  const onlyData = { filter: `datum.${KIND} === 'data'` };
  const layer: Record<string, unknown>[] = [
    { transform: [onlyData], mark: { type: 'line', point: o.points, strokeWidth: 2 }, encoding: { x, y, ...color } },
  ];
  if (o.yLow !== undefined && o.yHigh !== undefined) {
    layer.push({
      transform: [onlyData],
      mark: { type: 'rule', strokeWidth: 1.5 },
      encoding: { x, y: { field: o.yLow, type: 'quantitative', title: yTitle }, y2: { field: o.yHigh }, ...color },
    });
  }
  if (o.rules?.length) layer.push(...ruleLayers(o.y, yTitle));
  const size = { width: o.width ?? DEFAULT_WIDTH, height: o.height ?? DEFAULT_HEIGHT };
  const base = { $schema: VEGA_LITE_SCHEMA, ...titles(o), data: { values: rows }, config: CHART_CONFIG };
  if (o.panel === undefined) return { ...base, ...size, layer };
  return {
    ...base,
    facet: { column: { field: o.panel, type: 'nominal', sort: panels, header: { title: null, labelFontWeight: 'bold' } } },
    spec: { ...size, layer },
    resolve: { scale: { y: o.independentY ? 'independent' : 'shared' } },
  };
}

function withScale(scale: Record<string, unknown> | undefined): Record<string, unknown> {
  return scale ? { scale } : {};
}

/**
 * Bars of `y` per `x` category, in the records' order by default (network order for modules),
 * coloured by `color` (e.g. module kind, BN in red via MODULE_KIND_COLORS), optionally grouped
 * side by side (`group`), outlined where `highlight` is true, with error bars and reference lines.
 * E.g. MRC per module: records `{ module, mrc, kind, selected }`.
 */
export function barChart(records: readonly ChartRecord[], options: BarChartOptions): VegaLiteSpec {
  const o = { order: 'data' as const, horizontal: false, independentY: true, ...options };
  for (const f of [o.x, o.y, o.color, o.group, o.highlight, o.yLow, o.yHigh, o.panel, o.marker]) if (f !== undefined) requireField(records, f, 'barChart');
  const panels = o.panel !== undefined ? (o.panelOrder ?? uniqueInOrder(records, o.panel)) : [];
  if ((o.yLow === undefined) !== (o.yHigh === undefined)) throw new Error('barChart: give both yLow and yHigh, or neither');
  const categories = uniqueInOrder(records, o.x);
  const catAxis = o.horizontal ? 'y' : 'x';
  const valAxis = o.horizontal ? 'x' : 'y';
  const offset = o.horizontal ? 'yOffset' : 'xOffset';
  const yTitle = o.yTitle !== undefined ? o.yTitle : o.y;
  const sort = o.order === 'data' ? categories : o.order === 'ascending' ? { field: o.y, op: 'sum', order: 'ascending' } : { field: o.y, op: 'sum', order: 'descending' };
  const labelAngle = o.labelAngle ?? (categories.length > 8 ? -60 : 0);
  const cat = { field: o.x, type: 'nominal', sort, title: o.xTitle !== undefined ? o.xTitle : o.x, axis: o.horizontal ? { labelLimit: 200 } : { labelAngle, labelLimit: 200 } };
  // Every value the same (e.g. all zero): vega would draw an empty axis with one tick; give it a range.
  const values = records.flatMap((r) => [o.y, o.yLow, o.yHigh].filter((f): f is string => f !== undefined).map((f) => r[f])).filter((v): v is number => typeof v === 'number');
  const flat = values.length > 0 && values.every((v) => v === values[0]) && (o.rules ?? []).every((r) => r.y === values[0]);
  const scale = { ...(o.scaleType && o.scaleType !== 'linear' ? { type: o.scaleType } : {}), ...(flat ? { domain: [Math.min(0, values[0] - 1), values[0] + 1] } : {}) };
  const val = { field: o.y, type: 'quantitative', title: yTitle, ...(Object.keys(scale).length ? { scale } : {}) };
  const colorField = o.color ?? o.group;
  const colorValues = colorField !== undefined ? (o.colorOrder ?? uniqueInOrder(records, colorField)) : [];
  const kindColors = colorValues.length > 0 && colorValues.every((v) => v in MODULE_KIND_COLORS) ? MODULE_KIND_COLORS : undefined;
  const encoding: Record<string, unknown> = { [catAxis]: cat, [valAxis]: val };
  if (colorField !== undefined) {
    encoding.color = { field: colorField, type: 'nominal', title: o.colorTitle !== undefined ? o.colorTitle : colorField, ...withScale(colorScale(colorValues, o.colors ?? kindColors, o.colorOrder)) };
  }
  if (o.group !== undefined) encoding[offset] = { field: o.group, type: 'nominal', sort: uniqueInOrder(records, o.group) };
  if (o.highlight !== undefined) {
    encoding.stroke = {
      field: o.highlight, type: 'nominal', title: o.highlightTitle !== undefined ? o.highlightTitle : o.highlight,
      scale: { domain: [true, false], range: ['black', 'transparent'] },
      legend: { symbolFillColor: '#ddd', symbolType: 'square' },
    };
    encoding.strokeWidth = { value: 1.5 };
  }
  const onlyData = { filter: `datum.${KIND} === 'data'` };
  const layer: Record<string, unknown>[] = [{ transform: [onlyData], mark: { type: 'bar' }, encoding }];
  if (o.yLow !== undefined && o.yHigh !== undefined) {
    const bar: Record<string, unknown> = {
      [catAxis]: cat,
      [valAxis]: { field: o.yLow, type: 'quantitative', title: yTitle },
      [`${valAxis}2`]: { field: o.yHigh },
    };
    if (o.group !== undefined) bar[offset] = encoding[offset];
    layer.push({ transform: [onlyData], mark: { type: 'rule', color: 'black' }, encoding: bar });
  }
  if (o.marker !== undefined) {
    const tick: Record<string, unknown> = { [catAxis]: cat, [valAxis]: { field: o.marker, type: 'quantitative', title: yTitle } };
    if (o.group !== undefined) tick[offset] = encoding[offset];
    layer.push({
      transform: [onlyData, { filter: `isValid(datum[${JSON.stringify(o.marker)}])` }],
      mark: { type: 'tick', color: 'black', thickness: 2.5, ...(o.horizontal ? {} : { orient: 'horizontal' }) }, encoding: tick,
    });
  }
  if (o.rules?.length) {
    const onlyRules = { filter: `datum.${KIND} === 'rule'` };
    layer.push({
      transform: [onlyRules],
      mark: { type: 'rule', strokeDash: [5, 4], color: '#555' },
      encoding: { [valAxis]: { field: o.y, type: 'quantitative', title: yTitle } },
    });
  }
  const rows: ChartRecord[] = [
    ...records.map((r) => ({ ...r, [KIND]: 'data' })),
    ...ruleRows(o.rules ?? [], o.y, o.panel, panels),
  ];
  const step = o.step ?? (o.horizontal ? (o.height === undefined ? 14 : undefined) : o.width === undefined ? 14 : undefined);
  const catSize = step !== undefined ? { step } : (o.horizontal ? o.height : o.width);
  const valSize = o.horizontal ? (o.width ?? DEFAULT_WIDTH) : (o.height ?? DEFAULT_HEIGHT);
  const size = o.horizontal ? { width: valSize, height: catSize } : { width: catSize, height: valSize };
  if (o.panel === undefined) return { $schema: VEGA_LITE_SCHEMA, ...titles(o), data: { values: rows }, ...size, layer, config: CHART_CONFIG };
  return {
    $schema: VEGA_LITE_SCHEMA, ...titles(o), data: { values: rows },
    facet: { column: { field: o.panel, type: 'nominal', sort: panels, header: { title: null, labelFontWeight: 'bold' } } },
    spec: { ...size, layer },
    resolve: { scale: { [valAxis]: o.independentY ? 'independent' : 'shared' } },
    config: CHART_CONFIG,
  };
}

/**
 * Density lines, one per curve (e.g. Figure 3: the KDE of a BN layer's outputs on adversarial
 * examples for init / RiFT / RiFT with BN). Takes densities already evaluated on a grid — a
 * `KDERecord` maps as `rec.models.map(m => ({ series: m.name, x: rec.grid, density: m.density }))`;
 * for raw samples use `densityCurves`.
 */
export function kdeChart(curves: readonly DensityCurve[], options: KdeChartOptions = {}): VegaLiteSpec {
  if (curves.length === 0) throw new Error('kdeChart: no curves');
  for (const c of curves) {
    if (c.x.length !== c.density.length) throw new Error(`kdeChart: curve '${c.series}' has ${c.x.length} grid points but ${c.density.length} densities`);
  }
  const trim = options.trimTails ?? 0;
  const top = Math.max(...curves.map((c) => Math.max(...Array.from(c.density))));
  // On a common grid, a tail point goes only when it is low in every curve (the curves keep one x range).
  const common = curves.every((c) => c.x.length === curves[0].x.length);
  const keep = (c: DensityCurve, i: number) => (common ? Math.max(...curves.map((d) => d.density[i])) : c.density[i]) >= trim * top;
  const rows: ChartRecord[] = [];
  for (const c of curves) {
    let first = 0, last = c.x.length - 1;
    if (trim > 0) {
      while (first < last && !keep(c, first)) first++;
      while (last > first && !keep(c, last)) last--;
    }
    for (let i = first; i <= last; i++) rows.push({ value: c.x[i], density: c.density[i], series: c.series });
  }
  const series = curves.map((c) => c.series);
  const color = {
    field: 'series', type: 'nominal', title: options.seriesTitle !== undefined ? options.seriesTitle : 'model', ...withScale(colorScale(series, options.colors, series)),
    legend: { symbolType: 'stroke', symbolStrokeWidth: 3, symbolOpacity: 1 },
  };
  const x = { field: 'value', type: 'quantitative', title: options.xTitle !== undefined ? options.xTitle : 'value', scale: { zero: false, nice: false } };
  const y = { field: 'density', type: 'quantitative', title: options.yTitle !== undefined ? options.yTitle : 'density', stack: null };
  const layer: Record<string, unknown>[] = [];
  if (options.area) layer.push({ mark: { type: 'area', opacity: 0.12 }, encoding: { x, y, color } });
  layer.push({ mark: { type: 'line', strokeWidth: 2 }, encoding: { x, y, color } });
  return {
    $schema: VEGA_LITE_SCHEMA, ...titles(options), data: { values: rows },
    width: options.width ?? DEFAULT_WIDTH, height: options.height ?? DEFAULT_HEIGHT, layer, config: CHART_CONFIG,
  };
}
