import type { CentralProjection, IngestedBatch } from '../projection.js';
import type { Migration } from '../sql/migrations.js';
import { valuesList, type SqlQueries, type SqlValue } from '../sql/sql-client.js';
import type { GpuCostConfig } from './gpu-cost-config.js';
import { advance, gpuSample, type GpuSample, type GpuState, type HourPart, type Parts } from './gpu-intervals.js';

/**
 * GPU time and energy, kept in the ingest transaction from the GPU source's telemetry (asset `gpu-<bus id>`):
 *
 * - `gpu_cost_state`: per (agent, asset) the GPU's last sample as the accounting needs it (time, load class, down
 *   signal, power, Xid counts and hold, the start of its idle run, index, memory size). One row per GPU.
 * - `gpu_cost_hourly`: per (agent, asset, hour) the ms busy, idle, down per cause (lost, memory, reset, xid) and in
 *   gaps, the gaps begun, the energy in Wh and the ms it covers, the samples, the late samples and the fatal Xids.
 *
 * Why a projection and not queries over the ledger: a GPU reports every 5 s, 17,280 records a day; a daily report
 * over 500 eight-GPU hosts would read 69 million JSON payloads. Here each batch costs one read of its GPUs' state
 * rows, one upsert of them and one additive upsert of the hours it touches (a batch of one host's sample: 8 state
 * rows, 8 hour rows), and a report reads 24 rows per GPU and day. The ingest holds the agent's lock (central-
 * store.ts `write`), so one agent's batches update its GPUs' state one after the other, on any number of workers.
 *
 * What this costs in precision: a record older than its GPU's last accounted sample (a repaired gap, a batch that
 * overtook another) is counted as late and not accounted (the interval it falls in already was, with the state
 * of the sample before it). The agent publishes each stream in seq order, so this happens only around repairs.
 * Bounds (idle, gaps, Xid hold) apply when a record is ingested: changing them changes the hours from then on.
 */

const ROWS_PER_STATEMENT = 300;

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    async up(q) {
      const big = q.dialect === 'postgres' ? 'BIGINT' : 'INTEGER';
      const real = q.dialect === 'postgres' ? 'DOUBLE PRECISION' : 'REAL';
      await q.exec(`
        CREATE TABLE gpu_cost_state (
          agent_id TEXT NOT NULL, asset TEXT NOT NULL, ts ${big} NOT NULL, boot_seq ${big} NOT NULL, load TEXT NOT NULL,
          signal TEXT, power_w ${real}, xid_down_until ${big}, idle_since ${big}, xid_counts TEXT NOT NULL,
          gpu_index ${big}, memory_total_bytes ${real}, PRIMARY KEY (agent_id, asset)
        );
        CREATE TABLE gpu_cost_hourly (
          agent_id TEXT NOT NULL, asset TEXT NOT NULL, hour ${big} NOT NULL,
          busy_ms ${big} NOT NULL, idle_ms ${big} NOT NULL, down_lost_ms ${big} NOT NULL, down_memory_ms ${big} NOT NULL,
          down_reset_ms ${big} NOT NULL, down_xid_ms ${big} NOT NULL, gap_ms ${big} NOT NULL, gaps ${big} NOT NULL,
          energy_wh ${real} NOT NULL, powered_ms ${big} NOT NULL, samples ${big} NOT NULL, late_samples ${big} NOT NULL,
          xids ${big} NOT NULL, PRIMARY KEY (agent_id, asset, hour)
        );
        CREATE INDEX gpu_cost_hourly_hour ON gpu_cost_hourly (hour);
      `);
    },
  },
];

const HOURLY_COLUMNS = [
  'busy_ms',
  'idle_ms',
  'down_lost_ms',
  'down_memory_ms',
  'down_reset_ms',
  'down_xid_ms',
  'gap_ms',
  'gaps',
  'energy_wh',
  'powered_ms',
  'samples',
  'late_samples',
  'xids',
] as const;

function hourlyValues(p: HourPart): number[] {
  return [
    p.busyMs,
    p.idleMs,
    p.downMs.lost,
    p.downMs.memory,
    p.downMs.reset,
    p.downMs.xid,
    p.gapMs,
    p.gaps,
    p.energyWh,
    p.poweredMs,
    p.samples,
    p.lateSamples,
    p.xids,
  ];
}

interface StateRow {
  asset: string;
  ts: number;
  boot_seq: number;
  load: string;
  signal: string | null;
  power_w: number | null;
  xid_down_until: number | null;
  idle_since: number | null;
  xid_counts: string;
  gpu_index: number | null;
  memory_total_bytes: number | null;
}

