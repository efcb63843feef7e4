import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ConsoleRole, ConsoleUser } from '../../api/api-route.js';
import type { SqlClient } from '../../sql/sql-client.js';

/**
 * Console sessions in the store (table `console_sessions`, console-users.ts), so that every central worker behind
 * one address knows them. The cookie carries a random 32-byte token; the table keeps only its SHA-256. A session
 * ends after `idleMs` without a request or `absoluteMs` after the login, whichever comes first.
 */

export const SESSION_COOKIE = 'fw_session';
export const DEFAULT_IDLE_MS = 30 * 60_000;
export const DEFAULT_ABSOLUTE_MS = 12 * 3_600_000;
/** last_seen_ts is written at most this often per session: a page's burst of requests costs one write. */
const TOUCH_EVERY_MS = 60_000;

export interface Session {
  idHash: string;
  user: ConsoleUser;
  csrfToken: string;
  createdTs: number;
  expiresTs: number;
}

export interface SessionOptions {
  idleMs?: number;
  absoluteMs?: number;
  now?: () => number;
}

export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/** Compares two tokens in constant time (for the CSRF token). */
export function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

type Row = {
  id_hash: string;
  username: string;
  role: string;
  csrf_token: string;
  created_ts: number | string;
  last_seen_ts: number | string;
  expires_ts: number | string;
};

export class ConsoleSessions {
  readonly idleMs: number;
  readonly absoluteMs: number;
  private readonly now: () => number;

  constructor(
    private readonly sql: SqlClient,
    options: SessionOptions = {},
  ) {
    this.idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
    this.absoluteMs = options.absoluteMs ?? DEFAULT_ABSOLUTE_MS;
    this.now = options.now ?? Date.now;
  }

  /** Opens a session for `user`; returns the cookie token (shown once, never stored) and the session. */
  async create(user: ConsoleUser, remoteAddr: string | null): Promise<{ token: string; session: Session }> {
    const token = randomBytes(32).toString('base64url');
    const csrfToken = randomBytes(32).toString('base64url');
    const now = this.now();
    const session: Session = { idHash: hashToken(token), user, csrfToken, createdTs: now, expiresTs: now + this.absoluteMs };
    await this.sql.run(
      'INSERT INTO console_sessions (id_hash, username, csrf_token, created_ts, last_seen_ts, expires_ts, remote_addr) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [session.idHash, user.username, csrfToken, now, now, session.expiresTs, remoteAddr],
    );
    return { token, session };
  }

  /**
   * The live session of a cookie token, with the user's current role (a role changed or a user removed takes
   * effect at the next request), or null. Marks it used; deletes it when it has expired.
   */
  async find(token: string): Promise<Session | null> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return null;
    const idHash = hashToken(token);
    const r = await this.sql.get<Row>(
      `SELECT s.id_hash, s.username, u.role, s.csrf_token, s.created_ts, s.last_seen_ts, s.expires_ts
       FROM console_sessions s JOIN console_users u ON u.username = s.username WHERE s.id_hash = ?`,
      [idHash],
    );
    if (!r) return null;
    const now = this.now();
    const lastSeen = Number(r.last_seen_ts);
    if (now >= Number(r.expires_ts) || now >= lastSeen + this.idleMs) {
      await this.sql.run('DELETE FROM console_sessions WHERE id_hash = ?', [idHash]);
      return null;
    }
    if (now - lastSeen >= TOUCH_EVERY_MS) await this.sql.run('UPDATE console_sessions SET last_seen_ts = ? WHERE id_hash = ?', [now, idHash]);
    return {
      idHash,
      user: { username: r.username, role: r.role as ConsoleRole },
      csrfToken: r.csrf_token,
      createdTs: Number(r.created_ts),
      expiresTs: Math.min(Number(r.expires_ts), Math.max(now, lastSeen) + this.idleMs),
    };
  }

  /** True while the session exists and has not expired (without marking it used: an event stream is not a request). */
  async alive(idHash: string): Promise<boolean> {
    const r = await this.sql.get<{ last_seen_ts: number | string; expires_ts: number | string }>(
      'SELECT last_seen_ts, expires_ts FROM console_sessions WHERE id_hash = ?',
      [idHash],
    );
    const now = this.now();
    return r !== undefined && now < Number(r.expires_ts) && now < Number(r.last_seen_ts) + this.idleMs;
  }

  async delete(idHash: string): Promise<void> {
    await this.sql.run('DELETE FROM console_sessions WHERE id_hash = ?', [idHash]);
  }

  /** Deletes expired sessions; returns how many. */
  async purge(): Promise<number> {
    const now = this.now();
    const { changes } = await this.sql.run('DELETE FROM console_sessions WHERE expires_ts <= ? OR last_seen_ts <= ?', [now, now - this.idleMs]);
    return changes;
  }
}
