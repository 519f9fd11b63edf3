/**
 * Where a step's time goes on the active backend: every kernel registered for it is wrapped
 * with a timer while `fn` runs, so each TF.js kernel's wall time and call count are summed by
 * kernel name, and what remains of the step's wall time is the time spent outside kernels
 * (op dispatch, gradient-tape bookkeeping, tensor creation and disposal, JS glue). CPU
 * kernels run synchronously, so a kernel's wall time is its compute; on an asynchronous
 * (GPU) backend the numbers would be launch times only.
 */
import * as tf from '@tensorflow/tfjs-core';

/** One kernel's share of the profiled calls. */
export interface KernelTime {
  kernel: string;
  calls: number;
  /** Milliseconds per profiled call of `fn` (summed over the kernel's calls, divided by the repetitions). */
  ms: number;
}

/** What `profileKernels` measured. */
export interface KernelProfile {
  backend: string;
  repetitions: number;
  /** Wall milliseconds per call of `fn`. */
  totalMs: number;
  /** totalMs minus the kernels' time: dispatch, tape, bookkeeping. */
  outsideKernelsMs: number;
  /** Kernels by time, largest first. */
  kernels: KernelTime[];
}

/**
 * Runs `fn` `repetitions` times (after one untimed call) with every kernel of the active
 * backend timed, then restores the kernels. `fn` must leave no tensors behind (as a benchmark
 * step does); the profile itself makes none.
 */
export function profileKernels(fn: () => void, repetitions = 3): KernelProfile {
  if (!Number.isInteger(repetitions) || repetitions < 1) throw new Error(`profileKernels: repetitions must be an integer ≥ 1, got ${repetitions}`);
  const backend = tf.getBackend();
  const configs = tf.getKernelsForBackend(backend);
  const acc = new Map<string, { calls: number; ms: number }>();
  let depth = 0;
  const swap = (wrap: boolean) => {
    for (const k of configs) {
      tf.unregisterKernel(k.kernelName, backend);
      if (!wrap) {
        tf.registerKernel(k);
        continue;
      }
      const inner = k.kernelFunc;
      tf.registerKernel({
        ...k,
        kernelFunc: (args) => {
          // A kernel that runs another through the registry is counted once, as the outer one.
          if (depth > 0) return inner(args);
          depth++;
          const t0 = performance.now();
          try {
            return inner(args);
          } finally {
            const a = acc.get(k.kernelName) ?? { calls: 0, ms: 0 };
            a.calls++;
            a.ms += performance.now() - t0;
            acc.set(k.kernelName, a);
            depth--;
          }
        },
      });
    }
  };
  fn();
  swap(true);
  let total = 0;
  try {
    const t0 = performance.now();
    for (let i = 0; i < repetitions; i++) fn();
    total = performance.now() - t0;
  } finally {
    swap(false);
  }
  const kernels = [...acc].map(([kernel, a]) => ({ kernel, calls: a.calls / repetitions, ms: a.ms / repetitions })).sort((a, b) => b.ms - a.ms);
  const totalMs = total / repetitions;
  return { backend, repetitions, totalMs, outsideKernelsMs: totalMs - kernels.reduce((s, k) => s + k.ms, 0), kernels };
}
