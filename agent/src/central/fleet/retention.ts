import { describeError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Component } from '../../core/types.js';
import { BATCH_STREAMS } from '../decode-batch.js';
import type { SqlClient, SqlQueries } from '../sql/sql-client.js';

/**
 * Retention of the central store, a periodic Component: records older than their stream's retention and hourly
 * rollups older than theirs are removed. Nothing else is: the ledger's bookkeeping (streams, gaps, dropped,
 * agents, …), the fleet registry, the latest risk and the alerts table stay whatever their age, because they
 * account for what was received or describe the present.
 *
 * PostgreSQL (`records` partitioned by stream, each `records_<stream>` by range of `ts`, with a default
 * partition): each pass creates the daily partitions of today and the next `partitionDaysAhead` days
 * (`records_<stream>_pYYYYMMDD`, UTC days, bounds in ms since the epoch), drops the partitions that lie wholly
 * before the retention cutoff (a DROP TABLE: no row-by-row delete, no bloat), and deletes old rows of the default
 * partition in chunks. A day whose rows already sit in the default partition (the service was down over
 * midnight before any pass created it) cannot get its partition: PostgreSQL refuses to create a partition over
 * rows of the default one. That is logged once, the rows stay in the default partition and are deleted there in
 * chunks once past the retention; later days get their partitions as usual.
 *
 * SQLite (one `records` table): chunked DELETEs, `chunkRows` rows per transaction, so the ingest transaction
 * waits at most one chunk.
 */

export type RecordStream = (typeof BATCH_STREAMS)[number];

export interface RetentionOptions {
  sql: SqlClient;
  log: Logger;
  /** Days each stream of `records` is kept, by `ts`. Defaults: DEFAULT_RETENTION_DAYS. */
  days?: Partial<Record<RecordStream, number>>;
  /** Days the hourly rollups are kept. Default 730. */
  rollupDays?: number;
  /** Between passes. Default 1 h (a pass must run at least daily, so partitions are always two days ahead). */
  intervalMs?: number;
  /** Rows per delete transaction. Default 5,000. */
  chunkRows?: number;
  /** PostgreSQL: daily partitions created beyond today. Default 2. */
  partitionDaysAhead?: number;
  /** The clock (tests). */
  now?: () => number;
}

/**
 * Telemetry: 30 days of raw readings answer "what happened before this alert"; the hourly rollups keep the trend.
 * Risk, events, alerts: 400 days, a year and a season for year-over-year comparisons and the labels a retraining
 * loop needs; at the contract's sizes they are a small share of the store next to telemetry.
 */
export const DEFAULT_RETENTION_DAYS: Readonly<Record<RecordStream, number>> = { telemetry: 30, risk: 400, events: 400, alerts: 400 };
/** Rollups: two years of hourly trends (about 17,500 rows per asset and metric). */
export const DEFAULT_ROLLUP_DAYS = 730;
export const DAY_MS = 86_400_000;

const ROLLUP_TABLES = ['fleet_risk_hourly', 'fleet_telemetry_hourly'] as const;

export interface RetentionReport {
  partitionsCreated: string[];
  partitionsDropped: string[];
  /** Rows deleted per stream (default partitions on PostgreSQL, the records table on SQLite). */
  rowsDeleted: Record<string, number>;
  rollupRowsDeleted: number;
  /** `records_<stream>_pYYYYMMDD` partitions that could not be created because their rows sit in the default partition. */
  blockedPartitions: string[];
}

/** `records_telemetry_p20261207` for the UTC day holding `ts`. */
export function partitionName(stream: string, dayStartMs: number): string {
  return `records_${stream}_p${new Date(dayStartMs).toISOString().slice(0, 10).replace(/-/g, '')}`;
}

const SAFE_NAME = /^[a-z_][a-z0-9_]*$/;

export class Retention implements Component {
  readonly name = 'central-retention';
  private readonly sql: SqlClient;
  private readonly log: Logger;
  private readonly days: Readonly<Record<RecordStream, number>>;
  private readonly rollupDays: number;
  private readonly intervalMs: number;
  private readonly chunkRows: number;
  private readonly ahead: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private stopping = false;
  /** Blocked partitions already logged: once each, not every hour. */
  private readonly warned = new Set<string>();

