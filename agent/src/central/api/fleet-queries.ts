import { ASSET_STATES, assetState, relativeRisk, type AlertLike, type AssetState } from '../fleet/asset-state.js';
import { tableExists } from '../fleet/retention.js';
import type { SqlQueries, SqlValue } from '../sql/sql-client.js';

/**
 * The read queries behind the HTTP API (and the query benchmark), over the fleet read model: `fleet_agents` and
 * `fleet_assets` (fleet-registry.ts), `fleet_latest_risk` and the hourly rollups (fleet/fleet-projection.ts), the
 * ledger's `records`, `streams` and `gaps`, `central_alerts` (alert routing) and `alert_workflow` (what technicians
 * did about each alert episode). Tables of components that are not installed in this store read as empty, so the
 * API works on a store that has only some of them.
 */

export interface LatestRiskRow {
  agentId: string;
  asset: string;
  model: string;
  kind: string;
  score: number;
  threshold: number | null;
  atRisk: boolean;
  ts: number;
  relativeRisk: number;
}

/** One asset's view adds what the fleet-wide scan leaves out. */
export interface LatestRiskDetail extends LatestRiskRow {
  modelVersion: string;
  readingTs: number;
  drivers: unknown;
}

export interface AssetView {
  agentId: string;
  asset: string;
  state: AssetState;
  /** The highest relative risk of its models (1 = at a threshold); 0 without a model. */
  risk: number;
  firstSeenTs: number | null;
  lastSeenTs: number | null;
  lastReadingTs: number | null;
  models: LatestRiskRow[];
  activeAlerts: Record<string, number>;
}

export interface AlertRow {
  alertKey: string;
  origin: string;
  agentId: string | null;
  asset: string | null;
  rule: string;
  severity: string;
  title: string;
  state: string;
  raisedTs: number;
  resolvedTs: number | null;
  updatedTs: number;
  value: number | null;
  evidence: unknown;
  remedy: string;
  /** What technicians did about this episode (alert_workflow), or null while no one has acted on it. */
  workflow: AlertWorkflow | null;
}

export interface AlertWorkflow {
  state: 'acknowledged' | 'maintenance' | 'resolved' | 'false_alarm';
  by: string;
  ts: number;
  note: string | null;
  failureMode: string | null;
  actionTaken: string | null;
  /** The end of a maintenance window (ms), null for the other states. */
  until: number | null;
}

type Row = Record<string, unknown>;
const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** Which optional tables this store has; a table that exists stays (only absent ones are asked again). */
export class StoreTables {
  private readonly present = new Set<string>();
  async has(q: SqlQueries, table: string): Promise<boolean> {
    if (this.present.has(table)) return true;
    const yes = await tableExists(q, table);
    if (yes) this.present.add(table);
    return yes;
  }
}

function latestRow(r: Row): LatestRiskRow {
  const row = {
    agentId: String(r.agent_id),
    asset: String(r.asset),
    model: String(r.model),
    kind: String(r.kind),
    score: num(r.score),
    threshold: numOrNull(r.threshold),
    atRisk: num(r.at_risk) === 1,
    ts: num(r.ts),
    relativeRisk: 0,
  };
  row.relativeRisk = relativeRisk(row);
  return row;
}

/**
 * Only what the state and the list need: at 10,000 assets the time goes into sending and decoding rows, not the
 * scan (docs/benchmarks.md, "Central queries"), so the version, reading time and drivers stay in the detail.
 */
const LATEST_COLUMNS = 'agent_id, asset, model, kind, score, threshold, at_risk, ts';

/** The query behind fleetLatestRisk (the benchmark explains it). */
export const FLEET_LATEST_RISK_SQL = `SELECT ${LATEST_COLUMNS} FROM fleet_latest_risk`;

