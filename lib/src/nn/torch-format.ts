/**
 * PyTorch state_dicts on disk, read and written without Python: the `torch.save` ZIP format
 * (data.pkl + one file per storage), the legacy pre-1.6 `torch.save` stream, and safetensors.
 *
 * Tensors come out as float32 values in PyTorch's own layout (contiguous, row-major, e.g.
 * conv weights OIHW); float16, bfloat16 and float64 storages are converted, integer ones too
 * (for `num_batches_tracked`). The pickle is read with an allowlist of the globals a
 * state_dict needs; anything else is refused by name (a checkpoint is untrusted input).
 *
 * Wrappers are unwrapped: a dict whose tensors sit under `state_dict`, `net`, `model`, … (or a
 * key named by the caller), a `module.` (DataParallel) or `model.` prefix on every key; what
 * else the file holds (epoch, acc, optimizer) is left out and named in `notes`.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { singleLine } from '../util/format.js';
import { readZip, looksLikeZip, writeZip } from '../util/zip.js';
import { unpickle, PickleWriter, type PickleGlobal } from '../util/pickle.js';

/** One tensor of a state_dict: PyTorch dtype name, shape, and contiguous row-major values as float32. */
export interface StateTensor {
  dtype: TorchDType;
  shape: number[];
  values: Float32Array;
}

/** Element types read from storages (PyTorch names). */
export type TorchDType = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** Which container a state_dict was read from. */
export type StateDictFormat = 'torch-zip' | 'torch-legacy' | 'safetensors';

/** A state_dict read from a file: its tensors by (unwrapped) key, the format, and notes on what was unwrapped or left out. */
export interface LoadedStateDict {
  format: StateDictFormat;
  tensors: Map<string, StateTensor>;
  /** e.g. "state_dict taken from key 'net'; left out: epoch, acc, optimizer", "prefix 'module.' removed". */
  notes: string[];
  /** SHA-256 of the file's bytes (the bytes that were parsed). */
  sha256: string;
}

/** Options of `readStateDict`. */
export interface ReadStateDictOptions {
  /** Key of the state_dict inside a checkpoint dict (e.g. 'net'). Default: the tensors at top level, else the first of STATE_DICT_KEYS present. */
  key?: string;
}

/** Keys under which checkpoints commonly keep the state_dict, tried in order when no `key` is named. */
export const STATE_DICT_KEYS = ['state_dict', 'model_state_dict', 'net', 'model', 'state', 'net_state_dict'] as const;

const STORAGE_DTYPES: Record<string, [TorchDType, number]> = {
  FloatStorage: ['float32', 4], HalfStorage: ['float16', 2], BFloat16Storage: ['bfloat16', 2], DoubleStorage: ['float64', 8],
  LongStorage: ['int64', 8], IntStorage: ['int32', 4], ShortStorage: ['int16', 2], CharStorage: ['int8', 1], ByteStorage: ['uint8', 1],
  BoolStorage: ['bool', 1],
};

const SAFETENSORS_DTYPES: Record<string, [TorchDType, number]> = {
  F32: ['float32', 4], F16: ['float16', 2], BF16: ['bfloat16', 2], F64: ['float64', 8],
  I64: ['int64', 8], I32: ['int32', 4], I16: ['int16', 2], I8: ['int8', 1], U8: ['uint8', 1], BOOL: ['bool', 1],
};

/** A storage reference from a pickle's persistent id; its bytes are attached once read. */
class StorageRef {
  bytes: Buffer | undefined;
  constructor(readonly dtype: TorchDType, readonly itemSize: number, readonly key: string, readonly numel: number) {}
}

/** A tensor the pickle rebuilt: a view (offset, size, stride) into a storage. */
class TensorRef {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly shape: number[], readonly stride: number[]) {}
}

/** Marker types the allowlist hands out for type arguments (`torch.nn.parameter.Parameter`, `torch.Tensor`). */
class TypeMarker {
  constructor(readonly qualifiedName: string) {}
}

function intList(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x < 0)) throw new Error(`${what} is not a tuple of non-negative ints`);
  return v as number[];
}

