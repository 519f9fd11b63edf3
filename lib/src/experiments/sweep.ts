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
import { pidAlive, slurmJobFromEnv } from '../util/lock.js';

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
  // Name a missing record by the task that computes it, when the plan has it.
  const byRecord = new Map(planned.filter((p) => p.key).map((p) => [`${p.kind}/${p.key}`, p.id]));
  for (const p of planned) if (p.missing && byRecord.has(p.missing)) p.missing = byRecord.get(p.missing);
  // Each finished record's own seconds and each dataset's stage times, read once.
  const measured = planned.map((p) => (p.state === 'done' ? recordSeconds(cache, p.kind, p.key) : null));
  const stageTimes = new Map([...new Set(tasks.map((t) => t.dataset))].map((d) => [d, readStageTimes(spec.cacheDir, spec.profile, d)]));
  for (const [i, p] of planned.entries()) {
    const t = tasks[i];
    const stages = stageTimes.get(t.dataset);
    const fromStages = stages ? t.estimate(stages) : null;
    const peers = planned.flatMap((q, j) => (q.kind === p.kind && tasks[j].dataset === t.dataset && measured[j] !== null ? [measured[j]!] : []));
    if (measured[i] !== null) Object.assign(p, { estimate: measured[i], estimateFrom: 'record' });
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

/**
 * Writes plan.json into the sweep's folder (created). Returns the folder. Refuses to replace
 * the plan of another spec (profile, datasets, overrides, --only, cache, environment) under
 * the same name, since queued array tasks of that sweep rebuild their grid from it.
 */
export function writePlan(plan: SweepPlan): string {
  const dir = sweepDir(plan.cacheDir, plan.name);
  if (fs.existsSync(path.join(dir, 'plan.json'))) {
    const old = readPlan(dir);
    const spec = (p: SweepSpec) => hashKey({ profile: p.profile, datasets: p.datasets, set: p.set, only: p.only, cacheDir: p.cacheDir, env: p.env });
    if (spec(old) !== spec(plan)) {
      throw new Error(`sweep '${plan.name}' in ${dir} was planned with other settings (profile ${old.profile}, datasets ${old.datasets.join(',')}, ` +
        `--set [${old.set.join(' ')}], --only [${old.only.join(' ')}], env ${JSON.stringify(old.env)}); pass another --name, or delete that folder`);
    }
  }
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
  const base = { id, host: os.hostname(), pid: process.pid, ...(slurmJobFromEnv() ? { slurmJob: slurmJobFromEnv() } : {}), startedAt: new Date().toISOString() };
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
  /** Shell lines run before the task on the node (e.g. 'module load cuda/11.2', 'source ~/venv/bin/activate'). Default none. */
  setup: string[];
  /** The node executable on the compute nodes. Default: this process's (`process.execPath`; the repository and it on a shared filesystem). */
  node?: string;
}

/** Defaults of `SlurmOptions`. */
export const DEFAULT_SLURM: SlurmOptions = { cpus: 2, mem: '8G', gpu: false, extra: [], setup: [] };

/**
 * Checks Slurm options before any script is written: --mem a size (e.g. 8G, 16000M), --time one
 * of Slurm's formats (minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]], UNLIMITED), every --sbatch an
 * option (starting with '-'). Throws naming the option, what was expected and what was found.
 */
export function checkSlurmOptions(o: Partial<SlurmOptions>): void {
  if (o.mem !== undefined && !/^\d+(\.\d+)?[KMGT]?$/i.test(o.mem)) throw new Error(`--mem must be a Slurm memory size such as 8G or 16000M, got '${o.mem}'`);
  if (o.time !== undefined && !/^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+|\d+-\d+:\d{1,2}|\d+-\d+:\d{1,2}:\d{1,2}|UNLIMITED|INFINITE)$/i.test(o.time)) {
    throw new Error(`--time must be a Slurm time limit (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM:SS or UNLIMITED), got '${o.time}'`);
  }
  for (const x of o.extra ?? []) if (!x.startsWith('-')) throw new Error(`--sbatch takes one sbatch option such as --qos=long, got '${x}'`);
  if (o.cpus !== undefined && !(Number.isInteger(o.cpus) && o.cpus >= 1)) throw new Error(`--cpus must be an integer ≥ 1, got ${o.cpus}`);
}

