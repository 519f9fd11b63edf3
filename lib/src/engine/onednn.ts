/**
 * The native CPU backend 'onednn': TF.js's cpu backend with its hot kernels replaced by a
 * Node-API addon on oneDNN (native/, built at `npm install` by scripts/build-native.mjs).
 *
 * Design: the backend instance is a `MathBackendCPU` (subclass `OnednnBackend`, which adds a
 * pool recycling native kernels' output buffers), so tensors are JS TypedArrays and every cpu
 * kernel works unchanged; all cpu kernels are registered for 'onednn' too, then the kernels a
 * ResNet inference / PGD step / training step spends its time in are overridden by native ones
 * (see onednn-kernels.ts): Conv2D, FusedConv2D (bias, ReLU), Conv2DBackpropInput,
 * Conv2DBackpropFilter, Add/Sub/Multiply/RealDiv (any broadcasting), Relu, Step, Sign and
 * ClipByValue (PGD's update), a fused ReLU gradient (see registerReluGradient), Sum/Mean over
 * contiguous axes, BatchMatMul, AvgPool(+Grad), FusedBatchNorm, plus the training batch-norm
 * kernels in ONEDNN_BN_KERNELS.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { OnednnBackend, PoolStats } from './onednn-backend.js';
import { nativeKernels, KernelStats, NativeAddon, NativeInfo } from './onednn-kernels.js';
import { nativeDir } from '../util/paths.js';

export type { KernelStats, NativeInfo } from './onednn-kernels.js';
export type { PoolStats } from './onednn-backend.js';

/**
 * Custom kernels registered for 'onednn' only, for the model's batch-norm layers (nn/batchnorm.ts
 * calls them through `tf.engine().runKernel` when they are registered for the active backend):
 *  - `RiftBatchNormTrain`: inputs {x: float32 [..., C], scale: [C], offset: [C], residual?: x's
 *    shape}, attrs {varianceEpsilon, relu?}; returns [y (x's shape), mean [C], variance [C]]:
 *    per-channel batch statistics over all other axes (variance biased, ÷ M = size/C),
 *    y = (x−mean)/√(var+eps)·scale+offset, then + residual, then ReLU when relu.
 *  - `RiftBatchNormTrainGrad`: inputs {dy, x, scale, mean, variance, yAct?} (mean/variance as
 *    returned by the forward kernel; yAct its y when it ran with relu, which masks dy by ReLU's
 *    gradient first), attrs {varianceEpsilon}; returns [dx, dScale [C], dOffset [C]] with
 *    dOffset = Σdy, dScale = Σdy·x̂, dx = scale·invstd/M·(M·dy − dOffset − x̂·dScale).
 *  - `RiftBatchNormEval`: inputs {x, gamma, beta, mean, variance (running statistics [C]),
 *    residual?}, attrs {varianceEpsilon, relu?}; returns [y, scale [C], shift [C]]: scale =
 *    gamma/√(variance+eps), shift = beta − mean·scale, y = relu?(x·scale + shift + residual?).
 *  - `RiftScaleShiftReluGrad`: inputs {dy, y, scale}: (dy·step(y))·scale, the x-gradient of a
 *    RiftBatchNormEval with relu from its outputs.
 *  - `RiftRunningStats`: inputs {runningMean, runningVar, mean, variance} (all [C]), attrs {count
 *    (N·H·W), momentum}; returns PyTorch's updated [runningMean, runningVar] (unbiased variance).
 * Every step is rounded as the separate TF.js ops round it, so a fused layer's values and
 * gradients equal the composed ops' bit for bit. Outputs are new tensors owned by the caller
 * (dispose them, or run inside tf.tidy).
 */
export const ONEDNN_BN_KERNELS = ['RiftBatchNormTrain', 'RiftBatchNormTrainGrad', 'RiftBatchNormEval', 'RiftScaleShiftReluGrad', 'RiftRunningStats'] as const;

/**
 * The optimizer's custom kernel, registered for 'onednn' only (nn/optim.ts calls it when it is
 * registered for the active backend): `RiftSgdStep`, inputs {theta, grad, buf?} (float32, one
 * shape; buf the momentum buffer, absent on the first step), attrs {lr, momentum, weightDecay};
 * returns [θ'] or, when momentum ≠ 0, [θ', buf'], rounded as the composed ops round them.
 */
export const ONEDNN_OPTIM_KERNELS = ['RiftSgdStep'] as const;

/** Result of `tryRegisterOnednn`: whether the 'onednn' backend is available, and why not or what the addon reports. */
export interface OnednnStatus {
  ok: boolean;
  /** Why the backend is unavailable (addon not built and why, load error, ...). */
  reason?: string;
  /** The addon's self-description when ok. */
  info?: NativeInfo;
}

/** Where the build puts the addon and its status file (native/build/, git-ignored). */
const NATIVE_DIR = nativeDir();
const ADDON_PATH = path.join(NATIVE_DIR, 'build', 'Release', 'rift_onednn.node');
const STATUS_PATH = path.join(NATIVE_DIR, 'build', 'status.json');

let addon: NativeAddon | undefined;
let loadError: string | undefined;
let registered = false;
const stats: KernelStats = {};

/** The reason the build script recorded for not building the addon, if any. */
function buildStatusReason(): string | undefined {
  try {
    const s = JSON.parse(fs.readFileSync(STATUS_PATH, 'utf8')) as { ok?: boolean; reason?: string };
    return s.ok === false && s.reason ? s.reason : undefined;
  } catch {
    return undefined;
  }
}

