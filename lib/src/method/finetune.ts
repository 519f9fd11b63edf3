/**
 * Fine-tuning of a chosen module set on clean data (RiFT's second stage), with the BatchNorm
 * running-statistics policy as an explicit option, and the layer-type modes of Figures 1/2.
 *
 * Only the chosen modules' parameters train: conv/linear weights (+ linear bias), BN γ and β.
 * BN running statistics follow `bnStats`:
 *  - 'all'      every BN layer normalises with batch statistics and re-estimates its running
 *               statistics (RiFT's code: the whole model in train mode);
 *  - 'selected' only the selected BN layers do; every other BN layer runs in inference mode
 *               (RiFT with BN: "statistics re-adaptation" of the selected layers);
 *  - 'none'     every BN layer runs in inference mode.
 * Optimiser: SGD momentum 0.9, weight decay 5e-4, lr 1e-3 ×0.1 at half the epochs, batch 128,
 * clean augmented training data. After each epoch: clean and PGD accuracy on the evaluation
 * set; the model ends in the state of the best epoch (by clean accuracy by default).
 */
import type { Network, BNMode, StateSnapshot } from '../nn/model.js';
import type { CifarData } from '../data/cifar.js';
import { SGD } from '../nn/optim.js';
import { trainEpoch } from './train.js';
import { evaluate, type EvaluationResult } from './evaluate.js';
import type { PGDOptions } from '../attacks/pgd.js';

/** Which BN layers re-estimate running statistics while fine-tuning: all, the selected ones, or none (see the file comment). */
export type BNStatsPolicy = 'all' | 'selected' | 'none';
/** Which modules train in the layer-type experiment (Figures 1/2): every BN layer, every Conv/Linear module, or all. */
export type LayerTypeMode = 'bn-only' | 'conv-linear-only' | 'full';

/** Options of `finetune`; all but `modules` default to DEFAULT_FINETUNE. */
export interface FinetuneOptions {
  /** Modules whose parameters train (PyTorch names). Required, non-empty. */
  modules: string[];
  /** BN running-statistics policy. Default 'selected'. */
  bnStats: BNStatsPolicy;
  /** Default 10. */
  epochs: number;
  /** Default 1e-3. */
  lr: number;
  /** 0-based epoch from which lr ×= lrGamma; default ⌊epochs/2⌋ (RiFT: 1e-3 → 1e-4 after epoch 5 of 10). */
  lrDecayEpoch: number | null;
  /** Default 0.1. */
  lrGamma: number;
  /** Default 0.9. */
  momentum: number;
  /** Default 5e-4. */
  weightDecay: number;
  /** Default 128. */
  batchSize: number;
  /** Training example indices (default all of `train`). */
  trainIndices?: Int32Array;
  /** Evaluation example indices (default all of `test`). */
  evalIndices?: Int32Array;
  /** Indices for clean accuracy if other than `evalIndices` (see `EvaluateOptions.cleanIndices`). */
  cleanIndices?: Int32Array;
  /** Attack for the per-epoch robust accuracy (merged over PGD-10 defaults). Default {}. */
  evalAttack: Partial<PGDOptions>;
  /** Evaluation batch size (attack seeds are per batch: keep it equal across compared runs). Default 256. */
  evalBatchSize: number;
  /** Evaluate the model before the first epoch too (epoch 0 of the curves). Default true. */
  evalBefore: boolean;
  /** Which epoch the model ends in: best clean accuracy (RiFT), best robust, or the last. Default 'best-clean'. */
  keep: 'best-clean' | 'best-robust' | 'last';
  /**
   * When robust accuracy is measured: 'every-epoch' (the curves of Figures 1/2) or 'kept' (only
   * for the kept epoch: RiFT picks the epoch by clean accuracy, so per-epoch PGD is not needed
   * and costs ~40× a clean evaluation). 'kept' needs keep ≠ 'best-robust'. Default 'every-epoch'.
   */
  evalRobust: 'every-epoch' | 'kept';
  /** Seed of shuffling/augmentation (epoch e uses seed·1000003 + e). Default 0. */
  seed: number;
  /** Progress lines. Default true. */
  progress: boolean;
  /**
   * Called after every evaluated epoch (epoch 0 too with `evalBefore`) with the record and the
   * evaluation (per-example correctness, for paired statistics). The evaluation's arrays are plain
   * typed arrays, safe to keep.
   */
  onEpoch?: (e: FinetuneEpoch, evaluation: EvaluationResult) => void | Promise<void>;
}

