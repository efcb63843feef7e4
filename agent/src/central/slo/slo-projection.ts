import type { BatchRecord, DecodedStatus } from '../decode-batch.js';
import type { CentralProjection, IngestedBatch } from '../projection.js';
import type { Migration } from '../sql/migrations.js';
import { valuesList, type SqlQueries, type SqlValue } from '../sql/sql-client.js';
import { LATENCY_BUCKETS_S } from './slo-config.js';

/**
 * The SLO counters, kept inside the ingest transaction (projection.ts) from the records stored for the first time,
 * so that every indicator is a sum over a few small tables rather than a scan of `records` (docs/slo.md):
 *
 * - `slo_minute` (kept 7 h) and `slo_hour` (kept for the longest objective window and its trend): per (agent,
 *   asset, bucket) the counters below; `asset` is '' for records that name none. Receive-time buckets (central's
 *   clock): `records` (every stream: completeness), `readings` with the delivery-latency histogram (`lat_le_<s>`:
 *   readings whose skew-corrected latency fell in (previous bound, s], and `lat_sum_ms`), `alerts` raised with the
 *   alert-latency histogram (`alat_…`), `stale_minutes` (minutes judged stale, by the minute). Reading-time
 *   buckets (the agent's clock, skew-corrected): `cov_expected` (readings × models bound to the asset) and
 *   `cov_scored` (risk records of a bound model in state ok), so a risk record meets its reading whatever order
 *   they arrive in.
 * - `slo_totals`: the same counters per agent since the start, never pruned (the `/metrics` counters).
 * - `slo_agents`: per agent the clock offset estimate from its status messages (least receive − sent).
 * - `slo_assets`: per asset with readings, when central first saw it, its newest reading (skew-corrected) and the
 *   receive time up to which its stale minutes are counted.
 * - `slo_bindings`: per (agent, asset, model) the model's health state (from the status and model-health events).
 */

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;
/** How long per-minute counters are kept: the longest short window (6 h) and a margin. */
export const MINUTE_RETENTION_MS = 7 * HOUR_MS;
/** Offset estimates older than this give way to a newer sample, so a drifting clock is followed. */
export const SKEW_SAMPLE_MAX_AGE_MS = DAY_MS;

const bound = (s: number) => String(s);
export const LAT_COLUMNS = LATENCY_BUCKETS_S.map((s) => `lat_le_${bound(s)}`);
export const ALAT_COLUMNS = LATENCY_BUCKETS_S.map((s) => `alat_le_${bound(s)}`);
export const COUNTER_COLUMNS = [
  'records',
  'readings',
  'lat_sum_ms',
  ...LAT_COLUMNS,
  'alerts',
  'alat_sum_ms',
  ...ALAT_COLUMNS,
  'stale_minutes',
  'cov_expected',
  'cov_scored',
] as const;
type Counters = Record<string, number>;

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    async up(q) {
      const big = q.dialect === 'postgres' ? 'BIGINT' : 'INTEGER';
      const counters = COUNTER_COLUMNS.map((c) => `${c} ${big} NOT NULL DEFAULT 0`).join(', ');
      await q.exec(`
        CREATE TABLE slo_minute (agent_id TEXT NOT NULL, asset TEXT NOT NULL, bucket ${big} NOT NULL, ${counters}, PRIMARY KEY (agent_id, asset, bucket));
        CREATE INDEX slo_minute_bucket ON slo_minute (bucket);
        CREATE TABLE slo_hour (agent_id TEXT NOT NULL, asset TEXT NOT NULL, bucket ${big} NOT NULL, ${counters}, PRIMARY KEY (agent_id, asset, bucket));
        CREATE INDEX slo_hour_bucket ON slo_hour (bucket);
        CREATE TABLE slo_totals (agent_id TEXT PRIMARY KEY, ${counters});
        CREATE TABLE slo_agents (agent_id TEXT PRIMARY KEY, min_delay_ms ${big} NOT NULL, min_delay_ts ${big} NOT NULL, samples ${big} NOT NULL);
        CREATE TABLE slo_assets (
          agent_id TEXT NOT NULL, asset TEXT NOT NULL, first_seen_ts ${big} NOT NULL, newest_ts ${big} NOT NULL, counted_ts ${big} NOT NULL,
          PRIMARY KEY (agent_id, asset)
        );
        CREATE TABLE slo_bindings (agent_id TEXT NOT NULL, asset TEXT NOT NULL, model TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (agent_id, asset, model));
      `);
    },
  },
];

