/**
 * Readings computed from experiment records: the paper's claims beside what the records show,
 * as verdict rows (for a table) and short Markdown paragraphs (for `showMarkdown`). Nothing
 * here is hard-coded about the outcome: every sentence is chosen by comparing numbers, and a
 * claim the records cannot decide (too few epochs, identical curves) says so.
 */
import type { Table1Row } from './tables.js';
import { LAYER_TYPE_LABELS, METHOD_LABELS, evalImagesLabel } from './tables.js';
import { PAPER_RIFT, PAPER_TABLE1, paperBase } from './paper.js';
import { resolveConfig, type ExperimentConfig } from '../experiments/config.js';
import { pairedComparison, summarizeSeeds, formatDeltaCI, formatMeanStd, formatP, type PairedComparison } from '../util/stats.js';
import type { LayerTypeMode } from '../method/finetune.js';
import type { EpochMetrics } from '../experiments/adversarial-training.js';
import { describeSplit, type CifarData } from '../data/cifar.js';
import { attackLabel, formatDuration, signed } from '../util/format.js';
import { decodeBits, finalScore, modelLabel, type ModelIdentity, type BaseRecord, type KDERecord, type LayerTypeRecord, type MRCRecord, type ModelScore, type RestartsRecord, type RiftRecord, type AutoAttackRecord } from '../experiments/records.js';

/** A claim of the paper beside what our records show. */
export type Verdict = {
  claim: string;
  measured: string;
  verdict: 'matches' | 'does not match' | 'not testable';
};

const f2 = (x: number) => x.toFixed(2);
const sgn = (x: number) => signed(x);
const includes0 = (ci: readonly [number, number]) => ci[0] <= 0 && ci[1] >= 0;
const withinNoise = (ci: readonly [number, number]) => (includes0(ci) ? ' (within noise: the interval includes 0)' : '');

/** One binomial standard error (points) of an accuracy `pct` measured on `n` examples. */
export function binomialSE(pct: number, n: number): number {
  const p = Math.min(Math.max(pct / 100, 0), 1);
  return 100 * Math.sqrt((p * (1 - p)) / Math.max(n, 1));
}

/** Markdown bullet list of verdicts: "- **matches** — claim: measured". */
export function verdictMarkdown(vs: readonly Verdict[]): string {
  return vs.map((v) => `- **${v.verdict}** — ${v.claim}: ${v.measured}`).join('\n');
}

type LT = Pick<LayerTypeRecord, 'mode' | 'history' | 'eval'>;

/**
 * Figures 1/2: the paper's five statements on layer-type fine-tuning checked against the curves.
 * "First raises" = epoch 1 vs epoch 0; "loses later" = best fine-tuned robust accuracy minus the
 * last epoch's; "best clean" = best clean accuracy over the fine-tuning epochs; "loses the most
 * robustness" = last epoch's robust accuracy minus epoch 0's.
 */
export function layerTypeVerdicts(records: readonly LT[]): Verdict[] {
  return layerTypeFindings(records).map(({ claim, measured, verdict }) => ({ claim, measured, verdict }));
}

/** A verdict with the paired 95% intervals it rests on (empty when not testable). */
type Finding = Verdict & { decisive: Array<readonly [number, number]> };

/** `layerTypeVerdicts` with, per statement, the intervals that decide it (for readings that weigh the evidence). */
function layerTypeFindings(records: readonly LT[]): Finding[] {
  const by = new Map(records.map((r) => [r.mode, r]));
  const name = (m: LayerTypeMode) => LAYER_TYPE_LABELS[m];
  const out: Finding[] = [];
  for (const m of ['bn-only', 'conv-linear-only'] as const) {
    const r = by.get(m);
    const claim = `${name(m)} first raises both clean and robust accuracy`;
    if (!r || r.history.length < 2) { out.push({ claim, measured: 'no fine-tuning epoch recorded', verdict: 'not testable', decisive: [] }); continue; }
    const { clean: c, robust: rb } = r.history[1].vsBase;
    // A change whose paired interval includes 0 is named, so that a reader takes neither a
    // contradiction nor a confirmation from noise (the verdict itself stays literal: the signs).
    const noise = [includes0(c.ci) ? 'clean' : null, includes0(rb.ci) ? 'robust' : null].filter((x): x is string => x !== null);
    out.push({
      claim,
      measured: `epoch 1 vs 0: clean ${formatDeltaCI(c.delta, c.ci)}, robust ${formatDeltaCI(rb.delta, rb.ci)} pt` +
        (noise.length ? ` (the ${noise.join(' and the ')} change${noise.length > 1 ? 's are' : ' is'} within noise: the paired 95% interval includes 0)` : ''),
      verdict: c.delta > 0 && rb.delta > 0 ? 'matches' : 'does not match',
      decisive: [c.ci, rb.ci],
    });
  }
  {
    const bn = by.get('bn-only'), cl = by.get('conv-linear-only');
    const claim = 'later in fine-tuning, Conv/Linear-only loses more robustness than BN-only';
    const epochs = Math.min(bn?.history.length ?? 0, cl?.history.length ?? 0) - 1;
    if (!bn || !cl || epochs < 2) {
      out.push({ claim, measured: `${Math.max(epochs, 0)} fine-tuning epoch(s): a later loss needs at least 2`, verdict: 'not testable', decisive: [] });
    } else {
      const a = lateLoss(cl), b = lateLoss(bn);
      const cell = (l: LateLoss) => `${f2(l.drop)} [${f2(l.ci[0])}, ${f2(l.ci[1])}]`;
      // The two modes compared directly, paired on the same attacked images at their last epochs.
      const end = pairedComparison(decodeBits(bn.history[bn.history.length - 1].robustBits), decodeBits(cl.history[cl.history.length - 1].robustBits));
      out.push({
        claim,
        measured: `robust drop from the best fine-tuned epoch to the last (paired 95% interval): Conv/Linear-only ${cell(a)} (epoch ${a.best} → ${a.last}), BN-only ${cell(b)} (epoch ${b.best} → ${b.last}) pt; ` +
          `at the last epoch Conv/Linear-only − BN-only robust ${formatDeltaCI(end.delta, end.ci)} pt${withinNoise(end.ci)}`,
        verdict: a.drop > b.drop ? 'matches' : 'does not match',
        decisive: [end.ci],
      });
    }
  }
  const modes = records.map((r) => r.mode);
  const full = by.get('full');
  if (!full || full.history.length < 2 || records.length < 2) {
    out.push({ claim: 'Full fine-tuning gives the best clean accuracy', measured: 'needs Full and another mode with fine-tuning epochs', verdict: 'not testable', decisive: [] });
    out.push({ claim: 'Full fine-tuning loses the most robustness', measured: 'needs Full and another mode with fine-tuning epochs', verdict: 'not testable', decisive: [] });
    return out;
  }
  const bestCleanEpoch = new Map(records.map((r) => [r.mode, r.history.slice(1).reduce((a, h) => (h.clean > a.clean ? h : a))]));
  const lastOf = (r: LT) => r.history[r.history.length - 1];
  const others = records.filter((r) => r.mode !== 'full');
  {
    // Full against the runner-up, paired on the same clean images (each at its own best epoch).
    const fb = bestCleanEpoch.get('full')!;
    const runnerUp = others.reduce((a, r) => (bestCleanEpoch.get(r.mode)!.clean > bestCleanEpoch.get(a.mode)!.clean ? r : a));
    const rb = bestCleanEpoch.get(runnerUp.mode)!;
    const gap = pairedComparison(decodeBits(rb.cleanBits), decodeBits(fb.cleanBits));
    out.push({
      claim: 'Full fine-tuning gives the best clean accuracy',
      measured: `best clean over the epochs: ${modes.map((m) => `${name(m)} ${f2(bestCleanEpoch.get(m)!.clean)}`).join(', ')}; ` +
        `Full − ${name(runnerUp.mode)}: ${formatDeltaCI(gap.delta, gap.ci)} pt (paired 95% interval${includes0(gap.ci) ? ', includes 0' : ''})`,
      verdict: others.every((r) => fb.clean > bestCleanEpoch.get(r.mode)!.clean) ? 'matches' : 'does not match',
      decisive: [gap.ci],
    });
  }
  {
    const change = (r: LT) => lastOf(r).vsBase.robust;
    // Full against the mode that lost the most after it, paired on the same attacked images.
    const nearest = others.reduce((a, r) => (change(r).delta < change(a).delta ? r : a));
    const gap = pairedComparison(decodeBits(lastOf(nearest).robustBits), decodeBits(lastOf(full).robustBits));
    out.push({
      claim: 'Full fine-tuning loses the most robustness',
      measured: `robust change, last epoch vs epoch 0 (paired 95% interval): ${records.map((r) => `${name(r.mode)} ${formatDeltaCI(change(r).delta, change(r).ci)}`).join(', ')} pt; ` +
        `at the last epoch Full − ${name(nearest.mode)} robust ${formatDeltaCI(gap.delta, gap.ci)} pt${withinNoise(gap.ci)}`,
      verdict: others.every((r) => change(full).delta < change(r).delta) && change(full).delta < 0 ? 'matches' : 'does not match',
      decisive: [gap.ci],
    });
  }
  return out;
}

