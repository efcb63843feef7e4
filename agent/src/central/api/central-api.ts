import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ForewarnError, describeError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Component } from '../../core/types.js';
import { ASSET_STATES } from '../fleet/asset-state.js';
import type { SqlClient } from '../sql/sql-client.js';
import { ApiError, Params, badParam, decodeCursor, encodeCursor } from './api-params.js';
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
 * The central HTTP API, read-only, JSON, versioned under `/api/v1/` (node:http, no framework). docs/central.md
 * ("HTTP API") lists the endpoints. Errors are `{ "error": { "code", "message" } }`: 400 FW_ERR_API_REQUEST for a
 * bad parameter (`param: message`) or method, 404 FW_ERR_API_NOT_FOUND, 503 FW_ERR_API_STORE when the store does
 * not answer. It binds to 127.0.0.1 by default: it has no authentication yet, so a wider bind is the operator's
 * choice, behind a reverse proxy that adds it.
 */

export interface CentralApiOptions {
  sql: SqlClient;
  log: Logger;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8470; 0 picks a free port (tests). */
  port?: number;
  /** Most points one series request returns (`limit` may ask for fewer). Default 5,000. */
  maxPoints?: number;
  /** Most items one page of assets, agents or alerts holds. Default 1,000. */
  maxPageSize?: number;
  /** The clock, for the default series window (tests). */
  now?: () => number;
}

export const DEFAULT_API_PORT = 8470;
const DAY_MS = 86_400_000;
const PREFIX = '/api/v1';

type Handler = (params: URLSearchParams, path: string[]) => Promise<unknown>;

export class CentralApi implements Component {
  readonly name = 'central-api';
  private readonly sql: SqlClient;
  private readonly log: Logger;
  private readonly host: string;
  private readonly port: number;
  private readonly maxPoints: number;
  private readonly maxPage: number;
  private readonly now: () => number;
  private readonly tables = new StoreTables();
  private server: http.Server | null = null;

  constructor(options: CentralApiOptions) {
    this.sql = options.sql;
    this.log = options.log;
    this.host = options.host ?? '127.0.0.1';
    this.port = options.port ?? DEFAULT_API_PORT;
    this.maxPoints = options.maxPoints ?? 5_000;
    this.maxPage = options.maxPageSize ?? 1_000;
    this.now = options.now ?? Date.now;
  }

