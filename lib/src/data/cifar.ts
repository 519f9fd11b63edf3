/**
 * CIFAR-10 / CIFAR-100 data: a reader for the official "binary version" layouts that checks
 * every split's record count (a subset must be declared), labels and, on request, MD5s. Fixed
 * subsets are in subsets.ts, augmentation in augment.ts, batches in batches.ts.
 *
 * Layout read (https://www.cs.toronto.edu/~kriz/cifar.html, binary version):
 *   cifar-10-batches-bin/  data_batch_1..5.bin (train), test_batch.bin, batches.meta.txt
 *                          record = 1 label byte + 3072 pixel bytes            (3073 bytes)
 *   cifar-100-binary/      train.bin, test.bin, fine_label_names.txt, coarse_label_names.txt
 *                          record = 1 coarse byte + 1 fine byte + 3072 pixels  (3074 bytes)
 * Pixels are planar in the files (1024 R, 1024 G, 1024 B; each plane 32x32 row-major) and
 * are converted once, at load time, to HWC per image so that whole batches are NHWC.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../util/paths.js';

/** Which dataset. */
export type DatasetName = 'cifar10' | 'cifar100';
/** The datasets the project reads (official CIFAR binary layouts). */
export const DATASET_NAMES: readonly DatasetName[] = ['cifar10', 'cifar100'];
/** Which official split. */
export type CifarSplit = 'train' | 'test';
/** CIFAR-100 label granularity: 100 fine classes or 20 coarse superclasses (CIFAR-10: always 'fine'). */
export type LabelMode = 'fine' | 'coarse';

/** Image height and width (both datasets). */
export const IMAGE_SIZE = 32;
/** Channels per pixel (RGB). */
export const IMAGE_CHANNELS = 3;
/** Bytes of one image (32*32*3). */
export const IMAGE_BYTES = IMAGE_SIZE * IMAGE_SIZE * IMAGE_CHANNELS;

/** Folder each dataset lives in under the data root (the official archives' folder names). */
export const DATASET_FOLDERS: Readonly<Record<DatasetName, string>> = {
  cifar10: 'cifar-10-batches-bin',
  cifar100: 'cifar-100-binary',
};

/** Classes of each dataset (CIFAR-100: the 100 fine classes, the label a model is trained on). */
export const NUM_CLASSES: Readonly<Record<DatasetName, number>> = { cifar10: 10, cifar100: 100 };

/** Official record counts of the full splits. */
export const OFFICIAL_COUNTS: Readonly<Record<DatasetName, Readonly<Record<CifarSplit, number>>>> = {
  cifar10: { train: 50000, test: 10000 },
  cifar100: { train: 50000, test: 10000 },
};

/**
 * MD5 of the official binary files, by dataset folder and file name.
 * Computed from /work/shared/datasets, whose README states these files are byte-identical to
 * the official ones; the same values are listed for the official archives' contents by
 * rai-project/dldataset (vision/cifar10.go @271f48a9b0bf644650482578701fbb639199d813,
 * vision/cifar100.go @6dfb67e0a05dc5cc78885a6e74a8d5542d13dd56). The CIFAR-100 train.bin
 * value applies only to the full 50000-record file (the shared copy is a 12,500-record
 * subset, which has no official checksum and is then only size- and label-checked).
 */
export const OFFICIAL_MD5: Readonly<Record<DatasetName, Readonly<Record<string, string>>>> = {
  cifar10: {
    'data_batch_1.bin': '5dd7e06a14cb22eb9f671a540d1b7c25',
    'data_batch_2.bin': '5ea93a67294ea407fff1d09f752e9692',
    'data_batch_3.bin': '942cd6a4bcdd0dd3c604fbe906cb4421',
    'data_batch_4.bin': 'ae636b3ba5c66a11e91e8cb52e771fcb',
    'data_batch_5.bin': '53f37980c15c3d472c316c40844f3f0d',
    'test_batch.bin': '803d5f7f4d78ea53de84dbe85f74fb6d',
  },
  cifar100: {
    'train.bin': '6172c7755cfe09b2fe270c85cebc1b15',
    'test.bin': '4499cfba6c016c1be1438163640a0898',
  },
};

