/**
 * FAB-T: the targeted Fast Adaptive Boundary attack (Croce & Hein, ICML 2020), L∞ only, as the
 * reference `fab_base.py` / `fab_pt.py` / `fab_projections.py` (fra31/auto-attack) runs it in
 * AutoAttack's standard version. For target rank t = 2 … targets + 1 (the t-th largest clean
 * logit), on the points still robust, each iteration
 *   - takes the linear approximation of the decision boundary between the target and the true
 *     class at the current iterate x1: {z : w·z = b}, w = ∇ₓ(z_t − z_y)(x1), b = w·x1 − (z_t − z_y)(x1);
 *   - projects both x1 and the original point x0 onto that hyperplane within the box [0,1]^d
 *     (minimal L∞ step, `projectionLinf`), giving d1 and d2;
 *   - takes the extrapolation step x1 ← clip((x1 + η·d1)(1 − α) + (x0 + η·d2)·α, 0, 1), where the
 *     bias toward the original point α = min(‖d1‖∞ / (‖d1‖∞ + ‖d2‖∞), α_max) and η overshoots;
 *   - when x1 is misclassified (any class ≠ y, not only the target), keeps it if it is the closest
 *     such point so far and takes the backward step x1 ← x0 + β·(x1 − x0).
 * An example counts as fooled by a run when its closest point is misclassified (re-evaluated)
 * and within eps (L∞); it then leaves the pool of robust points.
 *
 * Reproduced from the reference, including: no random start in the first run of each target
 * (`perturb` passes use_rand_start = counter > 0, so with restarts = 1, as AutoAttack runs FAB-T,
 * the attack is deterministic and the seed unused); later restarts start from
 * x0 + ½·eps·u/‖u‖∞, u ~ U(−1, 1), clipped to [0, 1]; the projection's sign convention, its
 * sorted binary search and its infeasible case (the box corner closest to the hyperplane).
 *
 * Deliberate differences, none changing the algorithm:
 *  - The projection runs per example on the JS side in float64 (the reference: batched float32
 *    torch ops); the same steps, so results agree up to float32 rounding. The iterates are kept
 *    as float32, as in the reference.
 *  - The clean logits (which points are attacked, and the target ranking) are computed once per
 *    call on the whole batch, not once per run on the subset; ranking ties follow `classRanking`
 *    (the higher class index first), where torch's unstable sort leaves them unspecified.
 *  - Random starts (restarts > 1 only): run r of a call (r = target index · restarts + restart)
 *    draws with seed + r, where the reference seeds torch once per call; reproducible for a
 *    seed, not bit-identical to PyTorch.
 * BN runs in inference mode; the model is left untouched. One backward pass per iteration (the
 * targeted difference has a single gradient), plus one forward pass to classify the new iterate.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Classifier } from '../nn/model.js';
import { correctMask, classRanking } from '../nn/losses.js';

/** Options of `fabTargeted`; every field is optional there and defaults to DEFAULT_FAB. */
export interface FABOptions {
  /** L∞ radius: a point farther than eps does not count; also the random starts' radius (½·eps). Default 8/255. */
  eps: number;
  /** Iterations per run (the reference's n_iter). Default 100. */
  steps: number;
  /** Target classes tried in turn, the 2nd … (targets + 1)-th most likely clean class (n_target_classes). Default 9. */
  targets: number;
  /** Runs per target class; runs after the first start from a random point (n_restarts). Default 1 (AutoAttack's FAB-T). */
  restarts: number;
  /** α_max: the largest weight of the step from the original point in the extrapolation step. Default 0.1. */
  alphaMax: number;
  /** η: overshoot of the projection steps. Default 1.05. */
  eta: number;
  /** β: the backward step toward the original point after a misclassified iterate. Default 0.9. */
  beta: number;
  /** Seed of the random starts (run r uses seed + r; unused with restarts = 1). Default 0. */
  seed: number;
}

/** FAB-T defaults (AutoAttack's standard version): eps 8/255, 100 steps, 9 targets, 1 restart, α_max 0.1, η 1.05, β 0.9, seed 0. */
export const DEFAULT_FAB: FABOptions = { eps: 8 / 255, steps: 100, targets: 9, restarts: 1, alphaMax: 0.1, eta: 1.05, beta: 0.9, seed: 0 };

