/**
 * Pure parsers for the text `nvidia-smi` and the kernel log print. Text in, numbers out: nothing here throws on
 * bad input; each parser returns what it could read plus a list of problems. Values nvidia-smi prints as
 * unavailable (`[N/A]`, `[Not Supported]`, `N/A`, `[Unknown Error]`, `[GPU is lost]`, `ERR!`, empty) are
 * missing — absent from the result, never zero. Every number returned is finite.
 */

import { XID_CATALOG, type XidInfo } from '../../contract/nvidia-xid-catalog.js';

/** A value nvidia-smi printed instead of a reading. */
const MISSING = new Set(['', 'n/a', 'err!', 'unknown error', 'not supported', 'gpu is lost', 'unknown', 'none']);
/** Words nvidia-smi prints for flags, as 1/0. */
const FLAGS: Record<string, number> = {
  enabled: 1,
  disabled: 0,
  active: 1,
  'not active': 0,
  yes: 1,
  no: 0,
  true: 1,
  false: 0,
  on: 1,
  off: 0,
};
const NUMBER_WITH_UNIT = /^([-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)\s*(%|w|c|mib|mhz|x|kb\/s|bank\(s\)|us|mv)?$/i;

export type SmiValue = { kind: 'value'; value: number } | { kind: 'missing' } | { kind: 'invalid'; reason: string };

/** One cell of nvidia-smi output → a number, `missing`, or `invalid`. */
export function parseSmiValue(raw: string): SmiValue {
  const s = raw.trim();
  const bare = s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1).trim() : s;
  const lower = bare.toLowerCase();
  // Any bracketed text is nvidia-smi's way of saying "no reading" ([Insufficient Permissions], [Requested
  // functionality has been deprecated], …): missing, never zero.
  if (MISSING.has(lower) || bare !== s) return { kind: 'missing' };
  const flag = FLAGS[lower];
  if (flag !== undefined) return { kind: 'value', value: flag };
  const pstate = /^p(\d{1,2})$/i.exec(bare);
  if (pstate) return { kind: 'value', value: Number(pstate[1]) };
  if (/^0x[0-9a-f]{1,16}$/i.test(bare)) {
    const big = BigInt(bare);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) return { kind: 'invalid', reason: `bitmask ${bare} exceeds 2^53` };
    return { kind: 'value', value: Number(big) };
  }
  const m = NUMBER_WITH_UNIT.exec(bare);
  if (m) {
    const v = Number(m[1]);
    return Number.isFinite(v) ? { kind: 'value', value: v } : { kind: 'invalid', reason: `not a finite number: ${clip(bare)}` };
  }
  return { kind: 'invalid', reason: `unparseable value ${JSON.stringify(clip(bare))}` };
}

function clip(s: string, n = 40): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

// ---------------------------------------------------------------------------------------------------------
// --query-gpu fields

/** How one metric is read: the query field names in order of preference (the first the driver knows wins). */
export interface FieldSpec {
  metric: string;
  fields: readonly string[];
  /** Multiplier applied to numbers (MiB → bytes). */
  scale?: number;
}

const MiB = 1024 * 1024;
/** The two identity columns, always first: `index`, then `pci.bus_id`. */
export const IDENTITY_FIELDS = ['index', 'pci.bus_id'] as const;

const reason = (r: string): readonly string[] => [`clocks_event_reasons.${r}`, `clocks_throttle_reasons.${r}`];

