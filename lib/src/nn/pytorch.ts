/**
 * PyTorch models in and out: a state_dict (torch.save ZIP / legacy, safetensors) becomes a
 * Network, with its architecture detected from the keys and shapes (or named), loaded as
 * strictly as `load_state_dict(strict=True)`; a Network goes back to a state_dict with
 * PyTorch's key names, layouts (OIHW conv weights, [out,in] linear weights) and
 * `num_batches_tracked` buffers, written as safetensors or a `torch.load`-able file.
 *
 * Input normalisation is always stated (ImportOptions.normalization): RiFT's code normalises
 * with CIFAR mean/std outside the model, RobustBench models take raw [0,1] pixels, some
 * models hold `mu`/`sigma` buffers. The Network applies it itself, so attacks stay in [0,1].
 */
import * as path from 'node:path';
import { writeFileAtomic } from '../util/fs.js';
import { singleLine } from '../util/format.js';
import { readStateDict, encodeSafetensors, encodeTorchStateDict, type StateTensor, type StateDictFormat, type TensorToWrite } from './torch-format.js';
import { Network, completeModelConfig, CIFAR_MEAN, CIFAR_STD, type ModelConfig } from './model.js';
import { ARCH_NAMES, archLabel, type ArchName } from './architectures.js';

/** CIFAR-100 channel statistics (the common choice of CIFAR-100 training code). */
export const CIFAR100_MEAN: readonly [number, number, number] = [0.5071, 0.4865, 0.4409];
/** Standard deviations paired with CIFAR100_MEAN. */
export const CIFAR100_STD: readonly [number, number, number] = [0.2673, 0.2564, 0.2762];

/**
 * How the checkpoint's model expects its inputs:
 * - 'cifar10': normalised outside the model with CIFAR_MEAN/CIFAR_STD (RiFT's code);
 * - 'cifar100': the same with CIFAR100_MEAN/CIFAR100_STD;
 * - 'none': raw [0,1] pixels (RobustBench);
 * - 'buffers': the file's `mu`/`sigma` buffers;
 * - explicit per-channel mean and std, normalised outside.
 */
export type NormalizationOption = 'cifar10' | 'cifar100' | 'none' | 'buffers' | { mean: readonly number[]; std: readonly number[] };

/** Names accepted by `parseNormalization`. */
export const NORMALIZATION_NAMES = ['cifar10', 'cifar100', 'none', 'buffers'] as const;

/** Options of `importStateDict` / `importPyTorchCheckpoint`. */
export interface ImportOptions {
  /** Architecture; default: detected from the keys (an error asks for it when they do not tell). */
  arch?: ArchName;
  /** Input normalisation; required unless the file holds `mu`/`sigma` buffers (then 'buffers'). */
  normalization?: NormalizationOption;
  /**
   * PreActResNet: what the shortcut conv reads — the block input ('input': RobustBench's
   * PreActBlock, e.g. Wong2020Fast) or the pre-activation ('preact': PreActBlockV2, Wong et al.'s
   * own code). The keys do not tell, so importing a PreActResNet without it is an error.
   */
  preactShortcut?: 'preact' | 'input';
  /** Key of the state_dict inside the checkpoint dict (readStateDict's `key`). */
  key?: string;
  /** Expected class count (e.g. the dataset's); a different one is an error. Default: whatever the file has. */
  numClasses?: number;
}

/** Where an imported model came from; stored in the `.rbn` provenance as `imported`. */
export interface ImportSource {
  file: string;
  sha256: string;
  format: StateDictFormat;
  key?: string;
  normalization: NormalizationOption;
  notes: string[];
}

/** Parses a CLI normalisation value: one of NORMALIZATION_NAMES or 'mean=r,g,b;std=r,g,b'. Throws naming `option`. */
export function parseNormalization(value: string, option = '--normalization'): NormalizationOption {
  if ((NORMALIZATION_NAMES as readonly string[]).includes(value)) return value as NormalizationOption;
  const m = /^mean=([^;]+);std=(.+)$/.exec(value);
  const nums = (s: string) => s.split(',').map(Number);
  if (m && nums(m[1]).length === 3 && nums(m[2]).length === 3 && [...nums(m[1]), ...nums(m[2])].every(Number.isFinite) && nums(m[2]).every((v) => v > 0)) {
    return { mean: nums(m[1]), std: nums(m[2]) };
  }
  throw new Error(`${option}: expected ${NORMALIZATION_NAMES.join(', ')} or 'mean=r,g,b;std=r,g,b' (std > 0), got '${value}'`);
}