type LateLoss = { drop: number; ci: [number, number]; best: number; last: number };

/** Robust drop from the best fine-tuned epoch to the last, with its paired interval (drop = best − last). */
function lateLoss(r: LT): LateLoss {
  const h = r.history;
  const best = h.slice(1).reduce((a, x) => (x.robust > a.robust ? x : a));
  const last = h[h.length - 1];
  const c = pairedComparison(decodeBits(last.robustBits), decodeBits(best.robustBits));
  return { drop: c.delta, ci: c.ci, best: best.epoch, last: last.epoch };
}

/** Figures 1/2: the verdicts as a paragraph, with the noise yardstick and a warning when curves coincide. */
export function layerTypeReading(records: readonly LT[]): string {
  if (records.length === 0) return '_No layer-type records._';
  const vs = layerTypeVerdicts(records);
  // null = the whole test split (10,000 images for CIFAR-10 and CIFAR-100).
  const n = records[0].eval.n ?? 10_000, nClean = records[0].eval.cleanN ?? 10_000;
  const h0 = records[0].history[0];
  const seR = binomialSE(h0.robust, n), seC = binomialSE(h0.clean, nClean);
  const counts = (['matches', 'does not match', 'not testable'] as const).map((v) => `${vs.filter((x) => x.verdict === v).length} ${v}`).join(', ');
  const same: string[] = [];
  for (let i = 0; i < records.length; i++) {
    for (let j = i + 1; j < records.length; j++) {
      const a = records[i].history, b = records[j].history;
      if (a.length === b.length && a.every((h, e) => h.clean === b[e].clean && h.robust === b[e].robust)) same.push(`${LAYER_TYPE_LABELS[records[i].mode]} = ${LAYER_TYPE_LABELS[records[j].mode]}`);
    }
  }
  const epochs = Math.max(...records.map((r) => r.history.length - 1));
  return [
    `**Reading (computed from the records).** Of the paper's ${vs.length} statements: ${counts}.`,
    '',
    verdictMarkdown(vs),
    '',
    `Noise yardstick: ${nClean === n ? `${n} evaluation images` : `${nClean} clean and ${n} attacked test images`}, so one binomial standard error is ±${f2(seC)} pt on clean and ±${f2(seR)} pt on robust accuracy ` +
      `for one accuracy; differences between epochs or modes are measured on the same images, so the verdicts carry paired 95% bootstrap intervals, the right yardstick for them (a difference whose interval includes 0 is not a trend). ` +
      `${epochs} fine-tuning epoch(s) per mode (the paper does not state its count).`,
    ...(same.length ? ['', `⚠ Identical curves (${same.join('; ')}): the modes cannot be told apart at this scale (e.g. a near-chance model), so the verdicts above mean nothing.`] : []),
  ].join('\n');
}

/** Paired Δ of RiFT with BN against RiFT (same k and seed) on the same examples, final models. */
export type MethodComparisonRow = {
  k: number;
  seed: number;
  robust: PairedComparison;
  clean: PairedComparison;
};

