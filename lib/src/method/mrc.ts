/**
 * Module Robust Criticality (RiFT, Zhu et al. 2023), as RiFT's code computes it, extended to
 * BatchNorm modules (RiFT with BN).
 *
 *   MRC(i) = max_{‖Δθᵢ‖₂ ≤ ε‖θᵢ‖₂} L_adv(θ + Δθᵢ) − L_adv(θ)
 *
 * L_adv is the mean CE on a FIXED set of adversarial examples generated once against the
 * original model (inference mode). Per module, in the code's procedure: plain SGD with lr 1
 * ASCENDING the batch-mean CE (batch 512) on that module's tensors only, for `epochs` epochs;
 * after each epoch (not each step) project Δ back onto the ε-ball and evaluate the full-set
 * loss; MRC = max epoch loss − original loss. The paper's Algorithm 1 stops at the first
 * projection (`stopAtFirstProjection`). Conv/Linear: the weight only (biases never perturbed).
 * BN: γ and β, with the radius relative to the norm of the concatenated [γ; β] (`bnRadius:
 * 'joint'`, default) or each tensor to its own norm (`'per-tensor'`) — the paper is silent.
 * The model runs in inference mode throughout and is bit-identical afterwards (snapshot →
 * perturb → restore of the one module).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Network, ModuleKind } from '../nn/model.js';
import type { CifarData } from '../data/cifar.js';
import { pgd, batchAttackSeed, DEFAULT_PGD, type PGDOptions } from '../attacks/pgd.js';
import { crossEntropy, correctMask } from '../nn/losses.js';
import { Progress, type ProgressOptions } from '../util/progress.js';
import { makeBatch, batchIndices } from '../data/batches.js';
import { fixedSubsetIndices } from '../data/subsets.js';

/** Which modules are candidates: RiFT ranks Conv/Linear; RiFT with BN adds BatchNorm. */
export type CandidateSet = 'conv+linear' | 'conv+linear+bn';

/** Options of the per-module MRC computation (`moduleMRC`, `computeMRC`); defaults in DEFAULT_MRC. */
export interface MRCOptions {
  /** Relative radius ε of the perturbation ball. Default 0.1. */
  eps: number;
  /** Learning rate of the ascent (plain SGD, no momentum). Default 1. */
  lr: number;
  /** Ascent batch size. Default 512. */
  batchSize: number;
  /** Ascent epochs over the fixed set. Default 10. */
  epochs: number;
  /** Paper's Algorithm 1: stop at the first epoch whose update needed projecting. Default false (the code). */
  stopAtFirstProjection: boolean;
  /** Default 'conv+linear'. */
  candidates: CandidateSet;
  /** BN radius: relative to ‖[γ; β]‖ ('joint', default) or per tensor ('per-tensor'). */
  bnRadius: 'joint' | 'per-tensor';
  /** Evaluation batch size for the full-set loss. Default 512. */
  evalBatchSize: number;
  /** Progress line options; false prints nothing. Default {}. */
  progress: Partial<ProgressOptions> | false;
}

/**
 * MRC defaults (RiFT's code): ε 0.1, lr 1, batch 512, 10 ascent epochs, no stop at first projection, Conv/Linear candidates,
 * joint BN radius, evaluation batch 512, progress on.
 */
export const DEFAULT_MRC: MRCOptions = {
  eps: 0.1, lr: 1, batchSize: 512, epochs: 10, stopAtFirstProjection: false, candidates: 'conv+linear',
  bnRadius: 'joint', evalBatchSize: 512, progress: {},
};

/** A fixed set of adversarial examples (inputs of MRC). Call `dispose()` to free the tensors. */
export interface AdversarialSet {
  /** [n,32,32,3] adversarial images. */
  x: tf.Tensor4D;
  /** [n] int32 labels. */
  y: tf.Tensor1D;
  n: number;
  /** Dataset indices the set was made from. */
  indices: Int32Array;
  attack: PGDOptions;
  dispose(): void;
}

