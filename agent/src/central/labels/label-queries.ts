import { tableExists } from '../fleet/retention.js';
import type { SqlQueries, SqlValue } from '../sql/sql-client.js';
import type { LabelReading, LabelWindow, LabelledEpisode, ManifestFeature } from './recipe-formats.js';

/**
 * The reads behind export-labels, each bounded and on an index: the closed episodes by the workflow's
 * (state, updated_ts) index, an asset's telemetry by the records' (agent_id, stream, …) key and the time range
 * (on PostgreSQL: the `telemetry` partition, then its time partitions), newest first with a limit.
 */

/** Rules whose alerts say nothing about the machine's condition (its data or its model): never labels. */
const NOT_ABOUT_THE_MACHINE = /^(quality(\.|$)|model\.drift$)/;

/** At most this many episodes per export. */
export const MAX_EPISODES = 10_000;
/** Telemetry rows read per page, newest first. */
const PAGE = 1000;
/** At most this many telemetry rows scanned per episode (a cycles window on an asset that publishes other records). */
export const MAX_SCANNED = 200_000;
/** A cycles window looks back at most this far before the alert. */
export const READINGS_LOOKBACK_MS = 90 * 86_400_000;

type Row = Record<string, unknown>;
const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

/** A field of `records.payload` (the record's JSON as text), per dialect. */
export function payloadField(q: SqlQueries, name: 'asset' | 'model' | 'type'): string {
  return q.dialect === 'postgres' ? `(payload::json ->> '${name}')` : `json_extract(payload, '$.${name}')`;
}

/**
 * Episodes a technician closed (resolved with a failure mode, or false alarm) in [since, until), on an agent's
 * asset, oldest closure first. Episodes still acknowledged or in maintenance are not labels yet.
 */
export async function closedEpisodes(q: SqlQueries, since: number, until: number): Promise<{ episodes: LabelledEpisode[]; cut: boolean }> {
  if (!(await tableExists(q, 'alert_workflow')) || !(await tableExists(q, 'central_alerts'))) return { episodes: [], cut: false };
  const rows = await q.all<Row>(
    `SELECT w.alert_key, w.raised_ts, w.state, w.updated_by, w.updated_ts, w.note, w.failure_mode, w.action_taken,
            a.agent_id, a.asset, a.rule
       FROM alert_workflow w JOIN central_alerts a ON a.alert_key = w.alert_key
      WHERE w.state IN ('resolved', 'false_alarm') AND w.updated_ts >= ? AND w.updated_ts < ? AND a.origin = 'agent' AND a.asset IS NOT NULL
      ORDER BY w.updated_ts, w.alert_key LIMIT ?`,
    [since, until, MAX_EPISODES + 1],
  );
  const episodes = rows
    .filter((r) => !NOT_ABOUT_THE_MACHINE.test(String(r.rule)))
    .map<LabelledEpisode>((r) => ({
      agentId: String(r.agent_id),
      asset: String(r.asset),
      alertKey: String(r.alert_key),
      rule: String(r.rule),
      raisedTs: Number(r.raised_ts),
      label: r.state === 'resolved' ? 'failure' : 'false-alarm',
      failureMode: str(r.failure_mode),
      actionTaken: str(r.action_taken),
      note: str(r.note),
      resolvedBy: String(r.updated_by),
      resolvedTs: Number(r.updated_ts),
    }));
  return { episodes: episodes.slice(0, MAX_EPISODES), cut: rows.length > MAX_EPISODES };
}

/** Whether `model` scores the asset: the fleet's latest risk, else a risk record of it in the 30 days before `beforeTs`. */
export async function scoredBy(q: SqlQueries, agentId: string, asset: string, model: string, beforeTs: number): Promise<boolean> {
  if (await tableExists(q, 'fleet_latest_risk')) {
    if (await q.get('SELECT 1 AS one FROM fleet_latest_risk WHERE agent_id = ? AND asset = ? AND model = ? LIMIT 1', [agentId, asset, model])) return true;
  }
  const row = await q.get(
    `SELECT 1 AS one FROM records WHERE agent_id = ? AND stream = 'risk' AND ts > ? AND ts <= ? AND ${payloadField(q, 'asset')} = ? AND ${payloadField(q, 'model')} = ? LIMIT 1`,
    [agentId, beforeTs - 30 * 86_400_000, beforeTs, asset, model],
  );
  return row !== undefined;
}

