/**
 * The records the experiments return (plain JSON, cached): their types, the per-example bit
 * codec, and `finalScore`, which names the final model of a top-k run. Readers of records
 * (tables, readings, charts) import these without importing the runners.
 */
import * as path from 'node:path';
import type { ExperimentConfig } from './config.js';
import { archLabel, type ArchName } from '../nn/architectures.js';
import type { MRCEntry, CandidateSet } from '../method/mrc.js';
import type { FinetuneEpoch, LayerTypeMode, BNStatsPolicy } from '../method/finetune.js';
import type { PairedComparison } from '../util/stats.js';
export { encodeBits, decodeBits } from '../util/format.js';

/** The base model a record was computed on, as its checkpoint header names it. */
export interface ModelIdentity {
  arch: string;
  width: number;
  numClasses: number;
  /** WideResNet depth; PreActResNet final BN and shortcut input (absent in records made before they existed). */
  depth?: number;
  finalBn?: boolean;
  preactShortcut?: 'preact' | 'input';
  /** The checkpoint file and the SHA-256 of its bytes. */
  file: string;
  sha256: string;
  /** For a base imported from PyTorch: the original file, its SHA-256, format and the stated input normalisation. */
  imported?: { file: string; sha256: string; format: string; normalization: unknown };
}

/** "resnet18 width 0.25, 10 classes", "wide-resnet 34-10, 10 classes" — an architecture in words (errors, labels). */
export function architectureLabel(m: Pick<ModelIdentity, 'arch' | 'width' | 'numClasses'> & Partial<ModelIdentity>): string {
  return `${archLabel({ ...m, arch: m.arch as ArchName })}, ${m.numClasses} classes`;
}

/**
 * A base model in one line for tables and captions: architecture, classes, the file it was read
 * from (the PyTorch original for an imported base) and the start of its SHA-256.
 */
export function modelLabel(m: ModelIdentity): string {
  const src = m.imported ?? m;
  return `${architectureLabel(m)}${m.imported ? ', imported from' : ','} ${path.basename(src.file)} (sha256 ${src.sha256.slice(0, 12)})`;
}

/** What every record carries: its cache key, dataset, profile, base model, data, engine, wall time per stage and creation time. */
export interface Common {
  key: string;
  dataset: string;
  profile: string;
  checkpoint: string;
  checkpointSha256: string;
  /** The base model's architecture, file and hash. */
  model: ModelIdentity;
  /** The data the record used (`splitIdentity`): whether each split is complete or a declared subset, and which. */
  data: { test: string; train?: string };
  engine: { backend: string; threads: number; versions: Record<string, string> };
  seconds: Record<string, number>;
  createdAt: string;
}

/** Cached evaluation of the base (PGD-AT) checkpoint: clean and robust accuracy (percent) with per-example correctness bits. */
export interface BaseRecord extends Common {
  kind: 'base';
  eval: ExperimentConfig['eval'];
  /** Examples attacked with PGD (robust accuracy). */
  n: number;
  /** Examples of the clean accuracy (`eval.cleanN`; equals `n` when clean and robust share the set). */
  cleanN: number;
  clean: number;
  robust: number;
  cleanBits: string;
  robustBits: string;
}

/**
 * Cached MRC ranking of every Conv/Linear/BN module of the base model, with the fixed adversarial set's size and the
 * unperturbed model's loss and accuracy (percent) on it.
 */
export interface MRCRecord extends Common {
  kind: 'mrc';
  mrc: ExperimentConfig['mrc'];
  advSetSize: number;
  lossBefore: number;
  accuracyBefore: number;
  /** conv+linear+bn, ascending; RiFT's ranking is its conv+linear subsequence. */
  ranking: MRCEntry[];
}

/** A fine-tuning method: 'rift' (RiFT, Conv/Linear candidates) or 'rift-bn' (RiFT with BN, BatchNorm added). */
export type Method = 'rift' | 'rift-bn';
/** MRC candidate set of each method: RiFT ranks Conv/Linear modules, RiFT with BN also BatchNorm. */
export const METHOD_CANDIDATES: Record<Method, CandidateSet> = { rift: 'conv+linear', 'rift-bn': 'conv+linear+bn' };

/** A model's clean and robust accuracy (percent) on the evaluation set, per-example bits, and paired comparisons with base. */
export interface ModelScore {
  clean: number;
  robust: number;
  /** Paired comparisons with the base on the same examples. */
  vsBase: { clean: PairedComparison; robust: PairedComparison };
  cleanBits: string;
  robustBits: string;
}

/**
 * Cached top-k run of one method and seed: the k lowest-MRC modules fine-tuned, the curve, scores before and after interpolation,
 * and the saved model files.
 */
