/**
 * The experiment grid and its sweeps: the grid's shape; a smoke sweep in sequence, after
 * which the notebooks render with a read-only cache (so the grid holds every record they
 * read); two workers on one sweep computing each record once; and a sweep on a single-node
 * Slurm cluster started here (scripts/slurm-local.sh) with a task killed mid-run and rerun,
 * whose records equal the sequential run's and none of which was computed twice.
 *
 * The Slurm test needs Debian's slurmctld, slurmd, slurm-client and munge (scripts/setup.sh)
 * and root; without them it is skipped with the reason, unless RIFT_REQUIRE_SLURM=1 (CI),
 * which makes their absence a failure. The notebook part needs Jupyter likewise
 * (RIFT_REQUIRE_JUPYTER=1).
 */
import { test, describe, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { experimentGrid, withDependencies, taskWaves } from '../lib/src/experiments/grid.js';
import { ResultCache } from '../lib/src/experiments/cache.js';
import { readPlan, sweepStatus, type TaskStatus } from '../lib/src/experiments/sweep.js';
import { jupyterMissing } from '../scripts/jupyter.js';
import { repoRoot } from '../lib/src/util/paths.js';
import { tempDir } from './helpers.js';

const ROOT = repoRoot();

interface Run { code: number | null; out: string }

/** Runs a CLI script (scripts/<name>.ts) to completion, asynchronously (so a test can watch the files it writes). */
function cli(script: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 600_000): Promise<Run> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts', `${script}.ts`), ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('exit', (code) => { clearTimeout(timer); resolve({ code, out }); });
  });
}

