/**
 * Cross-check against an independent reference: the same weights and inputs through
 * Kuang Liu's ResNet-18 in PyTorch (tests/reference/torch_resnet.py, Debian python3-torch).
 * Skipped when torch is not importable, unless RIFT_REQUIRE_TORCH=1 (CI sets it).
 */
import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { createResNet18 } from '../lib/src/nn/model.js';
import { encodeCheckpoint } from '../lib/src/nn/checkpoint.js';
import { crossEntropy } from '../lib/src/nn/losses.js';
import { SGD } from '../lib/src/nn/optim.js';
import { testEngine, PYTHON, torchSkip, maxRel, randImages, tempDir } from './helpers.js';

const skip = torchSkip();

before(testEngine);


test('ResNet-18 matches PyTorch: logits, input gradient, train-mode BN statistics, weight gradients, one SGD step', { skip }, () => {
  const dir = tempDir();
  const m = createResNet18({ width: 0.125, numClasses: 10 }, 41);
  const b = 6;
  const x = randImages(b, 41);
  const labels = [0, 3, 5, 7, 9, 1];
  const y = tf.tensor1d(labels, 'int32');
  try {
    // Move running statistics away from their init so eval mode is a real test.
    tf.dispose(m.forward(randImages(8, 42), { training: true }));
    const buf = encodeCheckpoint(m);
    const hlen = buf.readUInt32LE(8);
    const header = JSON.parse(buf.subarray(12, 12 + hlen).toString('utf8'));
    const start = 12 + hlen + ((64 - ((12 + hlen) % 64)) % 64);
    fs.writeFileSync(path.join(dir, 'state.bin'), buf.subarray(start));
    fs.writeFileSync(path.join(dir, 'x.bin'), Buffer.from((x.dataSync() as Float32Array).buffer));
    const gradKeys = ['conv1.weight', 'bn1.weight', 'bn1.bias', 'layer2.0.shortcut.0.weight', 'layer3.1.bn2.weight', 'layer4.1.conv2.weight', 'linear.weight', 'linear.bias'];
    const statKeys = ['bn1.running_mean', 'bn1.running_var', 'layer4.0.shortcut.1.running_var'];
    fs.writeFileSync(path.join(dir, 'spec.json'), JSON.stringify({
      width: m.config.width, numClasses: 10, mean: m.config.mean, std: m.config.std,
      tensors: header.tensors, batch: b, labels, gradKeys, statKeys,
    }));
    const r = spawnSync(PYTHON, [path.join(__dirname, 'reference', 'torch_resnet.py'), dir], { encoding: 'utf8' });
    assert.equal(r.status, 0, `torch reference failed: ${r.stderr}`);
    const ref = JSON.parse(fs.readFileSync(path.join(dir, 'out.json'), 'utf8'));

    const evalLogits = tf.tidy(() => m.predict(x).dataSync());
    assert.ok(maxRel(evalLogits, ref.evalLogits) < 1e-4, `eval logits rel err ${maxRel(evalLogits, ref.evalLogits)}`);
    const g = tf.tidy(() => tf.grad((xi: tf.Tensor) => crossEntropy(m.predict(xi as tf.Tensor4D), y))(x).dataSync());
    assert.ok(maxRel(g, ref.inputGrad) < 1e-3, `input grad rel err ${maxRel(g, ref.inputGrad)}`);

    const vars = m.trainableVariables();
    const byKey = new Map(m.stateKeys().map((k) => [m.variable(k).name, k]));
    const { value, grads } = tf.variableGrads(() => {
      const logits = m.forward(x, { training: true });
      assert.ok(maxRel(logits.dataSync(), ref.trainLogits) < 1e-4, 'train-mode logits');
      return crossEntropy(logits, y);
    }, vars);
    for (const [name, t] of Object.entries(grads)) {
      const key = byKey.get(name)!;
      if (!gradKeys.includes(key)) continue;
      const e = maxRel(t.dataSync(), ref.grads[key]);
      assert.ok(e < 2e-3, `grad ${key} rel err ${e}`);
    }
    for (const k of statKeys) assert.ok(maxRel(m.read(k), ref.runningStats[k]) < 1e-4, `running stat ${k}`);
    const opt = new SGD(vars, { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 });
    opt.step(grads);
    for (const k of gradKeys) assert.ok(maxRel(m.read(k), ref.afterStep[k]) < 1e-4, `after SGD step ${k}`);
    opt.dispose();
    value.dispose();
    tf.dispose(grads);
  } finally {
    tf.dispose([x, y]);
    m.dispose();
  }
});
