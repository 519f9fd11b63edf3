/** `npm run train -- [options]`: PGD adversarial training of the base model (`--help` lists the options). */
import { execSync } from 'node:child_process';
import { initEngine } from '../lib/src/engine/engine.js';
import { resolveConfig, parseOverrides } from '../lib/src/experiments/config.js';
import { trainAdversarial } from '../lib/src/experiments/adversarial-training.js';
import { runMain, backendArg, parseCli, intArg, COMMON_OPTIONS, type CliSpec, type CliOption } from './cli.js';
import { repoRoot, baseRunDir } from '../lib/src/util/paths.js';

function gitCommit(): string | undefined {
  try { return execSync('git rev-parse HEAD', { cwd: repoRoot(), stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim(); } catch { return undefined; }
}

const CLI = {
  command: 'npm run train --',
  summary: 'PGD adversarial training of the base model (Madry: SGD, PGD with random start, CE on the adversarial\n' +
    'examples). Rerunning the same command resumes from the last completed epoch; per-epoch metrics go to\n' +
    '<out>/metrics.jsonl, checkpoints to <out>/best.rbn and <out>/last.rbn.',
  options: {
    dataset: COMMON_OPTIONS.dataset,
    profile: COMMON_OPTIONS.profile,
    out: { type: 'string', arg: '<dir>', help: 'run folder (default: data/runs/<dataset>-<profile>-at)' },
    set: COMMON_OPTIONS.set,
    'max-epochs': { type: 'string', arg: '<N>', help: 'stop after N more epochs this call (rerun to go on)' },
    backend: COMMON_OPTIONS.backend,
  },
} as const satisfies CliSpec<Record<string, CliOption>>;

runMain(async () => {
  const { values } = parseCli(CLI);
  const config = resolveConfig(values.profile, values.dataset as 'cifar10' | 'cifar100', parseOverrides(values.set));
  const maxEpochs = values['max-epochs'] === undefined ? undefined : intArg('max-epochs', values['max-epochs'], 1);
  const engine = await initEngine({ backend: backendArg(values.backend) });
  const outDir = values.out ?? baseRunDir(config);
  console.log(`PGD-AT ${config.dataset} profile ${config.profile} on ${engine.backend} (${engine.threads} threads) -> ${outDir}`);
  console.log(`config ${JSON.stringify(config.advTrain)}`);
  const r = await trainAdversarial(config, {
    outDir, maxEpochsThisCall: maxEpochs,
    provenance: { command: `npm run train -- ${process.argv.slice(2).join(' ')}`.trim(), commit: gitCommit() },
  });
  console.log(r.finished
    ? `done: ${r.epochsDone} epochs; best robust ${r.best?.robust.toFixed(2)}% (clean ${r.best?.clean.toFixed(2)}%) at epoch ${r.best?.epoch}; checkpoints in ${outDir}`
    : `stopped after epoch ${r.epochsDone}/${config.advTrain.epochs}; rerun the same command to resume`);
});
