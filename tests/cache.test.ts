import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hashKey, canonicalJson, ResultCache, CACHE_FORMAT, type ComputeContext } from '../lib/src/experiments/cache.js';
import { tempDir } from './helpers.js';
import { defaultCacheDir, repoRoot } from '../lib/src/util/paths.js';

/** A cache in a fresh temp folder whose warnings are collected. */
function freshCache() {
  const warnings: string[] = [];
  const cache = new ResultCache(path.join(tempDir('rift-cache-'), 'experiments'), { warn: (m) => warnings.push(m) });
  return { cache, warnings };
}

test('hashKey: stable under key reordering, sensitive to values, typed arrays as arrays', () => {
  const a = { method: 'rift-bn', k: 3, opt: { lr: 1e-3, momentum: 0.9, epochs: [1, 2] }, input: 'abc123' };
  const b = { input: 'abc123', opt: { epochs: [1, 2], momentum: 0.9, lr: 1e-3 }, k: 3, method: 'rift-bn' };
  assert.match(hashKey(a), /^[0-9a-f]{16}$/);
  assert.equal(hashKey(a), hashKey(b));
  assert.equal(hashKey(a), hashKey({ ...a, extra: undefined }), 'undefined fields are dropped');
  assert.notEqual(hashKey(a), hashKey({ ...a, k: 4 }));
  assert.notEqual(hashKey(a), hashKey({ ...a, opt: { ...a.opt, epochs: [2, 1] } }), 'array order matters');
  assert.notEqual(hashKey({ x: 1 }), hashKey({ x: '1' }));
  assert.notEqual(hashKey({ x: null }), hashKey({ x: NaN }), 'NaN is not null');
  assert.notEqual(hashKey({ x: Infinity }), hashKey({ x: -Infinity }));
  assert.notEqual(hashKey({ x: [] }), hashKey({ x: {} }));
  // Typed arrays hash as the plain array of their values.
  assert.equal(hashKey({ v: Float32Array.of(0.5, 2) }), hashKey({ v: [0.5, 2] }));
  assert.equal(hashKey({ v: Int32Array.of(1, 2, 3) }), hashKey({ v: Uint8Array.of(1, 2, 3) }));
  assert.notEqual(hashKey({ v: Int32Array.of(1, 2, 3) }), hashKey({ v: Int32Array.of(1, 2, 4) }));
  assert.equal(canonicalJson({ b: [1, undefined, 'x'], a: { d: new Date(0), c: true } }), '{"a":{"c":true,"d":"1970-01-01T00:00:00.000Z"},"b":[1,null,"x"]}');
  // The same object twice is fine; a cycle or a Map is not.
  const shared = { z: 1 };
  assert.equal(canonicalJson({ p: shared, q: shared }), '{"p":{"z":1},"q":{"z":1}}');
  const cyc: Record<string, unknown> = {};
  cyc.self = cyc;
  assert.throws(() => hashKey(cyc), /circular reference at \$\.self/);
  assert.throws(() => hashKey({ m: new Map() }), /Map at \$\.m/);
  assert.throws(() => hashKey({ f: () => 1 }), /function at \$\.f/);
});

test('ResultCache: path layout, default dir, get/put round trip, list', () => {
  assert.equal(defaultCacheDir(), path.join(repoRoot(), 'data', 'cache', 'experiments'));
  assert.equal(new ResultCache().dir, defaultCacheDir());
  const { cache, warnings } = freshCache();
  assert.equal(cache.path('mrc', 'abc'), path.join(cache.dir, 'mrc', 'abc.json'));
  assert.throws(() => cache.path('../x', 'abc'), /kind '..\/x' must be a single path segment/);
  assert.throws(() => cache.path('mrc', 'a/b'), /key 'a\/b'/);
  assert.equal(cache.get('mrc', 'abc'), undefined, 'missing → undefined');
  assert.deepEqual(cache.list('mrc'), []);

  const record = { config: { k: 1 }, metrics: { clean: 84.1, robust: 52.3 }, curve: Float32Array.of(0.5, 0.25), nested: [{ a: 1 }] };
  cache.put('mrc', 'abc', record, { k: 1 });
  assert.deepEqual(cache.get('mrc', 'abc'), { ...record, curve: [0.5, 0.25] });
  const env = cache.getEnvelope('mrc', 'abc')!;
  assert.equal(env.format, CACHE_FORMAT);
  assert.deepEqual([env.kind, env.key, env.keyMaterial], ['mrc', 'abc', { k: 1 }]);
  assert.ok(!Number.isNaN(Date.parse(env.savedAt)));
  cache.put('mrc', 'abd', { x: 1 });
  assert.deepEqual(cache.list('mrc'), ['abc', 'abd']);
  assert.deepEqual(fs.readdirSync(path.join(cache.dir, 'mrc')).sort(), ['abc.json', 'abd.json'], 'no temp files left');
  assert.deepEqual(warnings, []);
});

