/**
 * The standard CIFAR augmentation on uint8 HWC images: RandomCrop(32, padding=4, reflect) and a
 * horizontal flip with probability 0.5, drawn from a seeded Rng.
 */
import type { Rng } from '../util/rng.js';
import { IMAGE_CHANNELS, IMAGE_SIZE } from './cifar.js';

/** A crop-and-flip draw: top-left corner of the crop in the padded image, and the flip. */
export interface CropFlip {
  top: number;
  left: number;
  flip: boolean;
}

/** Padding of the standard CIFAR augmentation (RandomCrop(32, padding=4, padding_mode='reflect')). */
export const AUGMENT_PAD = 4;

/**
 * Draws one augmentation: top, left uniform in [0, 2*pad], then flip with probability 0.5
 * (three draws from `rng`, in that order).
 */
export function drawCropFlip(rng: Rng, pad: number = AUGMENT_PAD): CropFlip {
  const top = rng.int(2 * pad + 1);
  const left = rng.int(2 * pad + 1);
  return { top, left, flip: rng.uniform() < 0.5 };
}

/** Reflect index without repeating the edge (PyTorch 'reflect'): -1 → 1, n → n-2. Needs pad < n. */
function reflect(i: number, n: number): number {
  if (i < 0) return -i;
  if (i >= n) return 2 * (n - 1) - i;
  return i;
}

/** Geometry of the HWC image given to reflectPad. */
export interface PadShape {
  height: number;
  width: number;
  channels: number;
  pad: number;
}

/**
 * Reflect-pads one HWC uint8 image by `pad` on every side, like PyTorch's
 * `padding_mode='reflect'` / ReflectionPad2d (the edge pixel is not repeated; pad must be
 * smaller than height and width). Returns (height+2pad)*(width+2pad)*channels bytes.
 * The augmentation itself (augmentInto) never materialises the padded image; this is the
 * reference it is tested against.
 */
export function reflectPad(image: Uint8Array, shape: PadShape): Uint8Array {
  const { height: h, width: w, channels: c, pad } = shape;
  if (pad >= h || pad >= w) throw new Error(`reflectPad: pad ${pad} must be smaller than the image (${h}x${w}).`);
  if (image.length !== h * w * c) throw new Error(`reflectPad: expected ${h * w * c} bytes, got ${image.length}.`);
  const H = h + 2 * pad, W = w + 2 * pad;
  const out = new Uint8Array(H * W * c);
  for (let y = 0; y < H; y++) {
    const sy = reflect(y - pad, h);
    for (let x = 0; x < W; x++) {
      const sx = reflect(x - pad, w);
      for (let ch = 0; ch < c; ch++) out[(y * W + x) * c + ch] = image[(sy * w + sx) * c + ch];
    }
  }
  return out;
}

/**
 * Writes one augmented 32x32x3 image: reflect-pad by `pad`, crop 32x32 at (top, left) of the
 * padded image, then mirror horizontally if `flip`. Reads src[srcOffset .. +3072) (HWC) and
 * writes dst[dstOffset .. +3072). Computed directly from source coordinates (no padded copy).
 */
export function augmentInto(src: Uint8Array, srcOffset: number, dst: Uint8Array, dstOffset: number, t: CropFlip, pad: number = AUGMENT_PAD): void {
  const S = IMAGE_SIZE, C = IMAGE_CHANNELS;
  for (let y = 0; y < S; y++) {
    const sy = reflect(y + t.top - pad, S);
    for (let x = 0; x < S; x++) {
      const cx = t.flip ? S - 1 - x : x;
      const sx = reflect(cx + t.left - pad, S);
      const s = srcOffset + (sy * S + sx) * C, d = dstOffset + (y * S + x) * C;
      dst[d] = src[s];
      dst[d + 1] = src[s + 1];
      dst[d + 2] = src[s + 2];
    }
  }
}
