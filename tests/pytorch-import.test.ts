/**
 * PyTorch checkpoints in and out, against PyTorch itself (tests/reference/torch_checkpoints.py,
 * Debian python3-torch): checkpoints with random weights for each architecture and each
 * wrapper / prefix / dtype / format case are imported, and the logits and input gradients
 * compared with PyTorch's on the same inputs; exports load in PyTorch with strict=True and
 * give the same logits; bad inputs fail with one-line errors and leave no file.
 * Skipped when torch is not importable, unless RIFT_REQUIRE_TORCH=1 (CI sets it).
 */
import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { importPyTorchCheckpoint, exportPyTorch, type ImportOptions } from '../lib/src/nn/pytorch.js';
import { encodeSafetensors, readStateDict } from '../lib/src/nn/torch-format.js';
import { crossEntropy } from '../lib/src/nn/losses.js';
import { testEngine, PYTHON, torchSkip, maxRel, tempDir } from './helpers.js';

const SCRIPT = path.join(__dirname, 'reference', 'torch_checkpoints.py');
const skip = torchSkip();

before(testEngine);


interface Spec {
  arch: string; width: number; depth?: number; numClasses: number; finalBn?: boolean; preactShortcut?: string; buffers?: boolean;
  wrapper?: 'none' | 'module' | 'model'; key?: string; extras?: boolean; dtype?: string; format?: 'zip' | 'legacy' | 'safetensors';
  normalization?: string; subBlock1?: boolean; noncontiguous?: boolean; seed?: number; batch?: number;
}

function python(args: string[]): void {
  const r = spawnSync(PYTHON, [SCRIPT, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `torch reference failed: ${r.stderr}`);
}

function makeCheckpoint(spec: Spec): { dir: string; file: string; x: tf.Tensor4D; ref: { logits: number[]; grad: number[]; labels: number[]; numParams: number } } {
  const dir = tempDir();
  python(['make', dir, JSON.stringify(spec)]);
  const raw = fs.readFileSync(path.join(dir, 'x.bin'));
  const x = tf.tensor4d(new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4), [spec.batch ?? 4, 32, 32, 3]);
  return { dir, file: path.join(dir, 'ckpt'), x, ref: JSON.parse(fs.readFileSync(path.join(dir, 'out.json'), 'utf8')) };
}

const CASES: Array<{ name: string; spec: Spec; options: ImportOptions; notes?: RegExp }> = [
  { name: 'Kuang Liu ResNet-18, torch.save zip, float32, plain state_dict, CIFAR-normalised inputs (RiFT)',
    spec: { arch: 'resnet18', width: 0.25, numClasses: 10, normalization: 'cifar10' }, options: { normalization: 'cifar10' } },
  { name: "ResNet-18, float16 storages, DataParallel 'module.' prefix under 'net' with epoch/acc/optimizer, a transposed (strided) tensor",
    spec: { arch: 'resnet18', width: 0.25, numClasses: 10, dtype: 'float16', wrapper: 'module', key: 'net', extras: true, noncontiguous: true, normalization: 'cifar10' },
    options: { normalization: 'cifar10' }, notes: /key 'net'; left out: epoch, acc, optimizer.*prefix 'module\.'.*float16/ },
  { name: 'PreActResNet-18 (final BN, shortcut on the pre-activation), safetensors, bfloat16, mu/sigma buffers',
    spec: { arch: 'preact-resnet18', width: 0.25, numClasses: 10, finalBn: true, buffers: true, dtype: 'bfloat16', format: 'safetensors' },
    options: { preactShortcut: 'preact' }, notes: /bfloat16/ },
  { name: "PreActResNet-18 (no final BN, shortcut on the block input), 'model.' prefix under 'state_dict', raw inputs, 100 classes",
    spec: { arch: 'preact-resnet18', width: 0.25, numClasses: 100, finalBn: false, preactShortcut: 'input', wrapper: 'model', key: 'state_dict' },
    options: { normalization: 'none', preactShortcut: 'input', numClasses: 100 } },
  { name: "WideResNet-16-2 (RobustBench names, TRADES' unused sub_block1), legacy torch.save, state_dict under a named --key",
    spec: { arch: 'wide-resnet', width: 2, depth: 16, numClasses: 10, subBlock1: true, format: 'legacy', key: 'ema' },
    options: { normalization: 'none', key: 'ema' }, notes: /sub_block1/ },
];

