/**
 * The CIFAR architectures a `Network` can be, each written once as (a) its modules with their
 * PyTorch state_dict names and shapes, in the order PyTorch registers them, and (b) its
 * forward pass over named modules. Both read one block list, so they cannot disagree.
 *
 * - 'resnet18': Kuang Liu's ResNet-18 (github.com/kuangliu/pytorch-cifar, as RiFT uses it):
 *   conv3x3+BN+ReLU stem, 4 stages × 2 post-activation BasicBlocks (widths w,2w,4w,8w with
 *   w = round(64·width); strides 1,2,2,2; conv1x1+BN shortcut where the shape changes),
 *   4×4 average pool, `linear`.
 * - 'preact-resnet18': PreActResNet-18 (He et al. 2016, as Wong et al. 2020 and RobustBench
 *   write it): conv3x3 stem; blocks relu(bn1(x)) → conv1 → relu(bn2) → conv2, + shortcut
 *   (conv1x1 `shortcut.0` on x — RobustBench's PreActBlock — or on the pre-activation —
 *   PreActBlockV2, Wong et al.'s code); with `finalBn`, relu(`bn`(·)) before the pool
 *   (RobustBench's bn_before_fc; Wong et al.'s code); `linear`.
 * - 'wide-resnet': WideResNet-depth-width (Zagoruyko & Komodakis; RobustBench / TRADES key
 *   names): conv3x3(3→16) `conv1`; 3 groups `block{1,2,3}.layer.{i}` of (depth−4)/6
 *   pre-activation blocks (widths 16·width, 32·width, 64·width; strides 1,2,2; `convShortcut`
 *   where channels change, applied to the pre-activated input), relu(`bn1`), 8×8 average pool, `fc`.
 * Convolutions have no bias; 3×3 convolutions pad 1 on every side (PyTorch's padding=1).
 */
import * as tf from '@tensorflow/tfjs-core';

/** Architecture id stored in every checkpoint header. */
export type ArchName = 'resnet18' | 'preact-resnet18' | 'wide-resnet';
/** Every architecture id, for CLI choices. */
export const ARCH_NAMES: readonly ArchName[] = ['resnet18', 'preact-resnet18', 'wide-resnet'];

/** The architecture fields of a model config (see model.ts ModelConfig for defaults). */
export interface ArchConfig {
  arch: ArchName;
  /** ResNets: multiplier on 64/128/256/512 channels. WideResNet: the widen factor k (10 for WRN-34-10). */
  width: number;
  /** WideResNet depth (6n+4; 34 for WRN-34-10); ignored by the ResNets. */
  depth: number;
  numClasses: number;
  /** PreActResNet: the shortcut conv reads the block input ('input': RobustBench's PreActBlock) or the pre-activation ('preact': PreActBlockV2, Wong et al.'s own code). */
  preactShortcut: 'preact' | 'input';
  /** PreActResNet: a final BN `bn` + ReLU before the pool (Wong/RobustBench: true; Kuang Liu: false). */
  finalBn: boolean;
}

/** Kind of a module with state: conv (incl. shortcut convs), linear, or bn. */
export type ModuleKind = 'conv' | 'linear' | 'bn';

/** A module's definition: name, kind and its state entries [role, shape (TF.js layout), fan-in]. */
export interface ModuleDef {
  name: string;
  kind: ModuleKind;
  /** conv: [k,k,in,out] (HWIO); linear: [in,out] + bias [out]; bn: [c] ×4. */
  params: Array<[StateRole, number[], number]>;
}

/** Role of a state entry, as the last part of its PyTorch key. */
export type StateRole = 'weight' | 'bias' | 'running_mean' | 'running_var';

/** What a forward pass may do with a named module. */
export interface ModuleOps {
  /** Convolution by module name (weights HWIO), PyTorch padding (k−1)/2. */
  conv(name: string, x: tf.Tensor4D, stride: number): tf.Tensor4D;
  /** Batch norm by module name, in the call's mode. */
  bn(name: string, x: tf.Tensor4D): tf.Tensor4D;
  /** relu(bn(x) + residual): batch norm by module name, the residual added when given, then ReLU (one fused kernel where the backend has it). */
  bnRelu(name: string, x: tf.Tensor4D, residual?: tf.Tensor4D): tf.Tensor4D;
  /** Linear layer by module name on [b, features]. */
  linear(name: string, x: tf.Tensor2D): tf.Tensor2D;
}

/** An architecture instance: its modules (PyTorch registration order) and its forward pass on normalised inputs. */
export interface Architecture {
  modules: ModuleDef[];
  forward(ops: ModuleOps, x: tf.Tensor4D): tf.Tensor2D;
  /** Multiply-accumulates of one forward pass of one 32×32 image (for FLOP rates). */
  macsPerImage: number;
}