/** The fast metrics and the query fields they come from. `gpu.index` is added from the identity columns. */
export const FAST_FIELDS: readonly FieldSpec[] = [
  { metric: 'gpu.utilization_pct', fields: ['utilization.gpu'] },
  { metric: 'gpu.memory.utilization_pct', fields: ['utilization.memory'] },
  { metric: 'gpu.memory.total_bytes', fields: ['memory.total'], scale: MiB },
  { metric: 'gpu.memory.used_bytes', fields: ['memory.used'], scale: MiB },
  { metric: 'gpu.temperature_c', fields: ['temperature.gpu'] },
  { metric: 'gpu.memory_temperature_c', fields: ['temperature.memory'] },
  { metric: 'gpu.power.draw_w', fields: ['power.draw'] },
  { metric: 'gpu.power.limit_w', fields: ['enforced.power.limit', 'power.limit'] },
  { metric: 'gpu.clocks.sm_mhz', fields: ['clocks.current.sm', 'clocks.sm'] },
  { metric: 'gpu.clocks.mem_mhz', fields: ['clocks.current.memory', 'clocks.mem'] },
  { metric: 'gpu.clocks.graphics_mhz', fields: ['clocks.current.graphics', 'clocks.gr'] },
  { metric: 'gpu.fan_pct', fields: ['fan.speed'] },
  { metric: 'gpu.pstate', fields: ['pstate'] },
  { metric: 'gpu.throttle.active_mask', fields: reason('active') },
  { metric: 'gpu.throttle.sw_power_cap', fields: reason('sw_power_cap') },
  { metric: 'gpu.throttle.hw_slowdown', fields: reason('hw_slowdown') },
  { metric: 'gpu.throttle.hw_thermal_slowdown', fields: reason('hw_thermal_slowdown') },
  { metric: 'gpu.throttle.hw_power_brake_slowdown', fields: reason('hw_power_brake_slowdown') },
  { metric: 'gpu.throttle.sw_thermal_slowdown', fields: reason('sw_thermal_slowdown') },
  { metric: 'gpu.ecc.mode', fields: ['ecc.mode.current'] },
  { metric: 'gpu.ecc.volatile.corrected', fields: ['ecc.errors.corrected.volatile.total'] },
  { metric: 'gpu.ecc.volatile.uncorrected', fields: ['ecc.errors.uncorrected.volatile.total'] },
  { metric: 'gpu.ecc.aggregate.corrected', fields: ['ecc.errors.corrected.aggregate.total'] },
  { metric: 'gpu.ecc.aggregate.uncorrected', fields: ['ecc.errors.uncorrected.aggregate.total'] },
  { metric: 'gpu.retired_pages.sbe', fields: ['retired_pages.single_bit_ecc.count', 'retired_pages.sbe'] },
  { metric: 'gpu.retired_pages.dbe', fields: ['retired_pages.double_bit.count', 'retired_pages.dbe'] },
  { metric: 'gpu.retired_pages.pending', fields: ['retired_pages.pending'] },
  { metric: 'gpu.reset.required', fields: ['reset_status.reset_required'] },
  { metric: 'gpu.reset.drain_recommended', fields: ['reset_status.drain_and_reset_recommended'] },
  { metric: 'gpu.pcie.link_gen', fields: ['pcie.link.gen.gpucurrent', 'pcie.link.gen.current'] },
  { metric: 'gpu.pcie.link_gen_max', fields: ['pcie.link.gen.max'] },
  { metric: 'gpu.pcie.link_width', fields: ['pcie.link.width.current'] },
  { metric: 'gpu.pcie.link_width_max', fields: ['pcie.link.width.max'] },
];

/** Fields every driver since the 2010s knows; used only when `--help-query-gpu` gave nothing usable. */
export const FALLBACK_FIELDS = ['index', 'pci.bus_id', 'utilization.gpu', 'memory.total', 'memory.used', 'temperature.gpu', 'power.draw'];

export interface HelpQueryGpu {
  /** Every field name the driver accepts, aliases included. */
  fields: Set<string>;
  /** Field name → all names of the same field (`clocks_event_reasons.x` ↔ `clocks_throttle_reasons.x`). */
  aliases: Map<string, string[]>;
  problems: string[];
}

/** `nvidia-smi --help-query-gpu` → the field names this driver knows. */
export function parseHelpQueryGpu(text: string): HelpQueryGpu {
  const fields = new Set<string>();
  const aliases = new Map<string, string[]>();
  const problems: string[] = [];
  // A field line is nothing but quoted names joined by `or`: `"clocks.current.sm" or "clocks.sm"`. Description
  // lines that start with a quote (`"0: Default" means …`) have other words after it and are skipped.
  const lineRe = /^"([a-z0-9_.]+)"((?:\s+or\s+"[a-z0-9_.]+")*)\s*$/i;
  for (const line of String(text).split(/\r?\n/)) {
    const m = lineRe.exec(line.trim());
    if (!m || m[1] === undefined) continue;
    const names = [m[1], ...[...(m[2] ?? '').matchAll(/"([a-z0-9_.]+)"/gi)].map((x) => x[1] ?? '')].filter(Boolean);
    for (const n of names) {
      fields.add(n);
      aliases.set(n, names);
    }
  }
  if (!fields.size) problems.push('no field names found in --help-query-gpu output');
  else if (!fields.has('index') || !fields.has('pci.bus_id')) problems.push('--help-query-gpu output lacks index or pci.bus_id');
  return { fields, aliases, problems };
}

