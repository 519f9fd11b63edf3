/**
 * Per-stage timing of a reproduction on the active backend: each stage of the pipeline (PGD-AT
 * epoch, PGD-10 evaluation, clean evaluation, MRC, fine-tuning epoch) is run with the library's
 * own functions on a sample of images, and its rate is projected linearly to the profile's
 * stage size. Every stage is a loop over batches of identical cost, so the projection is
 * rate × size; the measured sample size is part of every record so the reader can judge it.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { createResNet18, type Network } from '../nn/model.js';
import { loadCifar, type CifarData } from '../data/cifar.js';
import { trainEpoch } from '../method/train.js';
import { evaluate } from '../method/evaluate.js';
import { makeAdversarialSet, computeMRC } from '../method/mrc.js';
import { SGD } from '../nn/optim.js';
import type { PGDOptions } from '../attacks/pgd.js';
import type { ExperimentConfig } from './config.js';
import { attackLabel } from '../util/format.js';
import { subsetIndices } from '../data/subsets.js';

/** A timed pipeline stage: PGD-AT epoch, PGD or clean evaluation, MRC of one module, fine-tuning epoch (one BN layer or all). */
export type StageName = 'pgd-at-epoch' | 'eval-pgd' | 'eval-clean' | 'mrc-module' | 'finetune-epoch-bn' | 'finetune-epoch-full';

/** One stage's measurement on a sample and its linear projection to the profile's stage size. */
export interface StageTiming {
  stage: StageName;
  /** What the projected size counts, in words (e.g. "50000 training images"). */
  unit: string;
  /** Images in the timed sample (for MRC: size of the fixed adversarial set). */
  sampleImages: number;
  /** Seconds of the timed sample. */
  sampleSeconds: number;
  /** Images per second over the sample (MRC: adversarial-set images × ascent epochs per second). */
  imagesPerSecond: number;
  /** The profile's size of the stage and the projected seconds for it. */
  projectedSize: number;
  projectedSeconds: number;
}

/** Options of `benchStages`; defaults in DEFAULT_STAGE_BENCH. */
export interface StageBenchOptions {
  /** Images per timed sample (rounded down to whole batches for training stages). Default 1024. */
  images: number;
  /** An untimed warm-up batch before each stage (primitive creation, JIT). Default true. */
  warmup: boolean;
  /** Model to time; default a fresh ResNet-18 of the profile's width (speed does not depend on the weights). */
  model?: Network;
  /** Stages to run. Default all. */
  stages: StageName[];
}

/** Every stage `benchStages` knows, in pipeline order (also the order it runs them). */
export const STAGE_NAMES: readonly StageName[] = ['pgd-at-epoch', 'eval-pgd', 'eval-clean', 'mrc-module', 'finetune-epoch-bn', 'finetune-epoch-full'];

/** Stage-bench defaults: 1024-image samples, a warm-up batch per stage, every stage, a fresh model. */
export const DEFAULT_STAGE_BENCH: StageBenchOptions = { images: 1024, warmup: true, stages: [...STAGE_NAMES] };

/**
 * Times every stage of `config` on the active backend (initEngine first). The model is
 * untouched when passed in (its state is snapshotted and restored); no tensor outlives the call.
 */
