import type { Pool, PoolClient, PoolConfig } from 'pg';
import { ForewarnError, describeError } from '../../core/errors.js';
import { numberPlaceholders, redactUrl, type SqlClient, type SqlQueries, type SqlValue, type TxOptions } from './sql-client.js';

/**
 * The central store on PostgreSQL (node-postgres, a pool per worker). `pg` is imported only when a postgres://
 * store is configured, so the embedded default never loads it.
 *
 * Integers: BIGINT (OID 20) and NUMERIC (1700, what SUM() of a BIGINT returns) come back as numbers rather than
 * node-postgres's default strings; the central schema keeps them below 2^53 (milliseconds, seqs, counts).
 */

export interface PostgresClientOptions {
  url: string;
  /** Connections per worker. Default 4. */
  poolSize?: number;
  /** Default 'forewarn-central'. */
  applicationName?: string;
}

/** SQLSTATEs worth one more try: serialization_failure, deadlock_detected. */
const RETRYABLE = new Set(['40001', '40P01']);
const MAX_TRIES = 5;
const NUMBER_OIDS = new Set([20, 1700]);

type Queryable = Pick<PoolClient, 'query'>;

function queries(db: Queryable): SqlQueries {
  const cache = new Map<string, string>();
  const text = (sql: string) => {
    let t = cache.get(sql);
    if (t === undefined) cache.set(sql, (t = numberPlaceholders(sql)));
    return t;
  };
  return {
    dialect: 'postgres',
    async all<T>(sql: string, params: readonly SqlValue[] = []) {
      return (await db.query(text(sql), params as unknown[])).rows as T[];
    },
    async get<T>(sql: string, params: readonly SqlValue[] = []) {
      return (await db.query(text(sql), params as unknown[])).rows[0] as T | undefined;
    },
    async run(sql: string, params: readonly SqlValue[] = []) {
      return { changes: (await db.query(text(sql), params as unknown[])).rowCount ?? 0 };
    },
    async exec(sql: string) {
      await db.query(sql);
    },
  };
}

export class PostgresClient implements SqlClient {
  readonly dialect = 'postgres' as const;
  readonly location: string;
  private readonly pool: Pool;
  private readonly direct: SqlQueries;

  private constructor(pool: Pool, url: string) {
    this.pool = pool;
    this.location = redactUrl(url);
    this.direct = queries(pool);
  }

  /** Connects (one round trip, so a wrong URL or password fails here with a clear error, not at the first batch). */
  static async open(options: PostgresClientOptions): Promise<PostgresClient> {
    const { default: pg } = await import('pg');
    const config: PoolConfig = {
      connectionString: options.url,
      max: options.poolSize ?? 4,
      application_name: options.applicationName ?? 'forewarn-central',
      types: {
        getTypeParser: ((oid: number, format?: string) =>
          NUMBER_OIDS.has(oid) ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as never,
      },
    };
    const pool = new pg.Pool(config);
    // An idle connection that dies (server restart) must not crash the process: the next query reconnects.
    pool.on('error', () => undefined);
    const client = new PostgresClient(pool, options.url);
    try {
      await pool.query('SELECT 1');
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw new ForewarnError('FW_ERR_STORAGE_OPEN', `${client.location}: ${describeError(err)}`, { cause: err });
    }
    return client;
  }

  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    return this.direct.all<T>(sql, params);
  }

  get<T>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined> {
    return this.direct.get<T>(sql, params);
  }

  run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number }> {
    return this.direct.run(sql, params);
  }

  exec(sql: string): Promise<void> {
    return this.direct.exec(sql);
  }

  async tx<T>(fn: (q: SqlQueries) => Promise<T>, options?: TxOptions): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const conn = await this.pool.connect();
      let broken = false;
      // A checked-out connection that dies (server restart) emits 'error' on itself, not on the pool: without a
      // listener that would end the process. The query in flight rejects as well, which is what the caller sees.
      const onError = () => {
        broken = true;
      };
      conn.on('error', onError);
      try {
        await conn.query('BEGIN');
        if (options?.lockKey !== undefined) await conn.query('SELECT pg_advisory_xact_lock(hashtext($1))', [options.lockKey]);
        const value = await fn(queries(conn));
        await conn.query('COMMIT');
        return value;
      } catch (err) {
        try {
          await conn.query('ROLLBACK');
        } catch {
          broken = true; // the connection itself died: drop it from the pool
        }
        const code = (err as { code?: unknown }).code;
        if (typeof code === 'string' && RETRYABLE.has(code) && attempt < MAX_TRIES) continue;
        throw err;
      } finally {
        conn.off('error', onError);
        conn.release(broken);
      }
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
