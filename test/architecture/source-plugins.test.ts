import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../agent/src/config/schema.js';
import { SOURCE_PLUGINS } from '../../agent/src/sources/registry.js';
import { importEdges, readSources } from './import-graph.js';

/**
 * The source plugin rule (ARCHITECTURE.md, "Adding a source"): one folder per source under agent/src/sources/
 * with its plugin.ts and README.md, one line in the registry, and no file outside the sources folder names a
 * source: the core, the configuration and doctor reach them only through the registry.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const SOURCES = path.join(ROOT, 'agent/src/sources');
const folders = readdirSync(SOURCES).filter((f) => statSync(path.join(SOURCES, f)).isDirectory());

describe('source plugins', () => {
  it('every source folder holds its plugin and README, and the registry holds every folder once', () => {
    for (const f of folders) {
      expect(existsSync(path.join(SOURCES, f, 'plugin.ts')), `${f}/plugin.ts`).toBe(true);
      expect(existsSync(path.join(SOURCES, f, 'README.md')), `${f}/README.md`).toBe(true);
    }
    expect(SOURCE_PLUGINS.length).toBe(folders.length);
    expect(new Set(SOURCE_PLUGINS.map((p) => p.key)).size).toBe(SOURCE_PLUGINS.length);
  });

  it('each plugin is one section of the configuration schema, with its defaults', () => {
    const sections = Object.keys(configSchema.properties!.sources!.properties!);
    expect(sections.sort()).toEqual(SOURCE_PLUGINS.map((p) => p.key).sort());
    for (const p of SOURCE_PLUGINS) expect(p.schema.description.length, p.key).toBeGreaterThan(0);
  });

  /** Named exceptions, each with why; the test fails when one no longer matches an import. */
  const ALLOWED = new Map([
    // `forewarn opcua browse` is the OPC UA source's own tool: it connects as the source does (issue #17).
    ['agent/src/cli/commands/opcua-browse.ts → agent/src/sources/opcua/opcua-browse.ts', 'the OPC UA browse command'],
  ]);

  it('nothing outside agent/src/sources imports a source folder but through the registry', () => {
    const files = readSources(ROOT, ['agent/src', 'firmware-bridge/src']);
    const naming = importEdges(files)
      .edges.filter((e) => !e.from.startsWith('agent/src/sources/') && folders.some((f) => e.to.startsWith(`agent/src/sources/${f}/`)))
      .map((e) => `${e.from} → ${e.to}`);
    expect(naming.filter((n) => !ALLOWED.has(n))).toEqual([]);
    for (const allowed of ALLOWED.keys()) expect(naming, `stale exception: ${allowed}`).toContain(allowed);
  });
});