export async function benchStages(config: ExperimentConfig, options: Partial<StageBenchOptions> = {}): Promise<StageTiming[]> {
  const o: StageBenchOptions = { ...DEFAULT_STAGE_BENCH, ...options };
  if (!Number.isInteger(o.images) || o.images < 2) throw new Error(`benchStages: images must be an integer ≥ 2, got ${o.images}`);
  for (const s of o.stages) if (!STAGE_NAMES.includes(s)) throw new Error(`benchStages: unknown stage '${s}' (known: ${STAGE_NAMES.join(', ')})`);
  const train = loadCifar({ dataset: config.dataset, split: 'train' });
  const test = loadCifar({ dataset: config.dataset, split: 'test' });
  const own = !o.model;
  const model = o.model ?? createResNet18({ width: config.advTrain.width, numClasses: train.numClasses }, 0);
  const snap = model.snapshot();
  const out: StageTiming[] = [];
  const t = config.advTrain;
  const trainIdx = (n: number, batch: number) => subsetIndices(train, { n: Math.max(batch, Math.floor(n / batch) * batch) });
  const fullTrain = t.trainN ?? train.n;
  const ftN = config.finetune.trainN ?? train.n;
  try {
    for (const stage of o.stages) {
      model.restore(snap);
      switch (stage) {
        case 'pgd-at-epoch': {
          const idx = trainIdx(o.images, t.batchSize);
          const r = await timedTrain(model, train, idx, t.batchSize, model.trainableVariables(), { ...t.attack, training: true }, o.warmup);
          out.push(timing(stage, `${fullTrain} training images, PGD-${t.attack.steps} attack`, idx.length, r, fullTrain));
          break;
        }
        case 'eval-pgd':
        case 'eval-clean': {
          const pgd = stage === 'eval-pgd';
          const idx = subsetIndices(test, { n: Math.min(o.images, test.n) });
          const attack = pgd ? config.eval.attack : null;
          if (o.warmup) await evaluate(model, test, { indices: idx.slice(0, Math.min(idx.length, config.eval.batchSize)), attack, batchSize: config.eval.batchSize, progress: false });
          const ev = await evaluate(model, test, { indices: idx, attack, batchSize: config.eval.batchSize, progress: false });
          const size = (pgd ? config.eval.n : config.eval.cleanN) ?? test.n;
          out.push(timing(stage, pgd ? `${size} test images, ${attackLabel(config.eval.attack)}` : `${size} test images, clean`, idx.length, ev.seconds, size));
          break;
        }
        case 'mrc-module': {
          const n = Math.min(o.images, test.n);
          const set = await makeAdversarialSet(model, test, { n, attack: config.mrc.attack, progress: false });
          try {
            const mods = ['layer2.1.conv2', 'layer2.1.bn2'];
            const opts = { eps: config.mrc.eps, lr: config.mrc.lr, batchSize: config.mrc.batchSize, epochs: config.mrc.epochs, candidates: 'conv+linear+bn' as const, progress: false as const };
            if (o.warmup) await computeMRC(model, set, { ...opts, epochs: 1 }, [mods[0]]);
            const t0 = Date.now();
            await computeMRC(model, set, opts, mods);
            const perModule = (Date.now() - t0) / 1000 / mods.length;
            const advN = config.mrc.advN ?? test.n;
            const modules = model.modules().length;
            // Per module: `epochs` ascent passes + `epochs` full-set loss passes over the set.
            out.push({
              stage, unit: `${modules} modules × ${advN} adversarial examples × ${config.mrc.epochs} epochs`, sampleImages: n, sampleSeconds: perModule,
              imagesPerSecond: (n * config.mrc.epochs) / perModule, projectedSize: modules * advN, projectedSeconds: (perModule * modules * advN) / n,
            });
          } finally {
            set.dispose();
          }
          break;
        }
        case 'finetune-epoch-bn':
        case 'finetune-epoch-full': {
          const f = config.finetune;
          const idx = trainIdx(o.images, f.batchSize);
          // The lowest BN layer: backward reaches the bottom of the network, the costliest single-module case.
          const vars = stage === 'finetune-epoch-bn' ? model.trainableVariables(['bn1']) : model.trainableVariables();
          const r = await timedTrain(model, train, idx, f.batchSize, vars, null, o.warmup);
          out.push(timing(stage, `${ftN} clean training images, ${stage === 'finetune-epoch-bn' ? 'one BN layer (bn1) trained' : 'every tensor trained'}`, idx.length, r, ftN));
          break;
        }
      }
    }
    return out;
  } finally {
    model.restore(snap);
    snap.dispose();
    if (own) model.dispose();
  }
}

function timing(stage: StageName, unit: string, n: number, seconds: number, size: number): StageTiming {
  return { stage, unit, sampleImages: n, sampleSeconds: seconds, imagesPerSecond: n / seconds, projectedSize: size, projectedSeconds: (seconds * size) / n };
}

async function timedTrain(
  model: Network, train: CifarData, idx: Int32Array, batchSize: number, vars: tf.Variable[],
  attack: Partial<PGDOptions> | null, warmup: boolean,
): Promise<number> {
  const opt = new SGD(vars, { lr: 1e-3, momentum: 0.9, weightDecay: 5e-4 });
  try {
    if (warmup) await trainEpoch(model, opt, train, { indices: idx.slice(0, batchSize), batchSize, attack, progress: false });
    const r = await trainEpoch(model, opt, train, { indices: idx, batchSize, attack, progress: false });
    return r.seconds;
  } finally {
    opt.dispose();
  }
}
