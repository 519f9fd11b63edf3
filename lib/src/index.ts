/**
 * Public surface of the rift-bn library, layer by layer (each imports only the layers above it
 * in this list): util → engine → data → nn → attacks → method → experiments → analysis →
 * present. Notebooks import it by package name: `import * as rb from 'rift-bn'`.
 */
export * as tf from '@tensorflow/tfjs-core';
// util: paths, files, seeded randomness, progress lines, statistics and densities
export * from './util/paths.js';
export * from './util/fs.js';
export * from './util/runtime.js';
export * from './util/format.js';
export * from './util/rng.js';
export * from './util/progress.js';
export * from './util/lock.js';
export * from './util/stats.js';
export * from './util/kde.js';
// engine: backend selection (tfjs-node-gpu, tfjs-node, native oneDNN, wasm, cpu)
export * from './engine/engine.js';
export * from './engine/kernel-profile.js';
// data: CIFAR reader, declared subsets, augmentation, batches; official downloads
export * from './data/cifar.js';
export * from './data/subsets.js';
export * from './data/augment.js';
export * from './data/batches.js';
export * from './data/download.js';
// nn: networks with PyTorch module names (ResNet-18, PreActResNet-18, WideResNet), BatchNorm,
// losses, SGD, checkpoints, PyTorch state_dicts in and out
export * from './nn/architectures.js';
export * from './nn/model.js';
export * from './nn/batchnorm.js';
export * from './nn/losses.js';
export * from './nn/optim.js';
export * from './nn/checkpoint.js';
export * from './nn/torch-format.js';
export * from './nn/pytorch.js';
// attacks: pure (model, x, y, options) → xAdv
export * from './attacks/index.js';
// method: training, evaluation, MRC, fine-tuning, interpolation
export * from './method/train.js';
export * from './method/evaluate.js';
export * from './method/autoattack.js';
export * from './method/mrc.js';
export * from './method/finetune.js';
export * from './method/interpolate.js';
// experiments: profiles, cached records (shared by many workers), PGD-AT runs, the grid and its sweeps, benchmarks
export * from './experiments/config.js';
export * from './experiments/cache.js';
export * from './experiments/adversarial-training.js';
export * from './experiments/imported.js';
export * from './experiments/records.js';
export * from './experiments/experiments.js';
export * from './experiments/grid.js';
export * from './experiments/sweep.js';
export * from './experiments/bench.js';
export * from './experiments/stage-bench.js';
// analysis: the paper's numbers, table rows, computed readings
export * from './analysis/paper.js';
export * from './analysis/tables.js';
export * from './analysis/readings.js';
// present: chart specs, rendering, tables, the notebook adapter, report files
export * from './present/charts.js';
export * from './present/render.js';
export * from './present/table-format.js';
export * from './present/display.js';
export * from './present/artifacts.js';
export * from './present/report.js';
export * from './present/notebook.js';
