/**
 * Batches: dataset indices gathered (and augmented) into NHWC float tensors in [0, 1], and an
 * epoch split into (optionally shuffled) index batches.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../util/rng.js';
import { IMAGE_BYTES, IMAGE_CHANNELS, IMAGE_SIZE, type CifarData } from './cifar.js';
import { augmentInto, drawCropFlip } from './augment.js';

/** Options of makeBatch. */
export interface BatchOptions {
  /** Apply training augmentation (reflect pad 4 + random crop + flip). Default false. */
  augment?: boolean;
  /** Source of the augmentation draws (3 per image, in batch order); required when augment is true. */
  rng?: Rng;
}

/**
 * Gathers images `indices` of `data` into a batch. The uint8 work (gather, augmentation) is
 * done in JS and the batch is uploaded once.
 * Returns x: [b, 32, 32, 3] float32 in [0, 1] (byte / 255, as torchvision's ToTensor) and
 * y: [b] int32 labels. The caller owns and must dispose both tensors.
 */
export function makeBatch(data: Pick<CifarData, 'images' | 'labels'>, indices: ArrayLike<number>, options: BatchOptions = {}): { x: tf.Tensor4D; y: tf.Tensor1D } {
  const { augment, rng } = { augment: false, ...options };
  if (augment && !rng) throw new Error('makeBatch: augment is true but no rng was given (augmentation must be seeded).');
  const b = indices.length;
  const total = data.labels.length;
  const bytes = new Uint8Array(b * IMAGE_BYTES);
  const labels = new Int32Array(b);
  for (let i = 0; i < b; i++) {
    const idx = indices[i];
    if (!Number.isInteger(idx) || idx < 0 || idx >= total) throw new Error(`makeBatch: index ${idx} at position ${i} is outside [0, ${total}).`);
    labels[i] = data.labels[idx];
    if (augment) augmentInto(data.images, idx * IMAGE_BYTES, bytes, i * IMAGE_BYTES, drawCropFlip(rng as Rng));
    else bytes.set(data.images.subarray(idx * IMAGE_BYTES, (idx + 1) * IMAGE_BYTES), i * IMAGE_BYTES);
  }
  const floats = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) floats[i] = bytes[i] / 255;
  return {
    x: tf.tensor4d(floats, [b, IMAGE_SIZE, IMAGE_SIZE, IMAGE_CHANNELS], 'float32'),
    y: tf.tensor1d(labels, 'int32'),
  };
}

/** Options of batchIndices. */
export interface BatchIndexOptions {
  /** Indices per batch (positive integer). */
  batchSize: number;
  /** Shuffle with `new Rng(seed).permutation(...)`. Default false (file order). */
  shuffle?: boolean;
  /** Required when shuffle is true; use a different seed per epoch (e.g. base + epoch). */
  seed?: number;
  /** Drop a final batch smaller than batchSize. Default false. */
  dropLast?: boolean;
}

/**
 * Splits one epoch into batches of dataset indices. `source` is either a count n (indices
 * 0..n-1) or an explicit index list (e.g. from subsetIndices). Returns the batches as
 * independent Int32Arrays, in order.
 */
export function batchIndices(source: number | Int32Array, options: BatchIndexOptions): Int32Array[] {
  const { batchSize, shuffle, seed, dropLast } = { shuffle: false, dropLast: false, ...options };
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchIndices: batchSize must be a positive integer, got ${batchSize}.`);
  if (shuffle && seed === undefined) throw new Error('batchIndices: a seed is required when shuffle is true.');
  const base = typeof source === 'number' ? Int32Array.from({ length: source }, (_, i) => i) : source;
  const order = shuffle ? new Rng(seed as number).permutation(base.length).map((i) => base[i]) : base;
  const out: Int32Array[] = [];
  for (let s = 0; s < order.length; s += batchSize) {
    if (dropLast && s + batchSize > order.length) break;
    out.push(order.slice(s, s + batchSize));
  }
  return out;
}