/** RiFT with BN − RiFT per (k, seed) from top-k records, paired on the evaluation examples. */
export function methodComparisons(records: readonly Pick<RiftRecord, 'k' | 'seed' | 'method' | 'raw' | 'interpolated'>[]): MethodComparisonRow[] {
  const out: MethodComparisonRow[] = [];
  for (const a of records.filter((r) => r.method === 'rift')) {
    const b = records.find((r) => r.method === 'rift-bn' && r.k === a.k && r.seed === a.seed);
    if (!b) continue;
    const fa = finalScore(a), fb = finalScore(b);
    out.push({
      k: a.k, seed: a.seed,
      robust: pairedComparison(decodeBits(fa.robustBits), decodeBits(fb.robustBits)),
      clean: pairedComparison(decodeBits(fa.cleanBits), decodeBits(fb.cleanBits)),
    });
  }
  return out.sort((x, y) => x.k - y.k || x.seed - y.seed);
}

/** Table cells of `methodComparisons`. */
export function methodComparisonCells(rows: readonly MethodComparisonRow[]): Array<Record<string, string | number>> {
  return rows.map((r) => ({
    k: r.k, seed: r.seed,
    'robust: RiFT with BN − RiFT [95% CI]': formatDeltaCI(r.robust.delta, r.robust.ci), 'p robust': formatP(r.robust.mcnemarP),
    'clean: RiFT with BN − RiFT [95% CI]': formatDeltaCI(r.clean.delta, r.clean.ci), 'p clean': formatP(r.clean.mcnemarP),
  }));
}

/**
 * Table 1: for how many k RiFT with BN beats RiFT (robust, clean) beside the paper's count, how
 * many Δ-vs-base intervals include 0, the direct paired comparison of the two methods, and the
 * size of the paper's differences against our interval widths.
 */
export function table1Reading(rows: readonly Table1Row[], comparisons: readonly MethodComparisonRow[] = []): string {
  const ks = [...new Set(rows.map((r) => r.k))].sort((a, b) => a - b);
  const pair = (k: number) => ({ a: rows.find((r) => r.k === k && r.method === 'rift'), b: rows.find((r) => r.k === k && r.method === 'rift-bn') });
  const both = ks.filter((k) => pair(k).a && pair(k).b);
  const paper = (k: number, m: string) => PAPER_TABLE1.rows.find((p) => p.k === k && p.method === m);
  const paperKs = both.filter((k) => paper(k, 'rift') && paper(k, 'rift-bn'));
  const winsR = both.filter((k) => pair(k).b!.deltaRobust > pair(k).a!.deltaRobust);
  const winsC = both.filter((k) => pair(k).b!.deltaClean > pair(k).a!.deltaClean);
  const pWinsR = paperKs.filter((k) => paper(k, 'rift-bn')!.robust > paper(k, 'rift')!.robust);
  const pWinsC = paperKs.filter((k) => paper(k, 'rift-bn')!.clean > paper(k, 'rift')!.clean);
  const list = (xs: number[]) => (xs.length ? `k = ${xs.join(', ')}` : 'none');
  const lines = [
    `**Reading (computed from the rows).** ${rows.length} runs, k = ${ks.join(', ')}.`,
    '',
    `- Δ robust: RiFT with BN above RiFT for **${winsR.length} of ${both.length}** k (${list(winsR)}); the paper: ${pWinsR.length} of ${paperKs.length} (${list(pWinsR)}).`,
    `- Δ clean: RiFT with BN above RiFT for **${winsC.length} of ${both.length}** k (${list(winsC)}); the paper: ${pWinsC.length} of ${paperKs.length} (${list(pWinsC)}).`,
  ];
  for (const m of ['rift', 'rift-bn'] as const) {
    const rs = rows.filter((r) => r.method === m);
    const r0 = rs.filter((r) => includes0(r.deltaRobustCI)).length, c0 = rs.filter((r) => includes0(r.deltaCleanCI)).length;
    const neg = rs.filter((r) => r.deltaRobust < 0).length;
    lines.push(`- ${METHOD_LABELS[m]}: the 95% interval of Δ robust includes 0 for ${r0} of ${rs.length} k, of Δ clean for ${c0} of ${rs.length}; Δ robust < 0 for ${neg} of ${rs.length}.`);
  }
  const interp = rows.filter((r) => r.alphas.some((a) => a !== null));
  const atBase = interp.filter((r) => r.alphas.every((a) => a === 0));
  if (atBase.length) {
    lines.push(`- Interpolation fell back to α = 0 (the base model itself: no α on the grid kept robust accuracy within the tolerance while raising clean accuracy) for **${atBase.length} of ${interp.length}** rows (${atBase.map((r) => `${METHOD_LABELS[r.method]} k = ${r.k}`).join(', ')}); their Δ is 0 by construction — the raw fine-tuned scores are in 08-beyond (b) and the records.`);
  }
  if (comparisons.length) {
    const sigR = comparisons.filter((c) => !includes0(c.robust.ci));
    lines.push(`- Direct paired comparison (RiFT with BN − RiFT, same examples): the robust interval excludes 0 for ${sigR.length} of ${comparisons.length} (${sigR.map((c) => `k = ${c.k}: ${sgn(c.robust.delta)}`).join(', ') || 'none'}).`);
  }
  // The yardstick for a difference between the methods is the paired method interval when there is
  // one, else the Δ-vs-base intervals; a zero-width interval (both models are the base, α = 0) says
  // nothing about resolution and is left out.
  const intervals = comparisons.length ? comparisons.map((c) => c.robust.ci) : rows.map((r) => r.deltaRobustCI);
  const half = intervals.map((ci) => (ci[1] - ci[0]) / 2).filter((h) => h > 0).sort((a, b) => a - b);
  const med = half.length ? half[Math.floor((half.length - 1) / 2)] : NaN;
  const paperGaps = paperKs.map((k) => Math.abs(paper(k, 'rift-bn')!.robust - paper(k, 'rift')!.robust));
  if (paperGaps.length && Number.isFinite(med)) {
    const what = comparisons.length ? 'paired RiFT with BN − RiFT robust intervals' : 'Δ-robust intervals';
    const left = intervals.length - half.length;
    lines.push(`- Scale: the paper's robust differences between the methods are ${f2(Math.min(...paperGaps))}–${f2(Math.max(...paperGaps))} pt; the median half-width of our ${what} is ±${f2(med)} pt` +
      `${left ? ` (${left} of zero width left out: both models there are the base itself)` : ''}, so differences of the paper's size ${med > Math.max(...paperGaps) ? 'cannot be resolved at this evaluation size' : 'are within what this evaluation can resolve'}.`);
  }
  return lines.join('\n');
}

