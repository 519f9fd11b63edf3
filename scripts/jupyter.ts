/**
 * Jupyter plumbing shared by `npm run setup:jupyter`, `npm run jupyter` and the notebook runner.
 *
 *   tsx scripts/jupyter.ts install-kernel   registers the tslab kernel in <repo>/.jupyter (idempotent)
 *   tsx scripts/jupyter.ts notebook [args]  opens the notebooks in Jupyter Notebook (classic 6.4)
 *
 * Jupyter itself comes from Debian (scripts/setup.sh: jupyter-notebook, jupyter-nbconvert, ...).
 * The kernel spec lives inside the repository (git-ignored `.jupyter/`), so nothing is written to
 * the user's own Jupyter folders: Jupyter finds it through JUPYTER_PATH, set by `jupyterEnv`.
 * The kernel is installed with /usr/bin/python3 (the `python3` on PATH may be another Python
 * without jupyter_client) and points at this repo's `node_modules/.bin/tslab` by absolute path.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runMain } from './cli.js';
import { repoRoot } from '../lib/src/util/paths.js';

/** The Python that has Debian's jupyter_client: /usr/bin/python3 when present. */
export function jupyterPython(): string {
  return fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

/** Where the kernel spec goes: <repo>/.jupyter (prefix) and its share/jupyter (JUPYTER_PATH). */
export function jupyterPrefix(root = repoRoot()): string {
  return path.join(root, '.jupyter');
}

export function tslabBinary(root = repoRoot()): string {
  return path.join(root, 'node_modules', '.bin', 'tslab');
}

/** Environment for jupyter commands: JUPYTER_PATH with the repo's kernel, node_modules/.bin first on PATH. */
export function jupyterEnv(root = repoRoot(), extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const share = path.join(jupyterPrefix(root), 'share', 'jupyter');
  const bin = path.join(root, 'node_modules', '.bin');
  const jp = process.env.JUPYTER_PATH ? `${share}${path.delimiter}${process.env.JUPYTER_PATH}` : share;
  return { ...process.env, JUPYTER_PATH: jp, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}`, ...extra };
}

/** Why Jupyter cannot run here (undefined when `jupyter nbconvert` works). */
export function jupyterMissing(root = repoRoot()): string | undefined {
  const r = spawnSync('jupyter', ['nbconvert', '--version'], { env: jupyterEnv(root), encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    return 'Jupyter (jupyter nbconvert) is not installed: run `bash scripts/setup.sh`, or install Debian\'s ' +
      'jupyter-notebook jupyter-nbconvert python3-nbclient python3-ipykernel jupyter-client (see environment.md)';
  }
  return undefined;
}

/** True when the repo's kernel spec exists and points at this repo's tslab. */
export function kernelInstalled(root = repoRoot()): boolean {
  const spec = path.join(jupyterPrefix(root), 'share', 'jupyter', 'kernels', 'tslab', 'kernel.json');
  try {
    const k = JSON.parse(fs.readFileSync(spec, 'utf8')) as { argv?: string[] };
    return k.argv?.[0] === tslabBinary(root) && fs.existsSync(tslabBinary(root));
  } catch {
    return false;
  }
}

/** Registers the tslab kernel into <repo>/.jupyter unless it already is; throws with tslab's output on failure. */
export function ensureKernel(root = repoRoot(), log: (s: string) => void = () => {}): void {
  if (kernelInstalled(root)) return;
  const tslab = tslabBinary(root);
  if (!fs.existsSync(tslab)) throw new Error(`${tslab} not found: run \`npm install\` first`);
  const r = spawnSync(tslab, ['install', `--python=${jupyterPython()}`, `--prefix=${jupyterPrefix(root)}`, `--binary=${tslab}`], {
    env: jupyterEnv(root), encoding: 'utf8',
  });
  if (r.error || r.status !== 0) {
    throw new Error(`tslab install failed (${r.error?.message ?? `exit ${r.status}`}): ${(r.stderr || r.stdout || '').trim()}`);
  }
  if (!kernelInstalled(root)) throw new Error(`tslab install ran but ${jupyterPrefix(root)} holds no kernel spec for ${tslab}`);
  log(`jupyter: tslab kernel registered in ${path.relative(root, jupyterPrefix(root))}/ (TypeScript and JavaScript kernels)`);
}

if (require.main === module) {
  runMain(async () => {
    const [cmd, ...rest] = process.argv.slice(2);
    const root = repoRoot();
    const usage = 'usage: npm run setup:jupyter (registers the tslab kernel in <repo>/.jupyter) | ' +
      'npm run jupyter [-- <jupyter notebook args>] (opens notebooks/ in Jupyter Notebook; `-- --help` shows Jupyter\'s own options)';
    if (cmd === 'install-kernel' && rest.length) {
      if (rest.some((a) => a === '--help' || a === '-h')) return console.log(usage);
      throw new Error(`install-kernel takes no arguments, got '${rest.join(' ')}'; ${usage}`);
    }
    if (cmd === 'install-kernel') {
      const missing = jupyterMissing(root);
      if (missing) {
        // Not fatal for setup on machines without apt: the library, tests and CLIs work without Jupyter.
        console.log(`setup:jupyter: ${missing}; skipping the kernel registration`);
        return;
      }
      ensureKernel(root, console.log);
      if (kernelInstalled(root)) console.log(`setup:jupyter: tslab kernel ready (${tslabBinary(root)})`);
    } else if (cmd === 'notebook') {
      const missing = jupyterMissing(root);
      if (missing) throw new Error(missing);
      ensureKernel(root, console.log);
      // notebooks/ unless the caller names another folder (Jupyter refuses the option twice).
      const ownDir = rest.some((a) => a.startsWith('--notebook-dir') || a.startsWith('--NotebookApp.notebook_dir'));
      const args = ['notebook', ...(ownDir ? [] : [`--notebook-dir=${path.join(root, 'notebooks')}`]), ...(process.getuid?.() === 0 ? ['--allow-root'] : []), ...rest];
      const r = spawnSync('jupyter', args, { env: jupyterEnv(root), stdio: 'inherit' });
      process.exitCode = r.status ?? 1;
    } else {
      throw new Error(`unknown command '${cmd ?? ''}'; ${usage}`);
    }
  });
}
