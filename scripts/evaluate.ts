/** `npm run evaluate -- --checkpoint <file> [options]`: clean and PGD (or AutoAttack) accuracy of a checkpoint (`--help` lists the options). */
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { initEngine } from '../lib/src/engine/engine.js';
import { loadCifar, describeSplit, DATASET_NAMES, type DatasetName } from '../lib/src/data/cifar.js';
import { loadModel, readCheckpoint, checkpointHash } from '../lib/src/nn/checkpoint.js';
import { evaluate, formatEvaluation } from '../lib/src/method/evaluate.js';
import { evaluateAutoAttack, formatAutoAttack } from '../lib/src/method/autoattack.js';
import { resolveAutoAttack, autoAttackLabel, AUTOATTACK_NAMES, type AutoAttackName } from '../lib/src/attacks/autoattack.js';
import { dataDir } from '../lib/src/util/paths.js';
import { encodeBits } from '../lib/src/experiments/records.js';
import { runMain, backendArg, parseCli, intArg, numberArg, choiceArg, COMMON_OPTIONS, IMPORT_OPTIONS, importBasesFromArgs, type CliSpec, type CliOption } from './cli.js';
import { writeFileAtomic } from '../lib/src/util/fs.js';
import { fixedSubset } from '../lib/src/data/subsets.js';
import { archLabel } from '../lib/src/nn/architectures.js';

const CLI = {
  command: 'npm run evaluate --',
  summary: 'Clean and PGD accuracy of a checkpoint on the test split, or with --attack autoattack the\n' +
    'AutoAttack suite (standard: APGD-CE, APGD-T, FAB-T, Square; or --aa-version custom with the\n' +
    '--aa-* options). With --n below the split size, the class-balanced fixed subset of\n' +
    '`subsetIndices` is attacked (the same images every time). An AutoAttack run saves its flags\n' +
    'after every batch and resumes when started again with the same options.',
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
    attack: { type: 'string', default: 'pgd', arg: '<pgd|autoattack>', help: 'robust accuracy under PGD (--steps, --restarts, --alpha) or AutoAttack' },
    'aa-version': { type: 'string', default: 'standard', arg: '<standard|custom>', help: "AutoAttack version; 'custom' takes the --aa-* settings below" },
    'aa-attacks': { type: 'string', default: 'apgd-ce,apgd-t,fab-t,square', arg: '<list>', help: `custom: attacks in order, from ${AUTOATTACK_NAMES.join(', ')}` },
    'aa-steps': { type: 'string', default: '100', arg: '<N>', help: 'custom: APGD and FAB iterations' },
    'aa-targets': { type: 'string', default: '9', arg: '<N>', help: 'custom: target classes of APGD-T and FAB-T' },
    'aa-queries': { type: 'string', default: '5000', arg: '<N>', help: 'custom: Square query budget' },
    seed: { type: 'string', default: '0', arg: '<N>', help: 'attack seed' },
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
  const seed = intArg('seed', values.seed, 0);
  const kind = choiceArg('attack', values.attack, ['pgd', 'autoattack'] as const);
  const aaOptions = kind !== 'autoattack' ? null : resolveAutoAttack({
    eps: attack.eps, seed, version: choiceArg('aa-version', values['aa-version'], ['standard', 'custom'] as const),
    attacks: values['aa-attacks'].split(',').map((a) => a.trim()).filter(Boolean) as AutoAttackName[],
    steps: intArg('aa-steps', values['aa-steps'], 1), targets: intArg('aa-targets', values['aa-targets'], 1), queries: intArg('aa-queries', values['aa-queries'], 0),
  });
  const engine = await initEngine({ backend: backendArg(values.backend) });
  const { model, checkpoint } = loadModel(checkpointFile);
  console.log(`backend ${engine.backend} (${engine.threads} threads); ${checkpointFile}; ${describeSplit(data)}; ${indices ? `fixed balanced subset of ${n}` : `all ${data.n}`} evaluated`);
  // What every result file says about the model and the data, whichever attack ran.
  const sha = checkpointHash(checkpointFile);
  const provenance = {
    checkpoint: checkpointFile, checkpointSha256: sha, checkpointMetrics: checkpoint.header.metrics,
    model: `${archLabel(header.config)}, ${header.config.numClasses} classes`, imported: header.provenance.imported ?? null,
    dataset, split: 'test', data: describeSplit(data), subset: indices ? 'subsetIndices balanced' : 'all', engine,
  };
  let result: Record<string, unknown>;
  if (aaOptions) {
    const aa = aaOptions;
    const optionsHash = crypto.createHash('sha256').update(JSON.stringify({ aa, dataset, n, batchSize })).digest('hex').slice(0, 12);
    const statePath = path.join(dataDir(), 'cache', 'evaluate-autoattack', `${sha.slice(0, 16)}-${optionsHash}.state.json`);
    console.log(`${autoAttackLabel(aa)}, eps ${(aa.eps * 255).toFixed(2)}/255, seed ${seed}; resume file ${path.relative(process.cwd(), statePath)}`);
    const r = await evaluateAutoAttack(model, data, { indices, attack: aa, batchSize, statePath, stateKey: sha, label: 'autoattack' });
    console.log(formatAutoAttack(r, autoAttackLabel(aa)));
    result = {
      n: r.n, attack: { name: autoAttackLabel(aa), ...aa }, clean: r.clean.accuracy, robust: r.robust.accuracy, resumed: r.resumed,
      // Per-example flags in the order of the evaluated indices, for pairing with other runs.
      indices: indices ? Array.from(indices) : null, cleanBits: encodeBits(r.clean.perExample), robustBits: encodeBits(r.robust.perExample),
      stages: r.stages.map((st) => ({ attack: st.attack, attacked: st.attacked, fooled: st.fooled, robustAfter: st.robustAfter, seconds: st.seconds })),
      seconds: r.seconds,
    };
  } else {
    const r = await evaluate(model, data, { indices, attack: attack.steps > 0 ? { ...attack, seed } : null, batchSize, label: 'evaluate' });
    console.log(formatEvaluation(r));
    result = { n: r.n, attack: r.attack, clean: r.clean.accuracy, robust: r.robust?.accuracy ?? null, seconds: r.seconds };
  }
  if (values.out) {
    writeFileAtomic(values.out, JSON.stringify({ ...provenance, ...result, date: new Date().toISOString() }, null, 2));
    console.log(`wrote ${values.out}`);
  }
  model.dispose();
});
