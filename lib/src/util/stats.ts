/**
 * Paired statistics for comparing two models on the same examples.
 *
 * Every comparison with the base model is made on the same test examples, so the natural
 * data are two per-example correctness vectors (1 = correct) in the same example order.
 * What matters for a paired difference of accuracies is the 2×2 table of the pairs:
 *
 *                     other right   other wrong
 *     base right         n11           n10
 *     base wrong         n01           n00
 *
 * Δ = acc(other) − acc(base) = (n01 − n10)/n, so only the discordant cells carry signal.
 * This module reports Δ (percentage points) with a confidence interval (paired bootstrap over
 * examples by default, Newcombe's closed form as an option) and the exact McNemar test.
 * Plain JS numbers only (no TF.js): the inputs are small and this runs in notebooks too.
 */
import { Rng } from './rng.js';
import { signed } from './format.js';

/** The 2×2 table of paired outcomes; see the module comment for the cell names. */
export interface PairedCounts {
  /** Number of examples. */
  n: number;
  /** Both right. */
  n11: number;
  /** Base right, other wrong. */
  n10: number;
  /** Base wrong, other right. */
  n01: number;
  /** Both wrong. */
  n00: number;
}

/** How the interval `ci` of a paired comparison is computed. */
export type PairedIntervalMethod = 'bootstrap' | 'newcombe';

/** Options of `pairedComparison`; every field has a default in `DEFAULT_PAIRED`. */
export interface PairedOptions {
  /** Confidence level of the interval, in (0, 1). Default 0.95. */
  level: number;
  /**
   * How `ci` is computed. Default 'bootstrap'.
   * - 'bootstrap': paired percentile bootstrap over examples (examples resampled with
   *   replacement, the same resampled indices for both vectors), `resamples` replicates from
   *   `seed`. Percentiles use linear interpolation between order statistics (numpy/R type 7).
   * - 'newcombe': Newcombe's (1998, Stat. Med. 17:2635) method 10 for paired proportions:
   *   Wilson score intervals of both accuracies combined by "square and add" with the
   *   estimated correlation φ (with Newcombe's continuity correction of φ's numerator, as in
   *   Fagerland et al.'s `Newcombe_square_and_add_CI_paired_2x2`). Closed form, no sampling.
   * The Newcombe interval is reported in `newcombe` whatever this says (it costs nothing).
   * An "exact" interval is not offered: the exact part is the McNemar p-value; the exact
   * conditional (Clopper–Pearson on n01/(n01+n10)) interval ignores the variability of the
   * number of discordant pairs and is known to be poor (Newcombe 1998).
   */
  method: PairedIntervalMethod;
  /** Bootstrap replicates (integer ≥ 1; only for 'bootstrap'). Default 10000. */
  resamples: number;
  /** Seed of the bootstrap's `Rng` (only for 'bootstrap'). Default 0. */
  seed: number;
}

/** Defaults of `PairedOptions`: 95% paired bootstrap, 10,000 resamples, seed 0. */
export const DEFAULT_PAIRED: PairedOptions = { level: 0.95, method: 'bootstrap', resamples: 10000, seed: 0 };

/**
 * Result of `pairedComparison`: plain JSON (numbers and tuples only), so it can go straight
 * into an experiment record. Accuracies in percent, Δ and intervals in percentage points.
 */
export interface PairedComparison extends PairedCounts {
  /** Accuracy of `base`, percent. */
  accBase: number;
  /** Accuracy of `other`, percent. */
  accOther: number;
  /** accOther − accBase, percentage points (= 100·(n01 − n10)/n). */
  delta: number;
  /** Interval for Δ at `level` by `method`, percentage points, [lower, upper]. */
  ci: [number, number];
  /** Newcombe's method-10 interval for Δ at `level` (always computed), percentage points. */
  newcombe: [number, number];
  /**
   * Exact two-sided McNemar p-value: min(1, 2·P[X ≤ min(n01, n10)]), X ~ Bin(n01 + n10, ½);
   * 1 when there are no discordant pairs.
   */
  mcnemarP: number;
  /** The options used (defaults filled in). */
  options: PairedOptions;
}

