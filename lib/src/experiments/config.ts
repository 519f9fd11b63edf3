/**
 * Experiment settings in one place, keyed by profile (nanoGPT / MadryLab-robustness style).
 *
 * - `paper`: the papers' settings (RiFT reference + RiFT with BN): full ResNet-18, PGD-AT 110
 *   epochs, PGD-10 on all 10k test images. Needs a GPU (tfjs-node-gpu).
 * - `quick`: the CPU default: reduced width, subsets and epochs (reasoning per stage below).
 * - `imported`: a model you bring from PyTorch (`npm start -- --profile imported --base model.pt`),
 *   sized for a full-width ResNet-18 on a 2-core CPU: smaller evaluation, MRC and fine-tuning sets.
 * - `smoke`: seconds to minutes; what tests and CI run. Numbers from it mean nothing.
 *
 * Any field can be overridden per run (`resolveConfig(profile, dataset, overrides)`, CLI `--set a.b=v`);
 * the effective config is stored with every result.
 */
import type { PGDOptions } from '../attacks/pgd.js';
import type { MRCOptions } from '../method/mrc.js';
import type { FinetuneOptions, BNStatsPolicy } from '../method/finetune.js';
import { resolveAutoAttack, type AutoAttackOptions } from '../attacks/autoattack.js';

/** Name of a settings profile: smoke (seconds, for tests), quick (the CPU default) or paper (the papers' settings). */
export type ProfileName = 'smoke' | 'quick' | 'imported' | 'paper';
/** Every profile name, smallest first (what `resolveConfig` and the CLIs accept). */
export const PROFILE_NAMES: readonly ProfileName[] = ['smoke', 'quick', 'imported', 'paper'];

/** The profile a run uses when none is named: env RIFT_PROFILE (what `npm start -- --profile` sets for the notebooks), else 'quick'. Not validated here (resolveConfig does). */
export function profileFromEnv(): string {
  return process.env.RIFT_PROFILE || 'quick';
}

/** A PGD attack's settings as a profile states them: PGDOptions' eps, alpha, steps, randomStart and restarts (the seed is set per use, BN mode by the stage). */
export type AttackConfig = Pick<PGDOptions, 'eps' | 'alpha' | 'steps' | 'randomStart' | 'restarts'>;

/** The base model's PGD-AT training (`trainAdversarial`): architecture width, data subsets, SGD schedule and attacks. */
export interface AdvTrainConfig {
  /** ResNet-18 width multiplier. */
  width: number;
  /** Training examples: a class-balanced fixed subset of this size (null = the whole split). */
  trainN: number | null;
  /** Test examples for per-epoch evaluation (balanced fixed subset; null = all). */
  evalN: number | null;
  epochs: number;
  batchSize: number;
  lr: number;
  /** 0-based epoch indices from which lr is multiplied by lrGamma (PyTorch MultiStepLR: [100, 105] of 110). */
  lrMilestones: number[];
  lrGamma: number;
  momentum: number;
  weightDecay: number;
  /** Training attack (PGD with random start, BN in training mode). */
  attack: AttackConfig;
  /** Attack of the per-epoch robust evaluation. */
  evalAttack: AttackConfig;
  seed: number;
}

/** Evaluation of base and fine-tuned models (Table 1, curves): a fixed test subset. */
export interface EvalConfig {
  /** Test examples attacked with PGD (robust accuracy): class-balanced fixed subset (null = all 10,000). */
  n: number | null;
  /**
   * Test examples for clean accuracy (class-balanced fixed subset; null = all 10,000). A clean
   * pass costs ~1/40 of a PGD-10 evaluation, so clean accuracy can use the whole test set while
   * PGD runs on `n` images; each metric is compared with the base on its own fixed examples.
   */
  cleanN: number | null;
  /** PGD-10, eps 8/255, alpha 2/255; restarts: the RiFT paper takes the worst of 3, its code 1. */
  attack: AttackConfig;
  batchSize: number;
}

/**
 * Module Robust Criticality settings: the fixed adversarial set (its size and attack) and the
 * per-module ascent, whose fields are MRCOptions' (eps, lr, batchSize, epochs,
 * stopAtFirstProjection, bnRadius; see method/mrc.ts for each).
 */
export type MRCConfig = Pick<MRCOptions, 'eps' | 'lr' | 'batchSize' | 'epochs' | 'stopAtFirstProjection' | 'bnRadius'> & {
  /** Size of the fixed adversarial set (test split, balanced subset; null = all: the code). */
  advN: number | null;
  /** Attack that generates it (PGD-10 against the base model, inference mode). */
  attack: AttackConfig;
};

