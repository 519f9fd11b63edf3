import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine, engineInfo } from '../lib/src/engine/engine.js';

test('initEngine reports backend, threads, versions and why others were skipped', async () => {
  const e = await initEngine({ backend: 'cpu' });
  assert.equal(e.backend, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  assert.equal(e.threads, 1);
  assert.match(e.versions['tfjs-core'], /^4\.22\./);
  assert.equal(engineInfo(), e);
  const auto = await initEngine({ backend: 'auto' });
  assert.ok(auto.attempts.at(-1)!.ok, 'the last attempt is the one that started');
  for (const a of auto.attempts.slice(0, -1)) assert.ok(!a.ok && a.reason && a.reason.length > 0, `${a.backend} skipped without a reason`);
  // tfjs-node(-gpu) cannot install offline: auto must have explained why it skipped them.
  if (auto.backend !== 'tensorflow-gpu' && auto.backend !== 'tensorflow') {
    assert.match(auto.attempts[0].reason!, /tfjs-node-gpu/);
  }
});

test('a bad backend name or thread count is a clear error', async () => {
  await assert.rejects(() => initEngine({ backend: 'cuda' as 'cpu' }), /unknown backend 'cuda'.*expected one of auto, tensorflow-gpu/);
  await assert.rejects(() => initEngine({ backend: 'cpu', threads: 0 }), /threads .* must be a positive integer/);
  process.env.RIFT_BACKEND = 'nope';
  try {
    await assert.rejects(() => initEngine(), /RIFT_BACKEND: unknown backend 'nope'/);
  } finally {
    delete process.env.RIFT_BACKEND;
  }
  process.env.RIFT_POOL_MB = 'abc';
  try {
    // Not a fallback to a slower backend: the misspelt setting itself is the error.
    await assert.rejects(() => initEngine(), /RIFT_POOL_MB must be a non-negative number of MiB, got 'abc'/);
  } finally {
    delete process.env.RIFT_POOL_MB;
  }
});
