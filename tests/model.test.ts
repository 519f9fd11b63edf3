import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../lib/src/engine/engine.js';
import { createResNet18 } from '../lib/src/nn/model.js';
import { batchNormTrain } from '../lib/src/nn/batchnorm.js';
import { crossEntropy } from '../lib/src/nn/losses.js';
import { mulberry32 } from '../lib/src/util/rng.js';
import { randImages, assertNoLeak, assertStateUnchanged } from './helpers.js';

before(async () => { await initEngine({ backend: (process.env.RIFT_TEST_BACKEND ?? 'wasm') as 'wasm' }); });

test('full-width ResNet-18 has 11,173,962 parameters and PyTorch module names', () => {
  const m = createResNet18({ width: 1, numClasses: 10 });
  try {
    assert.equal(m.numParams(), 11_173_962);
    const mods = m.modules();
    assert.equal(mods.filter((x) => x.kind === 'conv').length + mods.filter((x) => x.kind === 'linear').length, 21);
    assert.equal(mods.filter((x) => x.kind === 'bn').length, 20);
    const names = mods.map((x) => x.name);
    for (const n of ['conv1', 'bn1', 'layer1.0.conv1', 'layer2.1.conv2', 'layer3.0.shortcut.0', 'layer3.0.shortcut.1', 'layer4.1.bn2', 'linear']) {
      assert.ok(names.includes(n), n);
    }
    assert.ok(!names.includes('layer1.0.shortcut.0'), 'layer1 has identity shortcuts');
    assert.deepEqual(m.module('layer3.0.shortcut.0').entries[0].shape, [1, 1, 128, 256]);
    assert.deepEqual(m.module('linear').entries.map((e) => e.shape), [[512, 10], [10]]);
    assert.deepEqual(m.module('bn1').entries.map((e) => e.key), ['bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var']);
    assert.throws(() => m.module('layer9.conv'), /unknown module 'layer9.conv'.*conv1/);
  } finally {
    m.dispose();
  }
  const c100 = createResNet18({ width: 1, numClasses: 100 });
  assert.equal(c100.numParams(), 11_173_962 + 512 * 90 + 90);
  c100.dispose();
});

test('width multiplier scales channels; same seed gives same weights', () => {
  const a = createResNet18({ width: 0.25 }, 7);
  const b = createResNet18({ width: 0.25 }, 7);
  const c = createResNet18({ width: 0.25 }, 8);
  try {
    assert.deepEqual(a.module('layer4.1.conv2').entries[0].shape, [3, 3, 128, 128]);
    assert.deepEqual(a.read('layer2.0.conv1.weight'), b.read('layer2.0.conv1.weight'));
    assert.notDeepEqual(a.read('layer2.0.conv1.weight'), c.read('layer2.0.conv1.weight'));
  } finally {
    [a, b, c].forEach((m) => m.dispose());
  }
});

test('forward: logits shape, no tensor leak in eval and training mode', () => {
  const m = createResNet18({ width: 0.125 }, 1);
  const x = randImages(4, 1);
  try {
    const start = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const y = m.forward(x);
      assert.deepEqual(y.shape, [4, 10]);
      y.dispose();
      const yt = m.forward(x, { training: true });
      yt.dispose();
    }
    assert.equal(tf.memory().numTensors, start);
  } finally {
    x.dispose();
    m.dispose();
  }
});

test('BN modes: running statistics change only for layers in train mode', () => {
  const m = createResNet18({ width: 0.125 }, 2);
  const x = randImages(8, 2);
  try {
    m.setBNMode('all', 'eval');
    m.setBNMode(['layer2.0.bn1'], 'train');
    m.setBNMode(['layer3.0.bn1'], 'batch');
    const before = new Map(m.stateKeys().filter((k) => k.includes('running')).map((k) => [k, m.read(k)]));
    tf.dispose(m.forward(x, { training: true }));
    for (const [k, v] of before) {
      const changed = !tf.util.arraysEqual(v, m.read(k));
      assert.equal(changed, k.startsWith('layer2.0.bn1.'), k);
    }
    // Inference mode never touches statistics.
    m.setBNMode('all', 'train');
    const snap = m.snapshot();
    tf.dispose(m.forward(x));
    assertStateUnchanged(m, snap);
    assert.throws(() => m.setBNMode(['conv1'], 'eval'), /not a BN module/);
  } finally {
    x.dispose();
    m.dispose();
  }
});

test('running statistics follow PyTorch (momentum 0.1, unbiased variance)', () => {
  const m = createResNet18({ width: 0.125 }, 3);
  const x = randImages(2, 3);
  try {
    m.setBNMode('all', 'train');
    // bn1 sees conv1(normalised x): recompute its batch statistics independently.
    const [mean, varUnbiased] = tf.tidy(() => {
      const h = tf.div(tf.sub(x, tf.tensor1d([...m.config.mean])), tf.tensor1d([...m.config.std]));
      const c = tf.conv2d(h as tf.Tensor4D, m.variable('conv1.weight') as unknown as tf.Tensor4D, 1, [[0, 0], [1, 1], [1, 1], [0, 0]]);
      const mo = tf.moments(c, [0, 1, 2]);
      const n = c.size / c.shape[3];
      return [mo.mean.dataSync(), tf.mul(mo.variance, n / (n - 1)).dataSync()];
    });
    tf.dispose(m.forward(x, { training: true }));
    const rm = m.read('bn1.running_mean'), rv = m.read('bn1.running_var');
    for (let i = 0; i < rm.length; i++) {
      assert.ok(Math.abs(rm[i] - 0.1 * mean[i]) < 1e-5, `mean[${i}]`);
      assert.ok(Math.abs(rv[i] - (0.9 + 0.1 * varUnbiased[i])) < 1e-4, `var[${i}]`);
    }
  } finally {
    x.dispose();
    m.dispose();
  }
});

