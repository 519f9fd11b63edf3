import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../lib/src/engine/engine.js';
import { Rng } from '../lib/src/util/rng.js';
import { CifarDataError, DATASET_FOLDERS, IMAGE_BYTES, clearCifarCache, describeSplit, loadCifar, resolveDataRoot, subsetIndicesFile, type CifarData } from '../lib/src/data/cifar.js';
import { repoRoot } from '../lib/src/util/paths.js';
import { augmentInto, drawCropFlip, reflectPad } from '../lib/src/data/augment.js';
import { batchIndices, makeBatch } from '../lib/src/data/batches.js';
import { classCounts, subsetIndices } from '../lib/src/data/subsets.js';

const SHARED = path.resolve(repoRoot(), '..', 'shared', 'datasets');
const HAVE_SHARED = fs.existsSync(path.join(SHARED, DATASET_FOLDERS.cifar10));
const NO_SHARED = HAVE_SHARED ? false : `real data not found at ${SHARED}`;

/** Raw planar bytes of record k of a binary file. */
function rawRecord(file: string, k: number, recordBytes: number): Buffer {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(recordBytes);
  fs.readSync(fd, buf, 0, recordBytes, k * recordBytes);
  fs.closeSync(fd);
  return buf;
}

describe('reader on the real CIFAR files', { skip: NO_SHARED }, () => {
  test('CIFAR-10 test: 10000 images, 1000 per class, official first labels, class names', () => {
    const d = loadCifar({ dataset: 'cifar10', split: 'test', root: SHARED });
    assert.equal(d.n, 10000);
    assert.equal(d.images.length, 10000 * IMAGE_BYTES);
    assert.deepEqual(Array.from(d.labels.subarray(0, 5)), [3, 8, 8, 0, 6]);
    assert.deepEqual(Array.from(classCounts(d.labels, 10)), new Array(10).fill(1000));
    assert.deepEqual(d.classNames, ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']);
    assert.equal(d.subset, false);
    assert.ok(d.files.every((f) => path.isAbsolute(f) && fs.existsSync(f)));
  });

  test('pixel layout: HWC bytes equal the planar CHW bytes of the file', () => {
    const d = loadCifar({ dataset: 'cifar10', split: 'test', root: SHARED });
    for (const k of [0, 1234, 9999]) {
      const raw = rawRecord(path.join(SHARED, DATASET_FOLDERS.cifar10, 'test_batch.bin'), k, 3073);
      assert.equal(d.labels[k], raw[0]);
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          for (let c = 0; c < 3; c++) {
            assert.equal(d.images[k * IMAGE_BYTES + (y * 32 + x) * 3 + c], raw[1 + c * 1024 + y * 32 + x]);
          }
        }
      }
    }
  });

  test('CIFAR-10 train: 50000 images, 5000 per class; cached on reload', () => {
    const d = loadCifar({ dataset: 'cifar10', split: 'train', root: SHARED });
    assert.equal(d.n, 50000);
    assert.equal(d.files.length, 6);
    assert.deepEqual(Array.from(classCounts(d.labels, 10)), new Array(10).fill(5000));
    const t0 = performance.now();
    assert.equal(loadCifar({ dataset: 'cifar10', split: 'train', root: SHARED }), d);
    assert.ok(performance.now() - t0 < 50, 'a cached load must be (nearly) free');
  });

  test('CIFAR-10 train verifies each of its five files against the official MD5s', () => {
    clearCifarCache();
    assert.equal(loadCifar({ dataset: 'cifar10', split: 'train', root: SHARED, verify: true }).n, 50000);
  });

  test('CIFAR-10 test verifies against the official MD5s', () => {
    clearCifarCache();
    assert.equal(loadCifar({ dataset: 'cifar10', split: 'test', root: SHARED, verify: true }).n, 10000);
  });

  test('CIFAR-100 test: 100 fine classes x 100, 20 coarse x 500, names', () => {
    const fine = loadCifar({ dataset: 'cifar100', split: 'test', root: SHARED, verify: true });
    assert.equal(fine.n, 10000);
    assert.equal(fine.numClasses, 100);
    assert.equal(fine.classNames.length, 100);
    assert.equal(fine.classNames[0], 'apple');
    assert.deepEqual(Array.from(classCounts(fine.labels, 100)), new Array(100).fill(100));
    const coarse = loadCifar({ dataset: 'cifar100', split: 'test', root: SHARED, labelMode: 'coarse' });
    assert.equal(coarse.numClasses, 20);
    assert.equal(coarse.classNames.length, 20);
    assert.deepEqual(Array.from(classCounts(coarse.labels, 20)), new Array(20).fill(500));
    assert.equal(coarse.images, fine.images, 'label modes share the parsed images');
    const raw = rawRecord(path.join(SHARED, DATASET_FOLDERS.cifar100, 'test.bin'), 7, 3074);
    assert.equal(coarse.labels[7], raw[0]);
    assert.equal(fine.labels[7], raw[1]);
    assert.equal(fine.images[7 * IMAGE_BYTES + 3 * 5 + 2], raw[2 + 2048 + 5]);
  });

  test('CIFAR-100 train: the shared 125-per-class subset, declared by train_indices.txt', () => {
    const d = loadCifar({ dataset: 'cifar100', split: 'train', root: SHARED, verify: true });
    assert.equal(d.n, 12500);
    assert.equal(d.subset, true);
    assert.deepEqual(Array.from(classCounts(d.labels, 100)), new Array(100).fill(125));
    const coarse = loadCifar({ dataset: 'cifar100', split: 'train', root: SHARED, labelMode: 'coarse' });
    assert.deepEqual(Array.from(classCounts(coarse.labels, 20)), new Array(20).fill(625));
    // The SHA-256 the shared datasets' README gives for train_indices.txt.
    assert.equal(d.coverage.indicesSha256, '724524516aafbff085d9ea217ec6dce3f104d03b07ae1c982f23cce9c3c07e62');
    assert.equal(d.sourceIndices?.length, 12500);
    assert.equal(d.sourceIndices?.[0], 0);
    assert.equal(d.sourceIndices?.[12499], 16585, 'the largest kept index the README gives');
    assert.match(describeSplit(d), /^cifar100 train: declared subset, 12,500 of 50,000 official records \(train_indices\.txt sha256 72452451…\)$/);
  });

  test('resolveDataRoot: option, env, then <repo>/data or ../shared/datasets', () => {
    assert.equal(resolveDataRoot('/x/y'), '/x/y');
    const saved = process.env.RIFT_DATA_DIR;
    try {
      process.env.RIFT_DATA_DIR = '/from/env';
      assert.equal(resolveDataRoot(undefined, 'cifar10'), '/from/env');
      assert.equal(resolveDataRoot('/opt', 'cifar10'), '/opt');
      delete process.env.RIFT_DATA_DIR;
      const root = resolveDataRoot(undefined, 'cifar10');
      assert.ok([path.join(repoRoot(), 'data'), SHARED].includes(root), root);
    } finally {
      if (saved === undefined) delete process.env.RIFT_DATA_DIR;
      else process.env.RIFT_DATA_DIR = saved;
    }
  });
});

