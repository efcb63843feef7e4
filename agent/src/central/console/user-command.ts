import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { ForewarnError, describeError } from '../../core/errors.js';
import { exitStatus } from '../central-report.js';
import { openSqlClient } from '../sql/open-sql-client.js';
import type { SqlClient, SqlQueries } from '../sql/sql-client.js';
import { migrateWorkflow, recordAudit } from '../workflow/workflow-schema.js';
import { ConsoleUsers, migrateConsoleAuth } from './auth/console-users.js';

/**
 * `forewarn central user add|list|remove|passwd`: the console's local users, in the central store. A password
 * comes from `--password-file` or stdin (one line; typed without echo on a terminal), never from the command
 * line, which every user of the machine can read. Each change is written to the audit log as `cli:<os user>`.
 */

export const USER_USAGE = `forewarn central user — the console's users (roles: viewer reads; operator also acts on alerts; admin also manages users)

Usage:
  forewarn central user add NAME --role viewer|operator|admin [--password-file FILE] [--store URL]
  forewarn central user list [--store URL] [--json]
  forewarn central user remove NAME [--store URL]
  forewarn central user passwd NAME [--password-file FILE] [--store URL]

  NAME                  1 to 64 of A-Z a-z 0-9 . _ @ -
  --role ROLE           viewer, operator or admin
  --password-file FILE  read the password from the file's first line; without it, from stdin (one line; on a
                        terminal it is asked for and not echoed). At least 12 characters
  --store URL           sqlite:PATH (default sqlite:./forewarn-central.db) or postgres://…; or FOREWARN_CENTRAL_STORE
  --json                with list: print JSON

passwd ends the user's sessions; remove ends them and refuses to remove the last admin. Changes take effect at
once on running central workers (they share the store). Exit codes: 0 ok, 1 failure, 2 usage or a refused
change (FW_ERR_CONSOLE_USER). See docs/console.md ("Users and access").`;

const STORE_ENV = 'FOREWARN_CENTRAL_STORE';
const DEFAULT_STORE = 'sqlite:./forewarn-central.db';

/** Who made a change from the command line, as the audit log names them. */
export function cliUsername(): string {
  let name: string;
  try {
    name = userInfo().username;
  } catch {
    name = process.env.USER ?? process.env.LOGNAME ?? 'unknown';
  }
  return `cli:${name}`;
}

const usage = (message: string) => new ForewarnError('FW_ERR_USAGE', message);

/** The first line of `text`, without its line ending. */
const firstLine = (text: string): string => text.split(/\r?\n/, 1)[0] ?? '';

export async function readPassword(file: string | undefined, prompt: string, stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  if (file !== undefined) {
    try {
      return firstLine(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ForewarnError('FW_ERR_SECRET_READ', `--password-file ${file}: cannot read it: ${describeError(err)}`, { cause: err });
    }
  }
  return stdin.isTTY ? readHidden(prompt, stdin) : firstLine(await readLine(stdin));
}

/** Reads stdin up to its first newline (or its end). */
function readLine(stdin: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const done = () => {
      stdin.off('data', onData);
      stdin.off('end', done);
      stdin.off('error', reject);
      stdin.pause();
      resolve(text);
    };
    const onData = (chunk: Buffer | string) => {
      text += chunk.toString();
      if (text.includes('\n')) done();
    };
    stdin.on('data', onData);
    stdin.once('end', done);
    stdin.once('error', reject);
    stdin.resume();
  });
}

/** Asks on the terminal without echoing what is typed. */
function readHidden(prompt: string, stdin: NodeJS.ReadStream): Promise<string> {
  process.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let text = '';
    stdin.setRawMode(true);
    stdin.setEncoding('utf8');
    const finish = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.off('data', onData);
      stdin.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(text);
    };
    const onData = (chunk: string) => {
      for (const c of chunk) {
        if (c === '\r' || c === '\n' || c === '\u0004') return finish();
        if (c === '\u0003') return finish(usage('cancelled'));
        if (c === '\u007f' || c === '\b') text = text.slice(0, -1);
        else text += c;
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
}

async function withUsers<T>(store: string, fn: (users: ConsoleUsers, sql: SqlClient) => Promise<T>): Promise<T> {
  const sql = await openSqlClient(store);
  try {
    await migrateConsoleAuth(sql);
    await migrateWorkflow(sql);
    return await fn(new ConsoleUsers(sql), sql);
  } finally {
    await sql.close();
  }
}

const audit =
  (action: string, target: string, details: Record<string, unknown> = {}) =>
  (q: SqlQueries) =>
    recordAudit(q, { ts: Date.now(), username: cliUsername(), action, target, details, remoteAddr: null });

/** Runs `forewarn central user …` (the words after `user`); returns the exit status. */
export function runUserCommand(argv: string[], stdin: NodeJS.ReadStream = process.stdin): Promise<number> {
  return exitStatus('central user', USER_USAGE, async () => {
    const [sub, ...rest] = argv;
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      strict: true,
      options: {
        store: { type: 'string' },
        role: { type: 'string' },
        'password-file': { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help || sub === 'help' || sub === '--help' || sub === '-h') {
      process.stdout.write(`${USER_USAGE}\n`);
      return 0;
    }
    const store = values.store ?? process.env[STORE_ENV] ?? DEFAULT_STORE;
    const takes = (names: string[], count: number) => {
      for (const n of ['role', 'password-file', 'json'] as const)
        if (!names.includes(n) && values[n] !== undefined && values[n] !== false) throw usage(`user ${sub}: --${n} does not apply`);
      if (positionals.length !== count)
        throw usage(
          `user ${sub}: ${count ? 'give the user NAME' : 'takes no NAME'}${positionals.length > count ? ` (unexpected: ${positionals[count]})` : ''}`,
        );
    };
    switch (sub) {
      case 'add': {
        takes(['role', 'password-file'], 1);
        const name = positionals[0]!;
        if (values.role === undefined) throw usage('user add: --role is required (viewer, operator or admin)');
        const password = await readPassword(values['password-file'], `Password for ${name}: `, stdin);
        const user = await withUsers(store, (users) => users.add(name, values.role!, password, audit('user.add', name, { role: values.role })));
        process.stdout.write(`added ${user.username} (${user.role})\n`);
        return 0;
      }
      case 'passwd': {
        takes(['password-file'], 1);
        const name = positionals[0]!;
        const password = await readPassword(values['password-file'], `New password for ${name}: `, stdin);
        await withUsers(store, (users) => users.setPassword(name, password, audit('user.passwd', name)));
        process.stdout.write(`changed the password of ${name}; its sessions are ended\n`);
        return 0;
      }
      case 'remove': {
        takes([], 1);
        const name = positionals[0]!;
        await withUsers(store, (users) => users.remove(name, audit('user.remove', name)));
        process.stdout.write(`removed ${name}\n`);
        return 0;
      }
      case 'list': {
        takes(['json'], 0);
        const list = await withUsers(store, (users) => users.list());
        if (values.json) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
        else if (!list.length) process.stdout.write('no users (add one: forewarn central user add NAME --role admin)\n');
        else {
          const w = Math.max(4, ...list.map((u) => u.username.length));
          process.stdout.write(
            [
              `${'user'.padEnd(w)}  role      created`,
              ...list.map((u) => `${u.username.padEnd(w)}  ${u.role.padEnd(8)}  ${new Date(u.createdTs).toISOString()}`),
            ].join('\n') + '\n',
          );
        }
        return 0;
      }
      default:
        throw usage(sub === undefined ? 'user: say add, list, remove or passwd' : `user: "${sub}" is not add, list, remove or passwd`);
    }
  });
}
