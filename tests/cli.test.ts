import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { helpText, parseCli, intArg, numberArg, choiceArg, choiceListArg, type CliOption, type CliSpec } from '../scripts/cli.js';

const ROOT = path.join(__dirname, '..');
const SHARED_TEST_BATCH = path.resolve(ROOT, '..', 'shared', 'datasets', 'cifar-10-batches-bin', 'test_batch.bin');
const HAVE_TEST_BATCH = fs.existsSync(SHARED_TEST_BATCH);

const SPEC = {
  command: 'npm run demo --',
  summary: 'A demo.',
  options: {
    profile: { type: 'string', default: 'quick', arg: '<p>', help: 'profile' },
    set: { type: 'string', multiple: true, default: [] as string[], arg: '<k=v>', help: 'override' },
    out: { type: 'string', arg: '<dir>', help: 'output' },
    'no-pdf': { type: 'boolean', default: false, help: 'skip the PDF' },
  },
} as const satisfies CliSpec<Record<string, CliOption>>;

test('parseCli: defaults, repeated options; errors name the option and list the valid ones', () => {
  const { values } = parseCli(SPEC, ['--set', 'a=1', '--set', 'b=2', '--no-pdf']);
  assert.deepEqual({ ...values }, { profile: 'quick', set: ['a=1', 'b=2'], 'no-pdf': true });
  assert.throws(() => parseCli(SPEC, ['--profle', 'smoke']), /^Error: unknown option '--profle'; options: --profile, --set, --out, --no-pdf; see `npm run demo -- --help`$/);
  assert.throws(() => parseCli(SPEC, ['--out']), /Option '--out <value>' argument missing; see `npm run demo -- --help`/);
  assert.throws(() => parseCli(SPEC, ['stray']), /Unexpected argument 'stray'.*see `npm run demo -- --help`/);
  assert.deepEqual(parseCli({ ...SPEC, positionals: '<what>' }, ['base', '--out', 'x']).positionals, ['base']);
});

test('helpText: usage line, summary, each option with its placeholder and default', () => {
  const t = helpText(SPEC);
  assert.match(t, /^usage: npm run demo -- \[options\]\n\nA demo\.\n\noptions:\n/);
  assert.match(t, /\n {2}--profile <p> {2,}profile \(default: quick\)\n/);
  assert.match(t, /\n {2}--set <k=v> {2,}override\n/, 'an empty list default is not printed');
  assert.match(t, /\n {2}--no-pdf {2,}skip the PDF\n/);
  assert.match(t, /\n {2}-h, --help {2,}this text$/);
});

test('argument checks: integers, numbers, choices, lists', () => {
  assert.equal(intArg('k', '3', 1), 3);
  assert.throws(() => intArg('k', '0', 1), /^Error: --k must be an integer ≥ 1, got '0'$/);
  assert.throws(() => intArg('seed', 'abc', 0), /--seed must be an integer ≥ 0, got 'abc'/);
  assert.throws(() => intArg('seed', '', 0), /--seed must be an integer ≥ 0, got ''/);
  assert.throws(() => intArg('n', '1.5', 1), /--n must be an integer/);
  assert.equal(numberArg('eps', '0.5', 0), 0.5);
  assert.throws(() => numberArg('eps', '-1', 0), /--eps must be a number ≥ 0, got '-1'/);
  assert.equal(choiceArg('method', 'rift', ['rift', 'rift-bn']), 'rift');
  assert.throws(() => choiceArg('method', 'x', ['rift', 'rift-bn']), /--method must be one of rift, rift-bn; got 'x'/);
  assert.deepEqual(choiceListArg('mode', 'full,bn-only', ['bn-only', 'full']), ['full', 'bn-only']);
  assert.throws(() => choiceListArg('mode', 'bn-only,foo', ['bn-only', 'full']), /--mode must list bn-only, full \(comma-separated\); got 'foo'/);
});

