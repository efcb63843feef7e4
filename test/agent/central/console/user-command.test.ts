import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConsoleUsers } from '../../../../agent/src/central/console/auth/console-users.js';
import { openSqlClient } from '../../../../agent/src/central/sql/open-sql-client.js';
import { CLI, exitedWithOutput } from '../../../helpers/agent-process.js';

const dir = mkdtempSync(path.join(tmpdir(), 'fw-user-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The built CLI as its own process, with `input` on stdin. */
function forewarn(args: string[], input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CLI, ...args], { cwd: dir, env: { ...process.env, FOREWARN_CENTRAL_STORE: '' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += String(d)));
    proc.stderr.on('data', (d) => (stderr += String(d)));
    proc.on('error', reject);
    void exitedWithOutput(proc).then(({ code }) => resolve({ code, stdout, stderr }));
    proc.stdin.end(input);
  });
}

describe('forewarn central user (the built CLI)', () => {
  const db = path.join(dir, 'central.db');
  const store = `sqlite:${db}`;

  it('adds users with the password from stdin or a file, lists them, refuses to remove the last admin, and audits each change', async () => {
    const add = await forewarn(['central', 'user', 'add', 'alice', '--role', 'admin', '--store', store], 'alice password one\nignored second line\n');
    expect([add.code, add.stdout]).toEqual([0, 'added alice (admin)\n']);
    const file = path.join(dir, 'bob.pw');
    writeFileSync(file, 'bob password two\n');
    expect((await forewarn(['central', 'user', 'add', 'bob', '--role', 'viewer', '--password-file', file, '--store', store])).code).toBe(0);

    const list = await forewarn(['central', 'user', 'list', '--store', store, '--json']);
    expect(JSON.parse(list.stdout).map((u: { username: string; role: string }) => [u.username, u.role])).toEqual([
      ['alice', 'admin'],
      ['bob', 'viewer'],
    ]);
    expect((await forewarn(['central', 'user', 'list', '--store', store])).stdout).toMatch(/^user {3}role {6}created\nalice {2}admin {5}\d{4}-/);

    const last = await forewarn(['central', 'user', 'remove', 'alice', '--store', store]);
    expect(last.code).toBe(2);
    expect(last.stderr).toMatch(/user "alice" is the last admin: add another admin before removing it \[FW_ERR_CONSOLE_USER\]/);
    const short = await forewarn(['central', 'user', 'add', 'carol', '--role', 'operator', '--store', store], 'short\n');
    expect([short.code, short.stderr]).toEqual([2, expect.stringMatching(/password: must be at least 12 characters \[FW_ERR_CONSOLE_USER\]/)]);
    const noRole = await forewarn(['central', 'user', 'add', 'carol', '--store', store], 'long enough password\n');
    expect([noRole.code, noRole.stderr]).toEqual([2, expect.stringMatching(/--role is required/)]);

    expect((await forewarn(['central', 'user', 'passwd', 'bob', '--store', store], 'bob password three\n')).code).toBe(0);
    expect((await forewarn(['central', 'user', 'remove', 'bob', '--store', store])).stdout).toBe('removed bob\n');

    const sql = await openSqlClient(store);
    try {
      const users = new ConsoleUsers(sql);
      expect(await users.verify('alice', 'alice password one')).toEqual({ username: 'alice', role: 'admin' });
      const audit = await sql.all<{ username: string; action: string; target: string }>('SELECT username, action, target FROM audit_log ORDER BY id');
      expect(audit.map((a) => [a.action, a.target])).toEqual([
        ['user.add', 'alice'],
        ['user.add', 'bob'],
        ['user.passwd', 'bob'],
        ['user.remove', 'bob'],
      ]);
      expect(audit.every((a) => /^cli:.+/.test(a.username))).toBe(true);
    } finally {
      await sql.close();
    }
  }, 60_000);

  it('prints its usage on --help and never takes a password from the command line', async () => {
    const help = await forewarn(['central', 'user', 'add', '--help']);
    expect([help.code, help.stdout]).toEqual([
      0,
      expect.stringContaining('forewarn central user add NAME --role viewer|operator|admin [--password-file FILE]'),
    ]);
    const argv = await forewarn(['central', 'user', 'add', 'dave', '--role', 'viewer', '--password', 'on the command line', '--store', store]);
    expect(argv.code).toBe(2);
    expect(argv.stderr).toMatch(/Unknown option '--password'/);
  });
});