/** The query plan: the fields to ask for and which metric each column feeds. */
export interface QueryPlan {
  fields: string[];
  /** Column index → spec, for columns after the two identity columns. */
  columns: FieldSpec[];
}

/** Picks, for every metric, the first field name the driver knows; metrics it knows no name for are left out. */
export function planQuery(known: Set<string>): QueryPlan {
  const fields: string[] = [...IDENTITY_FIELDS];
  const columns: FieldSpec[] = [];
  for (const spec of FAST_FIELDS) {
    const name = spec.fields.find((f) => known.has(f));
    if (!name) continue;
    fields.push(name);
    columns.push(spec);
  }
  return { fields, columns };
}

export interface GpuRow {
  index: number;
  /** Canonical bus id, `0000:18:00.0`. */
  busId: string;
  metrics: Record<string, number>;
  /** Metrics the driver printed as unavailable. */
  missing: string[];
}

/** One line of `--query-gpu=<plan.fields> --format=csv,noheader,nounits`. */
export function parseQueryLine(line: string, plan: QueryPlan): { row?: GpuRow; problems: string[] } {
  const problems: string[] = [];
  const text = String(line).replace(/\r$/, '');
  if (!text.trim()) return { problems };
  const cells = text.split(',').map((c) => c.trim());
  if (cells.length !== plan.fields.length) {
    problems.push(`expected ${plan.fields.length} columns, got ${cells.length}: ${clip(text, 60)}`);
    return { problems };
  }
  const index = /^\d{1,4}$/.test(cells[0] ?? '') ? Number(cells[0]) : undefined;
  const busId = normalizeBusId(cells[1] ?? '');
  if (index === undefined || !busId) {
    problems.push(`no GPU index or bus id in line: ${clip(text, 60)}`);
    return { problems };
  }
  // `[GPU is lost]` in any column is itself a health signal (the GPU stopped answering NVML).
  const lost = cells.some((c) => /^\[?gpu is lost\]?$/i.test(c));
  const metrics: Record<string, number> = { 'gpu.index': index, 'gpu.lost': lost ? 1 : 0 };
  const missing: string[] = [];
  plan.columns.forEach((spec, i) => {
    const v = parseSmiValue(cells[i + 2] ?? '');
    if (v.kind === 'value') metrics[spec.metric] = v.value * (spec.scale ?? 1);
    else if (v.kind === 'missing') missing.push(spec.metric);
    else problems.push(`${plan.fields[i + 2]}: ${v.reason}`);
  });
  return { row: { index, busId, metrics, missing }, problems };
}

/** All lines of a query CSV. */
export function parseQueryCsv(text: string, plan: QueryPlan): { rows: GpuRow[]; problems: string[] } {
  const rows: GpuRow[] = [];
  const problems: string[] = [];
  for (const line of String(text).split('\n')) {
    const r = parseQueryLine(line, plan);
    if (r.row) rows.push(r.row);
    problems.push(...r.problems);
  }
  return { rows, problems };
}

/**
 * A PCI address in any of the forms nvidia-smi and the kernel print (`00000000:18:00.0`, `PCI:0000:3b:00`,
 * `0000:3B:00`, `18:00.0`) → `0000:18:00.0`, lowercase, domain as 4 hex digits (8 above 0xffff), function 0
 * when absent. Undefined when it is not an address.
 */
export function normalizeBusId(raw: string): string | undefined {
  const m = /^(?:pci:)?(?:([0-9a-f]{1,8}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})(?:\.([0-7]))?$/i.exec(String(raw).trim());
  if (!m) return undefined;
  const domain = parseInt(m[1] ?? '0', 16);
  const hex = (s: string | undefined, n: number) => (s ?? '0').toLowerCase().padStart(n, '0');
  return `${domain.toString(16).padStart(domain > 0xffff ? 8 : 4, '0')}:${hex(m[2], 2)}:${hex(m[3], 2)}.${m[4] ?? '0'}`;
}

