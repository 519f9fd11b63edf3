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

/** vega + vega-lite, loaded once (≈0.5 s the first time). */
function loadVega(): Promise<{ vega: VegaModule; vl: VegaLiteModule }> {
  modules ??= Promise.all([import('vega'), import('vega-lite')]).then(([vega, vl]) => ({ vega, vl }));
  return modules;
}

let lastWarnings: string[] = [];

/** Warnings vega-lite / vega gave for the last spec compiled or rendered (never printed). */
export function renderWarnings(): readonly string[] {
  return lastWarnings;
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
  // stderr, which the notebook runner counts as a failed cell: keep them in lastWarnings instead.
  lastWarnings = [];
  const logger = quietLogger(lastWarnings);
  const options = { logger } as unknown as Parameters<VegaLiteModule['compile']>[1];
  return vl.compile(spec as unknown as Parameters<VegaLiteModule['compile']>[0], options).spec as unknown as Record<string, unknown>;
}

/** Renders a vega-lite spec to an SVG document string. */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const { vega } = await loadVega();
  const compiled = await compileSpec(spec);
  const warnings = lastWarnings;
  const view = new vega.View(vega.parse(compiled as Parameters<VegaModule['parse']>[0]), {
    renderer: 'none',
    logger: quietLogger(warnings) as unknown as NonNullable<ConstructorParameters<VegaModule['View']>[1]>['logger'],
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
