import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createCentralApi } from '../../../../agent/src/central/api/central-api.js';
import { openSqlClient } from '../../../../agent/src/central/sql/open-sql-client.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { TEST_PASSWORD, ensureConsoleUser } from '../../../helpers/console-session.js';

const dir = mkdtempSync(path.join(tmpdir(), 'fw-console-tls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function request(
  port: number,
  ca: Buffer,
  method: string,
  p: string,
  body?: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, method, path: p, ca, headers: body ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } : {} },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += String(d)));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('central HTTP server over TLS', () => {
  it('serves HTTPS with the given certificate and sets Secure session cookies', async () => {
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const sql = await openSqlClient(`sqlite:${path.join(dir, 'tls.db')}`);
    const { log, lines } = captureLogger();
    const api = createCentralApi({ sql, log, port: 0, tls: { certFile: cert, keyFile: key } });
    await api.start();
    try {
      const port = api.address().port;
      expect(lines.some((l) => String(l.msg).startsWith(`central API and console on https://127.0.0.1:${port}/`))).toBe(true);
      const ca = readFileSync(cert);
      expect((await request(port, ca, 'GET', '/healthz')).status).toBe(200);
      await ensureConsoleUser(sql, 'tls-admin', 'admin');
      const login = await request(port, ca, 'POST', '/api/v1/session', JSON.stringify({ username: 'tls-admin', password: TEST_PASSWORD }));
      expect(login.status).toBe(200);
      expect(String(login.headers['set-cookie'])).toMatch(/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure$/);
      // Plain HTTP on the TLS port gets nothing useful.
      await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    } finally {
      await api.stop();
      await sql.close();
    }
  });

  it('refuses to start with a certificate or key it cannot read (FW_ERR_SECRET_READ)', async () => {
    const sql = await openSqlClient(`sqlite:${path.join(dir, 'tls-bad.db')}`);
    const garbage = path.join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not a certificate');
    try {
      const missing = createCentralApi({ sql, log: captureLogger().log, port: 0, tls: { certFile: path.join(dir, 'none.pem'), keyFile: garbage } });
      await expect(missing.start()).rejects.toMatchObject({
        code: 'FW_ERR_SECRET_READ',
        message: expect.stringMatching(/^--tls-cert .*none\.pem: cannot read it/),
      });
      const bad = createCentralApi({ sql, log: captureLogger().log, port: 0, tls: { certFile: garbage, keyFile: garbage } });
      await expect(bad.start()).rejects.toMatchObject({ code: 'FW_ERR_SECRET_READ' });
    } finally {
      await sql.close();
    }
  });
});
