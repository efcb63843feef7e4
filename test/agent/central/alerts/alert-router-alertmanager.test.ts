import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCentralAlerting } from '../../../../agent/src/central/alerts/central-alerting.js';
import type { BatchRecord } from '../../../../agent/src/central/decode-batch.js';
import { alertmanagerSkipReason, startAlertmanager } from '../../../helpers/alertmanager.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { centralStores, FleetRegistry, ingest, ingestStatus, migrateProjections, type CentralStores } from '../../../helpers/central-fixtures.js';
import { cleanupAfterEach } from '../../../helpers/cleanup.js';
import { startHttpReceiver, type ReceivedRequest } from '../../../helpers/http-receiver.js';
import { waitFor } from '../../../helpers/wait.js';

/**
 * Routing through a real Prometheus Alertmanager (an HA pair of two, clustering off) to a webhook receiver in the
 * test: what people would get.
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

/** Alertmanager's webhook notification (the parts we check). */
interface Notification {
  status: 'firing' | 'resolved';
  groupLabels: Record<string, string>;
  alerts: Array<{
    status: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    startsAt: string;
    endsAt: string;
    generatorURL: string;
  }>;
}

function alertRecord(seq: number, state: 'raised' | 'cleared', raisedTs: number, asset: string): BatchRecord {
  return {
    seq,
    ts: state === 'raised' ? raisedTs : raisedTs + 1_000,
    alertId: `vibration-high/${asset}`,
    rule: 'vibration-high',
    asset,
    state,
    severity: 'critical',
    title: `Vibration high on ${asset}`,
    evidence: { velocityMmS: 7.4 },
    remedy: 'Inspect the bearing',
    raisedTs,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`Alert routing through Alertmanager on ${dialect}`, () => {
    const skipReason = () => amSkip ?? (dialect === 'postgres' ? stores.pgSkip : null);

    it('an agent alert reaches people once, grouped, its resolution once; a restarted central repeats nothing; fleet alerts too', async (ctx) => {
      const reason = skipReason();
      if (reason) return ctx.skip(reason);
      const receiver = await startHttpReceiver();
      cleanup.push(() => receiver.close());
      // group_wait 1 s: both alerts of a POST join their group before its first notification even on a busy host.
      const ams = [
        await startAlertmanager({ webhookUrl: `${receiver.url}/am-a`, groupBy: ['agent'], groupWait: '1s' }),
        await startAlertmanager({ webhookUrl: `${receiver.url}/am-b`, groupBy: ['agent'], groupWait: '1s' }),
      ];
      for (const am of ams) cleanup.push(() => am.stop());
      const sql = await stores.open(dialect, `am_${Date.now() % 1_000_000}`);
      const registry = new FleetRegistry();
      const cap = captureLogger();
      const central = (workerId: string) =>
        createCentralAlerting({
          sql,
          log: cap.log,
          alertmanager: { urls: ams.map((a) => a.url), resendIntervalMs: 1_000 },
          consoleUrl: 'http://console.test',
          fleetRules: { agentOfflineMs: 10 * 60_000 },
          evaluateIntervalMs: 200,
          routeIntervalMs: 100,
          workerId,
        });
      let c = central('central-1');
      await migrateProjections(sql, [registry, c.projection]);
      for (const comp of c.components) await comp.start();
      cleanup.push(async () => {
        for (const comp of c.components) await comp.stop();
      });
      const feed = [registry, c.projection];
      const t0 = Date.now();
      await ingestStatus(sql, feed, 'edge-1', 'online', t0);
      await ingest(sql, feed, {
        agentId: 'edge-1',
        stream: 'alerts',
        receivedTs: t0,
        records: [alertRecord(1, 'raised', t0, 'fan-1'), alertRecord(2, 'raised', t0, 'fan-2')],
      });

      const notes = (path: string) => receiver.received.filter((r: ReceivedRequest) => r.path === path).map((r) => r.body as Notification);
      for (const path of ['/am-a', '/am-b']) {
        await waitFor(() => notes(path).length >= 1, `the firing notification from ${path}`);
      }
      const [firing] = notes('/am-a');
      expect(firing).toMatchObject({ status: 'firing', groupLabels: { agent: 'edge-1' } });
      expect(firing!.alerts.map((a) => a.labels).sort((x, y) => x.asset!.localeCompare(y.asset!))).toEqual([
        { alertname: 'vibration-high', agent: 'edge-1', asset: 'fan-1', rule: 'vibration-high', severity: 'critical' },
        { alertname: 'vibration-high', agent: 'edge-1', asset: 'fan-2', rule: 'vibration-high', severity: 'critical' },
      ]);
      // Alertmanager (Go) writes times with trailing zeros of the fraction cut (`…22.9Z`): compare the instants.
      expect(Date.parse(firing!.alerts[0]!.startsAt)).toBe(t0);
      expect(firing!.alerts[0]).toMatchObject({
        status: 'firing',
        annotations: { summary: expect.stringMatching(/^Vibration high on fan-/), evidence: 'velocityMmS=7.4', remedy: 'Inspect the bearing' },
        generatorURL: expect.stringMatching(/^http:\/\/console\.test\/assets\/edge-1\/fan-[12]$/),
      });

      // Resends (every second) and a restart of central (a new worker on the same store) notify nobody again.
      await waitFor(() => c.router.stats.resent >= 4, 'two resends to each Alertmanager');
      for (const comp of c.components) await comp.stop();
      c = central('central-2');
      for (const comp of c.components) await comp.start();
      await waitFor(() => c.router.stats.resent >= 2, 'the new worker resending');
      await sleep(1_000); // group_interval 500 ms: a repeat would have come by now
      expect([notes('/am-a').length, notes('/am-b').length]).toEqual([1, 1]);
      expect(c.router.stats.delivered).toBe(0);

      // Both clear: one resolved notification per Alertmanager.
      await ingest(sql, [registry, c.projection], {
        agentId: 'edge-1',
        stream: 'alerts',
        receivedTs: Date.now(),
        records: [alertRecord(3, 'cleared', t0, 'fan-1'), alertRecord(4, 'cleared', t0, 'fan-2')],
      });
      for (const path of ['/am-a', '/am-b']) await waitFor(() => notes(path).length >= 2, `the resolved notification from ${path}`);
      expect(notes('/am-a')[1]).toMatchObject({ status: 'resolved', alerts: [{ status: 'resolved' }, { status: 'resolved' }] });
      expect(notes('/am-a')[1]!.alerts.map((a) => Date.parse(a.endsAt))).toEqual([t0 + 1_000, t0 + 1_000]);

      // A fleet alert: edge-2's Will arrived 11 minutes ago.
      await ingestStatus(sql, [registry, c.projection], 'edge-2', 'offline', Date.now() - 11 * 60_000, { reason: 'connection-lost' });
      await waitFor(() => notes('/am-a').length >= 3, 'the agent-offline notification');
      expect(notes('/am-a')[2]).toMatchObject({
        status: 'firing',
        groupLabels: { agent: 'edge-2' },
        alerts: [
          {
            labels: { alertname: 'agent-offline', agent: 'edge-2', rule: 'agent-offline', severity: 'critical' },
            generatorURL: 'http://console.test/agents/edge-2',
          },
        ],
      });
      await ingestStatus(sql, [registry, c.projection], 'edge-2', 'online', Date.now());
      for (const path of ['/am-a', '/am-b']) await waitFor(() => notes(path).length >= 4, `the agent-offline resolution from ${path}`);
      expect(notes('/am-b')[3]).toMatchObject({ status: 'resolved', groupLabels: { agent: 'edge-2' } });
      await sleep(1_500);
      expect([notes('/am-a').length, notes('/am-b').length]).toEqual([4, 4]);

      // A restarted Alertmanager has forgotten its alerts: the resend teaches it the active ones again.
      await ingest(sql, [registry, c.projection], {
        agentId: 'edge-1',
        stream: 'alerts',
        receivedTs: Date.now(),
        records: [alertRecord(5, 'raised', Date.now(), 'fan-3')],
      });
      await waitFor(async () => (await ams[0]!.alerts()).some((a) => a.labels.asset === 'fan-3'), 'fan-3 in Alertmanager');
      // Central pauses meanwhile, so that the check below sees what the restart did, not an early resend.
      for (const comp of c.components) await comp.stop();
      await ams[0]!.restart();
      expect((await ams[0]!.alerts()).some((a) => a.labels.asset === 'fan-3' && a.status.state === 'active')).toBe(false);
      for (const comp of c.components) await comp.start();
      await waitFor(
        async () => (await ams[0]!.alerts()).some((a) => a.labels.asset === 'fan-3' && a.status.state === 'active'),
        'fan-3 learnt again by the restarted Alertmanager',
        10_000,
      );
      // Only the restart may have cost a failed post (and its one log line).
      const warned = cap.lines.filter((l) => (l.level as number) >= 40).map((l) => [l.code, l.receiver]);
      expect(new Set(warned.map((w) => JSON.stringify(w)))).toEqual(
        new Set(warned.length ? [JSON.stringify(['FW_ERR_ALERT_DELIVERY', `alertmanager:${ams[0]!.url}`])] : []),
      );
    }, 90_000);

    it('an Alertmanager that is down: logged once, retried, delivered when it is up', async (ctx) => {
      const reason = skipReason();
      if (reason) return ctx.skip(reason);
      const receiver = await startHttpReceiver();
      cleanup.push(() => receiver.close());
      const am = await startAlertmanager({ webhookUrl: `${receiver.url}/am`, groupBy: ['agent'] });
      cleanup.push(() => am.stop());
      const sql = await stores.open(dialect, `am_down_${Date.now() % 1_000_000}`);
      const cap = captureLogger();
      const c = createCentralAlerting({ sql, log: cap.log, alertmanager: { urls: [am.url] }, routeIntervalMs: 50, workerId: 'w' });
      await migrateProjections(sql, [new FleetRegistry(), c.projection]);
      await am.down();
      for (const comp of c.components) await comp.start();
      cleanup.push(async () => {
        for (const comp of c.components) await comp.stop();
      });
      const now = Date.now();
      await ingest(sql, [c.projection], { agentId: 'edge-7', stream: 'alerts', receivedTs: now, records: [alertRecord(1, 'raised', now, 'mill')] });
      const receiverId = `alertmanager:${am.url}`;
      await waitFor(() => c.router.stats.receivers[receiverId]!.failures >= 2, 'two failed attempts');
      await am.up();
      await waitFor(() => receiver.received.length >= 1, 'the notification once Alertmanager is back', 20_000);
      expect(receiver.received[0]!.body).toMatchObject({ status: 'firing', alerts: [{ labels: { agent: 'edge-7', asset: 'mill' } }] });
      const logged = cap.lines.filter((l) => l.code === 'FW_ERR_ALERT_DELIVERY');
      expect(logged).toEqual([expect.objectContaining({ receiver: receiverId, at: am.url, err: expect.stringMatching(/ECONNREFUSED/) })]);
      // The router counts the delivery once its own bookkeeping after Alertmanager's answer is done, which under load
      // can come after Alertmanager has already notified.
      await waitFor(() => c.router.stats.receivers[receiverId]!.delivered > 0, 'the delivery counted');
      expect(c.router.stats.receivers[receiverId]).toMatchObject({ failing: false, delivered: 1 });
      expect(c.router.stats.failures).toBe(c.router.stats.receivers[receiverId]!.failures);
    });
  });
}
