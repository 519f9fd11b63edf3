/**
 * Auto-PGD (Croce & Hein, ICML 2020) in the L∞ ball, as the reference `autopgd_base.py`
 * (fra31/auto-attack) runs it:
 *   random start x + eps·t/‖t‖∞, t ~ U(−1, 1), clipped to [0, 1]; initial step η = 2·eps per example;
 *   z = P(x_k + η·sign(∇)),  x_{k+1} = P(x_k + a(z − x_k) + (1 − a)(x_k − x_{k−1})), a = 1 then 0.75;
 *   at each checkpoint (`apgdCheckpoints`) η halves for an example whose loss rose in ≤ ρ of the
 *   steps since the last one, or whose step was not cut last time and whose best loss did not
 *   improve; such an example restarts from its best point (and that point's gradient).
 * Every misclassified iterate is kept (the last one found), so the attack returns an adversarial
 * point whenever any iterate was one. BN runs in inference mode; the model is left untouched.
 *
 * The seed stream differs from the reference's (torch.manual_seed once per call): run r of a call
 * (restart, or target × restart for APGD-T) starts from seed + r, so a run is reproducible here
 * but not bit-identical to PyTorch's.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Classifier } from '../nn/model.js';
import { correctMask, crossEntropyPerExample, classRanking } from '../nn/losses.js';

/** The losses APGD maximises: cross-entropy, or the difference of logits ratio (DLR). */
export type APGDLoss = 'ce' | 'dlr';

/** Options of `apgd`; every field is optional there and defaults to DEFAULT_APGD. */
export interface APGDOptions {
  /** L∞ radius. Default 8/255. */
  eps: number;
  /** Iterations N (the reference's n_iter). Default 100. */
  steps: number;
  /** Loss maximised: 'ce' (APGD-CE) or 'dlr' (APGD-DLR). Default 'ce'. */
  loss: APGDLoss;
  /** Random restarts; each later restart attacks only the points not yet fooled. Default 1 (AutoAttack's standard version). */
  restarts: number;
  /** ρ: the fraction of rising steps since the last checkpoint at or below which the step size halves. Default 0.75. */
  rho: number;
  /** Seed of the random start (run r uses seed + r). Default 0. */
  seed: number;
}

/** APGD defaults: eps 8/255, 100 iterations, CE loss, 1 restart, ρ 0.75, seed 0 (AutoAttack's APGD-CE). */
export const DEFAULT_APGD: APGDOptions = { eps: 8 / 255, steps: 100, loss: 'ce', restarts: 1, rho: 0.75, seed: 0 };

/** Options of `apgdTargeted`: APGD's without the loss (always the targeted DLR), plus the number of target classes. */
export interface APGDTargetedOptions extends Omit<APGDOptions, 'loss'> {
  /**
   * Target classes tried in turn (the 2nd, 3rd, … most likely class of the clean logits), each
   * on the points still robust. Default 9 (AutoAttack's standard version on 10 classes).
   */
  targets: number;
}

/** APGD-T defaults: DEFAULT_APGD's eps, steps, restarts, ρ and seed, 9 target classes. */
export const DEFAULT_APGD_T: APGDTargetedOptions = { eps: 8 / 255, steps: 100, restarts: 1, rho: 0.75, seed: 0, targets: 9 };

/**
 * The iterations (1-based: after that many gradient steps) at which APGD checks its step size,
 * for N iterations: the first after max(⌊0.22N⌋, 1), then windows shrinking by max(⌊0.03N⌋, 1)
 * down to max(⌊0.06N⌋, 1). N = 100 → [22, 41, 57, 70, 80, 87, 93, 99]. `apgd` runs on this list.
 */
