import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { createResNet18, type Network } from '../lib/src/nn/model.js';
import { loadCifar } from '../lib/src/data/cifar.js';
import { makeAdversarialSet, computeMRC, selectLowest, candidateModules, mrcKeys, type AdversarialSet } from '../lib/src/method/mrc.js';
import { finetune, layerTypeModules, bnModesFor } from '../lib/src/method/finetune.js';
import { interpolateInto, interpolationSweep, pickAlpha, type AlphaPoint } from '../lib/src/method/interpolate.js';
import { SGD } from '../lib/src/nn/optim.js';
import { trainEpoch } from '../lib/src/method/train.js';
import { testEngine, assertNoLeak, randImages } from './helpers.js';
import { subsetIndices } from '../lib/src/data/subsets.js';

let model: Network;
let adv: AdversarialSet;
const train = () => loadCifar({ dataset: 'cifar10', split: 'train' });
const testSet = () => loadCifar({ dataset: 'cifar10', split: 'test' });

before(async () => {
  await testEngine();
  // A briefly trained tiny model so that gradients and losses are not degenerate.
  model = createResNet18({ width: 0.125 }, 51);
  const opt = new SGD(model.trainableVariables(), { lr: 0.05 });
  await trainEpoch(model, opt, train(), { indices: subsetIndices(train(), { n: 640 }), batchSize: 64, progress: false });
  opt.dispose();
  adv = await makeAdversarialSet(model, testSet(), { n: 96, attack: { steps: 3 }, progress: false });
});

function stateArrays(m: Network): Map<string, Float32Array> {
  return new Map(m.stateKeys().map((k) => [k, m.read(k)]));
}

test('MRC: ≥ 0 per module, perturbation within eps·‖θ0‖, model bit-identical afterwards, no leaks', async () => {
  const before = stateArrays(model);
  const mods = ['conv1', 'bn1', 'layer2.0.shortcut.0', 'layer3.1.bn2', 'linear'];
  const r = await computeMRC(model, adv, { epochs: 2, batchSize: 48, candidates: 'conv+linear+bn', progress: false }, mods);
  assert.equal(r.ranking.length, mods.length);
  for (const e of r.ranking) {
    assert.ok(e.mrc >= 0, `${e.module} mrc ${e.mrc}`);
    assert.ok(e.finalRelativeNorm <= 0.1 * (1 + 1e-6), `${e.module} relative norm ${e.finalRelativeNorm}`);
    assert.equal(e.epochLosses.length, 2);
    assert.ok(e.accuracyAtMax <= e.accuracyBefore + 1e-9 || e.mrc === 0, `${e.module} accuracy rose while loss rose`);
  }
  assert.deepEqual(r.ranking.map((e) => e.mrc), [...r.ranking.map((e) => e.mrc)].sort((a, b) => a - b), 'ranked ascending');
  assert.deepEqual(r.ranking.find((e) => e.module === 'bn1')!.keys, ['bn1.weight', 'bn1.bias']);
  assert.deepEqual(r.ranking.find((e) => e.module === 'linear')!.keys, ['linear.weight'], 'biases are never perturbed');
  for (const [k, v] of stateArrays(model)) assert.deepEqual(v, before.get(k), `${k} changed by MRC`);
  await assertNoLeak('computeMRC', () => computeMRC(model, adv, { epochs: 1, batchSize: 96, progress: false }, ['layer1.0.conv1', 'layer1.0.bn1']));
  // Resume: entries computed before are kept, their modules not measured again, and the result is the same.
  const seen: string[] = [];
  const resumed = await computeMRC(model, adv, { epochs: 2, batchSize: 48, candidates: 'conv+linear+bn', progress: false }, mods, {
    done: r.ranking.filter((x) => x.module === 'conv1' || x.module === 'linear'),
    onEntry: (x, all, total) => { seen.push(x.module); assert.equal(total, mods.length); assert.ok(all.includes(x)); },
  });
  assert.deepEqual(seen, ['bn1', 'layer2.0.shortcut.0', 'layer3.1.bn2'], 'only the missing modules are measured, in network order');
  assert.deepEqual(resumed.ranking.map((x) => [x.module, x.mrc]), r.ranking.map((x) => [x.module, x.mrc]), 'a resumed run ranks as an uninterrupted one');
  // The paper's variant stops at the first projection.
  const p = await computeMRC(model, adv, { epochs: 4, batchSize: 96, stopAtFirstProjection: true, progress: false }, ['linear']);
  const e = p.ranking[0];
  assert.equal(e.epochLosses.length, e.firstProjectionEpoch ?? 4);
  // Per-tensor BN radius keeps each of γ and β within its own ball.
  const pt = await computeMRC(model, adv, { epochs: 1, batchSize: 96, bnRadius: 'per-tensor', progress: false }, ['bn1']);
  assert.ok(pt.ranking[0].finalRelativeNorm <= 0.1 * (1 + 1e-6));
  // Selection.
  assert.equal(selectLowest(r, 2, 'conv+linear').length, 2);
  assert.ok(selectLowest(r, 2, 'conv+linear').every((n) => !n.includes('bn')));
  assert.throws(() => selectLowest(r, 9), /only 3 conv\+linear modules/);
  assert.equal(candidateModules(model, 'conv+linear').length, 21);
  assert.equal(candidateModules(model, 'conv+linear+bn').length, 41);
  assert.deepEqual(mrcKeys(model, 'layer2.1.conv2'), ['layer2.1.conv2.weight']);
});

