/**
 * Many workers on one cache: the record lock (util/lock.ts) and what ResultCache does with it —
 * a live owner is waited for or reported, a dead one's lock is taken over and its work resumed,
 * two processes on one record compute it once, a read-only cache computes nothing.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { tryAcquireLock, acquireLock, readLock } from '../lib/src/util/lock.js';
import { ResultCache, MissingRecordError, RecordLockedError, hashKey } from '../lib/src/experiments/cache.js';
import { tempDir } from './helpers.js';

const ROOT = path.join(__dirname, '..');

/** A pid that is certainly not running: a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.exit(0)']);
  assert.equal(r.status, 0);
  return r.pid!;
}

function writeForeignLock(file: string, info: { host: string; pid: number }, ageMs = 0): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify({ ...info, startedAt: new Date().toISOString(), label: 'test' }));
  const t = new Date(Date.now() - ageMs);
  fs.utimesSync(file, t, t);
}

/** Runs TypeScript `code` in a child node (tsx), with `lib` bound to the library's cache and lock modules. */
function child(dir: string, code: string): ChildProcess {
  const file = path.join(dir, `child-${Math.random().toString(36).slice(2)}.ts`);
  const imports = code.match(/^\s*import .*;$/gm) ?? [];
  const body = code.replace(/^\s*import .*;$/gm, '');
  fs.writeFileSync(file, `import * as cache from ${JSON.stringify(path.join(ROOT, 'lib/src/experiments/cache.ts'))};\n${imports.join('\n')}\n` +
    `import * as fs from 'node:fs';\nvoid cache; void fs;\n(async () => {\n${body}\n})().catch((e) => { console.error(e); process.exit(1); });\n`);
  return spawn(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
}

const exited = (c: ChildProcess) => new Promise<number>((resolve) => c.on('exit', (code, sig) => resolve(code ?? (sig ? 128 : 1))));

async function until(what: string, f: () => boolean, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!f()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('tryAcquireLock: one owner at a time; release frees it; the file names host and pid', () => {
  const dir = tempDir();
  const file = path.join(dir, 'a', 'x.lock');
  const a = tryAcquireLock(file, { label: 'x' });
  assert.ok(a);
  const info = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.deepEqual([info.host, info.pid, info.label], [os.hostname(), process.pid, 'x']);
  assert.equal(tryAcquireLock(file), undefined, 'a live owner (this process) holds it');
  assert.equal(a.held(), true);
  a.release();
  assert.equal(fs.existsSync(file), false);
  const b = tryAcquireLock(file);
  assert.ok(b);
  b.release();
  assert.deepEqual(fs.readdirSync(path.dirname(file)), [], 'no temp or tombstone files left');
});

test('a dead owner\'s lock is taken over at once; another host\'s only once its heartbeat is stale', () => {
  const dir = tempDir();
  const file = path.join(dir, 'x.lock');
  writeForeignLock(file, { host: os.hostname(), pid: deadPid() });
  assert.equal(readLock(file)!.stale, true);
  const a = tryAcquireLock(file);
  assert.ok(a, 'same host, pid gone: taken over');
  assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).pid, process.pid);
  a.release();

  writeForeignLock(file, { host: 'another-node', pid: 12345 }, 1000);
  assert.equal(tryAcquireLock(file, { staleMs: 60_000 }), undefined, 'fresh heartbeat on another host: live');
  writeForeignLock(file, { host: 'another-node', pid: 12345 }, 120_000);
  const b = tryAcquireLock(file, { staleMs: 60_000 });
  assert.ok(b, 'heartbeat 2 min old: stale');
  // Its former owner, if it comes back, no longer holds it; a lock taken from us shows held() false.
  writeForeignLock(file, { host: 'another-node', pid: 999 });
  assert.equal(b.held(), false);
  b.release();
  assert.ok(fs.existsSync(file), 'release does not remove a lock that is no longer ours');
});

test('the heartbeat keeps a held lock fresh', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'x.lock');
  const a = tryAcquireLock(file, { heartbeatMs: 50 })!;
  const old = new Date(Date.now() - 600_000);
  fs.utimesSync(file, old, old);
  await until('a heartbeat', () => readLock(file)!.ageMs < 5000, 5000);
  a.release();
});

