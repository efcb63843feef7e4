/**
 * The one seam between the central side and its database: SQLite (embedded default, one file) or PostgreSQL (a
 * fleet). Every central component (the ingest ledger, the fleet read model, alert routing) writes its SQL once,
 * against this interface, in the subset both dialects share:
 *
 * - parameters are `?` (the PostgreSQL client rewrites them to `$1…`);
 * - `INSERT … ON CONFLICT … DO NOTHING / DO UPDATE`, `RETURNING`, window functions and CTEs work in both;
 * - integers come back as JS numbers in both (PostgreSQL BIGINT and NUMERIC are parsed; keep values below 2^53);
 * - DDL differs (types, partitioning): a component keeps one DDL text per dialect, chosen by `dialect`.
 *
 * Writes happen in `tx()`: one transaction that other writers cannot interleave with on the same `lockKey`
 * (PostgreSQL: a transaction-scoped advisory lock on it; SQLite: BEGIN IMMEDIATE, which already excludes every
 * other writer). Components therefore read state in the transaction and never from a cache that another worker
 * could have made stale.
 */

export type SqlDialect = 'sqlite' | 'postgres';
export type SqlValue = string | number | bigint | boolean | null | Buffer;

/** Queries, inside or outside a transaction. */
export interface SqlQueries {
  readonly dialect: SqlDialect;
  all<T = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  get<T = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  /** A statement that returns no rows; `changes` is the number of rows it inserted, updated or deleted. */
  run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number }>;
  /** Several statements without parameters (DDL). */
  exec(sql: string): Promise<void>;
}

export interface TxOptions {
  /**
   * Serialises transactions that touch the same state across workers (e.g. one agent's streams). PostgreSQL:
   * `pg_advisory_xact_lock(hashtext(lockKey))`, taken first. SQLite: implied by BEGIN IMMEDIATE.
   */
  lockKey?: string;
}

export interface SqlClient extends SqlQueries {
  /** The store's location for logs, with any password removed. */
  readonly location: string;
  /**
   * Runs `fn` in one transaction: committed when it resolves, rolled back when it throws (and the error rethrown).
   * PostgreSQL serialisation failures and deadlocks are retried a few times before the error reaches the caller.
   * `fn` may run more than once: keep side effects outside the database out of it.
   */
  tx<T>(fn: (q: SqlQueries) => Promise<T>, options?: TxOptions): Promise<T>;
  close(): Promise<void>;
}

/** `postgres://user:secret@host/db` → `postgres://user@host/db`, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '';
    return u.toString().replace(/:@/, '@');
  } catch {
    return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1@');
  }
}

/** `?` placeholders → `$1, $2, …`, leaving `?` inside quoted strings, quoted identifiers and comments alone. */
export function numberPlaceholders(sql: string): string {
  let out = '';
  let n = 0;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      const end = sql.indexOf(c, i + 1);
      const stop = end < 0 ? sql.length : end + 1;
      out += sql.slice(i, stop);
      i = stop - 1;
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      const stop = end < 0 ? sql.length : end;
      out += sql.slice(i, stop);
      i = stop - 1;
    } else if (c === '?') {
      out += `$${++n}`;
    } else {
      out += c;
    }
  }
  return out;
}

/** `(?, ?, ?), (?, ?, ?)`: the VALUES list of a multi-row insert of `rows` rows of `columns` columns. */
export function valuesList(rows: number, columns: number): string {
  const one = `(${new Array<string>(columns).fill('?').join(', ')})`;
  return new Array<string>(rows).fill(one).join(', ');
}