// ---------------------------------------------------------------------------------------------------------
// --query-gpu identity fields (text, not numbers: published as a `gpu.identity` event, never as telemetry)

/** What identifies a board, as the identity query reads it. Absent where the driver printed no value. */
export interface GpuIdentity {
  index: number;
  busId: string;
  /** Product name, `NVIDIA H100 80GB HBM3`. */
  name?: string;
  uuid?: string;
  serial?: string;
  vbios?: string;
  driverVersion?: string;
  memoryTotalBytes?: number;
}

/** Identity attribute → the query field names for it (the first the driver knows wins). */
const IDENTITY_SPECS: ReadonlyArray<{ key: Exclude<keyof GpuIdentity, 'index' | 'busId'>; fields: readonly string[] }> = [
  { key: 'name', fields: ['name', 'gpu_name'] },
  { key: 'uuid', fields: ['uuid', 'gpu_uuid'] },
  { key: 'serial', fields: ['serial', 'gpu_serial'] },
  { key: 'vbios', fields: ['vbios_version'] },
  { key: 'driverVersion', fields: ['driver_version'] },
  { key: 'memoryTotalBytes', fields: ['memory.total'] },
];
/** Identity fields every driver knows; used when `--help-query-gpu` gave nothing usable. */
const IDENTITY_FALLBACK = new Set(['name', 'uuid', 'serial', 'vbios_version', 'driver_version', 'memory.total']);

export interface IdentityPlan {
  fields: string[];
  keys: Array<(typeof IDENTITY_SPECS)[number]['key']>;
}

/** The identity query for this driver: `index`, `pci.bus_id`, then each identity field it knows. */
export function planIdentityQuery(known: Set<string> | null): IdentityPlan {
  const fields: string[] = [...IDENTITY_FIELDS];
  const keys: IdentityPlan['keys'] = [];
  for (const spec of IDENTITY_SPECS) {
    const name = spec.fields.find((f) => (known ?? IDENTITY_FALLBACK).has(f));
    if (!name) continue;
    fields.push(name);
    keys.push(spec.key);
  }
  return { fields, keys };
}

/**
 * `--query-gpu=<plan.fields> --format=csv,noheader,nounits` → bus id → identity. Text cells are kept as printed
 * (trimmed); the unavailable spellings are absent. A line with more cells than fields (a comma inside a value)
 * is a problem, not a guess.
 */
export function parseIdentityCsv(text: string, plan: IdentityPlan): { byBus: Map<string, GpuIdentity>; problems: string[] } {
  const byBus = new Map<string, GpuIdentity>();
  const problems: string[] = [];
  for (const line of String(text).split(/\r?\n/)) {
    if (!line.trim()) continue;
    const cells = line.split(',').map((c) => c.trim());
    const index = /^\d{1,4}$/.test(cells[0] ?? '') ? Number(cells[0]) : undefined;
    const busId = normalizeBusId(cells[1] ?? '');
    if (cells.length !== plan.fields.length || index === undefined || !busId) {
      problems.push(`malformed identity line: ${clip(line, 60)}`);
      continue;
    }
    const id: GpuIdentity = { index, busId };
    plan.keys.forEach((key, i) => {
      const raw = cells[i + 2] ?? '';
      const bare = raw.startsWith('[') && raw.endsWith(']') ? raw.slice(1, -1).trim() : raw;
      if (MISSING.has(bare.toLowerCase()) || bare !== raw) return;
      if (key !== 'memoryTotalBytes') {
        id[key] = raw;
        return;
      }
      const v = parseSmiValue(raw);
      if (v.kind === 'value') id.memoryTotalBytes = v.value * MiB;
      else if (v.kind === 'invalid') problems.push(`memory.total: ${v.reason}`);
    });
    byBus.set(busId, id);
  }
  return { byBus, problems };
}

// ---------------------------------------------------------------------------------------------------------
// --query-remapped-rows

