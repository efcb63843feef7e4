import { describe, expect, it } from 'vitest';
import { DataQuality } from '../../../agent/src/health/data-quality.js';
import type { QualityConfig } from '../../../agent/src/config/load-config.js';

const config: QualityConfig = { enabled: true, staleAfterIntervals: 3, flatlineSamples: 5, stepFactor: 10, analogSignals: ['temp.*.celsius'] };
const reading = (ts: number, metrics: Record<string, number>) => ({ ts, source: 's', asset: 'a', metrics });

describe('DataQuality', () => {
  it('flags values outside their physical range, keeps them out of the clean reading, and says when they recover', () => {
    const dq = new DataQuality(config);
    const bad = dq.check(reading(1, { 'temp.cpu.celsius': 900, 'memory.used_pct': 40, 'disk.sda.read_bytes_per_s': -5 }));
    expect(bad.flags).toEqual({ 'temp.cpu.celsius': 'range', 'disk.sda.read_bytes_per_s': 'range' });
    expect(bad.clean.metrics).toEqual({ 'memory.used_pct': 40 });
    expect(bad.issues.map((i) => [i.signal, i.check, i.failing])).toEqual([
      ['temp.cpu.celsius', 'range', true],
      ['disk.sda.read_bytes_per_s', 'range', true],
    ]);
    // Failing again is not news; recovering is.
    expect(dq.check(reading(2, { 'temp.cpu.celsius': 901 })).issues).toEqual([]);
    const ok = dq.check(reading(3, { 'temp.cpu.celsius': 45 }));
    expect(ok.issues).toEqual([expect.objectContaining({ signal: 'temp.cpu.celsius', check: 'range', failing: false })]);
    expect(ok.clean.metrics).toEqual({ 'temp.cpu.celsius': 45 });
  });

  it('flags a flatlined analog signal but not a flat counter', () => {
    const dq = new DataQuality(config);
    const flags: string[] = [];
    for (let i = 0; i < 8; i++) {
      const r = dq.check(reading(i * 1000, { 'temp.cpu.celsius': 50, 'memory.used_bytes': 1000 }));
      flags.push(r.flags['temp.cpu.celsius'] ?? '-');
      expect(r.flags['memory.used_bytes']).toBeUndefined();
    }
    expect(flags).toEqual(['-', '-', '-', '-', '-', 'flatline', 'flatline', 'flatline']);
  });

  it("flags a sudden step against the signal's usual change, after warm-up, and does not learn from it", () => {
    const dq = new DataQuality({ ...config, flatlineSamples: 0 });
    let t = 0;
    for (let i = 0; i < 30; i++) expect(dq.check(reading((t += 1000), { 'temp.cpu.celsius': 50 + (i % 2) })).flags).toEqual({});
    expect(dq.check(reading((t += 1000), { 'temp.cpu.celsius': 80 })).flags).toEqual({ 'temp.cpu.celsius': 'step' });
    expect(dq.check(reading((t += 1000), { 'temp.cpu.celsius': 20 })).flags).toEqual({ 'temp.cpu.celsius': 'step' });
    expect(dq.check(reading((t += 1000), { 'temp.cpu.celsius': 51 })).flags).toEqual({});
  });

  it('treats model inputs as analog signals', () => {
    const dq = new DataQuality(config);
    dq.addAnalogSignals(['torque']);
    let flagged = 0;
    for (let i = 0; i < 8; i++) if (dq.check(reading(i, { torque: 40 })).flags.torque === 'flatline') flagged++;
    expect(flagged).toBe(3);
  });

  it('reports a steady signal as stale when it stops arriving, and recovered when it returns', () => {
    const dq = new DataQuality(config);
    for (let t = 0; t <= 10_000; t += 1000) dq.check(reading(t, { 'temp.cpu.celsius': 50 + (t % 3000) / 1000, 'load.1m': 1 }));
    expect(dq.checkStale(12_000)).toEqual([]);
    const stale = dq.checkStale(14_500);
    expect(stale.map((i) => [i.signal, i.check])).toEqual([['temp.cpu.celsius', 'stale']]); // load.1m is not a steady signal
    expect(dq.checkStale(20_000)).toEqual([]); // said once
    expect(dq.failing()).toEqual([{ asset: 'a', signal: 'temp.cpu.celsius', checks: ['stale'] }]);
    const back = dq.check(reading(21_000, { 'temp.cpu.celsius': 51 }));
    expect(back.issues).toEqual([expect.objectContaining({ check: 'stale', failing: false })]);
  });

  it('does nothing when disabled', () => {
    const dq = new DataQuality({ ...config, enabled: false });
    expect(dq.check(reading(1, { 'temp.cpu.celsius': 900 })).flags).toEqual({});
  });
});

describe('DataQuality step check', () => {
  it('accepts a new level after it holds for a few samples', () => {
    const dq = new DataQuality({ ...config, flatlineSamples: 0 });
    let t = 0;
    for (let i = 0; i < 30; i++) dq.check(reading((t += 1000), { 'temp.cpu.celsius': 50 + (i % 2) }));
    const flags = [80, 80.5, 80, 80.5, 80, 80.5].map((v) => dq.check(reading((t += 1000), { 'temp.cpu.celsius': v })).flags['temp.cpu.celsius'] ?? '-');
    expect(flags).toEqual(['step', 'step', 'step', 'step', '-', '-']);
  });
});
