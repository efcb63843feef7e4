import type { ErrorCode } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { BatchRecord } from '../decode-batch.js';
import type { CentralProjection, IngestedBatch } from '../projection.js';
import { ensureSchemaTable, migrateComponent, MIGRATION_LOCK, type Migration } from '../sql/migrations.js';
import type { SqlClient, SqlQueries } from '../sql/sql-client.js';

/**
 * The alert book: every alert central knows, the agents' own (stream `alerts`) and central's fleet alerts, one
 * row per alert in `central_alerts`, and what was delivered to whom in `alert_routes`.
 *
 * - `central_alerts`: alert_key (`agent/<agentId>/<alertId>` or `fleet/<rule>/<subject>`), origin (`agent` |
 *   `fleet`), agent_id, asset, subject, rule, severity, title, state (`active` | `resolved`), raised_ts and
 *   resolved_ts (the alert's own times: the agent's clock for its alerts), updated_ts (when central last changed
 *   the row), value, evidence (JSON), remedy. A row holds the alert's latest episode: raised again after a clear,
 *   it is active again under a later raised_ts.
 * - `alert_routes`: per (alert_key, receiver), the episode (raised_ts) and state (`firing` | `resolved`) last
 *   delivered, when, and the last error a receiver answered with.
 * - `alert_receivers`: each receiver and when central first routed to it; an alert that was over before then is
 *   not sent to it, so adding a receiver does not replay history.
 * - `central_fleet_versions`: each agent version the fleet has reported and when it was first seen (the
 *   version-skew rule counts from it).
 *
 * Agents' records are paired on alertId and ordered by raisedTs, never by arrival: a row's raised_ts only grows,
 * and for one raised_ts `resolved` wins over `active`. Any order and any repetition of the same records therefore
 * ends in the same row: a cleared that arrives before its raised (seqs repaired after a gap) stays resolved.
 */

export const ALERT_BOOK_COMPONENT = 'central-alerts';
/** Logged and counted when an agent's alert record lacks what the book needs; it stays in the ledger. */
export const ALERT_RECORD_ERROR: ErrorCode = 'FW_ERR_ALERT_RECORD';

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    async up(q) {
      const big = q.dialect === 'postgres' ? 'BIGINT' : 'INTEGER';
      const real = q.dialect === 'postgres' ? 'DOUBLE PRECISION' : 'REAL';
      await q.exec(`
        CREATE TABLE central_alerts (
          alert_key TEXT PRIMARY KEY, origin TEXT NOT NULL, agent_id TEXT NOT NULL, asset TEXT, subject TEXT,
          rule TEXT NOT NULL, severity TEXT NOT NULL, title TEXT NOT NULL, state TEXT NOT NULL,
          raised_ts ${big} NOT NULL, resolved_ts ${big}, updated_ts ${big} NOT NULL, value ${real},
          evidence TEXT NOT NULL, remedy TEXT NOT NULL
        );
        CREATE INDEX central_alerts_state ON central_alerts (state, raised_ts);
        CREATE INDEX central_alerts_agent_asset ON central_alerts (agent_id, asset);
        CREATE INDEX central_alerts_changed ON central_alerts (state, updated_ts);
        CREATE TABLE alert_routes (
          alert_key TEXT NOT NULL, receiver TEXT NOT NULL, raised_ts ${big} NOT NULL, state TEXT NOT NULL,
          delivered_ts ${big} NOT NULL, last_error TEXT, PRIMARY KEY (alert_key, receiver)
        );
        CREATE INDEX alert_routes_receiver ON alert_routes (receiver, state);
        CREATE TABLE alert_receivers (receiver TEXT PRIMARY KEY, first_seen_ts ${big} NOT NULL);
        CREATE TABLE central_fleet_versions (version TEXT PRIMARY KEY, first_seen_ts ${big} NOT NULL);
      `);
    },
  },
];

/** A row of `central_alerts`, as the router and the API read it. */
export interface CentralAlertRow {
  alert_key: string;
  origin: 'agent' | 'fleet';
  agent_id: string;
  asset: string | null;
  subject: string | null;
  rule: string;
  severity: string;
  title: string;
  state: 'active' | 'resolved';
  raised_ts: number;
  resolved_ts: number | null;
  updated_ts: number;
  value: number | null;
  evidence: string;
  remedy: string;
}

/** One alert, raised or resolved, to write into the book. */
export interface AlertEntry {
  key: string;
  origin: 'agent' | 'fleet';
  agentId: string;
  asset: string | null;
  subject: string | null;
  rule: string;
  severity: string;
  title: string;
  state: 'active' | 'resolved';
  raisedTs: number;
  resolvedTs: number | null;
  /** When central changes the row (its receive or evaluation time). */
  updatedTs: number;
  value: number | null;
  evidence: Record<string, unknown>;
  remedy: string;
}

