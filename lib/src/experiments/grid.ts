/**
 * The experiment grid: every record the notebooks read, as tasks with dependencies, so that a
 * sweep (scripts/sweep.ts: in sequence here, or as Slurm job arrays) can compute them ahead of
 * the notebooks, which then only render. Each task calls the same run* function, with the same
 * config and arguments, as the notebook that shows it, so its record lands under the key the
 * notebook looks up (tests/sweep.test.ts runs the notebooks read-only after a sweep to hold
 * this list to the notebooks).
 *
 * A task's state is found by running it against a read-only cache (`probeTask`): the same code
 * path that computes it stops at the first missing record, which is either its own (ready to
 * run) or a dependency's (waiting).
 */
import * as fs from 'node:fs';
import type { DatasetName } from '../data/cifar.js';
import { resolveConfig, type ExperimentConfig, type DeepPartial } from './config.js';
import { ResultCache, MissingRecordError, hashKey } from './cache.js';
import { baseCheckpointPath, ensureBaseCheckpoint, baseRunFinished } from './adversarial-training.js';
import { importedBaseFromEnv } from './imported.js';
import {
  runBaseEvaluation, runMRCExperiment, runRift, runLayerType, runBNOutputKDE, runRestartsComparison, runAutoAttackComparison,
  type ExperimentInputs,
} from './experiments.js';
import type { Method } from './records.js';
import type { LayerTypeMode } from '../method/finetune.js';
import type { StageName } from './stage-bench.js';

/** What a task's run gets: the shared cache and how to report. */
export interface TaskContext {
  cache: ResultCache;
  progress?: boolean;
  log?: (line: string) => void;
}

/** Record kind of a task: a ResultCache kind, or 'base-train' (the PGD-AT run folder). */
export type TaskKind = 'base-train' | 'base' | 'mrc' | 'layer-type' | 'rift' | 'bn-kde' | 'restarts' | 'autoattack';

/** One record of the grid. */
export interface GridTask {
  /** Stable name, e.g. 'cifar10/rift/rift-bn/k5/seed0' (dataset/kind/…); also its order of appearance. */
  id: string;
  dataset: DatasetName;
  kind: TaskKind;
  /** The notebooks that read this record. */
  notebooks: string[];
  /** Ids of the tasks whose records this one reads. */
  deps: string[];
  /** Which library call computes it, in words. */
  what: string;
  /** The config it runs with (the profile's, with the notebook's overrides). */
  config: ExperimentConfig;
  /** Computes the record (or reads it, when cached) and returns it. */
  run(ctx: TaskContext): Promise<{ key?: string }>;
  /** Projected seconds from per-stage seconds of `benchStages` (projected to the profile's sizes), or null when the stages do not cover it. */
  estimate(stages: Partial<Record<StageName, number>>): number | null;
}

/** Options of `experimentGrid`. */
export interface GridOptions {
  /** Datasets, in order. Default ['cifar10', 'cifar100'] (CIFAR-100: notebook 05's records). */
  datasets: DatasetName[];
  /** Config overrides applied to every task (CLI --set). */
  overrides?: DeepPartial<ExperimentConfig>;
}

const seq = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? null : a + b);

/** The base checkpoint a task runs on: the profile's PGD-AT run (never trained here) or the imported base (env). */
function baseOf(config: ExperimentConfig): Promise<string> {
  return ensureBaseCheckpoint(config, { train: false });
}

/** True when the base checkpoint a task runs on is there: the imported one (env), else the profile's finished PGD-AT run. */
export function baseReady(config: ExperimentConfig): boolean {
  return importedBaseFromEnv(config.dataset) ? fs.existsSync(baseCheckpointPath(config)) : baseRunFinished(config);
}

/**
 * Every record notebooks 02–09 read on `profile`, deduplicated (two notebooks asking for the
 * same call share one task), in an order where every task follows its dependencies.
 */
