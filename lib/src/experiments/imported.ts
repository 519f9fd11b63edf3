/**
 * Bases brought from PyTorch: a checkpoint file is imported once into a `.rbn` under
 * data/imported/ (keyed by the file's SHA-256 and the import options, so a rerun reuses it),
 * and the experiments then run on that `.rbn` as on a base this project trained. Which base a
 * config uses is decided in one place (`baseCheckpointPath`): an imported base named for the
 * config's dataset (env RIFT_BASE_<DATASET>, as `npm start -- --base` sets it), else the
 * profile's own PGD-AT run.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { importPyTorchCheckpoint, type ImportOptions, type ImportSource } from '../nn/pytorch.js';
import { saveCheckpoint, readCheckpoint } from '../nn/checkpoint.js';
import { archLabel } from '../nn/architectures.js';
import { NUM_CLASSES, DATASET_NAMES, type DatasetName } from '../data/cifar.js';
import { dataDir } from '../util/paths.js';

/** `<repo>/data/imported`: `.rbn` files imported from PyTorch checkpoints. */
export function importedDir(): string {
  return path.join(dataDir(), 'imported');
}

/** The environment variable that names the imported base of a dataset: RIFT_BASE_CIFAR10, RIFT_BASE_CIFAR100. */
export function importedBaseEnvName(dataset: DatasetName): string {
  return `RIFT_BASE_${dataset.toUpperCase()}`;
}

/** The imported base named for `dataset` in the environment, or undefined. Throws when the named file does not exist. */
export function importedBaseFromEnv(dataset: DatasetName): string | undefined {
  const name = importedBaseEnvName(dataset);
  const v = process.env[name];
  if (!v) return undefined;
  if (!fs.existsSync(v)) throw new Error(`${name}=${v}: no such file (set by npm start -- --base; import again)`);
  return v;
}

/** What `importBase` returns: the `.rbn` to run on, its dataset (from the class count), and where it came from. */
export interface ImportedBase {
  checkpoint: string;
  dataset: DatasetName;
  label: string;
  source: ImportSource;
  /** True when an earlier import of the same file with the same options was reused. */
  reused: boolean;
}

/**
 * Imports a PyTorch checkpoint as a base model (see nn/pytorch.ts for the options and errors)
 * and saves it atomically as data/imported/<file stem>-<sha256[:12]>-<options hash>.rbn with
 * provenance `{ imported: source }`; reuses that file when it exists. `dataset` (default: from
 * the class count, 10 → cifar10, 100 → cifar100) must fit the model's class count.
 */
export function importBase(file: string, options: ImportOptions & { dataset?: DatasetName; outDir?: string } = {}): ImportedBase {
  if (!fs.existsSync(file)) throw new Error(`--base ${file}: no such file`);
  const sha = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  const { dataset: wanted, outDir, ...imp } = options;
  const optionsHash = crypto.createHash('sha256').update(JSON.stringify({ ...imp, numClasses: wanted ? NUM_CLASSES[wanted] : undefined })).digest('hex').slice(0, 8);
  const stem = path.basename(file).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_.-]/g, '_');
  const out = path.join(outDir ?? importedDir(), `${stem}-${sha.slice(0, 12)}-${optionsHash}.rbn`);
  const datasetOf = (numClasses: number): DatasetName => {
    const d = wanted ?? DATASET_NAMES.find((n) => NUM_CLASSES[n] === numClasses);
    if (!d) throw new Error(`--base ${file}: a ${numClasses}-class model fits neither CIFAR-10 nor CIFAR-100`);
    return d;
  };
  if (fs.existsSync(out)) {
    const h = readCheckpoint(out).header;
    return { checkpoint: out, dataset: datasetOf(h.config.numClasses), label: archLabel(h.config), source: h.provenance.imported as ImportSource, reused: true };
  }
  const { model, source } = importPyTorchCheckpoint(file, { ...imp, ...(wanted ? { numClasses: NUM_CLASSES[wanted] } : {}) });
  try {
    const dataset = datasetOf(model.config.numClasses);
    saveCheckpoint(out, model, { provenance: { imported: source, command: `importBase(${JSON.stringify(file)}, ${JSON.stringify(imp)})` } });
    return { checkpoint: out, dataset, label: archLabel(model.config), source, reused: false };
  } finally {
    model.dispose();
  }
}
