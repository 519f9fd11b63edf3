/** `npm run bench -- [options]`: throughput per backend beside PyTorch (`--help` lists the options). */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { initEngine, BACKEND_ORDER, type EngineInfo } from '../lib/src/engine/engine.js';
import { benchTask, profileTask, median, BENCH_TASKS, type BenchResult, type BenchTask } from '../lib/src/experiments/bench.js';
import type { KernelProfile } from '../lib/src/engine/kernel-profile.js';
import { runMain, parseCli, intArg, choiceArg, choiceListArg, type CliSpec, type CliOption } from './cli.js';
import { writeFileAtomic } from '../lib/src/util/fs.js';

const PYTHON = '/usr/bin/python3';
const MALLOC = { MALLOC_MMAP_THRESHOLD_: '33554432', MALLOC_TRIM_THRESHOLD_: '17179869184', MALLOC_TOP_PAD_: '1073741824' };

interface TorchProfile { repetitions: number; totalMs: number; ops: Array<{ op: string; calls: number; ms: number }> }
interface TorchResult { task: string; width: number; batchSize: number; imagesPerSecond: number; profile?: TorchProfile }

/**
 * What a kernel (ours, by TF.js kernel name) or an aten op (PyTorch's, by profiler key) does, so
 * the two breakdowns can be read side by side. Unlisted names are 'other'.
 */
const CATEGORIES: Array<[string, RegExp, RegExp]> = [
  ['conv forward', /^(Conv2D|FusedConv2D)$/, /^aten::(mkldnn_convolution|_convolution|convolution|conv2d|_slow_conv2d_forward|thnn_conv2d)$/],
  ['conv backward (input + filter)', /^Conv2DBackprop(Input|Filter)$/, /^aten::(convolution_backward|mkldnn_convolution_backward.*|_slow_conv2d_backward)$/],
  ['batch norm (fwd + bwd; ours: with a fused ReLU and residual add)', /BatchNorm|^Rift(BN|Bn|ScaleShift)/i, /^aten::(native_batch_norm|native_batch_norm_backward|_batch_norm_impl_index|batch_norm|cudnn_batch_norm|_native_batch_norm_legit.*|batch_norm_backward.*)$/],
  ['relu (fwd + bwd)', /^(Relu|ReluGrad|RiftReluGrad|Step)$/, /^aten::(relu_?|threshold_backward|clamp_min_?)$/],
  ['linear / matmul', /^(BatchMatMul|_FusedMatMul|MatMul)$/, /^aten::(addmm|mm|bmm|matmul|linear)$/],
  ['pooling', /^(AvgPool|AvgPoolGrad|MaxPool.*)$/, /^aten::(avg_pool2d.*|adaptive_avg_pool2d.*|_adaptive_avg_pool2d.*|mean)$/],
  ['elementwise (add, mul, sub, div, sign, clip)', /^(Add|AddN|Sub|Multiply|RealDiv|Sign|ClipByValue|Neg|Maximum|Minimum|Square|Sqrt|Rsqrt|Exp|Log|Cast|ZerosLike|OnesLike|Fill|Less|Greater.*|Equal|Select|Abs)$/,
    /^aten::(add_?|mul_?|sub_?|div_?|sign|clamp_?|neg|copy_|fill_|zero_|add_out|sum|ones_like|zeros_like|_foreach_.*|lerp_?|addcmul_?|exp|log|sqrt|rsqrt|where)$/],
  ['softmax / loss', /^(Softmax|LogSoftmax|Max|Sum|Mean|Prod|ArgMax|OneHot|GatherV2|Min)$/, /^aten::(_log_softmax.*|log_softmax|nll_loss.*|cross_entropy_loss|_softmax.*|softmax)$/],
  ['layout and copies', /^(Transpose|Reshape|Slice|Concat|Pad|Identity|Pack|Unpack|Tile|StridedSlice|MirrorPad)$/, /^aten::(as_strided|view|reshape|t|transpose|permute|contiguous|clone|empty.*|_to_copy|to|resize_|detach_?|select|slice|expand|unsqueeze|squeeze|flatten|_reshape_alias|empty_like|empty_strided|set_)$/],
];
const category = (name: string, ours: boolean) => CATEGORIES.find(([, a, b]) => (ours ? a : b).test(name))?.[0] ?? 'other';

