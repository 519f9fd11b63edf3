/**
 * A CIFAR classifier with a module registry keyed by PyTorch state_dict names: the
 * architectures of nn/architectures.ts (Kuang Liu's ResNet-18, PreActResNet-18, WideResNet),
 * input normalisation inside the model (so every caller works in [0,1] pixel space), and BN
 * layers whose training-mode behaviour is set per layer (BNMode).
 *
 * Layouts (TF.js): activations NHWC; conv weights HWIO [kh,kw,in,out] (PyTorch: OIHW);
 * linear weight [in,out] (PyTorch: [out,in]). State keys are PyTorch `state_dict` keys
 * (`layer2.0.shortcut.1.running_var`), without `num_batches_tracked`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../util/rng.js';
import { applyActivation, batchNormEval, batchNormTrain, updateRunningStats, type BatchNormActivation } from './batchnorm.js';
import { buildArchitecture, ARCH_NAMES, type ArchConfig, type ModuleKind, type StateRole, type Architecture } from './architectures.js';

export type { ArchName, ModuleKind } from './architectures.js';

/** CIFAR-10 channel statistics used by RiFT's code (also for CIFAR-100). */
export const CIFAR_MEAN: readonly [number, number, number] = [0.4914, 0.4822, 0.4465];
/** Per-channel standard deviations paired with CIFAR_MEAN (R, G, B; pixel values in [0, 1]). */
export const CIFAR_STD: readonly [number, number, number] = [0.2471, 0.2435, 0.2616];

/**
 * How the PyTorch original of a model receives its inputs, which decides what an export writes:
 * - 'outside': normalised by the caller with `mean`/`std` (RiFT's code, this project's models);
 * - 'buffers': the model holds `mean`/`std` as `mu`/`sigma` buffers of shape [1,3,1,1] (exported as such);
 * - 'none': raw [0,1] pixels (RobustBench's convention; `mean` 0, `std` 1).
 * Here the model always applies `mean`/`std` itself and takes [0,1] pixels.
 */
export type InputNormalization = 'outside' | 'buffers' | 'none';

/** Architecture, normalisation and BN constants of a Network; stored in every checkpoint header. */
export interface ModelConfig extends ArchConfig {
  /** Per-channel input mean subtracted inside the model. Default CIFAR_MEAN. */
  mean: readonly [number, number, number];
  /** Per-channel input std divided inside the model. Default CIFAR_STD. */
  std: readonly [number, number, number];
  /** Where the PyTorch original normalises (see InputNormalization). Default 'outside'. */
  normalization: InputNormalization;
  /** BN momentum, PyTorch convention (weight of the new batch). Default 0.1. */
  bnMomentum: number;
  /** BN epsilon. Default 1e-5 (PyTorch; TF.js's default is 1e-3). */
  bnEps: number;
}

/**
 * Default config: Kuang Liu ResNet-18 at width 1, 10 classes, CIFAR_MEAN/CIFAR_STD applied
 * inside (normalization 'outside' in PyTorch terms), BN momentum 0.1, eps 1e-5; WideResNet
 * depth 34; PreActResNet with final BN and the shortcut on the pre-activation.
 */
export const DEFAULT_MODEL_CONFIG: ModelConfig = {
  arch: 'resnet18',
  width: 1,
  depth: 34,
  numClasses: 10,
  preactShortcut: 'preact',
  finalBn: true,
  mean: CIFAR_MEAN,
  std: CIFAR_STD,
  normalization: 'outside',
  bnMomentum: 0.1,
  bnEps: 1e-5,
};

/** A complete config from a partial one (checkpoint headers written before a field existed read with its default). */
export function completeModelConfig(c: Partial<ModelConfig>): ModelConfig {
  const out = { ...DEFAULT_MODEL_CONFIG, ...c } as ModelConfig;
  return { ...out, mean: [...out.mean] as [number, number, number], std: [...out.std] as [number, number, number] };
}

/** One entry of a module's state: `key` is the full PyTorch-style name. */
export interface StateEntryInfo {
  key: string;
  /** 'weight' | 'bias' | 'running_mean' | 'running_var' */
  role: StateRole;
  shape: number[];
  /** Parameters (weights, γ/β, biases) are trainable; running statistics are buffers. */
  trainable: boolean;
}

/** A module of the network in PyTorch registration order. */
export interface ModuleInfo {
  /** PyTorch module name, e.g. 'layer2.1.conv2', 'layer3.0.shortcut.1', 'linear', 'block2.layer.0.convShortcut'. */
  name: string;
  kind: ModuleKind;
  /** Index in registration order (the forward order, but for shortcuts and pre-activation BNs). */
  index: number;
  entries: StateEntryInfo[];
  /** Number of trainable parameters. */
  numParams: number;
}

