/**
 * The native 'onednn' backend against the pure-JS 'cpu' backend: every native kernel on varied
 * shapes, the training batch-norm kernels against a composed reference, tensor and native-memory
 * leaks. Skipped (with the reason) when the addon is not built, unless RIFT_REQUIRE_ONEDNN=1.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../lib/src/engine/engine.js';
import { mulberry32 } from '../lib/src/util/rng.js';
import { batchNormEval, batchNormTrain, setActivationFusion, updateRunningStats } from '../lib/src/nn/batchnorm.js';
import { createNetwork, type ModelConfig } from '../lib/src/nn/model.js';
import { pgd } from '../lib/src/attacks/pgd.js';
import { crossEntropy } from '../lib/src/nn/losses.js';
import { SGD, setFusedSgd } from '../lib/src/nn/optim.js';
import { ONEDNN_BN_KERNELS, ONEDNN_OPTIM_KERNELS, onednnKernelStats, onednnPoolStats, resetOnednnKernelStats, tryRegisterOnednn } from '../lib/src/engine/onednn.js';

const REQUIRE = process.env.RIFT_REQUIRE_ONEDNN === '1';
const status = tryRegisterOnednn(2);
const skip: string | false = status.ok || REQUIRE ? false : `oneDNN backend unavailable: ${status.reason}`;
const TOL = 1e-4;

function rand(shape: number[], seed: number): tf.Tensor {
  const r = mulberry32(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => r() * 2 - 1), shape);
}

function maxRelErr(got: Float32Array, ref: Float32Array): number {
  assert.equal(got.length, ref.length, 'length');
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    num = Math.max(num, Math.abs(got[i] - ref[i]));
    den = Math.max(den, Math.abs(ref[i]));
  }
  return num / Math.max(den, 1e-12);
}

/**
 * Runs `f` (which builds its inputs from seeds, so both runs see the same data) on 'cpu' and on
 * 'onednn', checks that the onednn run leaves no tensor behind, and compares every output.
 */
async function compare(label: string, f: () => tf.Tensor[], tol = TOL): Promise<void> {
  await tf.setBackend('cpu');
  const ref = tf.tidy(f).map((t) => {
    const v = t.dataSync() as Float32Array;
    t.dispose();
    return { v, shape: t.shape };
  });
  await tf.setBackend('onednn');
  for (let rep = 0; rep < 2; rep++) {
    const before = tf.memory().numTensors;
    const got = tf.tidy(f);
    assert.equal(got.length, ref.length, `${label}: output count`);
    got.forEach((t, i) => {
      assert.deepEqual(t.shape, ref[i].shape, `${label}: output ${i} shape`);
      const e = maxRelErr(t.dataSync() as Float32Array, ref[i].v);
      assert.ok(e < tol, `${label}: output ${i} rel err ${e}`);
    });
    tf.dispose(got);
    assert.equal(tf.memory().numTensors, before, `${label}: tensor leak`);
  }
}

/** Asserts that `kernels` ran natively (no cpu fallback) since the last reset. */
function assertNative(kernels: string[]): void {
  const s = onednnKernelStats();
  for (const k of kernels) {
    assert.ok((s[k]?.calls ?? 0) > 0, `${k} never ran on onednn`);
    assert.equal(s[k].fallbacks, 0, `${k} fell back to the cpu kernel ${s[k].fallbacks} times`);
  }
}

test('onednn backend is available', { skip: REQUIRE ? false : skip }, async () => {
  assert.ok(status.ok, `onednn unavailable: ${status.reason}`);
  const info = await initEngine({ backend: 'onednn', threads: 2 });
  assert.equal(info.tfBackend, 'onednn');
  assert.equal(status.info?.threads, 2);
  for (const k of [...ONEDNN_BN_KERNELS, ...ONEDNN_OPTIM_KERNELS]) assert.ok(tf.getKernel(k, 'onednn'), `${k} registered`);
  // Every cpu kernel is available on onednn too.
  for (const k of tf.getKernelsForBackend('cpu')) assert.ok(tf.getKernel(k.kernelName, 'onednn'), k.kernelName);
});

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];
interface ConvCase { x: [number, number, number, number]; k: number; co: number; stride: number; pad: Pad }
const CONV_CASES: ConvCase[] = [
  { x: [2, 8, 8, 3], k: 3, co: 5, stride: 1, pad: 'same' },
  { x: [3, 9, 10, 4], k: 3, co: 6, stride: 2, pad: 'same' },
  { x: [1, 7, 6, 5], k: 3, co: 7, stride: 1, pad: 'valid' },
  { x: [3, 9, 9, 3], k: 3, co: 4, stride: 2, pad: 'valid' },
  { x: [2, 8, 8, 6], k: 1, co: 8, stride: 2, pad: 'valid' },
  { x: [5, 4, 4, 3], k: 1, co: 2, stride: 1, pad: 0 },
  { x: [2, 8, 8, 4], k: 3, co: 3, stride: 1, pad: 1 },
  { x: [1, 8, 8, 16], k: 3, co: 32, stride: 2, pad: [[0, 0], [1, 1], [1, 1], [0, 0]] },
  { x: [3, 8, 7, 5], k: 3, co: 3, stride: 2, pad: [[0, 0], [0, 1], [1, 0], [0, 0]] },
  { x: [4, 16, 16, 17], k: 3, co: 19, stride: 1, pad: 'same' },
  { x: [1, 4, 4, 512], k: 3, co: 512, stride: 1, pad: 'same' }, // last-stage shape: jit forward, not brgconv
];

