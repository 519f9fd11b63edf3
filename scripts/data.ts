/** `npm run data -- [options]`: download, verify and extract the official CIFAR archives (`--help` lists the options). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DATASET_NAMES, type DatasetName } from '../lib/src/data/cifar.js';
import { DATASET_SOURCES, prepareDataset, progressReporter } from '../lib/src/data/download.js';
import { runMain, parseCli, choiceArg, type CliSpec, type CliOption } from './cli.js';
import { repoRoot } from '../lib/src/util/paths.js';

const CLI = {
  command: 'npm run data --',
  summary: 'Downloads the official CIFAR binary archives, verifies their MD5s and extracts them into the data\n' +
    'directory. Work already done and verified is skipped, so rerunning is cheap.',
  options: {
    dataset: { type: 'string', default: 'all', arg: '<cifar10|cifar100|all>', help: 'which archives' },
    dir: { type: 'string', arg: '<path>', help: 'data directory (default: env RIFT_DATA_DIR, else <repo>/data)' },
  },
} as const satisfies CliSpec<Record<string, CliOption>>;

runMain(async () => {
  const { values } = parseCli(CLI);
  const choice = choiceArg('dataset', values.dataset, ['all', ...DATASET_NAMES]);
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
});
