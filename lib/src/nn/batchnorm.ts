/**
 * Batch normalisation over N,H,W of NHWC activations, with PyTorch's semantics.
 *
 * Training mode uses a closed-form backward written with `tf.customGrad`: TF.js's registered
 * gradient of `tf.batchNorm` materialises `Tile`s of per-channel vectors to activation size,
 * which dominated a wasm PGD step (../shared/docs/toolchain.md). When the active backend registers the
 * fused kernels `RiftBatchNormTrain` / `RiftBatchNormTrainGrad` (the native oneDNN backend
 * does), they are used instead of the composed ops.
 *
 * Porting note: PyTorch momentum 0.1 means running = (1 − 0.1)·running + 0.1·batch (TF.js's
 * `momentum` is the complement); PyTorch updates running_var with the UNBIASED batch
 * variance (·M/(M−1)) while normalising with the biased one; epsilon 1e-5 (TF.js: 1e-3).
 */
import * as tf from '@tensorflow/tfjs-core';

/** Result of a training-mode batch norm: output and the batch statistics (biased variance). */
export interface BatchNormTrainResult {
  y: tf.Tensor4D;
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
}

const AXES = [0, 1, 2];

function hasFusedKernels(): boolean {
  const b = tf.getBackend();
  return tf.getKernel('RiftBatchNormTrain', b) !== undefined && tf.getKernel('RiftBatchNormTrainGrad', b) !== undefined;
}

/**
 * Training-mode batch norm: normalises x [N,H,W,C] with its own batch statistics and
 * scales by gamma [C], shifts by beta [C]. Differentiable w.r.t. x, gamma and beta.
 * The caller (or an enclosing tidy) disposes all three returned tensors.
 */
export function batchNormTrain(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): BatchNormTrainResult {
  let mean: tf.Tensor1D | undefined;
  let variance: tf.Tensor1D | undefined;
  const fused = hasFusedKernels();
  const f = tf.customGrad(((xi: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    if (fused) {
      const [y, m, v] = tf.engine().runKernel('RiftBatchNormTrain', { x: xi, scale: g, offset: b }, { varianceEpsilon: eps }) as tf.Tensor[];
      mean = tf.keep(m) as tf.Tensor1D;
      variance = tf.keep(v) as tf.Tensor1D;
      save([xi, g, m, v]);
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [sx, sg, sm, sv] = saved;
          return tf.engine().runKernel('RiftBatchNormTrainGrad', { dy, x: sx, scale: sg, mean: sm, variance: sv }, { varianceEpsilon: eps }) as tf.Tensor[];
        },
      };
    }
    const m = tf.mean(xi, AXES);
    const xc = tf.sub(xi, m);
    const v = tf.mean(tf.square(xc), AXES);
    const invstd = tf.rsqrt(tf.add(v, eps));
    const xhat = tf.mul(xc, invstd);
    mean = tf.keep(m) as tf.Tensor1D;
    variance = tf.keep(v) as tf.Tensor1D;
    save([xhat, g, invstd]);
    return {
      value: tf.add(tf.mul(xhat, g), b),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sxhat, sg, sinv] = saved;
        const count = dy.size / dy.shape[3]!;
        const dbeta = tf.sum(dy, AXES);
        const dgamma = tf.sum(tf.mul(dy, sxhat), AXES);
        // dx = γ·invstd/M · (M·dy − Σdy − x̂·Σ(dy·x̂))
        const k = tf.div(tf.mul(sg, sinv), count);
        const inner = tf.sub(tf.sub(tf.mul(dy, count), dbeta), tf.mul(sxhat, dgamma));
        return [tf.mul(inner, k), dgamma, dbeta];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  const y = f(x, gamma, beta) as tf.Tensor4D;
  // customGrad runs f inside its own tidy, so the statistics were kept to escape it; hand
  // the caller tracked clones and release the kept originals.
  const out = { y, mean: tf.clone(mean!), variance: tf.clone(variance!) };
  mean!.dispose();
  variance!.dispose();
  return out;
}

/**
 * y = x·scale + shift over the channels (last axis) of x, as one kernel where the backend has
 * it (the native oneDNN backend registers `RiftScaleShift`). Its gradient is the one TF.js
 * derives for `tf.add(tf.mul(x, scale), shift)`, op for op, and each closure runs only when
 * its input needs a gradient (a PGD step asks for x's alone), so values and gradients equal
 * the two-op form's.
 */
const SCALE_SHIFT = 'RiftScaleShift';
tf.registerGradient({
  kernelName: SCALE_SHIFT,
  inputsToSave: ['x', 'scale'],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
    const [x, scale] = saved;
    const g = dy as tf.Tensor;
    return {
      x: () => tf.mul(g, scale),
      scale: () => tf.reshape(tf.sum(tf.mul(g, x), AXES), scale.shape),
      shift: () => tf.reshape(tf.sum(g, AXES), scale.shape),
    };
  },
});

/**
 * Inference-mode batch norm with running statistics: y = x·γ/√(var+eps) + (β − mean·γ/√(var+eps)).
 * Gradients flow to x, gamma and beta (MRC perturbs γ/β in eval mode). The scale-and-shift is
 * one fused kernel on the onednn backend, two broadcasting ops elsewhere; both give the same
 * values and gradients. Caller disposes the result.
 */
export function batchNormEval(
  x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, runningMean: tf.Tensor1D, runningVar: tf.Tensor1D, eps: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    const scale = tf.mul(gamma, tf.rsqrt(tf.add(runningVar, eps)));
    const shift = tf.sub(beta, tf.mul(runningMean, scale));
    if (tf.getKernel(SCALE_SHIFT, tf.getBackend()) !== undefined) return tf.engine().runKernel(SCALE_SHIFT, { x, scale, shift }) as tf.Tensor4D;
    return tf.add(tf.mul(x, scale), shift) as tf.Tensor4D;
  });
}

/**
 * PyTorch's running-statistics update: r ← (1−m)·r + m·batch, with the unbiased variance.
 * `count` is N·H·W of the batch. Assigns in place; leaves no tensors behind.
 */
export function updateRunningStats(
  runningMean: tf.Variable, runningVar: tf.Variable, mean: tf.Tensor1D, variance: tf.Tensor1D, count: number, momentum: number,
): void {
  tf.tidy(() => {
    const unbiased = count > 1 ? tf.mul(variance, count / (count - 1)) : variance;
    runningMean.assign(tf.add(tf.mul(runningMean, 1 - momentum), tf.mul(mean, momentum)));
    runningVar.assign(tf.add(tf.mul(runningVar, 1 - momentum), tf.mul(unbiased, momentum)));
  });
}
