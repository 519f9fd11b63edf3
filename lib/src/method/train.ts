/**
 * Training steps and epochs: standard (clean) or adversarial (PGD-AT, Madry et al.).
 * The epoch loop here is the building block; schedules, checkpoints and resume live in the
 * trainer built on top of it.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Network } from '../nn/model.js';
import type { CifarData } from '../data/cifar.js';
import { crossEntropy, correctMask } from '../nn/losses.js';
import { pgd, batchAttackSeed, DEFAULT_PGD, type PGDOptions } from '../attacks/pgd.js';
import { SGD } from '../nn/optim.js';
import { Rng } from '../util/rng.js';
import { Progress, type ProgressOptions } from '../util/progress.js';
import { makeBatch, batchIndices } from '../data/batches.js';

/** Options of `trainStep`: clean training or PGD-AT. */
export interface TrainStepOptions {
  /**
   * Adversarial training: PGD settings for the training attack, generated with the model in
   * training mode (as the PGD-AT reference does). `null` trains on clean inputs. Default null.
   */
  attack: Partial<PGDOptions> | null;
}

/** Result of one step: mean loss and number of correct predictions on the (adversarial) batch. */
export interface StepResult {
  loss: number;
  correct: number;
}

/**
 * One SGD step of CE on x (or on PGD examples of x) with the model in training mode.
 * Updates `opt.vars` and BN statistics per the model's BNModes. No tensor survives.
 */
export function trainStep(model: Network, opt: SGD, x: tf.Tensor4D, y: tf.Tensor1D, options: Partial<TrainStepOptions> = {}): StepResult {
  const attack = options.attack ?? null;
  const input = attack ? pgd(model, x, y, { ...attack, training: true }) : x;
  try {
    let correct = 0;
    const { value, grads } = tf.variableGrads(() => {
      const logits = model.forward(input, { training: true });
      correct = correctMask(logits, y).reduce((a, b) => a + b, 0);
      return crossEntropy(logits, y);
    }, opt.vars as tf.Variable[]);
    opt.step(grads);
    const loss = value.dataSync()[0];
    value.dispose();
    tf.dispose(grads);
    return { loss, correct };
  } finally {
    if (input !== x) input.dispose();
  }
}

/** Options of `trainEpoch`; defaults in DEFAULT_TRAIN_EPOCH. */
export interface TrainEpochOptions extends TrainStepOptions {
  /** Default 128. */
  batchSize: number;
  /** Seed of this epoch's shuffling, augmentation and attack starts. Default 0. */
  seed: number;
  /** Reflect-pad-4 + random crop + flip. Default true. */
  augment: boolean;
  /** Train on these example indices only (e.g. a profile's subset). Default all. */
  indices?: Int32Array;
  /** Drop the last incomplete batch. Default true (BN needs > 1 example). */
  dropLast: boolean;
  /** Label of the progress line. Default 'train'. */
  label: string;
  /** Progress options; false prints nothing. Default {}. */
  progress: Partial<ProgressOptions> | false;
}

/** Epoch defaults: clean training (no attack), batch 128, seed 0, augmentation on, last partial batch dropped, label 'train'. */
export const DEFAULT_TRAIN_EPOCH: TrainEpochOptions = {
  attack: null, batchSize: 128, seed: 0, augment: true, dropLast: true, label: 'train', progress: {},
};

/** Summary of one `trainEpoch`: mean loss, training accuracy, steps, images trained on and wall seconds. */
export interface EpochResult {
  /** Mean of the per-step losses. */
  loss: number;
  /** Training accuracy (percent) on the inputs actually trained on (adversarial for PGD-AT). */
  accuracy: number;
  steps: number;
  images: number;
  seconds: number;
}

/** One epoch of `trainStep`s over shuffled batches of `data`. */
export async function trainEpoch(model: Network, opt: SGD, data: CifarData, options: Partial<TrainEpochOptions> = {}): Promise<EpochResult> {
  const o: TrainEpochOptions = { ...DEFAULT_TRAIN_EPOCH, ...options };
  const rng = new Rng(o.seed);
  const batches = batchIndices(o.indices ?? data.n, { batchSize: o.batchSize, shuffle: true, seed: rng.fork(), dropLast: o.dropLast });
  const augRng = new Rng(rng.fork());
  const attackSeed = rng.fork();
  const total = batches.reduce((a, b) => a + b.length, 0);
  const progress = o.progress === false ? undefined : new Progress(o.label, total, { unit: 'img', ...o.progress });
  const t0 = Date.now();
  let lossSum = 0, correct = 0, images = 0;
  for (let k = 0; k < batches.length; k++) {
    const { x, y } = makeBatch(data, batches[k], { augment: o.augment, rng: augRng });
    try {
      const r = trainStep(model, opt, x, y, { attack: o.attack ? { ...o.attack, seed: batchAttackSeed(attackSeed, k, o.attack.restarts ?? DEFAULT_PGD.restarts) } : null });
      lossSum += r.loss;
      correct += r.correct;
      images += batches[k].length;
    } finally {
      tf.dispose([x, y]);
    }
    progress?.update(images, `loss ${(lossSum / (k + 1)).toFixed(4)} lr ${+opt.lr.toPrecision(3)}`);
    await new Promise((r) => setImmediate(r));
  }
  return {
    loss: lossSum / Math.max(batches.length, 1),
    accuracy: (100 * correct) / Math.max(images, 1),
    steps: batches.length,
    images,
    seconds: (Date.now() - t0) / 1000,
  };
}
