/** `npm run experiment -- <base|mrc|rift|table1|layer-type> [options]`: one experiment, cached (`--help` lists the options). */
import * as fs from 'node:fs';
import { initEngine } from '../lib/src/engine/engine.js';
import { resolveConfig, parseOverrides } from '../lib/src/experiments/config.js';
import { runBaseEvaluation, runMRCExperiment, runRift, runLayerType, baseModelIdentity } from '../lib/src/experiments/experiments.js';
import { baseCheckpointPath } from '../lib/src/experiments/adversarial-training.js';
import type { LayerTypeMode } from '../lib/src/method/finetune.js';
import { formatDelta } from '../lib/src/util/stats.js';
import { runMain, backendArg, parseCli, intArg, choiceArg, choiceListArg, COMMON_OPTIONS, IMPORT_OPTIONS, importBasesFromArgs, type CliSpec, type CliOption } from './cli.js';
import { architectureLabel, finalScore, type Method } from '../lib/src/experiments/records.js';

const WHAT = ['base', 'mrc', 'rift', 'table1', 'layer-type'] as const;
const MODES: readonly LayerTypeMode[] = ['bn-only', 'conv-linear-only', 'full'];
const METHODS: readonly Method[] = ['rift', 'rift-bn'];

const CLI = {
  command: 'npm run experiment --',
  positionals: `<${WHAT.join('|')}>`,
  summary: 'Runs one experiment on a base checkpoint and prints its result. Records are cached under\n' +
    'data/cache/experiments (keyed by the config, the checkpoint hash and the seed): a rerun reuses finished\n' +
    'records and resumes unfinished ones. base: clean / PGD accuracy; mrc: MRC of every module;\n' +
    'rift (alias table1): top-k fine-tuning + interpolation per k and method; layer-type: BN-only /\n' +
    'Conv/Linear-only / Full fine-tuning curves (Figures 1/2).',
  options: {
    profile: COMMON_OPTIONS.profile,
    dataset: COMMON_OPTIONS.dataset,
    checkpoint: { type: 'string', arg: '<base.rbn>', help: 'base model (default: the --base import, else data/runs/<dataset>-<profile>-at/best.rbn from `npm run train`)' },
    ...IMPORT_OPTIONS,
    method: { type: 'string', arg: '<rift|rift-bn>', help: 'rift: only the method (default: both)' },
    k: { type: 'string', arg: '<1,2,...>', help: 'rift: the k values (default: the profile\'s topK)' },
    mode: { type: 'string', default: MODES.join(','), arg: '<modes>', help: 'layer-type: which curves' },
    seed: { type: 'string', arg: '<N>', help: 'fine-tuning seed (default: the profile\'s first finetune.seeds)' },
    set: COMMON_OPTIONS.set,
    backend: COMMON_OPTIONS.backend,
  },
} as const satisfies CliSpec<Record<string, CliOption>>;

runMain(async () => {
  const { values, positionals } = parseCli(CLI);
  const what = positionals[0] as (typeof WHAT)[number];
  if (positionals.length !== 1 || !WHAT.includes(what)) {
    throw new Error(`expected one experiment, one of ${WHAT.join(', ')}; got ${positionals.length ? `'${positionals.join(' ')}'` : 'none'}; see \`${CLI.command} --help\``);
  }
  const config = resolveConfig(values.profile, values.dataset as 'cifar10' | 'cifar100', parseOverrides(values.set));
  // Every argument is checked before the engine starts and any experiment runs.
  const seed = values.seed === undefined ? undefined : intArg('seed', values.seed, 0);
  const ks = values.k ? values.k.split(',').map((k) => intArg('k', k, 1)) : config.topK;
  const methods = values.method ? [choiceArg('method', values.method, METHODS)] : [...METHODS];
  const modes = choiceListArg('mode', values.mode, MODES);
  if (values.checkpoint && values.base.length) throw new Error('--checkpoint and --base both name a base model; give one');
  const imported = importBasesFromArgs(values);
  if (imported.length && !imported.some((b) => b.dataset === config.dataset)) {
    throw new Error(`--base ${values.base.join(', ')}: no ${config.dataset} model among them (${imported.map((b) => `${b.dataset}`).join(', ')}); pass --dataset ${imported[0].dataset}`);
  }
  const checkpoint = values.checkpoint ?? baseCheckpointPath(config);
  if (!fs.existsSync(checkpoint)) {
    throw new Error(values.checkpoint
      ? `--checkpoint ${checkpoint}: no such file`
      : `base checkpoint ${checkpoint} not found: train it with \`npm run train -- --dataset ${config.dataset} --profile ${config.profile}\`, pass --checkpoint, or bring one with --base`);
  }
  const model = baseModelIdentity({ config, checkpoint });
  const engine = await initEngine({ backend: backendArg(values.backend) });
  console.log(`${what} on ${config.dataset}, profile ${config.profile}, base ${checkpoint} (${architectureLabel(model)}), backend ${engine.backend} (${engine.threads} threads)`);
  const inp = { config, checkpoint };
  switch (what) {
    case 'base': {
      const r = await runBaseEvaluation(inp);
      console.log(`base: clean ${r.clean.toFixed(2)}% (${r.cleanN} images) robust ${r.robust.toFixed(2)}% (${r.n} images)`);
      break;
    }
    case 'mrc': {
      const r = await runMRCExperiment(inp);
      for (const e of r.ranking) console.log(`${e.module.padEnd(22)} ${e.kind.padEnd(6)} MRC ${e.mrc.toFixed(4)}  acc ${e.accuracyDrop.toFixed(2)} pt`);
      break;
    }
    case 'rift':
    case 'table1': {
      for (const k of ks) {
        for (const m of methods) {
          const r = await runRift(inp, m, k, seed);
          const f = finalScore(r);
          console.log(`k=${k} ${m.padEnd(7)} clean ${f.clean.toFixed(2)} ${formatDelta(f.vsBase.clean)} | robust ${f.robust.toFixed(2)} ${formatDelta(f.vsBase.robust)}`);
        }
      }
      break;
    }
    case 'layer-type': {
      for (const mode of modes) {
        const r = await runLayerType(inp, mode, seed);
        console.log(`${mode}: ${r.history.map((h) => `e${h.epoch} ${h.clean.toFixed(1)}/${h.robust.toFixed(1)}`).join('  ')}`);
      }
      break;
    }
  }
});