test('Conv2D / Conv2DBackpropInput / Conv2DBackpropFilter match cpu', { skip }, async () => {
  resetOnednnKernelStats();
  for (const [i, c] of CONV_CASES.entries()) {
    const label = `conv ${JSON.stringify(c)}`;
    await compare(label, () => {
      const x = rand(c.x, 10 + i) as tf.Tensor4D;
      const w = rand([c.k, c.k, c.x[3], c.co], 20 + i) as tf.Tensor4D;
      const f = (a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad);
      const y = f(x, w);
      const dy = rand(y.shape, 30 + i);
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => f(a, b).mul(dy).sum())([x, w]);
      return [y, dx, dw];
    });
  }
  assertNative(['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter']);
});

test('FusedConv2D (bias, relu) matches cpu', { skip }, async () => {
  resetOnednnKernelStats();
  for (const [i, act] of (['linear', 'relu'] as const).entries()) {
    await compare(`fused conv ${act}`, () => {
      const x = rand([3, 9, 9, 5], 40 + i) as tf.Tensor4D;
      const filter = rand([3, 3, 5, 7], 41) as tf.Tensor4D;
      const bias = rand([7], 42) as tf.Tensor1D;
      return [tf.fused.conv2d({ x, filter, bias, strides: 2, pad: 'same', activation: act })];
    });
  }
  assertNative(['FusedConv2D']);
});

test('Add / Sub / Multiply / RealDiv with broadcasting match cpu', { skip }, async () => {
  const shapes: [number[], number[]][] = [
    [[3, 5, 7, 9], [3, 5, 7, 9]], // same shape
    [[4, 6, 6, 17], [17]], // per-channel
    [[17], [4, 6, 6, 17]], // per-channel, broadcast operand first
    [[2, 3, 3, 5], []], // scalar
    [[], [2, 3, 3, 5]],
    [[5, 1, 1, 8], [5, 4, 4, 8]], // global-pool gradient pattern
    [[2, 1, 4], [3, 1]], // both broadcast
    [[64, 64, 33], [64, 64, 33]], // large enough for the parallel path
    [[1, 64, 64, 16], [16]],
  ];
  resetOnednnKernelStats();
  for (const [i, [sa, sb]] of shapes.entries()) {
    await compare(`binary ${JSON.stringify(sa)} ${JSON.stringify(sb)}`, () => {
      const a = rand(sa, 50 + i), b = rand(sb, 60 + i).add(3); // b away from 0 for division
      return [tf.add(a, b), tf.sub(a, b), tf.mul(a, b), tf.div(a, b)];
    }, 1e-6);
  }
  assertNative(['Add', 'Sub', 'Multiply', 'RealDiv']);
});

test('Relu, Step, Sign, ClipByValue and the fused ReLU gradient match cpu', { skip }, async () => {
  resetOnednnKernelStats();
  for (const [i, shape] of [[3, 5, 5, 7], [2, 64, 64, 9]].entries()) {
    await compare(`relu ${shape}`, () => {
      const x = rand(shape, 70 + i), dy = rand(shape, 80 + i);
      const [dx] = tf.grads((a: tf.Tensor) => tf.relu(a).mul(dy).sum())([x]);
      return [tf.relu(x), dx, tf.step(x, 0.25), tf.sign(x), tf.clipByValue(x, -0.3, 0.1)];
    }, 1e-6);
  }
  assertNative(['Relu', 'Step', 'RiftReluGrad', 'Sign', 'ClipByValue']);
});

