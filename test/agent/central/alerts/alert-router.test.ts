import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertBook } from '../../../../agent/src/central/alerts/alert-book.js';
import { AlertRouter, type AlertRouterOptions } from '../../../../agent/src/central/alerts/alert-router.js';
import type { WebhookMessage } from '../../../../agent/src/central/alerts/alert-messages.js';
import type { BatchRecord } from '../../../../agent/src/central/decode-batch.js';
import { LeaderLease } from '../../../../agent/src/central/leader-lease.js';
import type { SqlClient } from '../../../../agent/src/central/sql/sql-client.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { centralStores, FleetRegistry, ingest, migrateProjections, type CentralStores } from '../../../helpers/central-fixtures.js';
import { cleanupAfterEach } from '../../../helpers/cleanup.js';
import { startHttpReceiver } from '../../../helpers/http-receiver.js';
import { waitFor } from '../../../helpers/wait.js';
import { applyAlertAction, parseActionRequest } from '../../../../agent/src/central/workflow/alert-actions.js';

let stores: CentralStores;
beforeAll(async () => {
  stores = await centralStores();
}, 120_000);
afterAll(async () => {
  await stores?.cleanup();
});
const cleanup = cleanupAfterEach();

function alertRecord(seq: number, state: 'raised' | 'cleared', raisedTs: number, asset = 'press-3'): BatchRecord {
  return {
    seq,
    ts: state === 'raised' ? raisedTs : raisedTs + 1_000,
    alertId: `temperature-high/${asset}`,
    rule: 'temperature-high',
    asset,
    state,
    severity: 'warning',
    title: `Bearing temperature high on ${asset}`,
    evidence: { temperatureC: state === 'raised' ? 91 : 70 },
    remedy: 'Check the lubrication',
    raisedTs,
    value: state === 'raised' ? 91 : 70,
  };
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`AlertRouter webhooks on ${dialect}`, () => {
    const skip = () => dialect === 'postgres' && stores.pgSkip !== null;
    let n = 0;
    const setup = async () => {
      const sql = await stores.open(dialect, `route_${n++}`);
      const book = new AlertBook();
      await migrateProjections(sql, [new FleetRegistry(), book]);
      const receiver = await startHttpReceiver();
      cleanup.push(() => receiver.close());
      let workers = 0;
      const router = (options: AlertRouterOptions, db: SqlClient = sql) => {
        const cap = captureLogger();
        const lease = new LeaderLease(db, { name: 'central-alerts', holder: `worker-${++workers}` });
        const r = new AlertRouter(db, cap.log, lease, { retryMinMs: 10, retryMaxMs: 40, ...options });
        cleanup.push(() => r.stop());
        return { router: r, cap };
      };
      const raise = (agentId: string, seq: number, raisedTs: number, asset?: string) =>
        ingest(sql, [book], { agentId, stream: 'alerts', receivedTs: Date.now(), records: [alertRecord(seq, 'raised', raisedTs, asset)] });
      const clear = (agentId: string, seq: number, raisedTs: number, asset?: string) =>
        ingest(sql, [book], { agentId, stream: 'alerts', receivedTs: Date.now(), records: [alertRecord(seq, 'cleared', raisedTs, asset)] });
      return { sql, receiver, router, raise, clear };
    };

    it('delivers each firing and each resolution once, as JSON and as Slack text', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const { receiver, router, raise, clear } = await setup();
      const { router: r } = router({
        consoleUrl: 'https://console.example/',
        webhooks: [
          { url: `${receiver.url}/hook`, name: 'ops' },
          { url: `${receiver.url}/slack`, format: 'slack' },
        ],
      });
      await raise('edge-1', 1, 1_700_000_000_000);
      expect(await r.routeOnce()).toBe(true);
      await r.routeOnce();
      const hook = () => receiver.received.filter((x) => x.path === '/hook').map((x) => x.body as WebhookMessage);
      const slack = () => receiver.received.filter((x) => x.path === '/slack').map((x) => x.body as Record<string, unknown>);
      expect(hook()).toEqual([
        expect.objectContaining({
          id: 'agent/edge-1/temperature-high/press-3@1700000000000:firing',
          status: 'firing',
          alert: expect.objectContaining({
            agent: 'edge-1',
            asset: 'press-3',
            rule: 'temperature-high',
            severity: 'warning',
            raisedAt: '2023-11-14T22:13:20.000Z',
            resolvedAt: null,
            evidence: { temperatureC: 91 },
            url: 'https://console.example/assets/edge-1/press-3',
          }),
        }),
      ]);
      expect(hook()[0]!.text).toContain('[FIRING] warning: Bearing temperature high on press-3 (edge-1/press-3, rule temperature-high)');
      expect(slack()).toHaveLength(1);
      expect(Object.keys(slack()[0]!)).toEqual(['text']);
      expect(slack()[0]!.text).toBe(hook()[0]!.text);
      await clear('edge-1', 2, 1_700_000_000_000);
      await r.routeOnce();
      await r.routeOnce();
      expect(hook().map((m) => [m.status, m.alert.resolvedAt, m.alert.evidence])).toEqual([
        ['firing', null, { temperatureC: 91 }],
        ['resolved', '2023-11-14T22:13:21.000Z', { temperatureC: 70 }],
      ]);
      expect(slack().map((m) => String(m.text).split(' ')[0])).toEqual(['[FIRING]', '[RESOLVED]']);
      // Raised again: a new episode, delivered again.
      await raise('edge-1', 3, 1_700_000_900_000);
      await r.routeOnce();
      expect(hook().map((m) => m.status)).toEqual(['firing', 'resolved', 'firing']);
      expect(r.stats).toMatchObject({ delivered: 6, failures: 0, rejected: 0 });
      expect(r.stats.receivers['webhook:ops']).toMatchObject({ delivered: 3, failing: false });
    });

    it('retries with backoff while the receiver is down, logs the outage once without the URL, delivers once when it is back', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const { receiver, router, raise } = await setup();
      const secretUrl = `${receiver.url}/services/T0001/B0002/s3cr3tT0ken`;
      const { router: r, cap } = router({ webhooks: [{ url: secretUrl, format: 'slack' }] });
      await receiver.close();
      await raise('edge-2', 1, 1_000);
      await raise('edge-2', 2, 2_000, 'press-4');
      for (let i = 0; i < 5; i++) {
        await r.routeOnce();
        await new Promise((res) => setTimeout(res, 50)); // past the 10-40 ms backoff
      }
      const receiverStats = Object.values(r.stats.receivers)[0]!;
      expect(receiverStats.failing).toBe(true);
      expect(receiverStats.failures).toBeGreaterThanOrEqual(3);
      expect(r.stats.failures).toBe(receiverStats.failures);
      const outage = cap.lines.filter((l) => l.code === 'FW_ERR_ALERT_DELIVERY');
      expect(outage).toHaveLength(1);
      expect(outage[0]).toMatchObject({ at: receiver.url, err: expect.stringMatching(/ECONNREFUSED/) });
      expect(cap.text()).not.toContain('s3cr3tT0ken');
      // A receiver that answers 503 is in trouble too: retried.
      await receiver.listen();
      receiver.failWith(503);
      await new Promise((res) => setTimeout(res, 50));
      await r.routeOnce();
      expect(receiver.received).toHaveLength(0);
      receiver.failWith(0);
      await waitFor(async () => (await r.routeOnce(), receiver.received.length === 2), 'both alerts delivered after the outage');
      await r.routeOnce();
      expect(receiver.received.map((x) => String((x.body as { text: string }).text).split('\n')[0])).toEqual([
        '[FIRING] warning: Bearing temperature high on press-3 (edge-2/press-3, rule temperature-high)',
        '[FIRING] warning: Bearing temperature high on press-4 (edge-2/press-4, rule temperature-high)',
      ]);
      expect(cap.lines.filter((l) => l.code === 'FW_ERR_ALERT_DELIVERY')).toHaveLength(1);
      expect(cap.lines.some((l) => l.msg === 'alert receiver reachable again')).toBe(true);
      expect(receiverStats.failing).toBe(false);
    });

    it('a rejection (4xx) is logged, counted and not retried; later alerts still go', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const { receiver, router, raise } = await setup();
      const { router: r, cap } = router({ webhooks: [{ url: `${receiver.url}/hook`, name: 'ops' }] });
      receiver.failWith(410);
      await raise('edge-3', 1, 1_000);
      await r.routeOnce();
      receiver.failWith(0);
      await r.routeOnce();
      expect(receiver.received).toHaveLength(0);
      expect(r.stats).toMatchObject({ rejected: 1, failures: 0 });
      expect(cap.lines.filter((l) => l.code === 'FW_ERR_ALERT_DELIVERY').map((l) => l.err)).toEqual(['HTTP 410: failing on purpose']);
      await raise('edge-3', 2, 2_000, 'press-9');
      await r.routeOnce();
      expect(receiver.received.map((x) => (x.body as WebhookMessage).alert.asset)).toEqual(['press-9']);
    });

    it('sends an episode a technician closed as resolved while its agent reports it active, once; an acknowledged one keeps firing', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const { sql, receiver, router, raise, clear } = await setup();
      const { router: r } = router({ webhooks: [{ url: `${receiver.url}/hook`, name: 'ops' }] });
      const act = (asset: string, action: 'acknowledge' | 'false-alarm' | 'resolve', now: number) =>
        applyAlertAction(
          sql,
          parseActionRequest(
            {
              alertKey: `agent/edge-5/temperature-high/${asset}`,
              action,
              ...(action === 'resolve' ? { failureMode: 'other', note: 'dry', actionTaken: 'greased' } : {}),
            },
            now,
          ),
          { username: 'alice', remoteAddr: null, now },
        );
      const t0 = Date.now() - 10_000;
      await raise('edge-5', 1, t0, 'press-1');
      await raise('edge-5', 2, t0, 'press-2');
      await r.routeOnce();
      const sent = () => receiver.received.map((x) => x.body as WebhookMessage).map((m) => [m.alert.asset, m.status, m.alert.resolvedAt]);
      expect(sent()).toEqual([
        ['press-1', 'firing', null],
        ['press-2', 'firing', null],
      ]);
      const tResolve = Date.now();
      await act('press-1', 'resolve', tResolve);
      await act('press-2', 'acknowledge', tResolve);
      await r.routeOnce();
      expect(sent().slice(2)).toEqual([['press-1', 'resolved', new Date(tResolve).toISOString()]]);
      // Closed before its first delivery: people get its resolution only, as for an alert raised and cleared between two passes.
      await raise('edge-5', 3, Date.now(), 'press-3');
      const tFalse = Date.now();
      await act('press-3', 'false-alarm', tFalse);
      await r.routeOnce();
      // The agent clears press-1 later: its resolution was sent already.
      await clear('edge-5', 4, t0, 'press-1');
      await r.routeOnce();
      expect(sent().slice(3)).toEqual([['press-3', 'resolved', new Date(tFalse).toISOString()]]);
    });

    it('sends credentials in a webhook URL as basic auth and never logs them', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const { receiver, router, raise } = await setup();
      const { router: r, cap } = router({ webhooks: [{ url: receiver.url.replace('//', '//ops:pa%40ss@') + '/auth', name: 'authed' }] });
      receiver.failWith(503);
      await raise('edge-5', 1, 1_000);
      await r.routeOnce();
      receiver.failWith(0);
      await waitFor(async () => (await r.routeOnce(), receiver.received.length === 1), 'the authenticated delivery');
      expect(receiver.received[0]!.headers.authorization).toBe(`Basic ${Buffer.from('ops:pa@ss').toString('base64')}`);
      expect(cap.lines.filter((l) => l.code === 'FW_ERR_ALERT_DELIVERY')).toHaveLength(1);
      expect(cap.text()).not.toMatch(/pa%40ss|pa@ss/);
    });

    it('a restarted central (a new router and lease holder on the same store) repeats nothing and delivers what was left', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const { receiver, router, raise, clear, sql } = await setup();
      const hooks = [{ url: `${receiver.url}/hook`, name: 'ops' }];
      const first = router({ webhooks: hooks }).router;
      await raise('edge-4', 1, 1_000);
      await first.routeOnce();
      expect(receiver.received).toHaveLength(1);
      // Down for the next change: the first central stops (releasing its lease) before it could deliver it.
      receiver.failWith(503);
      await raise('edge-4', 2, 2_000, 'press-5');
      await first.routeOnce();
      await first.stop();
      receiver.failWith(0);
      // The second worker: another client on PostgreSQL (another process would be on SQLite as well).
      const db = dialect === 'postgres' ? await stores.reopen(dialect, (await sql.get<{ d: string }>('SELECT current_database() AS d'))!.d) : sql;
      const second = router({ webhooks: hooks }, db).router;
      expect(await second.routeOnce()).toBe(true);
      await second.routeOnce();
      expect(receiver.received.map((x) => (x.body as WebhookMessage).id)).toEqual([
        'agent/edge-4/temperature-high/press-3@1000:firing',
        'agent/edge-4/temperature-high/press-5@2000:firing',
      ]);
      await clear('edge-4', 3, 1_000);
      await second.routeOnce();
      await second.routeOnce();
      expect(receiver.received.map((x) => (x.body as WebhookMessage).id).slice(2)).toEqual(['agent/edge-4/temperature-high/press-3@1000:resolved']);
      // A receiver added now gets what is active, not the history (a few ms later than that resolution).
      await new Promise((res) => setTimeout(res, 5));
      const third = router({ webhooks: [...hooks, { url: `${receiver.url}/new`, name: 'new' }] }, db).router;
      await second.stop();
      await third.routeOnce();
      expect(receiver.received.filter((x) => x.path === '/new').map((x) => (x.body as WebhookMessage).id)).toEqual([
        'agent/edge-4/temperature-high/press-5@2000:firing',
      ]);
      expect(receiver.received).toHaveLength(4);
    });
  });
}
