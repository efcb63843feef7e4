import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertBook } from '../../../../agent/src/central/alerts/alert-book.js';
import { createCentralAlerting } from '../../../../agent/src/central/alerts/central-alerting.js';
import { CentralStore } from '../../../../agent/src/central/central-store.js';
import { gpuCostModule } from '../../../../agent/src/central/gpu-cost/gpu-cost-module.js';
import type { FleetAlertEvaluator } from '../../../../agent/src/central/alerts/fleet-evaluator.js';
import { alertmanagerSkipReason, startAlertmanager } from '../../../helpers/alertmanager.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { centralStores, type CentralStores } from '../../../helpers/central-fixtures.js';
import { cleanupAfterEach } from '../../../helpers/cleanup.js';
import { startHttpReceiver } from '../../../helpers/http-receiver.js';
import { waitFor } from '../../../helpers/wait.js';
import { CONFIG, feedDgx, MIN, T0 } from './gpu-cost-scenario.js';
import { GpuFixtureHost, samplesOf } from './gpu-fixture-records.js';

/**
 * The GPU cost alerts under simulated time (the evaluator's clock), kept in the alert book like every fleet alert
 * and routed by the alert router to a real Alertmanager, whose webhook notifications reach a receiver here.
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

interface Notification {
  status: 'firing' | 'resolved';
  alerts: Array<{ status: string; labels: Record<string, string>; annotations: Record<string, string>; startsAt: string; endsAt: string }>;
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`GPU cost alerts on ${dialect}`, () => {
    it('gpu-idle: raised after 2 h idle, resolved when the GPU works again; it reaches Alertmanager both times', async (ctx) => {
      const reason = amSkip ?? (dialect === 'postgres' ? stores.pgSkip : null);
      if (reason) return ctx.skip(reason);
      const receiver = await startHttpReceiver();
      cleanup.push(() => receiver.close());
      const am = await startAlertmanager({ webhookUrl: `${receiver.url}/am`, groupBy: ['alertname', 'agent'], groupWait: '1s' });
      cleanup.push(() => am.stop());
      const cap = captureLogger();
      let now = T0;
      const module = gpuCostModule({ config: CONFIG, log: cap.log, workerId: 'w1', now: () => now });
      const store = await CentralStore.open({
        url: stores.url(dialect, `gpualerts_${dialect}`),
        projections: [...module.projections!, new AlertBook(cap.log)],
      });
      cleanup.push(() => store.sql.close());
      const [evaluator] = module.components!(store, { routes: [] }) as [FleetAlertEvaluator];
      const alerting = createCentralAlerting({
        sql: store.sql,
        log: cap.log,
        alertmanager: { urls: [am.url], resendIntervalMs: 1_000 },
        routeIntervalMs: 100,
        workerId: 'w1',
      });
      await alerting.router.start();
      cleanup.push(() => alerting.router.stop());

      // GPU 0 of the H100 host only: its recorded idle line every 10 min, then the error sample's line
      // ([Unknown Error] utilisation: not idle), then idle again.
      const host = new GpuFixtureHost('dgx-h100-01', 'h100-gpu-vanishes');
      const gpu0 = (lines: string[]) => lines.filter((l) => l.startsWith('0,'));
      const [idle] = samplesOf('h100-gpu-vanishes');
      const [broken] = samplesOf('h100-broken');
      const send = async (lines: string[], m: number) => {
        now = T0 + m * MIN;
        await store.ingestBatch(host.batch(host.sample(gpu0(lines), now)), now);
      };
      const active = () =>
        store.sql.all<{ rule: string; state: string; raised_ts: number; resolved_ts: number | null; value: number }>(
          "SELECT rule, state, raised_ts, resolved_ts, value FROM central_alerts WHERE origin = 'fleet' AND rule = 'gpu-idle'",
        );

      for (let m = 0; m <= 110; m += 10) await send(idle!, m);
      expect(await evaluator.evaluateOnce()).toBe(true);
      expect(await active()).toEqual([]); // idle 110 min < 2 h
      await send(idle!, 120);
      await send(idle!, 130);
      await evaluator.evaluateOnce();
      expect(await active()).toEqual([{ rule: 'gpu-idle', state: 'active', raised_ts: T0 + 130 * MIN, resolved_ts: null, value: expect.closeTo(130 / 60, 9) }]);

      const notes = () => receiver.received.filter((r) => r.path === '/am').map((r) => r.body as Notification);
      await waitFor(() => notes().length >= 1, 'the firing notification');
      expect(notes()[0]).toMatchObject({ status: 'firing' });
      expect(notes()[0]!.alerts[0]!.labels).toMatchObject({ alertname: 'gpu-idle', agent: 'dgx-h100-01', asset: 'gpu-0000:18:00.0', severity: 'warning' });
      // 130 min idle at 2.50/h = 5.416…
      expect(notes()[0]!.alerts[0]!.annotations.summary).toBe('GPU gpu-0000:18:00.0 on dgx-h100-01 idle for 2.2 h (5.42 EUR)');
      expect(Date.parse(notes()[0]!.alerts[0]!.startsAt)).toBe(T0 + 130 * MIN);

      // Still idle: refreshed, not raised again.
      await send(idle!, 140);
      await evaluator.evaluateOnce();
      expect(evaluator.stats).toMatchObject({ raised: 1, resolved: 0, active: 1 });

      // The error sample (utilisation unreadable), then idle again: the interval 150–160 counts as busy, the run ends.
      await send(broken!, 150);
      await send(idle!, 160);
      await evaluator.evaluateOnce();
      expect(await active()).toEqual([expect.objectContaining({ state: 'resolved', resolved_ts: T0 + 160 * MIN })]);
      await waitFor(() => notes().some((n) => n.status === 'resolved'), 'the resolved notification');
      expect(notes().find((n) => n.status === 'resolved')!.alerts[0]).toMatchObject({ status: 'resolved', labels: { alertname: 'gpu-idle' } });
    }, 60_000);

    it('gpu-downtime-cost: the costliest GPUs over the window, above the bound; resolved when their downtime leaves the window', async (ctx) => {
      if (dialect === 'postgres' && stores.pgSkip) return ctx.skip(stores.pgSkip);
      const cap = captureLogger();
      let now = T0 + 70 * MIN;
      const module = gpuCostModule({ config: CONFIG, log: cap.log, workerId: 'w1', now: () => now });
      const store = await CentralStore.open({ url: stores.url(dialect, `gpudown_${dialect}`), projections: [...module.projections!, new AlertBook(cap.log)] });
      cleanup.push(() => store.sql.close());
      const [evaluator] = module.components!(store, { routes: [] }) as [FleetAlertEvaluator];
      await feedDgx(store);
      await evaluator.evaluateOnce();
      // Window 24 h, top 2, at least 0.10: GPU 1 lost 20 min (0.8333), then GPU 3 and GPU 4 at 10 min each
      // (0.4167): the tie goes by asset, 5d before 9a.
      const rows = () =>
        store.sql.all<{ asset: string; state: string; value: number; evidence: string }>(
          "SELECT asset, state, value, evidence FROM central_alerts WHERE rule = 'gpu-downtime-cost' ORDER BY asset",
        );
      expect((await rows()).map((r) => [r.asset, r.state, r.value])).toEqual([
        ['gpu-0000:2a:00.0', 'active', expect.closeTo((20 / 60) * 2.5, 9)],
        ['gpu-0000:5d:00.0', 'active', expect.closeTo((10 / 60) * 2.5, 9)],
      ]);
      expect(JSON.parse((await rows())[0]!.evidence)).toMatchObject({ downHours: 0.333, lostHours: 0.333, rank: 1, currency: 'EUR' });
      // A day later the hours 23:00 and 00:00 have left the 24 h window: both resolve.
      now = T0 + 26 * 60 * MIN;
      await evaluator.evaluateOnce();
      expect((await rows()).map((r) => r.state)).toEqual(['resolved', 'resolved']);
    });
  });
}
