import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertBook } from '../../../../agent/src/central/alerts/alert-book.js';
import type { ApiRoute, RouteContext } from '../../../../agent/src/central/api/api-route.js';
import type { AgentView, AssetMetric, AssetView } from '../../../../agent/src/central/api/fleet-queries.js';
import { fleetRoutes } from '../../../../agent/src/central/api/fleet-routes.js';
import { CentralStore } from '../../../../agent/src/central/central-store.js';
import type { BatchRecord } from '../../../../agent/src/central/decode-batch.js';
import { FleetProjection } from '../../../../agent/src/central/fleet/fleet-projection.js';
import type { SqlClient } from '../../../../agent/src/central/sql/sql-client.js';
import { migrateWorkflow } from '../../../../agent/src/central/workflow/workflow-schema.js';
import { centralStores, type CentralStores } from '../../../helpers/central-fixtures.js';

/**
 * The fleet routes the console's pages lean on, on a store filled by the real ingest: the asset list sorted by
 * state severity then risk (and its cursor), one agent, and the metric names of an asset (rollups and recent
 * records: the one query here whose SQL differs between SQLite and PostgreSQL). Called through `handle`.
 */

const MIN = 60_000;
const HOUR = 60 * MIN;
const NOW = Date.UTC(2026, 2, 2, 12);

const risk = (seq: number, asset: string, score: number, threshold = 0.5): BatchRecord => ({
  seq,
  ts: NOW - 10 * MIN + seq,
  asset,
  model: 'machine-failure',
  modelVersion: '1.0.0',
  kind: 'probability',
  score,
  threshold,
  atRisk: score >= threshold,
  readingTs: NOW - 10 * MIN,
  drivers: [],
});

const alert = (seq: number, asset: string, severity: string) => ({
  seq,
  ts: NOW - 20 * MIN,
  alertId: `rule.${asset}/${asset}`,
  rule: `rule.${asset}`,
  asset,
  subject: asset,
  state: 'raised',
  severity,
  title: 't',
  evidence: {},
  remedy: '',
  raisedTs: NOW - 20 * MIN,
});

/**
 * One asset per state, with model risks that would order them differently: `shaker` is in alarm from a vibration
 * alert with a low model risk; `hot` is healthy-looking to its alerts but its model is the highest of all (warning);
 * `handled` and `serviced` have high risk but someone is on them; `calm` and `quiet` are healthy.
 */
async function seed(url: string): Promise<void> {
  const store = await CentralStore.open({ url, projections: [new FleetProjection({ rollupMetrics: ['torque', 'spindle.*'] }), new AlertBook()] });
  try {
    const put = (agentId: string, stream: string, records: BatchRecord[]) =>
      store.ingestBatch({ agentId, stream, bootSeq: 1, historical: false, records }, NOW - MIN);
    await put('a1', 'risk', [
      risk(1, 'shaker', 0.05),
      risk(2, 'hot', 0.95),
      risk(3, 'near', 0.45),
      risk(4, 'handled', 0.9),
      risk(5, 'serviced', 0.8),
      risk(6, 'calm', 0.3),
      risk(7, 'quiet', 0.1),
      risk(8, 'warm', 0.6),
    ]);
    await put('a1', 'alerts', [alert(1, 'shaker', 'critical'), alert(2, 'handled', 'warning'), alert(3, 'serviced', 'critical')]);
    await put('a1', 'telemetry', [
      { seq: 1, ts: NOW - 3 * HOUR, asset: 'hot', metrics: { torque: 40, 'spindle.temp': 300, noise: 1 } },
      { seq: 2, ts: NOW - 10 * MIN, asset: 'hot', metrics: { torque: 41, vibration_x: 0.2 } },
      { seq: 3, ts: NOW - 5 * MIN, asset: 'calm', metrics: { pressure: 2 } },
    ]);
    await store.recordStatus({ agentId: 'a1', state: 'online', bootSeq: 3, ts: NOW - HOUR, payload: { agentVersion: '1.4.0' } }, NOW - HOUR);
    await put('a2', 'risk', [risk(1, 'pump', 0.2)]);
    await migrateWorkflow(store.sql);
    const act = (asset: string, state: string, until: number | null) =>
      store.sql.run(
        `INSERT INTO alert_workflow (alert_key, raised_ts, state, updated_by, updated_ts, note, maintenance_until) VALUES (?, ?, ?, 'olivia', ?, NULL, ?)`,
        [`agent/a1/rule.${asset}/${asset}`, NOW - 20 * MIN, state, NOW - 15 * MIN, until],
      );
    await act('handled', 'acknowledged', null);
    await act('serviced', 'maintenance', NOW + HOUR);
  } finally {
    await store.close();
  }
}