test('ResultCache: a corrupt or foreign file counts as missing, with one warning', async () => {
  const { cache, warnings } = freshCache();
  cache.put('ft', 'k1', { ok: true });
  const file = cache.path('ft', 'k1');
  const text = fs.readFileSync(file, 'utf8');
  fs.writeFileSync(file, text.slice(0, text.length >> 1)); // half-written
  assert.equal(cache.get('ft', 'k1'), undefined);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /k1\.json is not valid JSON .*treating it as missing/);

  fs.writeFileSync(file, JSON.stringify({ format: CACHE_FORMAT, kind: 'ft', key: 'other', savedAt: '', record: 1 }));
  assert.equal(cache.get('ft', 'k1'), undefined);
  assert.match(warnings[1], /holds ft\/other/);
  fs.writeFileSync(file, '{"metrics": 1}');
  assert.equal(cache.get('ft', 'k1'), undefined);
  assert.match(warnings[2], /format 'undefined'/);
  assert.equal(warnings.length, 3);

  // getOrCompute recomputes over the corrupt file and replaces it.
  const r = await cache.getOrCompute('ft', 'material', async () => ({ v: 2 }));
  const file2 = cache.path('ft', r.key);
  fs.writeFileSync(file2, '{');
  const again = await cache.getOrCompute('ft', 'material', async () => ({ v: 3 }));
  assert.deepEqual([again.cached, again.record], [false, { v: 3 }]);
  assert.deepEqual(cache.get('ft', r.key), { v: 3 });
});

test('getOrCompute computes once, then returns the cached record', async () => {
  const { cache } = freshCache();
  let calls = 0;
  const material = { config: { method: 'rift', k: 2 }, input: 'sha:1234', seed: 0 };
  const compute = async (ctx: ComputeContext) => {
    calls++;
    assert.ok(fs.statSync(ctx.dir).isDirectory(), 'work dir exists during compute');
    assert.equal(ctx.dir, path.join(cache.dir, 'finetune', `${ctx.key}.work`));
    assert.equal(ctx.resumed, false);
    return { metrics: { clean: 85 }, curve: Float64Array.of(1, 2), missing: NaN };
  };
  const first = await cache.getOrCompute('finetune', material, compute);
  assert.equal(first.key, hashKey(material));
  assert.equal(first.cached, false);
  assert.equal(calls, 1);
  assert.ok(!fs.existsSync(cache.workDir('finetune', first.key)), 'work dir removed after success');
  // Same material in another key order → cache hit, same record as the fresh result.
  const second = await cache.getOrCompute('finetune', { seed: 0, input: 'sha:1234', config: { k: 2, method: 'rift' } }, compute);
  assert.equal(calls, 1);
  assert.equal(second.cached, true);
  assert.equal(second.key, first.key);
  assert.deepEqual(second.record, first.record);
  assert.deepEqual(first.record, { metrics: { clean: 85 }, curve: [1, 2], missing: null });
  assert.deepEqual(cache.getEnvelope('finetune', first.key)!.keyMaterial, material);
  // Different material → a new computation.
  await cache.getOrCompute('finetune', { ...material, seed: 1 }, compute);
  assert.equal(calls, 2);
  assert.equal(cache.list('finetune').length, 2);
  await assert.rejects(cache.getOrCompute('finetune', 'x', async () => undefined), /returned undefined/);
});

test('a failed compute stores nothing and keeps its progress so a rerun resumes', async () => {
  const { cache } = freshCache();
  const material = { run: 'resume-test' };
  const epochsRun: number[] = [];
  const train = (failAt?: number) => async (ctx: ComputeContext) => {
    const progress = ctx.loadProgress<{ epoch: number; losses: number[] }>() ?? { epoch: 0, losses: [] };
    for (let e = progress.epoch; e < 4; e++) {
      if (e === failAt) throw new Error(`interrupted at epoch ${e}`);
      epochsRun.push(e);
      fs.writeFileSync(path.join(ctx.dir, `epoch-${e}.ckpt`), `weights ${e}`); // e.g. a checkpoint
      progress.losses.push(1 / (e + 1));
      progress.epoch = e + 1;
      ctx.saveProgress(progress);
    }
    return { losses: progress.losses, resumed: ctx.resumed };
  };
  await assert.rejects(cache.getOrCompute('train', material, train(2)), /interrupted at epoch 2/);
  const key = hashKey(material);
  assert.equal(cache.get('train', key), undefined, 'no finished record');
  assert.ok(!fs.existsSync(cache.path('train', key)));
  const work = cache.workDir('train', key);
  assert.deepEqual(fs.readdirSync(work).sort(), ['epoch-0.ckpt', 'epoch-1.ckpt', 'progress.json']);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(work, 'progress.json'), 'utf8')), { epoch: 2, losses: [1, 0.5] });

  const r = await cache.getOrCompute('train', material, train());
  assert.deepEqual(epochsRun, [0, 1, 2, 3], 'epochs 0–1 were not redone');
  assert.deepEqual(r.record, { losses: [1, 0.5, 1 / 3, 0.25], resumed: true });
  assert.equal(r.cached, false);
  assert.ok(!fs.existsSync(work), 'work dir removed once finished');
  assert.equal((await cache.getOrCompute('train', material, train(0))).cached, true);
});

test('an unreadable progress file is ignored with a warning', async () => {
  const { cache, warnings } = freshCache();
  const key = hashKey('p');
  fs.mkdirSync(cache.workDir('k', key), { recursive: true });
  fs.writeFileSync(path.join(cache.workDir('k', key), 'progress.json'), '{"epoch": 3');
  const r = await cache.getOrCompute('k', 'p', async (ctx) => ({ progress: ctx.loadProgress() ?? 'none', resumed: ctx.resumed }));
  assert.deepEqual(r.record, { progress: 'none', resumed: true });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /ignoring unreadable progress .*progress\.json/);
});