export const REMAPPED_ROWS_FIELDS = [
  'gpu_bus_id',
  'remapped_rows.correctable',
  'remapped_rows.uncorrectable',
  'remapped_rows.pending',
  'remapped_rows.failure',
];
const REMAP_METRICS = ['gpu.remapped_rows.correctable', 'gpu.remapped_rows.uncorrectable', 'gpu.remapped_rows.pending', 'gpu.remapped_rows.failure'];

/** `--query-remapped-rows=<REMAPPED_ROWS_FIELDS> --format=csv,noheader,nounits` → bus id → metrics. */
export function parseRemappedRows(text: string): { byBus: Map<string, Record<string, number>>; problems: string[] } {
  const byBus = new Map<string, Record<string, number>>();
  const problems: string[] = [];
  for (const line of String(text).split(/\r?\n/)) {
    if (!line.trim()) continue;
    const cells = line.split(',').map((c) => c.trim());
    const busId = normalizeBusId(cells[0] ?? '');
    if (cells.length !== REMAPPED_ROWS_FIELDS.length || !busId) {
      problems.push(`malformed remapped-rows line: ${clip(line, 60)}`);
      continue;
    }
    const metrics: Record<string, number> = {};
    REMAP_METRICS.forEach((metric, i) => {
      const v = parseSmiValue(cells[i + 1] ?? '');
      if (v.kind === 'value') metrics[metric] = v.value;
      else if (v.kind === 'invalid') problems.push(`${metric}: ${v.reason}`);
    });
    byBus.set(busId, metrics);
  }
  return { byBus, problems };
}

// ---------------------------------------------------------------------------------------------------------
// nvidia-smi -q

/** `GPU Recovery Action` values, as NVML numbers them (nvmlDeviceGetGpuRecoveryAction). */
const RECOVERY_ACTIONS: Record<string, number> = { none: 0, reset: 1, 'gpu reset': 1, reboot: 2, 'node reboot': 2, 'drain p2p': 3, 'drain and reset': 4 };

/** Section path (joined by `/`, indentation-derived) + key → metric, for the cheap extras `-q` carries. */
const Q_KEYS: Record<string, string> = {
  'PCI/Replays Since Reset': 'gpu.pcie.replays',
  'PCI/Replay Number Rollovers': 'gpu.pcie.replay_rollovers',
  'Retired Pages/Pending Page Blacklist': 'gpu.retired_pages.pending',
  'Remapped Rows/Correctable Error': 'gpu.remapped_rows.correctable',
  'Remapped Rows/Uncorrectable Error': 'gpu.remapped_rows.uncorrectable',
  'Remapped Rows/Pending': 'gpu.remapped_rows.pending',
  'Remapped Rows/Remapping Failure Occurred': 'gpu.remapped_rows.failure',
  'Retired Pages/Pending Page Retirement': 'gpu.retired_pages.pending',
  'ECC Errors/Aggregate/SRAM Threshold Exceeded': 'gpu.ecc.sram_threshold_exceeded',
  'ECC Errors/Aggregate Uncorrectable SRAM Sources/SRAM L2': 'gpu.ecc.aggregate.sram_uncorrectable.l2',
  'ECC Errors/Aggregate Uncorrectable SRAM Sources/SRAM SM': 'gpu.ecc.aggregate.sram_uncorrectable.sm',
  'ECC Errors/Aggregate Uncorrectable SRAM Sources/SRAM Microcontroller': 'gpu.ecc.aggregate.sram_uncorrectable.microcontroller',
  'ECC Errors/Aggregate Uncorrectable SRAM Sources/SRAM PCIE': 'gpu.ecc.aggregate.sram_uncorrectable.pcie',
  'ECC Errors/Aggregate Uncorrectable SRAM Sources/SRAM Other': 'gpu.ecc.aggregate.sram_uncorrectable.other',
  'Remapped Rows/Bank Remap Availability Histogram/Max': 'gpu.remapped_rows.banks_max',
  'Remapped Rows/Bank Remap Availability Histogram/High': 'gpu.remapped_rows.banks_high',
  'Remapped Rows/Bank Remap Availability Histogram/Partial': 'gpu.remapped_rows.banks_partial',
  'Remapped Rows/Bank Remap Availability Histogram/Low': 'gpu.remapped_rows.banks_low',
  'Remapped Rows/Bank Remap Availability Histogram/None': 'gpu.remapped_rows.banks_none',
};

