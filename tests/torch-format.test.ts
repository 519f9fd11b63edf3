/**
 * The file formats under the PyTorch import, without PyTorch: the ZIP reader/writer (alignment,
 * CRC, truncation), the safe pickle reader (allowlist, malformed input), safetensors, and the
 * state_dict writer read back by our own reader. PyTorch itself checks them in pytorch-import.test.ts.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readZip, writeZip } from '../lib/src/util/zip.js';
import { unpickle, PickleWriter } from '../lib/src/util/pickle.js';
import { readStateDict, encodeSafetensors, encodeTorchStateDict, halfToFloat, type TensorToWrite } from '../lib/src/nn/torch-format.js';
import { tempDir, testEngine, assertNoLeak } from './helpers.js';
import { createNetwork } from '../lib/src/nn/model.js';
import { importPyTorchCheckpoint, exportPyTorch, toPyTorchStateDict } from '../lib/src/nn/pytorch.js';

const TENSORS: TensorToWrite[] = [
  { key: 'conv1.weight', shape: [2, 1, 1, 3], dtype: 'float32', values: [0.5, -1.25, 3, 1e-8, -0, 7] },
  { key: 'bn1.running_var', shape: [2], dtype: 'float32', values: [1, 2] },
  { key: 'bn1.num_batches_tracked', shape: [], dtype: 'int64', values: [123456789] },
];

test('zip: entries round-trip, data start on 64-byte boundaries, CRC and truncation are caught', () => {
  const files = [{ name: 'a/data.pkl', data: Buffer.from('hello') }, { name: 'a/data/0', data: Buffer.alloc(1000, 7) }];
  const zip = writeZip(files);
  const z = readZip(zip, 'x.zip');
  for (const f of files) {
    assert.deepEqual(z.read(f.name), f.data);
    const e = z.entries.get(f.name)!;
    const start = e.localOffset + 30 + zip.readUInt16LE(e.localOffset + 26) + zip.readUInt16LE(e.localOffset + 28);
    assert.equal(start % 64, 0, `${f.name} data at ${start}`);
  }
  const bad = Buffer.from(zip);
  const e = z.entries.get('a/data/0')!;
  bad[e.localOffset + 30 + 'a/data/0'.length + zip.readUInt16LE(e.localOffset + 28) + 10] ^= 1;
  assert.throws(() => readZip(bad, 'bad.zip').read('a/data/0'), /bad\.zip: entry 'a\/data\/0' fails its CRC-32 check/);
  assert.throws(() => readZip(zip.subarray(0, zip.length - 30), 'cut.zip'), /cut\.zip: not a complete ZIP archive \(no end-of-central-directory record; truncated\?\)/);
  assert.throws(() => z.read('a/missing'), /x\.zip: entry 'a\/missing' is missing/);
});

test('pickle: builds plain values, refuses globals outside the allowlist by name, and malformed input', () => {
  const w = new PickleWriter();
  w.mark().str('k').int(-5).int(2 ** 40).bool(true).none().tuple();
  const { value } = unpickle(w.finish(), { label: 'p', resolveGlobal: () => undefined });
  assert.deepEqual(value, ['k', -5, 2 ** 40, true, null]);
  const evil = Buffer.from('\x80\x02cposix\nsystem\nX\x04\x00\x00\x00echo\x85R.', 'latin1');
  assert.throws(() => unpickle(evil, { label: 'evil.pkl', resolveGlobal: () => undefined }), /evil\.pkl: the pickle names global 'posix\.system', which is not allowed/);
  assert.throws(() => unpickle(Buffer.from('\x80\x02X\x10\x00\x00\x00ab', 'latin1'), { label: 't.pkl', resolveGlobal: () => undefined }), /t\.pkl: pickle ends early/);
  assert.throws(() => unpickle(Buffer.from('\x80\x02a.', 'latin1'), { label: 'u.pkl', resolveGlobal: () => undefined }), /u\.pkl: pickle stack underflow/);
  assert.throws(() => unpickle(Buffer.from('\x80\x02\xff.', 'latin1'), { label: 'o.pkl', resolveGlobal: () => undefined }), /o\.pkl: unsupported pickle opcode 0xff/);
});

test('state_dict writers: our torch.save-format and safetensors files read back exactly; float16 decodes', () => {
  const dir = tempDir();
  for (const [name, buf] of [['sd.pt', encodeTorchStateDict(TENSORS)], ['sd.safetensors', encodeSafetensors(TENSORS, { arch: 'x' })]] as const) {
    const file = path.join(dir, name);
    fs.writeFileSync(file, buf);
    const sd = readStateDict(file);
    assert.equal(sd.format, name.endsWith('.pt') ? 'torch-zip' : 'safetensors');
    assert.deepEqual([...sd.tensors.keys()], TENSORS.map((t) => t.key));
    for (const t of TENSORS) {
      const got = sd.tensors.get(t.key)!;
      assert.deepEqual(got.shape, t.shape, t.key);
      assert.equal(got.dtype, t.dtype, t.key);
      assert.deepEqual([...got.values], [...Float32Array.from(t.values)], t.key);
    }
  }
  assert.deepEqual([0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00].map(halfToFloat), [1, -2, 65504, 2 ** -24, -0, Infinity]);
  // A safetensors header whose offsets do not cover the shape is refused naming the tensor.
  const bad = path.join(dir, 'bad.safetensors');
  const header = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 8] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  fs.writeFileSync(bad, Buffer.concat([len, header, Buffer.alloc(8)]));
  assert.throws(() => readStateDict(bad), /bad\.safetensors: tensor 'w' \[4\] F32 needs 16 bytes, its offsets are \[0, 8\]/);
  const notCkpt = path.join(dir, 'notes.txt');
  fs.writeFileSync(notCkpt, 'hello world, not a checkpoint');
  assert.throws(() => readStateDict(notCkpt), /notes\.txt: not a PyTorch checkpoint/);
});

test('crafted files fail fast with one-line errors: zero-stride views, long integers, cycles, prototype names, no tensors', () => {
  const dir = tempDir();
  const torchFile = (name: string, pkl: Buffer, storages: Buffer[] = []) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, writeZip([{ name: 'a/data.pkl', data: pkl }, ...storages.map((d, i) => ({ name: `a/data/${i}`, data: d })), { name: 'a/version', data: Buffer.from('3\n') }]));
    return f;
  };
  // {'w': a (32768, 32768) view with stride (0, 0) of a 1-element storage}: 4 GiB if materialised.
  const w = new PickleWriter();
  w.global('collections', 'OrderedDict').emptyTuple().reduce().mark().str('w');
  w.global('torch._utils', '_rebuild_tensor_v2').mark();
  w.mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(1).tuple().persistentId();
  w.int(0).mark().int(32768).int(32768).tuple().mark().int(0).int(0).tuple().bool(false);
  w.global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce().setItems();
  const bomb = torchFile('bomb.pt', w.finish(), [Buffer.alloc(4)]);
  assert.throws(() => readStateDict(bomb), /bomb\.pt: .*has 1073741824 elements, more than its 1-element storage/);
  const long4 = Buffer.concat([Buffer.from([0x80, 0x02, 0x8b]), Buffer.from([0x40, 0x42, 0x0f, 0x00]), Buffer.alloc(1_000_000, 1), Buffer.from('.')]);
  assert.throws(() => readStateDict(torchFile('long.pt', long4)), /long\.pt: integer of 1000000 bytes/);
  assert.throws(() => readStateDict(torchFile('cycle.pt', Buffer.from('\x80\x02]q\x00h\x00a.', 'latin1'))), /cycle\.pt: the checkpoint holds a list, not a dict/);
  assert.throws(() => readStateDict(torchFile('proto.pt', Buffer.from('\x80\x02ctorch\n__proto__\n.', 'latin1'))), /proto\.pt: the pickle names global 'torch\.__proto__', which is not allowed/);
  // STACK_GLOBAL with a name holding a newline: the message escapes it.
  const nl = torchFile('newline.pt', Buffer.from('\x80\x04\x8c\x02os\x8c\x07sy\nstem\x93.', 'latin1'));
  assert.throws(() => readStateDict(nl), (e: Error) => !e.message.includes('\n') && /global 'os\.sy\\x0astem', which is not allowed/.test(e.message));
  const empty = path.join(dir, 'empty.safetensors');
  fs.writeFileSync(empty, encodeSafetensors([]));
  assert.throws(() => readStateDict(empty), /empty\.safetensors: holds no tensors/);
});

test('import and export leave no tensors behind (the probe network and the export are freed)', async () => {
  await testEngine();
  const dir = tempDir();
  const m = createNetwork({ arch: 'wide-resnet', depth: 10, width: 1 }, 3);
  const file = path.join(dir, 'w.safetensors');
  try {
    fs.writeFileSync(file, encodeSafetensors(toPyTorchStateDict(m)));
    await assertNoLeak('import + export', () => {
      const { model } = importPyTorchCheckpoint(file, { normalization: 'none' });
      exportPyTorch(model, path.join(dir, 'back.pt'), 'torch');
      model.dispose();
    });
  } finally {
    m.dispose();
  }
});
