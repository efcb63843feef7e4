/**
 * A small dependency-rule checker over the TypeScript sources (ARCHITECTURE.md): it reads the relative
 * `import … from '…'`, `export … from '…'`, `import '…'` and `import('…')` specifiers of each file (type-only
 * imports included: they follow the same rule), resolves them to files, and reports import cycles between files
 * and imports against the documented layer order. No TypeScript compiler needed: the codebase writes one import
 * per statement, and a specifier is always a string literal.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** Repository-relative, '/'-separated path → source text. */
export type SourceFiles = ReadonlyMap<string, string>;

/** A folder that owns its files for the layer rule: `core`, `pipeline`, `firmware-bridge/modbus`, … */
export interface ImportEdge {
  from: string;
  to: string;
}

export interface LayerViolation extends ImportEdge {
  fromFolder: string;
  toFolder: string;
  /** Index of the layer, 0 = bottom; -1 when the folder is not in the documented order at all. */
  fromLayer: number;
  toLayer: number;
}

export interface CheckResult {
  /** Each cycle once, as the files around it, starting from its alphabetically smallest file. */
  cycles: string[][];
  violations: LayerViolation[];
  /** Files that are in no documented layer. */
  unplaced: string[];
  /** Relative specifiers that resolve to no scanned file (a `'../x.js'` typo, or a file outside the roots). */
  unresolved: Array<{ from: string; specifier: string }>;
}

// `import x from`, `import type { a,\n b } from`, `export * from`, `export { a } from`: the clause holds no quote,
// semicolon, parenthesis or `=`, so the match cannot run on into code.
const FROM_RE = /^[ \t]*(?:import|export)\b[^'"`;()=]*?\bfrom\s*(['"])([^'"]+)\1/gm;
const BARE_RE = /^[ \t]*import\s*(['"])([^'"]+)\1/gm;
const DYNAMIC_RE = /\bimport\(\s*(['"])([^'"]+)\1\s*\)/g;

/** Every module specifier the source imports or re-exports from, in order of appearance (duplicates kept). */
export function importSpecifiers(source: string): string[] {
  const found: Array<{ at: number; spec: string }> = [];
  for (const re of [FROM_RE, BARE_RE, DYNAMIC_RE]) {
    for (const m of source.matchAll(re)) found.push({ at: m.index, spec: m[2]! });
  }
  return found.sort((a, b) => a.at - b.at).map((f) => f.spec);
}

/** Resolve a relative specifier (`'../core/errors.js'`) against the importing file; null for packages. */
export function resolveSpecifier(from: string, specifier: string, files: SourceFiles): string | null | undefined {
  if (!specifier.startsWith('.')) return null;
  const joined = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier));
  const candidates = [joined.replace(/\.js$/, '.ts'), joined, `${joined}.ts`, `${joined}/index.ts`];
  return candidates.find((c) => files.has(c));
}

/** File-level import edges (relative imports only; packages and `node:` modules are not part of the rule). */
export function importEdges(files: SourceFiles): { edges: ImportEdge[]; unresolved: CheckResult['unresolved'] } {
  const edges: ImportEdge[] = [];
  const unresolved: CheckResult['unresolved'] = [];
  for (const [file, source] of files) {
    const seen = new Set<string>();
    for (const specifier of importSpecifiers(source)) {
      const to = resolveSpecifier(file, specifier, files);
      if (to === null) continue;
      if (to === undefined) {
        unresolved.push({ from: file, specifier });
        continue;
      }
      if (seen.has(to)) continue;
      seen.add(to);
      edges.push({ from: file, to });
    }
  }
  return { edges, unresolved };
}

/**
 * The folder a file belongs to for the layer rule, given the source roots (`agent/src`, `firmware-bridge/src`):
 * the first folder under the root. A file directly in `agent/src` belongs to the folder of its own name
 * (`agent/src/cli.ts` → `cli`). Folders under a root other than the first are prefixed with the root's package
 * (`firmware-bridge/src/modbus/x.ts` → `firmware-bridge/modbus`).
 */
export function folderOf(file: string, roots: readonly string[]): string | undefined {
  for (const [i, root] of roots.entries()) {
    if (!file.startsWith(`${root}/`)) continue;
    const rest = file.slice(root.length + 1).split('/');
    const folder = rest.length === 1 ? rest[0]!.replace(/\.ts$/, '') : rest[0]!;
    return i === 0 ? folder : `${root.split('/')[0]}/${folder}`;
  }
  return undefined;
}

/** Every elementary cycle would be too many; one cycle per strongly connected component names the problem. */
export function findCycles(edges: readonly ImportEdge[]): string[][] {
  const out = new Map<string, string[]>();
  for (const { from, to } of edges) {
    if (!out.has(from)) out.set(from, []);
    out.get(from)!.push(to);
    if (!out.has(to)) out.set(to, []);
  }
  for (const targets of out.values()) targets.sort();
  // Tarjan's strongly connected components, iterative so deep chains cannot overflow the stack.
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  for (const start of [...out.keys()].sort()) {
    if (index.has(start)) continue;
    const work: Array<{ node: string; next: number }> = [{ node: start, next: 0 }];
    index.set(start, counter);
    low.set(start, counter++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const targets = out.get(frame.node)!;
      if (frame.next < targets.length) {
        const t = targets[frame.next++]!;
        if (!index.has(t)) {
          index.set(t, counter);
          low.set(t, counter++);
          stack.push(t);
          onStack.add(t);
          work.push({ node: t, next: 0 });
        } else if (onStack.has(t)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(t)!));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1]!.node;
        low.set(parent, Math.min(low.get(parent)!, low.get(frame.node)!));
      }
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let n: string;
        do {
          n = stack.pop()!;
          onStack.delete(n);
          component.push(n);
        } while (n !== frame.node);
        const selfLoop = out.get(frame.node)!.includes(frame.node);
        if (component.length > 1 || selfLoop) components.push(component);
      }
    }
  }
  // Show each component as one concrete cycle through its smallest file: a shortest path back to it.
  return components
    .map((component) => {
      const members = new Set(component);
      const first = [...component].sort()[0]!;
      const prev = new Map<string, string>();
      const queue = [first];
      const visited = new Set([first]);
      let last: string | undefined;
      while (queue.length > 0 && last === undefined) {
        const n = queue.shift()!;
        for (const t of out.get(n)!) {
          if (!members.has(t)) continue;
          if (t === first) {
            last = n;
            break;
          }
          if (visited.has(t)) continue;
          visited.add(t);
          prev.set(t, n);
          queue.push(t);
        }
      }
      const cycle: string[] = [];
      for (let n: string | undefined = last; n !== undefined && n !== first; n = prev.get(n)) cycle.unshift(n);
      return [first, ...cycle];
    })
    .sort((a, b) => a[0]!.localeCompare(b[0]!));
}

