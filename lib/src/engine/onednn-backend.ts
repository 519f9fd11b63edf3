/**
 * The TF.js backend object of 'onednn': the cpu backend (JS TypedArrays in `this.data`) plus a
 * pool that recycles the output buffers of native kernels.
 *
 * Why a pool: a ResNet step creates hundreds of multi-MB outputs. Left to V8, each one is a new
 * ArrayBuffer freed only by a later garbage collection: the collections themselves (driven by
 * external-memory pressure) and first-touch page faults on fresh memory cost more than the
 * arithmetic of the memory-bound kernels, and V8's GC threads preempt oneDNN's OpenMP threads.
 * Measured on a quarter-width ResNet-18 inference at batch 128: ~200 ms without, ~55 ms with.
 *
 * Safety: a pooled buffer is reused only when no data entry refers to it any more. Data entries
 * are created only by `write` and `move` (also for cpu kernels whose outputs are views of an
 * input, e.g. a contiguous Slice), so counting them per ArrayBuffer is exact; and `readSync`
 * (dataSync/arraySync/bufferSync/data, moving to another backend) returns a copy of pooled
 * memory, so no reference to it escapes to user code.
 */
import * as os from 'node:os';
import { backend_util, DataType } from '@tensorflow/tfjs-core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';

type DataId = object;

/** Counters of the output-buffer pool. */
export interface PoolStats {
  /** Bytes held in free buffers, ready for reuse. */
  freeBytes: number;
  /** Cap on freeBytes; a released buffer beyond it is left to the garbage collector. */
  maxFreeBytes: number;
  /** Allocations served from the pool / freshly allocated. */
  hits: number;
  misses: number;
}

/**
 * Default cap on free pooled memory: RIFT_POOL_MB if set (0 disables pooling), else half the
 * machine's memory. The pool holds what a step freed, i.e. about the step's peak activations.
 */
export function defaultPoolBytes(): number {
  const env = process.env.RIFT_POOL_MB;
  if (env !== undefined && env !== '') {
    const mb = Number(env);
    if (!Number.isFinite(mb) || mb < 0) throw new Error(`RIFT_POOL_MB must be a non-negative number of MiB, got '${env}'`);
    return mb * 2 ** 20;
  }
  return Math.floor(os.totalmem() / 2);
}

/**
 * The 'onednn' backend instance: MathBackendCPU plus the output-buffer pool (see the file comment), capped at
 * `maxFreeBytes` free bytes (default `defaultPoolBytes()`).
 */
export class OnednnBackend extends MathBackendCPU {
  /** ArrayBuffers allocated by this pool (weak: a buffer whose kernel threw is simply collected). */
  private readonly owned = new WeakSet<ArrayBuffer>();
  /** Number of live data entries referring to each pooled buffer (absent = none). */
  private readonly holders = new Map<ArrayBuffer, number>();
  /** Free buffers by byte length. */
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly stats: PoolStats;

  constructor(maxFreeBytes = defaultPoolBytes()) {
    super();
    // The cpu backend prints an "install tfjs-node" hint on first use; not useful here.
    (this as unknown as { firstUse: boolean }).firstUse = false;
    this.stats = { freeBytes: 0, maxFreeBytes, hits: 0, misses: 0 };
  }

  /**
   * A float32 array of n elements with arbitrary contents, for a kernel output that overwrites
   * all of it and then passes it to `makeTensorInfo` (which makes the pool track it).
   */
  alloc(n: number): Float32Array {
    if (n === 0) return new Float32Array(0);
    const bytes = n * 4;
    const buf = this.free.get(bytes)?.pop();
    if (buf) {
      this.stats.freeBytes -= bytes;
      this.stats.hits++;
      return new Float32Array(buf);
    }
    this.stats.misses++;
    // Uninitialised memory: zero-filling what the kernel overwrites would be one more pass.
    const b = Buffer.allocUnsafeSlow(bytes);
    const ab = b.byteOffset === 0 && b.buffer.byteLength === bytes ? (b.buffer as ArrayBuffer) : new ArrayBuffer(bytes);
    this.owned.add(ab);
    return new Float32Array(ab);
  }

  /** Pool counters (a copy). */
  poolStats(): PoolStats {
    return { ...this.stats };
  }

  /** Drops all free buffers (memory returns once V8 collects them). */
  clearPool(): void {
    this.free.clear();
    this.stats.freeBytes = 0;
  }

  private pooledBuffer(values: backend_util.BackendValues | undefined): ArrayBuffer | undefined {
    if (values === undefined || !ArrayBuffer.isView(values)) return undefined;
    const buf = values.buffer as ArrayBuffer;
    return this.owned.has(buf) ? buf : undefined;
  }

  private hold(values: backend_util.BackendValues | undefined): void {
    const buf = this.pooledBuffer(values);
    if (buf) this.holders.set(buf, (this.holders.get(buf) ?? 0) + 1);
  }

  private unhold(values: backend_util.BackendValues | undefined): void {
    const buf = this.pooledBuffer(values);
    if (!buf) return;
    const left = (this.holders.get(buf) ?? 1) - 1;
    if (left > 0) {
      this.holders.set(buf, left);
      return;
    }
    this.holders.delete(buf);
    if (this.stats.freeBytes + buf.byteLength > this.stats.maxFreeBytes) return;
    const list = this.free.get(buf.byteLength);
    if (list) list.push(buf);
    else this.free.set(buf.byteLength, [buf]);
    this.stats.freeBytes += buf.byteLength;
  }

  override write(values: backend_util.BackendValues, shape: number[], dtype: DataType): DataId {
    const id = super.write(values, shape, dtype);
    this.hold(values);
    return id;
  }

  override move(dataId: DataId, values: backend_util.BackendValues, shape: number[], dtype: DataType, refCount: number): void {
    if (this.data.has(dataId)) this.unhold(this.data.get(dataId)?.values);
    super.move(dataId, values, shape, dtype, refCount);
    this.hold(values);
  }

  override disposeData(dataId: DataId, force = false): boolean {
    const entry = this.data.has(dataId) ? this.data.get(dataId) : undefined;
    const released = super.disposeData(dataId, force);
    if (entry && !this.data.has(dataId)) this.unhold(entry.values);
    return released;
  }

  override readSync(dataId: DataId): backend_util.BackendValues {
    const v = super.readSync(dataId);
    // Pooled memory is reused once the tensor is disposed: never hand it out.
    return this.pooledBuffer(v) ? (v as Float32Array).slice() : v;
  }
}
