import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { createResNet18 } from '../lib/src/nn/model.js';
import { loadCifar } from '../lib/src/data/cifar.js';
import { evaluate } from '../lib/src/method/evaluate.js';
import { trainEpoch } from '../lib/src/method/train.js';
import { SGD } from '../lib/src/nn/optim.js';
import { testEngine, assertNoLeak } from './helpers.js';
import { subsetIndices } from '../lib/src/data/subsets.js';

before(testEngine);

test('a briefly trained small model: clean accuracy above chance, robust ≤ clean, no leaks', async () => {
  const train = loadCifar({ dataset: 'cifar10', split: 'train' });
  const testSet = loadCifar({ dataset: 'cifar10', split: 'test' });
  const m = createResNet18({ width: 0.125 }, 31);
  const opt = new SGD(m.trainableVariables(), { lr: 0.05 });
  try {
    const indices = subsetIndices(train, { n: 2000 });
    for (let e = 0; e < 2; e++) await trainEpoch(m, opt, train, { indices, seed: e, batchSize: 64, progress: false });
    const evalIdx = subsetIndices(testSet, { n: 300 });
    const r = await evaluate(m, testSet, { indices: evalIdx, attack: { steps: 5 }, progress: false });
    assert.equal(r.n, 300);
    assert.equal(r.clean.perExample.length, 300);
    console.log(`trained 2 epochs on 2000: clean ${r.clean.accuracy.toFixed(1)}%, PGD-5 ${r.robust!.accuracy.toFixed(1)}%`);
    assert.ok(r.clean.accuracy > 20, `clean ${r.clean.accuracy}%`);
    assert.ok(r.robust!.accuracy < r.clean.accuracy, `robust ${r.robust!.accuracy} > clean ${r.clean.accuracy}`);
    // Per-example: robust-correct implies clean-correct for nearly all examples.
    let robustNotClean = 0;
    for (let i = 0; i < r.n; i++) robustNotClean += r.robust!.perExample[i] & (1 - r.clean.perExample[i]);
    assert.ok(robustNotClean <= 5, `${robustNotClean} examples robust but not clean`);
    // Clean-only evaluation agrees with the clean part, and no tensor leaks.
    const small = evalIdx.subarray(0, 40);
    const c = await evaluate(m, testSet, { indices: small, attack: null, progress: false, batchSize: 16 });
    assert.equal(c.robust, undefined);
    assert.deepEqual(c.clean.perExample, r.clean.perExample.subarray(0, 40), 'same clean verdicts on the shared first 40 examples');
    await assertNoLeak('evaluate', () => evaluate(m, testSet, { indices: small, attack: { steps: 1 }, progress: false, batchSize: 16 }));
    await assertNoLeak('trainEpoch', () => trainEpoch(m, opt, train, { indices: small, batchSize: 16, progress: false, attack: { steps: 1 } }));
  } finally {
    opt.dispose();
    m.dispose();
  }
  assert.equal(tf.memory().numTensors, 0);
});

test('cleanIndices: clean accuracy on its own examples, robust unchanged', async () => {
  const model = createResNet18({ width: 0.125 }, 5);
  const data = loadCifar({ dataset: 'cifar10', split: 'test' });
  const attacked = subsetIndices(data, { n: 20 });
  const cleanSet = subsetIndices(data, { n: 60 });
  const o = { batchSize: 10, attack: { steps: 1 }, progress: false as const };
  try {
    const split = await evaluate(model, data, { ...o, indices: attacked, cleanIndices: cleanSet });
    const plain = await evaluate(model, data, { ...o, indices: attacked });
    const cleanOnly = await evaluate(model, data, { ...o, indices: cleanSet, attack: null });
    assert.equal(split.n, 20);
    assert.equal(split.clean.total, 60);
    assert.deepEqual(split.clean.perExample, cleanOnly.clean.perExample);
    assert.deepEqual(split.robust!.perExample, plain.robust!.perExample);
    const viaNull = await evaluate(model, data, { ...o, indices: attacked, cleanIndices: cleanSet, attack: null });
    assert.deepEqual(viaNull.clean.perExample, cleanOnly.clean.perExample);
    assert.equal(viaNull.robust, undefined);
    await assertNoLeak('evaluate with cleanIndices', () => evaluate(model, data, { ...o, indices: attacked, cleanIndices: cleanSet }));
  } finally {
    model.dispose();
  }
});