/** Validates two paired 0/1 vectors and counts the cells of their 2×2 table. */
export function pairedCounts(base: ArrayLike<number>, other: ArrayLike<number>): PairedCounts {
  if (base.length !== other.length) {
    throw new Error(`paired comparison: the vectors differ in length (base ${base.length}, other ${other.length}); they must hold the same examples in the same order`);
  }
  const n = base.length;
  if (n === 0) throw new Error('paired comparison: no examples (empty vectors)');
  let n11 = 0, n10 = 0, n01 = 0;
  for (let i = 0; i < n; i++) {
    const a = base[i], b = other[i];
    if ((a !== 0 && a !== 1) || (b !== 0 && b !== 1)) {
      const [which, v] = a !== 0 && a !== 1 ? ['base', a] : ['other', b];
      throw new Error(`paired comparison: ${which}[${i}] = ${v}; correctness vectors must hold only 0 and 1`);
    }
    if (a === 1) { if (b === 1) n11++; else n10++; } else if (b === 1) n01++;
  }
  return { n, n11, n10, n01, n00: n - n11 - n10 - n01 };
}

/**
 * Paired comparison of two models on the same examples: accuracies, Δ = other − base with an
 * interval, discordant counts and the exact McNemar p-value.
 * @param base per-example correctness (0/1) of the reference model, e.g. the AT model
 * @param other per-example correctness of the compared model, same examples, same order
 * @param options merged over `DEFAULT_PAIRED`
 * Throws on a length mismatch, an empty input or a value other than 0/1.
 */
export function pairedComparison(base: ArrayLike<number>, other: ArrayLike<number>, options: Partial<PairedOptions> = {}): PairedComparison {
  return pairedComparisonFromCounts(pairedCounts(base, other), options);
}

/**
 * `pairedComparison` from the 2×2 table alone (e.g. counts stored in a record): the result
 * depends on the vectors only through these counts (see `bootstrapDeltas`).
 */
export function pairedComparisonFromCounts(counts: PairedCounts, options: Partial<PairedOptions> = {}): PairedComparison {
  // Fields passed as undefined keep their defaults.
  const o: PairedOptions = { ...DEFAULT_PAIRED, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
  const { n, n11, n10, n01, n00 } = counts;
  for (const [k, v] of Object.entries({ n11, n10, n01, n00 })) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`paired comparison: count ${k} = ${v} is not a non-negative integer`);
  }
  if (n !== n11 + n10 + n01 + n00 || n === 0) throw new Error(`paired comparison: n = ${n} must be the (positive) sum of the four cells`);
  if (!(o.level > 0 && o.level < 1)) throw new Error(`paired comparison: level ${o.level} must be in (0, 1)`);
  if (o.method !== 'bootstrap' && o.method !== 'newcombe') throw new Error(`paired comparison: unknown method '${String(o.method)}' (bootstrap | newcombe)`);
  if (o.method === 'bootstrap' && !(Number.isInteger(o.resamples) && o.resamples >= 1)) throw new Error(`paired comparison: resamples ${o.resamples} must be an integer ≥ 1`);

  const newcombe = newcombePairedInterval(counts, o.level);
  let ci: [number, number];
  if (o.method === 'newcombe') {
    ci = newcombe;
  } else {
    const deltas = bootstrapDeltas(counts, o.resamples, o.seed);
    const tail = (1 - o.level) / 2;
    ci = [quantileSorted(deltas, tail), quantileSorted(deltas, 1 - tail)];
  }
  return {
    n, n11, n10, n01, n00,
    accBase: (100 * (n11 + n10)) / n,
    accOther: (100 * (n11 + n01)) / n,
    delta: (100 * (n01 - n10)) / n,
    ci,
    newcombe,
    mcnemarP: mcnemarExactP(n01, n10),
    options: o,
  };
}

/**
 * Sorted bootstrap replicates of Δ (percentage points) for the paired percentile bootstrap.
 *
 * Equivalence used for speed: resampling n example indices with replacement and counting the
 * cells of the resampled pairs gives exactly a Multinomial(n; n11/n, n10/n, n01/n, n00/n)
 * vector of cell counts (each draw lands in a cell with probability cell/n, independently),
 * and the resampled Δ* = (n01* − n10*)/n depends on nothing else. So instead of n index
 * draws per replicate we draw the multinomial as two binomials: the number of discordant
 * pairs D* ~ Bin(n, (n01 + n10)/n), then n01* | D* ~ Bin(D*, n01/(n01 + n10)), n10* = D* − n01*.
 * Each binomial is drawn by inversion (one uniform of the seeded `Rng`) from a CDF table
 * truncated where the relative probability falls below 1e-20 (far below the 2^-32 resolution
 * of the uniforms), so a replicate costs O(log n): n = 10,000 with 10,000 replicates takes
 * milliseconds instead of 10^8 index draws.
 */
