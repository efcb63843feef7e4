import { describe, expect, it } from 'vitest';
import { parseGpuCostConfig } from '../../../../agent/src/central/gpu-cost/gpu-cost-config.js';
import { advance, gpuSample, newXids, type GpuState, type Parts } from '../../../../agent/src/central/gpu-cost/gpu-intervals.js';

const config = parseGpuCostConfig({ maxGapMinutes: 30, xidDowntimeMinutes: 20 });
const HOUR = 3_600_000;
const MIN = 60_000;
const T = Date.parse('2026-03-01T09:50:00Z');
const GiB = 2 ** 30;

const m = (util: number, power: number, extra: Record<string, number> = {}) => ({
  'gpu.lost': 0,
  'gpu.utilization_pct': util,
  'gpu.memory.used_bytes': util > 0 ? 40 * GiB : 0,
  'gpu.memory.total_bytes': 80 * GiB,
  'gpu.power.draw_w': power,
  ...extra,
});

function run(samples: Array<[number, Record<string, number>]>, bootSeqs: number[] = []): { parts: Parts; state: GpuState | null } {
  const parts: Parts = new Map();
  let state: GpuState | null = null;
  samples.forEach(([t, metrics], i) => {
    state = advance(state, gpuSample('gpu-0000:18:00.0', t, metrics, config)!, bootSeqs[i] ?? 1, config, parts);
  });
  return { parts, state };
}

describe('GPU intervals', () => {
  it('energy: the trapezoid, split at the hour with the power interpolated', () => {
    // 09:50 at 100 W, 10:10 at 400 W: linear, 250 W at 10:00.
    // 09:50–10:00: (100 + 250)/2 W × 1/6 h = 29.1667 Wh; 10:00–10:10: (250 + 400)/2 × 1/6 = 54.1667 Wh; sum 83.3333
    // = (100 + 400)/2 × 1/3 h.
    const { parts } = run([
      [T, m(90, 100)],
      [T + 20 * MIN, m(90, 400)],
    ]);
    const h9 = parts.get(Date.parse('2026-03-01T09:00:00Z'))!;
    const h10 = parts.get(Date.parse('2026-03-01T10:00:00Z'))!;
    expect(h9.energyWh).toBeCloseTo(350 / 12, 9);
    expect(h10.energyWh).toBeCloseTo(650 / 12, 9);
    expect(h9.busyMs + h10.busyMs).toBe(20 * MIN);
    expect([h9.poweredMs, h10.poweredMs]).toEqual([10 * MIN, 10 * MIN]);
  });

  it('a gap longer than maxGap: neither classified nor integrated, counted once where it starts', () => {
    const { parts } = run([
      [T, m(0, 60)],
      [T + 2 * HOUR, m(0, 60)],
    ]);
    const all = [...parts.values()];
    expect(all.reduce((s, p) => s + p.gapMs, 0)).toBe(2 * HOUR);
    expect(all.reduce((s, p) => s + p.gaps, 0)).toBe(1);
    expect(all.reduce((s, p) => s + p.energyWh + p.idleMs + p.busyMs, 0)).toBe(0);
  });

  it('a GPU lost before going silent stays down through the gap', () => {
    const { parts } = run([
      [T, { 'gpu.lost': 1 }],
      [T + 2 * HOUR, m(0, 60)],
    ]);
    expect([...parts.values()].reduce((s, p) => s + p.downMs.lost, 0)).toBe(2 * HOUR);
  });

  it('causes: lost before memory (remap failure) before reset required; a fatal Xid holds for xidDowntime', () => {
    const { parts } = run([
      [T, m(90, 300, { 'gpu.remapped_rows.failure': 1, 'gpu.reset.required': 1 })],
      [T + 5 * MIN, m(90, 300, { 'gpu.reset.required': 1 })],
      [T + 10 * MIN, m(90, 300, { 'gpu.xid.79.count': 1 })],
      [T + 15 * MIN, m(90, 300, { 'gpu.xid.79.count': 1 })],
      [T + 40 * MIN, m(90, 300, { 'gpu.xid.79.count': 1 })],
    ]);
    const sum = (k: 'lost' | 'memory' | 'reset' | 'xid') => [...parts.values()].reduce((s, p) => s + p.downMs[k], 0);
    // Xid 79 at 09:60 → down 10:00–10:20, then busy 10:20–10:30.
    expect([sum('memory'), sum('reset'), sum('xid')]).toEqual([5 * MIN, 5 * MIN, 20 * MIN]);
    expect([...parts.values()].reduce((s, p) => s + p.busyMs, 0)).toBe(10 * MIN);
    expect([...parts.values()].reduce((s, p) => s + p.xids, 0)).toBe(1);
  });

  it('idle needs the start idle and the end not busy; memory in use is not idle', () => {
    const { parts, state } = run([
      [T, m(0, 60)],
      [T + 5 * MIN, m(0, 60)],
      [T + 10 * MIN, m(50, 300)],
      [T + 15 * MIN, m(0, 60)],
      [T + 20 * MIN, m(0, 60, { 'gpu.memory.used_bytes': 10 * GiB })],
    ]);
    const sum = (k: 'idleMs' | 'busyMs') => [...parts.values()].reduce((s, p) => s + p[k], 0);
    expect([sum('idleMs'), sum('busyMs')]).toEqual([5 * MIN, 15 * MIN]);
    expect(state!.idleSince).toBeNull();
  });

  it('Xid counts: increases are new; after an agent restart (new boot seq) the counts start again', () => {
    expect(newXids({ 48: 1 }, { 48: 3, 79: 1 })).toBe(3);
    expect(newXids({ 48: 3 }, { 48: 1 })).toBe(1);
    const { parts } = run(
      [
        [T, m(0, 60, { 'gpu.xid.48.count': 2 })],
        [T + MIN, m(0, 60, { 'gpu.xid.48.count': 2 })],
        [T + 2 * MIN, m(0, 60, { 'gpu.xid.48.count': 2 })],
      ],
      [1, 1, 2],
    );
    expect([...parts.values()].reduce((s, p) => s + p.xids, 0)).toBe(4);
  });

  it('not a GPU record: no sample', () => {
    expect(gpuSample('host', T, { 'gpu.lost': 0 }, config)).toBeNull();
    expect(gpuSample('gpu-0000:18:00.0', T, { cpu: 1 }, config)).toBeNull();
    expect(gpuSample('gpu-0000:18:00.0', 'x', { 'gpu.lost': 0 }, config)).toBeNull();
  });
});