export function experimentGrid(profile: string, options: Partial<GridOptions> = {}): GridTask[] {
  const datasets = options.datasets ?? ['cifar10', 'cifar100'];
  const tasks: GridTask[] = [];
  const byCall = new Map<string, GridTask>();
  const add = (t: Omit<GridTask, 'notebooks'> & { notebook: string; call: unknown }): GridTask => {
    const callKey = hashKey(t.call);
    const had = byCall.get(callKey);
    if (had) {
      if (!had.notebooks.includes(t.notebook)) had.notebooks.push(t.notebook);
      return had;
    }
    const { notebook, call: _call, ...rest } = t;
    const task: GridTask = { ...rest, notebooks: [notebook] };
    byCall.set(callKey, task);
    tasks.push(task);
    return task;
  };
  const cfg = (dataset: DatasetName, extra: DeepPartial<ExperimentConfig> = {}) =>
    resolveConfig(profile, dataset, merge(options.overrides ?? {}, extra));

  const readBy = (t: GridTask, ...notebooks: string[]) => { for (const n of notebooks) if (!t.notebooks.includes(n)) t.notebooks.push(n); };
  const inp = async (c: ExperimentConfig, ctx: TaskContext): Promise<ExperimentInputs> => ({ config: c, checkpoint: await baseOf(c), cache: ctx.cache, progress: ctx.progress, log: ctx.log });
  const evalBoth = (s: Partial<Record<StageName, number>>) => seq(s['eval-pgd'], s['eval-clean']);

  /** A dataset's base run, base evaluation and three layer-type curves, read by `notebook`. */
  const core = (dataset: DatasetName, notebook: { base: string; curves: string }) => {
    const config = cfg(dataset);
    const f = config.finetune;
    const train = add({
      id: `${dataset}/base-train`, dataset, kind: 'base-train', notebook: notebook.base, deps: [],
      what: importedBaseFromEnv(dataset) ? `imported base ${importedBaseFromEnv(dataset)}` : `PGD-AT base (npm run train -- --dataset ${dataset} --profile ${profile})`,
      config, call: { fn: 'base-train', dataset, profile, advTrain: config.advTrain },
      run: async (ctx) => {
        if (baseReady(config)) return {};
        if (importedBaseFromEnv(dataset)) throw new Error(`imported base ${importedBaseFromEnv(dataset)} is missing: import it again (npm run import)`);
        // ensureBaseCheckpoint holds the run folder's lock while it trains (or resumes) the run.
        await ensureBaseCheckpoint(config, { train: true, log: ctx.log, progress: ctx.progress });
        return {};
      },
      estimate: (s) => (s['pgd-at-epoch'] === undefined ? null : config.advTrain.epochs * s['pgd-at-epoch']),
    });
    const base = add({
      id: `${dataset}/base`, dataset, kind: 'base', notebook: notebook.base, deps: [train.id],
      what: 'runBaseEvaluation', config, call: { fn: 'base', config },
      run: async (ctx) => runBaseEvaluation(await inp(config, ctx)), estimate: evalBoth,
    });
    const curves = (['bn-only', 'conv-linear-only', 'full'] as const).map((mode: LayerTypeMode) => add({
      id: `${dataset}/layer-type/${mode}`, dataset, kind: 'layer-type', notebook: notebook.curves, deps: [train.id],
      what: `runLayerType(${mode})`, config, call: { fn: 'layer-type', config, mode },
      run: async (ctx) => runLayerType(await inp(config, ctx), mode),
      estimate: (s) => { const b = evalBoth(s); return b === null || s['finetune-epoch-full'] === undefined ? null : (f.epochs + 1) * b + f.epochs * s['finetune-epoch-full']; },
    }));
    return { config, train, base, curves };
  };

  for (const dataset of datasets) {
    if (dataset !== 'cifar10') {
      // Notebook 05 shows CIFAR-10's base and curves beside CIFAR-100's (the cifar10 tasks, shared with 02 and 04).
      const nb = { base: '05-figure2-cifar100', curves: '05-figure2-cifar100' };
      const ten = core('cifar10', nb);
      readBy(ten.base, nb.base);
      ten.curves.forEach((t) => readBy(t, nb.curves));
      core(dataset, nb);
      continue;
    }
    const { config, train, base } = core(dataset, { base: '02-base-model', curves: '04-figure1-cifar10' });
    readBy(base, '06-table1', '08-beyond', '09-autoattack');
    const f = config.finetune, e = config.eval;
    const riftCost = (c: ExperimentConfig) => (s: Partial<Record<StageName, number>>) => {
      const both = evalBoth(s);
      if (both === null || s['finetune-epoch-bn'] === undefined || s['eval-clean'] === undefined || s['eval-pgd'] === undefined) return null;
      const inner = c.interpolation.enabled ? c.interpolation.alphas.filter((a) => a > 0 && a < 1).length : 0;
      return c.finetune.epochs * (s['finetune-epoch-bn'] + s['eval-clean']) + s['eval-pgd'] + inner * both;
    };
    const mrc = add({
      id: `${dataset}/mrc`, dataset, kind: 'mrc', notebook: '03-mrc', deps: [train.id], what: 'runMRCExperiment', config, call: { fn: 'mrc', config },
      run: async (ctx) => runMRCExperiment(await inp(config, ctx)),
      estimate: (s) => (s['eval-pgd'] === undefined || s['mrc-module'] === undefined ? null : s['eval-pgd'] * ((config.mrc.advN ?? 10_000) / (e.n ?? 10_000)) + s['mrc-module']),
    });
    readBy(mrc, '08-beyond');
    const rift = (c: ExperimentConfig, notebook: string, method: Method, k: number, seed: number, label = '') => add({
      id: `${dataset}/rift/${method}/k${k}/seed${seed}${label}`, dataset, kind: 'rift', notebook, deps: [base.id, mrc.id],
      what: `runRift(${method}, k=${k}, seed ${seed})${label ? ` with ${label.slice(1)}` : ''}`, config: c, call: { fn: 'rift', config: c, method, k, seed },
      run: async (ctx) => runRift(await inp(c, ctx), method, k, seed), estimate: riftCost(c),
    });
    // 06: Table 1.
    for (const k of config.topK) for (const method of ['rift', 'rift-bn'] as const) for (const seed of f.seeds) rift(config, '06-table1', method, k, seed);
    const kMax = Math.max(...config.topK);
    // 07: Figure 3 reads the top-k runs of both methods (k ≤ 5) with the first seed.
    const kKde = Math.min(5, kMax);
    const kdeDeps = (['rift', 'rift-bn'] as const).map((m) => rift(config, '07-figure3', m, kKde, f.seeds[0]).id);
    add({
      id: `${dataset}/bn-kde/k${kKde}`, dataset, kind: 'bn-kde', notebook: '07-figure3', deps: [...kdeDeps, mrc.id], what: `runBNOutputKDE(k=${kKde})`, config,
      call: { fn: 'bn-kde', config, k: kKde },
      run: async (ctx) => runBNOutputKDE(await inp(config, ctx), { k: kKde }),
      estimate: (s) => (s['eval-pgd'] === undefined ? null : 3 * s['eval-pgd'] * (256 / (e.n ?? 10_000))),
    });
    // 08: BN-statistics policies, interpolation on, restarts, seeds.
    for (const policy of ['all', 'selected', 'none'] as const) {
      rift(cfg(dataset, { finetune: { bnStats: { riftBN: policy } } }), '08-beyond', 'rift-bn', kMax, f.seeds[0], policy === config.finetune.bnStats.riftBN ? '' : `-bnstats-${policy}`);
    }
    const withInterp = cfg(dataset, { interpolation: { enabled: true } });
    const interpLabel = config.interpolation.enabled ? '' : '-interpolated';
    const finals08 = (['rift', 'rift-bn'] as const).map((m) => rift(withInterp, '08-beyond', m, kMax, withInterp.finetune.seeds[0], interpLabel));
    add({
      id: `${dataset}/restarts/k${kMax}`, dataset, kind: 'restarts', notebook: '08-beyond', deps: [train.id, ...finals08.map((t) => t.id)],
      what: `runRestartsComparison(base, RiFT k=${kMax}, RiFT with BN k=${kMax}; 1 and 3 restarts)`, config, call: { fn: 'restarts', config, kMax },
      run: async (ctx) => {
        const i = await inp(config, ctx);
        const [r, rb] = [await runRift(await inp(withInterp, ctx), 'rift', kMax), await runRift(await inp(withInterp, ctx), 'rift-bn', kMax)];
        return runRestartsComparison(i, [
          { name: 'base (PGD-AT)', file: i.checkpoint }, { name: `RiFT, k = ${kMax}`, file: r.modelFile }, { name: `RiFT with BN, k = ${kMax}`, file: rb.modelFile },
        ], [1, 3]);
      },
      estimate: (s) => (s['eval-pgd'] === undefined ? null : 3 * 4 * s['eval-pgd']),
    });
    for (const seed of [0, 1, 2]) for (const method of ['rift', 'rift-bn'] as const) rift(config, '08-beyond', method, kMax, seed);
    // 09: AutoAttack on the base and the final top-k models of 06.
    const finals = (['rift', 'rift-bn'] as const).map((m) => rift(config, '09-autoattack', m, kMax, f.seeds[0]));
    add({
      id: `${dataset}/autoattack/k${kMax}`, dataset, kind: 'autoattack', notebook: '09-autoattack', deps: [train.id, ...finals.map((t) => t.id)],
      what: `runAutoAttackComparison(base, RiFT k=${kMax}, RiFT with BN k=${kMax})`, config, call: { fn: 'autoattack', config, kMax },
      run: async (ctx) => {
        const i = await inp(config, ctx);
        const [r, rb] = [await runRift(i, 'rift', kMax), await runRift(i, 'rift-bn', kMax)];
        return runAutoAttackComparison(i, [
          { name: 'base (PGD-AT)', file: i.checkpoint }, { name: `RiFT, k = ${kMax}`, file: r.modelFile }, { name: `RiFT with BN, k = ${kMax}`, file: rb.modelFile },
        ]);
      },
      estimate: () => null,
    });
  }
  for (const t of tasks) t.notebooks.sort();
  return tasks;
}

