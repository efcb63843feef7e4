import { describe, expect, it } from 'vitest';
import { ASSET_KINDS, assetKindFrom, failureModes } from '../../../../agent/src/central/workflow/failure-modes.js';

describe('failure-mode catalogue', () => {
  it('gives every kind its list, ids unique, `other` last', () => {
    for (const kind of ASSET_KINDS) {
      const modes = failureModes(kind);
      expect(modes.length, kind).toBeGreaterThan(3);
      expect(new Set(modes.map((m) => m.id)).size, kind).toBe(modes.length);
      expect(modes[modes.length - 1]).toEqual({ id: 'other', label: 'Other (described in the note)' });
    }
    expect(failureModes('machine').map((m) => m.id)).toEqual(['tool-wear', 'heat-dissipation', 'power', 'overstrain', 'random', 'other']);
    expect(failureModes('rotating').map((m) => m.id)).toEqual(expect.arrayContaining(['bearing', 'imbalance', 'misalignment', 'looseness']));
    expect(failureModes('turbofan').map((m) => m.id)).toEqual(expect.arrayContaining(['hpc-degradation', 'fan-degradation']));
  });

  it('infers the kind: models first, then alert rules, then the asset name', () => {
    const cases: Array<[string | null, string[], string[], string]> = [
      ['mill', ['machine-failure'], ['vibration.iso10816.zone_c'], 'machine'],
      ['engine-7', ['turbofan-rul'], [], 'turbofan'],
      ['sda', ['disk-failure'], [], 'disk'],
      ['gpu-0000:01:00.0', [], ['gpu.xid'], 'gpu'],
      ['edge-1', [], ['memory.ecc.uncorrected', 'pcie.aer.fatal'], 'memory'],
      ['edge-1', [], ['pcie.aer.fatal'], 'pcie'],
      ['fan', [], ['risk.threshold', 'vibration.iso10816.zone_d'], 'rotating'],
      ['edge-1', [], ['risk.threshold'], 'host'],
      ['host', [], [], 'host'],
      ['gpu-1', [], [], 'gpu'],
      ['disk-S1', ['anomaly'], [], 'disk'],
      [null, [], ['agent-offline'], 'agent'],
      ['press', ['anomaly'], ['quality.flatline'], 'generic'],
    ];
    for (const [asset, models, rules, kind] of cases) expect([asset, assetKindFrom('edge-1', asset, models, rules)]).toEqual([asset, kind]);
  });
});
