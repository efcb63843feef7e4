import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { ForewarnError, describeError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Component } from '../../core/types.js';
import type { Session } from '../console/auth/console-sessions.js';
import { ConsoleAccess } from '../console/console-access.js';
import { FleetEvents } from '../console/fleet-events.js';
import { SECURITY_HEADERS, readJsonBody, sendError, sendFile, sendJson } from '../console/http-basics.js';
import { StaticFiles } from '../console/static-files.js';
import type { SqlClient } from '../sql/sql-client.js';
import { ApiError } from './api-params.js';
import { RouteFile, type ApiRoute, type RouteContext } from './api-route.js';
import { StoreTables } from './fleet-queries.js';
import { fleetRoutes } from './fleet-routes.js';
import { RouteTable } from './route-table.js';

/**
 * Central's HTTP server (node:http, no framework): the JSON API under `/api/v1/`, the console's pages and their
 * static files, and the console's live events. docs/central.md ("HTTP API") lists the endpoints,
 * docs/console.md ("Users and access") the access rules.
 *
 * The API is a router over `ApiRoute`s: the fleet's read routes (fleet-routes.ts) and those other modules
 * register. Before a route runs the server checks, in order: the session (401 FW_ERR_CONSOLE_AUTH; only
 * `public` routes, `/healthz` and the login need none), the path (404) and method (405), for a change the
 * Origin and the CSRF token (403 FW_ERR_CONSOLE_CSRF), the role (403 FW_ERR_CONSOLE_FORBIDDEN), then parses
 * the JSON body (≤ 64 KiB). Errors are `{ "error": { "code", "message" } }`; a route's unexpected failure is
 * 503 FW_ERR_API_STORE with the cause logged. Pages without a session redirect to `/login?next=…`. Every answer
 * carries the security headers (CSP `default-src 'self'`, no framing, no referrer, nosniff).
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
  /** The clock: the default series window, sessions and the login rate limit (tests). */
  now?: () => number;
  /** Routes of other modules (the alert workflow, asset health), mounted beside the fleet's read routes. */
  routes?: readonly ApiRoute[];
  /** Serve HTTPS with this PEM certificate (chain) and key; session cookies are then `Secure`. */
  tls?: { certFile: string; keyFile: string };
  /** Session lifetimes; defaults 30 min idle, 12 h absolute. */
  session?: { idleMs?: number; absoluteMs?: number };
  /** Default 5 failures per 15 min per address and per user name. */
  loginLimit?: { maxFailures?: number; windowMs?: number };
  /** Live events: poll period (2 s), ping period (15 s), most streams (100). */
  events?: { pollMs?: number; pingMs?: number; maxStreams?: number };
  /** The console's static folder (default: the one shipped, console/static-files.ts). */
  staticDir?: string;
  /** Origins besides the server's own that may send changes (e.g. the --console-url behind a reverse proxy). */
  origins?: readonly string[];
}

export const DEFAULT_API_PORT = 8470;
const PREFIX = '/api/v1';

export class CentralApi implements Component {
  readonly name = 'central-api';
  readonly access: ConsoleAccess;
  private readonly sql: SqlClient;
  private readonly log: Logger;
  private readonly host: string;
  private readonly port: number;
  private readonly now: () => number;
  private readonly table: RouteTable;
  private readonly events: FleetEvents;
  private readonly files: StaticFiles;
  private server: http.Server | null = null;

  constructor(private readonly options: CentralApiOptions) {
    this.sql = options.sql;
    this.log = options.log;
    this.host = options.host ?? '127.0.0.1';
    this.port = options.port ?? DEFAULT_API_PORT;
    this.now = options.now ?? Date.now;
    const tables = new StoreTables();
    const health: ApiRoute = { method: 'GET', pattern: '/healthz', role: 'public', handle: () => this.healthz() };
    this.table = new RouteTable([
      health,
      ...fleetRoutes({
        tables,
        ...(options.maxPoints ? { maxPoints: options.maxPoints } : {}),
        ...(options.maxPageSize ? { maxPageSize: options.maxPageSize } : {}),
      }),
      ...(options.routes ?? []),
    ]);
    this.access = new ConsoleAccess({
      sql: this.sql,
      log: this.log,
      secure: options.tls !== undefined,
      now: this.now,
      ...(options.session ? { session: options.session } : {}),
      ...(options.loginLimit ? { loginLimit: options.loginLimit } : {}),
      ...(options.origins ? { origins: options.origins } : {}),
    });
    this.events = new FleetEvents({
      sql: this.sql,
      log: this.log,
      tables,
      now: this.now,
      alive: (session) => this.access.sessions.alive(session.idHash),
      ...options.events,
    });
    this.files = new StaticFiles(options.staticDir);
  }