test('fine-tuning: only the chosen tensors change; BN statistics change exactly per policy', async () => {
  const chosen = ['layer2.1.conv2', 'layer3.0.bn1'];
  for (const policy of ['all', 'selected', 'none'] as const) {
    const snap = model.snapshot();
    const before = stateArrays(model);
    const r = await finetune(model, train(), testSet(), {
      modules: chosen, bnStats: policy, epochs: 1, batchSize: 32, keep: 'last', evalBefore: false,
      trainIndices: subsetIndices(train(), { n: 64 }), evalIndices: subsetIndices(testSet(), { n: 20 }), evalAttack: { steps: 1 }, progress: false,
    });
    assert.deepEqual(r.trainedKeys, ['layer2.1.conv2.weight', 'layer3.0.bn1.weight', 'layer3.0.bn1.bias']);
    const updatedBN = new Set(policy === 'all' ? model.modules().filter((m) => m.kind === 'bn').map((m) => m.name) : policy === 'selected' ? ['layer3.0.bn1'] : []);
    assert.deepEqual(new Set(r.bnUpdated), updatedBN);
    for (const [k, v] of stateArrays(model)) {
      const changed = !tf.util.arraysEqual(v, before.get(k)!);
      const module = k.replace(/\.(weight|bias|running_mean|running_var)$/, '');
      const shouldChange = k.includes('running_') ? updatedBN.has(module) : r.trainedKeys.includes(k);
      assert.equal(changed, shouldChange, `${policy}: ${k} changed=${changed}`);
    }
    assert.deepEqual(model.bnModes(), Object.fromEntries(Object.keys(model.bnModes()).map((n) => [n, 'train'])), 'BN modes restored');
    model.restore(snap);
    snap.dispose();
  }
  assert.deepEqual(bnModesFor(model, ['bn1', 'conv1'], 'selected').bn1, 'train');
  assert.equal(layerTypeModules(model, 'bn-only').modules.length, 20);
  assert.equal(layerTypeModules(model, 'conv-linear-only').modules.length, 21);
  assert.equal(layerTypeModules(model, 'full').modules.length, 41);
});

test('fine-tuning keeps the best-clean epoch and records per-epoch curves; no leaks', async () => {
  const snap = model.snapshot();
  const opts = {
    modules: ['linear'], epochs: 2, batchSize: 32, trainIndices: subsetIndices(train(), { n: 64 }),
    evalIndices: subsetIndices(testSet(), { n: 20 }), evalAttack: { steps: 1 }, progress: false,
  };
  const r = await finetune(model, train(), testSet(), opts);
  assert.deepEqual(r.history.map((h) => h.epoch), [0, 1, 2]);
  const best = r.history.reduce((a, b) => (b.clean > a.clean ? b : a));
  assert.equal(r.keptEpoch, best.epoch);
  assert.equal(r.kept.clean.length, 20);
  model.restore(snap);
  await assertNoLeak('finetune', async () => { await finetune(model, train(), testSet(), { ...opts, epochs: 1 }); model.restore(snap); });
  snap.dispose();
});

