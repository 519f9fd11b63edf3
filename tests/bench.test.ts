import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { benchTask, resnet18ForwardFlops } from '../lib/src/bench.js';
import { createResNet18 } from '../lib/src/model.js';
import { testEngine } from './helpers.js';

before(testEngine);

test('FLOP count of CIFAR ResNet-18 matches the commonly cited 0.56 GMACs', () => {
  const m = createResNet18({ width: 1 });
  const macs = resnet18ForwardFlops(m) / 2;
  m.dispose();
  // 556.65M MACs for convs + linear, e.g. as reported by thop/ptflops for kuangliu's ResNet18.
  assert.ok(Math.abs(macs / 556.65e6 - 1) < 0.005, `${macs / 1e6}M MACs`);
});

test('benchTask measures every task without leaking tensors', async () => {
  const before = tf.memory().numTensors;
  for (const task of ['inference', 'pgd-step', 'train-step'] as const) {
    const r = await benchTask(task, { width: 0.125, batchSize: 4, iterations: 1, warmup: 1 });
    assert.ok(r.imagesPerSecond! > 0 && r.gflops! > 0 && r.times.length === 1, JSON.stringify(r));
  }
  assert.equal(tf.memory().numTensors, before);
});
