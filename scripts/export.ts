/** `npm run export -- <model.rbn> --out <file> [--format safetensors|torch]`: a `.rbn` back to PyTorch (`--help`). */
import { loadModel } from '../lib/src/nn/checkpoint.js';
import { exportPyTorch, normalizationAdvice, type ExportFormat } from '../lib/src/nn/pytorch.js';
import { archLabel } from '../lib/src/nn/architectures.js';
import { initEngine } from '../lib/src/engine/engine.js';
import { runMain, parseCli, choiceArg, type CliSpec, type CliOption } from './cli.js';

const FORMATS: readonly ExportFormat[] = ['safetensors', 'torch'];

const CLI = {
  command: 'npm run export --',
  positionals: '<model.rbn>',
  summary: 'Writes a .rbn model (a base or a fine-tuned RiFT / RiFT-with-BN model) as a PyTorch state_dict with\n' +
    'PyTorch key names and layouts (OIHW conv weights, [out,in] linear weights, num_batches_tracked buffers):\n' +
    'safetensors, or a torch.save file that torch.load(f, weights_only=True) reads. The matching PyTorch model\n' +
    'loads it with strict=True (tests/reference/torch_checkpoints.py has the definitions).',
  options: {
    out: { type: 'string', arg: '<file>', help: 'output file (required)' },
    format: { type: 'string', arg: '<safetensors|torch>', help: 'default: from --out (.safetensors → safetensors, else torch)' },
  },
} as const satisfies CliSpec<Record<string, CliOption>>;

runMain(async () => {
  const { values, positionals } = parseCli(CLI);
  if (positionals.length !== 1) throw new Error(`expected one .rbn file, got ${positionals.length}; see \`${CLI.command} --help\``);
  if (!values.out) throw new Error('--out <file> is required');
  const format = values.format ? choiceArg('format', values.format, FORMATS) : values.out.endsWith('.safetensors') ? 'safetensors' : 'torch';
  await initEngine({ backend: 'cpu' });
  const { model } = loadModel(positionals[0]);
  try {
    exportPyTorch(model, values.out, format);
    console.log(`wrote ${values.out} (${format}): ${archLabel(model.config)}, ${model.config.numClasses} classes; ${normalizationAdvice(model.config)}`);
  } finally {
    model.dispose();
  }
});