/** One job array: unfinished tasks of one wave that read the same unfinished records. */
export interface SlurmArray {
  /** Position in submission order. */
  index: number;
  wave: number;
  /** Task ids; array task i runs tasks[i]. */
  tasks: string[];
  /** Unfinished tasks these read, each an element of an earlier array (afterok on exactly those elements). */
  after: string[];
  script: string;
  file: string;
}

const shq = (s: string) => (/^[A-Za-z0-9_./:=+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/**
 * The job arrays of a plan, in submission order: its unfinished tasks grouped by wave and by
 * the unfinished records they read, so that each array depends (afterok) on exactly the array
 * elements that compute its inputs — a failed record holds back only what reads it. Each
 * script names its own tasks (a `case` on SLURM_ARRAY_TASK_ID), so a later plan or
 * submission can never change what a queued array task runs.
 */
export function slurmArrays(plan: SweepPlan, submissionDir: string, options: Partial<SlurmOptions> = {}): SlurmArray[] {
  const o = { ...DEFAULT_SLURM, ...options };
  checkSlurmOptions(o);
  if (/[\s%'"\\]/.test(submissionDir)) throw new Error(`sweep folder ${submissionDir}: Slurm output paths cannot hold spaces, quotes or '%'; use another --cache or --name`);
  const todo = plan.tasks.filter((t) => t.state !== 'done');
  const pending = new Set(todo.map((t) => t.id));
  const groups = new Map<string, { wave: number; after: string[]; tasks: string[] }>();
  for (const t of todo) {
    const after = t.deps.filter((d) => pending.has(d)).sort();
    const g = `${t.wave}|${after.join(',')}`;
    if (!groups.has(g)) groups.set(g, { wave: t.wave, after, tasks: [] });
    groups.get(g)!.tasks.push(t.id);
  }
  const root = repoRoot();
  const env: Record<string, string> = { ...plan.env, RIFT_CACHE_DIR: plan.cacheDir, RIFT_PROFILE: plan.profile };
  return [...groups.values()].sort((x, y) => x.wave - y.wave).map((g, index) => {
    const file = path.join(submissionDir, `array-${index}.sbatch`);
    const lines = [
      '#!/bin/bash',
      `#SBATCH --job-name=rift-${plan.name}-${index}`,
      `#SBATCH --array=0-${g.tasks.length - 1}`,
      `#SBATCH --cpus-per-task=${o.cpus}`,
      `#SBATCH --mem=${o.mem}`,
      `#SBATCH --output=${path.join(submissionDir, 'logs', `array-${index}_%A_%a.log`)}`,
      '#SBATCH --kill-on-invalid-dep=yes',
      ...(o.gpu ? ['#SBATCH --gres=gpu:1'] : []),
      ...(o.partition ? [`#SBATCH --partition=${o.partition}`] : []),
      ...(o.account ? [`#SBATCH --account=${o.account}`] : []),
      ...(o.time ? [`#SBATCH --time=${o.time}`] : []),
      ...o.extra.map((x) => `#SBATCH ${x}`),
      `# Sweep ${plan.name}, wave ${g.wave}: ${g.tasks.length} record(s)${g.after.length ? `, after ${g.after.join(', ')}` : ''}.`,
      'set -euo pipefail',
      'case "${SLURM_ARRAY_TASK_ID:-}" in',
      ...g.tasks.map((id, i) => `  ${i}) TASK=${shq(id)} ;;`),
      `  *) echo "array task '\${SLURM_ARRAY_TASK_ID:-}' is not in this job (0-${g.tasks.length - 1}): submit it with sbatch, or set SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;`,
      'esac',
      ...(o.setup.length ? ['# --setup:', ...o.setup] : []),
      `cd ${shq(root)}`,
      ...Object.entries(env).map(([k, v]) => `export ${k}=${shq(v)}`),
      `export RIFT_THREADS="\${SLURM_CPUS_PER_TASK:-${o.cpus}}"`,
      `exec ${o.node ? o.node : shq(process.execPath)} --import tsx scripts/sweep.ts --run-task ${shq(path.dirname(path.dirname(submissionDir)))} --task "$TASK"`,
      '',
    ];
    return { index, wave: g.wave, tasks: g.tasks, after: g.after, script: lines.join('\n'), file };
  });
}

/** One submission of a sweep (slurm/submissions.json holds them all, oldest first). */
export interface Submission {
  at: string;
  /** Folder of its scripts and logs, slurm/<time>/. */
  dir: string;
  arrays: Array<{ index: number; wave: number; jobId: string; tasks: string[]; after: string[] }>;
}

function readSubmissions(dir: string): Submission[] {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, 'slurm', 'submissions.json'), 'utf8')) as { submissions: Submission[] }).submissions;
  } catch {
    return [];
  }
}