function rebuildTensor(args: unknown[]): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef)) throw new Error('the first argument is not a tensor storage');
  if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0) throw new Error('storage offset is not a non-negative int');
  const shape = intList(size, 'size');
  const strides = intList(stride, 'stride');
  if (shape.length !== strides.length) throw new Error(`size [${shape}] and stride [${strides}] differ in length`);
  const n = shape.reduce((a, x) => a * x, 1);
  // A state_dict holds no expanded (zero-stride) views; a view larger than its storage is a crafted size.
  if (n > storage.numel) throw new Error(`tensor view [${shape}] has ${n} elements, more than its ${storage.numel}-element storage`);
  const last = offset + shape.reduce((a, x, i) => a + (x > 0 ? (x - 1) * strides[i] : 0), 0);
  if (shape.every((n) => n > 0) && last >= storage.numel) throw new Error(`tensor view [${shape}] (offset ${offset}, stride [${strides}]) reaches element ${last} of a ${storage.numel}-element storage`);
  return new TensorRef(storage, offset, shape, strides);
}

/** The globals a state_dict (plus the usual checkpoint extras: numpy scalars, optimizer state) needs, and nothing else. */
function torchGlobal(module: string, name: string): PickleGlobal | undefined {
  const q = `${module}.${name}`;
  const g = (call?: (args: unknown[]) => unknown): PickleGlobal => ({ qualifiedName: q, call });
  if (module === 'torch' && Object.hasOwn(STORAGE_DTYPES, name)) return new TypeMarker(q) as unknown as PickleGlobal;
  switch (q) {
    case 'collections.OrderedDict':
      return g((args) => new Map(Array.isArray(args[0]) ? (args[0] as unknown[][]).map((kv) => [kv[0], kv[1]] as [unknown, unknown]) : []));
    case 'torch._utils._rebuild_tensor':
    case 'torch._utils._rebuild_tensor_v2':
      return g(rebuildTensor);
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state':
      return g((args) => args[0]);
    case 'torch._tensor._rebuild_from_type_v2':
      return g((args) => {
        const [f, , inner] = args as [PickleGlobal, unknown, unknown[]];
        if (!f || typeof f.call !== 'function' || !Array.isArray(inner)) throw new Error('unexpected arguments');
        return f.call(inner);
      });
    case 'torch.nn.parameter.Parameter':
    case 'torch.Tensor':
      return new TypeMarker(q) as unknown as PickleGlobal;
    case 'torch.Size':
      return g((args) => args[0]);
    case '_codecs.encode':
      return g((args) => Uint8Array.from(Buffer.from(String(args[0]), 'latin1')));
    case 'numpy.dtype':
      return g((args) => ({ numpyDtype: String(args[0]) }));
    case 'numpy.core.multiarray.scalar':
    case 'numpy._core.multiarray.scalar':
      return g((args) => numpyScalar(args[0], args[1]));
    default:
      return undefined;
  }
}

function numpyScalar(dtype: unknown, raw: unknown): number | boolean {
  const d = (dtype as { numpyDtype?: string })?.numpyDtype;
  if (!(raw instanceof Uint8Array) || !d) throw new Error('unexpected numpy scalar');
  const b = Buffer.from(raw);
  const read: Record<string, () => number | boolean> = {
    f8: () => b.readDoubleLE(0), f4: () => b.readFloatLE(0), i8: () => Number(b.readBigInt64LE(0)), i4: () => b.readInt32LE(0),
    i2: () => b.readInt16LE(0), i1: () => b.readInt8(0), u1: () => b[0], u2: () => b.readUInt16LE(0), u4: () => b.readUInt32LE(0),
    u8: () => Number(b.readBigUInt64LE(0)), b1: () => b[0] !== 0,
  };
  const r = Object.hasOwn(read, d) ? read[d] : undefined;
  if (!r || b.length < Number(d.slice(1))) throw new Error(`numpy scalar of dtype '${d}' is not supported`);
  return r();
}

function storageRef(pid: unknown): StorageRef {
  if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) throw new Error('is not a tensor storage reference');
  const [, type, key, , numel, view] = pid;
  // torch ≤ 0.4 saved storage views (root key, offset, size); never seen in state_dicts since.
  if (view !== undefined && view !== null) throw new Error('refers to a view of another storage (torch ≤ 0.4 format), which is not supported');
  const name = type instanceof TypeMarker ? type.qualifiedName.replace(/^torch\./, '') : '';
  const dt = Object.hasOwn(STORAGE_DTYPES, name) ? STORAGE_DTYPES[name] : undefined;
  if (!dt) throw new Error(`storage type ${type instanceof TypeMarker ? type.qualifiedName : String(type)} is not supported`);
  if (typeof numel !== 'number' || !Number.isInteger(numel) || numel < 0) throw new Error('storage size is not a non-negative int');
  return new StorageRef(dt[0], dt[1], String(key), numel);
}