/** The latest risk of every asset and model across the fleet: one scan of one small table. */
export async function fleetLatestRisk(q: SqlQueries, tables: StoreTables): Promise<LatestRiskRow[]> {
  if (!(await tables.has(q, 'fleet_latest_risk'))) return [];
  return (await q.all<Row>(FLEET_LATEST_RISK_SQL)).map(latestRow);
}

/** Active alerts per (agent, asset), severity and workflow state of their episode. */
async function activeAlertCounts(
  q: SqlQueries,
  tables: StoreTables,
): Promise<Array<{ agentId: string | null; asset: string | null; severity: string; workflow: string | null; until: number | null; n: number }>> {
  if (!(await tables.has(q, 'central_alerts'))) return [];
  const rows = (await tables.has(q, 'alert_workflow'))
    ? await q.all<Row>(
        `SELECT a.agent_id, a.asset, a.severity, w.state AS workflow, w.maintenance_until AS until, COUNT(*) AS n
           FROM central_alerts a LEFT JOIN alert_workflow w ON w.alert_key = a.alert_key AND w.raised_ts = a.raised_ts
          WHERE a.state = 'active' GROUP BY a.agent_id, a.asset, a.severity, w.state, w.maintenance_until`,
      )
    : await q.all<Row>("SELECT agent_id, asset, severity, COUNT(*) AS n FROM central_alerts WHERE state = 'active' GROUP BY agent_id, asset, severity");
  return rows.map((r) => ({
    agentId: r.agent_id === null ? null : String(r.agent_id),
    asset: r.asset === null ? null : String(r.asset),
    severity: String(r.severity),
    workflow: r.workflow === null || r.workflow === undefined ? null : String(r.workflow),
    until: numOrNull(r.until),
    n: num(r.n),
  }));
}

const assetKey = (agentId: string, asset: string) => `${agentId}\u0000${asset}`;

/**
 * Every asset with its state, from the registry, the latest risk, the active alerts and their workflow (`now`
 * decides whether a maintenance window is still open). `activeAlerts` counts the alerts as their agents report
 * them, including those a technician closed.
 */
export async function fleetAssets(q: SqlQueries, tables: StoreTables, now: number = Date.now()): Promise<AssetView[]> {
  const assets = new Map<string, AssetView>();
  const alertsOf = new Map<AssetView, AlertLike[]>();
  const get = (agentId: string, asset: string): AssetView => {
    const k = assetKey(agentId, asset);
    let a = assets.get(k);
    if (!a) {
      a = { agentId, asset, state: 'healthy', risk: 0, firstSeenTs: null, lastSeenTs: null, lastReadingTs: null, models: [], activeAlerts: {} };
      assets.set(k, a);
    }
    return a;
  };
  if (await tables.has(q, 'fleet_assets')) {
    for (const r of await q.all<Row>('SELECT agent_id, asset, first_seen_ts, last_seen_ts, last_reading_ts FROM fleet_assets')) {
      const a = get(String(r.agent_id), String(r.asset));
      a.firstSeenTs = num(r.first_seen_ts);
      a.lastSeenTs = num(r.last_seen_ts);
      a.lastReadingTs = num(r.last_reading_ts);
    }
  }
  for (const r of await fleetLatestRisk(q, tables)) get(r.agentId, r.asset).models.push(r);
  for (const c of await activeAlertCounts(q, tables)) {
    // Alerts without an asset (an agent offline, version skew) belong to the agent, not to an asset.
    if (c.agentId === null || c.asset === null) continue;
    const a = get(c.agentId, c.asset);
    a.activeAlerts[c.severity] = (a.activeAlerts[c.severity] ?? 0) + c.n;
    let list = alertsOf.get(a);
    if (!list) alertsOf.set(a, (list = []));
    list.push({ severity: c.severity, workflow: c.workflow, until: c.until });
  }
  for (const a of assets.values()) {
    a.models.sort((x, y) => (x.model < y.model ? -1 : x.model > y.model ? 1 : 0));
    a.risk = a.models.reduce((m, r) => Math.max(m, r.relativeRisk), 0);
    a.state = assetState(a.models, alertsOf.get(a) ?? [], now);
  }
  return [...assets.values()];
}