export function bootstrapDeltas(counts: PairedCounts, resamples: number, seed: number): Float64Array {
  const { n, n10, n01 } = counts;
  const out = new Float64Array(resamples);
  const d = n01 + n10;
  if (d === 0) return out; // no discordant pairs: every replicate has Δ* = 0
  const rng = new Rng(seed);
  const discordant = new BinomialTable(n, d / n);
  const q = n01 / d;
  const conditional = new Map<number, BinomialTable>(); // one table per value of D*
  for (let r = 0; r < resamples; r++) {
    const dStar = discordant.sample(rng.uniform());
    let table = conditional.get(dStar);
    if (!table) conditional.set(dStar, (table = new BinomialTable(dStar, q)));
    const n01Star = table.sample(rng.uniform());
    out[r] = (100 * (2 * n01Star - dStar)) / n;
  }
  return out.sort();
}

/**
 * Binomial(n, p) sampler by inversion of a CDF table over [lo, hi] around the mode, built by
 * the pmf ratio recurrence (no factorials, so no overflow for large n).
 */
class BinomialTable {
  private readonly lo: number;
  private readonly cum: Float64Array;
  constructor(n: number, p: number) {
    if (p <= 0 || n === 0) { this.lo = 0; this.cum = Float64Array.of(1); return; }
    if (p >= 1) { this.lo = n; this.cum = Float64Array.of(1); return; }
    const CUT = 1e-20;
    const odds = p / (1 - p);
    const mode = Math.min(n, Math.floor((n + 1) * p));
    const down: number[] = []; // relative pmf at mode−1, mode−2, …
    for (let k = mode, w = 1; k > 0; k--) {
      w *= k / ((n - k + 1) * odds); // pmf(k−1)/pmf(k)
      if (w < CUT) break;
      down.push(w);
    }
    const up: number[] = []; // relative pmf at mode+1, mode+2, …
    for (let k = mode, w = 1; k < n; k++) {
      w *= ((n - k) / (k + 1)) * odds; // pmf(k+1)/pmf(k)
      if (w < CUT) break;
      up.push(w);
    }
    this.lo = mode - down.length;
    const weights = [...down.reverse(), 1, ...up];
    this.cum = new Float64Array(weights.length);
    let s = 0;
    weights.forEach((w, i) => { s += w; this.cum[i] = s; });
  }
  /** The value whose CDF interval holds u ∈ [0, 1). */
  sample(u: number): number {
    const cum = this.cum;
    const target = u * cum[cum.length - 1];
    let a = 0, b = cum.length - 1; // first index with cum > target
    while (a < b) {
      const m = (a + b) >>> 1;
      if (cum[m] > target) b = m; else a = m + 1;
    }
    return this.lo + a;
  }
}

/** Quantile (linear interpolation between order statistics, numpy/R type 7) of sorted data. */
export function quantileSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) throw new Error('quantile of an empty sample');
  const h = (sorted.length - 1) * Math.min(1, Math.max(0, p));
  const i = Math.floor(h);
  const f = h - i;
  return f === 0 ? sorted[i] : sorted[i] + f * (sorted[i + 1] - sorted[i]);
}

/**
 * Exact two-sided McNemar test: p = min(1, 2·P[X ≤ min(n01, n10)]) with
 * X ~ Bin(n01 + n10, ½) (the discordant pairs split evenly under H0). 1 when n01 = n10 = 0.
 * Up to 50 discordant pairs the sum is done in exact integers (binomial coefficients < 2^53)
 * and divided by a power of two, so the result is the correctly rounded double
 * (n01 = 1, n10 = 9 → 0.021484375). Beyond, it is computed in log space relative to the
 * largest term, stable for any count (a p-value below ~1e-308 underflows to 0).
 */
