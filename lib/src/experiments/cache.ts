/**
 * Experiments as data: every run returns a plain JSON record (config,
 * input checkpoint hash, seed, backend, wall times, metrics, curves) stored under a key that
 * is a hash of what determines the result, so a rerun reuses finished work and resumes
 * unfinished work.
 *
 * Layout under the cache directory (default <repo>/data/cache/experiments, git-ignored):
 *
 *     <kind>/<key>.json     finished record (an envelope, see `CacheEnvelope`)
 *     <kind>/<key>.work/    partial state of an unfinished computation (progress.json and
 *                           whatever the computation keeps there, e.g. per-epoch checkpoints)
 *
 *     <kind>/<key>.lock     the worker computing it (util/lock.ts: host, pid, heartbeat)
 *     journal/<worker>.jsonl one line per record a worker computed and stored (kind, key, host,
 *                           pid, seconds): one file per process, since appends from several
 *                           hosts to one file are not atomic on NFS
 *
 * Writes are atomic (temp file + rename), so a crash never leaves a half-written record that
 * looks finished. Many workers can share one cache folder (a sweep on a cluster): a
 * computation holds the record's lock, a second worker on the same record waits for it (or,
 * with `lock: 'skip'`, is told at once) and then reads the finished record, and a dead
 * worker's lock is taken over, its work directory resumed.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { writeFileAtomic } from '../util/fs.js';
import { defaultCacheDir } from '../util/paths.js';
import { acquireLock, tryAcquireLock, readLock, DEFAULT_LOCK, type Lock, type LockState } from '../util/lock.js';

/**
 * Canonical JSON of a value, for hashing: object keys sorted (recursively, by UTF-16 code
 * units), `undefined` object fields dropped (as JSON does; `undefined` in an array becomes
 * null), typed arrays written as plain arrays (so a Float32Array and the array of the same
 * float32 values give the same text), objects with `toJSON` (e.g. Date) serialised through
 * it, and the non-finite numbers written as the strings "NaN", "Infinity", "-Infinity"
 * (plain JSON would turn them into null, hiding a difference). Throws on what has no
 * faithful JSON form (functions, symbols, bigints, Map, Set, cycles).
 */
export function canonicalJson(value: unknown): string {
  const seen = new Set<object>();
  const walk = (v: unknown, where: string): string | undefined => {
    if (v === null) return 'null';
    switch (typeof v) {
      case 'undefined':
        return undefined;
      case 'boolean':
        return v ? 'true' : 'false';
      case 'string':
        return JSON.stringify(v);
      case 'number':
        return Number.isFinite(v) ? JSON.stringify(v) : JSON.stringify(String(v));
      case 'bigint':
      case 'function':
      case 'symbol':
        throw new Error(`hashKey: cannot hash a ${typeof v} at ${where}`);
    }
    const o = v as object;
    if (ArrayBuffer.isView(o) && !(o instanceof DataView)) {
      return walk(Array.from(o as unknown as ArrayLike<number | bigint>), where);
    }
    if (o instanceof Map || o instanceof Set) throw new Error(`hashKey: cannot hash a ${o.constructor.name} at ${where} (convert it to an array or object)`);
    if (typeof (o as { toJSON?: unknown }).toJSON === 'function') return walk((o as { toJSON(): unknown }).toJSON(), where);
    if (seen.has(o)) throw new Error(`hashKey: circular reference at ${where}`);
    seen.add(o);
    let text: string;
    if (Array.isArray(o)) {
      text = `[${o.map((x, i) => walk(x, `${where}[${i}]`) ?? 'null').join(',')}]`;
    } else {
      const parts: string[] = [];
      for (const k of Object.keys(o).sort()) {
        const s = walk((o as Record<string, unknown>)[k], `${where}.${k}`);
        if (s !== undefined) parts.push(`${JSON.stringify(k)}:${s}`);
      }
      text = `{${parts.join(',')}}`;
    }
    seen.delete(o); // only cycles are errors; the same object twice in a tree is fine
    return text;
  };
  return walk(value, '$') ?? 'null';
}