export interface FleetSummary {
  agents: { total: number; online: number; offline: number; unknown: number };
  assets: { total: number } & Record<AssetState, number>;
  activeAlerts: { total: number; bySeverity: Record<string, number> };
}

export async function fleetSummary(q: SqlQueries, tables: StoreTables, now: number = Date.now()): Promise<FleetSummary> {
  const agents = { total: 0, online: 0, offline: 0, unknown: 0 };
  if (await tables.has(q, 'fleet_agents')) {
    for (const r of await q.all<Row>('SELECT state, COUNT(*) AS n FROM fleet_agents GROUP BY state')) {
      const n = num(r.n);
      agents.total += n;
      if (r.state === 'online') agents.online += n;
      else if (r.state === 'offline') agents.offline += n;
      else agents.unknown += n;
    }
  }
  const assets = { total: 0, ...(Object.fromEntries(ASSET_STATES.map((s) => [s, 0])) as Record<AssetState, number>) };
  for (const a of await fleetAssets(q, tables, now)) {
    assets.total++;
    assets[a.state]++;
  }
  const bySeverity: Record<string, number> = {};
  let total = 0;
  for (const c of await activeAlertCounts(q, tables)) {
    bySeverity[c.severity] = (bySeverity[c.severity] ?? 0) + c.n;
    total += c.n;
  }
  return { agents, assets, activeAlerts: { total, bySeverity } };
}

export interface AgentView {
  agentId: string;
  state: string;
  stateTs: number | null;
  reason: string | null;
  version: string | null;
  bootSeq: number | null;
  firstSeenTs: number;
  lastSeenTs: number;
  /** Per stream: the highest seq received, how many received, and how many below it are still missing. */
  streams: Record<string, { highestSeq: number | null; received: number | null; missing: number; gaps: number }>;
}

/** Agents in agent_id order, `limit` after `after`. */
export async function fleetAgents(
  q: SqlQueries,
  tables: StoreTables,
  opts: { after: string | null; limit: number; state: string | null },
): Promise<AgentView[]> {
  if (!(await tables.has(q, 'fleet_agents'))) return [];
  const where: string[] = [];
  const params: SqlValue[] = [];
  if (opts.after !== null) {
    where.push('agent_id > ?');
    params.push(opts.after);
  }
  if (opts.state === 'unknown') where.push("(state IS NULL OR state NOT IN ('online', 'offline'))");
  else if (opts.state !== null) {
    where.push('state = ?');
    params.push(opts.state);
  }
  const rows = await q.all<Row>(
    `SELECT agent_id, state, state_ts, reason, version, boot_seq, first_seen_ts, last_seen_ts FROM fleet_agents
     ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY agent_id LIMIT ?`,
    [...params, opts.limit],
  );
  const agents = rows.map<AgentView>((r) => ({
    agentId: String(r.agent_id),
    state: r.state === 'online' || r.state === 'offline' ? r.state : 'unknown',
    stateTs: numOrNull(r.state_ts),
    reason: r.reason === null ? null : String(r.reason),
    version: r.version === null ? null : String(r.version),
    bootSeq: numOrNull(r.boot_seq),
    firstSeenTs: num(r.first_seen_ts),
    lastSeenTs: num(r.last_seen_ts),
    streams: {},
  }));
  if (!agents.length) return agents;
  const byId = new Map(agents.map((a) => [a.agentId, a]));
  const first = agents[0]!.agentId;
  const last = agents[agents.length - 1]!.agentId;
  const stream = (a: AgentView, s: string) => (a.streams[s] ??= { highestSeq: null, received: null, missing: 0, gaps: 0 });
  // The ledger's bookkeeping for this page of agents (a range of agent ids: one indexed scan per table).
  if (await tables.has(q, 'streams')) {
    for (const r of await q.all<Row>('SELECT agent_id, stream, highest_seq, received FROM streams WHERE agent_id BETWEEN ? AND ?', [first, last])) {
      const a = byId.get(String(r.agent_id));
      if (!a) continue;
      Object.assign(stream(a, String(r.stream)), { highestSeq: numOrNull(r.highest_seq), received: numOrNull(r.received) });
    }
  }
  if (await tables.has(q, 'gaps')) {
    const rows = await q.all<Row>(
      'SELECT agent_id, stream, COUNT(*) AS gaps, SUM(to_seq - from_seq + 1) AS missing FROM gaps WHERE agent_id BETWEEN ? AND ? GROUP BY agent_id, stream',
      [first, last],
    );
    for (const r of rows) {
      const a = byId.get(String(r.agent_id));
      if (a) Object.assign(stream(a, String(r.stream)), { gaps: num(r.gaps), missing: num(r.missing) });
    }
  }
  return agents;
}