/** `nvidia-smi -q` → bus id → the counters above, plus `gpu.recovery_action` (0 none … 4 drain and reset). */
export function parseQueryText(text: string): { byBus: Map<string, Record<string, number>>; problems: string[] } {
  const byBus = new Map<string, Record<string, number>>();
  const problems: string[] = [];
  let current: Record<string, number> | undefined;
  let path: Array<{ indent: number; name: string }> = [];
  for (const rawLine of String(text).split(/\r?\n/)) {
    const line = rawLine.replace(/\s+$/, '');
    if (!line.trim()) continue;
    const gpu = /^GPU ([0-9a-f]{1,8}:[0-9a-f]{1,2}:[0-9a-f]{1,2}\.[0-7])$/i.exec(line);
    if (gpu) {
      const busId = normalizeBusId(gpu[1] ?? '');
      current = {};
      if (busId) byBus.set(busId, current);
      path = [];
      continue;
    }
    if (!current) continue;
    const indent = line.length - line.trimStart().length;
    while (path.length && (path[path.length - 1]?.indent ?? 0) >= indent) path.pop();
    const kv = /^\s*([^:]+?)\s+:\s?(.*)$/.exec(line);
    if (!kv) {
      path.push({ indent, name: line.trim() });
      continue;
    }
    const key = [...path.map((p) => p.name), kv[1] ?? ''].join('/');
    const value = (kv[2] ?? '').trim();
    if (key === 'GPU Recovery Action') {
      const action = RECOVERY_ACTIONS[value.toLowerCase()];
      if (action !== undefined) current['gpu.recovery_action'] = action;
      else if (parseSmiValue(value).kind !== 'missing') problems.push(`unknown GPU Recovery Action ${JSON.stringify(clip(value))}`);
      continue;
    }
    const metric = Q_KEYS[key];
    if (!metric) continue;
    const v = parseSmiValue(value);
    if (v.kind === 'value') current[metric] = v.value;
    else if (v.kind === 'invalid') problems.push(`${key}: ${v.reason}`);
  }
  if (!byBus.size && String(text).trim()) problems.push('no "GPU <bus id>" sections in nvidia-smi -q output');
  return { byBus, problems };
}

// ---------------------------------------------------------------------------------------------------------
// nvidia-smi nvlink -e

/**
 * `nvidia-smi nvlink -e` → GPU index → `gpu.nvlink.<link>.<counter>` (`crc_errors`, `replay_errors`,
 * `recovery_errors`, and whatever else the driver prints, named from its label) plus per-GPU totals
 * `gpu.nvlink.<counter>_total`. Lines are keyed by GPU index because that is all the output names (and UUID).
 */
export function parseNvlinkErrors(text: string): { byIndex: Map<number, Record<string, number>>; uuids: Map<number, string>; problems: string[] } {
  const byIndex = new Map<number, Record<string, number>>();
  const uuids = new Map<number, string>();
  const problems: string[] = [];
  let current: Record<string, number> | undefined;
  for (const rawLine of String(text).split(/\r?\n/)) {
    const line = rawLine.trim();
    if (!line) continue;
    const gpu = /^GPU (\d+): .*?(?:\(UUID: (GPU-[0-9a-f-]+)\))?$/i.exec(line);
    if (gpu) {
      const index = Number(gpu[1]);
      current = {};
      byIndex.set(index, current);
      if (gpu[2]) uuids.set(index, gpu[2]);
      continue;
    }
    const link = /^Link (\d{1,3}): ([A-Za-z][A-Za-z0-9 ._-]*?): (.+)$/.exec(line);
    if (!link || !current) {
      problems.push(`unexpected nvlink line: ${clip(line, 60)}`);
      continue;
    }
    const counter = (link[2] ?? '')
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '_')
      .replace(/^_|_$/g, '');
    const v = parseSmiValue(link[3] ?? '');
    if (v.kind === 'invalid') problems.push(`link ${link[1]} ${counter}: ${v.reason}`);
    if (v.kind !== 'value' || !counter) continue;
    current[`gpu.nvlink.${link[1]}.${counter}`] = v.value;
    const total = `gpu.nvlink.${counter}_total`;
    current[total] = (current[total] ?? 0) + v.value;
  }
  return { byIndex, uuids, problems };
}

