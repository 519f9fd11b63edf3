/**
 * Kernel density estimates and distribution distances for Figure 3 (output distribution of a
 * BN layer on adversarial examples). Plain JS on Float32Arrays; no tensors.
 */
import { Rng } from './rng.js';

/** Mean and (population) standard deviation. */
export function meanStd(x: ArrayLike<number>): { mean: number; std: number } {
  let m = 0;
  for (let i = 0; i < x.length; i++) m += x[i];
  m /= Math.max(x.length, 1);
  let v = 0;
  for (let i = 0; i < x.length; i++) v += (x[i] - m) ** 2;
  return { mean: m, std: Math.sqrt(v / Math.max(x.length, 1)) };
}

/** Silverman's rule of thumb: 0.9·min(σ, IQR/1.34)·n^(−1/5). */
export function silvermanBandwidth(x: ArrayLike<number>): number {
  const s = Float64Array.from(x as ArrayLike<number>).sort();
  const n = s.length;
  if (n < 2) throw new Error('silvermanBandwidth: need at least 2 values');
  const q = (p: number) => { const h = (n - 1) * p, lo = Math.floor(h); return s[lo] + (h - lo) * ((s[Math.min(lo + 1, n - 1)]) - s[lo]); };
  const { std } = meanStd(s);
  const spread = Math.min(std, (q(0.75) - q(0.25)) / 1.34) || std || 1e-3;
  return 0.9 * spread * n ** -0.2;
}

/**
 * Gaussian KDE of `x` evaluated on `grid`: f(g) = 1/(n·h) Σ φ((g − xᵢ)/h). Binned (linear
 * binning on a fine mesh, then exact convolution) so 10⁵ samples × 512 points stays fast;
 * the binning error is far below the bandwidth.
 */
export function gaussianKDE(x: ArrayLike<number>, grid: ArrayLike<number>, bandwidth = silvermanBandwidth(x)): Float64Array {
  if (!(bandwidth > 0)) throw new Error(`gaussianKDE: bandwidth must be > 0, got ${bandwidth}`);
  const lo = grid[0], hi = grid[grid.length - 1];
  const bins = 2048;
  const a = Math.min(lo, minOf(x)) - 4 * bandwidth, b = Math.max(hi, maxOf(x)) + 4 * bandwidth;
  const step = (b - a) / (bins - 1);
  const w = new Float64Array(bins);
  for (let i = 0; i < x.length; i++) {
    const t = (x[i] - a) / step, j = Math.floor(t), f = t - j;
    w[j] += 1 - f;
    if (j + 1 < bins) w[j + 1] += f;
  }
  const out = new Float64Array(grid.length);
  const norm = 1 / (x.length * bandwidth * Math.sqrt(2 * Math.PI));
  const reach = Math.ceil((5 * bandwidth) / step);
  for (let g = 0; g < grid.length; g++) {
    const c = (grid[g] - a) / step;
    let s = 0;
    for (let j = Math.max(0, Math.floor(c) - reach); j <= Math.min(bins - 1, Math.ceil(c) + reach); j++) {
      if (w[j] === 0) continue;
      const z = ((j - c) * step) / bandwidth;
      s += w[j] * Math.exp(-0.5 * z * z);
    }
    out[g] = s * norm;
  }
  return out;
}

function minOf(x: ArrayLike<number>): number { let m = Infinity; for (let i = 0; i < x.length; i++) if (x[i] < m) m = x[i]; return m; }
function maxOf(x: ArrayLike<number>): number { let m = -Infinity; for (let i = 0; i < x.length; i++) if (x[i] > m) m = x[i]; return m; }

/** n evenly spaced points from a to b inclusive. */
export function linspace(a: number, b: number, n: number): Float64Array {
  return Float64Array.from({ length: n }, (_, i) => a + ((b - a) * i) / Math.max(n - 1, 1));
}

/** 1-Wasserstein distance between two empirical distributions (mean |quantile difference|). */
export function wasserstein1(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const sa = Float64Array.from(a as ArrayLike<number>).sort(), sb = Float64Array.from(b as ArrayLike<number>).sort();
  const m = 1000;
  let d = 0;
  for (let i = 0; i < m; i++) {
    const p = (i + 0.5) / m;
    d += Math.abs(sa[Math.min(sa.length - 1, Math.floor(p * sa.length))] - sb[Math.min(sb.length - 1, Math.floor(p * sb.length))]);
  }
  return d / m;
}

/** A seeded subsample of at most `max` values (all of them when fewer). */
export function subsample(x: ArrayLike<number>, max: number, seed = 0): Float32Array {
  if (x.length <= max) return Float32Array.from(x as ArrayLike<number>);
  const idx = new Rng(seed).permutation(x.length);
  return Float32Array.from({ length: max }, (_, i) => x[idx[i]]);
}

/** One density curve: the values of a density on a grid. */
export interface DensityCurve {
  /** Name of the model / group (legend entry). */
  series: string;
  /** Grid points (ascending). */
  x: ArrayLike<number>;
  /** Density at each grid point (same length as x). */
  density: ArrayLike<number>;
}

/**
 * One common KDE grid for several samples: `size` points from the 0.1% to the 99.9% quantile of
 * all values pooled (so every curve is drawn on the same x and extreme tails do not stretch it).
 */
export function pooledGrid(samples: ReadonlyArray<ArrayLike<number>>, size: number): Float64Array {
  const pooled = Float64Array.from(samples.flatMap((s) => Array.from(s))).sort();
  if (pooled.length < 2) throw new Error('pooledGrid: need at least 2 values');
  const q = (p: number) => pooled[Math.floor(p * (pooled.length - 1))];
  return linspace(q(0.001), q(0.999), size);
}

/** Options of densityCurves. */
export interface DensityCurvesOptions {
  /** Grid points. Default 256. */
  gridSize?: number;
  /** Grid range. Default: the 0.1%–99.9% quantiles of all samples pooled (one common grid). */
  extent?: [number, number];
  /** Kernel bandwidth. Default: Silverman's rule per series. */
  bandwidth?: number;
}

/**
 * Gaussian KDEs of raw samples per series on one common grid, ready for `kdeChart`
 * (binned Gaussian KDE, Silverman bandwidth).
 */
export function densityCurves(samples: Readonly<Record<string, ArrayLike<number>>>, options: DensityCurvesOptions = {}): DensityCurve[] {
  const names = Object.keys(samples);
  if (names.length === 0) throw new Error('densityCurves: no samples');
  const grid = options.extent ? linspace(options.extent[0], options.extent[1], options.gridSize ?? 256) : pooledGrid(names.map((n) => samples[n]), options.gridSize ?? 256);
  return names.map((n) => ({ series: n, x: grid, density: gaussianKDE(samples[n], grid, options.bandwidth ?? silvermanBandwidth(samples[n])) }));
}