  constructor(options: RetentionOptions) {
    this.sql = options.sql;
    this.log = options.log;
    this.days = { ...DEFAULT_RETENTION_DAYS, ...options.days };
    this.rollupDays = options.rollupDays ?? DEFAULT_ROLLUP_DAYS;
    this.intervalMs = options.intervalMs ?? 3_600_000;
    this.chunkRows = options.chunkRows ?? 5_000;
    this.ahead = options.partitionDaysAhead ?? 2;
    this.now = options.now ?? Date.now;
    for (const [stream, d] of Object.entries(this.days)) {
      if (!(Number.isFinite(d) && d > 0)) throw new RangeError(`retention.days.${stream}: must be a positive number of days, got ${String(d)}`);
    }
    if (!(Number.isFinite(this.rollupDays) && this.rollupDays > 0)) throw new RangeError(`retention.rollupDays: must be a positive number of days`);
    if (!(Number.isInteger(this.chunkRows) && this.chunkRows > 0)) throw new RangeError(`retention.chunkRows: must be a positive integer`);
  }

  /** Returns at once; the first pass runs right away (today's partitions must exist before records arrive). */
  async start(): Promise<void> {
    this.stopping = false;
    const tick = () => {
      this.running = this.runOnce()
        .catch((err: unknown) => this.log.warn({ err: describeError(err) }, 'central retention pass failed; trying again at the next one'))
        .finally(() => {
          this.running = null;
          if (!this.stopping) this.timer = setTimeout(tick, this.intervalMs).unref();
        });
    };
    this.timer = setTimeout(tick, 0);
    this.timer.unref();
  }

  /** Stops between two chunks and waits for the pass in progress to get there. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One pass: partitions (PostgreSQL), then records, then rollups. */
  async runOnce(): Promise<RetentionReport> {
    const report: RetentionReport = { partitionsCreated: [], partitionsDropped: [], rowsDeleted: {}, rollupRowsDeleted: 0, blockedPartitions: [] };
    const now = this.now();
    const hasRecords = await tableExists(this.sql, 'records');
    for (const stream of BATCH_STREAMS) {
      if (this.stopping || !hasRecords) break;
      const cutoff = now - this.days[stream] * DAY_MS;
      let target: { table: string; pg: boolean } = { table: 'records', pg: this.sql.dialect === 'postgres' };
      if (this.sql.dialect === 'postgres') {
        const def = await this.maintainPartitions(stream, now, cutoff, report);
        if (def) target = { table: def, pg: true };
      }
      report.rowsDeleted[stream] = await this.deleteChunked(target.table, 'ts', cutoff, target.table === 'records' ? stream : null);
    }
    const rollupCutoff = now - this.rollupDays * DAY_MS;
    for (const table of ROLLUP_TABLES) {
      if (this.stopping) break;
      if (await tableExists(this.sql, table)) report.rollupRowsDeleted += await this.deleteChunked(table, 'hour', rollupCutoff, null);
    }
    const dropped = Object.values(report.rowsDeleted).reduce((a, b) => a + b, 0);
    if (report.partitionsDropped.length || dropped || report.rollupRowsDeleted) {
      this.log.info(
        { partitionsDropped: report.partitionsDropped, rowsDeleted: report.rowsDeleted, rollupRowsDeleted: report.rollupRowsDeleted },
        'central retention removed old data',
      );
    }
    return report;
  }

