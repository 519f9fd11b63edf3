/**
 * The paper's experiments as cached, resumable records: base evaluation, MRC ranking, top-k
 * RiFT / RiFT with BN, layer-type fine-tuning curves (Figures 1/2), the BN-output KDE (Figure 3)
 * and worst-of-R vs single PGD (beyond the paper). Each returns a plain JSON
 * record (config, input checkpoint hash, seed, backend, wall time per stage, metrics, curves,
 * per-example correctness) stored under data/cache/experiments/<kind>/<key>.json, the key being
 * a hash of everything that determines the result. Rerunning reuses finished records; MRC
 * resumes module by module.
 */
import { loadCifar, splitIdentity, NUM_CLASSES, type CifarData } from '../data/cifar.js';
import { loadModel, checkpointHash, readCheckpoint, saveCheckpoint } from '../nn/checkpoint.js';
import { evaluate } from '../method/evaluate.js';
import { evaluateAutoAttack } from '../method/autoattack.js';
import { makeAdversarialSet, computeMRC, candidateModules, selectLowest, type MRCEntry } from '../method/mrc.js';
import { finetune, layerTypeModules, type FinetuneOptions, type LayerTypeMode } from '../method/finetune.js';
import { interpolationSweep } from '../method/interpolate.js';
import { pairedComparison } from '../util/stats.js';
import { ResultCache } from './cache.js';
import {
  encodeBits, decodeBits, architectureLabel, finalScore, METHOD_CANDIDATES,
  type ModelIdentity, type Common, type BaseRecord, type MRCRecord, type Method, type ModelScore, type RiftRecord, type LayerTypeRecord,
  type LayerTypeEpoch, type KDERecord, type RestartsRecord, type AutoAttackRecord,
} from './records.js';
import { engineInfo } from '../engine/engine.js';
import { autoAttackSuite, type ExperimentConfig } from './config.js';
import type { Network } from '../nn/model.js';
import type { ImportSource } from '../nn/pytorch.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readRunMetrics, type EpochMetrics } from './adversarial-training.js';
import * as tf from '@tensorflow/tfjs-core';
import { pgd, batchAttackSeed } from '../attacks/pgd.js';
import { gaussianKDE, silvermanBandwidth, pooledGrid, wasserstein1, meanStd, subsample } from '../util/kde.js';
import { fixedSubset, fixedSubsetIndices } from '../data/subsets.js';
import { makeBatch, batchIndices } from '../data/batches.js';

/** Bumped when a record's meaning changes, so old cache entries are not reused. */
export const EXPERIMENT_VERSION = 5;

/** What every run* experiment takes: the config, the base checkpoint, the cache and logging. */
export interface ExperimentInputs {
  config: ExperimentConfig;
  /** Base (PGD-AT) checkpoint. */
  checkpoint: string;
  /** Default: new ResultCache() (data/cache/experiments). */
  cache?: ResultCache;
  /** Progress lines. Default true. */
  progress?: boolean;
  /** One line per finished stage. Default console.log. */
  log?: (line: string) => void;
}

/**
 * The base checkpoint of `inp`, checked against its profile: a record is labelled with the
 * profile, so a model this project trained must be the one the profile trains (architecture
 * 'resnet18', `advTrain.width`, the dataset's class count). A base imported from PyTorch
 * (experiments/imported.ts) may be any architecture; its class count must fit the dataset.
 * Throws naming both architectures otherwise.
 */
export function baseModelIdentity(inp: Pick<ExperimentInputs, 'config' | 'checkpoint'>): ModelIdentity {
  const c = inp.config;
  const header = readCheckpoint(inp.checkpoint).header;
  const h = header.config;
  const imported = header.provenance.imported as ImportSource | undefined;
  const want = { arch: 'resnet18', width: c.advTrain.width, numClasses: NUM_CLASSES[c.dataset] };
  if (imported) {
    if (h.numClasses !== want.numClasses) throw new Error(`checkpoint ${inp.checkpoint} (imported from ${imported.file}) has ${h.numClasses} classes; ${c.dataset} has ${want.numClasses}`);
  } else if (h.arch !== want.arch || h.width !== want.width || h.numClasses !== want.numClasses) {
    throw new Error(`checkpoint ${inp.checkpoint} is ${architectureLabel(h)}, but profile ${c.profile} on ${c.dataset} is ${architectureLabel(want)}: ` +
      `its records would name the wrong model; pass a checkpoint of this profile (npm run train -- --dataset ${c.dataset} --profile ${c.profile}), --set advTrain.width=${h.width} to describe this one, or import a PyTorch model with --base`);
  }
  return {
    arch: h.arch, width: h.width, numClasses: h.numClasses,
    ...(h.arch === 'wide-resnet' ? { depth: h.depth } : {}),
    ...(h.arch === 'preact-resnet18' ? { finalBn: h.finalBn, preactShortcut: h.preactShortcut } : {}),
    file: inp.checkpoint, sha256: checkpointHash(inp.checkpoint),
    ...(imported ? { imported: { file: imported.file, sha256: imported.sha256, format: imported.format, normalization: imported.normalization } } : {}),
  };
}