export function apgdCheckpoints(steps: number): number[] {
  const first = Math.max(Math.floor(0.22 * steps), 1);
  const min = Math.max(Math.floor(0.06 * steps), 1);
  const decr = Math.max(Math.floor(0.03 * steps), 1);
  const out: number[] = [];
  let k = first, at = 0;
  while (at + k <= steps) {
    at += k;
    out.push(at);
    k = Math.max(k - decr, min);
  }
  return out;
}

/**
 * APGD's step-size rule at a checkpoint for one example: halve (and go back to the best point)
 * when the loss rose in at most ρ·k of the k steps of the window (oscillation), or when the step
 * was not halved at the previous checkpoint and the best loss has not improved since.
 */
export function apgdHalveStep(rises: number, window: number, rho: number, halvedLastTime: boolean, bestAtLastCheck: number, best: number): boolean {
  return rises <= window * rho || (!halvedLastTime && bestAtLastCheck >= best);
}

/**
 * Per-example DLR loss −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e-12), π the logits sorted in
 * decreasing order; logits [b,k] (k ≥ 3), labels [b] → [b]. Caller disposes the result.
 * Differentiable in the logits (the ranking is read once and held fixed, as a sort's gradient is).
 */
export function dlrLoss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  const [b, k] = logits.shape;
  if (k < 3) throw new Error(`dlrLoss: needs at least 3 classes, got ${k}`);
  const z = logits.dataSync() as Float32Array;
  const y = labels.dataSync();
  const pick = { y: new Float32Array(b * k), other: new Float32Array(b * k), p1: new Float32Array(b * k), p3: new Float32Array(b * k) };
  for (let i = 0; i < b; i++) {
    const order = classRanking(z, i, k);
    const yi = y[i];
    pick.y[i * k + yi] = 1;
    pick.other[i * k + (order[0] === yi ? order[1] : order[0])] = 1;
    pick.p1[i * k + order[0]] = 1;
    pick.p3[i * k + order[2]] = 1;
  }
  return tf.tidy(() => {
    const sel = (m: Float32Array) => tf.sum(tf.mul(logits, tf.tensor2d(m, [b, k])), 1);
    return tf.neg(tf.div(tf.sub(sel(pick.y), sel(pick.other)), tf.add(tf.sub(sel(pick.p1), sel(pick.p3)), 1e-12))) as tf.Tensor1D;
  });
}

/**
 * Per-example targeted DLR loss −(z_y − z_t) / (z_π1 − ½(z_π3 + z_π4) + 1e-12); logits [b,k]
 * (k ≥ 4), labels and targets [b] → [b]. Caller disposes the result.
 */
export function dlrLossTargeted(logits: tf.Tensor2D, labels: tf.Tensor1D, targets: tf.Tensor1D): tf.Tensor1D {
  const [b, k] = logits.shape;
  if (k < 4) throw new Error(`dlrLossTargeted: needs at least 4 classes, got ${k}`);
  const z = logits.dataSync() as Float32Array;
  const y = labels.dataSync(), t = targets.dataSync();
  const num = new Float32Array(b * k), den = new Float32Array(b * k);
  for (let i = 0; i < b; i++) {
    const order = classRanking(z, i, k);
    num[i * k + y[i]] += 1;
    num[i * k + t[i]] -= 1;
    den[i * k + order[0]] += 1;
    den[i * k + order[2]] -= 0.5;
    den[i * k + order[3]] -= 0.5;
  }
  return tf.tidy(() => {
    const sel = (m: Float32Array) => tf.sum(tf.mul(logits, tf.tensor2d(m, [b, k])), 1);
    return tf.neg(tf.div(sel(num), tf.add(sel(den), 1e-12))) as tf.Tensor1D;
  });
}

/** The i-th most likely class (i = 1: the top one) of each row of the logits, as int32 [b]. */
function rankedClass(logits: tf.Tensor2D, i: number): tf.Tensor1D {
  const [b, k] = logits.shape;
  const z = logits.dataSync() as Float32Array;
  const out = new Int32Array(b);
  for (let r = 0; r < b; r++) out[r] = classRanking(z, r, k)[i - 1];
  return tf.tensor1d(out, 'int32');
}

