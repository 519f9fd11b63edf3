/**
 * PGD adversarial training (Madry et al.) with per-epoch evaluation, best/last checkpoints,
 * a JSON Lines metrics log, and resume after any interruption (kill -9 included).
 *
 * Run folder layout (`outDir`):
 *   last.rbn        state after the last completed epoch (+ optimizer momentum as 'optim/<key>')
 *   best.rbn        state of the epoch with the best robust evaluation accuracy
 *   metrics.jsonl   one JSON line per completed epoch
 *   config.json     the effective config (a resumed run must match it)
 * Every file is written atomically; the checkpoint is written before the log line and carries
 * the epoch's metrics, so the log can always be rebuilt up to the checkpoint's epoch.
 * Randomness of epoch e (shuffling, augmentation, attack starts) derives from seed and e only,
 * so a resumed run repeats exactly what an uninterrupted one does.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createResNet18 } from '../nn/model.js';
import { loadCifar, splitIdentity } from '../data/cifar.js';
import { SGD } from '../nn/optim.js';
import { trainEpoch } from '../method/train.js';
import { evaluate } from '../method/evaluate.js';
import { readCheckpoint, readCheckpointHeader, loadCheckpointInto, saveCheckpoint, type Provenance } from '../nn/checkpoint.js';
import { lrAt, type ExperimentConfig } from './config.js';
import { engineInfo } from '../engine/engine.js';
import { baseRunDir } from '../util/paths.js';
import { writeFileAtomic } from '../util/fs.js';
import { formatDuration } from '../util/format.js';
import { fixedSubset } from '../data/subsets.js';
import { importedBaseFromEnv, importedBaseEnvName } from './imported.js';
import { readOnlyFromEnv } from './cache.js';
import { acquireLock } from '../util/lock.js';

/**
 * One completed PGD-AT epoch (a metrics.jsonl line): lr, mean step loss on adversarial batches, clean and robust (evalAttack)
 * accuracy in percent on the evalN subset, train/eval seconds and training images/s.
 */
export interface EpochMetrics {
  epoch: number;
  lr: number;
  trainLoss: number;
  /** Accuracy (percent) on the adversarial training examples. */
  trainAdvAccuracy: number;
  clean: number;
  robust: number;
  trainSeconds: number;
  evalSeconds: number;
  imagesPerSecond: number;
}

/** Per-call options of `trainAdversarial` (what to train comes from `config.advTrain`). */
export interface AdvTrainRunOptions {
  /** Run folder (created). */
  outDir: string;
  /** Stop after this many epochs in this call (for tests and time-boxed sessions); default: all. */
  maxEpochsThisCall?: number;
  /** Extra provenance (command line, commit). */
  provenance?: Provenance;
  /** Log sink for one line per epoch. Default console.log. */
  log?: (line: string) => void;
  /** Progress lines. Default true. */
  progress?: boolean;
}

/**
 * Outcome of one `trainAdversarial` call: epochs done so far, whether all `advTrain.epochs` are done, the epoch it resumed
 * after (0 = fresh run), every epoch's metrics (resumed ones included) and the best-robust epoch (null if none).
 */
export interface AdvTrainRunResult {
  outDir: string;
  epochsDone: number;
  finished: boolean;
  resumedFrom: number;
  history: EpochMetrics[];
  best: EpochMetrics | null;
}

const OPTIM_PREFIX = 'optim/';

function readLog(file: string): EpochMetrics[] {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).flatMap((l) => {
    try { return [JSON.parse(l) as EpochMetrics]; } catch { return []; } // a torn last line from a kill
  });
}

/** Which fields of a run folder's stored config.json differ from `now` ("a.b: stored → now", ...), or why it cannot be read. */
function configDifferences(storedJson: string, now: unknown): string {
  let stored: unknown;
  try {
    stored = JSON.parse(storedJson);
  } catch (e) {
    return `the stored file is not valid JSON: ${(e as Error).message}`;
  }
  const out: string[] = [];
  const walk = (a: unknown, b: unknown, p: string): void => {
    const isObj = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
    if (isObj(a) && isObj(b)) {
      const keys = new Set([...Object.keys(a as object), ...Object.keys(b as object)]);
      for (const k of keys) walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], p ? `${p}.${k}` : k);
    } else if (JSON.stringify(a) !== JSON.stringify(b)) {
      out.push(`${p}: stored ${JSON.stringify(a) ?? 'nothing'} → now ${JSON.stringify(b) ?? 'nothing'}`);
    }
  };
  walk(stored, now, '');
  return out.length ? out.join('; ') : 'same values, different formatting';
}

