/** `npm run bench:stages -- [options]`: per-stage timing projected to a profile (`--help` lists the options). */
import { initEngine, BACKEND_ORDER, type EngineInfo } from '../lib/src/engine/engine.js';
import { resolveConfig, parseOverrides } from '../lib/src/experiments/config.js';
import { benchStages, STAGE_NAMES, type StageTiming, type StageName } from '../lib/src/experiments/stage-bench.js';
import { runMain, parseCli, choiceListArg, COMMON_OPTIONS, type CliSpec, type CliOption } from './cli.js';
import { writeFileAtomic } from '../lib/src/util/fs.js';
import { experimentGrid, projectGrid, type NotebookProjection } from '../lib/src/experiments/grid.js';

const unestimated = (n: NotebookProjection[]) => { const u = n.reduce((a, p) => a + p.unestimated, 0); return u ? ` + ${u} record(s) the stages do not estimate (AutoAttack)` : ''; };
const fmt = (s: number) => (s < 120 ? `${s.toFixed(1)} s` : s < 7200 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`);

const CLI = {
  command: 'npm run bench:stages --',
  summary: 'Per-stage timing of a reproduction on each backend (lib/src/experiments/stage-bench.ts): PGD-AT epoch, PGD-10 and\n' +
    'clean evaluation, MRC, fine-tuning epoch, timed on a sample with the library\'s own functions and\n' +
    'projected to the profile\'s sizes, plus the projected compute of every record the notebooks read (the grid).',
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

  // The records the notebooks read on this dataset (experiments/grid.ts), each projected from the stage times.
  const grid = experimentGrid(values.profile, { datasets: [config.dataset], overrides: parseOverrides(values.set) });
  const results: Array<{ engine: EngineInfo; images: number; stages: StageTiming[]; notebooks: NotebookProjection[] | null }> = [];
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
    const notebooks = stages.length === STAGE_NAMES.length ? projectGrid(grid, by) : null;
    if (notebooks) console.log(`  the notebooks' records on ${config.dataset} ≈ ${fmt(notebooks.reduce((a, p) => a + p.seconds, 0))}${unestimated(notebooks)}`);
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
    md.push('', `Projected compute of the notebooks' records on ${config.dataset} (the grid's tasks, lib/src/experiments/grid.ts, each under the first notebook that reads it):`, '',
      `| notebook | records | ${withNb.map((r) => r.engine.backend).join(' | ')} |`, `|---|---|${withNb.map(() => '---').join('|')}|`);
    for (const [i, p] of withNb[0].notebooks!.entries()) md.push(`| ${p.part} | ${p.tasks}${p.unestimated ? ` (${p.unestimated} not estimated)` : ''} | ${withNb.map((r) => fmt(r.notebooks![i].seconds)).join(' | ')} |`);
    md.push(`| **total** | ${grid.length} | ${withNb.map((r) => `**${fmt(r.notebooks!.reduce((a, p) => a + p.seconds, 0))}**`).join(' | ')} |`);
  }
  console.log('\n' + md.join('\n'));
  if (values.out) {
    writeFileAtomic(`${values.out}.json`, JSON.stringify({ date, config, results }, null, 2));
    writeFileAtomic(`${values.out}.md`, md.join('\n') + '\n');
    console.log(`wrote ${values.out}.json and ${values.out}.md`);
  }
});