/** Markdown of one step's breakdown, ours beside PyTorch's, by category, in ms per step. */
function breakdownMarkdown(p: KernelProfile & { task: BenchTask; width: number; batchSize: number }, t: TorchProfile | undefined): string[] {
  const ours = new Map<string, number>(), theirs = new Map<string, number>();
  for (const k of p.kernels) ours.set(category(k.kernel, true), (ours.get(category(k.kernel, true)) ?? 0) + k.ms);
  for (const o of t?.ops ?? []) theirs.set(category(o.op, false), (theirs.get(category(o.op, false)) ?? 0) + o.ms);
  ours.set('outside kernels (dispatch, tape, bookkeeping)', p.outsideKernelsMs);
  if (t) theirs.set('outside kernels (dispatch, tape, bookkeeping)', t.totalMs - t.ops.reduce((a, o) => a + o.ms, 0));
  const names = [...CATEGORIES.map((c) => c[0]), 'other', 'outside kernels (dispatch, tape, bookkeeping)'];
  const f = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(1));
  const pct = (v: number | undefined, tot: number) => (v === undefined ? '' : ` (${((100 * v) / tot).toFixed(0)}%)`);
  const top = (xs: Array<{ name: string; ms: number; calls: number }>) => xs.slice(0, 8).map((x) => `${x.name} ${x.ms.toFixed(1)} ms ×${+x.calls.toFixed(1)}`).join('; ');
  return [
    `### width ${p.width}, batch ${p.batchSize}, ${p.task}: ${p.totalMs.toFixed(1)} ms per step (${p.backend}) vs ${t ? `${t.totalMs.toFixed(1)} ms (PyTorch, under its profiler)` : 'PyTorch not measured'}`, '',
    `| where | ours ms | PyTorch ms | ours − PyTorch |`, `|---|---|---|---|`,
    ...names.filter((n) => ours.has(n) || theirs.has(n)).map((n) => `| ${n} | ${f(ours.get(n))}${pct(ours.get(n), p.totalMs)} | ${f(theirs.get(n))}${t ? pct(theirs.get(n), t.totalMs) : ''} | ${ours.has(n) || theirs.has(n) ? ((ours.get(n) ?? 0) - (theirs.get(n) ?? 0)).toFixed(1) : '-'} |`),
    '', `Top kernels, ours: ${top(p.kernels.map((k) => ({ name: k.kernel, ms: k.ms, calls: k.calls })))}.`,
    ...(t ? ['', `Top ops, PyTorch: ${top(t.ops.map((o) => ({ name: o.op, ms: o.ms, calls: o.calls })))}.`] : []), '',
  ];
}

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
    rounds: { type: 'string', default: '1', arg: '<N>', help: 'repeat ours-then-PyTorch N times and report medians (for machines whose speed drifts)' },
    out: { type: 'string', arg: '<P>', help: 'write P.json and P.md' },
    ops: { type: 'boolean', default: false, help: 'instead of throughput: per-kernel time of one step of each task, ours beside torch.profiler\'s per aten op' },
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

  if (values.ops) return opsBreakdown({ widths, batches, iterations, requested, torchMode, out: values.out });
  const rounds = intArg('rounds', values.rounds, 1);
  const engines: EngineInfo[] = [];
  const candidates = requested ?? BACKEND_ORDER.filter((b) => b !== 'cpu');
  // Each round measures ours and then PyTorch, so a ratio pairs numbers taken minutes apart,
  // not a drifting machine's first and last quarter hour; the report takes medians over rounds.
  const perRound: Array<{ ours: Array<BenchResult & { backend: string; threads: number }>; torch: TorchResult[] | null }> = [];
  let torchInfo: { torch: string; threads: number } | null = null;
  for (let round = 0; round < rounds; round++) {
    const ours: Array<BenchResult & { backend: string; threads: number }> = [];
    for (const backend of candidates) {
      let engine: EngineInfo;
      try {
        engine = await initEngine({ backend });
      } catch (e) {
        if (requested) throw e;
        continue; // not available here: auto mode benchmarks what exists
      }
      if (round === 0) engines.push(engine);
      console.log(`${rounds > 1 ? `round ${round + 1}/${rounds}: ` : ''}backend ${engine.backend}: ${engine.threads} thread(s), cpu ${engine.cpu.model} x${engine.cpu.cores}`);
      for (const width of widths) for (const batchSize of batches) for (const task of BENCH_TASKS) {
        const r = await benchTask(task, { width, batchSize, iterations });
        ours.push({ ...r, backend: engine.backend, threads: engine.threads });
        console.log(`  w=${width} b=${batchSize} ${task}: ${r.imagesPerSecond === null ? `failed (${r.error})` : `${r.imagesPerSecond.toFixed(1)} img/s, ${r.gflops!.toFixed(1)} GFLOP/s`}`);
      }
    }
    let torchRows: TorchResult[] | null = null;
    if (torchMode !== 'off') {
      const cfg = { widths, batches, threads: Math.max(...engines.map((e) => e.threads), 1), iterations, warmup: 1, maxSeconds: 30 };
      const p = spawnSync(PYTHON, [path.join(__dirname, 'bench_torch.py'), JSON.stringify(cfg)], { env: { ...process.env, ...MALLOC }, encoding: 'utf8', maxBuffer: 1 << 24 });
      if (p.status === 0) {
        const t = JSON.parse(p.stdout) as { torch: string; threads: number; results: TorchResult[] };
        torchInfo = { torch: t.torch, threads: t.threads };
        torchRows = t.results;
      } else if (torchMode === 'on') throw new Error(`PyTorch yardstick failed (${PYTHON} scripts/bench_torch.py): ${p.stderr.trim().split('\n').pop()}`);
      else console.log(`PyTorch yardstick skipped: ${p.error?.message ?? p.stderr.trim().split('\n').pop()} (apt-get install python3-torch)`);
    }
    perRound.push({ ours, torch: torchRows });
  }
  const same = (a: { task: string; width: number; batchSize: number }, b: { task: string; width: number; batchSize: number }) => a.task === b.task && a.width === b.width && a.batchSize === b.batchSize;
  // Rows of the first round, with each number the median over the rounds.
  const rows = perRound[0].ours.map((r0) => {
    const all = perRound.map((pr) => pr.ours.find((r) => r.backend === r0.backend && same(r, r0))).filter((r): r is BenchResult & { backend: string; threads: number } => !!r && r.imagesPerSecond !== null);
    const ips = all.length ? median(all.map((r) => r.imagesPerSecond!)) : null;
    const ratios = perRound.map((pr) => {
      const t = pr.torch?.find((x) => same(x, r0));
      const o = pr.ours.find((r) => r.backend === r0.backend && same(r, r0));
      return t && o && o.imagesPerSecond !== null ? o.imagesPerSecond / t.imagesPerSecond : null;
    }).filter((x): x is number => x !== null);
    return { ...r0, imagesPerSecond: ips, gflops: ips === null || r0.gflops === null || r0.imagesPerSecond === null ? null : (r0.gflops * ips) / r0.imagesPerSecond, roundRatios: ratios };
  });
  const torch = torchInfo && perRound.some((p) => p.torch) ? {
    ...torchInfo,
    results: perRound.find((p) => p.torch)!.torch!.map((t0) => ({ ...t0, imagesPerSecond: median(perRound.map((p) => p.torch?.find((x) => same(x, t0))?.imagesPerSecond).filter((x): x is number => x !== undefined)) })),
  } : null;

  const ref = (r: { task: string; width: number; batchSize: number }) => torch?.results.find((t) => t.task === r.task && t.width === r.width && t.batchSize === r.batchSize);
  const md: string[] = [
    `# Throughput (${new Date().toISOString()})`, '',
    `CPU: ${engines[0]?.cpu.model ?? '?'} x${engines[0]?.cpu.cores ?? '?'}; PyTorch ${torch ? `${torch.torch}, ${torch.threads} threads` : 'not measured'}; median of ${iterations} timed iterations after 1 warm-up` +
      `${rounds > 1 ? `; ${rounds} rounds, each ours then PyTorch: img/s are medians over the rounds, ours / PyTorch the median of the rounds' ratios [range]` : ''}.`, '',
    '| backend | threads | width | batch | task | img/s | GFLOP/s | PyTorch img/s | ours / PyTorch | peak RSS MiB |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const t = ref(r);
    const ratio = r.roundRatios.length ? `${median(r.roundRatios).toFixed(2)}${r.roundRatios.length > 1 ? ` [${Math.min(...r.roundRatios).toFixed(2)}–${Math.max(...r.roundRatios).toFixed(2)}]` : ''}` : '-';
    md.push(`| ${r.backend} | ${r.threads} | ${r.width} | ${r.batchSize} | ${r.task} | ${r.imagesPerSecond?.toFixed(1) ?? `failed: ${r.error}`} | ${r.gflops?.toFixed(1) ?? '-'} | ${t ? t.imagesPerSecond.toFixed(1) : '-'} | ${ratio} | ${r.maxRssMiB.toFixed(0)} |`);
  }
  console.log('\n' + md.slice(2).join('\n'));
  if (values.out) {
    writeFileAtomic(`${values.out}.json`, JSON.stringify({ date: new Date().toISOString(), engines, rounds, results: rows, torch, perRound }, null, 2));
    writeFileAtomic(`${values.out}.md`, md.join('\n') + '\n');
    console.log(`wrote ${values.out}.json and ${values.out}.md`);
  }
});

