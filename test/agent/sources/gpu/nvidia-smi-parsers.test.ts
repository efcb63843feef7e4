import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { XID_CATALOG } from '../../../../agent/src/contract/nvidia-xid-catalog.js';
import {
  normalizeBusId,
  parseHelpQueryGpu,
  parseIdentityCsv,
  parseKernelLog,
  parseNvlinkErrors,
  parseQueryCsv,
  parseQueryText,
  parseRemappedRows,
  parseSmiValue,
  parseXidLine,
  planIdentityQuery,
  planQuery,
  xidInfo,
  xidSeverity,
  type QueryPlan,
} from '../../../../agent/src/sources/gpu/nvidia-smi-parsers.js';
import { seededRandom as prng } from '../../../helpers/seeded-random.js';

const fixture = (rel: string) => readFileSync(new URL(`./fixtures/${rel}`, import.meta.url), 'utf8');
const sets = JSON.parse(fixture('sets.json')) as Record<string, { help: string; query?: string }>;
/** The recorded hosts (the `h100-broken` set replays a malformed CSV). */
const HOSTS = Object.keys(sets).filter((s) => !sets[s]!.query);
const MiB = 1024 * 1024;
const NEW = planQuery(parseHelpQueryGpu(fixture('help/help-query-gpu-535.txt')).fields);
const OLD = planQuery(parseHelpQueryGpu(fixture('help/help-query-gpu-470.txt')).fields);