test('ReLU gradient keeps the NaN / Inf / signed-zero results of dy·step(x)', { skip }, async () => {
  const x = [NaN, -1, 0, -0, 2, -3, 5, 1e-30, -1e-30];
  const dy = [1, -2, 3, Infinity, NaN, -Infinity, -4, 0, -0];
  const run = () => tf.tidy(() => {
    const [g] = tf.grads((a: tf.Tensor) => tf.relu(a).mul(tf.tensor1d(dy)).sum())([tf.tensor1d(x)]);
    return Array.from(g.dataSync());
  });
  await tf.setBackend('cpu');
  const ref = run();
  await tf.setBackend('onednn');
  const got = run();
  got.forEach((v, i) => assert.ok(Object.is(v, ref[i]), `x=${x[i]} dy=${dy[i]}: ${v} vs cpu ${ref[i]}`));
});

test('unary kernels keep the cpu results on NaN, Inf, signed zeros and inexact clip bounds', { skip }, async () => {
  const x = [NaN, -Infinity, Infinity, 0, -0, 0.1, -0.1, -0.10000000149011612, 1e-30, -1e-30, 0.30000001192092896, 0.2999999821186066, 2];
  const run = () => tf.tidy(() => {
    const t = tf.tensor1d(x);
    return [tf.relu(t), tf.step(t, -0.5), tf.sign(t), tf.clipByValue(t, -0.1, 0.3)].map((r) => Array.from(r.dataSync()));
  });
  await tf.setBackend('cpu');
  const ref = run();
  await tf.setBackend('onednn');
  const got = run();
  got.forEach((row, k) => row.forEach((v, i) => assert.ok(Object.is(v, ref[k][i]), `op ${k}, x=${x[i]}: ${v} vs cpu ${ref[k][i]}`)));
});

test('Sum / Mean over contiguous axes match cpu', { skip }, async () => {
  const cases: [number[], number | number[], boolean][] = [
    [[4, 6, 6, 17], [0, 1, 2], false], // per-channel sums (bias / BN gradients)
    [[4, 4, 4, 33], [1, 2], false], // global average pool via mean
    [[4, 4, 4, 33], [1, 2], true],
    [[7, 10], -1, false], // per-row (loss)
    [[7, 10], [0, 1], false], // everything
    [[3, 32, 32, 16], [0, 1, 2], true], // parallel split of the reduced axis
    [[5, 11], 0, false],
  ];
  resetOnednnKernelStats();
  for (const [i, [shape, axis, keepDims]] of cases.entries()) {
    await compare(`reduce ${shape} ${axis}`, () => {
      const x = rand(shape, 90 + i);
      return [tf.sum(x, axis, keepDims), tf.mean(x, axis, keepDims)];
    }, 1e-5);
  }
  assertNative(['Sum', 'Mean']);
});

test('BatchMatMul matches cpu', { skip }, async () => {
  const cases: [number[], number[], boolean, boolean][] = [
    [[5, 7], [7, 3], false, false],
    [[7, 5], [7, 3], true, false],
    [[5, 7], [3, 7], false, true],
    [[7, 5], [3, 7], true, true],
    [[2, 3, 4], [2, 4, 5], false, false],
    [[1, 3, 4], [2, 4, 5], false, false],
    [[128, 64], [64, 10], false, false],
  ];
  resetOnednnKernelStats();
  for (const [i, [sa, sb, ta, tb]] of cases.entries()) {
    await compare(`matmul ${sa} ${sb} ${ta} ${tb}`, () => [tf.matMul(rand(sa, 100 + i), rand(sb, 110 + i), ta, tb)]);
  }
  assertNative(['BatchMatMul']);
});

test('AvgPool and its gradient match cpu', { skip }, async () => {
  const cases: { x: number[]; k: number; s: number; pad: 'same' | 'valid' }[] = [
    { x: [3, 4, 4, 17], k: 4, s: 4, pad: 'valid' }, // CIFAR ResNet global pool
    { x: [2, 8, 8, 5], k: 2, s: 2, pad: 'valid' },
    { x: [1, 7, 7, 3], k: 3, s: 2, pad: 'valid' },
    { x: [2, 6, 6, 3], k: 3, s: 1, pad: 'same' }, // forward native (padding excluded); gradient falls back
  ];
  resetOnednnKernelStats();
  for (const [i, c] of cases.entries()) {
    await compare(`avgPool ${JSON.stringify(c)}`, () => {
      const x = rand(c.x, 120 + i) as tf.Tensor4D;
      const f = (a: tf.Tensor) => tf.avgPool(a as tf.Tensor4D, c.k, c.s, c.pad);
      const y = f(x);
      const dy = rand(y.shape, 130 + i);
      const [dx] = tf.grads((a: tf.Tensor) => f(a).mul(dy).sum())([x]);
      return [y, dx];
    });
  }
  assertNative(['AvgPool']);
  const s = onednnKernelStats().AvgPoolGrad;
  assert.equal(s.calls - s.fallbacks, 3 * 2, 'AvgPoolGrad native without padding');
});