/**
 * Fine-tuning defaults (RiFT's): BN policy 'selected', 10 epochs, lr 1e-3 ×0.1 at ⌊epochs/2⌋, momentum 0.9, wd 5e-4, batch 128,
 * PGD-10 eval at batch 256 every epoch and before the first, keep best-clean, seed 0, progress on.
 */
export const DEFAULT_FINETUNE: Omit<FinetuneOptions, 'modules'> = {
  bnStats: 'selected', epochs: 10, lr: 1e-3, lrDecayEpoch: null, lrGamma: 0.1, momentum: 0.9, weightDecay: 5e-4,
  batchSize: 128, evalAttack: {}, evalBatchSize: 256, evalBefore: true, keep: 'best-clean', evalRobust: 'every-epoch', seed: 0, progress: true,
};

/** One point of a fine-tuning curve (epoch 0 = before fine-tuning). */
export interface FinetuneEpoch {
  epoch: number;
  lr: number | null;
  trainLoss: number | null;
  /** Percent on the evaluation set. */
  clean: number;
  /** Null when not measured at this epoch (evalRobust 'kept'). */
  robust: number | null;
  trainSeconds: number;
  evalSeconds: number;
}

/** Result of `finetune`: what was trained and whose BN statistics were re-estimated, the per-epoch curve and the kept epoch. */
export interface FinetuneResult {
  modules: string[];
  bnStats: BNStatsPolicy;
  /** State keys that were trained. */
  trainedKeys: string[];
  /** BN layers whose running statistics were re-estimated. */
  bnUpdated: string[];
  history: FinetuneEpoch[];
  /** Epoch the model ends in (0 = unchanged). */
  keptEpoch: number;
  /** Per-example correctness of the kept epoch on the evaluation set (for paired statistics). */
  kept: { clean: Uint8Array; robust: Uint8Array };
}

/** Modules and default BN policy of a layer-type mode (Figures 1/2). */
export function layerTypeModules(model: Network, mode: LayerTypeMode): { modules: string[]; bnStats: BNStatsPolicy } {
  const mods = model.modules();
  switch (mode) {
    case 'bn-only':
      return { modules: mods.filter((m) => m.kind === 'bn').map((m) => m.name), bnStats: 'selected' };
    case 'conv-linear-only':
      return { modules: mods.filter((m) => m.kind !== 'bn').map((m) => m.name), bnStats: 'all' };
    case 'full':
      return { modules: mods.map((m) => m.name), bnStats: 'all' };
  }
}

/** BN modes implementing a policy for a selection. */
export function bnModesFor(model: Network, modules: readonly string[], policy: BNStatsPolicy): Record<string, BNMode> {
  const selected = new Set(modules);
  const out: Record<string, BNMode> = {};
  for (const m of model.modules()) {
    if (m.kind !== 'bn') continue;
    out[m.name] = policy === 'all' || (policy === 'selected' && selected.has(m.name)) ? 'train' : 'eval';
  }
  return out;
}

/**
 * Fine-tunes `options.modules` of `model` in place. The model ends in the kept epoch's state
 * (see `keep`); its BN modes are restored. No tensor outlives the call.
 */