/** `--ops`: where a step's time goes, per kernel, beside PyTorch's profiler on the same step. */
async function opsBreakdown(o: { widths: number[]; batches: number[]; iterations: number; requested?: string[]; torchMode: string; out?: string }): Promise<void> {
  const engine = await initEngine({ backend: (o.requested?.[0] ?? 'auto') as 'auto' });
  console.log(`backend ${engine.backend}: ${engine.threads} thread(s), cpu ${engine.cpu.model} x${engine.cpu.cores}; ${o.iterations} profiled steps each`);
  const ours: Array<ReturnType<typeof profileTask>> = [];
  for (const width of o.widths) for (const batchSize of o.batches) for (const task of BENCH_TASKS) {
    const p = profileTask(task, { width, batchSize, repetitions: o.iterations });
    ours.push(p);
    console.log(`  w=${width} b=${batchSize} ${task}: ${p.totalMs.toFixed(1)} ms/step, ${p.outsideKernelsMs.toFixed(1)} ms outside kernels; top ${p.kernels.slice(0, 3).map((k) => `${k.kernel} ${k.ms.toFixed(1)} ms`).join(', ')}`);
  }
  let torch: { torch: string; threads: number; results: TorchResult[] } | null = null;
  if (o.torchMode !== 'off') {
    const cfg = { widths: o.widths, batches: o.batches, threads: engine.threads, iterations: o.iterations, warmup: 1, maxSeconds: 60, profile: true, repetitions: o.iterations };
    const p = spawnSync(PYTHON, [path.join(__dirname, 'bench_torch.py'), JSON.stringify(cfg)], { env: { ...process.env, ...MALLOC }, encoding: 'utf8', maxBuffer: 1 << 26 });
    if (p.status === 0) torch = JSON.parse(p.stdout);
    else if (o.torchMode === 'on') throw new Error(`PyTorch profile failed (${PYTHON} scripts/bench_torch.py): ${p.stderr.trim().split('\n').pop()}`);
  }
  const md = [
    `# Where a step's time goes (${new Date().toISOString()})`, '',
    `CPU: ${engine.cpu.model} x${engine.cpu.cores}; ours: ${engine.backend}, ${engine.threads} threads, each TF.js kernel timed (lib/src/engine/kernel-profile.ts), ${o.iterations} steps after 1 warm-up; ` +
      `PyTorch ${torch ? `${torch.torch}, ${torch.threads} threads` : 'not measured'}: torch.profiler self CPU time per aten op over ${o.iterations} steps (the profiler adds its own overhead per op).`, '',
    ...ours.flatMap((p) => breakdownMarkdown(p, torch?.results.find((t) => t.task === p.task && t.width === p.width && t.batchSize === p.batchSize)?.profile)),
  ];
  console.log('\n' + md.join('\n'));
  if (o.out) {
    writeFileAtomic(`${o.out}.json`, JSON.stringify({ date: new Date().toISOString(), engine, ours, torch }, null, 2));
    writeFileAtomic(`${o.out}.md`, md.join('\n') + '\n');
    console.log(`wrote ${o.out}.json and ${o.out}.md`);
  }
}