test('FusedBatchNorm (inference) matches cpu', { skip }, async () => {
  resetOnednnKernelStats();
  await compare('batchNorm', () => {
    const c = 13;
    const x = rand([3, 5, 5, c], 140);
    const mean = rand([c], 141), variance = rand([c], 142).abs().add(0.1);
    const offset = rand([c], 143), scale = rand([c], 144);
    return [tf.batchNorm(x, mean, variance, offset, scale, 1e-3), tf.batchNorm(x, mean, variance, undefined, undefined, 1e-5)];
  });
  assertNative(['FusedBatchNorm']);
});

test('inference batch norm: the fused RiftBatchNormEval gives the composed ops\' values and gradients bit for bit, and only the gradients asked for', { skip }, async () => {
  await tf.setBackend('onednn');
  for (const [i, shape] of [[4, 6, 6, 13], [2, 32, 32, 16], [1, 3, 3, 1]].entries()) {
    const C = shape[3];
    const make = () => ({
      x: rand(shape, 190 + i).mul(3), gamma: rand([C], 191 + i), beta: rand([C], 192 + i),
      mean: rand([C], 193 + i), variance: rand([C], 194 + i).abs().add(0.05), dy: rand(shape, 195 + i),
    });
    const run = (f: (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, m: tf.Tensor, v: tf.Tensor) => tf.Tensor) => tf.tidy(() => {
      const { x, gamma, beta, mean, variance, dy } = make();
      const y = f(x, gamma, beta, mean, variance);
      const grads = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => f(a, g, b, mean, variance).mul(dy).sum())([x, gamma, beta]);
      return [y, ...grads];
    }).map((t) => { const v = t.dataSync() as Float32Array; t.dispose(); return v; });
    resetOnednnKernelStats();
    const fused = run((x, g, b, m, v) => batchNormEval(x as tf.Tensor4D, g as tf.Tensor1D, b as tf.Tensor1D, m as tf.Tensor1D, v as tf.Tensor1D, 1e-5));
    assertNative(['RiftBatchNormEval']);
    const composed = run((x, g, b, m, v) => {
      const scale = tf.mul(g, tf.rsqrt(tf.add(v, 1e-5)));
      return tf.add(tf.mul(x, scale), tf.sub(b, tf.mul(m, scale)));
    });
    ['y', 'dx', 'dgamma', 'dbeta'].forEach((n, k) => assert.deepEqual(fused[k], composed[k], `${shape} ${n}: bit-identical`));
  }
  // A gradient w.r.t. x alone (a PGD step) computes no per-channel reductions.
  const before = tf.memory().numTensors;
  resetOnednnKernelStats();
  tf.tidy(() => {
    const x = rand([2, 4, 4, 8], 200), g = rand([8], 201), b = rand([8], 202), m = rand([8], 203), v = rand([8], 204).abs().add(0.1);
    tf.grad((a: tf.Tensor) => batchNormEval(a as tf.Tensor4D, g as tf.Tensor1D, b as tf.Tensor1D, m as tf.Tensor1D, v as tf.Tensor1D, 1e-5).sum())(x).dataSync();
  });
  const st0 = onednnKernelStats();
  assert.equal(st0.Sum?.calls ?? 0, 1, 'one Sum: the loss; none for dgamma or dbeta');
  for (const k of ['Sub', 'Rsqrt']) assert.equal(st0[k]?.calls ?? 0, 0, `no separate ${k}: the statistics are folded inside the kernel`);
  assert.equal(tf.memory().numTensors, before, 'no tensor leak');
});

/** Values of every tensor f returns (run in a tidy), copied out; nothing left behind. */
function valuesOf(f: () => tf.Tensor[]): Float32Array[] {
  return tf.tidy(f).map((t) => { const v = (t.dataSync() as Float32Array).slice(); t.dispose(); return v; });
}

/** Runs f with the batch norm's activation fused (onednn kernels) and composed from separate ops. */
function fusedAndComposed<T>(f: () => T): { fused: T; composed: T } {
  const fused = f();
  setActivationFusion(false);
  try {
    return { fused, composed: f() };
  } finally {
    setActivationFusion(true);
  }
}

