import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ERROR_CODES } from '../agent/src/core/errors.js';
import { renderConfigDocs } from '../agent/src/config/config-docs.js';
import { renderAlertDocs } from '../agent/src/health/alert-docs.js';
import { HEALTH_RULES } from '../agent/src/health/health-rules.js';
import { buildConfig, scalarOptions } from '../agent/src/config/load-config.js';
import { iso10816Boundaries } from '../firmware-bridge/src/node-protocol/vibration-severity.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const read = (f: string) => readFileSync(path.join(ROOT, f), 'utf8');

describe('documentation stays true', () => {
  it('documents every error code, and documents no code that does not exist', () => {
    const doc = read('docs/errors.md');
    for (const code of Object.keys(ERROR_CODES)) expect(doc, code).toContain(`\`${code}\``);
    const documented = [...doc.matchAll(/`(FW_ERR_[A-Z_]+)`/g)].map((m) => m[1]);
    for (const code of documented) expect(Object.keys(ERROR_CODES)).toContain(code);
  });

  it('docs/configuration.md is generated from the current schema (npm run docs:config)', () => {
    expect(read('docs/configuration.md')).toBe(renderConfigDocs());
    for (const { path: p } of scalarOptions()) expect(read('docs/configuration.md')).toContain(`\`${p.join('.')}\``);
  });

  it('docs/alerts.md is generated from the current rules (npm run docs:alerts)', () => {
    expect(read('docs/alerts.md')).toBe(renderAlertDocs());
    for (const r of HEALTH_RULES) expect(read('docs/alerts.md')).toContain(`\`${r.id}\``);
  });

  it('the example configuration is valid and spells out exactly the defaults', () => {
    const example = buildConfig(read('docs/forewarn.example.yaml'), {});
    const defaults = buildConfig(null, {});
    expect(example).toEqual(defaults);
    // Every option is written out, not just left to its default.
    const parsed = parse(read('docs/forewarn.example.yaml')) as Record<string, unknown>;
    for (const { path: p } of scalarOptions()) {
      const value = p.reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], parsed);
      expect(value, p.join('.')).not.toBeUndefined();
    }
  });

  it("docs/vibration.md: its configuration example is valid, and its zone table is the code's", () => {
    const doc = read('docs/vibration.md');
    const example = /```yaml\n([\s\S]*?)```/.exec(doc)![1]!;
    const config = buildConfig(example, {});
    expect(config.sources.nodeStreams[0]!.iso10816.assets['mac-0024befffe804ff1']).toEqual({ machineGroup: 1, foundation: 'flexible' });
    expect(config.alerts.rules['vibration.iso10816.zone_c']).toEqual({ forMs: 120_000, hysteresis: 0.15 });
    const rows = [...doc.matchAll(/^\| ([12]): [^|]+\| (rigid|flexible) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$/gm)];
    expect(rows).toHaveLength(4);
    for (const [, group, foundation, ab, bc, cd] of rows)
      expect(iso10816Boundaries(Number(group) as 1 | 2, foundation as 'rigid' | 'flexible')).toEqual({ ab: Number(ab), bc: Number(bc), cd: Number(cd) });
  });
});
