/**
 * Projected gradient descent (Madry et al. 2018) in the L∞ ball, as RiFT's code runs it:
 *   x_adv = clip(x + U(−eps, eps), 0, 1)                       (random start)
 *   repeat steps: x_adv = clip(x + clip(x_adv + alpha·sign(∇ₓ CE) − x, −eps, eps), 0, 1)
 * returning the last iterate. The model runs in inference mode (BN running statistics)
 * unless `training` is set (PGD-AT's reference generates its attack with BN in train mode).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Classifier } from '../nn/model.js';
import { crossEntropy, crossEntropyPerExample, correctMask } from '../nn/losses.js';

/** Options of `pgd`; every field is optional there and defaults to DEFAULT_PGD. */
export interface PGDOptions {
  /** L∞ radius. Default 8/255. */
  eps: number;
  /** Step size. Default 2/255 (RiFT's paper; its code has the typo 2/225). */
  alpha: number;
  /** Number of gradient steps. Default 10. */
  steps: number;
  /** Start from a uniform random point in the eps-ball. Default true. */
  randomStart: boolean;
  /**
   * Independent random restarts. Default 1. With > 1, each example keeps the first restart
   * whose last iterate fools the model, else the restart with the highest loss (RiFT's paper
   * reports the worst of 3 runs).
   */
  restarts: number;
  /** Seed of the random start (restart r uses seed + r). Default 0. */
  seed: number;
  /**
   * Call the model in training mode while attacking (BN per its BNMode; 'train' layers update
   * running statistics, as PyTorch train() does). Default false: inference mode, model untouched.
   */
  training: boolean;
}

/**
 * The attack seed of batch `batch` of a pass over a dataset: seed + batch·restarts (mod 2^32),
 * so restart r of batch b starts from seed + b·restarts + r and no two (batch, restart) pairs
 * share a random start. Every pass that attacks batch by batch (evaluation, MRC's adversarial
 * set, PGD-AT, Figure 3's inputs) uses this one rule.
 */
export function batchAttackSeed(seed: number, batch: number, restarts: number): number {
  return (seed + batch * restarts) >>> 0;
}

/** PGD defaults (PGD-10): eps 8/255, alpha 2/255, 10 steps, random start, 1 restart, seed 0, inference mode. */
export const DEFAULT_PGD: PGDOptions = {
  eps: 8 / 255,
  alpha: 2 / 255,
  steps: 10,
  randomStart: true,
  restarts: 1,
  seed: 0,
  training: false,
};

function validate(o: PGDOptions): void {
  const bad = (k: string, want: string, v: unknown) => new Error(`PGD option '${k}' must be ${want}, got ${v}`);
  if (!(o.eps >= 0)) throw bad('eps', '≥ 0', o.eps);
  if (!(o.alpha >= 0)) throw bad('alpha', '≥ 0', o.alpha);
  if (!Number.isInteger(o.steps) || o.steps < 0) throw bad('steps', 'an integer ≥ 0', o.steps);
  if (!Number.isInteger(o.restarts) || o.restarts < 1) throw bad('restarts', 'an integer ≥ 1', o.restarts);
}

/** One PGD run (one restart). Returns a new tensor; inputs are not disposed. */
function pgdRun(model: Classifier, x: tf.Tensor4D, y: tf.Tensor1D, o: PGDOptions, seed: number): tf.Tensor4D {
  const lossOf = (xa: tf.Tensor) => crossEntropy(model.forward(xa as tf.Tensor4D, { training: o.training }), y);
  const grad = tf.grad(lossOf);
  let xAdv = tf.tidy(() =>
    o.randomStart ? tf.clipByValue(tf.add(x, tf.randomUniform(x.shape, -o.eps, o.eps, 'float32', seed)), 0, 1) : tf.clone(x),
  ) as tf.Tensor4D;
  for (let s = 0; s < o.steps; s++) {
    const next = tf.tidy(() => {
      const g = grad(xAdv);
      const stepped = tf.add(xAdv, tf.mul(tf.sign(g), o.alpha));
      return tf.clipByValue(tf.add(x, tf.clipByValue(tf.sub(stepped, x), -o.eps, o.eps)), 0, 1) as tf.Tensor4D;
    });
    xAdv.dispose();
    xAdv = next;
  }
  return xAdv;
}

/**
 * PGD adversarial examples for images x [b,32,32,3] in [0,1] with int labels y [b].
 * Pure: no tensor leaks and, with `training: false`, the model is left untouched.
 * Returns a new [b,32,32,3] tensor the caller disposes.
 */
export function pgd(model: Classifier, x: tf.Tensor4D, y: tf.Tensor1D, options: Partial<PGDOptions> = {}): tf.Tensor4D {
  const o: PGDOptions = { ...DEFAULT_PGD, ...options };
  validate(o);
  if (o.restarts === 1) return pgdRun(model, x, y, o, o.seed);
  let best = pgdRun(model, x, y, o, o.seed);
  const b = x.shape[0];
  const score = (xa: tf.Tensor4D) => {
    const logits = model.forward(xa, { training: false });
    const fooled = correctMask(logits, y).map((c) => 1 - c);
    const loss = tf.tidy(() => crossEntropyPerExample(logits, y).dataSync() as Float32Array);
    logits.dispose();
    return { fooled, loss };
  };
  let s = score(best);
  for (let r = 1; r < o.restarts; r++) {
    const cand = pgdRun(model, x, y, o, o.seed + r);
    const c = score(cand);
    const take = new Uint8Array(b);
    for (let i = 0; i < b; i++) {
      take[i] = !s.fooled[i] && (c.fooled[i] || c.loss[i] > s.loss[i]) ? 1 : 0;
      if (take[i]) { s.fooled[i] = c.fooled[i]; s.loss[i] = c.loss[i]; }
    }
    const merged = tf.tidy(() => {
      const mask = tf.reshape(tf.tensor1d(take, 'bool'), [b, 1, 1, 1]);
      return tf.where(tf.broadcastTo(mask, x.shape), cand, best) as tf.Tensor4D;
    });
    best.dispose();
    cand.dispose();
    best = merged;
  }
  return best;
}