  /** Listens; resolves once bound (fast), or throws FW_ERR_API_LISTEN when the port is taken or the address invalid. */
  async start(): Promise<void> {
    const server = http.createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 5_000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(new ForewarnError('FW_ERR_API_LISTEN', `central API cannot listen on ${this.host}:${this.port}: ${describeError(err)}`, { cause: err })),
      );
      server.listen(this.port, this.host, () => resolve());
    });
    server.on('error', (err) => this.log.warn({ err: describeError(err) }, 'central API server error'));
    this.server = server;
    const a = this.address();
    this.log.info({ host: a.address, port: a.port }, `central API on http://${a.address}:${a.port}${PREFIX}/`);
  }

  /** Stops taking connections, lets requests in flight finish, closes idle keep-alive connections. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const timer = setTimeout(() => server.closeAllConnections(), 5_000).unref();
    await closed;
    clearTimeout(timer);
  }

  address(): AddressInfo {
    if (!this.server) throw new Error('central API is not listening');
    return this.server.address() as AddressInfo;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let status = 200;
    let body: unknown;
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('Allow', 'GET, HEAD');
        throw new ApiError(405, 'FW_ERR_API_REQUEST', `method: ${req.method ?? '?'} is not allowed, the API is read-only (GET)`);
      }
      body = await this.route(url);
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError(503, 'FW_ERR_API_STORE', 'the central store did not answer; see the central service log');
      if (!(err instanceof ApiError)) this.log.warn({ code: e.code, url: req.url, err: describeError(err) }, 'central API request failed');
      status = e.status;
      body = { error: { code: e.code, message: e.message } };
    }
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(text),
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
    });
    res.end(req.method === 'HEAD' ? undefined : text);
  }

  private async route(url: URL): Promise<unknown> {
    if (url.pathname === '/healthz' || url.pathname === `${PREFIX}/healthz`) return this.healthz();
    if (!url.pathname.startsWith(`${PREFIX}/`))
      throw new ApiError(404, 'FW_ERR_API_NOT_FOUND', `${url.pathname}: no such endpoint (the API lives under ${PREFIX}/)`);
    let parts: string[];
    try {
      parts = url.pathname
        .slice(PREFIX.length + 1)
        .split('/')
        .map(decodeURIComponent);
    } catch {
      throw new ApiError(400, 'FW_ERR_API_REQUEST', `path: malformed percent-encoding in ${url.pathname}`);
    }
    const q = url.searchParams;
    const [head, agent, asset, leaf, ...rest] = parts;
    const handlers: Record<string, Handler | undefined> = {
      fleet: () => this.fleet(q),
      agents: () => this.agents(q),
      alerts: () => this.alerts(q),
      assets: () => this.assets(q),
    };
    if (head === 'assets' && agent !== undefined && asset !== undefined && rest.length === 0 && agent && asset) {
      if (leaf === undefined) return this.asset(q, agent, asset);
      if (leaf === 'risk') return this.series(q, 'risk', agent, asset);
      if (leaf === 'telemetry') return this.series(q, 'telemetry', agent, asset);
    } else if (agent === undefined && head !== undefined) {
      const h = handlers[head];
      if (h && Object.hasOwn(handlers, head)) return h(q, parts);
    }
    throw new ApiError(404, 'FW_ERR_API_NOT_FOUND', `${url.pathname}: no such endpoint`);
  }

  private async healthz(): Promise<unknown> {
    try {
      await this.sql.get('SELECT 1 AS one');
    } catch (err) {
      this.log.warn({ err: describeError(err) }, 'central API health check: the store does not answer');
      throw new ApiError(503, 'FW_ERR_API_STORE', 'the central store does not answer');
    }
    return { status: 'ok', store: this.sql.dialect };
  }

  private async fleet(search: URLSearchParams): Promise<unknown> {
    new Params(search, []);
    return fleetSummary(this.sql, this.tables);
  }

  private async agents(search: URLSearchParams): Promise<unknown> {
    const p = new Params(search, ['state', 'limit', 'cursor']);
    const state = p.oneOf('state', ['online', 'offline', 'unknown'] as const, null);
    const limit = p.int('limit', 100, 1, this.maxPage);
    const after = decodeCursor(p, (k) => k.length === 1 && typeof k[0] === 'string');
    const agents = await fleetAgents(this.sql, this.tables, { after: after ? (after[0] as string) : null, limit: limit + 1, state });
    const page = agents.slice(0, limit);
    return { agents: page, nextCursor: agents.length > limit ? encodeCursor([page[page.length - 1]!.agentId]) : null };
  }

  private async assets(search: URLSearchParams): Promise<unknown> {
    const p = new Params(search, ['state', 'q', 'agent', 'sort', 'limit', 'cursor']);
    const states = p.string('state')?.split(',') ?? null;
    for (const s of states ?? [])
      if (!(ASSET_STATES as readonly string[]).includes(s))
        throw badParam('state', `must be one or more (comma-separated) of ${ASSET_STATES.join(', ')}, got "${s}"`);
    const text = p.string('q')?.toLowerCase() ?? null;
    const agent = p.string('agent');
    const sort = p.oneOf('sort', ['name', 'risk'] as const, 'name');
    const limit = p.int('limit', 100, 1, this.maxPage);
    const cursor = decodeCursor(p, (k) =>
      sort === 'risk'
        ? k.length === 3 && typeof k[0] === 'number' && typeof k[1] === 'string' && typeof k[2] === 'string'
        : k.length === 2 && k.every((x) => typeof x === 'string'),
    );
    let all = await fleetAssets(this.sql, this.tables);
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
  }

  private async asset(search: URLSearchParams, agentId: string, asset: string): Promise<unknown> {
    new Params(search, []);
    const detail = await assetDetail(this.sql, this.tables, agentId, asset);
    if (!detail) throw new ApiError(404, 'FW_ERR_API_NOT_FOUND', `asset ${agentId}/${asset}: central has not heard of it`);
    return detail;
  }

  private async series(search: URLSearchParams, kind: 'risk' | 'telemetry', agentId: string, asset: string): Promise<unknown> {
    const keyName = kind === 'risk' ? 'model' : 'metric';
    const p = new Params(search, [keyName, 'from', 'to', 'resolution', 'limit']);
    const key = p.string(keyName);
    if (kind === 'telemetry') {
      if (key === null) throw badParam('metric', 'required: the metric to chart (a name in the records’ metrics)');
      if (/["\\]/.test(key)) throw badParam('metric', 'must not contain " or \\');
    }
    const to = p.time('to', this.now());
    const from = p.time('from', to - DAY_MS);
    if (from >= to) throw badParam('from', `must be before to (${from} ≥ ${to})`);
    const resolution = p.oneOf('resolution', ['raw', 'hour'] as const, 'hour');
    const limit = p.int('limit', this.maxPoints, 1, this.maxPoints);
    if (!(await assetKnown(this.sql, this.tables, agentId, asset)))
      throw new ApiError(404, 'FW_ERR_API_NOT_FOUND', `asset ${agentId}/${asset}: central has not heard of it`);
    const s = { agentId, asset, key, from, to, limit };
    let points: unknown[];
    if (resolution === 'hour') points = await hourly(this.sql, this.tables, kind, s);
    else if (!(await this.tables.has(this.sql, 'records'))) points = [];
    else points = kind === 'risk' ? await rawRisk(this.sql, s) : await rawTelemetry(this.sql, { ...s, key: key! });
    const truncated = points.length > limit;
    return { agentId, asset, [keyName]: key, resolution, from, to, truncated, points: truncated ? points.slice(0, limit) : points };
  }

  private async alerts(search: URLSearchParams): Promise<unknown> {
    const p = new Params(search, ['state', 'agent', 'asset', 'severity', 'limit', 'cursor']);
    const state = p.oneOf('state', ['active', 'resolved'] as const, null);
    const severity = p.oneOf('severity', ['info', 'warning', 'critical'] as const, null);
    const limit = p.int('limit', 100, 1, this.maxPage);
    const before = decodeCursor(p, (k) => k.length === 2 && typeof k[0] === 'number' && typeof k[1] === 'string');
    const rows = await alertsList(this.sql, this.tables, {
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
  }
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

export function createCentralApi(options: CentralApiOptions): CentralApi {
  return new CentralApi(options);
}
