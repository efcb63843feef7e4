import { ApiError } from '../api/api-params.js';
import { alertsList, StoreTables, type AlertRow } from '../api/fleet-queries.js';
import type { CentralAlertRow } from '../alerts/alert-book.js';
import { alertmanagerAlert } from '../alerts/alert-messages.js';
import type { SqlClient, SqlQueries } from '../sql/sql-client.js';
import { assetFacts, assetKindFrom, failureModes, ruleKind, type AssetKind } from './failure-modes.js';
import { ensureWorkflowTables, recordAudit, type WorkflowState } from './workflow-schema.js';

/**
 * What a technician does about an alert: acknowledge it, put its asset in maintenance, resolve it with a failure
 * mode and the action taken, or mark it a false alarm. Each action applies to the alert's current episode
 * (`central_alerts.raised_ts`): an alert raised again later starts without a workflow.
 *
 * Allowed, from the episode's workflow state (none: no one acted on it yet):
 *
 * | action        | from                                  | to           |
 * | ------------- | ------------------------------------- | ------------ |
 * | acknowledge   | none (and the alert still active)     | acknowledged |
 * | maintenance   | none, acknowledged                    | maintenance  |
 * | resolve       | none, acknowledged, maintenance       | resolved     |
 * | false-alarm   | none, acknowledged, maintenance       | false_alarm  |
 *
 * Anything else is a 409 that says the current state, by whom and when. An alert its agent already cleared can
 * still be resolved or marked a false alarm (that is the label the retraining loop needs) and put in maintenance
 * (the asset is worked on), but not acknowledged: there is nothing left to acknowledge.
 *
 * The workflow row, the audit entry and the Alertmanager silences the action asks for (`alert_silences`, synced
 * by the alerting leader: alertmanager-silences.ts) are written in one transaction: all or nothing.
 */

export const ALERT_ACTIONS = ['acknowledge', 'maintenance', 'resolve', 'false-alarm'] as const;
export type AlertAction = (typeof ALERT_ACTIONS)[number];

export const DEFAULT_MAINTENANCE_MS = 8 * 3_600_000;
export const MAX_MAINTENANCE_MS = 30 * 86_400_000;
/** An acknowledgement silences the alert this long, unless maintenance or a resolution ends it sooner. */
export const ACK_SILENCE_MS = 24 * 3_600_000;
const MAX_TEXT = 2_000;

export interface AlertActionRequest {
  alertKey: string;
  action: AlertAction;
  note: string | null;
  failureMode: string | null;
  actionTaken: string | null;
  /** Maintenance only: the end of the window (ms). */
  untilTs: number | null;
}

const FROM: Record<AlertAction, ReadonlyArray<WorkflowState | null>> = {
  acknowledge: [null],
  maintenance: [null, 'acknowledged'],
  resolve: [null, 'acknowledged', 'maintenance'],
  'false-alarm': [null, 'acknowledged', 'maintenance'],
};
const TO: Record<AlertAction, WorkflowState> = {
  acknowledge: 'acknowledged',
  maintenance: 'maintenance',
  resolve: 'resolved',
  'false-alarm': 'false_alarm',
};
const FIELDS = ['alertKey', 'action', 'note', 'failureMode', 'actionTaken', 'untilTs'];

const bad = (field: string, message: string) => new ApiError(400, 'FW_ERR_WORKFLOW_ACTION', `${field}: ${message}`);

function text(body: Record<string, unknown>, field: string, required: boolean): string | null {
  const v = body[field];
  if (v === undefined || v === null || (typeof v === 'string' && v.trim() === '')) {
    if (required) throw bad(field, 'required');
    return null;
  }
  if (typeof v !== 'string') throw bad(field, `must be a string, got ${typeof v}`);
  if (v.length > MAX_TEXT) throw bad(field, `longer than ${MAX_TEXT} characters`);
  return v.trim();
}

/**
 * Checks the body of `POST /api/v1/alerts/actions` (400 `field: message` on the first problem). The failure mode is
 * checked against the asset's catalogue later, in the transaction, where the asset is known.
 */