function decodeElements(bytes: Buffer, dtype: TorchDType): Float32Array {
  const n = bytes.length / elementSize(dtype);
  const out = new Float32Array(n);
  switch (dtype) {
    case 'float32': for (let i = 0; i < n; i++) out[i] = bytes.readFloatLE(4 * i); break;
    case 'float64': for (let i = 0; i < n; i++) out[i] = bytes.readDoubleLE(8 * i); break;
    case 'float16': for (let i = 0; i < n; i++) out[i] = halfToFloat(bytes.readUInt16LE(2 * i)); break;
    case 'bfloat16': {
      const u = new Uint32Array(1), f = new Float32Array(u.buffer);
      for (let i = 0; i < n; i++) { u[0] = bytes.readUInt16LE(2 * i) << 16; out[i] = f[0]; }
      break;
    }
    case 'int64': for (let i = 0; i < n; i++) out[i] = Number(bytes.readBigInt64LE(8 * i)); break;
    case 'int32': for (let i = 0; i < n; i++) out[i] = bytes.readInt32LE(4 * i); break;
    case 'int16': for (let i = 0; i < n; i++) out[i] = bytes.readInt16LE(2 * i); break;
    case 'int8': for (let i = 0; i < n; i++) out[i] = bytes.readInt8(i); break;
    case 'uint8': case 'bool': for (let i = 0; i < n; i++) out[i] = bytes[i]; break;
  }
  return out;
}

function elementSize(dtype: TorchDType): number {
  return { float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1 }[dtype];
}

/** IEEE 754 half → float. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Contiguous float32 values of a strided view. */
function materialize(t: TensorRef, label: string): StateTensor {
  const st = t.storage;
  if (!st.bytes) throw new Error(`${label}: storage '${st.key}' has no data`);
  if (st.bytes.length < st.numel * st.itemSize) throw new Error(`${label}: storage '${st.key}' has ${st.bytes.length} bytes, needs ${st.numel * st.itemSize}`);
  const n = t.shape.reduce((a, b) => a * b, 1);
  const contiguous = t.stride.every((s, i) => t.shape[i] === 1 || s === t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
  if (contiguous) {
    const bytes = st.bytes.subarray(t.offset * st.itemSize, (t.offset + n) * st.itemSize);
    return { dtype: st.dtype, shape: [...t.shape], values: decodeElements(bytes, st.dtype) };
  }
  const all = decodeElements(st.bytes.subarray(0, st.numel * st.itemSize), st.dtype);
  const out = new Float32Array(n);
  const idx = new Array(t.shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let off = t.offset;
    for (let d = 0; d < idx.length; d++) off += idx[d] * t.stride[d];
    out[i] = all[off];
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d] < t.shape[d]) break;
      idx[d] = 0;
    }
  }
  return { dtype: st.dtype, shape: [...t.shape], values: out };
}

/** Runs a torch pickle; each storage key gets one StorageRef (as torch keeps one storage per key), collected in `storages`. */
function unpickleTorch(data: Uint8Array, label: string, storages: Map<string, StorageRef>, start = 0): { value: unknown; end: number } {
  return unpickle(data, {
    label,
    resolveGlobal: torchGlobal,
    persistentLoad: (pid) => {
      const s = storageRef(pid);
      const seen = storages.get(s.key);
      if (!seen) { storages.set(s.key, s); return s; }
      if (seen.dtype !== s.dtype || seen.numel !== s.numel) throw new Error(`storage '${singleLine(s.key, 40)}' is referred to as ${seen.dtype}[${seen.numel}] and as ${s.dtype}[${s.numel}]`);
      return seen;
    },
  }, start);
}

