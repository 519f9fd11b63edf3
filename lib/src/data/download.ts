/**
 * Downloading and unpacking the official CIFAR archives (used by `npm run data`).
 *
 * Every step is atomic so an interrupted run leaves nothing half-written where the reader
 * looks: downloads go to `<dest>.tmp-*` and are renamed after the MD5 check; archives are
 * extracted into a `.*.tmp-*` directory next to the target and the dataset folder is renamed
 * into place only after its files check out. (`*.tmp-*` is git-ignored.)
 */
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { DATASET_FOLDERS, OFFICIAL_MD5, type DatasetName } from './cifar.js';

/** Where an official archive comes from and what it must contain. */
export interface DatasetSource {
  /** Short name used in messages. */
  name: string;
  url: string;
  /** MD5 of the archive. */
  md5: string;
  /** File name under <dir>/downloads/. */
  archive: string;
  /** Top-level folder inside the archive, moved to <dir>/<folder>. */
  folder: string;
  /** Files the extracted folder must hold; a value is the file's MD5 (checked), '' = must exist. */
  files: Record<string, string>;
}

/** The two official CIFAR "binary version" archives (MD5s from the CIFAR page's published values). */
export const DATASET_SOURCES: Readonly<Record<DatasetName, DatasetSource>> = {
  cifar10: {
    name: 'cifar10',
    url: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz',
    md5: 'c32a1d4ab5d03f1284b67883e8d87530',
    archive: 'cifar-10-binary.tar.gz',
    folder: DATASET_FOLDERS.cifar10,
    files: { ...OFFICIAL_MD5.cifar10, 'batches.meta.txt': '' },
  },
  cifar100: {
    name: 'cifar100',
    url: 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz',
    md5: '03b5dce01913d631647c71ecec9e9cb8',
    archive: 'cifar-100-binary.tar.gz',
    folder: DATASET_FOLDERS.cifar100,
    files: { ...OFFICIAL_MD5.cifar100, 'fine_label_names.txt': '', 'coarse_label_names.txt': '' },
  },
};

/** Progress of a download, passed to DownloadOptions.onProgress. */
export interface DownloadProgress {
  /** Bytes received so far. */
  received: number;
  /** Content-Length of the final response, when the server sent one. */
  total?: number;
  elapsedMs: number;
  /** Mean rate since the start of the final response. */
  bytesPerSec: number;
  /** Seconds left at the mean rate (only when total is known). */
  etaSec?: number;
  /** True for the single last call, after the body has been fully received. */
  done: boolean;
}

/** Options of downloadFile; defaults in the field comments. */
export interface DownloadOptions {
  /** Expected MD5 (hex); on mismatch the download is deleted and an error thrown. */
  md5?: string;
  onProgress?: (p: DownloadProgress) => void;
  /** Minimum time between progress calls (the final call is always made). Default 200 ms. */
  progressIntervalMs?: number;
  /** Redirects to follow. Default 5. */
  maxRedirects?: number;
  /** Abort when no data arrives for this long. Default 60000 ms. */
  idleTimeoutMs?: number;
}

/** What downloadFile wrote: final path, size and MD5 of the body. */
export interface DownloadResult {
  path: string;
  bytes: number;
  md5: string;
}

/** MD5 (hex) of a file, streamed. */
export async function md5File(file: string): Promise<string> {
  const hash = crypto.createHash('md5');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Opens `url` (http or https), following redirects; resolves with the final 200 response. */
function openUrl(url: string, redirectsLeft: number, idleTimeoutMs: number): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : u.protocol === 'http:' ? http : undefined;
    if (!mod) return reject(new Error(`Unsupported URL protocol in ${url} (expected http or https).`));
    const req = mod.get(u, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume(); // discard the redirect body so the socket is freed
        if (redirectsLeft <= 0) return reject(new Error(`Too many redirects fetching ${url}.`));
        resolve(openUrl(new URL(res.headers.location, u).toString(), redirectsLeft - 1, idleTimeoutMs));
        return;
      }
      if (status !== 200) {
        res.resume();
        return reject(new Error(`HTTP ${status} ${res.statusMessage ?? ''} fetching ${url}.`.replace(/ +\./, '.')));
      }
      res.setTimeout(idleTimeoutMs, () => res.destroy(new Error(`No data for ${idleTimeoutMs} ms from ${url}.`)));
      resolve(res);
    });
    req.setTimeout(idleTimeoutMs, () => req.destroy(new Error(`No response for ${idleTimeoutMs} ms from ${url}.`)));
    req.on('error', (e) => reject(new Error(`${e.message} fetching ${url}.`)));
  });
}