/** Figure 3: is RiFT with BN's BN-output distribution closer to init than RiFT's (1-Wasserstein)? */
export function kdeVerdict(rec: Pick<KDERecord, 'models' | 'layer'>): Verdict {
  const w = (n: string) => rec.models.find((m) => m.name === n)?.wassersteinToInit ?? NaN;
  const a = w('RiFT'), b = w('RiFT with BN');
  return {
    claim: `RiFT with BN keeps the output distribution of ${rec.layer} closer to init than RiFT`,
    measured: `1-Wasserstein distance to init: RiFT ${a.toFixed(4)}, RiFT with BN ${b.toFixed(4)}`,
    verdict: !Number.isFinite(a) || !Number.isFinite(b) ? 'not testable' : b < a ? 'matches' : 'does not match',
  };
}

/** Figure 3 reading: the verdict, the layer's role in each method, and mean / std shifts. */
export function kdeReading(
  rec: Pick<KDERecord, 'models' | 'layer' | 'layerChoice' | 'n' | 'advSource'> & Partial<Pick<KDERecord, 'modelState' | 'alphas'>>, bnStats: { rift: string; riftBN: string },
): string {
  const v = kdeVerdict(rec);
  const init = rec.models.find((m) => m.name === 'init')!;
  const role = (name: 'RiFT' | 'RiFT with BN', policy: string) => {
    const m = rec.models.find((x) => x.name === name)!;
    const trained = m.modules.includes(rec.layer);
    const stats = policy === 'all' || (policy === 'selected' && trained);
    return `${name} ${trained ? 'fine-tuned' : 'did not select'} this layer and ${stats ? 're-estimated' : 'kept'} its running statistics (policy '${policy}'); mean ${sgn(m.mean - init.mean)}, std ${sgn(m.std - init.std)} vs init`;
  };
  return [
    `**Reading (computed from the record).** ${verdictMarkdown([v]).slice(2)}.`,
    '',
    `- Layer: ${rec.layer} (${rec.layerChoice}); ${rec.n} test images, adversarial examples crafted against ${rec.advSource === 'own' ? 'each model itself' : 'the base model'}.`,
    ...(rec.modelState
      ? [`- Models: ${rec.modelState === 'raw' ? 'the fine-tuned models before interpolation (kept epoch)' : 'the final (interpolated) models'}` +
        (rec.alphas ? `; interpolation picked α = ${rec.alphas.rift ?? 'off'} for RiFT and α = ${rec.alphas.riftBN ?? 'off'} for RiFT with BN` +
          (rec.modelState === 'final' && (rec.alphas.rift === 0 || rec.alphas.riftBN === 0) ? ' — an α = 0 model is the base model itself, so its distance to init is 0 by construction' : '') : '') + '.']
      : []),
    `- ${role('RiFT', bnStats.rift)}.`,
    `- ${role('RiFT with BN', bnStats.riftBN)}.`,
    '- The distances come from one run and a subsample of the outputs; they describe the shift, not its uncertainty.',
  ].join('\n');
}

/** Paired Δ (b − a) between two scored models on the same examples, clean and robust. */
export function pairedScores(a: Pick<ModelScore, 'cleanBits' | 'robustBits'>, b: Pick<ModelScore, 'cleanBits' | 'robustBits'>): { clean: PairedComparison; robust: PairedComparison } {
  return {
    clean: pairedComparison(decodeBits(a.cleanBits), decodeBits(b.cleanBits)),
    robust: pairedComparison(decodeBits(a.robustBits), decodeBits(b.robustBits)),
  };
}

/**
 * BN-statistics policy ablation (RiFT with BN at one k): the policy with the best Δ robust and
 * Δ clean, each other policy against `reference` (paired), and whether the selection holds a BN
 * layer at all (without one, 'selected' re-estimates nothing, like 'none').
 */
export function bnPolicyReading(runs: ReadonlyArray<{ policy: string; record: Pick<RiftRecord, 'raw' | 'interpolated' | 'modules' | 'k'> }>, bnModules: readonly string[], reference = 'selected'): string {
  if (runs.length === 0) return '_No runs._';
  const fin = (r: (typeof runs)[number]) => finalScore(r.record);
  const best = (key: 'robust' | 'clean') => {
    const top = Math.max(...runs.map((r) => fin(r)[key]));
    const at = runs.filter((r) => fin(r)[key] === top);
    const base = at.filter((r) => r.record.interpolated?.alpha === 0).map((r) => `'${r.policy}'`);
    return `${at.map((r) => `'${r.policy}'`).join(' and ')}${at.length > 1 ? ' (tied)' : ''} at ${f2(top)}%` +
      (base.length ? ` — ${base.join(' and ')} fell back to α = 0, i.e. the base model itself` : '');
  };
  const ref = runs.find((r) => r.policy === reference);
  const selectedBN = runs[0].record.modules.filter((m) => bnModules.includes(m));
  const lines = [
    `**Reading (computed from the records).** RiFT with BN, k = ${runs[0].record.k}, modules ${runs[0].record.modules.join(', ')} — ${selectedBN.length ? `BN layers among them: ${selectedBN.join(', ')}` : "no BN layer among them, so 'selected' re-estimates no statistics and should equal 'none'"}.`,
    '',
    `- Highest robust accuracy: ${best('robust')}; highest clean: ${best('clean')}.`,
  ];
  if (ref) {
    for (const r of runs.filter((x) => x !== ref)) {
      const p = pairedScores(fin(ref), fin(r));
      const sig = (c: PairedComparison) => (includes0(c.ci) ? 'interval includes 0' : 'interval excludes 0');
      lines.push(`- '${r.policy}' − '${reference}': robust ${formatDeltaCI(p.robust.delta, p.robust.ci)} pt (${sig(p.robust)}), clean ${formatDeltaCI(p.clean.delta, p.clean.ci)} pt (${sig(p.clean)}).`);
    }
  }
  return lines.join('\n');
}

