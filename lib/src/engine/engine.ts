/**
 * Engine: picks the TensorFlow.js backend at run time and reports what it picked.
 *
 * Order tried by `initEngine()` with `backend: 'auto'` (the default):
 *   1. `tensorflow` via `@tensorflow/tfjs-node-gpu` (only if it loads and sees a GPU),
 *   2. `tensorflow` via `@tensorflow/tfjs-node` (real libtensorflow only),
 *   3. `onednn`, this project's native CPU backend on oneDNN (if the addon was built),
 *   4. `wasm` (XNNPACK, SIMD; single-threaded in Node) with composed conv-gradient kernels,
 *   5. `cpu` (pure JS, slow; always available).
 * `RIFT_BACKEND=<name>` or `initEngine({backend})` forces one; a forced backend that cannot
 * start is an error, never a silent fallback.
 */
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
// The union package's CommonJS bundle registers every gradient and the chained ops
// (tfjs-core's own CommonJS bundle registers neither), plus the cpu backend.
import '@tensorflow/tfjs';
import { registerWasmGradientKernels } from './wasm-kernels.js';
import { onednnInfo, tryRegisterOnednn } from './onednn.js';
import { defaultPoolBytes } from './onednn-backend.js';

/** Our name of a backend; 'tensorflow-gpu' and 'tensorflow' are both TF.js's 'tensorflow' (tfjs-node-gpu / tfjs-node). */
export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'onednn' | 'wasm' | 'cpu';
/** Backends in the order `initEngine` tries them in 'auto' mode (see the file comment). */
export const BACKEND_ORDER: readonly BackendName[] = ['tensorflow-gpu', 'tensorflow', 'onednn', 'wasm', 'cpu'];

/** Options of `initEngine`. */
export interface EngineOptions {
  /** Backend to use; 'auto' tries BACKEND_ORDER. Default: env RIFT_BACKEND, else 'auto'. */
  backend?: BackendName | 'auto';
  /** Threads for backends that can use several (onednn, tensorflow). Default: env RIFT_THREADS, else all cores. */
  threads?: number;
}

/** Outcome of trying one backend during `initEngine`; `EngineInfo.attempts` lists them in the order tried. */
export interface BackendAttempt {
  backend: BackendName;
  ok: boolean;
  /** Why it was not used (load error, no GPU, not built, ...). */
  reason?: string;
}

/** What the engine runs on; recorded in every result and checkpoint. */
export interface EngineInfo {
  /** Our name for the active backend (see BackendName). */
  backend: BackendName;
  /** TF.js's name of the active backend ('tensorflow', 'onednn', 'wasm', 'cpu'). */
  tfBackend: string;
  threads: number;
  /** Whether float results are bit-reproducible run to run on this backend. */
  deterministic: boolean;
  versions: Record<string, string>;
  cpu: { model: string; cores: number };
  attempts: BackendAttempt[];
}

let current: EngineInfo | undefined;

function pkgVersion(name: string): string | undefined {
  try {
    const p = require(`${name}/package.json`) as { name?: string; version: string };
    // An npm alias (danfojs-node's override installs @tensorflow/tfjs as @tensorflow/tfjs-node) is not that package.
    return p.name === undefined || p.name === name ? p.version : undefined;
  } catch {
    return undefined;
  }
}

function errText(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0].slice(0, 300);
}

async function tryTensorflow(gpu: boolean): Promise<string | undefined> {
  const pkg = gpu ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  let mod: unknown;
  try {
    mod = require(pkg);
  } catch (e) {
    return `${pkg} not loadable: ${errText(e)}`;
  }
  // danfojs-node's install override maps @tensorflow/tfjs-node to plain @tensorflow/tfjs,
  // which registers no 'tensorflow' backend: only a real binding counts.
  if (mod === undefined || tf.findBackendFactory('tensorflow') == null) {
    return `${pkg} loaded but registered no 'tensorflow' backend (not the native binding)`;
  }
  if (!(await tf.setBackend('tensorflow'))) return `${pkg}: backend 'tensorflow' failed to initialise`;
  if (gpu) {
    const b = tf.backend() as unknown as { isUsingGpuDevice?: boolean };
    if (b.isUsingGpuDevice !== true) return `${pkg} loaded but sees no GPU`;
  }
  return undefined;
}

