import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { benchTask, forwardFlops, profileTask } from '../lib/src/experiments/bench.js';
import { benchStages, STAGE_NAMES } from '../lib/src/experiments/stage-bench.js';
import { resolveConfig } from '../lib/src/experiments/config.js';
import { createResNet18 } from '../lib/src/nn/model.js';
import { testEngine } from './helpers.js';

before(testEngine);

test('FLOP count of CIFAR ResNet-18 matches the commonly cited 0.56 GMACs', () => {
  const m = createResNet18({ width: 1 });
  const macs = forwardFlops(m) / 2;
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

test('profileTask: every kernel of a step timed, the kernels restored afterwards, no leaks', () => {
  const backend = tf.getBackend();
  const conv = tf.getKernel('Conv2D', backend)!.kernelFunc;
  const before = tf.memory().numTensors;
  const p = profileTask('train-step', { width: 0.125, batchSize: 4, repetitions: 2 });
  assert.equal(p.backend, backend);
  const names = p.kernels.map((k) => k.kernel);
  for (const k of ['Conv2D', 'Conv2DBackpropFilter', 'Conv2DBackpropInput']) assert.ok(names.includes(k), `${k} in ${names.join(', ')}`);
  assert.equal(p.kernels.find((k) => k.kernel === 'Conv2D')!.calls, 20, 'ResNet-18: 20 convolutions per forward pass');
  const inKernels = p.kernels.reduce((a, k) => a + k.ms, 0);
  assert.ok(inKernels > 0 && inKernels <= p.totalMs + 1e-6 && Math.abs(p.outsideKernelsMs - (p.totalMs - inKernels)) < 1e-6);
  assert.equal(tf.getKernel('Conv2D', backend)!.kernelFunc, conv, 'original kernel back in place');
  assert.equal(tf.memory().numTensors, before);
});

test('benchStages times every stage, projects rate × size, leaves a given model untouched, no leaks', async () => {
  const config = resolveConfig('smoke', 'cifar10', { advTrain: { batchSize: 8 }, finetune: { batchSize: 8 }, eval: { batchSize: 8 }, mrc: { advN: 100 } });
  const model = createResNet18({ width: config.advTrain.width }, 3);
  const before = model.read('layer1.0.conv1.weight');
  const start = tf.memory().numTensors;
  const r = await benchStages(config, { images: 16, model });
  assert.deepEqual(r.map((s) => s.stage), [...STAGE_NAMES]);
  for (const s of r) {
    assert.ok(s.sampleSeconds > 0 && s.imagesPerSecond > 0 && s.projectedSeconds > 0, JSON.stringify(s));
    if (s.stage !== 'mrc-module') assert.ok(Math.abs(s.projectedSeconds - s.projectedSize / s.imagesPerSecond) < 1e-9 * s.projectedSeconds + 1e-9);
  }
  assert.equal(r.find((s) => s.stage === 'pgd-at-epoch')!.projectedSize, config.advTrain.trainN);
  assert.equal(r.find((s) => s.stage === 'eval-pgd')!.projectedSize, config.eval.n);
  assert.equal(r.find((s) => s.stage === 'eval-clean')!.projectedSize, config.eval.cleanN);
  assert.equal(r.find((s) => s.stage === 'mrc-module')!.projectedSize, 41 * 100);
  assert.deepEqual(model.read('layer1.0.conv1.weight'), before, 'model restored');
  assert.equal(tf.memory().numTensors, start);
  model.dispose();
  await assert.rejects(benchStages(config, { images: 16, stages: ['nope' as never] }), /unknown stage 'nope'/);
});