/** A set's query CSV, checked to have exactly the columns the source would ask this driver for. */
function loadQuery(set: string): { plan: QueryPlan; text: string } {
  const plan = planQuery(parseHelpQueryGpu(fixture(sets[set]!.help)).fields);
  const text = fixture(`${set}/query-gpu.csv`);
  expect(/^# fields: (.*)$/m.exec(text)?.[1]?.split(',')).toEqual(plan.fields);
  return { plan, text: text.replace(/^#.*\n/, '') };
}

describe('parseSmiValue', () => {
  it.each([
    ['42', 42],
    [' 100.89 ', 100.89],
    ['-8', -8],
    ['P0', 0],
    ['P12', 12],
    ['Enabled', 1],
    ['Disabled', 0],
    ['Active', 1],
    ['Not Active', 0],
    ['Yes', 1],
    ['No', 0],
    ['0x0000000000000004', 4],
    ['0x00000000000001FF', 511],
    ['16x', 16],
    ['30 C', 30],
    ['81559 MiB', 81559],
    ['97 %', 97],
  ])('%j → %d', (raw, value) => expect(parseSmiValue(raw)).toEqual({ kind: 'value', value }));

  it.each(['[N/A]', '[Not Supported]', 'N/A', '[Unknown Error]', '[GPU is lost]', 'ERR!', '', '   ', '[Insufficient Permissions]'])(
    '%j is missing, never zero',
    (raw) => expect(parseSmiValue(raw)).toEqual({ kind: 'missing' }),
  );

  it.each(['lots', '1e999', '9'.repeat(400), '0xFFFFFFFFFFFFFFFF', 'P99x', 'Maybe', 'NaN', 'Infinity', '12,5'])('%j is invalid', (raw) => {
    expect(parseSmiValue(raw).kind).toBe('invalid');
  });
});

describe('normalizeBusId', () => {
  it.each([
    ['00000000:18:00.0', '0000:18:00.0'],
    ['PCI:0000:3b:00', '0000:3b:00.0'],
    ['0000:3B:00', '0000:3b:00.0'],
    ['18:00.0', '0000:18:00.0'],
    ['00000009:01:00.0', '0009:01:00.0'],
    ['0001ab00:01:00.0', '0001ab00:01:00.0'],
    ['pci:0000:10:1c', '0000:10:1c.0'],
  ])('%s → %s', (raw, want) => expect(normalizeBusId(raw)).toBe(want));

  it.each(['', 'zzzz:18:00', '0000:18:00.9', 'GPU-I:05', '0000:180:00.0', 'not-a-bus'])('%j is not an address', (raw) => {
    expect(normalizeBusId(raw)).toBeUndefined();
  });
});

describe('parseHelpQueryGpu and planQuery', () => {
  it('reads every field name and alias of the driver 535 help, and nothing from description lines', () => {
    const h = parseHelpQueryGpu(fixture('help/help-query-gpu-535.txt'));
    expect(h.problems).toEqual([]);
    expect(h.fields.size).toBe(171);
    expect(h.aliases.get('clocks_throttle_reasons.hw_slowdown')).toEqual(['clocks_event_reasons.hw_slowdown', 'clocks_throttle_reasons.hw_slowdown']);
    expect(h.aliases.get('clocks.sm')).toEqual(['clocks.current.sm', 'clocks.sm']);
    // `"0: Default" means multiple contexts …` is prose, not a field.
    expect([...h.fields].some((f) => f.includes(' ') || f.startsWith('0'))).toBe(false);
  });

  it('reads the older help, which knows only clocks_throttle_reasons.*', () => {
    const h = parseHelpQueryGpu(fixture('help/help-query-gpu-470.txt'));
    expect(h.problems).toEqual([]);
    expect(h.fields.size).toBe(139);
    expect(h.fields.has('clocks_throttle_reasons.hw_slowdown')).toBe(true);
    expect([...h.fields].filter((f) => f.startsWith('clocks_event_reasons.'))).toEqual([]);
    expect(h.fields.has('pcie.link.gen.gpucurrent')).toBe(false);
  });

  it('prefers clocks_event_reasons.* and falls back to clocks_throttle_reasons.* on older drivers', () => {
    expect(NEW.fields).toHaveLength(35);
    expect(OLD.fields).toHaveLength(35);
    expect(NEW.fields).toContain('clocks_event_reasons.hw_slowdown');
    expect(NEW.fields).toContain('pcie.link.gen.gpucurrent');
    expect(NEW.fields.some((f) => f.startsWith('clocks_throttle_reasons.'))).toBe(false);
    expect(OLD.fields).toContain('clocks_throttle_reasons.hw_slowdown');
    expect(OLD.fields).toContain('pcie.link.gen.current');
    expect(OLD.fields.some((f) => f.startsWith('clocks_event_reasons.'))).toBe(false);
    expect(NEW.fields.slice(0, 2)).toEqual(['index', 'pci.bus_id']);
  });

  it('asks only for what a driver knows', () => {
    expect(planQuery(new Set(['index', 'pci.bus_id', 'power.limit', 'clocks.sm'])).fields).toEqual(['index', 'pci.bus_id', 'power.limit', 'clocks.sm']);
    const truncated = parseHelpQueryGpu(fixture('malformed/help-truncated.txt'));
    expect(planQuery(truncated.fields).fields).toEqual([
      'index',
      'pci.bus_id',
      'pcie.link.gen.gpucurrent',
      'pcie.link.gen.max',
      'pcie.link.width.current',
      'pcie.link.width.max',
    ]);
  });

  it('reports problems for empty or foreign text', () => {
    expect(parseHelpQueryGpu('').problems).toEqual(['no field names found in --help-query-gpu output']);
    expect(parseHelpQueryGpu('"timestamp"\n').problems).toEqual(['--help-query-gpu output lacks index or pci.bus_id']);
  });
});

describe('parseQueryCsv on the recorded hosts', () => {
  it('covers the five recorded hosts', () => expect(HOSTS).toEqual(['h100x8', 'a100', 'v100', 't4', 'rtx4090']));

  it('8×H100 SXM (565.57.01): every GPU, exact values', () => {
    const { plan, text } = loadQuery('h100x8');
    const { rows, problems } = parseQueryCsv(text, plan);
    expect(problems).toEqual([]);
    expect(rows.map((r) => r.busId)).toEqual([
      '0000:18:00.0',
      '0000:2a:00.0',
      '0000:3a:00.0',
      '0000:5d:00.0',
      '0000:9a:00.0',
      '0000:ab:00.0',
      '0000:ba:00.0',
      '0000:db:00.0',
    ]);
    expect(rows[0]).toEqual({
      index: 0,
      busId: '0000:18:00.0',
      metrics: {
        'gpu.index': 0,
        'gpu.lost': 0,
        'gpu.utilization_pct': 0,
        'gpu.memory.utilization_pct': 0,
        'gpu.memory.total_bytes': 81559 * MiB,
        'gpu.memory.used_bytes': 1 * MiB,
        'gpu.temperature_c': 30,
        'gpu.memory_temperature_c': 36,
        'gpu.power.draw_w': 100.89,
        'gpu.power.limit_w': 700,
        'gpu.clocks.sm_mhz': 345,
        'gpu.clocks.mem_mhz': 2619,
        'gpu.clocks.graphics_mhz': 345,
        'gpu.pstate': 0,
        'gpu.throttle.active_mask': 1,
        'gpu.throttle.sw_power_cap': 0,
        'gpu.throttle.hw_slowdown': 0,
        'gpu.throttle.hw_thermal_slowdown': 0,
        'gpu.throttle.hw_power_brake_slowdown': 0,
        'gpu.throttle.sw_thermal_slowdown': 0,
        'gpu.ecc.mode': 1,
        'gpu.ecc.volatile.corrected': 0,
        'gpu.ecc.volatile.uncorrected': 0,
        'gpu.ecc.aggregate.corrected': 0,
        'gpu.ecc.aggregate.uncorrected': 0,
        'gpu.reset.required': 0,
        'gpu.reset.drain_recommended': 0,
        'gpu.pcie.link_gen': 5,
        'gpu.pcie.link_gen_max': 5,
        'gpu.pcie.link_width': 16,
        'gpu.pcie.link_width_max': 16,
      },
      // H100 SXM has no fan reading and retires no pages (it remaps rows): N/A, so absent.
      missing: ['gpu.fan_pct', 'gpu.retired_pages.sbe', 'gpu.retired_pages.dbe', 'gpu.retired_pages.pending'],
    });
    expect(rows.map((r) => r.metrics['gpu.power.draw_w'])).toEqual([100.89, 82.81, 85, 85.48, 84.94, 85.27, 86.05, 75.09]);
    expect(rows.map((r) => r.metrics['gpu.temperature_c'])).toEqual([30, 30, 31, 29, 28, 30, 29, 29]);
    expect(rows.map((r) => r.metrics['gpu.index'])).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('A100-SXM4-40GB (535.129.03)', () => {
    const { plan, text } = loadQuery('a100');
    const { rows, problems } = parseQueryCsv(text, plan);
    expect(problems).toEqual([]);
    expect(rows.map((r) => [r.busId, r.metrics['gpu.temperature_c'], r.metrics['gpu.memory_temperature_c'], r.metrics['gpu.power.draw_w']])).toEqual([
      ['0000:2f:00.0', 22, 40, 52.12],
      ['0000:35:00.0', 22, 22, 53.16],
    ]);
    expect(rows[0]?.metrics['gpu.memory.total_bytes']).toBe(40960 * MiB);
    expect(rows[0]?.metrics['gpu.power.limit_w']).toBe(400);
    expect(rows[0]?.metrics['gpu.pcie.link_gen']).toBe(4);
  });

  it('V100 PCIe on driver 470 (clocks_throttle_reasons): retired pages and lifetime ECC counts', () => {
    const { plan, text } = loadQuery('v100');
    const [row] = parseQueryCsv(text, plan).rows;
    expect(row?.busId).toBe('0000:d8:00.0');
    expect(row?.metrics).toMatchObject({
      'gpu.ecc.volatile.corrected': 2,
      'gpu.ecc.volatile.uncorrected': 0,
      'gpu.ecc.aggregate.corrected': 14,
      'gpu.ecc.aggregate.uncorrected': 1,
      'gpu.retired_pages.sbe': 1,
      'gpu.retired_pages.dbe': 1,
      'gpu.retired_pages.pending': 0,
      'gpu.throttle.hw_slowdown': 0,
      'gpu.power.limit_w': 250,
      'gpu.pcie.link_gen': 3,
    });
    expect(row?.missing).toEqual(['gpu.memory_temperature_c', 'gpu.fan_pct', 'gpu.reset.drain_recommended']);
  });

  it('T4 (515.105.01, Telegraf recording): a x8 link in a x16 slot', () => {
    const { plan, text } = loadQuery('t4');
    const [row] = parseQueryCsv(text, plan).rows;
    expect(row?.busId).toBe('0000:00:1e.0');
    expect(row?.metrics).toMatchObject({
      'gpu.power.draw_w': 26.78,
      'gpu.power.limit_w': 70,
      'gpu.temperature_c': 40,
      'gpu.memory.used_bytes': 1032 * MiB,
      'gpu.pcie.link_width': 8,
      'gpu.pcie.link_width_max': 16,
      'gpu.throttle.active_mask': 0,
      'gpu.retired_pages.pending': 0,
    });
    expect(row?.missing).toEqual(['gpu.memory_temperature_c', 'gpu.fan_pct', 'gpu.reset.required', 'gpu.reset.drain_recommended']);
  });

  it('GeForce RTX 4090: [Not Supported] health fields are absent, never 0', () => {
    const { plan, text } = loadQuery('rtx4090');
    const [idle, busy] = parseQueryCsv(text, plan).rows;
    const unsupported = [
      'gpu.ecc.volatile.corrected',
      'gpu.ecc.volatile.uncorrected',
      'gpu.ecc.aggregate.corrected',
      'gpu.ecc.aggregate.uncorrected',
      'gpu.retired_pages.sbe',
      'gpu.retired_pages.dbe',
      'gpu.retired_pages.pending',
    ];
    for (const row of [idle, busy]) {
      for (const m of unsupported) expect(row?.metrics).not.toHaveProperty(m);
      expect(row?.missing).toEqual(expect.arrayContaining(unsupported));
      expect(row?.metrics['gpu.ecc.mode']).toBe(0);
    }
    expect(idle?.metrics).toMatchObject({ 'gpu.pstate': 8, 'gpu.fan_pct': 0, 'gpu.pcie.link_gen': 1, 'gpu.power.draw_w': 18.9 });
    expect(busy?.metrics).toMatchObject({
      'gpu.pstate': 2,
      'gpu.utilization_pct': 97,
      'gpu.throttle.active_mask': 4,
      'gpu.throttle.sw_power_cap': 1,
      'gpu.fan_pct': 86,
    });
  });

  it.each(HOSTS)('%s: every cell printed as unavailable is absent from the metrics', (set) => {
    const { plan, text } = loadQuery(set);
    const lines = text.split('\n').filter((l) => l.trim());
    const { rows } = parseQueryCsv(text, plan);
    expect(rows).toHaveLength(lines.length);
    rows.forEach((row, r) => {
      const cells = lines[r]!.split(',').map((c) => c.trim());
      plan.columns.forEach((spec, i) => {
        if (parseSmiValue(cells[i + 2]!).kind === 'missing') {
          expect(row.metrics).not.toHaveProperty(spec.metric);
          expect(row.missing).toContain(spec.metric);
        } else expect(Number.isFinite(row.metrics[spec.metric])).toBe(true);
      });
    });
  });
});

describe('parseQueryCsv on malformed output', () => {
  it('keeps whole lines and reports cut ones', () => {
    const { rows, problems } = parseQueryCsv(fixture('malformed/query-gpu-truncated.csv').replace(/^#.*\n/, ''), NEW);
    expect(rows.map((r) => r.index)).toEqual([0, 1]);
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(/^expected 35 columns, got 16/);
  });

  it('treats error markers as missing, flags a lost GPU, and reports unparseable values', () => {
    const { rows, problems } = parseQueryCsv(fixture('malformed/query-gpu-errors.csv').replace(/^#.*\n/, ''), NEW);
    expect(rows.map((r) => r.index)).toEqual([0, 1, 2, 4]);
    const [unknown, lost, err] = rows;
    expect(unknown?.metrics).not.toHaveProperty('gpu.utilization_pct');
    expect(unknown?.metrics).not.toHaveProperty('gpu.power.draw_w');
    expect(unknown?.metrics['gpu.lost']).toBe(0);
    expect(lost?.metrics).toEqual({ 'gpu.index': 1, 'gpu.lost': 1 });
    expect(lost?.missing).toHaveLength(33);
    expect(err?.metrics).not.toHaveProperty('gpu.utilization_pct');
    expect(err?.metrics).not.toHaveProperty('gpu.memory.used_bytes');
    expect(err?.metrics).not.toHaveProperty('gpu.clocks.sm_mhz');
    expect(problems).toEqual([
      expect.stringMatching(/^no GPU index or bus id in line: ERR!/),
      'utilization.gpu: unparseable value "lots"',
      'power.draw: not a finite number: 1e999',
      'pstate: unparseable value "P99x"',
      'clocks_event_reasons.active: bitmask 0xFFFFFFFFFFFFFFFF exceeds 2^53',
      'clocks_event_reasons.sw_power_cap: unparseable value "Maybe"',
    ]);
  });

  it('reads nothing from error messages and garbage, and says why', () => {
    const { rows, problems } = parseQueryCsv(fixture('malformed/query-gpu-garbage.csv'), NEW);
    expect(rows).toEqual([]);
    expect(problems).toHaveLength(6);
  });
});

describe('parseRemappedRows', () => {
  it('reads the H100 host: no remapped rows on any GPU', () => {
    const { byBus, problems } = parseRemappedRows(fixture('h100x8/remapped-rows.csv'));
    expect(problems).toEqual([]);
    expect(byBus.size).toBe(8);
    expect(byBus.get('0000:db:00.0')).toEqual({
      'gpu.remapped_rows.correctable': 0,
      'gpu.remapped_rows.uncorrectable': 0,
      'gpu.remapped_rows.pending': 0,
      'gpu.remapped_rows.failure': 0,
    });
  });

  it('reads a pending remap as 1', () => {
    expect(parseRemappedRows(fixture('a100/remapped-rows-pending.csv')).byBus.get('0000:10:1c.0')).toEqual({
      'gpu.remapped_rows.correctable': 1,
      'gpu.remapped_rows.uncorrectable': 0,
      'gpu.remapped_rows.pending': 1,
      'gpu.remapped_rows.failure': 0,
    });
  });

  it('leaves N/A out on GPUs without row remapping, and reports malformed lines', () => {
    expect(parseRemappedRows(fixture('v100/remapped-rows.csv')).byBus.get('0000:d8:00.0')).toEqual({});
    const bad = parseRemappedRows(fixture('malformed/remapped-rows-malformed.csv'));
    expect([...bad.byBus.keys()]).toEqual(['0000:18:00.0', '0000:3a:00.0', '0000:5d:00.0']);
    expect(bad.byBus.get('0000:5d:00.0')).toEqual({ 'gpu.remapped_rows.pending': 0 });
    expect(bad.problems).toHaveLength(5);
  });
});

describe('parseQueryText (nvidia-smi -q)', () => {
  it('reads replays and the cheap extras of every H100', () => {
    const { byBus, problems } = parseQueryText(fixture('h100x8/q.txt'));
    expect(problems).toEqual([]);
    expect(byBus.size).toBe(8);
    expect([...byBus].map(([bus, m]) => [bus, m['gpu.pcie.replays']])).toEqual([
      ['0000:18:00.0', 7],
      ['0000:2a:00.0', 0],
      ['0000:3a:00.0', 0],
      ['0000:5d:00.0', 0],
      ['0000:9a:00.0', 0],
      ['0000:ab:00.0', 0],
      ['0000:ba:00.0', 15],
      ['0000:db:00.0', 0],
    ]);
    expect(byBus.get('0000:18:00.0')).toEqual({
      'gpu.recovery_action': 0,
      'gpu.pcie.replays': 7,
      'gpu.pcie.replay_rollovers': 0,
      'gpu.ecc.sram_threshold_exceeded': 0,
      'gpu.ecc.aggregate.sram_uncorrectable.l2': 0,
      'gpu.ecc.aggregate.sram_uncorrectable.sm': 0,
      'gpu.ecc.aggregate.sram_uncorrectable.microcontroller': 0,
      'gpu.ecc.aggregate.sram_uncorrectable.pcie': 0,
      'gpu.ecc.aggregate.sram_uncorrectable.other': 0,
      'gpu.remapped_rows.correctable': 0,
      'gpu.remapped_rows.uncorrectable': 0,
      'gpu.remapped_rows.pending': 0,
      'gpu.remapped_rows.failure': 0,
      'gpu.remapped_rows.banks_max': 2560,
      'gpu.remapped_rows.banks_high': 0,
      'gpu.remapped_rows.banks_partial': 0,
      'gpu.remapped_rows.banks_low': 0,
      'gpu.remapped_rows.banks_none': 0,
    });
  });

  it('reads the A100 excerpt with a pending row remap (and tolerates the [...] elisions)', () => {
    const { byBus, problems } = parseQueryText(fixture('a100/q-remap-pending-510.txt'));
    expect(problems).toEqual([]);
    expect(byBus.get('0000:10:1c.0')).toEqual({
      'gpu.remapped_rows.correctable': 1,
      'gpu.remapped_rows.uncorrectable': 0,
      'gpu.remapped_rows.pending': 1,
      'gpu.remapped_rows.failure': 0,
      'gpu.remapped_rows.banks_max': 639,
      'gpu.remapped_rows.banks_high': 1,
      'gpu.remapped_rows.banks_partial': 0,
      'gpu.remapped_rows.banks_low': 0,
      'gpu.remapped_rows.banks_none': 0,
    });
  });

  it('reads older layouts (V100 470, T4 515) and consumer cards', () => {
    expect(parseQueryText(fixture('v100/q.txt')).byBus.get('0000:d8:00.0')).toEqual({
      'gpu.pcie.replays': 3,
      'gpu.pcie.replay_rollovers': 0,
      'gpu.retired_pages.pending': 0,
    });
    expect(parseQueryText(fixture('t4/q.txt')).byBus.get('0000:00:1e.0')).toEqual({
      'gpu.pcie.replays': 0,
      'gpu.pcie.replay_rollovers': 0,
      'gpu.retired_pages.pending': 0,
    });
    const rtx = parseQueryText(fixture('rtx4090/q.txt')).byBus;
    expect(rtx.get('0000:23:00.0')).toMatchObject({ 'gpu.pcie.replays': 0, 'gpu.remapped_rows.banks_max': 192 });
    expect(rtx.get('0000:23:00.0')).not.toHaveProperty('gpu.retired_pages.pending');
    expect(parseQueryText(fixture('a100/q.txt')).byBus.get('0000:35:00.0')).toMatchObject({ 'gpu.pcie.replays': 0, 'gpu.remapped_rows.banks_max': 640 });
  });

  it('reads the GPUs a truncated dump still has, and reports foreign text', () => {
    const { byBus } = parseQueryText(fixture('malformed/q-truncated.txt'));
    expect(byBus.get('0000:18:00.0')?.['gpu.pcie.replays']).toBe(7);
    expect(byBus.has('0000:db:00.0')).toBe(false);
    expect(parseQueryText("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.").problems).toEqual([
      'no "GPU <bus id>" sections in nvidia-smi -q output',
    ]);
    expect(parseQueryText('GPU 00000000:18:00.0\n    GPU Recovery Action : Launch Rockets\n').problems).toEqual([
      'unknown GPU Recovery Action "Launch Rockets"',
    ]);
    expect(parseQueryText('GPU 00000000:18:00.0\n    GPU Recovery Action : Drain and Reset\n').byBus.get('0000:18:00.0')).toEqual({ 'gpu.recovery_action': 4 });
  });
});

describe('parseNvlinkErrors', () => {
  it('reads 18 links on each of 8 H100s', () => {
    const { byIndex, uuids, problems } = parseNvlinkErrors(fixture('h100x8/nvlink-e.txt'));
    expect(problems).toEqual([]);
    expect(byIndex.size).toBe(8);
    expect(uuids.get(6)).toBe('GPU-83a5aebb-b71c-c570-aa83-185e1233fe97');
    const gpu6 = byIndex.get(6)!;
    expect(Object.keys(gpu6)).toHaveLength(18 * 3 + 3);
    expect(gpu6).toMatchObject({
      'gpu.nvlink.3.crc_errors': 12,
      'gpu.nvlink.3.replay_errors': 2,
      'gpu.nvlink.3.recovery_errors': 0,
      'gpu.nvlink.crc_errors_total': 12,
      'gpu.nvlink.replay_errors_total': 2,
    });
    expect(byIndex.get(0)).toMatchObject({ 'gpu.nvlink.17.recovery_errors': 1, 'gpu.nvlink.recovery_errors_total': 1, 'gpu.nvlink.crc_errors_total': 0 });
  });

  it('reads 12 links on A100, and GPUs without NVLink as empty', () => {
    expect(Object.keys(parseNvlinkErrors(fixture('a100/nvlink-e.txt')).byIndex.get(1)!)).toHaveLength(12 * 3 + 3);
    expect(parseNvlinkErrors(fixture('t4/nvlink-e.txt')).byIndex.get(0)).toEqual({});
    expect(parseNvlinkErrors(fixture('v100/nvlink-e.txt'))).toEqual({ byIndex: new Map(), uuids: new Map(), problems: [] });
  });

  it('skips and reports garbage lines', () => {
    const { byIndex, problems } = parseNvlinkErrors(fixture('malformed/nvlink-e-garbage.txt'));
    expect(byIndex.get(0)).toMatchObject({ 'gpu.nvlink.2.crc_errors': 0, 'gpu.nvlink.crc_errors_total': 0 });
    expect(byIndex.get(0)).not.toHaveProperty('gpu.nvlink.4.crc_errors');
    expect(byIndex.get(0)).not.toHaveProperty('gpu.nvlink.5.replay_errors');
    expect(byIndex.get(1)).toEqual({ 'gpu.nvlink.0.crc_errors': 3, 'gpu.nvlink.crc_errors_total': 3 });
    expect(problems).toHaveLength(5);
  });
});

describe('parseXidLine', () => {
  it.each([
    [
      'dmesg',
      '[11039.523185] NVRM: Xid (PCI:0000:18:00): 43, pid=916085, name=python3, Ch 00000008',
      { code: 43, pciAddress: '0000:18:00.0', pid: 916085, process: 'python3', message: 'Ch 00000008' },
    ],
    ['no pid', 'NVRM: Xid (PCI:0000:03:00): 79, GPU has fallen off the bus.', { code: 79, pciAddress: '0000:03:00.0', message: 'GPU has fallen off the bus.' }],
    [
      'unknown pid and name',
      "NVRM: Xid (PCI:0000:05:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
      { code: 79, pciAddress: '0000:05:00.0', message: 'GPU has fallen off the bus.' },
    ],
    [
      'old driver, no PCI: prefix',
      'Jan 18 11:38:05 localhost kernel: [  269.517039] NVRM: Xid (0000:01:00): 3, C 00000005',
      { code: 3, pciAddress: '0000:01:00.0', message: 'C 00000005' },
    ],
    [
      'function in address',
      '[12345.678901] NVRM: Xid (PCI:0000:3b:00.0): 79, pid=1234, GPU has fallen off the bus.',
      { code: 79, pciAddress: '0000:3b:00.0', pid: 1234, message: 'GPU has fallen off the bus.' },
    ],
    [
      'MIG instance',
      'NVRM: Xid (PCI:0000:01:00 GPU-I:05): 94, pid=7194, Contained: CE User Channel (0x9). RST: No, D-RST: No',
      { code: 94, pciAddress: '0000:01:00.0', pid: 7194, message: 'Contained: CE User Channel (0x9). RST: No, D-RST: No' },
    ],
    [
      'kmsg record',
      '4,2306,164500765010,-;NVRM: Xid (PCI:0000:3a:00): 119, pid=1582259, name=nvc:[driver], Timeout after 6s',
      { code: 119, pciAddress: '0000:3a:00.0', pid: 1582259, process: 'nvc:[driver]', message: 'Timeout after 6s' },
    ],
    [
      'kmsg with syslog priority',
      '<3>[6085126.134786] NVRM: Xid (PCI:0009:01:00): 154, GPU recovery action changed from 0x0 (None) to 0x4 (Drain and Reset)',
      { code: 154, pciAddress: '0009:01:00.0', message: 'GPU recovery action changed from 0x0 (None) to 0x4 (Drain and Reset)' },
    ],
    [
      'journalctl short-iso',
      '2024-11-14T07:03:11+0000 gpu-node-07 kernel: NVRM: Xid (PCI:0000:ba:00): 74, NVLink: fatal error',
      { code: 74, pciAddress: '0000:ba:00.0', message: 'NVLink: fatal error', time: Date.UTC(2024, 10, 14, 7, 3, 11) },
    ],
    [
      'newer short-iso offset',
      '2024-11-14T09:03:11+02:00 host kernel: NVRM: Xid (PCI:0000:ba:00): 74, x',
      { code: 74, pciAddress: '0000:ba:00.0', message: 'x', time: Date.UTC(2024, 10, 14, 7, 3, 11) },
    ],
    ['code only, CRLF', 'NVRM: Xid (PCI:0000:00:1E.0): 31\r\n', { code: 31, pciAddress: '0000:00:1e.0', message: '' }],
  ])('%s', (_name, line, event) => expect(parseXidLine(line)).toEqual({ event }));

  it('ignores other lines and reports broken Xid lines', () => {
    expect(parseXidLine('NVRM: GPU 0000:db:00.0: GPU has fallen off the bus.')).toEqual({});
    expect(parseXidLine('usb 1-1: new high-speed USB device')).toEqual({});
    expect(parseXidLine('NVRM: Xid error: xyz, invalid data').problem).toMatch(/^unparseable Xid line/);
    expect(parseXidLine('NVRM: Xid (PCI:zzzz:18:00): 79, x').problem).toMatch(/^unparseable Xid line/);
  });
});

describe('parseKernelLog on recorded logs', () => {
  const summary = (rel: string) => parseKernelLog(fixture(rel)).events.map((e) => `${e.code}@${e.pciAddress}`);

  it('dmesg of the H100 host', () => {
    expect(summary('kernel/dmesg-h100.txt')).toEqual([
      '13@0000:18:00.0',
      '43@0000:18:00.0',
      '31@0000:2a:00.0',
      '94@0000:2a:00.0',
      '48@0000:5d:00.0',
      '63@0000:5d:00.0',
      '45@0000:5d:00.0',
      '95@0000:9a:00.0',
      '154@0000:9a:00.0',
      '94@0000:ab:00.0',
    ]);
    expect(parseKernelLog(fixture('kernel/dmesg-h100.txt')).problems).toEqual([]);
  });

  it('journalctl -k -o short-iso, /dev/kmsg and syslog', () => {
    expect(summary('kernel/journal-short-iso.txt')).toEqual(['74@0000:ba:00.0', '154@0000:ba:00.0', '119@0000:3a:00.0', '119@0000:3a:00.0', '79@0000:db:00.0']);
    expect(summary('kernel/kmsg-raw.txt')).toEqual(['13@0000:18:00.0', '43@0000:18:00.0', '79@0000:9a:00.0', '119@0000:3a:00.0']);
    expect(summary('kernel/syslog-v100.txt')).toEqual(['48@0000:d8:00.0', '63@0000:d8:00.0', '64@0000:d8:00.0', '3@0000:01:00.0', '31@0000:01:00.0']);
  });

  it('keeps good lines among broken ones', () => {
    const { events, problems } = parseKernelLog(fixture('malformed/kernel-log-mixed.txt'));
    expect(events.map((e) => `${e.code}@${e.pciAddress}`)).toEqual(['48@0000:2a:00.0', '79@0000:2a:00.0']);
    expect(problems).toHaveLength(5);
  });
});

describe('XID_CATALOG', () => {
  it('covers the Xids that matter, each with a meaning and an action', () => {
    for (const code of [13, 31, 43, 45, 48, 61, 62, 63, 64, 68, 69, 74, 79, 92, 94, 95, 119, 120, 154]) {
      const info = XID_CATALOG[code];
      expect(info, `Xid ${code}`).toBeDefined();
      expect(info!.name.length).toBeGreaterThan(3);
      expect(info!.meaning.length).toBeGreaterThan(20);
      expect(info!.action.length).toBeGreaterThan(10);
    }
    expect([48, 62, 64, 74, 79, 95, 119, 120].map((c) => XID_CATALOG[c]?.severity)).toEqual(Array(8).fill('critical'));
    expect([43, 45].map((c) => XID_CATALOG[c]?.severity)).toEqual(['info', 'info']);
    expect([13, 31, 63, 92, 94].map((c) => XID_CATALOG[c]?.severity)).toEqual(Array(5).fill('warning'));
  });

  it('gives unknown codes a generic entry, and Xid 154 back to "None" is information', () => {
    expect(xidInfo(9999)).toMatchObject({ name: 'Xid 9999', severity: 'warning' });
    expect(xidSeverity(154, 'GPU recovery action changed from 0x4 (Drain and Reset) to 0x0 (None)')).toBe('info');
    expect(xidSeverity(154, 'GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)')).toBe('critical');
  });
});

describe('property: no input makes a parser throw or emit a non-finite number', () => {
  const corpus = [
    'h100x8/query-gpu.csv',
    'rtx4090/query-gpu.csv',
    'v100/query-gpu.csv',
    'h100x8/remapped-rows.csv',
    'a100/remapped-rows-pending.csv',
    'a100/q-remap-pending-510.txt',
    'v100/q.txt',
    'kernel/dmesg-h100.txt',
    'kernel/journal-short-iso.txt',
    'kernel/kmsg-raw.txt',
    'malformed/query-gpu-errors.csv',
    'malformed/nvlink-e-garbage.txt',
  ].map((f) => fixture(f).replace(/^#.*\n/, ''));
  corpus.push(fixture('h100x8/q.txt').slice(0, 9000), fixture('h100x8/nvlink-e.txt').slice(0, 3000), fixture('help/help-query-gpu-535.txt').slice(4000, 12000));
  const tokens = [
    ',',
    ', ',
    '\n',
    '\r\n',
    '[N/A]',
    '[GPU is lost]',
    'ERR!',
    '0x',
    '0xFFFFFFFFFFFFFFFFFF',
    '1e999',
    '-0',
    'NaN',
    '9'.repeat(400),
    ':',
    ' : ',
    'P',
    'NVRM: Xid (',
    'PCI:',
    '))',
    '\u0000',
    '\u2028',
    '\uFFFD',
    'GPU 0: ',
    'Link 1: CRC Errors: ',
    '"x" or "y"',
    'GPU 00000000:18:00.0\n',
  ];

  function mutate(text: string, rnd: () => number): string {
    let s = text;
    const ops = 1 + Math.floor(rnd() * 6);
    for (let k = 0; k < ops; k++) {
      const at = Math.floor(rnd() * (s.length + 1));
      const op = Math.floor(rnd() * 7);
      if (op === 0) s = s.slice(0, at) + s.slice(at + Math.floor(rnd() * 40));
      else if (op === 1) s = s.slice(0, at) + tokens[Math.floor(rnd() * tokens.length)] + s.slice(at);
      else if (op === 2) s = s.slice(0, at) + String.fromCharCode(Math.floor(rnd() * 0x3000)) + s.slice(at);
      else if (op === 3) s = s.slice(0, at);
      else if (op === 4) s = s.replace(/\d+(\.\d+)?/, () => ['1e999', '9'.repeat(310), '-1', 'x', ''][Math.floor(rnd() * 5)]!);
      else if (op === 5) {
        const lines = s.split('\n');
        const i = Math.floor(rnd() * lines.length);
        lines.splice(Math.floor(rnd() * lines.length), 0, lines[i] ?? '');
        s = lines.join('\n');
      } else s = s.replaceAll(', ', rnd() < 0.5 ? ',,' : ' ,');
    }
    return s;
  }

  function randomBytes(rnd: () => number): string {
    const n = Math.floor(rnd() * 300);
    return Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256))).toString(rnd() < 0.5 ? 'utf8' : 'latin1');
  }

  function checkFinite(values: Iterable<Record<string, number>>, what: string): void {
    for (const metrics of values) for (const [k, v] of Object.entries(metrics)) if (!Number.isFinite(v)) throw new Error(`${what}: ${k} = ${v}`);
  }

  function runAll(input: string): void {
    for (const plan of [NEW, OLD]) {
      const q = parseQueryCsv(input, plan);
      checkFinite(
        q.rows.map((r) => r.metrics),
        'query',
      );
      for (const r of q.rows) if (!/^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(r.busId)) throw new Error(`bad bus id ${r.busId}`);
    }
    checkFinite(parseRemappedRows(input).byBus.values(), 'remapped');
    checkFinite(parseQueryText(input).byBus.values(), '-q');
    checkFinite(parseNvlinkErrors(input).byIndex.values(), 'nvlink');
    for (const e of parseKernelLog(input).events) {
      if (!Number.isSafeInteger(e.code) || (e.pid !== undefined && !Number.isSafeInteger(e.pid)) || (e.time !== undefined && !Number.isFinite(e.time)))
        throw new Error(`bad Xid ${JSON.stringify(e)}`);
    }
    const help = parseHelpQueryGpu(input);
    planQuery(help.fields);
    for (const cell of input.split(',').slice(0, 50)) {
      const v = parseSmiValue(cell);
      if (v.kind === 'value' && !Number.isFinite(v.value)) throw new Error(`cell ${cell}`);
    }
  }

  it('2,500 seeded mutations of the fixtures and random byte strings', () => {
    // FUZZ_SEED=<n> replays or widens the search; the default keeps CI deterministic.
    const seed = Number(process.env.FUZZ_SEED ?? 0x5eedf00d);
    const rnd = prng(seed);
    let cases = 0;
    for (let i = 0; i < 2500; i++) {
      const input = i % 5 === 4 ? randomBytes(rnd) : mutate(corpus[Math.floor(rnd() * corpus.length)]!, rnd);
      try {
        runAll(input);
      } catch (err) {
        throw new Error(`case ${i} (FUZZ_SEED=${seed}): ${String(err)}\n${JSON.stringify(input.slice(0, 400))}`);
      }
      cases++;
    }
    expect(cases).toBe(2500);
  });
});

describe('identity query', () => {
  it('asks each driver for the identity fields its help lists, and falls back to the ones every driver knows', () => {
    const all = ['index', 'pci.bus_id', 'name', 'uuid', 'serial', 'vbios_version', 'driver_version', 'memory.total'];
    expect(planIdentityQuery(parseHelpQueryGpu(fixture('help/help-query-gpu-535.txt')).fields).fields).toEqual(all);
    expect(planIdentityQuery(parseHelpQueryGpu(fixture('help/help-query-gpu-470.txt')).fields).fields).toEqual(all);
    expect(planIdentityQuery(null).fields).toEqual(all);
    // A driver that knows only the aliases gets them.
    expect(planIdentityQuery(new Set(['index', 'pci.bus_id', 'gpu_name', 'gpu_uuid'])).fields).toEqual(['index', 'pci.bus_id', 'gpu_name', 'gpu_uuid']);
  });

  it('reads the recorded identities as text; unavailable values are absent; a line it cannot place is a problem', () => {
    const plan = planIdentityQuery(null);
    const csv = (set: string) =>
      fixture(`${set}/identity.csv`)
        .split('\n')
        .filter((l) => !l.startsWith('#'))
        .map((l) => (l ? `${l}, 24564` : l)) // memory.total, last in the plan; the fixture's lines lack it
        .join('\n');
    const rtx = parseIdentityCsv(csv('rtx4090'), plan);
    expect(rtx.problems).toEqual([]);
    expect(rtx.byBus.get('0000:23:00.0')).toEqual({
      index: 1,
      busId: '0000:23:00.0',
      name: 'NVIDIA GeForce RTX 4090',
      uuid: 'GPU-8f4d1755-9c8a-3a19-b71e-c190b3801dec',
      driverVersion: '535.154.05',
      memoryTotalBytes: 24564 * 1024 * 1024,
    });
    const bad = parseIdentityCsv(
      [
        '0, 00000000:01:00.0, NVIDIA, Inc. Board, GPU-1, 1, 2, 3, 4',
        'ERR!, 00000000:01:00.0, x, y, z, v, d, 1',
        '0, 00000000:01:00.0, x, y, z, v, d, lots',
      ].join('\n'),
      plan,
    );
    expect(bad.problems).toEqual([
      expect.stringMatching(/^malformed identity line/),
      expect.stringMatching(/^malformed identity line/),
      'memory.total: unparseable value "lots"',
    ]);
    expect(bad.byBus.get('0000:01:00.0')).toEqual({ index: 0, busId: '0000:01:00.0', name: 'x', uuid: 'y', serial: 'z', vbios: 'v', driverVersion: 'd' });
  });
});