interface Block { prefix: string; inC: number; outC: number; stride: number; shortcut: boolean }

/** ResNet-18's 8 blocks (Kuang Liu and PreAct share the stage layout). */
function resnet18Blocks(width: number): { stem: number; blocks: Block[] } {
  const w = (base: number) => Math.max(1, Math.round(base * width));
  const blocks: Block[] = [];
  let inC = w(64);
  for (const [li, base, stride] of [[1, 64, 1], [2, 128, 2], [3, 256, 2], [4, 512, 2]] as const) {
    for (const b of [0, 1]) {
      const s = b === 0 ? stride : 1;
      const outC = w(base);
      blocks.push({ prefix: `layer${li}.${b}`, inC, outC, stride: s, shortcut: s !== 1 || inC !== outC });
      inC = outC;
    }
  }
  return { stem: w(64), blocks };
}

class Builder {
  readonly modules: ModuleDef[] = [];
  macs = 0;
  private hw = 32;
  conv(name: string, inC: number, outC: number, k: number, stride: number, hwIn = this.hw): number {
    this.modules.push({ name, kind: 'conv', params: [['weight', [k, k, inC, outC], inC * k * k]] });
    const out = Math.ceil(hwIn / stride);
    this.macs += out * out * k * k * inC * outC;
    return out;
  }
  bn(name: string, c: number): void {
    this.modules.push({ name, kind: 'bn', params: [['weight', [c], 0], ['bias', [c], 0], ['running_mean', [c], 0], ['running_var', [c], 0]] });
  }
  linear(name: string, inF: number, outF: number): void {
    this.modules.push({ name, kind: 'linear', params: [['weight', [inF, outF], inF], ['bias', [outF], inF]] });
    this.macs += inF * outF;
  }
  at(hw: number): this { this.hw = hw; return this; }
}

function kuangLiuResNet18(c: ArchConfig): Architecture {
  const { stem, blocks } = resnet18Blocks(c.width);
  const b = new Builder();
  let hw = b.conv('conv1', 3, stem, 3, 1);
  b.bn('bn1', stem);
  for (const k of blocks) {
    const hwIn = hw;
    hw = b.conv(`${k.prefix}.conv1`, k.inC, k.outC, 3, k.stride, hwIn);
    b.bn(`${k.prefix}.bn1`, k.outC);
    b.at(hw).conv(`${k.prefix}.conv2`, k.outC, k.outC, 3, 1);
    b.bn(`${k.prefix}.bn2`, k.outC);
    if (k.shortcut) {
      b.conv(`${k.prefix}.shortcut.0`, k.inC, k.outC, 1, k.stride, hwIn);
      b.bn(`${k.prefix}.shortcut.1`, k.outC);
    }
  }
  b.linear('linear', blocks[blocks.length - 1].outC, c.numClasses);
  return {
    modules: b.modules,
    macsPerImage: b.macs,
    forward(ops, x) {
      let h = ops.bnRelu('bn1', ops.conv('conv1', x, 1));
      for (const { prefix: p, stride, shortcut } of blocks) {
        const o = ops.bnRelu(`${p}.bn1`, ops.conv(`${p}.conv1`, h, stride));
        const c2 = ops.conv(`${p}.conv2`, o, 1);
        const sc = shortcut ? ops.bn(`${p}.shortcut.1`, ops.conv(`${p}.shortcut.0`, h, stride)) : h;
        h = ops.bnRelu(`${p}.bn2`, c2, sc);
      }
      return ops.linear('linear', tf.mean(h, [1, 2]) as tf.Tensor2D);
    },
  };
}

function preActResNet18(c: ArchConfig): Architecture {
  const { stem, blocks } = resnet18Blocks(c.width);
  const b = new Builder();
  let hw = b.conv('conv1', 3, stem, 3, 1);
  for (const k of blocks) {
    const hwIn = hw;
    b.bn(`${k.prefix}.bn1`, k.inC);
    hw = b.at(hwIn).conv(`${k.prefix}.conv1`, k.inC, k.outC, 3, k.stride);
    b.bn(`${k.prefix}.bn2`, k.outC);
    b.at(hw).conv(`${k.prefix}.conv2`, k.outC, k.outC, 3, 1);
    if (k.shortcut) b.conv(`${k.prefix}.shortcut.0`, k.inC, k.outC, 1, k.stride, hwIn);
  }
  const last = blocks[blocks.length - 1].outC;
  if (c.finalBn) b.bn('bn', last);
  b.linear('linear', last, c.numClasses);
  return {
    modules: b.modules,
    macsPerImage: b.macs,
    forward(ops, x) {
      let h = ops.conv('conv1', x, 1);
      for (const { prefix: p, stride, shortcut } of blocks) {
        const a = ops.bnRelu(`${p}.bn1`, h);
        const sc = shortcut ? ops.conv(`${p}.shortcut.0`, c.preactShortcut === 'preact' ? a : h, stride) : h;
        let o = ops.conv(`${p}.conv1`, a, stride);
        o = ops.conv(`${p}.conv2`, ops.bnRelu(`${p}.bn2`, o), 1);
        h = tf.add(o, sc) as tf.Tensor4D;
      }
      if (c.finalBn) h = ops.bnRelu('bn', h);
      return ops.linear('linear', tf.mean(h, [1, 2]) as tf.Tensor2D);
    },
  };
}

