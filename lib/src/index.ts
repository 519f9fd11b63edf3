/**
 * Public surface of the rift-bn library: engine and backends, data, model, attacks, evaluation,
 * training and PGD-AT, checkpoints, config profiles, MRC, fine-tuning and interpolation,
 * experiment records and their cache, statistics, tables, readings, charts and the report.
 * Notebooks import it by package name: `import * as rb from 'rift-bn'`.
 */
export * as tf from '@tensorflow/tfjs-core';
export * from './engine.js';
export * from './rng.js';
export * from './data.js';
export * from './download.js';
export * from './model.js';
export * from './batchnorm.js';
export * from './losses.js';
export * from './attacks/index.js';
export * from './evaluate.js';
export * from './optim.js';
export * from './train.js';
export * from './checkpoint.js';
export * from './progress.js';
export * from './bench.js';
export * from './config.js';
export * from './adversarial-training.js';
export * from './mrc.js';
export * from './finetune.js';
export * from './interpolate.js';
export * from './stats.js';
export * from './cache.js';
export * from './experiments.js';
export * from './kde.js';
export * from './paper.js';
export * from './tables.js';
export * from './readings.js';
export * from './charts.js';
export * from './render.js';
export * from './table-format.js';
export * from './display.js';
export * from './artifacts.js';
export * from './report.js';
export * from './stage-bench.js';