export function parseActionRequest(body: unknown, now: number): AlertActionRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw bad('body', 'must be a JSON object');
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!FIELDS.includes(k)) throw bad(k, `unknown field (an action takes ${FIELDS.join(', ')})`);
  const alertKey = text(b, 'alertKey', true)!;
  const action = b.action;
  if (typeof action !== 'string' || !(ALERT_ACTIONS as readonly string[]).includes(action))
    throw bad('action', `must be one of ${ALERT_ACTIONS.join(', ')}, got ${JSON.stringify(action ?? null)}`);
  const a = action as AlertAction;
  const note = text(b, 'note', false);
  const failureMode = text(b, 'failureMode', a === 'resolve');
  const actionTaken = text(b, 'actionTaken', a === 'resolve');
  if (a !== 'resolve') {
    if (failureMode !== null) throw bad('failureMode', 'only a resolve takes a failure mode');
    if (actionTaken !== null) throw bad('actionTaken', 'only a resolve takes the action taken');
  }
  if (failureMode === 'other' && note === null) throw bad('note', 'required with failureMode "other": describe the failure');
  let untilTs: number | null = null;
  if (b.untilTs !== undefined && b.untilTs !== null) {
    if (a !== 'maintenance') throw bad('untilTs', 'only a maintenance takes an end time');
    const v = b.untilTs;
    untilTs = typeof v === 'number' ? v : typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(v) ? Date.parse(v) : Number.NaN;
    if (!Number.isSafeInteger(untilTs)) throw bad('untilTs', 'must be ms since the epoch or an ISO 8601 date-time');
    if (untilTs <= now) throw bad('untilTs', `must be in the future (now is ${new Date(now).toISOString()})`);
    if (untilTs > now + MAX_MAINTENANCE_MS) throw bad('untilTs', 'must be at most 30 days ahead');
  } else if (a === 'maintenance') {
    untilTs = now + DEFAULT_MAINTENANCE_MS;
  }
  return { alertKey, action: a, note, failureMode, actionTaken, untilTs };
}

export interface ActionContext {
  username: string;
  remoteAddr: string | null;
  now: number;
  tables?: StoreTables;
}

interface WorkflowRow {
  state: WorkflowState;
  updated_by: string;
  updated_ts: number;
}

const iso = (ts: number) => new Date(Number(ts)).toISOString();

function describeState(w: WorkflowRow): string {
  const word = w.state === 'false_alarm' ? 'marked a false alarm' : w.state === 'maintenance' ? 'in maintenance' : w.state;
  return `${word} by ${w.updated_by} at ${iso(w.updated_ts)}`;
}

/** The failure modes a resolve of this alert may name: its asset's kind and the kind its rule names. */
async function allowedFailureModes(q: SqlQueries, tables: StoreTables, alert: CentralAlertRow): Promise<{ kind: AssetKind; ids: Set<string> }> {
  const facts = await assetFacts(q, tables, alert.agent_id, alert.asset);
  const kind = assetKindFrom(alert.agent_id, alert.asset, facts.models, facts.rules);
  const ids = new Set(failureModes(kind).map((m) => m.id));
  const own = ruleKind(alert.rule);
  if (own) for (const m of failureModes(own)) ids.add(m.id);
  return { kind, ids };
}

/**
 * Applies one action (parsed by parseActionRequest) and returns the alert row with its new workflow. Throws
 * ApiError FW_ERR_WORKFLOW_ACTION: 404 for an unknown alert, 400 for a failure mode outside the catalogue, 409
 * for a transition the state does not allow.
 */
