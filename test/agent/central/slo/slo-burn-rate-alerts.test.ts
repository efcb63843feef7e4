import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CentralAlertRow } from '../../../../agent/src/central/alerts/alert-book.js';
import { createCentralAlerting } from '../../../../agent/src/central/alerts/central-alerting.js';
import { createCentralApi } from '../../../../agent/src/central/api/central-api.js';
import { buildCentralConfig } from '../../../../agent/src/central/central-config.js';
import { CentralStore } from '../../../../agent/src/central/central-store.js';
import { SloEvaluator } from '../../../../agent/src/central/slo/slo-evaluator.js';
import { sloMetrics } from '../../../../agent/src/central/slo/slo-metrics.js';
import { SloProjection } from '../../../../agent/src/central/slo/slo-projection.js';
import { sloRoutes } from '../../../../agent/src/central/slo/slo-routes.js';
import { alertmanagerSkipReason, startAlertmanager } from '../../../helpers/alertmanager.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { centralStores, type CentralStores } from '../../../helpers/central-fixtures.js';
import { cleanupAfterEach } from '../../../helpers/cleanup.js';
import { consoleSession } from '../../../helpers/console-session.js';
import { startHttpReceiver } from '../../../helpers/http-receiver.js';
import { waitFor } from '../../../helpers/wait.js';

/**
 * Multi-window, multi-burn-rate alerts under simulated time: a fleet asset reports every minute for an hour,
 * falls silent for 20 minutes, then reports again. Worked out by hand (freshness, maxAge 5 min, target 0.99,
 * the SRE workbook's tiers, evaluated at :30 of each minute): the minutes ending 66 … 80 are stale; ticket
 * (1×: 3 d and 6 h) fires at 66; page-slow (6×: 6 h and 30 min) at 70, when 5 of 70 judged minutes are stale;
 * page-fast (14.4×: 1 h and 5 min) at 74, when 9 of the last 59 are; page-fast resolves at 84 (the 5 min window
 * is clean again), page-slow at 108 (one stale minute of 29 left in its 30 min window: 3.4×). Then the alerts reach a real
 * Alertmanager's webhook receiver, and /metrics and the API show the same figures.
 */

const S = 1_000;
const MIN = 60 * S;
const amSkip = alertmanagerSkipReason();
const cleanup = cleanupAfterEach();

let stores: CentralStores;
beforeAll(async () => {
  stores = await centralStores();
}, 120_000);
afterAll(async () => {
  await stores?.cleanup();
});

const slo = buildCentralConfig(`
slo:
  freshness: { maxAgeSeconds: 300 }
  objectives:
    - { name: fresh, sli: freshness, target: 0.99, window: 28d, description: Readings reach central within 5 minutes }
`).slo;

interface Episode {
  raised: number;
  resolved: number | null;
}

async function simulate(dialect: 'sqlite' | 'postgres', base: number, pause?: (minute: number, store: CentralStore) => Promise<void>) {
  const fake = { t: base };
  const store = await CentralStore.open({
    url: stores.url(dialect, `burn_${Date.now() % 1_000_000}`),
    projections: [new SloProjection({ maxAgeSeconds: 300, clockSkewToleranceSeconds: 2 })],
  });
  const evaluator = new SloEvaluator(store.sql, captureLogger().log, slo, { now: () => fake.t, workerId: 'w1' });
  const episodes = new Map<string, Episode>();
  let seq = 0;
  for (let k = 0; k <= 110; k++) {
    if (k <= 60 || k >= 80) {
      const r = base + k * MIN + S;
      await store.ingestBatch(
        { agentId: 'press-1', stream: 'telemetry', bootSeq: 1, historical: false, records: [{ seq: ++seq, ts: r, asset: 'pump', metrics: { x: 1 } }] },
        r,
      );
    }
    fake.t = base + k * MIN + 30 * S;
    expect(await evaluator.evaluateOnce()).toBe(true);
    for (const row of await store.sql.all<CentralAlertRow>("SELECT * FROM central_alerts WHERE origin = 'fleet'")) {
      const e = episodes.get(row.rule);
      if (!e) episodes.set(row.rule, { raised: k, resolved: null });
      else if (row.state === 'resolved' && e.resolved === null) e.resolved = k;
    }
    await pause?.(k, store);
  }
  return { store, episodes, fake };
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`SLO burn-rate alerts on ${dialect}`, () => {
    it('fire and resolve in the windows worked out by hand', async (ctx) => {
      if (dialect === 'postgres' && stores.pgSkip) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const base = Math.floor((Date.now() - 3 * 3_600_000) / MIN) * MIN;
      const { store, episodes } = await simulate(dialect, base);
      try {
        expect(Object.fromEntries(episodes)).toEqual({
          'slo-burn-ticket': { raised: 66, resolved: null },
          'slo-burn-page-slow': { raised: 70, resolved: 108 },
          'slo-burn-page-fast': { raised: 74, resolved: 84 },
        });
        const fast = await store.sql.get<CentralAlertRow>("SELECT * FROM central_alerts WHERE alert_key = 'fleet/slo-burn-page-fast/fresh'");
        expect(fast).toMatchObject({
          agent_id: '',
          asset: null,
          subject: 'fresh',
          severity: 'critical',
          state: 'resolved',
          raised_ts: base + 74 * MIN + 30 * S,
        });
        expect(JSON.parse(fast!.evidence)).toMatchObject({ slo: 'fresh', sli: 'freshness', group: 'all', longWindow: '1h', shortWindow: '5m', factor: 14.4 });
      } finally {
        await store.close();
      }
    }, 120_000);
  });
}