export interface RiftRecord extends Common {
  kind: 'rift';
  method: Method;
  k: number;
  seed: number;
  modules: string[];
  bnStats: BNStatsPolicy;
  finetune: ExperimentConfig['finetune'];
  interpolation: ExperimentConfig['interpolation'];
  eval: ExperimentConfig['eval'];
  base: { clean: number; robust: number };
  history: FinetuneEpoch[];
  keptEpoch: number;
  /** The fine-tuned model before interpolation. */
  raw: ModelScore;
  /** After interpolation (null when disabled). */
  interpolated: (ModelScore & { alpha: number; points: Array<{ alpha: number; clean: number; robust: number }> }) | null;
  /** The final model (interpolated if enabled), saved beside the record. */
  modelFile: string;
  /** The fine-tuned model before interpolation (the kept epoch), saved beside the record; equals modelFile when interpolation is off. */
  rawModelFile: string;
}

/**
 * The final model of a top-k run: the interpolated one when interpolation ran, else the
 * fine-tuned one. Every table, reading and chart asks here, so none can pick another.
 */
export function finalScore<S>(r: { raw: S; interpolated: (S & object) | null }): S {
  return r.interpolated ?? r.raw;
}

/** Cached layer-type fine-tuning run (BN-only, Conv/Linear-only or Full) of Figures 1/2 for one seed. */
export interface LayerTypeRecord extends Common {
  kind: 'layer-type';
  mode: LayerTypeMode;
  seed: number;
  modules: string[];
  bnStats: BNStatsPolicy;
  finetune: ExperimentConfig['finetune'];
  eval: ExperimentConfig['eval'];
  /** Epoch 0 (base) to the last epoch: the curves of Figures 1/2 (robust measured at every epoch). */
  history: LayerTypeEpoch[];
}

/** One epoch of a layer-type curve, with what paired comparisons between epochs need. */
export interface LayerTypeEpoch extends FinetuneEpoch {
  robust: number;
  /** Per-example correctness on the clean / attacked evaluation images (`encodeBits`). */
  cleanBits: string;
  robustBits: string;
  /** Paired comparison with epoch 0 (the base model) on the same examples. */
  vsBase: { clean: PairedComparison; robust: PairedComparison };
}

/**
 * Cached Figure 3 data: KDEs on a common grid of one BN layer's outputs on adversarial examples for init, RiFT and RiFT with BN,
 * with each model's mean, std, bandwidth and 1-Wasserstein distance to init.
 */
export interface KDERecord extends Common {
  kind: 'bn-kde';
  layer: string;
  layerChoice: string;
  k: number;
  n: number;
  advSource: 'own' | 'base';
  /** Fine-tuned models before ('raw') or after ('final') interpolation; see KDEOptions.models. */
  modelState: 'raw' | 'final';
  /** α of each method's final model (null: interpolation off). */
  alphas: { rift: number | null; riftBN: number | null };
  grid: number[];
  models: Array<{ name: 'init' | 'RiFT' | 'RiFT with BN'; modules: string[]; density: number[]; mean: number; std: number; wassersteinToInit: number; bandwidth: number }>;
}

/** A model a comparison record evaluated: its display name, checkpoint file and hash, clean accuracy (percent) on the record's images. */
export interface EvaluatedModel {
  name: string;
  file: string;
  sha256: string;
  clean: number;
}

/** AutoAttack against PGD on the same test images, per model (beyond the paper: the field's standard robustness evaluation). */
export interface AutoAttackRecord extends Common {
  kind: 'autoattack';
  /** The config's AutoAttack section (suite, n, batch size) and eps, seed of the run. */
  autoattack: ExperimentConfig['autoattack'] & { eps: number; seed: number };
  /** The PGD it is compared with (`eval.attack`). */
  pgd: ExperimentConfig['eval']['attack'];
  /** Attacked examples (the first n/classes of each class: a subset of `eval.n`'s). */
  n: number;
  models: Array<EvaluatedModel & {
    /** PGD robust accuracy on the n images. */
    pgd: number;
    /** AutoAttack robust accuracy on the n images. */
    aa: number;
    cleanBits: string;
    pgdBits: string;
    aaBits: string;
    /** Per attack in run order: images attacked, fooled, robust accuracy after it, wall time. */
    stages: Array<{ attack: string; attacked: number; fooled: number; robustAfter: number; seconds: number }>;
    /** Paired on the same images: Δ = AA − PGD robust accuracy (≤ 0 when AA is the stronger evaluation). */
    gap: PairedComparison;
    seconds: { pgd: number; aa: number };
  }>;
}

/** Cached worst-of-R vs single-run PGD comparison: per model, clean accuracy, robust accuracy per restart count, and the gap. */
export interface RestartsRecord extends Common {
  kind: 'restarts';
  eval: ExperimentConfig['eval'];
  /** Numbers of PGD restarts compared, ascending (e.g. [1, 3]). */
  restarts: number[];
  /** Attacked examples (clean accuracy: `eval.cleanN`, as in the base record). */
  n: number;
  models: Array<EvaluatedModel & {
    runs: Array<{ restarts: number; robust: number; robustBits: string; seconds: number }>;
    /** Most vs fewest restarts, paired on the same examples: Δ = robust(max) − robust(min) (≤ 0 expected). */
    gap: PairedComparison;
  }>;
}
