import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { resolveConfig } from '../lib/src/experiments/config.js';
import { trainAdversarial, readRunMetrics } from '../lib/src/experiments/adversarial-training.js';
import { runBaseEvaluation, runMRCExperiment, runRift, runLayerType, runBNOutputKDE, runRestartsComparison } from '../lib/src/experiments/experiments.js';
import * as fs from 'node:fs';
import { ResultCache } from '../lib/src/experiments/cache.js';
import { table1Rows } from '../lib/src/analysis/tables.js';
import { pairedComparison } from '../lib/src/util/stats.js';
import { testEngine, tempDir } from './helpers.js';
import { decodeBits, encodeBits } from '../lib/src/experiments/records.js';

const dir = tempDir();
const config = resolveConfig('smoke', 'cifar10', { advTrain: { trainN: 256, evalN: 32, epochs: 1 }, finetune: { trainN: 64 }, eval: { n: 32, cleanN: 48 }, mrc: { advN: 32 } });
let checkpoint = '';

before(async () => {
  await testEngine();
  await trainAdversarial(config, { outDir: path.join(dir, 'base'), log: () => {}, progress: false });
  checkpoint = path.join(dir, 'base', 'best.rbn');
});

test('top-k RiFT and RiFT with BN on the smoke profile: complete records, cached on rerun, no leaks', async () => {
  const cache = new ResultCache(path.join(dir, 'cache'), { warn: () => {} });
  const inp = { config, checkpoint, cache, progress: false, log: () => {} };
  const start = tf.memory().numTensors;
  const base = await runBaseEvaluation(inp);
  assert.equal(base.n, 32);
  assert.equal(base.cleanN, 48, 'clean accuracy on eval.cleanN examples');
  assert.equal(decodeBits(base.cleanBits).length, 48);
  assert.equal(decodeBits(base.robustBits).length, 32);
  const mrc = await runMRCExperiment(inp);
  assert.equal(mrc.ranking.length, 41);
  assert.ok(mrc.ranking.every((e) => e.mrc >= 0));
  for (const method of ['rift', 'rift-bn'] as const) {
    const r = await runRift(inp, method, 1);
    assert.equal(r.modules.length, 1);
    if (method === 'rift') assert.ok(!r.modules[0].includes('bn') && !r.modules[0].endsWith('shortcut.1'));
    assert.equal(r.bnStats, method === 'rift' ? 'all' : 'selected');
    assert.equal(r.history.length, config.finetune.epochs);
    assert.ok(r.interpolated && r.interpolated.points.length === 3);
    assert.equal(r.interpolated!.points[0].clean, base.clean, 'α = 0 is the base model on the same examples');
    assert.equal(r.raw.vsBase.clean.n, 48);
    assert.equal(r.raw.vsBase.robust.n, 32);
    assert.ok(r.history.filter((h) => h.robust !== null).length === 1, "evalRobust 'kept': PGD for the kept epoch only");
    assert.equal(r.interpolated.points[r.interpolated.points.length - 1].robust, r.raw.robust, 'α = 1 is the kept fine-tuned model');
    assert.ok(r.raw.vsBase.robust.ci[0] <= r.raw.vsBase.robust.delta && r.raw.vsBase.robust.delta <= r.raw.vsBase.robust.ci[1]);
    for (const f of ['checkpointSha256', 'engine', 'seconds', 'finetune', 'eval', 'seed'] as const) assert.ok(r[f] !== undefined, f);
  }
  const rows = table1Rows([await runRift(inp, 'rift-bn', 1), await runRift(inp, 'rift', 1)], base);
  assert.deepEqual(rows.map((r) => r.method), ['rift', 'rift-bn']);
  assert.equal(rows[0].paperClean, 83.14);
  assert.ok(rows.every((r) => r.seeds === 1 && r.mcnemarPClean !== null && r.deltaCleanCI[0] <= r.deltaClean));
  const again = await runRift(inp, 'rift-bn', 1);
  assert.equal(again.createdAt, (await runRift(inp, 'rift-bn', 1)).createdAt, 'second call comes from the cache');
  const lt = await runLayerType(inp, 'bn-only');
  assert.equal(lt.history[0].epoch, 0);
  assert.equal(lt.history[0].clean, base.clean);
  assert.equal(lt.history[0].cleanBits, base.cleanBits, 'epoch 0 is the base model on the same examples');
  assert.equal(lt.history[0].robustBits.length, base.robustBits.length);
  for (const h of lt.history) {
    // The paired Δ is recomputable from the stored bits and equals the difference of the accuracies.
    assert.ok(Math.abs(h.vsBase.clean.delta - (h.clean - lt.history[0].clean)) < 1e-9);
    assert.ok(Math.abs(h.vsBase.robust.delta - (h.robust - lt.history[0].robust)) < 1e-9);
    assert.deepEqual(h.vsBase.robust, pairedComparison(decodeBits(lt.history[0].robustBits), decodeBits(h.robustBits)));
  }
  assert.equal(lt.modules.length, 20);
  const kde = await runBNOutputKDE(inp, { k: 1, n: 16, gridSize: 64 });
  assert.deepEqual(kde.models.map((m) => m.name), ['init', 'RiFT', 'RiFT with BN']);
  assert.equal(kde.models[0].wassersteinToInit, 0);
  assert.ok(kde.models.every((m) => m.density.length === 64 && m.density.every(Number.isFinite)));
  assert.ok(fs.existsSync(again.modelFile), 'fine-tuned model saved beside its record');
  assert.ok(fs.existsSync(again.rawModelFile) && again.rawModelFile !== again.modelFile, 'the model before interpolation is saved too');
  assert.equal(kde.modelState, 'raw');
  const kdeFinal = await runBNOutputKDE(inp, { k: 1, n: 16, gridSize: 64, models: 'final' });
  assert.equal(kdeFinal.modelState, 'final');
  const riftBN1 = await runRift(inp, 'rift-bn', 1);
  if (riftBN1.interpolated!.alpha === 0) assert.equal(kdeFinal.models[2].wassersteinToInit, 0, 'an α = 0 final model is the base');
  assert.equal(tf.memory().numTensors, start, 'no tensor survives the experiments');
  assert.equal(encodeBits(decodeBits('0110')), '0110');
});

