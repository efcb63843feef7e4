import type { SqlClient } from '../sql/sql-client.js';

/**
 * A route of the central HTTP server, registered by the module that owns it (the read API, the alert workflow,
 * the console's session endpoints); the server matches, checks the session, the role and the CSRF token, parses
 * the JSON body and calls `handle`. Routes are mounted under `/api/v1`.
 */

/** Roles of console users, weakest first: viewers read, operators also act on alerts, admins also manage users. */
export type ConsoleRole = 'viewer' | 'operator' | 'admin';
export const CONSOLE_ROLES: readonly ConsoleRole[] = ['viewer', 'operator', 'admin'];

/** True when `have` is at least `need`. */
export function roleAllows(have: ConsoleRole, need: ConsoleRole): boolean {
  return CONSOLE_ROLES.indexOf(have) >= CONSOLE_ROLES.indexOf(need);
}

export interface ConsoleUser {
  username: string;
  role: ConsoleRole;
}

export interface RouteContext {
  /** Query parameters (check them with `Params`). */
  query: URLSearchParams;
  /** Values of the pattern's `:name` segments, percent-decoded. */
  params: Record<string, string>;
  /** The parsed JSON body of a POST/PUT/DELETE (`undefined` for GET and for an empty body). */
  body: unknown;
  /** The user of the session; null only on `public` routes. */
  user: ConsoleUser | null;
  /** The client's address (for the audit log and the login rate limit). */
  remoteAddress: string;
  sql: SqlClient;
  now(): number;
}

export interface ApiRoute {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Under `/api/v1`, e.g. `/alerts/actions` or `/assets/:agent/:asset/health`. */
  pattern: string;
  /** The weakest role allowed; `public` needs no session (the health check and the login itself only). */
  role: ConsoleRole | 'public';
  handle(ctx: RouteContext): Promise<unknown>;
}

/**
 * A route's answer that is not JSON (a CSV download): the server sends `body` as it is with this content type,
 * and with `filename` as an attachment.
 */
export class RouteFile {
  constructor(
    readonly contentType: string,
    readonly body: string,
    readonly filename?: string,
  ) {}
}