/** Interpolation on vs off: per method the α chosen and the paired change it makes (interpolated − raw). */
export function interpolationReading(records: readonly Pick<RiftRecord, 'method' | 'k' | 'raw' | 'interpolated'>[]): string {
  const lines = ['**Reading (computed from the records).** Interpolated model minus the raw fine-tuned model (the best-clean epoch), paired on the same examples:', ''];
  for (const r of records) {
    if (!r.interpolated) { lines.push(`- ${METHOD_LABELS[r.method]} k = ${r.k}: interpolation was off in this run.`); continue; }
    const p = pairedScores(r.raw, r.interpolated);
    const what = r.interpolated.alpha === 1 ? 'α = 1 was chosen: the interpolated model is the fine-tuned one, so on and off coincide'
      : r.interpolated.alpha === 0 ? 'α = 0 was chosen: interpolation returned the base model (no fine-tuned point kept robust accuracy within the tolerance)'
        : `α = ${r.interpolated.alpha}`;
    lines.push(`- ${METHOD_LABELS[r.method]} k = ${r.k}: ${what}; robust ${formatDeltaCI(p.robust.delta, p.robust.ci)}, clean ${formatDeltaCI(p.clean.delta, p.clean.ci)} pt.`);
  }
  return lines.join('\n');
}

/**
 * Seed variation (08d): per method, the final and raw Δ vs base as mean ± std over the seeds and
 * how often interpolation kept a fine-tuned model; then RiFT with BN − RiFT per seed (paired on
 * the same examples): in how many seeds each method is ahead, and how many intervals exclude 0.
 */
export function seedReading(records: readonly Pick<RiftRecord, 'method' | 'k' | 'seed' | 'raw' | 'interpolated'>[]): string {
  if (records.length === 0) return '_No seed records._';
  const seeds = [...new Set(records.map((r) => r.seed))].sort((a, b) => a - b);
  const ks = [...new Set(records.map((r) => r.k))];
  const ms = (xs: number[]) => formatMeanStd(summarizeSeeds(xs), 2, true);
  const lines = [`**Reading (computed from the records).** k = ${ks.join(', ')}, fine-tuning seeds ${seeds.join(', ')} (mean ± std over seeds, points vs base):`, ''];
  for (const m of ['rift', 'rift-bn'] as const) {
    const rs = records.filter((r) => r.method === m);
    if (!rs.length) continue;
    const fin = rs.map(finalScore);
    const kept = rs.filter((r) => r.interpolated && r.interpolated.alpha > 0).length;
    lines.push(`- ${METHOD_LABELS[m]}: final Δ clean ${ms(fin.map((f) => f.vsBase.clean.delta))}, Δ robust ${ms(fin.map((f) => f.vsBase.robust.delta))}; ` +
      `raw (before interpolation) Δ clean ${ms(rs.map((r) => r.raw.vsBase.clean.delta))}, Δ robust ${ms(rs.map((r) => r.raw.vsBase.robust.delta))}; ` +
      `interpolation kept a fine-tuned model (α > 0) in ${kept} of ${rs.length} seeds.`);
  }
  const cmp = methodComparisons(records);
  if (cmp.length) {
    const count = (f: (c: MethodComparisonRow) => boolean) => cmp.filter(f).length;
    for (const metric of ['clean', 'robust'] as const) {
      lines.push(`- RiFT with BN − RiFT, ${metric} (final models, per seed): ${cmp.map((c) => formatDeltaCI(c[metric].delta, c[metric].ci)).join('; ')}; ` +
        `RiFT with BN ahead in ${count((c) => c[metric].delta > 0)}, RiFT in ${count((c) => c[metric].delta < 0)} of ${cmp.length}; ` +
        `${count((c) => !includes0(c[metric].ci))} interval(s) exclude 0.`);
    }
    const signs = cmp.map((c) => Math.sign(c.clean.delta));
    lines.push('', signs.every((x) => x === signs[0]) && signs[0] !== 0
      ? `The sign of the clean difference is the same in every seed: one seed's ordering of the methods is not an accident of the data order here.`
      : `The sign of the clean difference changes with the seed: a single run (as in the paper's Table 1) does not settle which method is ahead at this k.`);
  }
  return lines.join('\n');
}

/** Worst-of-R vs single PGD: the gap per model and whether it changes the models' order. */
export function restartsReading(rec: Pick<RestartsRecord, 'models' | 'restarts' | 'n'>): string {
  const lo = rec.restarts[0], hi = rec.restarts[rec.restarts.length - 1];
  const robust = (m: RestartsRecord['models'][number], r: number) => m.runs.find((x) => x.restarts === r)!.robust;
  // Equal accuracies are shown as ties ("=") so that no order is read into them.
  const order = (r: number) => [...rec.models].sort((a, b) => robust(b, r) - robust(a, r))
    .map((m, i, xs) => (i === 0 ? m.name : `${robust(xs[i - 1], r) === robust(m, r) ? '=' : '>'} ${m.name}`)).join(' ');
  const gaps = rec.models.map((m) => m.gap.delta);
  const mean = gaps.reduce((a, b) => a + b, 0) / Math.max(gaps.length, 1);
  const same = order(lo) === order(hi);
  const sig = rec.models.filter((m) => !includes0(m.gap.ci));
  return [
    `**Reading (computed from the record).** Worst-of-${hi} PGD minus ${lo === 1 ? 'single-run' : `worst-of-${lo}`} PGD robust accuracy on ${rec.n} images, paired per example:`,
    '',
    ...rec.models.map((m) => `- ${m.name}: ${formatDeltaCI(m.gap.delta, m.gap.ci)} pt (${includes0(m.gap.ci) ? 'interval includes 0' : 'interval excludes 0'}).`),
    `- Mean gap ${sgn(mean)} pt. Order by robust accuracy: ${order(lo)} (×${lo}) vs ${order(hi)} (×${hi}) — ${same ? 'unchanged' : 'changed'}. ` +
      (sig.length
        ? `The stronger attack changes robust accuracy measurably for ${sig.length} of ${rec.models.length} models (${sig.map((m) => m.name).join(', ')}): numbers measured with different restarts (RiFT's code ×1, its paper ×3) are not comparable.`
        : `No gap is distinguishable from 0 at ${rec.n} images; still, only numbers measured with the same attack should be compared.`),
  ].join('\n');
}

/**
 * Each fine-tuned model against the base under PGD and under AutoAttack, paired per example on
 * the same images: Δ robust (model − base) for both attacks. The first model of the record is
 * the base.
 */