function fromRow(r: StateRow): GpuState {
  let xidCounts: Record<string, number> = {};
  try {
    xidCounts = JSON.parse(r.xid_counts) as Record<string, number>;
  } catch {
    // A damaged row only loses the Xid baseline.
  }
  return {
    ts: Number(r.ts),
    bootSeq: Number(r.boot_seq),
    load: r.load as GpuState['load'],
    signal: r.signal as GpuState['signal'],
    powerW: r.power_w,
    xidDownUntil: r.xid_down_until === null ? null : Number(r.xid_down_until),
    idleSince: r.idle_since === null ? null : Number(r.idle_since),
    xidCounts,
    index: r.gpu_index === null ? null : Number(r.gpu_index),
    memoryTotalBytes: r.memory_total_bytes,
  };
}

export class GpuCostProjection implements CentralProjection {
  readonly name = 'gpu-cost';
  readonly migrations = MIGRATIONS;
  /** GPU records accounted, and those that came after a newer one (not accounted). */
  readonly stats = { samples: 0, late: 0 };

  constructor(private readonly config: GpuCostConfig) {}

  async applyBatch(q: SqlQueries, batch: IngestedBatch): Promise<void> {
    if (batch.stream !== 'telemetry') return;
    const byGpu = new Map<string, GpuSample[]>();
    for (const r of batch.records) {
      const s = gpuSample(r.asset, r.ts, r.metrics, this.config);
      if (!s) continue;
      const list = byGpu.get(r.asset as string);
      if (list) list.push(s);
      else byGpu.set(r.asset as string, [s]);
    }
    if (!byGpu.size) return;
    const assets = [...byGpu.keys()];
    const states = new Map<string, GpuState>();
    for (let i = 0; i < assets.length; i += ROWS_PER_STATEMENT) {
      const chunk = assets.slice(i, i + ROWS_PER_STATEMENT);
      const rows = await q.all<StateRow>(
        `SELECT asset, ts, boot_seq, load, signal, power_w, xid_down_until, idle_since, xid_counts, gpu_index, memory_total_bytes
         FROM gpu_cost_state WHERE agent_id = ? AND asset IN (${chunk.map(() => '?').join(', ')})`,
        [batch.agentId, ...chunk],
      );
      for (const r of rows) states.set(r.asset, fromRow(r));
    }
    const hourly: Array<{ asset: string; part: HourPart }> = [];
    const next: Array<[string, GpuState]> = [];
    for (const [asset, samples] of byGpu) {
      samples.sort((a, b) => a.ts - b.ts);
      const parts: Parts = new Map();
      let state = states.get(asset) ?? null;
      for (const s of samples) state = advance(state, s, batch.bootSeq, this.config, parts);
      for (const p of parts.values()) {
        hourly.push({ asset, part: p });
        this.stats.samples += p.samples;
        this.stats.late += p.lateSamples;
      }
      if (state) next.push([asset, state]);
    }
    await this.upsertStates(q, batch.agentId, next);
    await this.upsertHourly(q, batch.agentId, hourly);
  }

  private async upsertStates(q: SqlQueries, agentId: string, rows: ReadonlyArray<[string, GpuState]>): Promise<void> {
    const cols = [
      'agent_id',
      'asset',
      'ts',
      'boot_seq',
      'load',
      'signal',
      'power_w',
      'xid_down_until',
      'idle_since',
      'xid_counts',
      'gpu_index',
      'memory_total_bytes',
    ];
    for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
      const chunk = rows.slice(i, i + ROWS_PER_STATEMENT);
      const params: SqlValue[] = [];
      for (const [asset, s] of chunk) {
        params.push(
          agentId,
          asset,
          s.ts,
          s.bootSeq,
          s.load,
          s.signal,
          s.powerW,
          s.xidDownUntil,
          s.idleSince,
          JSON.stringify(s.xidCounts),
          s.index,
          s.memoryTotalBytes,
        );
      }
      await q.run(
        `INSERT INTO gpu_cost_state (${cols.join(', ')}) VALUES ${valuesList(chunk.length, cols.length)}
         ON CONFLICT (agent_id, asset) DO UPDATE SET ${cols
           .slice(2)
           .map((c) => `${c} = excluded.${c}`)
           .join(', ')}`,
        params,
      );
    }
  }

  private async upsertHourly(q: SqlQueries, agentId: string, rows: ReadonlyArray<{ asset: string; part: HourPart }>): Promise<void> {
    const cols = ['agent_id', 'asset', 'hour', ...HOURLY_COLUMNS];
    for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
      const chunk = rows.slice(i, i + ROWS_PER_STATEMENT);
      const params: SqlValue[] = [];
      for (const { asset, part } of chunk) params.push(agentId, asset, part.hour, ...hourlyValues(part));
      await q.run(
        `INSERT INTO gpu_cost_hourly (${cols.join(', ')}) VALUES ${valuesList(chunk.length, cols.length)}
         ON CONFLICT (agent_id, asset, hour) DO UPDATE SET ${HOURLY_COLUMNS.map((c) => `${c} = gpu_cost_hourly.${c} + excluded.${c}`).join(', ')}`,
        params,
      );
    }
  }
}