/** What the notebooks state about a base model: identity, parameter count and its PGD-AT history (null for an imported base). */
export interface BaseDescription {
  model: ModelIdentity;
  params: number;
  /** The run's per-epoch metrics when the base is the profile's own PGD-AT run, else null. */
  history: EpochMetrics[] | null;
  /** The epoch the checkpoint holds (best robust), or null. */
  best: EpochMetrics | null;
}

/** Describes the base of `inp` (`baseModelIdentity`, checked the same way), with its training history when this project trained it. */
export function describeBase(inp: Pick<ExperimentInputs, 'config' | 'checkpoint'>): BaseDescription {
  const model = baseModelIdentity(inp);
  const c = readCheckpoint(inp.checkpoint);
  const params = c.header.tensors.filter((t) => /\.(weight|bias)$/.test(t.key) && !t.key.startsWith('optim/')).reduce((a, t) => a + t.length, 0);
  if (model.imported) return { model, params, history: null, best: null };
  const dir = path.dirname(inp.checkpoint);
  const history = fs.existsSync(path.join(dir, 'metrics.jsonl')) ? readRunMetrics(dir) : [];
  const best = history.length ? history.reduce((a, b) => (b.robust > a.robust ? b : a)) : null;
  return { model, params, history: history.length ? history : null, best };
}

interface EvalInputs {
  test: CifarData;
  evalIdx: Int32Array | undefined;
  /** Clean-accuracy indices when they differ from evalIdx (eval.cleanN), else undefined. */
  cleanIdx: Int32Array | undefined;
  sha: string;
  model: ModelIdentity;
  /** splitIdentity of the splits read (test; train too in `loadInputs`). */
  data: { test: string; train?: string };
}

interface Loaded extends EvalInputs {
  train: CifarData;
  trainIdx: Int32Array | undefined;
}

/** The fixed evaluation subsets of `eval.n` (attacked) and `eval.cleanN` (clean; undefined when the same set). */
function evalSubsets(c: ExperimentConfig, test: CifarData): { evalIdx: Int32Array | undefined; cleanIdx: Int32Array | undefined } {
  const evalIdx = fixedSubset(test, c.eval.n);
  const cleanSubset = fixedSubset(test, c.eval.cleanN);
  const sameSet = (cleanSubset === undefined && evalIdx === undefined) || (cleanSubset !== undefined && evalIdx !== undefined && cleanSubset.length === evalIdx.length);
  return { evalIdx, cleanIdx: sameSet ? undefined : cleanSubset ?? fixedSubsetIndices(test, null) };
}

/** What evaluating a checkpoint needs: the test split only (a base evaluation works without the train file). */
function loadEvalInputs(inp: ExperimentInputs): EvalInputs {
  const model = baseModelIdentity(inp);
  const test = loadCifar({ dataset: inp.config.dataset, split: 'test' });
  return { test, sha: model.sha256, model, data: { test: splitIdentity(test) }, ...evalSubsets(inp.config, test) };
}

function loadInputs(inp: ExperimentInputs): Loaded {
  const c = inp.config;
  const e = loadEvalInputs(inp);
  const train = loadCifar({ dataset: c.dataset, split: 'train' });
  return {
    ...e, train, data: { ...e.data, train: splitIdentity(train) },
    trainIdx: fixedSubset(train, c.finetune.trainN),
  };
}

function common(inp: ExperimentInputs, key: string, d: Pick<EvalInputs, 'model' | 'data'>, seconds: Record<string, number>): Common {
  const e = engineInfo();
  return {
    key, dataset: inp.config.dataset, profile: inp.config.profile, checkpoint: inp.checkpoint, checkpointSha256: d.model.sha256, model: d.model, data: d.data,
    engine: { backend: e.backend, threads: e.threads, versions: e.versions }, seconds, createdAt: new Date().toISOString(),
  };
}

