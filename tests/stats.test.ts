import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  pairedComparison, pairedComparisonFromCounts, pairedCounts, bootstrapDeltas, mcnemarExactP,
  newcombePairedInterval, wilsonInterval, normalCdf, normalQuantile, quantileSorted,
  summarizeSeeds, formatCI, formatDelta, formatMeanStd, formatP, type PairedCounts,
} from '../lib/src/util/stats.js';
import { Rng } from '../lib/src/util/rng.js';

const close = (actual: number, expected: number, rel: number, what = '') =>
  assert.ok(Math.abs(actual - expected) <= rel * Math.abs(expected), `${what}: ${actual} vs ${expected} (rel tol ${rel})`);

/** Correctness vectors with the given 2×2 cells, interleaved (order does not matter for paired statistics). */
function vectors(c: Omit<PairedCounts, 'n'>): [Uint8Array, Uint8Array] {
  const cells: Array<[number, number, number]> = [[1, 1, c.n11], [1, 0, c.n10], [0, 1, c.n01], [0, 0, c.n00]];
  const base: number[] = [], other: number[] = [];
  for (const [a, b, k] of cells) for (let i = 0; i < k; i++) { base.push(a); other.push(b); }
  const perm = new Rng(1).permutation(base.length);
  return [Uint8Array.from(perm, (i) => base[i]), Uint8Array.from(perm, (i) => other[i])];
}

/** Random paired data: cell probabilities (p11, p10, p01, rest), n examples. */
function simulate(n: number, p10: number, p01: number, seed: number): [Uint8Array, Uint8Array] {
  const rng = new Rng(seed);
  const a = new Uint8Array(n), b = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const u = rng.uniform();
    if (u < p10) a[i] = 1; // base right, other wrong
    else if (u < p10 + p01) b[i] = 1; // base wrong, other right
    else if (u < 0.7) { a[i] = 1; b[i] = 1; } // both right (p11 = 0.7 − p10 − p01)
  }
  return [a, b];
}

test('exact McNemar p-value: textbook table, symmetric and empty cases', () => {
  // n01 = 1, n10 = 9: 2·P[Bin(10, ½) ≤ 1] = 2·(1 + 10)/1024, exactly representable.
  assert.equal(mcnemarExactP(1, 9), 0.021484375);
  assert.equal(mcnemarExactP(9, 1), 0.021484375);
  assert.equal(mcnemarExactP(5, 5), 1);
  assert.equal(mcnemarExactP(25, 26), 1);
  assert.equal(mcnemarExactP(0, 0), 1);
  assert.equal(mcnemarExactP(0, 1), 1);
  assert.equal(mcnemarExactP(0, 3), 0.25); // 2·(1/8)
  // Reference values: scipy.stats.binomtest(k, n, 0.5).pvalue (two-sided), either side of the
  // switch from exact integers (≤ 50 discordant pairs) to log space.
  close(mcnemarExactP(20, 30), 0.20263875106454066, 1e-13, '20/30');
  close(mcnemarExactP(20, 31), 0.16077960181198847, 1e-12, '20/31');
  close(mcnemarExactP(450, 550), 0.0017305360849763027, 1e-10, '450/550');
  close(mcnemarExactP(4500, 5500), 1.5510640568246638e-23, 1e-9, '4500/5500');
  close(mcnemarExactP(0, 100), 1.5777218104420236e-30, 1e-12, '0/100');
  assert.throws(() => mcnemarExactP(-1, 3), /non-negative integer/);
  assert.throws(() => mcnemarExactP(1.5, 3), /non-negative integer/);
});

test('exact McNemar agrees with the continuity-corrected normal approximation for large counts', () => {
  for (const [a, b] of [[450, 550], [4900, 5100], [2000, 2300]]) {
    const z = (Math.abs(a - b) - 1) / Math.sqrt(a + b);
    close(mcnemarExactP(a, b), 2 * (1 - normalCdf(z)), 0.03, `${a}/${b}`);
  }
  close(mcnemarExactP(4900, 5100), 0.04658552770494645, 1e-9, '4900/5100 (scipy)');
});

