import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { readCheckpoint } from '../lib/src/nn/checkpoint.js';
import { resolveConfig, lrAt, parseOverrides } from '../lib/src/experiments/config.js';
import { tempDir } from './helpers.js';

const ROOT = path.join(__dirname, '..');
const SHARED_C10 = path.resolve(ROOT, '..', 'shared', 'datasets', 'cifar-10-batches-bin');
// One process (not the tsx wrapper, which would leave its child running after a SIGKILL).
const NODE = process.execPath;
// A smaller smoke run still covers 2 epochs with a resume in the middle of the second.
const ARGS = ['--import', 'tsx', 'scripts/train.ts', '--profile', 'smoke', '--set', 'advTrain.trainN=256', '--set', 'advTrain.evalN=64'];
const env = { ...process.env, RIFT_BACKEND: process.env.RIFT_TEST_BACKEND ?? process.env.RIFT_BACKEND ?? 'auto' };

test('config: profiles, overrides, lr schedule, clear errors', () => {
  const paper = resolveConfig('paper');
  assert.equal(paper.advTrain.epochs, 110);
  assert.deepEqual([0, 99, 100, 104, 105, 109].map((e) => +lrAt(paper.advTrain, e).toPrecision(3)), [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]);
  const c = resolveConfig('smoke', 'cifar10', parseOverrides(['advTrain.epochs=3', 'advTrain.attack.steps=1', 'advTrain.trainN=null']));
  assert.equal(c.advTrain.epochs, 3);
  assert.equal(c.advTrain.attack.steps, 1);
  assert.equal(c.advTrain.trainN, null);
  assert.equal(c.advTrain.attack.eps, 8 / 255, 'siblings keep their defaults');
  assert.throws(() => resolveConfig('huge'), /unknown profile 'huge'; profiles: smoke, quick, imported, paper/);
  assert.throws(() => resolveConfig('smoke', 'cifar10', parseOverrides(['advTrain.epoch=3'])), /unknown setting 'advTrain.epoch'/);
  assert.throws(() => resolveConfig('smoke', 'cifar10', parseOverrides(['advTrain.epochs=0'])), /advTrain.epochs must be an integer ≥ 1/);
  assert.throws(() => parseOverrides(['epochs']), /--set expects key=value/);
});

test('config: an override must have its field\'s type and range; the error names field, expectation and value', () => {
  const bad = (item: string) => () => resolveConfig('smoke', 'cifar10', parseOverrides([item]));
  assert.throws(bad('profile=paper'), /'profile' cannot be overridden; choose it with --profile/);
  assert.throws(bad('dataset=cifar100'), /'dataset' cannot be overridden/);
  assert.throws(bad('topK=3'), /config: topK must be a list \(e\.g\. topK=\[1,2\]\), got 3/);
  assert.throws(bad('finetune.lr=abc'), /config: finetune\.lr must be a number, got "abc"/);
  assert.throws(bad('finetune.lr=0'), /config: finetune\.lr must be a number > 0, got 0/);
  assert.throws(bad('interpolation.enabled=maybe'), /interpolation\.enabled must be true or false, got "maybe"/);
  assert.throws(bad('eval.batchSize=0'), /eval\.batchSize must be an integer ≥ 1, got 0/);
  assert.throws(bad('finetune.batchSize=null'), /finetune\.batchSize must be an integer ≥ 2, got null/);
  assert.throws(bad('advTrain.seed=1.5'), /advTrain\.seed must be an integer ≥ 0, got 1\.5/);
  assert.throws(bad('interpolation.alphas=[]'), /interpolation\.alphas must be a non-empty list of numbers in \[0, 1\], got \[\]/);
  assert.throws(bad('interpolation.alphas=[0,1.5]'), /interpolation\.alphas must be a non-empty list/);
  assert.throws(bad('mrc.bnRadius=both'), /mrc\.bnRadius must be joint or per-tensor, got "both"/);
  assert.throws(bad('advTrain.attack=3'), /config: 'advTrain\.attack' must be an object/);
  const ok = resolveConfig('smoke', 'cifar10', parseOverrides(['finetune.lrDecayEpoch=1', 'topK=[1,3]', 'eval.cleanN=null', 'advTrain.attack={"steps":1,"randomStart":false}']));
  assert.deepEqual([ok.finetune.lrDecayEpoch, ok.topK, ok.eval.cleanN, ok.advTrain.attack.steps, ok.advTrain.attack.randomStart, ok.advTrain.attack.eps], [1, [1, 3], null, 1, false, 8 / 255]);
});