export interface SloProjectionOptions {
  /** A minute is fresh when the newest reading is younger than this. */
  maxAgeSeconds: number;
  /** Offsets below this are not corrected. */
  clockSkewToleranceSeconds: number;
}

/** The correction applied to an agent's timestamps (ms its clock runs ahead), from its least status delay. */
export function appliedSkew(minDelayMs: number | null | undefined, toleranceSeconds: number): number {
  if (minDelayMs === null || minDelayMs === undefined) return 0;
  const skew = -minDelayMs;
  return Math.abs(skew) >= toleranceSeconds * 1000 ? skew : 0;
}

/** Which histogram column a latency falls in; -1 above the last bound (counted only in the total). */
export function latencyBucket(ms: number): number {
  for (let i = 0; i < LATENCY_BUCKETS_S.length; i++) if (ms <= LATENCY_BUCKETS_S[i]! * 1000) return i;
  return -1;
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const floorTo = (ts: number, unit: number) => Math.floor(ts / unit) * unit;

/** Counters of one batch, per table row, before they are added to what is stored. */
class Accumulator {
  readonly rows = new Map<string, { table: 'slo_minute' | 'slo_hour'; asset: string; bucket: number; c: Counters }>();
  readonly total: Counters = {};

  constructor(private readonly minuteFloor: number) {}

  add(asset: string, ts: number, column: string, n = 1): void {
    if (!n) return;
    this.total[column] = (this.total[column] ?? 0) + n;
    for (const [table, unit] of [
      ['slo_minute', MINUTE_MS],
      ['slo_hour', HOUR_MS],
    ] as const) {
      const bucket = floorTo(ts, unit);
      // Per-minute rows older than their retention would be pruned at once: the hourly row has them.
      if (table === 'slo_minute' && bucket < this.minuteFloor) continue;
      const key = `${table}\u0000${asset}\u0000${bucket}`;
      let row = this.rows.get(key);
      if (!row) this.rows.set(key, (row = { table, asset, bucket, c: {} }));
      row.c[column] = (row.c[column] ?? 0) + n;
    }
  }
}

const ROWS_PER_STATEMENT = 200;
const addUp = (table: string) => COUNTER_COLUMNS.map((c) => `${c} = ${table}.${c} + excluded.${c}`).join(', ');

export class SloProjection implements CentralProjection {
  readonly name = 'slo';
  readonly migrations = MIGRATIONS;

  constructor(private readonly options: SloProjectionOptions) {}

  async applyBatch(q: SqlQueries, batch: IngestedBatch): Promise<void> {
    if (!batch.records.length) return;
    const R = batch.receivedTs;
    const agentId = batch.agentId;
    const skewRow = await q.get<{ min_delay_ms: number }>('SELECT min_delay_ms FROM slo_agents WHERE agent_id = ?', [agentId]);
    const skew = appliedSkew(skewRow?.min_delay_ms, this.options.clockSkewToleranceSeconds);
    // A corrected time never lies after its receipt: what is left of the offset is the estimate's error.
    const corrected = (ts: number) => Math.min(ts - skew, R);
    const acc = new Accumulator(floorTo(R - MINUTE_RETENTION_MS, MINUTE_MS));
    for (const r of batch.records) acc.add(nonEmpty(r.asset) ? r.asset : '', R, 'records');
    if (batch.stream === 'telemetry') await this.telemetry(q, agentId, batch.records, R, corrected, acc);
    else if (batch.stream === 'risk') await this.risk(q, agentId, batch.records, corrected, acc);
    else if (batch.stream === 'alerts') this.alerts(batch.records, R, corrected, acc);
    else if (batch.stream === 'events') await this.events(q, agentId, batch.records);
    await this.write(q, agentId, acc);
  }

  private async bindings(q: SqlQueries, agentId: string): Promise<Map<string, Map<string, string>>> {
    const out = new Map<string, Map<string, string>>();
    for (const b of await q.all<{ asset: string; model: string; state: string }>('SELECT asset, model, state FROM slo_bindings WHERE agent_id = ?', [
      agentId,
    ])) {
      let m = out.get(b.asset);
      if (!m) out.set(b.asset, (m = new Map()));
      m.set(b.model, b.state);
    }
    return out;
  }

  private async telemetry(q: SqlQueries, agentId: string, records: readonly BatchRecord[], R: number, corrected: (ts: number) => number, acc: Accumulator) {
    const bound = await this.bindings(q, agentId);
    const newest = new Map<string, number>();
    for (const r of records) {
      if (!nonEmpty(r.asset) || !finite(r.ts)) continue;
      const t = corrected(r.ts);
      const latency = R - t;
      acc.add(r.asset, R, 'readings');
      acc.add(r.asset, R, 'lat_sum_ms', Math.round(latency));
      const b = latencyBucket(latency);
      if (b >= 0) acc.add(r.asset, R, LAT_COLUMNS[b]!);
      const models = bound.get(r.asset)?.size ?? 0;
      if (models) acc.add(r.asset, t, 'cov_expected', models);
      newest.set(r.asset, Math.max(newest.get(r.asset) ?? -Infinity, t));
    }
    await this.freshness(q, agentId, newest, R, acc);
  }

  /**
   * Minute m (ending at e) is stale when no reading younger than maxAge had reached central by e. When a batch
   * arrives at R, the minutes that ended in [max(newest + maxAge, counted), R) were stale: they are counted now,
   * once (`counted_ts` moves to R). The minutes since, up to now, are counted by the reader (slo-queries.ts).
   */
  private async freshness(q: SqlQueries, agentId: string, newest: ReadonlyMap<string, number>, R: number, acc: Accumulator): Promise<void> {
    if (!newest.size) return;
    const maxAge = this.options.maxAgeSeconds * 1000;
    const assets = [...newest.keys()];
    const stored = new Map(
      (
        await q.all<{ asset: string; newest_ts: number; counted_ts: number; first_seen_ts: number }>(
          `SELECT asset, newest_ts, counted_ts, first_seen_ts FROM slo_assets WHERE agent_id = ? AND asset IN (${assets.map(() => '?').join(', ')})`,
          [agentId, ...assets],
        )
      ).map((r) => [r.asset, r]),
    );
    const params: SqlValue[] = [];
    for (const [asset, t] of newest) {
      const s = stored.get(asset);
      if (s) {
        for (const e of minuteEnds(Math.max(s.newest_ts + maxAge, s.counted_ts), R - 1)) acc.add(asset, e - MINUTE_MS, 'stale_minutes');
      }
      params.push(agentId, asset, s?.first_seen_ts ?? R, Math.max(s?.newest_ts ?? -Infinity, t), Math.max(s?.counted_ts ?? R, R));
    }
    await q.run(
      `INSERT INTO slo_assets (agent_id, asset, first_seen_ts, newest_ts, counted_ts) VALUES ${valuesList(newest.size, 5)}
       ON CONFLICT (agent_id, asset) DO UPDATE SET newest_ts = excluded.newest_ts, counted_ts = excluded.counted_ts`,
      params.map((p) => (typeof p === 'number' ? Math.round(p) : p)),
    );
  }

  private async risk(q: SqlQueries, agentId: string, records: readonly BatchRecord[], corrected: (ts: number) => number, acc: Accumulator) {
    const bound = await this.bindings(q, agentId);
    for (const r of records) {
      if (!nonEmpty(r.asset) || !nonEmpty(r.model)) continue;
      if (bound.get(r.asset)?.get(r.model) !== 'ok') continue;
      const readingTs = finite(r.readingTs) ? r.readingTs : r.ts;
      acc.add(r.asset, corrected(readingTs), 'cov_scored');
    }
  }

  private alerts(records: readonly BatchRecord[], R: number, corrected: (ts: number) => number, acc: Accumulator) {
    for (const r of records) {
      if (r.state !== 'raised') continue;
      // From the first reading past the threshold: when the condition began to hold (a rule's forMs delays the raise).
      const began = finite(r.pendingSinceTs) ? r.pendingSinceTs : finite(r.raisedTs) ? r.raisedTs : r.ts;
      const latency = R - corrected(began);
      const asset = nonEmpty(r.asset) ? r.asset : '';
      acc.add(asset, R, 'alerts');
      acc.add(asset, R, 'alat_sum_ms', Math.round(latency));
      const b = latencyBucket(latency);
      if (b >= 0) acc.add(asset, R, ALAT_COLUMNS[b]!);
    }
  }

  private async events(q: SqlQueries, agentId: string, records: readonly BatchRecord[]): Promise<void> {
    for (const r of records) {
      if (r.type !== 'model-health' || !nonEmpty(r.asset) || !nonEmpty(r.model) || !nonEmpty(r.state)) continue;
      await q.run('UPDATE slo_bindings SET state = ? WHERE agent_id = ? AND asset = ? AND model = ?', [r.state, agentId, r.asset, r.model]);
    }
  }

  private async write(q: SqlQueries, agentId: string, acc: Accumulator): Promise<void> {
    const cols = ['agent_id', 'asset', 'bucket', ...COUNTER_COLUMNS];
    for (const table of ['slo_minute', 'slo_hour'] as const) {
      const rows = [...acc.rows.values()].filter((r) => r.table === table);
      for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
        const chunk = rows.slice(i, i + ROWS_PER_STATEMENT);
        const params: SqlValue[] = [];
        for (const r of chunk) params.push(agentId, r.asset, r.bucket, ...COUNTER_COLUMNS.map((c) => r.c[c] ?? 0));
        await q.run(
          `INSERT INTO ${table} (${cols.join(', ')}) VALUES ${valuesList(chunk.length, cols.length)}
           ON CONFLICT (agent_id, asset, bucket) DO UPDATE SET ${addUp(table)}`,
          params,
        );
      }
    }
    await q.run(
      `INSERT INTO slo_totals (agent_id, ${COUNTER_COLUMNS.join(', ')}) VALUES ${valuesList(1, COUNTER_COLUMNS.length + 1)}
       ON CONFLICT (agent_id) DO UPDATE SET ${addUp('slo_totals')}`,
      [agentId, ...COUNTER_COLUMNS.map((c) => acc.total[c] ?? 0)],
    );
  }

  /**
   * An online status: its clock against central's (the least receive − sent delay over a day is the offset
   * estimate: the fastest message carries the least queueing) and the models bound to each asset with their
   * health. The Will and the offline status are left out: the Will carries the time the agent connected.
   */
  async applyStatus(q: SqlQueries, status: DecodedStatus, receivedTs: number): Promise<void> {
    if (status.state !== 'online') return;
    if (finite(status.ts)) {
      const d = Math.round(receivedTs - status.ts);
      await q.run(
        `INSERT INTO slo_agents (agent_id, min_delay_ms, min_delay_ts, samples) VALUES (?, ?, ?, 1)
         ON CONFLICT (agent_id) DO UPDATE SET samples = slo_agents.samples + 1,
           min_delay_ms = CASE WHEN excluded.min_delay_ms <= slo_agents.min_delay_ms OR slo_agents.min_delay_ts < ? THEN excluded.min_delay_ms ELSE slo_agents.min_delay_ms END,
           min_delay_ts = CASE WHEN excluded.min_delay_ms <= slo_agents.min_delay_ms OR slo_agents.min_delay_ts < ? THEN excluded.min_delay_ts ELSE slo_agents.min_delay_ts END`,
        [status.agentId, d, receivedTs, receivedTs - SKEW_SAMPLE_MAX_AGE_MS, receivedTs - SKEW_SAMPLE_MAX_AGE_MS],
      );
    }
    const models = status.payload.models;
    if (!Array.isArray(models)) return;
    await q.run('DELETE FROM slo_bindings WHERE agent_id = ?', [status.agentId]);
    const rows = new Map<string, [string, string, string]>();
    for (const m of models as Array<Record<string, unknown>>) {
      if (!m || !nonEmpty(m.name) || !Array.isArray(m.assets)) continue;
      const health = Array.isArray(m.health) ? (m.health as Array<Record<string, unknown>>) : [];
      for (const asset of m.assets) {
        if (!nonEmpty(asset)) continue;
        const h = health.find((x) => x && x.asset === asset);
        // No health reported (drift monitoring off, an older agent): the model counts as ok.
        rows.set(`${asset}\u0000${m.name}`, [asset, m.name, nonEmpty(h?.state) ? h.state : 'ok']);
      }
    }
    if (!rows.size) return;
    await q.run(
      `INSERT INTO slo_bindings (agent_id, asset, model, state) VALUES ${valuesList(rows.size, 4)}`,
      [...rows.values()].flatMap((r) => [status.agentId, ...r]),
    );
  }
}

/** The minute ends (multiples of a minute) in [from, to]. */
export function minuteEnds(from: number, to: number): number[] {
  const out: number[] = [];
  for (let e = Math.ceil(from / MINUTE_MS) * MINUTE_MS; e <= to; e += MINUTE_MS) out.push(e);
  return out;
}

/** How many minute ends lie in [from, to]. */
export function countMinuteEnds(from: number, to: number): number {
  if (to < from) return 0;
  return Math.max(0, Math.floor(to / MINUTE_MS) - Math.ceil(from / MINUTE_MS) + 1);
}