describe('SLO burn-rate alerts through a real Alertmanager, /metrics and the API', () => {
  it('page-fast reaches the webhook receiver firing, then resolved; /metrics needs a session or the token', async (ctx) => {
    if (amSkip) return ctx.skip(amSkip);
    const receiver = await startHttpReceiver();
    cleanup.push(() => receiver.close());
    const am = await startAlertmanager({ webhookUrl: `${receiver.url}/hook`, groupBy: ['alertname'], groupWait: '1s' });
    cleanup.push(() => am.stop());
    const notes = () =>
      receiver.received
        .map((r) => r.body as { status: string; alerts: Array<{ status: string; labels: Record<string, string>; generatorURL: string }> })
        .flatMap((n) => n.alerts)
        .filter((a) => a.labels.alertname === 'slo-burn-page-fast');
    const base = Math.floor((Date.now() - 3 * 3_600_000) / MIN) * MIN;
    let router: ReturnType<typeof createCentralAlerting>['router'] | null = null;
    const { store, fake } = await simulate('sqlite', base, async (k, store) => {
      if (k === 0) {
        // The router only (the default fleet rules would see this simulated past as an offline agent).
        router = createCentralAlerting({
          sql: store.sql,
          log: captureLogger().log,
          alertmanager: { urls: [am.url], resendIntervalMs: 1_000 },
          routeIntervalMs: 100,
          consoleUrl: 'http://console.test',
          workerId: 'router',
        }).router;
        await router.start();
        cleanup.push(() => router!.stop());
      }
      if (k === 75) await waitFor(() => notes().some((a) => a.status === 'firing'), 'page-fast firing at the webhook receiver');
      if (k === 85) await waitFor(() => notes().some((a) => a.status === 'resolved'), 'page-fast resolved at the webhook receiver');
    });
    cleanup.push(() => store.close());
    const firing = notes().find((a) => a.status === 'firing')!;
    expect(firing.labels).toEqual({ alertname: 'slo-burn-page-fast', rule: 'slo-burn-page-fast', severity: 'critical', subject: 'fresh' });
    expect(firing.generatorURL).toBe('http://console.test/slo');

    // /metrics: the token from --metrics-token-file, or a session; nothing else.
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-metrics-'));
    const tokenFile = path.join(dir, 'token');
    writeFileSync(tokenFile, 's3cret-token\n');
    const api = createCentralApi({
      sql: store.sql,
      log: captureLogger().log,
      port: 0,
      now: () => fake.t,
      routes: sloRoutes(slo),
      metrics: { collectors: [(q, now) => sloMetrics(q, slo, now)], tokenFile },
    });
    await api.start();
    cleanup.push(() => api.stop());
    const url = `http://127.0.0.1:${api.address().port}`;
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
    expect((await fetch(`${url}/metrics`, { headers: { Authorization: 'Bearer wrong' } })).status).toBe(401);
    const scraped = await fetch(`${url}/metrics`, { headers: { Authorization: 'Bearer s3cret-token' } });
    expect(scraped.status).toBe(200);
    expect(scraped.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await scraped.text();
    // Judged minutes ending 1 … 110 (now 110:30); stale 66 … 80.
    expect(text).toContain('forewarn_sli_events_total{sli="freshness",group="all",agent="press-1"} 110\n');
    expect(text).toContain('forewarn_sli_good_events_total{sli="freshness",group="all",agent="press-1"} 95\n');
    expect(text).toContain('forewarn_slo_sli_ratio{slo="fresh",sli="freshness",group="all"} ' + String(95 / 110) + '\n');
    expect(text).toContain('forewarn_slo_error_budget_remaining_ratio{slo="fresh",sli="freshness",group="all"} ' + String(1 - 15 / 110 / (1 - 0.99)) + '\n');
    expect(text).toMatch(/forewarn_slo_burn_rate\{slo="fresh",sli="freshness",group="all",window="5m"\} 0\n/);
    expect(text).toContain('forewarn_delivery_latency_seconds_count{agent="press-1"} 92\n');
    const session = await consoleSession(url, store.sql, { role: 'viewer' });
    expect((await session.fetch('/metrics')).status).toBe(200);

    const list = await session.get('/api/v1/slo');
    expect(list.status).toBe(200);
    expect(list.body.objectives).toEqual([
      expect.objectContaining({ name: 'fresh', sli: 'freshness', target: 0.99, good: 95, total: 110, value: 95 / 110, window: '28d' }),
    ]);
    expect(list.body.objectives[0].trend.length).toBeGreaterThanOrEqual(1);
    const detail = await session.get('/api/v1/slo/fresh');
    expect(detail.body).toMatchObject({
      name: 'fresh',
      agents: [{ agentId: 'press-1', good: 95, total: 110 }],
      assets: [{ agentId: 'press-1', asset: 'pump' }],
    });
    expect((await session.get('/api/v1/slo/nope')).status).toBe(404);
  }, 120_000);
});
