/**
 * The one adapter between the library and a notebook's output area (tslab).
 *
 * Inside a tslab kernel (Jupyter, interactive or headless) these show rich outputs through
 * `tslab.display`; anywhere else (scripts, tests) they print a plain-text stand-in, so a
 * notebook's code also runs as a script. Charts are shown as a PNG inside HTML (`<img>` with a
 * data URI and the chart's own width): Debian's nbconvert 6.5 drops SVG outputs from HTML
 * exports, and the HTML form lets a 2× PNG display at 1× size, sharp on screen and in the PDF.
 *
 *   await rb.showChart(rb.lineChart(rows, {...}));   rb.showTable(rows, { digits: 1 });
 */
import * as path from 'node:path';
import type { VegaLiteSpec } from './charts.js';
import { renderSvg, svgSize, svgToPng } from './render.js';
import { escapeHtml, tableRows, toHtml, toMarkdown, type TableLike, type TableOptions } from './table-format.js';

/** The part of tslab's public `display` used here. */
interface TslabDisplay {
  html(s: string): void;
  markdown(s: string): void;
  png(b: Uint8Array): void;
  text(s: string): void;
}

/**
 * tslab's `display`, when this process is a tslab kernel, else undefined. Found through the
 * kernel's own, already loaded module (`tslab/dist/jupyter.js`) so that it is the very instance
 * that holds the current cell's output channel, wherever the library itself is installed.
 */
function tslabDisplay(): TslabDisplay | undefined {
  const key = Object.keys(require.cache).find((k) => /[\\/]tslab[\\/]dist[\\/]jupyter\.js$/.test(k));
  if (!key) return undefined;
  const jupyter = require.cache[key]?.exports as { lastWriteDisplayData?: unknown } | undefined;
  if (!jupyter || jupyter.lastWriteDisplayData == null) return undefined; // loaded, but no cell is running
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require(path.join(path.dirname(key), 'public.js')) as { display: TslabDisplay }).display;
}

/** Shows Markdown in the notebook (rendered); elsewhere prints it. */
export function showMarkdown(markdown: string): void {
  const d = tslabDisplay();
  if (d) d.markdown(markdown);
  else process.stdout.write(markdown.endsWith('\n') ? markdown : `${markdown}\n`);
}

/** Options of showPng / showChart. */
export interface ShowImageOptions {
  /** Displayed width in px. Default: the chart's own width (showChart), else the PNG's width / scale. */
  width?: number;
  /** Pixel density of the PNG (see render.ts). Default 2. */
  scale?: number;
  /** Alternative text / caption shown outside notebooks. Default 'chart'. */
  alt?: string;
}

/** PNG width in px from its IHDR chunk. */
function pngWidth(png: Uint8Array): number {
  return ((png[16] << 24) | (png[17] << 16) | (png[18] << 8) | png[19]) >>> 0;
}

/** Shows PNG bytes in the notebook at `width` px; elsewhere prints a one-line stand-in. */
export function showPng(png: Uint8Array, options: ShowImageOptions = {}): void {
  const d = tslabDisplay();
  const width = Math.round(options.width ?? pngWidth(png) / (options.scale ?? 2));
  if (!d) {
    process.stdout.write(`[${options.alt ?? 'chart'}: ${width} px wide PNG, shown in notebooks]\n`);
    return;
  }
  const b64 = Buffer.from(png).toString('base64');
  d.html(`<img src="data:image/png;base64,${b64}" width="${width}" style="max-width:100%;height:auto" alt="${escapeHtml(options.alt ?? 'chart')}">`);
}

/** What showChart rendered (to save it without rendering twice). */
export interface RenderedChart {
  svg: string;
  png: Buffer;
  /** Size at scale 1 in px. */
  width: number;
  height: number;
}

/** Renders a vega-lite spec (SVG → PNG) and shows it as a PNG; returns both renderings. */
export async function showChart(spec: VegaLiteSpec, options: ShowImageOptions = {}): Promise<RenderedChart> {
  const scale = options.scale ?? 2;
  const svg = await renderSvg(spec);
  const png = svgToPng(svg, { scale });
  const size = svgSize(svg) ?? { width: pngWidth(png) / scale, height: 0 };
  const title = typeof spec.title === 'string' ? spec.title : (spec.title as { text?: string } | undefined)?.text;
  showPng(png, { ...options, width: options.width ?? size.width, scale, alt: options.alt ?? title ?? 'chart' });
  return { svg, png, ...size };
}

/** Shows a table (records or a DataFrame): HTML in the notebook, Markdown elsewhere. */
export function showTable(table: TableLike, options: TableOptions & { caption?: string } = {}): void {
  const rows = tableRows(table);
  const d = tslabDisplay();
  if (d) d.html(toHtml(rows, options));
  else process.stdout.write(`${options.caption ? `${options.caption}\n\n` : ''}${toMarkdown(rows, options)}`);
}
