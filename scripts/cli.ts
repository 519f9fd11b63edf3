/**
 * Shared CLI plumbing: option specs that also document themselves (`--help`), parse errors that
 * list the valid options, typed checks of numeric arguments, and `runMain`, which prints an error
 * as one clear line (stack with RIFT_DEBUG=1) and exits non-zero.
 */
import { parseArgs } from 'node:util';
import { BACKEND_ORDER, type BackendName } from '../lib/src/engine/engine.js';
import { profileFromEnv } from '../lib/src/experiments/config.js';
import { ARCH_NAMES } from '../lib/src/nn/architectures.js';
import { parseNormalization, type ImportOptions } from '../lib/src/nn/pytorch.js';
import { importBase, importedBaseEnvName, type ImportedBase } from '../lib/src/experiments/imported.js';

/** One option: node's parseArgs type plus what `--help` prints. */
export interface CliOption {
  type: 'string' | 'boolean';
  multiple?: boolean;
  default?: string | boolean | string[];
  short?: string;
  /** Placeholder of the value in --help, e.g. '<file>' (string options). */
  arg?: string;
  help: string;
}

export interface CliSpec<O extends Record<string, CliOption>> {
  /** How to call it, e.g. 'npm run train --'. */
  command: string;
  /** Positional arguments in the usage line, e.g. '<base|mrc|rift>'; omitted = none allowed. */
  positionals?: string;
  /** What it does (printed under the usage line). */
  summary: string;
  options: O;
}

type Values<O extends Record<string, CliOption>> = {
  [K in keyof O]: O[K]['type'] extends 'boolean' ? boolean
    : O[K]['multiple'] extends true ? string[]
    : O[K] extends { default: string } ? string : string | undefined;
};

/** The text of `--help`: usage line, summary, one line per option with its default. */
export function helpText<O extends Record<string, CliOption>>(spec: CliSpec<O>): string {
  const rows = Object.entries(spec.options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` ${o.arg ?? '<value>'}` : ''}`;
    const dflt = o.default === undefined || o.default === false || (Array.isArray(o.default) && o.default.length === 0) ? '' : ` (default: ${o.default})`;
    return [flag, `${o.help}${dflt}`];
  });
  rows.push(['-h, --help', 'this text']);
  const w = Math.max(...rows.map((r) => r[0].length));
  return [
    `usage: ${spec.command}${spec.positionals ? ` ${spec.positionals}` : ''} [options]`, '',
    spec.summary, '', 'options:',
    ...rows.map(([f, h]) => `  ${f.padEnd(w)}  ${h}`),
  ].join('\n');
}

/**
 * Parses argv against the spec. `--help` prints helpText and exits 0; an unknown option, a
 * missing value or a stray positional throws an error naming it and the valid options.
 */
export function parseCli<O extends Record<string, CliOption>>(spec: CliSpec<O>, argv = process.argv.slice(2)): { values: Values<O>; positionals: string[] } {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(helpText(spec));
    process.exit(0);
  }
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; default?: string | boolean | string[]; short?: string }> = {};
  for (const [name, { type, multiple, default: d, short }] of Object.entries(spec.options)) {
    // parseArgs rejects keys that are present but undefined.
    options[name] = { type, ...(multiple ? { multiple } : {}), ...(d !== undefined ? { default: d } : {}), ...(short ? { short } : {}) };
  }
  const known = Object.keys(spec.options).map((n) => `--${n}`).join(', ');
  try {
    const r = parseArgs({ args: argv, options, allowPositionals: spec.positionals !== undefined, strict: true });
    return { values: r.values as Values<O>, positionals: r.positionals };
  } catch (e) {
    const err = e as Error & { code?: string };
    const see = `see \`${spec.command} --help\``;
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const opt = /'([^']+)'/.exec(err.message)?.[1] ?? err.message;
      throw new Error(`unknown option '${opt}'; options: ${known}; ${see}`);
    }
    if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') throw new Error(`${err.message.replace(/\.$/, '')}; ${see}`);
    throw new Error(`${err.message}; ${see}`);
  }
}

/** An integer ≥ min from a string option; the error names the option and the value. */
export function intArg(name: string, v: string, min: number): number {
  const x = Number(v);
  if (v.trim() === '' || !Number.isInteger(x) || x < min) throw new Error(`--${name} must be an integer ≥ ${min}, got '${v}'`);
  return x;
}

/** A number ≥ min from a string option. */
export function numberArg(name: string, v: string, min: number): number {
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || x < min) throw new Error(`--${name} must be a number ≥ ${min}, got '${v}'`);
  return x;
}

/** A comma-separated list whose every item is one of `choices`. */
export function choiceListArg<T extends string>(name: string, v: string, choices: readonly T[]): T[] {
  const xs = v.split(',');
  const bad = xs.filter((x) => !(choices as readonly string[]).includes(x));
  // split(',') always yields at least one item, so an empty value shows up as the bad item ''.
  if (bad.length) throw new Error(`--${name} must list ${choices.join(', ')} (comma-separated); got '${bad.join(',')}'`);
  return xs as T[];
}