/**
 * What a BN layer does in a training-mode forward call (`{training: true}`):
 * - 'train': normalise with batch statistics and update running statistics (PyTorch train());
 * - 'batch': normalise with batch statistics, leave running statistics unchanged;
 * - 'eval':  normalise with running statistics (PyTorch eval() on that layer).
 * In inference-mode calls every BN layer uses its running statistics.
 */
export type BNMode = 'train' | 'batch' | 'eval';

/** Options of `Classifier.forward`. */
export interface ForwardOptions {
  /** Training-mode call: BN layers behave per their BNMode. Default false (inference). */
  training?: boolean;
}

/** Anything that maps images [b,32,32,3] in [0,1] to logits [b,k]. Attacks and evaluation take this. */
export interface Classifier {
  forward(x: tf.Tensor4D, options?: ForwardOptions): tf.Tensor2D;
}

/** Owned copies of some state entries; `dispose()` frees them. */
export interface StateSnapshot {
  readonly tensors: ReadonlyMap<string, tf.Tensor>;
  dispose(): void;
}

let modelCounter = 0;

/** A CIFAR classifier. Create with `createNetwork` / `createResNet18`, or load one (nn/checkpoint.ts). Call `dispose()` to free its variables. */
export class Network implements Classifier {
  readonly config: ModelConfig;
  private readonly vars = new Map<string, tf.Variable>();
  private readonly moduleList: ModuleInfo[] = [];
  private readonly bnMode = new Map<string, BNMode>();
  private readonly id = ++modelCounter;
  private readonly normMean: tf.Tensor1D;
  private readonly normInvStd: tf.Tensor1D;
  private readonly architecture: Architecture;
  private disposed = false;

  /** Use `createNetwork`. `init(key, shape, role, fanIn)` supplies every state entry's initial values (fanIn 0 for BN entries). */
  constructor(config: ModelConfig, init: (key: string, shape: number[], role: StateRole, fanIn: number) => Float32Array) {
    this.config = completeModelConfig(config);
    validateConfig(this.config);
    this.architecture = buildArchitecture(this.config);
    for (const def of this.architecture.modules) {
      const entries: StateEntryInfo[] = [];
      let numParams = 0;
      for (const [role, shape, fanIn] of def.params) {
        const key = `${def.name}.${role}`;
        const trainable = role === 'weight' || role === 'bias';
        const values = init(key, shape, role, fanIn);
        // Variable names must be unique across models in one TF.js engine: prefix with the model id.
        const initial = tf.tensor(values, shape, 'float32');
        this.vars.set(key, tf.variable(initial, trainable, `rn${this.id}/${key}`));
        initial.dispose();
        entries.push({ key, role, shape, trainable });
        if (trainable) numParams += values.length;
      }
      this.moduleList.push({ name: def.name, kind: def.kind, index: this.moduleList.length, entries, numParams });
      if (def.kind === 'bn') this.bnMode.set(def.name, 'train');
    }
    this.normMean = tf.keep(tf.tensor1d([...this.config.mean]));
    this.normInvStd = tf.keep(tf.tensor1d(this.config.std.map((v) => 1 / v)));
  }

  /** Multiply-accumulates of one forward pass of one 32×32 image. */
  macsPerImage(): number {
    return this.architecture.macsPerImage;
  }

  /** All modules in PyTorch registration order (conv, bn, linear). */
  modules(): ModuleInfo[] {
    return this.moduleList.map((m) => ({ ...m, entries: m.entries.map((e) => ({ ...e, shape: [...e.shape] })) }));
  }

  /** One module by name; throws listing valid names if unknown. */
  module(name: string): ModuleInfo {
    const m = this.moduleList.find((x) => x.name === name);
    if (!m) throw new Error(`unknown module '${name}'; modules are: ${this.moduleList.map((x) => x.name).join(', ')}`);
    return { ...m, entries: m.entries.map((e) => ({ ...e, shape: [...e.shape] })) };
  }

  /** Every state key (PyTorch state_dict order). */
  stateKeys(): string[] {
    return [...this.vars.keys()];
  }

  /** Total trainable parameters (11,173,962 for width 1, 10 classes). */
  numParams(): number {
    return this.moduleList.reduce((a, m) => a + m.numParams, 0);
  }

  /** The live variable behind a state key (not a copy: do not dispose it). */
  variable(key: string): tf.Variable {
    const v = this.vars.get(key);
    if (!v) throw new Error(`unknown state key '${key}'`);
    return v;
  }