test("fine-tuning with evalRobust 'kept' measures PGD once, for the kept epoch, with the numbers 'every-epoch' gives", async () => {
  const snap = model.snapshot();
  const opts = {
    modules: ['layer4.1.bn2'], epochs: 2, batchSize: 32, trainIndices: subsetIndices(train(), { n: 64 }),
    evalIndices: subsetIndices(testSet(), { n: 24 }), evalAttack: { steps: 2 }, evalBatchSize: 12, evalBefore: false, progress: false,
  };
  try {
    const every = await finetune(model, train(), testSet(), opts);
    model.restore(snap);
    const kept = await finetune(model, train(), testSet(), { ...opts, evalRobust: 'kept' });
    assert.equal(kept.keptEpoch, every.keptEpoch);
    assert.deepEqual(kept.kept.clean, every.kept.clean);
    assert.deepEqual(kept.kept.robust, every.kept.robust);
    for (const h of kept.history) {
      if (h.epoch === kept.keptEpoch) assert.equal(h.robust, every.history.find((x) => x.epoch === h.epoch)!.robust);
      else assert.equal(h.robust, null, `epoch ${h.epoch} robust should not be measured`);
    }
    await assert.rejects(finetune(model, train(), testSet(), { ...opts, evalRobust: 'kept', keep: 'best-robust' }), /best-robust' needs evalRobust 'every-epoch'/);
    await assertNoLeak("finetune evalRobust 'kept'", async () => { await finetune(model, train(), testSet(), { ...opts, epochs: 1, evalRobust: 'kept' }); model.restore(snap); });
  } finally {
    model.restore(snap);
    snap.dispose();
  }
});

test('interpolation sweep: known α points are used as given; the rest match a full sweep', async () => {
  const other = createResNet18({ width: 0.125 }, 78);
  const a = model.snapshot(), b = other.snapshot();
  const o = { alphas: [0, 0.5, 1], evalIndices: subsetIndices(testSet(), { n: 16 }), attack: { steps: 1 }, batchSize: 16, progress: false };
  try {
    const full = await interpolationSweep(model, a, b, testSet(), o);
    const known = full.points.filter((p) => p.alpha !== 0.5).map((p) => ({ ...p, clean: p.clean + 0 }));
    const fast = await interpolationSweep(model, a, b, testSet(), { ...o, known });
    assert.deepEqual(fast.points.map((p) => [p.alpha, p.clean, p.robust]), full.points.map((p) => [p.alpha, p.clean, p.robust]));
    assert.deepEqual(fast.points[1].robustPerExample, full.points[1].robustPerExample);
    // A known point is taken as given (here deliberately altered): it is not re-evaluated.
    const fake = await interpolationSweep(model, a, b, testSet(), { ...o, known: [{ ...full.points[2], clean: 101 }] });
    assert.equal(fake.points[2].clean, 101);
    await assertNoLeak('interpolationSweep with known points', () => interpolationSweep(model, a, b, testSet(), { ...o, known }));
  } finally {
    model.restore(a);
    a.dispose(); b.dispose(); other.dispose();
  }
});

test('interpolation: α=0 and α=1 reproduce θ_AT and θ_FT outputs; pickAlpha follows the paper rule', () => {
  const other = createResNet18({ width: 0.125 }, 77);
  const x = randImages(4, 5);
  const a = model.snapshot(), b = other.snapshot();
  try {
    const ya = tf.tidy(() => model.predict(x).dataSync()), yb = tf.tidy(() => other.predict(x).dataSync());
    interpolateInto(model, a, b, 1);
    assert.deepEqual(tf.tidy(() => model.predict(x).dataSync()), yb);
    interpolateInto(model, a, b, 0);
    assert.deepEqual(tf.tidy(() => model.predict(x).dataSync()), ya);
    interpolateInto(model, a, b, 0.5);
    const mid = model.read('layer1.0.bn1.running_var');
    const ra = a.tensors.get('layer1.0.bn1.running_var')!.dataSync(), rb = b.tensors.get('layer1.0.bn1.running_var')!.dataSync();
    mid.forEach((v, i) => assert.ok(Math.abs(v - (ra[i] + rb[i]) / 2) < 1e-6));
    interpolateInto(model, a, b, 0);
    assert.throws(() => interpolateInto(model, a, b, 1.5), /alpha must be in \[0, 1\]/);
  } finally {
    a.dispose(); b.dispose(); x.dispose(); other.dispose();
  }
  const pt = (alpha: number, clean: number, robust: number): AlphaPoint => ({ alpha, clean, robust, cleanPerExample: new Uint8Array(), robustPerExample: new Uint8Array() });
  const pts = [pt(0, 80, 50), pt(0.5, 82, 49.95), pt(0.8, 83, 49.5), pt(1, 84, 45)];
  assert.equal(pickAlpha(pts, 50, 0.1).alpha, 0.5);
  assert.equal(pickAlpha(pts, 50, 1).alpha, 0.8);
  assert.equal(pickAlpha([pt(0, 80, 50), pt(1, 85, 40)], 50, 0.1).alpha, 0);
});

test('adversarial set: fixed, within eps, reproducible', async () => {
  const again = await makeAdversarialSet(model, testSet(), { n: 96, attack: { steps: 3 }, progress: false });
  try {
    assert.deepEqual(again.x.dataSync(), adv.x.dataSync());
    assert.deepEqual(Array.from(again.indices), Array.from(adv.indices));
  } finally {
    again.dispose();
  }
});
