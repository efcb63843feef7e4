import { tableExists } from '../fleet/retention.js';
import type { SqlQueries, SqlValue } from '../sql/sql-client.js';
import type { ApiRoute, RouteContext } from './api-route.js';
import { ApiError, Params } from './api-params.js';
import { assetKnown, StoreTables } from './fleet-queries.js';

/**
 * `GET /api/v1/assets/:agent/:asset/health` (viewer): what the asset page shows beside the risk trend.
 *
 * - `quality`: recent data-quality flags, newest first: telemetry values the agent's quality stage flagged
 *   (`quality` of a telemetry record: metric → range | step | flatline | uncertain, published as read and not scored)
 *   and the `quality.<check>` alerts it raised and cleared (`stale` only exists there), with their detail.
 * - `drift`: per model, its latest input-drift state: the newer of the agent's retained status
 *   (`models[].health`) and its last `model-health` event (docs/drift.md). `psi` is the figure the state is judged
 *   on (`driftPsi`, PSI beyond chance; the raw `psiMax` for an older agent).
 * - `drivers`: per model, its last risk records (oldest first) with score and drivers, so the page shows how the
 *   drivers moved.
 *
 * Every read is bounded: a time window (`hours`, default 24, at most 30 days) on the records' (agent_id, stream,
 * ts) and a row limit; on PostgreSQL each stream is its own partition, pruned by stream then by time.
 */

const DEFAULT_HOURS = 24;
const MAX_HOURS = 30 * 24;
const QUALITY_LIMIT = 100;
const EVENTS_LIMIT = 200;
const DEFAULT_DRIVERS = 20;
const MAX_DRIVERS = 100;
const MAX_MODELS = 20;

type Row = Record<string, unknown>;

export interface QualityFlag {
  ts: number;
  metric: string;
  issue: string;
  detail: string;
  /** `telemetry`: a flagged value; `alert`: the quality alert raised or cleared. */
  source: 'telemetry' | 'alert';
  value?: number;
  state?: 'raised' | 'cleared';
}

export interface DriftState {
  model: string;
  version: string | null;
  state: string;
  psi: number | null;
  psiMax: number | null;
  driftPsi: number | null;
  outsideMax: number | null;
  samples: number | null;
  top: unknown[];
  ts: number;
  source: 'status' | 'event';
}

export interface DriverPoint {
  model: string;
  ts: number;
  score: number;
  atRisk: boolean;
  drivers: unknown[];
}

export interface AssetHealth {
  agentId: string;
  asset: string;
  from: number;
  to: number;
  quality: QualityFlag[];
  drift: DriftState[];
  drivers: DriverPoint[];
}

const json = (q: SqlQueries, name: string) => (q.dialect === 'postgres' ? `(payload::json ->> '${name}')` : `json_extract(payload, '$.${name}')`);
const hasField = (q: SqlQueries, name: string) =>
  q.dialect === 'postgres' ? `(payload::json -> '${name}') IS NOT NULL` : `json_extract(payload, '$.${name}') IS NOT NULL`;
const numOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/**
 * Records of one stream of the asset in (from, to], newest first. The stream is written into the statement (one of
 * four constants), so that PostgreSQL prunes to its partition when it plans, as the read API's queries do.
 */
async function recent(
  q: SqlQueries,
  stream: 'telemetry' | 'alerts' | 'events' | 'risk',
  a: { agentId: string; asset: string; from: number; to: number },
  where: string,
  params: SqlValue[],
  limit: number,
) {
  return q.all<{ ts: number; payload: string }>(
    `SELECT ts, payload FROM records WHERE agent_id = ? AND stream = '${stream}' AND ts > ? AND ts <= ? AND ${json(q, 'asset')} = ? ${where}
      ORDER BY ts DESC, seq DESC LIMIT ?`,
    [a.agentId, a.from, a.to, a.asset, ...params, limit],
  );
}

async function qualityFlags(q: SqlQueries, a: { agentId: string; asset: string; from: number; to: number }): Promise<QualityFlag[]> {
  const out: QualityFlag[] = [];
  for (const r of await recent(q, 'telemetry', a, `AND ${hasField(q, 'quality')}`, [], QUALITY_LIMIT)) {
    const p = JSON.parse(r.payload) as { quality?: Record<string, unknown>; metrics?: Record<string, unknown> };
    for (const [metric, check] of Object.entries(p.quality ?? {})) {
      const value = numOrNull(p.metrics?.[metric]);
      out.push({
        ts: Number(r.ts),
        metric,
        issue: String(check),
        detail: `value ${value ?? 'n/a'} failed the ${String(check)} check`,
        source: 'telemetry',
        ...(value !== null ? { value } : {}),
      });
    }
  }
  const rule = json(q, 'rule');
  for (const r of await recent(q, 'alerts', a, `AND ${rule} LIKE 'quality.%'`, [], QUALITY_LIMIT)) {
    const p = JSON.parse(r.payload) as { rule?: string; state?: string; subject?: string; evidence?: Record<string, unknown>; value?: unknown };
    const e = p.evidence ?? {};
    const value = numOrNull(e.value ?? p.value);
    out.push({
      ts: Number(r.ts),
      metric: String(e.signal ?? p.subject ?? ''),
      issue: String(e.check ?? String(p.rule).slice('quality.'.length)),
      detail: String(e.detail ?? ''),
      source: 'alert',
      state: p.state === 'cleared' ? 'cleared' : 'raised',
      ...(value !== null ? { value } : {}),
    });
  }
  return out.sort((x, y) => y.ts - x.ts).slice(0, QUALITY_LIMIT);
}