/** A BN running-statistics policy during fine-tuning (finetune's BNStatsPolicy). */
export type BNStatsPolicyName = BNStatsPolicy;

/**
 * Fine-tuning of the selected modules on clean data (RiFT's second stage, `finetune`) as the
 * experiments run it: FinetuneOptions' schedule fields (epochs, lr, lrDecayEpoch — null = half
 * the epochs —, batchSize, momentum, weightDecay), which epoch to keep (RiFT: best clean) and
 * when robust accuracy is measured ('kept': only for the kept epoch, as RiFT picks by clean
 * accuracy; the layer-type curves always measure every epoch), plus the experiment's own fields.
 */
export type FinetuneConfig = Pick<FinetuneOptions, 'epochs' | 'lr' | 'lrDecayEpoch' | 'batchSize' | 'momentum' | 'weightDecay' | 'keep' | 'evalRobust'> & {
  /** Clean training examples (balanced fixed subset; null = all). */
  trainN: number | null;
  /** BN-statistics policy per method: RiFT's code re-estimates all; RiFT with BN the selected layers. */
  bnStats: { rift: BNStatsPolicyName; riftBN: BNStatsPolicyName };
  /** Seeds of repeated runs (tables show mean ± std when > 1). */
  seeds: number[];
};

/** RiFT's weight interpolation between the base and the fine-tuned model (`interpolationSweep`). */
export interface InterpolationConfig {
  /** Apply RiFT's interpolation (the RiFT-with-BN paper leaves it open). */
  enabled: boolean;
  alphas: number[];
  /** Robust accuracy may drop this many points below the base's. */
  tolerance: number;
}

/**
 * AutoAttack evaluation of the base and the top-k models (`runAutoAttackComparison`): the suite
 * (AutoAttackOptions' version, attacks, steps, targets, queries; eps is `eval.attack.eps`, the
 * seed is set per use) on a class-balanced fixed test subset, beside PGD (`eval.attack`) on the same images.
 */
export type AutoAttackConfig = Pick<AutoAttackOptions, 'version' | 'attacks' | 'steps' | 'targets' | 'queries'> & {
  /** Test examples attacked (balanced fixed subset, a subset of `eval.n`'s; null = all 10,000). */
  n: number | null;
  /** Still-robust examples per attack batch. */
  batchSize: number;
};

const AA_STANDARD: Omit<AutoAttackConfig, 'n' | 'batchSize'> = { version: 'standard', attacks: ['apgd-ce', 'apgd-t', 'fab-t', 'square'], steps: 100, targets: 9, queries: 5000 };

/** The full effective settings of a run (one profile and dataset plus overrides); build it with `resolveConfig`. */
export interface ExperimentConfig {
  profile: ProfileName;
  dataset: 'cifar10' | 'cifar100';
  advTrain: AdvTrainConfig;
  eval: EvalConfig;
  mrc: MRCConfig;
  finetune: FinetuneConfig;
  interpolation: InterpolationConfig;
  /** k values of the top-k experiment (Table 1). */
  topK: number[];
  autoattack: AutoAttackConfig;
}

const PGD10: AttackConfig = { eps: 8 / 255, alpha: 2 / 255, steps: 10, randomStart: true, restarts: 1 };

const ALPHAS_01 = Array.from({ length: 11 }, (_, i) => i / 10);

const PAPER: Omit<ExperimentConfig, 'dataset'> = {
  profile: 'paper',
  advTrain: {
    width: 1, trainN: null, evalN: null, epochs: 110, batchSize: 128, lr: 0.1, lrMilestones: [100, 105], lrGamma: 0.1,
    momentum: 0.9, weightDecay: 5e-4, attack: PGD10, evalAttack: PGD10, seed: 0,
  },
  eval: { n: null, cleanN: null, attack: { ...PGD10, restarts: 3 }, batchSize: 256 },
  mrc: { advN: null, attack: PGD10, eps: 0.1, lr: 1, batchSize: 512, epochs: 10, stopAtFirstProjection: false, bnRadius: 'joint' },
  finetune: {
    epochs: 10, lr: 1e-3, lrDecayEpoch: 5, batchSize: 128, momentum: 0.9, weightDecay: 5e-4, trainN: null, keep: 'best-clean', evalRobust: 'kept',
    bnStats: { rift: 'all', riftBN: 'selected' }, seeds: [0, 1, 2],
  },
  interpolation: { enabled: true, alphas: ALPHAS_01, tolerance: 0.1 },
  topK: [1, 2, 3, 4, 5],
  autoattack: { ...AA_STANDARD, n: null, batchSize: 256 },
};