/** One of `choices`. */
export function choiceArg<T extends string>(name: string, v: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(v)) throw new Error(`--${name} must be one of ${choices.join(', ')}; got '${v}'`);
  return v as T;
}

/** The --backend option as initEngine takes it (undefined: env RIFT_BACKEND, else auto). */
export function backendArg(v: string | undefined): BackendName | 'auto' | undefined {
  return v === undefined ? undefined : choiceArg<BackendName | 'auto'>('backend', v, ['auto', ...BACKEND_ORDER]);
}

/** Runs an async main; prints an error as one line (`RIFT_DEBUG=1`: with its stack) and exits 1. */
export function runMain(main: () => Promise<void>): void {
  main().catch((e: unknown) => {
    const msg = e instanceof Error ? e.message : String(e);
    console.error(`error: ${msg}`);
    if (process.env.RIFT_DEBUG) console.error(e);
    process.exit(1);
  });
}

/** Options several CLIs share. */
export const COMMON_OPTIONS = {
  profile: { type: 'string', default: profileFromEnv(), arg: '<smoke|quick|imported|paper>', help: 'settings profile (lib/src/experiments/config.ts); env RIFT_PROFILE' },
  dataset: { type: 'string', default: 'cifar10', arg: '<cifar10|cifar100>', help: 'dataset' },
  set: { type: 'string', multiple: true, default: [] as string[], arg: '<key=value>', help: 'override one config field, repeatable (e.g. --set finetune.epochs=3; JSON values)' },
  backend: { type: 'string', arg: '<name>', help: 'TF.js backend: auto, tensorflow-gpu, tensorflow, onednn, wasm or cpu (default: env RIFT_BACKEND, else auto)' },
} as const satisfies Record<string, CliOption>;

/** Options of every CLI that runs on a model brought from PyTorch (`--base`). */
export const IMPORT_OPTIONS = {
  base: { type: 'string', multiple: true, default: [] as string[], arg: '<model.pt>', help: 'PyTorch checkpoint (torch.save or .safetensors) to run on instead of the profile\'s own base; its class count picks the dataset (repeat for CIFAR-10 and CIFAR-100)' },
  arch: { type: 'string', arg: `<${ARCH_NAMES.join('|')}>`, help: '--base architecture (default: detected from the keys)' },
  normalization: { type: 'string', arg: '<cifar10|cifar100|none|buffers|mean=r,g,b;std=r,g,b>', help: '--base input normalisation: cifar10 = CIFAR mean/std outside the model (RiFT), none = raw [0,1] (RobustBench), buffers = the file\'s mu/sigma (default when present; else required)' },
  key: { type: 'string', arg: '<name>', help: '--base: the state_dict\'s key inside the checkpoint dict (default: top level, else state_dict/net/model/…)' },
  'preact-shortcut': { type: 'string', arg: '<input|preact>', help: '--base PreActResNet (required for one; the keys do not tell): the shortcut conv reads the block input (RobustBench PreActBlock: Wong2020Fast) or the pre-activation (PreActBlockV2)' },
} as const satisfies Record<string, CliOption>;

/** The ImportOptions the IMPORT_OPTIONS values state (checked; errors name the option). */
export function importOptionsFrom(v: { arch?: string; normalization?: string; key?: string; 'preact-shortcut'?: string }): ImportOptions {
  return {
    ...(v.arch ? { arch: choiceArg('arch', v.arch, ARCH_NAMES) } : {}),
    ...(v.normalization ? { normalization: parseNormalization(v.normalization) } : {}),
    ...(v.key ? { key: v.key } : {}),
    ...(v['preact-shortcut'] ? { preactShortcut: choiceArg('preact-shortcut', v['preact-shortcut'], ['preact', 'input'] as const) } : {}),
  };
}

/**
 * Imports each `--base` file (cached under data/imported/) and names it for its dataset in the
 * environment (RIFT_BASE_<DATASET>), so `baseCheckpointPath` and the notebooks run on it.
 * Returns the imported bases; prints one line each.
 */
export function importBasesFromArgs(v: { base: string[]; arch?: string; normalization?: string; key?: string; 'preact-shortcut'?: string }, log = console.log): ImportedBase[] {
  const options = importOptionsFrom(v);
  const out: ImportedBase[] = [];
  for (const file of v.base) {
    const b = importBase(file, options);
    if (out.some((o) => o.dataset === b.dataset)) throw new Error(`--base ${file}: a second ${b.dataset} model (one --base per dataset)`);
    process.env[importedBaseEnvName(b.dataset)] = b.checkpoint;
    log(`base for ${b.dataset}: ${b.label}, ${b.source.file} (sha256 ${b.source.sha256.slice(0, 12)}, ${b.source.format}) → ${b.checkpoint}${b.reused ? ' (imported before)' : ''}${b.source.notes.length ? `; ${b.source.notes.join('; ')}` : ''}`);
    out.push(b);
  }
  return out;
}
