import type { BatchRecord } from '../decode-batch.js';
import type { CentralProjection, IngestedBatch } from '../projection.js';
import type { Migration } from '../sql/migrations.js';
import { valuesList, type SqlQueries, type SqlValue } from '../sql/sql-client.js';
import { MetricPatterns } from './metric-patterns.js';

/**
 * The fleet read model of risk and telemetry, kept inside the ingest transaction from the newly stored records
 * of each batch (projection.ts):
 *
 * - `fleet_latest_risk`: the newest risk record per (agent, asset, model): score, kind, threshold, at_risk (0/1),
 *   model_version, ts, reading_ts, drivers (JSON), received_ts. A record replaces the row only when its `ts` is
 *   newer, so a replayed backlog arriving after live data never turns the clock back. "The latest risk of every
 *   asset across the fleet" is a scan of this one small table (one row per asset and model), not a search of
 *   `records`.
 * - `fleet_risk_hourly`: per (agent, asset, model, hour) the samples, min, max and sum of the score (mean =
 *   sum / samples), how many were at risk, and the last score with its ts.
 * - `fleet_telemetry_hourly`: per (agent, asset, metric, hour) the same for the metrics chosen by `rollupMetrics`.
 *
 * `hour` is the start of the hour in ms since the epoch, from the record's own `ts` (the time it describes, not
 * when it arrived). A batch is grouped in memory first and each key written with one upsert that combines
 * min/max/sum/samples with what is stored, so the cost is one row write per distinct key of the batch, and the
 * order records arrive in (live, replayed, repaired gaps) does not change the result.
 */

export interface FleetProjectionOptions {
  /**
   * Glob patterns of the telemetry metrics rolled up per hour (`*` any characters, `?` one), e.g.
   * `['temperature*', 'vibration_*', 'gpu_*_temp']`; `['*']` for all. Default `[]`: none, because the cost is one
   * rollup row written per metric, asset and hour of every batch, inside the ingest transaction, and agents'
   * batches usually hold one record per asset: rolling up all 40 metrics of a host's records cost 0.75 ms per
   * record on PostgreSQL here, twice the risk rollup (docs/benchmarks.md). The issue asks for "chosen" telemetry:
   * the operator chooses the signals worth a long trend; raw telemetry stays in `records` for its retention.
   */
  rollupMetrics?: readonly string[];
}

export const DEFAULT_ROLLUP_METRICS: readonly string[] = [];
export const HOUR_MS = 3_600_000;
/** Rows per multi-row upsert: well under SQLite's 32,766 parameters, and few round trips to PostgreSQL. */
const ROWS_PER_STATEMENT = 400;

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    async up(q) {
      const big = q.dialect === 'postgres' ? 'BIGINT' : 'INTEGER';
      const real = q.dialect === 'postgres' ? 'DOUBLE PRECISION' : 'REAL';
      await q.exec(`
        CREATE TABLE fleet_latest_risk (
          agent_id TEXT NOT NULL, asset TEXT NOT NULL, model TEXT NOT NULL, model_version TEXT NOT NULL,
          kind TEXT NOT NULL, score ${real} NOT NULL, threshold ${real}, at_risk INTEGER NOT NULL,
          ts ${big} NOT NULL, reading_ts ${big} NOT NULL, drivers TEXT NOT NULL, received_ts ${big} NOT NULL,
          PRIMARY KEY (agent_id, asset, model)
        );
        CREATE INDEX fleet_latest_risk_score ON fleet_latest_risk (at_risk, score);
        CREATE TABLE fleet_risk_hourly (
          agent_id TEXT NOT NULL, asset TEXT NOT NULL, model TEXT NOT NULL, hour ${big} NOT NULL,
          samples ${big} NOT NULL, min_score ${real} NOT NULL, max_score ${real} NOT NULL, sum_score ${real} NOT NULL,
          at_risk_samples ${big} NOT NULL, last_score ${real} NOT NULL, last_ts ${big} NOT NULL,
          PRIMARY KEY (agent_id, asset, model, hour)
        );
        CREATE INDEX fleet_risk_hourly_hour ON fleet_risk_hourly (hour);
        CREATE TABLE fleet_telemetry_hourly (
          agent_id TEXT NOT NULL, asset TEXT NOT NULL, metric TEXT NOT NULL, hour ${big} NOT NULL,
          samples ${big} NOT NULL, min_value ${real} NOT NULL, max_value ${real} NOT NULL, sum_value ${real} NOT NULL,
          last_value ${real} NOT NULL, last_ts ${big} NOT NULL,
          PRIMARY KEY (agent_id, asset, metric, hour)
        );
        CREATE INDEX fleet_telemetry_hourly_hour ON fleet_telemetry_hourly (hour);
      `);
    },
  },
];