test('ResultCache read-only: a missing record throws MissingRecordError and nothing is written', async () => {
  const dir = path.join(tempDir(), 'cache');
  const c = new ResultCache(dir, { readOnly: true });
  let ran = false;
  await assert.rejects(c.getOrCompute('mrc', { a: 1 }, async () => { ran = true; return 1; }), (e: unknown) => {
    assert.ok(e instanceof MissingRecordError);
    assert.equal(e.kind, 'mrc');
    assert.equal(e.key, hashKey({ a: 1 }));
    assert.match(e.message, /read-only.*npm run sweep/);
    return true;
  });
  assert.equal(ran, false);
  assert.equal(fs.existsSync(dir), false);
  new ResultCache(dir).put('mrc', hashKey({ a: 1 }), { v: 7 });
  assert.deepEqual((await c.getOrCompute('mrc', { a: 1 }, async () => 0)).record, { v: 7 });
});

test('ResultCache with a live foreign lock: skip throws RecordLockedError naming the owner; wait returns the owner\'s record', async () => {
  const dir = path.join(tempDir(), 'cache');
  const key = hashKey({ b: 2 });
  const owner = spawn('sleep', ['30']);
  try {
    const c = new ResultCache(dir, { lock: 'skip', warn: () => {} });
    writeForeignLock(c.lockPath('rift', key), { host: os.hostname(), pid: owner.pid! });
    await assert.rejects(c.getOrCompute('rift', { b: 2 }, async () => 1), (e: unknown) => e instanceof RecordLockedError && e.message.includes(`pid ${owner.pid}`));
    const waits: string[] = [];
    const w = new ResultCache(dir, { warn: (m) => waits.push(m) });
    let ran = false;
    const pending = w.getOrCompute('rift', { b: 2 }, async () => { ran = true; return 'mine'; });
    await until('the waiting message', () => waits.length > 0, 10_000);
    assert.match(waits[0], new RegExp(`rift/${key} is being computed by .* pid ${owner.pid}; waiting`));
    new ResultCache(dir).put('rift', key, 'theirs');
    fs.rmSync(c.lockPath('rift', key));
    const r = await pending;
    assert.deepEqual([r.record, r.cached, ran], ['theirs', true, false]);
  } finally {
    owner.kill('SIGKILL');
  }
});

test('two processes on one record: it is computed once, both get it, the journal has one line', async () => {
  const dir = tempDir();
  const cacheDir = path.join(dir, 'cache');
  const counter = path.join(dir, 'computed.txt');
  const code = `const c = new cache.ResultCache(${JSON.stringify(cacheDir)}, { warn: (m) => console.log(m) });
    const r = await c.getOrCompute('mrc', { same: 'key' }, async () => { fs.appendFileSync(${JSON.stringify(counter)}, 'x'); await new Promise((r) => setTimeout(r, 4000)); return { answer: 42 }; });
    console.log(JSON.stringify(r.record));`;
  const kids = [child(dir, code), child(dir, code)];
  const outs = kids.map((k) => { let s = ''; k.stdout!.on('data', (d) => (s += d)); k.stderr!.on('data', (d) => (s += d)); return () => s; });
  const codes = await Promise.all(kids.map(exited));
  assert.deepEqual(codes, [0, 0], outs.map((o) => o()).join('\n'));
  for (const o of outs) assert.equal(o().trim().split('\n').pop(), '{"answer":42}');
  assert.equal(fs.readFileSync(counter, 'utf8'), 'x', 'computed once');
  assert.equal(outs.filter((o) => /is being computed by .* pid \d+; waiting for it/.test(o())).length, 1, 'the computations overlapped: one process waited for the other');
  const journal = new ResultCache(cacheDir).journal();
  assert.equal(journal.length, 1);
  assert.deepEqual([journal[0].kind, journal[0].key, journal[0].resumed], ['mrc', hashKey({ same: 'key' }), false]);
  assert.equal(fs.existsSync(new ResultCache(cacheDir).lockPath('mrc', hashKey({ same: 'key' }))), false, 'lock released');
});

