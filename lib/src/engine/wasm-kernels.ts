/**
 * Convolution gradient kernels for the TF.js wasm backend, composed from its XNNPACK Conv2D.
 *
 * Why: the stock wasm backend has no `Conv2DBackpropFilter` (weight gradients throw "kernel
 * not registered") and its `Conv2DBackpropInput` is a scalar loop. Both gradients are
 * convolutions themselves (NHWC, forward y[n,oh,ow,co] = Σ x[n, oh·s+kh·d−pT, ow·s+kw·d−pL, ci]·w[kh,kw,ci,co]):
 *  - filter gradient: dW[kh,kw,ci,co] = Σ_{n,oh,ow} x[n, oh·s+kh−pT, ...]·dy[n,oh,ow,co], i.e. a
 *    stride-1 conv of xᵀ = x transposed to [ci,H,W,n] (batch↔channels) with filter
 *    dyᵀ = dy transposed to [OH,OW,n,co], filter dilation s, explicit padding pT/pL;
 *  - input gradient: dX = stride-1 'valid' conv of the zero-upsampled (by s) and padded dy
 *    with the 180°-rotated filter whose in/out channels are swapped.
 * Only dilation 1 in the forward conv is supported (ResNet needs no more); other cases throw.
 */
import * as tf from '@tensorflow/tfjs-core';
import { backend_util, KernelBackend, TensorInfo, NamedAttrMap, NamedTensorInfoMap } from '@tensorflow/tfjs-core';

type Backend = KernelBackend & { disposeData(id: object): boolean };

class Scope {
  private made: TensorInfo[] = [];
  constructor(private readonly backend: Backend) {}
  run(name: string, inputs: NamedTensorInfoMap, attrs: NamedAttrMap = {}): TensorInfo {
    const k = tf.getKernel(name, 'wasm');
    if (!k) throw new Error(`wasm kernel '${name}' not registered`);
    const out = k.kernelFunc({ inputs, attrs, backend: this.backend }) as TensorInfo;
    this.made.push(out);
    return out;
  }
  /** Disposes every intermediate except `keep`. */
  close(keep: TensorInfo): TensorInfo {
    for (const t of this.made) if (t !== keep) this.backend.disposeData(t.dataId);
    return keep;
  }
}

interface ConvAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dilations?: [number, number] | number;
}

function checkAttrs(a: ConvAttrs, kernel: string): void {
  if (a.dataFormat !== undefined && a.dataFormat !== 'NHWC') {
    throw new Error(`${kernel} (wasm, composed): only NHWC is supported, got ${a.dataFormat}`);
  }
}

/** Pads (or crops, for negative amounts) dims 1 and 2 of an NHWC tensor. */
function padOrCrop(s: Scope, x: TensorInfo, top: number, bottom: number, left: number, right: number): TensorInfo {
  let t = x;
  const cropT = Math.max(0, -top), cropB = Math.max(0, -bottom), cropL = Math.max(0, -left), cropR = Math.max(0, -right);
  if (cropT || cropB || cropL || cropR) {
    const [n, h, w, c] = t.shape;
    t = s.run('Slice', { x: t }, { begin: [0, cropT, cropL, 0], size: [n, h - cropT - cropB, w - cropL - cropR, c] });
  }
  const pt = Math.max(0, top), pb = Math.max(0, bottom), pl = Math.max(0, left), pr = Math.max(0, right);
  if (pt || pb || pl || pr) {
    t = s.run('PadV2', { x: t }, { paddings: [[0, 0], [pt, pb], [pl, pr], [0, 0]], constantValue: 0 });
  }
  return t;
}

