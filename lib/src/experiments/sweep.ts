/**
 * Sweeps: the experiment grid (grid.ts) computed ahead of the notebooks, in sequence on this
 * machine or as Slurm job arrays, into one shared cache. A sweep is a folder
 * (`sweepsDir()/<name>/`):
 *
 *     plan.json              profile, datasets, overrides, cache folder, the tasks and their waves
 *     status/<task>.json     each task's last attempt: running / done / failed, host, pid, error
 *     slurm/wave-<w>.sbatch  one job array per wave (tasks whose dependencies are in earlier waves)
 *     slurm/wave-<w>.tasks   the wave's task ids, line i = array task i
 *     slurm/submitted.json   the job id of each submitted wave
 *     logs/                  one log per array task
 *
 * Workers share the cache safely (cache.ts: one lock per record, atomic publish, journal), so
 * a task run twice computes once, and a task killed mid-run resumes from its work directory.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { DatasetName } from '../data/cifar.js';
import { parseOverrides } from './config.js';
import { ResultCache, hashKey } from './cache.js';
import { experimentGrid, probeTask, withDependencies, taskWaves, type GridTask, type TaskProbe } from './grid.js';
import type { StageName } from './stage-bench.js';
import { writeFileAtomic } from '../util/fs.js';
import { repoRoot, sweepsDir, defaultCacheDir } from '../util/paths.js';
import { formatSeconds } from '../util/format.js';

/** What a sweep is asked to compute: the grid's parameters. */
export interface SweepSpec {
  profile: string;
  datasets: DatasetName[];
  /** `--set key=value` overrides (kept as text so the array tasks rebuild the same grid). */
  set: string[];
  /** Task ids or id prefixes to restrict to (with their dependencies); empty = the whole grid. */
  only: string[];
  /** Absolute cache folder every worker uses. */
  cacheDir: string;
  /** Environment the workers need (RIFT_BASE_<DATASET> of an imported base, RIFT_BACKEND). */
  env: Record<string, string>;
}

/** One task of a plan. */
export interface PlannedTask {
  id: string;
  kind: string;
  wave: number;
  deps: string[];
  notebooks: string[];
  what: string;
  state: TaskProbe['state'];
  key?: string;
  missing?: string;
  /** Projected seconds (measured stage times or finished records of the same kind), or null. */
  estimate: number | null;
  /** How `estimate` was found. */
  estimateFrom: 'stage times' | 'finished records' | 'record' | 'unknown';
}

/** plan.json. */
export interface SweepPlan extends SweepSpec {
  format: typeof PLAN_FORMAT;
  name: string;
  createdAt: string;
  host: string;
  tasks: PlannedTask[];
}

/** Format tag of plan.json. */
export const PLAN_FORMAT = 'rift-bn/sweep-plan@1';

/** The tasks of a spec (grid, restricted to `only` with dependencies). */
export function sweepTasks(spec: Pick<SweepSpec, 'profile' | 'datasets' | 'set' | 'only'>): GridTask[] {
  const all = experimentGrid(spec.profile, { datasets: spec.datasets, overrides: parseOverrides(spec.set) });
  if (!spec.only.length) return all;
  const ids: string[] = [];
  for (const pat of spec.only) {
    const hit = all.filter((t) => t.id === pat || t.id.startsWith(pat.endsWith('/') ? pat : `${pat}/`));
    if (!hit.length) throw new Error(`--only ${pat}: no task of the grid is or starts with it (npm run sweep -- --profile ${spec.profile} lists them)`);
    ids.push(...hit.map((t) => t.id));
  }
  return withDependencies(all, ids);
}

/** Seconds a finished record states it took (the sum of its stage seconds), or null. */
function recordSeconds(cache: ResultCache, kind: string, key: string | undefined): number | null {
  if (!key) return null;
  const r = cache.get<{ seconds?: Record<string, number> }>(kind, key);
  return r?.seconds ? Object.values(r.seconds).reduce((a, b) => a + b, 0) : null;
}