test('batch norm with ReLU and a residual add: the fused kernels give the separate ops\' values and gradients bit for bit (eval and training mode)', { skip }, async () => {
  await tf.setBackend('onednn');
  for (const [i, shape] of [[4, 6, 6, 13], [2, 32, 32, 16], [1, 3, 3, 1]].entries()) {
    const C = shape[3];
    for (const residual of [false, true]) {
      const inputs = () => ({
        x: rand(shape, 210 + i).mul(3), gamma: rand([C], 211 + i), beta: rand([C], 212 + i),
        mean: rand([C], 213 + i), variance: rand([C], 214 + i).abs().add(0.05), r: rand(shape, 215 + i), dy: rand(shape, 216 + i),
      });
      for (const mode of ['eval', 'train'] as const) {
        const run = () => valuesOf(() => {
          const { x, gamma, beta, mean, variance, r, dy } = inputs();
          const f = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor, res: tf.Tensor) => {
            const act = { relu: true, ...(residual ? { residual: res as tf.Tensor4D } : {}) };
            return mode === 'eval'
              ? batchNormEval(a as tf.Tensor4D, g as tf.Tensor1D, b as tf.Tensor1D, mean as tf.Tensor1D, variance as tf.Tensor1D, 1e-5, act)
              : batchNormTrain(a as tf.Tensor4D, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5, act).y;
          };
          const loss = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor, res?: tf.Tensor) => f(a, g, b, res ?? r).mul(dy).sum();
          const grads = tf.grads(loss)(residual ? [x, gamma, beta, r] : [x, gamma, beta]);
          return [f(x, gamma, beta, r), ...grads];
        });
        resetOnednnKernelStats();
        const { fused, composed } = fusedAndComposed(run);
        const names = ['y', 'dx', 'dgamma', 'dbeta', 'dresidual'].slice(0, residual ? 5 : 4);
        assert.equal(fused.length, names.length);
        names.forEach((n, k) => assert.deepEqual(fused[k], composed[k], `${mode} ${shape}${residual ? ' + residual' : ''} ${n}: bit-identical`));
        // Some outputs must be clipped by the ReLU, or the test would not test it.
        assert.ok(fused[0].some((v) => v === 0) && fused[0].some((v) => v > 0), 'ReLU active on part of the output');
      }
    }
  }
  // Fused: no Relu kernel forward, one kernel for the x-gradient in eval mode, no leak.
  const before = tf.memory().numTensors;
  resetOnednnKernelStats();
  tf.tidy(() => {
    const x = rand([2, 4, 4, 8], 220), g = rand([8], 221), b = rand([8], 222), m = rand([8], 223), v = rand([8], 224).abs().add(0.1);
    tf.grad((a: tf.Tensor) => batchNormEval(a as tf.Tensor4D, g as tf.Tensor1D, b as tf.Tensor1D, m as tf.Tensor1D, v as tf.Tensor1D, 1e-5, { relu: true }).sum())(x).dataSync();
  });
  const st = onednnKernelStats();
  assert.equal(st.Relu?.calls ?? 0, 0, 'no separate Relu');
  assert.equal(st.RiftScaleShiftReluGrad?.calls, 1, 'the x-gradient is one kernel');
  assert.equal(st.Sum?.calls ?? 0, 1, 'one Sum: the loss; none for dgamma or dbeta');
  assert.equal(tf.memory().numTensors, before, 'no tensor leak');
});

test('whole networks (ResNet-18, PreActResNet-18, WideResNet): logits, PGD examples and parameter gradients are bit-identical with and without the fused batch norm + ReLU', { skip }, async () => {
  await tf.setBackend('onednn');
  const r = mulberry32(5);
  const x = tf.tensor4d(Float32Array.from({ length: 4 * 32 * 32 * 3 }, () => r()), [4, 32, 32, 3]);
  const y = tf.tensor1d([0, 3, 5, 9], 'int32');
  const configs: Array<Partial<ModelConfig>> = [
    { arch: 'resnet18', width: 0.125 },
    { arch: 'preact-resnet18', width: 0.125, finalBn: true, preactShortcut: 'preact' },
    { arch: 'wide-resnet', depth: 10, width: 1 },
  ];
  for (const [i, config] of configs.entries()) {
    const m = createNetwork(config, 30 + i);
    // BN statistics away from (0, 1) so that eval mode differs from a plain scale.
    const vars = m.modules().flatMap((mod) => mod.entries).filter((e) => e.role === 'running_var').map((e) => [e.key, tf.fill(e.shape, 0.7)] as const);
    m.write(new Map(vars));
    tf.dispose(vars.map(([, t]) => t));
    const run = () => valuesOf(() => {
      const out: tf.Tensor[] = [m.forward(x), pgd(m, x, y, { eps: 8 / 255, alpha: 2 / 255, steps: 2, randomStart: true, seed: 1 })];
      for (const training of [false, true]) {
        m.setBNMode('all', 'batch');
        const { grads } = tf.variableGrads(() => crossEntropy(m.forward(x, { training }), y), m.trainableVariables());
        out.push(...Object.values(grads));
      }
      return out;
    });
    resetOnednnKernelStats();
    const { fused, composed } = fusedAndComposed(() => {
      const before = tf.memory().numTensors;
      const v = run();
      assert.equal(tf.memory().numTensors, before, `${config.arch}: no tensor leak`);
      return v;
    });
    assert.equal(fused.length, composed.length);
    fused.forEach((v, k) => assert.deepEqual(v, composed[k], `${config.arch}: output ${k} (0 logits, 1 PGD, then gradients) bit-identical`));
    m.dispose();
  }
  tf.dispose([x, y]);
});