/** Reads the pickled object of a torch.save ZIP archive, with its storages attached. */
function readTorchZip(buf: Buffer, label: string): unknown {
  const zip = readZip(buf, label);
  const pkl = [...zip.entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (!pkl) throw new Error(`${label}: a ZIP archive without <name>/data.pkl is not a torch.save checkpoint (entries: ${[...zip.entries.keys()].slice(0, 5).join(', ')})`);
  const root = pkl.slice(0, -'data.pkl'.length);
  const storages = new Map<string, StorageRef>();
  const { value } = unpickleTorch(zip.read(pkl), label, storages);
  for (const s of storages.values()) s.bytes = zip.read(`${root}data/${s.key}`);
  return value;
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

/** Reads a pre-1.6 torch.save stream: magic, protocol, sys_info, the object, the storage keys, then each storage's int64 element count and bytes. */
function readTorchLegacy(buf: Buffer, label: string): unknown {
  const plain = { label, resolveGlobal: () => undefined };
  let r = unpickle(buf, plain);
  if (!((typeof r.value === 'number' || typeof r.value === 'bigint') && BigInt(r.value) === LEGACY_MAGIC)) throw new Error(`${label}: not a torch.save file (bad magic number)`);
  r = unpickle(buf, plain, r.end);
  if (r.value !== 1001) throw new Error(`${label}: legacy torch format protocol ${singleLine(String(r.value), 20)}, expected 1001`);
  r = unpickle(buf, plain, r.end);
  const sys = r.value instanceof Map ? r.value : undefined;
  if (sys && sys.get('little_endian') === false) throw new Error(`${label}: written on a big-endian machine; only little-endian files are read`);
  const storages = new Map<string, StorageRef>();
  const obj = unpickleTorch(buf, label, storages, r.end);
  const keys = unpickle(buf, plain, obj.end);
  if (!Array.isArray(keys.value)) throw new Error(`${label}: legacy storage key list is missing`);
  let p = keys.end;
  for (const k of keys.value.map(String)) {
    const s = storages.get(k);
    if (!s) throw new Error(`${label}: storage '${singleLine(k, 40)}' is listed but no tensor refers to it`);
    if (p + 8 > buf.length) throw new Error(`${label}: storage '${singleLine(k, 40)}' runs past the end of the file (truncated?)`);
    const numel = Number(buf.readBigInt64LE(p));
    if (numel !== s.numel) throw new Error(`${label}: storage '${singleLine(k, 40)}' holds ${numel} elements, its reference says ${s.numel}`);
    const size = numel * s.itemSize;
    if (p + 8 + size > buf.length) throw new Error(`${label}: storage '${singleLine(k, 40)}' runs past the end of the file (truncated?)`);
    s.bytes = buf.subarray(p + 8, p + 8 + size);
    p += 8 + size;
  }
  return obj.value;
}

function readSafetensors(buf: Buffer, label: string): Map<string, StateTensor> {
  if (buf.length < 8) throw new Error(`${label}: too short for safetensors`);
  const n = Number(buf.readBigUInt64LE(0));
  if (8 + n > buf.length) throw new Error(`${label}: safetensors header of ${n} bytes runs past the end of the file (truncated?)`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(buf.toString('utf8', 8, 8 + n));
  } catch (e) {
    throw new Error(`${label}: safetensors header is not JSON (${(e as Error).message})`);
  }
  const data = buf.subarray(8 + n);
  const out = new Map<string, StateTensor>();
  for (const [k, v] of Object.entries(header)) {
    if (k === '__metadata__') continue;
    const dt = typeof v?.dtype === 'string' && Object.hasOwn(SAFETENSORS_DTYPES, v.dtype) ? SAFETENSORS_DTYPES[v.dtype] : undefined;
    if (!dt) throw new Error(`${label}: tensor '${singleLine(k)}' has dtype '${singleLine(String(v?.dtype), 20)}'; supported: ${Object.keys(SAFETENSORS_DTYPES).join(', ')}`);
    const shape = intList(v.shape, `${label}: shape of '${singleLine(k)}'`);
    const [b, e] = v.data_offsets ?? [];
    const want = shape.reduce((a, x) => a * x, 1) * dt[1];
    if (!(Number.isInteger(b) && Number.isInteger(e) && b >= 0 && e - b === want && e <= data.length)) {
      throw new Error(`${label}: tensor '${singleLine(k)}' [${shape}] ${v.dtype} needs ${want} bytes, its offsets are [${b}, ${e}] in ${data.length} bytes of data`);
    }
    out.set(k, { dtype: dt[0], shape, values: decodeElements(data.subarray(b, e), dt[0]) });
  }
  return out;
}

function looksLikeSafetensors(buf: Buffer): boolean {
  if (buf.length < 10) return false;
  const n = buf.readBigUInt64LE(0);
  return n > 1n && n < BigInt(buf.length) && buf[8] === 0x7b;
}

/** The tensors of a dict, when it is a state_dict (string keys, at least one tensor, every non-tensor value dropped with a note). */
function asStateDict(v: unknown, notes: string[]): Map<string, TensorRef> | undefined {
  if (!(v instanceof Map)) return undefined;
  const out = new Map<string, TensorRef>();
  const other: string[] = [];
  for (const [k, x] of v) {
    if (typeof k === 'string' && x instanceof TensorRef) out.set(k, x);
    else other.push(singleLine(String(k), 60));
  }
  if (out.size === 0 || out.size < other.length) return undefined;
  if (other.length) notes.push(`non-tensor entries left out: ${other.join(', ')}`);
  return out;
}

/** Strips a prefix that every key carries (`module.` from DataParallel, `model.` from wrappers), repeatedly. */
function stripPrefixes<T>(t: Map<string, T>, notes: string[]): Map<string, T> {
  let out = t;
  for (;;) {
    if (out.size === 0) return out;
    const prefix = ['module.', 'model.', '_orig_mod.'].find((p) => [...out.keys()].every((k) => k.startsWith(p) && k.length > p.length));
    if (!prefix) return out;
    notes.push(`prefix '${prefix}' removed from every key`);
    out = new Map([...out].map(([k, v]) => [k.slice(prefix.length), v]));
  }
}

/**
 * The state_dict in a checkpoint file (torch.save ZIP or legacy, or safetensors), unwrapped.
 * Throws one-line errors naming the file: unreadable or truncated file, a refused pickle global,
 * no state_dict found (listing the keys there are), `key` absent.
 */
export function readStateDict(file: string, options: ReadStateDictOptions = {}): LoadedStateDict {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as Error).message})`);
  }
  try {
    const notes: string[] = [];
    let format: StateDictFormat;
    let tensors: Map<string, StateTensor>;
    const fromPickle = (obj: unknown) => {
      // Only the chosen state_dict's tensors are materialised (not the optimizer's, not anything shared or cyclic elsewhere).
      const refs = unwrap(obj, file, options, notes);
      return new Map([...refs].map(([k, t]) => [k, materialize(t, `${file}: '${singleLine(k, 80)}'`)]));
    };
    if (looksLikeZip(buf)) {
      format = 'torch-zip';
      tensors = fromPickle(readTorchZip(buf, file));
    } else if (buf.length > 2 && buf[0] === 0x80 && buf[2] === 0x8a) {
      format = 'torch-legacy';
      tensors = fromPickle(readTorchLegacy(buf, file));
    } else if (looksLikeSafetensors(buf)) {
      format = 'safetensors';
      if (options.key) throw new Error(`${file}: --key '${options.key}' does not apply to a safetensors file (it holds one flat state_dict)`);
      tensors = readSafetensors(buf, file);
    } else {
      throw new Error(`${file}: not a PyTorch checkpoint (expected a torch.save ZIP archive, a legacy torch.save file or safetensors; first bytes ${buf.subarray(0, 8).toString('hex')})`);
    }
    if (tensors.size === 0) throw new Error(`${file}: holds no tensors`);
    return { format, tensors: stripPrefixes(tensors, notes), notes, sha256: crypto.createHash('sha256').update(buf).digest('hex') };
  } catch (e) {
    // Whatever the file made us say stays on one line.
    throw new Error(singleLine((e as Error).message, 2000));
  }
}

function unwrap(obj: unknown, file: string, options: ReadStateDictOptions, notes: string[]): Map<string, TensorRef> {
  const keysOf = (m: Map<unknown, unknown>) => [...m.keys()].map((k) => singleLine(String(k), 60));
  const take = (m: Map<unknown, unknown>, k: string): Map<string, TensorRef> | undefined => {
    const inner: string[] = [];
    const sd = asStateDict(m.get(k), inner);
    if (!sd) return undefined;
    const rest = keysOf(m).filter((x) => x !== k);
    notes.push(`state_dict taken from key '${singleLine(k, 60)}'${rest.length ? `; left out: ${rest.join(', ')}` : ''}`, ...inner);
    return sd;
  };
  if (options.key !== undefined) {
    if (!(obj instanceof Map) || !obj.has(options.key)) {
      throw new Error(`${file}: --key '${options.key}' not found; the checkpoint's keys are: ${obj instanceof Map ? keysOf(obj).join(', ') : '(not a dict)'}`);
    }
    const sd = take(obj, options.key);
    if (!sd) throw new Error(`${file}: entry '${options.key}' is not a state_dict (a dict of tensors)`);
    return sd;
  }
  if (!(obj instanceof Map)) throw new Error(`${file}: the checkpoint holds ${Array.isArray(obj) ? 'a list' : typeof obj}, not a dict with a state_dict`);
  // A state_dict under a usual key wins over a top level that merely holds a few tensors (e.g. {state_dict, best_prec1: tensor}).
  for (const k of STATE_DICT_KEYS) {
    const sd = obj.has(k) ? take(obj, k) : undefined;
    if (sd) return sd;
  }
  const top = asStateDict(obj, notes);
  if (top) return top;
  throw new Error(`${file}: no state_dict found (no dict of tensors at top level or under ${STATE_DICT_KEYS.join('/')}); the checkpoint's keys are: ${keysOf(obj).join(', ')} (name one with --key)`);
}