test('worst-of-R vs single PGD: ×1 equals the base evaluation, paired gap, cached; readRunMetrics reads the run log', async () => {
  const cache = new ResultCache(path.join(dir, 'cache'), { warn: () => {} });
  const inp = { config, checkpoint, cache, progress: false, log: () => {} };
  const start = tf.memory().numTensors;
  const base = await runBaseEvaluation(inp);
  const models = [{ name: 'base', file: checkpoint }, { name: 'base again', file: checkpoint }];
  const rec = await runRestartsComparison(inp, models, [3, 1]);
  assert.deepEqual(rec.restarts, [1, 3]);
  assert.equal(rec.n, 32);
  assert.equal(rec.models.length, 2);
  for (const m of rec.models) {
    assert.deepEqual(m.runs.map((r) => r.restarts), [1, 3]);
    assert.equal(m.runs[0].robust, base.robust, 'one restart, same seeds and batches as the base evaluation');
    assert.equal(m.runs[0].robustBits, base.robustBits);
    assert.equal(m.clean, base.clean);
    assert.equal(m.gap.delta, m.runs[1].robust - m.runs[0].robust);
    assert.equal(m.gap.n, 32);
  }
  assert.deepEqual(rec.models[0].runs.map((r) => r.robustBits), rec.models[1].runs.map((r) => r.robustBits), 'the same model twice gives the same numbers');
  assert.equal((await runRestartsComparison(inp, models, [1, 3])).createdAt, rec.createdAt, 'cached');
  await assert.rejects(runRestartsComparison(inp, models, [1]), /at least two different integers/);
  await assert.rejects(runRestartsComparison(inp, [{ name: 'x', file: path.join(dir, 'nope.rbn') }]), /nope\.rbn \(x\) is missing/);
  assert.equal(tf.memory().numTensors, start, 'no tensor survives');
  const log = readRunMetrics(path.join(dir, 'base'));
  assert.equal(log.length, config.advTrain.epochs);
  assert.equal(log[0].epoch, 1);
  assert.throws(() => readRunMetrics(path.join(dir, 'nothing')), /metrics\.jsonl is missing/);
});