const shape = (sd: Map<string, StateTensor>, k: string) => sd.get(k)?.shape;

/** Architecture fields read off the keys and shapes; `arch` forces the family. Throws when they do not tell. */
export function detectArchitecture(sd: Map<string, StateTensor>, arch?: ArchName, label = 'checkpoint'): Pick<ModelConfig, 'arch' | 'width' | 'depth' | 'numClasses' | 'finalBn'> {
  const family: ArchName | undefined = arch ?? (
    sd.has('block1.layer.0.conv1.weight') ? 'wide-resnet'
      : sd.has('layer1.0.conv1.weight') && sd.has('conv1.weight') ? (sd.has('bn1.weight') ? 'resnet18' : 'preact-resnet18')
        : undefined);
  if (!family) {
    throw new Error(`${label}: cannot tell the architecture from the keys (${[...sd.keys()].slice(0, 4).join(', ')}, …); name it with --arch (${ARCH_NAMES.join(', ')})`);
  }
  const firstConv = shape(sd, 'conv1.weight');
  if (family === 'wide-resnet') {
    const n = new Set([...sd.keys()].map((k) => /^block1\.layer\.(\d+)\./.exec(k)?.[1]).filter(Boolean)).size;
    const w = shape(sd, 'block1.layer.0.conv1.weight');
    return { arch: family, depth: 6 * Math.max(1, n) + 4, width: w ? Math.max(1, Math.round(w[0] / 16)) : 10, numClasses: shape(sd, 'fc.weight')?.[0] ?? 10, finalBn: true };
  }
  const stages = [1, 2, 3, 4].map((l) => new Set([...sd.keys()].map((k) => new RegExp(`^layer${l}\\.(\\d+)\\.`).exec(k)?.[1]).filter(Boolean)).size);
  if (!arch && stages.join() !== '2,2,2,2') {
    throw new Error(`${label}: a ResNet with [${stages}] blocks per stage is not a ResNet-18 ([2,2,2,2]); only 18-layer ResNets are supported`);
  }
  return {
    arch: family,
    depth: 34,
    width: firstConv ? firstConv[0] / 64 : 1,
    numClasses: shape(sd, 'linear.weight')?.[0] ?? 10,
    finalBn: family === 'preact-resnet18' ? sd.has('bn.weight') : true,
  };
}

/** TF.js layout of a PyTorch tensor: OIHW → HWIO for 4-D, [out,in] → [in,out] for 2-D, else as is. */
function fromTorchLayout(t: StateTensor): { shape: number[]; values: Float32Array } {
  if (t.shape.length === 4) {
    const [o, i, h, w] = t.shape;
    const out = new Float32Array(t.values.length);
    for (let a = 0; a < o; a++) for (let b = 0; b < i; b++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      out[((y * w + x) * i + b) * o + a] = t.values[((a * i + b) * h + y) * w + x];
    }
    return { shape: [h, w, i, o], values: out };
  }
  if (t.shape.length === 2) {
    const [o, i] = t.shape;
    const out = new Float32Array(t.values.length);
    for (let a = 0; a < o; a++) for (let b = 0; b < i; b++) out[b * o + a] = t.values[a * i + b];
    return { shape: [i, o], values: out };
  }
  return { shape: t.shape, values: t.values };
}

/** PyTorch shape of a TF.js-layout shape (inverse of fromTorchLayout's). */
function torchShape(s: readonly number[]): number[] {
  if (s.length === 4) return [s[3], s[2], s[0], s[1]];
  if (s.length === 2) return [s[1], s[0]];
  return [...s];
}

function toTorchLayout(s: readonly number[], v: Float32Array): Float32Array {
  if (s.length === 4) {
    const [h, w, i, o] = s;
    const out = new Float32Array(v.length);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let b = 0; b < i; b++) for (let a = 0; a < o; a++) {
      out[((a * i + b) * h + y) * w + x] = v[((y * w + x) * i + b) * o + a];
    }
    return out;
  }
  if (s.length === 2) {
    const [i, o] = s;
    const out = new Float32Array(v.length);
    for (let b = 0; b < i; b++) for (let a = 0; a < o; a++) out[a * i + b] = v[b * o + a];
    return out;
  }
  return v;
}

function listing(what: string, items: string[]): string {
  return items.length ? `${what} (${items.length}): ${items.slice(0, 6).map((x) => singleLine(x, 120)).join(', ')}${items.length > 6 ? ', …' : ''}` : '';
}

