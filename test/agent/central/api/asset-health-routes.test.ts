import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertBook } from '../../../../agent/src/central/alerts/alert-book.js';
import { ApiError } from '../../../../agent/src/central/api/api-params.js';
import type { ApiRoute, RouteContext } from '../../../../agent/src/central/api/api-route.js';
import { assetHealthRoutes, type AssetHealth } from '../../../../agent/src/central/api/asset-health-routes.js';
import { CentralStore } from '../../../../agent/src/central/central-store.js';
import type { BatchRecord } from '../../../../agent/src/central/decode-batch.js';
import { FleetProjection } from '../../../../agent/src/central/fleet/fleet-projection.js';
import type { SqlClient } from '../../../../agent/src/central/sql/sql-client.js';
import { centralStores, type CentralStores } from '../../../helpers/central-fixtures.js';

/**
 * The asset-health route on a store filled by the real ingest from records shaped like an agent's: flagged
 * telemetry, quality alerts, model-health events, the retained status with model health, risk records with
 * drivers. Called through `handle` as the server will (the router that mounts routes is another branch's).
 */

const MIN = 60_000;
const HOUR = 60 * MIN;
const NOW = Date.UTC(2026, 2, 2, 12);

const risk = (seq: number, ts: number, asset: string, model: string, score: number): BatchRecord => ({
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
  drivers: [
    { feature: 'torque', value: 40 + seq, contribution: Number((0.01 * seq).toFixed(2)) },
    { feature: 'tool_wear', value: seq, contribution: 0.1 },
  ],
});

const health = (model: string, state: string, ts: number, driftPsi: number) => ({
  asset: 'mill',
  state,
  samples: 500,
  psiMax: driftPsi + 0.2,
  driftPsi,
  outsideMax: 0.01,
  top: [{ feature: 'torque', psi: driftPsi + 0.2 }],
  ts,
});