test('PGD-AT smoke run: checkpoints + log; kill -9 mid-epoch and rerun ends with the same weights', async () => {
  const dir = tempDir();
  const a = path.join(dir, 'a'), b = path.join(dir, 'b');
  const full = spawnSync(NODE, [...ARGS, '--out', a], { cwd: ROOT, env, encoding: 'utf8' });
  assert.equal(full.status, 0, full.stderr);
  assert.match(full.stdout, /done: 2 epochs/);
  for (const f of ['last.rbn', 'best.rbn', 'metrics.jsonl', 'config.json']) assert.ok(fs.existsSync(path.join(a, f)), f);

  // Run b: SIGKILL right after epoch 1 completes (inside epoch 2), then rerun.
  await new Promise<void>((resolve, reject) => {
    const child = spawn(NODE, [...ARGS, '--out', b], { cwd: ROOT, env });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      // The epoch-1 line is printed after its checkpoint is written: kill at once, inside epoch 2.
      if (/epoch 1\/2 lr/.test(out)) child.kill('SIGKILL');
    });
    child.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`not killed: exit ${code}\n${out}`))));
  });
  assert.equal(readCheckpoint(path.join(b, 'last.rbn')).header.extra.epochsDone, 1, 'killed during epoch 2');
  assert.deepEqual(fs.readdirSync(b).filter((f) => f.includes('.tmp-')), [], 'no temp files after kill');
  const resumed = spawnSync(NODE, [...ARGS, '--out', b], { cwd: ROOT, env, encoding: 'utf8' });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stdout, /resuming .* after epoch 1\/2/);

  const ca = readCheckpoint(path.join(a, 'last.rbn')), cb = readCheckpoint(path.join(b, 'last.rbn'));
  assert.equal(ca.header.extra.epochsDone, 2);
  for (const [k, v] of ca.tensors) assert.deepEqual(cb.tensors.get(k), v, `${k} differs after resume`);
  const strip = (f: string) => fs.readFileSync(f, 'utf8').trim().split('\n').map((l) => {
    const m = JSON.parse(l);
    delete m.trainSeconds; delete m.evalSeconds; delete m.imagesPerSecond;
    return m;
  });
  assert.deepEqual(strip(path.join(b, 'metrics.jsonl')), strip(path.join(a, 'metrics.jsonl')));
  // A different config in the same folder is refused.
  const clash = spawnSync(NODE, [...ARGS, '--out', b, '--set', 'advTrain.lr=0.2'], { cwd: ROOT, env, encoding: 'utf8' });
  assert.notEqual(clash.status, 0);
  assert.match(clash.stderr, /started with another config \(advTrain\.lr: stored 0\.05 → now 0\.2\)/);
  const cfg = path.join(b, 'config.json');
  fs.writeFileSync(cfg, '{bad');
  const corrupt = spawnSync(NODE, [...ARGS, '--out', b], { cwd: ROOT, env, encoding: 'utf8' });
  assert.match(corrupt.stderr, /config\.json: this run folder was started with another config \(the stored file is not valid JSON/);
  const notDir = spawnSync(NODE, [...ARGS, '--out', cfg], { cwd: ROOT, env, encoding: 'utf8' });
  assert.match(notDir.stderr, /run folder .*config\.json is a file; pass a folder \(--out\)/);
});

