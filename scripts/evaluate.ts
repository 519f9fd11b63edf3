/** `npm run evaluate -- --checkpoint <file> [options]`: clean and PGD accuracy of a checkpoint (`--help` lists the options). */
import { initEngine } from '../lib/src/engine/engine.js';
import { loadCifar, describeSplit, DATASET_NAMES, type DatasetName } from '../lib/src/data/cifar.js';
import { loadModel, readCheckpoint, checkpointHash } from '../lib/src/nn/checkpoint.js';
import { evaluate, formatEvaluation } from '../lib/src/method/evaluate.js';
import { runMain, backendArg, parseCli, intArg, numberArg, choiceArg, COMMON_OPTIONS, IMPORT_OPTIONS, importBasesFromArgs, type CliSpec, type CliOption } from './cli.js';
import { writeFileAtomic } from '../lib/src/util/fs.js';
import { fixedSubset } from '../lib/src/data/subsets.js';
import { archLabel } from '../lib/src/nn/architectures.js';

const CLI = {
  command: 'npm run evaluate --',
  summary: 'Clean and PGD accuracy of a checkpoint on the test split. With --n below the split size, the\n' +
    'class-balanced fixed subset of `subsetIndices` is attacked (the same images every time).',
  options: {
    checkpoint: { type: 'string', arg: '<file.rbn>', help: 'checkpoint to evaluate (this or --base is required)' },
    ...IMPORT_OPTIONS,
    dataset: { type: 'string', arg: '<cifar10|cifar100>', help: 'test split (default: from the checkpoint\'s class count)' },
    n: { type: 'string', arg: '<N>', help: 'images, 1..split size (default: the whole split)' },
    steps: { type: 'string', default: '10', arg: '<N>', help: 'PGD steps; 0 = clean accuracy only' },
    restarts: { type: 'string', default: '1', arg: '<N>', help: 'PGD restarts (worst case over them)' },
    eps: { type: 'string', default: '8', arg: '<x>', help: 'L∞ radius in 1/255 units' },
    alpha: { type: 'string', default: '2', arg: '<x>', help: 'PGD step size in 1/255 units' },
    batch: { type: 'string', default: '256', arg: '<N>', help: 'batch size' },
    backend: COMMON_OPTIONS.backend,
    out: { type: 'string', arg: '<file.json>', help: 'also write the result (with checkpoint SHA-256, engine, time) as JSON' },
  },
} as const satisfies CliSpec<Record<string, CliOption>>;

runMain(async () => {
  const { values } = parseCli(CLI);
  if (values.checkpoint && values.base.length) throw new Error('--checkpoint and --base both name a model; give one');
  if (values.base.length > 1) throw new Error(`--base: evaluate takes one model, got ${values.base.length}`);
  // A PyTorch checkpoint is imported (once, cached in data/imported/) and evaluated as its .rbn.
  const checkpointFile = values.checkpoint ?? importBasesFromArgs(values)[0]?.checkpoint;
  if (!checkpointFile) throw new Error('--checkpoint <file.rbn> or --base <model.pt> is required; see `npm run evaluate -- --help`');
  const datasetArg = values.dataset === undefined ? undefined : choiceArg('dataset', values.dataset, DATASET_NAMES);
  const attack = {
    steps: intArg('steps', values.steps, 0), restarts: intArg('restarts', values.restarts, 1),
    eps: numberArg('eps', values.eps, 0) / 255, alpha: numberArg('alpha', values.alpha, 0) / 255,
  };
  const batchSize = intArg('batch', values.batch, 1);
  const nArg = values.n === undefined ? undefined : intArg('n', values.n, 1);
  // The checkpoint header and the data are checked before the engine starts: bad input fails at once.
  const header = readCheckpoint(checkpointFile).header;
  const dataset: DatasetName = datasetArg ?? (header.config.numClasses === 100 ? 'cifar100' : 'cifar10');
  const data = loadCifar({ dataset, split: 'test' });
  if (data.numClasses !== header.config.numClasses) {
    throw new Error(`--dataset ${dataset} has ${data.numClasses} classes but the checkpoint's model has ${header.config.numClasses}`);
  }
  if (nArg !== undefined && nArg > data.n) throw new Error(`--n ${nArg} exceeds the ${data.n} test images of ${describeSplit(data)}`);
  const n = nArg ?? data.n;
  const indices = fixedSubset(data, n);
  const engine = await initEngine({ backend: backendArg(values.backend) });
  const { model, checkpoint } = loadModel(checkpointFile);
  console.log(`backend ${engine.backend} (${engine.threads} threads); ${checkpointFile}; ${describeSplit(data)}; ${indices ? `fixed balanced subset of ${n}` : `all ${data.n}`} evaluated`);
  const r = await evaluate(model, data, { indices, attack: attack.steps > 0 ? attack : null, batchSize, label: 'evaluate' });
  console.log(formatEvaluation(r));
  if (values.out) {
    const record = {
      checkpoint: checkpointFile, checkpointSha256: checkpointHash(checkpointFile), checkpointMetrics: checkpoint.header.metrics,
      model: `${archLabel(header.config)}, ${header.config.numClasses} classes`, imported: header.provenance.imported ?? null,
      dataset, split: 'test', data: describeSplit(data), n: r.n, subset: indices ? 'subsetIndices balanced' : 'all',
      attack: r.attack, clean: r.clean.accuracy, robust: r.robust?.accuracy ?? null,
      engine, seconds: r.seconds, date: new Date().toISOString(),
    };
    writeFileAtomic(values.out, JSON.stringify(record, null, 2));
    console.log(`wrote ${values.out}`);
  }
  model.dispose();
});
