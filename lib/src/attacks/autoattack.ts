/**
 * AutoAttack (Croce & Hein, ICML 2020), L∞, as the reference `autoattack.py` runs its
 * 'standard' version: APGD-CE (100 iterations) → APGD-T (9 targets) → FAB-T (9 targets) →
 * Square (5000 queries), each attack run only on the points every earlier attack left robust;
 * an example is robust when no attack fooled it (the pointwise worst case).
 * This file is the attack on one batch in memory; `evaluateAutoAttack` (method/autoattack.ts)
 * runs it over a dataset, batch by batch and resumably, with per-example flags.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Classifier } from '../nn/model.js';
import { correctMask } from '../nn/losses.js';
import { apgd, apgdTargeted, replaceRows } from './apgd.js';
import { fabTargeted } from './fab.js';
import { square } from './square.js';

/** An attack of the suite, by the reference's name. */
export type AutoAttackName = 'apgd-ce' | 'apgd-dlr' | 'apgd-t' | 'fab-t' | 'square';

/** Every attack name `version: 'custom'` accepts. */
export const AUTOATTACK_NAMES: readonly AutoAttackName[] = ['apgd-ce', 'apgd-dlr', 'apgd-t', 'fab-t', 'square'];

/** The standard version's attacks, in order. */
export const STANDARD_ATTACKS: readonly AutoAttackName[] = ['apgd-ce', 'apgd-t', 'fab-t', 'square'];

/** Options of the suite; every field is optional and defaults to DEFAULT_AUTOATTACK. */
export interface AutoAttackOptions {
  /** L∞ radius. Default 8/255. */
  eps: number;
  /**
   * 'standard': STANDARD_ATTACKS with the reference's settings (steps 100, targets 9, queries
   * 5000; changing any of them, or `attacks`, is an error). 'custom': the attacks and settings
   * given here. Default 'standard'.
   */
  version: 'standard' | 'custom';
  /** Attacks in the order they run (custom only). Default STANDARD_ATTACKS. */
  attacks: readonly AutoAttackName[];
  /** Iterations of APGD and FAB. Default 100. */
  steps: number;
  /** Target classes of APGD-T and FAB-T. Default 9 (must be ≤ classes − 1). */
  targets: number;
  /** Square's query budget. Default 5000. */
  queries: number;
  /** Seed; each attack and batch derives its own with `autoAttackSeed`. Default 0. */
  seed: number;
}

/** AutoAttack defaults: eps 8/255, the standard version (APGD-CE, APGD-T, FAB-T, Square; 100 steps, 9 targets, 5000 queries), seed 0. */
export const DEFAULT_AUTOATTACK: AutoAttackOptions = {
  eps: 8 / 255, version: 'standard', attacks: STANDARD_ATTACKS, steps: 100, targets: 9, queries: 5000, seed: 0,
};

/**
 * Completes and checks suite options: one-line errors name the option, what was expected and
 * what was found. The standard version refuses changed settings rather than run something else
 * under its name.
 */
export function resolveAutoAttack(options: Partial<AutoAttackOptions> = {}): AutoAttackOptions {
  const o: AutoAttackOptions = { ...DEFAULT_AUTOATTACK, ...options };
  const bad = (k: string, want: string, v: unknown) => new Error(`AutoAttack option '${k}' must be ${want}, got ${v}`);
  if (o.version !== 'standard' && o.version !== 'custom') throw bad('version', "'standard' or 'custom'", o.version);
  if (!(o.eps >= 0)) throw bad('eps', '≥ 0', o.eps);
  if (o.version === 'standard') {
    for (const k of ['steps', 'targets', 'queries'] as const)
      if (o[k] !== DEFAULT_AUTOATTACK[k]) throw bad(k, `${DEFAULT_AUTOATTACK[k]} in the standard version (use version 'custom' to change it)`, o[k]);
    if (o.attacks.join(',') !== STANDARD_ATTACKS.join(',')) throw bad('attacks', `${STANDARD_ATTACKS.join(',')} in the standard version (use version 'custom')`, o.attacks.join(','));
  }
  if (o.attacks.length === 0) throw bad('attacks', 'a non-empty list', '[]');
  for (const a of o.attacks) if (!AUTOATTACK_NAMES.includes(a)) throw bad('attacks', `a list of ${AUTOATTACK_NAMES.join(', ')}`, a);
  if (new Set(o.attacks).size !== o.attacks.length) throw bad('attacks', 'a list without repeats', o.attacks.join(','));
  if (!Number.isInteger(o.steps) || o.steps < 1) throw bad('steps', 'an integer ≥ 1', o.steps);
  if (!Number.isInteger(o.targets) || o.targets < 1) throw bad('targets', 'an integer ≥ 1', o.targets);
  if (!Number.isInteger(o.queries) || o.queries < 0) throw bad('queries', 'an integer ≥ 0', o.queries);
  return { ...o, attacks: [...o.attacks] };
}