/** Options of `makeAdversarialSet`. */
export interface AdversarialSetOptions {
  /** Examples (class-balanced fixed subset of `data`; null = all). Default null (the code: 10k test images). */
  n: number | null;
  /** PGD settings merged over DEFAULT_PGD (PGD-10, 8/255, 2/255). Default {}. */
  attack: Partial<PGDOptions>;
  /** Generation batch size. Default 256. */
  batchSize: number;
  progress: Partial<ProgressOptions> | false;
}

/**
 * Generates the fixed adversarial set against `model` (inference mode), once. Batch k uses
 * attack seed `attack.seed + k`. The caller disposes the returned set.
 */
export async function makeAdversarialSet(model: Network, data: CifarData, options: Partial<AdversarialSetOptions> = {}): Promise<AdversarialSet> {
  const o: AdversarialSetOptions = { n: null, attack: {}, batchSize: 256, progress: {}, ...options };
  const attack: PGDOptions = { ...DEFAULT_PGD, ...o.attack, training: false };
  const indices = fixedSubsetIndices(data, o.n);
  const parts: tf.Tensor4D[] = [];
  const labels: tf.Tensor1D[] = [];
  const progress = o.progress === false ? undefined : new Progress('adversarial set', indices.length, { unit: 'img', ...o.progress });
  let done = 0;
  try {
    const batches = batchIndices(indices, { batchSize: o.batchSize });
    for (let k = 0; k < batches.length; k++) {
      const { x, y } = makeBatch(data, batches[k]);
      parts.push(pgd(model, x, y, { ...attack, seed: batchAttackSeed(attack.seed, k, attack.restarts) }));
      labels.push(y);
      x.dispose();
      done += batches[k].length;
      progress?.update(done);
      await new Promise((r) => setImmediate(r));
    }
    const x = tf.concat(parts, 0) as tf.Tensor4D;
    const y = tf.concat(labels, 0) as tf.Tensor1D;
    return { x, y, n: indices.length, indices, attack, dispose: () => tf.dispose([x, y]) };
  } finally {
    tf.dispose([...parts, ...labels]);
  }
}

/** Mean CE and accuracy (percent) of `model` (inference mode) on a fixed set. */
export function lossAndAccuracy(model: Network, set: Pick<AdversarialSet, 'x' | 'y' | 'n'>, batchSize = 512): { loss: number; accuracy: number } {
  let lossSum = 0, correct = 0;
  for (let s = 0; s < set.n; s += batchSize) {
    const b = Math.min(batchSize, set.n - s);
    const [l, c] = tf.tidy(() => {
      const xb = tf.slice(set.x, [s, 0, 0, 0], [b, 32, 32, 3]);
      const yb = tf.slice(set.y, [s], [b]);
      const logits = model.forward(xb);
      return [tf.mul(crossEntropy(logits, yb), b).dataSync()[0], correctMask(logits, yb).reduce((a, v) => a + v, 0)];
    });
    lossSum += l;
    correct += c;
  }
  return { loss: lossSum / set.n, accuracy: (100 * correct) / set.n };
}

/** One module's MRC record. */
export interface MRCEntry {
  module: string;
  kind: ModuleKind;
  /** Position in network order. */
  index: number;
  mrc: number;
  /** Full-set loss before perturbation and at the max-loss epoch. */
  lossBefore: number;
  lossMax: number;
  /** Robust accuracy (percent) on the fixed set before, and at the max-loss epoch. */
  accuracyBefore: number;
  accuracyAtMax: number;
  /** accuracyAtMax − accuracyBefore (percentage points; RiFT reports e.g. −2.86 / −53.03). */
  accuracyDrop: number;
  epochLosses: number[];
  /** 1-based epoch of the first projection (null: never projected). */
  firstProjectionEpoch: number | null;
  /** ‖θ − θ₀‖ / ‖θ₀‖ at the end (≤ eps, joint over γ/β for BN). */
  finalRelativeNorm: number;
  /** Tensors perturbed (state keys). */
  keys: string[];
  seconds: number;
}