export function autoAttackDeltas(rec: Pick<AutoAttackRecord, 'models'>): Array<{ name: string; pgd: PairedComparison; aa: PairedComparison }> {
  const [base, ...rest] = rec.models;
  if (!base) return [];
  return rest.map((m) => ({
    name: m.name,
    pgd: pairedComparison(decodeBits(base.pgdBits), decodeBits(m.pgdBits)),
    aa: pairedComparison(decodeBits(base.aaBits), decodeBits(m.aaBits)),
  }));
}

/**
 * What the AutoAttack record shows: how far AA falls below PGD per model (paired), which attack
 * did the work, and whether "robustness preserved" (fine-tuned within noise of, or above, the
 * base) still holds when robustness is measured with AA. The first model is the base.
 */
export function autoAttackReading(rec: Pick<AutoAttackRecord, 'models' | 'n' | 'autoattack' | 'pgd'>): string {
  const pgdName = attackLabel(rec.pgd);
  const suite = rec.autoattack.version === 'standard' ? 'the standard AutoAttack suite' : `a custom AutoAttack suite (${rec.autoattack.attacks.join(', ')}; ${rec.autoattack.steps} steps, ${rec.autoattack.queries} Square queries)`;
  const lines = [
    `**Reading (computed from the record).** ${suite} against ${pgdName} on the same ${rec.n} test images, paired per example:`,
    '',
    ...rec.models.map((m) => {
      const top = [...m.stages].sort((a, b) => b.fooled - a.fooled)[0];
      const after = m.stages.filter((s) => s.fooled > 0 && s !== m.stages[0]).map((s) => `${s.attack} ${s.fooled}`).join(', ');
      return `- ${m.name}: ${pgdName} ${f2(m.pgd)}% → AA ${f2(m.aa)}%, AA − PGD ${formatDeltaCI(m.gap.delta, m.gap.ci)} pt (${includes0(m.gap.ci) ? 'interval includes 0' : 'interval excludes 0'}); ` +
        `${top && top.fooled > 0 ? `${top.attack} fooled most (${top.fooled} of ${top.attacked} attacked)` : 'no attack fooled any image'}${after ? `; after ${m.stages[0].attack}: ${after}` : ''}.`;
    }),
  ];
  // The reference's check_square_sr: Square (gradient-free) lowering robust accuracy by more than 0.2 pt after the gradient-based attacks points to masked gradients.
  const squareLast = rec.models.length > 0 && rec.models.every((m) => m.stages.length > 1 && m.stages[m.stages.length - 1].attack === 'square');
  if (squareLast) {
    const hits = rec.models.map((m) => ({ name: m.name, fooled: m.stages[m.stages.length - 1].fooled }));
    const flagged = hits.filter((m) => (100 * m.fooled) / Math.max(rec.n, 1) > 0.2);
    const some = hits.filter((m) => m.fooled > 0);
    lines.push('', flagged.length
      ? `Square (which never reads a gradient) lowered robust accuracy by more than 0.2 pt after the gradient-based attacks for ${flagged.map((m) => `${m.name} (${m.fooled} images)`).join(', ')}: a sign of gradient masking there (the reference's check_square_sr).`
      : some.length
        ? `Square (which never reads a gradient) fooled a few images the gradient-based attacks left robust (${some.map((m) => `${m.name} ${m.fooled}`).join(', ')}), within the reference's 0.2 pt warning threshold.`
        : 'Square (which never reads a gradient) fooled no image the gradient-based attacks had left robust: no sign of gradient masking.');
  }
  const deltas = autoAttackDeltas(rec);
  if (deltas.length) {
    lines.push('', 'Fine-tuned minus base robust accuracy, under each attack (paired, same images):', '');
    for (const d of deltas) {
      const kept = (c: PairedComparison) => (c.ci[1] >= 0 ? (includes0(c.ci) ? 'preserved (within noise)' : 'higher') : 'lower');
      lines.push(`- ${d.name}: ${pgdName} ${formatDeltaCI(d.pgd.delta, d.pgd.ci)} pt (${kept(d.pgd)}), AA ${formatDeltaCI(d.aa.delta, d.aa.ci)} pt (${kept(d.aa)}) — ` +
        (kept(d.pgd) === kept(d.aa) ? 'the same verdict under both.' : 'the verdict changes with the attack.'));
    }
    const survives = deltas.every((d) => d.aa.ci[1] >= 0);
    lines.push('', survives
      ? `"Robustness preserved" survives AutoAttack here: no fine-tuned model is measurably less robust than the base under AA at ${rec.n} images.`
      : `"Robustness preserved" does not survive AutoAttack for ${deltas.filter((d) => d.aa.ci[1] < 0).map((d) => d.name).join(', ')}: measurably less robust than the base under AA at ${rec.n} images.`);
  }
  return lines.join('\n');
}

/** Parameters of the full-width CIFAR ResNet-18 (the paper's model), for scale statements. */
export const RESNET18_PARAMS = 11_173_962;

/**
 * The base model against the paper's: accuracies and their gaps, the noise yardstick, and the
 * scale at which ours was trained (width, epochs, training attack, data) against the paper's.
 */