/** What every fine-tuning experiment passes to `finetune`: the config's schedule, the fixed subsets and the evaluation attack. */
function finetuneInputs(inp: ExperimentInputs, d: Loaded): Pick<FinetuneOptions, 'epochs' | 'lr' | 'lrDecayEpoch' | 'batchSize' | 'momentum' | 'weightDecay' | 'trainIndices' | 'evalIndices' | 'cleanIndices' | 'evalAttack' | 'evalBatchSize' | 'progress'> {
  const f = inp.config.finetune, e = inp.config.eval;
  return {
    epochs: f.epochs, lr: f.lr, lrDecayEpoch: f.lrDecayEpoch, batchSize: f.batchSize, momentum: f.momentum, weightDecay: f.weightDecay,
    trainIndices: d.trainIdx, evalIndices: d.evalIdx, cleanIndices: d.cleanIdx, evalAttack: e.attack, evalBatchSize: e.batchSize, progress: inp.progress !== false,
  };
}

function withModel<T>(checkpoint: string, f: (m: Network) => Promise<T>): Promise<T> {
  const { model } = loadModel(checkpoint);
  return f(model).finally(() => model.dispose());
}

const log = (inp: ExperimentInputs) => inp.log ?? ((l: string) => console.log(l));

/** Clean and robust accuracy of the base model on the evaluation set (cached). */
export async function runBaseEvaluation(inp: ExperimentInputs): Promise<BaseRecord> {
  const cache = inp.cache ?? new ResultCache();
  const d = loadEvalInputs(inp);
  const material = { v: EXPERIMENT_VERSION, kind: 'base', dataset: inp.config.dataset, sha: d.sha, data: d.data, eval: inp.config.eval };
  const r = await cache.getOrCompute<BaseRecord>('base', material, async (ctx) => withModel(inp.checkpoint, async (model) => {
    const ev = await evaluate(model, d.test, {
      indices: d.evalIdx, cleanIndices: d.cleanIdx, attack: inp.config.eval.attack, batchSize: inp.config.eval.batchSize, label: 'base eval',
      progress: inp.progress === false ? false : {},
    });
    log(inp)(`base: clean ${ev.clean.accuracy.toFixed(2)}% on ${ev.clean.total} test images, robust ${ev.robust!.accuracy.toFixed(2)}% on ${ev.n}`);
    return {
      ...common(inp, ctx.key, d, { eval: ev.seconds }), kind: 'base', eval: inp.config.eval, n: ev.n, cleanN: ev.clean.total,
      clean: ev.clean.accuracy, robust: ev.robust!.accuracy, cleanBits: encodeBits(ev.clean.perExample), robustBits: encodeBits(ev.robust!.perExample),
    };
  }));
  return r.record;
}

/** MRC of every Conv/Linear/BN module of the base model (cached; resumes module by module). */
export async function runMRCExperiment(inp: ExperimentInputs): Promise<MRCRecord> {
  const cache = inp.cache ?? new ResultCache();
  const c = inp.config;
  const d = loadEvalInputs(inp);
  const material = { v: EXPERIMENT_VERSION, kind: 'mrc', dataset: c.dataset, sha: d.sha, data: d.data, mrc: c.mrc };
  const r = await cache.getOrCompute<MRCRecord>('mrc', material, async (ctx) => withModel(inp.checkpoint, async (model) => {
    const t0 = Date.now();
    const set = await makeAdversarialSet(model, d.test, { n: c.mrc.advN, attack: c.mrc.attack, progress: inp.progress === false ? false : {} });
    const tAdv = (Date.now() - t0) / 1000;
    try {
      const done = ctx.loadProgress<{ entries: MRCEntry[] }>()?.entries ?? [];
      if (done.length) log(inp)(`MRC: resuming after ${done.length} modules`);
      const opts = { eps: c.mrc.eps, lr: c.mrc.lr, batchSize: c.mrc.batchSize, epochs: c.mrc.epochs, stopAtFirstProjection: c.mrc.stopAtFirstProjection, bnRadius: c.mrc.bnRadius, evalBatchSize: c.mrc.batchSize, progress: false as const };
      const r = await computeMRC(model, set, opts, candidateModules(model, 'conv+linear+bn'), {
        done,
        onEntry: (e, all, total) => {
          ctx.saveProgress({ entries: all });
          log(inp)(`MRC ${all.length}/${total} ${e.module} (${e.kind}): ${e.mrc.toFixed(4)}, acc ${e.accuracyDrop.toFixed(2)} pt, ${e.seconds.toFixed(1)} s`);
        },
      });
      const mrcSeconds = r.ranking.reduce((a, x) => a + x.seconds, 0);
      return {
        ...common(inp, ctx.key, d, { advSet: tAdv, mrc: mrcSeconds }), kind: 'mrc', mrc: c.mrc, advSetSize: set.n,
        lossBefore: r.lossBefore, accuracyBefore: r.accuracyBefore, ranking: r.ranking,
      };
    } finally {
      set.dispose();
    }
  }));
  return r.record;
}

