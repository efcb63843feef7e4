import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCentralAlerting } from '../../../../agent/src/central/alerts/central-alerting.js';
import type { WebhookMessage } from '../../../../agent/src/central/alerts/alert-messages.js';
import { ACK_SILENCE_MS, applyAlertAction, parseActionRequest, type AlertAction } from '../../../../agent/src/central/workflow/alert-actions.js';
import { alertmanagerSkipReason, startAlertmanager, type Alertmanager } from '../../../helpers/alertmanager.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { centralStores, type CentralStores } from '../../../helpers/central-fixtures.js';
import { cleanupAfterEach } from '../../../helpers/cleanup.js';
import { startHttpReceiver, type HttpReceiver } from '../../../helpers/http-receiver.js';
import { waitFor } from '../../../helpers/wait.js';
import { workflowStore, type WorkflowStore } from './workflow-fixture.js';

/**
 * The workflow's silences and resolutions through a real Prometheus Alertmanager (clustering off) to a webhook
 * receiver in the test, with central's alerting (router and silences) running as `forewarn central` runs it.
 */

const amSkip = alertmanagerSkipReason();
let stores: CentralStores;
beforeAll(async () => {
  stores = await centralStores();
}, 120_000);
afterAll(async () => {
  await stores?.cleanup();
});
const cleanup = cleanupAfterEach();

interface Silence {
  id: string;
  status: { state: 'active' | 'pending' | 'expired' };
  matchers: Array<{ name: string; value: string; isRegex: boolean; isEqual?: boolean }>;
  startsAt: string;
  endsAt: string;
  createdBy: string;
  comment: string;
}
interface Notification {
  status: 'firing' | 'resolved';
  alerts: Array<{ status: string; labels: Record<string, string>; endsAt: string }>;
}

