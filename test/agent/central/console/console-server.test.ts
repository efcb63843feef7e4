/* eslint-disable @typescript-eslint/no-explicit-any -- the responses are parsed JSON, checked field by field against expected values */
import http from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCentralApi, type CentralApi, type CentralApiOptions } from '../../../../agent/src/central/api/central-api.js';
import type { ApiRoute } from '../../../../agent/src/central/api/api-route.js';
import { CONTENT_SECURITY_POLICY } from '../../../../agent/src/central/console/http-basics.js';
import { FleetProjection } from '../../../../agent/src/central/fleet/fleet-projection.js';
import { FleetRegistry } from '../../../../agent/src/central/fleet-registry.js';
import { openSqlClient } from '../../../../agent/src/central/sql/open-sql-client.js';
import type { SqlClient } from '../../../../agent/src/central/sql/sql-client.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { createLedgerTables, ingest, migrateProjections } from '../../../helpers/central-records.js';
import { TEST_PASSWORD, consoleSession, ensureConsoleUser } from '../../../helpers/console-session.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from '../../../helpers/postgres.js';

const pgSkip = postgresSkipReason();
let cluster: PostgresCluster | undefined;
const dir = mkdtempSync(path.join(tmpdir(), 'fw-console-'));
// The static folder, and a secret beside it that no request may reach.
const staticDir = path.join(dir, 'static');
mkdirSync(staticDir);
writeFileSync(path.join(staticDir, 'index.html'), '<!doctype html><title>console</title>');
writeFileSync(path.join(staticDir, 'console.js'), 'export const x = 1;\n');
writeFileSync(path.join(staticDir, '.env'), 'HIDDEN=1');
writeFileSync(path.join(dir, 'secret.txt'), 'TOP-SECRET');
symlinkSync(path.join(dir, 'secret.txt'), path.join(staticDir, 'link.txt'));

