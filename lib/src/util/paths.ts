/**
 * Where things live: the repository root and the folders the project writes (base runs,
 * the experiment cache, the report). Every module asks here, so no two parts of the code can
 * disagree on a path.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Repository root, found from this module's own location so it works both for the tsx-run
 * sources (lib/src) and the compiled package (lib/dist): the nearest ancestor holding
 * lib/package.json, else three levels up (lib/src/util → the repository).
 */
export function repoRoot(): string {
  for (let dir = __dirname; ; ) {
    if (fs.existsSync(path.join(dir, 'lib', 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve(__dirname, '..', '..', '..');
    dir = parent;
  }
}

/** `<repo>/data`: downloads (git-ignored) and the small artifacts the project produced. */
export function dataDir(): string {
  return path.join(repoRoot(), 'data');
}

/** Folder of a base PGD-AT run: `<repo>/data/runs/<dataset>-<profile>-at`. */
export function baseRunDir(config: { dataset: string; profile: string }): string {
  return path.join(dataDir(), 'runs', `${config.dataset}-${config.profile}-at`);
}

/**
 * Default experiment cache: env RIFT_CACHE_DIR (a sweep's workers and the notebooks that read
 * their records name one folder, e.g. on a cluster's shared filesystem), else
 * `<repo>/data/cache/experiments`.
 */
export function defaultCacheDir(): string {
  return path.resolve(process.env.RIFT_CACHE_DIR || path.join(dataDir(), 'cache', 'experiments'));
}

/** Folder of sweep plans, job scripts, task states and logs: `<cache dir>/../sweeps` (beside the records it fills). */
export function sweepsDir(cacheDir: string = defaultCacheDir()): string {
  return path.join(path.dirname(path.resolve(cacheDir)), 'sweeps');
}

/** The report folder: `root`, else env RIFT_REPORT_DIR, else `<repo>/report`. */
export function reportDir(root?: string): string {
  return path.resolve(root ?? process.env.RIFT_REPORT_DIR ?? path.join(repoRoot(), 'report'));
}

/** `<repo>/native`: the oneDNN addon's sources and build. */
export function nativeDir(): string {
  return path.join(repoRoot(), 'native');
}
