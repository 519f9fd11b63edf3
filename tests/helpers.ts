/** Shared test helpers. */
import * as tf from '@tensorflow/tfjs-core';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { isDeepStrictEqual } from 'node:util';
import { initEngine, type BackendName } from '../lib/src/engine/engine.js';
import { mulberry32 } from '../lib/src/util/rng.js';

/** Backend for the model-level tests: RIFT_TEST_BACKEND, else the engine's automatic choice. */
export async function testEngine() {
  return initEngine({ backend: (process.env.RIFT_TEST_BACKEND as BackendName | undefined) ?? 'auto' });
}

/** Uniform random images [b,32,32,3] in [0,1] from a seed. */
export function randImages(b: number, seed: number): tf.Tensor4D {
  const r = mulberry32(seed);
  return tf.tensor4d(Float32Array.from({ length: b * 32 * 32 * 3 }, () => r()), [b, 32, 32, 3]);
}

/** Asserts that every entry of `snap` still equals the model's state (the model was left untouched), then frees the snapshot. */
export function assertStateUnchanged(m: { read(name: string): unknown }, snap: { tensors: ReadonlyMap<string, tf.Tensor>; dispose(): void }): void {
  try {
    for (const [k, t] of snap.tensors) if (!isDeepStrictEqual(m.read(k), t.dataSync())) throw new Error(`model state entry ${k} changed`);
  } finally {
    snap.dispose();
  }
}

/** Labels a model gives x itself (argmax in inference mode), int32 [b]: every example starts correctly classified. Caller disposes. */
export function ownLabels(m: { forward(x: tf.Tensor4D, o?: { training?: boolean }): tf.Tensor2D }, x: tf.Tensor4D): tf.Tensor1D {
  return tf.tidy(() => tf.cast(tf.argMax(m.forward(x, { training: false }), 1), 'int32') as tf.Tensor1D);
}

/** Asserts that fn leaves the number of live tensors unchanged (fn may be async). */
export async function assertNoLeak(name: string, fn: () => unknown | Promise<unknown>, repeats = 2): Promise<void> {
  await fn(); // warm-up: lazily created constants are allowed once
  const before = tf.memory().numTensors;
  for (let i = 0; i < repeats; i++) await fn();
  const after = tf.memory().numTensors;
  if (after !== before) throw new Error(`${name}: tensor count grew from ${before} to ${after} over ${repeats} calls`);
}

/** A fresh temp folder removed at process exit. */
export function tempDir(prefix = 'rift-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** The Python with Debian's python3-torch (the independent reference). */
export const PYTHON = '/usr/bin/python3';

/** Skip reason for tests that need PyTorch: false when it imports, or when RIFT_REQUIRE_TORCH=1 (CI), which makes its absence a failure. */
export function torchSkip(): string | false {
  const have = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  return !have && process.env.RIFT_REQUIRE_TORCH !== '1' ? `PyTorch not importable by ${PYTHON} (apt-get install python3-torch)` : false;
}

/** max |got − want| / max |want|: the relative error of two equally long arrays (the PyTorch comparisons' measure). */
export function maxRel(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`maxRel: ${got.length} values vs ${want.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < got.length; i++) { num = Math.max(num, Math.abs(got[i] - want[i])); den = Math.max(den, Math.abs(want[i])); }
  return num / Math.max(den, 1e-12);
}
