import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  downloadFile, extractArchive, formatProgress, prepareDataset, progressReporter, type DatasetSource, type DownloadProgress,
} from '../lib/src/data/download.js';

let tmp: string;
let archive: Buffer;
let archiveMd5: string;
let server: http.Server;
let base: string;
const hits: Record<string, number> = {};

/** Builds fake-dataset.tar.gz (folder fake-ds/ with two files, one of them 200 kB random). */
function buildArchive(dir: string): string {
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'fake-ds'), { recursive: true });
  fs.writeFileSync(path.join(src, 'fake-ds', 'a.bin'), crypto.randomBytes(200_000));
  fs.writeFileSync(path.join(src, 'fake-ds', 'names.txt'), 'x\ny\n');
  const out = path.join(dir, 'fake.tar.gz');
  execFileSync('tar', ['-czf', out, '-C', src, 'fake-ds']);
  return out;
}

function md5(buf: Buffer): string {
  return crypto.createHash('md5').update(buf).digest('hex');
}

/** Files under a directory, recursively, relative to it. */
function listAll(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true }).map(String).sort();
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rift-download-test-'));
  archive = fs.readFileSync(buildArchive(tmp));
  archiveMd5 = md5(archive);
  server = http.createServer((req, res) => {
    const url = req.url ?? '';
    hits[url] = (hits[url] ?? 0) + 1;
    if (url === '/redirect') {
      res.writeHead(302, { location: '/files/fake.tar.gz' });
      res.end();
    } else if (url === '/files/fake.tar.gz') {
      // Send in 8 slices with small pauses so progress is reported more than once.
      res.writeHead(200, { 'content-length': archive.length, 'content-type': 'application/gzip' });
      const step = Math.ceil(archive.length / 8);
      let off = 0;
      const send = () => {
        if (off >= archive.length) return res.end();
        res.write(archive.subarray(off, off + step));
        off += step;
        setTimeout(send, 5);
      };
      send();
    } else if (url === '/broken') {
      // Announce the full size, send half, then drop the connection.
      res.writeHead(200, { 'content-length': archive.length });
      res.write(archive.subarray(0, archive.length >> 1), () => setTimeout(() => res.destroy(), 20));
    } else {
      res.writeHead(404);
      res.end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('downloadFile', () => {
  test('follows a redirect, reports progress, verifies the MD5', async () => {
    const dir = path.join(tmp, 'dl-ok');
    const dest = path.join(dir, 'downloads', 'fake.tar.gz');
    const seen: DownloadProgress[] = [];
    const r = await downloadFile(`${base}/redirect`, dest, { md5: archiveMd5, onProgress: (p) => seen.push(p), progressIntervalMs: 0 });
    assert.equal(r.bytes, archive.length);
    assert.equal(r.md5, archiveMd5);
    assert.deepEqual(fs.readFileSync(dest), archive);
    assert.deepEqual(listAll(path.dirname(dest)), ['fake.tar.gz'], 'no temp file left');
    assert.ok(seen.length >= 3, `progress calls: ${seen.length}`);
    assert.ok(seen.every((p, i) => i === 0 || p.received >= seen[i - 1].received));
    assert.ok(seen.every((p) => p.total === archive.length));
    const last = seen[seen.length - 1];
    assert.equal(last.done, true);
    assert.equal(seen.filter((p) => p.done).length, 1);
    assert.equal(last.received, archive.length);
    assert.match(formatProgress('fake', seen[1]), /^fake {2}\d+\.\d\/\d+\.\d MB {2}\d+\.\d% {2}[\d.]+ MB\/s/);
    assert.match(formatProgress('fake', last), /done in/);
  });

  test('MD5 mismatch: error names file, expected and actual; nothing left behind', async () => {
    const dir = path.join(tmp, 'dl-bad-md5');
    const dest = path.join(dir, 'fake.tar.gz');
    const wrong = '0'.repeat(32);
    await assert.rejects(downloadFile(`${base}/files/fake.tar.gz`, dest, { md5: wrong }), (e: Error) => {
      assert.ok(e.message.includes(dest) && e.message.includes(wrong) && e.message.includes(archiveMd5), e.message);
      return true;
    });
    assert.deepEqual(listAll(dir), []);
  });

  test('a connection dropped mid-body or an HTTP error leaves no file', async () => {
    const dir = path.join(tmp, 'dl-broken');
    await assert.rejects(downloadFile(`${base}/broken`, path.join(dir, 'x.tar.gz'), { md5: archiveMd5 }));
    await assert.rejects(downloadFile(`${base}/missing`, path.join(dir, 'y.tar.gz')), /HTTP 404/);
    assert.deepEqual(listAll(dir), []);
  });
});

test('progressReporter: one \\r-rewritten line on a TTY, occasional full lines otherwise', () => {
  const fake = (isTTY: boolean) => {
    const out: string[] = [];
    return { out, stream: { isTTY, write: (s: string) => out.push(s) } as unknown as NodeJS.WriteStream };
  };
  const steps: DownloadProgress[] = [0, 1, 2, 30, 31].map((sec, i, a) => ({
    received: i * 1e6, total: 4e6, elapsedMs: sec * 1000, bytesPerSec: 1e6, etaSec: 4 - i, done: i === a.length - 1,
  }));
  const tty = fake(true);
  steps.forEach(progressReporter('x', tty.stream));
  assert.equal(tty.out.length, 5);
  assert.ok(tty.out.every((s) => s.startsWith('\r')));
  assert.ok(tty.out[4].endsWith('\n') && !tty.out[3].includes('\n'));
  const log = fake(false);
  steps.forEach(progressReporter('x', log.stream, 10));
  assert.equal(log.out.length, 3, log.out.join('')); // t=0, t=30 (10 s passed), final
  assert.ok(log.out.every((s) => s.endsWith('\n') && !s.includes('\r')));
});

test('a refused connection names the URL', async () => {
  await assert.rejects(downloadFile('http://127.0.0.1:1/x', path.join(tmp, 'refused', 'x')), /127\.0\.0\.1:1\/x/);
  assert.deepEqual(listAll(path.join(tmp, 'refused')), []);
});

describe('extractArchive', () => {
  test('extracts into place atomically and replaces an old folder', async () => {
    const dest = path.join(tmp, 'ex-ok');
    fs.mkdirSync(path.join(dest, 'fake-ds'), { recursive: true });
    fs.writeFileSync(path.join(dest, 'fake-ds', 'stale.txt'), 'old');
    const archivePath = path.join(tmp, 'fake.tar.gz');
    const seenDirs: string[] = [];
    const out = await extractArchive(archivePath, { destDir: dest, folder: 'fake-ds', check: (d) => void seenDirs.push(d) });
    assert.equal(out, path.join(dest, 'fake-ds'));
    assert.deepEqual(listAll(dest), ['fake-ds', 'fake-ds/a.bin', 'fake-ds/names.txt']);
    assert.ok(seenDirs[0].includes('.tmp-'), 'check runs on the temporary copy before the move');
  });

  test('a rejected check, a missing folder or a corrupt archive leave the old state untouched', async () => {
    const dest = path.join(tmp, 'ex-bad');
    fs.mkdirSync(path.join(dest, 'fake-ds'), { recursive: true });
    fs.writeFileSync(path.join(dest, 'fake-ds', 'keep.txt'), 'old');
    const archivePath = path.join(tmp, 'fake.tar.gz');
    await assert.rejects(extractArchive(archivePath, { destDir: dest, folder: 'fake-ds', check: () => { throw new Error('nope'); } }), /nope/);
    await assert.rejects(extractArchive(archivePath, { destDir: dest, folder: 'other-ds' }), /does not contain the folder other-ds/);
    const corrupt = path.join(tmp, 'corrupt.tar.gz');
    fs.writeFileSync(corrupt, archive.subarray(0, archive.length >> 1));
    await assert.rejects(extractArchive(corrupt, { destDir: dest, folder: 'fake-ds' }), /tar/);
    assert.deepEqual(listAll(dest), ['fake-ds', 'fake-ds/keep.txt']);
  });
});

describe('prepareDataset', () => {
  test('downloads, verifies, extracts; a second run skips everything', async () => {
    const dir = path.join(tmp, 'prep');
    const aMd5 = md5(fs.readFileSync(path.join(tmp, 'src', 'fake-ds', 'a.bin')));
    const source: DatasetSource = {
      name: 'fake', url: `${base}/redirect`, md5: archiveMd5, archive: 'fake.tar.gz', folder: 'fake-ds',
      files: { 'a.bin': aMd5, 'names.txt': '' },
    };
    const before = hits['/files/fake.tar.gz'] ?? 0;
    const first = await prepareDataset(source, { dir });
    assert.deepEqual(first, { folder: path.join(dir, 'fake-ds'), downloaded: true, extracted: true });
    assert.deepEqual(listAll(dir), ['downloads', 'downloads/fake.tar.gz', 'fake-ds', 'fake-ds/a.bin', 'fake-ds/names.txt']);
    const logs: string[] = [];
    const second = await prepareDataset(source, { dir, log: (m) => logs.push(m) });
    assert.equal(second.downloaded || second.extracted, false);
    assert.match(logs.join('\n'), /already present and verified/);
    // A damaged folder is re-extracted from the verified archive, without downloading again.
    fs.writeFileSync(path.join(dir, 'fake-ds', 'a.bin'), 'damaged');
    const third = await prepareDataset(source, { dir });
    assert.deepEqual([third.downloaded, third.extracted], [false, true]);
    assert.equal(hits['/files/fake.tar.gz'] - before, 1, 'downloaded exactly once');
    // Contents that do not verify are refused and nothing is moved into place.
    fs.rmSync(path.join(dir, 'fake-ds'), { recursive: true });
    await assert.rejects(prepareDataset({ ...source, files: { 'a.bin': '0'.repeat(32) } }, { dir }), /do not verify/);
    assert.deepEqual(listAll(dir), ['downloads', 'downloads/fake.tar.gz']);
  });
});
