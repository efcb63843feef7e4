/* eslint-disable @typescript-eslint/no-explicit-any -- the responses are parsed JSON, checked field by field against expected values */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCentralApi, type CentralApi } from '../../../../agent/src/central/api/central-api.js';
import type { BatchRecord } from '../../../../agent/src/central/decode-batch.js';
import { FleetProjection, HOUR_MS } from '../../../../agent/src/central/fleet/fleet-projection.js';
import { FleetRegistry } from '../../../../agent/src/central/fleet-registry.js';
import type { IngestedBatch } from '../../../../agent/src/central/projection.js';
import { openSqlClient } from '../../../../agent/src/central/sql/open-sql-client.js';
import type { SqlClient } from '../../../../agent/src/central/sql/sql-client.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { consoleSession, type ConsoleClient } from '../../../helpers/console-session.js';
import { createLedgerTables, ingest, migrateProjections } from '../../../helpers/central-records.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from '../../../helpers/postgres.js';

const pgSkip = postgresSkipReason();
let cluster: PostgresCluster | undefined;
const dir = mkdtempSync(path.join(tmpdir(), 'fw-api-'));

beforeAll(async () => {
  if (!pgSkip) cluster = await startPostgres();
}, 120_000);
afterAll(() => {
  cluster?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const NOW = Date.UTC(2026, 11, 7, 12, 0, 0);
const T0 = NOW - 3 * HOUR_MS;

const risk = (seq: number, ts: number, asset: string, score: number, model = 'machine-failure'): BatchRecord => ({
  seq,
  ts,
  asset,
  model,
  modelVersion: '1.0.0',
  kind: 'probability',
  score,
  threshold: 0.5,
  atRisk: score >= 0.5,
  readingTs: ts,
  drivers: [{ feature: 'torque', value: 61.5, contribution: 0.3 }],
});
const batch = (agentId: string, stream: string, records: BatchRecord[]): IngestedBatch => ({
  agentId,
  stream,
  bootSeq: 1,
  historical: false,
  receivedTs: NOW - 1000,
  records,
});

async function seed(sql: SqlClient): Promise<void> {
  const registry = new FleetRegistry();
  const fleet = new FleetProjection({ rollupMetrics: ['*'] });
  const projections = [registry, fleet];
  await createLedgerTables(sql);
  await migrateProjections(sql, projections);
  // a1/mill: at risk (warning); a1/lathe: 0.45 of 0.5 (watch); a2/pump: low risk but a critical alert (alarm);
  // a3/fan: telemetry only (healthy).
  await ingest(
    sql,
    projections,
    batch('a1', 'risk', [risk(1, T0, 'mill', 0.2), risk(2, T0 + HOUR_MS, 'mill', 0.6), risk(3, T0 + 2 * HOUR_MS, 'mill', 0.7), risk(4, T0, 'lathe', 0.45)]),
  );
  await ingest(sql, projections, batch('a2', 'risk', [risk(1, T0, 'pump', 0.1)]));
  await ingest(
    sql,
    projections,
    batch('a1', 'telemetry', [
      { seq: 1, ts: T0, asset: 'mill', metrics: { torque: 40, 'spindle.temp': 300 } },
      { seq: 2, ts: T0 + 60_000, asset: 'mill', metrics: { torque: 50 } },
      { seq: 3, ts: T0 + HOUR_MS, asset: 'mill', metrics: { torque: 45 } },
    ]),
  );
  await ingest(sql, projections, batch('a3', 'telemetry', [{ seq: 1, ts: T0, asset: 'fan', metrics: { rpm: 900 } }]));
  await sql.tx(async (q) => {
    await registry.applyStatus(q, { agentId: 'a1', state: 'online', bootSeq: 1, ts: NOW, payload: { agentVersion: '1.2.0' } }, NOW);
    await registry.applyStatus(q, { agentId: 'a2', state: 'offline', bootSeq: 1, ts: NOW, payload: { reason: 'connection-lost' } }, NOW);
  });
  const alert = (key: string, agent: string, asset: string | null, severity: string, state: string, raised: number) =>
    sql.run(
      `INSERT INTO central_alerts (alert_key, origin, agent_id, asset, rule, severity, title, state, raised_ts, resolved_ts, updated_ts, value, evidence, remedy)
       VALUES (?, ?, ?, ?, 'r', ?, 't', ?, ?, NULL, ?, 1.5, '{"x":1}', 'fix it')`,
      [key, asset ? 'agent' : 'fleet', agent, asset, severity, state, raised, raised],
    );
  await alert('agent/a2/bearing/pump', 'a2', 'pump', 'critical', 'active', NOW - 5000);
  await alert('agent/a1/risk/mill', 'a1', 'mill', 'warning', 'resolved', NOW - 9000);
  await alert('fleet/agent-offline/a2', 'a2', null, 'warning', 'active', NOW - 7000);
  await sql.run("INSERT INTO streams (agent_id, stream, highest_seq, received) VALUES ('a1', 'telemetry', 50, 40)");
  await sql.run("INSERT INTO gaps (agent_id, stream, from_seq, to_seq, opened_ts) VALUES ('a1', 'telemetry', 10, 14, 0), ('a1', 'telemetry', 20, 24, 0)");
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  const skip = dialect === 'postgres' && pgSkip !== null;
  describe.skipIf(skip)(`central HTTP API on ${dialect}${skip ? ` (skipped: ${pgSkip})` : ''}`, () => {
    let sql: SqlClient;
    let api: CentralApi;
    let base: string;
    let client: ConsoleClient;
    const get = async (p: string, init?: RequestInit) => {
      const res = await client.fetch(p, init);
      return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as Record<string, any> };
    };

    beforeAll(async () => {
      sql = dialect === 'sqlite' ? await openSqlClient(`sqlite:${path.join(dir, 'api.db')}`) : await openSqlClient(cluster!.createDatabase('api'));
      await seed(sql);
      api = createCentralApi({ sql, log: captureLogger().log, port: 0, now: () => NOW, maxPoints: 100 });
      await api.start();
      base = `http://127.0.0.1:${api.address().port}`;
      client = await consoleSession(base, sql, { role: 'viewer' });
    }, 120_000);
    afterAll(async () => {
      await api?.stop();
      await sql?.close();
    });

    it('binds to loopback by default and answers /healthz', async () => {
      expect(api.address().address).toBe('127.0.0.1');
      const h = await get('/healthz');
      expect(h).toEqual({ status: 200, type: 'application/json; charset=utf-8', body: { status: 'ok', store: dialect } });
    });

    it('summarises the fleet: agents by state, assets by state, active alerts by severity', async () => {
      const { status, body } = await get('/api/v1/fleet');
      expect(status).toBe(200);
      expect(body).toEqual({
        agents: { total: 3, online: 1, offline: 1, unknown: 1 },
        assets: { total: 4, healthy: 1, watch: 1, warning: 1, alarm: 1, acknowledged: 0, maintenance: 0 },
        activeAlerts: { total: 2, bySeverity: { critical: 1, warning: 1 } },
      });
    });

    it('lists assets with their state, filtered, searched, sorted by risk and paged with a cursor', async () => {
      const all = await get('/api/v1/assets?sort=risk');
      expect(all.body.assets.map((a: any) => [a.agentId, a.asset, a.state])).toEqual([
        ['a1', 'mill', 'warning'],
        ['a1', 'lathe', 'watch'],
        ['a2', 'pump', 'alarm'],
        ['a3', 'fan', 'healthy'],
      ]);
      expect(all.body.assets[0].risk).toBeCloseTo(1.4, 9);
      expect(all.body.assets[0].models[0]).toMatchObject({ model: 'machine-failure', score: 0.7, atRisk: true, ts: T0 + 2 * HOUR_MS });
      expect(all.body.assets[2].activeAlerts).toEqual({ critical: 1 });
      expect((await get('/api/v1/assets?state=alarm,healthy')).body.assets.map((a: any) => a.asset)).toEqual(['pump', 'fan']);
      expect((await get('/api/v1/assets?q=LAT')).body.assets.map((a: any) => a.asset)).toEqual(['lathe']);
      expect((await get('/api/v1/assets?agent=a1')).body.total).toBe(2);
      for (const sort of ['name', 'risk']) {
        const seen: string[] = [];
        let cursor: string | null = null;
        let pages = 0;
        do {
          const page: { body: Record<string, any> } = await get(`/api/v1/assets?sort=${sort}&limit=3${cursor ? `&cursor=${cursor}` : ''}`);
          seen.push(...page.body.assets.map((a: any) => `${a.agentId}/${a.asset}`));
          cursor = page.body.nextCursor;
          pages++;
        } while (cursor);
        expect(pages).toBe(2);
        expect(seen).toEqual((await get(`/api/v1/assets?sort=${sort}`)).body.assets.map((a: any) => `${a.agentId}/${a.asset}`));
      }
    });

    it('shows one asset with its drivers and active alerts, and 404 for an asset central never heard of', async () => {
      const pump = await get('/api/v1/assets/a2/pump');
      expect(pump.status).toBe(200);
      expect(pump.body.state).toBe('alarm');
      expect(pump.body.models[0].drivers).toEqual([{ feature: 'torque', value: 61.5, contribution: 0.3 }]);
      expect(pump.body.models[0]).toMatchObject({ modelVersion: '1.0.0', readingTs: T0, score: 0.1 });
      expect(pump.body.alerts.map((a: any) => [a.alertKey, a.evidence, a.value])).toEqual([['agent/a2/bearing/pump', { x: 1 }, 1.5]]);
      const mill = await get('/api/v1/assets/a1/mill');
      expect(mill.body.alerts).toEqual([]);
      expect(mill.body.firstSeenTs).toBe(NOW - 1000);
      const none = await get('/api/v1/assets/a1/nothing');
      expect(none.status).toBe(404);
      expect(none.body.error.code).toBe('FW_ERR_API_NOT_FOUND');
      expect((await get('/api/v1/assets/a1/nothing/risk')).status).toBe(404);
    });

    it('serves a risk trend raw from records and hourly from the rollups, capped at the point limit', async () => {
      const raw = await get(`/api/v1/assets/a1/mill/risk?resolution=raw&from=${T0}&to=${NOW}`);
      expect(raw.body.points.map((p: any) => [p.ts, p.score, p.atRisk])).toEqual([
        [T0, 0.2, false],
        [T0 + HOUR_MS, 0.6, true],
        [T0 + 2 * HOUR_MS, 0.7, true],
      ]);
      expect(raw.body.truncated).toBe(false);
      const hour = await get(`/api/v1/assets/a1/mill/risk?model=machine-failure&from=${new Date(T0).toISOString()}`);
      expect(hour.body.resolution).toBe('hour');
      expect(hour.body.points.map((p: any) => [p.ts, p.samples, p.mean, p.atRiskSamples])).toEqual([
        [T0, 1, 0.2, 0],
        [T0 + HOUR_MS, 1, 0.6, 1],
        [T0 + 2 * HOUR_MS, 1, 0.7, 1],
      ]);
      const cut = await get(`/api/v1/assets/a1/mill/risk?resolution=raw&limit=2&from=${T0}`);
      expect([cut.body.points.length, cut.body.truncated]).toEqual([2, true]);
      expect((await get(`/api/v1/assets/a1/mill/risk?model=other&from=${T0}`)).body.points).toEqual([]);
    });

    it('serves a telemetry trend of one metric, raw and hourly', async () => {
      const raw = await get(`/api/v1/assets/a1/mill/telemetry?metric=torque&resolution=raw&from=${T0}`);
      expect(raw.body.points).toEqual([
        { ts: T0, value: 40 },
        { ts: T0 + 60_000, value: 50 },
        { ts: T0 + HOUR_MS, value: 45 },
      ]);
      const dotted = await get(`/api/v1/assets/a1/mill/telemetry?metric=spindle.temp&resolution=raw&from=${T0}`);
      expect(dotted.body.points).toEqual([{ ts: T0, value: 300 }]);
      const hour = await get(`/api/v1/assets/a1/mill/telemetry?metric=torque&from=${T0}`);
      expect(hour.body.points.map((p: any) => [p.ts, p.samples, p.min, p.max, p.mean, p.last])).toEqual([
        [T0, 2, 40, 50, 45, 50],
        [T0 + HOUR_MS, 1, 45, 45, 45, 45],
      ]);
    });

    it('lists agents with their state, version and per-stream backlog from the ledger', async () => {
      const { body } = await get('/api/v1/agents');
      expect(body.agents.map((a: any) => [a.agentId, a.state, a.version, a.reason])).toEqual([
        ['a1', 'online', '1.2.0', null],
        ['a2', 'offline', null, 'connection-lost'],
        ['a3', 'unknown', null, null],
      ]);
      expect(body.agents[0].streams).toEqual({ telemetry: { highestSeq: 50, received: 40, missing: 10, gaps: 2 } });
      const p1 = await get('/api/v1/agents?limit=2');
      expect(p1.body.agents.length).toBe(2);
      const p2 = await get(`/api/v1/agents?limit=2&cursor=${p1.body.nextCursor}`);
      expect(p2.body.agents.map((a: any) => a.agentId)).toEqual(['a3']);
      expect(p2.body.nextCursor).toBeNull();
      expect((await get('/api/v1/agents?state=offline')).body.agents.map((a: any) => a.agentId)).toEqual(['a2']);
    });

    it('lists alerts from central_alerts with filters, newest first', async () => {
      expect((await get('/api/v1/alerts')).body.alerts.map((a: any) => a.alertKey)).toEqual([
        'agent/a2/bearing/pump',
        'fleet/agent-offline/a2',
        'agent/a1/risk/mill',
      ]);
      expect((await get('/api/v1/alerts?state=active')).body.alerts.length).toBe(2);
      expect((await get('/api/v1/alerts?agent=a2&asset=pump')).body.alerts.map((a: any) => a.severity)).toEqual(['critical']);
      const p1 = await get('/api/v1/alerts?limit=2');
      const p2 = await get(`/api/v1/alerts?limit=2&cursor=${p1.body.nextCursor}`);
      expect(p2.body.alerts.map((a: any) => a.alertKey)).toEqual(['agent/a1/risk/mill']);
    });

    it('refuses bad parameters with 400 and param: message, unknown paths with 404, writes with 405', async () => {
      const cases: Array<[string, number, string]> = [
        ['/api/v1/alerts?state=open', 400, 'state: must be one of active, resolved, got "open"'],
        ['/api/v1/assets?limit=0', 400, 'limit: must be an integer from 1 to 1000, got "0"'],
        ['/api/v1/assets?color=red', 400, 'color: unknown parameter (this endpoint takes state, q, agent, sort, limit, cursor)'],
        [
          '/api/v1/assets?state=broken',
          400,
          'state: must be one or more (comma-separated) of healthy, watch, warning, alarm, acknowledged, maintenance, got "broken"',
        ],
        ['/api/v1/assets?cursor=bm9wZQ', 400, 'cursor: not a cursor this endpoint returned (take nextCursor from the previous page)'],
        ['/api/v1/assets/a1/mill/telemetry', 400, 'metric: required: the metric to chart (a name in the records’ metrics)'],
        ['/api/v1/assets/a1/mill/risk?from=yesterday', 400, 'from: must be ms since the epoch or an ISO 8601 time, got "yesterday"'],
        [`/api/v1/assets/a1/mill/risk?from=${NOW}&to=${NOW - 1}`, 400, `from: must be before to (${NOW} ≥ ${NOW - 1})`],
        ['/api/v1/fleet?x=1&x=2', 400, 'x: unknown parameter (this endpoint takes none)'],
        ['/api/v1/assets/%E0%A4%A', 400, 'path: malformed percent-encoding in /api/v1/assets/%E0%A4%A'],
        ['/api/v1/nope', 404, '/api/v1/nope: no such endpoint'],
        ['/api/v2/fleet', 404, '/api/v2/fleet: no such endpoint (the API lives under /api/v1/)'],
        ['/api/v1/constructor', 404, '/api/v1/constructor: no such endpoint'],
      ];
      for (const [p, status, message] of cases) {
        const r = await get(p);
        expect([p, r.status, r.type, r.body.error?.message]).toEqual([p, status, 'application/json; charset=utf-8', message]);
        expect(r.body.error.code).toBe(status === 404 ? 'FW_ERR_API_NOT_FOUND' : 'FW_ERR_API_REQUEST');
      }
      const post = await client.fetch('/api/v1/fleet', { method: 'POST', body: '{}' });
      expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
    });
  });
}

describe('central HTTP API on a store that fails', () => {
  it('answers 503 FW_ERR_API_STORE, logs the cause, and keeps serving', async () => {
    const sql = await openSqlClient(`sqlite:${path.join(dir, 'failing.db')}`);
    await createLedgerTables(sql);
    const { log, lines } = captureLogger();
    const api = createCentralApi({ sql, log, port: 0 });
    await api.start();
    const base = `http://127.0.0.1:${api.address().port}`;
    try {
      // A component's table that exists but is not what the API expects: the query fails.
      await sql.exec('CREATE TABLE fleet_latest_risk (x INTEGER)');
      const r = await (await consoleSession(base, sql)).fetch('/api/v1/assets');
      expect(r.status).toBe(503);
      expect(((await r.json()) as any).error.code).toBe('FW_ERR_API_STORE');
      expect(lines.some((l) => l.msg === 'central API request failed' && String(l.err).includes('no such column'))).toBe(true);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      // A second API on the same port cannot listen.
      const clash = createCentralApi({ sql, log, port: api.address().port });
      await expect(clash.start()).rejects.toMatchObject({ code: 'FW_ERR_API_LISTEN' });
    } finally {
      await api.stop();
      await sql.close();
    }
  });
});