/**
 * Cache key of a value: the first 16 hex digits (64 bits) of the SHA-256 of its
 * `canonicalJson`, so the same config + input hashes give the same key whatever the key
 * order of the objects.
 */
export function hashKey(value: unknown): string {
  return crypto.createHash('sha256').update(canonicalJson(value)).digest('hex').slice(0, 16);
}


/** What is stored in <kind>/<key>.json around the caller's record. */
export interface CacheEnvelope<T = unknown> {
  format: typeof CACHE_FORMAT;
  kind: string;
  key: string;
  /** ISO time of the write. */
  savedAt: string;
  /** What the key was hashed from, when known (`getOrCompute` stores it): for auditing. */
  keyMaterial?: unknown;
  record: T;
}

/** Format tag of the cache files. */
export const CACHE_FORMAT = 'rift-bn/result-cache@1';

/** Handed to a computation run by `getOrCompute`. */
export interface ComputeContext {
  /** The cache key of this computation. */
  key: string;
  /** The record kind. */
  kind: string;
  /**
   * Scratch directory <dir>/<kind>/<key>.work/ (created) for partial state, e.g. per-epoch
   * checkpoints. It survives a failed or interrupted computation, so a rerun can resume, and
   * is deleted once the record is stored.
   */
  dir: string;
  /** True when the work directory already held progress from an earlier, unfinished run. */
  resumed: boolean;
  /** Atomically stores a JSON-serialisable progress object (work dir/progress.json). */
  saveProgress(progress: unknown): void;
  /** The last saved progress, or undefined if none (an unreadable file is warned about and ignored). */
  loadProgress<P = unknown>(): P | undefined;
}

/** Result of `getOrCompute`. */
export interface CacheResult<T> {
  /** The record as stored (after the JSON round trip, so fresh and cached results look the same). */
  record: T;
  /** True when the record came from the cache, false when it was just computed. */
  cached: boolean;
  /** The cache key. */
  key: string;
}

/** This process's journal file name: host, pid and start time (pids repeat across hosts and over time). */
const JOURNAL_NAME = `${os.hostname()}-${process.pid}-${Date.now()}`;

const describeOwner = (o: LockState | undefined) => (o ? `${o.host} pid ${o.pid}${o.slurmJob ? ` (Slurm job ${o.slurmJob})` : ''}` : 'another worker');

/** Whether this process renders only (env RIFT_CACHE_READONLY=1, as `npm start -- --render-only` sets it): caches are read-only and no base model is trained. */
export function readOnlyFromEnv(): boolean {
  return process.env.RIFT_CACHE_READONLY === '1';
}

/** Thrown by `getOrCompute` of a read-only cache when the record is not there. */
export class MissingRecordError extends Error {
  constructor(readonly kind: string, readonly key: string, cacheDir: string) {
    super(`result cache: record ${kind}/${key} is not in ${cacheDir} and the cache is read-only ` +
      `(RIFT_CACHE_READONLY=1, e.g. npm start -- --render-only): compute it first, e.g. npm run sweep -- --local`);
    this.name = 'MissingRecordError';
  }
}

/** Thrown by `getOrCompute` with `lock: 'skip'` when another live worker is computing the record. */
export class RecordLockedError extends Error {
  constructor(readonly kind: string, readonly key: string, readonly owner: LockState) {
    super(`result cache: ${kind}/${key} is being computed by ${describeOwner(owner)} since ${owner.startedAt}`);
    this.name = 'RecordLockedError';
  }
}

/** One line of <dir>/journal/<worker>.jsonl: a record computed and stored. */
export interface JournalEntry {
  kind: string;
  key: string;
  host: string;
  pid: number;
  slurmJob?: string;
  savedAt: string;
  /** Wall seconds of the computation (this attempt; a resumed one counts from its restart). */
  seconds: number;
  /** True when it resumed an earlier attempt's work directory. */
  resumed: boolean;
}

