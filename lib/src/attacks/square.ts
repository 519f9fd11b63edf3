/**
 * Square Attack (Andriushchenko et al., ECCV 2020), L∞, untargeted, on the margin loss, as the
 * reference `square.py` (fra31/auto-attack) runs it inside AutoAttack: score-based (it reads
 * only the logits, never a gradient), so it is the part of the suite that still works when a
 * model's gradients are masked.
 *   start: x + eps·s, s ∈ {−1, 1} per (image, column, channel) (vertical stripes), clipped to [0, 1];
 *   query i: one square of side s(i) at a random position, one random sign per channel, moved to
 *   the other side of the eps-box; kept for an image when its margin z_y − max_{j≠y} z_j falls
 *   (or is ≤ 0). An image stops being queried once its margin is ≤ 0.
 * The square's side follows p(i) (p_init halved at 10, 50, 200, 500, 1000, 2000, 4000, 6000 and
 * 8000 queries; AutoAttack does not rescale it to the query budget), s = round(√(p·h·w)).
 * As in the reference, one square position and one sign per channel are drawn per query and
 * shared by the whole batch. Random numbers come from mulberry32(seed), not torch's stream.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Classifier } from '../nn/model.js';
import { mulberry32 } from '../util/rng.js';

/** Options of `square`; every field is optional there and defaults to DEFAULT_SQUARE. */
export interface SquareOptions {
  /** L∞ radius. Default 8/255. */
  eps: number;
  /** Query budget per image (the reference's n_queries; the initial point is one more query). Default 5000 (AutoAttack's standard version). */
  queries: number;
  /** p_init: the fraction of the image the first squares cover. Default 0.8. */
  pInit: number;
  /** Seed of the stripes, positions and signs. Default 0. */
  seed: number;
}

/** Square defaults: eps 8/255, 5000 queries, p_init 0.8, seed 0. */
export const DEFAULT_SQUARE: SquareOptions = { eps: 8 / 255, queries: 5000, pInit: 0.8, seed: 0 };

/** The square's area fraction p at (0-based) query i, for p_init (the reference's p_selection without rescaling). */
export function squareP(i: number, pInit: number): number {
  const cuts = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000];
  let halvings = 0;
  for (const c of cuts) if (i > c) halvings++;
  return pInit / 2 ** halvings;
}

/** The square's side in pixels at query i on an h×w image: round(√(p·h·w)), at least 1, at most min(h, w). */
export function squareSide(i: number, pInit: number, h: number, w: number): number {
  return Math.min(Math.max(Math.round(Math.sqrt(squareP(i, pInit) * h * w)), 1), Math.min(h, w));
}

/** Margins z_y − max_{j≠y} z_j of the rows of `rows` (images of `all` by index), with one forward pass. */
function margins(model: Classifier, images: Float32Array, rows: number[], y: Int32Array, shape: [number, number, number]): Float32Array {
  const [h, w, c] = shape;
  const d = h * w * c;
  const batch = new Float32Array(rows.length * d);
  rows.forEach((r, j) => batch.set(images.subarray(r * d, (r + 1) * d), j * d));
  const z = tf.tidy(() => model.forward(tf.tensor4d(batch, [rows.length, h, w, c]), { training: false }).dataSync() as Float32Array);
  const k = z.length / rows.length;
  const out = new Float32Array(rows.length);
  rows.forEach((r, j) => {
    let other = -Infinity;
    for (let q = 0; q < k; q++) if (q !== y[r] && z[j * k + q] > other) other = z[j * k + q];
    out[j] = z[j * k + y[r]] - other;
  });
  return out;
}

/**
 * Square Attack adversarial examples for x [b,h,w,c] in [0,1] with int labels y [b] (BN in
 * inference mode; the model is untouched). Each image comes back as the point with the lowest
 * margin found (adversarial when that margin is ≤ 0), always within the eps-ball and [0,1].
 * `onQuery` (optional) is called after each query with the count still being queried.
 * Returns a new [b,h,w,c] tensor the caller disposes.
 */
export function square(model: Classifier, x: tf.Tensor4D, y: tf.Tensor1D, options: Partial<SquareOptions> = {}, onQuery?: (i: number, active: number) => void): tf.Tensor4D {
  const o: SquareOptions = { ...DEFAULT_SQUARE, ...options };
  const bad = (k: string, want: string, v: unknown) => new Error(`Square option '${k}' must be ${want}, got ${v}`);
  if (!(o.eps >= 0)) throw bad('eps', '≥ 0', o.eps);
  if (!Number.isInteger(o.queries) || o.queries < 0) throw bad('queries', 'an integer ≥ 0', o.queries);
  if (!(o.pInit > 0 && o.pInit <= 1)) throw bad('pInit', 'in (0, 1]', o.pInit);
  const [b, h, w, c] = x.shape;
  const d = h * w * c;
  const xs = x.dataSync() as Float32Array;
  const ys = Int32Array.from(y.dataSync());
  const rand = mulberry32(o.seed);
  const sign = () => (2 * rand() - 1 > 0 ? 1 : -1);
  const clip = (v: number, x0: number) => Math.min(Math.max(v, x0 - o.eps, 0), x0 + o.eps, 1);
  const best = new Float32Array(d * b);
  for (let i = 0; i < b; i++)
    for (let col = 0; col < w; col++)
      for (let ch = 0; ch < c; ch++) {
        const s = sign();
        for (let row = 0; row < h; row++) {
          const p = i * d + (row * w + col) * c + ch;
          best[p] = Math.min(Math.max(xs[p] + o.eps * s, 0), 1);
        }
      }
  const all = Array.from({ length: b }, (_, i) => i);
  const marginMin = margins(model, best, all, ys, [h, w, c]);
  const candidate = new Float32Array(d);
  const cand = new Float32Array(d * b);
  for (let q = 0; q < o.queries; q++) {
    const active = all.filter((i) => marginMin[i] > 0);
    if (active.length === 0) break;
    const s = squareSide(q, o.pInit, h, w);
    // The reference draws its offsets as floor(U·(h − s)), so the last row/column offset is never drawn.
    const vh = Math.floor(rand() * (h - s));
    const vw = Math.floor(rand() * (w - s));
    const signs = Array.from({ length: c }, () => sign());
    for (const i of active) {
      candidate.set(best.subarray(i * d, (i + 1) * d));
      for (let row = vh; row < vh + s; row++)
        for (let col = vw; col < vw + s; col++)
          for (let ch = 0; ch < c; ch++) {
            const p = (row * w + col) * c + ch;
            candidate[p] = clip(candidate[p] + 2 * o.eps * signs[ch], xs[i * d + p]);
          }
      cand.set(candidate, i * d);
    }
    const m = margins(model, cand, active, ys, [h, w, c]);
    active.forEach((i, j) => {
      if (m[j] < marginMin[i] || m[j] <= 0) {
        marginMin[i] = m[j];
        best.set(cand.subarray(i * d, (i + 1) * d), i * d);
      }
    });
    onQuery?.(q + 1, active.length);
  }
  return tf.tensor4d(best, [b, h, w, c]);
}
