/**
 * Checkpoints: the full model state (weights, BN running statistics), the architecture config
 * and provenance, in one file written atomically (temp file + rename).
 *
 * Format "rift-bn-checkpoint" v1 (little-endian):
 *   bytes 0–7   magic "RIFTBN\0\x01"
 *   bytes 8–11  uint32 H = byte length of the JSON header
 *   H bytes     UTF-8 JSON header: { format, version, config: ModelConfig, layout,
 *               tensors: [{ key, shape, dtype: "float32", offset, length }], dataSha256,
 *               provenance, metrics, extra, createdAt }
 *   zero padding to a multiple of 64 bytes, then the tensor data: float32 values, each
 *   tensor at `offset` (bytes, relative to the data start) with `length` values.
 * Keys are PyTorch state_dict keys; conv weights are HWIO and linear weights [in,out]
 * (`layout` says so), i.e. PyTorch's OIHW / [out,in] transposed.
 */
import * as fs from 'node:fs';
import { writeFileAtomic } from '../util/fs.js';
import * as crypto from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import { Network, completeModelConfig, type ModelConfig } from './model.js';

const MAGIC = Buffer.from([0x52, 0x49, 0x46, 0x54, 0x42, 0x4e, 0x00, 0x01]);
/** Format tag stored in every checkpoint header; `readCheckpoint` rejects any other. */
export const CHECKPOINT_FORMAT = 'rift-bn-checkpoint';
/** Checkpoint format version this library writes and the only one `readCheckpoint` accepts. */
export const CHECKPOINT_VERSION = 1;

/** Where a checkpoint came from; every field is optional but a trainer fills them all. */
export interface Provenance {
  /** e.g. { dataset: 'cifar10', split: 'train', n: 50000, subset: ... } */
  data?: Record<string, unknown>;
  profile?: string;
  seed?: number;
  /** EngineInfo summary: backend, threads, versions. */
  engine?: Record<string, unknown>;
  /** Command line or notebook that produced it. */
  command?: string;
  /** Git commit of the project when it was produced. */
  commit?: string;
  /** Full effective config of the run. */
  config?: Record<string, unknown>;
  [k: string]: unknown;
}

/** Header entry of one stored tensor: state key, shape, dtype, byte offset from the data start and length in float32 values. */
export interface CheckpointTensorInfo { key: string; shape: number[]; dtype: 'float32'; offset: number; length: number }

/**
 * The JSON header of a checkpoint (see the file comment): architecture config, weight layouts, tensor table, SHA-256 of the
 * data section, provenance, metrics, extras and creation time (ISO 8601).
 */
export interface CheckpointHeader {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  config: ModelConfig;
  layout: { conv: 'HWIO'; linear: 'in,out'; activations: 'NHWC' };
  tensors: CheckpointTensorInfo[];
  dataSha256: string;
  provenance: Provenance;
  /** e.g. { clean: 61.2, robust: 31.0, epoch: 14 } */
  metrics: Record<string, unknown>;
  /** Anything else a caller wants to keep with the weights (e.g. optimizer state keys). */
  extra: Record<string, unknown>;
  createdAt: string;
}

/** A parsed, verified checkpoint as `readCheckpoint` returns it: header and float32 values by state key. */
export interface CheckpointData {
  header: CheckpointHeader;
  /** Values by key (views into one buffer; copy before mutating). */
  tensors: Map<string, Float32Array>;
}

/** What `encodeCheckpoint` / `saveCheckpoint` store beside the model state; every field optional (empty by default). */
export interface SaveCheckpointOptions {
  provenance: Provenance;
  metrics: Record<string, unknown>;
  extra: Record<string, unknown>;
  /** Additional float32 arrays saved beside the model state (e.g. 'optim/<var>' momentum buffers). */
  extraTensors: Record<string, { shape: number[]; values: Float32Array }>;
}