/**
 * Downloads `url` to `dest` (directories created), following redirects, hashing as it goes.
 * Writes to a temporary `<dest>.tmp-*` file renamed to `dest` only when the body is complete
 * and (if `md5` is given) matches; on any failure nothing is left at `dest` or the temp path.
 * An existing `dest` is replaced only on success.
 */
export async function downloadFile(url: string, dest: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const { md5, onProgress, progressIntervalMs, maxRedirects, idleTimeoutMs } = { progressIntervalMs: 200, maxRedirects: 5, idleTimeoutMs: 60000, ...options };
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  try {
    const res = await openUrl(url, maxRedirects, idleTimeoutMs);
    const lengthHeader = res.headers['content-length'];
    const total = lengthHeader !== undefined ? Number(lengthHeader) : undefined;
    const hash = crypto.createHash('md5');
    const out = fs.createWriteStream(tmp);
    const start = Date.now();
    let received = 0;
    let lastReport = -Infinity;
    const report = (done: boolean) => {
      const elapsedMs = Date.now() - start;
      const bytesPerSec = elapsedMs > 0 ? (received * 1000) / elapsedMs : 0;
      const etaSec = total !== undefined && bytesPerSec > 0 ? (total - received) / bytesPerSec : undefined;
      onProgress?.({ received, total, elapsedMs, bytesPerSec, etaSec, done });
    };
    await new Promise<void>((resolve, reject) => {
      const failWith = (e: Error) => {
        res.destroy();
        out.destroy();
        reject(e);
      };
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        hash.update(chunk);
        if (!out.write(chunk)) {
          res.pause(); // back-pressure: do not buffer the whole archive in memory
          out.once('drain', () => res.resume());
        }
        const now = Date.now();
        if (onProgress && now - lastReport >= progressIntervalMs) {
          lastReport = now;
          report(false);
        }
      });
      res.on('error', failWith);
      res.on('aborted', () => failWith(new Error(`Connection closed after ${received} bytes fetching ${url}.`)));
      out.on('error', failWith);
      res.on('end', () => {
        if (total !== undefined && received !== total) return failWith(new Error(`Incomplete download of ${url}: got ${received} of ${total} bytes.`));
        out.end(() => resolve());
      });
    });
    report(true);
    const actual = hash.digest('hex');
    if (md5 && actual !== md5.toLowerCase()) {
      throw new Error(`MD5 mismatch for ${dest} (from ${url}): expected ${md5}, got ${actual}. The download was deleted; try again.`);
    }
    fs.renameSync(tmp, dest);
    return { path: dest, bytes: received, md5: actual };
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Options of extractArchive. */
export interface ExtractOptions {
  /** Directory that receives the folder (and the temporary extraction directory). */
  destDir: string;
  /** Top-level folder expected in the archive; it becomes <destDir>/<folder>. */
  folder: string;
  /** Called on the extracted folder before it is moved into place; throw to reject it. */
  check?: (extractedDir: string) => void | Promise<void>;
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 16 * 1024 * 1024 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${String(stderr).trim() || err.message}`));
      else resolve();
    });
  });
}

/**
 * Extracts a .tar.gz with the system `tar -xzf` into a temporary directory inside `destDir`,
 * checks that it holds `folder` (and runs `check`), then renames the folder to
 * `<destDir>/<folder>`, replacing an existing one. The temporary directory is always removed,
 * so a failure leaves the previous state untouched. Returns the final folder path.
 */
export async function extractArchive(archive: string, options: ExtractOptions): Promise<string> {
  const { destDir, folder, check } = options;
  fs.mkdirSync(destDir, { recursive: true });
  const target = path.join(destDir, folder);
  // The name matches the `*.tmp-*` ignore rule, so leftovers of a killed run are never committed.
  const tmp = fs.mkdtempSync(path.join(destDir, `.${folder}.tmp-`));
  try {
    await run('tar', ['-xzf', archive, '-C', tmp]);
    const extracted = path.join(tmp, folder);
    if (!fs.existsSync(extracted) || !fs.statSync(extracted).isDirectory()) {
      throw new Error(`${archive} does not contain the folder ${folder}/ (found: ${fs.readdirSync(tmp).join(', ') || 'nothing'}).`);
    }
    await check?.(extracted);
    if (fs.existsSync(target)) {
      // Move the old folder aside first: rename cannot replace a non-empty directory.
      const old = path.join(tmp, `${folder}.old`);
      fs.renameSync(target, old);
    }
    fs.renameSync(extracted, target);
    return target;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Checks that `dir` holds every file of `source.files` with the listed MD5s. Returns a list of
 * problems (empty = verified).
 */
export async function checkDatasetFolder(source: DatasetSource, dir: string): Promise<string[]> {
  const problems: string[] = [];
  for (const [name, md5] of Object.entries(source.files)) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) {
      problems.push(`${file} is missing`);
      continue;
    }
    if (md5) {
      const actual = await md5File(file);
      if (actual !== md5) problems.push(`${file}: MD5 expected ${md5}, got ${actual}`);
    }
  }
  return problems;
}

/** Options of prepareDataset. */
export interface PrepareOptions {
  /** Data directory: archives go to <dir>/downloads/, the folder to <dir>/<source.folder>. */
  dir: string;
  /** Progress callback for the download (e.g. progressReporter(...)). */
  onProgress?: (p: DownloadProgress) => void;
  /** Status messages. Default: none. */
  log?: (msg: string) => void;
}

/** What prepareDataset did. */
export interface PrepareResult {
  folder: string;
  downloaded: boolean;
  extracted: boolean;
}

/**
 * Makes `<dir>/<source.folder>` hold the verified dataset: skips everything if it already
 * verifies; else reuses `<dir>/downloads/<archive>` if its MD5 matches (downloading it
 * otherwise), extracts it, and checks the extracted files before moving them into place.
 */
export async function prepareDataset(source: DatasetSource, options: PrepareOptions): Promise<PrepareResult> {
  const { dir, onProgress, log } = { log: (_: string) => {}, ...options };
  const folder = path.join(dir, source.folder);
  if (fs.existsSync(folder)) {
    const problems = await checkDatasetFolder(source, folder);
    if (problems.length === 0) {
      log(`${source.name}: ${folder} already present and verified`);
      return { folder, downloaded: false, extracted: false };
    }
    log(`${source.name}: ${folder} does not verify (${problems[0]}${problems.length > 1 ? `, +${problems.length - 1} more` : ''}); re-extracting`);
  }
  const archive = path.join(dir, 'downloads', source.archive);
  let downloaded = false;
  if (fs.existsSync(archive) && (await md5File(archive)) === source.md5) {
    log(`${source.name}: using ${archive} (MD5 verified)`);
  } else {
    if (fs.existsSync(archive)) log(`${source.name}: ${archive} has the wrong MD5; downloading again`);
    log(`${source.name}: downloading ${source.url}`);
    try {
      await downloadFile(source.url, archive, { md5: source.md5, onProgress });
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      // Offline machines can still be set up by copying the archive in by hand.
      throw new Error(`${msg}\nIf this machine cannot reach ${new URL(source.url).host}, copy ${source.archive} (MD5 ${source.md5}) to ${archive} and run again.`);
    }
    downloaded = true;
  }
  log(`${source.name}: extracting ${archive}`);
  await extractArchive(archive, {
    destDir: dir,
    folder: source.folder,
    check: async (extracted) => {
      const problems = await checkDatasetFolder(source, extracted);
      if (problems.length > 0) throw new Error(`${archive} extracted but its contents do not verify: ${problems.join('; ')}`);
    },
  });
  log(`${source.name}: ready in ${folder}`);
  return { folder, downloaded, extracted: true };
}

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

function clock(sec: number): string {
  const s = Math.max(0, Math.round(sec));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return `${h > 0 ? `${h}:${String(m).padStart(2, '0')}` : m}:${String(r).padStart(2, '0')}`;
}

/** One progress line: "label  12.3/162.6 MB  7.6%  4.1 MB/s  ETA 0:36". */
export function formatProgress(label: string, p: DownloadProgress): string {
  const size = p.total !== undefined ? `${mb(p.received)}/${mb(p.total)} MB  ${((100 * p.received) / Math.max(p.total, 1)).toFixed(1)}%` : `${mb(p.received)} MB`;
  const tail = p.done ? `done in ${clock(p.elapsedMs / 1000)}` : p.etaSec !== undefined ? `ETA ${clock(p.etaSec)}` : '';
  return `${label}  ${size}  ${mb(p.bytesPerSec)} MB/s  ${tail}`.trimEnd();
}

/**
 * A progress callback that prints formatProgress lines to `stream` (default stderr): one line
 * rewritten with \r on a TTY; otherwise (logs, CI) a new line every `everySec` seconds
 * (default 10) and at the end.
 */
export function progressReporter(label: string, stream: NodeJS.WriteStream = process.stderr, everySec = 10): (p: DownloadProgress) => void {
  let lastLine = -Infinity;
  return (p) => {
    const line = formatProgress(label, p);
    if (stream.isTTY) {
      stream.write(`\r${line}\x1b[K${p.done ? '\n' : ''}`);
    } else if (p.done || p.elapsedMs - lastLine >= everySec * 1000) {
      lastLine = p.elapsedMs;
      stream.write(`${line}\n`);
    }
  };
}
