/**
 * The interactive path, as a researcher uses it: `npm run jupyter` serves the notebooks on a free
 * local port, headless Chromium (Debian's, driven by playwright-core; no browser download) opens a
 * smoke notebook, runs all its cells through Jupyter's own UI, and the test checks what the page
 * then shows: every code cell ran, no cell shows an error or writes to stderr, and the charts are
 * there as images. `npm start` goes through nbconvert and never exercises this path.
 *
 * The notebook is a copy in a git-ignored folder inside the repository (so `rift-bn` resolves
 * and Jupyter's autosave cannot write outputs into the committed notebook). Skipped with the
 * reason when Jupyter, Chromium or playwright-core is missing, unless RIFT_REQUIRE_JUPYTER=1 (CI).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { jupyterMissing } from '../scripts/jupyter.js';
import { repoRoot } from '../lib/src/util/paths.js';
import { tempDir } from './helpers.js';

const ROOT = repoRoot();
const REQUIRE = process.env.RIFT_REQUIRE_JUPYTER === '1';
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((c) => fs.existsSync(c));
let playwright: typeof import('playwright-core') | undefined;
try {
  playwright = require('playwright-core');
} catch {
  playwright = undefined;
}
const missing = jupyterMissing(ROOT) ?? (CHROMIUM ? undefined : 'Chromium not found (apt-get install chromium)') ??
  (playwright ? undefined : 'playwright-core not installed (npm install)');
const skip = missing && !REQUIRE ? `${missing} (set RIFT_REQUIRE_JUPYTER=1 to make this a failure)` : false;
const NOTEBOOK = '02-base-model.ipynb';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves when `child`'s output matches `re` (or rejects after `ms`, or when it exits). */
function waitForOutput(child: ChildProcess, re: RegExp, ms: number, log: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${re} from jupyter within ${ms} ms:\n${log.join('')}`)), ms);
    const on = (d: Buffer) => {
      log.push(d.toString());
      if (re.test(log.join(''))) { clearTimeout(timer); resolve(); }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`jupyter exited (${code}):\n${log.join('')}`)); });
  });
}

test('npm run jupyter + headless Chromium: a smoke notebook runs all cells in the browser, no errors, charts shown', { skip, timeout: 600_000 }, async () => {
  assert.ok(!missing, missing);
  const work = path.join(ROOT, '.jupyter', 'ui-test', crypto.randomBytes(4).toString('hex'));
  fs.mkdirSync(work, { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'notebooks', NOTEBOOK), path.join(work, NOTEBOOK));
  const report = tempDir('rift-ui-report-');
  const port = await freePort();
  const token = crypto.randomBytes(16).toString('hex');
  // The same command a researcher types; the later --notebook-dir overrides the runner's own.
  const server = spawn('npm', ['run', '-s', 'jupyter', '--', '--no-browser', '--ip=127.0.0.1', `--port=${port}`, '--port-retries=0',
    `--NotebookApp.token=${token}`, `--notebook-dir=${work}`], {
    cwd: ROOT, env: { ...process.env, RIFT_PROFILE: 'smoke', RIFT_REPORT_DIR: report }, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  let browser: import('playwright-core').Browser | undefined;
  try {
    await waitForOutput(server, new RegExp(`127\\.0\\.0\\.1:${port}/`), 60_000, log);
    browser = await playwright!.chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(`http://127.0.0.1:${port}/notebooks/${NOTEBOOK}?token=${token}`);
    type J = { notebook: { kernel: { is_connected(): boolean; name: string } | null; get_cells(): Array<{ cell_type: string; input_prompt_number: number | string | null; output_area?: { outputs: Array<Record<string, unknown>> } }>; execute_all_cells(): void; kernel_busy: boolean } };
    await page.waitForFunction(() => (window as unknown as { Jupyter?: J }).Jupyter?.notebook?.kernel?.is_connected() === true, undefined, { timeout: 120_000 });
    const kernel = await page.evaluate(() => (window as unknown as { Jupyter: J }).Jupyter.notebook.kernel!.name);
    assert.equal(kernel, 'tslab', 'the notebook opens with the project\'s TypeScript kernel');
    await page.evaluate(() => (window as unknown as { Jupyter: J }).Jupyter.notebook.execute_all_cells());
    // Done when every code cell has a prompt number (not '*') and the kernel is idle.
    await page.waitForFunction(() => {
      const nb = (window as unknown as { Jupyter: J }).Jupyter.notebook;
      const code = nb.get_cells().filter((c) => c.cell_type === 'code');
      return !nb.kernel_busy && code.every((c) => typeof c.input_prompt_number === 'number');
    }, undefined, { timeout: 480_000, polling: 1000 });
    const outputs = await page.evaluate(() => (window as unknown as { Jupyter: J }).Jupyter.notebook.get_cells()
      .filter((c) => c.cell_type === 'code').map((c) => c.output_area?.outputs ?? []));
    const errors = outputs.flat().filter((o) => o.output_type === 'error' || (o.output_type === 'stream' && o.name === 'stderr'));
    assert.deepEqual(errors.map((o) => JSON.stringify(o).slice(0, 300)), [], 'no cell shows an error or writes to stderr');
    // What the researcher sees: rendered chart images and tables in the page.
    const images = await page.locator('.output_png img, .output_subarea img').count();
    assert.ok(images >= 1, `expected the notebook's chart(s) as images on the page, found ${images}`);
    const tables = await page.locator('.output_html table, .output_subarea table').count();
    assert.ok(tables >= 1, `expected the notebook's table(s) on the page, found ${tables}`);
    // RIFT_UI_SCREENSHOT=<file.png> keeps the screenshot (to look at what the test saw).
    const shot = process.env.RIFT_UI_SCREENSHOT ?? path.join(report, 'jupyter-ui.png');
    await page.locator('.output_png img, .output_subarea img').first().scrollIntoViewIfNeeded();
    await page.screenshot({ path: shot, fullPage: false });
    assert.ok(fs.statSync(shot).size > 10_000, 'a screenshot of the page');
    const saved = JSON.parse(fs.readFileSync(path.join(ROOT, 'notebooks', NOTEBOOK), 'utf8')) as { cells: Array<{ outputs?: unknown[] }> };
    assert.ok(saved.cells.every((c) => !c.outputs || c.outputs.length === 0), 'the committed notebook keeps no outputs');
  } finally {
    await browser?.close();
    try { process.kill(-server.pid!, 'SIGTERM'); } catch { /* already gone */ }
    await new Promise((r) => setTimeout(r, 500));
    try { process.kill(-server.pid!, 'SIGKILL'); } catch { /* already gone */ }
    fs.rmSync(work, { recursive: true, force: true });
  }
});