/** Serialises a model's full state (+ extras) to a Buffer in the format above. */
export function encodeCheckpoint(model: Network, options: Partial<SaveCheckpointOptions> = {}): Buffer {
  const entries: Array<[string, number[], Float32Array]> = model.stateKeys().map((k) => [k, [...model.variable(k).shape], model.read(k)]);
  for (const [k, t] of Object.entries(options.extraTensors ?? {})) {
    if (model.stateKeys().includes(k)) throw new Error(`extra tensor key '${k}' collides with a model state key`);
    entries.push([k, t.shape, t.values]);
  }
  const tensors: CheckpointTensorInfo[] = [];
  let offset = 0;
  for (const [key, shape, values] of entries) {
    tensors.push({ key, shape, dtype: 'float32', offset, length: values.length });
    offset += values.length * 4;
  }
  const data = Buffer.alloc(offset);
  for (let i = 0; i < entries.length; i++) {
    const v = entries[i][2];
    Buffer.from(v.buffer, v.byteOffset, v.byteLength).copy(data, tensors[i].offset);
  }
  const header: CheckpointHeader = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    config: model.config,
    layout: { conv: 'HWIO', linear: 'in,out', activations: 'NHWC' },
    tensors,
    dataSha256: crypto.createHash('sha256').update(data).digest('hex'),
    provenance: options.provenance ?? {},
    metrics: options.metrics ?? {},
    extra: options.extra ?? {},
    createdAt: new Date().toISOString(),
  };
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  const headerBytes = MAGIC.length + 4 + json.length;
  const pad = Buffer.alloc((64 - (headerBytes % 64)) % 64);
  return Buffer.concat([MAGIC, len, json, pad, data]);
}

/** Saves a checkpoint atomically. */
export function saveCheckpoint(file: string, model: Network, options: Partial<SaveCheckpointOptions> = {}): void {
  writeFileAtomic(file, encodeCheckpoint(model, options));
}

function readCheckpointBytes(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new Error(`checkpoint ${file}: cannot read (${(e as Error).message})`);
  }
}

/**
 * The checked header of a checkpoint from its first bytes (`head`: at least the 12-byte
 * preamble; `size`: the file's size), and where it ends. Magic, header length, JSON, format and
 * version are checked; fields added after a checkpoint was written read with their defaults.
 * When `head` holds only the preamble, only the header length is returned.
 */