/** One asset in detail, or null when central has never heard of it. */
export async function assetDetail(
  q: SqlQueries,
  tables: StoreTables,
  agentId: string,
  asset: string,
  now: number = Date.now(),
): Promise<(Omit<AssetView, 'models'> & { models: LatestRiskDetail[]; alerts: AlertRow[] }) | null> {
  let reg: Row | undefined;
  if (await tables.has(q, 'fleet_assets')) {
    reg = await q.get<Row>('SELECT first_seen_ts, last_seen_ts, last_reading_ts FROM fleet_assets WHERE agent_id = ? AND asset = ?', [agentId, asset]);
  }
  const models = (await tables.has(q, 'fleet_latest_risk'))
    ? (
        await q.all<Row>(
          `SELECT ${LATEST_COLUMNS}, model_version, reading_ts, drivers FROM fleet_latest_risk WHERE agent_id = ? AND asset = ? ORDER BY model`,
          [agentId, asset],
        )
      ).map<LatestRiskDetail>((r) => ({
        ...latestRow(r),
        modelVersion: String(r.model_version),
        readingTs: num(r.reading_ts),
        drivers: JSON.parse(String(r.drivers)) as unknown,
      }))
    : [];
  const alerts = await alertsList(q, tables, { state: 'active', agentId, asset, severity: null, before: null, limit: 1000 });
  if (!reg && !models.length && !alerts.length) return null;
  const activeAlerts: Record<string, number> = {};
  for (const a of alerts) activeAlerts[a.severity] = (activeAlerts[a.severity] ?? 0) + 1;
  return {
    agentId,
    asset,
    state: assetState(
      models,
      alerts.map((a) => ({ severity: a.severity, workflow: a.workflow?.state ?? null, until: a.workflow?.until ?? null })),
      now,
    ),
    risk: models.reduce((m, r) => Math.max(m, r.relativeRisk), 0),
    firstSeenTs: reg ? num(reg.first_seen_ts) : null,
    lastSeenTs: reg ? num(reg.last_seen_ts) : null,
    lastReadingTs: reg ? num(reg.last_reading_ts) : null,
    models,
    activeAlerts,
    alerts,
  };
}

export interface AlertFilter {
  state: string | null;
  agentId: string | null;
  asset: string | null;
  severity: string | null;
  /** One alert (the workflow's answer to an action). */
  alertKey?: string;
  /** Paging, newest first: alerts raised before this (raised_ts, alert_key). */
  before: [number, string] | null;
  limit: number;
}