function merge<T>(a: DeepPartial<T>, b: DeepPartial<T>): DeepPartial<T> {
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b as Record<string, unknown>)) {
    const prev = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object' && !Array.isArray(prev) ? merge(prev as DeepPartial<unknown>, v as DeepPartial<unknown>) : v;
  }
  return out as DeepPartial<T>;
}

/** A task's state in a cache: its record is there, it can run now, or a dependency's record is missing. */
export interface TaskProbe {
  state: 'done' | 'ready' | 'waiting';
  /** The record's cache key, when known (done, or ready: its inputs are all there). */
  key?: string;
  /** For 'waiting': the first missing record (kind/key) or missing input, in words. */
  missing?: string;
}

/**
 * Where `task` stands in `cacheDir`: runs it against a read-only view of the cache, which
 * stops at the first missing record. Computes nothing and writes nothing.
 */
export async function probeTask(task: GridTask, cacheDir: string): Promise<TaskProbe> {
  if (task.kind === 'base-train') return baseReady(task.config) ? { state: 'done' } : { state: 'ready' };
  if (!baseReady(task.config)) return { state: 'waiting', missing: `${task.dataset} base checkpoint` };
  const cache = new ResultCache(cacheDir, { readOnly: true, warn: () => {} });
  try {
    const r = await task.run({ cache, progress: false, log: () => {} });
    return { state: 'done', key: r.key };
  } catch (e) {
    if (!(e instanceof MissingRecordError)) throw new Error(`cannot plan ${task.id}: ${(e as Error).message}`);
    return e.kind === task.kind ? { state: 'ready', key: e.key } : { state: 'waiting', missing: `${e.kind}/${e.key}` };
  }
}

