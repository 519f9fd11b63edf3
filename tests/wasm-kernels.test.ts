import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../lib/src/engine/engine.js';
import { mulberry32 } from '../lib/src/util/rng.js';

interface Case { name: string; x: [number, number, number, number]; k: number; ci: number; co: number; stride: number; pad: 'same' | 'valid' | number }
const CASES: Case[] = [
  { name: '3x3 stride 1 explicit pad 1', x: [2, 8, 8, 3], k: 3, ci: 3, co: 5, stride: 1, pad: 1 },
  { name: '3x3 stride 2 explicit pad 1', x: [3, 9, 10, 4], k: 3, ci: 4, co: 6, stride: 2, pad: 1 },
  { name: '3x3 stride 2 same', x: [2, 8, 8, 4], k: 3, ci: 4, co: 3, stride: 2, pad: 'same' },
  { name: '3x3 stride 1 valid', x: [1, 7, 6, 2], k: 3, ci: 2, co: 4, stride: 1, pad: 'valid' },
  { name: '1x1 stride 2 valid (shortcut)', x: [2, 8, 8, 6], k: 1, ci: 6, co: 8, stride: 2, pad: 'valid' },
  { name: '1x1 stride 1', x: [5, 4, 4, 3], k: 1, ci: 3, co: 2, stride: 1, pad: 0 },
];

function rand(n: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

function grads(c: Case): { y: Float32Array; dx: Float32Array; dw: Float32Array } {
  return tf.tidy(() => {
    const x = tf.tensor4d(rand(c.x.reduce((a, b) => a * b), 1), c.x);
    const w = tf.tensor4d(rand(c.k * c.k * c.ci * c.co, 2), [c.k, c.k, c.ci, c.co]);
    const f = (a: tf.Tensor4D, b: tf.Tensor4D) => tf.conv2d(a, b, c.stride, c.pad);
    const y = f(x, w);
    const dyv = tf.tensor(rand(y.size, 3), y.shape);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => f(a as tf.Tensor4D, b as tf.Tensor4D).mul(dyv).sum())([x, w]);
    return { y: y.dataSync() as Float32Array, dx: dx.dataSync() as Float32Array, dw: dw.dataSync() as Float32Array };
  });
}

function maxRelErr(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num = Math.max(num, Math.abs(a[i] - b[i])); den = Math.max(den, Math.abs(b[i])); }
  return num / Math.max(den, 1e-12);
}

test('composed wasm Conv2D gradients match the cpu backend (rel err < 1e-4)', async () => {
  await initEngine({ backend: 'cpu' });
  const ref = CASES.map(grads);
  await initEngine({ backend: 'wasm' });
  CASES.forEach((c, i) => {
    const before = tf.memory().numTensors;
    const got = grads(c);
    assert.equal(tf.memory().numTensors, before, `${c.name}: tensor leak`);
    for (const key of ['y', 'dx', 'dw'] as const) {
      const e = maxRelErr(got[key], ref[i][key]);
      assert.ok(e < 1e-4, `${c.name}: ${key} rel err ${e}`);
    }
  });
});
