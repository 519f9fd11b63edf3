import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { gaussianKDE, silvermanBandwidth, linspace, wasserstein1, meanStd, subsample } from '../lib/src/util/kde.js';
import { Rng } from '../lib/src/util/rng.js';

function normals(n: number, mu: number, sigma: number, seed: number): Float64Array {
  const r = new Rng(seed);
  return Float64Array.from({ length: n }, () => mu + sigma * Math.sqrt(-2 * Math.log(1 - r.uniform())) * Math.cos(2 * Math.PI * r.uniform()));
}

test('KDE of normal samples approaches the normal density and integrates to 1', () => {
  const x = normals(20000, 1, 2, 1);
  const grid = linspace(-9, 11, 401);
  const f = gaussianKDE(x, grid);
  const dx = grid[1] - grid[0];
  const area = f.reduce((a, v) => a + v * dx, 0);
  assert.ok(Math.abs(area - 1) < 1e-3, `area ${area}`);
  for (const g of [-1, 1, 3]) {
    const i = Math.round((g + 9) / dx);
    const truth = Math.exp(-((g - 1) ** 2) / 8) / (2 * Math.sqrt(2 * Math.PI));
    assert.ok(Math.abs(f[i] - truth) < 0.01, `f(${g}) = ${f[i]} vs ${truth}`);
  }
  // Exact (unbinned) KDE at one point agrees with the binned one.
  const h = silvermanBandwidth(x);
  const exact = x.reduce((a, v) => a + Math.exp(-0.5 * ((0.5 - v) / h) ** 2), 0) / (x.length * h * Math.sqrt(2 * Math.PI));
  const binned = gaussianKDE(x, [0.5], h)[0];
  assert.ok(Math.abs(exact - binned) / exact < 1e-3, `${binned} vs ${exact}`);
  assert.throws(() => gaussianKDE(x, grid, 0), /bandwidth must be > 0/);
});

test('Wasserstein-1 of shifted normals equals the shift; summaries', () => {
  const a = normals(20000, 0, 1, 2), b = normals(20000, 0.5, 1, 3);
  assert.ok(Math.abs(wasserstein1(a, b) - 0.5) < 0.03);
  assert.ok(wasserstein1(a, a) === 0);
  const s = meanStd(a);
  assert.ok(Math.abs(s.mean) < 0.03 && Math.abs(s.std - 1) < 0.03);
  assert.equal(subsample(a, 100, 1).length, 100);
  assert.deepEqual(subsample(a, 100, 1), subsample(a, 100, 1));
});