export async function alertsList(q: SqlQueries, tables: StoreTables, f: AlertFilter): Promise<AlertRow[]> {
  if (!(await tables.has(q, 'central_alerts'))) return [];
  const where: string[] = [];
  const params: SqlValue[] = [];
  const eq = (col: string, v: string | null) => {
    if (v === null) return;
    where.push(`${col} = ?`);
    params.push(v);
  };
  eq('a.state', f.state);
  eq('a.agent_id', f.agentId);
  eq('a.asset', f.asset);
  eq('a.severity', f.severity);
  eq('a.alert_key', f.alertKey ?? null);
  if (f.before) {
    where.push('(a.raised_ts < ? OR (a.raised_ts = ? AND a.alert_key < ?))');
    params.push(f.before[0], f.before[0], f.before[1]);
  }
  // The workflow of the alert's current episode: a row of an earlier episode (raised again since) does not join.
  const workflow = await tables.has(q, 'alert_workflow');
  const rows = await q.all<Row>(
    `SELECT a.alert_key, a.origin, a.agent_id, a.asset, a.rule, a.severity, a.title, a.state, a.raised_ts, a.resolved_ts, a.updated_ts,
            a.value, a.evidence, a.remedy${workflow ? WORKFLOW_COLUMNS : ''}
       FROM central_alerts a${workflow ? ' LEFT JOIN alert_workflow w ON w.alert_key = a.alert_key AND w.raised_ts = a.raised_ts' : ''}
       ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY a.raised_ts DESC, a.alert_key DESC LIMIT ?`,
    [...params, f.limit],
  );
  return rows.map((r) => {
    let evidence: unknown = r.evidence;
    try {
      evidence = JSON.parse(String(r.evidence));
    } catch {
      // kept as text: the alerts table is another component's, and its evidence may be plain text
    }
    return {
      alertKey: String(r.alert_key),
      origin: String(r.origin),
      agentId: r.agent_id === null ? null : String(r.agent_id),
      asset: r.asset === null ? null : String(r.asset),
      rule: String(r.rule),
      severity: String(r.severity),
      title: String(r.title),
      state: String(r.state),
      raisedTs: num(r.raised_ts),
      resolvedTs: numOrNull(r.resolved_ts),
      updatedTs: num(r.updated_ts),
      value: numOrNull(r.value),
      evidence,
      remedy: String(r.remedy),
      workflow: r.wf_state === null || r.wf_state === undefined ? null : workflowOf(r),
    };
  });
}

const WORKFLOW_COLUMNS = `, w.state AS wf_state, w.updated_by AS wf_by, w.updated_ts AS wf_ts, w.note AS wf_note, w.failure_mode AS wf_failure_mode,
            w.action_taken AS wf_action_taken, w.maintenance_until AS wf_until`;

function workflowOf(r: Row): AlertWorkflow {
  const text = (v: unknown) => (v === null || v === undefined ? null : String(v));
  return {
    state: String(r.wf_state) as AlertWorkflow['state'],
    by: String(r.wf_by),
    ts: num(r.wf_ts),
    note: text(r.wf_note),
    failureMode: text(r.wf_failure_mode),
    actionTaken: text(r.wf_action_taken),
    until: numOrNull(r.wf_until),
  };
}

export interface SeriesQuery {
  agentId: string;
  asset: string;
  /** Risk: the model (null: every model). Telemetry: the metric. */
  key: string | null;
  from: number;
  to: number;
  /** At most this many points; one more is read to tell whether the series was cut. */
  limit: number;
}

export interface RawRiskPoint {
  ts: number;
  model: string;
  modelVersion: string;
  score: number;
  atRisk: boolean;
}
export interface HourPoint {
  ts: number;
  key: string;
  samples: number;
  min: number;
  max: number;
  mean: number;
  last: number;
  lastTs: number;
  atRiskSamples?: number;
}

/** A JSON field of `records.payload`, per dialect (the payload is the record's JSON as text). */
const field = (q: SqlQueries, name: 'asset' | 'model') => (q.dialect === 'postgres' ? `(payload::json ->> '${name}')` : `json_extract(payload, '$.${name}')`);