// ---------------------------------------------------------------------------------------------------------
// Kernel log Xid lines

export interface XidEvent {
  code: number;
  /** Canonical bus id (`0000:3b:00.0`). */
  pciAddress: string;
  pid?: number;
  /** The process name the driver printed (`name=`), when it knew it. */
  process?: string;
  /** The driver's text after the code, pid and name. */
  message: string;
  /** Epoch ms, when the line carried a wall-clock time (journalctl `-o short-iso`). */
  time?: number;
}

const XID_RE = /NVRM: Xid \(([^)]*)\):\s*(\d+)\s*(?:,\s*(.*))?$/;

/**
 * One kernel log line → an Xid event, or nothing when the line is not an Xid line. Tolerates the prefixes
 * dmesg (`[  123.456] `), syslog, journalctl `-o short-iso` and `/dev/kmsg` (`6,1234,5678,-;`) put in front, with
 * or without `pid=` / `name=`, and the MIG form `(PCI:0000:01:00 GPU-I:05)`.
 */
export function parseXidLine(line: string): { event?: XidEvent; problem?: string } {
  const text = String(line).replace(/\r?\n$/, '');
  const at = text.indexOf('NVRM: Xid');
  if (at < 0) return {};
  const m = XID_RE.exec(text.slice(at));
  // `(PCI:0000:3b:00)`, `(0000:3b:00)`, `(PCI:0000:3b:00.0)`, or with a MIG suffix `(PCI:0000:01:00 GPU-I:05)`.
  const addr = m ? /^\s*(?:PCI:)?((?:[0-9a-f]{1,8}:)?[0-9a-f]{1,2}:[0-9a-f]{1,2}(?:\.[0-7])?)(?:\s+\S.*)?$/i.exec(m[1] ?? '') : null;
  const pciAddress = addr ? normalizeBusId(addr[1] ?? '') : undefined;
  const code = m ? Number(m[2]) : NaN;
  if (!m || !pciAddress || !Number.isSafeInteger(code)) return { problem: `unparseable Xid line: ${clip(text.slice(at), 80)}` };
  let rest = (m[3] ?? '').trim();
  const event: XidEvent = { code, pciAddress, message: '' };
  const pid = /^pid=([^,]*),?\s*/.exec(rest);
  if (pid) {
    if (/^\d{1,10}$/.test(pid[1] ?? '')) event.pid = Number(pid[1]);
    rest = rest.slice(pid[0].length);
  }
  const name = /^name=([^,]*),?\s*/.exec(rest);
  if (name) {
    const n = (name[1] ?? '').replace(/^'|'$/g, '').trim();
    if (n && !/^<.*>$/.test(n)) event.process = n;
    rest = rest.slice(name[0].length);
  }
  event.message = rest.trim();
  const iso = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))\s/.exec(text);
  if (iso?.[1]) {
    const t = Date.parse(iso[1].replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
    if (Number.isFinite(t)) event.time = t;
  }
  return { event };
}

/** Every Xid line of a kernel log text. */
export function parseKernelLog(text: string): { events: XidEvent[]; problems: string[] } {
  const events: XidEvent[] = [];
  const problems: string[] = [];
  for (const line of String(text).split('\n')) {
    const r = parseXidLine(line);
    if (r.event) events.push(r.event);
    if (r.problem) problems.push(r.problem);
  }
  return { events, problems };
}

// ---------------------------------------------------------------------------------------------------------
// Xid catalog (the table itself is in contract/nvidia-xid-catalog.ts: central reads it too)

/** The catalog entry for a code; unknown codes get a generic warning entry. */
export function xidInfo(code: number): XidInfo {
  return (
    XID_CATALOG[code] ?? {
      name: `Xid ${code}`,
      meaning: "Not in the Forewarn catalog; see NVIDIA's Xid catalog.",
      severity: 'warning',
      action: "Look the code up in NVIDIA's Xid catalog.",
    }
  );
}

/** The severity of one event: Xid 154 that sets the recovery action back to none is information only. */
export function xidSeverity(code: number, message: string): XidInfo['severity'] {
  if (code === 154 && /to 0x0 \(none\)/i.test(message)) return 'info';
  return xidInfo(code).severity;
}