test('BN custom gradient equals autodiff of the textbook formula', () => {
  const r = mulberry32(5);
  const rnd = (n: number) => Float32Array.from({ length: n }, () => r() * 2 - 1);
  tf.tidy(() => {
    const x = tf.tensor4d(rnd(3 * 4 * 5 * 6), [3, 4, 5, 6]);
    const g = tf.tensor1d(rnd(6)), b = tf.tensor1d(rnd(6));
    const w = tf.tensor4d(rnd(3 * 4 * 5 * 6), [3, 4, 5, 6]);
    const ours = tf.grads((a: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
      tf.sum(tf.mul(batchNormTrain(a as tf.Tensor4D, gg as tf.Tensor1D, bb as tf.Tensor1D, 1e-5).y, w)))([x, g, b]);
    const ref = tf.grads((a: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => {
      const mo = tf.moments(a, [0, 1, 2]);
      const y = tf.add(tf.mul(tf.div(tf.sub(a, mo.mean), tf.sqrt(tf.add(mo.variance, 1e-5))), gg), bb);
      return tf.sum(tf.mul(y, w));
    })([x, g, b]);
    ours.forEach((t, i) => {
      const d = tf.max(tf.abs(tf.sub(t, ref[i]))).dataSync()[0];
      assert.ok(d < 1e-4, `grad ${i} max abs diff ${d}`);
    });
  });
});

test('training step: loss decreases on a fixed batch, gradients reach every trainable tensor', () => {
  const m = createResNet18({ width: 0.125, numClasses: 10 }, 4);
  const x = randImages(16, 4);
  const y = tf.tensor1d(Array.from({ length: 16 }, (_, i) => i % 10), 'int32');
  try {
    const vars = m.trainableVariables();
    const losses: number[] = [];
    for (let step = 0; step < 5; step++) {
      const { value, grads } = tf.variableGrads(() => crossEntropy(m.forward(x, { training: true }), y), vars);
      losses.push(value.dataSync()[0]);
      assert.equal(Object.keys(grads).length, vars.length);
      tf.tidy(() => { for (const v of vars) v.assign(tf.sub(v, tf.mul(grads[v.name], 0.05))); });
      value.dispose();
      tf.dispose(grads);
    }
    assert.ok(losses[4] < losses[0], `losses ${losses}`);
  } finally {
    tf.dispose([x, y]);
    m.dispose();
  }
});

test('module registry: snapshot/restore one module, write, bnOutput; no leaks', async () => {
  const m = createResNet18({ width: 0.125 }, 6);
  const x = randImages(3, 6);
  try {
    const snap = m.snapshot(['layer2.1.conv2', 'layer2.1.bn2'].flatMap((n) => m.module(n).entries.map((e) => e.key)));
    assert.deepEqual([...snap.tensors.keys()], ['layer2.1.conv2.weight', 'layer2.1.bn2.weight', 'layer2.1.bn2.bias', 'layer2.1.bn2.running_mean', 'layer2.1.bn2.running_var']);
    const before = tf.tidy(() => m.predict(x).dataSync());
    tf.tidy(() => m.write({ 'layer2.1.conv2.weight': tf.zerosLike(m.variable('layer2.1.conv2.weight')), 'layer2.1.bn2.running_var': tf.fill([m.variable('layer2.1.bn2.running_var').shape[0]], 4) }));
    const changed = tf.tidy(() => m.predict(x).dataSync());
    assert.notDeepEqual(changed, before);
    m.restore(snap);
    assert.deepEqual(tf.tidy(() => m.predict(x).dataSync()), before, 'restore brings back bit-identical outputs');
    snap.dispose();
    assert.throws(() => tf.tidy(() => m.write({ 'conv1.weight': tf.zeros([1]) })), /conv1.weight' expects shape \[3,3,3,8\]/);
    const out = m.bnOutput(x, 'layer3.0.bn1');
    assert.deepEqual(out.shape, [3, 8, 8, 32]);
    out.dispose();
    assert.throws(() => m.bnOutput(x, 'layer3.0.conv1'), /not a BN module/);
    await assertNoLeak('snapshot/restore', () => { const s = m.snapshot(m.module('bn1').entries.map((e) => e.key)); m.restore(s); s.dispose(); });
    await assertNoLeak('bnOutput', () => m.bnOutput(x, 'bn1').dispose());
    await assertNoLeak('forward(training)', () => m.forward(x, { training: true }).dispose());
  } finally {
    x.dispose();
    m.dispose();
  }
});
