/**
 * The first cell of every notebook in one call: the profile (env RIFT_PROFILE, as `npm start --
 * --profile <p>` sets it; default quick), its config for the notebook's dataset, the notebook's
 * Artifacts (report/<notebook>/), the engine, and the base checkpoint.
 */
import { initEngine, type EngineInfo } from '../engine/engine.js';
import type { DatasetName } from '../data/cifar.js';
import { profileFromEnv, resolveConfig, type ExperimentConfig, type ProfileName } from '../experiments/config.js';
import { ensureBaseCheckpoint } from '../experiments/adversarial-training.js';
import { Artifacts } from './artifacts.js';

/** What `openNotebook` returns: use `config: config` (not `{ config }`) when passing these on in a later cell. */
export interface NotebookContext {
  profile: ProfileName;
  config: ExperimentConfig;
  art: Artifacts;
  engine: EngineInfo;
  /** The profile's base checkpoint (`ensureBaseCheckpoint`; smoke: trained on demand), or '' with `base: false`. */
  checkpoint: string;
}

/** Options of `openNotebook`. */
export interface OpenNotebookOptions {
  /** Look up (smoke: train) the base checkpoint. Default true; false for a notebook that decides itself whether it can run. */
  base?: boolean;
}

/**
 * Opens notebook `name` (its file stem, e.g. '04-figure1-cifar10') on `dataset` (default cifar10):
 * resolves the profile's config, creates its Artifacts, starts the engine and, unless
 * `base: false`, returns the base checkpoint (throwing with the command that trains it when it is missing).
 */
export async function openNotebook(name: string, dataset: DatasetName = 'cifar10', options: OpenNotebookOptions = {}): Promise<NotebookContext> {
  const config = resolveConfig(profileFromEnv(), dataset);
  const art = new Artifacts(name, { profile: config.profile });
  const engine = await initEngine();
  const checkpoint = options.base === false ? '' : await ensureBaseCheckpoint(config);
  return { profile: config.profile, config, art, engine, checkpoint };
}
