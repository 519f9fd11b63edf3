/** `npm run standin -- [options]`: the stand-in main job from before the notebooks (`--help` lists the options). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initEngine } from '../lib/src/engine/engine.js';
import { loadCifar } from '../lib/src/data/cifar.js';
import { createResNet18 } from '../lib/src/nn/model.js';
import { loadModel, saveCheckpoint } from '../lib/src/nn/checkpoint.js';
import { SGD } from '../lib/src/nn/optim.js';
import { trainEpoch } from '../lib/src/method/train.js';
import { evaluate, formatEvaluation } from '../lib/src/method/evaluate.js';
import { runMain, backendArg, parseCli, COMMON_OPTIONS, type CliSpec, type CliOption } from './cli.js';
import { repoRoot } from '../lib/src/util/paths.js';
import { subsetIndices } from '../lib/src/data/subsets.js';

/** The stand-in model: a quarter-width ResNet-18, clean SGD on a 10k balanced subset. */
const STANDIN = { width: 0.25, trainN: 10_000, epochs: 3, lr: 0.05, batchSize: 128, seed: 0, evalN: 1000 };

const CLI = {
  command: 'npm run standin --',
  summary: 'The stand-in main job from before the notebooks (`npm start` now runs the notebooks): evaluates\n' +
    '--checkpoint on 1000 CIFAR-10 test images (clean and PGD-10); without one it trains a small stand-in\n' +
    'model (clean SGD, settings in scripts/main.ts, cached in data/cache/) and evaluates that.',
  options: {
    checkpoint: { type: 'string', arg: '<file.rbn>', help: 'model to evaluate (default: the stand-in model)' },
    backend: COMMON_OPTIONS.backend,
  },
} as const satisfies CliSpec<Record<string, CliOption>>;

runMain(async () => {
  const { values } = parseCli(CLI);
  if (values.checkpoint !== undefined && !fs.existsSync(values.checkpoint)) throw new Error(`--checkpoint ${values.checkpoint}: no such file`);
  const engine = await initEngine({ backend: backendArg(values.backend) });
  console.log(`engine: ${engine.backend} (${engine.threads} threads), tfjs-core ${engine.versions['tfjs-core']}`);
  const train = loadCifar({ dataset: 'cifar10', split: 'train' });
  const test = loadCifar({ dataset: 'cifar10', split: 'test' });
  console.log(`data: ${train.root} (train ${train.n}, test ${test.n})`);
  let file = values.checkpoint;
  if (!file) {
    file = path.join(repoRoot(), 'data', 'cache', `standin-cifar10-w${STANDIN.width}-e${STANDIN.epochs}-s${STANDIN.seed}-${engine.backend}.rbn`);
    if (!fs.existsSync(file)) {
      console.log(`training the stand-in model (${JSON.stringify(STANDIN)}) -> ${file}`);
      const model = createResNet18({ width: STANDIN.width }, STANDIN.seed);
      const opt = new SGD(model.trainableVariables(), { lr: STANDIN.lr });
      const indices = subsetIndices(train, { n: STANDIN.trainN });
      const t0 = Date.now();
      for (let e = 0; e < STANDIN.epochs; e++) {
        const r = await trainEpoch(model, opt, train, { indices, seed: STANDIN.seed + e, batchSize: STANDIN.batchSize, label: `epoch ${e + 1}/${STANDIN.epochs}` });
        console.log(`epoch ${e + 1}: loss ${r.loss.toFixed(4)}, train acc ${r.accuracy.toFixed(2)}%, ${r.seconds.toFixed(0)} s`);
      }
      saveCheckpoint(file, model, {
        provenance: { data: { dataset: 'cifar10', split: 'train', subset: `subsetIndices n=${STANDIN.trainN}` }, seed: STANDIN.seed, engine: { ...engine }, command: 'npm run standin', config: STANDIN },
        metrics: { trainSeconds: (Date.now() - t0) / 1000 },
      });
      opt.dispose();
      model.dispose();
    }
  }
  const { model } = loadModel(file);
  const indices = subsetIndices(test, { n: STANDIN.evalN });
  console.log(`evaluating ${file} on a fixed balanced subset of ${STANDIN.evalN} CIFAR-10 test images (PGD-10, eps 8/255, alpha 2/255)`);
  const r = await evaluate(model, test, { indices, label: 'evaluate' });
  console.log(formatEvaluation(r));
  model.dispose();
});