async function until(what: string, f: () => boolean, ms: number, every = 100): Promise<void> {
  const t0 = Date.now();
  while (!f()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** A record without what differs run to run by nature (wall times, dates) and with the cache folder written as <cache>. */
function comparable(record: unknown, cacheDir: string): string {
  return JSON.stringify(record, (k, v: unknown) => (/seconds$|^createdAt$|^savedAt$/i.test(k) ? undefined : v)).split(cacheDir).join('<cache>');
}

/** Every record of a cache, by kind/key. */
function records(cacheDir: string): Map<string, unknown> {
  const c = new ResultCache(cacheDir);
  const out = new Map<string, unknown>();
  for (const kind of fs.existsSync(cacheDir) ? fs.readdirSync(cacheDir).filter((f) => fs.statSync(path.join(cacheDir, f)).isDirectory()) : []) {
    for (const key of c.list(kind)) out.set(`${kind}/${key}`, c.get(kind, key));
  }
  return out;
}

/** Asserts that no record of the cache was computed twice (journal) and that every record in it was journaled. */
function assertComputedOnce(cacheDir: string): void {
  const seen = new Map<string, number>();
  for (const j of new ResultCache(cacheDir).journal()) seen.set(`${j.kind}/${j.key}`, (seen.get(`${j.kind}/${j.key}`) ?? 0) + 1);
  const twice = [...seen].filter(([, n]) => n > 1);
  assert.deepEqual(twice, [], `computed more than once: ${twice.map(([k, n]) => `${k} ×${n}`).join(', ')}`);
  assert.deepEqual([...records(cacheDir).keys()].sort(), [...seen.keys()].sort(), 'every record is in the journal once');
}

test('the grid: unique ids, dependencies before dependents, waves one past the deepest dependency, shared calls merged', () => {
  for (const profile of ['smoke', 'quick', 'paper']) {
    const tasks = experimentGrid(profile);
    const ids = tasks.map((t) => t.id);
    assert.equal(new Set(ids).size, ids.length, `${profile}: ids unique`);
    const waves = taskWaves(tasks);
    for (const [i, t] of tasks.entries()) {
      for (const d of t.deps) {
        assert.ok(ids.indexOf(d) >= 0 && ids.indexOf(d) < i, `${profile}: ${t.id} after its dependency ${d}`);
      }
      assert.equal(waves.get(t.id), t.deps.length ? Math.max(...t.deps.map((d) => waves.get(d)!)) + 1 : 0);
    }
  }
  const quick = experimentGrid('quick');
  // Table 1's k = 5 runs are also Figure 3's, the BN-policy 'selected' run, and AutoAttack's models.
  const k5 = quick.find((t) => t.id === 'cifar10/rift/rift-bn/k5/seed0')!;
  assert.deepEqual(k5.notebooks, ['06-table1', '07-figure3', '08-beyond', '09-autoattack']);
  assert.equal(quick.filter((t) => t.kind === 'rift').length, 2 * 5 + 2 + 4, 'Table 1 (2 × 5) + two BN policies + seeds 1, 2 of both methods');
  assert.deepEqual(quick.filter((t) => t.dataset === 'cifar100').map((t) => t.id),
    ['cifar100/base-train', 'cifar100/base', 'cifar100/layer-type/bn-only', 'cifar100/layer-type/conv-linear-only', 'cifar100/layer-type/full']);
  assert.deepEqual(withDependencies(quick, ['cifar10/bn-kde/k5']).map((t) => t.id),
    ['cifar10/base-train', 'cifar10/base', 'cifar10/mrc', 'cifar10/rift/rift/k5/seed0', 'cifar10/rift/rift-bn/k5/seed0', 'cifar10/bn-kde/k5']);
  assert.throws(() => withDependencies(quick, ['cifar10/nope']), /no task 'cifar10\/nope' in the grid/);
});

test('sweep CLI: bad options are one-line errors; --slurm --dry-run writes job arrays that name their tasks, each afterok on the elements it reads, with the resources asked for; another spec under one name is refused', async () => {
  const cache = path.join(tempDir(), 'experiments');
  const bad = await cli('sweep', ['--profile', 'smoke', '--only', 'cifar10/nope', '--cache', cache]);
  assert.equal(bad.code, 1);
  assert.match(bad.out, /^error: --only cifar10\/nope: no task of the grid is or starts with it/m);
  const two = await cli('sweep', ['--local', '--slurm', '--cache', cache]);
  assert.match(two.out, /^error: --local and --slurm: give one mode$/m);
  const mem = await cli('sweep', ['--profile', 'smoke', '--slurm', '--dry-run', '--mem', 'lots', '--cache', cache]);
  assert.match(mem.out, /^error: --mem must be a Slurm memory size such as 8G or 16000M, got 'lots'$/m);
  const alone = await cli('sweep', ['--profile', 'smoke', '--partition', 'gpu', '--cache', cache]);
  assert.match(alone.out, /^error: --partition goes with --slurm$/m);
  const none = await cli('sweep', ['--profile', 'smoke', '--status', '--cache', cache]);
  assert.match(none.out, /^error: no sweep 'smoke-cifar10\+cifar100' in .*sweeps/m);

  const r = await cli('sweep', ['--profile', 'smoke', '--dataset', 'cifar10', '--only', 'cifar10/rift/rift-bn/k1', '--cache', cache, '--slurm', '--dry-run',
    '--cpus', '4', '--mem', '3G', '--gpu', '--partition', 'short', '--time', '1:00:00', '--sbatch=--qos=low', '--setup', 'module load nodejs/20', '--node', 'node']);
  assert.equal(r.code, 0, r.out);
  const sub = r.out.match(/^scripts in (.*)$/m)?.[1];
  assert.ok(sub, r.out);
  const dir = path.dirname(path.dirname(sub));
  const plan = readPlan(dir);
  const todo = plan.tasks.filter((t) => t.state !== 'done');
  const files = fs.readdirSync(sub).filter((f) => f.endsWith('.sbatch')).sort();
  const ran: string[] = [];
  for (const f of files) {
    const script = fs.readFileSync(path.join(sub, f), 'utf8');
    // Each script names its own tasks, so no later plan can change what a queued array task runs.
    const ids = [...script.matchAll(/^ {2}(\d+)\) TASK=(\S+) ;;$/gm)].map((m, i) => { assert.equal(Number(m[1]), i, 'array task i runs line i'); return m[2]; });
    ran.push(...ids);
    for (const line of [`#SBATCH --array=0-${ids.length - 1}`, '#SBATCH --cpus-per-task=4', '#SBATCH --mem=3G', '#SBATCH --gres=gpu:1', '#SBATCH --partition=short',
      '#SBATCH --time=1:00:00', '#SBATCH --qos=low', '#SBATCH --kill-on-invalid-dep=yes', `export RIFT_CACHE_DIR=${cache}`, 'export RIFT_PROFILE=smoke']) {
      assert.ok(script.split('\n').includes(line), `${f} has '${line}':\n${script}`);
    }
    assert.ok(script.trimEnd().endsWith(`exec node --import tsx scripts/sweep.ts --run-task ${dir} --task "$TASK"`), script);
    assert.ok(script.indexOf('module load nodejs/20') > script.indexOf('esac') && script.indexOf('module load nodejs/20') < script.indexOf('exec node'), '--setup runs before the task');
  }
  assert.deepEqual(ran.sort(), todo.map((t) => t.id).sort(), 'every unfinished task in exactly one array');
  // The fine-tuning run waits on exactly the two array elements it reads, not on whole waves.
  assert.match(r.out, /would run: sbatch --parsable --dependency=afterok:<cifar10\/base>:<cifar10\/mrc> .*array-\d+\.sbatch {2}\(1 task\(s\), wave 2\)/);
  assert.equal(fs.existsSync(path.join(dir, 'slurm', 'submissions.json')), false, 'nothing submitted');
  // Another spec under the same name is refused: queued tasks rebuild their grid from plan.json.
  const other = await cli('sweep', ['--profile', 'smoke', '--dataset', 'cifar10', '--only', 'cifar10/mrc', '--cache', cache, '--name', path.basename(dir)]);
  assert.equal(other.code, 1);
  assert.match(other.out, /^error: sweep 'smoke-cifar10-[0-9a-f]{8}' in .* was planned with other settings .*pass another --name, or delete that folder$/m);
});

describe('smoke sweeps', () => {
  const work = tempDir('rift-sweep-');
  const seqCache = path.join(work, 'sequential', 'experiments');
  let seq: Run;

  before(async () => {
    seq = await cli('sweep', ['--profile', 'smoke', '--local', '--cache', seqCache], {}, 20 * 60_000);
  });

  test('--local computes the whole smoke grid once; a second run computes nothing', async () => {
    assert.equal(seq.code, 0, seq.out.slice(-3000));
    assert.match(seq.out, /^sweep smoke-cifar10\+cifar100: \d+ done, 0 failed, 0 skipped/m);
    assertComputedOnce(seqCache);
    const before = new ResultCache(seqCache).journal().length;
    const again = await cli('sweep', ['--profile', 'smoke', '--local', '--cache', seqCache]);
    assert.equal(again.code, 0, again.out);
    assert.match(again.out, /^(\d+) of \1 done; left: 0 task\(s\)/m);
    assert.equal(new ResultCache(seqCache).journal().length, before);
    const status = await cli('sweep', ['--profile', 'smoke', '--status', '--cache', seqCache]);
    assert.match(status.out, /^\d+ done, 0 running, 0 queued, 0 ready, 0 waiting, 0 failed, 0 killed$/m);
  });

  const jupyter = jupyterMissing(ROOT);
  test('after the sweep every notebook renders from the read-only cache (the grid holds every record the notebooks read), with the tables of a run that computes them', {
    skip: jupyter && process.env.RIFT_REQUIRE_JUPYTER !== '1' ? jupyter : false, timeout: 20 * 60_000,
  }, async () => {
    assert.equal(seq.code, 0);
    const before = records(seqCache).size;
    const r = await cli('run-notebooks', ['--profile', 'smoke', '--cache', seqCache, '--render-only', '--no-pdf', '--report', path.join(work, 'report')], {}, 20 * 60_000);
    assert.equal(r.code, 0, r.out.slice(-4000));
    assert.match(r.out, /render only: records from .*nothing computed/);
    assert.equal(records(seqCache).size, before, 'no record added');
    // The tables are those of a sequential run: 03 (MRC) and 06 (Table 1) computed by the notebooks themselves.
    const own = await cli('run-notebooks', ['--profile', 'smoke', '--cache', path.join(work, 'notebooks-own'), '--only', '03,06', '--no-pdf', '--report', path.join(work, 'report-own')], {}, 20 * 60_000);
    assert.equal(own.code, 0, own.out.slice(-4000));
    for (const nb of ['03-mrc', '06-table1']) {
      const tables = fs.readdirSync(path.join(work, 'report-own', nb)).filter((f) => f.endsWith('.csv')).sort();
      assert.ok(tables.length >= 3, `${nb} has tables`);
      assert.deepEqual(fs.readdirSync(path.join(work, 'report', nb)).filter((f) => f.endsWith('.csv')).sort(), tables);
      for (const t of tables) {
        assert.equal(fs.readFileSync(path.join(work, 'report', nb, t), 'utf8'), fs.readFileSync(path.join(work, 'report-own', nb, t), 'utf8'), `${nb}/${t}: the swept table equals the notebook's own`);
      }
    }
    // And a render-only run on an empty cache fails at the first missing record, naming it.
    const empty = await cli('run-notebooks', ['--profile', 'smoke', '--cache', path.join(work, 'empty'), '--render-only', '--no-pdf', '--only', '03', '--report', path.join(work, 'report-empty')]);
    assert.equal(empty.code, 1);
    assert.match(empty.out, /record mrc\/[0-9a-f]{16} is not in .*empty and the cache is read-only/);
  });

  test('two workers on one sweep at once: both finish, each record computed once', async () => {
    const cache = path.join(work, 'two', 'experiments');
    const args = ['--profile', 'smoke', '--dataset', 'cifar10', '--only', 'cifar10/mrc', '--only', 'cifar10/layer-type/bn-only', '--only', 'cifar10/base', '--local', '--cache', cache];
    const [a, b] = await Promise.all([cli('sweep', args), cli('sweep', args)]);
    assert.equal(a.code, 0, a.out);
    assert.equal(b.code, 0, b.out);
    assertComputedOnce(cache);
    assert.equal(records(cache).size, 3);
    for (const [k, v] of records(cache)) assert.equal(comparable(v, cache), comparable(records(seqCache).get(k), seqCache), `${k} equals the sequential run's`);
  });

  test('--status: a task running on another host is running while its lock beats, killed when it stops; a failed one shows its error', async () => {
    assert.equal(seq.code, 0);
    const cache = path.join(work, 'status', 'experiments');
    const r = await cli('sweep', ['--profile', 'smoke', '--dataset', 'cifar10', '--only', 'cifar10/mrc', '--cache', cache]);
    assert.equal(r.code, 0, r.out);
    const dir = r.out.match(/^plan: (.*)\/plan\.json$/m)![1];
    const mrc = readPlan(dir).tasks.find((t) => t.id === 'cifar10/mrc')!;
    assert.equal(mrc.state, 'ready');
    const setStatus = (st: Partial<TaskStatus>) => {
      fs.mkdirSync(path.join(dir, 'status'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'status', 'cifar10__mrc.json'), JSON.stringify({ id: 'cifar10/mrc', host: 'other-node', pid: 1, startedAt: '2026-12-03T10:00:00.000Z', ...st }));
    };
    const row = async () => (await sweepStatus(dir)).find((x) => x.id === 'cifar10/mrc')!;
    setStatus({ state: 'running' });
    assert.deepEqual([(await row()).state, (await row()).detail], ['killed', 'other-node pid 1 is gone (started 2026-12-03T10:00:00.000Z); a rerun resumes it']);
    const lockFile = new ResultCache(cache).lockPath('mrc', mrc.key!);
    fs.mkdirSync(path.dirname(lockFile), { recursive: true });
    fs.writeFileSync(lockFile, JSON.stringify({ host: 'other-node', pid: 1, startedAt: '2026-12-03T10:00:00.000Z', label: 'x' }));
    assert.equal((await row()).state, 'running', 'its record lock is fresh');
    fs.rmSync(lockFile);
    setStatus({ state: 'failed', error: 'CIFAR-10 test_batch.bin not found: /nodes/data', endedAt: '2026-12-03T10:01:00.000Z', seconds: 3 });
    assert.deepEqual([(await row()).state, (await row()).detail], ['failed', 'CIFAR-10 test_batch.bin not found: /nodes/data (other-node pid 1)']);
  });

  const slurmMissing = ['sbatch', 'slurmctld', 'slurmd', 'munged'].find((b) => spawnSync('sh', ['-c', `command -v ${b}`]).status !== 0);
  const slurmSkip = slurmMissing ? `${slurmMissing} not found (apt-get install slurmctld slurmd slurm-client munge; bash scripts/setup.sh)`
    : process.getuid?.() !== 0 ? 'needs root to start munged and slurmd' : false;
  test('a Slurm sweep with a task killed mid-run and rerun: the same records as in sequence, none computed twice', {
    skip: slurmSkip && process.env.RIFT_REQUIRE_SLURM !== '1' ? `${slurmSkip} (RIFT_REQUIRE_SLURM=1 makes this a failure)` : false, timeout: 20 * 60_000,
  }, async () => {
    assert.equal(seq.code, 0);
    const clusterDir = path.join(work, 'cluster');
    const start = spawnSync('bash', [path.join(ROOT, 'scripts', 'slurm-local.sh'), 'start', clusterDir], { encoding: 'utf8' });
    assert.equal(start.status, 0, `slurm-local.sh start: ${start.stdout}${start.stderr}`);
    const env = { SLURM_CONF: start.stdout.match(/^export SLURM_CONF=(.*)$/m)![1] };
    const queue = () => spawnSync('squeue', ['-h', '-o', '%i %T'], { encoding: 'utf8', env: { ...process.env, ...env } }).stdout.trim();
    try {
      const cache = path.join(work, 'slurm', 'experiments');
      const sel = ['--profile', 'smoke', '--dataset', 'cifar10', '--only', 'cifar10/rift/rift/k1', '--only', 'cifar10/rift/rift-bn/k1', '--only', 'cifar10/layer-type/bn-only', '--cache', cache];
      const args = [...sel, '--slurm', '--cpus', '2', '--mem', '2G'];
      const first = await cli('sweep', args, env);
      assert.equal(first.code, 0, first.out);
      const jobs = [...first.out.matchAll(/^submitted job (\d+): sbatch/gm)].map((m) => m[1]);
      assert.equal(jobs.length, 2, `two waves (base, MRC, curve; then the two fine-tuning runs):\n${first.out}`);
      assert.match(first.out, new RegExp(`--dependency=afterok:${jobs[0]}_\\d+:${jobs[0]}_\\d+ `), 'fine-tuning after the base and MRC elements');
      const dir = first.out.match(/^plan: (.*)\/plan\.json$/m)![1];
      const todo = readPlan(dir).tasks.filter((t) => t.state !== 'done');
      assert.ok(todo.length >= 5, 'at least 5 array tasks (base, MRC, curve, 2 fine-tuning runs)');

      const twice = await cli('sweep', args, env);
      assert.equal(twice.code, 1);
      assert.match(twice.out, /^error: sweep smoke-cifar10-[0-9a-f]{8} still has \d+ array task\(s\) in the Slurm queue .*scancel them before submitting again$/m);

      // Kill the MRC task once it has saved progress, as a node failure or `kill -9` would.
      const mrcWork = path.join(cache, 'mrc');
      await until('MRC progress', () => fs.existsSync(mrcWork) && fs.readdirSync(mrcWork).some((f) => f.endsWith('.work') && fs.existsSync(path.join(mrcWork, f, 'progress.json'))), 10 * 60_000, 50);
      const status = JSON.parse(fs.readFileSync(path.join(dir, 'status', 'cifar10__mrc.json'), 'utf8'));
      assert.equal(status.state, 'running');
      process.kill(status.pid, 'SIGKILL');
      await until('the queue to drain (the fine-tuning array cancelled: an input failed)', () => queue() === '', 10 * 60_000, 500);
      assert.equal(new ResultCache(cache).list('mrc').length, 0, 'MRC was killed before it finished');
      const mid = await cli('sweep', [...sel, '--status'], env);
      assert.match(mid.out, /^killed +cifar10\/mrc .*is gone .*a rerun resumes it$/m);
      assert.match(mid.out, /^waiting +cifar10\/rift\/rift\/k1\/seed0 +needs cifar10\/mrc /m);

      const second = await cli('sweep', args, env);
      assert.equal(second.code, 0, second.out);
      await until('the rerun to finish', () => queue() === '', 10 * 60_000, 500);
      const end = await cli('sweep', [...sel, '--status'], env);
      assert.match(end.out, new RegExp(`^${readPlan(dir).tasks.length} done, 0 running, 0 queued, 0 ready, 0 waiting, 0 failed, 0 killed$`, 'm'), end.out);
      const logs = fs.readdirSync(path.join(dir, 'slurm')).filter((d) => fs.existsSync(path.join(dir, 'slurm', d, 'logs')))
        .flatMap((d) => fs.readdirSync(path.join(dir, 'slurm', d, 'logs')).map((f) => fs.readFileSync(path.join(dir, 'slurm', d, 'logs', f), 'utf8')));
      assert.ok(logs.some((l) => /MRC: resuming after \d+ modules/.test(l)), 'the rerun resumed MRC from the killed task\'s progress');

      assertComputedOnce(cache);
      const got = records(cache);
      const want = records(seqCache);
      assert.equal(got.size, 5);
      for (const [k, v] of got) {
        assert.ok(want.has(k), `${k} (Slurm) has the key of a sequential record`);
        assert.equal(comparable(v, cache), comparable(want.get(k), seqCache), `${k}: the Slurm record equals the sequential one`);
      }
      assert.ok(new ResultCache(cache).journal().some((j) => j.kind === 'mrc' && j.resumed && j.slurmJob), 'MRC stored by a resumed Slurm task');
    } finally {
      spawnSync('scancel', ['-u', 'root'], { env: { ...process.env, ...env } });
      spawnSync('bash', [path.join(ROOT, 'scripts', 'slurm-local.sh'), 'stop', clusterDir]);
    }
  });
});