interface DatasetLayout {
  labelBytes: number;
  recordBytes: number;
  files: Record<CifarSplit, string[]>;
  /** Class-name files per label mode, with the expected number of names. */
  names: Partial<Record<LabelMode, { file: string; count: number }>>;
}

const LAYOUTS: Record<DatasetName, DatasetLayout> = {
  cifar10: {
    labelBytes: 1,
    recordBytes: 1 + IMAGE_BYTES,
    files: { train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`), test: ['test_batch.bin'] },
    names: { fine: { file: 'batches.meta.txt', count: 10 } },
  },
  cifar100: {
    labelBytes: 2,
    recordBytes: 2 + IMAGE_BYTES,
    files: { train: ['train.bin'], test: ['test.bin'] },
    names: {
      fine: { file: 'fine_label_names.txt', count: 100 },
      coarse: { file: 'coarse_label_names.txt', count: 20 },
    },
  },
};

/**
 * The file that declares a split a subset of the official one: `<split>_indices.txt` beside the
 * split's binary files, one position in the official split order per record (strictly
 * increasing, as a subset that keeps the official relative order). Without it, every binary
 * file must hold its official record count.
 */
export function subsetIndicesFile(split: CifarSplit): string {
  return `${split}_indices.txt`;
}

/** The CIFAR-100 train subset's declaration file (`subsetIndicesFile('train')`). */
export const TRAIN_INDICES_FILE = subsetIndicesFile('train');

/** How a loaded split relates to the official one. */
export interface SplitCoverage {
  /** 'complete': the official record count; 'subset': fewer records, declared by an indices file. */
  kind: 'complete' | 'subset';
  /** Records read. */
  n: number;
  /** Records of the official split. */
  official: number;
  /** Absolute path of the declaring indices file (subsets; also a complete split that has one). */
  indicesFile?: string;
  /** SHA-256 (hex) of that file: names exactly which subset was used. */
  indicesSha256?: string;
}

/** An error about a data file; `file` is the absolute path it concerns. */
export class CifarDataError extends Error {
  constructor(readonly file: string, message: string) {
    super(message);
    this.name = 'CifarDataError';
  }
}

/** What loadCifar reads; defaults in the field comments. */
export interface CifarOptions {
  dataset: DatasetName;
  split: CifarSplit;
  /** Data root holding the dataset folder; default: see resolveDataRoot. */
  root?: string;
  /** CIFAR-100 only: which label byte to use. Default 'fine'. */
  labelMode?: LabelMode;
  /** Check the MD5 of every file with a known official checksum (OFFICIAL_MD5). Default false. */
  verify?: boolean;
}

/** A parsed split. Shared between callers through the cache: treat every array as read-only. */
export interface CifarData {
  dataset: DatasetName;
  split: CifarSplit;
  labelMode: LabelMode;
  /** Number of images. */
  n: number;
  /** n*32*32*3 bytes, NHWC (each image HWC, channels RGB), converted from the planar files. */
  images: Uint8Array;
  /** n labels in [0, numClasses). */
  labels: Uint8Array;
  numClasses: number;
  classNames: string[];
  /** Absolute paths of the binary and class-name files read. */
  files: string[];
  /** The data root used (parent of the dataset folder). */
  root: string;
  /** True for a declared subset (coverage.kind 'subset', e.g. the shared 12,500-record CIFAR-100 train subset). */
  subset: boolean;
  /** Complete or declared subset, with the declaring file and its hash (`describeSplit` says it in words). */
  coverage: SplitCoverage;
  /** Position in the official split order of each record, from `<split>_indices.txt` when present. */
  sourceIndices?: Int32Array;
}

/**
 * One line saying which data a split is, for records, logs and tables: e.g. "cifar10 test:
 * complete, 10,000 records" or "cifar100 train: declared subset, 12,500 of 50,000 official
 * records (train_indices.txt sha256 72452451…)".
 */
export function describeSplit(d: Pick<CifarData, 'dataset' | 'split' | 'coverage'>): string {
  const c = d.coverage;
  const decl = c.kind === 'subset' && c.indicesFile ? ` (${path.basename(c.indicesFile)} sha256 ${c.indicesSha256?.slice(0, 8)}…)` : '';
  return `${d.dataset} ${d.split}: ${coverageLabel(d)}${decl}`;
}

/**
 * What identifies a split's data in a cache key or a run's provenance: `describeSplit` plus the
 * full SHA-256 of the declaring indices file (the description shows only its first 8 digits).
 */
export function splitIdentity(d: Pick<CifarData, 'dataset' | 'split' | 'coverage'>): string {
  return d.coverage.indicesSha256 ? `${describeSplit(d)} [${d.coverage.indicesSha256}]` : describeSplit(d);
}

/** The short form of describeSplit, for chart subtitles: "complete, 10,000 records" or "declared subset, 12,500 of 50,000 official records". */
export function coverageLabel(d: Pick<CifarData, 'coverage'>): string {
  const c = d.coverage;
  const fmt = (x: number) => x.toLocaleString('en-US');
  return c.kind === 'complete' ? `complete, ${fmt(c.n)} records` : `declared subset, ${fmt(c.n)} of ${fmt(c.official)} official records`;
}

/**
 * The data root (the directory holding cifar-10-batches-bin/ and/or cifar-100-binary/).
 * Order: `root` argument → env RIFT_DATA_DIR → `<repo>/data` if it holds the dataset's folder
 * (any dataset folder when `dataset` is omitted; this is where `npm run data` puts it) →
 * `<repo>/../shared/datasets` if it exists (the project's CI/dev machines). The first two are
 * returned as given (a missing folder is reported by loadCifar); otherwise throws an error
 * listing every place looked. `repo` overrides the repository root (for tests).
 */
export function resolveDataRoot(root?: string, dataset?: DatasetName, repo: string = repoRoot()): string {
  if (root) return path.resolve(root);
  const env = process.env.RIFT_DATA_DIR;
  if (env) return path.resolve(env);
  const folders = dataset ? [DATASET_FOLDERS[dataset]] : Object.values(DATASET_FOLDERS);
  const repoData = path.join(repo, 'data');
  if (folders.some((f) => fs.existsSync(path.join(repoData, f)))) return repoData;
  const shared = path.resolve(repo, '..', 'shared', 'datasets');
  if (fs.existsSync(shared)) return shared;
  throw new Error(
    `No CIFAR data found${dataset ? ` for ${dataset}` : ''}. Looked at: option root (not given), ` +
      `env RIFT_DATA_DIR (not set), ${repoData} (no ${folders.join(' or ')}), ${shared} (missing). ` +
      'Run `npm run data` to download the official archives into data/, or set RIFT_DATA_DIR.',
  );
}

/** Parsed records of one split (both label bytes for CIFAR-100), shared by the label modes. */
interface Parsed {
  images: Uint8Array;
  /** Label byte 0 of each record: the label (CIFAR-10) or the coarse label (CIFAR-100). */
  label0: Uint8Array;
  /** CIFAR-100 fine labels. */
  label1?: Uint8Array;
  binFiles: string[];
  sourceIndices?: Int32Array;
  coverage: SplitCoverage;
  verified: boolean;
}

const parsedCache = new Map<string, Parsed>();
const dataCache = new Map<string, CifarData>();

/** Drops every cached dataset (frees the memory; the next loadCifar reads the files again). */
export function clearCifarCache(): void {
  parsedCache.clear();
  dataCache.clear();
}

function fail(file: string, message: string): never {
  throw new CifarDataError(file, message);
}

function statOrFail(file: string, what: string): fs.Stats {
  try {
    return fs.statSync(file);
  } catch {
    return fail(file, `${what} not found: ${file}. Run \`npm run data\` or point RIFT_DATA_DIR at a folder holding it.`);
  }
}