  /**
   * Trainable variables of the named modules (all modules when omitted): conv/linear weights
   * (+ linear bias), BN γ (`weight`) and β (`bias`). Live variables, not copies.
   */
  trainableVariables(moduleNames?: readonly string[]): tf.Variable[] {
    const names = moduleNames ?? this.moduleList.map((m) => m.name);
    return names.flatMap((n) => this.module(n).entries.filter((e) => e.trainable).map((e) => this.variable(e.key)));
  }

  /** Sets the BNMode of the named BN layers ('all' for every one). */
  setBNMode(names: readonly string[] | 'all', mode: BNMode): void {
    const list = names === 'all' ? [...this.bnMode.keys()] : names;
    for (const n of list) {
      if (!this.bnMode.has(n)) throw new Error(`setBNMode: '${n}' is not a BN module; BN modules are: ${[...this.bnMode.keys()].join(', ')}`);
      this.bnMode.set(n, mode);
    }
  }

  /** Current BNMode of every BN layer. */
  bnModes(): Record<string, BNMode> {
    return Object.fromEntries(this.bnMode);
  }

  /** Copies of the named state entries (all when omitted). The caller disposes the snapshot. */
  snapshot(keys?: readonly string[]): StateSnapshot {
    const m = new Map<string, tf.Tensor>();
    for (const k of keys ?? this.stateKeys()) m.set(k, tf.clone(this.variable(k)));
    return { tensors: m, dispose: () => m.forEach((t) => t.dispose()) };
  }

  /** Writes the snapshot's values back (the snapshot stays valid and owned by the caller). */
  restore(snapshot: StateSnapshot): void {
    this.write(snapshot.tensors);
  }

  /** Assigns values to state entries; shapes must match. Does not take ownership of `values`. */
  write(values: ReadonlyMap<string, tf.Tensor> | Record<string, tf.Tensor>): void {
    const entries = values instanceof Map ? [...values.entries()] : Object.entries(values);
    for (const [k, t] of entries) {
      const v = this.variable(k);
      if (!tf.util.arraysEqual(v.shape, t.shape)) throw new Error(`write: '${k}' expects shape [${v.shape}], got [${t.shape}]`);
      v.assign(t);
    }
  }

  /** Reads one state entry as a JS array copy (no tensor is created that outlives the call). */
  read(key: string): Float32Array {
    return this.variable(key).dataSync() as Float32Array;
  }

  /**
   * Logits [b, numClasses] for images x [b,32,32,3] in [0,1]. In a training-mode call each BN
   * layer follows its BNMode and 'train' layers update their running statistics (side effect).
   * Caller disposes the result.
   */
  forward(x: tf.Tensor4D, options: ForwardOptions = {}): tf.Tensor2D {
    this.assertAlive();
    const training = options.training ?? false;
    return tf.tidy(() => {
      const h = tf.mul(tf.sub(x, this.normMean), this.normInvStd) as tf.Tensor4D;
      return this.architecture.forward({
        conv: (name, t, stride) => this.conv(name, t, stride),
        bn: (name, t) => this.bn(name, t, training),
        bnRelu: (name, t, residual) => this.bn(name, t, training, { relu: true, residual }),
        linear: (name, t) => tf.add(tf.matMul(t, this.variable(`${name}.weight`)), this.variable(`${name}.bias`)) as tf.Tensor2D,
      }, h);
    });
  }

  /** Inference-mode logits; same as `forward(x, {training: false})`. Caller disposes. */
  predict(x: tf.Tensor4D): tf.Tensor2D {
    return this.forward(x, { training: false });
  }

  /**
   * The output of one BN module (after BN, before any ReLU or residual add) for inputs x,
   * in inference mode; for Figure 3's KDE. Returns [b,h,w,c]; caller disposes.
   */
  bnOutput(x: tf.Tensor4D, bnName: string): tf.Tensor4D {
    if (this.module(bnName).kind !== 'bn') throw new Error(`bnOutput: '${bnName}' is not a BN module`);
    let captured: tf.Tensor4D | undefined;
    const logits = tf.tidy(() => {
      this.captureName = bnName;
      this.captureSink = (t) => { captured = tf.keep(t); };
      try {
        return this.forward(x, { training: false });
      } finally {
        this.captureName = undefined;
        this.captureSink = undefined;
      }
    });
    logits.dispose();
    return captured!;
  }

  private captureName: string | undefined;
  private captureSink: ((t: tf.Tensor4D) => void) | undefined;

