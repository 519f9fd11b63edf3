/**
 * Kernels of the 'onednn' TF.js backend that run natively (oneDNN primitives or C++ loops).
 *
 * The backend instance is an `OnednnBackend` (a `MathBackendCPU`): tensor values are plain JS
 * TypedArrays kept in `backend.data`. A native kernel reads its inputs' Float32Arrays, takes an
 * output array from the backend's buffer pool (`backend.alloc`, uninitialised: the kernel
 * overwrites all of it), lets the addon fill it in place (zero-copy through Node-API) and wraps
 * it with `backend.makeTensorInfo`. Outputs belong to the TF.js engine like any kernel output;
 * native code keeps no reference to them. Every kernel checks that it handles the case at hand (dtype,
 * layout, broadcasting pattern, ...) and otherwise calls the cpu backend's kernel unchanged, so
 * behaviour outside the fast paths is exactly the cpu backend's.
 */
import * as tf from '@tensorflow/tfjs-core';
import { backend_util, broadcast_util, util, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import type { OnednnBackend } from './onednn-backend.js';

/** Functions exported by native/build/Release/rift_onednn.node (see native/src/addon.cc). */
export interface NativeAddon {
  info(): NativeInfo;
  setThreads(n: number): number;
  clearCache(): void;
  /** geom = [n, ih, iw, ic, oc, kh, kw, sh, sw, pt, pb, pl, pr, oh, ow] */
  conv2d(x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array, geom: number[], relu: boolean): void;
  conv2dBackpropInput(dy: Float32Array, w: Float32Array, dx: Float32Array, geom: number[]): void;
  conv2dBackpropFilter(x: Float32Array, dy: Float32Array, dw: Float32Array, geom: number[]): void;
  /** geom = [n, ih, iw, c, kh, kw, sh, sw, pt, pb, pl, pr, oh, ow] */
  avgPool(x: Float32Array, y: Float32Array, geom: number[]): void;
  avgPoolGrad(dy: Float32Array, dx: Float32Array, geom: number[]): void;
  /** geom = [batch, batchA, batchB, m, n, k] */
  matmul(a: Float32Array, b: Float32Array, c: Float32Array, geom: number[], transA: boolean, transB: boolean): void;
  binary(op: number, a: Float32Array, b: Float32Array, out: Float32Array, dims: number[], sa: number[], sb: number[]): void;
  /** op: 0 Relu, 1 Step (a = alpha), 2 Sign, 3 ClipByValue (a = min, b = max) */
  unary(op: number, x: Float32Array, y: Float32Array, a: number, b: number): void;
  reluGrad(dy: Float32Array, x: Float32Array, dx: Float32Array): void;
  reduceSum(x: Float32Array, out: Float32Array, a: number, r: number, c: number, scale: number): void;
  /** y = relu?(bn(x) + residual?) with the batch's statistics. */
  bnTrain(x: Float32Array, scale: Float32Array, offset: Float32Array, y: Float32Array, mean: Float32Array,
    variance: Float32Array, m: number, c: number, eps: number, residual?: Float32Array | null, relu?: boolean): void;
  /** With yAct (a relu forward's output) dy is masked by ReLU's gradient first. */
  bnTrainGrad(dy: Float32Array, x: Float32Array, scale: Float32Array, mean: Float32Array, variance: Float32Array,
    dx: Float32Array, dScale: Float32Array, dOffset: Float32Array, m: number, c: number, eps: number, yAct?: Float32Array | null): void;
  bnInfer(x: Float32Array, mean: Float32Array, variance: Float32Array, scale: Float32Array | null,
    offset: Float32Array | null, y: Float32Array, m: number, c: number, eps: number): void;
  /** y = relu?(bn(x) + residual?) with running statistics; writes the folded scale and shift [c]. */
  bnEval(x: Float32Array, gamma: Float32Array, beta: Float32Array, mean: Float32Array, variance: Float32Array,
    residual: Float32Array | null, relu: boolean, eps: number, y: Float32Array, scale: Float32Array, shift: Float32Array, m: number, c: number): void;
  /** dx = (dy·step(y))·scale per channel. */
  scaleShiftReluGrad(dy: Float32Array, y: Float32Array, scale: Float32Array, dx: Float32Array, m: number, c: number): void;
  /** One SGD step (nn/optim.ts): thetaOut = θ − lr·(buf·momentum + grad + θ·weightDecay); bufOut required when momentum ≠ 0. */
  sgdStep(theta: Float32Array, grad: Float32Array, buf: Float32Array | null, thetaOut: Float32Array, bufOut: Float32Array | null,
    lr: number, momentum: number, weightDecay: number): void;
}

/** What the addon reports about itself. */
export interface NativeInfo {
  dnnlVersion: string;
  /** oneDNN's CPU threading runtime: 'omp', 'tbb', 'seq', ... */
  runtime: string;
  /** Best instruction set oneDNN detected, e.g. 'avx512_core'. */
  isa: string;
  threads: number;
  cacheEntries: number;
  /** Whether glibc malloc was tuned to recycle large blocks (see native/src/addon.cc; RIFT_MALLOC_TUNING=0 disables). */
  mallocTuned: boolean;
}

type KernelArgs = { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap };
type Kernel = (args: KernelArgs) => TensorInfo | TensorInfo[];

const BINARY_OPS = { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3 } as const;
const UNARY_OPS = { Relu: 0, Step: 1, Sign: 2, ClipByValue: 3 } as const;

function values(backend: OnednnBackend, t: TensorInfo): Float32Array | undefined {
  if (t.dtype !== 'float32') return undefined;
  const v = backend.data.get(t.dataId)?.values;
  return v instanceof Float32Array ? v : undefined;
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

type Pad = 'valid' | 'same' | number | backend_util.ExplicitPadding;
type Tuple2 = number | [number, number];

function isOne(v: Tuple2 | undefined): boolean {
  return v === undefined || (typeof v === 'number' ? v === 1 : v[0] === 1 && v[1] === 1);
}

/** True when floor((in + pads − k)/s) + 1 = out, the output-size rule oneDNN enforces. */
function consistent(inSize: number, padA: number, padB: number, k: number, s: number, out: number): boolean {
  return padA >= 0 && padB >= 0 && Math.floor((inSize + padA + padB - k) / s) + 1 === out;
}

/**
 * The addon's conv geometry for an NHWC conv with an HWIO filter, or undefined when the native
 * path does not apply (NCHW, dilation > 1, degenerate or inconsistent sizes).
 */
function convGeometry(xShape: number[], filterShape: number[], attrs: {
  strides: Tuple2; pad: Pad; dataFormat?: string; dilations?: Tuple2; dimRoundingMode?: 'floor' | 'round' | 'ceil';
}): number[] | undefined {
  if ((attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') || !isOne(attrs.dilations)) return undefined;
  if (xShape.length !== 4 || filterShape.length !== 4) return undefined;
  const info = backend_util.computeConv2DInfo(xShape as [number, number, number, number],
    filterShape as [number, number, number, number], attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
  const { batchSize: n, inHeight: ih, inWidth: iw, inChannels: ic, outChannels: oc, filterHeight: kh, filterWidth: kw,
    strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow } = info;
  const { top: pt, bottom: pb, left: pl, right: pr } = info.padInfo;
  const geom = [n, ih, iw, ic, oc, kh, kw, sh, sw, pt, pb, pl, pr, oh, ow];
  if (geom.some((v) => !Number.isInteger(v)) || [n, ih, iw, ic, oc, kh, kw, sh, sw, oh, ow].some((v) => v < 1)) return undefined;
  if (!consistent(ih, pt, pb, kh, sh, oh) || !consistent(iw, pl, pr, kw, sw, ow)) return undefined;
  return geom;
}

/**
 * oneDNN 2.6.3's weight gradient of a 1×1 convolution with stride > 1 is wrong on AVX2-only CPUs
 * when the input channels are not a multiple of 8 (seen: 3 channels, 8×8 input, stride 2, ~50%
 * error; AVX-512 machines and multiples of 8 are fine). Such a convolution reads only every
 * stride-th pixel, so its weight gradient equals that of a stride-1 1×1 convolution of the
 * subsampled input: returns that input and geometry, or undefined for every other case (the
 * model's own 1×1 shortcuts have multiples of 8 channels and keep the direct primitive, so their
 * numbers do not change).
 */
function strided1x1Input(x: Float32Array, geom: number[]): { x: Float32Array; geom: number[] } | undefined {
  const [n, ih, iw, ic, oc, kh, kw, sh, sw, pt, pb, pl, pr, oh, ow] = geom;
  if (kh !== 1 || kw !== 1 || (sh === 1 && sw === 1) || ic % 8 === 0 || pt || pb || pl || pr) return undefined;
  const out = new Float32Array(n * oh * ow * ic);
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        const src = ((b * ih + i * sh) * iw + j * sw) * ic;
        out.set(x.subarray(src, src + ic), ((b * oh + i) * ow + j) * ic);
      }
    }
  }
  return { x: out, geom: [n, oh, ow, ic, oc, 1, 1, 1, 1, 0, 0, 0, 0, oh, ow] };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Broadcasting plan for the addon's `binary`: the output dims with runs of dims that broadcast
 * the same way merged, and each operand's stride per merged dim (0 where it is broadcast).
 * E.g. [N,H,W,C] ⊕ [C] becomes dims [N·H·W, C], strides a [C, 1], b [0, 1].
 */
export function broadcastPlan(aShape: number[], bShape: number[]): { outShape: number[]; dims: number[]; sa: number[]; sb: number[] } {
  const outShape = broadcast_util.assertAndGetBroadcastShape(aShape, bShape);
  const rank = outShape.length;
  const pa = [...Array(rank - aShape.length).fill(1), ...aShape];
  const pb = [...Array(rank - bShape.length).fill(1), ...bShape];
  const runs: { d: number; fa: boolean; fb: boolean }[] = [];
  for (let i = 0; i < rank; i++) {
    if (outShape[i] === 1) continue;
    const fa = pa[i] !== 1, fb = pb[i] !== 1;
    const last = runs[runs.length - 1];
    if (last && last.fa === fa && last.fb === fb) last.d *= outShape[i];
    else runs.push({ d: outShape[i], fa, fb });
  }
  if (runs.length === 0) runs.push({ d: 1, fa: true, fb: true });
  const dims = runs.map((r) => r.d);
  const sa = new Array<number>(runs.length), sb = new Array<number>(runs.length);
  let strideA = 1, strideB = 1;
  for (let i = runs.length - 1; i >= 0; i--) {
    sa[i] = runs[i].fa ? strideA : 0;
    sb[i] = runs[i].fb ? strideB : 0;
    if (runs[i].fa) strideA *= runs[i].d;
    if (runs[i].fb) strideB *= runs[i].d;
  }
  return { outShape, dims, sa, sb };
}

/** Per kernel: how often it ran on 'onednn' and how often it fell back to the cpu implementation. */
export type KernelStats = Record<string, { calls: number; fallbacks: number }>;

/**
 * Builds the native kernels for `addon`; each falls back to the named cpu kernel when it does not
 * apply. `stats` is updated on every call (cheap counters; tests and profiling read it to see
 * which calls took the fast path).
 */
export function nativeKernels(addon: NativeAddon, stats: KernelStats): Record<string, Kernel> {
  const entry = (name: string) => (stats[name] ??= { calls: 0, fallbacks: 0 });
  const cpuKernel = (name: string): Kernel => {
    const k = tf.getKernel(name, 'cpu');
    if (!k) throw new Error(`cpu kernel '${name}' not registered`);
    return k.kernelFunc as Kernel;
  };
  const cpu = (name: string): Kernel => {
    const f = cpuKernel(name), e = entry(name);
    return (args) => {
      e.fallbacks++;
      return f(args);
    };
  };
  const be = (args: KernelArgs) => args.backend as OnednnBackend;

  const conv2D = (name: 'Conv2D' | 'FusedConv2D'): Kernel => {
    const fallback = cpu(name);
    return (args) => {
      const { x, filter, bias, preluActivationWeights } = args.inputs as Record<string, TensorInfo | undefined>;
      const attrs = args.attrs as unknown as Parameters<typeof convGeometry>[2] & { activation?: string };
      const b = be(args);
      const geom = convGeometry(x!.shape, filter!.shape, attrs);
      const act = attrs.activation ?? 'linear';
      const xv = values(b, x!), wv = values(b, filter!);
      const bv = bias ? values(b, bias) : null;
      if (!geom || !xv || !wv || bv === undefined || (bv && bv.length !== geom[4]) || preluActivationWeights ||
        (act !== 'linear' && act !== 'relu')) {
        return fallback(args);
      }
      const [n, , , , oc, , , , , , , , , oh, ow] = geom;
      const y = b.alloc(n * oh * ow * oc);
      addon.conv2d(xv, wv, bv, y, geom, act === 'relu');
      return b.makeTensorInfo([n, oh, ow, oc], 'float32', y);
    };
  };

  const conv2DBackpropInput: Kernel = (() => {
    const fallback = cpu('Conv2DBackpropInput');
    return (args) => {
      const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
      const attrs = args.attrs as unknown as Parameters<typeof convGeometry>[2] & { inputShape: number[] };
      const b = be(args);
      const geom = convGeometry(attrs.inputShape, filter.shape, attrs);
      const dyv = values(b, dy), wv = values(b, filter);
      if (!geom || !dyv || !wv || !sameShape(dy.shape, [geom[0], geom[13], geom[14], geom[4]])) return fallback(args);
      const dx = b.alloc(sizeOf(attrs.inputShape));
      addon.conv2dBackpropInput(dyv, wv, dx, geom);
      return b.makeTensorInfo([...attrs.inputShape], 'float32', dx);
    };
  })();

  const conv2DBackpropFilter: Kernel = (() => {
    const fallback = cpu('Conv2DBackpropFilter');
    return (args) => {
      const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
      const attrs = args.attrs as unknown as Parameters<typeof convGeometry>[2] & { filterShape: number[] };
      const b = be(args);
      const geom = convGeometry(x.shape, attrs.filterShape, attrs);
      const xv = values(b, x), dyv = values(b, dy);
      if (!geom || !xv || !dyv || !sameShape(dy.shape, [geom[0], geom[13], geom[14], geom[4]])) return fallback(args);
      const dw = b.alloc(sizeOf(attrs.filterShape));
      const input = strided1x1Input(xv, geom) ?? { x: xv, geom };
      addon.conv2dBackpropFilter(input.x, dyv, dw, input.geom);
      return b.makeTensorInfo([...attrs.filterShape], 'float32', dw);
    };
  })();

  const binary = (name: keyof typeof BINARY_OPS): Kernel => {
    const fallback = cpu(name);
    return (args) => {
      const { a, b: bIn } = args.inputs as { a: TensorInfo; b: TensorInfo };
      const b = be(args);
      const av = values(b, a), bv = values(b, bIn);
      if (!av || !bv || av.length === 0 || bv.length === 0) return fallback(args);
      const plan = broadcastPlan(a.shape, bIn.shape);
      if (plan.dims.length > 8) return fallback(args);
      const out = b.alloc(sizeOf(plan.outShape));
      addon.binary(BINARY_OPS[name], av, bv, out, plan.dims, plan.sa, plan.sb);
      return b.makeTensorInfo(plan.outShape, 'float32', out);
    };
  };

  const unary = (name: keyof typeof UNARY_OPS): Kernel => {
    const fallback = cpu(name);
    return (args) => {
      const { x } = args.inputs as { x: TensorInfo };
      const attrs = (args.attrs ?? {}) as { alpha?: number; clipValueMin?: number; clipValueMax?: number };
      const b = be(args);
      const xv = values(b, x);
      if (!xv) return fallback(args);
      const [p, q] = name === 'Step' ? [attrs.alpha ?? 0, 0] : name === 'ClipByValue' ? [attrs.clipValueMin!, attrs.clipValueMax!] : [0, 0];
      const y = b.alloc(xv.length);
      addon.unary(UNARY_OPS[name], xv, y, p, q);
      return b.makeTensorInfo([...x.shape], 'float32', y);
    };
  };

  /** dx = dy·step(x) in one pass; see registerReluGradient in onednn.ts. */
  const reluGrad: Kernel = (args) => {
    const { dy, x } = args.inputs as { dy: TensorInfo; x: TensorInfo };
    const b = be(args);
    const dyv = values(b, dy), xv = values(b, x);
    if (!dyv || !xv || !sameShape(dy.shape, x.shape)) {
      entry('RiftReluGrad').fallbacks++;
      const s = cpuKernel('Step')({ inputs: { x }, backend: b, attrs: { alpha: 0 } }) as TensorInfo;
      const s32 = cpuKernel('Cast')({ inputs: { x: s }, backend: b, attrs: { dtype: 'float32' } }) as TensorInfo;
      const out = cpuKernel('Multiply')({ inputs: { a: dy, b: s32 }, backend: b }) as TensorInfo;
      b.disposeIntermediateTensorInfo(s);
      b.disposeIntermediateTensorInfo(s32);
      return out;
    }
    const dx = b.alloc(dyv.length);
    addon.reluGrad(dyv, xv, dx);
    return b.makeTensorInfo([...x.shape], 'float32', dx);
  };

  /** Sum / Mean over one contiguous block of axes (x viewed as [outer, reduced, inner]). */
  const reduce = (name: 'Sum' | 'Mean'): Kernel => {
    const fallback = cpu(name);
    return (args) => {
      const { x } = args.inputs as { x: TensorInfo };
      const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
      const b = be(args);
      const xv = values(b, x);
      const axes = [...new Set(util.parseAxisParam(axis, x.shape))].sort((p, q) => p - q);
      if (!xv || xv.length === 0 || axes.length === 0 || axes.some((v, i) => i > 0 && v !== axes[i - 1] + 1)) {
        return fallback(args);
      }
      const first = axes[0], last = axes[axes.length - 1];
      const outer = sizeOf(x.shape.slice(0, first)), r = sizeOf(x.shape.slice(first, last + 1));
      const inner = sizeOf(x.shape.slice(last + 1));
      const [outShape] = backend_util.computeOutAndReduceShapes(x.shape, axes);
      const out = b.alloc(outer * inner);
      addon.reduceSum(xv, out, outer, r, inner, name === 'Mean' ? 1 / r : 1);
      return b.makeTensorInfo(keepDims ? backend_util.expandShapeToKeepDim(outShape, axes) : outShape, 'float32', out);
    };
  };

  const batchMatMul: Kernel = (() => {
    const fallback = cpu('BatchMatMul');
    return (args) => {
      const { a, b: bIn } = args.inputs as { a: TensorInfo; b: TensorInfo };
      const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
      const b = be(args);
      const av = values(b, a), bv = values(b, bIn);
      const ra = a.shape.length, rb = bIn.shape.length;
      if (!av || !bv || ra < 2 || rb < 2) return fallback(args);
      const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2], k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
      const kb = transposeB ? bIn.shape[rb - 1] : bIn.shape[rb - 2], n = transposeB ? bIn.shape[rb - 2] : bIn.shape[rb - 1];
      const batchShape = broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), bIn.shape.slice(0, -2));
      const batch = sizeOf(batchShape), batchA = sizeOf(a.shape.slice(0, -2)), batchB = sizeOf(bIn.shape.slice(0, -2));
      // A batch of 1 broadcasts; a full batch has the output's layout (every dim equal or 1).
      if (k !== kb || m * n * k === 0 || (batchA !== 1 && batchA !== batch) || (batchB !== 1 && batchB !== batch)) {
        return fallback(args);
      }
      const c = b.alloc(batch * m * n);
      addon.matmul(av, bv, c, [batch, batchA, batchB, m, n, k], transposeA, transposeB);
      return b.makeTensorInfo([...batchShape, m, n], 'float32', c);
    };
  })();

  const poolGeometry = (xShape: number[], attrs: { filterSize: Tuple2; strides: Tuple2; pad: Pad; dimRoundingMode?: 'floor' | 'round' | 'ceil' }) => {
    if (xShape.length !== 4) return undefined;
    const info = backend_util.computePool2DInfo(xShape as [number, number, number, number], attrs.filterSize,
      attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
    const { batchSize: n, inHeight: ih, inWidth: iw, inChannels: c, filterHeight: kh, filterWidth: kw,
      strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow } = info;
    const { top: pt, bottom: pb, left: pl, right: pr } = info.padInfo;
    if ([n, ih, iw, c, kh, kw, sh, sw, oh, ow].some((v) => !Number.isInteger(v) || v < 1)) return undefined;
    if (!consistent(ih, pt, pb, kh, sh, oh) || !consistent(iw, pl, pr, kw, sw, ow)) return undefined;
    return [n, ih, iw, c, kh, kw, sh, sw, pt, pb, pl, pr, oh, ow];
  };

  const avgPool: Kernel = (() => {
    const fallback = cpu('AvgPool');
    return (args) => {
      const { x } = args.inputs as { x: TensorInfo };
      const b = be(args);
      const xv = values(b, x);
      const geom = poolGeometry(x.shape, args.attrs as unknown as Parameters<typeof poolGeometry>[1]);
      if (!xv || !geom) return fallback(args);
      const [n, , , c, , , , , , , , , oh, ow] = geom;
      const y = b.alloc(n * oh * ow * c);
      addon.avgPool(xv, y, geom);
      return b.makeTensorInfo([n, oh, ow, c], 'float32', y);
    };
  })();

  const avgPoolGrad: Kernel = (() => {
    const fallback = cpu('AvgPoolGrad');
    return (args) => {
      const { dy, input } = args.inputs as { dy: TensorInfo; input: TensorInfo };
      const b = be(args);
      const dyv = values(b, dy);
      const geom = poolGeometry(input.shape, args.attrs as unknown as Parameters<typeof poolGeometry>[1]);
      // The cpu AvgPoolGrad divides by the full window even where the forward pass excluded
      // padding; oneDNN is self-consistent. They agree without padding (e.g. the global pool),
      // so only that case runs natively and the cpu semantics are kept elsewhere.
      if (!dyv || !geom || geom.slice(8, 12).some((p) => p !== 0) ||
        !sameShape(dy.shape, [geom[0], geom[12], geom[13], geom[3]])) {
        return fallback(args);
      }
      const dx = b.alloc(sizeOf(input.shape));
      addon.avgPoolGrad(dyv, dx, geom);
      return b.makeTensorInfo([...input.shape], 'float32', dx);
    };
  })();

  /** Inference batch norm (tf.batchNorm) with per-channel statistics over the last axis. */
  const fusedBatchNorm: Kernel = (() => {
    const fallback = cpu('FusedBatchNorm');
    return (args) => {
      const { x, mean, variance, offset, scale } = args.inputs as Record<string, TensorInfo | undefined>;
      const { varianceEpsilon } = args.attrs as unknown as { varianceEpsilon: number };
      const b = be(args);
      const xv = values(b, x!), mv = values(b, mean!), vv = values(b, variance!);
      const sv = scale ? values(b, scale) : null, ov = offset ? values(b, offset) : null;
      const c = x!.shape[x!.shape.length - 1] ?? 0;
      const perChannel = (v: Float32Array | null) => v === null || v.length === c;
      if (!xv || !mv || !vv || sv === undefined || ov === undefined || c === 0 || x!.shape.length < 2 ||
        ![mv, vv, sv, ov].every(perChannel)) {
        return fallback(args);
      }
      const y = b.alloc(xv.length);
      addon.bnInfer(xv, mv, vv, sv, ov, y, xv.length / c, c, varianceEpsilon ?? 0.001);
      return b.makeTensorInfo([...x!.shape], 'float32', y);
    };
  })();

  const channels = (name: string, x: TensorInfo, perChannel: TensorInfo[]): number => {
    const c = x.shape[x.shape.length - 1];
    if (x.shape.length < 2 || !(c > 0) || x.dtype !== 'float32') {
      throw new Error(`${name}: x must be float32 with channels last, got ${x.dtype} [${x.shape}]`);
    }
    for (const t of perChannel) {
      if (t.dtype !== 'float32' || sizeOf(t.shape) !== c) throw new Error(`${name}: expected ${c} float32 values per channel, got ${t.dtype} [${t.shape}]`);
    }
    return c;
  };
  const need = (b: OnednnBackend, t: TensorInfo, name: string): Float32Array => {
    const v = values(b, t);
    if (!v) throw new Error(`${name}: input is not a float32 array`);
    return v;
  };

  /** An optional input of a fused batch norm with x's shape (the residual, yAct): its values, or null when absent. */
  const optionalLikeX = (name: string, what: string, b: OnednnBackend, x: TensorInfo, t: TensorInfo | undefined): Float32Array | null => {
    if (t === undefined) return null;
    if (t.dtype !== 'float32' || !sameShape(t.shape, x.shape)) throw new Error(`${name}: ${what} must be float32 [${x.shape}], got ${t.dtype} [${t.shape}]`);
    return need(b, t, `${name} ${what}`);
  };

  /**
   * Training batch norm: [y, mean, variance], y = relu?(bn(x) + residual?) (attr relu, optional
   * input residual; see ONEDNN_BN_KERNELS in onednn.ts).
   */
  const bnTrain: Kernel = (args) => {
    const { x, scale, offset, residual } = args.inputs as { x: TensorInfo; scale: TensorInfo; offset: TensorInfo; residual?: TensorInfo };
    const attrs = args.attrs as { varianceEpsilon?: number; relu?: boolean } | undefined;
    const eps = attrs?.varianceEpsilon ?? 0.001;
    const b = be(args);
    const c = channels('RiftBatchNormTrain', x, [scale, offset]);
    const xv = need(b, x, 'RiftBatchNormTrain');
    const y = b.alloc(xv.length), mean = b.alloc(c), variance = b.alloc(c);
    addon.bnTrain(xv, need(b, scale, 'scale'), need(b, offset, 'offset'), y, mean, variance, xv.length / c, c, eps,
      optionalLikeX('RiftBatchNormTrain', 'residual', b, x, residual), attrs?.relu === true);
    return [b.makeTensorInfo([...x.shape], 'float32', y), b.makeTensorInfo([c], 'float32', mean),
      b.makeTensorInfo([c], 'float32', variance)];
  };

  /** Closed-form training batch-norm backward: [dx, dScale, dOffset]; with input yAct (a relu forward's y) dy is masked by ReLU's gradient first. */
  const bnTrainGrad: Kernel = (args) => {
    const { dy, x, scale, mean, variance, yAct } = args.inputs as Record<'dy' | 'x' | 'scale' | 'mean' | 'variance', TensorInfo> & { yAct?: TensorInfo };
    const eps = (args.attrs as { varianceEpsilon?: number } | undefined)?.varianceEpsilon ?? 0.001;
    const b = be(args);
    const c = channels('RiftBatchNormTrainGrad', x, [scale, mean, variance]);
    if (!sameShape(dy.shape, x.shape)) throw new Error(`RiftBatchNormTrainGrad: dy [${dy.shape}] != x [${x.shape}]`);
    const xv = need(b, x, 'RiftBatchNormTrainGrad');
    const dx = b.alloc(xv.length), dScale = b.alloc(c), dOffset = b.alloc(c);
    addon.bnTrainGrad(need(b, dy, 'dy'), xv, need(b, scale, 'scale'), need(b, mean, 'mean'), need(b, variance, 'variance'),
      dx, dScale, dOffset, xv.length / c, c, eps, optionalLikeX('RiftBatchNormTrainGrad', 'yAct', b, x, yAct));
    return [b.makeTensorInfo([...x.shape], 'float32', dx), b.makeTensorInfo([c], 'float32', dScale),
      b.makeTensorInfo([c], 'float32', dOffset)];
  };

  /**
   * Inference batch norm with running statistics, then + residual? and ReLU? (attrs
   * varianceEpsilon, relu; optional input residual): [y, scale, shift] with scale = γ/√(var+eps)
   * and shift = β − mean·scale per channel. One kernel instead of the Add, Rsqrt, Multiply,
   * Multiply, Sub that fold the statistics and the Multiply, Add, Add, Relu over the activation;
   * each step is rounded as its separate op rounds, so every output equals theirs bit for bit.
   */
  const bnEval: Kernel = (args) => {
    const { x, gamma, beta, mean, variance, residual } = args.inputs as Record<'x' | 'gamma' | 'beta' | 'mean' | 'variance', TensorInfo> & { residual?: TensorInfo };
    const attrs = args.attrs as { varianceEpsilon?: number; relu?: boolean } | undefined;
    const b = be(args);
    const c = channels('RiftBatchNormEval', x, [gamma, beta, mean, variance]);
    const xv = need(b, x, 'RiftBatchNormEval');
    const y = b.alloc(xv.length), scale = b.alloc(c), shift = b.alloc(c);
    addon.bnEval(xv, need(b, gamma, 'gamma'), need(b, beta, 'beta'), need(b, mean, 'mean'), need(b, variance, 'variance'),
      optionalLikeX('RiftBatchNormEval', 'residual', b, x, residual), attrs?.relu === true, attrs?.varianceEpsilon ?? 0.001, y, scale, shift, xv.length / c, c);
    return [b.makeTensorInfo([...x.shape], 'float32', y), b.makeTensorInfo([c], 'float32', scale), b.makeTensorInfo([c], 'float32', shift)];
  };

  /** x-gradient of RiftBatchNormEval with relu, from its output y and scale: dx = (dy·step(y))·scale. */
  const scaleShiftReluGrad: Kernel = (args) => {
    const { dy, y, scale } = args.inputs as Record<'dy' | 'y' | 'scale', TensorInfo>;
    const b = be(args);
    const c = channels('RiftScaleShiftReluGrad', y, [scale]);
    if (!sameShape(dy.shape, y.shape)) throw new Error(`RiftScaleShiftReluGrad: dy [${dy.shape}] != y [${y.shape}]`);
    const yv = need(b, y, 'RiftScaleShiftReluGrad');
    const dx = b.alloc(yv.length);
    addon.scaleShiftReluGrad(need(b, dy, 'dy'), yv, need(b, scale, 'scale'), dx, yv.length / c, c);
    return b.makeTensorInfo([...y.shape], 'float32', dx);
  };

  /**
   * One step of PyTorch's SGD on one parameter (inputs theta, grad, optional buf: the momentum
   * buffer, absent on the first step; attrs lr, momentum, weightDecay): [θ'] or, with momentum,
   * [θ', buf']. One pass instead of the five to six element-wise kernels of nn/optim.ts's
   * composed step, each value rounded as they round it.
   */
  const sgdStep: Kernel = (args) => {
    const { theta, grad, buf } = args.inputs as { theta: TensorInfo; grad: TensorInfo; buf?: TensorInfo };
    const { lr, momentum, weightDecay } = args.attrs as unknown as { lr: number; momentum: number; weightDecay: number };
    const b = be(args);
    const tv = need(b, theta, 'RiftSgdStep theta');
    const gv = optionalLikeX('RiftSgdStep', 'grad', b, theta, grad)!, bv = optionalLikeX('RiftSgdStep', 'buf', b, theta, buf);
    const thetaOut = b.alloc(tv.length), bufOut = momentum !== 0 ? b.alloc(tv.length) : null;
    addon.sgdStep(tv, gv, bv, thetaOut, bufOut, lr, momentum, weightDecay);
    const out = [b.makeTensorInfo([...theta.shape], 'float32', thetaOut)];
    if (bufOut) out.push(b.makeTensorInfo([...theta.shape], 'float32', bufOut));
    return out;
  };

  /**
   * PyTorch's running-statistics update of one batch norm (inputs runningMean, runningVar, mean,
   * variance, all [C]; attrs count = N·H·W, momentum): [r·(1−m) + mean·m, r·(1−m) +
   * variance·count/(count−1)·m]. One kernel instead of nn/batchnorm.ts's seven, on C values, so in
   * JS; every product and sum rounded to float32 as those kernels round it.
   */
  const runningStats: Kernel = (args) => {
    const { runningMean, runningVar, mean, variance } = args.inputs as Record<'runningMean' | 'runningVar' | 'mean' | 'variance', TensorInfo>;
    const { count, momentum } = args.attrs as unknown as { count: number; momentum: number };
    const b = be(args);
    const c = sizeOf(runningMean.shape);
    for (const [what, t] of [['runningVar', runningVar], ['mean', mean], ['variance', variance]] as const) {
      if (t.dtype !== 'float32' || sizeOf(t.shape) !== c) throw new Error(`RiftRunningStats: ${what} must be float32 with ${c} values like runningMean, got ${t.dtype} [${t.shape}]`);
    }
    const rm = need(b, runningMean, 'RiftRunningStats runningMean'), rv = need(b, runningVar, 'RiftRunningStats runningVar');
    const bm = need(b, mean, 'RiftRunningStats mean'), bv = need(b, variance, 'RiftRunningStats variance');
    const f = Math.fround, keep = f(1 - momentum), m = f(momentum), unbias = f(count / (count - 1));
    const outM = b.alloc(c), outV = b.alloc(c);
    for (let i = 0; i < c; i++) {
      outM[i] = f(rm[i] * keep) + f(bm[i] * m);
      outV[i] = f(rv[i] * keep) + f((count > 1 ? f(bv[i] * unbias) : bv[i]) * m);
    }
    return [b.makeTensorInfo([...runningMean.shape], 'float32', outM), b.makeTensorInfo([...runningVar.shape], 'float32', outV)];
  };

  const kernels: Record<string, Kernel> = {
    Conv2D: conv2D('Conv2D'),
    FusedConv2D: conv2D('FusedConv2D'),
    Conv2DBackpropInput: conv2DBackpropInput,
    Conv2DBackpropFilter: conv2DBackpropFilter,
    Add: binary('Add'),
    Sub: binary('Sub'),
    Multiply: binary('Multiply'),
    RealDiv: binary('RealDiv'),
    Relu: unary('Relu'),
    Step: unary('Step'),
    Sign: unary('Sign'),
    ClipByValue: unary('ClipByValue'),
    RiftReluGrad: reluGrad,
    Sum: reduce('Sum'),
    Mean: reduce('Mean'),
    BatchMatMul: batchMatMul,
    AvgPool: avgPool,
    AvgPoolGrad: avgPoolGrad,
    FusedBatchNorm: fusedBatchNorm,
    RiftBatchNormTrain: bnTrain,
    RiftBatchNormTrainGrad: bnTrainGrad,
    RiftBatchNormEval: bnEval,
    RiftScaleShiftReluGrad: scaleShiftReluGrad,
    RiftSgdStep: sgdStep,
    RiftRunningStats: runningStats,
  };
  for (const [name, k] of Object.entries(kernels)) {
    const e = entry(name);
    kernels[name] = (args) => {
      e.calls++;
      return k(args);
    };
  }
  return kernels;
}