export interface WindowReadings {
  /** Oldest first. */
  readings: LabelReading[];
  /** The window's bounds: readings have from < ts <= to. */
  from: number;
  to: number;
  /** Telemetry records of the asset in the window that lacked a model input, or had one flagged by a quality check. */
  missingInput: number;
  qualityFlagged: number;
  /** The scan stopped at MAX_SCANNED rows before the window was full. */
  cut: boolean;
}

/**
 * The asset's readings that could feed the model in the window that ends at the alert (`endTs` included): every
 * one within `window.ms` before it, or the last `window.count`. A reading that lacks a required input, has no
 * input at all, or carries a quality flag on an input is skipped and counted, so the recipe never trains on a
 * value the agent itself would not have scored.
 */
export async function windowReadings(
  q: SqlQueries,
  agentId: string,
  asset: string,
  endTs: number,
  window: LabelWindow,
  features: readonly ManifestFeature[],
): Promise<WindowReadings> {
  const from = window.kind === 'time' ? endTs - window.ms : endTs - READINGS_LOOKBACK_MS;
  const out: WindowReadings = { readings: [], from, to: endTs, missingInput: 0, qualityFlagged: 0, cut: false };
  const want = window.kind === 'readings' ? window.count : Infinity;
  let before: [number, number] | null = null;
  let scanned = 0;
  for (;;) {
    const params: SqlValue[] = [agentId, from, endTs, asset];
    let page = `SELECT seq, ts, payload FROM records WHERE agent_id = ? AND stream = 'telemetry' AND ts > ? AND ts <= ? AND ${payloadField(q, 'asset')} = ?`;
    if (before) {
      page += ' AND (ts < ? OR (ts = ? AND seq < ?))';
      params.push(before[0], before[0], before[1]);
    }
    const rows = await q.all<Row>(`${page} ORDER BY ts DESC, seq DESC LIMIT ?`, [...params, PAGE]);
    for (const r of rows) {
      const reading = toReading(r);
      const verdict = usable(reading, features);
      if (verdict === 'ok') out.readings.push(reading);
      else if (verdict === 'quality') out.qualityFlagged++;
      else if (verdict === 'missing') out.missingInput++;
      if (out.readings.length >= want) break;
    }
    scanned += rows.length;
    if (out.readings.length >= want || rows.length < PAGE) break;
    if (scanned >= MAX_SCANNED) {
      out.cut = true;
      break;
    }
    const last = rows[rows.length - 1]!;
    before = [Number(last.ts), Number(last.seq)];
  }
  out.readings.reverse();
  // A cycles window starts just before its oldest reading.
  if (window.kind === 'readings' && out.readings.length) out.from = out.readings[0]!.ts - 1;
  return out;
}

function toReading(r: Row): LabelReading {
  const p = JSON.parse(String(r.payload)) as { metrics?: unknown; quality?: unknown };
  const metrics: Record<string, number> = {};
  if (p.metrics && typeof p.metrics === 'object') {
    for (const [k, v] of Object.entries(p.metrics)) if (typeof v === 'number' && Number.isFinite(v)) metrics[k] = v;
  }
  const quality: Record<string, string> = {};
  if (p.quality && typeof p.quality === 'object') for (const [k, v] of Object.entries(p.quality)) quality[k] = String(v);
  return { ts: Number(r.ts), seq: Number(r.seq), metrics, quality };
}

/** 'other': a record of the asset with no model input at all (another source's), not counted as skipped. */
function usable(r: LabelReading, features: readonly ManifestFeature[]): 'ok' | 'missing' | 'quality' | 'other' {
  let present = 0;
  let missing = false;
  for (const f of features) {
    if (r.quality[f.signal] !== undefined) return 'quality';
    if (r.metrics[f.signal] !== undefined) present++;
    else if (!f.optional) missing = true;
  }
  if (present === 0) return 'other';
  return missing ? 'missing' : 'ok';
}