function validate(o: FABOptions): void {
  const bad = (k: string, want: string, v: unknown) => new Error(`FAB-T option '${k}' must be ${want}, got ${v}`);
  if (!(o.eps >= 0)) throw bad('eps', '≥ 0', o.eps);
  if (!Number.isInteger(o.steps) || o.steps < 1) throw bad('steps', 'an integer ≥ 1', o.steps);
  if (!Number.isInteger(o.targets) || o.targets < 1) throw bad('targets', 'an integer ≥ 1', o.targets);
  if (!Number.isInteger(o.restarts) || o.restarts < 1) throw bad('restarts', 'an integer ≥ 1', o.restarts);
  if (!(o.alphaMax >= 0 && o.alphaMax <= 1)) throw bad('alphaMax', 'in [0, 1]', o.alphaMax);
  if (!(o.eta > 0 && Number.isFinite(o.eta))) throw bad('eta', 'a finite number > 0', o.eta);
  if (!(o.beta >= 0 && o.beta <= 1)) throw bad('beta', 'in [0, 1]', o.beta);
  if (!Number.isFinite(o.seed)) throw bad('seed', 'a finite number', o.seed);
}

/**
 * The reference's `projection_linf`: for each of the n rows of `points` t (flat [n·dim], values
 * in [0,1]), the step d of least ‖d‖∞ with w·(t + d) = b and t + d in the box [0,1]^dim, for the
 * hyperplane (w [n·dim], b [n]). Returns d as a new Float64Array [n·dim].
 *
 * As the reference: w and b are first flipped so that w·t ≥ b; d_i moves coordinate i toward the
 * box face that lowers w·z (down where w_i > 0, up where w_i < 0), by min(λ, room_i), room_i its
 * distance to that face; λ is found from the rooms sorted in decreasing order and their
 * cumulative sums, by a binary search of ⌈log2 dim⌉ steps (or in closed form when no coordinate
 * reaches its face). When the hyperplane cannot be reached inside the box (b ≤ the least w·z of
 * the box), d is the box corner that comes closest to it. Coordinates with w_i = 0 never move.
 * Computed exactly per row in float64 (the reference runs the same steps batched in float32);
 * about 1 ms per 3072-value row, small beside the model's passes over the same batch.
 */
export function projectionLinf(points: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>, dim: number): Float64Array {
  const n = b.length;
  if (!Number.isInteger(dim) || dim < 1) throw new Error(`projectionLinf: dim must be an integer ≥ 1, got ${dim}`);
  if (points.length !== n * dim || w.length !== n * dim)
    throw new Error(`projectionLinf: points and w must hold ${n}·${dim} = ${n * dim} values, got ${points.length} and ${w.length}`);
  const d = new Float64Array(n * dim);
  const ws = new Float64Array(dim); // w after the sign flip
  const p = new Float64Array(dim); // room of each coordinate toward its face
  const order = new Int32Array(dim);
  const s = new Float64Array(dim); // cumulative |w| in decreasing room order
  const sb = new Float64Array(dim); // b0 + cumulative |w|·room: w·d(λ) = sb[k] − s[k]·λ for λ between rooms k+1 and k
  let niter = 0;
  while (2 ** niter < dim) niter++; // ⌈log2 dim⌉
  for (let r = 0; r < n; r++) {
    const o = r * dim;
    let wt = 0;
    for (let i = 0; i < dim; i++) wt += w[o + i] * points[o + i];
    const sign = wt - b[r] >= 0 ? 1 : -1;
    // b' = sign·b − (sign·w)·t ≤ 0: the change of w·z the step must make.
    const bp = sign * b[r] - sign * wt;
    let b0 = 0; // the least reachable change: the box corner that lowers w·z most
    for (let i = 0; i < dim; i++) {
      const wi = sign * w[o + i], ti = points[o + i];
      ws[i] = wi;
      const a = wi < 0 ? 1 : 0;
      const di = wi !== 0 ? a - ti : 0;
      d[o + i] = di;
      p[i] = a - ti * (2 * a - 1);
      b0 += wi * di;
      order[i] = i;
    }
    order.sort((i, j) => p[i] - p[j] || i - j);
    let cs = 0, csb = b0;
    for (let k = 0; k < dim; k++) {
      const q = order[dim - 1 - k];
      cs += Math.abs(ws[q]);
      csb += -ws[q] * d[o + q];
      s[k] = cs;
      sb[k] = csb;
    }
    // No coordinate reaches its face (λ below the smallest room): every coordinate moves by λ.
    const cl = bp - (sb[dim - 1] - s[dim - 1] * p[order[0]]) > 0;
    const c2 = bp - b0 > 0 && !cl;
    if (cl) {
      const lambda = Math.max((bp - sb[dim - 1]) / -s[dim - 1], 0);
      for (let i = 0; i < dim; i++) d[o + i] = (ws[i] < 0 ? 1 : -1) * lambda;
    } else if (c2) {
      let lb = 0, ub = dim - 1;
      for (let it = 0; it < niter; it++) {
        const mid = Math.floor((lb + ub) / 2);
        const b2 = sb[mid] - s[mid] * p[order[dim - 1 - mid]];
        if (bp - b2 > 0) lb = mid;
        else ub = mid;
      }
      const lambda = Math.max((bp - sb[lb]) / -s[lb], 0);
      for (let i = 0; i < dim; i++) d[o + i] = ws[i] < 0 ? Math.min(lambda, d[o + i]) : Math.max(-lambda, d[o + i]);
    }
    for (let i = 0; i < dim; i++) d[o + i] *= ws[i] !== 0 ? 1 : 0;
  }
  return d;
}

