/** `npm run bench -- [options]`: throughput per backend beside PyTorch (`--help` lists the options). */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { initEngine, BACKEND_ORDER, type EngineInfo } from '../lib/src/engine/engine.js';
import { benchTask, BENCH_TASKS, type BenchResult } from '../lib/src/experiments/bench.js';
import { runMain, parseCli, intArg, choiceArg, choiceListArg, type CliSpec, type CliOption } from './cli.js';
import { writeFileAtomic } from '../lib/src/util/fs.js';

const PYTHON = '/usr/bin/python3';
const MALLOC = { MALLOC_MMAP_THRESHOLD_: '33554432', MALLOC_TRIM_THRESHOLD_: '17179869184', MALLOC_TOP_PAD_: '1073741824' };

interface TorchResult { task: string; width: number; batchSize: number; imagesPerSecond: number }

function list(v: string, what: string): number[] {
  const xs = v.split(',').map(Number);
  if (xs.some((x) => !(x > 0))) throw new Error(`--${what} must be a comma-separated list of positive numbers, got '${v}'`);
  return xs;
}

const CLI = {
  command: 'npm run bench --',
  summary: 'Images/s and GFLOP/s of inference, one PGD step (gradient w.r.t. the input) and one SGD training step\n' +
    '(gradients w.r.t. the weights) of a CIFAR ResNet-18 on every requested backend (default: every available\n' +
    'one except the slow pure-JS cpu), beside the PyTorch CPU yardstick (scripts/bench_torch.py: same\n' +
    'architecture, tasks, batch sizes and threads; glibc malloc settings of ../shared/docs/toolchain.md).',
  options: {
    widths: { type: 'string', default: '1,0.25', arg: '<w,...>', help: 'ResNet-18 width multipliers' },
    batches: { type: 'string', default: '32,128', arg: '<b,...>', help: 'batch sizes' },
    batch: { type: 'string', arg: '<b,...>', help: 'alias of --batches' },
    iterations: { type: 'string', default: '5', arg: '<N>', help: 'timed iterations (median reported) after 1 warm-up' },
    backends: { type: 'string', arg: '<b,...>', help: `backends to measure, of ${BACKEND_ORDER.join(', ')} (default: all available but cpu)` },
    backend: { type: 'string', arg: '<b,...>', help: 'alias of --backends' },
    torch: { type: 'string', default: 'auto', arg: '<auto|on|off>', help: 'PyTorch yardstick: auto = when python3-torch is installed, on = required' },
    out: { type: 'string', arg: '<P>', help: 'write P.json and P.md' },
  },
} as const satisfies CliSpec<Record<string, CliOption>>;

runMain(async () => {
  const { values } = parseCli(CLI);
  const widths = list(values.widths, 'widths');
  const batches = list(values.batch ?? values.batches, 'batches');
  const iterations = intArg('iterations', values.iterations, 1);
  const torchMode = choiceArg('torch', values.torch, ['auto', 'on', 'off'] as const);
  const backendList = values.backends ?? values.backend;
  const requested = backendList === undefined ? undefined : choiceListArg('backends', backendList, BACKEND_ORDER);

  const rows: Array<BenchResult & { backend: string; threads: number }> = [];
  const engines: EngineInfo[] = [];
  const candidates = requested ?? BACKEND_ORDER.filter((b) => b !== 'cpu');
  for (const backend of candidates) {
    let engine: EngineInfo;
    try {
      engine = await initEngine({ backend });
    } catch (e) {
      if (requested) throw e;
      continue; // not available here: auto mode benchmarks what exists
    }
    engines.push(engine);
    console.log(`backend ${engine.backend}: ${engine.threads} thread(s), cpu ${engine.cpu.model} x${engine.cpu.cores}`);
    for (const width of widths) for (const batchSize of batches) for (const task of BENCH_TASKS) {
      const r = await benchTask(task, { width, batchSize, iterations });
      rows.push({ ...r, backend: engine.backend, threads: engine.threads });
      console.log(`  w=${width} b=${batchSize} ${task}: ${r.imagesPerSecond === null ? `failed (${r.error})` : `${r.imagesPerSecond.toFixed(1)} img/s, ${r.gflops!.toFixed(1)} GFLOP/s`}`);
    }
  }

  let torch: { torch: string; threads: number; results: TorchResult[] } | null = null;
  const torchThreads = Math.max(...engines.map((e) => e.threads), 1);
  if (torchMode !== 'off') {
    const cfg = { widths, batches, threads: torchThreads, iterations, warmup: 1, maxSeconds: 30 };
    const p = spawnSync(PYTHON, [path.join(__dirname, 'bench_torch.py'), JSON.stringify(cfg)], { env: { ...process.env, ...MALLOC }, encoding: 'utf8', maxBuffer: 1 << 24 });
    if (p.status === 0) torch = JSON.parse(p.stdout);
    else if (torchMode === 'on') throw new Error(`PyTorch yardstick failed (${PYTHON} scripts/bench_torch.py): ${p.stderr.trim().split('\n').pop()}`);
    else console.log(`PyTorch yardstick skipped: ${p.error?.message ?? p.stderr.trim().split('\n').pop()} (apt-get install python3-torch)`);
  }

  const ref = (r: { task: string; width: number; batchSize: number }) => torch?.results.find((t) => t.task === r.task && t.width === r.width && t.batchSize === r.batchSize);
  const md: string[] = [
    `# Throughput (${new Date().toISOString()})`, '',
    `CPU: ${engines[0]?.cpu.model ?? '?'} x${engines[0]?.cpu.cores ?? '?'}; PyTorch ${torch ? `${torch.torch}, ${torch.threads} threads` : 'not measured'}; median of ${iterations} timed iterations after 1 warm-up.`, '',
    '| backend | threads | width | batch | task | img/s | GFLOP/s | PyTorch img/s | ours / PyTorch | peak RSS MiB |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const t = ref(r);
    const ratio = t && r.imagesPerSecond !== null ? (r.imagesPerSecond / t.imagesPerSecond).toFixed(2) : '-';
    md.push(`| ${r.backend} | ${r.threads} | ${r.width} | ${r.batchSize} | ${r.task} | ${r.imagesPerSecond?.toFixed(1) ?? `failed: ${r.error}`} | ${r.gflops?.toFixed(1) ?? '-'} | ${t ? t.imagesPerSecond.toFixed(1) : '-'} | ${ratio} | ${r.maxRssMiB.toFixed(0)} |`);
  }
  console.log('\n' + md.slice(2).join('\n'));
  if (values.out) {
    writeFileAtomic(`${values.out}.json`, JSON.stringify({ date: new Date().toISOString(), engines, results: rows, torch }, null, 2));
    writeFileAtomic(`${values.out}.md`, md.join('\n') + '\n');
    console.log(`wrote ${values.out}.json and ${values.out}.md`);
  }
});