const QUICK: Omit<ExperimentConfig, 'dataset'> = {
  profile: 'quick',
  advTrain: {
    // Quarter width (16/32/64/128 channels, ~0.7M parameters): ~16× fewer FLOPs than full.
    // Training attack PGD-3 with step 2.5·eps/3 (Madry's 2.5·eps/steps rule) instead of PGD-10:
    // a batch costs 3 attack passes + 1 training pass instead of 10 + 1. Measured on this
    // 2-core machine (onednn backend): PGD-5 training ran at ~95 img/s with the first native
    // build; the shipped run (PGD-3) took 221–499 s per 50k-image epoch while other work shared
    // the cores, 77 min for 15 epochs (data/runs/cifar10-quick-at/train.log), trained once and
    // shipped: 66.42% clean / 43.02% PGD-10 on the 10k test set. The lr schedule keeps the
    // reference's shape (×0.1 at 100/110 and 105/110).
    // CIFAR-100 (the shared 12,500-image train subset, trainN null = all of it): 54–66 s per
    // epoch here, ~15 min for the 15 epochs (measured in a pipeline dry run on stand-in records
    // in the same file layout, before the real subset arrived); Figure 2's three curves on it ~6 min.
    width: 0.25, trainN: null, evalN: 1000, epochs: 15, batchSize: 128, lr: 0.1, lrMilestones: [13, 14], lrGamma: 0.1,
    momentum: 0.9, weightDecay: 5e-4,
    attack: { eps: 8 / 255, alpha: (2.5 * 8) / 3 / 255, steps: 3, randomStart: true, restarts: 1 },
    evalAttack: PGD10, seed: 0,
  },
  // Stage costs measured on this machine (onednn, 2 threads, quarter width, shipped base):
  // PGD-10 on 1000 test images 8–14 s; a clean pass over all 10k 4–5 s (so clean accuracy uses
  // the whole test set: paired 95% intervals of ~±0.3 pt instead of ~±1 pt, for seconds);
  // clean fine-tuning 700–1600 img/s (backward reaches down to the lowest trained module).
  eval: { n: 1000, cleanN: null, attack: PGD10, batchSize: 256 },
  // MRC on 1000 fixed adversarial examples, 5 ascent epochs: 4–7 s per module, 41 modules ≈ 4.5 min.
  mrc: { advN: 1000, attack: PGD10, eps: 0.1, lr: 1, batchSize: 512, epochs: 5, stopAtFirstProjection: false, bnRadius: 'joint' },
  // 4 epochs on a 10k balanced subset: ~10–15 s per epoch. Measured in a fresh-clone `npm start`
  // (BENCHMARKS.md): a top-k run (4 epochs, a clean evaluation per epoch, PGD-10 for the kept
  // epoch, 3 interior α points) 96–106 s; Table 1's 10 runs 17.7 min; the 3 layer-type curves
  // (PGD-10 every epoch) 6.2 min; 08's seed section (4 more top-k runs) 7–8 min; the whole quick
  // reproduction from a fresh clone 42.7 min (RESULTS.md, BENCHMARKS.md).
  // The paper's lr 1e-3. Measured alternatives on the quick base (1000-image evaluation):
  // at 1e-3 a single module barely moves (layer1.1.bn1: clean 66.1 → 66.0/65.6/65.6/65.7 over
  // 4 × 10k images; layer2.0.shortcut.0 over 4 × 50k images: 66.2 → 66.1), so more data is not
  // the lever. At 1e-2 (`--set finetune.lr=0.01`) top-5 BN reached 69.7 clean / 32.4 PGD-10
  // (base 66.1 / 43.6), and the layer-type curves lost 20–40 robust points in 4 epochs
  // (BN-only 71.9 / 23.1, Conv/Linear-only 75.3 / 12.2, Full 77.4 / 4.1): far from the paper's
  // picture, so the paper's rate stays the default.
  finetune: {
    epochs: 4, lr: 1e-3, lrDecayEpoch: 2, batchSize: 128, momentum: 0.9, weightDecay: 5e-4, trainN: 10_000, keep: 'best-clean', evalRobust: 'kept',
    bnStats: { rift: 'all', riftBN: 'selected' }, seeds: [0],
  },
  interpolation: { enabled: true, alphas: [0, 0.25, 0.5, 0.75, 1], tolerance: 0.1 },
  topK: [1, 2, 3, 4, 5],
  // The standard suite (no step cut) on the first 10 test images of each class; see BENCHMARKS.md for the
  // measured cost per attack and image that sets this n.
  autoattack: { ...AA_STANDARD, n: 100, batchSize: 256 },
};

