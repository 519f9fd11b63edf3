import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { createResNet18, type Classifier } from '../lib/src/nn/model.js';
import { loadModel } from '../lib/src/nn/checkpoint.js';
import { loadCifar } from '../lib/src/data/cifar.js';
import { subsetIndices } from '../lib/src/data/subsets.js';
import { makeBatch } from '../lib/src/data/batches.js';
import { correctMask } from '../lib/src/nn/losses.js';
import { apgd, apgdTargeted, apgdCheckpoints, apgdHalveStep, dlrLoss, dlrLossTargeted } from '../lib/src/attacks/apgd.js';
import { square, squareP, squareSide } from '../lib/src/attacks/square.js';
import { autoAttackDetailed, resolveAutoAttack, autoAttackSeed } from '../lib/src/attacks/autoattack.js';
import { pgd } from '../lib/src/attacks/pgd.js';
import { evaluate } from '../lib/src/method/evaluate.js';
import { evaluateAutoAttack } from '../lib/src/method/autoattack.js';
import { repoRoot } from '../lib/src/util/paths.js';
import { testEngine, randImages, assertNoLeak, tempDir, assertStateUnchanged, ownLabels } from './helpers.js';

before(testEngine);

const EPS = 8 / 255;
const SHIPPED = path.join(repoRoot(), 'data', 'runs', 'cifar10-quick-at', 'best.rbn');

function linfAndRange(xa: tf.Tensor, x: tf.Tensor): [number, number, number] {
  return tf.tidy(() => [tf.max(tf.abs(tf.sub(xa, x))), tf.min(xa), tf.max(xa)].map((t) => t.dataSync()[0])) as [number, number, number];
}