function parseHeader(file: string, head: Buffer, size: number): { header?: CheckpointHeader; hlen: number } {
  const fail = (what: string) => new Error(`checkpoint ${file}: ${what}`);
  if (head.length < 12 || !head.subarray(0, 8).equals(MAGIC)) throw fail(`not a ${CHECKPOINT_FORMAT} file (bad magic bytes)`);
  const hlen = head.readUInt32LE(8);
  if (12 + hlen > size) throw fail(`truncated: header length ${hlen} exceeds file size ${size}`);
  if (head.length < 12 + hlen) return { hlen };
  let header: CheckpointHeader;
  try {
    header = JSON.parse(head.subarray(12, 12 + hlen).toString('utf8')) as CheckpointHeader;
  } catch (e) {
    throw fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (header.format !== CHECKPOINT_FORMAT) throw fail(`format '${header.format}', expected '${CHECKPOINT_FORMAT}'`);
  if (header.version !== CHECKPOINT_VERSION) throw fail(`version ${header.version}, this library reads version ${CHECKPOINT_VERSION}`);
  // Headers written before a config field existed (depth, normalization, …) read with its default.
  header.config = completeModelConfig(header.config ?? {});
  return { header, hlen };
}

/**
 * The header of a checkpoint file alone (magic, format and version checked; the tensor data
 * is neither read nor verified): cheap to call often, e.g. to see how far a training run got.
 */
export function readCheckpointHeader(file: string): CheckpointHeader {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new Error(`checkpoint ${file}: cannot read (${(e as Error).message})`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const pre = Buffer.alloc(Math.min(12, size));
    fs.readSync(fd, pre, 0, pre.length, 0);
    const { hlen } = parseHeader(file, pre, size);
    const head = Buffer.alloc(12 + hlen);
    fs.readSync(fd, head, 0, head.length, 0);
    return parseHeader(file, head, size).header!;
  } finally {
    fs.closeSync(fd);
  }
}

/** Parses and verifies (magic, version, sizes, SHA-256) a checkpoint file. */
export function readCheckpoint(file: string): CheckpointData {
  const buf = readCheckpointBytes(file);
  const fail = (what: string) => new Error(`checkpoint ${file}: ${what}`);
  const { header, hlen } = parseHeader(file, buf, buf.length) as { header: CheckpointHeader; hlen: number };
  const start = 12 + hlen + ((64 - ((12 + hlen) % 64)) % 64);
  const dataLen = header.tensors.reduce((a, t) => Math.max(a, t.offset + t.length * 4), 0);
  if (start + dataLen !== buf.length) throw fail(`truncated or padded: expected ${start + dataLen} bytes, file has ${buf.length}`);
  const data = buf.subarray(start);
  const sha = crypto.createHash('sha256').update(data).digest('hex');
  if (sha !== header.dataSha256) throw fail(`data SHA-256 mismatch (expected ${header.dataSha256}, got ${sha}): file is corrupt`);
  // Copy into an aligned buffer so Float32Array views are valid.
  const aligned = new Uint8Array(data.length);
  aligned.set(data);
  const tensors = new Map<string, Float32Array>();
  for (const t of header.tensors) tensors.set(t.key, new Float32Array(aligned.buffer, t.offset, t.length));
  return { header, tensors };
}

/** SHA-256 of a checkpoint file's bytes (identifies the input of an experiment). */
export function checkpointHash(file: string): string {
  return crypto.createHash('sha256').update(readCheckpointBytes(file)).digest('hex');
}

const ARCH_FIELDS: Array<keyof ModelConfig> = ['arch', 'width', 'depth', 'numClasses', 'finalBn', 'preactShortcut'];

/**
 * Loads a checkpoint's state into an existing model. Fails with a message naming every
 * mismatch if the architecture, width or class count differ.
 */
export function loadCheckpointInto(model: Network, ckpt: CheckpointData | string): CheckpointData {
  const c = typeof ckpt === 'string' ? readCheckpoint(ckpt) : ckpt;
  const diffs = ARCH_FIELDS.filter((f) => c.header.config[f] !== model.config[f])
    .map((f) => `${f}: checkpoint ${c.header.config[f]} vs model ${model.config[f]}`);
  if (diffs.length) throw new Error(`checkpoint does not fit this model (${diffs.join('; ')})`);
  const values = new Map<string, tf.Tensor>();
  try {
    for (const k of model.stateKeys()) {
      const v = c.tensors.get(k);
      if (!v) throw new Error(`checkpoint lacks state entry '${k}'`);
      const info = c.header.tensors.find((t) => t.key === k)!;
      values.set(k, tf.tensor(v, info.shape, 'float32'));
    }
    model.write(values);
  } finally {
    values.forEach((t) => t.dispose());
  }
  return c;
}

/** A new model with the checkpoint's architecture and state. The caller disposes the model. */
export function loadModel(file: string): { model: Network; checkpoint: CheckpointData } {
  const c = readCheckpoint(file);
  const model = new Network(c.header.config, (key, shape) => {
    const v = c.tensors.get(key);
    if (!v) throw new Error(`checkpoint ${file}: lacks state entry '${key}'`);
    const want = shape.reduce((a, b) => a * b, 1);
    if (v.length !== want) throw new Error(`checkpoint ${file}: '${key}' has ${v.length} values, the architecture needs [${shape}]`);
    return Float32Array.from(v);
  });
  return { model, checkpoint: c };
}