function md5Hex(buf: Uint8Array): string {
  return crypto.createHash('md5').update(buf).digest('hex');
}

function checkMd5(file: string, buf: Uint8Array, expected: string): void {
  const actual = md5Hex(buf);
  if (actual !== expected) {
    fail(file, `MD5 mismatch for ${file}: expected ${expected} (official file), got ${actual}. The file is corrupt or not the official one; delete it and run \`npm run data\`.`);
  }
}

/** MD5 known for this file, or undefined (CIFAR-100 train.bin: only when it is the full file). */
function expectedMd5(dataset: DatasetName, name: string, records: number, split: CifarSplit): string | undefined {
  // Per file: CIFAR-10's train split is five files of 10,000 records each.
  if (records !== OFFICIAL_COUNTS[dataset][split] / LAYOUTS[dataset].files[split].length) return undefined;
  return OFFICIAL_MD5[dataset][name];
}

function readClassNames(file: string, count: number): string[] {
  statOrFail(file, 'Class-name file');
  // The official files end with blank line(s) (batches.meta.txt: one); names never contain blanks.
  const names = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (names.length !== count) fail(file, `${file}: expected ${count} class names (one per line), found ${names.length}.`);
  return names;
}

function readSourceIndices(file: string, n: number, officialCount: number, binNames: string): { indices: Int32Array; sha256: string } {
  const bytes = fs.readFileSync(file);
  const lines = bytes.toString('utf8').split('\n').map((s) => s.trim()).filter((s) => s.length > 0);
  if (lines.length !== n) fail(file, `${file}: expected ${n} indices (one per record of ${binNames}), found ${lines.length}.`);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = Number(lines[i]);
    // The subset keeps official relative order, so indices must be strictly increasing.
    if (!Number.isInteger(v) || v < 0 || v >= officialCount || (i > 0 && v <= out[i - 1])) {
      fail(file, `${file}: line ${i + 1} ("${lines[i]}") is not an index in [0, ${officialCount}) greater than the previous one.`);
    }
    out[i] = v;
  }
  return { indices: out, sha256: crypto.createHash('sha256').update(bytes).digest('hex') };
}

