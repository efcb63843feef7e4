import { ensureSchemaTable, migrateComponent, MIGRATION_LOCK, type Migration } from '../sql/migrations.js';
import type { SqlClient, SqlQueries } from '../sql/sql-client.js';

/**
 * The tables of the alert workflow (what technicians did about alerts) and of the console's audit log.
 *
 * - `alert_workflow`: one row per alert episode (alert_key, raised_ts: the episode of `central_alerts` it answers)
 *   with its workflow state: `acknowledged`, `maintenance` (until maintenance_until), `resolved` (failure_mode,
 *   action_taken) or `false_alarm`; who changed it last and when, the note, and the Alertmanager silence ids
 *   created for it (JSON array). A new episode of the same alert (raised again later) starts without a row.
 * - `audit_log`: every change a person made through the console or the CLI (logins, alert actions, user
 *   changes), append-only: id, ts, username, action, target, details (JSON), remote_addr.
 * - `alert_silences` (v2): the Alertmanager silences the workflow wants, per alert episode and purpose
 *   (`acknowledge`: the alert's labels; `maintenance`: every alert of its agent and asset): matchers (JSON),
 *   starts_ts, ends_ts, created_by, comment, and `wanted` (`active` | `expired`). Written in the action's
 *   transaction, so the work survives an Alertmanager outage and a restart of central.
 * - `alert_silence_receivers` (v2): what each Alertmanager holds of it: the silence id and its state (`active`,
 *   `expired`, or `rejected` when Alertmanager refused it), written by the alerting leader as it syncs.
 */

export const WORKFLOW_COMPONENT = 'central-workflow';

export type WorkflowState = 'acknowledged' | 'maintenance' | 'resolved' | 'false_alarm';

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    async up(q) {
      const big = q.dialect === 'postgres' ? 'BIGINT' : 'INTEGER';
      const id = q.dialect === 'postgres' ? 'BIGSERIAL PRIMARY KEY' : 'INTEGER PRIMARY KEY AUTOINCREMENT';
      await q.exec(`
        CREATE TABLE alert_workflow (
          alert_key TEXT NOT NULL, raised_ts ${big} NOT NULL, state TEXT NOT NULL,
          updated_by TEXT NOT NULL, updated_ts ${big} NOT NULL, note TEXT,
          failure_mode TEXT, action_taken TEXT, maintenance_until ${big}, silence_ids TEXT NOT NULL DEFAULT '[]',
          PRIMARY KEY (alert_key, raised_ts)
        );
        CREATE INDEX alert_workflow_state ON alert_workflow (state, updated_ts);
        CREATE TABLE audit_log (
          id ${id}, ts ${big} NOT NULL, username TEXT NOT NULL, action TEXT NOT NULL, target TEXT,
          details TEXT NOT NULL DEFAULT '{}', remote_addr TEXT
        );
        CREATE INDEX audit_log_ts ON audit_log (ts);
      `);
    },
  },
  {
    version: 2,
    async up(q) {
      const big = q.dialect === 'postgres' ? 'BIGINT' : 'INTEGER';
      await q.exec(`
        CREATE TABLE alert_silences (
          alert_key TEXT NOT NULL, raised_ts ${big} NOT NULL, purpose TEXT NOT NULL, matchers TEXT NOT NULL,
          starts_ts ${big} NOT NULL, ends_ts ${big} NOT NULL, created_by TEXT NOT NULL, comment TEXT NOT NULL,
          wanted TEXT NOT NULL, changed_ts ${big} NOT NULL,
          PRIMARY KEY (alert_key, raised_ts, purpose)
        );
        CREATE INDEX alert_silences_wanted ON alert_silences (wanted, ends_ts);
        CREATE TABLE alert_silence_receivers (
          alert_key TEXT NOT NULL, raised_ts ${big} NOT NULL, purpose TEXT NOT NULL, receiver TEXT NOT NULL,
          silence_id TEXT, state TEXT NOT NULL, updated_ts ${big} NOT NULL, last_error TEXT,
          PRIMARY KEY (alert_key, raised_ts, purpose, receiver)
        );
      `);
    },
  },
];

/** Creates or upgrades the workflow and audit tables (idempotent; safe from several workers at once). */
export async function migrateWorkflow(sql: SqlClient): Promise<void> {
  await sql.tx(
    async (q) => {
      await ensureSchemaTable(q);
      await migrateComponent(q, WORKFLOW_COMPONENT, MIGRATIONS);
    },
    { lockKey: MIGRATION_LOCK },
  );
}

export interface AuditEntry {
  ts: number;
  username: string;
  /** e.g. `login`, `login-failed`, `logout`, `alert.acknowledge`, `alert.resolve`, `user.add`. */
  action: string;
  target?: string | null;
  details?: Record<string, unknown>;
  remoteAddr?: string | null;
}

/** Appends one entry to the audit log (inside the caller's transaction when given one). */
export async function recordAudit(q: SqlQueries, e: AuditEntry): Promise<void> {
  await q.run('INSERT INTO audit_log (ts, username, action, target, details, remote_addr) VALUES (?, ?, ?, ?, ?, ?)', [
    e.ts,
    e.username,
    e.action,
    e.target ?? null,
    JSON.stringify(e.details ?? {}),
    e.remoteAddr ?? null,
  ]);
}

const migrated = new WeakMap<SqlClient, Promise<void>>();

/** migrateWorkflow once per client (the actions, the routes and the router each call it before their first use). */
export function ensureWorkflowTables(sql: SqlClient): Promise<void> {
  let done = migrated.get(sql);
  if (!done) {
    done = migrateWorkflow(sql);
    migrated.set(sql, done);
    done.catch(() => migrated.delete(sql));
  }
  return done;
}