test('normal CDF and quantile match reference values', () => {
  // scipy.stats.norm.cdf / norm.ppf
  close(normalCdf(-8), 6.22096057427174e-16, 1e-12, 'cdf(-8)');
  close(normalCdf(-2), 0.022750131948179195, 1e-13, 'cdf(-2)');
  close(normalCdf(-3.5), 0.00023262907903552502, 1e-12, 'cdf(-3.5)');
  close(normalCdf(0.5), 0.6914624612740131, 1e-14, 'cdf(0.5)');
  close(normalQuantile(0.975), 1.959963984540054, 1e-13, 'ppf(0.975)');
  close(normalQuantile(0.995), 2.5758293035489004, 1e-13, 'ppf(0.995)');
  close(normalQuantile(1e-10), -6.361340902404056, 1e-12, 'ppf(1e-10)');
  assert.throws(() => normalQuantile(1), /in \(0, 1\)/);
});

test('Wilson and Newcombe intervals match a scipy-based reference', () => {
  // scipy.stats.binomtest(81, 263).proportion_ci(method='wilson')
  const [lo, hi] = wilsonInterval(81, 263, normalQuantile(0.975));
  close(lo, 0.2552885198782742, 1e-12, 'wilson lo');
  close(hi, 0.36620957698280004, 1e-12, 'wilson hi');
  // Newcombe (1998) method 10, reference computed independently in Python from scipy's Wilson
  // intervals with the same formula; (n11, n10, n01, n00) → interval for other − base, pp.
  const cases: Array<[number[], [number, number]]> = [
    [[12, 9, 2, 21], [-29.537178064660928, -1.1242503551198406]],
    [[1, 1, 7, 12], [2.5559124164859837, 50.6920226686141]], // Bentur et al. 2009 table (Fagerland et al.)
    [[59, 6, 16, 80], [0.4625113933050054, 11.862119563870996]], // Cavo et al. 2012 table
  ];
  for (const [[n11, n10, n01, n00], [l, u]] of cases) {
    const ci = newcombePairedInterval({ n: n11 + n10 + n01 + n00, n11, n10, n01, n00 });
    close(ci[0], l, 1e-9, `newcombe lo ${[n11, n10, n01, n00]}`);
    close(ci[1], u, 1e-9, `newcombe hi ${[n11, n10, n01, n00]}`);
  }
});

test('pairedComparison: counts, accuracies, delta, McNemar and formatting', () => {
  const [base, other] = vectors({ n11: 80, n10: 1, n01: 9, n00: 10 });
  const c = pairedComparison(base, other);
  assert.deepEqual([c.n, c.n11, c.n10, c.n01, c.n00], [100, 80, 1, 9, 10]);
  assert.equal(c.accBase, 81);
  assert.equal(c.accOther, 89);
  assert.equal(c.delta, 8);
  assert.equal(c.mcnemarP, 0.021484375);
  assert.equal(c.options.method, 'bootstrap');
  assert.equal(c.options.resamples, 10000);
  assert.ok(c.ci[0] < c.delta && c.delta < c.ci[1], `delta inside ${c.ci}`);
  assert.ok(c.ci[0] > 0, 'this difference is clearly positive');
  assert.deepEqual(JSON.parse(JSON.stringify(c)), c, 'plain JSON');
  // Order of examples is irrelevant; only the pairing is.
  assert.deepEqual(pairedComparison(base.slice().reverse(), other.slice().reverse()), c);
  // Plain arrays work as well as Uint8Array.
  assert.deepEqual(pairedComparison(Array.from(base), Array.from(other)), c);
  const nc = pairedComparison(base, other, { method: 'newcombe' });
  assert.deepEqual(nc.ci, nc.newcombe);
  assert.deepEqual(nc.newcombe, c.newcombe);
  assert.deepEqual(pairedComparisonFromCounts(pairedCounts(base, other)), c);
});