for (const c of CASES) {
  test(`import: ${c.name} → logits and input gradients match PyTorch; export loads strict in PyTorch`, { skip }, () => {
    const { dir, file, x, ref } = makeCheckpoint({ ...c.spec, seed: 3, batch: 4 });
    const { model, source } = importPyTorchCheckpoint(file, c.options);
    try {
      if (c.notes) assert.match(source.notes.join('; '), c.notes);
      const y = tf.tensor1d(ref.labels, 'int32');
      const logits = tf.tidy(() => model.predict(x).dataSync());
      assert.ok(maxRel(logits, ref.logits) < 1e-4, `logits rel err ${maxRel(logits, ref.logits)}`);
      const grad = tf.tidy(() => tf.grad((xi: tf.Tensor) => tf.mul(crossEntropy(model.predict(xi as tf.Tensor4D), y), ref.labels.length))(x).dataSync());
      assert.ok(maxRel(grad, ref.grad) < 1e-4, `input gradient rel err ${maxRel(grad, ref.grad)}`);
      y.dispose();
      const checkSpec = { ...c.spec, subBlock1: false };
      for (const format of ['safetensors', 'torch'] as const) {
        const out = path.join(dir, format === 'torch' ? 'export.pt' : 'export.safetensors');
        exportPyTorch(model, out, format);
        python(['check', dir, out, JSON.stringify(checkSpec)]);
        const back = JSON.parse(fs.readFileSync(path.join(dir, 'check.json'), 'utf8'));
        assert.ok(maxRel(logits, back.logits) < 1e-4, `${format} export: PyTorch logits rel err ${maxRel(logits, back.logits)}`);
        // And the export reads back here to the same weights.
        const again = importPyTorchCheckpoint(out, { normalization: c.options.normalization, preactShortcut: c.options.preactShortcut }).model;
        const l2 = tf.tidy(() => again.predict(x).dataSync());
        again.dispose();
        assert.ok(maxRel(l2, logits) < 1e-6, `${format} export re-import differs: ${maxRel(l2, logits)}`);
      }
    } finally {
      model.dispose();
      x.dispose();
    }
  });
}

test('import: full-width ResNet-18 and WideResNet-34-10 (paper scale) match PyTorch', { skip }, () => {
  for (const spec of [
    { arch: 'resnet18', width: 1, numClasses: 10, normalization: 'cifar10' },
    { arch: 'wide-resnet', width: 10, depth: 34, numClasses: 10 },
  ] as Spec[]) {
    const { file, x, ref } = makeCheckpoint({ ...spec, seed: 5, batch: 2 });
    const { model } = importPyTorchCheckpoint(file, { normalization: spec.normalization === 'cifar10' ? 'cifar10' : 'none' });
    try {
      assert.equal(model.numParams(), ref.numParams, `${spec.arch}: parameter count`);
      const logits = tf.tidy(() => model.predict(x).dataSync());
      assert.ok(maxRel(logits, ref.logits) < 1e-4, `${spec.arch}: logits rel err ${maxRel(logits, ref.logits)}`);
    } finally {
      model.dispose();
      x.dispose();
    }
  }
});

test('import refuses bad input with one-line errors', { skip }, () => {
  const { dir, file } = makeCheckpoint({ arch: 'resnet18', width: 0.125, numClasses: 10, seed: 1, batch: 1 });
  const oneLine = (f: () => unknown, re: RegExp) => assert.throws(f, (e: Error) => re.test(e.message) && !e.message.includes('\n'), re.source);
  // Truncated ZIP.
  const cut = path.join(dir, 'truncated.pt');
  fs.writeFileSync(cut, fs.readFileSync(file).subarray(0, 4000));
  oneLine(() => importPyTorchCheckpoint(cut, { normalization: 'cifar10' }), /truncated\.pt: .*(truncated|end-of-central-directory)/);
  // A pickle naming a global outside the allowlist (os.system via __reduce__).
  const evil = path.join(dir, 'evil.pt');
  const r = spawnSync(PYTHON, ['-c', `import torch, os\nclass E:\n    def __reduce__(self): return (os.system, ('echo pwned',))\ntorch.save({'net': E()}, ${JSON.stringify(evil)})`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  oneLine(() => readStateDict(evil), /evil\.pt: the pickle names global 'posix\.system', which is not allowed/);
  // Normalisation not stated.
  oneLine(() => importPyTorchCheckpoint(file), /--normalization is required/);
  // Wrong --arch.
  oneLine(() => importPyTorchCheckpoint(file, { normalization: 'cifar10', arch: 'preact-resnet18', preactShortcut: 'input' }),
    /does not fit preact-resnet18.*\(--arch preact-resnet18\): .*unexpected keys \(\d+\): bn1\.weight/);
  // A state_dict of another architecture: a ResNet-18 whose layer4 is narrower than its width says.
  const other = path.join(dir, 'other.safetensors');
  const sd = readStateDict(file).tensors;
  fs.writeFileSync(other, encodeSafetensors([...sd].filter(([k]) => !k.startsWith('layer4.1.')).map(([k, t]) => ({ key: k, shape: t.shape, dtype: 'float32' as const, values: t.values }))));
  oneLine(() => importPyTorchCheckpoint(other, { normalization: 'cifar10' }), /not a ResNet-18 \(\[2,2,2,2\]\)/);
  oneLine(() => importPyTorchCheckpoint(other, { normalization: 'cifar10', arch: 'resnet18' }), /missing keys \(\d+\): layer4\.1\.conv1\.weight/);
});
