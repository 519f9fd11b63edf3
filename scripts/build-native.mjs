#!/usr/bin/env node
/**
 * Builds the native oneDNN addon (native/ -> native/build/Release/rift_onednn.node) at
 * `npm install` (root package.json "install" script) or by hand (`npm run build:native`).
 *
 * It NEVER fails the install: when oneDNN is missing or the build fails it prints one line and
 * records the reason in native/build/status.json, which lib/src/engine/onednn.ts reports as the reason
 * the 'onednn' backend is unavailable (the engine then falls back to wasm).
 *
 * Options (environment): ONEDNN_ROOT or DNNL_ROOT = oneDNN install prefix (include/ and lib/);
 * RIFT_SKIP_NATIVE=1 skips the build. Flag --force rebuilds even when up to date.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NATIVE = path.join(ROOT, 'native');
const BUILD = path.join(NATIVE, 'build');
const STATUS = path.join(BUILD, 'status.json');
const LOG = path.join(BUILD, 'build.log');
const ADDON = path.join(BUILD, 'Release', 'rift_onednn.node');
const INSTALL_HINT = 'install libdnnl-dev (Debian/Ubuntu), onednn-devel (Fedora) or onednn (Homebrew), or set ONEDNN_ROOT; see environment.md';

function writeStatus(status) {
  fs.mkdirSync(BUILD, { recursive: true });
  fs.writeFileSync(STATUS, JSON.stringify({ ...status, time: new Date().toISOString() }, null, 2) + '\n');
}

function fail(reason, extra = {}) {
  writeStatus({ ok: false, reason, ...extra });
  console.log(`rift-bn: native oneDNN backend not built: ${reason}. The wasm backend will be used.`);
  process.exit(0);
}

/** Include dir (holding oneapi/dnnl/dnnl.hpp) and lib dir (holding libdnnl) of oneDNN, or a reason. */
function findOnednn() {
  const prefixes = [process.env.ONEDNN_ROOT, process.env.DNNL_ROOT].filter(Boolean);
  if (process.platform === 'darwin') {
    const brew = spawnSync('brew', ['--prefix', 'onednn'], { encoding: 'utf8' });
    if (brew.status === 0 && brew.stdout.trim()) prefixes.push(brew.stdout.trim());
    prefixes.push('/opt/homebrew', '/usr/local');
  }
  prefixes.push('/usr', '/usr/local');
  const libNames = process.platform === 'darwin' ? ['libdnnl.dylib'] : ['libdnnl.so'];
  const multiarch = spawnSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).stdout?.trim();
  for (const prefix of prefixes) {
    const include = path.join(prefix, 'include');
    if (!fs.existsSync(path.join(include, 'oneapi', 'dnnl', 'dnnl.hpp'))) continue;
    const libDirs = [path.join(prefix, 'lib'), path.join(prefix, 'lib64')];
    if (multiarch) libDirs.unshift(path.join(prefix, 'lib', multiarch));
    const lib = libDirs.find((d) => libNames.some((n) => fs.existsSync(path.join(d, n))));
    if (!lib) return { reason: `oneDNN headers found in ${include} but no ${libNames.join('/')} next to them (${INSTALL_HINT})` };
    return { include, lib };
  }
  return { reason: `oneDNN headers (oneapi/dnnl/dnnl.hpp) not found (${INSTALL_HINT})` };
}

function onednnVersion(include) {
  try {
    const h = fs.readFileSync(path.join(include, 'oneapi', 'dnnl', 'dnnl_version.h'), 'utf8');
    const v = (k) => h.match(new RegExp(`#define DNNL_VERSION_${k}\\s+(\\d+)`))?.[1] ?? '?';
    return `${v('MAJOR')}.${v('MINOR')}.${v('PATCH')}`;
  } catch {
    return 'unknown';
  }
}