/** A tensor to write: PyTorch layout, float32 values, or int64 (num_batches_tracked) with integer values. */
export interface TensorToWrite {
  key: string;
  shape: number[];
  dtype: 'float32' | 'int64';
  values: ArrayLike<number>;
}

function tensorBytes(t: TensorToWrite): Buffer {
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (t.values.length !== n) throw new Error(`tensor '${t.key}': ${t.values.length} values for shape [${t.shape}]`);
  const b = Buffer.alloc(n * (t.dtype === 'int64' ? 8 : 4));
  for (let i = 0; i < n; i++) {
    if (t.dtype === 'int64') b.writeBigInt64LE(BigInt(Math.round(t.values[i])), 8 * i);
    else b.writeFloatLE(t.values[i], 4 * i);
  }
  return b;
}

function contiguousStride(shape: number[]): number[] {
  const s = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

/**
 * A `torch.load`-able file (the ZIP format torch.save writes) holding an OrderedDict of the
 * tensors in order, each in its own storage. Loads with `weights_only=True`.
 */
export function encodeTorchStateDict(tensors: readonly TensorToWrite[], archiveName = 'archive'): Buffer {
  const w = new PickleWriter();
  w.global('collections', 'OrderedDict').emptyTuple().reduce().mark();
  tensors.forEach((t, i) => {
    w.str(t.key);
    w.global('torch._utils', '_rebuild_tensor_v2').mark();
    w.mark().str('storage').global('torch', t.dtype === 'int64' ? 'LongStorage' : 'FloatStorage').str(String(i)).str('cpu')
      .int(t.shape.reduce((a, b) => a * b, 1)).tuple().persistentId();
    w.int(0);
    w.mark(); for (const d of t.shape) w.int(d); w.tuple();
    w.mark(); for (const d of contiguousStride(t.shape)) w.int(d); w.tuple();
    w.bool(false);
    w.global('collections', 'OrderedDict').emptyTuple().reduce();
    w.tuple().reduce();
  });
  w.setItems();
  return writeZip([
    { name: `${archiveName}/data.pkl`, data: w.finish() },
    { name: `${archiveName}/byteorder`, data: Buffer.from('little') },
    ...tensors.map((t, i) => ({ name: `${archiveName}/data/${i}`, data: tensorBytes(t) })),
    { name: `${archiveName}/version`, data: Buffer.from('3\n') },
  ]);
}

/** A safetensors file of the tensors (F32 / I64), with string metadata in `__metadata__`. */
export function encodeSafetensors(tensors: readonly TensorToWrite[], metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const blobs: Buffer[] = [];
  let off = 0;
  for (const t of tensors) {
    const b = tensorBytes(t);
    header[t.key] = { dtype: t.dtype === 'int64' ? 'I64' : 'F32', shape: t.shape, data_offsets: [off, off + b.length] };
    blobs.push(b);
    off += b.length;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  // The data start is kept 8-byte aligned (the format recommends it); JSON may end in spaces.
  const pad = (8 - (json.length % 8)) % 8;
  json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, ...blobs]);
}
