/**
 * Fixed subsets of a split: per-class counts, the documented class-balanced (or seeded random)
 * subset, and `fixedSubset`, the one rule every stage uses for a size setting.
 */
import { Rng } from '../util/rng.js';
import type { CifarData } from './cifar.js';

/** Per-class counts of a label array. */
export function classCounts(labels: Uint8Array, numClasses: number): Int32Array {
  const c = new Int32Array(numClasses);
  for (let i = 0; i < labels.length; i++) c[labels[i]]++;
  return c;
}

/** Options of subsetIndices. */
export interface SubsetOptions {
  /** Subset size, 1..data.n. */
  n: number;
  /** Class-balanced first-in-file-order subset (true) or a seeded random sample (false). Default true. */
  balanced?: boolean;
  /** Seed of the random sample; required when balanced is false, ignored otherwise. */
  seed?: number;
}

/**
 * A documented, deterministic fixed subset of a dataset, as indices sorted ascending.
 * balanced (default): with k = numClasses, each class contributes its first ⌊n/k⌋ images in
 * file order, and classes 0..(n mod k)-1 one more (so exactly n indices; when k divides n this
 * is "the first n/k of each class"). Throws if a class has too few images.
 * balanced: false: a uniform sample without replacement, the first n of
 * `new Rng(seed).permutation(data.n)`.
 */
export function subsetIndices(data: Pick<CifarData, 'labels' | 'numClasses'>, options: SubsetOptions): Int32Array {
  const { n, balanced, seed } = { balanced: true, ...options };
  const total = data.labels.length;
  if (!Number.isInteger(n) || n < 1 || n > total) throw new Error(`subsetIndices: n must be an integer in [1, ${total}], got ${n}.`);
  if (!balanced) {
    if (seed === undefined) throw new Error('subsetIndices: a seed is required when balanced is false.');
    return new Rng(seed).permutation(total).slice(0, n).sort();
  }
  const k = data.numClasses;
  const quota = Int32Array.from({ length: k }, (_, c) => Math.floor(n / k) + (c < n % k ? 1 : 0));
  const out = new Int32Array(n);
  let m = 0;
  for (let i = 0; i < total && m < n; i++) {
    const c = data.labels[i];
    if (quota[c] > 0) {
      quota[c]--;
      out[m++] = i;
    }
  }
  if (m < n) {
    const short = Array.from(quota).findIndex((q) => q > 0);
    throw new Error(`subsetIndices: class ${short} has too few images for a balanced subset of ${n}.`);
  }
  return out;
}

/**
 * The fixed subset every stage uses for a size setting (`eval.n`, `advTrain.trainN`, ...):
 * the class-balanced `subsetIndices` of n, or undefined — every record — when n is null or not
 * below data.n. One rule, so a training, an evaluation and a report can never pick different images.
 */
export function fixedSubset(data: Pick<CifarData, 'labels' | 'numClasses'>, n: number | null): Int32Array | undefined {
  return n === null || n >= data.labels.length ? undefined : subsetIndices(data, { n });
}

/** `fixedSubset` as an explicit index list (0..data.n-1 when it is every record). */
export function fixedSubsetIndices(data: Pick<CifarData, 'labels' | 'numClasses'>, n: number | null): Int32Array {
  return fixedSubset(data, n) ?? Int32Array.from({ length: data.labels.length }, (_, i) => i);
}