/** MRC of a set of modules: the options used, the unperturbed loss and accuracy (percent) on the fixed set, and the ranking. */
export interface MRCResult {
  options: MRCOptions;
  lossBefore: number;
  accuracyBefore: number;
  /** Sorted by MRC ascending (lowest = least robust-critical first). */
  ranking: MRCEntry[];
  seconds: number;
}

/** The tensors MRC perturbs for a module: conv/linear weight; BN γ (`weight`) and β (`bias`). */
export function mrcKeys(model: Network, name: string): string[] {
  const m = model.module(name);
  return m.kind === 'bn' ? [`${name}.weight`, `${name}.bias`] : [`${name}.weight`];
}

/** Module names of a candidate set, in network order. */
export function candidateModules(model: Network, candidates: CandidateSet): string[] {
  return model.modules().filter((m) => m.kind !== 'bn' || candidates === 'conv+linear+bn').map((m) => m.name);
}

function sqNorm(t: tf.Tensor): number {
  return tf.tidy(() => tf.sum(tf.square(t)).dataSync()[0]);
}

/**
 * Projects Δ = θ − θ₀ of `vars` onto ‖Δ‖ ≤ eps·‖θ₀‖ over each group (one group = tensors sharing
 * a radius). Returns whether any group was rescaled and the largest relative norm after.
 */
function project(groups: Array<Array<[tf.Variable, tf.Tensor]>>, eps: number): { projected: boolean; relNorm: number } {
  let projected = false, relNorm = 0;
  for (const g of groups) {
    const d2 = g.reduce((a, [v, t0]) => a + tf.tidy(() => sqNorm(tf.sub(v, t0))), 0);
    const n0 = Math.sqrt(g.reduce((a, [, t0]) => a + sqNorm(t0), 0));
    const d = Math.sqrt(d2);
    const radius = eps * n0;
    if (d > radius) {
      projected = true;
      const scale = radius / d;
      tf.tidy(() => { for (const [v, t0] of g) v.assign(tf.add(t0, tf.mul(tf.sub(v, t0), scale))); });
      relNorm = Math.max(relNorm, eps);
    } else {
      relNorm = Math.max(relNorm, n0 > 0 ? d / n0 : 0);
    }
  }
  return { projected, relNorm };
}

/** MRC of one module (see file comment). The model is restored before returning. */
export function moduleMRC(
  model: Network, set: Pick<AdversarialSet, 'x' | 'y' | 'n'>, name: string, base: { loss: number; accuracy: number }, options: Partial<MRCOptions> = {},
): MRCEntry {
  const o: MRCOptions = { ...DEFAULT_MRC, ...options };
  const t0 = Date.now();
  const info = model.module(name);
  const keys = mrcKeys(model, name);
  const snap = model.snapshot(keys);
  const vars = keys.map((k) => model.variable(k));
  const pairs = vars.map((v, i) => [v, snap.tensors.get(keys[i])!] as [tf.Variable, tf.Tensor]);
  const groups = info.kind === 'bn' && o.bnRadius === 'per-tensor' ? pairs.map((p) => [p]) : [pairs];
  const epochLosses: number[] = [];
  const epochAcc: number[] = [];
  let firstProjectionEpoch: number | null = null;
  let relNorm = 0;
  try {
    for (let e = 0; e < o.epochs; e++) {
      for (let s = 0; s < set.n; s += o.batchSize) {
        const b = Math.min(o.batchSize, set.n - s);
        tf.tidy(() => {
          const xb = tf.slice(set.x, [s, 0, 0, 0], [b, 32, 32, 3]);
          const yb = tf.slice(set.y, [s], [b]);
          const { grads } = tf.variableGrads(() => crossEntropy(model.forward(xb), yb), vars);
          for (const v of vars) v.assign(tf.add(v, tf.mul(grads[v.name], o.lr)));
        });
      }
      const p = project(groups, o.eps);
      relNorm = p.relNorm;
      const r = lossAndAccuracy(model, set, o.evalBatchSize);
      epochLosses.push(r.loss);
      epochAcc.push(r.accuracy);
      if (p.projected && firstProjectionEpoch === null) firstProjectionEpoch = e + 1;
      if (p.projected && o.stopAtFirstProjection) break;
    }
  } finally {
    model.restore(snap);
    snap.dispose();
  }
  const iMax = epochLosses.reduce((best, l, i) => (l > epochLosses[best] ? i : best), 0);
  return {
    module: name, kind: info.kind, index: info.index,
    mrc: epochLosses[iMax] - base.loss,
    lossBefore: base.loss, lossMax: epochLosses[iMax],
    accuracyBefore: base.accuracy, accuracyAtMax: epochAcc[iMax], accuracyDrop: epochAcc[iMax] - base.accuracy,
    epochLosses, firstProjectionEpoch, finalRelativeNorm: relNorm, keys,
    seconds: (Date.now() - t0) / 1000,
  };
}