let stores: CentralStores;
beforeAll(async () => {
  stores = await centralStores();
}, 120_000);
afterAll(() => stores.cleanup());

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`fleet routes for the console on ${dialect}`, () => {
    let sql: SqlClient;
    let routes: ApiRoute[];
    const skip = () => dialect === 'postgres' && stores.pgSkip !== null;
    const call = async <T>(pattern: string, params: Record<string, string>, query = ''): Promise<T> => {
      const route = routes.find((r) => r.pattern === pattern)!;
      const ctx: RouteContext = {
        query: new URLSearchParams(query),
        params,
        body: undefined,
        user: { username: 'vera', role: 'viewer' },
        remoteAddress: '127.0.0.1',
        sql,
        now: () => NOW,
      };
      return (await route.handle(ctx)) as T;
    };
    type Page = { total: number; assets: AssetView[]; nextCursor: string | null };
    const assets = (query: string) => call<Page>('/assets', {}, query);

    beforeAll(async () => {
      if (skip()) return;
      const name = `routes_${dialect}`;
      await seed(stores.url(dialect, name));
      sql = await stores.reopen(dialect, name);
      routes = fleetRoutes();
    }, 120_000);

    it('sorts by state severity, then relative risk, then name: an alarm without a model risk comes first', async (ctx) => {
      if (skip()) ctx.skip();
      const all = await assets('sort=risk');
      expect(all.assets.map((a) => [a.asset, a.state])).toEqual([
        ['shaker', 'alarm'],
        ['hot', 'warning'],
        ['warm', 'warning'],
        ['near', 'watch'],
        // Being handled: by risk among themselves.
        ['handled', 'acknowledged'],
        ['serviced', 'maintenance'],
        ['calm', 'healthy'],
        ['pump', 'healthy'],
        ['quiet', 'healthy'],
      ]);
      // Within a state, higher risk first; equal risk falls back to the names.
      expect(all.assets.find((a) => a.asset === 'hot')!.risk).toBeGreaterThan(all.assets.find((a) => a.asset === 'warm')!.risk);
    });

    it('pages the severity order with its cursor: every asset once, in the same order, filters kept', async (ctx) => {
      if (skip()) ctx.skip();
      const whole = (await assets('sort=risk')).assets.map((a) => `${a.agentId}/${a.asset}`);
      for (const limit of [1, 2, 4]) {
        const seen: string[] = [];
        let cursor: string | null = null;
        do {
          const page: Page = await assets(`sort=risk&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
          expect(page.assets.length).toBeLessThanOrEqual(limit);
          seen.push(...page.assets.map((a) => `${a.agentId}/${a.asset}`));
          cursor = page.nextCursor;
        } while (cursor);
        expect(seen).toEqual(whole);
      }
      const handledPage = await assets('sort=risk&state=acknowledged,maintenance,alarm&limit=2');
      expect(handledPage.assets.map((a) => a.asset)).toEqual(['shaker', 'handled']);
      const next = await assets(`sort=risk&state=acknowledged,maintenance,alarm&limit=2&cursor=${handledPage.nextCursor}`);
      expect([next.assets.map((a) => a.asset), next.nextCursor]).toEqual([['serviced'], null]);
      // A cursor of the name order (or of the old risk order) is refused, not misread.
      const byName = await assets('sort=name&limit=1');
      await expect(assets(`sort=risk&cursor=${byName.nextCursor}`)).rejects.toThrow('cursor: not a cursor this endpoint returned');
      const old = Buffer.from(JSON.stringify([1.9, 'a1', 'hot'])).toString('base64url');
      await expect(assets(`sort=risk&cursor=${old}`)).rejects.toThrow('cursor: not a cursor');
    });

    it('gives one agent by id, with its streams, and 404 for an agent central has no record of', async (ctx) => {
      if (skip()) ctx.skip();
      const a1 = await call<AgentView>('/agents/:agent', { agent: 'a1' });
      expect(a1).toMatchObject({ agentId: 'a1', state: 'online', version: '1.4.0', bootSeq: 3 });
      expect(a1.streams.risk).toMatchObject({ highestSeq: 8, missing: 0, gaps: 0 });
      expect(await call<AgentView>('/agents/:agent', { agent: 'a2' })).toMatchObject({ agentId: 'a2', state: 'unknown' });
      await expect(call('/agents/:agent', { agent: 'a9' })).rejects.toMatchObject({ status: 404, code: 'FW_ERR_API_NOT_FOUND' });
      await expect(call('/agents/:agent', { agent: 'a1' }, 'limit=1')).rejects.toThrow('limit: unknown parameter');
    });

    it("lists an asset's metric names: rolled up (last 7 days) and in its recent records (last hour)", async (ctx) => {
      if (skip()) ctx.skip();
      const hot = await call<{ metrics: AssetMetric[] }>('/assets/:agent/:asset/metrics', { agent: 'a1', asset: 'hot' });
      expect(hot.metrics).toEqual([
        // In a record of 3 h ago: rolled up, but not recent; `noise` is neither rolled up nor recent.
        { name: 'spindle.temp', hourly: true, recent: false },
        { name: 'torque', hourly: true, recent: true },
        { name: 'vibration_x', hourly: false, recent: true },
      ]);
      const calm = await call<{ metrics: AssetMetric[] }>('/assets/:agent/:asset/metrics', { agent: 'a1', asset: 'calm' });
      expect(calm.metrics).toEqual([{ name: 'pressure', hourly: false, recent: true }]);
      expect((await call<{ metrics: AssetMetric[] }>('/assets/:agent/:asset/metrics', { agent: 'a2', asset: 'pump' })).metrics).toEqual([]);
      await expect(call('/assets/:agent/:asset/metrics', { agent: 'a1', asset: 'nothing' })).rejects.toMatchObject({ status: 404 });
    });
  });
}