// ---------------------------------------------------------------------------------------
// Malformed fixtures

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rift-data-test-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

const CIFAR10_NAMES = 'airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n';

/**
 * Writes a CIFAR-10 folder whose test_batch.bin holds `labels.length` records (pixel = record
 * index). Fewer than the official 10,000 are declared a subset with test_indices.txt (records
 * 0..n-1 of the official order) unless `declare` is false.
 */
function writeCifar10(root: string, labels: number[], opts: { extraBytes?: number; names?: string; declare?: boolean } = {}): string {
  const dir = path.join(root, DATASET_FOLDERS.cifar10);
  fs.mkdirSync(dir, { recursive: true });
  const buf = Buffer.alloc(labels.length * 3073 + (opts.extraBytes ?? 0));
  labels.forEach((l, i) => {
    buf[i * 3073] = l;
    buf.fill(i, i * 3073 + 1, (i + 1) * 3073);
  });
  fs.writeFileSync(path.join(dir, 'test_batch.bin'), buf);
  fs.writeFileSync(path.join(dir, 'batches.meta.txt'), opts.names ?? CIFAR10_NAMES);
  const indices = path.join(dir, subsetIndicesFile('test'));
  if (labels.length < 10000 && opts.declare !== false) fs.writeFileSync(indices, labels.map((_, i) => `${i}\n`).join(''));
  else fs.rmSync(indices, { force: true });
  return path.join(dir, 'test_batch.bin');
}