function score(base: BaseRecord, clean: Uint8Array, robust: Uint8Array): ModelScore {
  const pct = (a: Uint8Array) => (100 * a.reduce((s, v) => s + v, 0)) / a.length;
  return {
    clean: pct(clean), robust: pct(robust),
    vsBase: { clean: pairedComparison(decodeBits(base.cleanBits), clean), robust: pairedComparison(decodeBits(base.robustBits), robust) },
    cleanBits: encodeBits(clean), robustBits: encodeBits(robust),
  };
}

/** Top-k RiFT (conv+linear, BN stats per config: the code's 'all') or RiFT with BN (conv+linear+bn, 'selected'). */
export async function runRift(inp: ExperimentInputs, method: Method, k: number, seed = inp.config.finetune.seeds[0]): Promise<RiftRecord> {
  const cache = inp.cache ?? new ResultCache();
  const c = inp.config;
  const base = await runBaseEvaluation(inp);
  const mrc = await runMRCExperiment(inp);
  const modules = selectLowest(mrc, k, METHOD_CANDIDATES[method]);
  const bnStats = method === 'rift' ? c.finetune.bnStats.rift : c.finetune.bnStats.riftBN;
  const d = loadInputs(inp);
  const material = { v: EXPERIMENT_VERSION, kind: 'rift', dataset: c.dataset, sha: d.sha, data: d.data, method, k, seed, modules, bnStats, finetune: c.finetune, interpolation: c.interpolation, eval: c.eval };
  const r = await cache.getOrCompute<RiftRecord>('rift', material, async (ctx) => withModel(inp.checkpoint, async (model) => {
    const baseSnap = model.snapshot();
    try {
      const ft = await finetune(model, d.train, d.test, {
        ...finetuneInputs(inp, d), modules, bnStats, keep: c.finetune.keep, evalRobust: c.finetune.evalRobust, seed, evalBefore: false,
      });
      const ftSeconds = ft.history.reduce((a, h) => a + h.trainSeconds + h.evalSeconds, 0);
      const raw = score(base, ft.kept.clean, ft.kept.robust);
      const modelFile = cache.path('rift', ctx.key).replace(/\.json$/, '.rbn');
      const rawModelFile = c.interpolation.enabled ? modelFile.replace(/\.rbn$/, '.raw.rbn') : modelFile;
      const provenance = (what: string) => ({ provenance: { profile: c.profile, seed, command: `runRift ${method} k=${k} (${what})`, config: material as unknown as Record<string, unknown> } });
      if (c.interpolation.enabled) saveCheckpoint(rawModelFile, model, provenance('fine-tuned, before interpolation'));
      let interpolated: RiftRecord['interpolated'] = null;
      let interpSeconds = 0;
      if (c.interpolation.enabled) {
        const t0 = Date.now();
        const ftSnap = model.snapshot();
        try {
          // α = 0 is the base model and α = 1 the kept fine-tuned model: both were just evaluated on the same examples with the same attack.
          const bc = decodeBits(base.cleanBits), br = decodeBits(base.robustBits);
          const known = [
            { alpha: 0, clean: base.clean, robust: base.robust, cleanPerExample: bc, robustPerExample: br },
            { alpha: 1, clean: raw.clean, robust: raw.robust, cleanPerExample: ft.kept.clean, robustPerExample: ft.kept.robust },
          ];
          const sweep = await interpolationSweep(model, baseSnap, ftSnap, d.test, {
            alphas: c.interpolation.alphas, tolerance: c.interpolation.tolerance, evalIndices: d.evalIdx, cleanIndices: d.cleanIdx,
            attack: c.eval.attack, batchSize: c.eval.batchSize, progress: inp.progress !== false, known,
          });
          interpolated = {
            ...score(base, sweep.chosen.cleanPerExample, sweep.chosen.robustPerExample), alpha: sweep.chosen.alpha,
            points: sweep.points.map((p) => ({ alpha: p.alpha, clean: p.clean, robust: p.robust })),
          };
        } finally {
          ftSnap.dispose();
        }
        interpSeconds = (Date.now() - t0) / 1000;
      }
      saveCheckpoint(modelFile, model, provenance(interpolated ? `interpolated, α = ${interpolated.alpha}` : 'fine-tuned'));
      const fin = finalScore({ raw, interpolated });
      log(inp)(`${method} k=${k} seed ${seed} [${modules.join(', ')}]: clean ${fin.clean.toFixed(2)}% (Δ ${fin.vsBase.clean.delta.toFixed(2)}) robust ${fin.robust.toFixed(2)}% (Δ ${fin.vsBase.robust.delta.toFixed(2)})${interpolated ? ` at α=${interpolated.alpha}` : ''}`);
      return {
        ...common(inp, ctx.key, d, { finetune: ftSeconds, interpolation: interpSeconds }), kind: 'rift', method, k, seed, modules, bnStats,
        finetune: c.finetune, interpolation: c.interpolation, eval: c.eval, base: { clean: base.clean, robust: base.robust },
        history: ft.history, keptEpoch: ft.keptEpoch, raw, interpolated, modelFile, rawModelFile,
      };
    } finally {
      baseSnap.dispose();
    }
  }));
  return r.record;
}