/** Stage times of a `benchStages` measurement saved by `npm run sweep -- --measure` for this profile and dataset, if any. */
export function stageTimesPath(cacheDir: string, profile: string, dataset: string): string {
  return path.join(sweepsDir(cacheDir), `stage-times-${profile}-${dataset}.json`);
}

function readStageTimes(cacheDir: string, profile: string, dataset: string): Partial<Record<StageName, number>> | undefined {
  try {
    const j = JSON.parse(fs.readFileSync(stageTimesPath(cacheDir, profile, dataset), 'utf8')) as { stages: Array<{ stage: StageName; projectedSeconds: number }> };
    return Object.fromEntries(j.stages.map((s) => [s.stage, s.projectedSeconds]));
  } catch {
    return undefined;
  }
}

/**
 * The plan of a sweep: every task with its wave, state in the cache (probed read-only:
 * nothing is computed) and estimated cost. Estimates come from the stage times of
 * `--measure` when saved, else from finished records of the same kind and dataset.
 */
export async function planSweep(spec: SweepSpec, name?: string): Promise<SweepPlan> {
  const tasks = sweepTasks(spec);
  const waves = taskWaves(tasks);
  const cache = new ResultCache(spec.cacheDir, { warn: () => {} });
  const planned: PlannedTask[] = [];
  for (const t of tasks) {
    const p = await probeTask(t, spec.cacheDir);
    planned.push({ id: t.id, kind: t.kind, wave: waves.get(t.id)!, deps: t.deps, notebooks: t.notebooks, what: t.what, ...p, estimate: null, estimateFrom: 'unknown' });
  }
  for (const [i, p] of planned.entries()) {
    const t = tasks[i];
    const own = p.state === 'done' ? recordSeconds(cache, p.kind, p.key) : null;
    const stages = readStageTimes(spec.cacheDir, spec.profile, t.dataset);
    const fromStages = stages ? t.estimate(stages) : null;
    const peers = planned.filter((q) => q.kind === p.kind && q.id.split('/')[0] === p.id.split('/')[0] && q.state === 'done')
      .map((q) => recordSeconds(cache, q.kind, q.key)).filter((s): s is number => s !== null);
    if (own !== null) Object.assign(p, { estimate: own, estimateFrom: 'record' });
    else if (fromStages !== null) Object.assign(p, { estimate: fromStages, estimateFrom: 'stage times' });
    else if (peers.length) Object.assign(p, { estimate: peers.reduce((a, b) => a + b, 0) / peers.length, estimateFrom: 'finished records' });
  }
  return {
    format: PLAN_FORMAT, ...spec, name: name ?? defaultSweepName(spec), createdAt: new Date().toISOString(), host: os.hostname(), tasks: planned,
  };
}

/** `<profile>-<datasets>` (plus `-only-<hash>` when restricted), the default sweep name. */
export function defaultSweepName(spec: Pick<SweepSpec, 'profile' | 'datasets' | 'only' | 'set'>): string {
  const extra = spec.only.length || spec.set.length ? `-${hashKey({ only: spec.only, set: spec.set }).slice(0, 8)}` : '';
  return `${spec.profile}-${spec.datasets.join('+')}${extra}`;
}

/** The folder of sweep `name` beside cache `cacheDir`. */
export function sweepDir(cacheDir: string, name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(name)) throw new Error(`--name '${name}': a sweep name is letters, digits, '.', '_', '+' or '-'`);
  return path.join(sweepsDir(cacheDir), name);
}

/** Writes plan.json into the sweep's folder (created). Returns the folder. */
export function writePlan(plan: SweepPlan): string {
  const dir = sweepDir(plan.cacheDir, plan.name);
  writeFileAtomic(path.join(dir, 'plan.json'), `${JSON.stringify(plan, null, 1)}\n`);
  return dir;
}

