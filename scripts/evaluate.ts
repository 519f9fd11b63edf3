/**
 * `npm run evaluate -- --checkpoint <file> [--dataset cifar10|cifar100] [--n 10000]
 *    [--steps 10] [--restarts 1] [--eps 8] [--alpha 2] [--batch 256] [--backend <name>] [--out <json>]`
 * Clean and PGD accuracy of a checkpoint on the test split (eps/alpha in 1/255 units). With
 * --n below the split size, the class-balanced fixed subset of `subsetIndices` is used.
 */
import { parseArgs } from 'node:util';
import { initEngine, type BackendName } from '../lib/src/engine.js';
import { loadCifar, subsetIndices, type DatasetName } from '../lib/src/data.js';
import { loadModel, checkpointHash, writeFileAtomic } from '../lib/src/checkpoint.js';
import { evaluate, formatEvaluation } from '../lib/src/evaluate.js';
import { runMain } from './cli.js';

runMain(async () => {
  const { values } = parseArgs({
    options: {
      checkpoint: { type: 'string' },
      dataset: { type: 'string' },
      n: { type: 'string' },
      steps: { type: 'string', default: '10' },
      restarts: { type: 'string', default: '1' },
      eps: { type: 'string', default: '8' },
      alpha: { type: 'string', default: '2' },
      batch: { type: 'string', default: '256' },
      backend: { type: 'string' },
      out: { type: 'string' },
    },
  });
  if (!values.checkpoint) throw new Error('--checkpoint <file> is required');
  const num = (k: keyof typeof values, v: string | undefined, int = true) => {
    const x = Number(v);
    if (!Number.isFinite(x) || x < 0 || (int && !Number.isInteger(x))) throw new Error(`--${k} must be a ${int ? 'non-negative integer' : 'non-negative number'}, got '${v}'`);
    return x;
  };
  const engine = await initEngine({ backend: values.backend as BackendName | undefined });
  const { model, checkpoint } = loadModel(values.checkpoint);
  const dataset = (values.dataset ?? (model.config.numClasses === 100 ? 'cifar100' : 'cifar10')) as DatasetName;
  const data = loadCifar({ dataset, split: 'test' });
  if (data.numClasses !== model.config.numClasses) {
    throw new Error(`--dataset ${dataset} has ${data.numClasses} classes but the checkpoint's model has ${model.config.numClasses}`);
  }
  const n = values.n === undefined ? data.n : num('n', values.n);
  const indices = n < data.n ? subsetIndices(data, { n }) : undefined;
  const attack = { steps: num('steps', values.steps), restarts: num('restarts', values.restarts), eps: num('eps', values.eps, false) / 255, alpha: num('alpha', values.alpha, false) / 255 };
  console.log(`backend ${engine.backend} (${engine.threads} threads); ${values.checkpoint}; ${dataset} test, ${indices ? `fixed balanced subset of ${n}` : `all ${data.n}`}`);
  const r = await evaluate(model, data, { indices, attack: attack.steps > 0 ? attack : null, batchSize: num('batch', values.batch), label: 'evaluate' });
  console.log(formatEvaluation(r));
  if (values.out) {
    const record = {
      checkpoint: values.checkpoint, checkpointSha256: checkpointHash(values.checkpoint), checkpointMetrics: checkpoint.header.metrics,
      dataset, split: 'test', n: r.n, subset: indices ? 'subsetIndices balanced' : 'all',
      attack: r.attack, clean: r.clean.accuracy, robust: r.robust?.accuracy ?? null,
      engine, seconds: r.seconds, date: new Date().toISOString(),
    };
    writeFileAtomic(values.out, JSON.stringify(record, null, 2));
    console.log(`wrote ${values.out}`);
  }
  model.dispose();
});
