import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsoleUsers, migrateConsoleAuth } from '../../../../../agent/src/central/console/auth/console-users.js';
import { hashPassword, verifyPassword } from '../../../../../agent/src/central/console/auth/password-hash.js';
import { openSqlClient } from '../../../../../agent/src/central/sql/open-sql-client.js';
import type { SqlClient } from '../../../../../agent/src/central/sql/sql-client.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from '../../../../helpers/postgres.js';

const pgSkip = postgresSkipReason();
let cluster: PostgresCluster | undefined;
const dir = mkdtempSync(path.join(tmpdir(), 'fw-console-users-'));

beforeAll(async () => {
  if (!pgSkip) cluster = await startPostgres();
}, 120_000);
afterAll(() => {
  cluster?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('console password hashes', () => {
  it('are scrypt N=2^15 r=8 p=1 with a random salt, and verify only the right password', async () => {
    const a = await hashPassword('a long enough passphrase');
    const b = await hashPassword('a long enough passphrase');
    expect(a).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword('a long enough passphrase', a)).toBe(true);
    expect(await verifyPassword('a long enough passphrasE', a)).toBe(false);
    // No user: false, after the same work.
    expect(await verifyPassword('a long enough passphrase', null)).toBe(false);
    expect(await verifyPassword('x', 'scrypt$1073741824$8$1$AAAA$AAAAAAAAAAAAAAAAAAAAAA==')).toBe(false);
  });
});

for (const dialect of ['sqlite', 'postgres'] as const) {
  const skip = dialect === 'postgres' && pgSkip !== null;
  describe.skipIf(skip)(`console users on ${dialect}${skip ? ` (skipped: ${pgSkip})` : ''}`, () => {
    let sql: SqlClient;
    beforeAll(async () => {
      sql = dialect === 'sqlite' ? await openSqlClient(`sqlite:${path.join(dir, 'users.db')}`) : await openSqlClient(cluster!.createDatabase('users'));
      await migrateConsoleAuth(sql);
      await migrateConsoleAuth(sql); // idempotent
    }, 120_000);
    afterAll(async () => {
      await sql?.close();
    });

    it('adds, verifies, lists, changes the password of and removes users, and never removes the last admin', async () => {
      let clock = 1_000;
      const users = new ConsoleUsers(sql, () => clock);
      await users.add('root@site', 'admin', 'first admin password');
      await users.add('op.1', 'operator', 'operator password!');
      expect(await users.list()).toEqual([
        { username: 'op.1', role: 'operator', createdTs: 1_000, updatedTs: 1_000 },
        { username: 'root@site', role: 'admin', createdTs: 1_000, updatedTs: 1_000 },
      ]);
      expect(await users.verify('op.1', 'operator password!')).toEqual({ username: 'op.1', role: 'operator' });
      expect(await users.verify('op.1', 'wrong password here')).toBeNull();
      expect(await users.verify('ghost', 'operator password!')).toBeNull();
      expect(await users.verify('bad name!', 'operator password!')).toBeNull();
      const refused = async (p: Promise<unknown>) => {
        const err = (await p.then(
          () => null,
          (e: unknown) => e,
        )) as { code?: string; message?: string } | null;
        expect(err?.code).toBe('FW_ERR_CONSOLE_USER');
        return err!.message;
      };
      expect(await refused(users.add('op.1', 'viewer', 'another password'))).toMatch(/already exists/);
      expect(await refused(users.add('bad name', 'viewer', 'another password'))).toMatch(/must be 1 to 64 of/);
      expect(await refused(users.add('x'.repeat(65), 'viewer', 'another password'))).toMatch(/must be 1 to 64 of/);
      expect(await refused(users.add('v', 'root', 'another password'))).toMatch(/role "root": must be one of viewer, operator, admin/);
      expect(await refused(users.add('v', 'viewer', 'short'))).toMatch(/at least 12 characters/);
      expect(await refused(users.remove('root@site'))).toMatch(/last admin/);
      expect(await refused(users.remove('nobody'))).toMatch(/no such user/);
      expect(await refused(users.setPassword('nobody', 'a new password'))).toMatch(/no such user/);
      clock = 2_000;
      await users.setPassword('op.1', 'a new operator password');
      expect(await users.verify('op.1', 'operator password!')).toBeNull();
      expect(await users.verify('op.1', 'a new operator password')).toEqual({ username: 'op.1', role: 'operator' });
      expect((await users.list())[0]!.updatedTs).toBe(2_000);
      await users.add('second-admin', 'admin', 'second admin password');
      await users.remove('root@site');
      expect((await users.list()).map((u) => u.username)).toEqual(['op.1', 'second-admin']);
      expect(await refused(users.remove('second-admin'))).toMatch(/last admin/);
      await users.remove('op.1');
      expect(await users.count()).toBe(1);
    });
  });
}
