/**
 * `npm run data [-- --dataset cifar10|cifar100|all] [--dir <path>]`
 *
 * Downloads the official CIFAR binary archives, verifies their MD5s and extracts them into
 * the data directory (default: --dir, else env RIFT_DATA_DIR, else <repo>/data). Work already
 * done and verified is skipped, so re-running is cheap.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot, type DatasetName } from '../lib/src/data.js';
import { DATASET_SOURCES, prepareDataset, progressReporter } from '../lib/src/download.js';

const USAGE = 'usage: npm run data [-- --dataset cifar10|cifar100|all] [--dir <path>]';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dataset: { type: 'string', default: 'all' },
      dir: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const choice = values.dataset as string;
  if (choice !== 'all' && !(choice in DATASET_SOURCES)) throw new Error(`unknown --dataset "${choice}"\n${USAGE}`);
  const names = (choice === 'all' ? Object.keys(DATASET_SOURCES) : [choice]) as DatasetName[];
  const dir = path.resolve(values.dir ?? process.env.RIFT_DATA_DIR ?? path.join(repoRoot(), 'data'));
  console.error(`data directory: ${dir}`);
  const shared = path.resolve(repoRoot(), '..', 'shared', 'datasets');
  if (!values.dir && !process.env.RIFT_DATA_DIR && fs.existsSync(shared)) {
    console.error(`note: ${shared} exists; the reader uses data/ first when it holds a dataset, else that copy.`);
  }
  for (const name of names) {
    const source = DATASET_SOURCES[name];
    await prepareDataset(source, { dir, onProgress: progressReporter(source.archive), log: (m) => console.error(m) });
  }
}

main().catch((e: unknown) => {
  console.error(`npm run data: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