/** max_i |a_i − c_i| over row r of two flat [·,dim] arrays. */
function rowLinf(a: ArrayLike<number>, c: ArrayLike<number>, r: number, dim: number): number {
  let m = 0;
  for (let i = r * dim; i < (r + 1) * dim; i++) m = Math.max(m, Math.abs(a[i] - c[i]));
  return m;
}

type Shape4 = [number, number, number, number];

/** 1 where the model classifies the rows of xs (flat, of `shape`) as `labels`. */
function correctOf(model: Classifier, xs: Float32Array, shape: Shape4, labels: tf.Tensor1D): Uint8Array {
  const logits = tf.tidy(() => model.forward(tf.tensor4d(xs, shape), { training: false }));
  try {
    return correctMask(logits, labels);
  } finally {
    logits.dispose();
  }
}

/**
 * One FAB-T run (the reference's attack_single_run, targeted, L∞) on the bs points x0 (flat,
 * of `shape`), true classes `labels`, targets `target`. Returns, per point, the closest
 * misclassified iterate found, x0 where none (the reference's adv_c).
 */
function fabRun(
  model: Classifier, x0: Float32Array, shape: Shape4, labels: tf.Tensor1D, yv: Int32Array, target: Int32Array,
  k: number, o: FABOptions, randomStart: boolean, seed: number,
): Float32Array {
  const bs = yv.length;
  const dim = x0.length / bs;
  const x1 = Float32Array.from(x0);
  if (randomStart) {
    const u = tf.tidy(() => tf.randomUniform(shape, -1, 1, 'float32', seed).dataSync() as Float32Array);
    for (let r = 0; r < bs; r++) {
      // min(res2, eps) in the reference, res2 still 1e10 here.
      const scale = (0.5 * o.eps) / absMax(u, r, dim);
      for (let i = r * dim; i < (r + 1) * dim; i++) x1[i] = Math.min(Math.max(x0[i] + scale * u[i], 0), 1);
    }
  }
  const adv = Float32Array.from(x0);
  const dist = new Float64Array(bs).fill(1e10);
  const m = new Float32Array(bs * k);
  for (let r = 0; r < bs; r++) { m[r * k + target[r]] += 1; m[r * k + yv[r]] -= 1; }
  const mask = tf.tensor2d(m, [bs, k]);
  const bHyp = new Float64Array(bs);
  try {
    for (let it = 0; it < o.steps; it++) {
      // z_t − z_y at x1 and its input gradient, in one backward pass over the summed differences.
      let df: Float32Array | null = null;
      const gT = tf.tidy(() => tf.valueAndGrad((v: tf.Tensor) => {
        const diff = tf.sum(tf.mul(model.forward(v as tf.Tensor4D, { training: false }), mask), 1);
        df = Float32Array.from(diff.dataSync());
        return tf.sum(diff) as tf.Scalar;
      })(tf.tensor4d(x1, shape)).grad);
      const w = Float32Array.from(gT.dataSync());
      gT.dispose();
      // The linear approximation of the decision boundary at x1: w·z = b.
      for (let r = 0; r < bs; r++) {
        let wx = 0;
        for (let i = r * dim; i < (r + 1) * dim; i++) wx += w[i] * x1[i];
        bHyp[r] = -df![r] + wx;
      }
      // The projections of x1 and of the original point onto the box-constrained hyperplane.
      const d1 = projectionLinf(x1, w, bHyp, dim);
      const d2 = projectionLinf(x0, w, bHyp, dim);
      for (let r = 0; r < bs; r++) {
        const a1 = Math.max(absMax(d1, r, dim), 1e-8);
        const a2 = Math.max(absMax(d2, r, dim), 1e-8);
        // The bias toward the original point, capped at α_max; then the extrapolation step.
        const alpha = Math.min(Math.max(a1 / (a1 + a2), 0), o.alphaMax);
        for (let i = r * dim; i < (r + 1) * dim; i++) {
          const v = (x1[i] + o.eta * d1[i]) * (1 - alpha) + (x0[i] + d2[i] * o.eta) * alpha;
          x1[i] = Math.min(Math.max(v, 0), 1);
        }
      }
      const correct = correctOf(model, x1, shape, labels);
      for (let r = 0; r < bs; r++) {
        if (correct[r]) continue;
        const t = rowLinf(x1, x0, r, dim);
        if (t < dist[r]) {
          adv.set(x1.subarray(r * dim, (r + 1) * dim), r * dim);
          dist[r] = t;
        }
        // The backward step toward the original point.
        for (let i = r * dim; i < (r + 1) * dim; i++) x1[i] = x0[i] + (x1[i] - x0[i]) * o.beta;
      }
    }
  } finally {
    mask.dispose();
  }
  return adv;
}

