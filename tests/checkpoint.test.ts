import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { createResNet18 } from '../lib/src/nn/model.js';
import { saveCheckpoint, readCheckpoint, loadModel, loadCheckpointInto, checkpointHash } from '../lib/src/nn/checkpoint.js';
import { testEngine, randImages, tempDir, assertNoLeak } from './helpers.js';
import { writeFileAtomic } from '../lib/src/util/fs.js';

before(testEngine);

test('checkpoint round trip gives bit-identical outputs, BN statistics included', async () => {
  const dir = tempDir();
  const m = createResNet18({ width: 0.125, numClasses: 10 }, 21);
  const x = randImages(4, 21);
  try {
    tf.dispose(m.forward(x, { training: true })); // move BN running statistics off their init
    const file = path.join(dir, 'a.rbn');
    saveCheckpoint(file, m, { provenance: { profile: 'smoke', seed: 21 }, metrics: { clean: 12.5 } });
    assert.deepEqual(fs.readdirSync(dir), ['a.rbn'], 'no temp file left behind');
    const { model: m2, checkpoint } = loadModel(file);
    try {
      assert.equal(checkpoint.header.provenance.profile, 'smoke');
      assert.equal(checkpoint.header.metrics.clean, 12.5);
      for (const k of m.stateKeys()) assert.deepEqual(m2.read(k), m.read(k), k);
      const [a, b] = [m.predict(x), m2.predict(x)];
      assert.deepEqual(a.dataSync(), b.dataSync());
      tf.dispose([a, b]);
      // Loading into an existing model of the same architecture.
      const m3 = createResNet18({ width: 0.125 }, 99);
      loadCheckpointInto(m3, file);
      assert.deepEqual(m3.read('layer3.0.shortcut.1.running_var'), m.read('layer3.0.shortcut.1.running_var'));
      await assertNoLeak('loadCheckpointInto', () => loadCheckpointInto(m3, checkpoint));
      m3.dispose();
    } finally {
      m2.dispose();
    }
  } finally {
    x.dispose();
    m.dispose();
  }
});

test('loading into another width or class count fails clearly; corrupt files are rejected', () => {
  const dir = tempDir();
  const m = createResNet18({ width: 0.125, numClasses: 10 }, 22);
  const file = path.join(dir, 'b.rbn');
  saveCheckpoint(file, m);
  m.dispose();
  for (const cfg of [{ width: 0.25, numClasses: 10 }, { width: 0.125, numClasses: 100 }]) {
    const other = createResNet18(cfg, 1);
    assert.throws(() => loadCheckpointInto(other, file), /does not fit this model \((width: checkpoint 0.125 vs model 0.25|numClasses: checkpoint 10 vs model 100)\)/);
    other.dispose();
  }
  const bytes = fs.readFileSync(file);
  const flipped = Buffer.from(bytes);
  flipped[flipped.length - 10] ^= 0xff;
  fs.writeFileSync(path.join(dir, 'flip.rbn'), flipped);
  assert.throws(() => readCheckpoint(path.join(dir, 'flip.rbn')), /flip\.rbn: data SHA-256 mismatch/);
  fs.writeFileSync(path.join(dir, 'short.rbn'), bytes.subarray(0, bytes.length - 100));
  assert.throws(() => readCheckpoint(path.join(dir, 'short.rbn')), /short\.rbn: truncated/);
  fs.writeFileSync(path.join(dir, 'junk.rbn'), 'hello world, not a checkpoint');
  assert.throws(() => readCheckpoint(path.join(dir, 'junk.rbn')), /junk\.rbn: not a rift-bn-checkpoint file/);
  assert.throws(() => readCheckpoint(path.join(dir, 'missing.rbn')), /missing\.rbn: cannot read/);
  assert.throws(() => checkpointHash(dir), new RegExp(`checkpoint ${dir}: cannot read \\(EISDIR`));
});

test('writeFileAtomic leaves the old file intact when the write fails', () => {
  const dir = tempDir();
  const file = path.join(dir, 'f.txt');
  writeFileAtomic(file, 'old');
  const bad = { length: 1 } as unknown as Buffer; // not writable: fs.writeSync throws
  assert.throws(() => writeFileAtomic(file, bad));
  assert.equal(fs.readFileSync(file, 'utf8'), 'old');
  assert.deepEqual(fs.readdirSync(dir), ['f.txt']);
});