export async function applyAlertAction(sql: SqlClient, req: AlertActionRequest, ctx: ActionContext): Promise<AlertRow> {
  await ensureWorkflowTables(sql);
  const tables = ctx.tables ?? new StoreTables();
  const { now, username } = ctx;
  const found = await sql.tx(
    async (q) => {
      const alert = (await tables.has(q, 'central_alerts'))
        ? await q.get<CentralAlertRow>('SELECT * FROM central_alerts WHERE alert_key = ?', [req.alertKey])
        : undefined;
      if (!alert) return false;
      const raisedTs = Number(alert.raised_ts);
      const current = await q.get<WorkflowRow>('SELECT state, updated_by, updated_ts FROM alert_workflow WHERE alert_key = ? AND raised_ts = ?', [
        req.alertKey,
        raisedTs,
      ]);
      const from = current?.state ?? null;
      if (!FROM[req.action].includes(from)) {
        throw new ApiError(
          409,
          'FW_ERR_WORKFLOW_ACTION',
          `alert ${req.alertKey}: already ${describeState(current!)}; ${req.action} is allowed only from ${FROM[req.action].map((s) => s ?? 'no action yet').join(', ')}`,
        );
      }
      if (req.action === 'acknowledge' && alert.state !== 'active') {
        throw new ApiError(
          409,
          'FW_ERR_WORKFLOW_ACTION',
          `alert ${req.alertKey}: cleared by its agent at ${iso(alert.resolved_ts ?? alert.updated_ts)}, nothing to acknowledge; resolve it or mark it a false alarm to record what it was`,
        );
      }
      if (req.failureMode !== null) {
        const allowed = await allowedFailureModes(q, tables, alert);
        if (!allowed.ids.has(req.failureMode)) {
          throw bad('failureMode', `"${req.failureMode}" is not a failure mode of a ${allowed.kind} asset (${[...allowed.ids].join(', ')})`);
        }
      }
      const to = TO[req.action];
      const until = req.action === 'maintenance' ? req.untilTs : null;
      await q.run(
        `INSERT INTO alert_workflow (alert_key, raised_ts, state, updated_by, updated_ts, note, failure_mode, action_taken, maintenance_until)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (alert_key, raised_ts) DO UPDATE SET state = excluded.state, updated_by = excluded.updated_by,
           updated_ts = excluded.updated_ts, note = excluded.note, failure_mode = excluded.failure_mode,
           action_taken = excluded.action_taken, maintenance_until = excluded.maintenance_until`,
        [req.alertKey, raisedTs, to, username, now, req.note, req.failureMode, req.actionTaken, until],
      );
      await silenceWork(q, alert, req, username, now);
      await recordAudit(q, {
        ts: now,
        username,
        action: `alert.${req.action}`,
        target: req.alertKey,
        remoteAddr: ctx.remoteAddr,
        details: {
          raisedTs,
          agentId: alert.agent_id,
          asset: alert.asset,
          rule: alert.rule,
          from,
          to,
          ...(req.note !== null ? { note: req.note } : {}),
          ...(req.failureMode !== null ? { failureMode: req.failureMode } : {}),
          ...(req.actionTaken !== null ? { actionTaken: req.actionTaken } : {}),
          ...(until !== null ? { untilTs: until } : {}),
        },
      });
      return true;
    },
    // Two operators acting on one alert at once: the second reads the first one's state (PostgreSQL).
    { lockKey: `alert-workflow:${req.alertKey}` },
  );
  if (!found) throw new ApiError(404, 'FW_ERR_WORKFLOW_ACTION', `alertKey: central knows no alert ${req.alertKey}`);
  const [row] = await alertsList(sql, tables, { state: null, agentId: null, asset: null, severity: null, alertKey: req.alertKey, before: null, limit: 1 });
  return row!;
}

/**
 * The silences the action asks of Alertmanager, as wishes the alerting leader carries out: an acknowledgement
 * silences the alert's own labels (exactly those the router sends) for ACK_SILENCE_MS; maintenance ends that
 * and silences every alert of the agent and asset until its end; a resolution or false alarm ends every silence
 * of the episode.
 */
async function silenceWork(q: SqlQueries, alert: CentralAlertRow, req: AlertActionRequest, username: string, now: number): Promise<void> {
  const raisedTs = Number(alert.raised_ts);
  const expire = (purpose: string | null) =>
    q.run(
      `UPDATE alert_silences SET wanted = 'expired', changed_ts = ? WHERE alert_key = ? AND raised_ts = ? AND wanted = 'active'${purpose ? ' AND purpose = ?' : ''}`,
      purpose ? [now, alert.alert_key, raisedTs, purpose] : [now, alert.alert_key, raisedTs],
    );
  const want = (purpose: string, labels: Record<string, string>, endsTs: number, what: string) =>
    q.run(
      `INSERT INTO alert_silences (alert_key, raised_ts, purpose, matchers, starts_ts, ends_ts, created_by, comment, wanted, changed_ts)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active', ?)
       ON CONFLICT (alert_key, raised_ts, purpose) DO UPDATE SET matchers = excluded.matchers, starts_ts = excluded.starts_ts,
         ends_ts = excluded.ends_ts, created_by = excluded.created_by, comment = excluded.comment, wanted = 'active', changed_ts = excluded.changed_ts`,
      [
        alert.alert_key,
        raisedTs,
        purpose,
        JSON.stringify(Object.entries(labels).map(([name, value]) => ({ name, value, isRegex: false, isEqual: true }))),
        now,
        endsTs,
        username,
        `Forewarn: ${what} by ${username}${req.note ? `: ${req.note}` : ''} (${alert.alert_key})`,
        now,
      ],
    );
  if (req.action === 'acknowledge') {
    await want('acknowledge', alertmanagerAlert(alert, now, 0).labels, now + ACK_SILENCE_MS, 'acknowledged');
  } else if (req.action === 'maintenance') {
    await expire('acknowledge');
    // Every alert of the asset; for an alert without an asset (agent offline), every alert of the agent.
    const labels: Record<string, string> = { agent: alert.agent_id };
    if (alert.asset) labels.asset = alert.asset;
    const where = alert.asset ? `${alert.agent_id}/${alert.asset}` : alert.agent_id;
    await want('maintenance', labels, req.untilTs!, `${where} in maintenance until ${iso(req.untilTs!)}`);
  } else {
    await expire(null);
  }
}