test('formatDelta, formatP, summarizeSeeds, formatMeanStd', () => {
  assert.equal(formatDelta({ delta: 1.19, ci: [0.62, 1.75], mcnemarP: 0.0004 }), '+1.19 [+0.62, +1.75] pp (McNemar p=0.0004)');
  assert.equal(formatDelta({ delta: -0.5, ci: [-1.004, -0.001], mcnemarP: 1 }), '-0.50 [-1.00, +0.00] pp (McNemar p=1)');
  assert.equal(formatDelta({ delta: 0.123, ci: [0, 0.3], mcnemarP: 0.5 }, 1), '+0.1 [+0.0, +0.3] pp (McNemar p=0.5000)');
  assert.equal(formatCI([-1.004, -0.001]), '[-1.00, +0.00]', 'the interval alone, same signs as in formatDelta');
  assert.equal(formatP(3.2e-12), '3.2e-12');
  const s = summarizeSeeds([1, 2, 3, 4]);
  assert.equal(s.n, 4);
  assert.equal(s.mean, 2.5);
  close(s.std, Math.sqrt(5 / 3), 1e-15, 'sample std');
  assert.equal(formatMeanStd(s), '2.50 ± 1.29');
  const one = summarizeSeeds([85.2]);
  assert.ok(Number.isNaN(one.std), 'std of one value is undefined');
  assert.equal(formatMeanStd(one), '85.20');
  assert.throws(() => summarizeSeeds([]), /no values/);
  assert.throws(() => summarizeSeeds([1, NaN]), /value 1 is NaN/);
});

test('bootstrap: deterministic per seed, [0, 0] for identical vectors', () => {
  const [a, b] = simulate(2000, 0.04, 0.06, 3);
  const c1 = pairedComparison(a, b, { seed: 7, resamples: 2000 });
  const c2 = pairedComparison(a, b, { seed: 7, resamples: 2000 });
  assert.deepEqual(c1, c2);
  const c3 = pairedComparison(a, b, { seed: 8, resamples: 2000 });
  assert.notDeepEqual(c3.ci, c1.ci, 'another seed gives other replicates');
  close(c3.ci[0], c1.ci[0], 0.25, 'but a similar interval');

  const same = pairedComparison(a, a);
  assert.deepEqual([same.delta, same.ci, same.mcnemarP, same.n01, same.n10], [0, [0, 0], 1, 0, 0]);
  const allRight = pairedComparison(new Uint8Array(50).fill(1), new Uint8Array(50).fill(1));
  assert.deepEqual(allRight.ci, [0, 0]);
  assert.ok(allRight.newcombe[0] <= 0 && allRight.newcombe[1] >= 0);
});

test('bootstrap over cell counts is the index bootstrap: same distribution of Δ*', () => {
  const counts = pairedCounts(...vectors({ n11: 300, n10: 25, n01: 40, n00: 35 }));
  const { n, n10, n01 } = counts;
  const fast = bootstrapDeltas(counts, 10000, 1);
  // Resampling indices: Δ* = 100·(n01* − n10*)/n, whose exact variance is 100²·(p01 + p10 − (p01 − p10)²)/n.
  const [p01, p10] = [n01 / n, n10 / n];
  const sdExact = 100 * Math.sqrt((p01 + p10 - (p01 - p10) ** 2) / n);
  const mean = fast.reduce((s, x) => s + x, 0) / fast.length;
  const sd = Math.sqrt(fast.reduce((s, x) => s + (x - mean) ** 2, 0) / (fast.length - 1));
  close(mean, (100 * (n01 - n10)) / n, 0.03, 'bootstrap mean');
  close(sd, sdExact, 0.03, 'bootstrap sd');
  // The naive index bootstrap on the vectors gives the same percentiles (up to Monte Carlo error).
  const [a, b] = vectors(counts);
  const rng = new Rng(2);
  const naive = new Float64Array(4000);
  for (let r = 0; r < naive.length; r++) {
    let d = 0;
    for (let i = 0; i < n; i++) { const j = rng.int(n); d += b[j] - a[j]; }
    naive[r] = (100 * d) / n;
  }
  naive.sort();
  for (const p of [0.025, 0.5, 0.975]) {
    assert.ok(Math.abs(quantileSorted(fast, p) - quantileSorted(naive, p)) <= 0.15 * sdExact + 0.26, `quantile ${p}: ${quantileSorted(fast, p)} vs ${quantileSorted(naive, p)}`);
  }
});