/**
 * CIFAR-100's 100 fine classes each belong to exactly one of the 20 coarse classes, so a record
 * whose fine label appears with another coarse label elsewhere in the split is corrupt (or the
 * label bytes are swapped): the label check a subset without official checksums still gets.
 */
function checkFineCoarse(file: string, coarse: Uint8Array, fine: Uint8Array): void {
  const coarseOf = new Int16Array(100).fill(-1);
  const firstAt = new Int32Array(100);
  for (let i = 0; i < fine.length; i++) {
    const f = fine[i];
    if (coarseOf[f] === -1) { coarseOf[f] = coarse[i]; firstAt[f] = i; }
    else if (coarseOf[f] !== coarse[i]) {
      fail(file, `${file}: record ${i} has fine label ${f} with coarse label ${coarse[i]}, but record ${firstAt[f]} has fine label ${f} with coarse label ${coarseOf[f]}: each fine class belongs to one coarse class.`);
    }
  }
}

/** Reads, checks and converts one split's binary files (planar CHW → HWC). */
function parseSplit(dataset: DatasetName, split: CifarSplit, dir: string, verify: boolean): Parsed {
  const layout = LAYOUTS[dataset];
  const binFiles = layout.files[split].map((f) => path.join(dir, f));
  const sizes = binFiles.map((f) => {
    const { size } = statOrFail(f, `${dataset} ${split} file`);
    if (size === 0 || size % layout.recordBytes !== 0) {
      fail(f, `${f}: size ${size} bytes is not a positive multiple of the ${layout.recordBytes}-byte ${dataset} record (truncated or not a ${dataset} binary file).`);
    }
    return size / layout.recordBytes;
  });
  const n = sizes.reduce((a, b) => a + b, 0);
  const official = OFFICIAL_COUNTS[dataset][split];
  const indicesName = subsetIndicesFile(split);
  if (n > official) {
    fail(binFiles[0], `${binFiles.join(' + ')}: expected ${official} records (the official ${dataset} ${split} split), found ${n}: not the official ${dataset} files.`);
  }
  const perFile = official / binFiles.length;
  const isDeclared = fs.existsSync(path.join(dir, indicesName));
  binFiles.forEach((f, fi) => {
    if (sizes[fi] > perFile) fail(f, `${f}: expected at most ${perFile} records (${binFiles.length > 1 ? `each file of the official ${dataset} ${split} split` : `the official ${dataset} ${split} split`}), found ${sizes[fi]}: not an official ${dataset} file.`);
  });
  if (!isDeclared) {
    // A short file must not pass as the official split: name it, with what was expected and found.
    binFiles.forEach((f, fi) => {
      if (sizes[fi] !== perFile) {
        fail(f, `${f}: expected ${perFile} records (${binFiles.length > 1 ? `each file of the official ${dataset} ${split} split` : `the official ${dataset} ${split} split`}), found ${sizes[fi]}; ` +
          `a file with fewer records is read only as a declared subset, with ${indicesName} beside it (one official index per record).`);
      }
    });
  }
  const images = new Uint8Array(n * IMAGE_BYTES);
  const label0 = new Uint8Array(n);
  const label1 = layout.labelBytes === 2 ? new Uint8Array(n) : undefined;
  const limits = dataset === 'cifar10' ? [10] : [20, 100];
  const plane = IMAGE_SIZE * IMAGE_SIZE;
  let r = 0;
  binFiles.forEach((file, fi) => {
    const buf = fs.readFileSync(file);
    const md5 = verify ? expectedMd5(dataset, path.basename(file), sizes[fi], split) : undefined;
    if (md5) checkMd5(file, buf, md5);
    for (let k = 0; k < sizes[fi]; k++, r++) {
      const off = k * layout.recordBytes;
      for (let b = 0; b < layout.labelBytes; b++) {
        if (buf[off + b] >= limits[b]) {
          const which = layout.labelBytes === 1 ? 'label' : b === 0 ? 'coarse label' : 'fine label';
          fail(file, `${file}: record ${k} (byte offset ${off + b}) has ${which} ${buf[off + b]}, expected 0-${limits[b] - 1}.`);
        }
      }
      label0[r] = buf[off];
      if (label1) label1[r] = buf[off + 1];
      const src = off + layout.labelBytes;
      const dst = r * IMAGE_BYTES;
      for (let p = 0; p < plane; p++) {
        images[dst + 3 * p] = buf[src + p];
        images[dst + 3 * p + 1] = buf[src + plane + p];
        images[dst + 3 * p + 2] = buf[src + 2 * plane + p];
      }
    }
  });
  if (label1) checkFineCoarse(binFiles[0], label0, label1);
  const indicesFile = path.join(dir, subsetIndicesFile(split));
  const declared = fs.existsSync(indicesFile)
    ? readSourceIndices(indicesFile, n, official, layout.files[split].join(' + '))
    : undefined;
  const coverage: SplitCoverage = { kind: n < official ? 'subset' : 'complete', n, official };
  if (declared) {
    binFiles.push(indicesFile);
    Object.assign(coverage, { indicesFile, indicesSha256: declared.sha256 });
  }
  return { images, label0, label1, binFiles, sourceIndices: declared?.indices, coverage, verified: verify };
}

