import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqlClient } from '../../../../agent/src/central/sql/open-sql-client.js';
import { numberPlaceholders, redactUrl, type SqlClient } from '../../../../agent/src/central/sql/sql-client.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from '../../../helpers/postgres.js';

describe('numberPlaceholders and redactUrl', () => {
  it('numbers ? outside quotes and comments', () => {
    expect(numberPlaceholders('SELECT ?, \'?\', "a?" -- ?\n, ?')).toBe('SELECT $1, \'?\', "a?" -- ?\n, $2');
  });
  it('removes the password from a URL', () => {
    expect(redactUrl('postgres://fw:s3cret@db:5432/central')).toBe('postgres://fw@db:5432/central');
  });
});

const pgSkip = postgresSkipReason();
let cluster: PostgresCluster | undefined;
const dir = mkdtempSync(path.join(tmpdir(), 'fw-sql-'));

beforeAll(async () => {
  if (!pgSkip) cluster = await startPostgres();
}, 120_000);
afterAll(() => {
  cluster?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`SqlClient on ${dialect}`, () => {
    const open = async (name: string): Promise<SqlClient> =>
      dialect === 'sqlite' ? openSqlClient(`sqlite:${path.join(dir, `${name}.db`)}`) : openSqlClient(cluster!.createDatabase(name));

    it.skipIf(dialect === 'postgres' && pgSkip !== null)(
      `commits, rolls back on a throw, and returns integers as numbers${pgSkip && dialect === 'postgres' ? ` (skipped: ${pgSkip})` : ''}`,
      async () => {
        const db = await open('basics');
        try {
          await db.exec(`CREATE TABLE t (k TEXT PRIMARY KEY, n ${dialect === 'postgres' ? 'BIGINT' : 'INTEGER'} NOT NULL)`);
          await db.tx(async (q) => {
            await q.run('INSERT INTO t (k, n) VALUES (?, ?), (?, ?)', ['a', 2 ** 40, 'b', 2]);
          });
          await expect(
            db.tx(async (q) => {
              await q.run('INSERT INTO t (k, n) VALUES (?, ?)', ['c', 3]);
              throw new Error('changed my mind');
            }),
          ).rejects.toThrow('changed my mind');
          const rows = await db.all<{ k: string; n: number }>('SELECT k, n FROM t ORDER BY k');
          expect(rows).toEqual([
            { k: 'a', n: 2 ** 40 },
            { k: 'b', n: 2 },
          ]);
          const sum = await db.get<{ s: number; c: number }>('SELECT SUM(n) AS s, COUNT(*) AS c FROM t');
          expect(sum).toEqual({ s: 2 ** 40 + 2, c: 2 });
          const { changes } = await db.run('INSERT INTO t (k, n) VALUES (?, ?) ON CONFLICT DO NOTHING', ['a', 9]);
          expect(changes).toBe(0);
          const gone = await db.all<{ k: string }>('DELETE FROM t WHERE n < ? RETURNING k', [10]);
          expect(gone).toEqual([{ k: 'b' }]);
        } finally {
          await db.close();
        }
      },
    );

    it.skipIf(dialect === 'postgres' && pgSkip !== null)('serialises transactions on one lock key: no lost update between concurrent writers', async () => {
      const a = await open('locks');
      // PostgreSQL: two pools, as two workers have. SQLite: one client, whose transactions queue behind each other
      // (another process would wait on the file's write lock instead).
      const b = dialect === 'sqlite' ? a : await openSqlClient(`postgres://postgres@127.0.0.1:${cluster!.port}/locks`);
      try {
        await a.exec('CREATE TABLE c (k TEXT PRIMARY KEY, n INTEGER NOT NULL)');
        await a.run("INSERT INTO c (k, n) VALUES ('x', 0)");
        const bump = (db: SqlClient) =>
          db.tx(
            async (q) => {
              const { n } = (await q.get<{ n: number }>("SELECT n FROM c WHERE k = 'x'"))!;
              await new Promise((r) => setTimeout(r, 2));
              await q.run("UPDATE c SET n = ? WHERE k = 'x'", [n + 1]);
            },
            { lockKey: 'agent-1' },
          );
        await Promise.all(Array.from({ length: 20 }, (_, i) => bump(i % 2 ? a : b)));
        expect((await a.get<{ n: number }>("SELECT n FROM c WHERE k = 'x'"))!.n).toBe(20);
      } finally {
        await a.close();
        if (b !== a) await b.close();
      }
    });
  });
}

describe('SqliteClient files', () => {
  it('keeps the database private (0600)', async () => {
    const file = path.join(dir, 'private.db');
    const db = await openSqlClient(`sqlite:${file}`);
    await db.exec('CREATE TABLE x (a INTEGER)');
    await db.close();
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });
  it('refuses a URL scheme it does not know, with the forms it takes', async () => {
    await expect(openSqlClient('mysql://db/central')).rejects.toThrow(/sqlite:PATH or postgres:\/\//);
  });
});