/** Fine-tuning curves of a layer-type mode (Figures 1/2): every epoch evaluated, no interpolation. */
export async function runLayerType(inp: ExperimentInputs, mode: LayerTypeMode, seed = inp.config.finetune.seeds[0]): Promise<LayerTypeRecord> {
  const cache = inp.cache ?? new ResultCache();
  const c = inp.config;
  const d = loadInputs(inp);
  const material = { v: EXPERIMENT_VERSION, kind: 'layer-type', dataset: c.dataset, sha: d.sha, data: d.data, mode, seed, finetune: c.finetune, eval: c.eval };
  const r = await cache.getOrCompute<LayerTypeRecord>('layer-type', material, async (ctx) => withModel(inp.checkpoint, async (model) => {
    const { modules, bnStats } = layerTypeModules(model, mode);
    const bits = new Map<number, { clean: Uint8Array; robust: Uint8Array }>();
    const ft = await finetune(model, d.train, d.test, {
      onEpoch: (rec, ev) => { if (ev.robust) bits.set(rec.epoch, { clean: ev.clean.perExample, robust: ev.robust.perExample }); },
      ...finetuneInputs(inp, d), modules, bnStats, keep: 'last', evalRobust: 'every-epoch', seed, evalBefore: true,
    });
    const b0 = bits.get(0)!;
    const history = ft.history.map((h): LayerTypeEpoch => {
      const b = bits.get(h.epoch);
      if (h.robust === null || !b) throw new Error(`layer-type ${mode}: epoch ${h.epoch} has no robust accuracy`);
      return {
        ...h, robust: h.robust, cleanBits: encodeBits(b.clean), robustBits: encodeBits(b.robust),
        vsBase: { clean: pairedComparison(b0.clean, b.clean), robust: pairedComparison(b0.robust, b.robust) },
      };
    });
    const last = history[history.length - 1];
    log(inp)(`layer-type ${mode}: epoch 0 clean ${history[0].clean.toFixed(2)}% robust ${history[0].robust.toFixed(2)}% → epoch ${last.epoch} clean ${last.clean.toFixed(2)}% robust ${last.robust.toFixed(2)}%`);
    return {
      ...common(inp, ctx.key, d, { finetune: ft.history.reduce((a, h) => a + h.trainSeconds + h.evalSeconds, 0) }), kind: 'layer-type',
      mode, seed, modules, bnStats, finetune: c.finetune, eval: c.eval, history,
    };
  }));
  return r.record;
}