async function seed(url: string): Promise<void> {
  const store = await CentralStore.open({ url, projections: [new FleetProjection({ rollupMetrics: [] }), new AlertBook()] });
  const put = (stream: string, records: BatchRecord[], agentId = 'a1') =>
    store.ingestBatch({ agentId, stream, bootSeq: 1, historical: false, records }, NOW - MIN);
  try {
    await put('telemetry', [
      { seq: 1, ts: NOW - 30 * HOUR, asset: 'mill', metrics: { torque: 400 }, quality: { torque: 'range' } }, // before the window
      { seq: 2, ts: NOW - 3 * HOUR, asset: 'mill', metrics: { torque: 41, tool_wear: 10 } },
      { seq: 3, ts: NOW - 2 * HOUR, asset: 'mill', metrics: { torque: 420, tool_wear: 11 }, quality: { torque: 'range' } },
      { seq: 4, ts: NOW - 2 * HOUR, asset: 'lathe', metrics: { torque: -5 }, quality: { torque: 'range' } }, // another asset
    ]);
    await put('alerts', [
      {
        seq: 1,
        ts: NOW - 90 * MIN,
        alertId: 'quality.flatline/mill/spindle.temp',
        rule: 'quality.flatline',
        asset: 'mill',
        subject: 'spindle.temp',
        state: 'raised',
        severity: 'info',
        title: 'Signal failed a data-quality check',
        evidence: { signal: 'spindle.temp', check: 'flatline', detail: 'same value 120 times', value: 300 },
        remedy: '',
        raisedTs: NOW - 90 * MIN,
      },
      {
        seq: 2,
        ts: NOW - 80 * MIN,
        alertId: 'risk.threshold/mill/machine-failure',
        rule: 'risk.threshold',
        asset: 'mill',
        subject: 'machine-failure',
        state: 'raised',
        severity: 'warning',
        title: 'risk',
        evidence: {},
        remedy: '',
        raisedTs: NOW - 80 * MIN,
      },
    ]);
    // machine-failure: an event says watch, the newer retained status says drift. tool-rul: only an event, newer.
    await put('events', [
      {
        seq: 1,
        type: 'model-health',
        previous: 'ok',
        model: 'machine-failure',
        version: '1.0.0',
        ...health('machine-failure', 'watch', NOW - 5 * HOUR, 0.12),
      },
      { seq: 2, type: 'model-health', previous: 'watch', model: 'tool-rul', version: '2.1.0', ...health('tool-rul', 'drift', NOW - HOUR, 0.4) },
    ]);
    await store.recordStatus(
      {
        agentId: 'a1',
        state: 'online',
        bootSeq: 1,
        ts: NOW - 2 * HOUR,
        payload: {
          agentVersion: '1.0.0',
          models: [
            { name: 'machine-failure', version: '1.0.0', assets: ['mill'], health: [health('machine-failure', 'drift', NOW - 2 * HOUR, 0.31)] },
            { name: 'tool-rul', version: '2.1.0', assets: ['mill'], health: [health('tool-rul', 'watch', NOW - 3 * HOUR, 0.15)] },
          ],
        },
      },
      NOW - 2 * HOUR,
    );
    const records: BatchRecord[] = [];
    for (let i = 1; i <= 25; i++) records.push(risk(records.length + 1, NOW - (26 - i) * 10 * MIN, 'mill', 'machine-failure', i / 25));
    for (let i = 1; i <= 3; i++) records.push(risk(records.length + 1, NOW - (4 - i) * 10 * MIN + 1, 'mill', 'tool-rul', 0.1 * i));
    records.push(risk(records.length + 1, NOW - MIN, 'lathe', 'machine-failure', 0.9));
    records.sort((a, b) => a.ts - b.ts);
    records.forEach((r, k) => (r.seq = k + 1));
    await put('risk', records);
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
  describe(`GET /api/v1/assets/:agent/:asset/health on ${dialect}`, () => {
    let sql: SqlClient;
    let route: ApiRoute;
    const skip = () => dialect === 'postgres' && stores.pgSkip !== null;
    const call = (agent: string, asset: string, query = '') => {
      const ctx: RouteContext = {
        query: new URLSearchParams(query),
        params: { agent, asset },
        body: undefined,
        user: { username: 'vera', role: 'viewer' },
        remoteAddress: '127.0.0.1',
        sql,
        now: () => NOW,
      };
      return route.handle(ctx) as Promise<AssetHealth>;
    };

    beforeAll(async () => {
      if (skip()) return;
      const name = `health_${dialect}`;
      await seed(stores.url(dialect, name));
      sql = await stores.reopen(dialect, name);
      route = assetHealthRoutes()[0]!;
    }, 120_000);

    it('is one GET route for viewers under /assets/:agent/:asset/health', () => {
      expect(assetHealthRoutes().map((r) => [r.method, r.pattern, r.role])).toEqual([['GET', '/assets/:agent/:asset/health', 'viewer']]);
    });

    it("lists the asset's quality flags of the last 24 h, newest first: flagged values and quality alerts", async (ctx) => {
      if (skip()) ctx.skip();
      const h = await call('a1', 'mill');
      expect(h.quality).toEqual([
        { ts: NOW - 90 * MIN, metric: 'spindle.temp', issue: 'flatline', detail: 'same value 120 times', source: 'alert', state: 'raised', value: 300 },
        { ts: NOW - 2 * HOUR, metric: 'torque', issue: 'range', detail: 'value 420 failed the range check', source: 'telemetry', value: 420 },
      ]);
      // A wider window reaches the older flag.
      expect((await call('a1', 'mill', 'hours=48')).quality.map((q) => q.value)).toEqual([300, 420, 400]);
    });

    it('gives the latest drift state per model: the newer of the retained status and the model-health events', async (ctx) => {
      if (skip()) ctx.skip();
      const h = await call('a1', 'mill');
      expect(h.drift).toEqual([
        {
          model: 'machine-failure',
          version: '1.0.0',
          state: 'drift',
          psi: 0.31,
          psiMax: 0.51,
          driftPsi: 0.31,
          outsideMax: 0.01,
          samples: 500,
          top: [{ feature: 'torque', psi: 0.51 }],
          ts: NOW - 2 * HOUR,
          source: 'status',
        },
        expect.objectContaining({ model: 'tool-rul', version: '2.1.0', state: 'drift', psi: 0.4, ts: NOW - HOUR, source: 'event' }),
      ]);
    });

    it('gives the last 20 risk records per model, oldest first, with their drivers', async (ctx) => {
      if (skip()) ctx.skip();
      const h = await call('a1', 'mill');
      const mf = h.drivers.filter((d) => d.model === 'machine-failure');
      expect(mf).toHaveLength(20);
      expect(mf.map((d) => d.score)).toEqual(Array.from({ length: 20 }, (_, i) => (i + 6) / 25));
      expect(mf[0]!.drivers).toEqual([
        { feature: 'torque', value: 46, contribution: 0.06 },
        { feature: 'tool_wear', value: 6, contribution: 0.1 },
      ]);
      expect(mf.at(-1)).toMatchObject({ ts: NOW - 10 * MIN, atRisk: true });
      expect(h.drivers.filter((d) => d.model === 'tool-rul').map((d) => d.score)).toEqual([0.1, 0.2, expect.closeTo(0.3, 10)]);
      expect((await call('a1', 'mill', 'limit=2')).drivers.map((d) => d.model)).toEqual(['machine-failure', 'machine-failure', 'tool-rul', 'tool-rul']);
    });

    it('answers 404 for an asset central never heard of, and 400 for a bad parameter', async (ctx) => {
      if (skip()) ctx.skip();
      await expect(call('a1', 'press')).rejects.toMatchObject({ status: 404, code: 'FW_ERR_API_NOT_FOUND' });
      await expect(call('a1', 'mill', 'hours=0')).rejects.toBeInstanceOf(ApiError);
      await expect(call('a1', 'mill', 'hours=9999')).rejects.toThrow('hours: must be an integer from 1 to 720');
      await expect(call('a1', 'mill', 'since=1')).rejects.toThrow('since: unknown parameter');
      // Another asset of the agent: none of the mill's flags or drift, and not a 404.
      expect(await call('a1', 'lathe', 'hours=1')).toMatchObject({ quality: [], drift: [] });
    });
  });
}
