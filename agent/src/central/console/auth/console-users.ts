import { ForewarnError } from '../../../core/errors.js';
import { CONSOLE_ROLES, type ConsoleRole, type ConsoleUser } from '../../api/api-route.js';
import { ensureSchemaTable, migrateComponent, MIGRATION_LOCK, type Migration } from '../../sql/migrations.js';
import type { SqlClient, SqlQueries } from '../../sql/sql-client.js';
import { hashPassword, verifyPassword } from './password-hash.js';

/**
 * The console's local users and their sessions (component `central-console-auth`):
 *
 * - `console_users`: username, scrypt password hash (password-hash.ts), role (viewer, operator, admin), times.
 * - `console_sessions`: one row per login; `id_hash` is the SHA-256 of the cookie's token (the token itself is
 *   never stored, so a copy of the database opens no session), the CSRF token, and the idle and absolute expiry.
 */

export const CONSOLE_AUTH_COMPONENT = 'central-console-auth';

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    async up(q) {
      const big = q.dialect === 'postgres' ? 'BIGINT' : 'INTEGER';
      await q.exec(`
        CREATE TABLE console_users (
          username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL,
          created_ts ${big} NOT NULL, updated_ts ${big} NOT NULL
        );
        CREATE TABLE console_sessions (
          id_hash TEXT PRIMARY KEY, username TEXT NOT NULL, csrf_token TEXT NOT NULL, created_ts ${big} NOT NULL,
          last_seen_ts ${big} NOT NULL, expires_ts ${big} NOT NULL, remote_addr TEXT
        );
        CREATE INDEX console_sessions_user ON console_sessions (username);
        CREATE INDEX console_sessions_expires ON console_sessions (expires_ts);
      `);
    },
  },
];

/** Creates or upgrades the users and sessions tables (idempotent; safe from several workers at once). */
export async function migrateConsoleAuth(sql: SqlClient): Promise<void> {
  await sql.tx(
    async (q) => {
      await ensureSchemaTable(q);
      await migrateComponent(q, CONSOLE_AUTH_COMPONENT, MIGRATIONS);
    },
    { lockKey: MIGRATION_LOCK },
  );
}

export const USERNAME_PATTERN = /^[A-Za-z0-9._@-]{1,64}$/;
export const MIN_PASSWORD_LENGTH = 12;
/** Longer passwords only cost hashing time; a passphrase fits well within this. */
export const MAX_PASSWORD_LENGTH = 1024;
/** Serialises user changes across workers, so that two removals cannot both see "another admin is left". */
const USERS_LOCK = 'forewarn-console-users';

const userError = (message: string) => new ForewarnError('FW_ERR_CONSOLE_USER', message);

export function checkUsername(name: string): string {
  if (!USERNAME_PATTERN.test(name)) throw userError(`user name "${name.slice(0, 80)}": must be 1 to 64 of A-Z a-z 0-9 . _ @ -`);
  return name;
}

export function checkRole(role: string): ConsoleRole {
  if (!(CONSOLE_ROLES as readonly string[]).includes(role)) throw userError(`role "${role}": must be one of ${CONSOLE_ROLES.join(', ')}`);
  return role as ConsoleRole;
}

export function checkPassword(password: string): string {
  if ([...password].length < MIN_PASSWORD_LENGTH) throw userError(`password: must be at least ${MIN_PASSWORD_LENGTH} characters`);
  if (password.length > MAX_PASSWORD_LENGTH) throw userError(`password: must be at most ${MAX_PASSWORD_LENGTH} characters`);
  return password;
}

export interface ConsoleUserRow extends ConsoleUser {
  createdTs: number;
  updatedTs: number;
}

type Row = { username: string; role: string; created_ts: number | string; updated_ts: number | string };
const toUser = (r: Row): ConsoleUserRow => ({
  username: r.username,
  role: r.role as ConsoleRole,
  createdTs: Number(r.created_ts),
  updatedTs: Number(r.updated_ts),
});

