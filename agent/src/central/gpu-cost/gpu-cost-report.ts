import type { SqlQueries } from '../sql/sql-client.js';
import { GpuCatalog, type GpuCostConfig } from './gpu-cost-config.js';
import { DOWN_CAUSES, HOUR_MS, type DownCause } from './gpu-intervals.js';

/**
 * The GPU cost report from `gpu_cost_hourly` (gpu-cost-projection.ts): per UTC day and per host, fleet group, GPU
 * model or single GPU, the hours busy, idle, down (per cause) and in gaps, the energy, and what the idle hours, the
 * down hours and the energy cost (docs/gpu-cost.md). The window is whole hours: `from` is rounded down and `to` up
 * to the hour, since the hour is the unit the projection keeps.
 */

export const DAY_MS = 24 * HOUR_MS;
export const REPORT_BY = ['host', 'group', 'model', 'gpu'] as const;
export type ReportBy = (typeof REPORT_BY)[number];

export interface CostFigures {
  /** GPUs with any hour in the row. */
  gpus: number;
  busyHours: number;
  idleHours: number;
  downHours: number;
  downHoursByCause: Record<DownCause, number>;
  gapHours: number;
  gaps: number;
  energyKwh: number;
  /** Hours over which energy was integrated. */
  poweredHours: number;
  xids: number;
  lateSamples: number;
  idleCost: number;
  downtimeCost: number;
  energyCost: number;
  /** idleCost + downtimeCost + energyCost. */
  totalCost: number;
}

export interface CostRow extends CostFigures {
  /** UTC day, YYYY-MM-DD. */
  day: string;
  /** The host (agent id), group, model, or `agent/asset` of a GPU. */
  key: string;
}

export interface GpuCostReport {
  from: number;
  to: number;
  by: ReportBy;
  currency: string;
  pricePerKwh: number;
  /** One row per day and key, days ascending, keys ascending. */
  rows: CostRow[];
  /** Per key over the whole window, by total cost descending. */
  totals: Array<CostFigures & { key: string }>;
  /** Per day over all keys, ascending: the trend. */
  daily: Array<CostFigures & { day: string }>;
  /** The whole window and fleet. */
  fleet: CostFigures;
}

interface DayRow {
  agent_id: string;
  asset: string;
  day: number;
  busy_ms: number;
  idle_ms: number;
  down_lost_ms: number;
  down_memory_ms: number;
  down_reset_ms: number;
  down_xid_ms: number;
  gap_ms: number;
  gaps: number;
  energy_wh: number;
  powered_ms: number;
  xids: number;
  late_samples: number;
}

function empty(): CostFigures & { gpuSet: Set<string> } {
  return {
    gpus: 0,
    gpuSet: new Set(),
    busyHours: 0,
    idleHours: 0,
    downHours: 0,
    downHoursByCause: { lost: 0, memory: 0, reset: 0, xid: 0 },
    gapHours: 0,
    gaps: 0,
    energyKwh: 0,
    poweredHours: 0,
    xids: 0,
    lateSamples: 0,
    idleCost: 0,
    downtimeCost: 0,
    energyCost: 0,
    totalCost: 0,
  };
}

type Acc = ReturnType<typeof empty>;

function addInto(acc: Acc, gpu: string, f: Omit<CostFigures, 'gpus'>): void {
  acc.gpuSet.add(gpu);
  acc.busyHours += f.busyHours;
  acc.idleHours += f.idleHours;
  acc.downHours += f.downHours;
  for (const c of DOWN_CAUSES) acc.downHoursByCause[c] += f.downHoursByCause[c];
  acc.gapHours += f.gapHours;
  acc.gaps += f.gaps;
  acc.energyKwh += f.energyKwh;
  acc.poweredHours += f.poweredHours;
  acc.xids += f.xids;
  acc.lateSamples += f.lateSamples;
  acc.idleCost += f.idleCost;
  acc.downtimeCost += f.downtimeCost;
  acc.energyCost += f.energyCost;
  acc.totalCost += f.totalCost;
}

/** Rounds away float noise (sums of ms / 3.6e6); reports print fewer digits still. */
const tidy = (v: number) => Math.round(v * 1e9) / 1e9;

function finish(acc: Acc): CostFigures {
  const { gpuSet, ...f } = acc;
  const out: CostFigures = { ...f, gpus: gpuSet.size, downHoursByCause: { ...f.downHoursByCause } };
  for (const k of Object.keys(out) as Array<keyof CostFigures>)
    if (typeof out[k] === 'number') (out as unknown as Record<string, number>)[k] = tidy(out[k] as number);
  for (const c of DOWN_CAUSES) out.downHoursByCause[c] = tidy(out.downHoursByCause[c]);
  return out;
}

export function isoDay(ts: number): string {
  return new Date(ts).toISOString().slice(0, 10);
}