test('SGD: the one-pass RiftSgdStep gives the composed ops\' parameters and momentum buffers bit for bit (every momentum/decay case, values that round to 0, NaN, Inf, −0, a changing lr), with no tensor leak', { skip }, async () => {
  // Parameters and gradients over many magnitudes, with the special values the ops must pass through alike.
  const specials = [NaN, Infinity, -Infinity, -0, 0, 1e-38, 3e38];
  const values = (seed: number, n: number) => {
    const r = mulberry32(seed);
    return Float32Array.from({ length: n }, (_, i) => (i < specials.length && seed % 2 === 0 ? specials[i] : (r() * 2 - 1) * 10 ** Math.floor(r() * 8 - 4)));
  };
  const shapes = [[3, 3, 4, 8], [10], [33, 7]];
  const run = (backend: string, fused: boolean, options: { momentum: number; weightDecay: number }) => {
    tf.setBackend(backend);
    setFusedSgd(fused);
    try {
      const vars = shapes.map((s, i) => tf.variable(tf.tensor(values(100 + i, s.reduce((a, b) => a * b, 1)), s), true, `sgdtest${backend}${fused}${i}`));
      const opt = new SGD(vars, { lr: 0.1, ...options });
      const before = tf.memory().numTensors;
      for (let step = 0; step < 3; step++) {
        opt.lr = [0.1, 0.037, 1e-3][step];
        const grads = Object.fromEntries(vars.map((v, i) => [v.name, tf.tensor(values(200 + 10 * step + i, v.size), v.shape)]));
        opt.step(grads);
        tf.dispose(Object.values(grads));
      }
      const buffersCreated = options.momentum !== 0 ? vars.length : 0;
      assert.equal(tf.memory().numTensors, before + buffersCreated, 'no tensor leak beyond the momentum buffers');
      const out = [...vars.map((v) => (v.dataSync() as Float32Array).slice()), ...Object.values(opt.stateArrays()).map((a) => a.slice())];
      opt.dispose();
      tf.dispose(vars);
      return out;
    } finally {
      setFusedSgd(true);
    }
  };
  // 1e-50 is not 0 but rounds to float32 0: the composed ops still run the decay and momentum terms (θ·0, buf·0).
  for (const options of [{ momentum: 0.9, weightDecay: 5e-4 }, { momentum: 0.9, weightDecay: 0 }, { momentum: 0, weightDecay: 5e-4 }, { momentum: 0, weightDecay: 0 },
    { momentum: 1e-50, weightDecay: 1e-50 }]) {
    resetOnednnKernelStats();
    const fused = run('onednn', true, options);
    assertNative(['RiftSgdStep']);
    const composed = run('onednn', false, options), cpu = run('cpu', false, options);
    assert.equal(fused.length, shapes.length + (options.momentum !== 0 ? shapes.length : 0));
    fused.forEach((v, k) => {
      assert.deepEqual(v, composed[k], `${JSON.stringify(options)}: output ${k} bit-identical to the composed ops`);
      assert.deepEqual(v, cpu[k], `${JSON.stringify(options)}: output ${k} bit-identical to the cpu backend`);
    });
  }
  await tf.setBackend('onednn');
});

