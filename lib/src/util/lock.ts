/**
 * Exclusive file locks that many processes on many hosts can share through a common folder
 * (a cluster's shared filesystem), so that a record is computed by one worker at a time.
 *
 * A lock is a small JSON file (`LockInfo`: host, pid, start time, label). It is created
 * atomically with its content (written to a temp file, then hard-linked to the lock name,
 * which fails when the name exists), and kept alive by a heartbeat that touches its mtime from
 * a worker thread, so that a long synchronous computation on the main thread (a native kernel,
 * an MRC epoch) cannot starve it.
 * A lock is taken over when its owner is known dead (same host, pid gone) or its heartbeat is
 * older than `staleMs` (another host, or a frozen owner). Takeover renames the stale file to a
 * unique tombstone first, so of several workers that judge the same lock stale only one wins;
 * a contender that finds it renamed a different (fresh) lock than the one it judged puts it
 * back. A worker that loses its lock anyway (frozen past `staleMs`) is told by `held()`
 * turning false, and the record cache stops its computation at the next progress save.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

/** What a lock file holds. */
export interface LockInfo {
  host: string;
  pid: number;
  /** ISO time the lock was taken. */
  startedAt: string;
  /** What the owner is doing, for status displays (e.g. "rift/3f2a…"). */
  label: string;
  /** Slurm job and array task of the owner, when it runs under Slurm. */
  slurmJob?: string;
}

/** Options of `acquireLock`. */
export interface LockOptions {
  /** A lock whose heartbeat (mtime) is older than this is stale and taken over. Default 120,000 ms. */
  staleMs: number;
  /** How often the owner touches the lock. Default 10,000 ms. */
  heartbeatMs: number;
  /** Shown in the lock file. Default the file name. */
  label: string;
}

/** Defaults of `acquireLock`. */
export const DEFAULT_LOCK: Omit<LockOptions, 'label'> = { staleMs: 120_000, heartbeatMs: 10_000 };

/** A held lock. */
export interface Lock {
  readonly file: string;
  readonly info: LockInfo;
  /** True while the file still names this owner (false after a takeover by another worker). */
  held(): boolean;
  /** Stops the heartbeat and removes the file if it is still ours. Idempotent. */
  release(): void;
}

/** A lock file's owner and age, as `readLock` reports it. */
export interface LockState extends LockInfo {
  /** Milliseconds since the last heartbeat. */
  ageMs: number;
  /** True when the owner is on this host and its pid is gone, or the heartbeat is older than staleMs. */
  stale: boolean;
}

/** This process's Slurm job, '<array job>_<array task>' for an array element, or undefined outside Slurm. */
export function slurmJobFromEnv(): string | undefined {
  const e = process.env;
  return e.SLURM_ARRAY_JOB_ID ? `${e.SLURM_ARRAY_JOB_ID}_${e.SLURM_ARRAY_TASK_ID}` : e.SLURM_JOB_ID || undefined;
}