function normalizationOf(sd: Map<string, StateTensor>, option: NormalizationOption | undefined, label: string): Pick<ModelConfig, 'mean' | 'std' | 'normalization'> {
  const mu = sd.get('mu'), sigma = sd.get('sigma');
  const hasBuffers = !!(mu && sigma);
  if (option === undefined && !hasBuffers) {
    throw new Error(`${label}: --normalization is required (the file has no mu/sigma buffers): 'cifar10' for a model fed CIFAR-normalised inputs (RiFT), 'none' for raw [0,1] inputs (RobustBench), 'cifar100', or 'mean=r,g,b;std=r,g,b'`);
  }
  if (option === 'buffers' || (option === undefined && hasBuffers)) {
    if (!hasBuffers) throw new Error(`${label}: --normalization buffers, but the file has no mu and sigma buffers`);
    if (mu!.values.length !== 3 || sigma!.values.length !== 3 || [...sigma!.values].some((v) => !(v > 0))) {
      throw new Error(`${label}: mu/sigma buffers must hold 3 values each (sigma > 0), found [${mu!.shape}] and [${sigma!.shape}]`);
    }
    return { mean: [...mu!.values] as [number, number, number], std: [...sigma!.values] as [number, number, number], normalization: 'buffers' };
  }
  if (hasBuffers) throw new Error(`${label}: the file holds mu/sigma normalisation buffers; use --normalization buffers (or leave it out), not ${JSON.stringify(option)}`);
  if (option === 'none') return { mean: [0, 0, 0], std: [1, 1, 1], normalization: 'none' };
  if (option === 'cifar10') return { mean: CIFAR_MEAN, std: CIFAR_STD, normalization: 'outside' };
  if (option === 'cifar100') return { mean: CIFAR100_MEAN, std: CIFAR100_STD, normalization: 'outside' };
  const o = option as { mean: number[]; std: number[] };
  return { mean: [...o.mean] as [number, number, number], std: [...o.std] as [number, number, number], normalization: 'outside' };
}

/**
 * A Network holding a state_dict's weights. Every model key must be present with its shape
 * (BN `num_batches_tracked` may be absent); a key the model lacks is an error, except
 * `num_batches_tracked`, `mu`/`sigma` (read as normalisation) and TRADES' unused `sub_block1.*`
 * (left out with a note). The error lists missing, unexpected and wrongly shaped keys, as
 * PyTorch's strict load does. The caller disposes the model.
 */
export function importStateDict(sd: Map<string, StateTensor>, options: ImportOptions = {}, label = 'checkpoint'): { model: Network; notes: string[] } {
  const notes: string[] = [];
  const arch = detectArchitecture(sd, options.arch, label);
  if (options.numClasses !== undefined && arch.numClasses !== options.numClasses) {
    throw new Error(`${label}: the model has ${arch.numClasses} output classes, the dataset ${options.numClasses}`);
  }
  if (arch.arch === 'preact-resnet18' && !options.preactShortcut) {
    throw new Error(`${label}: a PreActResNet's keys do not tell what its shortcut conv reads; state --preact-shortcut input (RobustBench's PreActBlock: Wong2020Fast, Andriushchenko2020Understanding) or preact (PreActBlockV2; Wong et al.'s fast_adversarial code)`);
  }
  const config = completeModelConfig({
    ...arch, ...normalizationOf(sd, options.normalization, label),
    ...(options.preactShortcut ? { preactShortcut: options.preactShortcut } : {}),
  });
  let probe: Network | undefined;
  try {
    // Build the architecture once with zeros to learn its keys and shapes; then check the file against it.
    probe = new Network(config, (_k, s) => new Float32Array(s.reduce((a, b) => a * b, 1)));
  } catch (e) {
    throw new Error(`${label}: ${(e as Error).message}`);
  }
  const want = new Map(probe.stateKeys().map((k) => [k, torchShape(probe!.variable(k).shape)]));
  const counters = new Set(probe.modules().filter((m) => m.kind === 'bn').map((m) => `${m.name}.num_batches_tracked`));
  probe.dispose();
  const ignorable = (k: string) => counters.has(k) || k === 'mu' || k === 'sigma' || (config.arch === 'wide-resnet' && k.startsWith('sub_block1.'));
  const missing = [...want.keys()].filter((k) => !sd.has(k));
  const unexpected = [...sd.keys()].filter((k) => !want.has(k) && !ignorable(k));
  const wrong = [...want].filter(([k, s]) => sd.has(k) && sd.get(k)!.shape.join() !== s.join())
    .map(([k, s]) => `${k} [${sd.get(k)!.shape}] in the file, [${s}] in the model`);
  if (missing.length || unexpected.length || wrong.length) {
    throw new Error(`${label}: the state_dict does not fit ${archLabel(config)}, ${config.numClasses} classes` +
      `${options.arch ? ` (--arch ${options.arch})` : ' (detected from its keys; name another with --arch)'}: ` +
      [listing('missing keys', missing), listing('unexpected keys', unexpected), listing('wrong shapes', wrong)].filter(Boolean).join('; '));
  }
  if ([...sd.keys()].some((k) => k.startsWith('sub_block1.'))) notes.push("sub_block1.* left out (TRADES' WideResNet defines it but never uses it in forward)");
  const dtypes = new Set([...want.keys()].map((k) => sd.get(k)!.dtype));
  if (![...dtypes].every((d) => d === 'float32')) notes.push(`weights stored as ${[...dtypes].join('/')}, converted to float32`);
  const model = new Network(config, (key) => fromTorchLayout(sd.get(key)!).values);
  return { model, notes };
}