export function mcnemarExactP(n01: number, n10: number): number {
  for (const [k, v] of Object.entries({ n01, n10 })) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`McNemar: ${k} = ${v} is not a non-negative integer`);
  }
  const m = n01 + n10;
  const k = Math.min(n01, n10);
  if (m === 0 || 2 * k >= m) return 1; // P[X ≤ m/2] ≥ ½ for the symmetric binomial
  if (m <= 50) {
    let c = 1, s = 1; // C(m, 0)
    for (let i = 0; i < k; i++) { c = (c * (m - i)) / (i + 1); s += c; }
    return Math.min(1, s / 2 ** (m - 1));
  }
  // log C(m, k) = Σ_{j=1..k} log((m − k + j)/j)
  let logC = 0;
  for (let j = 1; j <= k; j++) logC += Math.log((m - k + j) / j);
  // Σ_{i≤k} C(m,i)/C(m,k): terms shrink geometrically below k (k < m/2).
  let s = 1;
  for (let i = k, r = 1; i > 0; i--) {
    r *= i / (m - i + 1); // C(m, i−1)/C(m, i)
    s += r;
    if (r < 1e-17 * s) break;
  }
  return Math.min(1, Math.exp(Math.LN2 + logC + Math.log(s) - m * Math.LN2));
}

/**
 * Newcombe's method-10 interval for a paired difference of proportions (other − base), in
 * percentage points: Wilson intervals [l1, u1] of base's accuracy p1 and [l2, u2] of other's
 * p2, combined as Δ − √((p2−l2)² − 2φ(p2−l2)(u1−p1) + (u1−p1)²) and
 * Δ + √((u2−p2)² − 2φ(u2−p2)(p1−l1) + (p1−l1)²), where φ is the phi coefficient of the 2×2
 * table with its numerator A = n11·n00 − n10·n01 corrected as Newcombe does (A − n/2 if
 * A > n/2, 0 if 0 ≤ A ≤ n/2, A if A < 0) and φ = 0 if a margin is empty.
 */