/** Resume hooks of `computeMRC` for a long run that can be killed at any moment. */
export interface MRCResume {
  /** Entries computed earlier (by a killed run): their modules are skipped and the entries kept. Default none. */
  done?: readonly MRCEntry[];
  /** Called after each module with its entry and every entry so far (to save progress). */
  onEntry?: (entry: MRCEntry, all: readonly MRCEntry[], total: number) => void;
}

/**
 * MRC of every candidate module (or of `modules` when given), ranked ascending.
 * The model is bit-identical afterwards; no tensor outlives the call. With `resume.done`, the
 * modules already measured are not measured again (the same loop serves a resumed run).
 */
export async function computeMRC(
  model: Network, set: Pick<AdversarialSet, 'x' | 'y' | 'n'>, options: Partial<MRCOptions> = {}, modules?: readonly string[], resume: MRCResume = {},
): Promise<MRCResult> {
  const o: MRCOptions = { ...DEFAULT_MRC, ...options };
  if (!(o.eps > 0)) throw new Error(`MRC option 'eps' must be > 0, got ${o.eps}`);
  if (!Number.isInteger(o.epochs) || o.epochs < 1) throw new Error(`MRC option 'epochs' must be an integer ≥ 1, got ${o.epochs}`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new Error(`MRC option 'batchSize' must be a positive integer, got ${o.batchSize}`);
  const t0 = Date.now();
  const names = modules ?? candidateModules(model, o.candidates);
  const base = lossAndAccuracy(model, set, o.evalBatchSize);
  const progress = o.progress === false ? undefined : new Progress('MRC', names.length, { unit: 'module', ...o.progress });
  const entries: MRCEntry[] = [...(resume.done ?? [])];
  for (const name of names) {
    if (entries.some((e) => e.module === name)) continue;
    const e = moduleMRC(model, set, name, base, o);
    entries.push(e);
    progress?.update(entries.length, `${name} mrc ${e.mrc.toFixed(4)}`);
    resume.onEntry?.(e, entries, names.length);
    await new Promise((r) => setImmediate(r));
  }
  return { options: o, lossBefore: base.loss, accuracyBefore: base.accuracy, ranking: entries.sort((a, b) => a.mrc - b.mrc), seconds: (Date.now() - t0) / 1000 };
}

/** The k lowest-MRC modules of a ranking restricted to a candidate set (k ≥ 1). */
export function selectLowest(result: Pick<MRCResult, 'ranking'>, k: number, candidates: CandidateSet = 'conv+linear'): string[] {
  if (!Number.isInteger(k) || k < 1) throw new Error(`selectLowest: k must be a positive integer, got ${k}`);
  const pool = result.ranking.filter((e) => e.kind !== 'bn' || candidates === 'conv+linear+bn');
  if (k > pool.length) throw new Error(`selectLowest: k=${k} but only ${pool.length} ${candidates} modules were ranked`);
  return pool.slice(0, k).map((e) => e.module);
}
