import type http from 'node:http';
import { describeError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { ApiError } from '../api/api-params.js';
import { roleAllows, type ApiRoute, type ConsoleUser } from '../api/api-route.js';
import type { SqlClient } from '../sql/sql-client.js';
import { migrateWorkflow, recordAudit } from '../workflow/workflow-schema.js';
import { ConsoleSessions, SESSION_COOKIE, sameToken, type Session, type SessionOptions } from './auth/console-sessions.js';
import { ConsoleUsers, MAX_PASSWORD_LENGTH, migrateConsoleAuth } from './auth/console-users.js';
import { LoginLimiter } from './auth/login-limiter.js';
import { bodyObject, bodyString, cookieValue } from './http-basics.js';

/**
 * Who may do what on central's HTTP server: the login (rate-limited, audited), the session behind the cookie,
 * the CSRF and Origin checks of a change, and the role a route needs. The server (api/central-api.ts) asks it;
 * the rules are in docs/console.md ("Users and access").
 */

export interface ConsoleAccessOptions {
  sql: SqlClient;
  log: Logger;
  /** Served over TLS: cookies get `Secure`. */
  secure: boolean;
  session?: Omit<SessionOptions, 'now'>;
  loginLimit?: { maxFailures?: number; windowMs?: number };
  /** Origins besides the server's own that may send changes (the console's public URL behind a proxy). */
  origins?: readonly string[];
  /** How often expired sessions are deleted. Default 10 min. */
  purgeEveryMs?: number;
  now?: () => number;
}

/** A user name as the audit log keeps it when it is not a valid one (a failed login's input). */
const printable = (s: string): string => s.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);

export class ConsoleAccess {
  readonly users: ConsoleUsers;
  readonly sessions: ConsoleSessions;
  private readonly limiter: LoginLimiter;
  private readonly sql: SqlClient;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly origins: Set<string>;
  private purgeTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: ConsoleAccessOptions) {
    this.sql = options.sql;
    this.log = options.log;
    this.now = options.now ?? Date.now;
    this.users = new ConsoleUsers(this.sql, this.now);
    this.sessions = new ConsoleSessions(this.sql, { ...options.session, now: this.now });
    this.limiter = new LoginLimiter({ ...options.loginLimit, now: this.now });
    this.origins = new Set((options.origins ?? []).map((o) => new URL(o).origin));
  }

  /** Creates the users, sessions and audit tables; warns once when no one can log in yet. */
  async start(): Promise<void> {
    await migrateConsoleAuth(this.sql);
    await migrateWorkflow(this.sql);
    if ((await this.users.count()) === 0) {
      this.log.warn(`no console users yet: nobody can log in. Create an admin: forewarn central user add NAME --role admin --store ${this.sql.location}`);
    }
    const every = this.options.purgeEveryMs ?? 10 * 60_000;
    this.purgeTimer = setInterval(() => {
      this.sessions.purge().catch((err: unknown) => this.log.warn({ err: describeError(err) }, 'console: expired sessions not deleted'));
    }, every);
    this.purgeTimer.unref();
  }

  stop(): void {
    if (this.purgeTimer) clearInterval(this.purgeTimer);
    this.purgeTimer = null;
  }

  /** The session of the request's cookie, or null. */
  async session(req: http.IncomingMessage): Promise<Session | null> {
    const token = cookieValue(req.headers.cookie, SESSION_COOKIE);
    return token ? this.sessions.find(token) : null;
  }

  /** `POST /api/v1/session`: checks the password under the rate limit, opens a session, audits both outcomes. */
  async login(body: unknown, remoteAddr: string): Promise<{ token: string; session: Session }> {
    const b = bodyObject(body);
    const username = bodyString(b, 'username', 256);
    const password = bodyString(b, 'password', MAX_PASSWORD_LENGTH);
    const wait = this.limiter.retryAfter(remoteAddr, username);
    if (wait > 0) {
      this.log.warn({ username: printable(username), remoteAddr }, 'console login refused: too many failed logins');
      throw new ApiError(429, 'FW_ERR_CONSOLE_RATE_LIMIT', `too many failed logins; try again in ${wait} s`, { 'Retry-After': String(wait) });
    }
    const user = await this.users.verify(username, password);
    if (!user) {
      this.limiter.fail(remoteAddr, username);
      await recordAudit(this.sql, { ts: this.now(), username: printable(username), action: 'login-failed', target: null, remoteAddr });
      this.log.info({ username: printable(username), remoteAddr }, 'console login failed');
      throw new ApiError(401, 'FW_ERR_CONSOLE_LOGIN', 'wrong user name or password');
    }
    this.limiter.succeed(username);
    const opened = await this.sessions.create(user, remoteAddr);
    await recordAudit(this.sql, { ts: this.now(), username: user.username, action: 'login', details: { role: user.role }, remoteAddr });
    this.log.info({ username: user.username, role: user.role, remoteAddr }, 'console login');
    return opened;
  }

  async logout(session: Session, remoteAddr: string): Promise<void> {
    await this.sessions.delete(session.idHash);
    await recordAudit(this.sql, { ts: this.now(), username: session.user.username, action: 'logout', remoteAddr });
  }

  /** The Set-Cookie value of a new session: HttpOnly, SameSite=Strict, Secure over TLS, for the absolute lifetime. */
  cookie(token: string): string {
    return `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${Math.floor(this.sessions.absoluteMs / 1000)}${this.options.secure ? '; Secure' : ''}`;
  }

  clearCookie(): string {
    return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${this.options.secure ? '; Secure' : ''}`;
  }

  /**
   * A change (POST, PUT, DELETE) must come from our own origin when the browser says where it comes from. The
   * server's own origin is the scheme and the Host header the client used.
   */
  checkOrigin(req: http.IncomingMessage): void {
    const origin = req.headers.origin;
    if (origin === undefined) return;
    const own = `${this.options.secure ? 'https' : 'http'}://${req.headers.host ?? ''}`;
    if (origin !== own && !this.origins.has(origin))
      throw new ApiError(403, 'FW_ERR_CONSOLE_CSRF', `origin ${origin.slice(0, 200)} may not make changes here (expected ${own})`);
  }

  /** The session's CSRF token must come in `X-CSRF-Token` with every change. */
  checkCsrf(req: http.IncomingMessage, session: Session): void {
    const sent = req.headers['x-csrf-token'];
    if (typeof sent !== 'string' || !sameToken(sent, session.csrfToken))
      throw new ApiError(403, 'FW_ERR_CONSOLE_CSRF', `${sent === undefined ? 'no' : 'wrong'} X-CSRF-Token: send the csrfToken of your session`);
  }

  checkRole(user: ConsoleUser, route: Pick<ApiRoute, 'role' | 'method' | 'pattern'>): void {
    if (route.role !== 'public' && !roleAllows(user.role, route.role))
      throw new ApiError(403, 'FW_ERR_CONSOLE_FORBIDDEN', `${route.method} ${route.pattern} needs the ${route.role} role; ${user.username} is ${user.role}`);
  }
}
