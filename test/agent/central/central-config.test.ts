import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseCentralOptions, runCentralCommand } from '../../../agent/src/central/central-command.js';
import { buildCentralConfig, loadCentralConfig } from '../../../agent/src/central/central-config.js';
import type { CentralConfigSection } from '../../../agent/src/central/central-config-section.js';
import { isForewarnError } from '../../../agent/src/core/errors.js';
import { captureLogger } from '../../helpers/capture-logger.js';

const dir = mkdtempSync(path.join(tmpdir(), 'fw-central-config-'));
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};

/** The `path: message` lines of a refused configuration. */
function problems(yaml: string): string[] {
  try {
    buildCentralConfig(yaml, 'central.yaml');
  } catch (err) {
    expect(isForewarnError(err, 'FW_ERR_CONFIG_INVALID')).toBe(true);
    return [...(err as { details: string[] }).details];
  }
  throw new Error('accepted');
}

afterEach(() => vi.restoreAllMocks());

describe("central's configuration file", () => {
  it('fills every default: no file means no objectives and the SRE workbook tiers', () => {
    const c = buildCentralConfig(null);
    expect(c.slo).toMatchObject({ freshness: { maxAgeSeconds: 300 }, groups: [], objectives: [], trendDays: 28 });
    expect(c.slo.burnRateAlerts.map((t) => [t.name, t.factor, t.longWindow, t.shortWindow, t.severity])).toEqual([
      ['page-fast', 14.4, '1h', '5m', 'critical'],
      ['page-slow', 6, '6h', '30m', 'critical'],
      ['ticket', 1, '3d', '6h', 'warning'],
    ]);
    expect(c.slo.burnRateAlerts[2]).toMatchObject({ longWindowMs: 3 * 86_400_000, shortWindowMs: 6 * 3_600_000 });
  });

  it('reads objectives with their defaults and durations', () => {
    const c = buildCentralConfig(`
slo:
  groups: [{ name: presses, agents: ['press-*'] }]
  objectives:
    - { name: fresh, sli: freshness, target: 0.995 }
    - { name: fast, sli: delivery-latency, target: 0.99, window: 7d, group: presses, thresholdSeconds: 30 }
  burnRateAlerts:
    - { name: page, severity: critical, factor: 10, longWindow: 2h, shortWindow: 10m }
`);
    expect(c.slo.objectives).toEqual([
      { name: 'fresh', sli: 'freshness', target: 0.995, window: '28d', windowMs: 28 * 86_400_000, group: 'all', thresholdSeconds: 60, description: '' },
      { name: 'fast', sli: 'delivery-latency', target: 0.99, window: '7d', windowMs: 7 * 86_400_000, group: 'presses', thresholdSeconds: 30, description: '' },
    ]);
    expect(c.slo.burnRateAlerts).toEqual([
      { name: 'page', severity: 'critical', factor: 10, longWindow: '2h', longWindowMs: 7_200_000, shortWindow: '10m', shortWindowMs: 600_000 },
    ]);
  });

  it('refuses what it cannot use, every problem as path: message', () => {
    expect(problems('slo: { objectives: [{ name: x, sli: speed, target: 1.5 }] }')).toEqual([
      'slo.objectives.0.sli: must be one of "freshness", "completeness", "delivery-latency", "scoring-coverage", "alert-latency"',
      'slo.objectives.0.target: must be <= 1',
    ]);
    expect(problems('slo: { objectives: [{ name: x, sli: freshness, target: 1, window: 2w, group: nobody }] }')).toEqual([
      'slo.objectives.0.window: must be a duration such as 30m, 6h or 28d',
    ]);
    expect(
      problems(`
slo:
  groups: [{ name: all, agents: ['*'] }]
  objectives:
    - { name: x, sli: freshness, target: 1, group: nobody }
    - { name: x, sli: alert-latency, target: 0.9, thresholdSeconds: 42, window: 10m }
  burnRateAlerts: [{ name: t, severity: warning, factor: 1, longWindow: 5m, shortWindow: 1h }]
`),
    ).toEqual([
      'slo.groups.0.name: "all" is built in',
      'slo.objectives.0.target: must be above 0 and below 1 (e.g. 0.995)',
      'slo.objectives.0.group: no group "nobody" (groups: all)',
      'slo.objectives.1.name: "x" is defined twice',
      'slo.objectives.1.thresholdSeconds: must be one of the histogram bounds 1, 5, 10, 30, 60, 300, 900, 3600, 86400',
      'slo.objectives.1.window: must be between 1h and 90d',
      'slo.burnRateAlerts.0.shortWindow: must be shorter than longWindow',
    ]);
    expect(problems('slo: { objectivs: [] }\ngpu: {}')).toEqual(['(root): unknown option'.replace('(root)', 'gpu'), 'slo.objectivs: unknown option']);
    expect(problems('- a list')).toEqual(['(root): must be a mapping of sections']);
  });

  it('takes sections from modules: one more entry, and its checks run', () => {
    const extra: CentralConfigSection = {
      key: 'gpuCost',
      schema: {
        type: 'object',
        description: 'x',
        additionalProperties: false,
        default: {},
        properties: { pricePerHour: { type: 'number', description: 'p', default: 2 } },
      },
      check: (s) => ((s.pricePerHour as number) < 0 ? ['gpuCost.pricePerHour: must not be negative'] : []),
    };
    expect(buildCentralConfig('gpuCost: { pricePerHour: 3 }', 'f', [extra]).gpuCost).toEqual({ pricePerHour: 3 });
    expect(() => buildCentralConfig('gpuCost: { pricePerHour: -1 }', 'f', [extra])).toThrow(/gpuCost\.pricePerHour: must not be negative/);
  });

  it('the gpuCost section (gpu-cost/) is one of them: its defaults, its values, its problems as path: message', () => {
    expect(buildCentralConfig(null).gpuCost).toMatchObject({ currency: 'USD' });
    expect(buildCentralConfig('gpuCost: { currency: EUR, pricePerKwh: 0.3 }').gpuCost).toMatchObject({ currency: 'EUR', pricePerKwh: 0.3 });
    expect(problems('gpuCost: { pricePerKwh: -1 }').join('\n')).toMatch(/^gpuCost\.pricePerKwh: /m);
  });

  it('an unreadable or malformed file is FW_ERR_CONFIG_READ', () => {
    expect(() => loadCentralConfig(path.join(dir, 'missing.yaml'))).toThrow(expect.objectContaining({ code: 'FW_ERR_CONFIG_READ' }));
    expect(() => loadCentralConfig(file('bad.yaml', 'slo: [unclosed'))).toThrow(expect.objectContaining({ code: 'FW_ERR_CONFIG_READ' }));
  });

  it('forewarn central --config: read with the flags; a bad file exits 2 with its problems on stderr', async () => {
    const good = file('good.yaml', 'slo: { objectives: [{ name: fresh, sli: freshness, target: 0.99 }] }\n');
    expect(parseCentralOptions(['--config', good, '--metrics-token-file', '/t'], {})).toMatchObject({
      config: { slo: { objectives: [{ name: 'fresh' }] } },
      metricsTokenFile: '/t',
    });
    expect(parseCentralOptions([], {}).config?.slo.objectives).toEqual([]);
    const bad = file('refused.yaml', 'slo: { objectives: [{ name: fresh, sli: freshness, target: 2 }] }\n');
    let stderr = '';
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
    expect(await runCentralCommand(['--config', bad, '--no-api'], captureLogger().log)).toBe(2);
    expect(stderr).toContain(`${bad}: invalid configuration:\n  slo.objectives.0.target: must be <= 1`);
    expect(stderr).toContain('[FW_ERR_CONFIG_INVALID]');
  });
});
