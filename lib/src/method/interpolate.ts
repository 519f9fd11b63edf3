/**
 * Weight interpolation (RiFT's third stage): θ_α = (1−α)·θ_AT + α·θ_FT over every state entry,
 * BN running statistics included; α is chosen on a grid by the paper's rule: the highest clean
 * accuracy whose robust accuracy is at least the base's minus a tolerance (0.1 points).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Network, StateSnapshot } from '../nn/model.js';
import type { CifarData } from '../data/cifar.js';
import { evaluate } from './evaluate.js';
import type { PGDOptions } from '../attacks/pgd.js';

/** Writes (1−α)·a + α·b into `model` for every key of `a` (which `b` must also hold). */
export function interpolateInto(model: Network, a: StateSnapshot, b: StateSnapshot, alpha: number): void {
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`interpolate: alpha must be in [0, 1], got ${alpha}`);
  const out = new Map<string, tf.Tensor>();
  try {
    for (const [k, ta] of a.tensors) {
      const tb = b.tensors.get(k);
      if (!tb) throw new Error(`interpolate: second state lacks '${k}'`);
      // α = 0 and α = 1 copy exactly (no rounding from 1·x + 0·y).
      out.set(k, alpha === 0 ? tf.clone(ta) : alpha === 1 ? tf.clone(tb) : tf.tidy(() => tf.add(tf.mul(ta, 1 - alpha), tf.mul(tb, alpha))));
    }
    model.write(out);
  } finally {
    out.forEach((t) => t.dispose());
  }
}

/** The interpolated model θ_α evaluated at one α: clean and robust accuracy (percent) and per-example correctness. */
export interface AlphaPoint {
  alpha: number;
  clean: number;
  robust: number;
  cleanPerExample: Uint8Array;
  robustPerExample: Uint8Array;
}

/** Options of `interpolationSweep`; defaults in DEFAULT_INTERPOLATION. */
export interface InterpolationOptions {
  /** Grid of α. Default 0, 0.1, …, 1. */
  alphas: number[];
  /** Allowed robust-accuracy loss vs the base, in points. Default 0.1. */
  tolerance: number;
  /** Evaluation indices (default all of `test`). */
  evalIndices?: Int32Array;
  /** Indices for clean accuracy if other than `evalIndices` (see `EvaluateOptions.cleanIndices`). */
  cleanIndices?: Int32Array;
  /** Attack (merged over PGD-10 defaults). Default {}. */
  attack: Partial<PGDOptions>;
  /** Evaluation batch size (attack seeds are per batch). Default 256. */
  batchSize: number;
  progress: boolean;
  /**
   * Points already measured with the same indices, attack and batch size (typically α = 0, the
   * base model's evaluation, and α = 1, the fine-tuned model's): used as they are instead of
   * evaluating again. Evaluation is deterministic for a fixed model, attack seed and batching,
   * so this changes cost only. Default none.
   */
  known?: readonly AlphaPoint[];
}

/** Interpolation defaults: α grid 0, 0.1, …, 1, tolerance 0.1 points, PGD-10 (DEFAULT_PGD) at batch 256, progress on. */
export const DEFAULT_INTERPOLATION: InterpolationOptions = {
  alphas: Array.from({ length: 11 }, (_, i) => i / 10), tolerance: 0.1, attack: {}, batchSize: 256, progress: true,
};

/**
 * The paper's pick: among points with robust ≥ baseRobust − tolerance, the highest clean
 * accuracy (ties: larger α). If none qualifies, α = 0 (the base model).
 */
export function pickAlpha(points: readonly AlphaPoint[], baseRobust: number, tolerance: number): AlphaPoint {
  const ok = points.filter((p) => p.robust >= baseRobust - tolerance - 1e-9);
  if (!ok.length) return points.find((p) => p.alpha === 0) ?? points[0];
  return ok.reduce((a, b) => (b.clean > a.clean || (b.clean === a.clean && b.alpha > a.alpha) ? b : a));
}

/** Result of `interpolationSweep`: every evaluated α (ascending), the chosen point, the base's robust accuracy, the tolerance. */
export interface InterpolationResult {
  points: AlphaPoint[];
  chosen: AlphaPoint;
  baseRobust: number;
  tolerance: number;
}

/**
 * Evaluates θ_α for every α on the grid (base robust accuracy = the α = 0 point) and leaves
 * `model` at the chosen α. `base` and `finetuned` stay owned by the caller.
 */
export async function interpolationSweep(
  model: Network, base: StateSnapshot, finetuned: StateSnapshot, test: CifarData, options: Partial<InterpolationOptions> = {},
): Promise<InterpolationResult> {
  const o: InterpolationOptions = { ...DEFAULT_INTERPOLATION, ...options };
  const alphas = [...new Set([0, ...o.alphas])].sort((a, b) => a - b);
  const points: AlphaPoint[] = [];
  for (const alpha of alphas) {
    const known = o.known?.find((p) => p.alpha === alpha);
    if (known) { points.push({ ...known }); continue; }
    interpolateInto(model, base, finetuned, alpha);
    const ev = await evaluate(model, test, { indices: o.evalIndices, cleanIndices: o.cleanIndices, attack: o.attack, batchSize: o.batchSize, label: `interpolate α=${alpha.toFixed(2)}`, progress: o.progress ? {} : false });
    points.push({ alpha, clean: ev.clean.accuracy, robust: ev.robust!.accuracy, cleanPerExample: ev.clean.perExample, robustPerExample: ev.robust!.perExample });
  }
  const baseRobust = points[0].robust;
  const chosen = pickAlpha(points, baseRobust, o.tolerance);
  interpolateInto(model, base, finetuned, chosen.alpha);
  return { points, chosen, baseRobust, tolerance: o.tolerance };
}