/**
 * Reads a PyTorch checkpoint (torch.save or safetensors) into a Network (see importStateDict),
 * with where it came from. Throws one-line errors naming the file. The caller disposes the model.
 */
export function importPyTorchCheckpoint(file: string, options: ImportOptions = {}): { model: Network; source: ImportSource } {
  const loaded = readStateDict(file, { key: options.key });
  const { model, notes } = importStateDict(loaded.tensors, options, file);
  return {
    model,
    source: {
      file: path.resolve(file), sha256: loaded.sha256, format: loaded.format, ...(options.key ? { key: options.key } : {}),
      normalization: options.normalization ?? 'buffers', notes: [...loaded.notes, ...notes],
    },
  };
}

/**
 * The model's state as a PyTorch state_dict, in registration order: PyTorch key names and
 * layouts, a `num_batches_tracked` (int64, 0: not tracked here) after each BN's running_var,
 * and `mu`/`sigma` [1,3,1,1] when the model's normalisation is 'buffers'.
 */
export function toPyTorchStateDict(model: Network): TensorToWrite[] {
  const out: TensorToWrite[] = [];
  if (model.config.normalization === 'buffers') {
    out.push({ key: 'mu', shape: [1, 3, 1, 1], dtype: 'float32', values: [...model.config.mean] });
    out.push({ key: 'sigma', shape: [1, 3, 1, 1], dtype: 'float32', values: [...model.config.std] });
  }
  for (const m of model.modules()) {
    for (const e of m.entries) out.push({ key: e.key, shape: torchShape(e.shape), dtype: 'float32', values: toTorchLayout(e.shape, model.read(e.key)) });
    if (m.kind === 'bn') out.push({ key: `${m.name}.num_batches_tracked`, shape: [], dtype: 'int64', values: [0] });
  }
  return out;
}

/** Export formats of `exportPyTorch`. */
export type ExportFormat = 'safetensors' | 'torch';

/**
 * Writes the model as a PyTorch state_dict file (atomically): 'safetensors', or 'torch' (a
 * torch.save ZIP archive that `torch.load(f, weights_only=True)` reads). The safetensors
 * metadata records the architecture and normalisation.
 */
export function exportPyTorch(model: Network, file: string, format: ExportFormat): void {
  const sd = toPyTorchStateDict(model);
  const c = model.config;
  const data = format === 'safetensors'
    ? encodeSafetensors(sd, {
      arch: c.arch, width: String(c.width), depth: String(c.depth), numClasses: String(c.numClasses), finalBn: String(c.finalBn),
      preactShortcut: c.preactShortcut, normalization: c.normalization, mean: c.mean.join(','), std: c.std.join(','), producer: 'rift-bn',
    })
    : encodeTorchStateDict(sd, path.basename(file).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_-]/g, '_') || 'archive');
  writeFileAtomic(file, data);
}

/** What a user must do to feed an exported model in PyTorch, in one sentence. */
export function normalizationAdvice(c: Pick<ModelConfig, 'normalization' | 'mean' | 'std'>): string {
  if (c.normalization === 'none') return 'feed raw [0,1] pixels (no normalisation)';
  if (c.normalization === 'buffers') return 'feed raw [0,1] pixels; the model subtracts mu and divides by sigma (buffers in the file)';
  return `normalise inputs outside the model: (x - [${c.mean.join(', ')}]) / [${c.std.join(', ')}]`;
}

