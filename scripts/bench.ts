/**
 * `npm run bench [-- --widths 1,0.25 --batch 128 --iterations 5 --backend wasm --out bench.json]`
 * Prints images/s and GFLOP/s of inference, one PGD step and one SGD training step on the
 * active (or forced) backend, with the backend and thread count.
 */
import { parseArgs } from 'node:util';
import { initEngine, type BackendName } from '../lib/src/engine.js';
import { benchTask, BENCH_TASKS } from '../lib/src/bench.js';
import { writeFileAtomic } from '../lib/src/checkpoint.js';
import { runMain } from './cli.js';

runMain(async () => {

  const { values } = parseArgs({
    options: {
      widths: { type: 'string', default: '1,0.25' },
      batch: { type: 'string', default: '128' },
      iterations: { type: 'string', default: '5' },
      backend: { type: 'string' },
      out: { type: 'string' },
    },
  });
  const widths = values.widths!.split(',').map(Number);
  const batchSize = Number(values.batch);
  const iterations = Number(values.iterations);
  if (widths.some((w) => !(w > 0)) || !(batchSize >= 1) || !(iterations >= 1)) {
    throw new Error('--widths must be positive numbers, --batch and --iterations positive integers');
  }
  const engine = await initEngine({ backend: values.backend as BackendName | undefined });
  console.log(`backend ${engine.backend} (tf: ${engine.tfBackend}), threads ${engine.threads}, cpu ${engine.cpu.model} x${engine.cpu.cores}`);
  for (const a of engine.attempts.filter((x) => !x.ok)) console.log(`  skipped ${a.backend}: ${a.reason}`);
  const results = [];
  console.log('| width | batch | task | img/s | GFLOP/s | peak RSS MiB |');
  console.log('|---|---|---|---|---|---|');
  for (const width of widths) {
    for (const task of BENCH_TASKS) {
      const r = await benchTask(task, { width, batchSize, iterations });
      results.push(r);
      const ips = r.imagesPerSecond === null ? `failed: ${r.error}` : r.imagesPerSecond.toFixed(1);
      console.log(`| ${width} | ${batchSize} | ${task} | ${ips} | ${r.gflops?.toFixed(1) ?? '-'} | ${r.maxRssMiB.toFixed(0)} |`);
    }
  }
  if (values.out) {
    writeFileAtomic(values.out, JSON.stringify({ engine, date: new Date().toISOString(), results }, null, 2));
    console.log(`wrote ${values.out}`);
  }
});
