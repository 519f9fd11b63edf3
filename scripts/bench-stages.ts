/** `npm run bench:stages -- [options]`: per-stage timing projected to a profile (`--help` lists the options). */
import { initEngine, BACKEND_ORDER, type EngineInfo } from '../lib/src/engine/engine.js';
import { resolveConfig, parseOverrides, type ExperimentConfig } from '../lib/src/experiments/config.js';
import { benchStages, STAGE_NAMES, type StageTiming, type StageName } from '../lib/src/experiments/stage-bench.js';
import { runMain, parseCli, choiceListArg, COMMON_OPTIONS, type CliSpec, type CliOption } from './cli.js';
import { writeFileAtomic } from '../lib/src/util/fs.js';

/**
 * Compute of the notebooks from stage times (seconds), following what each one runs:
 * 02 base evaluation; 03 the fixed adversarial set + MRC of every module; 04 three layer-type
 * curves (clean + PGD every epoch, epoch 0 included); 06 + 08(a) 2·|topK| + 2 top-k runs (per
 * epoch a single-BN-module epoch and a clean evaluation, PGD for the kept epoch, clean + PGD at
 * each interior α); 08(c) PGD with 1 and 3 restarts for three models. Not counted: 07's KDE
 * and process start-up (seconds each).
 */
function projectNotebooks(c: ExperimentConfig, s: Record<StageName, number>): Array<{ part: string; seconds: number }> {
  const E = c.finetune.epochs;
  const interior = c.interpolation.enabled ? c.interpolation.alphas.filter((a) => a > 0 && a < 1).length : 0;
  const evalBoth = s['eval-pgd'] + s['eval-clean'];
  const topkRun = E * (s['finetune-epoch-bn'] + s['eval-clean']) + s['eval-pgd'] + interior * evalBoth;
  return [
    { part: '02 base evaluation', seconds: evalBoth },
    { part: '03 MRC (adversarial set + every module)', seconds: s['eval-pgd'] * ((c.mrc.advN ?? 10_000) / (c.eval.n ?? 10_000)) + s['mrc-module'] },
    { part: '04 Figure 1 (3 layer-type curves)', seconds: 3 * ((E + 1) * evalBoth + E * s['finetune-epoch-full']) },
    { part: `06 Table 1 + 08 BN policy (${2 * c.topK.length + 2} top-k runs)`, seconds: (2 * c.topK.length + 2) * topkRun },
    { part: '08 worst-of-3 vs single PGD (3 models)', seconds: 3 * 4 * s['eval-pgd'] },
  ];
}