/**
 * The tasks of `ids` and everything they depend on, in grid order (a sweep restricted with
 * --only still computes what its records read). Throws naming an unknown id.
 */
export function withDependencies(tasks: readonly GridTask[], ids: readonly string[]): GridTask[] {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const want = new Set<string>();
  const visit = (id: string) => {
    const t = byId.get(id);
    if (!t) throw new Error(`sweep: no task '${id}' in the grid (npm run sweep -- --plan lists them)`);
    if (want.has(id)) return;
    want.add(id);
    t.deps.forEach(visit);
  };
  ids.forEach(visit);
  return tasks.filter((t) => want.has(t.id));
}

/** Wave of each task: 0 for a task without dependencies, else one more than its deepest dependency's (the Slurm job arrays). */
export function taskWaves(tasks: readonly GridTask[]): Map<string, number> {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const wave = new Map<string, number>();
  const of = (t: GridTask): number => {
    const had = wave.get(t.id);
    if (had !== undefined) return had;
    const w = t.deps.reduce((m, d) => { const dt = byId.get(d); return dt ? Math.max(m, of(dt) + 1) : m; }, 0);
    wave.set(t.id, w);
    return w;
  };
  tasks.forEach(of);
  return wave;
}

/** Projected compute of the grid's tasks per notebook (each task counted once, under the first notebook that reads it). */
export interface NotebookProjection {
  part: string;
  tasks: number;
  seconds: number;
  /** Tasks the stage times cannot estimate (e.g. AutoAttack), left out of `seconds`. */
  unestimated: number;
}

/** Projects `tasks` from per-stage seconds (`benchStages` projected to the profile), per notebook in grid order. */
export function projectGrid(tasks: readonly GridTask[], stages: Partial<Record<StageName, number>>): NotebookProjection[] {
  const out = new Map<string, NotebookProjection>();
  for (const t of tasks) {
    const part = t.notebooks[0];
    const p = out.get(part) ?? { part, tasks: 0, seconds: 0, unestimated: 0 };
    const e = t.estimate(stages);
    p.tasks++;
    if (e === null) p.unestimated++;
    else p.seconds += e;
    out.set(part, p);
  }
  return [...out.values()];
}