async function silences(am: Alertmanager): Promise<Silence[]> {
  return (await (await fetch(`${am.url}/api/v2/silences`)).json()) as Silence[];
}
const byName = (ms: Silence['matchers']) => [...ms].sort((a, b) => a.name.localeCompare(b.name)).map((m) => [m.name, m.value, m.isRegex, m.isEqual ?? true]);

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`workflow silences through Alertmanager on ${dialect}`, () => {
    const skipReason = () => amSkip ?? (dialect === 'postgres' ? stores.pgSkip : null);
    let n = 0;

    const setup = async (): Promise<{
      w: WorkflowStore;
      am: Alertmanager;
      receiver: HttpReceiver;
      central: ReturnType<typeof createCentralAlerting>;
      logs: ReturnType<typeof captureLogger>;
    }> => {
      const receiver = await startHttpReceiver();
      cleanup.push(() => receiver.close());
      const am = await startAlertmanager({ webhookUrl: `${receiver.url}/am` });
      cleanup.push(() => am.stop());
      const w = await workflowStore(stores, dialect, `am_wf_${n++}_${Date.now() % 100_000}`);
      const logs = captureLogger();
      const central = createCentralAlerting({
        sql: w.sql,
        log: logs.log,
        alertmanager: { urls: [am.url], resendIntervalMs: 1_000 },
        webhooks: [{ url: `${receiver.url}/hook`, name: 'ops' }],
        routeIntervalMs: 100,
        evaluateIntervalMs: 60_000,
        workerId: 'central-1',
      });
      for (const c of central.components) await c.start();
      cleanup.push(async () => {
        for (const c of central.components) await c.stop();
      });
      return { w, am, receiver, central, logs };
    };
    const act = (w: WorkflowStore, alertKey: string, action: AlertAction, extra: Record<string, unknown>, now: number, user = 'alice') =>
      applyAlertAction(w.sql, parseActionRequest({ alertKey, action, ...extra }, now), { username: user, remoteAddr: null, now });

    it('acknowledge silences the alert, maintenance its asset, resolve expires both and the episode reaches people as resolved', async (ctx) => {
      const reason = skipReason();
      if (reason) return ctx.skip(reason);
      const { w, am, receiver, central } = await setup();
      const t0 = Date.now();
      const key = await w.alert('edge-1', { rule: 'gpu.xid', asset: 'gpu-0', subject: 'xid-79', severity: 'critical', raisedTs: t0 });
      await w.alert('edge-1', { rule: 'gpu.thermal_slowdown', asset: 'gpu-0', severity: 'warning', raisedTs: t0 });
      const hook = () => receiver.received.filter((r) => r.path === '/hook').map((r) => r.body as WebhookMessage);
      const notes = () => receiver.received.filter((r) => r.path === '/am').map((r) => r.body as Notification);
      await waitFor(() => notes().length >= 2 && hook().length >= 2, 'both alerts notified through Alertmanager and the webhook');
      const amAlert = async (rule: string) => (await am.alerts()).find((a) => a.labels.rule === rule);

      // Acknowledge: one silence on exactly the labels the router sends, for 24 h; Alertmanager mutes the alert.
      const tAck = Date.now();
      await act(w, key, 'acknowledge', { note: 'on it' }, tAck);
      const ack = await waitFor(async () => (await silences(am)).find((s) => s.status.state === 'active'), 'the acknowledgement silence');
      expect(byName(ack.matchers)).toEqual([
        ['agent', 'edge-1', false, true],
        ['alertname', 'gpu.xid', false, true],
        ['asset', 'gpu-0', false, true],
        ['rule', 'gpu.xid', false, true],
        ['severity', 'critical', false, true],
        ['subject', 'xid-79', false, true],
      ]);
      expect(byName(ack.matchers)).toEqual(
        byName(Object.entries((await amAlert('gpu.xid'))!.labels).map(([name, value]) => ({ name, value, isRegex: false }))),
      );
      expect(Date.parse(ack.endsAt)).toBe(tAck + ACK_SILENCE_MS);
      expect(ack).toMatchObject({ createdBy: 'alice', comment: `Forewarn: acknowledged by alice: on it (${key})` });
      await waitFor(async () => ((await amAlert('gpu.xid')) as unknown as { status: { state: string } }).status.state === 'suppressed', 'gpu.xid muted');
      expect(((await amAlert('gpu.thermal_slowdown')) as unknown as { status: { state: string } }).status.state).toBe('active');
      // The id is stored once Alertmanager answered the POST, which may come after the silence is visible there.
      const storedIds = async () =>
        JSON.parse((await w.sql.get<{ silence_ids: string }>('SELECT silence_ids FROM alert_workflow WHERE alert_key = ?', [key]))!.silence_ids) as string[];
      await waitFor(async () => (await storedIds()).length > 0, 'the silence id stored with the workflow');
      expect(await storedIds()).toEqual([ack.id]);

      // Maintenance: the acknowledgement's silence ends, one on the agent and asset mutes both alerts until the end.
      const until = Date.now() + 3_600_000;
      await act(w, key, 'maintenance', { untilTs: until, note: 'swap planned' }, Date.now(), 'bob');
      await waitFor(
        async () =>
          (await silences(am)).filter((s) => s.status.state === 'active').length === 1 &&
          (await silences(am)).some((s) => s.id === ack.id && s.status.state === 'expired'),
        'the acknowledgement expired, maintenance silence active',
      );
      const maint = (await silences(am)).find((s) => s.status.state === 'active')!;
      expect(byName(maint.matchers)).toEqual([
        ['agent', 'edge-1', false, true],
        ['asset', 'gpu-0', false, true],
      ]);
      expect(Date.parse(maint.endsAt)).toBe(until);
      expect(maint.createdBy).toBe('bob');
      expect(maint.comment).toContain('by bob: swap planned');
      await waitFor(
        async () => ((await amAlert('gpu.thermal_slowdown')) as unknown as { status: { state: string } }).status.state === 'suppressed',
        'the whole asset muted',
      );

      // Resolve while the agent still reports it: every silence of the alert expired, and people get the resolution.
      const before = { notes: notes().length, hook: hook().length };
      const tResolve = Date.now();
      await act(w, key, 'resolve', { failureMode: 'fell-off-bus', actionTaken: 'reseated the card' }, tResolve);
      await waitFor(async () => (await silences(am)).every((s) => s.status.state === 'expired'), 'every silence expired');
      await waitFor(() => hook().length > before.hook, 'the webhook resolution');
      expect(hook().slice(before.hook)).toEqual([
        expect.objectContaining({
          id: `${key}@${t0}:resolved`,
          status: 'resolved',
          alert: expect.objectContaining({ key, resolvedAt: new Date(tResolve).toISOString() }),
        }),
      ]);
      await waitFor(
        () =>
          notes()
            .slice(before.notes)
            .some((x) => x.alerts.some((a) => a.labels.rule === 'gpu.xid' && a.status === 'resolved')),
        'the resolved notification from Alertmanager',
      );
      const resolvedNote = notes()
        .slice(before.notes)
        .find((x) => x.alerts.some((a) => a.labels.rule === 'gpu.xid'))!;
      expect(resolvedNote).toMatchObject({ status: 'resolved' });
      expect(Date.parse(resolvedNote.alerts[0]!.endsAt)).toBe(tResolve);
      expect((await w.sql.get<{ state: string }>('SELECT state FROM central_alerts WHERE alert_key = ?', [key]))!.state).toBe('active');
      // The periodic resend keeps telling Alertmanager it is resolved, and nobody is told again.
      const resent = central.router.stats.resent;
      await waitFor(() => central.router.stats.resent >= resent + 2, 'two more resends');
      // Alertmanager lists only alerts that have not ended: a resend of it as active would bring it back.
      expect(await amAlert('gpu.xid')).toBeUndefined();
      expect((await amAlert('gpu.thermal_slowdown'))?.labels.asset).toBe('gpu-0');
      expect(
        hook()
          .filter((m) => m.alert.key === key)
          .map((m) => m.status),
      ).toEqual(['firing', 'resolved']);
      expect(central.router.silences.stats).toMatchObject({ created: 2, expired: 2, failures: 0, rejected: 0 });
    }, 90_000);

    it('an acknowledgement ends with its episode; a silence someone expired by hand counts as expired', async (ctx) => {
      const reason = skipReason();
      if (reason) return ctx.skip(reason);
      const { w, am, receiver, central } = await setup();
      const t0 = Date.now();
      const key = await w.alert('edge-3', { rule: 'memory.ecc.uncorrected', asset: 'edge-3', severity: 'critical', raisedTs: t0 });
      await waitFor(() => receiver.received.some((r) => r.path === '/am'), 'the firing notification');
      await act(w, key, 'acknowledge', {}, Date.now());
      const first = await waitFor(async () => (await silences(am)).find((s) => s.status.state === 'active'), 'the acknowledgement silence');
      // The agent clears it: the silence must not mute the next episode.
      await w.alert('edge-3', { rule: 'memory.ecc.uncorrected', asset: 'edge-3', severity: 'critical', raisedTs: t0, state: 'cleared' });
      await waitFor(async () => (await silences(am)).find((s) => s.id === first.id)?.status.state === 'expired', 'the silence expired with its episode');
      // A new episode, acknowledged; someone expires its silence with amtool; the resolution still goes through.
      await w.alert('edge-3', { rule: 'memory.ecc.uncorrected', asset: 'edge-3', severity: 'critical', raisedTs: Date.now() });
      await act(w, key, 'acknowledge', {}, Date.now());
      const second = await waitFor(async () => (await silences(am)).find((s) => s.status.state === 'active'), 'the second acknowledgement silence');
      expect((await fetch(`${am.url}/api/v2/silence/${second.id}`, { method: 'DELETE' })).status).toBe(200);
      await act(w, key, 'false-alarm', { note: 'burn-in test' }, Date.now());
      await waitFor(async () => {
        const row = await w.sql.get<{ state: string }>('SELECT state FROM alert_silence_receivers WHERE alert_key = ? AND silence_id = ?', [key, second.id]);
        return row?.state === 'expired';
      }, 'the expiry recorded');
      expect(central.router.silences.stats).toMatchObject({ created: 2, expired: 2, rejected: 0, failures: 0 });
    }, 90_000);

    it('a silence asked for while Alertmanager is down is created once it is back, logged once', async (ctx) => {
      const reason = skipReason();
      if (reason) return ctx.skip(reason);
      const { w, am, receiver, central, logs } = await setup();
      const key = await w.alert('edge-2', { rule: 'disk.smart.pending', asset: 'disk-S1', raisedTs: Date.now() });
      await waitFor(() => receiver.received.some((r) => r.path === '/am'), 'the firing notification');
      await am.down();
      await act(w, key, 'acknowledge', {}, Date.now(), 'carol');
      await waitFor(() => central.router.silences.stats.failures >= 2, 'two failed attempts');
      await am.up();
      const created = await waitFor(async () => (await silences(am)).find((s) => s.status.state === 'active'), 'the silence once Alertmanager is back', 30_000);
      expect(created).toMatchObject({ createdBy: 'carol' });
      expect(byName(created.matchers).map((m) => m[0])).toEqual(['agent', 'alertname', 'asset', 'rule', 'severity']);
      // Created once, not once per attempt; the outage logged once with its code.
      await new Promise((r) => setTimeout(r, 500));
      expect((await silences(am)).length).toBe(1);
      expect(logs.lines.filter((l) => l.code === 'FW_ERR_ALERTMANAGER_SILENCE')).toEqual([
        expect.objectContaining({ receiver: `alertmanager:${am.url}`, at: am.url, err: expect.stringMatching(/ECONNREFUSED/) }),
      ]);
      expect(central.router.silences.stats).toMatchObject({ created: 1, failing: { [`alertmanager:${am.url}`]: false } });
    }, 90_000);
  });
}
