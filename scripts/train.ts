/**
 * `npm run train -- [--dataset cifar10|cifar100] [--profile smoke|quick|paper] [--out <dir>]
 *    [--set advTrain.epochs=3 ...] [--max-epochs N] [--backend <name>]`
 * PGD adversarial training of the base model. Rerunning the same command resumes from the
 * last completed epoch. Default --out: data/runs/<dataset>-<profile>-at.
 */
import { execSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { initEngine, type BackendName } from '../lib/src/engine.js';
import { repoRoot } from '../lib/src/data.js';
import { resolveConfig, parseOverrides } from '../lib/src/config.js';
import { trainAdversarial, baseRunDir } from '../lib/src/adversarial-training.js';
import { runMain } from './cli.js';

function gitCommit(): string | undefined {
  try { return execSync('git rev-parse HEAD', { cwd: repoRoot(), stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim(); } catch { return undefined; }
}

runMain(async () => {
  const { values } = parseArgs({
    options: {
      dataset: { type: 'string', default: 'cifar10' },
      profile: { type: 'string', default: process.env.RIFT_PROFILE ?? 'quick' },
      out: { type: 'string' },
      set: { type: 'string', multiple: true, default: [] },
      'max-epochs': { type: 'string' },
      backend: { type: 'string' },
    },
  });
  const config = resolveConfig(values.profile!, values.dataset as 'cifar10' | 'cifar100', parseOverrides(values.set!));
  const engine = await initEngine({ backend: values.backend as BackendName | undefined });
  const outDir = values.out ?? baseRunDir(config);
  const maxEpochs = values['max-epochs'] === undefined ? undefined : Number(values['max-epochs']);
  if (maxEpochs !== undefined && !(Number.isInteger(maxEpochs) && maxEpochs >= 1)) throw new Error(`--max-epochs must be a positive integer, got '${values['max-epochs']}'`);
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