/** True when process `pid` runs on this host (or exists but belongs to another user). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The owner of lock `file` and whether it is stale, or undefined when there is no (readable) lock. */
export function readLock(file: string, staleMs = DEFAULT_LOCK.staleMs): LockState | undefined {
  let text: string, mtime: number;
  try {
    text = fs.readFileSync(file, 'utf8');
    mtime = fs.statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
  let info: LockInfo;
  try {
    info = JSON.parse(text) as LockInfo;
  } catch {
    // A lock is written whole before it is linked into place, so unreadable text is not ours: treat it as stale.
    info = { host: '?', pid: -1, startedAt: '?', label: `unreadable lock ${file}` };
  }
  const ageMs = Math.max(0, Date.now() - mtime);
  const dead = info.host === os.hostname() && (!Number.isInteger(info.pid) || info.pid <= 0 || !pidAlive(info.pid));
  return { ...info, ageMs, stale: dead || ageMs > staleMs || info.pid === -1 };
}

function sameOwner(a: LockInfo, b: LockInfo): boolean {
  return a.host === b.host && a.pid === b.pid && a.startedAt === b.startedAt;
}

let tmpCounter = 0;
/** A name unique to this process on any host sharing the folder (pids repeat across hosts). */
const uniqueSuffix = () => `${os.hostname()}-${process.pid}-${Date.now()}-${tmpCounter++}`;

/**
 * Tries once to take the lock `file` (its folder is created). Returns the held lock, or
 * undefined when a live owner holds it. A stale lock is taken over. The heartbeat thread does
 * not keep the process alive; call `release()` when done (also on failure).
 */
export function tryAcquireLock(file: string, options: Partial<LockOptions> = {}): Lock | undefined {
  const o = { ...DEFAULT_LOCK, label: path.basename(file), ...options };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const info: LockInfo = {
    host: os.hostname(), pid: process.pid, startedAt: new Date().toISOString(), label: o.label,
    ...(slurmJobFromEnv() ? { slurmJob: slurmJobFromEnv() } : {}),
  };
  const tmp = `${file}.tmp-${uniqueSuffix()}`;
  fs.writeFileSync(tmp, `${JSON.stringify(info)}\n`);
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        fs.linkSync(tmp, file);
        return heldLock(file, info, o);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const cur = readLock(file, o.staleMs);
      if (cur === undefined) continue; // released between our link and read: try again
      if (!cur.stale) return undefined;
      // Take over: only one of several contenders renames this very file; the others find it gone.
      const tomb = `${file}.stale-${uniqueSuffix()}`;
      try {
        fs.renameSync(file, tomb);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      const renamed = readLock(tomb, o.staleMs);
      if (renamed && !sameOwner(renamed, cur)) {
        // Between our read and our rename a contender took the lock over: give its lock back.
        try {
          fs.linkSync(tomb, file);
        } catch {
          // a third worker linked in meanwhile; the one we displaced sees held() false
        }
        fs.rmSync(tomb, { force: true });
        return undefined;
      }
      fs.rmSync(tomb, { force: true });
    }
    return undefined;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

// The heartbeat thread: touches the lock while it still names its owner.
const HEARTBEAT = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { file, owner, ms } = workerData;
setInterval(() => {
  try {
    const cur = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (cur.host !== owner.host || cur.pid !== owner.pid || cur.startedAt !== owner.startedAt) return;
    const now = new Date();
    fs.utimesSync(file, now, now);
  } catch {}
}, ms);
`;

function heldLock(file: string, info: LockInfo, o: LockOptions): Lock {
  let released = false;
  const held = () => {
    try {
      return sameOwner(JSON.parse(fs.readFileSync(file, 'utf8')) as LockInfo, info);
    } catch {
      return false;
    }
  };
  const worker = new Worker(HEARTBEAT, { eval: true, workerData: { file, owner: info, ms: o.heartbeatMs } });
  worker.unref();
  return {
    file, info, held,
    release() {
      if (released) return;
      released = true;
      void worker.terminate();
      if (held()) fs.rmSync(file, { force: true });
    },
  };
}

/** Options of `acquireLock`'s waiting. */
export interface WaitOptions extends LockOptions {
  /** Poll interval while waiting. Default 1,000 ms. */
  pollMs: number;
  /** Called once when the lock is found held, with its owner (e.g. to print who is computing). */
  onWait?: (owner: LockState) => void;
  /** Checked before every attempt; when it returns true the wait ends with undefined (e.g. the record appeared). */
  done?: () => boolean;
}

/**
 * Takes lock `file`, waiting (polling) while a live owner holds it; returns undefined when
 * `done()` turns true first (the owner finished the work).
 */
export async function acquireLock(file: string, options: Partial<WaitOptions> = {}): Promise<Lock | undefined> {
  const pollMs = options.pollMs ?? 1000;
  let told = false;
  for (;;) {
    if (options.done?.()) return undefined;
    const lock = tryAcquireLock(file, options);
    if (lock) return lock;
    if (!told) {
      const owner = readLock(file, options.staleMs ?? DEFAULT_LOCK.staleMs);
      if (owner) {
        options.onWait?.(owner);
        told = true;
      }
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