/** Trains (or resumes) a PGD-AT ResNet-18 as `config.advTrain` says. */
export async function trainAdversarial(config: ExperimentConfig, options: AdvTrainRunOptions): Promise<AdvTrainRunResult> {
  const t = config.advTrain;
  const log = options.log ?? ((l: string) => console.log(l));
  const dir = options.outDir;
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) throw new Error(`run folder ${dir} is a file; pass a folder (--out)`);
  const files = { last: path.join(dir, 'last.rbn'), best: path.join(dir, 'best.rbn'), log: path.join(dir, 'metrics.jsonl'), config: path.join(dir, 'config.json') };
  // Only what determines the trained weights: other stages' settings may change freely.
  const runConfig = { profile: config.profile, dataset: config.dataset, advTrain: config.advTrain };
  const configJson = JSON.stringify(runConfig, null, 2);
  const hasConfig = fs.existsSync(files.config);
  if (hasConfig) {
    const old = fs.readFileSync(files.config, 'utf8');
    if (old !== configJson) {
      const fields = configDifferences(old, runConfig);
      throw new Error(`${files.config}: this run folder was started with another config (${fields}); use a new --out folder (or delete it) to train with this one`);
    }
  }

  // Everything that can fail on bad input (data, a mismatched last.rbn) runs before the first
  // write, so a failed start leaves the folder as it was.
  const train = loadCifar({ dataset: config.dataset, split: 'train' });
  const test = loadCifar({ dataset: config.dataset, split: 'test' });
  const trainIdx = fixedSubset(train, t.trainN);
  const evalIdx = fixedSubset(test, t.evalN);
  const model = createResNet18({ width: t.width, numClasses: train.numClasses }, t.seed);
  const opt = new SGD(model.trainableVariables(), { lr: t.lr, momentum: t.momentum, weightDecay: t.weightDecay });
  const keyOf = new Map(model.stateKeys().map((k) => [model.variable(k).name, k]));
  const nameOf = new Map([...keyOf].map(([n, k]) => [k, n]));

  let start = 0;
  let history: EpochMetrics[] = [];
  try {
    if (fs.existsSync(files.last)) {
      const ck = readCheckpoint(files.last);
      try {
        loadCheckpointInto(model, ck);
      } catch (e) {
        throw new Error(`${files.last}: cannot resume this run (${(e as Error).message}); use a new --out folder (or delete it) to train with this config`);
      }
      // A run continues on the data it started on (older checkpoints did not record it).
      const was = (ck.header.provenance.data as { train?: string } | undefined)?.train;
      if (was !== undefined && was !== splitIdentity(train)) {
        throw new Error(`${files.last}: this run was trained on "${was}", but the train data now is "${splitIdentity(train)}"; use a new --out folder (or delete it) to train on this data`);
      }
      const optState: Record<string, Float32Array> = {};
      for (const [k, v] of ck.tensors) if (k.startsWith(OPTIM_PREFIX)) optState[nameOf.get(k.slice(OPTIM_PREFIX.length))!] = Float32Array.from(v);
      opt.loadStateArrays(optState);
      start = ck.header.extra.epochsDone as number;
      // Keep log lines up to the checkpoint; rebuild the last one from the checkpoint if the kill came between the two writes.
      history = readLog(files.log).filter((m) => m.epoch <= start);
      const fromCk = ck.header.extra.history as EpochMetrics[] | undefined;
      if (fromCk && history.length < fromCk.length) history = fromCk;
    }
    fs.mkdirSync(dir, { recursive: true });
    if (!hasConfig) writeFileAtomic(files.config, configJson);
    if (start > 0) {
      writeFileAtomic(files.log, history.map((m) => JSON.stringify(m) + '\n').join(''));
      log(`resuming ${dir} after epoch ${start}/${t.epochs}`);
    }
    const resumedFrom = start;
    const stopAt = Math.min(t.epochs, start + (options.maxEpochsThisCall ?? Infinity));
    const runStart = Date.now();
    for (let e = start; e < stopAt; e++) {
      opt.lr = lrAt(t, e);
      const r = await trainEpoch(model, opt, train, {
        indices: trainIdx, batchSize: t.batchSize, seed: (t.seed * 1_000_003 + e) >>> 0, augment: true,
        attack: t.attack,
        label: `epoch ${e + 1}/${t.epochs} train`, progress: options.progress === false ? false : {},
      });
      const ev = await evaluate(model, test, {
        indices: evalIdx, attack: { ...t.evalAttack, seed: e }, label: `epoch ${e + 1}/${t.epochs} eval`,
        progress: options.progress === false ? false : {},
      });
      const m: EpochMetrics = {
        epoch: e + 1, lr: opt.lr, trainLoss: r.loss, trainAdvAccuracy: r.accuracy, clean: ev.clean.accuracy, robust: ev.robust!.accuracy,
        trainSeconds: r.seconds, evalSeconds: ev.seconds, imagesPerSecond: r.images / r.seconds,
      };
      history.push(m);
      const best = history.reduce((a, b) => (b.robust > a.robust ? b : a));
      const provenance: Provenance = {
        data: {
          dataset: config.dataset, trainN: trainIdx ? trainIdx.length : train.n, evalN: evalIdx ? evalIdx.length : test.n, trainSubset: train.subset,
          train: splitIdentity(train), test: splitIdentity(test),
        },
        profile: config.profile, seed: t.seed, engine: { ...engineInfo() }, config: runConfig as unknown as Record<string, unknown>, ...options.provenance,
      };
      const optTensors = Object.fromEntries(Object.entries(opt.stateArrays()).map(([n, v]) => [OPTIM_PREFIX + keyOf.get(n)!, { shape: [v.length], values: v }]));
      if (best.epoch === m.epoch) saveCheckpoint(files.best, model, { provenance, metrics: { ...m }, extra: { epochsDone: e + 1 } });
      saveCheckpoint(files.last, model, { provenance, metrics: { ...m }, extra: { epochsDone: e + 1, history }, extraTensors: optTensors });
      fs.appendFileSync(files.log, JSON.stringify(m) + '\n');
      const elapsed = (Date.now() - runStart) / 1000;
      const eta = (elapsed / (e + 1 - resumedFrom)) * (t.epochs - e - 1);
      log(`epoch ${e + 1}/${t.epochs} lr ${m.lr.toExponential(1)} loss ${m.trainLoss.toFixed(4)} adv-train ${m.trainAdvAccuracy.toFixed(2)}% | ` +
        `clean ${m.clean.toFixed(2)}% PGD-${t.evalAttack.steps} ${m.robust.toFixed(2)}% | ${(m.trainSeconds + m.evalSeconds).toFixed(0)} s, ETA ${formatDuration(eta)}`);
    }
    const best = history.length ? history.reduce((a, b) => (b.robust > a.robust ? b : a)) : null;
    return { outDir: dir, epochsDone: stopAt, finished: stopAt === t.epochs, resumedFrom, history, best };
  } finally {
    opt.dispose();
    model.dispose();
  }
}