interface Rollup {
  asset: string;
  /** The model (risk) or the metric (telemetry). */
  key: string;
  hour: number;
  samples: number;
  min: number;
  max: number;
  sum: number;
  atRisk: number;
  last: number;
  lastTs: number;
}

interface LatestRisk {
  asset: string;
  model: string;
  modelVersion: string;
  kind: string;
  score: number;
  threshold: number | null;
  atRisk: boolean;
  ts: number;
  readingTs: number;
  drivers: string;
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/** Adds one sample to the rollup of its key, creating it; a later `ts` takes `last` (the first of equal ones stays). */
function addSample(groups: Map<string, Rollup>, asset: string, key: string, ts: number, value: number, atRisk: boolean): void {
  const hour = Math.floor(ts / HOUR_MS) * HOUR_MS;
  // NUL cannot occur in a JSON-decoded asset or metric name that the contract allows, so the key is unambiguous.
  const id = `${asset}\u0000${key}\u0000${hour}`;
  const g = groups.get(id);
  if (!g) {
    groups.set(id, { asset, key, hour, samples: 1, min: value, max: value, sum: value, atRisk: atRisk ? 1 : 0, last: value, lastTs: ts });
    return;
  }
  g.samples++;
  if (value < g.min) g.min = value;
  if (value > g.max) g.max = value;
  g.sum += value;
  if (atRisk) g.atRisk++;
  if (ts > g.lastTs) {
    g.last = value;
    g.lastTs = ts;
  }
}

/** `CASE WHEN excluded.x < t.x …`: LEAST/GREATEST are PostgreSQL's and MIN/MAX(a, b) SQLite's; CASE is both. */
const keep = (table: string, col: string, op: '<' | '>') =>
  `${col} = CASE WHEN excluded.${col} ${op} ${table}.${col} THEN excluded.${col} ELSE ${table}.${col} END`;
const newer = (table: string, col: string) => `${col} = CASE WHEN excluded.last_ts > ${table}.last_ts THEN excluded.${col} ELSE ${table}.${col} END`;

export class FleetProjection implements CentralProjection {
  readonly name = 'fleet-projection';
  readonly migrations = MIGRATIONS;
  private readonly metrics: MetricPatterns;
  /** Records left out of the read model because a field it needs is missing or not a finite number. */
  skipped = 0;

  constructor(options: FleetProjectionOptions = {}) {
    this.metrics = new MetricPatterns(options.rollupMetrics ?? DEFAULT_ROLLUP_METRICS);
  }

  async applyBatch(q: SqlQueries, batch: IngestedBatch): Promise<void> {
    if (batch.stream === 'risk') await this.applyRisk(q, batch.agentId, batch.records, batch.receivedTs);
    else if (batch.stream === 'telemetry') await this.applyTelemetry(q, batch.agentId, batch.records);
  }

  private async applyRisk(q: SqlQueries, agentId: string, records: readonly BatchRecord[], receivedTs: number): Promise<void> {
    const latest = new Map<string, LatestRisk>();
    const hourly = new Map<string, Rollup>();
    for (const r of records) {
      const { asset, model, score } = r;
      if (!nonEmpty(asset) || !nonEmpty(model) || !finite(score) || !finite(r.ts)) {
        this.skipped++;
        continue;
      }
      const atRisk = r.atRisk === true;
      addSample(hourly, asset, model, r.ts, score, atRisk);
      const id = `${asset}\u0000${model}`;
      const prev = latest.get(id);
      if (prev && prev.ts >= r.ts) continue;
      latest.set(id, {
        asset,
        model,
        modelVersion: typeof r.modelVersion === 'string' ? r.modelVersion : '',
        kind: typeof r.kind === 'string' ? r.kind : 'probability',
        score,
        threshold: finite(r.threshold) ? r.threshold : null,
        atRisk,
        ts: r.ts,
        readingTs: finite(r.readingTs) ? r.readingTs : r.ts,
        drivers: JSON.stringify(Array.isArray(r.drivers) ? r.drivers : []),
      });
    }
    await this.upsertLatest(q, agentId, [...latest.values()], receivedTs);
    await this.upsertRollups(q, 'fleet_risk_hourly', agentId, [...hourly.values()]);
  }

