import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ForewarnError, describeError } from '../../core/errors.js';
import { StatementCache, restrictDatabaseFiles } from '../../store/sqlite-files.js';
import type { SqlClient, SqlQueries, SqlValue, TxOptions } from './sql-client.js';

/**
 * The central store on one SQLite file (the embedded default: `forewarn central` works on a laptop with nothing
 * to install). better-sqlite3 is synchronous, so every query resolves at once; transactions are still queued one
 * after the other, because a caller's `fn` awaits between its queries and a second caller must not slip its
 * statements into the first one's transaction. Several processes may share the file: BEGIN IMMEDIATE takes the
 * write lock at the start (no lock upgrade, so two writers never deadlock) and busy_timeout waits for it.
 */

export interface SqliteClientOptions {
  file: string;
  /** Open an existing file for reading only (reports). */
  readonly?: boolean;
}

const bind = (params: readonly SqlValue[] = []) => params.map((p) => (typeof p === 'boolean' ? (p ? 1 : 0) : p));

export class SqliteClient implements SqlClient {
  readonly dialect = 'sqlite' as const;
  readonly location: string;
  readonly db: Database.Database;
  private readonly statements: StatementCache;
  /** The tail of the queue of transactions. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: SqliteClientOptions) {
    this.location = options.file;
    try {
      if (options.readonly) {
        if (!existsSync(options.file)) throw new Error('no such database (has the central service run with this store?)');
        this.db = new Database(options.file, { readonly: true, fileMustExist: true });
        this.db.pragma('busy_timeout = 5000');
      } else {
        const dir = path.dirname(options.file);
        if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
        this.db = new Database(options.file);
        // Set before anything else: another worker may hold the write lock right now.
        this.db.pragma('busy_timeout = 5000');
        restrictDatabaseFiles(options.file);
        this.db.pragma('journal_mode = WAL');
        // FULL, not NORMAL: a message is acknowledged to the broker once committed, so the commit must survive a
        // power cut, or the record is lost on both sides.
        this.db.pragma('synchronous = FULL');
        restrictDatabaseFiles(options.file);
      }
    } catch (err) {
      throw new ForewarnError('FW_ERR_STORAGE_OPEN', `${options.file}: ${describeError(err)}`, { cause: err });
    }
    this.statements = new StatementCache(() => this.db);
  }

  private statement(sql: string): Database.Statement {
    return this.statements.get(sql);
  }

  async all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    return this.statement(sql).all(...bind(params)) as T[];
  }

  async get<T>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined> {
    return this.statement(sql).get(...bind(params)) as T | undefined;
  }

  async run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number }> {
    const st = this.statement(sql);
    // A statement with RETURNING is a reader: run it through all() so its rows are consumed.
    if (st.reader) return { changes: st.all(...bind(params)).length };
    return { changes: st.run(...bind(params)).changes };
  }

  async exec(sql: string): Promise<void> {
    this.db.exec(sql);
    // Statements prepared against an older schema are prepared again.
    this.statements.clear();
  }

  tx<T>(fn: (q: SqlQueries) => Promise<T>, _options?: TxOptions): Promise<T> {
    const result = this.queue.then(async () => {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const value = await fn(this);
        this.db.exec('COMMIT');
        return value;
      } catch (err) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw err;
      }
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  async close(): Promise<void> {
    await this.queue;
    if (!this.db.open) return;
    if (!this.db.readonly) {
      try {
        this.db.pragma('wal_checkpoint(TRUNCATE)');
      } catch {
        // another worker may be reading; SQLite checkpoints later
      }
    }
    this.db.close();
  }
}