/** libgomp spins this many times waiting for the next kernel before it sleeps (see loadAddon). */
const DEFAULT_SPIN_COUNT = 1000;

function loadAddon(): NativeAddon | undefined {
  if (addon || loadError) return addon;
  if (!fs.existsSync(ADDON_PATH)) {
    loadError = `native oneDNN addon not built: ${buildStatusReason() ?? `${ADDON_PATH} missing`} ` +
      '(rebuild with `npm run build:native`; see environment.md)';
    return undefined;
  }
  // OpenMP (libgomp) reads its wait policy once, when the addon pulls it in. A thread that
  // finished its share of a kernel waits for the next one: spinning (libgomp's default, 300,000
  // spins) burns the time slice the other thread needs whenever other processes compete for the
  // cores (a PGD step 1.9 s spinning, 0.22 s passive on 2 busy cores), while sleeping at once
  // (PASSIVE) makes every one of a step's ~150 kernels pay a wake-up (~0.3 ms on a VM, more than
  // an elementwise kernel at quarter width costs). A short spin gets both: 1,000 spins cover the
  // gap between back-to-back kernels and then the thread sleeps (BENCHMARKS.md: +6–42 % on idle
  // cores against PASSIVE, about the same with one or two other busy processes). Set by us only when
  // the user set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT; removed again so that child
  // processes (e.g. a PyTorch reference) see the user's environment.
  const setPolicy = process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined;
  if (setPolicy) process.env.GOMP_SPINCOUNT = String(DEFAULT_SPIN_COUNT);
  try {
    addon = require(ADDON_PATH) as NativeAddon;
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    loadError = `native oneDNN addon failed to load: ${msg}`;
  } finally {
    if (setPolicy) delete process.env.GOMP_SPINCOUNT;
  }
  return addon;
}

function registerBackendAndKernels(a: NativeAddon): void {
  if (!tf.findBackendFactory('onednn')) {
    tf.registerBackend('onednn', () => new OnednnBackend(), 0);
  }
  const native = nativeKernels(a, stats);
  for (const k of tf.getKernelsForBackend('cpu')) {
    if (native[k.kernelName] || tf.getKernel(k.kernelName, 'onednn')) continue;
    tf.registerKernel({ ...k, backendName: 'onednn' });
  }
  for (const [kernelName, kernelFunc] of Object.entries(native)) {
    if (tf.getKernel(kernelName, 'onednn')) tf.unregisterKernel(kernelName, 'onednn');
    tf.registerKernel({ kernelName, backendName: 'onednn', kernelFunc: kernelFunc as tf.KernelFunc });
  }
}

/**
 * Replaces the registered gradient of Relu (tfjs-core: dy·cast(step(x)), i.e. Step, Cast and
 * Multiply: two passes over the activation and one extra buffer) by a single fused
 * `RiftReluGrad` kernel while 'onednn' is the active backend. On every other backend it computes
 * exactly tfjs-core's formula, so their results do not change.
 */
function registerReluGradient(): void {
  tf.registerGradient({
    kernelName: 'Relu',
    inputsToSave: ['x'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [x] = saved;
      const g = dy as tf.Tensor;
      return {
        x: () => tf.getBackend() === 'onednn'
          ? (tf.engine().runKernel('RiftReluGrad', { dy: g, x }) as tf.Tensor)
          : tf.mul(g, tf.cast(tf.step(x), 'float32')),
      };
    },
  });
}

/**
 * Loads the addon and registers the TF.js backend 'onednn' with its kernels (once; later calls
 * only update the thread count). Does not activate it: call `tf.setBackend('onednn')` (or
 * `initEngine`). `threads` sets oneDNN's (OpenMP) thread count for all native kernels.
 * Returns {ok: false, reason} when the addon is missing or cannot load, never throws for that.
 */
export function tryRegisterOnednn(threads: number): OnednnStatus {
  const a = loadAddon();
  if (!a) return { ok: false, reason: loadError };
  try {
    a.setThreads(threads);
    if (!registered) {
      registerBackendAndKernels(a);
      registerReluGradient();
      registered = true;
    }
    return { ok: true, info: a.info() };
  } catch (e) {
    return { ok: false, reason: `native oneDNN backend failed to register: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** The addon's self-description (oneDNN version, ISA, runtime, threads), or undefined if not loaded. */
export function onednnInfo(): NativeInfo | undefined {
  return addon?.info();
}

function activeOnednnBackend(): OnednnBackend | undefined {
  if (!registered) return undefined;
  try {
    const b = tf.engine().findBackend('onednn');
    return b instanceof OnednnBackend ? b : undefined;
  } catch {
    return undefined;
  }
}

/** Counters of the output-buffer pool of the 'onednn' backend, if it was initialised. */
export function onednnPoolStats(): PoolStats | undefined {
  return activeOnednnBackend()?.poolStats();
}

/**
 * Call counts of the natively implemented kernels since start (or the last reset): `calls` on
 * the 'onednn' backend, of which `fallbacks` went to the cpu implementation (unsupported case).
 * Returns a copy.
 */
export function onednnKernelStats(): KernelStats {
  return Object.fromEntries(Object.entries(stats).map(([k, v]) => [k, { ...v }]));
}

/** Zeroes the counters of `onednnKernelStats()`. */
export function resetOnednnKernelStats(): void {
  for (const v of Object.values(stats)) {
    v.calls = 0;
    v.fallbacks = 0;
  }
}
