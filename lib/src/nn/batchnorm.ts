/**
 * Batch normalisation over N,H,W of NHWC activations, with PyTorch's semantics.
 *
 * Training mode uses a closed-form backward written with `tf.customGrad`: TF.js's registered
 * gradient of `tf.batchNorm` materialises `Tile`s of per-channel vectors to activation size,
 * which dominated a wasm PGD step (../shared/docs/toolchain.md). When the active backend registers the
 * fused kernels `RiftBatchNormTrain` / `RiftBatchNormTrainGrad` (the native oneDNN backend
 * does), they are used instead of the composed ops.
 *
 * A layer followed by ReLU (and a residual add before it) passes `act`: on the onednn backend
 * the whole relu(bn(x) + residual) is then one kernel forward and one backward, with the values
 * and gradients of the separate ops bit for bit (tests/onednn.test.ts); elsewhere, or with
 * `setActivationFusion(false)`, it is composed from them.
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

/** What follows a batch norm in the network: + residual (same shape as x), then ReLU when relu. */
export interface BatchNormActivation {
  relu?: boolean;
  residual?: tf.Tensor4D;
}

let activationFusion = true;
/**
 * Whether batch norms with an `act` use the fused kernels where the backend has them (default
 * true). false composes the activation from separate ops, as an A/B reference for tests and
 * benchmarks; results are the same either way.
 */
export function setActivationFusion(enabled: boolean): void {
  activationFusion = enabled;
}

function registered(...names: string[]): boolean {
  const b = tf.getBackend();
  return names.every((n) => tf.getKernel(n, b) !== undefined);
}

function hasFusedKernels(): boolean {
  return registered('RiftBatchNormTrain', 'RiftBatchNormTrainGrad');
}

/** relu?(y + residual?), op by op: the unfused form of an activation (a new tensor unless act is empty). */
export function applyActivation<T extends tf.Tensor>(y: T, act: BatchNormActivation | undefined): T {
  let out: tf.Tensor = y;
  if (act?.residual) out = tf.add(out, act.residual);
  if (act?.relu) out = tf.relu(out);
  return out as T;
}

/** ReLU's gradient dy·step(y) taken at ReLU's output (the same as at its input). */
function reluGradAt(dy: tf.Tensor, y: tf.Tensor): tf.Tensor {
  return registered('RiftReluGrad') ? tf.engine().runKernel('RiftReluGrad', { dy, x: y }) as tf.Tensor : tf.mul(dy, tf.cast(tf.step(y), 'float32'));
}

/**
 * Training-mode batch norm: normalises x [N,H,W,C] with its own batch statistics and
 * scales by gamma [C], shifts by beta [C]; with `act`, y = relu?(bn(x) + residual?).
 * Differentiable w.r.t. x, gamma, beta and the residual. `mean`/`variance` are the batch
 * statistics of x (biased variance). The caller (or an enclosing tidy) disposes all three
 * returned tensors.
 */
