/** FGSM (Goodfellow et al. 2015): PGD with one step of size eps and no random start. */
import * as tf from '@tensorflow/tfjs-core';
import type { Classifier } from '../nn/model.js';
import { pgd } from './pgd.js';

/** Options of `fgsm`, each optional: the L∞ radius (also the one step's size) and whether the model runs in training mode. */
export interface FGSMOptions {
  /** L∞ radius and step size. Default 8/255. */
  eps: number;
  /** Attack in training mode (see PGDOptions.training). Default false. */
  training: boolean;
}

/** FGSM adversarial examples for x [b,32,32,3] in [0,1]; caller disposes the result. */
export function fgsm(model: Classifier, x: tf.Tensor4D, y: tf.Tensor1D, options: Partial<FGSMOptions> = {}): tf.Tensor4D {
  const eps = options.eps ?? 8 / 255;
  return pgd(model, x, y, { eps, alpha: eps, steps: 1, randomStart: false, restarts: 1, training: options.training ?? false });
}