export function baseReading(base: Pick<BaseRecord, 'clean' | 'robust' | 'n'> & { cleanN?: number; model?: ModelIdentity }, config: Pick<ExperimentConfig, 'profile' | 'advTrain' | 'eval'>, params: number): string {
  const p = PAPER_TABLE1.base;
  const ref = resolveConfig('paper').advTrain;
  const t = config.advTrain;
  const reduced: string[] = [];
  if (t.width < ref.width) reduced.push(`width ×${t.width} (${(params / 1e6).toFixed(2)} M parameters vs ${(RESNET18_PARAMS / 1e6).toFixed(1)} M)`);
  if (t.epochs < ref.epochs) reduced.push(`${t.epochs} PGD-AT epochs vs ${ref.epochs}`);
  if (t.attack.steps < ref.attack.steps) reduced.push(`a PGD-${t.attack.steps} training attack vs PGD-${ref.attack.steps}`);
  if (t.trainN !== null) reduced.push(`${t.trainN} training images vs 50,000`);
  const lines = [
    `**Reading (computed from the record).** Our base model: ${f2(base.clean)}% clean (paper ${f2(p.clean)}, ${sgn(base.clean - p.clean)} pt) and ` +
      `${f2(base.robust)}% ${attackLabel(config.eval.attack)} robust accuracy (paper ${f2(p.robust)}, ${sgn(base.robust - p.robust)} pt) on ${evalImagesLabel(base)} ` +
      `(one binomial standard error: ±${f2(binomialSE(base.clean, base.cleanN ?? base.n))} / ±${f2(binomialSE(base.robust, base.n))} pt). ` +
      `Clean − robust gap: ${f2(base.clean - base.robust)} pt (paper ${f2(p.clean - p.robust)}).`,
    '',
    base.model?.imported
      ? `Imported base (${modelLabel(base.model)}, ${(params / 1e6).toFixed(2)} M parameters): it was trained outside this project, so its training scale is its authors'. ` +
        (base.model.arch === 'resnet18' && base.model.width === 1
          ? 'It is the paper\'s architecture, so its absolute numbers are comparable to the paper\'s up to the training recipe; '
          : 'It is not the paper\'s ResNet-18, so compare the changes it undergoes, not its absolute numbers, with the paper\'s; ') +
        `the later notebooks measure every change from THIS base on the same images (${evalImagesLabel(base)}).`
      : reduced.length
      ? `Reduced scale: ${reduced.join(', ')}. Lower absolute accuracies than the paper's are expected from this alone, so our numbers are not the paper's numbers; what the later notebooks compare is the change from THIS base, measured on the same images (${evalImagesLabel(base)}).`
      : 'Trained at the paper\'s scale: the absolute numbers are directly comparable to the paper\'s.',
  ];
  if (config.profile === 'smoke') lines.push('', '⚠ Smoke profile: a seconds-long run that tests the pipeline; its numbers mean nothing.');
  return lines.join('\n');
}

/**
 * The MRC ranking: where BN layers fall among all modules, which top-k selections of RiFT with
 * BN contain BN layers, and whether RiFT's two published examples come out in the same order.
 */
export function mrcReading(mrc: Pick<MRCRecord, 'ranking' | 'advSetSize'>, ks: readonly number[]): string {
  const sorted = [...mrc.ranking].sort((a, b) => a.mrc - b.mrc);
  const rank = new Map(sorted.map((e, i) => [e.module, i + 1]));
  const med = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2 : NaN; };
  const bn = sorted.filter((e) => e.kind === 'bn'), other = sorted.filter((e) => e.kind !== 'bn');
  const withBN = ks.filter((k) => sorted.slice(0, k).some((e) => e.kind === 'bn'));
  const kMax = Math.max(...ks);
  const nBN = sorted.slice(0, kMax).filter((e) => e.kind === 'bn').length;
  const [ex1, ex2] = PAPER_RIFT.mrcExamples;
  const a = sorted.find((e) => e.module === ex1.module), b = sorted.find((e) => e.module === ex2.module);
  const lines = [
    `**Reading (computed from the record).** ${sorted.length} modules ranked (${bn.length} BN, ${other.length} conv/linear) on ${mrc.advSetSize} fixed adversarial examples.`,
    '',
    `- BN layers' median rank is ${med(bn.map((e) => rank.get(e.module)!))} and conv/linear modules' ${med(other.map((e) => rank.get(e.module)!))} (1 = lowest MRC): BN layers are ${med(bn.map((e) => rank.get(e.module)!)) < med(other.map((e) => rank.get(e.module)!)) ? 'less' : 'more'} robust-critical than conv/linear modules on the median.`,
    `- ${nBN} of the ${kMax} lowest-MRC modules are BN layers; RiFT with BN's selection contains a BN layer for ${withBN.length ? `k = ${withBN.join(', ')}` : 'no k'} of k = ${ks.join(', ')}` +
      (withBN.length < ks.length ? ' — where it does not, it selects the same modules as RiFT and differs from it only in its BN-statistics policy.' : '.'),
  ];
  if (a && b) {
    const same = a.mrc < b.mrc;
    const rr = (m: string) => other.findIndex((e) => e.module === m) + 1;
    lines.push(`- RiFT's examples: ${ex1.module} MRC ${ex1.mrc} and ${ex2.module} ${ex2.mrc} in its paper; ours ${a.mrc.toFixed(3)} and ${b.mrc.toFixed(3)} (ranks ${rr(a.module)} and ${rr(b.module)} of ${other.length} conv/linear modules) — the order ${same ? 'matches' : 'does not match'}. Absolute MRC values depend on the model's loss scale (ours is smaller and trained shorter), so only the order is comparable.`);
  }
  return lines.join('\n');
}

/** What `trainingScaleReading` reads of a base run: its config, per-epoch log and train split. */
export interface BaseRunFacts {
  config: Pick<ExperimentConfig, 'dataset' | 'advTrain'>;
  history: readonly Pick<EpochMetrics, 'epoch' | 'trainSeconds' | 'evalSeconds' | 'clean' | 'robust'>[];
  train: Pick<CifarData, 'dataset' | 'split' | 'coverage' | 'n' | 'numClasses'>;
}

/**
 * A base model beside its paper anchor (`paperBase(dataset)`), beside another dataset's base
 * and its anchor (the gap each leaves), and what training it saw: images per class, SGD steps,
 * whether its last epochs still improved, and the measured cost of training longer (seconds
 * per epoch from its own log). For Figure 2, where the CIFAR-100 base is trained on a subset.
 */