function wideResNet(c: ArchConfig): Architecture {
  if (!Number.isInteger(c.depth) || c.depth < 10 || (c.depth - 4) % 6 !== 0) throw new Error(`config.depth: a WideResNet has depth 6n+4 (n ≥ 1, e.g. 34), got ${c.depth}`);
  if (!Number.isInteger(c.width) || c.width < 1) throw new Error(`config.width: a WideResNet's widen factor is an integer ≥ 1 (10 for WRN-34-10), got ${c.width}`);
  const n = (c.depth - 4) / 6;
  const widths = [16, 16 * c.width, 32 * c.width, 64 * c.width];
  const b = new Builder();
  let hw = b.conv('conv1', 3, 16, 3, 1);
  const blocks: Array<Block & { equal: boolean }> = [];
  let inC = 16;
  for (let g = 1; g <= 3; g++) {
    for (let i = 0; i < n; i++) {
      const stride = i === 0 && g > 1 ? 2 : 1;
      const outC = widths[g];
      const prefix = `block${g}.layer.${i}`;
      const equal = inC === outC;
      if (equal && stride !== 1) throw new Error(`wide-resnet: block ${prefix} would change resolution without a shortcut conv`);
      const hwIn = hw;
      b.bn(`${prefix}.bn1`, inC);
      hw = b.at(hwIn).conv(`${prefix}.conv1`, inC, outC, 3, stride);
      b.bn(`${prefix}.bn2`, outC);
      b.at(hw).conv(`${prefix}.conv2`, outC, outC, 3, 1);
      if (!equal) b.conv(`${prefix}.convShortcut`, inC, outC, 1, stride, hwIn);
      blocks.push({ prefix, inC, outC, stride, shortcut: !equal, equal });
      inC = outC;
    }
  }
  b.bn('bn1', inC);
  b.linear('fc', inC, c.numClasses);
  return {
    modules: b.modules,
    macsPerImage: b.macs,
    forward(ops, x) {
      let h = ops.conv('conv1', x, 1);
      for (const { prefix: p, stride, equal } of blocks) {
        const a = ops.bnRelu(`${p}.bn1`, h);
        let o = ops.bnRelu(`${p}.bn2`, ops.conv(`${p}.conv1`, a, stride));
        o = ops.conv(`${p}.conv2`, o, 1);
        // RobustBench's block: when channels change, the shortcut reads relu(bn1(x)), else x itself.
        h = tf.add(equal ? h : ops.conv(`${p}.convShortcut`, a, stride), o) as tf.Tensor4D;
      }
      h = ops.bnRelu('bn1', h);
      return ops.linear('fc', tf.mean(h, [1, 2]) as tf.Tensor2D);
    },
  };
}

/** The architecture a config describes (throws naming the field when it cannot be built). */
export function buildArchitecture(c: ArchConfig): Architecture {
  switch (c.arch) {
    case 'resnet18': return kuangLiuResNet18(c);
    case 'preact-resnet18': return preActResNet18(c);
    case 'wide-resnet': return wideResNet(c);
    default: throw new Error(`config.arch: expected one of ${ARCH_NAMES.join(', ')}, got '${String((c as { arch: unknown }).arch)}'`);
  }
}

/**
 * An architecture in words: "resnet18 width 0.25", "preact-resnet18 width 1 (final BN, shortcut on
 * the pre-activation)", "wide-resnet 34-10". Class count is not included.
 */
export function archLabel(c: Pick<ArchConfig, 'arch' | 'width'> & Partial<ArchConfig>): string {
  if (c.arch === 'wide-resnet') return `wide-resnet ${c.depth ?? 34}-${c.width}`;
  if (c.arch === 'preact-resnet18') {
    return `preact-resnet18 width ${c.width} (${c.finalBn === false ? 'no final BN' : 'final BN'}, shortcut on the ${c.preactShortcut === 'input' ? 'block input' : 'pre-activation'})`;
  }
  return `${c.arch} width ${c.width}`;
}