/** Options of `runBNOutputKDE` (Figure 3). */
export interface KDEOptions {
  /** k of the top-k runs compared (the paper: Top-5). Default 5. */
  k: number;
  /** Test images whose adversarial versions are fed (balanced fixed subset). Default 256. */
  n: number;
  /** Adversarial examples crafted against each model itself ('own', default) or all against the base ('base'). */
  advSource: 'own' | 'base';
  /** BN layer to inspect; default: the lowest-MRC BN layer that RiFT with BN selected (else the lowest-MRC BN overall). */
  layer?: string;
  /** At most this many output values per model enter the KDE (seeded subsample). Default 50,000. */
  maxValues: number;
  /** KDE grid size. Default 256. */
  gridSize: number;
  /**
   * Which fine-tuned models: 'raw' (default), the kept fine-tuning epoch before interpolation —
   * the RiFT-with-BN paper describes no interpolation, and an α = 0 pick would make a "fine-tuned"
   * model identical to init — or 'final', the interpolated models of the records.
   */
  models: 'raw' | 'final';
  seed?: number;
}

/**
 * Figure 3: the output distribution (all channels pooled) of a BN layer on adversarial examples
 * for the base model (init), top-k RiFT and top-k RiFT with BN, as KDEs on a common grid, with
 * each model's 1-Wasserstein distance to init (cached).
 */
export async function runBNOutputKDE(inp: ExperimentInputs, options: Partial<KDEOptions> = {}): Promise<KDERecord> {
  const o: KDEOptions = { k: 5, n: 256, advSource: 'own', maxValues: 50_000, gridSize: 256, models: 'raw', ...options };
  if (o.models !== 'raw' && o.models !== 'final') throw new Error(`runBNOutputKDE: models must be 'raw' or 'final', got '${o.models}'`);
  const cache = inp.cache ?? new ResultCache();
  const c = inp.config;
  const seed = o.seed ?? c.finetune.seeds[0];
  const [rift, riftBN, mrc] = [await runRift(inp, 'rift', o.k, seed), await runRift(inp, 'rift-bn', o.k, seed), await runMRCExperiment(inp)];
  const selectedBN = riftBN.modules.filter((m) => mrc.ranking.find((e) => e.module === m)?.kind === 'bn');
  const layer = o.layer ?? selectedBN[0] ?? mrc.ranking.find((e) => e.kind === 'bn')!.module;
  const layerChoice = o.layer ? 'given' : selectedBN.length ? `lowest-MRC BN layer selected by RiFT with BN (top-${o.k})` : `RiFT with BN selected no BN layer in top-${o.k}: lowest-MRC BN layer overall`;
  const d = loadEvalInputs(inp);
  const material = { v: EXPERIMENT_VERSION, kind: 'bn-kde', sha: d.sha, data: d.data, rift: rift.key, riftBN: riftBN.key, layer, o: { ...o, seed }, eval: c.eval.attack };
  const r = await cache.getOrCompute<KDERecord>('bn-kde', material, async (ctx) => {
    const t0 = Date.now();
    const test = d.test;
    const idx = fixedSubsetIndices(test, o.n);
    const pick = (r: RiftRecord) => (o.models === 'raw' ? r.rawModelFile : r.modelFile);
    const files = { init: inp.checkpoint, RiFT: pick(rift), 'RiFT with BN': pick(riftBN) } as const;
    for (const f of Object.values(files)) if (!fs.existsSync(f)) throw new Error(`bn-kde: model file ${f} is missing; delete its record under ${cache.path('rift', 'x').replace(/x\.json$/, '')} to recompute it`);
    const base = loadModel(inp.checkpoint).model;
    const values: Record<string, Float32Array> = {};
    try {
      for (const name of ['init', 'RiFT', 'RiFT with BN'] as const) {
        const m = name === 'init' ? base : loadModel(files[name]).model;
        try {
          const chunks: Float32Array[] = [];
          for (const [b, batch] of batchIndices(idx, { batchSize: c.eval.batchSize }).entries()) {
            const { x, y } = makeBatch(test, batch);
            const xa = pgd(o.advSource === 'base' ? base : m, x, y, { ...c.eval.attack, seed: batchAttackSeed(0, b, c.eval.attack.restarts) });
            const out = m.bnOutput(xa, layer);
            chunks.push(out.dataSync() as Float32Array);
            tf.dispose([x, y, xa, out]);
          }
          const all = new Float32Array(chunks.reduce((a, ch) => a + ch.length, 0));
          let off = 0;
          for (const ch of chunks) { all.set(ch, off); off += ch.length; }
          values[name] = subsample(all, o.maxValues, seed);
        } finally {
          if (m !== base) m.dispose();
        }
      }
    } finally {
      base.dispose();
    }
    const grid = pooledGrid([values.init, values.RiFT, values['RiFT with BN']], o.gridSize);
    const models = (['init', 'RiFT', 'RiFT with BN'] as const).map((name) => {
      const v = values[name];
      const h = silvermanBandwidth(v);
      const { mean, std } = meanStd(v);
      return {
        name, modules: name === 'init' ? [] : name === 'RiFT' ? rift.modules : riftBN.modules,
        density: Array.from(gaussianKDE(v, grid, h)), mean, std, wassersteinToInit: wasserstein1(v, values.init), bandwidth: h,
      };
    });
    log(inp)(`BN-output KDE of ${layer}: W1 to init — RiFT ${models[1].wassersteinToInit.toFixed(4)}, RiFT with BN ${models[2].wassersteinToInit.toFixed(4)}`);
    return {
      ...common(inp, ctx.key, d, { kde: (Date.now() - t0) / 1000 }), kind: 'bn-kde', layer, layerChoice, k: o.k, n: idx.length,
      advSource: o.advSource, modelState: o.models, alphas: { rift: rift.interpolated?.alpha ?? null, riftBN: riftBN.interpolated?.alpha ?? null }, grid: Array.from(grid), models,
    };
  });
  return r.record;
}

