import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CentralStore } from '../../../../agent/src/central/central-store.js';
import { GpuCostProjection } from '../../../../agent/src/central/gpu-cost/gpu-cost-projection.js';
import { runCli } from '../../../helpers/agent-process.js';
import { CONFIG, feedDgx, feedWorkstation } from './gpu-cost-scenario.js';

/** `forewarn central gpu-cost` as a process (the built CLI: `npx tsc` first) on a SQLite store of the scenario. */

let dir: string;
let store: string;
let config: string;
beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'fw-gpucost-'));
  store = `sqlite:${path.join(dir, 'central.db')}`;
  const s = await CentralStore.open({ url: store, projections: [new GpuCostProjection(CONFIG)] });
  await feedWorkstation(s);
  await feedDgx(s);
  await s.sql.close();
  config = path.join(dir, 'central.yaml');
  writeFileSync(
    config,
    `gpuCost:
  currency: EUR
  pricePerKwh: 0.2
  models:
    RTX-4090: { pricePerHour: 0.4 }
    H100-SXM: { pricePerHour: 2.5 }
  gpus:
    - { agents: ["ws-*"], model: RTX-4090 }
    - { agents: ["dgx-*"], model: H100-SXM }
  groups:
    - { name: training, agents: ["dgx-*"] }
`,
  );
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('forewarn central gpu-cost', () => {
  it('--csv FILE --by model: the lines priced from --config', async () => {
    const out = path.join(dir, 'cost.csv');
    const r = await runCli([
      'central',
      'gpu-cost',
      '--store',
      store,
      '--config',
      config,
      '--since',
      '2026-03-01',
      '--until',
      '2026-03-03',
      '--by',
      'model',
      '--csv',
      out,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // 17.610242 + 0.492856 + 3.356183 + 0.492856 = 21.952137
    expect(r.stdout).toMatch(/cost\.csv: 4 lines \(model per day\), total 21\.95 EUR\n$/);
    const lines = readFileSync(out, 'utf8').trimEnd().split('\n');
    expect(lines[0]).toMatch(/^day,model,gpus,busy_hours,idle_hours,/);
    // Day 1, H100: the DGX host's hand-computed figures (gpu-cost-projection.test.ts).
    expect(lines[1]).toBe('2026-03-01,H100-SXM,8,1.0000,6.5000,0.5000,0.3333,0.0000,0.0000,0.1667,0.0000,0,0.5512,1,16.25,1.25,0.11,17.61,EUR');
    expect(lines[2]).toBe('2026-03-01,RTX-4090,2,1.0000,1.0000,0.0000,0.0000,0.0000,0.0000,0.0000,0.0000,0,0.4643,0,0.40,0.00,0.09,0.49,EUR');
  });

  it('the table by group; a window of day 2 only', async () => {
    const r = await runCli([
      'central',
      'gpu-cost',
      '--store',
      store,
      '--config',
      config,
      '--since',
      '2026-03-02T00:00:00Z',
      '--until',
      '2026-03-03T00:00:00Z',
      '--by',
      'group',
    ]);
    expect(r.code).toBe(0);
    const rows = r.stdout
      .split('\n')
      .filter((l) => /^(2026|total)/.test(l))
      .map((l) => l.split(/\s{2,}/));
    expect(rows.map((x) => x.slice(0, 3))).toEqual([
      ['2026-03-02', 'training', '8'],
      ['2026-03-02', 'ungrouped', '2'],
      ['total', 'training', '8'],
      ['total', 'ungrouped', '2'],
      ['total', 'fleet', '10'],
    ]);
    expect(rows[0]!.at(-1)).toBe('3.36');
  });

  it('--json: the whole report', async () => {
    const r = await runCli(['central', 'gpu-cost', '--store', store, '--config', config, '--since', '2026-03-01', '--until', '2026-03-03', '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { by: string; daily: Array<{ day: string }>; fleet: { gpus: number; energyKwh: number } };
    expect(report.by).toBe('host');
    expect(report.daily.map((d) => d.day)).toEqual(['2026-03-01', '2026-03-02']);
    // 0.55121 + 0.114255 (DGX) + 2 × 0.46428 (workstation)
    expect(report.fleet).toMatchObject({ gpus: 10, energyKwh: expect.closeTo(0.55121 + 0.114255 + 2 * 0.46428, 9) });
  });

  it('bad arguments and a bad configuration exit 2 with a clear message', async () => {
    const noSince = await runCli(['central', 'gpu-cost', '--store', store]);
    expect(noSince.code).toBe(2);
    expect(noSince.stderr).toMatch(/--since: required/);
    const by = await runCli(['central', 'gpu-cost', '--store', store, '--since', '1d', '--by', 'rack']);
    expect([by.code, by.stderr.split('\n')[0]]).toEqual([2, 'forewarn central gpu-cost: --by: "rack" must be one of host, group, model, gpu [FW_ERR_USAGE]']);
    const badConfig = path.join(dir, 'bad.yaml');
    writeFileSync(badConfig, 'gpuCost:\n  gpus:\n    - { agents: ["x"], model: B200 }\n');
    const bad = await runCli(['central', 'gpu-cost', '--store', store, '--since', '1d', '--config', badConfig]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('gpuCost.gpus[0].model: "B200" has no price in gpuCost.models (known: none) [FW_ERR_CONFIG_INVALID]');
    const help = await runCli(['central', 'gpu-cost', '--help']);
    expect([help.code, help.stdout.split('\n')[0]]).toEqual([
      0,
      "forewarn central gpu-cost — what the fleet's GPUs cost while idle, down and in energy, per day",
    ]);
  });
});