/** Raw risk records of one asset in [from, to), oldest first, from `records`. */
export async function rawRisk(q: SqlQueries, s: SeriesQuery): Promise<RawRiskPoint[]> {
  const params: SqlValue[] = [s.agentId, s.from, s.to, s.asset];
  let sql = `SELECT ts, payload FROM records WHERE agent_id = ? AND stream = 'risk' AND ts >= ? AND ts < ? AND ${field(q, 'asset')} = ?`;
  if (s.key !== null) {
    sql += ` AND ${field(q, 'model')} = ?`;
    params.push(s.key);
  }
  const rows = await q.all<{ ts: number; payload: string }>(`${sql} ORDER BY ts, seq LIMIT ?`, [...params, s.limit + 1]);
  return rows.map((r) => {
    const p = JSON.parse(r.payload) as Row;
    return { ts: num(r.ts), model: String(p.model), modelVersion: String(p.modelVersion ?? ''), score: num(p.score), atRisk: p.atRisk === true };
  });
}

/** Raw values of one metric of one asset in [from, to), oldest first, from `records`. */
export async function rawTelemetry(q: SqlQueries, s: SeriesQuery & { key: string }): Promise<Array<{ ts: number; value: number }>> {
  const value =
    q.dialect === 'postgres'
      ? `((payload::json -> 'metrics') ->> ?)::double precision`
      : // The metric name is quoted into a JSON path: the API allows no `"` or `\` in it.
        `json_extract(payload, '$.metrics."' || ? || '"')`;
  const rows = await q.all<{ ts: number; v: number }>(
    `SELECT ts, v FROM (SELECT ts, seq, ${value} AS v FROM records WHERE agent_id = ? AND stream = 'telemetry' AND ts >= ? AND ts < ? AND ${field(q, 'asset')} = ?) t
      WHERE v IS NOT NULL ORDER BY ts, seq LIMIT ?`,
    [s.key, s.agentId, s.from, s.to, s.asset, s.limit + 1],
  );
  return rows.map((r) => ({ ts: num(r.ts), value: num(r.v) }));
}

/** Hourly rollups of one asset's risk (per model) or one metric, for hours starting in [from, to). */
export async function hourly(q: SqlQueries, tables: StoreTables, kind: 'risk' | 'telemetry', s: SeriesQuery): Promise<HourPoint[]> {
  const [table, keyCol, v] = kind === 'risk' ? ['fleet_risk_hourly', 'model', 'score'] : ['fleet_telemetry_hourly', 'metric', 'value'];
  if (!(await tables.has(q, table))) return [];
  const params: SqlValue[] = [s.agentId, s.asset, s.from, s.to];
  let where = 'agent_id = ? AND asset = ? AND hour >= ? AND hour < ?';
  if (s.key !== null) {
    where += ` AND ${keyCol} = ?`;
    params.push(s.key);
  }
  const rows = await q.all<Row>(
    `SELECT ${keyCol} AS k, hour, samples, min_${v} AS mn, max_${v} AS mx, sum_${v} AS sm, last_${v} AS lst, last_ts${kind === 'risk' ? ', at_risk_samples' : ''}
       FROM ${table} WHERE ${where} ORDER BY hour, ${keyCol} LIMIT ?`,
    [...params, s.limit + 1],
  );
  return rows.map((r) => {
    const samples = num(r.samples);
    const p: HourPoint = {
      ts: num(r.hour),
      key: String(r.k),
      samples,
      min: num(r.mn),
      max: num(r.mx),
      mean: num(r.sm) / samples,
      last: num(r.lst),
      lastTs: num(r.last_ts),
    };
    if (kind === 'risk') p.atRiskSamples = num(r.at_risk_samples);
    return p;
  });
}

/** Whether central has heard of this asset (the registry or a latest risk). */
export async function assetKnown(q: SqlQueries, tables: StoreTables, agentId: string, asset: string): Promise<boolean> {
  for (const table of ['fleet_assets', 'fleet_latest_risk']) {
    if (!(await tables.has(q, table))) continue;
    if (await q.get(`SELECT 1 AS one FROM ${table} WHERE agent_id = ? AND asset = ? LIMIT 1`, [agentId, asset])) return true;
  }
  return false;
}
