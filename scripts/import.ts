/** `npm run import -- <model.pt> [options]`: a PyTorch checkpoint as a `.rbn` base model (`--help` lists the options). */
import * as fs from 'node:fs';
import { DATASET_NAMES } from '../lib/src/data/cifar.js';
import { importBase } from '../lib/src/experiments/imported.js';
import { normalizationAdvice } from '../lib/src/nn/pytorch.js';
import { readCheckpoint } from '../lib/src/nn/checkpoint.js';
import { runMain, parseCli, choiceArg, IMPORT_OPTIONS, importOptionsFrom, type CliSpec, type CliOption } from './cli.js';

const { base: _base, ...IMPORT } = IMPORT_OPTIONS;

const CLI = {
  command: 'npm run import --',
  positionals: '<model.pt|model.safetensors>',
  summary: 'Reads a PyTorch checkpoint (torch.save ZIP or legacy file, or safetensors) without Python: a safe pickle\n' +
    'reader (only the globals a state_dict needs), the architecture detected from the keys and shapes, loaded as\n' +
    'strictly as load_state_dict(strict=True). Writes data/imported/<name>-<sha>-<options>.rbn (or --out), which\n' +
    '`npm run evaluate -- --checkpoint` and `npm run experiment -- --checkpoint` take; `npm start -- --base <file>`\n' +
    'does this itself.',
  options: {
    ...IMPORT,
    dataset: { type: 'string', arg: '<cifar10|cifar100>', help: 'dataset the model is for (default: from its class count)' },
    out: { type: 'string', arg: '<file.rbn>', help: 'also copy the imported model here' },
  },
} as const satisfies CliSpec<Record<string, CliOption>>;

runMain(async () => {
  const { values, positionals } = parseCli(CLI);
  if (positionals.length !== 1) throw new Error(`expected one checkpoint file, got ${positionals.length}; see \`${CLI.command} --help\``);
  const dataset = values.dataset === undefined ? undefined : choiceArg('dataset', values.dataset, DATASET_NAMES);
  const b = importBase(positionals[0], { ...importOptionsFrom(values), ...(dataset ? { dataset } : {}) });
  const h = readCheckpoint(b.checkpoint).header;
  console.log(`${b.source.file}: ${b.source.format}, ${b.label}, ${h.config.numClasses} classes (${b.dataset}); ${normalizationAdvice(h.config)}`);
  for (const n of b.source.notes) console.log(`  note: ${n}`);
  console.log(`${b.reused ? 'already imported' : 'wrote'} ${b.checkpoint}`);
  if (values.out) {
    fs.copyFileSync(b.checkpoint, `${values.out}.tmp-${process.pid}`);
    fs.renameSync(`${values.out}.tmp-${process.pid}`, values.out);
    console.log(`wrote ${values.out}`);
  }
});
