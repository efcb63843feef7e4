import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCentralApi, type CentralApi } from '../../../../agent/src/central/api/central-api.js';
import { parseCentralOptions } from '../../../../agent/src/central/central-command.js';
import { CENTRAL_MODULES } from '../../../../agent/src/central/central-modules.js';
import type { CentralStore } from '../../../../agent/src/central/central-store.js';
import { workflowRoutes } from '../../../../agent/src/central/workflow/workflow-routes.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { centralStores, type CentralStores } from '../../../helpers/central-fixtures.js';
import { consoleSession } from '../../../helpers/console-session.js';
import { workflowStore, type WorkflowStore } from './workflow-fixture.js';

/** The workflow's routes on central's HTTP server, as the console calls them: sessions, roles, CSRF, JSON. */

let stores: CentralStores;
beforeAll(async () => {
  stores = await centralStores();
}, 120_000);
afterAll(async () => {
  await stores?.cleanup();
});

it('forewarn central mounts the workflow routes (with the alerting module)', () => {
  const options = parseCentralOptions([], {});
  const routes = CENTRAL_MODULES.flatMap((module) => module(options, captureLogger().log)?.routes?.({} as CentralStore) ?? []);
  expect(routes.map((r) => `${r.method} ${r.pattern} ${r.role}`)).toEqual(
    expect.arrayContaining(['POST /alerts/actions operator', 'GET /failure-modes viewer', 'GET /audit viewer']),
  );
});

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`workflow over HTTP on ${dialect}`, () => {
    let w: WorkflowStore;
    let api: CentralApi;
    let base: string;
    beforeAll(async () => {
      if (dialect === 'postgres' && stores.pgSkip) return;
      w = await workflowStore(stores, dialect, 'wf_http');
      api = createCentralApi({ sql: w.sql, log: captureLogger().log, port: 0, routes: workflowRoutes() });
      await api.start();
      base = `http://127.0.0.1:${api.address().port}`;
    }, 60_000);
    afterAll(async () => {
      await api?.stop();
    });

    it('an operator acts, a viewer reads but cannot act; the alert list, asset and fleet show the workflow; the audit log has it', async (ctx) => {
      if (dialect === 'postgres' && stores.pgSkip) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const raisedTs = Date.now() - 60_000;
      const key = await w.alert('edge-1', { rule: 'vibration.iso10816.zone_d', asset: 'fan', severity: 'critical', raisedTs });
      const operator = await consoleSession(base, w.sql, { role: 'operator', username: 'olga' });
      const viewer = await consoleSession(base, w.sql, { role: 'viewer', username: 'victor' });
      const post = (c: typeof operator, body: unknown) => c.fetch('/api/v1/alerts/actions', { method: 'POST', body: JSON.stringify(body) });

      const refused = await post(viewer, { alertKey: key, action: 'acknowledge' });
      expect([refused.status, ((await refused.json()) as { error: { code: string } }).error.code]).toEqual([403, 'FW_ERR_CONSOLE_FORBIDDEN']);
      const bad = await post(operator, { alertKey: key, action: 'resolve', failureMode: 'bearing' });
      expect([bad.status, await bad.json()]).toEqual([400, { error: { code: 'FW_ERR_WORKFLOW_ACTION', message: 'actionTaken: required' } }]);

      const ok = await post(operator, { alertKey: key, action: 'acknowledge', note: 'on it' });
      expect(ok.status).toBe(200);
      const { alert } = (await ok.json()) as { alert: { alertKey: string; workflow: Record<string, unknown> } };
      expect(alert).toMatchObject({ alertKey: key, workflow: { state: 'acknowledged', by: 'olga', note: 'on it' } });
      const again = await post(operator, { alertKey: key, action: 'acknowledge' });
      expect(again.status).toBe(409);
      expect(((await again.json()) as { error: { message: string } }).error.message).toMatch(new RegExp(`^alert ${key}: already acknowledged by olga at `));

      expect((await viewer.get('/api/v1/alerts')).body.alerts[0]).toMatchObject({ alertKey: key, workflow: { state: 'acknowledged', by: 'olga' } });
      expect((await viewer.get('/api/v1/assets/edge-1/fan')).body.state).toBe('acknowledged');
      expect((await viewer.get('/api/v1/fleet')).body.assets).toMatchObject({ acknowledged: 1, alarm: 0 });
      expect((await viewer.get('/api/v1/assets?state=acknowledged')).body.assets.map((a: { asset: string }) => a.asset)).toEqual(['fan']);
      expect((await viewer.get('/api/v1/failure-modes?agent=edge-1&asset=fan')).body.kind).toBe('rotating');
      const audit = await viewer.get(`/api/v1/audit?target=${encodeURIComponent(key)}`);
      expect(audit.body.entries).toEqual([
        expect.objectContaining({ username: 'olga', action: 'alert.acknowledge', target: key, remoteAddr: expect.any(String) }),
      ]);
    });
  });
}
