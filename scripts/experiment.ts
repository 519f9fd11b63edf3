/**
 * `npm run experiment -- <base|mrc|rift|table1|layer-type> [--profile quick] [--dataset cifar10]
 *    [--checkpoint <base.rbn>] [--method rift|rift-bn] [--k 1,2,3] [--mode bn-only,conv-linear-only,full]
 *    [--seed N] [--set finetune.epochs=3 ...] [--backend <name>]`
 * Runs one experiment (cached under data/cache/experiments; reruns reuse finished records).
 * Default checkpoint: data/runs/<dataset>-<profile>-at/best.rbn (see `npm run train`).
 */
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { initEngine, type BackendName } from '../lib/src/engine.js';
import { resolveConfig, parseOverrides } from '../lib/src/config.js';
import { runBaseEvaluation, runMRCExperiment, runRift, runLayerType, type Method } from '../lib/src/experiments.js';
import { baseRunDir, runCheckpointPath } from '../lib/src/adversarial-training.js';
import type { LayerTypeMode } from '../lib/src/finetune.js';
import { formatDelta } from '../lib/src/stats.js';
import { runMain } from './cli.js';

const WHAT = ['base', 'mrc', 'rift', 'table1', 'layer-type'] as const;

runMain(async () => {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      profile: { type: 'string', default: process.env.RIFT_PROFILE ?? 'quick' },
      dataset: { type: 'string', default: 'cifar10' },
      checkpoint: { type: 'string' },
      method: { type: 'string' },
      k: { type: 'string' },
      mode: { type: 'string', default: 'bn-only,conv-linear-only,full' },
      seed: { type: 'string' },
      set: { type: 'string', multiple: true, default: [] },
      backend: { type: 'string' },
    },
  });
  const what = positionals[0] as (typeof WHAT)[number];
  if (!WHAT.includes(what)) throw new Error(`first argument must be one of ${WHAT.join(', ')}, got '${positionals[0] ?? ''}'`);
  const config = resolveConfig(values.profile!, values.dataset as 'cifar10' | 'cifar100', parseOverrides(values.set!));
  const checkpoint = values.checkpoint ?? runCheckpointPath(baseRunDir(config), 'best');
  if (!fs.existsSync(checkpoint)) {
    throw new Error(`base checkpoint ${checkpoint} not found: train it with \`npm run train -- --dataset ${config.dataset} --profile ${config.profile}\` or pass --checkpoint`);
  }
  const engine = await initEngine({ backend: values.backend as BackendName | undefined });
  console.log(`${what} on ${config.dataset}, profile ${config.profile}, base ${checkpoint}, backend ${engine.backend} (${engine.threads} threads)`);
  const inp = { config, checkpoint };
  const seed = values.seed === undefined ? undefined : Number(values.seed);
  const ks = values.k ? values.k.split(',').map(Number) : config.topK;
  if (ks.some((k) => !Number.isInteger(k) || k < 1)) throw new Error(`--k must be positive integers, got '${values.k}'`);
  const methods: Method[] = values.method ? [values.method as Method] : ['rift', 'rift-bn'];
  if (methods.some((m) => m !== 'rift' && m !== 'rift-bn')) throw new Error(`--method must be rift or rift-bn, got '${values.method}'`);
  switch (what) {
    case 'base': {
      const r = await runBaseEvaluation(inp);
      console.log(`base: clean ${r.clean.toFixed(2)}% robust ${r.robust.toFixed(2)}% (n=${r.n})`);
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
          const f = r.interpolated ?? r.raw;
          console.log(`k=${k} ${m.padEnd(7)} clean ${f.clean.toFixed(2)} ${formatDelta(f.vsBase.clean)} | robust ${f.robust.toFixed(2)} ${formatDelta(f.vsBase.robust)}`);
        }
      }
      break;
    }
    case 'layer-type': {
      for (const mode of values.mode!.split(',') as LayerTypeMode[]) {
        if (!['bn-only', 'conv-linear-only', 'full'].includes(mode)) throw new Error(`--mode must list bn-only, conv-linear-only, full; got '${mode}'`);
        const r = await runLayerType(inp, mode, seed);
        console.log(`${mode}: ${r.history.map((h) => `e${h.epoch} ${h.clean.toFixed(1)}/${h.robust.toFixed(1)}`).join('  ')}`);
      }
      break;
    }
  }
});