/** node-gyp: the one npm runs lifecycle scripts with, a local install, or the one bundled with npm. */
function findNodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  try {
    candidates.push(createRequire(path.join(ROOT, 'package.json')).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed locally
  }
  if (process.env.npm_execpath) candidates.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  candidates.push(path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((c) => c && c.endsWith('.js') && fs.existsSync(c));
}

/** Node's own headers, so node-gyp need not download them (no internet needed). */
function findNodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

function sourceHash(extra) {
  const h = createHash('sha256');
  for (const f of ['binding.gyp', ...fs.readdirSync(path.join(NATIVE, 'src')).sort().map((f) => path.join('src', f))]) {
    h.update(f).update(fs.readFileSync(path.join(NATIVE, f)));
  }
  h.update(JSON.stringify(extra));
  return h.digest('hex').slice(0, 16);
}

function lastErrorLine(log) {
  const lines = log.split('\n').map((l) => l.trim()).filter(Boolean);
  const err = lines.find((l) => /error[: ]/i.test(l) && !/^gyp ERR! (stack|System|command|cwd|node -v|node-gyp -v|not ok)/.test(l));
  return (err ?? lines[lines.length - 1] ?? 'no output').slice(0, 300);
}

function main() {
  if (process.env.RIFT_SKIP_NATIVE === '1') {
    console.log('rift-bn: native oneDNN backend build skipped (RIFT_SKIP_NATIVE=1).');
    return;
  }
  const force = process.argv.includes('--force');
  const dnnl = findOnednn();
  if (!dnnl.include) fail(dnnl.reason);
  const version = onednnVersion(dnnl.include);

  try {
    createRequire(path.join(ROOT, 'package.json')).resolve('node-addon-api');
  } catch {
    fail('node-addon-api is not installed (run npm install)');
  }
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) fail('node-gyp not found (it ships with npm; or npm install -g node-gyp)');

  const hash = sourceHash({ dnnl, version, node: process.versions.modules, napi: process.versions.napi, platform: process.platform, arch: process.arch });
  if (!force && fs.existsSync(ADDON)) {
    try {
      const prev = JSON.parse(fs.readFileSync(STATUS, 'utf8'));
      if (prev.ok && prev.hash === hash) {
        console.log(`rift-bn: native oneDNN backend up to date (oneDNN ${version}).`);
        return;
      }
    } catch {
      // no or unreadable status: rebuild
    }
  }

  const args = [nodeGyp, 'rebuild', '--directory', NATIVE, '-j', String(Math.max(1, Math.min(os.availableParallelism(), 4)))];
  const nodedir = findNodeDir();
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  const std = ['/usr/include', '/usr/local/include'];
  const env = {
    ...process.env,
    RIFT_DNNL_INCLUDE: std.includes(dnnl.include) ? '' : dnnl.include,
    // Libraries in the system's default search path need no -L/rpath.
    RIFT_DNNL_LIB: /^\/usr\/lib(64)?(\/[^/]+-linux-gnu)?$/.test(dnnl.lib) ? '' : dnnl.lib,
  };
  console.log(`rift-bn: building the native oneDNN backend (oneDNN ${version} in ${dnnl.include})...`);
  const r = spawnSync(process.execPath, args, { cwd: NATIVE, env, encoding: 'utf8', maxBuffer: 64 * 2 ** 20, timeout: 15 * 60 * 1000 });
  const log = `$ node ${args.join(' ')}\n${r.stdout ?? ''}\n${r.stderr ?? ''}\n${r.error ? String(r.error) : ''}`;
  fs.mkdirSync(BUILD, { recursive: true });
  fs.writeFileSync(LOG, log);
  if (r.status !== 0 || !fs.existsSync(ADDON)) {
    fail(`compilation failed (oneDNN ${version}): ${lastErrorLine(log)} — full log in native/build/build.log`, { dnnlVersion: version });
  }

  // Load it in a child process: catches a missing shared library at run time (e.g. libdnnl not
  // on the loader path) without risking this process.
  const probe = spawnSync(process.execPath, ['-e', `const a = require(${JSON.stringify(ADDON)}); process.stdout.write(JSON.stringify(a.info()))`], { encoding: 'utf8', timeout: 60_000 });
  if (probe.status !== 0) {
    fail(`built but cannot be loaded: ${lastErrorLine(`${probe.stderr}`)}`, { dnnlVersion: version });
  }
  const info = JSON.parse(probe.stdout);
  writeStatus({ ok: true, hash, dnnlVersion: info.dnnlVersion, runtime: info.runtime, isa: info.isa, include: dnnl.include, lib: dnnl.lib });
  console.log(`rift-bn: native oneDNN backend built (oneDNN ${info.dnnlVersion}, ${info.runtime} threading, ${info.isa}).`);
}

try {
  main();
} catch (e) {
  // Whatever happened, the install goes on.
  try {
    fail(`build script error: ${e instanceof Error ? e.message : String(e)}`);
  } catch {
    console.log(`rift-bn: native oneDNN backend not built: ${e instanceof Error ? e.message : String(e)}`);
  }
}
process.exit(0);