test('bootstrap CI covers the true Δ about 95% of the time and shrinks like 1/√n', () => {
  const trueDelta = 100 * (0.06 - 0.04);
  let covered = 0;
  const trials = 60;
  for (let t = 0; t < trials; t++) {
    const [a, b] = simulate(1000, 0.04, 0.06, 100 + t);
    const { ci } = pairedComparison(a, b, { seed: t, resamples: 2000 });
    if (ci[0] <= trueDelta && trueDelta <= ci[1]) covered++;
  }
  assert.ok(covered >= 52 && covered <= 60, `covered ${covered}/${trials}`);

  const width = (n: number) => {
    const k = n / 100; // same cell proportions at every n
    const c = pairedComparison(...vectors({ n11: 70 * k, n10: 4 * k, n01: 6 * k, n00: 20 * k }));
    return c.ci[1] - c.ci[0];
  };
  const ratio = width(1000) / width(16000);
  assert.ok(ratio > 3.6 && ratio < 4.4, `width ratio for 16× the examples: ${ratio} (expected ≈ 4)`);
});

test('bootstrap with n = 10,000 and 10,000 resamples is fast and agrees with Newcombe', () => {
  const counts = { n: 10000, n11: 8000, n10: 300, n01: 419, n00: 1281 };
  const t0 = performance.now();
  const c = pairedComparisonFromCounts(counts);
  const ms = performance.now() - t0;
  assert.ok(ms < 500, `took ${ms.toFixed(0)} ms`);
  assert.equal(c.delta, 1.19);
  close(c.ci[0], c.newcombe[0], 0.05, 'lower');
  close(c.ci[1], c.newcombe[1], 0.05, 'upper');
  // Through the vectors too (the counting pass is O(n)).
  const t1 = performance.now();
  pairedComparison(...vectors(counts));
  assert.ok(performance.now() - t1 < 500);
});

test('input validation gives clear errors', () => {
  const a = Uint8Array.of(1, 0, 1);
  assert.throws(() => pairedComparison(a, Uint8Array.of(1, 0)), /differ in length \(base 3, other 2\)/);
  assert.throws(() => pairedComparison(a, Uint8Array.of(1, 2, 0)), /other\[1\] = 2; correctness vectors must hold only 0 and 1/);
  assert.throws(() => pairedComparison([1, 0.5, 0], a), /base\[1\] = 0.5/);
  assert.throws(() => pairedComparison(new Uint8Array(0), new Uint8Array(0)), /no examples/);
  assert.throws(() => pairedComparison(a, a, { level: 95 }), /level 95 must be in \(0, 1\)/);
  assert.throws(() => pairedComparison(a, a, { resamples: 0 }), /resamples 0/);
  assert.throws(() => pairedComparison(a, a, { method: 'exact' as never }), /unknown method 'exact'/);
  assert.throws(() => pairedComparisonFromCounts({ n: 5, n11: 1, n10: 1, n01: 1, n00: 1 }), /sum of the four cells/);
});

test('multiSeedDelta: one seed matches the paired bootstrap; averaging seeds; resamples examples', async () => {
  const { multiSeedDelta, pairedComparison } = await import('../lib/src/util/stats.js');
  const { Rng } = await import('../lib/src/util/rng.js');
  const r = new Rng(3);
  const base = Uint8Array.from({ length: 2000 }, () => (r.uniform() < 0.6 ? 1 : 0));
  const flip = (p: number, seed: number) => { const q = new Rng(seed); return base.map((v) => (q.uniform() < p ? 1 - v : v)); };
  const a = flip(0.05, 1), b = flip(0.05, 2);
  const one = multiSeedDelta(base, [a], { resamples: 4000 });
  const pc = pairedComparison(base, a, { resamples: 4000 });
  assert.ok(Math.abs(one.delta - pc.delta) < 1e-9);
  assert.ok(Math.abs(one.ci[0] - pc.ci[0]) < 0.35 && Math.abs(one.ci[1] - pc.ci[1]) < 0.35, `${one.ci} vs ${pc.ci}`);
  const two = multiSeedDelta(base, [a, b], { resamples: 4000 });
  assert.ok(Math.abs(two.delta - (pairedComparison(base, a).delta + pairedComparison(base, b).delta) / 2) < 1e-9);
  assert.ok(two.ci[0] <= two.delta && two.delta <= two.ci[1]);
  assert.throws(() => multiSeedDelta(base, []), /at least one run/);
});