/** max_i |v_i| over row r of a flat [·,dim] array. */
function absMax(v: ArrayLike<number>, r: number, dim: number): number {
  let m = 0;
  for (let i = r * dim; i < (r + 1) * dim; i++) m = Math.max(m, Math.abs(v[i]));
  return m;
}

/**
 * FAB-T adversarial examples for images x [b,32,32,3] in [0,1] with int labels y [b] (the
 * reference's FABAttack.perturb with targeted = True, L∞). Only clean-correct examples are
 * attacked, target class after target class (× restarts) on those still robust. Each example
 * comes back as its closest misclassified point found by the first run that fooled it within
 * eps (L∞ ≤ eps, in [0,1]), else as x. Needs targets + 1 ≤ number of classes.
 * Pure: no tensor leaks, BN in inference mode, the model untouched.
 * Returns a new [b,32,32,3] tensor the caller disposes.
 */
export function fabTargeted(model: Classifier, x: tf.Tensor4D, y: tf.Tensor1D, options: Partial<FABOptions> = {}): tf.Tensor4D {
  const o: FABOptions = { ...DEFAULT_FAB, ...options };
  validate(o);
  const n = x.shape[0];
  if (n === 0) return tf.clone(x);
  const dim = x.size / n;
  const cleanLogits = model.forward(x, { training: false });
  const k = cleanLogits.shape[1];
  const z = Float32Array.from(cleanLogits.dataSync() as Float32Array);
  const robust = correctMask(cleanLogits, y);
  cleanLogits.dispose();
  if (o.targets + 1 > k) throw new Error(`FAB-T option 'targets' must be ≤ ${k - 1} (classes − 1), got ${o.targets}`);
  const xv = Float32Array.from(x.dataSync() as Float32Array);
  const yAll = Int32Array.from(y.dataSync());
  const out = Float32Array.from(xv);
  let run = 0;
  for (let rank = 2; rank <= o.targets + 1; rank++) {
    for (let restart = 0; restart < o.restarts; restart++, run++) {
      const idx: number[] = [];
      for (let i = 0; i < n; i++) if (robust[i]) idx.push(i);
      if (idx.length === 0) continue;
      const bs = idx.length;
      const x0 = new Float32Array(bs * dim);
      const yv = new Int32Array(bs), target = new Int32Array(bs);
      idx.forEach((i, j) => {
        x0.set(xv.subarray(i * dim, (i + 1) * dim), j * dim);
        yv[j] = yAll[i];
        target[j] = classRanking(z, i, k)[rank - 1];
      });
      const shape: Shape4 = [bs, x.shape[1], x.shape[2], x.shape[3]];
      const labels = tf.tensor1d(yv, 'int32');
      try {
        const adv = fabRun(model, x0, shape, labels, yv, target, k, o, restart > 0, (o.seed + run) >>> 0);
        // As perturb: a point counts only when the model misclassifies it and it lies within eps.
        const still = correctOf(model, adv, shape, labels);
        idx.forEach((i, j) => {
          if (still[j] || rowLinf(adv, x0, j, dim) > o.eps) return;
          robust[i] = 0;
          out.set(adv.subarray(j * dim, (j + 1) * dim), i * dim);
        });
      } finally {
        labels.dispose();
      }
    }
  }
  return tf.tensor(out, x.shape) as tf.Tensor4D;
}