/** A short label of the suite, e.g. "AutoAttack (standard)" or "AutoAttack (custom: apgd-ce, square×1000)". */
export function autoAttackLabel(options: Partial<AutoAttackOptions> = {}): string {
  const o = resolveAutoAttack(options);
  if (o.version === 'standard') return 'AutoAttack (standard)';
  const part = (a: AutoAttackName) => a === 'square' ? `square×${o.queries}` : a.startsWith('apgd') || a === 'fab-t' ? `${a}-${o.steps}${a.endsWith('-t') ? `×${o.targets}t` : ''}` : a;
  return `AutoAttack (custom: ${o.attacks.map(part).join(', ')})`;
}

/**
 * The seed of batch `batch` of attack number `attackIndex` (its place in the list) in a suite
 * run seeded with `seed`. Inside an attack, run r (restart, or target × restart) draws with
 * seed + r, so batches are 64 apart: every (attack, batch, run) stream is distinct for fewer
 * than 64 runs per attack and 1024 batches per attack. The one rule the batch and dataset
 * runners share.
 */
export function autoAttackSeed(seed: number, attackIndex: number, batch: number): number {
  return (seed + attackIndex * 65536 + batch * 64) >>> 0;
}

/**
 * One attack of the suite on (x, y) with the suite's settings and the given seed; a new
 * [b,32,32,3] tensor the caller disposes (x where the attack found nothing).
 */
export function runSuiteAttack(model: Classifier, name: AutoAttackName, x: tf.Tensor4D, y: tf.Tensor1D, o: AutoAttackOptions, seed: number): tf.Tensor4D {
  switch (name) {
    case 'apgd-ce': return apgd(model, x, y, { eps: o.eps, steps: o.steps, loss: 'ce', seed });
    case 'apgd-dlr': return apgd(model, x, y, { eps: o.eps, steps: o.steps, loss: 'dlr', seed });
    case 'apgd-t': return apgdTargeted(model, x, y, { eps: o.eps, steps: o.steps, targets: o.targets, seed });
    case 'fab-t': return fabTargeted(model, x, y, { eps: o.eps, steps: o.steps, targets: o.targets, seed });
    case 'square': return square(model, x, y, { eps: o.eps, queries: o.queries, pInit: 0.8, seed });
  }
}

/** What `autoAttackDetailed` returns: the worst-case points and which examples each stage left robust. */
export interface AutoAttackBatchResult {
  /** [b,32,32,3]: the first attack's adversarial point for each fooled example, x elsewhere. Caller disposes. */
  xAdv: tf.Tensor4D;
  /** 1 where the model classifies x correctly. */
  clean: Uint8Array;
  /** 1 where no attack fooled the model (robust under the suite). */
  robust: Uint8Array;
  /** Per attack in run order: 1 where the example was still robust after it. */
  after: Array<{ attack: AutoAttackName; robust: Uint8Array }>;
}

/**
 * AutoAttack on one batch x [b,32,32,3] in [0,1], labels y [b] (BN in inference mode; the
 * model is untouched). Each attack runs on the examples still robust; an example counts as
 * fooled by an attack when the model misclassifies the returned point (re-evaluated, as the
 * reference does). Attack i uses seed autoAttackSeed(seed, i, batch).
 */
export function autoAttackDetailed(model: Classifier, x: tf.Tensor4D, y: tf.Tensor1D, options: Partial<AutoAttackOptions> = {}, batch = 0): AutoAttackBatchResult {
  const o = resolveAutoAttack(options);
  const b = x.shape[0];
  const logits = model.forward(x, { training: false });
  const clean = correctMask(logits, y);
  logits.dispose();
  const robust = Uint8Array.from(clean);
  let xAdv = tf.clone(x);
  const after: AutoAttackBatchResult['after'] = [];
  for (const [ai, name] of o.attacks.entries()) {
    const idx: number[] = [];
    for (let i = 0; i < b; i++) if (robust[i]) idx.push(i);
    if (idx.length > 0) {
      const ids = tf.tensor1d(idx, 'int32');
      const xs = tf.gather(x, ids) as tf.Tensor4D;
      const ys = tf.gather(y, ids) as tf.Tensor1D;
      try {
        const adv = runSuiteAttack(model, name, xs, ys, o, autoAttackSeed(o.seed, ai, batch));
        const advLogits = model.forward(adv, { training: false });
        const still = correctMask(advLogits, ys);
        const fooled = new Uint8Array(b);
        idx.forEach((i, j) => { if (!still[j]) { fooled[i] = 1; robust[i] = 0; } });
        const merged = replaceRows(xAdv, adv, idx, fooled);
        tf.dispose([adv, advLogits, xAdv]);
        xAdv = merged;
      } catch (e) {
        xAdv.dispose();
        throw e;
      } finally {
        tf.dispose([ids, xs, ys]);
      }
    }
    after.push({ attack: name, robust: Uint8Array.from(robust) });
  }
  return { xAdv, clean, robust, after };
}

/**
 * AutoAttack adversarial examples for x [b,32,32,3] in [0,1] with int labels y [b]: the suite's
 * worst case per example (see `autoAttackDetailed`). Returns a new tensor the caller disposes.
 */
export function autoAttack(model: Classifier, x: tf.Tensor4D, y: tf.Tensor1D, options: Partial<AutoAttackOptions> = {}): tf.Tensor4D {
  return autoAttackDetailed(model, x, y, options).xAdv;
}