/**
 * The per-epoch log of a run folder (`<outDir>/metrics.jsonl`, one line per finished epoch;
 * a torn last line from a kill is skipped). Throws if the folder has no log.
 */
export function readRunMetrics(outDir: string): EpochMetrics[] {
  const file = path.join(outDir, 'metrics.jsonl');
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: ${outDir} holds no training run`);
  return readLog(file);
}

/** Path of a run folder's checkpoint: 'best' (best robust evaluation accuracy) or 'last'. */
export function runCheckpointPath(outDir: string, which: 'best' | 'last' = 'best'): string {
  return path.join(outDir, `${which}.rbn`);
}



/**
 * The base checkpoint a config runs on, decided here only: the imported base named for its
 * dataset (env RIFT_BASE_<DATASET>, set by `npm start -- --base`; see experiments/imported.ts),
 * else `best.rbn` of the profile's PGD-AT run folder (which may not exist yet).
 */
export function baseCheckpointPath(config: Pick<ExperimentConfig, 'dataset' | 'profile'>): string {
  return importedBaseFromEnv(config.dataset) ?? runCheckpointPath(baseRunDir(config), 'best');
}

/**
 * The base checkpoint of `config` (`baseCheckpointPath`). An imported base is returned as is.
 * Otherwise the profile's run must be finished; a missing or unfinished run is trained (or
 * resumed) when `train` is true (default: only for the smoke profile, and not when `readOnlyFromEnv()`), else an error names the
 * command that trains it.
 */
export async function ensureBaseCheckpoint(config: ExperimentConfig, options: { train?: boolean; log?: (l: string) => void; progress?: boolean } = {}): Promise<string> {
  const file = baseCheckpointPath(config);
  if (importedBaseFromEnv(config.dataset)) return file;
  const dir = baseRunDir(config);
  if (baseRunFinished(config)) return file;
  // A read-only cache (render-only notebooks after a sweep) computes nothing, a base model included.
  if (!(options.train ?? (config.profile === 'smoke' && !readOnlyFromEnv()))) {
    if (config.profile === 'imported') {
      throw new Error(`profile imported runs on a model you bring: npm start -- --profile imported --base <model.pt> --normalization <cifar10|none|…> (no ${importedBaseEnvName(config.dataset)} is set)`);
    }
    throw new Error(`base checkpoint ${file} is missing or its run is unfinished: run \`npm run train -- --dataset ${config.dataset} --profile ${config.profile}\` (resumes if interrupted)`);
  }
  // One trainer per run folder (sweep workers, notebooks training smoke on demand); the run resumes from last.rbn.
  const lock = await acquireLock(path.join(dir, 'train.lock'), {
    label: `PGD-AT ${config.dataset} ${config.profile}`, done: () => baseRunFinished(config),
    onWait: (o) => (options.log ?? console.log)(`${dir}: being trained by ${o.host} pid ${o.pid}; waiting for it`),
  });
  try {
    if (lock && !baseRunFinished(config)) await trainAdversarial(config, { outDir: dir, log: options.log, progress: options.progress });
  } finally {
    lock?.release();
  }
  return file;
}

/**
 * True when the profile's own PGD-AT run (`baseRunDir`; an imported base is not looked at) is
 * finished: its last.rbn has every epoch and its best.rbn exists. Reads headers only, so it is
 * cheap enough to poll.
 */
export function baseRunFinished(config: ExperimentConfig): boolean {
  const dir = baseRunDir(config);
  const last = runCheckpointPath(dir, 'last');
  if (!fs.existsSync(last) || !fs.existsSync(runCheckpointPath(dir, 'best'))) return false;
  return (readCheckpointHeader(last).extra.epochsDone as number) >= config.advTrain.epochs;
}
