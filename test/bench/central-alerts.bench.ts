/**
 * Cost of central's alert routing as the alert book grows: one routing pass with nothing to send (what the
 * leader pays every `routeIntervalMs`, 2 s) over a book of 1,000 to 100,000 resolved alerts already delivered
 * plus 100 active ones, for one Alertmanager and one webhook receiver, on SQLite; and the alert book's cost per
 * agent alert record in the ingest transaction.
 */
import { type BenchReport, measure, round } from './bench-harness.js';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { AlertBook, migrateAlertBook } from '../../agent/src/central/alerts/alert-book.js';
import { AlertRouter } from '../../agent/src/central/alerts/alert-router.js';
import { LeaderLease } from '../../agent/src/central/leader-lease.js';
import { openSqlClient } from '../../agent/src/central/sql/open-sql-client.js';
import { valuesList } from '../../agent/src/central/sql/sql-client.js';

const SIZES = [1_000, 10_000, 100_000];
const ACTIVE = 100;

export async function run(): Promise<BenchReport[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-bench-alerts-'));
  const server = http.createServer((req, res) => req.resume().on('end', () => res.writeHead(200).end('{}')));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const rows: BenchReport['rows'] = [];
  const ingestRows: BenchReport['rows'] = [];
  try {
    for (const size of SIZES) {
      const sql = await openSqlClient(`sqlite:${path.join(dir, `book-${size}.db`)}`);
      await migrateAlertBook(sql);
      const receivers = [`alertmanager:${url}`, 'webhook:ops'];
      // The history: resolved long ago and delivered to both receivers.
      const chunk = 500;
      await sql.tx(async (q) => {
        for (let i = 0; i < size + ACTIVE; i += chunk) {
          const n = Math.min(chunk, size + ACTIVE - i);
          const alerts: Array<string | number | null> = [];
          const routes: Array<string | number | null> = [];
          for (let k = i; k < i + n; k++) {
            const active = k >= size;
            const key = `agent/edge-${k % 500}/rule-${k}/asset-${k % 37}`;
            alerts.push(
              key,
              'agent',
              `edge-${k % 500}`,
              `asset-${k % 37}`,
              null,
              `rule-${k % 20}`,
              'warning',
              'title',
              active ? 'active' : 'resolved',
              k,
              active ? null : k + 1,
              k + 1,
              null,
              '{}',
              '',
            );
            for (const r of receivers) routes.push(key, r, k, active ? 'firing' : 'resolved', k + 2, null);
          }
          await q.run(`INSERT INTO central_alerts VALUES ${valuesList(n, 15)}`, alerts);
          await q.run(`INSERT INTO alert_routes VALUES ${valuesList(n * receivers.length, 6)}`, routes);
        }
      });
      const lease = new LeaderLease(sql, { name: 'central-alerts', holder: 'bench' });
      const router = new AlertRouter(sql, pino({ level: 'silent' }), lease, {
        alertmanager: { urls: [url], resendIntervalMs: 3_600_000 },
        webhooks: [{ url, name: 'ops' }],
      });
      await router.routeOnce(); // registers the receivers and makes the first resend
      const before = router.stats.delivered;
      const m = await measure(() => router.routeOnce(), 50, { warmup: 5 });
      if (router.stats.delivered !== before) throw new Error('the idle pass delivered something');
      rows.push({
        alerts: size + ACTIVE,
        'idle pass median ms': round(m.medianMs),
        'p99 ms': round(m.p99Ms),
        'CPU share at 2 s': `${round((m.cpuMsPerCall / 2_000) * 100)}%`,
      });
      await sql.close();
    }
    // The projection's cost per record, in batches of 50 (one transaction each).
    const sql = await openSqlClient(`sqlite:${path.join(dir, 'ingest.db')}`);
    await migrateAlertBook(sql);
    const book = new AlertBook();
    let seq = 0;
    const m = await measure(
      () =>
        sql.tx(async (q) => {
          const records = Array.from({ length: 50 }, () => {
            const s = ++seq;
            return {
              seq: s,
              ts: s,
              alertId: `rule/asset-${s % 1_000}`,
              rule: 'rule',
              asset: `asset-${s % 1_000}`,
              state: s % 2 ? 'raised' : 'cleared',
              raisedTs: s - (s % 2 ? 0 : 1),
              severity: 'warning',
              title: 't',
              evidence: { v: s },
              remedy: '',
            };
          });
          await book.applyBatch(q, { agentId: 'edge', stream: 'alerts', bootSeq: 1, historical: false, receivedTs: seq, records });
        }),
      200,
      { warmup: 5 },
    );
    ingestRows.push({ 'records per tx': 50, 'median ms per tx': round(m.medianMs), 'p99 ms': round(m.p99Ms), 'ms per record': round(m.medianMs / 50) });
    await sql.close();
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return [
    {
      name: 'Central alert routing: an idle pass (SQLite)',
      rows,
      notes: [
        'one routing pass with nothing to send, 1 Alertmanager + 1 webhook receiver, 100 active alerts and the rest resolved and delivered; the leader runs one every routeIntervalMs (2 s)',
      ],
    },
    {
      name: 'Central alert book: agent alert records in the ingest transaction (SQLite)',
      rows: ingestRows,
      notes: ['raised and cleared records alternating over 1,000 alerts; one transaction (and fsync) per batch'],
    },
  ];
}