export function batchNormTrain(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number, act?: BatchNormActivation): BatchNormTrainResult {
  let mean: tf.Tensor1D | undefined;
  let variance: tf.Tensor1D | undefined;
  const fused = hasFusedKernels();
  const fuseAct = fused && activationFusion && act !== undefined && (act.relu === true || act.residual !== undefined);
  const relu = fuseAct && act!.relu === true;
  const f = tf.customGrad(((...args: unknown[]) => {
    // customGrad passes the inputs, then its save function.
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [xi, g, b] = args as tf.Tensor[];
    const r = args.length === 5 ? args[3] as tf.Tensor : undefined;
    if (fused) {
      const inputs: tf.NamedTensorMap = r !== undefined ? { x: xi, scale: g, offset: b, residual: r } : { x: xi, scale: g, offset: b };
      const [y, m, v] = tf.engine().runKernel('RiftBatchNormTrain', inputs, { varianceEpsilon: eps, relu }) as tf.Tensor[];
      mean = tf.keep(m) as tf.Tensor1D;
      variance = tf.keep(v) as tf.Tensor1D;
      save(relu ? [xi, g, m, v, y] : [xi, g, m, v]);
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [sx, sg, sm, sv, sy] = saved;
          const grads = tf.engine().runKernel('RiftBatchNormTrainGrad', { dy, x: sx, scale: sg, mean: sm, variance: sv, ...(sy ? { yAct: sy } : {}) },
            { varianceEpsilon: eps }) as tf.Tensor[];
          if (r === undefined) return grads;
          return [...grads, sy ? reluGradAt(dy, sy) : tf.clone(dy)];
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
  const bn = (fuseAct && act!.residual ? f(x, gamma, beta, act!.residual) : f(x, gamma, beta)) as tf.Tensor4D;
  const y = fuseAct ? bn : applyActivation(bn, act);
  // customGrad runs f inside its own tidy, so the statistics were kept to escape it; hand
  // the caller tracked clones and release the kept originals.
  const out = { y, mean: tf.clone(mean!), variance: tf.clone(variance!) };
  mean!.dispose();
  variance!.dispose();
  return out;
}

/**
 * Inference batch norm, then + residual? and ReLU?, as one kernel where the backend has it (the
 * native oneDNN backend registers `RiftBatchNormEval`; outputs y and the folded scale and shift).
 * Its gradient is the one TF.js derives for the composed ops (scale = γ·rsqrt(var + eps),
 * shift = β − mean·scale, relu?(x·scale + shift + residual?)), op for op, and each closure runs
 * only when its input needs a gradient (a PGD step asks for x's and the residual's alone: one
 * kernel per layer), so values and gradients equal the composed form's bit for bit.
 */
const BN_EVAL = 'RiftBatchNormEval';
tf.registerGradient({
  kernelName: BN_EVAL,
  inputsToSave: ['x', 'mean', 'variance'],
  outputsToSave: [true, true, false],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs?: tf.NamedAttrMap) => {
    const [x, mean, variance, y, scale] = saved;
    const relu = attrs?.relu === true;
    const eps = attrs?.varianceEpsilon as number;
    const d = (Array.isArray(dy) ? dy[0] : dy);
    // The gradient reaching x·scale + shift (and the residual): dy through ReLU, or dy itself.
    const pre = () => (relu ? reluGradAt(d, y) : tf.clone(d));
    const dShiftOf = (g: tf.Tensor) => tf.reshape(tf.sum(g, AXES), scale.shape);
    const statistics = () => { throw new Error(`${BN_EVAL}: no gradient w.r.t. the running statistics (they are buffers, not parameters)`); };
    return {
      x: () => (relu && registered('RiftScaleShiftReluGrad')
        ? tf.engine().runKernel('RiftScaleShiftReluGrad', { dy: d, y, scale }) as tf.Tensor
        : tf.mul(pre(), scale)),
      // scale receives x·dy summed, and −mean·dShift through shift = β − mean·scale; γ then gets rsqrt(var + eps) times that.
      gamma: () => {
        const g = pre();
        return tf.mul(tf.add(tf.reshape(tf.sum(tf.mul(g, x), AXES), scale.shape), tf.mul(tf.neg(dShiftOf(g)), mean)), tf.rsqrt(tf.add(variance, eps)));
      },
      beta: () => dShiftOf(pre()),
      mean: statistics,
      variance: statistics,
      residual: pre,
    };
  },
});

/**
 * Inference-mode batch norm with running statistics: y = x·γ/√(var+eps) + (β − mean·γ/√(var+eps)),
 * then with `act` + residual and ReLU. Gradients flow to x, gamma, beta and the residual (MRC
 * perturbs γ/β in eval mode). One fused kernel on the onednn backend, separate ops elsewhere (or
 * for the activation with `setActivationFusion(false)`); all give the same values and gradients.
 * Caller disposes the result.
 */
export function batchNormEval(
  x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, runningMean: tf.Tensor1D, runningVar: tf.Tensor1D, eps: number, act?: BatchNormActivation,
): tf.Tensor4D {
  return tf.tidy(() => {
    if (registered(BN_EVAL)) {
      const fuse = activationFusion && act !== undefined;
      const inputs: tf.NamedTensorMap = fuse && act.residual ? { x, gamma, beta, mean: runningMean, variance: runningVar, residual: act.residual } : { x, gamma, beta, mean: runningMean, variance: runningVar };
      const [y] = tf.engine().runKernel(BN_EVAL, inputs, { varianceEpsilon: eps, relu: fuse && act.relu === true }) as tf.Tensor[];
      return fuse ? y as tf.Tensor4D : applyActivation(y as tf.Tensor4D, act);
    }
    const scale = tf.mul(gamma, tf.rsqrt(tf.add(runningVar, eps)));
    const shift = tf.sub(beta, tf.mul(runningMean, scale));
    return applyActivation(tf.add(tf.mul(x, scale), shift) as tf.Tensor4D, act);
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
    if (registered('RiftRunningStats')) {
      const [m, v] = tf.engine().runKernel('RiftRunningStats', { runningMean, runningVar, mean, variance }, { count, momentum }) as tf.Tensor[];
      runningMean.assign(m);
      runningVar.assign(v);
      return;
    }
    const unbiased = count > 1 ? tf.mul(variance, count / (count - 1)) : variance;
    runningMean.assign(tf.add(tf.mul(runningMean, 1 - momentum), tf.mul(mean, momentum)));
    runningVar.assign(tf.add(tf.mul(runningVar, 1 - momentum), tf.mul(unbiased, momentum)));
  });
}