test('a run folder whose last.rbn has another architecture: a clear error, and the folder is left as it was', () => {
  const dir = tempDir();
  const a = path.join(dir, 'a');
  const first = spawnSync(NODE, [...ARGS, '--out', a, '--set', 'advTrain.epochs=1'], { cwd: ROOT, env, encoding: 'utf8' });
  assert.equal(first.status, 0, first.stderr);
  // The folder of a run whose config.json is gone (copied checkpoints, a cleaned folder).
  fs.rmSync(path.join(a, 'config.json'));
  const snapshot = () => Object.fromEntries(fs.readdirSync(a).sort().map((f) => [f, fs.readFileSync(path.join(a, f)).toString('base64')]));
  const before = snapshot();
  const other = spawnSync(NODE, [...ARGS, '--out', a, '--set', 'advTrain.epochs=1', '--set', 'advTrain.width=0.25'], { cwd: ROOT, env, encoding: 'utf8' });
  assert.notEqual(other.status, 0);
  assert.match(other.stderr, /last\.rbn: cannot resume this run \(checkpoint does not fit this model \(width: checkpoint 0\.125 vs model 0\.25\)\)/);
  assert.equal(other.stderr.trim().split('\n').length, 1, `one line: ${other.stderr}`);
  assert.deepEqual(snapshot(), before, 'no file added, removed or changed');
  // A folder that does not exist yet is not created by a start that fails on bad data.
  const missing = path.join(dir, 'never');
  const noData = spawnSync(NODE, [...ARGS, '--out', missing], { cwd: ROOT, env: { ...env, RIFT_DATA_DIR: path.join(dir, 'nodata') }, encoding: 'utf8' });
  assert.notEqual(noData.status, 0);
  assert.ok(!fs.existsSync(missing), 'no run folder left behind');
});

test('a run resumes only on the data it started on: other train data is a clear error, the folder untouched', { skip: fs.existsSync(SHARED_C10) ? false : `no ${SHARED_C10}` }, () => {
  const dir = tempDir();
  const a = path.join(dir, 'a');
  const first = spawnSync(NODE, [...ARGS, '--out', a, '--set', 'advTrain.epochs=2', '--max-epochs', '1'], { cwd: ROOT, env, encoding: 'utf8' });
  assert.equal(first.status, 0, first.stderr);
  // The same folder layout with a declared 1,000-per-file train subset instead of the full split.
  const data = path.join(dir, 'data', 'cifar-10-batches-bin');
  fs.mkdirSync(data, { recursive: true });
  for (const f of ['test_batch.bin', 'batches.meta.txt']) fs.copyFileSync(path.join(SHARED_C10, f), path.join(data, f));
  const indices: number[] = [];
  for (let i = 1; i <= 5; i++) {
    fs.writeFileSync(path.join(data, `data_batch_${i}.bin`), fs.readFileSync(path.join(SHARED_C10, `data_batch_${i}.bin`)).subarray(0, 1000 * 3073));
    for (let k = 0; k < 1000; k++) indices.push((i - 1) * 10_000 + k);
  }
  fs.writeFileSync(path.join(data, 'train_indices.txt'), indices.map((x) => `${x}\n`).join(''));
  const before = fs.readdirSync(a).sort().map((f) => [f, fs.readFileSync(path.join(a, f)).toString('base64')]);
  const other = spawnSync(NODE, [...ARGS, '--out', a, '--set', 'advTrain.epochs=2'], { cwd: ROOT, env: { ...env, RIFT_DATA_DIR: path.join(dir, 'data') }, encoding: 'utf8' });
  assert.notEqual(other.status, 0);
  assert.match(other.stderr, /last\.rbn: this run was trained on "cifar10 train: complete, 50,000 records", but the train data now is "cifar10 train: declared subset, 5,000 of 50,000 official records/);
  assert.deepEqual(fs.readdirSync(a).sort().map((f) => [f, fs.readFileSync(path.join(a, f)).toString('base64')]), before, 'the folder is left as it was');
});
