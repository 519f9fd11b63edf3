/**
 * Notebook helpers without TF.js: table/chart rows built from records (tables.ts) and the
 * computed readings (readings.ts), on small hand-made records whose answers are known.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import { evalConfigLabel, layerTypeCurveRows, layerTypeDeltaRows, layerTypeTableRows, mrcRows, mrcSelectionRows, scoreCells, deltaBars, table1DisplayRows, table1DetailRows, table1DeltaBars, seedCells, type Table1Row } from '../lib/src/analysis/tables.js';
import {
  layerTypeVerdicts, layerTypeReading, table1Reading, methodComparisons, methodComparisonCells, kdeVerdict, kdeReading,
  bnPolicyReading, interpolationReading, restartsReading, autoAttackReading, autoAttackDeltas, seedReading, baseReading, mrcReading, binomialSE,
  crossDatasetRows, crossDatasetReading, trainingScaleReading,
} from '../lib/src/analysis/readings.js';
import { pairedComparison } from '../lib/src/util/stats.js';
import { resolveConfig } from '../lib/src/experiments/config.js';
import { PAPER_TABLE1 } from '../lib/src/analysis/paper.js';
import { attackLabel } from '../lib/src/util/format.js';
import { encodeBits, type LayerTypeRecord, type MRCRecord, type ModelScore, type RiftRecord, type RestartsRecord, type AutoAttackRecord } from '../lib/src/experiments/records.js';

const attack = { eps: 8 / 255, alpha: 2 / 255, steps: 10, randomStart: true, restarts: 1 };

/**
 * A layer-type record on n = 1000 examples whose per-example bits give the listed accuracies.
 * `churn` correct answers are swapped between epochs (the set of correct examples moves by
 * `churn` per epoch), so that a small net change comes with many discordant pairs: noise.
 */
function lt(mode: LayerTypeRecord['mode'], points: Array<[number, number]>, churn = 0): Pick<LayerTypeRecord, 'mode' | 'history' | 'eval'> {
  const n = 1000;
  const correct = (pct: number, epoch: number) => {
    const a = new Uint8Array(n);
    for (let i = 0; i < Math.round((pct * n) / 100); i++) a[(i + epoch * churn) % n] = 1;
    return a;
  };
  const b0 = { clean: correct(points[0][0], 0), robust: correct(points[0][1], 0) };
  return {
    mode, eval: { n, cleanN: n, attack, batchSize: 256 },
    history: points.map(([clean, robust], epoch) => {
      const b = { clean: correct(clean, epoch), robust: correct(robust, epoch) };
      return {
        epoch, lr: epoch ? 1e-3 : null, trainLoss: null, clean, robust, trainSeconds: 0, evalSeconds: 0,
        cleanBits: encodeBits(b.clean), robustBits: encodeBits(b.robust),
        vsBase: { clean: pairedComparison(b0.clean, b.clean), robust: pairedComparison(b0.robust, b.robust) },
      };
    }),
  };
}

/** The paper's picture: both partial modes rise first; Conv/Linear-only then falls more; Full best clean, most robustness lost. */
const paperLike = [
  lt('bn-only', [[80, 50], [81, 51], [81.5, 50.8], [81.6, 50.7]]),
  lt('conv-linear-only', [[80, 50], [81.5, 50.5], [82, 49.5], [82.2, 49]]),
  lt('full', [[80, 50], [82, 49], [83, 48], [83.5, 47]]),
];

function bits(n: number, ones: number[]): Uint8Array {
  const a = new Uint8Array(n);
  for (const i of ones) a[i] = 1;
  return a;
}