function driftOf(model: string, h: Record<string, unknown>, source: DriftState['source'], version: unknown): DriftState {
  const driftPsi = numOrNull(h.driftPsi);
  const psiMax = numOrNull(h.psiMax);
  return {
    model,
    version: typeof version === 'string' ? version : null,
    state: String(h.state),
    psi: driftPsi ?? psiMax,
    psiMax,
    driftPsi,
    outsideMax: numOrNull(h.outsideMax),
    samples: numOrNull(h.samples),
    top: Array.isArray(h.top) ? h.top : [],
    ts: Number(h.ts),
    source,
  };
}

async function driftStates(q: SqlQueries, a: { agentId: string; asset: string; from: number; to: number }): Promise<DriftState[]> {
  const latest = new Map<string, DriftState>();
  const keep = (d: DriftState) => {
    const have = latest.get(d.model);
    if (!have || d.ts > have.ts) latest.set(d.model, d);
  };
  // The retained status: every model's current health per asset (one row per agent).
  if (await tableExists(q, 'agents')) {
    const row = await q.get<{ payload: string }>('SELECT payload FROM agents WHERE agent_id = ?', [a.agentId]);
    const models = row ? (JSON.parse(row.payload) as { models?: unknown }).models : undefined;
    for (const m of Array.isArray(models) ? (models as Array<Record<string, unknown>>) : []) {
      const health = Array.isArray(m.health) ? (m.health as Array<Record<string, unknown>>) : [];
      for (const h of health) if (h.asset === a.asset && typeof h.state === 'string') keep(driftOf(String(m.name), h, 'status', m.version));
    }
  }
  // State changes the agent announced (kept even when the status was replaced since).
  for (const r of await recent(q, 'events', a, `AND ${json(q, 'type')} = 'model-health'`, [], EVENTS_LIMIT)) {
    const p = JSON.parse(r.payload) as Record<string, unknown>;
    if (typeof p.model === 'string' && typeof p.state === 'string') keep(driftOf(p.model, { ...p, ts: p.ts ?? r.ts }, 'event', p.version));
  }
  return [...latest.values()].sort((x, y) => (x.model < y.model ? -1 : x.model > y.model ? 1 : 0));
}

async function driverHistory(
  q: SqlQueries,
  tables: StoreTables,
  a: { agentId: string; asset: string; from: number; to: number },
  perModel: number,
): Promise<DriverPoint[]> {
  let models: string[] = [];
  if (await tables.has(q, 'fleet_latest_risk')) {
    models = (
      await q.all<Row>('SELECT model FROM fleet_latest_risk WHERE agent_id = ? AND asset = ? ORDER BY model LIMIT ?', [a.agentId, a.asset, MAX_MODELS])
    ).map((r) => String(r.model));
  } else {
    const seen = await recent(q, 'risk', a, '', [], MAX_MODELS * perModel);
    models = [...new Set(seen.map((r) => String((JSON.parse(r.payload) as { model?: unknown }).model)))].sort().slice(0, MAX_MODELS);
  }
  const out: DriverPoint[] = [];
  for (const model of models) {
    const rows = await recent(q, 'risk', a, `AND ${json(q, 'model')} = ?`, [model], perModel);
    for (const r of rows.reverse()) {
      const p = JSON.parse(r.payload) as { score?: unknown; atRisk?: unknown; drivers?: unknown };
      out.push({ model, ts: Number(r.ts), score: Number(p.score), atRisk: p.atRisk === true, drivers: Array.isArray(p.drivers) ? p.drivers : [] });
    }
  }
  return out;
}

/** The asset's health; null when central has never heard of it. */
export async function assetHealth(
  q: SqlQueries,
  tables: StoreTables,
  a: { agentId: string; asset: string; from: number; to: number },
  perModel = DEFAULT_DRIVERS,
): Promise<AssetHealth | null> {
  const [quality, drift, drivers] = [await qualityFlags(q, a), await driftStates(q, a), await driverHistory(q, tables, a, perModel)];
  if (!quality.length && !drift.length && !drivers.length && !(await assetKnown(q, tables, a.agentId, a.asset))) return null;
  return { ...a, quality, drift, drivers };
}

/** The route, for the module that mounts it (the fleet module, beside the read API). */
export function assetHealthRoutes(): ApiRoute[] {
  const tables = new StoreTables();
  return [
    {
      method: 'GET',
      pattern: '/assets/:agent/:asset/health',
      role: 'viewer',
      async handle(ctx: RouteContext): Promise<AssetHealth> {
        const params = new Params(ctx.query, ['hours', 'limit']);
        const hours = params.int('hours', DEFAULT_HOURS, 1, MAX_HOURS);
        const perModel = params.int('limit', DEFAULT_DRIVERS, 1, MAX_DRIVERS);
        const to = ctx.now();
        const a = { agentId: ctx.params.agent ?? '', asset: ctx.params.asset ?? '', from: to - hours * 3_600_000, to };
        const health = await assetHealth(ctx.sql, tables, a, perModel);
        if (!health) throw new ApiError(404, 'FW_ERR_API_NOT_FOUND', `asset ${a.asset} of agent ${a.agentId}: central has no record of it`);
        return health;
      },
    },
  ];
}
