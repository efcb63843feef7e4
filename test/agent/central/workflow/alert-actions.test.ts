import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../../../agent/src/central/api/api-params.js';
import { alertsList, assetDetail, fleetAssets, fleetSummary, StoreTables } from '../../../../agent/src/central/api/fleet-queries.js';
import {
  ACK_SILENCE_MS,
  applyAlertAction,
  DEFAULT_MAINTENANCE_MS,
  parseActionRequest,
  type AlertAction,
} from '../../../../agent/src/central/workflow/alert-actions.js';
import { centralStores, type CentralStores } from '../../../helpers/central-fixtures.js';
import { workflowStore, type WorkflowStore } from './workflow-fixture.js';

let stores: CentralStores;
beforeAll(async () => {
  stores = await centralStores();
}, 120_000);
afterAll(async () => {
  await stores?.cleanup();
});

const NOW = Date.UTC(2026, 11, 7, 12, 0, 0);
const ISO_NOW = new Date(NOW).toISOString();

/** The ApiError an action throws, as [status, code, message]. */
async function refusal(p: Promise<unknown>): Promise<[number, string, string]> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof ApiError)) throw new Error(`expected an ApiError, got ${String(err)}`);
  return [err.status, err.code, err.message];
}

describe('parseActionRequest', () => {
  it('checks the body: 400 field: message', () => {
    const cases: Array<[unknown, string]> = [
      [null, 'body: must be a JSON object'],
      [[], 'body: must be a JSON object'],
      [{ action: 'acknowledge' }, 'alertKey: required'],
      [{ alertKey: 'k' }, 'action: must be one of acknowledge, maintenance, resolve, false-alarm, got null'],
      [{ alertKey: 'k', action: 'close' }, 'action: must be one of acknowledge, maintenance, resolve, false-alarm, got "close"'],
      [
        { alertKey: 'k', action: 'acknowledge', colour: 'red' },
        'colour: unknown field (an action takes alertKey, action, note, failureMode, actionTaken, untilTs)',
      ],
      [{ alertKey: 'k', action: 'acknowledge', note: 5 }, 'note: must be a string, got number'],
      [{ alertKey: 'k', action: 'acknowledge', note: 'x'.repeat(2001) }, 'note: longer than 2000 characters'],
      [{ alertKey: 'k', action: 'resolve', actionTaken: 'swapped it' }, 'failureMode: required'],
      [{ alertKey: 'k', action: 'resolve', failureMode: 'bearing' }, 'actionTaken: required'],
      [{ alertKey: 'k', action: 'resolve', failureMode: 'other', actionTaken: 'swapped it' }, 'note: required with failureMode "other": describe the failure'],
      [{ alertKey: 'k', action: 'acknowledge', failureMode: 'bearing' }, 'failureMode: only a resolve takes a failure mode'],
      [{ alertKey: 'k', action: 'false-alarm', actionTaken: 'none' }, 'actionTaken: only a resolve takes the action taken'],
      [{ alertKey: 'k', action: 'acknowledge', untilTs: NOW + 1 }, 'untilTs: only a maintenance takes an end time'],
      [{ alertKey: 'k', action: 'maintenance', untilTs: 'tomorrow' }, 'untilTs: must be ms since the epoch or an ISO 8601 date-time'],
      [{ alertKey: 'k', action: 'maintenance', untilTs: NOW }, `untilTs: must be in the future (now is ${ISO_NOW})`],
      [{ alertKey: 'k', action: 'maintenance', untilTs: NOW + 31 * 86_400_000 }, 'untilTs: must be at most 30 days ahead'],
    ];
    for (const [body, message] of cases) {
      let got: unknown;
      try {
        parseActionRequest(body, NOW);
      } catch (err) {
        got = err;
      }
      expect(got, JSON.stringify(body)).toBeInstanceOf(ApiError);
      expect([(got as ApiError).status, (got as ApiError).code, (got as ApiError).message]).toEqual([400, 'FW_ERR_WORKFLOW_ACTION', message]);
    }
  });

  it('defaults a maintenance window to 8 hours, takes an ISO end time, and trims text', () => {
    expect(parseActionRequest({ alertKey: 'k', action: 'maintenance' }, NOW).untilTs).toBe(NOW + DEFAULT_MAINTENANCE_MS);
    expect(parseActionRequest({ alertKey: 'k', action: 'maintenance', untilTs: '2026-12-08T00:00:00Z' }, NOW).untilTs).toBe(Date.UTC(2026, 11, 8));
    expect(parseActionRequest({ alertKey: ' k ', action: 'resolve', failureMode: 'bearing', actionTaken: ' replaced ', note: '  ' }, NOW)).toEqual({
      alertKey: 'k',
      action: 'resolve',
      note: null,
      failureMode: 'bearing',
      actionTaken: 'replaced',
      untilTs: null,
    });
  });
});

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`alert actions on ${dialect}`, () => {
    const skip = () => dialect === 'postgres' && stores.pgSkip !== null;
    let n = 0;
    const open = async (): Promise<WorkflowStore> => workflowStore(stores, dialect, `wf_${n++}`);
    const act = (w: WorkflowStore, alertKey: string, action: AlertAction, extra: Record<string, unknown> = {}, at = NOW, user = 'alice') =>
      applyAlertAction(w.sql, parseActionRequest({ alertKey, action, ...extra }, at), { username: user, remoteAddr: '10.0.0.7', now: at });
    const bodyOf = (action: AlertAction) =>
      action === 'resolve'
        ? { failureMode: 'other', note: 'worn coupling', actionTaken: 'replaced the coupling' }
        : action === 'false-alarm'
          ? { note: 'sensor knocked' }
          : {};

    it('allows the transitions of the table and refuses the others with 409 saying the state, by whom and when', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const w = await open();
      const STATE = { acknowledge: 'acknowledged', maintenance: 'maintenance', resolve: 'resolved', 'false-alarm': 'false_alarm' } as const;
      const WORDS = { acknowledge: 'acknowledged', maintenance: 'in maintenance', resolve: 'resolved', 'false-alarm': 'marked a false alarm' } as const;
      const actions: AlertAction[] = ['acknowledge', 'maintenance', 'resolve', 'false-alarm'];
      const allowed: Record<AlertAction | 'none', AlertAction[]> = {
        none: ['acknowledge', 'maintenance', 'resolve', 'false-alarm'],
        acknowledge: ['maintenance', 'resolve', 'false-alarm'],
        maintenance: ['resolve', 'false-alarm'],
        resolve: [],
        'false-alarm': [],
      };
      let i = 0;
      for (const first of ['none', ...actions] as const) {
        for (const second of actions) {
          const key = await w.alert('edge-1', { rule: 'gpu.xid', asset: `gpu-${i++}`, severity: 'critical', raisedTs: NOW - 60_000 });
          if (first !== 'none') await act(w, key, first, bodyOf(first), NOW, 'bob');
          const p = act(w, key, second, bodyOf(second), NOW + 1_000);
          if (allowed[first].includes(second)) {
            const row = await p;
            expect([first, second, row.workflow?.state, row.workflow?.by]).toEqual([first, second, STATE[second], 'alice']);
          } else {
            const [status, code, message] = await refusal(p);
            expect([first, second, status, code]).toEqual([first, second, 409, 'FW_ERR_WORKFLOW_ACTION']);
            expect(message).toContain(`${key}: already ${WORDS[first as AlertAction]} by bob at ${ISO_NOW}`);
          }
        }
      }
    });

    it('records who, when, the note, the failure mode, the action taken and the window; the alert row carries it', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const w = await open();
      await w.risk('edge-1', 'mill', 'machine-failure', 0.7, NOW - 120_000);
      const key = await w.alert('edge-1', { rule: 'risk.threshold', asset: 'mill', raisedTs: NOW - 60_000 });
      const acked = await act(w, key, 'acknowledge', { note: 'on my way' });
      expect(acked).toMatchObject({ alertKey: key, state: 'active', raisedTs: NOW - 60_000 });
      expect(acked.workflow).toEqual({ state: 'acknowledged', by: 'alice', ts: NOW, note: 'on my way', failureMode: null, actionTaken: null, until: null });
      const maint = await act(w, key, 'maintenance', { note: 'spindle out' }, NOW + 1_000, 'bob');
      expect(maint.workflow).toMatchObject({
        state: 'maintenance',
        by: 'bob',
        ts: NOW + 1_000,
        note: 'spindle out',
        until: NOW + 1_000 + DEFAULT_MAINTENANCE_MS,
      });
      // A failure mode outside the machine's catalogue (AI4I modes) is refused; one inside it is kept.
      expect(await refusal(act(w, key, 'resolve', { failureMode: 'bearing', actionTaken: 'x' }, NOW + 2_000))).toEqual([
        400,
        'FW_ERR_WORKFLOW_ACTION',
        'failureMode: "bearing" is not a failure mode of a machine asset (tool-wear, heat-dissipation, power, overstrain, random, other)',
      ]);
      const resolved = await act(w, key, 'resolve', { failureMode: 'tool-wear', actionTaken: 'changed the tool', note: 'T4 worn' }, NOW + 2_000);
      expect(resolved.workflow).toEqual({
        state: 'resolved',
        by: 'alice',
        ts: NOW + 2_000,
        note: 'T4 worn',
        failureMode: 'tool-wear',
        actionTaken: 'changed the tool',
        until: null,
      });
      // The audit log has each action, with what changed.
      const audit = await w.sql.all<Record<string, unknown>>('SELECT ts, username, action, target, details, remote_addr FROM audit_log ORDER BY id');
      expect(audit.map((a) => [Number(a.ts), a.username, a.action, a.target, a.remote_addr])).toEqual([
        [NOW, 'alice', 'alert.acknowledge', key, '10.0.0.7'],
        [NOW + 1_000, 'bob', 'alert.maintenance', key, '10.0.0.7'],
        [NOW + 2_000, 'alice', 'alert.resolve', key, '10.0.0.7'],
      ]);
      expect(JSON.parse(String(audit[2]!.details))).toEqual({
        raisedTs: NOW - 60_000,
        agentId: 'edge-1',
        asset: 'mill',
        rule: 'risk.threshold',
        from: 'maintenance',
        to: 'resolved',
        note: 'T4 worn',
        failureMode: 'tool-wear',
        actionTaken: 'changed the tool',
      });
      expect(JSON.parse(String(audit[1]!.details))).toMatchObject({ from: 'acknowledged', to: 'maintenance', untilTs: NOW + 1_000 + DEFAULT_MAINTENANCE_MS });
    });

    it('acts on the current episode: an alert raised again starts afresh; a cleared alert can be resolved but not acknowledged; 404 for an unknown one', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const w = await open();
      const key = await w.alert('edge-2', { rule: 'disk.smart.pending', asset: 'disk-S1', raisedTs: NOW - 60_000 });
      await act(w, key, 'false-alarm', { note: 'benchmark run' });
      await w.alert('edge-2', { rule: 'disk.smart.pending', asset: 'disk-S1', raisedTs: NOW - 60_000, state: 'cleared' });
      // Raised again: a new episode, no workflow, and it can be acknowledged.
      await w.alert('edge-2', { rule: 'disk.smart.pending', asset: 'disk-S1', raisedTs: NOW + 5_000 });
      const [fresh] = await alertsList(w.sql, new StoreTables(), {
        state: null,
        agentId: null,
        asset: null,
        severity: null,
        alertKey: key,
        before: null,
        limit: 1,
      });
      expect(fresh).toMatchObject({ raisedTs: NOW + 5_000, state: 'active', workflow: null });
      expect((await act(w, key, 'acknowledge', {}, NOW + 6_000)).workflow?.state).toBe('acknowledged');
      // Cleared by its agent before anyone acted.
      await w.alert('edge-2', { rule: 'disk.smart.pending', asset: 'disk-S1', raisedTs: NOW + 5_000, state: 'cleared' });
      const other = await w.alert('edge-2', { rule: 'disk.smart.failed', asset: 'disk-S1', raisedTs: NOW - 60_000 });
      await w.alert('edge-2', { rule: 'disk.smart.failed', asset: 'disk-S1', raisedTs: NOW - 60_000, state: 'cleared' });
      const [status, , message] = await refusal(act(w, other, 'acknowledge'));
      expect([status, message]).toEqual([
        409,
        `alert ${other}: cleared by its agent at ${new Date(NOW - 59_000).toISOString()}, nothing to acknowledge; resolve it or mark it a false alarm to record what it was`,
      ]);
      const resolved = await act(w, other, 'resolve', { failureMode: 'media', actionTaken: 'replaced the disk' });
      expect(resolved).toMatchObject({ state: 'resolved', workflow: { state: 'resolved', failureMode: 'media' } });
      expect(await refusal(act(w, 'agent/edge-2/nope', 'acknowledge'))).toEqual([
        404,
        'FW_ERR_WORKFLOW_ACTION',
        'alertKey: central knows no alert agent/edge-2/nope',
      ]);
    });

    it('writes the action and its audit entry in one transaction: a failing audit insert leaves nothing behind', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const w = await open();
      const key = await w.alert('edge-3', { rule: 'memory.ecc.uncorrected', asset: 'edge-3', severity: 'critical', raisedTs: NOW - 60_000 });
      await act(w, await w.alert('edge-3', { rule: 'gpu.xid', asset: 'gpu-1', raisedTs: NOW }), 'acknowledge'); // creates the tables
      await w.sql.exec('ALTER TABLE audit_log RENAME TO audit_log_away');
      await expect(act(w, key, 'acknowledge')).rejects.toThrow(/audit_log/);
      await w.sql.exec('ALTER TABLE audit_log_away RENAME TO audit_log');
      expect(await w.sql.all('SELECT state FROM alert_workflow WHERE alert_key = ?', [key])).toEqual([]);
      expect(await w.sql.all('SELECT purpose FROM alert_silences WHERE alert_key = ?', [key])).toEqual([]);
      // The same action succeeds once the audit log takes it again.
      expect((await act(w, key, 'acknowledge')).workflow?.state).toBe('acknowledged');
      expect(Number((await w.sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM audit_log WHERE target = ?', [key]))!.n)).toBe(1);
    });

    it('lets one of two operators acknowledging at once win; the other gets 409', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const w = await open();
      const key = await w.alert('edge-4', { rule: 'pcie.aer.fatal', asset: 'edge-4', severity: 'critical', raisedTs: NOW - 60_000 });
      await act(w, await w.alert('edge-4', { rule: 'x', asset: 'a', raisedTs: NOW }), 'acknowledge'); // creates the tables
      const results = await Promise.allSettled([act(w, key, 'acknowledge', {}, NOW, 'alice'), act(w, key, 'acknowledge', {}, NOW, 'bob')]);
      expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect((lost.reason as ApiError).status).toBe(409);
      expect(Number((await w.sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM audit_log WHERE target = ?', [key]))!.n)).toBe(1);
    });

    it('asks Alertmanager for the silences each action implies: the alert’s labels, then its asset, then none', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const w = await open();
      const key = await w.alert('edge-5', { rule: 'gpu.xid', asset: 'gpu-0', subject: 'xid-79', severity: 'critical', raisedTs: NOW - 60_000 });
      const silences = async () =>
        (await w.sql.all<Record<string, unknown>>('SELECT purpose, matchers, ends_ts, wanted, created_by, comment FROM alert_silences ORDER BY purpose')).map(
          (s) => ({
            purpose: s.purpose,
            matchers: JSON.parse(String(s.matchers)) as unknown,
            endsTs: Number(s.ends_ts),
            wanted: s.wanted,
            createdBy: s.created_by,
            comment: s.comment,
          }),
        );
      const m = (name: string, value: string) => ({ name, value, isRegex: false, isEqual: true });
      await act(w, key, 'acknowledge', { note: 'looking' });
      expect(await silences()).toEqual([
        {
          purpose: 'acknowledge',
          matchers: [
            m('alertname', 'gpu.xid'),
            m('agent', 'edge-5'),
            m('rule', 'gpu.xid'),
            m('severity', 'critical'),
            m('asset', 'gpu-0'),
            m('subject', 'xid-79'),
          ],
          endsTs: NOW + ACK_SILENCE_MS,
          wanted: 'active',
          createdBy: 'alice',
          comment: `Forewarn: acknowledged by alice: looking (${key})`,
        },
      ]);
      const until = NOW + 3_600_000;
      await act(w, key, 'maintenance', { untilTs: until }, NOW + 1_000, 'bob');
      expect((await silences()).map((s) => [s.purpose, s.wanted, s.matchers, s.endsTs, s.createdBy])).toEqual([
        ['acknowledge', 'expired', expect.any(Array), NOW + ACK_SILENCE_MS, 'alice'],
        ['maintenance', 'active', [m('agent', 'edge-5'), m('asset', 'gpu-0')], until, 'bob'],
      ]);
      await act(w, key, 'resolve', { failureMode: 'fell-off-bus', actionTaken: 'reseated the card' }, NOW + 2_000);
      expect((await silences()).map((s) => s.wanted)).toEqual(['expired', 'expired']);
    });

    it('gives assets the states acknowledged and maintenance; closed alerts stop counting while their agent reports them', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const w = await open();
      const tables = new StoreTables();
      const gpuAlarm = await w.alert('edge-6', { rule: 'gpu.xid', asset: 'gpu-0', severity: 'critical', raisedTs: NOW - 60_000 });
      const gpuWarn = await w.alert('edge-6', { rule: 'gpu.thermal_slowdown', asset: 'gpu-0', severity: 'warning', raisedTs: NOW - 50_000 });
      const fan = await w.alert('edge-6', { rule: 'vibration.iso10816.zone_c', asset: 'fan', severity: 'warning', raisedTs: NOW - 40_000 });
      const states = async (now: number) => Object.fromEntries((await fleetAssets(w.sql, tables, now)).map((a) => [a.asset, a.state] as const));
      expect(await states(NOW)).toEqual({ 'gpu-0': 'alarm', fan: 'warning' });
      await act(w, gpuAlarm, 'acknowledge');
      expect((await states(NOW))['gpu-0']).toBe('warning'); // the warning is not acknowledged yet
      await act(w, gpuWarn, 'acknowledge');
      expect((await states(NOW))['gpu-0']).toBe('acknowledged');
      await act(w, fan, 'maintenance', { untilTs: NOW + 3_600_000 });
      expect(await states(NOW)).toEqual({ 'gpu-0': 'acknowledged', fan: 'maintenance' });
      // The window over, the alert counts again.
      expect((await states(NOW + 3_600_001)).fan).toBe('warning');
      expect((await fleetSummary(w.sql, tables, NOW)).assets).toEqual({
        total: 2,
        healthy: 0,
        watch: 0,
        warning: 0,
        alarm: 0,
        acknowledged: 1,
        maintenance: 1,
      });
      // Resolved and marked a false alarm while the agent still reports both active: healthy.
      await act(w, gpuAlarm, 'resolve', { failureMode: 'fell-off-bus', actionTaken: 'reseated' });
      await act(w, gpuWarn, 'false-alarm');
      const detail = await assetDetail(w.sql, tables, 'edge-6', 'gpu-0', NOW);
      expect(detail?.state).toBe('healthy');
      expect(detail?.activeAlerts).toEqual({ critical: 1, warning: 1 });
      expect(detail?.alerts.map((a) => [a.rule, a.state, a.workflow?.state])).toEqual([
        ['gpu.thermal_slowdown', 'active', 'false_alarm'],
        ['gpu.xid', 'active', 'resolved'],
      ]);
      expect((await assetDetail(w.sql, tables, 'edge-6', 'fan', NOW))?.state).toBe('maintenance');
    });
  });
}
