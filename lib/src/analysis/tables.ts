/**
 * Tables and chart rows as plain records built from experiment records (display lives in
 * notebooks / charts.ts): Table 1, the Figure 1/2 curves, the MRC ranking and selections,
 * Δ-vs-base cells and bars.
 */
import { summarizeSeeds, multiSeedDelta, formatCI, formatDeltaCI, formatP } from '../util/stats.js';
import { PAPER_TABLE1 } from './paper.js';
import { selectLowest } from '../method/mrc.js';
import type { LayerTypeMode } from '../method/finetune.js';
import type { ModuleKind } from '../nn/model.js';
import { attackLabel } from '../util/format.js';
import { decodeBits, finalScore, METHOD_CANDIDATES, type BaseRecord, type RiftRecord, type Method, type LayerTypeRecord, type MRCRecord, type ModelScore } from '../experiments/records.js';

/**
 * One row of Table 1 (a k and a method): accuracies in percent (mean over seeds), Δ vs base with 95% interval and McNemar p,
 * the selected modules, the interpolation α per seed and the paper's values (null if it has none).
 */
export interface Table1Row {
  k: number;
  method: Method;
  /** Number of seeds aggregated. */
  seeds: number;
  clean: number;
  cleanStd: number | null;
  robust: number;
  robustStd: number | null;
  /** Δ vs base in points, 95% interval (paired bootstrap over examples; averaged over seeds when > 1). */
  deltaClean: number;
  deltaCleanCI: [number, number];
  deltaRobust: number;
  deltaRobustCI: [number, number];
  /** Exact McNemar p (single seed only; null when several seeds are averaged). */
  mcnemarPClean: number | null;
  mcnemarPRobust: number | null;
  modules: string;
  /** α chosen by interpolation (null when interpolation was off); per seed. */
  alphas: Array<number | null>;
  paperClean: number | null;
  paperRobust: number | null;
}