function validate(o: APGDOptions | APGDTargetedOptions, name: string): void {
  const bad = (k: string, want: string, v: unknown) => new Error(`${name} option '${k}' must be ${want}, got ${v}`);
  if (!(o.eps >= 0)) throw bad('eps', '≥ 0', o.eps);
  if (!Number.isInteger(o.steps) || o.steps < 1) throw bad('steps', 'an integer ≥ 1', o.steps);
  if (!Number.isInteger(o.restarts) || o.restarts < 1) throw bad('restarts', 'an integer ≥ 1', o.restarts);
  if (!(o.rho >= 0 && o.rho <= 1)) throw bad('rho', 'in [0, 1]', o.rho);
  if ('loss' in o && o.loss !== 'ce' && o.loss !== 'dlr') throw bad('loss', "'ce' or 'dlr'", o.loss);
  if ('targets' in o && (!Number.isInteger(o.targets) || o.targets < 1)) throw bad('targets', 'an integer ≥ 1', o.targets);
}

type LossFn = (logits: tf.Tensor2D) => tf.Tensor1D;

/** Logits, per-example loss and ∇ₓ of the summed loss at xa; the caller disposes all three. */
function lossAndGrad(model: Classifier, xa: tf.Tensor4D, lossFn: LossFn): { logits: tf.Tensor2D; loss: Float32Array; grad: tf.Tensor4D } {
  let logits: tf.Tensor2D | null = null;
  let loss: Float32Array | null = null;
  const { value, grad } = tf.valueAndGrad((v: tf.Tensor) => {
    const z = model.forward(v as tf.Tensor4D, { training: false });
    logits = tf.keep(z);
    const l = lossFn(z);
    loss = l.dataSync() as Float32Array;
    return tf.sum(l) as tf.Scalar;
  })(xa);
  value.dispose();
  return { logits: logits!, loss: Float32Array.from(loss!), grad: grad as tf.Tensor4D };
}

/** Rows of `a` where mask[i] = 1, else rows of `b` (both [n,…]); a new tensor, inputs untouched. */
function selectRows<T extends tf.Tensor>(mask: Uint8Array, a: T, b: T): T {
  return tf.tidy(() => {
    const m = tf.reshape(tf.tensor1d(mask, 'bool'), [mask.length, ...a.shape.slice(1).map(() => 1)]);
    return tf.where(tf.broadcastTo(m, a.shape), a, b) as T;
  });
}

/**
 * A copy of `into` [b,…] in which row idx[j] is row j of `rows` [idx.length,…] wherever
 * take[idx[j]] = 1 (take is over the b rows of `into`): how an attack run on a subset of a batch
 * hands its points back. Inputs are untouched; the caller disposes the result.
 */
export function replaceRows<T extends tf.Tensor>(into: T, rows: T, idx: readonly number[], take: Uint8Array): T {
  return tf.tidy(() => {
    const pos = new Int32Array(into.shape[0]);
    idx.forEach((i, j) => { pos[i] = j; });
    return selectRows(take, tf.gather(rows, tf.tensor1d(pos, 'int32')) as T, into);
  });
}

function replace<T extends tf.Tensor>(old: T, next: T): T {
  old.dispose();
  return next;
}