/** Options of `ResultCache`. */
export interface ResultCacheOptions {
  /** Receives one line per problem worth knowing (e.g. an unreadable record). Default: console.warn (stderr). */
  warn: (message: string) => void;
  /**
   * Never compute: a missing record throws `MissingRecordError` (the notebooks rendering what a
   * sweep made; the sweep's planner finding what is done). Default: `readOnlyFromEnv()`.
   */
  readOnly: boolean;
  /**
   * While another live worker holds a record's lock: 'wait' for it and then read its record
   * (default), or 'skip' (throw `RecordLockedError` at once, so a scheduler can move on).
   */
  lock: 'wait' | 'skip';
  /** Lock heartbeat and staleness (util/lock.ts DEFAULT_LOCK). */
  staleMs: number;
  heartbeatMs: number;
}

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

function checkSegment(what: string, s: string): void {
  if (typeof s !== 'string' || !SEGMENT.test(s)) {
    throw new Error(`result cache: ${what} '${String(s)}' must be a single path segment of letters, digits, '.', '_' or '-' (not starting with '.' or '-')`);
  }
}

/** JSON text of a record: typed arrays become plain arrays (JSON.stringify would make objects of them). */
function recordJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (ArrayBuffer.isView(v) && !(v instanceof DataView) ? Array.from(v as unknown as ArrayLike<number>) : v), 1);
}

/**
 * A directory of finished experiment records, keyed by kind (e.g. 'mrc', 'finetune') and a
 * hash key (see `hashKey`). Records are plain JSON; note that JSON turns NaN/Infinity into
 * null and typed arrays into arrays.
 */
export class ResultCache {
  /** Absolute cache directory. */
  readonly dir: string;
  readonly readOnly: boolean;
  private readonly warn: (message: string) => void;
  private readonly o: Pick<ResultCacheOptions, 'lock' | 'staleMs' | 'heartbeatMs'>;

  /**
   * @param dir cache directory, default `defaultCacheDir()` (env RIFT_CACHE_DIR, else <repo>/data/cache/experiments; created on first write)
   * @param options e.g. `{ warn }` to collect warnings instead of printing them
   */
  constructor(dir: string = defaultCacheDir(), options: Partial<ResultCacheOptions> = {}) {
    this.dir = path.resolve(dir);
    this.warn = options.warn ?? ((m) => console.warn(m));
    this.readOnly = options.readOnly ?? readOnlyFromEnv();
    this.o = { lock: options.lock ?? 'wait', staleMs: options.staleMs ?? DEFAULT_LOCK.staleMs, heartbeatMs: options.heartbeatMs ?? DEFAULT_LOCK.heartbeatMs };
  }

  /** Lock file of a record's computation: <dir>/<kind>/<key>.lock. */
  lockPath(kind: string, key: string): string {
    return this.path(kind, key).replace(/\.json$/, '.lock');
  }

  /** Who is computing kind/key (and whether that worker looks dead), or undefined when nobody is. */
  lockState(kind: string, key: string): LockState | undefined {
    return readLock(this.lockPath(kind, key), this.o.staleMs);
  }

  /** <dir>/journal/: one file per worker process, each line a record it computed and stored. */
  journalDir(): string {
    return path.join(this.dir, 'journal');
  }

