/**
 * The library's folders are layers and imports only go down: a module may import its own
 * folder and the folders below it, never one above (read from the sources' import lines).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const SRC = path.join(__dirname, '..', 'lib', 'src');
/** Bottom to top. */
const LAYERS = ['util', 'engine', 'data', 'nn', 'attacks', 'method', 'experiments', 'analysis', 'present'];

/** Every relative module a source file imports (static, type-only, re-exports and dynamic import()). */
export function relativeImports(source: string): string[] {
  const out: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"](\.{1,2}\/[^'"]+)['"]/g;
  for (let m = re.exec(source); m; m = re.exec(source)) out.push(m[1]);
  return out;
}

function sources(): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) out.push(p);
    }
  };
  walk(SRC);
  return out;
}

const layerOf = (file: string) => path.relative(SRC, file).split(path.sep)[0];

test('every module lives in a layer folder (index.ts alone at the top)', () => {
  for (const f of sources()) {
    const rel = path.relative(SRC, f);
    if (rel === 'index.ts') continue;
    assert.ok(LAYERS.includes(layerOf(f)) && rel.includes(path.sep), `${rel} is not inside one of ${LAYERS.join(', ')}`);
  }
});

test('imports only go down the layers', () => {
  const wrong: string[] = [];
  let checked = 0;
  for (const f of sources()) {
    const rel = path.relative(SRC, f);
    if (rel === 'index.ts') continue;
    const from = LAYERS.indexOf(layerOf(f));
    for (const spec of relativeImports(fs.readFileSync(f, 'utf8'))) {
      const target = path.resolve(path.dirname(f), spec.replace(/\.js$/, '.ts'));
      assert.ok(fs.existsSync(target), `${rel} imports ${spec}, which does not exist`);
      const to = LAYERS.indexOf(layerOf(target));
      checked++;
      if (to > from) wrong.push(`${rel} (${LAYERS[from]}) imports ${path.relative(SRC, target)} (${LAYERS[to]})`);
    }
  }
  assert.ok(checked > 50, `read only ${checked} imports`);
  assert.deepEqual(wrong, [], `upward imports:\n${wrong.join('\n')}`);
});

test('the import reader sees every form of import', () => {
  const src = `import { a } from './x.js';\nimport type { B } from "../y/z.js";\nexport * from './w.js';\nconst m = await import('../v.js');\nimport './side.js';\nimport * as fs from 'node:fs';`;
  assert.deepEqual(relativeImports(src), ['./x.js', '../y/z.js', './w.js', '../v.js', './side.js']);
});