const fmt = (s: number) => (s < 120 ? `${s.toFixed(1)} s` : s < 7200 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`);

const CLI = {
  command: 'npm run bench:stages --',
  summary: 'Per-stage timing of a reproduction on each backend (lib/src/experiments/stage-bench.ts): PGD-AT epoch, PGD-10 and\n' +
    'clean evaluation, MRC, fine-tuning epoch, timed on a sample with the library\'s own functions and\n' +
    'projected to the profile\'s sizes, plus the projected compute of notebooks 02–08 from those stages.',
  options: {
    profile: COMMON_OPTIONS.profile,
    dataset: COMMON_OPTIONS.dataset,
    backends: { type: 'string', arg: '<b,...>', help: `backends, of ${BACKEND_ORDER.join(', ')} (default: all available but cpu)` },
    images: { type: 'string', default: '1024', arg: '<N|b=N,...>', help: 'sample size, optionally per backend (e.g. onednn=1024,wasm=256)' },
    stages: { type: 'string', arg: '<s,...>', help: `stages, of ${STAGE_NAMES.join(', ')} (default: all)` },
    set: COMMON_OPTIONS.set,
    out: { type: 'string', arg: '<P>', help: 'write P.json and P.md' },
  },
} as const satisfies CliSpec<Record<string, CliOption>>;

runMain(async () => {
  const { values } = parseCli(CLI);
  const config = resolveConfig(values.profile, values.dataset as 'cifar10' | 'cifar100', parseOverrides(values.set));
  const requested = values.backends === undefined ? undefined : choiceListArg('backends', values.backends, BACKEND_ORDER);
  const imagesFor = (b: string): number => {
    const parts = values.images.split(',');
    const named = parts.find((p) => p.startsWith(`${b}=`));
    const v = Number(named ? named.slice(b.length + 1) : parts.find((p) => !p.includes('=')) ?? 1024);
    if (!Number.isInteger(v) || v < 2) throw new Error(`--images must be an integer ≥ 2 (or backend=N,...), got '${values.images}'`);
    return v;
  };
  const stages = values.stages ? choiceListArg('stages', values.stages, STAGE_NAMES) : [...STAGE_NAMES];
  for (const b of requested ?? BACKEND_ORDER) imagesFor(b); // a bad --images fails before any timing

  const results: Array<{ engine: EngineInfo; images: number; stages: StageTiming[]; notebooks: Array<{ part: string; seconds: number }> | null }> = [];
  for (const backend of requested ?? BACKEND_ORDER.filter((b) => b !== 'cpu')) {
    let engine: EngineInfo;
    try {
      engine = await initEngine({ backend });
    } catch (e) {
      if (requested) throw e;
      continue;
    }
    const images = imagesFor(engine.backend);
    console.log(`backend ${engine.backend} (${engine.threads} threads): ${images}-image samples, profile ${config.profile}`);
    const t = await benchStages(config, { images, stages });
    for (const r of t) console.log(`  ${r.stage.padEnd(20)} ${r.imagesPerSecond.toFixed(1).padStart(8)} img/s  → ${fmt(r.projectedSeconds)} for ${r.unit}`);
    const by = Object.fromEntries(t.map((r) => [r.stage, r.projectedSeconds])) as Record<StageName, number>;
    const notebooks = stages.length === STAGE_NAMES.length ? projectNotebooks(config, by) : null;
    if (notebooks) console.log(`  notebooks 02–08 compute ≈ ${fmt(notebooks.reduce((a, p) => a + p.seconds, 0))}`);
    results.push({ engine, images, stages: t, notebooks });
  }

  const date = new Date().toISOString();
  const md = [
    `# Per-stage timing, profile ${config.profile} (${date})`, '',
    `Each stage timed once on a sample (after a one-batch warm-up) and projected linearly to the profile's size.`, '',
    `| backend | threads | stage | sample images | sample s | img/s | projected | for |`,
    `|---|---|---|---|---|---|---|---|`,
    ...results.flatMap((r) => r.stages.map((s) => `| ${r.engine.backend} | ${r.engine.threads} | ${s.stage} | ${s.sampleImages} | ${s.sampleSeconds.toFixed(1)} | ${s.imagesPerSecond.toFixed(1)} | ${fmt(s.projectedSeconds)} | ${s.unit} |`)),
  ];
  const withNb = results.filter((r) => r.notebooks);
  if (withNb.length) {
    md.push('', `Projected notebook compute (see projectNotebooks in scripts/bench-stages.ts):`, '', `| part | ${withNb.map((r) => r.engine.backend).join(' | ')} |`, `|---|${withNb.map(() => '---').join('|')}|`);
    for (const [i, p] of withNb[0].notebooks!.entries()) md.push(`| ${p.part} | ${withNb.map((r) => fmt(r.notebooks![i].seconds)).join(' | ')} |`);
    md.push(`| **total** | ${withNb.map((r) => `**${fmt(r.notebooks!.reduce((a, p) => a + p.seconds, 0))}**`).join(' | ')} |`);
  }
  console.log('\n' + md.join('\n'));
  if (values.out) {
    writeFileAtomic(`${values.out}.json`, JSON.stringify({ date, config, results }, null, 2));
    writeFileAtomic(`${values.out}.md`, md.join('\n') + '\n');
    console.log(`wrote ${values.out}.json and ${values.out}.md`);
  }
});
