/**
 * AutoAttack robust accuracy over a dataset or a fixed subset, as the reference `run_standard_evaluation`
 * does it: clean accuracy first, then each attack of the suite in turn on every example still
 * robust, in batches of those examples; an example is robust when no attack fooled it. Per-example
 * flags (overall and after each attack) so that paired intervals against PGD and between models
 * work as for `evaluate`. Resumable: with `statePath` the flags are saved after every batch and a
 * killed run continues from the last finished batch.
 */
import * as fs from 'node:fs';
import * as crypto from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import type { Classifier } from '../nn/model.js';
import type { CifarData } from '../data/cifar.js';
import { correctMask } from '../nn/losses.js';
import { resolveAutoAttack, runSuiteAttack, autoAttackSeed, type AutoAttackOptions, type AutoAttackName } from '../attacks/autoattack.js';
import { makeBatch } from '../data/batches.js';
import { Progress, type ProgressOptions } from '../util/progress.js';
import { writeFileAtomic } from '../util/fs.js';
import { encodeBits, decodeBits } from '../util/format.js';
import { evaluate, accuracyRecord, type AccuracyRecord } from './evaluate.js';

/** Options of `evaluateAutoAttack`; defaults in DEFAULT_AUTOATTACK_EVAL. */
export interface AutoAttackEvalOptions {
  /** The suite (merged over DEFAULT_AUTOATTACK: the standard version, eps 8/255, seed 0). */
  attack: Partial<AutoAttackOptions>;
  /** Indices of the examples to use (e.g. from `subsetIndices`); default every example. */
  indices?: Int32Array;
  /** Images per batch of still-robust examples. Default 256. */
  batchSize: number;
  /**
   * Resume file: the flags after every finished batch, written atomically; a run started with the
   * same file, options and `stateKey` continues where it stopped; one with other inputs refuses it.
   * Removed when the run completes. Default none (no resume).
   */
  statePath?: string;
  /** What else identifies the run in the resume file (e.g. the model's hash). Default ''. */
  stateKey: string;
  /** Label of the progress lines. Default 'AutoAttack'. */
  label: string;
  /** Progress line options; `false` prints nothing. Default {} (stderr). */
  progress: Partial<ProgressOptions> | false;
}

/** Defaults: the standard suite, batch 256, every example, no resume file, label 'AutoAttack', progress on. */
export const DEFAULT_AUTOATTACK_EVAL: AutoAttackEvalOptions = { attack: {}, batchSize: 256, stateKey: '', label: 'AutoAttack', progress: {} };

/** One attack's share of a suite run. */
export interface AutoAttackStage {
  attack: AutoAttackName;
  /** Examples it attacked (those still robust when it started). */
  attacked: number;
  /** Of those, how many it fooled. */
  fooled: number;
  /** Robust accuracy (percent of all evaluated examples) after it. */
  robustAfter: number;
  /** 1/0 per evaluated example: still robust after this attack. */
  perExample: Uint8Array;
  /** Wall time of this attack, summed over the processes of a resumed run. */
  seconds: number;
}

/** Result of `evaluateAutoAttack`. */
export interface AutoAttackEvaluation {
  /** Number of examples evaluated. */
  n: number;
  /** Dataset indices evaluated, in order; `null` means 0..n−1. */
  indices: Int32Array | null;
  clean: AccuracyRecord;
  /** Robust under the whole suite (the pointwise worst case). */
  robust: AccuracyRecord;
  stages: AutoAttackStage[];
  /** Effective suite options. */
  attack: AutoAttackOptions;
  seconds: number;
  /** True when part of the run came from a resume file. */
  resumed: boolean;
}

interface State {
  format: 'rift-bn autoattack state';
  key: string;
  clean: string;
  robust: string;
  /** Stages finished, and the batches finished in the current one. */
  stages: Array<{ attack: AutoAttackName; attacked: number; fooled: number; robust: string; seconds: number }>;
  current: { attack: AutoAttackName; idx: number[]; batchesDone: number; fooled: number; seconds: number } | null;
}


function readState(file: string, key: string, n: number): State | null {
  if (!fs.existsSync(file)) return null;
  let s: State;
  try {
    s = JSON.parse(fs.readFileSync(file, 'utf8')) as State;
  } catch (e) {
    throw new Error(`AutoAttack resume file ${file}: expected JSON, found unreadable content (${(e as Error).message.split('\n')[0]}); delete it to start over`);
  }
  if (s.format !== 'rift-bn autoattack state') throw new Error(`AutoAttack resume file ${file}: expected format 'rift-bn autoattack state', found ${JSON.stringify(s.format)}`);
  if (s.key !== key) throw new Error(`AutoAttack resume file ${file}: it belongs to another run (model, examples or options differ); delete it to start over`);
  if (typeof s.clean !== 'string' || s.clean.length !== n || typeof s.robust !== 'string' || s.robust.length !== n) throw new Error(`AutoAttack resume file ${file}: expected flags for ${n} examples, found ${s.clean?.length}`);
  return s;
}

