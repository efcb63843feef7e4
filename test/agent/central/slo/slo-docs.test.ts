import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildCentralConfig } from '../../../../agent/src/central/central-config.js';
import { CentralStore } from '../../../../agent/src/central/central-store.js';
import { SLI_NAMES } from '../../../../agent/src/central/slo/slo-config.js';
import { sloMetrics } from '../../../../agent/src/central/slo/slo-metrics.js';
import { SloProjection } from '../../../../agent/src/central/slo/slo-projection.js';

const doc = readFileSync(new URL('../../../../docs/slo.md', import.meta.url), 'utf8');

describe('docs/slo.md stays true', () => {
  it('its configuration example is valid', () => {
    const yaml = /```yaml\n([\s\S]*?)```/.exec(doc)![1]!;
    const c = buildCentralConfig(yaml, 'docs/slo.md');
    expect(c.slo.objectives.map((o) => o.name)).toEqual(['telemetry-fresh', 'delivered-fast', 'alerts-fast']);
  });

  it('explains every indicator and lists every metric family', async () => {
    for (const sli of SLI_NAMES) expect(doc.toLowerCase()).toContain(`### ${sli.replace('-', ' ')}`);
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-slo-docs-'));
    try {
      const store = await CentralStore.open({
        url: `sqlite:${path.join(dir, 'c.db')}`,
        projections: [new SloProjection({ maxAgeSeconds: 300, clockSkewToleranceSeconds: 2 })],
      });
      const families = await sloMetrics(store.sql, buildCentralConfig(null).slo, Date.now());
      await store.close();
      for (const f of families) expect(doc).toContain(`| \`${f.name}\` | ${f.type} |`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