/** One APGD run on (x, y); returns the kept adversarial iterate per example (x's random start where none was found) and which examples stayed robust. */
function apgdRun(model: Classifier, x: tf.Tensor4D, y: tf.Tensor1D, lossFn: LossFn, o: { eps: number; steps: number; rho: number }, seed: number): { adv: tf.Tensor4D; robust: Uint8Array } {
  const b = x.shape[0];
  const eps = o.eps;
  const project = (v: tf.Tensor) => tf.clipByValue(tf.minimum(tf.maximum(v, tf.sub(x, eps)), tf.add(x, eps)), 0, 1);
  let xAdv = tf.tidy(() => {
    const t = tf.randomUniform(x.shape, -1, 1, 'float32', seed);
    const tInf = tf.reshape(tf.max(tf.abs(tf.reshape(t, [b, -1])), 1), [b, 1, 1, 1]);
    return tf.clipByValue(tf.add(x, tf.mul(eps, tf.div(t, tf.add(tInf, 1e-12)))), 0, 1);
  }) as tf.Tensor4D;
  const first = lossAndGrad(model, xAdv, lossFn);
  let grad = first.grad;
  const robust = correctMask(first.logits, y);
  first.logits.dispose();
  let xBest = tf.clone(xAdv);
  let xBestAdv = tf.clone(xAdv);
  let gradBest = tf.clone(grad);
  let xOld = tf.clone(xAdv);
  const lossBest = Float32Array.from(first.loss);
  const step = new Float32Array(b).fill(2 * eps);
  // Rises are counted against the previous step's loss; the reference compares the window's first step with loss_steps[-1], still 0 then.
  const prevLoss = new Float32Array(b);
  const rises = new Int32Array(b);
  const halvedLast = new Uint8Array(b).fill(1);
  const bestAtLastCheck = Float32Array.from(lossBest);
  const checkpoints = new Set(apgdCheckpoints(o.steps));
  let windowStart = 0;
  try {
    for (let i = 0; i < o.steps; i++) {
      const a = i > 0 ? 0.75 : 1.0;
      const next = tf.tidy(() => {
        const eta = tf.tensor4d(step, [b, 1, 1, 1]);
        const z = project(tf.add(xAdv, tf.mul(eta, tf.sign(grad))));
        const momentum = tf.sub(xAdv, xOld);
        return project(tf.add(tf.add(xAdv, tf.mul(tf.sub(z, xAdv), a)), tf.mul(momentum, 1 - a))) as tf.Tensor4D;
      });
      xOld.dispose();
      xOld = xAdv;
      xAdv = next;
      grad.dispose();
      const cur = lossAndGrad(model, xAdv, lossFn);
      grad = cur.grad;
      const pred = correctMask(cur.logits, y);
      cur.logits.dispose();
      const fooled = new Uint8Array(b);
      const improved = new Uint8Array(b);
      for (let j = 0; j < b; j++) {
        robust[j] = Math.min(robust[j], pred[j]);
        fooled[j] = pred[j] ? 0 : 1;
        if (cur.loss[j] > prevLoss[j]) rises[j]++;
        prevLoss[j] = cur.loss[j];
        if (cur.loss[j] > lossBest[j]) { improved[j] = 1; lossBest[j] = cur.loss[j]; }
      }
      xBestAdv = replace(xBestAdv, selectRows(fooled, xAdv, xBestAdv));
      xBest = replace(xBest, selectRows(improved, xAdv, xBest));
      gradBest = replace(gradBest, selectRows(improved, grad, gradBest));
      if (checkpoints.has(i + 1)) {
        const window = i + 1 - windowStart;
        windowStart = i + 1;
        const halve = new Uint8Array(b);
        for (let j = 0; j < b; j++) {
          halve[j] = apgdHalveStep(rises[j], window, o.rho, halvedLast[j] === 1, bestAtLastCheck[j], lossBest[j]) ? 1 : 0;
          halvedLast[j] = halve[j];
          bestAtLastCheck[j] = lossBest[j];
          rises[j] = 0;
          if (halve[j]) step[j] /= 2;
        }
        if (halve.some((v) => v)) {
          xAdv = replace(xAdv, selectRows(halve, xBest, xAdv));
          grad = replace(grad, selectRows(halve, gradBest, grad));
        }
      }
    }
    return { adv: tf.clone(xBestAdv), robust };
  } finally {
    tf.dispose([xAdv, xOld, grad, xBest, xBestAdv, gradBest]);
  }
}