/** Table 1 rows (k ascending, RiFT before RiFT with BN) from top-k records, with the paper's values beside. */
export function table1Rows(records: readonly RiftRecord[], base: BaseRecord): Table1Row[] {
  const groups = new Map<string, RiftRecord[]>();
  for (const r of records) {
    const key = `${r.k}|${r.method}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const rows: Table1Row[] = [];
  for (const [key, rs] of groups) {
    const [k, method] = [Number(key.split('|')[0]), key.split('|')[1] as Method];
    const fin = rs.map(finalScore);
    const c = summarizeSeeds(fin.map((f) => f.clean)), rb = summarizeSeeds(fin.map((f) => f.robust));
    const one = fin.length === 1 ? fin[0] : null;
    const dc = one ? one.vsBase.clean : multiSeedDelta(decodeBits(base.cleanBits), fin.map((f) => decodeBits(f.cleanBits)));
    const dr = one ? one.vsBase.robust : multiSeedDelta(decodeBits(base.robustBits), fin.map((f) => decodeBits(f.robustBits)));
    const paper = PAPER_TABLE1.rows.find((p) => p.k === k && p.method === method);
    rows.push({
      k, method, seeds: rs.length,
      clean: c.mean, cleanStd: rs.length > 1 ? c.std : null, robust: rb.mean, robustStd: rs.length > 1 ? rb.std : null,
      deltaClean: dc.delta, deltaCleanCI: dc.ci, deltaRobust: dr.delta, deltaRobustCI: dr.ci,
      mcnemarPClean: one ? one.vsBase.clean.mcnemarP : null, mcnemarPRobust: one ? one.vsBase.robust.mcnemarP : null,
      modules: [...new Set(rs.map((r) => r.modules.join(' + ')))].join(' | '),
      alphas: rs.map((r) => r.interpolated?.alpha ?? null),
      paperClean: paper?.clean ?? null, paperRobust: paper?.robust ?? null,
    });
  }
  return rows.sort((a, b) => a.k - b.k || (a.method === 'rift' ? -1 : 1));
}

/** Display names of the methods (the paper's wording; METHOD_COLORS knows them). */
export const METHOD_LABELS: Readonly<Record<Method, string>> = { rift: 'RiFT', 'rift-bn': 'RiFT with BN' };

/** Display names of the layer-type modes of Figures 1/2 (METHOD_COLORS knows them). */
export const LAYER_TYPE_LABELS: Readonly<Record<LayerTypeMode, string>> = { 'bn-only': 'BN-only', 'conv-linear-only': 'Conv/Linear-only', full: 'Full' };

/**
 * The evaluation set in words, e.g. "10000 test images clean, 1000 attacked" (eval.cleanN ≠ eval.n)
 * or "1000 test images".
 */
export function evalImagesLabel(b: { n: number; cleanN?: number }): string {
  return b.cleanN === undefined || b.cleanN === b.n ? `${b.n} test images` : `${b.cleanN} test images clean, ${b.n} attacked`;
}

/** `evalImagesLabel` of an evaluation config (null = the whole test split, `testSize`, default 10,000). */
export function evalConfigLabel(e: { n: number | null; cleanN: number | null }, testSize = 10_000): string {
  return evalImagesLabel({ n: e.n ?? testSize, cleanN: e.cleanN ?? testSize });
}


/** Panel names of Figures 1/2: the paper's "Normal" (clean) and "Adv" (under the records' own attack). */
export function layerTypePanels(records: readonly Pick<LayerTypeRecord, 'eval'>[]): { clean: string; robust: string } {
  const a = records[0]?.eval.attack;
  return { clean: 'Normal (clean)', robust: `Adv (${a ? attackLabel(a) : 'PGD'})` };
}

/** One point of a Figure 1/2 curve, long format for `lineChart` (series = mode, panel = metric). */
export type LayerTypeCurveRow = {
  mode: string;
  epoch: number;
  metric: string;
  accuracy: number;
};

/** Chart rows of Figures 1/2 from layer-type records: every (mode, epoch, clean / robust), epoch 0 = the base model. */
export function layerTypeCurveRows(records: readonly Pick<LayerTypeRecord, 'mode' | 'history' | 'eval'>[]): LayerTypeCurveRow[] {
  const p = layerTypePanels(records);
  return records.flatMap((r) => r.history.flatMap((h) => [
    { mode: LAYER_TYPE_LABELS[r.mode], epoch: h.epoch, metric: p.clean, accuracy: h.clean },
    { mode: LAYER_TYPE_LABELS[r.mode], epoch: h.epoch, metric: p.robust, accuracy: h.robust },
  ]));
}

/** One point of a Figure 1/2 change curve: Δ since epoch 0 with its paired 95% interval (points). */
export type LayerTypeDeltaRow = {
  mode: string;
  epoch: number;
  /** epoch shifted by a small per-mode offset (±0.1), so that the modes' interval bars do not hide each other. */
  x: number;
  /** 'Δ Normal (clean)' or 'Δ Adv (PGD-10 …)'. */
  metric: string;
  delta: number;
  low: number;
  high: number;
};

/**
 * Chart rows of the change since epoch 0 per (mode, epoch, metric) with the paired 95% interval of
 * `vsBase` (epoch 0: 0 [0, 0]), for `lineChart({ x: 'x', y: 'delta', yLow: 'low', yHigh: 'high' })`: the
 * curves' differences on the same images, with their own noise.
 */
export function layerTypeDeltaRows(records: readonly Pick<LayerTypeRecord, 'mode' | 'history' | 'eval'>[]): LayerTypeDeltaRow[] {
  const p = layerTypePanels(records);
  const dodge = (i: number) => (records.length > 1 ? 0.2 * (i / (records.length - 1) - 0.5) : 0);
  return records.flatMap((r, i) => r.history.flatMap((h) => ([['clean', p.clean], ['robust', p.robust]] as const).map(([m, label]) => {
    const c = h.vsBase[m];
    return { mode: LAYER_TYPE_LABELS[r.mode], epoch: h.epoch, x: h.epoch + dodge(i), metric: `Δ ${label}`, delta: c.delta, low: c.ci[0], high: c.ci[1] };
  })));
}

/**
 * Table rows of Figures 1/2: one per (mode, epoch) with clean / robust accuracy, their change since
 * epoch 0 (points) and its paired 95% interval on the same examples (null at epoch 0).
 */
export function layerTypeTableRows(records: readonly Pick<LayerTypeRecord, 'mode' | 'history'>[]): Array<Record<string, string | number | null>> {
  return records.flatMap((r) => {
    const h0 = r.history[0];
    return r.history.map((h) => ({
      mode: LAYER_TYPE_LABELS[r.mode], epoch: h.epoch, lr: h.lr === null ? null : h.lr.toExponential(0), clean: h.clean, robust: h.robust,
      'Δ clean': h.clean - h0.clean, 'Δ robust': h.robust - h0.robust,
      'Δ clean 95% CI': h.epoch === h0.epoch ? null : formatCI(h.vsBase.clean.ci), 'Δ robust 95% CI': h.epoch === h0.epoch ? null : formatCI(h.vsBase.robust.ci),
    }));
  });
}

/** One module of an MRC ranking, for the bar chart (network order) and the ranking table. */
export type MRCRow = {
  /** Position in network order. */
  index: number;
  module: string;
  kind: ModuleKind;
  mrc: number;
  /** Robust accuracy change (points) on the fixed adversarial set at the max-loss perturbation. */
  accuracyDrop: number;
  /** 1-based rank among all conv/linear/BN modules (1 = lowest MRC). */
  rank: number;
  /** 1-based rank among conv/linear modules only (RiFT's candidates); null for BN. */
  rankRiFT: number | null;
  /** Selected at the given k by RiFT / by RiFT with BN / by either. */
  rift: boolean;
  riftBN: boolean;
  selected: boolean;
};

/** The MRC ranking in network order, with ranks and which modules each method selects at `k`. */
export function mrcRows(mrc: Pick<MRCRecord, 'ranking'>, k: number): MRCRow[] {
  const sorted = [...mrc.ranking].sort((a, b) => a.mrc - b.mrc);
  const rift = new Set(selectLowest({ ranking: sorted }, k, METHOD_CANDIDATES.rift));
  const riftBN = new Set(selectLowest({ ranking: sorted }, k, METHOD_CANDIDATES['rift-bn']));
  const riftRank = new Map(sorted.filter((e) => e.kind !== 'bn').map((e, i) => [e.module, i + 1]));
  return sorted.map((e, i) => ({
    index: e.index, module: e.module, kind: e.kind, mrc: e.mrc, accuracyDrop: e.accuracyDrop, rank: i + 1,
    rankRiFT: riftRank.get(e.module) ?? null, rift: rift.has(e.module), riftBN: riftBN.has(e.module),
    selected: rift.has(e.module) || riftBN.has(e.module),
  })).sort((a, b) => a.index - b.index);
}

/** Which modules RiFT (conv+linear) and RiFT with BN (conv+linear+bn) select for each k, lowest MRC first. */
export function mrcSelectionRows(mrc: Pick<MRCRecord, 'ranking'>, ks: readonly number[]): Array<Record<string, string | number>> {
  const sorted = { ranking: [...mrc.ranking].sort((a, b) => a.mrc - b.mrc) };
  const kind = new Map(sorted.ranking.map((e) => [e.module, e.kind]));
  return ks.map((k) => {
    const a = selectLowest(sorted, k, METHOD_CANDIDATES.rift), b = selectLowest(sorted, k, METHOD_CANDIDATES['rift-bn']);
    return {
      k, [METHOD_LABELS.rift]: a.join(', '), [METHOD_LABELS['rift-bn']]: b.join(', '),
      'BN layers in RiFT with BN': b.filter((m) => kind.get(m) === 'bn').length, 'modules in both': b.filter((m) => a.includes(m)).length,
    };
  });
}

/** Table cells of a score against the base: accuracies, Δ with its 95% interval, exact McNemar p. */
export function scoreCells(s: Pick<ModelScore, 'clean' | 'robust' | 'vsBase'>): Record<string, number | string> {
  return {
    clean: s.clean, 'Δ clean [95% CI]': formatDeltaCI(s.vsBase.clean.delta, s.vsBase.clean.ci), 'p clean': formatP(s.vsBase.clean.mcnemarP),
    robust: s.robust, 'Δ robust [95% CI]': formatDeltaCI(s.vsBase.robust.delta, s.vsBase.robust.ci), 'p robust': formatP(s.vsBase.robust.mcnemarP),
  };
}

/** A Δ-vs-base bar with its interval, for grouped `barChart`s (panel = metric). */
export interface DeltaBar {
  metric: 'Δ robust' | 'Δ clean';
  delta: number;
  lo: number;
  hi: number;
  /** The paper's Δ where it has one (chart marker), else null. */
  paper: number | null;
  [label: string]: unknown;
}

/** The two Δ bars (robust, clean) of one score, each carrying `labels` (e.g. { policy: 'all' }). */
export function deltaBars(labels: Record<string, unknown>, s: Pick<ModelScore, 'vsBase'>, paper: { clean: number | null; robust: number | null } = { clean: null, robust: null }): DeltaBar[] {
  return [
    { ...labels, metric: 'Δ robust', delta: s.vsBase.robust.delta, lo: s.vsBase.robust.ci[0], hi: s.vsBase.robust.ci[1], paper: paper.robust },
    { ...labels, metric: 'Δ clean', delta: s.vsBase.clean.delta, lo: s.vsBase.clean.ci[0], hi: s.vsBase.clean.ci[1], paper: paper.clean },
  ];
}

/**
 * Seed variation (08d): one row per (method, seed) of top-k records at one k, with the final
 * model's Δ vs base (the interpolated one when interpolation is on), the α chosen, and the raw
 * fine-tuned model's Δ (before interpolation), each with its paired 95% interval.
 */
export function seedCells(records: readonly Pick<RiftRecord, 'method' | 'seed' | 'raw' | 'interpolated'>[]): Array<Record<string, string | number>> {
  const cell = (c: ModelScore['vsBase']['clean']) => formatDeltaCI(c.delta, c.ci);
  return [...records].sort((a, b) => (a.method === b.method ? a.seed - b.seed : a.method === 'rift' ? -1 : 1)).map((r) => {
    const f = finalScore(r);
    return {
      method: METHOD_LABELS[r.method], seed: r.seed, α: r.interpolated ? r.interpolated.alpha : 'off',
      'final Δ clean [95% CI]': cell(f.vsBase.clean), 'final Δ robust [95% CI]': cell(f.vsBase.robust),
      'raw Δ clean [95% CI]': cell(r.raw.vsBase.clean), 'raw Δ robust [95% CI]': cell(r.raw.vsBase.robust),
    };
  });
}

/**
 * Table 1 as displayed (the accuracy part, narrow enough for a printed page): ours beside the
 * paper's values and Δs, Δ vs base with its 95% interval; with `base`, a first row for the base
 * model beside the paper's base. The tests and selections are in `table1DetailRows`.
 */
export function table1DisplayRows(rows: readonly Table1Row[], base?: Pick<BaseRecord, 'clean' | 'robust'>): Array<Record<string, string | number | null>> {
  const b = PAPER_TABLE1.base;
  const pm = (v: number, sd: number | null) => (sd === null ? v : `${v.toFixed(2)} ± ${sd.toFixed(2)}`);
  const seeds: Record<string, null> = rows.some((r) => r.seeds > 1) ? { seeds: null } : {};
  const head = base ? [{
    k: '–', method: 'Base (PGD-AT)', ...seeds, clean: base.clean, 'paper clean': b.clean, 'Δ clean [95% CI]': null, 'paper Δ clean': null,
    robust: base.robust, 'paper robust': b.robust, 'Δ robust [95% CI]': null, 'paper Δ robust': null,
  }] : [];
  return [...head, ...rows.map((r) => ({
    k: r.k, method: METHOD_LABELS[r.method], ...(r.seeds > 1 ? { seeds: r.seeds } : {}),
    clean: pm(r.clean, r.cleanStd), 'paper clean': r.paperClean,
    'Δ clean [95% CI]': formatDeltaCI(r.deltaClean, r.deltaCleanCI), 'paper Δ clean': r.paperClean === null ? null : r.paperClean - b.clean,
    robust: pm(r.robust, r.robustStd), 'paper robust': r.paperRobust,
    'Δ robust [95% CI]': formatDeltaCI(r.deltaRobust, r.deltaRobustCI), 'paper Δ robust': r.paperRobust === null ? null : r.paperRobust - b.robust,
  }))];
}

/** Table 1's second part: exact McNemar p of each Δ (single seed), the modules fine-tuned and the α chosen per seed. */
export function table1DetailRows(rows: readonly Table1Row[]): Array<Record<string, string | number | null>> {
  return rows.map((r) => ({
    k: r.k, method: METHOD_LABELS[r.method],
    'McNemar p (clean)': r.mcnemarPClean === null ? null : formatP(r.mcnemarPClean), 'McNemar p (robust)': r.mcnemarPRobust === null ? null : formatP(r.mcnemarPRobust),
    modules: r.modules, α: r.alphas.map((a) => (a === null ? 'off' : String(a))).join(', '),
  }));
}

/** Table 1's Δ bars (robust, clean) per k and method with 95% intervals and the paper's Δ as marker. */
export function table1DeltaBars(rows: readonly Table1Row[]): DeltaBar[] {
  const b = PAPER_TABLE1.base;
  return rows.flatMap((r) => [
    { k: `k = ${r.k}`, method: METHOD_LABELS[r.method], metric: 'Δ robust' as const, delta: r.deltaRobust, lo: r.deltaRobustCI[0], hi: r.deltaRobustCI[1], paper: r.paperRobust === null ? null : r.paperRobust - b.robust },
    { k: `k = ${r.k}`, method: METHOD_LABELS[r.method], metric: 'Δ clean' as const, delta: r.deltaClean, lo: r.deltaCleanCI[0], hi: r.deltaCleanCI[1], paper: r.paperClean === null ? null : r.paperClean - b.clean },
  ]);
}