/**
 * Writes one alert episode, keeping the later one: a newer raised_ts replaces the row; at the same raised_ts a
 * resolution replaces an active row and anything replaces its own state (new evidence); an older one changes
 * nothing. Returns whether the row changed.
 */
export async function writeAlert(q: SqlQueries, e: AlertEntry): Promise<boolean> {
  const { changes } = await q.run(
    `INSERT INTO central_alerts (alert_key, origin, agent_id, asset, subject, rule, severity, title, state, raised_ts, resolved_ts, updated_ts, value, evidence, remedy)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (alert_key) DO UPDATE SET
       asset = excluded.asset, subject = excluded.subject, rule = excluded.rule, severity = excluded.severity, title = excluded.title,
       state = excluded.state, raised_ts = excluded.raised_ts, resolved_ts = excluded.resolved_ts, updated_ts = excluded.updated_ts,
       value = excluded.value, evidence = excluded.evidence, remedy = excluded.remedy
     WHERE central_alerts.raised_ts < excluded.raised_ts
        OR (central_alerts.raised_ts = excluded.raised_ts AND (central_alerts.state = 'active' OR excluded.state = 'resolved'))`,
    [
      e.key,
      e.origin,
      e.agentId,
      e.asset,
      e.subject,
      e.rule,
      e.severity,
      e.title,
      e.state,
      e.raisedTs,
      e.resolvedTs,
      e.updatedTs,
      e.value,
      JSON.stringify(e.evidence),
      e.remedy,
    ],
  );
  return changes > 0;
}

/** Runs the alert book's migrations (idempotent; the ingest runs them too, as a projection's). */
export async function migrateAlertBook(sql: SqlClient): Promise<void> {
  await sql.tx(
    async (q) => {
      await ensureSchemaTable(q);
      await migrateComponent(q, ALERT_BOOK_COMPONENT, MIGRATIONS);
    },
    { lockKey: MIGRATION_LOCK },
  );
}

export interface AlertBookStats {
  /** Agents' alert records written into the book (raised and cleared). */
  applied: number;
  /** Records that lacked a field the book needs (logged with FW_ERR_ALERT_RECORD); they stay in the ledger. */
  malformed: number;
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 ? v : null;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** An agent's alert record as an entry of the book, or a description of what it lacks. */
export function agentAlertEntry(agentId: string, r: BatchRecord, receivedTs: number): AlertEntry | string {
  const alertId = str(r.alertId);
  const rule = str(r.rule);
  const raisedTs = num(r.raisedTs);
  const state = r.state === 'raised' ? 'active' : r.state === 'cleared' ? 'resolved' : null;
  if (!alertId) return 'alertId is missing';
  if (!state) return `state must be raised or cleared, not ${JSON.stringify(r.state)}`;
  if (!rule) return 'rule is missing';
  if (raisedTs === null) return 'raisedTs is missing';
  const evidence = r.evidence !== null && typeof r.evidence === 'object' && !Array.isArray(r.evidence) ? (r.evidence as Record<string, unknown>) : {};
  return {
    key: `agent/${agentId}/${alertId}`,
    origin: 'agent',
    agentId,
    asset: str(r.asset),
    subject: str(r.subject),
    rule,
    severity: str(r.severity) ?? 'warning',
    title: str(r.title) ?? rule,
    state,
    raisedTs,
    resolvedTs: state === 'resolved' ? r.ts : null,
    updatedTs: receivedTs,
    value: num(r.value),
    evidence,
    remedy: str(r.remedy) ?? '',
  };
}

/** The alert book as a projection of the agents' `alerts` stream. */
export class AlertBook implements CentralProjection {
  readonly name = ALERT_BOOK_COMPONENT;
  readonly migrations = MIGRATIONS;
  readonly stats: AlertBookStats = { applied: 0, malformed: 0 };

  constructor(private readonly log?: Logger) {}

  async applyBatch(q: SqlQueries, batch: IngestedBatch): Promise<void> {
    if (batch.stream !== 'alerts') return;
    for (const r of batch.records) {
      const entry = agentAlertEntry(batch.agentId, r, batch.receivedTs);
      if (typeof entry === 'string') {
        // Never throw here: that would roll back the ingest of the whole batch, and the broker would redeliver it forever.
        this.stats.malformed++;
        this.log?.warn({ code: ALERT_RECORD_ERROR, agentId: batch.agentId, seq: r.seq, err: entry }, 'alert record not added to the alert book');
        continue;
      }
      await writeAlert(q, entry);
      this.stats.applied++;
    }
  }
}