/**
 * Writes the job scripts of the plan's unfinished tasks into a new submission folder
 * (slurm/<time>/) and, with `submit`, submits them with sbatch in order, each afterok on the
 * array elements it reads; the submission is added to slurm/submissions.json.
 */
export function submitSlurm(plan: SweepPlan, dir: string, options: Partial<SlurmOptions> & { submit: boolean; log?: (l: string) => void }): Array<SlurmArray & { jobId?: string; command: string[] }> {
  const at = new Date().toISOString();
  const subDir = path.join(dir, 'slurm', at.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z'));
  const arrays = slurmArrays(plan, subDir, options);
  fs.mkdirSync(path.join(subDir, 'logs'), { recursive: true });
  const element = new Map<string, string>(); // task id → '<job>_<index>'
  const out: Array<SlurmArray & { jobId?: string; command: string[] }> = [];
  for (const a of arrays) {
    writeFileAtomic(a.file, a.script);
    const dep = a.after.map((d) => element.get(d) ?? `<${d}>`);
    const command = ['sbatch', '--parsable', ...(dep.length ? [`--dependency=afterok:${dep.join(':')}`] : []), a.file];
    let jobId: string | undefined;
    if (options.submit) {
      try {
        jobId = execFileSync(command[0], command.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split(';')[0];
      } catch (e) {
        const err = e as { stderr?: string; message: string };
        const done = out.map((x) => x.jobId).filter(Boolean);
        throw new Error(`sbatch ${a.file} failed: ${(err.stderr || err.message).trim().split('\n')[0]}${done.length ? ` (already submitted: jobs ${done.join(', ')}; scancel them or let them run)` : ''}`);
      }
      a.tasks.forEach((t, i) => element.set(t, `${jobId}_${i}`));
    }
    options.log?.(`${options.submit ? `submitted job ${jobId}` : 'would run'}: ${command.join(' ')}  (${a.tasks.length} task(s), wave ${a.wave})`);
    out.push({ ...a, jobId, command });
  }
  if (options.submit) {
    const all = readSubmissions(dir);
    all.push({ at, dir: subDir, arrays: out.map((a) => ({ index: a.index, wave: a.wave, jobId: a.jobId!, tasks: a.tasks, after: a.after })) });
    writeFileAtomic(path.join(dir, 'slurm', 'submissions.json'), `${JSON.stringify({ submissions: all }, null, 1)}\n`);
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

/** Slurm's state of each array element of the jobs (`squeue -r`), keyed '<job>_<index>'; undefined when squeue cannot be asked. */
function squeueStates(jobIds: string[]): Map<string, { state: string; reason: string }> | undefined {
  const out = new Map<string, { state: string; reason: string }>();
  if (!jobIds.length) return out;
  let text: string;
  try {
    // Every job in the queue, then ours picked out: `-j` fails outright once one id has left the queue.
    text = execFileSync('squeue', ['-h', '-r', '-o', '%i|%T|%r'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    return undefined;
  }
  const ours = new Set(jobIds);
  for (const line of text.split('\n').filter(Boolean)) {
    const [id, state, reason] = line.split('|');
    if (ours.has(id.trim().split('_')[0])) out.set(id.trim(), { state: state.trim(), reason: (reason ?? '').trim() });
  }
  return out;
}

const ENDED = /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL|PREEMPTED|BOOT_FAIL|DEADLINE)$/;

/** The sweep's submitted array elements that Slurm still has queued or running ('<job>_<index>'). */
export function activeJobs(dir: string): string[] {
  const q = squeueStates(readSubmissions(dir).flatMap((s) => s.arrays.map((a) => a.jobId)));
  return [...(q ?? [])].filter(([, v]) => !ENDED.test(v.state)).map(([k]) => k);
}

/**
 * Where every task of the sweep in `dir` stands: the cache (done or not), the task's last
 * attempt (running, failed with its error, or killed: its process is gone — on another host
 * known from Slurm's queue, else from the record lock's heartbeat), and Slurm's queue for
 * submitted array elements (queued, waiting on a dependency, or ended without running).
 */
export async function sweepStatus(dir: string): Promise<SweepStatusRow[]> {
  const plan = readPlan(dir);
  for (const [k, v] of Object.entries(plan.env)) process.env[k] ??= v;
  const fresh = await planSweep(plan, plan.name);
  const statuses = readTaskStatuses(dir);
  const subs = readSubmissions(dir);
  const queue = squeueStates(subs.flatMap((s) => s.arrays.map((a) => a.jobId)));
  const element = new Map<string, string>(); // newest submission wins
  for (const s of subs) for (const a of s.arrays) a.tasks.forEach((t, i) => element.set(t, `${a.jobId}_${i}`));
  const cache = new ResultCache(plan.cacheDir, { warn: () => {} });
  return fresh.tasks.map((t): SweepStatusRow => {
    const s = statuses.get(t.id);
    const el = element.get(t.id);
    const q = el ? queue?.get(el) : undefined;
    const who = (x: TaskStatus) => `${x.host} pid ${x.pid}${x.slurmJob ? ` job ${x.slurmJob}` : ''}`;
    if (t.state === 'done') return { id: t.id, state: 'done', detail: s?.host ? who(s) : t.kind === 'base-train' ? `${t.what}: finished` : 'in the cache', seconds: s?.seconds ?? t.estimate };
    if (s?.state === 'running') {
      const lock = t.key ? cache.lockState(t.kind, t.key) : undefined;
      const alive = s.host === os.hostname() ? pidAlive(s.pid)
        : s.slurmJob && queue ? queue.get(s.slurmJob)?.state === 'RUNNING'
        : lock ? !lock.stale : false;
      if (alive) return { id: t.id, state: 'running', detail: `${who(s)} since ${s.startedAt}`, seconds: null };
      return { id: t.id, state: 'killed', detail: `${who(s)} is gone (started ${s.startedAt}); a rerun resumes it`, seconds: null };
    }
    if (q && !ENDED.test(q.state)) {
      return { id: t.id, state: q.state === 'RUNNING' ? 'running' : q.reason.startsWith('Dependency') ? 'waiting' : 'queued', detail: `Slurm ${el} ${q.state.toLowerCase()} (${q.reason})`, seconds: null };
    }
    if (s?.state === 'failed') return { id: t.id, state: 'failed', detail: `${s.error ?? 'failed'} (${who(s)})`, seconds: s.seconds ?? null };
    const ended = el && queue && !s ? ` (Slurm ${el} ended without running: cancelled, or an input failed)` : '';
    return t.state === 'ready' ? { id: t.id, state: 'ready', detail: `inputs done, not started${ended}`, seconds: null } : { id: t.id, state: 'waiting', detail: `needs ${t.missing}${ended}`, seconds: null };
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
    ...[...plan.tasks].sort((a, b) => a.wave - b.wave).map((t) => `${String(t.wave).padEnd(5)}${t.state.padEnd(9)}${(t.estimate === null ? '?' : formatSeconds(t.estimate)).padStart(10)}  ${t.id.padEnd(width)}  ${t.notebooks.join(', ')}` +
      `${t.deps.length ? `; reads ${t.deps.map((d) => d.slice(d.indexOf('/') + 1)).join(', ')}` : ''}${t.state === 'waiting' && t.missing ? ` (missing: ${t.missing})` : ''}`),
    `${plan.tasks.length - left.length} of ${plan.tasks.length} done; left: ${left.length} task(s)` +
      (left.length === unknown ? (unknown ? ', no estimate yet (npm run sweep -- --measure times the stages here)' : '')
        : `, about ${formatSeconds(est)} of compute (from measured stage times and finished records)${unknown ? ` + ${unknown} without an estimate (npm run sweep -- --measure)` : ''}`),
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