/** Reads and checks `<dir>/plan.json`. */
export function readPlan(dir: string): SweepPlan {
  const file = path.join(dir, 'plan.json');
  let plan: SweepPlan;
  try {
    plan = JSON.parse(fs.readFileSync(file, 'utf8')) as SweepPlan;
  } catch (e) {
    throw new Error(`sweep plan ${file}: cannot read it (${(e as Error).message.split('\n')[0]})`);
  }
  if (plan?.format !== PLAN_FORMAT) throw new Error(`sweep plan ${file}: format '${String(plan?.format)}', expected '${PLAN_FORMAT}'`);
  return plan;
}

/** A task's last attempt, status/<task>.json. */
export interface TaskStatus {
  id: string;
  state: 'running' | 'done' | 'failed';
  host: string;
  pid: number;
  slurmJob?: string;
  startedAt: string;
  endedAt?: string;
  seconds?: number;
  key?: string;
  error?: string;
}

function statusPath(dir: string, id: string): string {
  return path.join(dir, 'status', `${id.replace(/\//g, '__')}.json`);
}

/** The last attempt of each task that has one. */
export function readTaskStatuses(dir: string): Map<string, TaskStatus> {
  const out = new Map<string, TaskStatus>();
  let names: string[] = [];
  try {
    names = fs.readdirSync(path.join(dir, 'status'));
  } catch {
    return out;
  }
  for (const n of names.filter((f) => f.endsWith('.json'))) {
    try {
      const s = JSON.parse(fs.readFileSync(path.join(dir, 'status', n), 'utf8')) as TaskStatus;
      out.set(s.id, s);
    } catch {
      // written atomically; an unreadable file is not ours
    }
  }
  return out;
}

const slurmJob = () => (process.env.SLURM_ARRAY_JOB_ID ? `${process.env.SLURM_ARRAY_JOB_ID}_${process.env.SLURM_ARRAY_TASK_ID}` : process.env.SLURM_JOB_ID);

/**
 * Runs task `id` of the sweep in `dir` in this process (what `--local` does for each task and
 * what each Slurm array task does): status running → the record computed or read from the
 * cache (waiting while another worker holds its lock) → done, or failed with the error (rethrown).
 */
export async function runSweepTask(dir: string, id: string, options: { progress?: boolean; log?: (l: string) => void } = {}): Promise<TaskStatus> {
  const plan = readPlan(dir);
  const task = sweepTasks(plan).find((t) => t.id === id);
  if (!task) throw new Error(`sweep ${dir}: no task '${id}' in its grid`);
  for (const [k, v] of Object.entries(plan.env)) process.env[k] ??= v;
  const t0 = Date.now();
  const base = { id, host: os.hostname(), pid: process.pid, ...(slurmJob() ? { slurmJob: slurmJob() } : {}), startedAt: new Date().toISOString() };
  writeFileAtomic(statusPath(dir, id), JSON.stringify({ ...base, state: 'running' } satisfies TaskStatus));
  try {
    const r = await task.run({ cache: new ResultCache(plan.cacheDir), progress: options.progress, log: options.log });
    const done: TaskStatus = { ...base, state: 'done', endedAt: new Date().toISOString(), seconds: (Date.now() - t0) / 1000, ...(r.key ? { key: r.key } : {}) };
    writeFileAtomic(statusPath(dir, id), JSON.stringify(done));
    return done;
  } catch (e) {
    const failed: TaskStatus = { ...base, state: 'failed', endedAt: new Date().toISOString(), seconds: (Date.now() - t0) / 1000, error: (e as Error).message.split('\n')[0] };
    writeFileAtomic(statusPath(dir, id), JSON.stringify(failed));
    throw e;
  }
}

