import { ASSET_STATES } from '../fleet/asset-state.js';
import { ApiError, Params, badParam, decodeCursor, encodeCursor } from './api-params.js';
import type { ApiRoute, RouteContext } from './api-route.js';
import {
  alertsList,
  assetDetail,
  assetKnown,
  fleetAgents,
  fleetAssets,
  fleetSummary,
  hourly,
  rawRisk,
  rawTelemetry,
  StoreTables,
  type AssetView,
} from './fleet-queries.js';

/**
 * The read endpoints of the fleet (docs/central.md, "HTTP API"), as routes for viewers: the summary, agents,
 * assets, one asset, its risk and telemetry series, and alerts. Every parameter is checked strictly (api-params.ts).
 */

export interface FleetRouteOptions {
  /** Most points one series request returns (`limit` may ask for fewer). Default 5,000. */
  maxPoints?: number;
  /** Most items one page of assets, agents or alerts holds. Default 1,000. */
  maxPageSize?: number;
  /** Shared cache of which tables exist (a component that is not installed reads as empty). */
  tables?: StoreTables;
}

const DAY_MS = 86_400_000;

export function fleetRoutes(options: FleetRouteOptions = {}): ApiRoute[] {
  const maxPoints = options.maxPoints ?? 5_000;
  const maxPage = options.maxPageSize ?? 1_000;
  const tables = options.tables ?? new StoreTables();
  const get = (pattern: string, handle: (ctx: RouteContext) => Promise<unknown>): ApiRoute => ({ method: 'GET', pattern, role: 'viewer', handle });

  const series = async (ctx: RouteContext, kind: 'risk' | 'telemetry'): Promise<unknown> => {
    const { agent: agentId, asset } = ctx.params as { agent: string; asset: string };
    const keyName = kind === 'risk' ? 'model' : 'metric';
    const p = new Params(ctx.query, [keyName, 'from', 'to', 'resolution', 'limit']);
    const key = p.string(keyName);
    if (kind === 'telemetry') {
      if (key === null) throw badParam('metric', 'required: the metric to chart (a name in the records’ metrics)');
      if (/["\\]/.test(key)) throw badParam('metric', 'must not contain " or \\');
    }
    const to = p.time('to', ctx.now());
    const from = p.time('from', to - DAY_MS);
    if (from >= to) throw badParam('from', `must be before to (${from} ≥ ${to})`);
    const resolution = p.oneOf('resolution', ['raw', 'hour'] as const, 'hour');
    const limit = p.int('limit', maxPoints, 1, maxPoints);
    if (!(await assetKnown(ctx.sql, tables, agentId, asset)))
      throw new ApiError(404, 'FW_ERR_API_NOT_FOUND', `asset ${agentId}/${asset}: central has not heard of it`);
    const s = { agentId, asset, key, from, to, limit };
    let points: unknown[];
    if (resolution === 'hour') points = await hourly(ctx.sql, tables, kind, s);
    else if (!(await tables.has(ctx.sql, 'records'))) points = [];
    else points = kind === 'risk' ? await rawRisk(ctx.sql, s) : await rawTelemetry(ctx.sql, { ...s, key: key! });
    const truncated = points.length > limit;
    return { agentId, asset, [keyName]: key, resolution, from, to, truncated, points: truncated ? points.slice(0, limit) : points };
  };

  return [
    get('/fleet', async (ctx) => {
      new Params(ctx.query, []);
      return fleetSummary(ctx.sql, tables, ctx.now());
    }),
    get('/agents', async (ctx) => {
      const p = new Params(ctx.query, ['state', 'limit', 'cursor']);
      const state = p.oneOf('state', ['online', 'offline', 'unknown'] as const, null);
      const limit = p.int('limit', 100, 1, maxPage);
      const after = decodeCursor(p, (k) => k.length === 1 && typeof k[0] === 'string');
      const agents = await fleetAgents(ctx.sql, tables, { after: after ? (after[0] as string) : null, limit: limit + 1, state });
      const page = agents.slice(0, limit);
      return { agents: page, nextCursor: agents.length > limit ? encodeCursor([page[page.length - 1]!.agentId]) : null };
    }),
    get('/assets', async (ctx) => {
      const p = new Params(ctx.query, ['state', 'q', 'agent', 'sort', 'limit', 'cursor']);
      const states = p.string('state')?.split(',') ?? null;
      for (const s of states ?? [])
        if (!(ASSET_STATES as readonly string[]).includes(s))
          throw badParam('state', `must be one or more (comma-separated) of ${ASSET_STATES.join(', ')}, got "${s}"`);
      const text = p.string('q')?.toLowerCase() ?? null;
      const agent = p.string('agent');
      const sort = p.oneOf('sort', ['name', 'risk'] as const, 'name');
      const limit = p.int('limit', 100, 1, maxPage);
      const cursor = decodeCursor(p, (k) =>
        sort === 'risk'
          ? k.length === 3 && typeof k[0] === 'number' && typeof k[1] === 'string' && typeof k[2] === 'string'
          : k.length === 2 && k.every((x) => typeof x === 'string'),
      );
      let all = await fleetAssets(ctx.sql, tables, ctx.now());
      all = all.filter(
        (a) =>
          (states === null || states.includes(a.state)) &&
          (agent === null || a.agentId === agent) &&
          (text === null || a.asset.toLowerCase().includes(text) || a.agentId.toLowerCase().includes(text)),
      );
      const key = (a: AssetView): unknown[] => (sort === 'risk' ? [a.risk, a.agentId, a.asset] : [a.agentId, a.asset]);
      // Each key built once, not twice per comparison: 10,000 assets take ~130,000 comparisons.
      const keyed = all.map((a) => ({ a, k: key(a) }));
      keyed.sort((x, y) => compareKeys(x.k, y.k, sort === 'risk'));
      const start = cursor ? keyed.findIndex((x) => compareKeys(x.k, cursor, sort === 'risk') > 0) : 0;
      const page = start < 0 ? [] : keyed.slice(start, start + limit);
      const more = start >= 0 && start + limit < keyed.length;
      return { total: keyed.length, assets: page.map((x) => x.a), nextCursor: more ? encodeCursor(page[page.length - 1]!.k) : null };
    }),
    get('/assets/:agent/:asset', async (ctx) => {
      new Params(ctx.query, []);
      const { agent, asset } = ctx.params as { agent: string; asset: string };
      const detail = await assetDetail(ctx.sql, tables, agent, asset, ctx.now());
      if (!detail) throw new ApiError(404, 'FW_ERR_API_NOT_FOUND', `asset ${agent}/${asset}: central has not heard of it`);
      return detail;
    }),
    get('/assets/:agent/:asset/risk', (ctx) => series(ctx, 'risk')),
    get('/assets/:agent/:asset/telemetry', (ctx) => series(ctx, 'telemetry')),
    get('/alerts', async (ctx) => {
      const p = new Params(ctx.query, ['state', 'agent', 'asset', 'severity', 'limit', 'cursor']);
      const state = p.oneOf('state', ['active', 'resolved'] as const, null);
      const severity = p.oneOf('severity', ['info', 'warning', 'critical'] as const, null);
      const limit = p.int('limit', 100, 1, maxPage);
      const before = decodeCursor(p, (k) => k.length === 2 && typeof k[0] === 'number' && typeof k[1] === 'string');
      const rows = await alertsList(ctx.sql, tables, {
        state,
        agentId: p.string('agent'),
        asset: p.string('asset'),
        severity,
        before: before as [number, string] | null,
        limit: limit + 1,
      });
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return { alerts: page, nextCursor: rows.length > limit && last ? encodeCursor([last.raisedTs, last.alertKey]) : null };
    }),
  ];
}

/** Sort order of the asset list: by name, or by risk (highest first) and then name. */
function compareKeys(a: readonly unknown[], b: readonly unknown[], riskFirst: boolean): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as string | number;
    const y = b[i] as string | number;
    if (x === y) continue;
    const lt = x < y ? -1 : 1;
    return riskFirst && i === 0 ? -lt : lt;
  }
  return 0;
}