  private conv(name: string, x: tf.Tensor4D, stride: number): tf.Tensor4D {
    const w = this.variable(`${name}.weight`) as unknown as tf.Tensor4D;
    const k = w.shape[0];
    // PyTorch pads 3x3 convs by 1 on every side; TF 'same' would pad (0,1) at stride 2.
    const pad: 'valid' | [[number, number], [number, number], [number, number], [number, number]] =
      k === 1 ? 'valid' : [[0, 0], [(k - 1) / 2, (k - 1) / 2], [(k - 1) / 2, (k - 1) / 2], [0, 0]];
    return tf.conv2d(x, w, stride, pad) as tf.Tensor4D;
  }

  /** BN module `name` on x in the call's mode; with `act`, relu?(bn(x) + residual?) (one fused kernel where the backend has it). */
  private bn(name: string, x: tf.Tensor4D, training: boolean, act?: BatchNormActivation): tf.Tensor4D {
    // Figure 3 reads this layer's own output, before the residual and ReLU.
    if (act && this.captureName === name) return applyActivation(this.bn(name, x, training), act);
    const g = this.variable(`${name}.weight`) as unknown as tf.Tensor1D;
    const b = this.variable(`${name}.bias`) as unknown as tf.Tensor1D;
    const rm = this.variable(`${name}.running_mean`);
    const rv = this.variable(`${name}.running_var`);
    const mode = training ? this.bnMode.get(name)! : 'eval';
    let y: tf.Tensor4D;
    if (mode === 'eval') {
      y = batchNormEval(x, g, b, rm as unknown as tf.Tensor1D, rv as unknown as tf.Tensor1D, this.config.bnEps, act);
    } else {
      const r = batchNormTrain(x, g, b, this.config.bnEps, act);
      if (mode === 'train') {
        updateRunningStats(rm, rv, r.mean, r.variance, x.shape[0] * x.shape[1] * x.shape[2], this.config.bnMomentum);
      }
      y = r.y;
    }
    if (this.captureName === name) this.captureSink!(y);
    return y;
  }

  /** Frees every variable. The model is unusable afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.vars.forEach((v) => v.dispose());
    this.normMean.dispose();
    this.normInvStd.dispose();
    this.disposed = true;
  }

  private assertAlive(): void {
    if (this.disposed) throw new Error('model was disposed');
  }
}

function validateConfig(c: ModelConfig): void {
  if (!ARCH_NAMES.includes(c.arch)) throw new Error(`config.arch: expected one of ${ARCH_NAMES.join(', ')}, got '${c.arch}'`);
  if (!(c.width > 0) || !Number.isFinite(c.width)) throw new Error(`config.width must be a positive number, got ${c.width}`);
  if (!Number.isInteger(c.numClasses) || c.numClasses < 2) throw new Error(`config.numClasses must be an integer ≥ 2, got ${c.numClasses}`);
  if (c.mean.length !== 3 || c.std.length !== 3 || c.std.some((s) => !(s > 0))) throw new Error('config.mean/std must be 3 numbers (std > 0)');
  if (!['outside', 'buffers', 'none'].includes(c.normalization)) throw new Error(`config.normalization: expected outside, buffers or none, got '${c.normalization}'`);
  if (!(c.bnMomentum > 0 && c.bnMomentum <= 1)) throw new Error(`config.bnMomentum must be in (0,1], got ${c.bnMomentum}`);
  if (!(c.bnEps > 0)) throw new Error(`config.bnEps must be > 0, got ${c.bnEps}`);
}

/**
 * A new network with PyTorch's default initialisation, drawn from a seeded generator:
 * conv/linear weights and linear bias U(−1/√fan_in, 1/√fan_in) (kaiming_uniform with a=√5),
 * BN γ=1, β=0, running mean 0, running var 1. Same seed → same weights on every backend.
 * Missing config fields take DEFAULT_MODEL_CONFIG's values.
 */
export function createNetwork(config: Partial<ModelConfig> = {}, seed = 0): Network {
  const rng = new Rng(seed);
  return new Network(completeModelConfig(config), (key, shape, role, fanIn) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(n);
    if (fanIn === 0) {
      if (role === 'weight' || role === 'running_var') out.fill(1);
      return out;
    }
    const bound = 1 / Math.sqrt(fanIn);
    for (let i = 0; i < n; i++) out[i] = (rng.uniform() * 2 - 1) * bound;
    return out;
  });
}

/** `createNetwork` for Kuang Liu's ResNet-18 (arch 'resnet18'): the model this project trains. */
export function createResNet18(config: Partial<Omit<ModelConfig, 'arch'>> = {}, seed = 0): Network {
  return createNetwork({ ...config, arch: 'resnet18' }, seed);
}
