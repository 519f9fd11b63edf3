/**
 * Rendering of vega-lite specs (charts.ts) to SVG and PNG, in Node, without a browser.
 *
 * vega 6.4 and vega-lite 6.4 are ESM-only: this CommonJS module loads them with a real dynamic
 * `import()` (tsc with `module: nodenext` keeps it; a tslab cell could not load them itself),
 * compiles the spec, runs a headless `vega.View` (`renderer: 'none'`) and asks it for SVG.
 * PNG comes from the SVG through resvg (`@resvg/resvg-js`, a prebuilt binary in the npm
 * package) with DejaVu Sans, so text looks the same in the SVG and PNG of a figure.
 */
import * as fs from 'node:fs';
import { CHART_FONT, type VegaLiteSpec } from './charts.js';

/** Options of renderPng / svgToPng. */
export interface PngOptions {
  /** Pixel density: 2 renders a 400 px wide chart as 800 px (sharp in HTML and PDF). Default 2. */
  scale?: number;
}

/** DejaVu Sans files on Debian (fonts-dejavu-core); when none exists resvg scans the system fonts. */
const FONT_FILES = [
  '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf',
  '/usr/share/fonts/truetype/dejavu/DejaVuSans-Oblique.ttf',
];

type VegaModule = typeof import('vega');
type VegaLiteModule = typeof import('vega-lite');
let modules: Promise<{ vega: VegaModule; vl: VegaLiteModule }> | undefined;

/** vega + vega-lite, loaded once (≈0.5 s the first time), with text measured in DejaVu Sans. */
function loadVega(): Promise<{ vega: VegaModule; vl: VegaLiteModule }> {
  modules ??= Promise.all([import('vega'), import('vega-lite')]).then(([vega, vl]) => {
    useFontMetrics(vega);
    return { vega, vl };
  });
  return modules;
}

/** Advance widths of one TrueType font: code point → width in em. */
export interface FontWidths {
  advance(codePoint: number): number | undefined;
}

/**
 * Reads the advance widths of a TrueType font (tables head, hhea, hmtx and a Unicode BMP
 * `cmap` subtable of format 4). Enough to measure label widths; kerning is ignored.
 */
export function readFontWidths(file: string): FontWidths {
  const b = fs.readFileSync(file);
  const tables = new Map<string, number>();
  for (let i = 0, n = b.readUInt16BE(4); i < n; i++) tables.set(b.toString('latin1', 12 + 16 * i, 16 + 16 * i), b.readUInt32BE(20 + 16 * i));
  const [head, hhea, hmtx, cmap] = ['head', 'hhea', 'hmtx', 'cmap'].map((t) => {
    const o = tables.get(t);
    if (o === undefined) throw new Error(`${file}: no '${t}' table`);
    return o;
  });
  const unitsPerEm = b.readUInt16BE(head + 18);
  const nMetrics = b.readUInt16BE(hhea + 34);
  let sub = -1;
  for (let i = 0, n = b.readUInt16BE(cmap + 2); i < n; i++) {
    const platform = b.readUInt16BE(cmap + 4 + 8 * i), encoding = b.readUInt16BE(cmap + 6 + 8 * i);
    const off = cmap + b.readUInt32BE(cmap + 8 + 8 * i);
    if (b.readUInt16BE(off) === 4 && (platform === 0 || (platform === 3 && encoding === 1))) { sub = off; break; }
  }
  if (sub < 0) throw new Error(`${file}: no Unicode cmap subtable of format 4`);
  const segX2 = b.readUInt16BE(sub + 6);
  const ends = sub + 14, starts = ends + segX2 + 2, deltas = starts + segX2, ranges = deltas + segX2;
  const glyph = (c: number): number => {
    for (let i = 0; i < segX2; i += 2) {
      if (c > b.readUInt16BE(ends + i)) continue;
      if (c < b.readUInt16BE(starts + i)) return 0;
      const ro = b.readUInt16BE(ranges + i);
      if (ro === 0) return (c + b.readInt16BE(deltas + i)) & 0xffff;
      const g = b.readUInt16BE(ranges + i + ro + 2 * (c - b.readUInt16BE(starts + i)));
      return g === 0 ? 0 : (g + b.readInt16BE(deltas + i)) & 0xffff;
    }
    return 0;
  };
  const cache = new Map<number, number | undefined>();
  return {
    advance(c: number) {
      if (!cache.has(c)) {
        const g = c > 0xffff ? 0 : glyph(c);
        cache.set(c, g === 0 ? undefined : b.readUInt16BE(hmtx + 4 * Math.min(g, nMetrics - 1)) / unitsPerEm);
      }
      return cache.get(c);
    },
  };
}

/** Width in px of `text` at `fontSize` px in a font (unknown characters count 0.6 em). */
export function textWidth(font: FontWidths, text: string, fontSize: number): number {
  let w = 0;
  for (const ch of text) w += font.advance(ch.codePointAt(0)!) ?? 0.6;
  return w * fontSize;
}