/** The checkpoint hashes of a comparison's models (part of its cache key), after checking there are some and that every file exists. */
function modelHashes(runner: string, models: ReadonlyArray<{ name: string; file: string }>): string[] {
  if (models.length === 0) throw new Error(`${runner}: no models`);
  for (const m of models) if (!fs.existsSync(m.file)) throw new Error(`${runner}: model file ${m.file} (${m.name}) is missing`);
  return models.map((m) => checkpointHash(m.file));
}

/**
 * Worst-of-R PGD against single-run PGD (the RiFT paper reports the worst of 3 restarts, its
 * code runs 1): robust accuracy of each model on the evaluation set (`eval.n`, `eval.attack`
 * with `restarts` replaced) for every number of restarts, and the paired gap between the most
 * and the fewest restarts (cached; the key holds every model file's hash).
 * Restart r of batch b uses seed b·R + r (evaluate.ts), so the runs are not nested per example:
 * the gap is a paired estimate, not a per-example bound.
 */
export async function runRestartsComparison(inp: ExperimentInputs, models: ReadonlyArray<{ name: string; file: string }>, restarts: readonly number[] = [1, 3]): Promise<RestartsRecord> {
  const rs = [...new Set(restarts)].sort((a, b) => a - b);
  if (rs.length < 2 || !rs.every((r) => Number.isInteger(r) && r >= 1)) throw new Error(`runRestartsComparison: restarts must hold at least two different integers ≥ 1, got [${restarts.join(', ')}]`);
  const shas = modelHashes('runRestartsComparison', models);
  const cache = inp.cache ?? new ResultCache();
  const c = inp.config;
  const d = loadEvalInputs(inp);
  const material = { v: EXPERIMENT_VERSION, kind: 'restarts', dataset: c.dataset, data: d.data, models: models.map((m, i) => ({ name: m.name, sha: shas[i] })), restarts: rs, eval: c.eval };
  const r = await cache.getOrCompute<RestartsRecord>('restarts', material, async (ctx) => {
    const { test, evalIdx: idx, cleanIdx } = d;
    const out: RestartsRecord['models'] = [];
    const t0 = Date.now();
    for (const [i, m] of models.entries()) {
      await withModel(m.file, async (model) => {
        const runs: RestartsRecord['models'][number]['runs'] = [];
        let clean = 0;
        const bits: Uint8Array[] = [];
        for (const restarts of rs) {
          const ev = await evaluate(model, test, {
            // Clean accuracy once per model, on the same examples as every other record's.
            indices: idx, cleanIndices: restarts === rs[0] ? cleanIdx : undefined, attack: { ...c.eval.attack, restarts }, batchSize: c.eval.batchSize,
            label: `${m.name} PGD-${c.eval.attack.steps}×${restarts}`, progress: inp.progress === false ? false : {},
          });
          if (restarts === rs[0]) clean = ev.clean.accuracy;
          bits.push(ev.robust!.perExample);
          runs.push({ restarts, robust: ev.robust!.accuracy, robustBits: encodeBits(ev.robust!.perExample), seconds: ev.seconds });
        }
        const gap = pairedComparison(bits[0], bits[bits.length - 1]);
        log(inp)(`restarts ${m.name}: ${runs.map((x) => `×${x.restarts} ${x.robust.toFixed(2)}%`).join(', ')} (gap ${gap.delta.toFixed(2)} pt)`);
        out.push({ name: m.name, file: m.file, sha256: shas[i], clean, runs, gap });
      });
    }
    return {
      ...common(inp, ctx.key, d, { eval: (Date.now() - t0) / 1000 }), kind: 'restarts', eval: c.eval, restarts: rs,
      n: idx ? idx.length : test.n, models: out,
    };
  });
  return r.record;
}