  /**
   * Creates the coming days' partitions and drops the expired ones of `records_<stream>`. Returns the name of its
   * default partition, or null when `records_<stream>` is not a partitioned table (then `records` is cleaned as one).
   */
  private async maintainPartitions(stream: RecordStream, now: number, cutoff: number, report: RetentionReport): Promise<string | null> {
    const parent = `records_${stream}`;
    const kind = await this.sql.get<{ relkind: string }>('SELECT relkind FROM pg_class WHERE oid = to_regclass(?)', [parent]);
    if (kind?.relkind !== 'p') return null;
    const today = Math.floor(now / DAY_MS) * DAY_MS;
    // One transaction per stream under a lock: several workers run retention, and only one should create or drop.
    return this.sql
      .tx(
        async (q) => {
          const parts = await partitionsOf(q, parent);
          const existing = new Set(parts.map((p) => p.name));
          for (let d = 0; d <= this.ahead; d++) {
            const from = today + d * DAY_MS;
            const name = partitionName(stream, from);
            if (existing.has(name)) continue;
            await q.exec('SAVEPOINT fw_partition');
            try {
              await q.exec(`CREATE TABLE ${name} PARTITION OF ${parent} FOR VALUES FROM (${from}) TO (${from + DAY_MS})`);
              await q.exec('RELEASE SAVEPOINT fw_partition');
              report.partitionsCreated.push(name);
            } catch (err) {
              await q.exec('ROLLBACK TO SAVEPOINT fw_partition');
              report.blockedPartitions.push(name);
              if (!this.warned.has(name)) {
                this.warned.add(name);
                this.log.warn(
                  { partition: name, err: describeError(err) },
                  'cannot create this day partition (its rows already sit in the default partition); they stay there and are deleted there when past retention',
                );
              }
            }
          }
          let defaultName: string | null = null;
          for (const p of parts) {
            if (p.bound === null) {
              defaultName = p.name;
              continue;
            }
            if (p.bound.to <= cutoff && SAFE_NAME.test(p.name)) {
              await q.exec(`DROP TABLE ${p.name}`);
              report.partitionsDropped.push(p.name);
            }
          }
          return defaultName ?? '';
        },
        { lockKey: 'forewarn-central-retention' },
      )
      .then((d) => (d === '' ? null : d));
  }

  /** Deletes rows of `table` with `col < cutoff` (and stream = `stream` when given), a chunk per transaction. */
  private async deleteChunked(table: string, col: string, cutoff: number, stream: string | null): Promise<number> {
    if (!SAFE_NAME.test(table)) throw new Error(`unexpected table name ${table}`);
    const where = `${col} < ?${stream === null ? '' : ' AND stream = ?'}`;
    const match = stream === null ? [cutoff] : [cutoff, stream];
    const pg = this.sql.dialect === 'postgres';
    const params = [...(pg ? match : []), ...match, this.chunkRows];
    // PostgreSQL has no DELETE … LIMIT: the chunk is picked by ctid, and the condition repeated, because a ctid
    // is unique only within one partition (on a partitioned `records`, the same ctid names a row in each).
    // SQLite: by rowid, or by the key of a table without one (`records`' primary key).
    const sql = pg
      ? `DELETE FROM ${table} WHERE ${where} AND ctid = ANY (ARRAY(SELECT ctid FROM ${table} WHERE ${where} LIMIT ?))`
      : table === 'records'
        ? `DELETE FROM records WHERE (agent_id, stream, seq) IN (SELECT agent_id, stream, seq FROM records WHERE ${where} LIMIT ?)`
        : `DELETE FROM ${table} WHERE rowid IN (SELECT rowid FROM ${table} WHERE ${where} LIMIT ?)`;
    let total = 0;
    while (!this.stopping) {
      const { changes } = await this.sql.tx((q) => q.run(sql, params));
      total += changes;
      if (changes < this.chunkRows) break;
      // Let the ingest's waiting transaction in between two chunks.
      await new Promise((resolve) => setImmediate(resolve));
    }
    return total;
  }
}

export function createRetention(options: RetentionOptions): Retention {
  return new Retention(options);
}

interface PartitionInfo {
  name: string;
  /** null for the default partition. */
  bound: { from: number; to: number } | null;
}

async function partitionsOf(q: SqlQueries, parent: string): Promise<PartitionInfo[]> {
  const rows = await q.all<{ name: string; bound: string }>(
    `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(?)`,
    [parent],
  );
  const out: PartitionInfo[] = [];
  for (const r of rows) {
    if (r.bound === 'DEFAULT') {
      out.push({ name: r.name, bound: null });
      continue;
    }
    // FOR VALUES FROM ('1796601600000') TO ('1796688000000'); MINVALUE/MAXVALUE bounds are never dropped.
    const m = /FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)/.exec(r.bound);
    if (m) out.push({ name: r.name, bound: { from: Number(m[1]), to: Number(m[2]) } });
  }
  return out;
}

/** Whether a table (or partitioned table) of this name exists in the store. */
export async function tableExists(q: SqlQueries, name: string): Promise<boolean> {
  const row =
    q.dialect === 'postgres'
      ? await q.get<{ n: number }>('SELECT COUNT(*) AS n FROM pg_class WHERE oid = to_regclass(?)', [name])
      : await q.get<{ n: number }>("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?", [name]);
  return (row?.n ?? 0) > 0;
}
