/**
 * Throughput probe: images/s of inference, one PGD step (gradient w.r.t. the input) and one
 * SGD training step (gradients w.r.t. the weights) for a ResNet-18 on the active backend.
 *
 * GFLOP/s uses the forward multiply-adds of the convolutions and the linear layer (2 FLOPs
 * each) and the usual multipliers: PGD step = forward + input backward ≈ 2× forward; training
 * step = forward + input and weight backward ≈ 3× forward (BN/ReLU/adds are not counted).
 */
import * as tf from '@tensorflow/tfjs-core';
import { createResNet18, type Network } from '../nn/model.js';
import { pgd } from '../attacks/pgd.js';
import { trainStep } from '../method/train.js';
import { SGD } from '../nn/optim.js';
import { mulberry32 } from '../util/rng.js';
import { profileKernels, type KernelProfile } from '../engine/kernel-profile.js';

/** What `benchTask` times: a forward pass, one PGD step (input gradient), or one SGD step (weight gradients). */
export type BenchTask = 'inference' | 'pgd-step' | 'train-step';
/** Every BenchTask, in the order scripts/bench.ts runs them. */
export const BENCH_TASKS: readonly BenchTask[] = ['inference', 'pgd-step', 'train-step'];

/** Options of `benchTask`; defaults in DEFAULT_BENCH. */
export interface BenchOptions {
  /** ResNet-18 width multiplier. Default 1. */
  width: number;
  /** Default 128. */
  batchSize: number;
  /** Untimed iterations first. Default 1. */
  warmup: number;
  /** Timed iterations (the median is reported). Default 5. */
  iterations: number;
  /** Stop timing after this many seconds even if fewer iterations ran (≥ 1 timed). Default 30. */
  maxSeconds: number;
}

/** Benchmark defaults: full width (1), batch 128, 1 warm-up iteration, 5 timed iterations, at most 30 s of timing. */
export const DEFAULT_BENCH: BenchOptions = { width: 1, batchSize: 128, warmup: 1, iterations: 5, maxSeconds: 30 };

/**
 * One task's measurement: median images/s and GFLOP/s (null if the task threw, with `error` set), per-iteration times
 * and the process's peak RSS.
 */
export interface BenchResult {
  task: BenchTask;
  width: number;
  batchSize: number;
  /** Median images/s over the timed iterations; null when the task failed. */
  imagesPerSecond: number | null;
  gflops: number | null;
  /** Per-iteration seconds. */
  times: number[];
  /** Peak resident memory of the process so far, MiB. */
  maxRssMiB: number;
  error?: string;
}

/** Forward FLOPs of one 32×32 image through a network (convs + linear; 2 per multiply-add, the architecture's own count). */
export function forwardFlops(model: Network): number {
  return 2 * model.macsPerImage();
}

/** Median of a non-empty list (the mean of the middle two for an even length). */
export function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** A benchmark task's step on a fresh model of `o.width` with a fixed random batch; `dispose` frees all of it. */
function benchStep(task: BenchTask, o: Pick<BenchOptions, 'width' | 'batchSize'>): { model: Network; run: () => void; dispose: () => void } {
  const model = createResNet18({ width: o.width }, 0);
  const r = mulberry32(1);
  const x = tf.tensor4d(Float32Array.from({ length: o.batchSize * 32 * 32 * 3 }, () => r()), [o.batchSize, 32, 32, 3]);
  const y = tf.tensor1d(Array.from({ length: o.batchSize }, (_, i) => i % 10), 'int32');
  const opt = new SGD(model.trainableVariables(), { lr: 1e-3 });
  const run = () => {
    if (task === 'inference') {
      const l = model.predict(x);
      l.dataSync();
      l.dispose();
    } else if (task === 'pgd-step') {
      const xa = pgd(model, x, y, { steps: 1, randomStart: false });
      xa.dataSync();
      xa.dispose();
    } else {
      trainStep(model, opt, x, y);
    }
  };
  return { model, run, dispose: () => { opt.dispose(); tf.dispose([x, y]); model.dispose(); } };
}

/**
 * Per-kernel time of one step of `task` (the step `benchTask` times) on the active backend:
 * `profileKernels` over `repetitions` steps after one warm-up. Creates and frees its own model.
 */
export function profileTask(task: BenchTask, options: Partial<Pick<BenchOptions, 'width' | 'batchSize'>> & { repetitions?: number } = {}): KernelProfile & { task: BenchTask; width: number; batchSize: number } {
  const o = { ...DEFAULT_BENCH, ...options };
  const step = benchStep(task, o);
  try {
    return { task, width: o.width, batchSize: o.batchSize, ...profileKernels(step.run, options.repetitions ?? 3) };
  } finally {
    step.dispose();
  }
}

/** Benchmarks one task. Creates and frees its own model; no tensor survives. */
export async function benchTask(task: BenchTask, options: Partial<BenchOptions> = {}): Promise<BenchResult> {
  const o: BenchOptions = { ...DEFAULT_BENCH, ...options };
  const step = benchStep(task, o);
  const { model, run } = step;
  const times: number[] = [];
  let error: string | undefined;
  try {
    for (let i = 0; i < o.warmup; i++) run();
    const start = performance.now();
    for (let i = 0; i < o.iterations; i++) {
      const t0 = performance.now();
      run();
      times.push((performance.now() - t0) / 1000);
      if ((performance.now() - start) / 1000 > o.maxSeconds) break;
      await new Promise((res) => setImmediate(res));
    }
  } catch (e) {
    error = (e instanceof Error ? e.message : String(e)).split('\n')[0].slice(0, 200);
  }
  const flopsPerImage = forwardFlops(model) * (task === 'inference' ? 1 : task === 'pgd-step' ? 2 : 3);
  step.dispose();
  const ips = times.length ? o.batchSize / median(times) : null;
  return {
    task, width: o.width, batchSize: o.batchSize,
    imagesPerSecond: ips,
    gflops: ips === null ? null : (ips * flopsPerImage) / 1e9,
    times,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    error,
  };
}