/**
 * The layer order written in ARCHITECTURE.md: the numbered list under the heading that starts with
 * `## Layer order`, bottom first; each item names its folders in backticks before any dash (`3. \`store\`,
 * \`health\` — …`). Folders on one line share a layer and may not import each other.
 */
export function parseLayerOrder(markdown: string): string[][] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^##\s+Layer order/i.test(l));
  if (start < 0) throw new Error('ARCHITECTURE.md has no "## Layer order" section');
  const layers: string[][] = [];
  for (const line of lines.slice(start + 1)) {
    if (/^#{1,2}\s/.test(line)) break;
    const item = /^\s*\d+\.\s+(.*)$/.exec(line);
    if (!item) continue;
    const names = item[1]!.split(/\s[—–-]\s/)[0]!;
    const folders = [...names.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    if (folders.length > 0) layers.push(folders);
  }
  if (layers.length === 0) throw new Error('the "## Layer order" section of ARCHITECTURE.md lists no layers');
  return layers;
}

/** Check the files against the layer order: no cycle between files, and every cross-folder import points down. */
export function checkArchitecture(files: SourceFiles, roots: readonly string[], layers: readonly string[][]): CheckResult {
  const layerOf = new Map<string, number>();
  for (const [i, folders] of layers.entries()) for (const f of folders) layerOf.set(f, i);
  const { edges, unresolved } = importEdges(files);
  const violations: LayerViolation[] = [];
  for (const edge of edges) {
    const fromFolder = folderOf(edge.from, roots);
    const toFolder = folderOf(edge.to, roots);
    if (fromFolder === undefined || toFolder === undefined || fromFolder === toFolder) continue;
    const fromLayer = layerOf.get(fromFolder) ?? -1;
    const toLayer = layerOf.get(toFolder) ?? -1;
    if (fromLayer < 0 || toLayer < 0 || toLayer >= fromLayer) violations.push({ ...edge, fromFolder, toFolder, fromLayer, toLayer });
  }
  const unplaced = [...files.keys()].filter((f) => {
    const folder = folderOf(f, roots);
    return folder === undefined || !layerOf.has(folder);
  });
  return { cycles: findCycles(edges), violations, unplaced: unplaced.sort(), unresolved };
}

/** Read every `.ts` file under the roots (repository-relative) into a SourceFiles map. */
export function readSources(repoRoot: string, roots: readonly string[]): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const entry of readdirSync(path.join(repoRoot, rel), { withFileTypes: true })) {
      const child = `${rel}/${entry.name}`;
      if (entry.isDirectory()) walk(child);
      else if (entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        files.set(child, readFileSync(path.join(repoRoot, child), 'utf8'));
      }
    }
  };
  for (const root of roots) walk(root);
  return files;
}