export async function finetune(model: Network, train: CifarData, test: CifarData, options: Partial<FinetuneOptions> & { modules: string[] }): Promise<FinetuneResult> {
  const o: FinetuneOptions = { ...DEFAULT_FINETUNE, ...options };
  if (!o.modules.length) throw new Error('finetune: options.modules must name at least one module');
  for (const n of o.modules) model.module(n); // throws with the list of valid names
  if (!Number.isInteger(o.epochs) || o.epochs < 1) throw new Error(`finetune: epochs must be an integer ≥ 1, got ${o.epochs}`);
  if (o.evalRobust !== 'every-epoch' && o.evalRobust !== 'kept') throw new Error(`finetune: evalRobust must be 'every-epoch' or 'kept', got '${o.evalRobust}'`);
  if (o.evalRobust === 'kept' && o.keep === 'best-robust') throw new Error("finetune: keep 'best-robust' needs evalRobust 'every-epoch'");
  const perEpochRobust = o.evalRobust === 'every-epoch';
  const decay = o.lrDecayEpoch ?? Math.floor(o.epochs / 2);
  const vars = model.trainableVariables(o.modules);
  const keyOf = new Map(model.stateKeys().map((k) => [model.variable(k).name, k]));
  const trainedKeys = vars.map((v) => keyOf.get(v.name)!);
  const modes = bnModesFor(model, o.modules, o.bnStats);
  const bnUpdated = Object.entries(modes).filter(([, m]) => m === 'train').map(([n]) => n);
  const savedModes = model.bnModes();
  const opt = new SGD(vars, { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay });
  const history: FinetuneEpoch[] = [];
  let best: { epoch: number; score: number; snap: StateSnapshot | null; clean: Uint8Array; robust: Uint8Array | null } | null = null;
  const score = (ev: EvaluationResult) => (o.keep === 'best-robust' ? ev.robust!.accuracy : ev.clean.accuracy);
  const consider = (epoch: number, ev: EvaluationResult) => {
    if (o.keep !== 'last' && best && score(ev) <= best.score) return;
    best?.snap?.dispose();
    // Epoch 0 needs no copy: the state before fine-tuning is restored from `initial`.
    best = { epoch, score: score(ev), snap: epoch === 0 ? null : model.snapshot(), clean: ev.clean.perExample, robust: ev.robust?.perExample ?? null };
  };
  const evalOnce = (label: string, robust = perEpochRobust) =>
    evaluate(model, test, { indices: o.evalIndices, cleanIndices: o.cleanIndices, attack: robust ? o.evalAttack : null, batchSize: o.evalBatchSize, label, progress: o.progress ? {} : false });
  const initial = model.snapshot();
  try {
    for (const [n, m] of Object.entries(modes)) model.setBNMode([n], m);
    if (o.evalBefore) {
      const ev = await evalOnce('finetune epoch 0 eval');
      const rec: FinetuneEpoch = { epoch: 0, lr: null, trainLoss: null, clean: ev.clean.accuracy, robust: ev.robust?.accuracy ?? null, trainSeconds: 0, evalSeconds: ev.seconds };
      history.push(rec);
      if (o.keep !== 'last') consider(0, ev);
      await o.onEpoch?.(rec, ev);
    }
    for (let e = 0; e < o.epochs; e++) {
      opt.lr = e >= decay ? o.lr * o.lrGamma : o.lr;
      const r = await trainEpoch(model, opt, train, {
        indices: o.trainIndices, batchSize: o.batchSize, seed: (o.seed * 1_000_003 + e) >>> 0, augment: true, attack: null,
        label: `finetune epoch ${e + 1}/${o.epochs}`, progress: o.progress ? {} : false,
      });
      const ev = await evalOnce(`finetune epoch ${e + 1}/${o.epochs} eval`);
      const rec: FinetuneEpoch = { epoch: e + 1, lr: opt.lr, trainLoss: r.loss, clean: ev.clean.accuracy, robust: ev.robust?.accuracy ?? null, trainSeconds: r.seconds, evalSeconds: ev.seconds };
      history.push(rec);
      if (o.keep !== 'last' || e === o.epochs - 1) consider(e + 1, ev);
      await o.onEpoch?.(rec, ev);
    }
    const kept = best as unknown as { epoch: number; snap: StateSnapshot | null; clean: Uint8Array; robust: Uint8Array | null };
    model.restore(kept.snap ?? initial);
    let keptRobust = kept.robust;
    if (!keptRobust) {
      // Same indices, attack and batch size as a per-epoch evaluation: the numbers are the ones 'every-epoch' would give.
      const ev = await evalOnce(`finetune kept epoch ${kept.epoch} eval`, true);
      keptRobust = ev.robust!.perExample;
      // The kept epoch is in history: `best` is only set by consider(), right after its epoch's record.
      const h = history.find((x) => x.epoch === kept.epoch)!;
      h.robust = ev.robust!.accuracy;
      h.evalSeconds += ev.seconds;
    }
    return { modules: [...o.modules], bnStats: o.bnStats, trainedKeys, bnUpdated, history, keptEpoch: kept.epoch, kept: { clean: kept.clean, robust: keptRobust } };
  } finally {
    (best as { snap: StateSnapshot | null } | null)?.snap?.dispose();
    initial.dispose();
    opt.dispose();
    for (const [n, m] of Object.entries(savedModes)) model.setBNMode([n], m);
  }
}