  private async applyTelemetry(q: SqlQueries, agentId: string, records: readonly BatchRecord[]): Promise<void> {
    if (this.metrics.none) return;
    const hourly = new Map<string, Rollup>();
    for (const r of records) {
      const { asset, metrics } = r;
      if (!nonEmpty(asset) || !finite(r.ts) || typeof metrics !== 'object' || metrics === null) {
        this.skipped++;
        continue;
      }
      for (const name in metrics) {
        const value = (metrics as Record<string, unknown>)[name];
        if (finite(value) && this.metrics.matches(name)) addSample(hourly, asset, name, r.ts, value, false);
      }
    }
    await this.upsertRollups(q, 'fleet_telemetry_hourly', agentId, [...hourly.values()]);
  }

  private async upsertLatest(q: SqlQueries, agentId: string, rows: readonly LatestRisk[], receivedTs: number): Promise<void> {
    for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
      const chunk = rows.slice(i, i + ROWS_PER_STATEMENT);
      const params: SqlValue[] = [];
      for (const r of chunk) {
        params.push(agentId, r.asset, r.model, r.modelVersion, r.kind, r.score, r.threshold, r.atRisk ? 1 : 0, r.ts, r.readingTs, r.drivers, receivedTs);
      }
      const set = ['model_version', 'kind', 'score', 'threshold', 'at_risk', 'ts', 'reading_ts', 'drivers', 'received_ts'].map((c) => `${c} = excluded.${c}`);
      await q.run(
        `INSERT INTO fleet_latest_risk (agent_id, asset, model, model_version, kind, score, threshold, at_risk, ts, reading_ts, drivers, received_ts)
         VALUES ${valuesList(chunk.length, 12)}
         ON CONFLICT (agent_id, asset, model) DO UPDATE SET ${set.join(', ')} WHERE excluded.ts > fleet_latest_risk.ts`,
        params,
      );
    }
  }

  private async upsertRollups(q: SqlQueries, table: 'fleet_risk_hourly' | 'fleet_telemetry_hourly', agentId: string, rows: readonly Rollup[]): Promise<void> {
    const risk = table === 'fleet_risk_hourly';
    const [keyCol, v] = risk ? ['model', 'score'] : ['metric', 'value'];
    const cols = [
      'agent_id',
      'asset',
      keyCol,
      'hour',
      'samples',
      `min_${v}`,
      `max_${v}`,
      `sum_${v}`,
      `last_${v}`,
      'last_ts',
      ...(risk ? ['at_risk_samples'] : []),
    ];
    const set = [
      `samples = ${table}.samples + excluded.samples`,
      keep(table, `min_${v}`, '<'),
      keep(table, `max_${v}`, '>'),
      `sum_${v} = ${table}.sum_${v} + excluded.sum_${v}`,
      ...(risk ? [`at_risk_samples = ${table}.at_risk_samples + excluded.at_risk_samples`] : []),
      // last_ts goes last: the CASEs before it compare with the stored last_ts (SET reads the row before the update).
      newer(table, `last_${v}`),
      newer(table, 'last_ts'),
    ];
    for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
      const chunk = rows.slice(i, i + ROWS_PER_STATEMENT);
      const params: SqlValue[] = [];
      for (const g of chunk) {
        params.push(agentId, g.asset, g.key, g.hour, g.samples, g.min, g.max, g.sum, g.last, g.lastTs);
        if (risk) params.push(g.atRisk);
      }
      await q.run(
        `INSERT INTO ${table} (${cols.join(', ')}) VALUES ${valuesList(chunk.length, cols.length)}
         ON CONFLICT (agent_id, asset, ${keyCol}, hour) DO UPDATE SET ${set.join(', ')}`,
        params,
      );
    }
  }
}