export function trainingScaleReading(
  base: Pick<BaseRecord, 'clean' | 'robust' | 'n' | 'dataset'> & { cleanN?: number },
  run: BaseRunFacts,
  other?: { base: Pick<BaseRecord, 'clean' | 'robust' | 'dataset'>; run?: Pick<BaseRunFacts, 'config' | 'train'> },
): string {
  const ds = run.config.dataset;
  const p = paperBase(ds);
  const t = run.config.advTrain;
  const imagesPerEpoch = Math.min(t.trainN ?? run.train.n, run.train.n);
  const steps = Math.floor(imagesPerEpoch / t.batchSize) * t.epochs;
  const perClass = imagesPerEpoch / run.train.numClasses;
  const h = run.history;
  const secPerEpoch = h.length ? h.reduce((a, m) => a + m.trainSeconds + m.evalSeconds, 0) / h.length : NaN;
  const lines = [
    `**Reading (computed from the records).** Our ${ds} base: ${f2(base.clean)}% clean and ${f2(base.robust)}% robust on ${evalImagesLabel(base)} ` +
      `(one binomial standard error ±${f2(binomialSE(base.clean, base.cleanN ?? base.n))} / ±${f2(binomialSE(base.robust, base.n))} pt); ${p.source}: ${f2(p.clean)} / ${f2(p.robust)}, ` +
      `so ours is ${sgn(base.clean - p.clean)} / ${sgn(base.robust - p.robust)} pt from it.`,
  ];
  if (other) {
    const po = paperBase(other.base.dataset as 'cifar10' | 'cifar100');
    const gapC = other.base.clean - po.clean, gapR = other.base.robust - po.robust;
    const further = base.clean - p.clean < gapC && base.robust - p.robust < gapR;
    lines.push('', `For scale: our ${other.base.dataset} base at the same profile is ${sgn(gapC)} / ${sgn(gapR)} pt from its anchor (${f2(other.base.clean)} / ${f2(other.base.robust)} vs ${f2(po.clean)} / ${f2(po.robust)}): ` +
      `the ${ds} base is ${further ? 'further from its anchor on both metrics' : 'not further from its anchor on both metrics'}` +
      (other.run ? ` (trained on ${+(Math.min(other.run.config.advTrain.trainN ?? other.run.train.n, other.run.train.n) / other.run.train.numClasses).toFixed(1)} images per class vs ${+perClass.toFixed(1)} here).` : '.'));
  }
  lines.push('', `Training: ${describeSplit(run.train)}; ${imagesPerEpoch.toLocaleString('en-US')} images per epoch (${+perClass.toFixed(1)} per class), ${t.epochs} epochs, ${steps.toLocaleString('en-US')} SGD steps of ${t.batchSize}.`);
  if (h.length >= 2) {
    const last = h[h.length - 1];
    const k = Math.min(3, h.length - 1);
    const before = h[h.length - 1 - k];
    const gain = last.clean - before.clean, gainR = last.robust - before.robust;
    lines.push(`Over its last ${k} epochs (lr decay included) the per-epoch evaluation moved clean ${sgn(gain)} and robust ${sgn(gainR)} pt; ` +
      `measured ${secPerEpoch.toFixed(0)} s per epoch here, so each 15 more epochs cost about ${formatDuration(15 * secPerEpoch)}` +
      ` and the CIFAR-10 quick base's number of SGD steps (${Math.floor(50_000 / t.batchSize) * t.epochs}) would take ${formatDuration(((Math.floor(50_000 / t.batchSize) * t.epochs) / Math.max(steps, 1)) * t.epochs * secPerEpoch)}.`);
  }
  return lines.join('\n');
}

/**
 * One of the paper's layer-type statements on each dataset: the verdict, whether the paired
 * interval(s) it rests on include 0 ('within noise'), and whether the two datasets agree — 'differs
 * within noise' when they disagree but one side's evidence includes 0.
 */
export type CrossDatasetRow = {
  claim: string;
  cifar10: Verdict['verdict'];
  'cifar10 evidence': Evidence;
  cifar100: Verdict['verdict'];
  'cifar100 evidence': Evidence;
  agree: 'same' | 'differs' | 'differs within noise' | 'not testable';
};

/** Whether a verdict's deciding paired intervals all exclude 0. */
type Evidence = 'outside noise' | 'within noise' | '';

const evidence = (f: Finding): Evidence => (f.decisive.length === 0 ? '' : f.decisive.some(includes0) ? 'within noise' : 'outside noise');

/**
 * The paper's "same trend on both datasets" (Figures 1 and 2), checked statement by statement:
 * the `layerTypeVerdicts` of the CIFAR-10 and the CIFAR-100 records side by side, with the
 * weight of each side's evidence.
 */
export function crossDatasetRows(cifar10: readonly LT[], cifar100: readonly LT[]): CrossDatasetRow[] {
  const a = layerTypeFindings(cifar10), b = layerTypeFindings(cifar100);
  return a.map((v, i) => {
    const w = b[i];
    const ea = evidence(v), eb = evidence(w);
    const agree = v.verdict === 'not testable' || w.verdict === 'not testable' ? 'not testable'
      : v.verdict === w.verdict ? 'same' : ea === 'within noise' || eb === 'within noise' ? 'differs within noise' : 'differs';
    return { claim: v.claim, cifar10: v.verdict, 'cifar10 evidence': ea, cifar100: w.verdict, 'cifar100 evidence': eb, agree };
  });
}

/** A paragraph on `crossDatasetRows`: how many statements come out the same on both datasets, which differ, and on what evidence. */
export function crossDatasetReading(cifar10: readonly LT[], cifar100: readonly LT[]): string {
  const rows = crossDatasetRows(cifar10, cifar100);
  const same = rows.filter((r) => r.agree === 'same');
  const differs = rows.filter((r) => r.agree === 'differs'), noisy = rows.filter((r) => r.agree === 'differs within noise');
  const bothMatch = same.filter((r) => r.cifar10 === 'matches');
  const untestable = rows.length - same.length - differs.length - noisy.length;
  const c100Noise = rows.filter((r) => r['cifar100 evidence'] === 'within noise').length;
  return [
    `**The paper's "same trend on both datasets" (computed).** ${same.length} of ${rows.length} statements come out the same on CIFAR-10 and CIFAR-100 ` +
      `(${bothMatch.length} matching the paper on both, ${same.length - bothMatch.length} failing on both); ${differs.length} differ with the evidence on both sides outside noise` +
      `, ${noisy.length} differ where one side's evidence is within noise${untestable ? `; ${untestable} cannot be tested` : ''}.`,
    ...(differs.length + noisy.length ? ['', ...[...differs, ...noisy].map((r) => `- ${r.agree} — ${r.claim}: CIFAR-10 ${r.cifar10} (${r['cifar10 evidence']}), CIFAR-100 ${r.cifar100} (${r['cifar100 evidence']})`)] : []),
    '',
    `${c100Noise} of the ${rows.length} CIFAR-100 verdicts rest on paired 95% intervals that include 0: there the curves do not show a trend either way, so a "differs" there is not evidence against the paper — nor is a "same" evidence for it. ` +
      'The measured column of each figure\'s statements table gives the intervals.',
  ].join('\n');
}