const SMOKE: Omit<ExperimentConfig, 'dataset'> = {
  profile: 'smoke',
  advTrain: {
    width: 0.125, trainN: 512, evalN: 128, epochs: 2, batchSize: 64, lr: 0.05, lrMilestones: [2], lrGamma: 0.1,
    momentum: 0.9, weightDecay: 5e-4,
    attack: { eps: 8 / 255, alpha: 4 / 255, steps: 2, randomStart: true, restarts: 1 },
    evalAttack: { eps: 8 / 255, alpha: 2 / 255, steps: 3, randomStart: true, restarts: 1 },
    seed: 0,
  },
  eval: { n: 64, cleanN: 128, attack: { eps: 8 / 255, alpha: 4 / 255, steps: 2, randomStart: true, restarts: 1 }, batchSize: 64 },
  mrc: {
    advN: 64, attack: { eps: 8 / 255, alpha: 4 / 255, steps: 2, randomStart: true, restarts: 1 }, eps: 0.1, lr: 1, batchSize: 32, epochs: 1,
    stopAtFirstProjection: false, bnRadius: 'joint',
  },
  finetune: {
    epochs: 1, lr: 1e-3, lrDecayEpoch: null, batchSize: 32, momentum: 0.9, weightDecay: 5e-4, trainN: 128, keep: 'best-clean', evalRobust: 'kept',
    bnStats: { rift: 'all', riftBN: 'selected' }, seeds: [0],
  },
  interpolation: { enabled: true, alphas: [0, 0.5, 1], tolerance: 0.1 },
  topK: [1, 2],
  // Every attack of the suite, each cut to seconds: the pipeline runs, the numbers mean nothing.
  autoattack: { version: 'custom', attacks: ['apgd-ce', 'apgd-t', 'fab-t', 'square'], steps: 3, targets: 2, queries: 20, n: 16, batchSize: 64 },
};

// A full-width ResNet-18 costs ~9–16× the quarter-width model per image (BENCHMARKS.md: PGD step
// 123 vs 1,100+ img/s, train step 85 vs 800 img/s at batch 128 on the AVX-512 EPYC), so the
// quick profile's sizes would take ~7 h. These keep the paper's protocol (PGD-10, lr 1e-3,
// k = 1..5, both methods, the three layer-type curves) on fewer images: PGD-10 on 500 test
// images (~40 s per evaluation), clean accuracy on 2,000, MRC on 256 adversarial examples with
// 2 ascent epochs, 2 fine-tuning epochs on 2,000 clean images, interpolation at α ∈ {0, 0.5, 1}.
// The base is never trained here (advTrain describes a full-width PGD-AT run if one is asked for).
const IMPORTED: Omit<ExperimentConfig, 'dataset'> = {
  profile: 'imported',
  advTrain: { ...QUICK.advTrain, width: 1 },
  eval: { n: 500, cleanN: 2000, attack: PGD10, batchSize: 256 },
  mrc: { advN: 256, attack: PGD10, eps: 0.1, lr: 1, batchSize: 256, epochs: 2, stopAtFirstProjection: false, bnRadius: 'joint' },
  finetune: {
    epochs: 2, lr: 1e-3, lrDecayEpoch: 1, batchSize: 128, momentum: 0.9, weightDecay: 5e-4, trainN: 2000, keep: 'best-clean', evalRobust: 'kept',
    bnStats: { rift: 'all', riftBN: 'selected' }, seeds: [0],
  },
  interpolation: { enabled: true, alphas: [0, 0.5, 1], tolerance: 0.1 },
  topK: [1, 2, 3, 4, 5],
  // The standard suite on 2 test images per class: ~7 min per model at full width on a 2-core
  // AVX-512 Xeon (BENCHMARKS.md, ~20 s per image, ~57 s per image still robust after APGD-CE);
  // raise it with --set autoattack.n=… where time allows.
  autoattack: { ...AA_STANDARD, n: 20, batchSize: 256 },
};