/** Cache key: folder, split and each data file's size and mtime (a rewritten file is re-read). */
function cacheKey(dataset: DatasetName, split: CifarSplit, dir: string): string {
  const names = [...LAYOUTS[dataset].files[split], subsetIndicesFile(split)];
  const stamps = names.map((f) => {
    const s = fs.statSync(path.join(dir, f), { throwIfNoEntry: false });
    return s ? `${s.size}@${s.mtimeMs}` : 'missing';
  });
  return `${dir}|${split}|${stamps.join(',')}`;
}

/**
 * Loads one split of CIFAR-10 or CIFAR-100 (synchronous; CIFAR-10 train takes ~1 s and
 * 150 MB). Parsed data is cached in memory per (folder, split, labelMode), so repeated loads
 * return the same object at no cost; call clearCifarCache() to free it.
 * Throws CifarDataError (message names the file and what was expected) for a missing folder
 * or file, a size that is not a multiple of the record length (3073 / 3074 bytes), a file
 * with another record count than the official split's unless the split is declared a subset
 * (`subsetIndicesFile`: count, range and order checked), a label out of range, a CIFAR-100 fine
 * label under two coarse labels, a wrong class-name count, and with `verify` an MD5 mismatch
 * against OFFICIAL_MD5.
 */
export function loadCifar(opts: CifarOptions): CifarData {
  const { dataset, split, root: rootOpt, labelMode, verify } = { labelMode: 'fine' as LabelMode, verify: false, ...opts };
  const layout = LAYOUTS[dataset];
  if (!layout) throw new Error(`Unknown dataset "${String(dataset)}": expected 'cifar10' or 'cifar100'.`);
  if (split !== 'train' && split !== 'test') throw new Error(`Unknown split "${String(split)}": expected 'train' or 'test'.`);
  const names = layout.names[labelMode];
  if (!names) throw new Error(`labelMode '${labelMode}' is not available for ${dataset} (CIFAR-10 has one label).`);
  const root = resolveDataRoot(rootOpt, dataset);
  const dir = path.join(root, DATASET_FOLDERS[dataset]);
  if (!fs.existsSync(dir)) {
    fail(dir, `${dataset} folder not found: ${dir} (expected ${DATASET_FOLDERS[dataset]}/ with ${[...layout.files.train, ...layout.files.test].join(', ')} under the data root ${root}). Run \`npm run data\` or set RIFT_DATA_DIR.`);
  }

  const key = cacheKey(dataset, split, dir);
  let parsed = parsedCache.get(key);
  if (parsed && verify && !parsed.verified) {
    // Cached without a check: hash the files now rather than re-parsing them.
    parsed.binFiles.filter((f) => f.endsWith('.bin')).forEach((f) => {
      const md5 = expectedMd5(dataset, path.basename(f), fs.statSync(f).size / layout.recordBytes, split);
      if (md5) checkMd5(f, fs.readFileSync(f), md5);
    });
    parsed.verified = true;
  }
  const dataKey = `${key}|${labelMode}`;
  const cached = dataCache.get(dataKey);
  if (parsed && cached) return cached;

  const namesFile = path.join(dir, names.file);
  const classNames = readClassNames(namesFile, names.count);
  if (!parsed) {
    parsed = parseSplit(dataset, split, dir, verify);
    parsedCache.set(key, parsed);
  }
  const labels = labelMode === 'fine' && parsed.label1 ? parsed.label1 : parsed.label0;
  const n = labels.length;
  const data: CifarData = {
    dataset,
    split,
    labelMode,
    n,
    images: parsed.images,
    labels,
    numClasses: names.count,
    classNames,
    files: [...parsed.binFiles, namesFile],
    root,
    subset: parsed.coverage.kind === 'subset',
    coverage: parsed.coverage,
    ...(parsed.sourceIndices ? { sourceIndices: parsed.sourceIndices } : {}),
  };
  dataCache.set(dataKey, data);
  return data;
}
