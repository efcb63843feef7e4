import { describe, expect, it } from 'vitest';
import { DataQuality, physicalRange } from '../../../agent/src/health/data-quality.js';
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

  it('a value its source reports uncertain (OPC UA Uncertain) is flagged, kept out of the clean reading and of what the checks learn', () => {
    const dq = new DataQuality(config);
    dq.check(reading(1, { 'temp.cpu.celsius': 40 }));
    const r = dq.check({ ...reading(2, { 'temp.cpu.celsius': 41, 'memory.used_pct': 40 }), uncertain: ['temp.cpu.celsius'] });
    expect(r.flags).toEqual({ 'temp.cpu.celsius': 'uncertain' });
    expect(r.clean.metrics).toEqual({ 'memory.used_pct': 40 });
    expect(r.issues).toEqual([expect.objectContaining({ signal: 'temp.cpu.celsius', check: 'uncertain', failing: true, value: 41 })]);
    const good = dq.check(reading(3, { 'temp.cpu.celsius': 42 }));
    expect(good.clean.metrics).toEqual({ 'temp.cpu.celsius': 42 });
    expect(good.issues).toEqual([expect.objectContaining({ check: 'uncertain', failing: false })]);
    expect(dq.stats.failed.uncertain).toBe(1);
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

/** The limits of each check, to the sample: these fail if a comparison, a warm-up or a formula drifts (mutation-tested). */
describe('DataQuality limits', () => {
  const series = (dq: DataQuality, values: number[], t0 = 0, every = 1000, signal = 'temp.cpu.celsius') =>
    values.map((v, i) => dq.check(reading(t0 + i * every, { [signal]: v })));
  const alternate = (n: number, a: number, b: number) => Array.from({ length: n }, (_, i) => (i % 2 ? b : a));

  it('knows the physical range of each kind of metric by its suffix, and of nothing else', () => {
    expect(physicalRange('celsius')).toEqual([-60, 200]);
    expect(physicalRange('temp.cpu.celsius')).toEqual([-60, 200]);
    expect(physicalRange('gpu.memory_temperature_c')).toEqual([-60, 200]);
    expect(physicalRange('temp.cpucelsius')).toBeUndefined();
    expect(physicalRange('temp.celsius_offset')).toBeUndefined();
    expect(physicalRange('cpu.busy_pct')).toEqual([0, 100.5]);
    expect(physicalRange('cpu.busy_pct_avg')).toBeUndefined();
    for (const m of ['net.rx_bytes', 'net.rx_bytes_per_s', 'disk.reads_per_s', 'fan.1.rpm', 'edac.mc0.ce_count', 'smart.5.raw', 'aer.fatal_total']) {
      expect(physicalRange(m), m).toEqual([0, Number.MAX_SAFE_INTEGER]);
      expect(physicalRange(`${m}_x`), `${m}_x`).toBeUndefined();
    }
    expect(physicalRange('fan.1.rpm_target')).toBeUndefined();
    expect(physicalRange('gpu.power.draw_w')).toEqual([0, 100_000]);
    expect(physicalRange('gpu.power.draw_w2')).toBeUndefined();
    expect(physicalRange('gpu.clocks.sm_mhz')).toEqual([0, 100_000]);
    expect(physicalRange('gpu.clocks.sm_mhz_max')).toBeUndefined();
  });

  it('accepts the ends of a range, flags what lies beyond and what is not a finite number, and counts it', () => {
    const dq = new DataQuality(config);
    const r = dq.check(reading(1, { 'a.celsius': -60, 'b.celsius': 200, 'c.celsius': -60.01, 'd.celsius': 200.01, 'e.celsius': NaN, 'f.celsius': Infinity }));
    expect(r.flags).toEqual({ 'c.celsius': 'range', 'd.celsius': 'range', 'e.celsius': 'range', 'f.celsius': 'range' });
    expect(r.issues.map((i) => i.detail)).toEqual(['-60.01 outside [-60, 200]', '200.01 outside [-60, 200]', 'not a finite number', 'not a finite number']);
    expect(dq.stats).toEqual({ checked: 6, failed: { range: 4, step: 0, flatline: 0, stale: 0, uncertain: 0 } });
    const back = dq.check(reading(2, { 'c.celsius': 20 }));
    expect(back.issues).toEqual([{ asset: 'a', signal: 'c.celsius', check: 'range', failing: false, value: 20, detail: 'back to normal' }]);
  });

  it('returns the reading untouched and no issues when disabled', () => {
    const dq = new DataQuality({ ...config, enabled: false });
    const r = reading(1, { 'temp.cpu.celsius': NaN });
    expect(dq.check(r)).toEqual({ clean: r, flags: {}, issues: [] });
    expect(dq.stats.checked).toBe(0);
    expect(dq.checkStale(1e12)).toEqual([]);
  });

  it('matches analog signals by glob, with any listed pattern, literal dots included, and model inputs added later', () => {
    const dq = new DataQuality({ ...config, analogSignals: ['temp.*.celsius', 'fan.*'] });
    const flatlined = (signal: string) => series(dq, Array(7).fill(40), 0, 1000, signal).some((r) => r.flags[signal] === 'flatline');
    expect(flatlined('fan.1')).toBe(true);
    expect(flatlined('temp.x.celsius')).toBe(true);
    expect(flatlined('tempXcpuXcelsius')).toBe(false); // the dots are dots, not "any character"
    expect(flatlined('torque')).toBe(false);
    // A signal already seen becomes analog when a model takes it as an input.
    dq.addAnalogSignals(['torque']);
    expect(flatlined('torque')).toBe(true);
  });

  it('flags a flatline from the configured count of unchanged samples on, saying how many', () => {
    const dq = new DataQuality(config);
    const flags = series(dq, Array(8).fill(40)).map((r) => r.flags['temp.cpu.celsius'] ?? '-');
    expect(flags).toEqual(['-', '-', '-', '-', '-', 'flatline', 'flatline', 'flatline']);
    const again = new DataQuality(config);
    const issue = series(again, Array(6).fill(40)).flatMap((r) => r.issues)[0]!;
    expect(issue).toMatchObject({ check: 'flatline', failing: true, detail: 'unchanged for 6 samples' });
    expect(again.stats.failed.flatline).toBe(1);
  });

  it('judges steps only after 20 good samples, only on a signal that moves, and strictly above stepFactor × the usual change', () => {
    const noFlat = { ...config, flatlineSamples: 0 };
    // 20 samples of warm-up: a jump at the 20th is not judged, at the 21st it is.
    expect(series(new DataQuality(noFlat), [...alternate(19, 50, 52), 90]).at(-1)!.flags).toEqual({});
    expect(series(new DataQuality(noFlat), [...alternate(20, 50, 52), 90]).at(-1)!.flags).toEqual({ 'temp.cpu.celsius': 'step' });
    // A signal that never moved has no usual change: a jump is not a step (a flatline ending).
    expect(series(new DataQuality(noFlat), [...Array(30).fill(50), 90]).at(-1)!.flags).toEqual({});
    // Usual change 2, factor 10: a change of exactly 20 passes; 20.5 is a step, and the detail says by how much.
    expect(series(new DataQuality(noFlat), [...alternate(30, 50, 52), 72]).at(-1)!.flags).toEqual({});
    const step = series(new DataQuality(noFlat), [...alternate(30, 50, 52), 72.5]).at(-1)!;
    expect(step.flags).toEqual({ 'temp.cpu.celsius': 'step' });
    expect(step.issues[0]!.detail).toBe('changed by 20.5, 10.25× its usual change');
    // A change of 10 is below 10 × 2 (and above 10 / 2): not a step.
    expect(series(new DataQuality(noFlat), [...alternate(30, 50, 52), 62]).at(-1)!.flags).toEqual({});
    // stepFactor 0 turns the check off.
    expect(series(new DataQuality({ ...noFlat, stepFactor: 0 }), [...alternate(30, 50, 52), 190]).at(-1)!.flags).toEqual({});
  });

  it('learns the usual change as a running mean of the changes', () => {
    // Changes alternate 1 and 3: the usual change settles near 2, so a jump of 20 is about 10× it.
    const dq = new DataQuality({ ...config, flatlineSamples: 0, stepFactor: 5 });
    const values = [50];
    for (let i = 1; i < 40; i++) values.push(values[i - 1]! + (i % 2 ? 1 : -3));
    const last = values.at(-1)!;
    const step = series(dq, [...values, last + 20]).at(-1)!;
    const ratio = Number(/, ([\d.]+)× its usual change$/.exec(step.issues[0]!.detail)![1]);
    expect(ratio).toBeGreaterThan(9);
    expect(ratio).toBeLessThan(11);
  });

  it('learns the usual interval as a running mean of the gaps, and calls a signal stale only beyond staleAfterIntervals of it', () => {
    const dq = new DataQuality(config); // staleAfterIntervals: 3
    let t = 0;
    let i = 0;
    const next = (gap: number) => dq.check(reading((t += gap), { 'temp.cpu.celsius': 50 + (i++ % 3) }));
    for (let n = 0; n < 10; n++) next(1000);
    dq.check(reading(t, { 'temp.cpu.celsius': 51 })); // a second value with the same time stamp: no gap to learn from
    next(2000); // the usual interval becomes 1000 + (2000 − 1000) / 10 = 1100
    expect(dq.checkStale(t + 3300)).toEqual([]);
    const stale = dq.checkStale(t + 3301);
    expect(stale).toEqual([{ asset: 'a', signal: 'temp.cpu.celsius', check: 'stale', failing: true, detail: 'no value for 3 s (usually every 1 s)' }]);
    expect(dq.stats.failed.stale).toBe(1);
  });

  it('learns no interval from a first value that failed its range check', () => {
    const dq = new DataQuality(config);
    dq.check(reading(0, { 'temp.cpu.celsius': 900 })); // out of range: not a sample of the signal
    dq.check(reading(10_000, { 'temp.cpu.celsius': 50 }));
    dq.check(reading(11_000, { 'temp.cpu.celsius': 51 })); // the first gap between good values: 1 s
    expect(dq.checkStale(14_000)).toEqual([]);
    expect(dq.checkStale(14_001).map((i) => i.check)).toEqual(['stale']);
  });

  it('does not call a signal stale before it has an interval', () => {
    const dq = new DataQuality(config);
    dq.check(reading(0, { 'temp.cpu.celsius': 50 }));
    expect(dq.checkStale(1e9)).toEqual([]);
  });
});
