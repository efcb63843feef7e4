import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../../../agent/src/central/api/api-params.js';
import type { ApiRoute, ConsoleUser, RouteContext } from '../../../../agent/src/central/api/api-route.js';
import { failureModes } from '../../../../agent/src/central/workflow/failure-modes.js';
import { workflowRoutes } from '../../../../agent/src/central/workflow/workflow-routes.js';
import { centralStores, type CentralStores } from '../../../helpers/central-fixtures.js';
import { workflowStore, type WorkflowStore } from './workflow-fixture.js';

/** The workflow's routes, called as the server calls them (route.handle with a context). */

let stores: CentralStores;
beforeAll(async () => {
  stores = await centralStores();
}, 120_000);
afterAll(async () => {
  await stores?.cleanup();
});

const NOW = Date.UTC(2026, 11, 7, 12, 0, 0);

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`workflow routes on ${dialect}`, () => {
    const skip = () => dialect === 'postgres' && stores.pgSkip !== null;
    let n = 0;
    const open = async (): Promise<WorkflowStore> => workflowStore(stores, dialect, `routes_${n++}`);
    const route = (method: string, pattern: string): ApiRoute => workflowRoutes().find((r) => r.method === method && r.pattern === pattern)!;
    const call = (w: WorkflowStore, r: ApiRoute, query: string, body?: unknown, user: ConsoleUser | null = { username: 'olga', role: 'operator' }) => {
      const ctx: RouteContext = { query: new URLSearchParams(query), params: {}, body, user, remoteAddress: '192.0.2.4', sql: w.sql, now: () => NOW };
      return r.handle(ctx) as Promise<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON answers, checked field by field
    };
    const refusal = async (p: Promise<unknown>) => {
      const err = await p.then(
        () => null,
        (e: unknown) => e,
      );
      if (!(err instanceof ApiError)) throw new Error(`expected an ApiError, got ${String(err)}`);
      return [err.status, err.code, err.message];
    };

    it('declares its routes with the roles of the contract', () => {
      expect(workflowRoutes().map((r) => [r.method, r.pattern, r.role])).toEqual([
        ['POST', '/alerts/actions', 'operator'],
        ['GET', '/failure-modes', 'viewer'],
        ['GET', '/audit', 'viewer'],
      ]);
    });

    it('POST /alerts/actions acts and answers the alert with its workflow; bad bodies are 400 field: message', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const w = await open();
      const key = await w.alert('edge-1', { rule: 'vibration.iso10816.zone_d', asset: 'fan', severity: 'critical', raisedTs: NOW - 60_000 });
      const actions = route('POST', '/alerts/actions');
      const { alert } = await call(w, actions, '', { alertKey: key, action: 'acknowledge', note: 'noisy' });
      expect(alert).toMatchObject({ alertKey: key, agentId: 'edge-1', asset: 'fan', severity: 'critical', state: 'active' });
      expect(alert.workflow).toEqual({ state: 'acknowledged', by: 'olga', ts: NOW, note: 'noisy', failureMode: null, actionTaken: null, until: null });
      expect(await refusal(call(w, actions, '', { alertKey: key, action: 'resolve', failureMode: 'bearing' }))).toEqual([
        400,
        'FW_ERR_WORKFLOW_ACTION',
        'actionTaken: required',
      ]);
      expect(await refusal(call(w, actions, 'x=1', { alertKey: key, action: 'acknowledge' }))).toEqual([
        400,
        'FW_ERR_API_REQUEST',
        'x: unknown parameter (this endpoint takes none)',
      ]);
      const res = await call(w, actions, '', { alertKey: key, action: 'resolve', failureMode: 'bearing', actionTaken: 'replaced the DE bearing' });
      expect(res.alert.workflow).toMatchObject({ state: 'resolved', failureMode: 'bearing', actionTaken: 'replaced the DE bearing' });
    });

    it('GET /failure-modes answers the kind central infers and its modes; 404 for what central never heard of', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const w = await open();
      await w.risk('edge-1', 'mill', 'machine-failure', 0.2, NOW - 60_000);
      await w.risk('edge-1', 'engine', 'turbofan-rul', 0.2, NOW - 60_000);
      await w.alert('edge-1', { rule: 'gpu.ecc.uncorrected', asset: 'gpu-0000:3b:00.0', raisedTs: NOW - 60_000 });
      await w.alert('edge-1', { rule: 'vibration.iso10816.zone_c', asset: 'pump', raisedTs: NOW - 60_000 });
      await w.alert('edge-1', { rule: 'memory.ecc.corrected_growing', asset: 'edge-1', raisedTs: NOW - 60_000 });
      await w.alert('edge-1', { rule: 'pcie.aer.fatal', asset: 'edge-1', raisedTs: NOW - 90_000, state: 'raised' });
      await w.alert('edge-1', { rule: 'quality.flatline', asset: 'press', raisedTs: NOW - 60_000 });
      await w.alert('edge-1', { rule: 'agent-offline', asset: null, raisedTs: NOW - 60_000 });
      const modes = route('GET', '/failure-modes');
      const kind = async (q: string) => (await call(w, modes, q)).kind as string;
      expect(await kind('agent=edge-1&asset=mill')).toBe('machine');
      expect(await kind('agent=edge-1&asset=engine')).toBe('turbofan');
      expect(await kind('agent=edge-1&asset=gpu-0000%3A3b%3A00.0')).toBe('gpu');
      expect(await kind('agent=edge-1&asset=pump')).toBe('rotating');
      expect(await kind('agent=edge-1&asset=edge-1')).toBe('memory'); // its newest active alert names memory
      expect(await kind('agent=edge-1&asset=press')).toBe('generic');
      expect(await kind('agent=edge-1')).toBe('agent');
      expect(await call(w, modes, 'agent=edge-1&asset=mill')).toEqual({ kind: 'machine', modes: failureModes('machine') });
      expect(await refusal(call(w, modes, 'agent=edge-1&asset=ghost'))).toEqual([
        404,
        'FW_ERR_API_NOT_FOUND',
        'asset edge-1/ghost: central has not heard of it',
      ]);
      expect(await refusal(call(w, modes, 'asset=mill'))).toEqual([400, 'FW_ERR_API_REQUEST', 'agent: required: the agent of the alert']);
    });

    it('GET /audit lists entries newest first, pages with a cursor and filters by target', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const w = await open();
      const audit = route('GET', '/audit');
      expect(await call(w, audit, '')).toEqual({ entries: [], nextCursor: null }); // no audit table yet
      const actions = route('POST', '/alerts/actions');
      const keys: string[] = [];
      for (let i = 0; i < 3; i++) {
        const key = await w.alert('edge-2', { rule: 'disk.smart.pending', asset: `disk-${i}`, raisedTs: NOW - 60_000 });
        keys.push(key);
        await call(w, actions, '', { alertKey: key, action: 'acknowledge' });
      }
      await call(w, actions, '', { alertKey: keys[0], action: 'false-alarm', note: 'test rig' });
      const p1 = await call(w, audit, 'limit=3');
      expect(p1.entries.map((e: { action: string; target: string }) => [e.action, e.target])).toEqual([
        ['alert.false-alarm', keys[0]],
        ['alert.acknowledge', keys[2]],
        ['alert.acknowledge', keys[1]],
      ]);
      expect(p1.entries[0]).toMatchObject({
        ts: NOW,
        username: 'olga',
        remoteAddr: '192.0.2.4',
        details: { from: 'acknowledged', to: 'false_alarm', note: 'test rig' },
      });
      const p2 = await call(w, audit, `limit=3&cursor=${p1.nextCursor}`);
      expect(p2.entries.map((e: { target: string }) => e.target)).toEqual([keys[0]]);
      expect(p2.nextCursor).toBeNull();
      expect((await call(w, audit, `target=${encodeURIComponent(keys[0]!)}`)).entries.map((e: { action: string }) => e.action)).toEqual([
        'alert.false-alarm',
        'alert.acknowledge',
      ]);
      expect(await refusal(call(w, audit, 'cursor=abc'))).toEqual([
        400,
        'FW_ERR_API_REQUEST',
        'cursor: not a cursor this endpoint returned (take nextCursor from the previous page)',
      ]);
      expect(await refusal(call(w, audit, 'limit=0'))).toEqual([400, 'FW_ERR_API_REQUEST', 'limit: must be an integer from 1 to 1000, got "0"']);
    });
  });
}