test('APGD checkpoints for N = 100 are the reference\'s 22, 41, 57, 70, 80, 87, 93, 99; the halving rule', () => {
  assert.deepEqual(apgdCheckpoints(100), [22, 41, 57, 70, 80, 87, 93, 99]);
  // N = 10: first window max(⌊2.2⌋,1) = 2, then shrinking by 1 down to 1 (the reference's counters).
  assert.deepEqual(apgdCheckpoints(10), [2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(apgdCheckpoints(1), [1]);
  // Oscillation: ≤ ρ·k rises halves; more does not, unless the best loss stalled after an un-halved check.
  assert.equal(apgdHalveStep(16, 22, 0.75, true, 0, 1), true); // 16 ≤ 16.5
  assert.equal(apgdHalveStep(17, 22, 0.75, true, 0, 1), false);
  assert.equal(apgdHalveStep(17, 22, 0.75, false, 1, 1), true); // not halved last time, best unchanged
  assert.equal(apgdHalveStep(17, 22, 0.75, false, 0.5, 1), false); // best improved
  assert.equal(apgdHalveStep(17, 22, 0.75, true, 1, 1), false); // halved last time: only oscillation counts
});

test('DLR and targeted DLR equal hand-computed values, and their gradients flow to the ranked logits', () => {
  const z = tf.tensor2d([[3, 1, 2, 0, -1], [0.5, 4, 1, 2, 3]]);
  const y = tf.tensor1d([0, 2], 'int32');
  const t = tf.tensor1d([1, 4], 'int32');
  try {
    // Row 0: y is top (3); max other 2; π1 3, π3 1 → −(3−2)/(3−1) = −0.5. Row 1: z_y 1, max other 4; π1 4, π3 2 → −(1−4)/(4−2) = 1.5.
    const d = dlrLoss(z, y);
    assert.deepEqual(Array.from(d.dataSync()).map((v) => +v.toFixed(6)), [-0.5, 1.5]);
    // Targeted row 0: −(3−1)/(3 − ½(1+0)) = −0.8; row 1: −(1−3)/(4 − ½(2+1)) = 0.8.
    const dt = dlrLossTargeted(z, y, t);
    assert.deepEqual(Array.from(dt.dataSync()).map((v) => +v.toFixed(6)), [-0.8, 0.8]);
    const g = tf.grad((v: tf.Tensor) => tf.sum(dlrLoss(v as tf.Tensor2D, y)))(z);
    // Row 0: L = −(z0 − z2)/(z0 − z1): ∂/∂z0 = −[(z0−z1) − (z0−z2)]/(z0−z1)² = −(2−1)/4 = −0.25; ∂/∂z2 = 1/2; ∂/∂z1 = −(z0−z2)/(z0−z1)² = −0.25.
    assert.deepEqual(Array.from(g.dataSync()).slice(0, 5).map((v) => +v.toFixed(6)), [-0.25, -0.25, 0.5, 0, 0]);
    tf.dispose([d, dt, g]);
    assert.throws(() => dlrLossTargeted(tf.zeros([1, 3]) as tf.Tensor2D, tf.tensor1d([0], 'int32'), tf.tensor1d([1], 'int32')), /at least 4 classes, got 3/);
  } finally {
    tf.dispose([z, y, t]);
  }
});

test('Square\'s schedule: p halves at the reference\'s query counts; the side is round(√(p·1024))', () => {
  assert.equal(squareP(0, 0.8), 0.8);
  assert.equal(squareP(10, 0.8), 0.8);
  assert.equal(squareP(11, 0.8), 0.4);
  assert.equal(squareP(4999, 0.8), 0.8 / 128);
  assert.deepEqual([0, 11, 51, 201, 501, 1001, 2001, 4001].map((i) => squareSide(i, 0.8, 32, 32)), [29, 20, 14, 10, 7, 5, 4, 3]);
});

test('APGD-CE, APGD-DLR, APGD-T and Square stay in the eps-ball and [0,1], keep fooled points, are pure and seeded', async () => {
  const m = createResNet18({ width: 0.125 }, 3);
  const x = randImages(6, 3);
  const y = ownLabels(m, x);
  try {
    const snap = m.snapshot();
    const runs: Array<[string, () => tf.Tensor4D]> = [
      ['apgd-ce', () => apgd(m, x, y, { steps: 12, seed: 4 })],
      ['apgd-dlr', () => apgd(m, x, y, { steps: 12, loss: 'dlr', seed: 4 })],
      ['apgd-t', () => apgdTargeted(m, x, y, { steps: 6, targets: 3, seed: 4 })],
      ['square', () => square(m, x, y, { queries: 60, seed: 4 })],
    ];
    for (const [name, run] of runs) {
      const a = run();
      const [linf, lo, hi] = linfAndRange(a, x);
      assert.ok(linf <= EPS + 1e-6, `${name}: linf ${linf}`);
      assert.ok(lo >= 0 && hi <= 1, `${name}: range ${lo}..${hi}`);
      const b = run();
      assert.deepEqual(a.dataSync(), b.dataSync(), `${name} is not deterministic for a seed`);
      const c = tf.tidy(() => correctMask(m.forward(a), y));
      if (name !== 'square') assert.ok(c.some((v) => v === 0), `${name} fooled no example: the checks below would be vacuous`);
      // APGD returns x for the examples it did not fool.
      if (name.startsWith('apgd')) {
        const same = tf.tidy(() => Array.from(tf.max(tf.abs(tf.sub(a, x)), [1, 2, 3]).dataSync()));
        c.forEach((ok, i) => { if (ok) assert.equal(same[i], 0, `${name}: robust example ${i} was moved`); });
      }
      tf.dispose([a, b]);
    }
    assertStateUnchanged(m, snap);
    for (const [name, run] of runs) await assertNoLeak(name, () => tf.dispose(run()));
  } finally {
    tf.dispose([x, y]);
    m.dispose();
  }
});

test('APGD and suite options are checked with one-line errors', () => {
  const m = createResNet18({ width: 0.125 }, 8);
  const x = randImages(2, 8);
  const y = ownLabels(m, x);
  try {
    assert.throws(() => apgd(m, x, y, { steps: 0 }), /APGD option 'steps' must be an integer ≥ 1, got 0/);
    assert.throws(() => apgd(m, x, y, { loss: 'hinge' as 'ce' }), /APGD option 'loss' must be 'ce' or 'dlr', got hinge/);
    assert.throws(() => apgdTargeted(m, x, y, { targets: 10 }), /'targets' must be ≤ 9 \(classes − 1\), got 10/);
    assert.throws(() => square(m, x, y, { pInit: 0 }), /Square option 'pInit' must be in \(0, 1\], got 0/);
    assert.throws(() => resolveAutoAttack({ steps: 50 }), /'steps' must be 100 in the standard version \(use version 'custom' to change it\), got 50/);
    assert.throws(() => resolveAutoAttack({ version: 'custom', attacks: ['apgd-ce', 'pgd' as 'square'] }), /'attacks' must be a list of apgd-ce, .*got pgd/);
    assert.equal(autoAttackSeed(0, 1, 2), 65664);
  } finally {
    tf.dispose([x, y]);
    m.dispose();
  }
});

/** A model whose input gradient is zero (its forward is the base's; the backward is cut): gradient masking in its plainest form. */
function maskedGradients(base: Classifier): Classifier {
  const cut = tf.customGrad(((v: tf.Tensor) => ({ value: tf.clone(v), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) })) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (v: tf.Tensor) => tf.Tensor;
  return { forward: (x, o) => base.forward(cut(x) as tf.Tensor4D, o) };
}

test('gradient masking: a zero-gradient model keeps its robust accuracy under PGD and APGD but falls under Square', { skip: !fs.existsSync(SHIPPED) && 'no shipped CIFAR-10 base' }, () => {
  const { model } = loadModel(SHIPPED);
  const data = loadCifar({ dataset: 'cifar10', split: 'test' });
  const idx = subsetIndices(data, { n: 40 });
  const { x, y } = makeBatch(data, idx);
  const masked = maskedGradients(model);
  try {
    const robust = (a: tf.Tensor4D) => { const v = tf.tidy(() => correctMask(model.forward(a), y)); a.dispose(); return v.reduce((s, q) => s + q, 0); };
    const clean = tf.tidy(() => correctMask(model.forward(x), y)).reduce((s, q) => s + q, 0);
    const onTrue = robust(apgd(model, x, y));
    const pgdTrue = robust(pgd(model, x, y));
    // APGD-100 is the stronger attack on the unmasked model.
    assert.ok(onTrue <= pgdTrue, `APGD-CE robust ${onTrue} > PGD-10 robust ${pgdTrue}`);
    const pgdMasked = robust(pgd(masked, x, y));
    const apgdMasked = robust(apgd(masked, x, y, { steps: 20 }));
    const squareMasked = robust(square(masked, x, y, { queries: 1000 }));
    // With no gradient PGD and APGD only see their random start: almost every clean-correct image survives.
    assert.ok(pgdMasked >= clean - 3 && apgdMasked >= clean - 3, `masked: clean ${clean}, PGD ${pgdMasked}, APGD ${apgdMasked}`);
    assert.ok(onTrue < clean - 5, `APGD on the unmasked model fooled too few (${clean} → ${onTrue}) to tell masking apart`);
    // Square reads only the logits, so it still finds what the gradient attack finds on the true model (most of it).
    assert.ok(squareMasked <= apgdMasked - 5, `Square on the masked model: ${squareMasked} robust vs APGD ${apgdMasked}`);
  } finally {
    tf.dispose([x, y]);
    model.dispose();
  }
});

test('the suite on the shipped base: robust ≤ PGD-10 on the same points, nested stages, a resumable run equals an uninterrupted one', { skip: !fs.existsSync(SHIPPED) && 'no shipped CIFAR-10 base' }, async () => {
  const { model } = loadModel(SHIPPED);
  const data = loadCifar({ dataset: 'cifar10', split: 'test' });
  const indices = subsetIndices(data, { n: 24 });
  const attack = { version: 'custom' as const, attacks: ['apgd-ce', 'apgd-t', 'fab-t', 'square'] as const, steps: 10, targets: 2, queries: 40, seed: 5 };
  try {
    const full = await evaluateAutoAttack(model, data, { attack: { ...attack, attacks: [...attack.attacks] }, indices, batchSize: 10, progress: false });
    const pgd10 = await evaluate(model, data, { indices, batchSize: 10, progress: false });
    assert.deepEqual(full.clean.perExample, pgd10.clean.perExample);
    assert.ok(full.robust.correct <= pgd10.robust!.correct, `AutoAttack ${full.robust.correct} > PGD-10 ${pgd10.robust!.correct}`);
    let prev = full.clean.perExample;
    for (const s of full.stages) {
      s.perExample.forEach((v, i) => assert.ok(v <= prev[i], `${s.attack}: example ${i} robust again`));
      prev = s.perExample;
    }
    assert.deepEqual(full.robust.perExample, prev);
    assert.equal(full.stages.reduce((a, s) => a + s.fooled, 0), full.clean.correct - full.robust.correct);

    // Kill after the first saved batch of the first attack (simulated by throwing from the progress stream), then resume.
    const dir = tempDir();
    const statePath = path.join(dir, 'aa-state.json');
    let writes = 0;
    const killer = { isTTY: false, write: (s: string) => { if (/apgd-ce \d+\/\d+/.test(s) && ++writes === 1) throw new Error('killed'); return true; } } as unknown as NodeJS.WritableStream;
    await assert.rejects(evaluateAutoAttack(model, data, { attack: { ...attack, attacks: [...attack.attacks] }, indices, batchSize: 10, statePath, progress: { stream: killer, intervalMs: 0 } }), /killed/);
    assert.ok(fs.existsSync(statePath), 'no resume file after the kill');
    // The file belongs to seed 5: a run with another seed must not take its flags.
    await assert.rejects(evaluateAutoAttack(model, data, { attack: { ...attack, attacks: [...attack.attacks], seed: 6 }, indices, batchSize: 10, statePath, progress: false }), /it belongs to another run/);
    const resumed = await evaluateAutoAttack(model, data, { attack: { ...attack, attacks: [...attack.attacks] }, indices, batchSize: 10, statePath, progress: false });
    assert.equal(resumed.resumed, true);
    assert.deepEqual(resumed.robust.perExample, full.robust.perExample);
    assert.deepEqual(resumed.stages.map((s) => [s.attack, s.fooled]), full.stages.map((s) => [s.attack, s.fooled]));
    assert.ok(!fs.existsSync(statePath), 'resume file left after completion');
    // A resume file of another run is refused by name.
    fs.writeFileSync(statePath, JSON.stringify({ format: 'rift-bn autoattack state', key: 'other', clean: '', robust: '', stages: [], current: null }));
    await assert.rejects(evaluateAutoAttack(model, data, { attack: { ...attack, attacks: [...attack.attacks] }, indices, batchSize: 10, statePath, progress: false }), /aa-state\.json: it belongs to another run/);

    const { x, y } = makeBatch(data, indices.slice(0, 6));
    const small = { version: 'custom' as const, attacks: ['apgd-ce' as const, 'square' as const], steps: 3, queries: 5 };
    await assertNoLeak('autoAttackDetailed', () => tf.dispose(autoAttackDetailed(model, x, y, small).xAdv));
    await assertNoLeak('evaluateAutoAttack', () => evaluateAutoAttack(model, data, { attack: small, indices: indices.slice(0, 6), batchSize: 4, progress: false }));
    tf.dispose([x, y]);
  } finally {
    model.dispose();
  }
});