/** Options of the Slurm job scripts; each field is passed to sbatch as its own option. */
export interface SlurmOptions {
  /** --cpus-per-task, also the engine's threads (RIFT_THREADS). Default 2. */
  cpus: number;
  /** --mem. Default '8G'. */
  mem: string;
  /** --gres=gpu:1 (a CUDA machine with tfjs-node-gpu). Default false. */
  gpu: boolean;
  partition?: string;
  account?: string;
  /** --time (e.g. '4:00:00'). */
  time?: string;
  /** Further sbatch options, verbatim (e.g. '--qos=long'). */
  extra: string[];
}

/** Defaults of `SlurmOptions`. */
export const DEFAULT_SLURM: SlurmOptions = { cpus: 2, mem: '8G', gpu: false, extra: [] };

/** One job array: the tasks of a wave still to compute. */
export interface SlurmWave {
  wave: number;
  tasks: string[];
  /** Earlier waves holding a dependency of this one's tasks (afterok). */
  after: number[];
  script: string;
  file: string;
}

const shq = (s: string) => (/^[A-Za-z0-9_./:=+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/**
 * The job arrays of a plan: one per wave, holding its tasks that are not done; a wave depends
 * (afterok) on the earlier waves that hold its tasks' unfinished dependencies.
 */
export function slurmWaves(plan: SweepPlan, dir: string, options: Partial<SlurmOptions> = {}): SlurmWave[] {
  const o = { ...DEFAULT_SLURM, ...options };
  const todo = plan.tasks.filter((t) => t.state !== 'done');
  const waveOf = new Map(todo.map((t) => [t.id, t.wave]));
  const waves = [...new Set(todo.map((t) => t.wave))].sort((a, b) => a - b);
  const root = repoRoot();
  return waves.map((w) => {
    const tasks = todo.filter((t) => t.wave === w);
    const after = [...new Set(tasks.flatMap((t) => t.deps.map((d) => waveOf.get(d)).filter((x): x is number => x !== undefined)))].sort((a, b) => a - b);
    const env: Record<string, string> = { ...plan.env, RIFT_CACHE_DIR: plan.cacheDir, RIFT_PROFILE: plan.profile };
    const lines = [
      '#!/bin/bash',
      `#SBATCH --job-name=rift-${plan.name}-w${w}`,
      `#SBATCH --array=0-${tasks.length - 1}`,
      `#SBATCH --cpus-per-task=${o.cpus}`,
      `#SBATCH --mem=${o.mem}`,
      `#SBATCH --output=${path.join(dir, 'logs', `wave-${w}_%A_%a.log`)}`,
      '#SBATCH --kill-on-invalid-dep=yes',
      ...(o.gpu ? ['#SBATCH --gres=gpu:1'] : []),
      ...(o.partition ? [`#SBATCH --partition=${o.partition}`] : []),
      ...(o.account ? [`#SBATCH --account=${o.account}`] : []),
      ...(o.time ? [`#SBATCH --time=${o.time}`] : []),
      ...o.extra.map((x) => `#SBATCH ${x}`),
      `# ${tasks.length} record(s) of sweep ${plan.name} (wave ${w}); line i of wave-${w}.tasks is array task i.`,
      'set -euo pipefail',
      `cd ${shq(root)}`,
      ...Object.entries(env).map(([k, v]) => `export ${k}=${shq(v)}`),
      `export RIFT_THREADS="\${SLURM_CPUS_PER_TASK:-${o.cpus}}"`,
      `exec ${shq(process.execPath)} --import tsx scripts/sweep.ts --run-task ${shq(dir)} --wave ${w} --index "$SLURM_ARRAY_TASK_ID"`,
      '',
    ];
    return { wave: w, tasks: tasks.map((t) => t.id), after, script: lines.join('\n'), file: path.join(dir, 'slurm', `wave-${w}.sbatch`) };
  });
}

/** The task id of array task `index` of wave `wave` (slurm/wave-<w>.tasks). */
export function waveTask(dir: string, wave: number, index: number): string {
  const file = path.join(dir, 'slurm', `wave-${wave}.tasks`);
  const ids = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  if (!Number.isInteger(index) || index < 0 || index >= ids.length) throw new Error(`${file}: array task ${index} is out of range (0–${ids.length - 1})`);
  return ids[index];
}

/** Writes the wave scripts and task lists; with `submit`, submits them with sbatch in order and returns the job ids. */
export function submitSlurm(plan: SweepPlan, dir: string, options: Partial<SlurmOptions> & { submit: boolean; log?: (l: string) => void }): Array<SlurmWave & { jobId?: string; command: string[] }> {
  const waves = slurmWaves(plan, dir, options);
  fs.mkdirSync(path.join(dir, 'logs'), { recursive: true });
  const ids = new Map<number, string>();
  const out: Array<SlurmWave & { jobId?: string; command: string[] }> = [];
  for (const w of waves) {
    writeFileAtomic(w.file, w.script);
    writeFileAtomic(w.file.replace(/\.sbatch$/, '.tasks'), `${w.tasks.join('\n')}\n`);
    const dep = w.after.map((a) => ids.get(a) ?? `<wave ${a}>`);
    const command = ['sbatch', '--parsable', ...(dep.length ? [`--dependency=afterok:${dep.join(':')}`] : []), w.file];
    let jobId: string | undefined;
    if (options.submit) {
      try {
        jobId = execFileSync(command[0], command.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split(';')[0];
      } catch (e) {
        const err = e as { stderr?: string; message: string };
        throw new Error(`sbatch ${w.file} failed: ${(err.stderr || err.message).trim().split('\n')[0]}${ids.size ? ` (waves already submitted: ${[...ids.values()].join(', ')}; cancel them with scancel)` : ''}`);
      }
      ids.set(w.wave, jobId);
    }
    options.log?.(`${options.submit ? `submitted job ${jobId}` : 'would run'}: ${command.join(' ')}  (${w.tasks.length} task(s))`);
    out.push({ ...w, jobId, command });
  }
  if (options.submit) {
    writeFileAtomic(path.join(dir, 'slurm', 'submitted.json'), JSON.stringify({ at: new Date().toISOString(), waves: out.map((w) => ({ wave: w.wave, jobId: w.jobId, tasks: w.tasks })) }, null, 1));
  }
  return out;
}

/** A task's row in `sweepStatus`. */
export interface SweepStatusRow {
  id: string;
  state: 'done' | 'running' | 'queued' | 'waiting' | 'failed' | 'killed' | 'ready';
  /** Who runs it, the error, or what it waits for. */
  detail: string;
  seconds: number | null;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Slurm's state of each array task of the submitted jobs (`squeue`), keyed '<job>_<index>'; empty without squeue. */
function squeueStates(jobIds: string[]): Map<string, { state: string; reason: string }> {
  const out = new Map<string, { state: string; reason: string }>();
  if (!jobIds.length) return out;
  try {
    const text = execFileSync('squeue', ['-h', '-r', '-j', jobIds.join(','), '-o', '%i|%T|%r'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const line of text.split('\n').filter(Boolean)) {
      const [id, state, reason] = line.split('|');
      out.set(id.trim(), { state: state.trim(), reason: reason.trim() });
    }
  } catch {
    // no squeue here, or the jobs are gone: the status files tell the rest
  }
  return out;
}

/** The sweep's submitted array tasks that Slurm still has queued or running ('<job>_<index>'), from slurm/submitted.json and squeue. */
export function activeJobs(dir: string): string[] {
  let submitted: { waves: Array<{ jobId?: string }> };
  try {
    submitted = JSON.parse(fs.readFileSync(path.join(dir, 'slurm', 'submitted.json'), 'utf8'));
  } catch {
    return [];
  }
  const q = squeueStates(submitted.waves.map((w) => w.jobId).filter((x): x is string => !!x));
  return [...q].filter(([, v]) => !/^(COMPLETED|FAILED|CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL|PREEMPTED|BOOT_FAIL|DEADLINE)$/.test(v.state)).map(([k]) => k);
}

/**
 * Where every task of the sweep in `dir` stands: the cache (done / not), the task's last
 * attempt (running, failed with its error, or killed: its process is gone), and Slurm's queue
 * for submitted array tasks (queued, waiting on a dependency).
 */
export async function sweepStatus(dir: string): Promise<SweepStatusRow[]> {
  const plan = readPlan(dir);
  const fresh = await planSweep(plan, plan.name);
  const statuses = readTaskStatuses(dir);
  let submitted: { waves: Array<{ wave: number; jobId?: string; tasks: string[] }> } | undefined;
  try {
    submitted = JSON.parse(fs.readFileSync(path.join(dir, 'slurm', 'submitted.json'), 'utf8'));
  } catch {
    submitted = undefined;
  }
  const queue = squeueStates((submitted?.waves ?? []).map((w) => w.jobId).filter((x): x is string => !!x));
  const arrayTask = new Map<string, string>();
  for (const w of submitted?.waves ?? []) w.tasks.forEach((t, i) => arrayTask.set(t, `${w.jobId}_${i}`));
  return fresh.tasks.map((t): SweepStatusRow => {
    const s = statuses.get(t.id);
    const q = arrayTask.has(t.id) ? queue.get(arrayTask.get(t.id)!) : undefined;
    if (t.state === 'done') return { id: t.id, state: 'done', detail: s?.host ? `${s.host}${s.slurmJob ? ` job ${s.slurmJob}` : ''}` : 'in the cache', seconds: s?.seconds ?? t.estimate };
    if (s?.state === 'running') {
      const alive = s.host !== os.hostname() || pidAlive(s.pid);
      const inQueue = q?.state === 'RUNNING';
      if (alive || inQueue) return { id: t.id, state: 'running', detail: `${s.host} pid ${s.pid}${s.slurmJob ? ` job ${s.slurmJob}` : ''} since ${s.startedAt}`, seconds: null };
      return { id: t.id, state: 'killed', detail: `${s.host} pid ${s.pid}${s.slurmJob ? ` job ${s.slurmJob}` : ''} is gone (started ${s.startedAt}); a rerun resumes it`, seconds: null };
    }
    if (q && (q.state === 'PENDING' || q.state === 'CONFIGURING')) {
      return { id: t.id, state: q.reason.startsWith('Dependency') ? 'waiting' : 'queued', detail: `Slurm ${arrayTask.get(t.id)} ${q.state.toLowerCase()} (${q.reason})`, seconds: null };
    }
    if (s?.state === 'failed') return { id: t.id, state: 'failed', detail: s.error ?? 'failed', seconds: s.seconds ?? null };
    return t.state === 'ready' ? { id: t.id, state: 'ready', detail: 'inputs done, not started', seconds: null } : { id: t.id, state: 'waiting', detail: `needs ${t.missing}`, seconds: null };
  });
}

/** A plan as text lines: one per task (wave, state, estimate, id, notebooks) and a total of what is left. */
export function formatPlan(plan: SweepPlan): string[] {
  const left = plan.tasks.filter((t) => t.state !== 'done');
  const est = left.reduce((a, t) => a + (t.estimate ?? 0), 0);
  const unknown = left.filter((t) => t.estimate === null).length;
  const width = Math.max(...plan.tasks.map((t) => t.id.length), 4);
  return [
    `sweep ${plan.name}: profile ${plan.profile}, ${plan.datasets.join(', ')}; cache ${plan.cacheDir}`,
    `${'wave'.padEnd(5)}${'state'.padEnd(9)}${'est.'.padStart(10)}  ${'task'.padEnd(width)}  notebooks`,
    ...plan.tasks.map((t) => `${String(t.wave).padEnd(5)}${t.state.padEnd(9)}${(t.estimate === null ? '?' : formatSeconds(t.estimate)).padStart(10)}  ${t.id.padEnd(width)}  ${t.notebooks.join(', ')}` +
      `${t.deps.length ? `; reads ${t.deps.map((d) => d.slice(d.indexOf('/') + 1)).join(', ')}` : ''}${t.state === 'waiting' && t.missing ? ` (missing: ${t.missing})` : ''}`),
    `${plan.tasks.length - left.length} of ${plan.tasks.length} done; left: ${left.length} task(s)` +
      (left.length === unknown ? (unknown ? ', no estimate yet (npm run sweep -- --measure times the stages here)' : '')
        : `, about ${formatSeconds(est)} of compute from this machine's measurements${unknown ? ` + ${unknown} without an estimate (npm run sweep -- --measure)` : ''}`),
  ];
}

/** The default spec: profile, datasets, overrides and `only` as given; the default cache; the imported-base and backend environment of this process. */
export function sweepSpec(v: { profile: string; datasets: DatasetName[]; set?: string[]; only?: string[]; cacheDir?: string }): SweepSpec {
  const env: Record<string, string> = {};
  for (const [k, val] of Object.entries(process.env)) if (val !== undefined && (/^RIFT_BASE_/.test(k) || k === 'RIFT_BACKEND' || k === 'RIFT_DATA_DIR')) env[k] = val;
  return { profile: v.profile, datasets: v.datasets, set: v.set ?? [], only: v.only ?? [], cacheDir: path.resolve(v.cacheDir ?? defaultCacheDir()), env };
}

/** What `runSweepLocal` did. */
export interface LocalSweepResult {
  done: string[];
  failed: Array<{ id: string; error: string }>;
  /** Not run because a dependency failed. */
  skipped: string[];
  seconds: number;
}

/**
 * Runs the plan's unfinished tasks one after another in this process (`--local`), in plan
 * order (every task after its dependencies). A failed task is reported and its dependents are
 * skipped; the others go on. Prints one line per task with the time left, from the estimates
 * scaled by how the finished tasks compared with theirs.
 */
export async function runSweepLocal(dir: string, options: { progress?: boolean; log?: (l: string) => void } = {}): Promise<LocalSweepResult> {
  const log = options.log ?? ((l: string) => console.log(l));
  const plan = readPlan(dir);
  const todo = plan.tasks.filter((t) => t.state !== 'done');
  const out: LocalSweepResult = { done: [], failed: [], skipped: [], seconds: 0 };
  const bad = new Set<string>();
  const t0 = Date.now();
  let spent = 0, estimated = 0;
  for (const [i, t] of todo.entries()) {
    if (t.deps.some((d) => bad.has(d))) {
      bad.add(t.id);
      out.skipped.push(t.id);
      log(`[${i + 1}/${todo.length}] ${t.id}: skipped (a dependency failed)`);
      continue;
    }
    const rest = todo.slice(i).reduce((a, x) => a + (x.estimate ?? 0), 0) * (estimated > 0 ? spent / estimated : 1);
    log(`[${i + 1}/${todo.length}] ${t.id}: ${t.what}${t.estimate !== null ? ` (est. ${formatSeconds(t.estimate)}; about ${formatSeconds(rest)} left in all)` : ''}`);
    try {
      const s = await runSweepTask(dir, t.id, options);
      out.done.push(t.id);
      if (t.estimate !== null) { spent += s.seconds ?? 0; estimated += t.estimate; }
      log(`[${i + 1}/${todo.length}] ${t.id}: done in ${formatSeconds(s.seconds ?? 0)}${s.key ? ` (record ${t.kind}/${s.key})` : ''}`);
    } catch (e) {
      bad.add(t.id);
      out.failed.push({ id: t.id, error: (e as Error).message.split('\n')[0] });
      log(`[${i + 1}/${todo.length}] ${t.id}: FAILED: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  out.seconds = (Date.now() - t0) / 1000;
  return out;
}
