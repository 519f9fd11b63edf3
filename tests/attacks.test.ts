import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { createResNet18 } from '../lib/src/nn/model.js';
import { pgd } from '../lib/src/attacks/pgd.js';
import { fgsm } from '../lib/src/attacks/fgsm.js';
import { crossEntropyPerExample } from '../lib/src/nn/losses.js';
import { testEngine, randImages, assertNoLeak, assertStateUnchanged } from './helpers.js';

before(testEngine);

test('PGD stays in the eps-ball and in [0,1], raises the loss, is pure', async () => {
  const m = createResNet18({ width: 0.125 }, 11);
  const x = randImages(6, 11);
  const y = tf.tensor1d([0, 1, 2, 3, 4, 5], 'int32');
  try {
    const snap = m.snapshot();
    const eps = 8 / 255;
    for (const opts of [{}, { randomStart: false }, { steps: 3, restarts: 2 }]) {
      const xa = pgd(m, x, y, { ...opts, eps });
      const [linf, lo, hi] = tf.tidy(() => [tf.max(tf.abs(tf.sub(xa, x))), tf.min(xa), tf.max(xa)].map((t) => t.dataSync()[0]));
      assert.ok(linf <= eps + 1e-6, `linf ${linf}`);
      assert.ok(lo >= 0 && hi <= 1, `range ${lo}..${hi}`);
      const [l0, l1] = tf.tidy(() => [crossEntropyPerExample(m.predict(x), y), crossEntropyPerExample(m.predict(xa), y)].map((t) => tf.mean(t).dataSync()[0]));
      assert.ok(l1 > l0, `loss ${l0} -> ${l1} with ${JSON.stringify(opts)}`);
      xa.dispose();
    }
    // Model state untouched (inference-mode attack).
    assertStateUnchanged(m, snap);
    await assertNoLeak('pgd', () => tf.dispose(pgd(m, x, y, { steps: 2 })));
    await assertNoLeak('pgd restarts', () => tf.dispose(pgd(m, x, y, { steps: 1, restarts: 3 })));
    await assertNoLeak('fgsm', () => tf.dispose(fgsm(m, x, y)));
  } finally {
    tf.dispose([x, y]);
    m.dispose();
  }
});

test('PGD is deterministic for a seed; FGSM equals one PGD step of size eps from x', () => {
  const m = createResNet18({ width: 0.125 }, 12);
  const x = randImages(4, 12);
  const y = tf.tensor1d([3, 1, 4, 1], 'int32');
  try {
    tf.tidy(() => {
      const a = pgd(m, x, y, { steps: 2, seed: 5 }), b = pgd(m, x, y, { steps: 2, seed: 5 }), c = pgd(m, x, y, { steps: 2, seed: 6 });
      assert.deepEqual(a.dataSync(), b.dataSync());
      assert.notDeepEqual(a.dataSync(), c.dataSync());
      const eps = 4 / 255;
      const f = fgsm(m, x, y, { eps });
      const g = tf.grad((xi: tf.Tensor) => tf.mean(crossEntropyPerExample(m.predict(xi as tf.Tensor4D), y)))(x);
      const ref = tf.clipByValue(tf.add(x, tf.mul(tf.sign(g), eps)), 0, 1);
      assert.ok(tf.max(tf.abs(tf.sub(f, ref))).dataSync()[0] < 1e-6);
    });
  } finally {
    tf.dispose([x, y]);
    m.dispose();
  }
});

test('PGD options are validated', () => {
  const m = createResNet18({ width: 0.125 }, 13);
  const x = randImages(2, 13);
  const y = tf.tensor1d([0, 1], 'int32');
  try {
    assert.throws(() => pgd(m, x, y, { steps: 1.5 }), /steps/);
    assert.throws(() => pgd(m, x, y, { restarts: 0 }), /restarts/);
    assert.throws(() => pgd(m, x, y, { eps: -1 }), /eps/);
  } finally {
    tf.dispose([x, y]);
    m.dispose();
  }
});
