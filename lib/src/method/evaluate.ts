/**
 * Clean and PGD robust accuracy of a classifier over a dataset or a fixed subset, with
 * per-example correctness so that two models can be compared pairwise on the same examples.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Classifier } from '../nn/model.js';
import type { CifarData } from '../data/cifar.js';
import { correctMask } from '../nn/losses.js';
import { pgd, batchAttackSeed, DEFAULT_PGD, type PGDOptions } from '../attacks/pgd.js';
import { Progress, type ProgressOptions } from '../util/progress.js';
import { attackLabel } from '../util/format.js';
import { makeBatch, batchIndices } from '../data/batches.js';

/** Options of `evaluate`; defaults in DEFAULT_EVALUATE. */
export interface EvaluateOptions {
  /** Images per forward pass. Default 256. */
  batchSize: number;
  /**
   * PGD settings for robust accuracy, merged over DEFAULT_PGD (PGD-10, eps 8/255, alpha 2/255,
   * random start); `null` measures clean accuracy only. Default {} (PGD-10).
   * Batch k (in order) uses seed `attack.seed + k·restarts`, so a run is reproducible for a
   * given batch size.
   */
  attack: Partial<PGDOptions> | null;
  /** Indices of the examples to use (e.g. from `subsetIndices`); default every example. */
  indices?: Int32Array;
  /**
   * Indices for clean accuracy when it should use other (typically more) examples than the
   * attack: a clean pass costs ~1/40 of PGD-10, so clean accuracy can be measured on the whole
   * test set while PGD runs on a subset. Default: the same examples as `indices`.
   */
  cleanIndices?: Int32Array;
  /** Label of the progress line. Default 'eval'. */
  label: string;
  /** Progress line options; `false` prints nothing. Default {} (stderr). */
  progress: Partial<ProgressOptions> | false;
}

/** Evaluation defaults: batch 256, PGD-10 (DEFAULT_PGD, eps 8/255, alpha 2/255), every example, label 'eval', progress on. */
export const DEFAULT_EVALUATE: EvaluateOptions = { batchSize: 256, attack: {}, label: 'eval', progress: {} };

/** Accuracy over the evaluated examples. */
export interface AccuracyRecord {
  correct: number;
  total: number;
  /** Percent, 0–100 (as the paper reports). */
  accuracy: number;
  /** 1/0 per evaluated example, in the order of `EvaluationResult.indices`. */
  perExample: Uint8Array;
}

/** Result of `evaluate`: clean (and, when attacked, robust) accuracy with per-example correctness, the attack used, timing. */
export interface EvaluationResult {
  /** Number of examples evaluated. */
  n: number;
  /** Dataset indices evaluated, in order; `null` means 0..n−1. */
  indices: Int32Array | null;
  /** Clean accuracy over `cleanIndices` when given (its `total` is then their count), else over `indices`. */
  clean: AccuracyRecord;
  /** Present when an attack was run. */
  robust?: AccuracyRecord;
  /** Effective PGD options (null when clean only). */
  attack: PGDOptions | null;
  seconds: number;
  imagesPerSecond: number;
}

/** The accuracy record of per-example 0/1 correctness (percent over mask.length; keeps the mask). */
export function accuracyRecord(mask: Uint8Array): AccuracyRecord {
  let correct = 0;
  for (const v of mask) correct += v;
  return { correct, total: mask.length, accuracy: (100 * correct) / Math.max(mask.length, 1), perExample: mask };
}

/**
 * Evaluates `model` (inference mode) on `data`. Clean accuracy always; robust accuracy under
 * PGD unless `attack` is null. No tensor outlives the call; the model is untouched.
 */
export async function evaluate(
  model: Classifier, data: Pick<CifarData, 'images' | 'labels' | 'n'>, options: Partial<EvaluateOptions> = {},
): Promise<EvaluationResult> {
  const o: EvaluateOptions = { ...DEFAULT_EVALUATE, ...options };
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new Error(`evaluate: batchSize must be a positive integer, got ${o.batchSize}`);
  if (o.cleanIndices && o.attack === null) return evaluate(model, data, { ...o, indices: o.cleanIndices, cleanIndices: undefined });
  const attack: PGDOptions | null = o.attack === null ? null : { ...DEFAULT_PGD, ...o.attack };
  if (attack?.training) throw new Error('evaluate: attack.training must be false (evaluation runs in inference mode)');
  const batches = batchIndices(o.indices ?? data.n, { batchSize: o.batchSize });
  const n = batches.reduce((a, b) => a + b.length, 0);
  const clean = new Uint8Array(n);
  const robust = attack ? new Uint8Array(n) : undefined;
  const progress = o.progress === false ? undefined : new Progress(o.label, n, { unit: 'img', ...o.progress });
  // With cleanIndices (only reached with an attack) clean accuracy comes from its own pass below.
  const cleanHere = !o.cleanIndices;
  const t0 = Date.now();
  let done = 0;
  for (let k = 0; k < batches.length; k++) {
    const { x, y } = makeBatch(data, batches[k]);
    try {
      if (cleanHere) {
        const logits = model.forward(x);
        clean.set(correctMask(logits, y), done);
        logits.dispose();
      }
      if (attack && robust) {
        const xAdv = pgd(model, x, y, { ...attack, seed: batchAttackSeed(attack.seed, k, attack.restarts) });
        const advLogits = model.forward(xAdv);
        robust.set(correctMask(advLogits, y), done);
        tf.dispose([xAdv, advLogits]);
      }
    } finally {
      tf.dispose([x, y]);
    }
    done += batches[k].length;
    const extra = [cleanHere ? `clean ${((100 * sum(clean, done)) / done).toFixed(2)}%` : '', robust ? `robust ${((100 * sum(robust, done)) / done).toFixed(2)}%` : ''].filter(Boolean).join(' ');
    progress?.update(done, extra);
    await new Promise((r) => setImmediate(r));
  }
  const cleanRecord = cleanHere
    ? accuracyRecord(clean)
    : (await evaluate(model, data, { ...o, indices: o.cleanIndices, cleanIndices: undefined, attack: null, label: `${o.label} (clean)` })).clean;
  const seconds = (Date.now() - t0) / 1000;
  return {
    n,
    indices: o.indices ? Int32Array.from(o.indices) : null,
    clean: cleanRecord,
    robust: robust ? accuracyRecord(robust) : undefined,
    attack,
    seconds,
    imagesPerSecond: n / Math.max(seconds, 1e-9),
  };
}

function sum(a: Uint8Array, upto: number): number {
  let s = 0;
  for (let i = 0; i < upto; i++) s += a[i];
  return s;
}

/** One line summarising an evaluation, e.g. "clean 61.20% (612/1000)  PGD-10 31.00% (310/1000)". */
export function formatEvaluation(r: EvaluationResult): string {
  const acc = (a: AccuracyRecord) => `${a.accuracy.toFixed(2)}% (${a.correct}/${a.total})`;
  const attack = r.attack ? `  ${attackLabel(r.attack)} ${acc(r.robust!)}` : '';
  return `clean ${acc(r.clean)}${attack}  [${r.n} images, ${r.seconds.toFixed(1)} s, ${r.imagesPerSecond.toFixed(1)} img/s]`;
}