/**
 * AutoAttack (the config's `autoattack` suite, eps of `eval.attack`) against PGD (`eval.attack`)
 * on the same `autoattack.n` test images, for each model, with the paired gap AA − PGD
 * (cached; the key holds every model file's hash). A killed run resumes: finished models from
 * the work directory, the current model's suite batch by batch.
 */
export async function runAutoAttackComparison(inp: ExperimentInputs, models: ReadonlyArray<{ name: string; file: string }>, seed = 0): Promise<AutoAttackRecord> {
  const shas = modelHashes('runAutoAttackComparison', models);
  const cache = inp.cache ?? new ResultCache();
  const c = inp.config;
  const d = loadEvalInputs(inp);
  const idx = fixedSubset(d.test, c.autoattack.n);
  const aa = { ...c.autoattack, eps: c.eval.attack.eps, seed };
  const material = { v: EXPERIMENT_VERSION, kind: 'autoattack', dataset: c.dataset, data: d.data, models: models.map((m, i) => ({ name: m.name, sha: shas[i] })), autoattack: aa, eval: c.eval };
  const r = await cache.getOrCompute<AutoAttackRecord>('autoattack', material, async (ctx) => {
    // Models finished before a kill are kept in the work directory; the current one resumes from its suite state file.
    const out: AutoAttackRecord['models'] = ctx.loadProgress<{ models: AutoAttackRecord['models'] }>()?.models ?? [];
    const t0 = Date.now();
    const progress = inp.progress === false ? false as const : {};
    for (const [i, m] of models.entries()) {
      if (i < out.length) continue;
      await withModel(m.file, async (model) => {
        const ev = await evaluate(model, d.test, { indices: idx, attack: c.eval.attack, batchSize: c.eval.batchSize, label: `${m.name} PGD`, progress });
        const res = await evaluateAutoAttack(model, d.test, {
          indices: idx, batchSize: c.autoattack.batchSize, attack: { ...autoAttackSuite(c.autoattack), eps: aa.eps, seed },
          statePath: path.join(ctx.dir, `model-${i}.state.json`), stateKey: shas[i], label: `${m.name} AA`, progress,
        });
        const gap = pairedComparison(ev.robust!.perExample, res.robust.perExample);
        log(inp)(`AutoAttack ${m.name}: PGD ${ev.robust!.accuracy.toFixed(2)}% → AA ${res.robust.accuracy.toFixed(2)}% (gap ${gap.delta.toFixed(2)} pt; ${res.stages.map((s) => `${s.attack} ${s.robustAfter.toFixed(1)}%`).join(', ')}; ${res.seconds.toFixed(0)} s)`);
        out.push({
          name: m.name, file: m.file, sha256: shas[i], clean: res.clean.accuracy, pgd: ev.robust!.accuracy, aa: res.robust.accuracy,
          cleanBits: encodeBits(res.clean.perExample), pgdBits: encodeBits(ev.robust!.perExample), aaBits: encodeBits(res.robust.perExample),
          stages: res.stages.map((s) => ({ attack: s.attack, attacked: s.attacked, fooled: s.fooled, robustAfter: s.robustAfter, seconds: s.seconds })),
          gap, seconds: { pgd: ev.seconds, aa: res.seconds },
        });
        ctx.saveProgress({ models: out });
      });
    }
    return {
      ...common(inp, ctx.key, d, { eval: (Date.now() - t0) / 1000 }), kind: 'autoattack', autoattack: aa, pgd: c.eval.attack,
      n: idx ? idx.length : d.test.n, models: out,
    };
  });
  return r.record;
}