/**
 * AutoAttack on `model` (inference mode) over `data` (or `indices` of it): clean accuracy, then
 * the suite's attacks in order on the examples still robust, in batches of `batchSize` of them.
 * Batch j of attack i is seeded with autoAttackSeed(seed, i, j). No tensor outlives the call;
 * the model is untouched.
 */
export async function evaluateAutoAttack(
  model: Classifier, data: Pick<CifarData, 'images' | 'labels' | 'n'>, options: Partial<AutoAttackEvalOptions> = {},
): Promise<AutoAttackEvaluation> {
  const o: AutoAttackEvalOptions = { ...DEFAULT_AUTOATTACK_EVAL, ...options };
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new Error(`evaluateAutoAttack: batchSize must be a positive integer, got ${o.batchSize}`);
  const attack = resolveAutoAttack(o.attack);
  const order = o.indices ? Int32Array.from(o.indices) : Int32Array.from({ length: data.n }, (_, i) => i);
  const n = order.length;
  const key = crypto.createHash('sha256').update(JSON.stringify({ attack, batchSize: o.batchSize, stateKey: o.stateKey, order: Array.from(order) })).digest('hex');
  const t0 = Date.now();
  const say = (label: string, total: number) => (o.progress === false ? undefined : new Progress(label, total, { unit: 'img', ...o.progress }));
  let state = o.statePath ? readState(o.statePath, key, n) : null;
  const resumed = state !== null;
  const save = () => { if (o.statePath && state) writeFileAtomic(o.statePath, JSON.stringify(state)); };

  if (!state) {
    const clean = (await evaluate(model, data, { indices: order, attack: null, batchSize: o.batchSize, label: `${o.label} clean`, progress: o.progress })).clean.perExample;
    state = { format: 'rift-bn autoattack state', key, clean: encodeBits(clean), robust: encodeBits(clean), stages: [], current: null };
    save();
  }
  const robust = decodeBits(state.robust);

  for (const [ai, name] of attack.attacks.entries()) {
    if (ai < state.stages.length) continue;
    if (!state.current || state.current.attack !== name) {
      const idx: number[] = [];
      for (let i = 0; i < n; i++) if (robust[i]) idx.push(i);
      state.current = { attack: name, idx, batchesDone: 0, fooled: 0, seconds: 0 };
    }
    const cur = state.current;
    const batches: number[][] = [];
    for (let s = 0; s < cur.idx.length; s += o.batchSize) batches.push(cur.idx.slice(s, s + o.batchSize));
    const p = say(`${o.label} ${name}`, cur.idx.length);
    let done = batches.slice(0, cur.batchesDone).reduce((a, b) => a + b.length, 0);
    for (let j = cur.batchesDone; j < batches.length; j++) {
      const tb = Date.now();
      const { x, y } = makeBatch(data, batches[j].map((i) => order[i]));
      try {
        const adv = runSuiteAttack(model, name, x, y, attack, autoAttackSeed(attack.seed, ai, j));
        const logits = model.forward(adv, { training: false });
        const still = correctMask(logits, y);
        tf.dispose([adv, logits]);
        batches[j].forEach((i, q) => { if (!still[q]) { robust[i] = 0; cur.fooled++; } });
      } finally {
        tf.dispose([x, y]);
      }
      cur.batchesDone = j + 1;
      cur.seconds += (Date.now() - tb) / 1000;
      state.robust = encodeBits(robust);
      save();
      done += batches[j].length;
      p?.update(done, `fooled ${cur.fooled}`);
      await new Promise((r) => setImmediate(r));
    }
    if (batches.length === 0) p?.update(0);
    state.stages.push({ attack: name, attacked: cur.idx.length, fooled: cur.fooled, robust: encodeBits(robust), seconds: cur.seconds });
    state.current = null;
    save();
  }
  if (o.statePath) fs.rmSync(o.statePath, { force: true });
  const clean = decodeBits(state.clean);
  return {
    n,
    indices: o.indices ? Int32Array.from(o.indices) : null,
    clean: accuracyRecord(clean),
    robust: accuracyRecord(Uint8Array.from(robust)),
    stages: state.stages.map((s) => {
      const m = decodeBits(s.robust);
      return { attack: s.attack, attacked: s.attacked, fooled: s.fooled, robustAfter: accuracyRecord(m).accuracy, perExample: m, seconds: s.seconds };
    }),
    attack,
    seconds: (Date.now() - t0) / 1000,
    resumed,
  };
}

/** One line summarising a suite run, e.g. "clean 61.20% (612/1000)  AutoAttack (standard) 28.10% (281/1000)  [apgd-ce 29.0%, …]". */
export function formatAutoAttack(r: AutoAttackEvaluation, label = 'AutoAttack'): string {
  const acc = (a: AccuracyRecord) => `${a.accuracy.toFixed(2)}% (${a.correct}/${a.total})`;
  return `clean ${acc(r.clean)}  ${label} ${acc(r.robust)}  [${r.stages.map((s) => `${s.attack} ${s.robustAfter.toFixed(2)}%`).join(', ')}; ${r.n} images, ${r.seconds.toFixed(1)} s]`;
}
