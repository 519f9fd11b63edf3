/**
 * The native CPU backend 'onednn': TF.js's cpu backend with its hot kernels replaced by a
 * Node-API addon on oneDNN (native/, built at `npm install` by scripts/build-native.mjs).
 *
 * Design: the backend instance is a `MathBackendCPU`, so tensors are JS TypedArrays and every
 * cpu kernel works unchanged; all cpu kernels are registered for 'onednn' too, then the kernels
 * a ResNet inference / PGD step / training step spends its time in are overridden by native
 * ones (see onednn-kernels.ts): Conv2D, FusedConv2D (bias, ReLU), Conv2DBackpropInput,
 * Conv2DBackpropFilter, Add/Sub/Multiply/RealDiv (any broadcasting), Relu, Step (ReLU's
 * gradient is dy·step(x)), Sum/Mean over contiguous axes, BatchMatMul, AvgPool(+Grad),
 * FusedBatchNorm, plus the training batch-norm kernels in ONEDNN_BN_KERNELS.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { nativeKernels, KernelStats, NativeAddon, NativeInfo } from './onednn-kernels.js';

export type { KernelStats, NativeInfo } from './onednn-kernels.js';

/**
 * Custom kernels registered for 'onednn' only, for the model's batch-norm layer in training mode
 * (it calls them through `tf.engine().runKernel` inside a `tf.customGrad` when they are registered
 * for the active backend):
 *  - `RiftBatchNormTrain`: inputs {x: float32 [..., C], scale: [C], offset: [C]}, attrs
 *    {varianceEpsilon}; returns [y (x's shape), mean [C], variance [C]]: per-channel batch
 *    statistics over all other axes (variance biased, ÷ M = size/C), y = (x−mean)/√(var+eps)·scale+offset.
 *  - `RiftBatchNormTrainGrad`: inputs {dy, x, scale, mean, variance} (mean/variance as returned
 *    by the forward kernel), attrs {varianceEpsilon}; returns [dx, dScale [C], dOffset [C]] with
 *    dOffset = Σdy, dScale = Σdy·x̂, dx = scale·invstd/M·(M·dy − dOffset − x̂·dScale).
 * Outputs are new tensors owned by the caller (dispose them, or run inside tf.tidy).
 */
export const ONEDNN_BN_KERNELS = ['RiftBatchNormTrain', 'RiftBatchNormTrainGrad'] as const;

export interface OnednnStatus {
  ok: boolean;
  /** Why the backend is unavailable (addon not built and why, load error, ...). */
  reason?: string;
  /** The addon's self-description when ok. */
  info?: NativeInfo;
}

/** Where the build puts the addon and its status file (native/build/, git-ignored). */
const NATIVE_DIR = path.resolve(__dirname, '..', '..', 'native');
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

function loadAddon(): NativeAddon | undefined {
  if (addon || loadError) return addon;
  if (!fs.existsSync(ADDON_PATH)) {
    loadError = `native oneDNN addon not built: ${buildStatusReason() ?? `${ADDON_PATH} missing`} ` +
      '(rebuild with `npm run build:native`; see environment.md)';
    return undefined;
  }
  try {
    addon = require(ADDON_PATH) as NativeAddon;
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    loadError = `native oneDNN addon failed to load: ${msg}`;
  }
  return addon;
}

function registerBackendAndKernels(a: NativeAddon): void {
  if (!tf.findBackendFactory('onednn')) {
    tf.registerBackend('onednn', () => {
      const b = new MathBackendCPU();
      // The cpu backend prints a "install tfjs-node" hint on first use; not useful here.
      (b as unknown as { firstUse: boolean }).firstUse = false;
      return b;
    }, 0);
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

/** Drops the cached oneDNN primitives and scratch memory (they are rebuilt on demand). */
export function clearOnednnCache(): void {
  addon?.clearCache();
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