const BASE: Record<ProfileName, Omit<ExperimentConfig, 'dataset'>> = { smoke: SMOKE, quick: QUICK, imported: IMPORTED, paper: PAPER };

/** A deep partial for overrides. */
export type DeepPartial<T> = { [K in keyof T]?: T[K] extends (infer U)[] ? U[] : T[K] extends object ? DeepPartial<T[K]> : T[K] };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** What a leaf of the base config accepts as an override (numbers and null share a slot: nullability is checked later). */
function leafKind(v: unknown): string {
  if (v === null || typeof v === 'number') return 'a number';
  if (typeof v === 'boolean') return 'true or false';
  if (typeof v === 'string') return 'a string';
  return 'a list';
}

function leafAccepts(base: unknown, over: unknown): boolean {
  if (base === null || typeof base === 'number') return over === null || typeof over === 'number';
  if (Array.isArray(base)) return Array.isArray(over);
  return typeof over === typeof base;
}

function merge<T>(base: T, over: unknown, path: string): T {
  if (over === undefined) return base;
  if (!isObject(base)) {
    if (!leafAccepts(base, over)) {
      const hint = Array.isArray(base) ? ` (e.g. ${path}=${JSON.stringify(base)})` : '';
      throw new Error(`config: ${path} must be ${leafKind(base)}${hint}, got ${JSON.stringify(over)}`);
    }
    return over as T;
  }
  if (!isObject(over)) throw new Error(`config: '${path || '<root>'}' must be an object`);
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(over)) {
    const p = path ? `${path}.${k}` : k;
    if (!(k in out)) throw new Error(`config: unknown setting '${p}'; known: ${Object.keys(out).map((x) => (path ? `${path}.${x}` : x)).join(', ')}`);
    // Run folders, cache keys and readings are named after these; they come from the profile and dataset arguments.
    if (!path && (k === 'profile' || k === 'dataset')) throw new Error(`config: '${k}' cannot be overridden; choose it with --${k} (resolveConfig's ${k} argument)`);
    out[k] = merge(out[k], v, p);
  }
  return out as T;
}

type Rule = [test: (v: unknown) => boolean, expected: string];
const isInt = (v: unknown): v is number => Number.isInteger(v);
const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const INT_GE = (m: number): Rule => [(v) => isInt(v) && v >= m, `an integer ≥ ${m}`];
const POSITIVE: Rule = [(v) => num(v) && v > 0, 'a number > 0'];
const NON_NEGATIVE: Rule = [(v) => num(v) && v >= 0, 'a number ≥ 0'];
const COUNT_OR_NULL: Rule = [(v) => v === null || (isInt(v) && v > 0), 'null or a positive integer'];
const ONE_OF = (xs: readonly string[]): Rule => [(v) => xs.includes(v as string), xs.join(' or ')];

function expectField(c: unknown, path: string, [test, expected]: Rule): void {
  const v = path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], c);
  if (!test(v)) throw new Error(`config: ${path} must be ${expected}, got ${JSON.stringify(v)}`);
}

function expectAttack(c: ExperimentConfig, p: string): void {
  expectField(c, `${p}.eps`, NON_NEGATIVE);
  expectField(c, `${p}.alpha`, NON_NEGATIVE);
  expectField(c, `${p}.steps`, INT_GE(0));
  expectField(c, `${p}.restarts`, INT_GE(1));
}

/**
 * The effective config of a profile with overrides applied and validated: an override must have
 * the type of the field it replaces (number, true/false, string or list), and every field is
 * range-checked; the error names the field, what it expects and the value given.
 */