test('running statistics: the one-kernel RiftRunningStats update equals the composed ops of the cpu backend bit for bit', { skip }, async () => {
  const C = 37;
  const vals = (seed: number, positive: boolean) => {
    const r = mulberry32(seed);
    return Float32Array.from({ length: C }, (_, i) => (i === 0 ? NaN : i === 1 ? Infinity : i === 2 ? -0 : (positive ? r() : r() * 2 - 1) * 10 ** Math.floor(r() * 8 - 4)));
  };
  const run = (backend: string, count: number, momentum: number) => {
    tf.setBackend(backend);
    const rm = tf.variable(tf.tensor1d(vals(1, false)), false), rv = tf.variable(tf.tensor1d(vals(2, true)), false);
    const before = tf.memory().numTensors;
    for (let step = 0; step < 3; step++) {
      const [m, v] = [tf.tensor1d(vals(10 + step, false)), tf.tensor1d(vals(20 + step, true))];
      updateRunningStats(rm, rv, m as tf.Tensor1D, v as tf.Tensor1D, count, momentum);
      tf.dispose([m, v]);
    }
    assert.equal(tf.memory().numTensors, before, 'no tensor leak');
    const out = [(rm.dataSync() as Float32Array).slice(), (rv.dataSync() as Float32Array).slice()];
    tf.dispose([rm, rv]);
    return out;
  };
  for (const [count, momentum] of [[128 * 32 * 32, 0.1], [7, 0.01], [1, 0.1]]) {
    resetOnednnKernelStats();
    const fused = run('onednn', count, momentum);
    assertNative(['RiftRunningStats']);
    const composed = run('cpu', count, momentum);
    fused.forEach((v, k) => assert.deepEqual(v, composed[k], `count ${count}, momentum ${momentum}: ${k ? 'running_var' : 'running_mean'} bit-identical`));
  }
  await tf.setBackend('onednn');
});

/** Training batch norm composed from tf ops (the reference). */
function bnComposed(x: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor, eps: number): tf.Tensor[] {
  const mean = tf.mean(x, [0, 1, 2]);
  const variance = tf.mean(tf.square(tf.sub(x, mean)), [0, 1, 2]);
  const y = tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps))), scale), offset);
  return [y, mean, variance];
}

test('RiftBatchNormTrain / RiftBatchNormTrainGrad match a composed reference', { skip }, async () => {
  const cases = [{ x: [4, 6, 6, 13], eps: 1e-3 }, { x: [1, 3, 5, 7], eps: 1e-5 }, { x: [8, 16, 16, 32], eps: 1e-5 }];
  for (const [i, c] of cases.entries()) {
    const inputs = () => {
      const x = rand(c.x, 150 + i).mul(3).add(0.5); // non-zero mean, non-unit variance
      const C = c.x[3];
      return { x, scale: rand([C], 160 + i), offset: rand([C], 170 + i), dy: rand(c.x, 180 + i) };
    };
    await tf.setBackend('cpu');
    const ref = tf.tidy(() => {
      const { x, scale, offset, dy } = inputs();
      const fwd = bnComposed(x, scale, offset, c.eps);
      const grads = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => bnComposed(a, g, b, c.eps)[0].mul(dy).sum())([x, scale, offset]);
      return [...fwd, ...grads];
    }).map((t) => t.dataSync() as Float32Array);
    await tf.setBackend('onednn');
    for (let rep = 0; rep < 2; rep++) {
      const before = tf.memory().numTensors;
      const got = tf.tidy(() => {
        const { x, scale, offset, dy } = inputs();
        const [y, mean, variance] = tf.engine().runKernel('RiftBatchNormTrain', { x, scale, offset }, { varianceEpsilon: c.eps }) as tf.Tensor[];
        const grads = tf.engine().runKernel('RiftBatchNormTrainGrad', { dy, x, scale, mean, variance }, { varianceEpsilon: c.eps }) as tf.Tensor[];
        return [y, mean, variance, ...grads];
      });
      const names = ['y', 'mean', 'variance', 'dx', 'dScale', 'dOffset'];
      got.forEach((t, k) => {
        const e = maxRelErr(t.dataSync() as Float32Array, ref[k]);
        assert.ok(e < TOL, `bn ${c.x}: ${names[k]} rel err ${e}`);
      });
      tf.dispose(got);
      assert.equal(tf.memory().numTensors, before, 'bn: tensor leak');
    }
  }
});