async function tryWasm(): Promise<string | undefined> {
  try {
    require('@tensorflow/tfjs-backend-wasm');
  } catch (e) {
    return `@tensorflow/tfjs-backend-wasm not loadable: ${errText(e)}`;
  }
  registerWasmGradientKernels();
  try {
    if (!(await tf.setBackend('wasm'))) return 'wasm backend failed to initialise';
  } catch (e) {
    return `wasm backend failed to initialise: ${errText(e)}`;
  }
  return undefined;
}

async function tryBackend(name: BackendName, threads: number): Promise<string | undefined> {
  switch (name) {
    case 'tensorflow-gpu':
      return tryTensorflow(true);
    case 'tensorflow':
      return tryTensorflow(false);
    case 'onednn': {
      const r = tryRegisterOnednn(threads);
      if (!r.ok) return r.reason;
      return (await tf.setBackend('onednn')) ? undefined : 'onednn backend failed to initialise';
    }
    case 'wasm':
      return tryWasm();
    case 'cpu':
      return (await tf.setBackend('cpu')) ? undefined : 'cpu backend failed to initialise';
  }
}

function parseBackend(v: string, source: string): BackendName | 'auto' {
  if (v === 'auto' || (BACKEND_ORDER as readonly string[]).includes(v)) return v as BackendName | 'auto';
  throw new Error(`${source}: unknown backend '${v}'; expected one of auto, ${BACKEND_ORDER.join(', ')}`);
}

/**
 * Selects and initialises the backend. Idempotent: a second call with the same request
 * returns the active engine; a call that asks for another backend switches to it.
 */
export async function initEngine(options: EngineOptions = {}): Promise<EngineInfo> {
  const requested = options.backend ?? (process.env.RIFT_BACKEND ? parseBackend(process.env.RIFT_BACKEND, 'RIFT_BACKEND') : 'auto');
  if (requested !== 'auto') parseBackend(requested, 'initEngine({backend})');
  const envThreads = process.env.RIFT_THREADS ? Number(process.env.RIFT_THREADS) : undefined;
  const threads = options.threads ?? envThreads ?? os.availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`threads (option or RIFT_THREADS) must be a positive integer, got ${threads}`);
  }
  const order = requested === 'auto' ? BACKEND_ORDER : [requested];
  // A bad setting must fail here: inside the backend factory it reads as "onednn unavailable",
  // and auto mode would quietly fall back to a much slower backend.
  if (order.includes('onednn')) defaultPoolBytes();
  if (current && (requested === 'auto' || requested === current.backend) && current.threads === threads) return current;

  const attempts: BackendAttempt[] = [];
  for (const name of order) {
    const reason = await tryBackend(name, threads);
    attempts.push(reason === undefined ? { backend: name, ok: true } : { backend: name, ok: false, reason });
    if (reason === undefined) {
      // The JS cpu storage (cpu and onednn backends) prints a "use tfjs-node" banner on first
      // use; it goes to stderr, which the notebook runner treats as a failed cell.
      const b = tf.backend() as unknown as { firstUse?: boolean };
      if (b.firstUse === true) b.firstUse = false;
      current = describe(name, threads, attempts);
      return current;
    }
  }
  const why = attempts.map((a) => `${a.backend}: ${a.reason}`).join('; ');
  throw new Error(`no TF.js backend could start (${why})`);
}

function describe(name: BackendName, threads: number, attempts: BackendAttempt[]): EngineInfo {
  const versions: Record<string, string> = { node: process.versions.node, 'tfjs-core': tf.version_core };
  for (const p of ['@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-backend-cpu', '@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    const v = pkgVersion(p);
    if (v && (name === 'wasm' || !p.endsWith('wasm'))) versions[p.replace('@tensorflow/', '')] = v;
  }
  if (name === 'onednn') {
    const i = onednnInfo();
    if (i) versions.onednn = `${i.dnnlVersion} (${i.isa}, ${i.runtime})`;
  }
  const cpus = os.cpus();
  const effectiveThreads = name === 'wasm' || name === 'cpu' ? 1 : threads;
  return {
    backend: name,
    tfBackend: tf.getBackend(),
    threads: effectiveThreads,
    deterministic: name === 'wasm' || name === 'cpu' || name === 'onednn',
    versions,
    cpu: { model: cpus[0]?.model ?? 'unknown', cores: os.availableParallelism() },
    attempts,
  };
}

/** The active engine, or throws if `initEngine()` has not run. */
export function engineInfo(): EngineInfo {
  if (!current) throw new Error('engine not initialised: call initEngine() first');
  return current;
}