export function resolveConfig(profile: ProfileName | string, dataset: 'cifar10' | 'cifar100' = 'cifar10', overrides: DeepPartial<ExperimentConfig> = {}): ExperimentConfig {
  if (!(PROFILE_NAMES as readonly string[]).includes(profile)) throw new Error(`unknown profile '${profile}'; profiles: ${PROFILE_NAMES.join(', ')}`);
  if (dataset !== 'cifar10' && dataset !== 'cifar100') throw new Error(`unknown dataset '${dataset}'; expected cifar10 or cifar100`);
  const base: ExperimentConfig = structuredClone({ ...BASE[profile as ProfileName], dataset });
  const c = merge(base, overrides, '');
  expectField(c, 'advTrain.width', POSITIVE);
  for (const p of ['advTrain.trainN', 'advTrain.evalN', 'eval.n', 'eval.cleanN', 'mrc.advN', 'finetune.trainN']) expectField(c, p, COUNT_OR_NULL);
  expectField(c, 'advTrain.epochs', INT_GE(1));
  for (const p of ['advTrain.batchSize', 'finetune.batchSize']) expectField(c, p, INT_GE(2));
  for (const p of ['eval.batchSize', 'mrc.batchSize']) expectField(c, p, INT_GE(1));
  for (const p of ['advTrain.lr', 'advTrain.lrGamma', 'finetune.lr', 'mrc.eps', 'mrc.lr']) expectField(c, p, POSITIVE);
  for (const p of ['advTrain.momentum', 'advTrain.weightDecay', 'finetune.momentum', 'finetune.weightDecay', 'interpolation.tolerance']) expectField(c, p, NON_NEGATIVE);
  expectField(c, 'advTrain.lrMilestones', [(v) => (v as unknown[]).every((m) => isInt(m) && m >= 1), 'a list of positive integers']);
  expectField(c, 'advTrain.seed', INT_GE(0));
  for (const p of ['advTrain.attack', 'advTrain.evalAttack', 'eval.attack', 'mrc.attack']) expectAttack(c, p);
  expectField(c, 'mrc.epochs', INT_GE(1));
  expectField(c, 'mrc.bnRadius', ONE_OF(['joint', 'per-tensor']));
  const f = c.finetune;
  expectField(c, 'finetune.epochs', INT_GE(1));
  expectField(c, 'finetune.lrDecayEpoch', [(v) => v === null || (isInt(v) && v >= 0), 'null (half the epochs) or an integer ≥ 0']);
  for (const m of Object.keys(f.bnStats)) expectField(c, `finetune.bnStats.${m}`, ONE_OF(['all', 'selected', 'none']));
  expectField(c, 'finetune.keep', ONE_OF(['best-clean', 'best-robust', 'last']));
  expectField(c, 'finetune.evalRobust', ONE_OF(['every-epoch', 'kept']));
  if (f.evalRobust === 'kept' && f.keep === 'best-robust') throw new Error("config: finetune.keep 'best-robust' needs finetune.evalRobust 'every-epoch'");
  expectField(c, 'finetune.seeds', [(v) => (v as unknown[]).length > 0 && (v as unknown[]).every((s) => isInt(s) && s >= 0), 'a non-empty list of integers ≥ 0']);
  expectField(c, 'interpolation.alphas', [(v) => (v as unknown[]).length > 0 && (v as unknown[]).every((a) => num(a) && a >= 0 && a <= 1), 'a non-empty list of numbers in [0, 1]']);
  expectField(c, 'topK', [(v) => (v as unknown[]).length > 0 && (v as unknown[]).every((k) => isInt(k) && k >= 1), 'a non-empty list of positive integers']);
  expectField(c, 'autoattack.n', COUNT_OR_NULL);
  expectField(c, 'autoattack.batchSize', INT_GE(1));
  try {
    resolveAutoAttack(autoAttackSuite(c.autoattack));
  } catch (e) {
    throw new Error(`config: autoattack: ${(e as Error).message}`);
  }
  return c;
}

/** The suite options a config's `autoattack` section stands for (eps and seed left to the caller). */
export function autoAttackSuite(a: AutoAttackConfig): Partial<AutoAttackOptions> {
  return { version: a.version, attacks: [...a.attacks], steps: a.steps, targets: a.targets, queries: a.queries };
}

/** Learning rate for 0-based `epoch`: lr · gamma^(number of milestones ≤ epoch). */
export function lrAt(t: Pick<AdvTrainConfig, 'lr' | 'lrMilestones' | 'lrGamma'>, epoch: number): number {
  return t.lr * t.lrGamma ** t.lrMilestones.filter((m) => m <= epoch).length;
}

/**
 * Parses CLI overrides `a.b=value` (JSON values: numbers, true/false, null, arrays; anything
 * else is a string) into a DeepPartial.
 */
export function parseOverrides(items: readonly string[]): DeepPartial<ExperimentConfig> {
  const out: Record<string, unknown> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`--set expects key=value (e.g. advTrain.epochs=3), got '${item}'`);
    const keys = item.slice(0, eq).split('.');
    const raw = item.slice(eq + 1);
    let value: unknown;
    try { value = JSON.parse(raw); } catch { value = raw; }
    let o = out;
    for (const k of keys.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
    o[keys[keys.length - 1]] = value;
  }
  return out as DeepPartial<ExperimentConfig>;
}