/** The report for [from, to) grouped `by`, priced with `config`. */
export async function gpuCostReport(q: SqlQueries, config: GpuCostConfig, window: { from: number; to: number; by: ReportBy }): Promise<GpuCostReport> {
  const from = Math.floor(window.from / HOUR_MS) * HOUR_MS;
  const to = Math.ceil(window.to / HOUR_MS) * HOUR_MS;
  // Summed per GPU and UTC day in the database: a month of a 4,000-GPU fleet is 120,000 rows, not 2.9 million.
  const rows = await q.all<DayRow>(
    `SELECT agent_id, asset, hour - (hour % ${DAY_MS}) AS day,
            SUM(busy_ms) AS busy_ms, SUM(idle_ms) AS idle_ms, SUM(down_lost_ms) AS down_lost_ms,
            SUM(down_memory_ms) AS down_memory_ms, SUM(down_reset_ms) AS down_reset_ms, SUM(down_xid_ms) AS down_xid_ms,
            SUM(gap_ms) AS gap_ms, SUM(gaps) AS gaps, SUM(energy_wh) AS energy_wh, SUM(powered_ms) AS powered_ms,
            SUM(xids) AS xids, SUM(late_samples) AS late_samples
     FROM gpu_cost_hourly WHERE hour >= ? AND hour < ?
     GROUP BY agent_id, asset, hour - (hour % ${DAY_MS})`,
    [from, to],
  );
  const catalog = new GpuCatalog(config);
  const cells = new Map<string, Acc & { day: string; key: string }>();
  const totals = new Map<string, Acc>();
  const daily = new Map<string, Acc>();
  const fleet = empty();
  for (const r of rows) {
    const agent = r.agent_id;
    const gpu = `${agent}/${r.asset}`;
    const { group, model, pricePerHour } = catalog.of(agent, r.asset);
    const key = window.by === 'host' ? agent : window.by === 'group' ? group : window.by === 'model' ? model : gpu;
    const day = isoDay(Number(r.day));
    const h = (ms: number) => Number(ms) / HOUR_MS;
    const downHoursByCause = { lost: h(r.down_lost_ms), memory: h(r.down_memory_ms), reset: h(r.down_reset_ms), xid: h(r.down_xid_ms) };
    const downHours = downHoursByCause.lost + downHoursByCause.memory + downHoursByCause.reset + downHoursByCause.xid;
    const idleHours = h(r.idle_ms);
    const energyKwh = Number(r.energy_wh) / 1000;
    const idleCost = idleHours * pricePerHour;
    const downtimeCost = downHours * pricePerHour;
    const energyCost = energyKwh * config.pricePerKwh;
    const figures = {
      busyHours: h(r.busy_ms),
      idleHours,
      downHours,
      downHoursByCause,
      gapHours: h(r.gap_ms),
      gaps: Number(r.gaps),
      energyKwh,
      poweredHours: h(r.powered_ms),
      xids: Number(r.xids),
      lateSamples: Number(r.late_samples),
      idleCost,
      downtimeCost,
      energyCost,
      totalCost: idleCost + downtimeCost + energyCost,
    };
    const cellKey = `${day}\u0000${key}`;
    let cell = cells.get(cellKey);
    if (!cell) cells.set(cellKey, (cell = { ...empty(), day, key }));
    addInto(cell, gpu, figures);
    let total = totals.get(key);
    if (!total) totals.set(key, (total = empty()));
    addInto(total, gpu, figures);
    let d = daily.get(day);
    if (!d) daily.set(day, (d = empty()));
    addInto(d, gpu, figures);
    addInto(fleet, gpu, figures);
  }
  return {
    from,
    to,
    by: window.by,
    currency: config.currency,
    pricePerKwh: config.pricePerKwh,
    rows: [...cells.values()].sort((a, b) => a.day.localeCompare(b.day) || a.key.localeCompare(b.key)).map((c) => ({ day: c.day, key: c.key, ...finish(c) })),
    totals: [...totals].map(([key, acc]) => ({ key, ...finish(acc) })).sort((a, b) => b.totalCost - a.totalCost || a.key.localeCompare(b.key)),
    daily: [...daily].sort(([a], [b]) => a.localeCompare(b)).map(([day, acc]) => ({ day, ...finish(acc) })),
    fleet: finish(fleet),
  };
}

export const CSV_COLUMNS = [
  'day',
  'key',
  'gpus',
  'busy_hours',
  'idle_hours',
  'down_hours',
  'down_lost_hours',
  'down_memory_hours',
  'down_reset_hours',
  'down_xid_hours',
  'gap_hours',
  'gaps',
  'energy_kwh',
  'xids',
  'idle_cost',
  'downtime_cost',
  'energy_cost',
  'total_cost',
  'currency',
] as const;