/** Runs a CLI script; resolves with its exit code and output. */
function run(script: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', path.join('scripts', script), ...args], { cwd: ROOT, env });
    let out = '', err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

const SCRIPTS = ['train.ts', 'evaluate.ts', 'experiment.ts', 'sweep.ts', 'data.ts', 'bench.ts', 'bench-stages.ts', 'main.ts', 'run-notebooks.ts'];

test('every CLI answers --help (exit 0, usage and options) and rejects an unknown option with its list', async () => {
  for (const s of SCRIPTS) {
    const help = await run(s, ['--help']);
    assert.equal(help.code, 0, `${s} --help: ${help.err}`);
    assert.match(help.out, /^usage: npm (start|run [a-z:]+) -- .*\n[\s\S]*\noptions:\n[\s\S]*-h, --help/, s);
    const bad = await run(s, ['--no-such-option']);
    assert.equal(bad.code, 1, s);
    assert.match(bad.err, /^error: unknown option '--no-such-option'; options: --\S+/, s);
  }
});

test('bad values fail before any work, naming the option (experiment, evaluate, train)', async () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['experiment.ts', ['rift', '--profile', 'smoke', '--seed', 'abc'], /--seed must be an integer ≥ 0, got 'abc'/],
    ['experiment.ts', ['layer-type', '--profile', 'smoke', '--mode', 'bn-only,foo'], /--mode must list bn-only, conv-linear-only, full/],
    ['experiment.ts', ['base', 'rift'], /expected one experiment, one of base, mrc, rift, table1, layer-type; got 'base rift'/],
    ['experiment.ts', ['base', '--checkpoint', '/nonexistent.rbn'], /--checkpoint \/nonexistent\.rbn: no such file/],
    // The shipped quick base is width 0.25; a smoke record labelled with it would name the wrong model.
    ['experiment.ts', ['base', '--profile', 'smoke', '--checkpoint', 'data/runs/cifar10-quick-at/best.rbn'],
      /checkpoint data\/runs\/cifar10-quick-at\/best\.rbn is resnet18 width 0\.25, 10 classes, but profile smoke on cifar10 is resnet18 width 0\.125, 10 classes: its records would name the wrong model/],
    ['evaluate.ts', ['--checkpoint', 'x.rbn', '--n', '0'], /--n must be an integer ≥ 1, got '0'/],
    ['evaluate.ts', ['--checkpoint', 'x.rbn', '--dataset', 'cifar1000'], /--dataset must be one of cifar10, cifar100; got 'cifar1000'/],
    ['evaluate.ts', ['--checkpoint', 'data/runs/cifar10-quick-at/best.rbn', '--attack', 'aa'], /--attack must be one of pgd, autoattack; got 'aa'/],
    ['evaluate.ts', ['--checkpoint', 'data/runs/cifar10-quick-at/best.rbn', '--attack', 'autoattack', '--aa-steps', '50'],
      /AutoAttack option 'steps' must be 100 in the standard version \(use version 'custom' to change it\), got 50/],
    ['evaluate.ts', ['--checkpoint', 'data/runs/cifar10-quick-at/best.rbn', '--attack', 'autoattack', '--aa-version', 'custom', '--aa-attacks', 'apgd-ce,cw'],
      /AutoAttack option 'attacks' must be a list of apgd-ce, apgd-dlr, apgd-t, fab-t, square, got cw/],
    ['experiment.ts', ['base', '--profile', 'quick', '--set', 'autoattack.queries=10'],
      /config: autoattack: AutoAttack option 'queries' must be 5000 in the standard version/],
    ['train.ts', ['--profile', 'smoke', '--set', 'profile=paper'], /'profile' cannot be overridden/],
    ['train.ts', ['--profile', 'smoke', '--max-epochs', '0'], /--max-epochs must be an integer ≥ 1, got '0'/],
    ['train.ts', ['--profile', 'smoke', '--backend', 'gpu'], /--backend must be one of auto, tensorflow-gpu, tensorflow, onednn, wasm, cpu; got 'gpu'/],
  ];
  for (const [s, args, re] of cases) {
    const r = await run(s, args);
    assert.equal(r.code, 1, `${s} ${args.join(' ')}`);
    assert.match(r.err, re, `${s} ${args.join(' ')}`);
    assert.doesNotMatch(r.out, /backend|PGD-AT/, 'fails before the engine starts');
  }
});

test('a CIFAR-10 test split cut at a record boundary is refused by evaluate, naming the file and both counts, writing nothing', { skip: HAVE_TEST_BATCH ? false : `no ${SHARED_TEST_BATCH}` }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rift-cut-'));
  try {
    const folder = path.join(dir, 'cifar-10-batches-bin');
    fs.mkdirSync(folder);
    const cut = path.join(folder, 'test_batch.bin');
    fs.writeFileSync(cut, fs.readFileSync(SHARED_TEST_BATCH).subarray(0, 5000 * 3073));
    fs.copyFileSync(path.join(path.dirname(SHARED_TEST_BATCH), 'batches.meta.txt'), path.join(folder, 'batches.meta.txt'));
    const out = path.join(dir, 'eval.json');
    for (const extra of [[], ['--n', '1000']]) {
      const r = await run('evaluate.ts', ['--checkpoint', 'data/runs/cifar10-quick-at/best.rbn', '--out', out, ...extra], { ...process.env, RIFT_DATA_DIR: dir });
      assert.equal(r.code, 1, r.out);
      assert.equal(r.err.trim().split('\n').length, 1, `one line: ${r.err}`);
      assert.ok(r.err.includes(cut), r.err);
      assert.match(r.err, /expected 10000 records \(the official cifar10 test split\), found 5000; a file with fewer records is read only as a declared subset, with test_indices\.txt beside it/);
      assert.doesNotMatch(r.out, /backend/, 'fails before the engine starts');
    }
    assert.deepEqual(fs.readdirSync(dir).sort(), ['cifar-10-batches-bin'], 'no result file written');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