beforeAll(async () => {
  if (!pgSkip) cluster = await startPostgres();
}, 120_000);
afterAll(() => {
  cluster?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const NOW = Date.UTC(2026, 11, 7, 12, 0, 0);
const MIN = 60_000;

/** A route only operators may call, echoing what the server handed it. */
const echo: ApiRoute = {
  method: 'POST',
  pattern: '/test/echo/:id',
  role: 'operator',
  handle: async (ctx) => ({ id: ctx.params.id, body: ctx.body, user: ctx.user }),
};

const riskBatch = (seq: number, ts: number, score: number) => ({
  agentId: 'a1',
  stream: 'risk',
  bootSeq: 1,
  historical: false,
  receivedTs: ts,
  records: [
    { seq, ts, asset: 'mill', model: 'm', modelVersion: '1', kind: 'probability', score, threshold: 0.5, atRisk: score >= 0.5, readingTs: ts, drivers: [] },
  ],
});

/** Raw HTTP, so that the path reaches the server exactly as written (fetch would normalise `..`). */
function rawGet(
  base: string,
  rawPath: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: rawPath, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += String(d)));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  const skip = dialect === 'postgres' && pgSkip !== null;
  describe.skipIf(skip)(`console access on ${dialect}${skip ? ` (skipped: ${pgSkip})` : ''}`, () => {
    let sql: SqlClient;
    let n = 0;
    const servers: CentralApi[] = [];
    const projections = [new FleetRegistry(), new FleetProjection({ rollupMetrics: [] })];

    /** A server of its own (the login rate limit is per server and per address: tests must not share one). */
    async function serve(options: Partial<CentralApiOptions> = {}): Promise<{ api: CentralApi; base: string; lines: Array<Record<string, unknown>> }> {
      const { log, lines } = captureLogger();
      const api = createCentralApi({ sql, log, port: 0, now: () => NOW, routes: [echo], staticDir, ...options });
      await api.start();
      servers.push(api);
      return { api, base: `http://127.0.0.1:${api.address().port}`, lines };
    }

    beforeAll(async () => {
      sql =
        dialect === 'sqlite' ? await openSqlClient(`sqlite:${path.join(dir, `console-${n++}.db`)}`) : await openSqlClient(cluster!.createDatabase('console'));
      await createLedgerTables(sql);
      await migrateProjections(sql, projections);
      await ingest(sql, projections, riskBatch(1, NOW - 10 * MIN, 0.2));
    }, 120_000);
    afterAll(async () => {
      for (const s of servers) await s.stop();
      await sql?.close();
    });

    it('warns at start when there is no user yet, saying how to make an admin', async () => {
      const { lines } = await serve();
      expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
        expect.stringMatching(/^no console users yet: .*forewarn central user add NAME --role admin --store /),
      ]);
    });

    it('refuses the API without a session (401), redirects pages to the login, and serves the login, its files and /healthz', async () => {
      const { base } = await serve();
      const api = await fetch(`${base}/api/v1/fleet`);
      expect([api.status, ((await api.json()) as any).error.code]).toEqual([401, 'FW_ERR_CONSOLE_AUTH']);
      expect((await fetch(`${base}/api/v1/nope`)).status).toBe(401);
      const page = await fetch(`${base}/assets/a1/mill?range=7d`, { redirect: 'manual' });
      expect([page.status, page.headers.get('location')]).toEqual([302, `/login?next=${encodeURIComponent('/assets/a1/mill?range=7d')}`]);
      expect((await fetch(`${base}//evil.example/x`, { redirect: 'manual' })).headers.get('location')).toBe('/login?next=%2F');
      const login = await fetch(`${base}/login`);
      expect([login.status, login.headers.get('content-type'), await login.text()]).toEqual([
        200,
        'text/html; charset=utf-8',
        '<!doctype html><title>console</title>',
      ]);
      const js = await fetch(`${base}/static/console.js`);
      expect([js.status, js.headers.get('content-type')]).toEqual([200, 'text/javascript; charset=utf-8']);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/api/v1/healthz`)).status).toBe(200);
      // Every answer carries the security headers, errors and redirects included.
      for (const r of [api, page, login, js]) {
        expect(r.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
        expect([r.headers.get('x-content-type-options'), r.headers.get('referrer-policy'), r.headers.get('x-frame-options')]).toEqual([
          'nosniff',
          'no-referrer',
          'DENY',
        ]);
      }
    });

    it('logs in with the right password (cookie HttpOnly, SameSite=Strict, not Secure over http), refuses a wrong one, audits both', async () => {
      const { base } = await serve();
      await ensureConsoleUser(sql, 'ada', 'operator');
      const bad = await fetch(`${base}/api/v1/session`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username: 'ada', password: 'not the password' }),
      });
      expect([bad.status, ((await bad.json()) as any).error.code, bad.headers.get('set-cookie')]).toEqual([401, 'FW_ERR_CONSOLE_LOGIN', null]);
      const nobody = await fetch(`${base}/api/v1/session`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username: 'nobody', password: TEST_PASSWORD }),
      });
      expect(((await nobody.json()) as any).error).toEqual({ code: 'FW_ERR_CONSOLE_LOGIN', message: 'wrong user name or password' });
      const good = await fetch(`${base}/api/v1/session`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username: 'ada', password: TEST_PASSWORD }),
      });
      const body = (await good.json()) as any;
      expect(good.status).toBe(200);
      expect(body.user).toEqual({ username: 'ada', role: 'operator' });
      expect(body.csrfToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const cookie = good.headers.get('set-cookie')!;
      expect(cookie).toMatch(/^fw_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/);
      const session = cookie.split(';')[0]!;
      const me = await fetch(`${base}/api/v1/session`, { headers: { Cookie: session } });
      expect(((await me.json()) as any).user).toEqual({ username: 'ada', role: 'operator' });
      expect((await fetch(`${base}/api/v1/fleet`, { headers: { Cookie: session } })).status).toBe(200);
      expect((await fetch(`${base}/assets/a1/mill`, { headers: { Cookie: session }, redirect: 'manual' })).status).toBe(200);
      // Only the token's hash is stored.
      const token = session.slice('fw_session='.length);
      expect(await sql.get('SELECT 1 AS one FROM console_sessions WHERE id_hash = ?', [token])).toBeUndefined();
      const audit = await sql.all<{ username: string; action: string; remote_addr: string }>(
        "SELECT username, action, remote_addr FROM audit_log WHERE username IN ('ada', 'nobody') ORDER BY id",
      );
      expect(audit.map((a) => [a.username, a.action])).toEqual([
        ['ada', 'login-failed'],
        ['nobody', 'login-failed'],
        ['ada', 'login'],
      ]);
      expect(audit[2]!.remote_addr).toMatch(/127\.0\.0\.1/);
    });

    it('refuses a malformed login body with 400, 415 and 413 and says why', async () => {
      const { base } = await serve();
      const post = (body: string, type = 'application/json') => fetch(`${base}/api/v1/session`, { method: 'POST', headers: { 'Content-Type': type }, body });
      const cases: Array<[Response, number, string]> = [
        [await post('{"username": "ada"'), 400, 'body: not valid JSON'],
        [await post('[1]'), 400, 'body: must be a JSON object'],
        [await post('{"username": "ada"}'), 400, 'body: password: required, a non-empty string'],
        [
          await post('username=ada', 'application/x-www-form-urlencoded'),
          415,
          'body: Content-Type must be application/json, got "application/x-www-form-urlencoded"',
        ],
        [await post(JSON.stringify({ username: 'ada', password: 'x'.repeat(70_000) })), 413, 'body: larger than 65536 bytes'],
      ];
      for (const [res, status, message] of cases) {
        const e = ((await res.json()) as any).error;
        expect([res.status, e.code, e.message.slice(0, message.length)]).toEqual([status, 'FW_ERR_API_REQUEST', message]);
      }
    });

    it('rate-limits logins per user name: the 6th attempt is 429 with Retry-After even with the right password, until the window passes', async () => {
      let clock = NOW;
      const { base } = await serve({ now: () => clock });
      await ensureConsoleUser(sql, 'grace', 'viewer');
      const login = (password: string) =>
        fetch(`${base}/api/v1/session`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ username: 'grace', password }),
        });
      for (let i = 0; i < 5; i++) expect((await login(`wrong password ${i}`)).status).toBe(401);
      const sixth = await login(TEST_PASSWORD);
      expect([sixth.status, ((await sixth.json()) as any).error.code, sixth.headers.get('retry-after')]).toEqual([429, 'FW_ERR_CONSOLE_RATE_LIMIT', '900']);
      clock += 10 * MIN;
      expect((await login(TEST_PASSWORD)).headers.get('retry-after')).toBe('300');
      clock += 5 * MIN + 1;
      expect((await login(TEST_PASSWORD)).status).toBe(200);
      // The success cleared the user's failures: four more wrong tries are not yet limited.
      for (let i = 0; i < 4; i++) expect((await login('wrong again, one more')).status).toBe(401);
    });

    it('rate-limits logins per address across user names', async () => {
      const { base } = await serve();
      await ensureConsoleUser(sql, 'hedy', 'viewer');
      const login = (username: string, password: string) =>
        fetch(`${base}/api/v1/session`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password }) });
      for (let i = 0; i < 5; i++) expect((await login(`guess${i}`, 'some password here')).status).toBe(401);
      expect((await login('hedy', TEST_PASSWORD)).status).toBe(429);
    });

    it('ends a session after 30 min idle and after 12 h at the latest, and deletes expired rows', async () => {
      let clock = NOW;
      const { base, api } = await serve({ now: () => clock });
      await ensureConsoleUser(sql, 'idle', 'viewer');
      const a = await consoleSession(base, null, { username: 'idle' });
      clock += 29 * MIN;
      expect((await a.fetch('/api/v1/fleet')).status).toBe(200);
      clock += 29 * MIN; // 29 min after the last request: still alive
      expect((await a.fetch('/api/v1/fleet')).status).toBe(200);
      clock += 30 * MIN;
      expect((await a.fetch('/api/v1/fleet')).status).toBe(401);
      expect((await a.fetch('/', { redirect: 'manual' })).status).toBe(302);
      // Busy all day: the absolute limit still ends it.
      const b = await consoleSession(base, null, { username: 'idle' });
      const start = clock;
      while (clock < start + 12 * 3_600_000 - 20 * MIN) {
        clock += 20 * MIN;
        expect((await b.fetch('/api/v1/fleet')).status).toBe(200);
      }
      clock = start + 12 * 3_600_000;
      expect((await b.fetch('/api/v1/fleet')).status).toBe(401);
      const c = await consoleSession(base, null, { username: 'idle' });
      clock += 31 * MIN;
      expect(await api.access.sessions.purge()).toBeGreaterThanOrEqual(1);
      expect((await c.fetch('/api/v1/fleet')).status).toBe(401);
    });

    it('logs out: the cookie is cleared, the session is gone, the audit log says so', async () => {
      const { base } = await serve();
      const s = await consoleSession(base, sql, { username: 'leaver', role: 'viewer' });
      const out = await s.fetch('/api/v1/session', { method: 'DELETE' });
      expect(out.status).toBe(200);
      expect(out.headers.get('set-cookie')).toMatch(/^fw_session=; Path=\/; HttpOnly; SameSite=Strict; Max-Age=0$/);
      expect((await s.fetch('/api/v1/fleet')).status).toBe(401);
      expect(await sql.get("SELECT action FROM audit_log WHERE username = 'leaver' ORDER BY id DESC")).toEqual({ action: 'logout' });
    });

    it('refuses a change without the CSRF token, with a wrong one, or from another origin; a viewer cannot call an operator route', async () => {
      const { base } = await serve();
      const op = await consoleSession(base, sql, { username: 'op', role: 'operator' });
      const viewer = await consoleSession(base, sql, { username: 'viewer', role: 'viewer' });
      const post = (c: typeof op, headers: Record<string, string>) =>
        c.fetch('/api/v1/test/echo/42', { method: 'POST', body: JSON.stringify({ note: 'hi' }), headers: { 'Content-Type': 'application/json', ...headers } });
      const refused = async (res: Response) => [res.status, ((await res.json()) as any).error.code];
      expect(
        await refused(
          await fetch(`${base}/api/v1/test/echo/42`, { method: 'POST', headers: { Cookie: op.cookie, 'Content-Type': 'application/json' }, body: '{}' }),
        ),
      ).toEqual([403, 'FW_ERR_CONSOLE_CSRF']);
      expect(await refused(await post(op, { 'X-CSRF-Token': 'A'.repeat(43) }))).toEqual([403, 'FW_ERR_CONSOLE_CSRF']);
      expect(await refused(await post(op, { Origin: 'http://evil.example' }))).toEqual([403, 'FW_ERR_CONSOLE_CSRF']);
      expect(await refused(await post(viewer, {}))).toEqual([403, 'FW_ERR_CONSOLE_FORBIDDEN']);
      // Logout is a change too.
      expect((await fetch(`${base}/api/v1/session`, { method: 'DELETE', headers: { Cookie: op.cookie } })).status).toBe(403);
      const ok = await post(op, { Origin: base });
      expect([ok.status, await ok.json()]).toEqual([200, { id: '42', body: { note: 'hi' }, user: { username: 'op', role: 'operator' } }]);
      // Unauthenticated: 401 before anything else.
      expect((await fetch(`${base}/api/v1/test/echo/42`, { method: 'POST' })).status).toBe(401);
      // A GET of a POST-only path is 405 with Allow.
      const wrong = await op.fetch('/api/v1/test/echo/42');
      expect([wrong.status, wrong.headers.get('allow')]).toEqual([405, 'POST']);
    });

    it('serves static files with a type, an ETag (304 when unchanged), and never anything outside the folder', async () => {
      const { base } = await serve();
      const js = await fetch(`${base}/static/console.js`);
      const etag = js.headers.get('etag')!;
      expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
      expect(js.headers.get('last-modified')).toMatch(/GMT$/);
      expect((await fetch(`${base}/static/console.js`, { headers: { 'If-None-Match': etag } })).status).toBe(304);
      for (const p of [
        '/static/../secret.txt',
        '/static/%2e%2e/secret.txt',
        '/static/..%2fsecret.txt',
        '/static/%2e%2e%2fsecret.txt',
        '/static/..%5csecret.txt',
        '/static/....//secret.txt',
        '/static//etc/passwd',
        '/static/%2fetc%2fpasswd',
        '/static/link.txt',
        '/static/.env',
        '/static/console.js%00.png',
        '/static/',
      ]) {
        const r = await rawGet(base, p);
        expect([p, r.body.includes('TOP-SECRET') || r.body.includes('HIDDEN') || r.body.includes('root:')]).toEqual([p, false]);
        expect([p, r.status === 404 || r.status === 302]).toEqual([p, true]);
      }
    });

    it('streams fleet events: the summary on connect, another after a change; a stream ends at logout, when its session expires, and at stop', async () => {
      let clock = NOW;
      const { base, api } = await serve({ events: { pollMs: 50, pingMs: 50 }, now: () => clock });
      const s = await consoleSession(base, sql, { username: 'watcher', role: 'viewer' });
      expect((await fetch(`${base}/api/v1/events`)).status).toBe(401);
      const open = async (c: typeof s) => {
        const res = await c.fetch('/api/v1/events');
        expect([res.status, res.headers.get('content-type')]).toEqual([200, 'text/event-stream; charset=utf-8']);
        const reader = res.body!.getReader();
        let text = '';
        /** The next `fleet` event's data, or null when the stream ended. */
        return async (): Promise<any> => {
          for (;;) {
            const end = text.indexOf('\n\n');
            if (end >= 0) {
              const block = text.slice(0, end);
              text = text.slice(end + 2);
              if (!block.startsWith('event: fleet')) continue;
              return JSON.parse(
                block
                  .split('\n')
                  .find((l) => l.startsWith('data: '))!
                  .slice(6),
              );
            }
            const { value, done } = await reader.read();
            if (done) return null;
            text += Buffer.from(value).toString();
          }
        };
      };
      const nextEvent = await open(s);
      const first = await nextEvent();
      expect(first.summary).toEqual((await s.get('/api/v1/fleet')).body);
      expect(first.summary.assets.total).toBe(1);
      await ingest(sql, projections, riskBatch(2, NOW - MIN, 0.9));
      await ingest(sql, projections, { ...riskBatch(1, NOW - MIN, 0.1), agentId: 'a2' });
      let second = await nextEvent();
      while (second.summary.assets.total < 2) second = await nextEvent();
      expect(second.token).not.toBe(first.token);
      expect(second.summary.assets.total).toBe(2);

      const leaving = await consoleSession(base, sql, { username: 'watcher', role: 'viewer' });
      const leavingEvents = await open(leaving);
      expect(await leavingEvents()).not.toBeNull();
      await leaving.fetch('/api/v1/session', { method: 'DELETE' });
      expect(await leavingEvents()).toBeNull();

      // 31 minutes on, the first session has expired (a stream is not a request): the ping check ends the stream.
      clock += 31 * MIN;
      const late = await consoleSession(base, sql, { username: 'watcher', role: 'viewer' });
      const lateEvents = await open(late);
      expect(await lateEvents()).not.toBeNull();
      expect(await nextEvent()).toBeNull();
      await api.stop();
      expect(await lateEvents()).toBeNull();
    });

    it('caps the open event streams (503 past the cap)', async () => {
      const { base } = await serve({ events: { maxStreams: 1 } });
      const s = await consoleSession(base, sql, { username: 'capped', role: 'viewer' });
      const one = await s.fetch('/api/v1/events');
      expect(one.status).toBe(200);
      const two = await s.fetch('/api/v1/events');
      expect([two.status, ((await two.json()) as any).error.message]).toEqual([503, 'too many open event streams; try again later']);
      await one.body!.cancel();
    });
  });
}