/**
 * Makes vega measure text with the DejaVu Sans widths that resvg draws with. Without a canvas,
 * vega estimates 0.8 em per character, which overstates DejaVu Sans (≈0.6 em) by a third: long
 * titles and labels then reserve empty space (charts wider than their content, tall axes).
 */
function useFontMetrics(vega: VegaModule): void {
  const [regular, bold] = [FONT_FILES[0], FONT_FILES[1]].map((f) => (fs.existsSync(f) ? readFontWidths(f) : undefined));
  if (!regular) return;
  type Item = { fontSize?: number; fontWeight?: string | number; limit?: number };
  const metrics = (vega as unknown as { textMetrics: { width: (item: Item, text: unknown) => number } }).textMetrics;
  metrics.width = (item: Item, text: unknown) => {
    const size = item.fontSize != null ? +item.fontSize || 0 : 11;
    const heavy = item.fontWeight === 'bold' || item.fontWeight === 'bolder' || Number(item.fontWeight) >= 600;
    const w = textWidth((heavy && bold) || regular, text == null ? '' : String(text).trim(), size);
    return item.limit && item.limit > 0 ? Math.min(w, item.limit) : w;
  };
}

/** A vega/vega-lite logger that records warnings and throws errors, printing nothing. */
function quietLogger(sink: string[]) {
  let level = 2;
  const logger = {
    level(l?: number) {
      if (l === undefined) return level;
      level = l;
      return logger;
    },
    error(...args: unknown[]): never {
      throw new Error(args.map(String).join(' '));
    },
    warn(...args: unknown[]) {
      sink.push(args.map(String).join(' '));
      return logger;
    },
    info() {
      return logger;
    },
    debug() {
      return logger;
    },
  };
  return logger;
}

/** Compiles a vega-lite spec to a vega spec (throws with vega-lite's message on a bad spec). */
export async function compileSpec(spec: VegaLiteSpec): Promise<Record<string, unknown>> {
  const { vl } = await loadVega();
  // vega-lite logs its warnings (e.g. 'Maximum optimization runs reached') with console.warn, i.e. to
  // stderr, which the notebook runner counts as a failed cell: collect them silently instead.
  const logger = quietLogger([]);
  const options = { logger } as unknown as Parameters<VegaLiteModule['compile']>[1];
  return vl.compile(spec as unknown as Parameters<VegaLiteModule['compile']>[0], options).spec as unknown as Record<string, unknown>;
}

/** Renders a vega-lite spec to an SVG document string. */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const { vega } = await loadVega();
  const compiled = await compileSpec(spec);
  const view = new vega.View(vega.parse(compiled as Parameters<VegaModule['parse']>[0]), {
    renderer: 'none',
    logger: quietLogger([]) as unknown as NonNullable<ConstructorParameters<VegaModule['View']>[1]>['logger'],
  });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Converts an SVG string to PNG bytes with resvg (white background, DejaVu Sans). */
export function svgToPng(svg: string, options: PngOptions = {}): Buffer {
  const scale = options.scale ?? 2;
  if (!(scale > 0)) throw new Error(`svgToPng: scale must be > 0, got ${scale}`);
  // A plain require keeps the native binding out of the module graph until a PNG is asked for.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Resvg } = require('@resvg/resvg-js') as typeof import('@resvg/resvg-js');
  const fontFiles = FONT_FILES.filter((f) => fs.existsSync(f));
  const resvg = new Resvg(svg, {
    background: 'white',
    fitTo: { mode: 'zoom', value: scale },
    font: { fontFiles, loadSystemFonts: fontFiles.length === 0, defaultFontFamily: CHART_FONT, sansSerifFamily: CHART_FONT },
  });
  return resvg.render().asPng();
}

/** Renders a vega-lite spec to PNG bytes (SVG through resvg). */
export async function renderPng(spec: VegaLiteSpec, options: PngOptions = {}): Promise<Buffer> {
  return svgToPng(await renderSvg(spec), options);
}

/** Width and height (px at scale 1) declared by an SVG document, or undefined. */
export function svgSize(svg: string): { width: number; height: number } | undefined {
  const m = /<svg[^>]*\swidth="([\d.]+)"[^>]*\sheight="([\d.]+)"/.exec(svg);
  return m ? { width: Number(m[1]), height: Number(m[2]) } : undefined;
}

/** Versions of the chart toolchain (vega, vega-lite, resvg), for the environment notebook. */
export async function chartVersions(): Promise<Record<string, string>> {
  const { vega, vl } = await loadVega();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const resvg = (require('@resvg/resvg-js/package.json') as { version: string }).version;
  return { vega: vega.version, 'vega-lite': vl.version, '@resvg/resvg-js': resvg };
}
