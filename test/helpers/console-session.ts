/* eslint-disable @typescript-eslint/no-explicit-any -- JSON bodies of the API, checked by the tests that read them */
import { ConsoleUsers, migrateConsoleAuth } from '../../agent/src/central/console/auth/console-users.js';
import type { ConsoleRole } from '../../agent/src/central/api/api-route.js';
import type { SqlClient } from '../../agent/src/central/sql/sql-client.js';

/**
 * A logged-in client of central's HTTP server for tests: makes the user in the store (once), logs in over HTTP
 * like the console does, and returns a fetch that sends the session cookie, and on a change the CSRF token.
 */

export const TEST_PASSWORD = 'correct horse battery staple';

export interface ConsoleClient {
  /** fetch(`${base}${path}`) with the cookie; POST/PUT/DELETE also get X-CSRF-Token (and a JSON body's type). */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** GET a path and parse its JSON. */
  get(path: string): Promise<{ status: number; type: string | null; body: Record<string, any> }>;
  /** The `Cookie` header value (`fw_session=…`). */
  cookie: string;
  csrfToken: string;
  user: { username: string; role: ConsoleRole };
}

/** Adds the user unless it exists (with TEST_PASSWORD unless told otherwise). */
export async function ensureConsoleUser(sql: SqlClient, username: string, role: ConsoleRole, password = TEST_PASSWORD): Promise<void> {
  await migrateConsoleAuth(sql);
  const users = new ConsoleUsers(sql);
  if (!(await users.list()).some((u) => u.username === username)) await users.add(username, role, password);
}

/** Logs in over HTTP at `base` (http://host:port); `sql` given: the user is created first. */
export async function consoleSession(
  base: string,
  sql: SqlClient | null,
  options: { username?: string; role?: ConsoleRole; password?: string } = {},
): Promise<ConsoleClient> {
  const role = options.role ?? 'admin';
  const username = options.username ?? `test-${role}`;
  const password = options.password ?? TEST_PASSWORD;
  if (sql) await ensureConsoleUser(sql, username, role, password);
  const res = await fetch(`${base}/api/v1/session`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (res.status !== 200) throw new Error(`login of ${username} failed: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { csrfToken: string; user: { username: string; role: ConsoleRole } };
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0]!;
  const client: ConsoleClient = {
    cookie,
    csrfToken: body.csrfToken,
    user: body.user,
    fetch(path, init = {}) {
      const headers = new Headers(init.headers);
      headers.set('Cookie', cookie);
      const method = (init.method ?? 'GET').toUpperCase();
      if (method !== 'GET' && method !== 'HEAD') {
        if (!headers.has('X-CSRF-Token')) headers.set('X-CSRF-Token', body.csrfToken);
        if (init.body !== undefined && !headers.has('Content-Type')) headers.set('Content-Type', 'application/json');
      }
      return fetch(`${base}${path}`, { ...init, headers });
    },
    async get(path) {
      const r = await client.fetch(path);
      return { status: r.status, type: r.headers.get('content-type'), body: (await r.json()) as Record<string, any> };
    },
  };
  return client;
}
