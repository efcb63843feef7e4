import path from 'node:path';
import { ForewarnError } from '../../core/errors.js';
import { PostgresClient } from './postgres-client.js';
import type { SqlClient } from './sql-client.js';
import { SqliteClient } from './sqlite-client.js';

/**
 * `--store URL`: `sqlite:PATH` (or a bare path) for the embedded default, `postgres://…` / `postgresql://…` for a
 * fleet. The PostgreSQL password may come from the URL, from PGPASSWORD, or from ~/.pgpass, as with psql.
 */
export async function openSqlClient(url: string, options: { readonly?: boolean; poolSize?: number } = {}): Promise<SqlClient> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    return PostgresClient.open({ url, ...(options.poolSize !== undefined ? { poolSize: options.poolSize } : {}) });
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new ForewarnError('FW_ERR_USAGE', `store "${url}": use sqlite:PATH or postgres://user@host:port/database`);
  }
  const file = url.startsWith('sqlite:') ? url.slice('sqlite:'.length) : url;
  if (!file) throw new ForewarnError('FW_ERR_USAGE', 'store "sqlite:" names no file: use sqlite:PATH');
  return new SqliteClient({ file: path.resolve(file), ...(options.readonly ? { readonly: true } : {}) });
}