function conv2DBackpropFilter(args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }): TensorInfo {
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const attrs = args.attrs as unknown as ConvAttrs & { filterShape: [number, number, number, number] };
  checkAttrs(attrs, 'Conv2DBackpropFilter');
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], attrs.filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
  const s = new Scope(args.backend as Backend);
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, outHeight: oh, outWidth: ow } = info;
  const { top, left } = info.padInfo;
  // xᵀ: [ci, H, W, n], padded so that the dilated "filter" dyᵀ yields exactly kh×kw outputs.
  const xt = s.run('Transpose', { x }, { perm: [3, 1, 2, 0] });
  const needH = (oh - 1) * sh + kh, needW = (ow - 1) * sw + kw;
  const xp = padOrCrop(s, xt, top, needH - info.inHeight - top, left, needW - info.inWidth - left);
  const dyt = s.run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] });
  const g = s.run('Conv2D', { x: xp, filter: dyt }, {
    strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [sh, sw], dimRoundingMode: undefined,
  } as unknown as NamedAttrMap);
  const dw = s.run('Transpose', { x: g }, { perm: [1, 2, 0, 3] });
  return s.close(dw);
}

function conv2DBackpropInput(args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs?: NamedAttrMap }): TensorInfo {
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const attrs = args.attrs as unknown as ConvAttrs & { inputShape: [number, number, number, number] };
  checkAttrs(attrs, 'Conv2DBackpropInput');
  const info = backend_util.computeConv2DInfo(
    attrs.inputShape, filter.shape as [number, number, number, number], attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
  const s = new Scope(args.backend as Backend);
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, outHeight: oh, outWidth: ow } = info;
  const [n, , , co] = dy.shape;
  const ci = info.inChannels;
  let up = dy;
  if (sh > 1 || sw > 1) {
    // Zero-upsample: [n,oh,ow,co] -> [n,oh,1,ow,1,co] -> pad to [n,oh,sh,ow,sw,co] -> [n,oh*sh,ow*sw,co].
    const r = s.run('Reshape', { x: dy }, { shape: [n, oh, 1, ow, 1, co] });
    const p = s.run('PadV2', { x: r }, { paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]], constantValue: 0 });
    up = s.run('Reshape', { x: p }, { shape: [n, oh * sh, ow * sw, co] });
    up = s.run('Slice', { x: up }, { begin: [0, 0, 0, 0], size: [n, (oh - 1) * sh + 1, (ow - 1) * sw + 1, co] });
  }
  const upH = (oh - 1) * sh + 1, upW = (ow - 1) * sw + 1;
  const pt = kh - 1 - info.padInfo.top, pl = kw - 1 - info.padInfo.left;
  const pb = info.inHeight + kh - 1 - pt - upH, pr = info.inWidth + kw - 1 - pl - upW;
  const padded = padOrCrop(s, up, pt, pb, pl, pr);
  // w'[kh',kw',co,ci] = w[kh-1-kh', kw-1-kw', ci, co]
  const rev = s.run('Reverse', { x: filter }, { dims: [0, 1] });
  const wt = s.run('Transpose', { x: rev }, { perm: [0, 1, 3, 2] });
  const dx = s.run('Conv2D', { x: padded, filter: wt }, {
    strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [1, 1], dimRoundingMode: undefined,
  } as unknown as NamedAttrMap);
  if (dx.shape[1] !== info.inHeight || dx.shape[2] !== info.inWidth || dx.shape[3] !== ci) {
    throw new Error(`Conv2DBackpropInput (wasm, composed): shape ${dx.shape} != input ${attrs.inputShape}`);
  }
  return s.close(dx);
}

let registered = false;

/** Registers (once) the composed `Conv2DBackpropFilter` and `Conv2DBackpropInput` for 'wasm'. */
export function registerWasmGradientKernels(): void {
  if (registered) return;
  if (tf.getKernel('Conv2DBackpropFilter', 'wasm')) tf.unregisterKernel('Conv2DBackpropFilter', 'wasm');
  if (tf.getKernel('Conv2DBackpropInput', 'wasm')) tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
  tf.registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2DBackpropFilter as tf.KernelFunc });
  tf.registerKernel({ kernelName: 'Conv2DBackpropInput', backendName: 'wasm', kernelFunc: conv2DBackpropInput as tf.KernelFunc });
  registered = true;
}