test('a worker killed with SIGKILL mid-computation: its lock is taken over and its progress resumed', async () => {
  const dir = tempDir();
  const cacheDir = path.join(dir, 'cache');
  const k = child(dir, `const c = new cache.ResultCache(${JSON.stringify(cacheDir)});
    await c.getOrCompute('mrc', { killed: true }, async (ctx) => { ctx.saveProgress({ done: 3 }); console.log('saved'); await new Promise((r) => setTimeout(r, 60_000)); return 0; });`);
  let out = '';
  k.stdout!.on('data', (d) => (out += d));
  await until('the child to save progress', () => out.includes('saved'));
  const c = new ResultCache(cacheDir, { warn: () => {} });
  const key = hashKey({ killed: true });
  assert.equal(c.lockState('mrc', key)!.pid, k.pid);
  assert.equal(c.lockState('mrc', key)!.stale, false);
  k.kill('SIGKILL');
  await exited(k);
  assert.equal(c.lockState('mrc', key)!.stale, true, 'the dead owner\'s lock is left, and stale');
  const r = await c.getOrCompute('mrc', { killed: true }, async (ctx) => ({ resumed: ctx.resumed, from: ctx.loadProgress<{ done: number }>()!.done }));
  assert.deepEqual([r.cached, r.record], [false, { resumed: true, from: 3 }]);
  assert.deepEqual(c.journal().map((j) => [j.key, j.resumed]), [[key, true]]);
  assert.equal(c.lockState('mrc', key), undefined);
});

test('acquireLock waits for a live owner and ends early when the work is done elsewhere', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'x.lock');
  const held = tryAcquireLock(file)!;
  let done = false;
  const seen: number[] = [];
  const p = acquireLock(file, { pollMs: 20, onWait: (o) => seen.push(o.pid), done: () => done });
  await new Promise((r) => setTimeout(r, 100));
  done = true;
  assert.equal(await p, undefined);
  assert.deepEqual(seen, [process.pid]);
  held.release();
  const got = await acquireLock(file, { pollMs: 20 });
  assert.ok(got);
  got.release();
});

test('several workers taking over one stale lock at once: exactly one gets it', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'x.lock');
  writeForeignLock(file, { host: os.hostname(), pid: deadPid() });
  const go = Date.now() + 2500; // all start their attempt at the same moment
  const code = (i: number) => `import * as lock from ${JSON.stringify(path.join(ROOT, 'lib/src/util/lock.ts'))};
    while (Date.now() < ${go}) {}
    const l = lock.tryAcquireLock(${JSON.stringify(file)}, { label: 'c${i}' });
    console.log(l ? 'got' : 'no');
    await new Promise((r) => setTimeout(r, 1500));
    if (l) console.log(l.held() ? 'still' : 'lost');
    l?.release();`;
  const kids = [0, 1, 2, 3].map((i) => child(dir, code(i)));
  const outs = kids.map((k) => { let s = ''; k.stdout!.on('data', (d) => (s += d)); k.stderr!.on('data', (d) => (s += d)); return () => s; });
  await Promise.all(kids.map(exited));
  const got = outs.map((o) => o().trim());
  assert.equal(got.filter((g) => g.startsWith('got')).length, 1, got.join(' | '));
  assert.deepEqual(got.filter((g) => g.startsWith('got')), ['got\nstill'], 'the winner kept it');
  assert.equal(fs.existsSync(file), false);
});

test('a worker whose lock was taken over stops at its next progress save', async () => {
  const dir = path.join(tempDir(), 'cache');
  const c = new ResultCache(dir, { warn: () => {} });
  const key = hashKey({ lost: 1 });
  await assert.rejects(c.getOrCompute('mrc', { lost: 1 }, async (ctx) => {
    ctx.saveProgress({ done: 1 });
    writeForeignLock(c.lockPath('mrc', key), { host: 'another-node', pid: 4242 });
    ctx.saveProgress({ done: 2 });
    return 0;
  }), /lock of mrc\/[0-9a-f]{16} was taken over by another-node pid 4242 .*stopping, the other worker finishes it/);
  assert.equal(c.get('mrc', key), undefined);
  assert.ok(fs.existsSync(c.lockPath('mrc', key)), 'the new owner\'s lock is left alone');
});