/**
 * Runs `run` on the examples of (x, y) still marked robust, restart after restart; fooled
 * examples take the run's point. Returns x with those points (a new tensor) and the flags.
 */
function onRobust(
  model: Classifier, x: tf.Tensor4D, y: tf.Tensor1D, runs: number,
  run: (xs: tf.Tensor4D, ys: tf.Tensor1D, r: number) => { adv: tf.Tensor4D; robust: Uint8Array },
): tf.Tensor4D {
  const b = x.shape[0];
  const logits = model.forward(x, { training: false });
  const robust = correctMask(logits, y);
  logits.dispose();
  let adv = tf.clone(x);
  for (let r = 0; r < runs; r++) {
    const idx: number[] = [];
    for (let i = 0; i < b; i++) if (robust[i]) idx.push(i);
    if (idx.length === 0) break;
    const all = idx.length === b;
    const ids = tf.tensor1d(idx, 'int32');
    const xs = all ? x : tf.gather(x, ids);
    const ys = all ? y : tf.gather(y, ids);
    try {
      const res = run(xs, ys, r);
      const fooled = new Uint8Array(b);
      idx.forEach((i, j) => { if (!res.robust[j]) { fooled[i] = 1; robust[i] = 0; } });
      const merged = replaceRows(adv, res.adv, idx, fooled);
      res.adv.dispose();
      adv = replace(adv, merged);
    } finally {
      ids.dispose();
      if (!all) tf.dispose([xs, ys]);
    }
  }
  return adv;
}

/**
 * APGD adversarial examples (APGD-CE or APGD-DLR) for x [b,32,32,3] in [0,1] with int labels
 * y [b]. Only clean-correct examples are attacked; an example comes back as an adversarial point
 * when one was found, else as x. Returns a new [b,32,32,3] tensor the caller disposes.
 */
export function apgd(model: Classifier, x: tf.Tensor4D, y: tf.Tensor1D, options: Partial<APGDOptions> = {}): tf.Tensor4D {
  const o: APGDOptions = { ...DEFAULT_APGD, ...options };
  validate(o, 'APGD');
  return onRobust(model, x, y, o.restarts, (xs, ys, r) => {
    const lossFn: LossFn = o.loss === 'ce'
      ? (z) => crossEntropyPerExample(z, ys)
      : (z) => dlrLoss(z, ys);
    return apgdRun(model, xs, ys, lossFn, o, (o.seed + r) >>> 0);
  });
}

/**
 * APGD-T: APGD on the targeted DLR loss, for target classes 2 … targets + 1 in the clean
 * logits' ranking, each (× restarts) on the examples still robust; x [b,32,32,3] in [0,1], y [b].
 * Needs targets + 1 ≤ number of classes. Returns a new [b,32,32,3] tensor the caller disposes.
 */
export function apgdTargeted(model: Classifier, x: tf.Tensor4D, y: tf.Tensor1D, options: Partial<APGDTargetedOptions> = {}): tf.Tensor4D {
  const o: APGDTargetedOptions = { ...DEFAULT_APGD_T, ...options };
  validate(o, 'APGD-T');
  const classes = tf.tidy(() => model.forward(tf.slice(x, [0, 0, 0, 0], [1, -1, -1, -1]), { training: false }).shape[1]);
  if (o.targets + 1 > classes) throw new Error(`APGD-T option 'targets' must be ≤ ${classes - 1} (classes − 1), got ${o.targets}`);
  return onRobust(model, x, y, o.targets * o.restarts, (xs, ys, r) => {
    const targetRank = 2 + Math.floor(r / o.restarts);
    const clean = model.forward(xs, { training: false });
    const target = rankedClass(clean, targetRank);
    clean.dispose();
    try {
      return apgdRun(model, xs, ys, (z) => dlrLossTargeted(z, ys, target), o, (o.seed + r) >>> 0);
    } finally {
      target.dispose();
    }
  });
}