function csvField(v: string | number): string {
  const s = String(v);
  return /[",\r\n]/.test(s) || /^[=+\-@\t]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * One line per day and key, the columns of CSV_COLUMNS with `key` named after the grouping (`host`, `group`,
 * `model`, `gpu`): hours and kWh to 4 decimals, money to 2. A field that a spreadsheet would run as a formula is quoted.
 */
export function reportCsv(report: GpuCostReport): string {
  const header = CSV_COLUMNS.map((c) => (c === 'key' ? report.by : c));
  const f4 = (v: number) => v.toFixed(4);
  const f2 = (v: number) => v.toFixed(2);
  const lines = [header.join(',')];
  for (const r of report.rows) {
    lines.push(
      [
        r.day,
        r.key,
        r.gpus,
        f4(r.busyHours),
        f4(r.idleHours),
        f4(r.downHours),
        f4(r.downHoursByCause.lost),
        f4(r.downHoursByCause.memory),
        f4(r.downHoursByCause.reset),
        f4(r.downHoursByCause.xid),
        f4(r.gapHours),
        r.gaps,
        f4(r.energyKwh),
        r.xids,
        f2(r.idleCost),
        f2(r.downtimeCost),
        f2(r.energyCost),
        f2(r.totalCost),
        report.currency,
      ]
        .map(csvField)
        .join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

export interface IdleGpu {
  agentId: string;
  asset: string;
  index: number | null;
  model: string;
  group: string;
  /** Start of the idle run. */
  idleSince: number;
  /** The GPU's last sample. */
  lastTs: number;
  idleHours: number;
  /** What the run has cost so far at the model's hourly price. */
  idleCost: number;
}

/**
 * GPUs idle now: their last interval was idle, and their last sample is at most `maxGapMs` before `now` (a GPU
 * whose host went silent is not known to be idle) and not after it (a report of the past). Longest run first.
 */
export async function idleGpus(q: SqlQueries, config: GpuCostConfig, now: number, minIdleMs = 0): Promise<IdleGpu[]> {
  const rows = await q.all<{ agent_id: string; asset: string; ts: number; idle_since: number; gpu_index: number | null }>(
    `SELECT agent_id, asset, ts, idle_since, gpu_index FROM gpu_cost_state
     WHERE idle_since IS NOT NULL AND ts >= ? AND ts <= ? AND ts - idle_since >= ? ORDER BY ts - idle_since DESC, agent_id, asset`,
    [now - config.maxGapMs, now, minIdleMs],
  );
  const catalog = new GpuCatalog(config);
  return rows.map((r) => {
    const { model, group, pricePerHour } = catalog.of(r.agent_id, r.asset);
    const idleHours = (Number(r.ts) - Number(r.idle_since)) / HOUR_MS;
    return {
      agentId: r.agent_id,
      asset: r.asset,
      index: r.gpu_index === null ? null : Number(r.gpu_index),
      model,
      group,
      idleSince: Number(r.idle_since),
      lastTs: Number(r.ts),
      idleHours: tidy(idleHours),
      idleCost: tidy(idleHours * pricePerHour),
    };
  });
}

export interface DowntimeGpu {
  agentId: string;
  asset: string;
  model: string;
  group: string;
  downHours: number;
  downHoursByCause: Record<DownCause, number>;
  downtimeCost: number;
  xids: number;
}

/** Per GPU, the down hours and their cost in [from, to), costliest first. */
export async function downtimeByGpu(q: SqlQueries, config: GpuCostConfig, from: number, to: number): Promise<DowntimeGpu[]> {
  const rows = await q.all<{ agent_id: string; asset: string; lost: number; memory: number; reset: number; xid: number; xids: number }>(
    `SELECT agent_id, asset, SUM(down_lost_ms) AS lost, SUM(down_memory_ms) AS memory, SUM(down_reset_ms) AS reset,
            SUM(down_xid_ms) AS xid, SUM(xids) AS xids
     FROM gpu_cost_hourly WHERE hour >= ? AND hour < ?
     GROUP BY agent_id, asset HAVING SUM(down_lost_ms + down_memory_ms + down_reset_ms + down_xid_ms) > 0`,
    [Math.floor(from / HOUR_MS) * HOUR_MS, to],
  );
  const catalog = new GpuCatalog(config);
  return rows
    .map((r) => {
      const { model, group, pricePerHour } = catalog.of(r.agent_id, r.asset);
      const byCause = { lost: Number(r.lost) / HOUR_MS, memory: Number(r.memory) / HOUR_MS, reset: Number(r.reset) / HOUR_MS, xid: Number(r.xid) / HOUR_MS };
      const downHours = byCause.lost + byCause.memory + byCause.reset + byCause.xid;
      return {
        agentId: r.agent_id,
        asset: r.asset,
        model,
        group,
        downHours: tidy(downHours),
        downHoursByCause: byCause,
        downtimeCost: tidy(downHours * pricePerHour),
        xids: Number(r.xids),
      };
    })
    .sort((a, b) => b.downtimeCost - a.downtimeCost || b.downHours - a.downHours || a.agentId.localeCompare(b.agentId) || a.asset.localeCompare(b.asset));
}
