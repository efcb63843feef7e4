import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkArchitecture, findCycles, folderOf, importSpecifiers, parseLayerOrder, readSources, type LayerViolation } from './import-graph.js';

/**
 * The dependency rule of ARCHITECTURE.md: no import cycle between files, and every import across folders points
 * down the layer order written there (type-only imports included). The order is parsed from ARCHITECTURE.md
 * itself, so the document and this check cannot drift apart.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const ROOTS = ['agent/src', 'firmware-bridge/src'];

/**
 * Wrong-way imports that remain, `from → to` (files), each with why it is still there. Issue 12 wants none: this
 * list may only shrink. An entry that no longer matches an import fails the test, so a fixed one must go.
 */
const ALLOWED: ReadonlyArray<{ from: string; to: string; reason: string }> = [];

const describeViolation = (v: LayerViolation) => `${v.from} → ${v.to} (${v.fromFolder} may not import ${v.toFolder})`;

describe('the dependency rule (ARCHITECTURE.md)', () => {
  const layers = parseLayerOrder(readFileSync(path.join(ROOT, 'ARCHITECTURE.md'), 'utf8'));
  const files = readSources(ROOT, ROOTS);
  const result = checkArchitecture(files, ROOTS, layers);

  it('reads a layer order from ARCHITECTURE.md with core at the bottom and each folder once', () => {
    expect(layers[0]).toEqual(['core']);
    const all = layers.flat();
    expect(new Set(all).size).toBe(all.length);
  });

  it('places every source file in a documented layer, and every import resolves', () => {
    expect(result.unplaced).toEqual([]);
    expect(result.unresolved).toEqual([]);
    // Every documented folder exists: the document names no folder that is gone.
    const present = new Set([...files.keys()].map((f) => folderOf(f, ROOTS)));
    for (const folder of layers.flat()) expect(present.has(folder), folder).toBe(true);
  });

  it('has no import cycle between files', () => {
    expect(result.cycles.map((c) => c.join(' → '))).toEqual([]);
  });

  it('has no import against the layer order beyond the named allow-list', () => {
    const allowed = new Set(ALLOWED.map((a) => `${a.from} → ${a.to}`));
    const unexpected = result.violations.filter((v) => !allowed.has(`${v.from} → ${v.to}`)).map(describeViolation);
    expect(unexpected).toEqual([]);
  });

  it('allows no import that is no longer there (the allow-list only shrinks)', () => {
    const actual = new Set(result.violations.map((v) => `${v.from} → ${v.to}`));
    const stale = ALLOWED.map((a) => `${a.from} → ${a.to}`).filter((k) => !actual.has(k));
    expect(stale).toEqual([]);
    for (const a of ALLOWED) expect(a.reason.length, `${a.from} → ${a.to}`).toBeGreaterThan(10);
  });

  it('keeps core a leaf: it imports no other folder, not even for types', () => {
    const fromCore = result.violations.filter((v) => v.fromFolder === 'core');
    expect(fromCore.map(describeViolation)).toEqual([]);
  });
});

describe('the checker itself', () => {
  const roots = ['app/src', 'lib/src'];
  const order = parseLayerOrder(
    ['# X', '', '## Layer order', '', '1. `core` — leaf', '2. `store`, `sync` — parts', '3. `pipeline` — top', '', '## Next', '4. `ignored`'].join('\n'),
  );

  it('parses the numbered layer list, several folders per line, and stops at the next section', () => {
    expect(order).toEqual([['core'], ['store', 'sync'], ['pipeline']]);
    expect(() => parseLayerOrder('# nothing here')).toThrow(/Layer order/);
  });

  it('finds import, export and type-only specifiers, also across lines, and nothing in plain code', () => {
    const source = [
      "import { a } from './a.js';",
      "import type { B } from '../b/b.js';",
      'import {',
      '  c,',
      '  type D,',
      "} from './c.js';",
      "export * from './e.js';",
      "export { f } from './f.js';",
      "export type { G } from './g.js';",
      "import './side-effect.js';",
      "const h = await import('./h.js');",
      "import { pino } from 'pino';",
      "export const s = 'from \\'./not-an-import.js\\'';",
      "const x = Array.from('./nope.js');",
      " * import { z } from './in-a-comment.js' (a doc comment line starts with a star)",
    ].join('\n');
    expect(importSpecifiers(source)).toEqual(['./a.js', '../b/b.js', './c.js', './e.js', './f.js', './g.js', './side-effect.js', './h.js', 'pino']);
  });

  it('names folders by their first segment under a root; a root file by its own name; other roots with a prefix', () => {
    expect(folderOf('app/src/store/x/y.ts', roots)).toBe('store');
    expect(folderOf('app/src/cli.ts', roots)).toBe('cli');
    expect(folderOf('lib/src/modbus/codec.ts', roots)).toBe('lib/modbus');
    expect(folderOf('test/x.ts', roots)).toBeUndefined();
  });

  it('reports a cycle between files and an import against the layer order', () => {
    const files = new Map([
      // A cycle inside one folder (allowed direction, still a cycle): a → b → c → a.
      ['app/src/store/a.ts', "import { b } from './b.js';\nexport const a = 1;"],
      ['app/src/store/b.ts', "import type { C } from './deep/c.js';\nexport const b = 2;"],
      ['app/src/store/deep/c.ts', "import { a } from '../a.js';\nexport type C = number;"],
      // Downward imports are fine.
      ['app/src/pipeline/agent.ts', "import { a } from '../store/a.js';\nimport { log } from '../core/log.js';"],
      ['app/src/core/log.ts', 'export const log = 1;'],
      // Wrong way: a type-only import from core up into store, and one across a layer (store → sync).
      ['app/src/core/types.ts', "import type { a } from '../store/a.js';"],
      ['app/src/store/uses-sync.ts', "import { s } from '../sync/s.js';"],
      ['app/src/sync/s.ts', 'export const s = 1;'],
      // An undocumented folder and a broken specifier.
      ['app/src/stray/x.ts', "import { nope } from '../core/missing.js';"],
    ]);
    const r = checkArchitecture(files, roots, order);
    expect(r.cycles).toEqual([['app/src/store/a.ts', 'app/src/store/b.ts', 'app/src/store/deep/c.ts']]);
    expect(r.violations.map((v) => `${v.from} → ${v.to}`).sort()).toEqual([
      'app/src/core/types.ts → app/src/store/a.ts',
      'app/src/store/uses-sync.ts → app/src/sync/s.ts',
    ]);
    expect(r.unplaced).toEqual(['app/src/stray/x.ts']);
    expect(r.unresolved).toEqual([{ from: 'app/src/stray/x.ts', specifier: '../core/missing.js' }]);
  });

  it('reports a two-file cycle across folders, and a self-import', () => {
    const edges = [
      { from: 'p/agent.ts', to: 'm/server.ts' },
      { from: 'm/server.ts', to: 'p/agent.ts' },
      { from: 'x/self.ts', to: 'x/self.ts' },
      { from: 'p/agent.ts', to: 'c/leaf.ts' },
    ];
    expect(findCycles(edges)).toEqual([['m/server.ts', 'p/agent.ts'], ['x/self.ts']]);
  });

  it('passes a clean tree', () => {
    const files = new Map([
      ['app/src/core/t.ts', 'export type T = 1;'],
      ['app/src/store/s.ts', "import type { T } from '../core/t.js';"],
      ['app/src/pipeline/p.ts', "import '../store/s.js';\nexport * from '../core/t.js';"],
    ]);
    expect(checkArchitecture(files, roots, order)).toEqual({ cycles: [], violations: [], unplaced: [], unresolved: [] });
  });
});