/** A score from per-example vectors, paired against `base`. */
function score(base: { clean: Uint8Array; robust: Uint8Array }, clean: Uint8Array, robust: Uint8Array): ModelScore {
  const pct = (a: Uint8Array) => (100 * a.reduce((s, v) => s + v, 0)) / a.length;
  return {
    clean: pct(clean), robust: pct(robust), cleanBits: encodeBits(clean), robustBits: encodeBits(robust),
    vsBase: { clean: pairedComparison(base.clean, clean, { resamples: 500 }), robust: pairedComparison(base.robust, robust, { resamples: 500 }) },
  };
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

function mrcRecord(): Pick<MRCRecord, 'ranking' | 'advSetSize'> {
  const mods: Array<[string, 'conv' | 'bn' | 'linear', number]> = [
    ['conv1', 'conv', 3], ['bn1', 'bn', 0.2], ['layer2.1.conv2', 'conv', 0.5], ['layer2.1.bn2', 'bn', 0.1], ['layer4.1.conv1', 'conv', 9], ['linear', 'linear', 1],
  ];
  return {
    advSetSize: 100,
    ranking: mods.map(([module, kind, mrc], index) => ({
      module, kind, index, mrc, lossBefore: 1, lossMax: 1 + mrc, accuracyBefore: 50, accuracyAtMax: 50 - mrc, accuracyDrop: -mrc,
      epochLosses: [1 + mrc], firstProjectionEpoch: 1, finalRelativeNorm: 0.1, keys: [], seconds: 0,
    })).sort((a, b) => a.mrc - b.mrc),
  };
}

describe('rows for tables and charts', () => {
  test('attack labels; Figure 1/2 curve rows (long, panel per metric) and table rows (Δ since epoch 0)', () => {
    assert.equal(attackLabel(attack), 'PGD-10');
    assert.equal(attackLabel({ steps: 10, restarts: 3 }), 'PGD-10×3');
    const rows = layerTypeCurveRows(paperLike);
    assert.equal(rows.length, 3 * 4 * 2);
    assert.deepEqual(rows.slice(0, 2), [
      { mode: 'BN-only', epoch: 0, metric: 'Normal (clean)', accuracy: 80 },
      { mode: 'BN-only', epoch: 0, metric: 'Adv (PGD-10)', accuracy: 50 },
    ]);
    const table = layerTypeTableRows(paperLike);
    assert.equal(table.length, 12);
    const { 'Δ clean 95% CI': cleanCI, 'Δ robust 95% CI': robustCI, ...rest } = table[11];
    assert.deepEqual(rest, { mode: 'Full', epoch: 3, lr: '1e-3', clean: 83.5, robust: 47, 'Δ clean': 3.5, 'Δ robust': -3 });
    // Nested correct sets: 35 gains and no loss on clean, 30 losses on robust: intervals on one side of 0.
    assert.match(String(cleanCI), /^\[\+\d\.\d\d, \+\d\.\d\d\]$/);
    assert.match(String(robustCI), /^\[-\d\.\d\d, -\d\.\d\d\]$/);
    assert.equal(table[0].lr, null);
    assert.equal(table[0]['Δ robust 95% CI'], null, 'epoch 0 is the reference: no interval');
    const deltas = layerTypeDeltaRows(paperLike);
    assert.equal(deltas.length, 3 * 4 * 2);
    assert.deepEqual(deltas[0], { mode: 'BN-only', epoch: 0, x: -0.1, metric: 'Δ Normal (clean)', delta: 0, low: 0, high: 0 });
    assert.deepEqual([...new Set(deltas.filter((d) => d.epoch === 2).map((d) => d.x))], [1.9, 2, 2.1], 'modes dodged around the epoch');
    const fullRobust3 = deltas.find((d) => d.mode === 'Full' && d.epoch === 3 && d.metric.startsWith('Δ Adv'))!;
    assert.equal(fullRobust3.delta, -3);
    assert.ok(fullRobust3.low <= -3 && fullRobust3.high >= -3 && fullRobust3.high < 0, 'the interval holds Δ; 30 losses, no gain: below 0');
  });

  test('evaluation-set labels name the clean and the attacked image counts', () => {
    assert.equal(evalConfigLabel({ n: 1000, cleanN: null }), '10000 test images clean, 1000 attacked');
    assert.equal(evalConfigLabel({ n: null, cleanN: null }), '10000 test images');
    assert.equal(evalConfigLabel({ n: 64, cleanN: 128 }), '128 test images clean, 64 attacked');
  });

  test('MRC rows in network order with ranks and selections; selections per k', () => {
    const rows = mrcRows(mrcRecord(), 2);
    assert.deepEqual(rows.map((r) => r.module), ['conv1', 'bn1', 'layer2.1.conv2', 'layer2.1.bn2', 'layer4.1.conv1', 'linear']);
    const by = Object.fromEntries(rows.map((r) => [r.module, r]));
    assert.equal(by['layer2.1.bn2'].rank, 1);
    assert.equal(by['layer2.1.bn2'].rankRiFT, null);
    assert.equal(by['layer2.1.conv2'].rankRiFT, 1);
    assert.deepEqual(rows.filter((r) => r.riftBN).map((r) => r.module), ['bn1', 'layer2.1.bn2']);
    assert.deepEqual(rows.filter((r) => r.rift).map((r) => r.module), ['layer2.1.conv2', 'linear']);
    assert.equal(rows.filter((r) => r.selected).length, 4);
    const sel = mrcSelectionRows(mrcRecord(), [1, 3]);
    assert.deepEqual(sel[1], { k: 3, RiFT: 'layer2.1.conv2, linear, conv1', 'RiFT with BN': 'layer2.1.bn2, bn1, layer2.1.conv2', 'BN layers in RiFT with BN': 2, 'modules in both': 1 });
  });

  test('score cells and Δ bars carry Δ, interval and McNemar p', () => {
    const n = 100;
    const base = { clean: bits(n, range(0, 80)), robust: bits(n, range(0, 50)) };
    const s = score(base, bits(n, range(0, 90)), bits(n, range(0, 50)));
    const cells = scoreCells(s);
    assert.equal(cells.clean, 90);
    assert.match(String(cells['Δ clean [95% CI]']), /^\+10\.00 \[\+\d/);
    assert.equal(cells['Δ robust [95% CI]'], '+0.00 [+0.00, +0.00]');
    assert.equal(cells['p robust'], '1');
    const b = deltaBars({ policy: 'all' }, s, { clean: 1, robust: null });
    assert.deepEqual(b.map((x) => [x.policy, x.metric, x.delta, x.paper]), [['all', 'Δ robust', 0, null], ['all', 'Δ clean', 10, 1]]);
  });

  test('Table 1 display rows: base row first, paper Δ beside ours, α; Δ bars per k with the paper\'s Δ', () => {
    const rows: Table1Row[] = [1, 2].flatMap((k) => (['rift', 'rift-bn'] as const).map((method) => ({
      k, method, seeds: 1, clean: 70, cleanStd: null, robust: 40, robustStd: null, deltaClean: 1, deltaCleanCI: [0.5, 1.5] as [number, number],
      deltaRobust: method === 'rift' ? -0.2 : 0.3, deltaRobustCI: [-0.5, 0.8] as [number, number], mcnemarPClean: 0.01, mcnemarPRobust: 0.5,
      modules: 'm', alphas: [0.5], paperClean: PAPER_TABLE1.rows.find((p) => p.k === k && p.method === method)!.clean, paperRobust: PAPER_TABLE1.rows.find((p) => p.k === k && p.method === method)!.robust,
    })));
    const d = table1DisplayRows(rows, { clean: 69, robust: 40 });
    assert.equal(d.length, 5);
    assert.equal(d[0].method, 'Base (PGD-AT)');
    assert.deepEqual(Object.keys(d[0]), Object.keys(d[1]), 'the base row has every column, in the same order');
    assert.equal(d[1]['Δ robust [95% CI]'], '-0.20 [-0.50, +0.80]');
    assert.ok(Math.abs((d[1]['paper Δ clean'] as number) - 1.69) < 1e-9);
    const detail = table1DetailRows(rows);
    assert.deepEqual(detail[0], { k: 1, method: 'RiFT', 'McNemar p (clean)': '0.0100', 'McNemar p (robust)': '0.5000', modules: 'm', α: '0.5' });
    const bars = table1DeltaBars(rows);
    assert.equal(bars.length, 8);
    assert.deepEqual([bars[0].k, bars[0].method, bars[0].metric], ['k = 1', 'RiFT', 'Δ robust']);
    assert.ok(Math.abs(bars[0].paper! - 0.16) < 1e-9);
  });
});

describe('readings', () => {
  test('Figure 1/2 verdicts: the paper\'s picture matches all five; one epoch leaves the "later" claim untestable', () => {
    const vs = layerTypeVerdicts(paperLike);
    assert.deepEqual(vs.map((v) => v.verdict), ['matches', 'matches', 'matches', 'matches', 'matches']);
    const flipped = layerTypeVerdicts([lt('bn-only', [[80, 50], [79, 49]]), lt('conv-linear-only', [[80, 50], [81, 51]]), lt('full', [[80, 50], [80.5, 52]])]);
    assert.deepEqual(flipped.map((v) => v.verdict), ['does not match', 'matches', 'not testable', 'does not match', 'does not match']);
    // Nested correct sets (no churn): −1 pt is 10 losses and no gain, a real change.
    assert.match(flipped[0].measured, /^epoch 1 vs 0: clean -1\.00 \[-\d\.\d\d, -0\.\d\d\], robust -1\.00 \[-\d\.\d\d, -0\.\d\d\] pt$/);
    // With 40 answers swapped per epoch the same −1 pt has ~90 discordant pairs: within noise, said so.
    const noisy = layerTypeVerdicts([lt('bn-only', [[80, 50], [79, 49]], 40)])[0];
    assert.equal(noisy.verdict, 'does not match');
    assert.match(noisy.measured, /\(the clean and the robust changes are within noise: the paired 95% interval includes 0\)$/);
    const oneNoisy = layerTypeVerdicts([lt('bn-only', [[80, 50], [81, 45]], 20)])[0];
    assert.match(oneNoisy.measured, /\(the clean change is within noise/);
    // Later loss: paired best-vs-last interval per mode, with the epochs named.
    assert.match(vs[2].measured, /Conv\/Linear-only 1\.50 \[\+?\d\.\d\d, \d\.\d\d\] \(epoch 1 → 3\), BN-only 0\.30 \[\d\.\d\d, \d\.\d\d\] \(epoch 1 → 3\)/);
    // Every between-mode claim also compares the two modes directly (paired, last epochs).
    assert.match(vs[2].measured, /; at the last epoch Conv\/Linear-only − BN-only robust -1\.70 \[-\d\.\d\d, -\d\.\d\d\] pt$/);
    assert.match(vs[3].measured, /Full − Conv\/Linear-only: \+1\.30 \[\+\d\.\d\d, \+\d\.\d\d\] pt \(paired 95% interval\)$/);
    assert.match(vs[4].measured, /Full -3\.00 \[-\d\.\d\d, -\d\.\d\d\] pt; at the last epoch Full − Conv\/Linear-only robust -2\.00 \[-\d\.\d\d, -\d\.\d\d\] pt$/);
    // Modes whose correct sets move differently (churn): a 0.5-pt gap between them is noise.
    const close = layerTypeVerdicts([lt('bn-only', [[80, 50], [80, 50], [80, 50]]), lt('conv-linear-only', [[80, 50], [80, 50], [80, 49.5]], 40), lt('full', [[80, 50], [81, 50], [81, 49]], 20)]);
    assert.match(close[2].measured, /robust -0\.50 \[-\d\.\d\d, \+\d\.\d\d\] pt \(within noise: the interval includes 0\)$/);
    assert.match(close[4].measured, /Full − Conv\/Linear-only robust -0\.50 .* \(within noise: the interval includes 0\)$/);
    assert.match(layerTypeReading(paperLike), /5 matches, 0 does not match, 0 not testable/);
    assert.doesNotMatch(layerTypeReading(paperLike), /Identical curves/);
    const same = layerTypeReading([lt('bn-only', [[10, 5], [11, 6]]), lt('full', [[10, 5], [11, 6]])]);
    assert.match(same, /Identical curves \(BN-only = Full\)/);
    assert.match(same, new RegExp(`1000 evaluation images, so one binomial standard error is ±${binomialSE(10, 1000).toFixed(2)} pt on clean and ±${binomialSE(5, 1000).toFixed(2)} pt on robust`));
    // Clean accuracy on more images than the attacked set: each standard error uses its own count.
    const split = layerTypeReading([{ ...lt('bn-only', [[10, 5], [11, 6]]), eval: { n: 1000, cleanN: null, attack, batchSize: 256 } }]);
    assert.match(split, new RegExp(`10000 clean and 1000 attacked test images, so one binomial standard error is ±${binomialSE(10, 10_000).toFixed(2)} pt on clean and ±${binomialSE(5, 1000).toFixed(2)} pt on robust`));
  });

  test('Table 1 reading counts wins against the paper, intervals with 0, and paired method comparisons', () => {
    const n = 200;
    const base = { clean: bits(n, range(0, 140)), robust: bits(n, range(0, 80)) };
    const rec = (method: RiftRecord['method'], k: number, robustOnes: number[]): RiftRecord => ({
      method, k, seed: 0, raw: score(base, bits(n, range(0, 150)), bits(n, robustOnes)), interpolated: null,
    }) as unknown as RiftRecord;
    const recs = [rec('rift', 1, range(0, 80)), rec('rift-bn', 1, range(0, 90)), rec('rift', 2, range(0, 78)), rec('rift-bn', 2, range(0, 100))];
    const comps = methodComparisons(recs);
    assert.deepEqual(comps.map((c) => [c.k, c.robust.delta]), [[1, 5], [2, 11]]);
    assert.equal(methodComparisonCells(comps)[1]['robust: RiFT with BN − RiFT [95% CI]'].toString().slice(0, 6), '+11.00');
    const rows: Table1Row[] = recs.map((r) => ({
      k: r.k, method: r.method, seeds: 1, clean: r.raw.clean, cleanStd: null, robust: r.raw.robust, robustStd: null,
      deltaClean: r.raw.vsBase.clean.delta, deltaCleanCI: r.raw.vsBase.clean.ci, deltaRobust: r.raw.vsBase.robust.delta, deltaRobustCI: r.raw.vsBase.robust.ci,
      mcnemarPClean: 0, mcnemarPRobust: 0, modules: '', alphas: [null], paperClean: null, paperRobust: null,
    }));
    const text = table1Reading(rows, comps);
    assert.match(text, /Δ robust: RiFT with BN above RiFT for \*\*2 of 2\*\* k \(k = 1, 2\); the paper: 1 of 2 \(k = 2\)/);
    assert.match(text, /Δ clean: RiFT with BN above RiFT for \*\*0 of 2\*\* k \(none\); the paper: 1 of 2 \(k = 2\)/);
    assert.match(text, /RiFT: the 95% interval of Δ robust includes 0 for 2 of 2 k/);
    assert.match(text, /Δ robust < 0 for 1 of 2/);
    assert.match(text, /robust interval excludes 0 for \d of 2/);
    assert.match(text, /cannot be resolved at this evaluation size/);
    assert.doesNotMatch(text, /fell back to α = 0/, 'interpolation off: no α line');
    const withAlpha = rows.map((r, i) => ({ ...r, alphas: [i === 1 ? 0 : 0.5] }));
    assert.match(table1Reading(withAlpha), /fell back to α = 0 .* for \*\*1 of 4\*\* rows \(RiFT with BN k = 1\)/);
  });

  test('Figure 3 verdict and reading follow the distances and each method\'s BN policy', () => {
    const m = (name: 'init' | 'RiFT' | 'RiFT with BN', w: number, modules: string[]) => ({ name, modules, density: [], mean: w, std: 1 + w, wassersteinToInit: w, bandwidth: 0.1 });
    const rec = { layer: 'layer3.0.bn1', layerChoice: 'x', n: 256, advSource: 'own' as const, models: [m('init', 0, []), m('RiFT', 0.3, ['conv1']), m('RiFT with BN', 0.1, ['layer3.0.bn1'])] };
    assert.equal(kdeVerdict(rec).verdict, 'matches');
    assert.equal(kdeVerdict({ ...rec, models: [rec.models[0], m('RiFT', 0.1, []), m('RiFT with BN', 0.3, [])] }).verdict, 'does not match');
    const text = kdeReading(rec, { rift: 'all', riftBN: 'selected' });
    assert.match(text, /RiFT did not select this layer and re-estimated its running statistics \(policy 'all'\)/);
    assert.match(text, /RiFT with BN fine-tuned this layer and re-estimated its running statistics \(policy 'selected'\)/);
  });

  test('BN-policy, interpolation and restarts readings', () => {
    const n = 100;
    const base = { clean: bits(n, range(0, 70)), robust: bits(n, range(0, 40)) };
    const r = (robustTo: number, modules: string[]) => ({ k: 2, modules, interpolated: null, raw: score(base, bits(n, range(0, 75)), bits(n, range(0, robustTo))) });
    const policy = bnPolicyReading([{ policy: 'all', record: r(38, ['conv1', 'bn1']) }, { policy: 'selected', record: r(45, ['conv1', 'bn1']) }, { policy: 'none', record: r(41, ['conv1', 'bn1']) }], ['bn1']);
    assert.match(policy, /BN layers among them: bn1/);
    assert.match(policy, /Highest robust accuracy: 'selected' at 45\.00%; highest clean: 'all' and 'selected' and 'none' \(tied\) at 75\.00%\./);
    const atBase = { ...r(40, ['conv1', 'bn1']), interpolated: { ...score(base, bits(n, range(0, 70)), bits(n, range(0, 40))), alpha: 0, points: [] } };
    assert.match(bnPolicyReading([{ policy: 'all', record: atBase }, { policy: 'selected', record: r(39, ['conv1', 'bn1']) }, { policy: 'none', record: atBase }], ['bn1']),
      /Highest robust accuracy: 'all' and 'none' \(tied\) at 40\.00% — 'all' and 'none' fell back to α = 0, i\.e\. the base model itself/);
    assert.match(policy, /'all' − 'selected': robust -7\.00/);
    assert.match(bnPolicyReading([{ policy: 'selected', record: r(40, ['conv1']) }], ['bn1']), /no BN layer among them/);

    const raw = score(base, bits(n, range(0, 80)), bits(n, range(0, 35)));
    const half = score(base, bits(n, range(0, 76)), bits(n, range(0, 40)));
    const interp = interpolationReading([
      { method: 'rift', k: 2, raw, interpolated: { ...half, alpha: 0.5, points: [] } },
      { method: 'rift-bn', k: 2, raw, interpolated: { ...raw, alpha: 1, points: [] } },
      { method: 'rift-bn', k: 3, raw, interpolated: null },
    ]);
    assert.match(interp, /RiFT k = 2: α = 0\.5; robust \+5\.00/);
    assert.match(interp, /α = 1 was chosen/);
    assert.match(interp, /interpolation was off/);

    const run = (restarts: number, ones: number) => ({ restarts, robust: ones, robustBits: encodeBits(bits(n, range(0, ones))), seconds: 0 });
    const model = (name: string, a: number, b: number) => ({ name, file: '', sha256: '', clean: 70, runs: [run(1, a), run(3, b)], gap: pairedComparison(bits(n, range(0, a)), bits(n, range(0, b)), { resamples: 500 }) });
    const rec: Pick<RestartsRecord, 'models' | 'restarts' | 'n'> = { n, restarts: [1, 3], models: [model('base', 40, 40), model('RiFT', 42, 30), model('RiFT with BN', 41, 39)] };
    const text = restartsReading(rec);
    assert.match(text, /RiFT: -12\.00 \[/);
    assert.match(text, /Order by robust accuracy: RiFT > RiFT with BN > base \(×1\) vs base > RiFT with BN > RiFT \(×3\) — changed/);
    const tied = restartsReading({ n, restarts: [1, 3], models: [model('base', 40, 39), model('RiFT', 40, 39), model('RiFT with BN', 39, 39)] });
    assert.match(tied, /Order by robust accuracy: base = RiFT > RiFT with BN \(×1\) vs base = RiFT = RiFT with BN \(×3\) — changed/);
    assert.match(text, /measurably for 1 of 3 models \(RiFT\)/);
  });

  test('AutoAttack reading: AA − PGD per model, which attack did the work, and whether "robustness preserved" survives AA', () => {
    const n = 200;
    const stage = (attack: string, attacked: number, fooled: number) => ({ attack, attacked, fooled, robustAfter: (100 * (attacked - fooled)) / n, seconds: 1 });
    const model = (name: string, pgd: number, aa: number, squareFooled = 0) => ({
      name, file: '', sha256: '', clean: 70, pgd: (100 * pgd) / n, aa: (100 * aa) / n,
      cleanBits: encodeBits(bits(n, range(0, 140))), pgdBits: encodeBits(bits(n, range(0, pgd))), aaBits: encodeBits(bits(n, range(0, aa))),
      stages: [stage('apgd-ce', 140, 140 - aa - 4 - squareFooled), stage('apgd-t', aa + 4 + squareFooled, 4), stage('fab-t', aa + squareFooled, 0), stage('square', aa + squareFooled, squareFooled)],
      gap: pairedComparison(bits(n, range(0, pgd)), bits(n, range(0, aa)), { resamples: 500 }), seconds: { pgd: 1, aa: 10 },
    });
    const rec = (models: AutoAttackRecord['models']): Pick<AutoAttackRecord, 'models' | 'n' | 'autoattack' | 'pgd'> => ({
      n, models, pgd: { eps: 8 / 255, alpha: 2 / 255, steps: 10, randomStart: true, restarts: 1 },
      autoattack: { ...resolveConfig('quick').autoattack, eps: 8 / 255, seed: 0 },
    });
    // RiFT keeps its PGD gain under AA; RiFT with BN is level under PGD but loses 15 images under AA.
    const r = rec([model('base', 80, 70), model('RiFT', 84, 74), model('RiFT with BN', 80, 55, 3)]);
    const text = autoAttackReading(r);
    assert.match(text, /the standard AutoAttack suite against PGD-10 on the same 200 test images/);
    assert.match(text, /- base: PGD-10 40\.00% → AA 35\.00%, AA − PGD -5\.00 \[[^\]]+\] pt \(interval excludes 0\); apgd-ce fooled most \(66 of 140 attacked\)/);
    assert.match(text, /Square \(which never reads a gradient\) lowered robust accuracy by more than 0\.2 pt after the gradient-based attacks for RiFT with BN \(3 images\)/);
    assert.match(text, /- RiFT with BN: PGD-10 \+0\.00 \[\+0\.00, \+0\.00\] pt \(preserved \(within noise\)\), AA -7\.50 \[[^\]]+\] pt \(lower\) — the verdict changes with the attack/);
    assert.match(text, /"Robustness preserved" does not survive AutoAttack for RiFT with BN/);
    const d = autoAttackDeltas(r);
    assert.deepEqual(d.map((x) => [x.name, x.pgd.delta, x.aa.delta]), [['RiFT', 2, 2], ['RiFT with BN', 0, -7.5]]);
    const ok = autoAttackReading(rec([model('base', 80, 70), model('RiFT', 81, 70)]));
    assert.match(ok, /"Robustness preserved" survives AutoAttack here/);
    assert.match(ok, /no sign of gradient masking/);
  });

  test('seed variation: cells per (method, seed) and a reading that counts who is ahead per seed', () => {
    const n = 100;
    const base = { clean: bits(n, range(0, 70)), robust: bits(n, range(0, 40)) };
    const rec = (method: 'rift' | 'rift-bn', seed: number, cleanTo: number, alpha: number) => {
      const raw = score(base, bits(n, range(0, cleanTo + 2)), bits(n, range(0, 37)));
      const fin = alpha === 0 ? score(base, base.clean, base.robust) : score(base, bits(n, range(0, cleanTo)), bits(n, range(0, 40)));
      return { method, k: 5, seed, raw, interpolated: { ...fin, alpha, points: [] } };
    };
    const recs = [rec('rift-bn', 1, 74, 0.5), rec('rift', 0, 71, 0.5), rec('rift-bn', 0, 75, 0.25), rec('rift', 1, 70, 0)];
    const cells = seedCells(recs);
    assert.deepEqual(cells.map((c) => [c.method, c.seed, c['α']]), [['RiFT', 0, 0.5], ['RiFT', 1, 0], ['RiFT with BN', 0, 0.25], ['RiFT with BN', 1, 0.5]]);
    assert.match(String(cells[2]['final Δ clean [95% CI]']), /^\+5\.00 \[/);
    assert.match(String(cells[2]['raw Δ clean [95% CI]']), /^\+7\.00 \[/);
    assert.match(String(cells[1]['final Δ clean [95% CI]']), /^\+0\.00 \[\+0\.00, \+0\.00\]$/);
    const text = seedReading(recs);
    assert.match(text, /k = 5, fine-tuning seeds 0, 1/);
    assert.match(text, /- RiFT: final Δ clean \+0\.50 ± 0\.71, Δ robust \+0\.00 ± 0\.00; raw .*interpolation kept a fine-tuned model \(α > 0\) in 1 of 2 seeds/);
    assert.match(text, /- RiFT with BN: final Δ clean \+4\.50 ± 0\.71/);
    assert.match(text, /clean \(final models, per seed\): \+4\.00 \[.*\]; \+4\.00 \[.*\]; RiFT with BN ahead in 2, RiFT in 0 of 2/);
    assert.match(text, /same in every seed/);
    const flipped = seedReading([rec('rift', 0, 71, 0.5), rec('rift-bn', 0, 75, 0.25), rec('rift', 1, 76, 0.5), rec('rift-bn', 1, 74, 0.5)]);
    assert.match(flipped, /ahead in 1, RiFT in 1 of 2/);
    assert.match(flipped, /changes with the seed/);
  });

  test('base and MRC readings', () => {
    const quick = resolveConfig('quick');
    const text = baseReading({ clean: 70, robust: 40, n: 1000 }, quick, 701_466);
    assert.match(text, /70\.00% clean \(paper 81\.45, -11\.45 pt\)/);
    assert.match(text, /width ×0\.25 \(0\.70 M parameters vs 11\.2 M\), 15 PGD-AT epochs vs 110, a PGD-3 training attack vs PGD-10/);
    assert.doesNotMatch(text, /Smoke profile/);
    assert.match(baseReading({ clean: 10, robust: 5, n: 64 }, resolveConfig('smoke'), 1000), /Smoke profile/);
    assert.match(baseReading({ clean: 81, robust: 53, n: 10000 }, resolveConfig('paper'), 11_173_962), /paper's scale/);

    const m = mrcReading(mrcRecord(), [1, 2]);
    assert.match(m, /6 modules ranked \(2 BN, 4 conv\/linear\) on 100/);
    assert.match(m, /2 of the 2 lowest-MRC modules are BN layers/);
    assert.match(m, /ours 0\.500 and 9\.000 \(ranks 1 and 4 of 4 conv\/linear modules\) — the order matches/);
  });
});

describe('CIFAR-100 readings (Figure 2)', () => {
  test('crossDatasetRows: the same verdicts agree, a flipped one differs and is named, with the weight of its evidence', () => {
    const flipped = [lt('bn-only', [[80, 50], [79, 49], [79, 49]]), paperLike[1], paperLike[2]];
    const rows = crossDatasetRows(paperLike, flipped);
    assert.equal(rows.length, 5);
    assert.deepEqual(rows.map((r) => r.agree), ['differs', 'same', 'same', 'same', 'same']);
    assert.deepEqual([rows[0].cifar10, rows[0]['cifar10 evidence'], rows[0].cifar100, rows[0]['cifar100 evidence']], ['matches', 'outside noise', 'does not match', 'outside noise']);
    const text = crossDatasetReading(paperLike, flipped);
    assert.match(text, /4 of 5 statements come out the same on CIFAR-10 and CIFAR-100 \(4 matching the paper on both, 0 failing on both\); 1 differ with the evidence on both sides outside noise, 0 differ where one side's evidence is within noise\./);
    assert.match(text, /- differs — BN-only first raises both clean and robust accuracy: CIFAR-10 matches \(outside noise\), CIFAR-100 does not match \(outside noise\)/);
    // The same −1 pt with 40 answers swapped per epoch is noise: the disagreement is named as such.
    const noisy = crossDatasetRows(paperLike, [lt('bn-only', [[80, 50], [79, 49], [79, 49]], 40), paperLike[1], paperLike[2]]);
    assert.equal(noisy[0].agree, 'differs within noise');
    assert.equal(noisy[0]['cifar100 evidence'], 'within noise');
    assert.match(crossDatasetReading(paperLike, paperLike), /5 of 5 statements .*; 0 differ with the evidence on both sides outside noise/);
    // A mode missing on one side makes its statements untestable there, not a disagreement.
    const untestable = crossDatasetRows(paperLike, [paperLike[0]]);
    assert.equal(untestable[1].agree, 'not testable');
  });

  test('trainingScaleReading: gaps to each anchor, images per class, SGD steps and the measured cost of more epochs', () => {
    const cfg100 = resolveConfig('quick', 'cifar100'), cfg10 = resolveConfig('quick', 'cifar10');
    const coverage = { kind: 'subset' as const, n: 12_500, official: 50_000, indicesFile: '/x/train_indices.txt', indicesSha256: '724524516aafbff0' };
    const history = Array.from({ length: 15 }, (_, i) => ({ epoch: i + 1, trainSeconds: 180, evalSeconds: 20, clean: 10 + i, robust: 5 + i / 2 }));
    const text = trainingScaleReading(
      { dataset: 'cifar100', clean: 27.1, robust: 12.15, n: 1000, cleanN: 10_000 },
      { config: cfg100, history, train: { dataset: 'cifar100', split: 'train', coverage, n: 12_500, numClasses: 100 } },
      { base: { dataset: 'cifar10', clean: 66.42, robust: 43.6 }, run: { config: cfg10, train: { dataset: 'cifar10', split: 'train', coverage: { kind: 'complete', n: 50_000, official: 50_000 }, n: 50_000, numClasses: 10 } } },
    );
    assert.match(text, /RiFT, CIFAR-100 AT base \(ResNet-18\): 57\.10 \/ 30\.15, so ours is -30\.00 \/ -18\.00 pt from it/);
    assert.match(text, /our cifar10 base at the same profile is -15\.03 \/ -10\.15 pt from its anchor .*: the cifar100 base is further from its anchor on both metrics \(trained on 5000 images per class vs 125 here\)/);
    assert.match(text, /cifar100 train: declared subset, 12,500 of 50,000 official records \(train_indices\.txt sha256 72452451…\); 12,500 images per epoch \(125 per class\), 15 epochs, 1,455 SGD steps of 128/);
    assert.match(text, /last 3 epochs \(lr decay included\) the per-epoch evaluation moved clean \+3\.00 and robust \+1\.50 pt; measured 200 s per epoch here, so each 15 more epochs cost about 50:00/);
    // 5,850 CIFAR-10 steps / 1,455 = 4.02× the 15 epochs at 200 s each.
    assert.match(text, /quick base's number of SGD steps \(5850\) would take 3:21:02/);
  });
});