/** Users of the console, over the store (tables made by `migrateConsoleAuth`). */
export class ConsoleUsers {
  constructor(
    private readonly sql: SqlClient,
    private readonly now: () => number = Date.now,
  ) {}

  async list(): Promise<ConsoleUserRow[]> {
    return (await this.sql.all<Row>('SELECT username, role, created_ts, updated_ts FROM console_users ORDER BY username')).map(toUser);
  }

  async count(): Promise<number> {
    const r = await this.sql.get<{ n: number | string }>('SELECT COUNT(*) AS n FROM console_users');
    return Number(r?.n ?? 0);
  }

  /**
   * Adds a user; `audit` runs in the same transaction (so the audit log holds exactly the changes made).
   * The password is hashed before the transaction: scrypt must not hold the lock.
   */
  async add(name: string, role: string, password: string, audit?: (q: SqlQueries) => Promise<void>): Promise<ConsoleUserRow> {
    const username = checkUsername(name);
    const r = checkRole(role);
    const hash = await hashPassword(checkPassword(password));
    const ts = this.now();
    await this.sql.tx(
      async (q) => {
        const { changes } = await q.run(
          'INSERT INTO console_users (username, password_hash, role, created_ts, updated_ts) VALUES (?, ?, ?, ?, ?) ON CONFLICT (username) DO NOTHING',
          [username, hash, r, ts, ts],
        );
        if (changes === 0) throw userError(`user "${username}" already exists (change its password with: user passwd ${username})`);
        await audit?.(q);
      },
      { lockKey: USERS_LOCK },
    );
    return { username, role: r, createdTs: ts, updatedTs: ts };
  }

  /** Removes a user and ends its sessions; refuses to remove the last admin. */
  async remove(name: string, audit?: (q: SqlQueries) => Promise<void>): Promise<void> {
    const username = checkUsername(name);
    await this.sql.tx(
      async (q) => {
        const user = await q.get<{ role: string }>('SELECT role FROM console_users WHERE username = ?', [username]);
        if (!user) throw userError(`user "${username}": no such user`);
        if (user.role === 'admin') {
          const admins = await q.get<{ n: number | string }>("SELECT COUNT(*) AS n FROM console_users WHERE role = 'admin'");
          if (Number(admins?.n ?? 0) <= 1) throw userError(`user "${username}" is the last admin: add another admin before removing it`);
        }
        await q.run('DELETE FROM console_users WHERE username = ?', [username]);
        await q.run('DELETE FROM console_sessions WHERE username = ?', [username]);
        await audit?.(q);
      },
      { lockKey: USERS_LOCK },
    );
  }

  /** Sets a new password and ends the user's sessions (whoever knew the old one is logged out). */
  async setPassword(name: string, password: string, audit?: (q: SqlQueries) => Promise<void>): Promise<void> {
    const username = checkUsername(name);
    const hash = await hashPassword(checkPassword(password));
    await this.sql.tx(
      async (q) => {
        const { changes } = await q.run('UPDATE console_users SET password_hash = ?, updated_ts = ? WHERE username = ?', [hash, this.now(), username]);
        if (changes === 0) throw userError(`user "${username}": no such user`);
        await q.run('DELETE FROM console_sessions WHERE username = ?', [username]);
        await audit?.(q);
      },
      { lockKey: USERS_LOCK },
    );
  }

  /** The user when the password is right, else null; an unknown user costs one scrypt too (no timing oracle). */
  async verify(name: string, password: string): Promise<ConsoleUser | null> {
    const row =
      USERNAME_PATTERN.test(name) && password.length <= MAX_PASSWORD_LENGTH
        ? await this.sql.get<{ password_hash: string; role: string }>('SELECT password_hash, role FROM console_users WHERE username = ?', [name])
        : undefined;
    const ok = await verifyPassword(password.slice(0, MAX_PASSWORD_LENGTH), row?.password_hash ?? null);
    return ok && row ? { username: name, role: row.role as ConsoleRole } : null;
  }
}