/**
 * Writes a CIFAR-100 folder whose `split` file holds one record per [coarse, fine] pair, the
 * class-name files, and (when given) the split's indices file.
 */
function writeCifar100(root: string, split: 'train' | 'test', labels: Array<[number, number]>, indices?: string): string {
  const dir = path.join(root, DATASET_FOLDERS.cifar100);
  fs.mkdirSync(dir, { recursive: true });
  const buf = Buffer.alloc(labels.length * 3074);
  labels.forEach(([c, f], i) => { buf[i * 3074] = c; buf[i * 3074 + 1] = f; });
  fs.writeFileSync(path.join(dir, `${split}.bin`), buf);
  fs.writeFileSync(path.join(dir, 'fine_label_names.txt'), Array.from({ length: 100 }, (_, i) => `c${i}`).join('\n'));
  fs.writeFileSync(path.join(dir, 'coarse_label_names.txt'), Array.from({ length: 20 }, (_, i) => `s${i}`).join('\n'));
  if (indices !== undefined) fs.writeFileSync(path.join(dir, subsetIndicesFile(split)), indices);
  return dir;
}

function assertFileError(fn: () => unknown, file: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CifarDataError, `expected CifarDataError, got ${String(e)}`);
    assert.ok(e.message.includes(file), `message should name ${file}: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('reader on malformed fixtures', () => {
  test('a well-formed fixture loads', () => {
    const root = path.join(tmp, 'ok');
    writeCifar10(root, [1, 2, 3]);
    const d = loadCifar({ dataset: 'cifar10', split: 'test', root });
    assert.deepEqual(Array.from(d.labels), [1, 2, 3]);
    assert.equal(d.subset, true);
    assert.equal(d.coverage.kind, 'subset');
    assert.match(describeSplit(d), /^cifar10 test: declared subset, 3 of 10,000 official records \(test_indices\.txt sha256 [0-9a-f]{8}…\)$/);
    assert.equal(d.images[IMAGE_BYTES * 2 + 100], 2);
  });

  test('a short split without a declaration is an error naming the file, the expected and the found count', () => {
    const root = path.join(tmp, 'short');
    const file = writeCifar10(root, new Array(5000).fill(1), { declare: false });
    assertFileError(() => loadCifar({ dataset: 'cifar10', split: 'test', root }), file, /expected 10000 records \(the official cifar10 test split\), found 5000; .*test_indices\.txt/);
  });

  test('a short train batch names that batch (each file of the split)', () => {
    const root = path.join(tmp, 'shorttrain');
    const dir = path.join(root, DATASET_FOLDERS.cifar10);
    writeCifar10(root, [0]);
    for (let i = 1; i <= 5; i++) fs.writeFileSync(path.join(dir, `data_batch_${i}.bin`), Buffer.alloc((i === 3 ? 9999 : 10000) * 3073));
    assertFileError(() => loadCifar({ dataset: 'cifar10', split: 'train', root }), path.join(dir, 'data_batch_3.bin'), /expected 10000 records \(each file of the official cifar10 train split\), found 9999/);
    const d = loadCifar({ dataset: 'cifar10', split: 'test', root });
    assert.equal(d.n, 1, 'the test split of the same folder is unaffected');
  });

  test('more records than the official split is an error', () => {
    const root = path.join(tmp, 'long');
    const file = writeCifar10(root, new Array(10001).fill(0));
    assertFileError(() => loadCifar({ dataset: 'cifar10', split: 'test', root }), file, /expected 10000 records .*found 10001/);
  });

  test('a declared subset cannot hold more records in a file than the official file', () => {
    const root = path.join(tmp, 'declong');
    const dir = path.join(root, DATASET_FOLDERS.cifar10);
    writeCifar10(root, [0]);
    for (let i = 1; i <= 5; i++) fs.writeFileSync(path.join(dir, `data_batch_${i}.bin`), Buffer.alloc((i === 2 ? 10001 : 10) * 3073));
    fs.writeFileSync(path.join(dir, 'train_indices.txt'), Array.from({ length: 10041 }, (_, k) => `${k}\n`).join(''));
    assertFileError(() => loadCifar({ dataset: 'cifar10', split: 'train', root }), path.join(dir, 'data_batch_2.bin'), /expected at most 10000 records \(each file of the official cifar10 train split\), found 10001/);
  });

  test('the declaration is checked: count, range and order', () => {
    const root = path.join(tmp, 'baddecl');
    writeCifar10(root, [1, 2, 3]);
    const indices = path.join(root, DATASET_FOLDERS.cifar10, 'test_indices.txt');
    for (const [text, pattern] of [['0\n1\n', /expected 3 indices \(one per record of test_batch\.bin\), found 2/], ['0\n1\n10000\n', /line 3/], ['0\n2\n2\n', /line 3/], ['0\nx\n2\n', /line 2/]] as const) {
      fs.writeFileSync(indices, text);
      assertFileError(() => loadCifar({ dataset: 'cifar10', split: 'test', root }), indices, pattern);
    }
  });

  test('a full split with a declaration file is complete', () => {
    const root = path.join(tmp, 'fulldecl');
    writeCifar10(root, new Array(10000).fill(0));
    fs.writeFileSync(path.join(root, DATASET_FOLDERS.cifar10, 'test_indices.txt'), Array.from({ length: 10000 }, (_, i) => `${i}\n`).join(''));
    const d = loadCifar({ dataset: 'cifar10', split: 'test', root });
    assert.equal(d.subset, false);
    assert.equal(describeSplit(d), 'cifar10 test: complete, 10,000 records');
  });

  test('missing folder', () => {
    const root = path.join(tmp, 'empty');
    fs.mkdirSync(root, { recursive: true });
    assertFileError(() => loadCifar({ dataset: 'cifar10', split: 'test', root }), path.join(root, DATASET_FOLDERS.cifar10), /not found.*npm run data/);
  });

  test('missing file', () => {
    const root = path.join(tmp, 'nofile');
    writeCifar10(root, [0]);
    assertFileError(() => loadCifar({ dataset: 'cifar10', split: 'train', root }), path.join(root, DATASET_FOLDERS.cifar10, 'data_batch_1.bin'), /not found/);
  });

  test('truncated file (size not a multiple of 3073)', () => {
    const root = path.join(tmp, 'trunc');
    const file = writeCifar10(root, [0, 1], { extraBytes: 100 });
    assertFileError(() => loadCifar({ dataset: 'cifar10', split: 'test', root }), file, /6246 bytes is not a positive multiple of the 3073-byte/);
  });

  test('label out of range names the record', () => {
    const root = path.join(tmp, 'badlabel');
    const file = writeCifar10(root, [0, 1, 10]);
    assertFileError(() => loadCifar({ dataset: 'cifar10', split: 'test', root }), file, /record 2 .*label 10, expected 0-9/);
  });

  test('CIFAR-100 coarse label out of range', () => {
    const dir = writeCifar100(path.join(tmp, 'c100'), 'test', [[0, 0], [20, 0]], '0\n1\n');
    assertFileError(() => loadCifar({ dataset: 'cifar100', split: 'test', root: path.join(tmp, 'c100') }), path.join(dir, 'test.bin'), /record 1 .*coarse label 20, expected 0-19/);
  });

  test('CIFAR-100 train subset with train_indices.txt; a bad index line names the file', () => {
    const root = path.join(tmp, 'c100sub');
    const dir = writeCifar100(root, 'train', [[1, 5], [2, 7], [3, 9]], '4\n17\n16585\n');
    const d = loadCifar({ dataset: 'cifar100', split: 'train', root, verify: true });
    assert.equal(d.subset, true);
    assert.deepEqual(Array.from(d.labels), [5, 7, 9]);
    assert.deepEqual(Array.from(d.sourceIndices ?? []), [4, 17, 16585]);
    assert.ok(d.files.includes(path.join(dir, 'train_indices.txt')));
    assert.deepEqual(Array.from(loadCifar({ dataset: 'cifar100', split: 'train', root, labelMode: 'coarse' }).labels), [1, 2, 3]);
    fs.writeFileSync(path.join(dir, 'train_indices.txt'), '4\n3\n16585\n');
    assertFileError(() => loadCifar({ dataset: 'cifar100', split: 'train', root }), path.join(dir, 'train_indices.txt'), /line 2/);
    fs.rmSync(path.join(dir, 'train_indices.txt'));
    assertFileError(() => loadCifar({ dataset: 'cifar100', split: 'train', root }), path.join(dir, 'train.bin'), /expected 50000 records \(the official cifar100 train split\), found 3; .*train_indices\.txt/);
  });

  test('CIFAR-100: a fine class under two coarse labels is an error', () => {
    const root = path.join(tmp, 'c100coarse');
    const dir = writeCifar100(root, 'test', [[1, 5], [2, 7], [3, 5]], '0\n1\n2\n');
    assertFileError(() => loadCifar({ dataset: 'cifar100', split: 'test', root }), path.join(dir, 'test.bin'), /record 2 has fine label 5 with coarse label 3, but record 0 .* coarse label 1/);
  });

  test('wrong class-name count', () => {
    const root = path.join(tmp, 'badmeta');
    writeCifar10(root, [0], { names: 'airplane\nautomobile\n' });
    assertFileError(() => loadCifar({ dataset: 'cifar10', split: 'test', root }), path.join(root, DATASET_FOLDERS.cifar10, 'batches.meta.txt'), /expected 10 class names.*found 2/);
  });

  test('MD5 mismatch with verify: true (and no check without it)', () => {
    const root = path.join(tmp, 'md5');
    const file = writeCifar10(root, new Array(10000).fill(0));
    assert.equal(loadCifar({ dataset: 'cifar10', split: 'test', root }).n, 10000);
    assertFileError(() => loadCifar({ dataset: 'cifar10', split: 'test', root, verify: true }), file, /MD5 mismatch.*expected 803d5f7f4d78ea53de84dbe85f74fb6d/);
  });

  test('a rewritten file is re-read, not served from the cache', () => {
    const root = path.join(tmp, 'rewrite');
    writeCifar10(root, [1]);
    assert.equal(loadCifar({ dataset: 'cifar10', split: 'test', root }).n, 1);
    writeCifar10(root, [1, 2]);
    assert.equal(loadCifar({ dataset: 'cifar10', split: 'test', root }).n, 2);
  });

  test('no data anywhere: the error lists the places looked', () => {
    const saved = process.env.RIFT_DATA_DIR;
    delete process.env.RIFT_DATA_DIR;
    try {
      const fakeRepo = path.join(tmp, 'repo');
      fs.mkdirSync(fakeRepo, { recursive: true });
      assert.throws(() => resolveDataRoot(undefined, 'cifar10', fakeRepo), (e: unknown) => {
        const m = (e as Error).message;
        assert.ok(m.includes('RIFT_DATA_DIR') && m.includes(path.join(fakeRepo, 'data')) && m.includes(path.resolve(fakeRepo, '..', 'shared', 'datasets')) && m.includes('npm run data'), m);
        return true;
      });
    } finally {
      if (saved !== undefined) process.env.RIFT_DATA_DIR = saved;
    }
  });
});

// ---------------------------------------------------------------------------------------
// Subsets, augmentation, batches

/** A synthetic dataset: n random images, labels cycling over `k` classes. */
function synthetic(n: number, k: number, seed = 1): Pick<CifarData, 'images' | 'labels' | 'numClasses'> {
  const rng = new Rng(seed);
  return {
    images: Uint8Array.from({ length: n * IMAGE_BYTES }, () => rng.int(256)),
    labels: Uint8Array.from({ length: n }, (_, i) => (i * 7 + (i >> 3)) % k),
    numClasses: k,
  };
}

describe('subsetIndices', () => {
  const d = synthetic(500, 10);
  test('balanced: the first n/k of each class in file order, sorted, deterministic', () => {
    const s = subsetIndices(d, { n: 100 });
    assert.equal(s.length, 100);
    assert.deepEqual(s, subsetIndices(d, { n: 100 }));
    assert.ok(s.every((v, i) => i === 0 || v > s[i - 1]));
    assert.deepEqual(Array.from(classCounts(Uint8Array.from(s, (i) => d.labels[i]), 10)), new Array(10).fill(10));
    for (let c = 0; c < 10; c++) {
      const firstTen = Array.from(d.labels.keys()).filter((i) => d.labels[i] === c).slice(0, 10);
      assert.deepEqual(Array.from(s).filter((i) => d.labels[i] === c), firstTen);
    }
  });
  test('balanced with n not a multiple of the class count: exactly n, classes differ by at most one', () => {
    const s = subsetIndices(d, { n: 25 });
    assert.equal(s.length, 25);
    assert.deepEqual(Array.from(classCounts(Uint8Array.from(s, (i) => d.labels[i]), 10)), [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]);
  });
  test('random: seeded and sorted; different seeds differ', () => {
    const a = subsetIndices(d, { n: 50, balanced: false, seed: 3 });
    assert.deepEqual(a, subsetIndices(d, { n: 50, balanced: false, seed: 3 }));
    assert.notDeepEqual(a, subsetIndices(d, { n: 50, balanced: false, seed: 4 }));
    assert.equal(new Set(a).size, 50);
    assert.ok(a.every((v, i) => i === 0 || v > a[i - 1]));
    assert.throws(() => subsetIndices(d, { n: 50, balanced: false }), /seed/);
  });
  test('errors: n out of range, class too small', () => {
    assert.throws(() => subsetIndices(d, { n: 501 }), /n must be/);
    assert.throws(() => subsetIndices(d, { n: 0 }), /n must be/);
    assert.throws(() => subsetIndices({ labels: Uint8Array.from([0, 0, 0, 1]), numClasses: 2 }, { n: 4 }), /class 1 has too few/);
  });
});

describe('augmentation', () => {
  test('reflect padding matches PyTorch ReflectionPad2d on a hand-made image', () => {
    // torch.nn.ReflectionPad2d(2)(torch.arange(9).reshape(1,1,3,3)), from the PyTorch docs.
    const out = reflectPad(Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8]), { height: 3, width: 3, channels: 1, pad: 2 });
    assert.deepEqual(Array.from(out), [
      8, 7, 6, 7, 8, 7, 6,
      5, 4, 3, 4, 5, 4, 3,
      2, 1, 0, 1, 2, 1, 0,
      5, 4, 3, 4, 5, 4, 3,
      8, 7, 6, 7, 8, 7, 6,
      5, 4, 3, 4, 5, 4, 3,
      2, 1, 0, 1, 2, 1, 0,
    ]);
    assert.throws(() => reflectPad(new Uint8Array(9), { height: 3, width: 3, channels: 1, pad: 3 }), /smaller/);
  });

  test('augmentInto = crop of the reflect-padded image (then mirrored) for every offset', () => {
    const img = synthetic(1, 1, 9).images;
    const padded = reflectPad(img, { height: 32, width: 32, channels: 3, pad: 4 });
    const out = new Uint8Array(IMAGE_BYTES);
    for (let top = 0; top <= 8; top++) {
      for (let left = 0; left <= 8; left++) {
        for (const flip of [false, true]) {
          augmentInto(img, 0, out, 0, { top, left, flip });
          for (let y = 0; y < 32; y++) {
            for (let x = 0; x < 32; x++) {
              const px = flip ? 31 - x : x;
              for (let c = 0; c < 3; c++) {
                if (out[(y * 32 + x) * 3 + c] !== padded[((y + top) * 40 + px + left) * 3 + c]) {
                  assert.fail(`mismatch at top=${top} left=${left} flip=${flip} y=${y} x=${x} c=${c}`);
                }
              }
            }
          }
        }
      }
    }
    augmentInto(img, 0, out, 0, { top: 4, left: 4, flip: false });
    assert.deepEqual(out, img, 'centre crop without flip is the identity');
  });

  test('draws: crops within [0, 8], both flips, roughly half flipped', () => {
    const rng = new Rng(5);
    let flips = 0;
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const t = drawCropFlip(rng);
      assert.ok(t.top >= 0 && t.top <= 8 && t.left >= 0 && t.left <= 8);
      seen.add(t.top * 9 + t.left);
      if (t.flip) flips++;
    }
    assert.equal(seen.size, 81);
    assert.ok(flips > 900 && flips < 1100, `flips ${flips}`);
  });
});

describe('batches', () => {
  before(async () => {
    await initEngine({ backend: 'cpu' });
  });
  const d = synthetic(64, 10);

  test('makeBatch: shapes, dtypes, values in [0,1], no tensors leaked', () => {
    const start = tf.memory().numTensors;
    const idx = Int32Array.from([5, 0, 63]);
    const { x, y } = makeBatch(d, idx);
    assert.deepEqual(x.shape, [3, 32, 32, 3]);
    assert.equal(x.dtype, 'float32');
    assert.deepEqual(y.shape, [3]);
    assert.equal(y.dtype, 'int32');
    const xv = x.dataSync();
    assert.ok(xv.every((v) => v >= 0 && v <= 1));
    assert.ok(Math.abs(xv[IMAGE_BYTES + 7] - d.images[7] / 255) < 1e-7);
    assert.deepEqual(Array.from(y.dataSync()), [d.labels[5], d.labels[0], d.labels[63]]);
    x.dispose();
    y.dispose();
    const a = makeBatch(d, idx, { augment: true, rng: new Rng(1) });
    tf.dispose([a.x, a.y]);
    assert.equal(tf.memory().numTensors, start);
  });

  test('makeBatch: augmentation is seeded (same seed same batch, other seed differs)', () => {
    const idx = Int32Array.from({ length: 16 }, (_, i) => i);
    const get = (seed: number) => {
      const { x, y } = makeBatch(d, idx, { augment: true, rng: new Rng(seed) });
      const v = x.dataSync().slice();
      tf.dispose([x, y]);
      return v;
    };
    assert.deepEqual(get(7), get(7));
    assert.notDeepEqual(get(7), get(8));
    assert.throws(() => makeBatch(d, idx, { augment: true }), /rng/);
    assert.throws(() => makeBatch(d, [64]), /outside/);
  });

  test('batchIndices: sizes, dropLast, seeded shuffle, explicit index lists', () => {
    const plain = batchIndices(10, { batchSize: 4 });
    assert.deepEqual(plain.map((b) => Array.from(b)), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    assert.equal(batchIndices(10, { batchSize: 4, dropLast: true }).length, 2);
    const s1 = batchIndices(100, { batchSize: 32, shuffle: true, seed: 1 });
    assert.deepEqual(s1, batchIndices(100, { batchSize: 32, shuffle: true, seed: 1 }));
    assert.notDeepEqual(s1, batchIndices(100, { batchSize: 32, shuffle: true, seed: 2 }));
    const all = s1.flatMap((b) => Array.from(b)).sort((a, b) => a - b);
    assert.deepEqual(all, Array.from({ length: 100 }, (_, i) => i));
    const sub = Int32Array.from([3, 9, 27, 81]);
    const sb = batchIndices(sub, { batchSize: 3, shuffle: true, seed: 1 });
    assert.deepEqual(sb.flatMap((b) => Array.from(b)).sort((a, b) => a - b), [3, 9, 27, 81]);
    assert.throws(() => batchIndices(10, { batchSize: 4, shuffle: true }), /seed/);
  });
});