  /** Every worker's journal entries, by time stored (empty when none; unreadable lines are skipped with a warning). */
  journal(): JournalEntry[] {
    let files: string[];
    try {
      files = fs.readdirSync(this.journalDir()).filter((f) => f.endsWith('.jsonl'));
    } catch {
      return [];
    }
    const out: JournalEntry[] = [];
    for (const f of files) {
      const file = path.join(this.journalDir(), f);
      for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        try {
          out.push(JSON.parse(line) as JournalEntry);
        } catch {
          this.warn(`result cache: skipping an unreadable line of ${file}`);
        }
      }
    }
    return out.sort((a, b) => (a.savedAt < b.savedAt ? -1 : a.savedAt > b.savedAt ? 1 : 0));
  }

  /** File of a finished record: <dir>/<kind>/<key>.json. kind and key must be single path segments. */
  path(kind: string, key: string): string {
    checkSegment('kind', kind);
    checkSegment('key', key);
    return path.join(this.dir, kind, `${key}.json`);
  }

  /** Work directory of an unfinished computation: <dir>/<kind>/<key>.work (not created here). */
  workDir(kind: string, key: string): string {
    checkSegment('kind', kind);
    checkSegment('key', key);
    return path.join(this.dir, kind, `${key}.work`);
  }

  /**
   * The stored envelope of a record, or undefined if there is none. A file that cannot be read
   * as a record of this kind and key (corrupt, truncated, foreign) counts as missing, with one
   * warning, so that the work is redone rather than the run aborted.
   */
  getEnvelope<T = unknown>(kind: string, key: string): CacheEnvelope<T> | undefined {
    const file = this.path(kind, key);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      this.warn(`result cache: cannot read ${file} (${(e as Error).message}); treating it as missing`);
      return undefined;
    }
    let env: CacheEnvelope<T>;
    try {
      env = JSON.parse(text) as CacheEnvelope<T>;
    } catch (e) {
      this.warn(`result cache: ${file} is not valid JSON (${(e as Error).message}); treating it as missing, it will be recomputed`);
      return undefined;
    }
    const problem =
      env === null || typeof env !== 'object' ? 'not an object'
      : env.format !== CACHE_FORMAT ? `format '${String(env.format)}', expected '${CACHE_FORMAT}'`
      : env.kind !== kind || env.key !== key ? `holds ${String(env.kind)}/${String(env.key)}`
      : !('record' in env) ? 'no record field'
      : undefined;
    if (problem) {
      this.warn(`result cache: ${file}: ${problem}; treating it as missing, it will be recomputed`);
      return undefined;
    }
    return env;
  }

  /** The finished record of kind/key, or undefined (missing or unreadable; see `getEnvelope`). */
  get<T = unknown>(kind: string, key: string): T | undefined {
    return this.getEnvelope<T>(kind, key)?.record;
  }

  /**
   * Stores a record atomically (temp file + rename), replacing any previous one.
   * @param keyMaterial optional: what the key was hashed from, kept in the envelope for auditing
   */
  put(kind: string, key: string, record: unknown, keyMaterial?: unknown): void {
    const env: CacheEnvelope = { format: CACHE_FORMAT, kind, key, savedAt: new Date().toISOString(), keyMaterial, record };
    writeFileAtomic(this.path(kind, key), `${recordJson(env)}\n`);
  }

  /** Keys of the finished records of a kind (sorted; empty if none). */
  list(kind: string): string[] {
    checkSegment('kind', kind);
    let names: string[];
    try {
      names = fs.readdirSync(path.join(this.dir, kind));
    } catch {
      return [];
    }
    return names.filter((f) => f.endsWith('.json') && SEGMENT.test(f.slice(0, -5))).map((f) => f.slice(0, -5)).sort();
  }

  /**
   * The finished record for `hashKey(keyMaterial)` if there is one; otherwise runs `compute`
   * with a `ComputeContext` (work directory, saveProgress/loadProgress for resuming), stores
   * what it returns, deletes the work directory and returns the stored record. If `compute`
   * throws, nothing is stored, the work directory is kept for the next attempt, and the
   * error propagates. The computation holds the record's lock (`lockPath`); while another
   * live worker holds it, this call waits and returns that worker's record (`lock: 'wait'`)
   * or throws `RecordLockedError` (`lock: 'skip'`). A read-only cache throws
   * `MissingRecordError` instead of computing. Each stored record adds a journal line.
   * @param keyMaterial everything that determines the result: config, input hashes, seed…
   */
  async getOrCompute<T>(kind: string, keyMaterial: unknown, compute: (ctx: ComputeContext) => Promise<T>): Promise<CacheResult<T>> {
    const key = hashKey(keyMaterial);
    const found = this.getEnvelope<T>(kind, key);
    if (found) return { record: found.record, cached: true, key };
    if (this.readOnly) throw new MissingRecordError(kind, key, this.dir);

    const lockFile = this.lockPath(kind, key);
    const lockOpts = { staleMs: this.o.staleMs, heartbeatMs: this.o.heartbeatMs, label: `${kind}/${key}` };
    let lock: Lock | undefined;
    if (this.o.lock === 'skip') {
      lock = tryAcquireLock(lockFile, lockOpts);
      if (!lock) {
        const owner = readLock(lockFile, this.o.staleMs);
        if (owner) throw new RecordLockedError(kind, key, owner);
        lock = await acquireLock(lockFile, lockOpts);
      }
    } else {
      const onWait = (w: LockState) => this.warn(`result cache: ${kind}/${key} is being computed by ${describeOwner(w)}; waiting for it`);
      lock = await acquireLock(lockFile, { ...lockOpts, onWait, done: () => fs.existsSync(this.path(kind, key)) });
      if (!lock) {
        const theirs = this.getEnvelope<T>(kind, key);
        if (theirs) return { record: theirs.record, cached: true, key };
        // The file there is not a readable record (getEnvelope warned): compute over it.
        lock = await acquireLock(lockFile, { ...lockOpts, onWait });
      }
    }
    try {
      // Finished by another worker while we waited (or between our first look and the lock).
      const now = this.getEnvelope<T>(kind, key);
      if (now) return { record: now.record, cached: true, key };
      return await this.computeLocked(kind, key, keyMaterial, compute, lock!);
    } finally {
      lock?.release();
    }
  }

  private async computeLocked<T>(kind: string, key: string, keyMaterial: unknown, compute: (ctx: ComputeContext) => Promise<T>, lock: Lock): Promise<CacheResult<T>> {
    const t0 = Date.now();
    const dir = this.workDir(kind, key);
    fs.mkdirSync(dir, { recursive: true });
    const progressFile = path.join(dir, 'progress.json');
    const ctx: ComputeContext = {
      key,
      kind,
      dir,
      resumed: fs.existsSync(progressFile),
      saveProgress: (progress) => {
        // A worker whose lock was taken over (it looked dead) stops here, so two never share the work directory.
        if (!lock.held()) {
          throw new Error(`result cache: the lock of ${kind}/${key} was taken over by ${describeOwner(this.lockState(kind, key))} while this worker computed it ` +
            `(no heartbeat for ${this.o.staleMs / 1000} s); stopping, the other worker finishes it`);
        }
        writeFileAtomic(progressFile, recordJson(progress));
      },
      loadProgress: <P>() => {
        let text: string;
        try {
          text = fs.readFileSync(progressFile, 'utf8');
        } catch {
          return undefined;
        }
        try {
          return JSON.parse(text) as P;
        } catch (e) {
          this.warn(`result cache: ignoring unreadable progress ${progressFile} (${(e as Error).message}); starting over`);
          return undefined;
        }
      },
    };
    const record = await compute(ctx);
    if (record === undefined) throw new Error(`result cache: the computation of ${kind}/${key} returned undefined; a record must be a JSON value`);
    const stillHeld = lock.held();
    if (!stillHeld) this.warn(`result cache: the lock of ${kind}/${key} was taken over by ${describeOwner(this.lockState(kind, key))} while this worker computed it; storing the record anyway (same key, equivalent record) and leaving the work directory to that worker`);
    this.put(kind, key, record, keyMaterial);
    const entry: JournalEntry = {
      kind, key, host: os.hostname(), pid: process.pid, ...(lock.info.slurmJob ? { slurmJob: lock.info.slurmJob } : {}),
      savedAt: new Date().toISOString(), seconds: (Date.now() - t0) / 1000, resumed: ctx.resumed,
    };
    fs.mkdirSync(this.journalDir(), { recursive: true });
    fs.appendFileSync(path.join(this.journalDir(), `${JOURNAL_NAME}.jsonl`), `${JSON.stringify(entry)}\n`);
    if (stillHeld) fs.rmSync(dir, { recursive: true, force: true });
    // Return what a later cached call will return (typed arrays → arrays, NaN → null, …).
    return { record: JSON.parse(recordJson(record)) as T, cached: false, key };
  }
}