test('a small residual network: loss, input gradient and weight gradients match cpu', { skip }, async () => {
  resetOnednnKernelStats();
  await compare('resnet block', () => {
    const x = rand([3, 8, 8, 3], 200);
    const w1 = rand([3, 3, 3, 8], 201).mul(0.5), w2 = rand([3, 3, 8, 16], 202).mul(0.3);
    const ws = rand([1, 1, 3, 16], 203), wd = rand([16, 10], 204).mul(0.3), bd = rand([10], 205);
    const labels = tf.oneHot(tf.tensor1d([1, 4, 7], 'int32'), 10);
    const loss = (xi: tf.Tensor, a: tf.Tensor, b: tf.Tensor, s: tf.Tensor, d: tf.Tensor) => {
      const h = tf.relu(tf.conv2d(xi as tf.Tensor4D, a as tf.Tensor4D, 1, 'same'));
      const r = tf.relu(tf.add(tf.conv2d(h, b as tf.Tensor4D, 2, [[0, 0], [1, 1], [1, 1], [0, 0]]), tf.conv2d(xi as tf.Tensor4D, s as tf.Tensor4D, 2, 'valid')));
      const pooled = tf.reshape(tf.avgPool(r as tf.Tensor4D, 4, 4, 'valid'), [3, 16]);
      const logits = tf.add(tf.matMul(pooled, d), bd);
      return tf.losses.softmaxCrossEntropy(labels, logits);
    };
    const g = tf.grads(loss)([x, w1, w2, ws, wd]);
    return [loss(x, w1, w2, ws, wd), ...g];
  });
  assertNative(['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'Relu', 'RiftReluGrad', 'AvgPool', 'AvgPoolGrad', 'BatchMatMul']);
});

test('output-buffer pool: reuse, and no pooled memory escapes or is reused while referenced', { skip }, async () => {
  await tf.setBackend('onednn');
  const x = rand([4, 8, 8, 16], 400);
  // Freed outputs are reused for the next output of the same size.
  tf.relu(x).dispose();
  const hits = onednnPoolStats()!.hits;
  tf.relu(x).dispose();
  assert.ok(onednnPoolStats()!.hits > hits, 'freed outputs are reused');
  // A view into a pooled output (contiguous Slice, a cpu kernel) keeps the memory from reuse.
  const y = tf.relu(x);
  const view = tf.slice(y, [1], [2]);
  const expected = (view.dataSync() as Float32Array).slice();
  // dataSync hands out a copy: it must not change when the memory is reused.
  const z = tf.relu(tf.neg(x));
  const read = z.dataSync() as Float32Array;
  const readCopy = read.slice();
  y.dispose();
  z.dispose();
  const others = Array.from({ length: 4 }, (_, i) => tf.mul(x, i + 2)); // same size: takes freed buffers
  assert.deepEqual(view.dataSync(), expected, 'slice view intact after its parent was disposed');
  assert.deepEqual(read, readCopy, 'dataSync result intact after the tensor was disposed');
  tf.dispose([view, x, ...others]);
});

function rssMiB(): number {
  return process.memoryUsage.rss() / 2 ** 20;
}

test('no native or tensor leak over 1,000 conv forward+backward steps', { skip }, async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  // One OpenMP thread: the check is about memory, and a single thread keeps its run time
  // independent of other processes competing for the cores.
  assert.ok(tryRegisterOnednn(1).ok);
  await tf.setBackend('onednn');
  const x = rand([8, 16, 16, 16], 300) as tf.Tensor4D;
  const w = rand([3, 3, 16, 16], 301) as tf.Tensor4D;
  const step = () => tf.tidy(() => {
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.relu(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same')).sum())([x, w]);
    return dx.sum().add(dw.sum());
  }).dispose();
  for (let i = 0; i < 100; i++) step(); // warm-up: primitive cache, scratchpad, V8 heap
  gc();
  const tensors = tf.memory().numTensors;
  const before = rssMiB();
  for (let i = 0; i < 1000; i++) step();
  gc();
  const after = rssMiB();
  assert.equal(tf.memory().numTensors, tensors, 'tensor leak');
  // Each step allocates ~0.5 MiB of tensors; a per-step native leak of any buffer would add
  // hundreds of MiB. The slack covers allocator and V8 heap noise.
  assert.ok(after - before < 40, `RSS grew by ${(after - before).toFixed(1)} MiB over 1,000 steps (before ${before.toFixed(0)} MiB)`);
  tf.dispose([x, w]);
  tryRegisterOnednn(2);
});

test('weight gradient of strided 1×1 convolutions with channels not a multiple of 8 (oneDNN AVX2 case) matches cpu', { skip }, async () => {
  for (const [ic, hw, s] of [[3, 8, 2], [5, 8, 2], [3, 9, 2], [7, 12, 3], [16, 8, 2]] as const) {
    await compare(`1×1 stride ${s}, ${ic} channels, ${hw}×${hw}`, () => {
      const x = rand([3, hw, hw, ic], 300 + ic);
      const w = rand([1, 1, ic, 16], 310 + ic);
      return tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, s, 'valid').square().sum())([x, w]);
    });
  }
});