  get scheme(): 'http' | 'https' {
    return this.options.tls ? 'https' : 'http';
  }

  /**
   * Creates the console's tables, then listens; resolves once bound (fast), or throws FW_ERR_API_LISTEN when the
   * port is taken or the address invalid, FW_ERR_SECRET_READ when the TLS certificate or key cannot be read.
   */
  async start(): Promise<void> {
    const tls = this.options.tls ? { cert: readSecret('--tls-cert', this.options.tls.certFile), key: readSecret('--tls-key', this.options.tls.keyFile) } : null;
    await this.access.start();
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void this.handle(req, res);
    let server: http.Server;
    try {
      server = tls ? https.createServer(tls, handler) : http.createServer(handler);
    } catch (err) {
      this.access.stop();
      throw new ForewarnError('FW_ERR_SECRET_READ', `--tls-cert/--tls-key: not a usable certificate and key: ${describeError(err)}`, { cause: err });
    }
    server.keepAliveTimeout = 5_000;
    server.headersTimeout = 10_000;
    // Receiving a request (not answering it: the event streams last) must not take longer.
    server.requestTimeout = 30_000;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err) =>
          reject(new ForewarnError('FW_ERR_API_LISTEN', `central API cannot listen on ${this.host}:${this.port}: ${describeError(err)}`, { cause: err })),
        );
        server.listen(this.port, this.host, () => resolve());
      });
    } catch (err) {
      this.access.stop();
      throw err;
    }
    server.on('error', (err) => this.log.warn({ err: describeError(err) }, 'central API server error'));
    this.server = server;
    const a = this.address();
    const shown = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    this.log.info({ host: a.address, port: a.port, tls: tls !== null }, `central API and console on ${this.scheme}://${shown}:${a.port}/`);
  }

  /** Ends the event streams, stops taking connections, lets requests in flight finish, closes idle connections. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    this.events.stop();
    this.access.stop();
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
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    try {
      // Not `new URL(req.url, base)`: that reads `//host/x` as another host, not as the path `//host/x`.
      const raw = req.url ?? '/';
      let url: URL;
      try {
        url = new URL(raw.startsWith('/') ? `http://localhost${raw}` : raw);
      } catch {
        throw new ApiError(400, 'FW_ERR_API_REQUEST', 'path: not a request path');
      }
      const p = url.pathname;
      if (p === '/healthz' || p === '/api' || p.startsWith('/api/')) await this.api(req, res, url);
      else await this.page(req, res, url);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const e = err instanceof ApiError ? err : new ApiError(503, 'FW_ERR_API_STORE', 'the central store did not answer; see the central service log');
      if (!(err instanceof ApiError)) this.log.warn({ code: e.code, url: req.url, err: describeError(err) }, 'central API request failed');
      sendError(req, res, e);
    }
  }

  private async api(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const method = req.method ?? 'GET';
    const remoteAddress = req.socket.remoteAddress ?? '';
    let parts: string[];
    if (url.pathname === '/healthz') parts = ['healthz'];
    else {
      if (!url.pathname.startsWith(`${PREFIX}/`))
        throw new ApiError(404, 'FW_ERR_API_NOT_FOUND', `${url.pathname}: no such endpoint (the API lives under ${PREFIX}/)`);
      try {
        parts = url.pathname
          .slice(PREFIX.length + 1)
          .split('/')
          .map(decodeURIComponent);
      } catch {
        throw new ApiError(400, 'FW_ERR_API_REQUEST', `path: malformed percent-encoding in ${url.pathname}`);
      }
    }
    if (parts.length === 1 && parts[0] === 'session') return this.sessionEndpoint(req, res, method, remoteAddress);

    const match = this.table.match(method, parts);
    const publicRoute = match.kind === 'route' && match.route.role === 'public';
    const session = publicRoute ? null : await this.access.session(req);
    if (!publicRoute && !session) throw new ApiError(401, 'FW_ERR_CONSOLE_AUTH', 'log in first: POST /api/v1/session with {username, password}');

    if (parts.length === 1 && parts[0] === 'events' && match.kind === 'none') {
      if (method !== 'GET')
        throw new ApiError(405, 'FW_ERR_API_REQUEST', `method: ${method} is not allowed on ${url.pathname} (allowed: GET)`, { Allow: 'GET' });
      if (!(await this.events.open(req, res, session!))) throw new ApiError(503, 'FW_ERR_API_STORE', 'too many open event streams; try again later');
      return;
    }
    if (match.kind === 'none') throw new ApiError(404, 'FW_ERR_API_NOT_FOUND', `${url.pathname}: no such endpoint`);
    if (match.kind === 'method') {
      const allow = match.allow.join(', ');
      throw new ApiError(405, 'FW_ERR_API_REQUEST', `method: ${method} is not allowed on ${url.pathname} (allowed: ${allow})`, { Allow: allow });
    }
    const { route, params } = match;
    const change = method !== 'GET' && method !== 'HEAD';
    if (session) {
      if (change) {
        this.access.checkOrigin(req);
        this.access.checkCsrf(req, session);
      }
      this.access.checkRole(session.user, route);
    }
    const body = change ? await readJsonBody(req, res) : undefined;
    const ctx: RouteContext = { query: url.searchParams, params, body, user: session?.user ?? null, remoteAddress, sql: this.sql, now: this.now };
    const answer = await route.handle(ctx);
    if (answer instanceof RouteFile) sendFile(req, res, answer);
    else sendJson(req, res, 200, answer);
  }

  /** `/api/v1/session`: POST logs in (public), GET tells who is logged in, DELETE logs out. */
  private async sessionEndpoint(req: http.IncomingMessage, res: http.ServerResponse, method: string, remoteAddress: string): Promise<void> {
    const answer = (s: Session) => ({ user: s.user, csrfToken: s.csrfToken, expiresTs: s.expiresTs });
    if (method === 'POST') {
      this.access.checkOrigin(req);
      const body = await readJsonBody(req, res);
      const old = await this.access.session(req);
      const { token, session } = await this.access.login(body, remoteAddress);
      // A new login replaces the session the browser had: one cookie, one session.
      if (old) await this.access.sessions.delete(old.idHash);
      sendJson(req, res, 200, answer(session), { 'Set-Cookie': this.access.cookie(token) });
      return;
    }
    if (method !== 'GET' && method !== 'HEAD' && method !== 'DELETE')
      throw new ApiError(405, 'FW_ERR_API_REQUEST', `method: ${method} is not allowed on ${PREFIX}/session (allowed: GET, HEAD, POST, DELETE)`, {
        Allow: 'GET, HEAD, POST, DELETE',
      });
    const session = await this.access.session(req);
    if (!session) throw new ApiError(401, 'FW_ERR_CONSOLE_AUTH', 'not logged in: POST /api/v1/session with {username, password}');
    if (method === 'DELETE') {
      this.access.checkOrigin(req);
      this.access.checkCsrf(req, session);
      await this.access.logout(session, remoteAddress);
      this.events.endSession(session.idHash);
      sendJson(req, res, 200, { loggedOut: true }, { 'Set-Cookie': this.access.clearCookie() });
      return;
    }
    sendJson(req, res, 200, answer(session));
  }

  /**
   * Pages: `/static/…` are the console's files (public: code and styles, no data); every other path is the
   * console's single page (client-side routing), which needs a session except `/login`.
   */
  private async page(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD')
      throw new ApiError(405, 'FW_ERR_API_REQUEST', `method: ${req.method ?? '?'} is not allowed on pages (allowed: GET, HEAD)`, { Allow: 'GET, HEAD' });
    const p = url.pathname;
    if (p.startsWith('/static/')) {
      if (!(await this.files.serve(req, res, p.slice('/static/'.length)))) throw new ApiError(404, 'FW_ERR_API_NOT_FOUND', `${p}: no such file`);
      return;
    }
    if (p !== '/login' && !(await this.access.session(req))) {
      // Only a path of this server may come back as `next` (never `//host`, which a browser reads as another site).
      const next = p.startsWith('//') ? '/' : `${p}${url.search}`;
      res.writeHead(302, { Location: `/login?next=${encodeURIComponent(next)}`, 'Cache-Control': 'no-store', 'Content-Length': '0' });
      res.end();
      return;
    }
    if (!(await this.files.serve(req, res, 'index.html')))
      throw new ApiError(404, 'FW_ERR_API_NOT_FOUND', `${p}: the console's pages are not installed (${this.files.root}/index.html is missing)`);
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
}

function readSecret(option: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ForewarnError('FW_ERR_SECRET_READ', `${option} ${file}: cannot read it: ${describeError(err)}`, { cause: err });
  }
}

export function createCentralApi(options: CentralApiOptions): CentralApi {
  return new CentralApi(options);
}
