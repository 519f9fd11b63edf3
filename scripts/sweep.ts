/** `npm run sweep -- [options]`: the notebooks' records as a sweep, here or on Slurm (`--help` lists the options). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initEngine } from '../lib/src/engine/engine.js';
import { resolveConfig, parseOverrides } from '../lib/src/experiments/config.js';
import { benchStages } from '../lib/src/experiments/stage-bench.js';
import {
  planSweep, writePlan, readPlan, sweepDir, sweepSpec, defaultSweepName, formatPlan, runSweepLocal, runSweepTask, submitSlurm, sweepStatus,
  stageTimesPath, activeJobs, checkSlurmOptions, DEFAULT_SLURM,
} from '../lib/src/experiments/sweep.js';
import { writeFileAtomic } from '../lib/src/util/fs.js';
import { formatSeconds } from '../lib/src/util/format.js';
import { runMain, parseCli, intArg, backendArg, choiceListArg, COMMON_OPTIONS, IMPORT_OPTIONS, importBasesFromArgs, type CliSpec, type CliOption } from './cli.js';

const DATASETS = ['cifar10', 'cifar100'] as const;

const CLI = {
  command: 'npm run sweep --',
  summary: 'Every record the notebooks read (lib/src/experiments/grid.ts), with its dependencies, state in the cache and\n' +
    'estimated cost. Without a mode: prints the plan. --local computes what is missing here, in order;\n' +
    '--slurm submits it as sbatch job arrays, one wave of independent records per array, each wave\n' +
    'afterok on the ones it reads. Workers share the cache (one lock per record; a killed task resumes\n' +
    'when rerun). Afterwards `npm start` only renders (add --render-only to make sure).',
  options: {
    profile: COMMON_OPTIONS.profile,
    dataset: { type: 'string', default: DATASETS.join(','), arg: '<cifar10,cifar100>', help: 'datasets of the grid (CIFAR-100: notebook 05)' },
    set: COMMON_OPTIONS.set,
    only: { type: 'string', multiple: true, default: [] as string[], arg: '<task-id|prefix>', help: 'restrict to these tasks and what they read (repeatable; e.g. cifar10/rift/rift-bn)' },
    name: { type: 'string', arg: '<name>', help: 'sweep folder name (default <profile>-<datasets>)' },
    cache: { type: 'string', arg: '<dir>', help: 'shared cache folder (default env RIFT_CACHE_DIR, else data/cache/experiments); sweeps/ is beside it' },
    local: { type: 'boolean', default: false, help: 'compute the missing records here, one after another' },
    slurm: { type: 'boolean', default: false, help: 'submit the missing records as Slurm job arrays (sbatch)' },
    'dry-run': { type: 'boolean', default: false, help: 'with --slurm: write the job scripts and print the sbatch commands, submit nothing' },
    status: { type: 'boolean', default: false, help: 'show done / running / queued / waiting / failed / killed per task, with errors' },
    measure: { type: 'boolean', default: false, help: 'time each pipeline stage here (bench:stages, 256 images) so the plan can estimate every task' },
    cpus: { type: 'string', default: String(DEFAULT_SLURM.cpus), arg: '<N>', help: 'Slurm --cpus-per-task (and the engine threads)' },
    mem: { type: 'string', default: DEFAULT_SLURM.mem, arg: '<size>', help: 'Slurm --mem' },
    gpu: { type: 'boolean', default: false, help: 'Slurm --gres=gpu:1 (tfjs-node-gpu on the nodes)' },
    partition: { type: 'string', arg: '<p>', help: 'Slurm --partition' },
    account: { type: 'string', arg: '<a>', help: 'Slurm --account' },
    time: { type: 'string', arg: '<t>', help: 'Slurm --time per task (e.g. 4:00:00)' },
    sbatch: { type: 'string', multiple: true, default: [] as string[], arg: '<--opt=v>', help: 'another sbatch option, verbatim (repeatable)' },
    setup: { type: 'string', multiple: true, default: [] as string[], arg: '<shell line>', help: 'a line each array task runs before the record, e.g. \'module load cuda/11.2\' (repeatable)' },
    node: { type: 'string', arg: '<cmd>', help: 'node on the compute nodes (default: this node\'s path; e.g. node to take it from PATH after --setup)' },
    ...IMPORT_OPTIONS,
    backend: COMMON_OPTIONS.backend,
    'run-task': { type: 'string', arg: '<sweep dir>', help: '(what a Slurm array task runs) run task --task of that sweep here' },
    task: { type: 'string', arg: '<task-id>', help: 'with --run-task' },
  },
} as const satisfies CliSpec<Record<string, CliOption>>;

runMain(async () => {
  const { values } = parseCli(CLI);
  if (values.backend) process.env.RIFT_BACKEND = backendArg(values.backend);

  if (values['run-task']) {
    const dir = path.resolve(values['run-task']);
    const id = values.task;
    if (!id) throw new Error('--run-task needs --task <id>');
    const plan = readPlan(dir);
    for (const [k, v] of Object.entries(plan.env)) process.env[k] ??= v;
    await initEngine();
    console.log(`sweep ${plan.name}: task ${id}`);
    const s = await runSweepTask(dir, id);
    console.log(`sweep ${plan.name}: task ${id} done in ${formatSeconds(s.seconds ?? 0)}`);
    return;
  }

  const modes = ['local', 'slurm', 'status'].filter((m) => values[m as 'local' | 'slurm' | 'status']);
  if (modes.length > 1) throw new Error(`--${modes.join(' and --')}: give one mode`);
  if (values['dry-run'] && !values.slurm) throw new Error('--dry-run goes with --slurm');
  const datasets = choiceListArg('dataset', values.dataset, DATASETS);
  resolveConfig(values.profile, datasets[0], parseOverrides(values.set)); // checks profile and --set before anything runs
  const slurm = {
    cpus: intArg('cpus', values.cpus, 1), mem: values.mem, gpu: values.gpu, partition: values.partition, account: values.account, time: values.time, extra: values.sbatch,
    setup: values.setup, node: values.node,
  };
  if (!values.slurm) {
    const given: string[] = [...(['gpu', 'partition', 'account', 'time', 'node'] as const).filter((k) => values[k]), ...(['sbatch', 'setup'] as const).filter((k) => values[k].length)];
    if (given.length) throw new Error(`--${given.join(', --')} ${given.length > 1 ? 'go' : 'goes'} with --slurm`);
  }
  checkSlurmOptions(slurm);
  if (values.slurm && values.gpu) {
    let gpuBackend = true;
    try { require.resolve('@tensorflow/tfjs-node-gpu'); } catch { gpuBackend = false; }
    if (!gpuBackend) console.log('note: --gpu asks Slurm for a GPU per task, but @tensorflow/tfjs-node-gpu is not installed in this repository, so the tasks would run on the CPU backend (environment.md: tfjs-node-gpu on a CUDA machine)');
  }
  importBasesFromArgs(values);
  const spec = sweepSpec({ profile: values.profile, datasets, set: values.set, only: values.only, cacheDir: values.cache });
  const name = values.name ?? defaultSweepName(spec);

  if (values.status) {
    const dir = sweepDir(spec.cacheDir, name);
    if (!fs.existsSync(path.join(dir, 'plan.json'))) throw new Error(`no sweep '${name}' in ${path.dirname(dir)} (start one with npm run sweep -- --local or --slurm, same --profile/--dataset/--only/--name)`);
    const rows = await sweepStatus(dir);
    const w = Math.max(...rows.map((r) => r.id.length));
    for (const r of rows) console.log(`${r.state.padEnd(8)} ${r.id.padEnd(w)}  ${r.seconds !== null && r.state === 'done' ? `${formatSeconds(r.seconds).padStart(9)}  ` : ''}${r.detail}`);
    const count = (s: string) => rows.filter((r) => r.state === s).length;
    console.log(['done', 'running', 'queued', 'ready', 'waiting', 'failed', 'killed'].map((s) => `${count(s)} ${s}`).join(', '));
    return;
  }

  if (values.measure) {
    await initEngine();
    for (const dataset of datasets) {
      const config = resolveConfig(values.profile, dataset, parseOverrides(values.set));
      console.log(`measuring the stages of profile ${config.profile} on ${dataset} (256 images each)…`);
      const stages = await benchStages(config, { images: 256 });
      writeFileAtomic(stageTimesPath(spec.cacheDir, config.profile, dataset), `${JSON.stringify({ profile: config.profile, dataset, measuredAt: new Date().toISOString(), stages }, null, 1)}\n`);
      for (const s of stages) console.log(`  ${s.stage}: ${s.imagesPerSecond.toFixed(0)} img/s → ${formatSeconds(s.projectedSeconds)} for ${s.unit}`);
    }
  }

  const plan = await planSweep(spec, name);
  const dir = writePlan(plan);
  for (const l of formatPlan(plan)) console.log(l);
  if (values.set.length) {
    console.log(`note: with --set the records differ from the profile's, and the notebooks (npm start) read the profile's; read these with npm run experiment -- … --set ${values.set.join(' --set ')}`);
  }
  console.log(`plan: ${path.join(dir, 'plan.json')}`);
  if (values.local) {
    await initEngine();
    const r = await runSweepLocal(dir);
    console.log(`sweep ${name}: ${r.done.length} done, ${r.failed.length} failed, ${r.skipped.length} skipped in ${formatSeconds(r.seconds)}`);
    if (r.failed.length) throw new Error(`${r.failed.length} task(s) failed: ${r.failed.map((f) => `${f.id} (${f.error})`).join('; ')}`);
  } else if (values.slurm) {
    if (!plan.tasks.some((t) => t.state !== 'done')) {
      console.log('nothing to submit: every record is in the cache');
      return;
    }
    const active = values['dry-run'] ? [] : activeJobs(dir);
    if (active.length) {
      throw new Error(`sweep ${name} still has ${active.length} array task(s) in the Slurm queue (${active.slice(0, 5).join(', ')}${active.length > 5 ? ', …' : ''}): ` +
        'wait for them (npm run sweep -- --status) or scancel them before submitting again');
    }
    const submitted = submitSlurm(plan, dir, { ...slurm, submit: !values['dry-run'], log: (l) => console.log(l) });
    const subs = submitted.length ? path.dirname(submitted[0].file) : path.join(dir, 'slurm');
    const again = [`--profile ${plan.profile}`, `--dataset ${datasets.join(',')}`, ...(values.name ? [`--name ${name}`] : []), ...values.only.map((o) => `--only ${o}`),
      ...values.set.map((x) => `--set ${x}`), ...(values.cache ? [`--cache ${spec.cacheDir}`] : [])].join(' ');
    console.log(values['dry-run'] ? `scripts in ${subs}` : `follow it with: npm run sweep -- --status ${again}`);
  }
});