export function newcombePairedInterval(counts: PairedCounts, level = 0.95): [number, number] {
  const { n, n11, n10, n01, n00 } = counts;
  const z = normalQuantile(1 - (1 - level) / 2);
  const x1 = n11 + n10, x2 = n11 + n01;
  const p1 = x1 / n, p2 = x2 / n;
  const [l1, u1] = wilsonInterval(x1, n, z);
  const [l2, u2] = wilsonInterval(x2, n, z);
  const margins = [x1, n - x1, x2, n - x2];
  let phi = 0;
  if (margins.every((m) => m > 0)) {
    const a = n11 * n00 - n10 * n01;
    const corrected = a > n / 2 ? a - n / 2 : a >= 0 ? 0 : a;
    phi = corrected / Math.sqrt(margins.reduce((s, m) => s * m, 1));
  }
  const delta = p2 - p1;
  const lower = delta - Math.sqrt(Math.max(0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2));
  const upper = delta + Math.sqrt(Math.max(0, (u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2));
  return [100 * lower, 100 * upper];
}

/** Wilson score interval [lower, upper] (proportions) for x successes out of n at normal quantile z. */
export function wilsonInterval(x: number, n: number, z: number): [number, number] {
  const z2 = z * z;
  const centre = (x + z2 / 2) / (n + z2);
  const half = (z * Math.sqrt((x * (n - x)) / n + z2 / 4)) / (n + z2);
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/**
 * Standard normal CDF Φ(x), to ~1e-15 relative: Φ(x) = erfc(−x/√2)/2, with erfc from its
 * power series below 3 and its continued fraction above (both without cancellation).
 */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

function erfc(z: number): number {
  if (Number.isNaN(z)) return NaN;
  if (z < 0) return 2 - erfc(-z);
  if (z < 3) {
    // erf(z) = 2/√π · e^{−z²} · Σ_{k≥0} (2z²)^k z / (1·3·…·(2k+1)): positive terms only.
    let term = z, sum = z;
    for (let k = 1; k < 200; k++) {
      term *= (2 * z * z) / (2 * k + 1);
      sum += term;
      if (term < 1e-17 * sum) break;
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * Math.exp(-z * z) * sum;
  }
  if (z > 27) return 0; // below the smallest double
  // erfc(z) = e^{−z²}/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …)))), evaluated backwards.
  let f = z;
  for (let k = 120; k >= 1; k--) f = z + k / 2 / f;
  return Math.exp(-z * z) / (Math.sqrt(Math.PI) * f);
}

/** Standard normal quantile Φ⁻¹(p) for p ∈ (0, 1) (bisection on `normalCdf`, then Newton). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new Error(`normal quantile: p = ${p} must be in (0, 1)`);
  let a = -38, b = 38;
  for (let i = 0; i < 80 && b - a > 1e-12; i++) {
    const m = (a + b) / 2;
    if (normalCdf(m) < p) a = m; else b = m;
  }
  let x = (a + b) / 2;
  for (let i = 0; i < 2; i++) {
    const pdf = Math.exp(-x * x / 2) / Math.sqrt(2 * Math.PI);
    if (pdf > 0) x -= (normalCdf(x) - p) / pdf;
  }
  return x;
}

/** Mean, sample standard deviation (n − 1 denominator; NaN for a single value) and count. */
export interface SeedSummary {
  mean: number;
  std: number;
  n: number;
}

/**
 * Summary of one metric over seeds, for "mean ± std" tables. Throws on an empty list or a
 * non-finite value (a missing run should be noticed, not averaged away).
 */
export function summarizeSeeds(values: ArrayLike<number>): SeedSummary {
  const n = values.length;
  if (n === 0) throw new Error('summarizeSeeds: no values');
  let sum = 0;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(values[i])) throw new Error(`summarizeSeeds: value ${i} is ${values[i]}`);
    sum += values[i];
  }
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (values[i] - mean) ** 2;
  return { mean, std: n > 1 ? Math.sqrt(ss / (n - 1)) : NaN, n };
}

/** "85.21 ± 0.13" (or "85.21" for a single seed), `digits` decimals (default 2); `sign` writes the mean with its sign ("+0.42 ± 0.13", a change). */
export function formatMeanStd(s: SeedSummary, digits = 2, sign = false): string {
  const mean = sign ? signed(s.mean, digits) : s.mean.toFixed(digits);
  return s.n > 1 ? `${mean} ± ${s.std.toFixed(digits)}` : mean;
}


/** A p-value: 4 decimals down to 1e-4 ("0.0004"), then 2 significant digits ("3.2e-12"). */
export function formatP(p: number): string {
  if (p >= 1) return '1';
  return p >= 1e-4 ? p.toFixed(4) : p === 0 ? '<1e-300' : p.toExponential(1);
}

/** An interval of a change for a table cell: "[+0.62, +1.75]" (`digits` decimals, default 2). */
export function formatCI(ci: readonly [number, number], digits = 2): string {
  return `[${signed(ci[0], digits)}, ${signed(ci[1], digits)}]`;
}

/** Δ with its interval for a table cell: "+1.19 [+0.62, +1.75]" (`digits` decimals, default 2). */
export function formatDeltaCI(delta: number, ci: readonly [number, number], digits = 2): string {
  return `${signed(delta, digits)} ${formatCI(ci, digits)}`;
}

/**
 * One line for a table or log: "+1.19 [+0.62, +1.75] pp (McNemar p=0.0004)", with `digits`
 * decimals for Δ and its interval (default 2).
 */
export function formatDelta(c: Pick<PairedComparison, 'delta' | 'ci' | 'mcnemarP'>, digits = 2): string {
  return `${formatDeltaCI(c.delta, c.ci, digits)} pp (McNemar p=${formatP(c.mcnemarP)})`;
}

/** Δ over several seeds of the same comparison on the same examples. */
export interface MultiSeedDelta {
  n: number;
  seeds: number;
  /** Mean over seeds of (other − base) accuracy, percentage points. */
  delta: number;
  /** Percentile interval of a bootstrap over EXAMPLES (each resample averages the seeds on it). */
  ci: [number, number];
}

/**
 * Paired Δ averaged over seeds: per example dᵢ = mean_s(otherₛ[i] − base[i]); the interval
 * resamples examples (not seed×example pairs, which would treat repeated examples as
 * independent and understate the uncertainty). With one seed it equals the paired bootstrap.
 */
export function multiSeedDelta(base: ArrayLike<number>, others: ReadonlyArray<ArrayLike<number>>, options: Partial<PairedOptions> = {}): MultiSeedDelta {
  const o: PairedOptions = { ...DEFAULT_PAIRED, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
  if (!others.length) throw new Error('multiSeedDelta: need at least one run');
  const n = base.length;
  for (const x of others) pairedCounts(base, x); // validates lengths and 0/1 values
  const d = new Float64Array(n);
  for (const x of others) for (let i = 0; i < n; i++) d[i] += (x[i] - base[i]) / others.length;
  const mean = d.reduce((a, v) => a + v, 0) / n;
  const rng = new Rng(o.seed);
  const stats = new Float64Array(o.resamples);
  for (let r = 0; r < o.resamples; r++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += d[rng.int(n)];
    stats[r] = (100 * s) / n;
  }
  stats.sort();
  const a = (1 - o.level) / 2;
  return { n, seeds: others.length, delta: 100 * mean, ci: [quantileSorted(stats, a), quantileSorted(stats, 1 - a)] };
}
