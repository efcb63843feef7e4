import { describe, expect, it } from 'vitest';
import { Ajv } from 'ajv';
import {
  DEFAULT_DOWNTIME_XIDS,
  GPU_COST_CONFIG_SECTION,
  GPU_COST_DEFAULTS,
  GpuCatalog,
  parseGpuCostConfig,
} from '../../../../agent/src/central/gpu-cost/gpu-cost-config.js';

describe('the gpuCost configuration section', () => {
  it('defaults: no prices, idle below 5 %/5 %, gaps over 15 min, a fatal Xid costs 10 min, idle alert after 2 h', () => {
    expect(parseGpuCostConfig(undefined)).toEqual(GPU_COST_DEFAULTS);
    expect(GPU_COST_DEFAULTS).toMatchObject({
      maxGapMs: 900_000,
      xidDowntimeMs: 600_000,
      alerts: { idleForMs: 7_200_000, downtime: { windowMs: 604_800_000, top: 5 } },
    });
    // The catalogue's critical Xids, without 154 (a recovery action changing, which follows another Xid).
    expect(DEFAULT_DOWNTIME_XIDS).toEqual([46, 48, 62, 64, 74, 79, 95, 109, 119, 120, 140]);
    expect(Object.isFrozen(parseGpuCostConfig({}).idle)).toBe(true);
  });

  it('units: minutes and hours in the file, ms inside', () => {
    const c = parseGpuCostConfig({ maxGapMinutes: 2.5, xidDowntimeMinutes: 0, alerts: { idleForHours: 0.5, downtime: { windowHours: 24 } } });
    expect(c).toMatchObject({ maxGapMs: 150_000, xidDowntimeMs: 0, alerts: { idleForMs: 1_800_000, downtime: { windowMs: 86_400_000 } } });
  });

  it('every problem at once, each as path: message; nothing silently defaulted', () => {
    let message = '';
    try {
      parseGpuCostConfig({
        pricePerKwh: -1,
        modles: {},
        models: { H100: { pricePerHour: 'two' }, A100: { price: 1 } },
        gpus: [{ agents: ['dgx-*'], model: 'B200' }, { model: 'H100' }],
        groups: [
          { name: 'a', agents: ['x*'] },
          { name: 'a', agents: ['y*'] },
          { name: 'ungrouped', agents: ['z'] },
        ],
        idle: { utilizationPct: 150 },
        alerts: { idleForHours: 0, downtime: { top: 2.5 } },
      });
    } catch (err) {
      expect(err).toMatchObject({ code: 'FW_ERR_CONFIG_INVALID' });
      message = (err as Error).message;
    }
    expect(message.split('\n')).toEqual([
      expect.stringMatching(/^gpuCost\.modles: unknown option \(known: currency, pricePerKwh, models, /),
      'gpuCost.models.H100.pricePerHour: must be a number, got string "two"',
      'gpuCost.models.A100.price: unknown option (known: pricePerHour)',
      'gpuCost.models.A100.pricePerHour: required',
      'gpuCost.gpus[0].model: "B200" has no price in gpuCost.models (known: H100, A100)',
      'gpuCost.gpus[1].agents: required',
      'gpuCost.groups[1].name: "a" is defined twice',
      'gpuCost.groups[2].name: "ungrouped" is reserved for agents no group matches',
      'gpuCost.alerts.downtime.top: must be an integer, got 2.5',
      'gpuCost.pricePerKwh: must be from 0 to ∞, got -1',
      'gpuCost.idle.utilizationPct: must be from 0 to 100, got 150',
      'gpuCost.alerts.idleForHours: must be from 0.001 to ∞, got 0',
    ]);
  });

  it('not a mapping: one clear line', () => {
    expect(() => parseGpuCostConfig(['x'])).toThrow(/^gpuCost: must be a mapping, got a list$/);
  });

  it("the section for central's configuration file: its schema compiles under Ajv strict and fills the defaults; check runs the parser", () => {
    const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true });
    ajv.addKeyword({ keyword: 'secret', schemaType: 'boolean' });
    // As central-config.ts compiles the file's schema: the sections under one root.
    const validate = ajv.compile({ type: 'object', additionalProperties: false, properties: { gpuCost: GPU_COST_CONFIG_SECTION.schema } });
    const section: Record<string, unknown> = { models: { H100: { pricePerHour: 2 } }, gpus: [{ agents: ['dgx-*'], model: 'H100' }] };
    expect(validate({ gpuCost: section })).toBe(true);
    expect(validate({ gpuCost: { maxGapMinutes: 'soon' } })).toBe(false);
    expect(section).toMatchObject({ maxGapMinutes: 15, idle: { utilizationPct: 5 }, alerts: { idleForHours: 2, downtime: { top: 5 } } });
    expect(GPU_COST_CONFIG_SECTION.check(section)).toEqual([]);
    expect(parseGpuCostConfig(section).models).toEqual({ H100: { pricePerHour: 2 } });
    expect(GPU_COST_CONFIG_SECTION.check({ gpus: [{ agents: ['x'], model: 'nope' }] })).toEqual([
      'gpuCost.gpus[0].model: "nope" has no price in gpuCost.models (known: none)',
    ]);
  });

  it('the catalogue: first matching rule wins; unknown models at their own price; ungrouped', () => {
    const c = new GpuCatalog(
      parseGpuCostConfig({
        models: { H100: { pricePerHour: 2.5 }, A100: { pricePerHour: 1.2 } },
        unknownModelPricePerHour: 0.5,
        gpus: [
          { agents: 'dgx-*', assets: ['gpu-0000:18:00.0'], model: 'A100' },
          { agents: ['dgx-*'], model: 'H100' },
        ],
        groups: [{ name: 'training', agents: ['dgx-??'] }],
      }),
    );
    expect(c.of('dgx-01', 'gpu-0000:18:00.0')).toEqual({ group: 'training', model: 'A100', pricePerHour: 1.2 });
    expect(c.of('dgx-01', 'gpu-0000:2a:00.0')).toEqual({ group: 'training', model: 'H100', pricePerHour: 2.5 });
    expect(c.of('dgx-100', 'gpu-0000:2a:00.0')).toEqual({ group: 'ungrouped', model: 'H100', pricePerHour: 2.5 });
    expect(c.of('ws-1', 'gpu-0000:01:00.0')).toEqual({ group: 'ungrouped', model: 'unknown', pricePerHour: 0.5 });
  });
});
