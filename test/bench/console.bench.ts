/* eslint-disable @typescript-eslint/no-explicit-any -- code that runs in the page, where the browser's globals have no types here */
/**
 * The fleet console in Chromium on a fleet-sized store (issue #16): the overview interactive ≤ 1 s, an asset page
 * with 30 days of risk interactive ≤ 1 s, and a live update on the page ≤ 2 s after its record is committed.
 *
 * The store is the one of the central queries benchmark (central-queries.bench.ts `generate`): PostgreSQL with
 * 1,000 agents × 10 assets, 30 days of hourly risk rollups (7.2 M rows), 1 % of the assets with an active alert,
 * and 24 h of raw risk records for 2 agents. `forewarn central` runs in this process as the command assembles it
 * (`startCentral` with every module: ingest from a real mosquitto, the read model, alerting, the HTTP server), so
 * a live update takes the real path: MQTT → ingest worker → store → the live events → the page.
 *
 * Measured in Debian's Chromium (headless, playwright-core), a viewer's session, 1280×800:
 * - overview: navigation start → the assets table holds its 50 rows and the counts are drawn (a requestAnimationFrame
 *   poll in the page, so the time is the page's own `performance.now()`, from navigation start);
 * - asset page, range 30 d: navigation start → the risk chart holds its 720 hourly points and the state chip shows;
 * - live update: an alert published for a healthy asset while the overview is open; from the ingest worker's commit
 *   (its `batch` event) to the row showing `alarm` (a MutationObserver in the page; both clocks are this machine's).
 *   Once through the ingest of this process (its commit wakes the event poll), once committed by another worker
 *   (a second store client: only the timed 2 s poll finds it).
 * Each page row also gives the server's share: the time to first byte of the API requests the page made (resource
 * timing), so a miss can be told apart as server or browser time.
 *
 *   FOREWARN_BENCH_RUNS   measured runs per case (default 8, after one warm-up)
 *
 * Skips with a reason without Chromium, PostgreSQL or mosquitto. Alone: `npx tsc -p tsconfig.json && node
 * dist/test/bench/console.bench.js`.
 */
// First: the harness patches child_process (see bench-harness.ts).
import { type BenchReport, formatReport, median, percentile, round } from './bench-harness.js';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import mqtt from 'mqtt';
import type { Page } from 'playwright-core';
import type { CentralApi } from '../../agent/src/central/api/central-api.js';
import { AlertBook } from '../../agent/src/central/alerts/alert-book.js';
import { parseCentralOptions, startCentral, type CentralService } from '../../agent/src/central/central-command.js';
import { CENTRAL_MODULES } from '../../agent/src/central/central-modules.js';
import { CentralStore } from '../../agent/src/central/central-store.js';
import { FleetProjection } from '../../agent/src/central/fleet/fleet-projection.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { chromiumSkipReason, launchBrowser, newContext } from '../helpers/browser.js';
import { SimulatedAgent, vibrationAlert } from '../helpers/console-fleet.js';
import { consoleSession } from '../helpers/console-session.js';
import { freePort, mosquittoBinary, startMosquitto } from '../helpers/mosquitto.js';
import { postgresSkipReason, startPostgres } from '../helpers/postgres.js';
import { AGENTS, ASSETS, DAYS, RAW_AGENTS, generate } from './central-queries.bench.js';

const RUNS = Number(process.env.FOREWARN_BENCH_RUNS ?? 8);
/** The generator's agent names (agent-0001 …), any n folded into the fleet. */
const agentName = (n: number) => `agent-${String(1 + (n % AGENTS)).padStart(4, '0')}`;
const PAGE_ROWS = 50;

function mosquittoSkipReason(): string | null {
  try {
    mosquittoBinary();
    return null;
  } catch (err) {
    return `mosquitto not found (${err instanceof Error ? err.message : String(err)})`;
  }
}

interface PageTiming {
  /** Navigation start → the condition held (the page's performance.now()). */
  interactiveMs: number;
  /** The document's response end (the HTML). */
  htmlMs: number;
  /** API requests the page made before it was interactive: count, slowest and summed time to first byte. */
  apiCount: number;
  apiMaxTtfbMs: number;
  apiSumTtfbMs: number;
  /** Where the slowest request went. */
  slowest: string;
}

/** What the page must show to count as interactive, checked in the page. */
type Ready = { kind: 'overview'; rows: number } | { kind: 'asset'; path: string; points: number };

/** In the page (no DOM types in this project: the browser's globals through `g`). */
function readyIn(r: Ready): number | false {
  const g = globalThis as any;
  const d = g.document;
  let ok: boolean;
  if (r.kind === 'overview')
    ok = d.querySelectorAll('#assets-table tbody tr').length === r.rows && d.querySelector('[data-stat="assets-alarm"] .stat-value') !== null;
  else {
    const line = d.querySelector('.model-card[data-model="machine-failure"] polyline.line');
    const n = line
      ? String(line.getAttribute('points') ?? '')
          .trim()
          .split(/\s+/).length
      : 0;
    ok = g.location.pathname === r.path && d.querySelector('#asset-head .chip') !== null && n >= r.points;
  }
  return ok ? (g.performance.now() as number) : false;
}

/** In the page: its own timings once interactive at `until` (ms from navigation start). */
function timingsIn(until: number): PageTiming {
  const perf = (globalThis as any).performance;
  const nav = perf.getEntriesByType('navigation')[0];
  const api = (perf.getEntriesByType('resource') as any[]).filter(
    (r) => r.name.includes('/api/v1/') && !r.name.endsWith('/api/v1/events') && r.responseEnd <= until,
  );
  const ttfb = (r: any): number => r.responseStart - r.requestStart;
  const slowest = api.reduce((m, r) => (!m || ttfb(r) > ttfb(m) ? r : m), null);
  return {
    interactiveMs: until,
    htmlMs: nav ? nav.responseEnd : 0,
    apiCount: api.length,
    apiMaxTtfbMs: slowest ? ttfb(slowest) : 0,
    apiSumTtfbMs: api.reduce((sum, r) => sum + ttfb(r), 0),
    slowest: slowest ? new URL(slowest.name).pathname.replace(/^\/api\/v1/, '') : '',
  };
}

/** Loads `url` and waits (a rAF poll in the page) until it is ready; then reads the page's own timings. */
async function timePage(page: Page, url: string, ready: Ready): Promise<PageTiming> {
  await page.goto(url, { waitUntil: 'commit' });
  let until: number;
  try {
    until = (await (await page.waitForFunction(readyIn, ready, { polling: 'raf', timeout: 60_000 })).jsonValue()) as number;
  } catch (err) {
    const shown = await page.evaluate(() => String((globalThis as any).document.querySelector('#main')?.innerText ?? '').slice(0, 1500)).catch(() => '?');
    throw new Error(`${url}: not ready (${JSON.stringify(ready)}): ${err instanceof Error ? err.message : String(err)}\npage shows: ${shown}`);
  }
  return page.evaluate(timingsIn, until);
}

function pageRow(name: string, target: string, xs: PageTiming[]): Record<string, string | number> {
  const sorted = (f: (t: PageTiming) => number) => xs.map(f).sort((a, b) => a - b);
  const inter = sorted((t) => t.interactiveMs);
  const slowestCounts = new Map<string, number>();
  for (const t of xs) slowestCounts.set(t.slowest, (slowestCounts.get(t.slowest) ?? 0) + 1);
  const slowest = [...slowestCounts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '';
  return {
    case: name,
    target,
    runs: xs.length,
    p50_ms: round(median(inter)),
    p95_ms: round(percentile(inter, 95)),
    html_p50_ms: round(median(sorted((t) => t.htmlMs))),
    api_requests: round(median(sorted((t) => t.apiCount))),
    api_slowest_ttfb_p50_ms: round(median(sorted((t) => t.apiMaxTtfbMs))),
    api_sum_ttfb_p50_ms: round(median(sorted((t) => t.apiSumTtfbMs))),
    slowest_request: slowest,
  };
}

function latencyRow(name: string, target: string, xs: number[], extra: Record<string, string | number> = {}): Record<string, string | number> {
  const s = [...xs].sort((a, b) => a - b);
  return { case: name, target, runs: s.length, p50_ms: round(median(s)), p95_ms: round(percentile(s, 95)), max_ms: round(s[s.length - 1] ?? 0), ...extra };
}

export async function run(): Promise<BenchReport[]> {
  const skip = chromiumSkipReason() ?? postgresSkipReason() ?? mosquittoSkipReason();
  if (skip) return [{ name: 'fleet console in Chromium (skipped)', rows: [], notes: [skip] }];
  const loadBefore = os.loadavg();
  const cluster = await startPostgres();
  const broker = await startMosquitto();
  const url = cluster.createDatabase('console');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let central: CentralService | null = null;
  let other: CentralStore | null = null;
  const closers: Array<() => Promise<unknown>> = [];
  try {
    // Fleet rules that would fire on a generated fleet (silent assets, offline agents) are pushed out of the way:
    // the benchmark measures the console, not alerting.
    const options = parseCentralOptions(
      [
        ...['--store', url, '--broker', broker.url, '--client-id', 'console-bench', '--api', `127.0.0.1:${port}`],
        ...['--asset-silent', '3650d', '--agent-offline', '3650d', '--version-skew', '3650d'],
      ],
      {},
    );
    central = await startCentral(options, captureLogger().log, CENTRAL_MODULES);
    const t0 = performance.now();
    const steps = await generate(central.store.sql, { historical: '0' });
    const generatedS = (performance.now() - t0) / 1000;
    const api = central.components.find((c) => c.name === 'central-api') as CentralApi;

    const viewer = await consoleSession(base, central.store.sql, { username: 'bench-viewer', role: 'viewer' });
    const browser = await launchBrowser();
    closers.push(() => browser.close());
    const ctx = await newContext(browser);
    const [name, value] = viewer.cookie.split('=') as [string, string];
    await ctx.addCookies([{ name, value, url: base, httpOnly: true, sameSite: 'Strict' }]);

    const overviewReady: Ready = { kind: 'overview', rows: PAGE_ROWS };
    const assetReady = (agent: string, asset: string): Ready => ({ kind: 'asset', path: `/assets/${agent}/${asset}`, points: DAYS * 24 - 1 });
    const overview: PageTiming[] = [];
    const assetRaw: PageTiming[] = [];
    const asset: PageTiming[] = [];
    for (let i = 0; i <= RUNS; i++) {
      const page = await ctx.newPage();
      const o = await timePage(page, `${base}/`, overviewReady);
      const a1 = await timePage(page, `${base}/assets/agent-0001/asset-${i % ASSETS}?range=30d`, assetReady('agent-0001', `asset-${i % ASSETS}`));
      const agent = agentName(100 + i * 37);
      const a2 = await timePage(page, `${base}/assets/${agent}/asset-${i % ASSETS}?range=30d`, assetReady(agent, `asset-${i % ASSETS}`));
      await page.close();
      // The first round warms the browser's cache of the console's files, the JIT and PostgreSQL's buffers.
      if (i === 0) continue;
      overview.push(o);
      assetRaw.push(a1);
      asset.push(a2);
    }

    // Live updates on the open overview: an alert for an asset that no alert touched, so that its row turns to alarm.
    const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `console-bench-${process.pid}`, reconnectPeriod: 0 });
    closers.push(() => client.endAsync());
    other = await CentralStore.open({ url, projections: [new FleetProjection(), new AlertBook()] });
    const page = await ctx.newPage();
    await page.goto(`${base}/`);
    await page.waitForFunction(readyIn, overviewReady, { polling: 'raf', timeout: 60_000 });
    await page.waitForFunction(() => (globalThis as any).document.querySelector('#live-status')?.dataset.state === 'live');
    const commits = new Map<string, number>();
    central.ingest.on('batch', (b) => {
      if (b.stream === 'alerts') commits.set(b.agentId, Date.now());
    });
    /** Watches for the row of `key` in alarm (installed before the record is sent); `seen` gives the time (epoch ms). */
    const watchRow = async (key: string) => {
      await page.evaluate((k) => {
        const g = globalThis as any;
        const sel = `#assets-table tr[data-asset="${k}"][data-state="alarm"]`;
        const seen = (g.__seen ??= {});
        const obs = new g.MutationObserver(() => {
          if (!g.document.querySelector(sel)) return;
          obs.disconnect();
          seen[k] = Date.now();
        });
        obs.observe(g.document.body, { subtree: true, childList: true, attributes: true });
      }, key);
      return {
        seen: async () =>
          (await (await page.waitForFunction((k) => (globalThis as any).__seen[k] ?? false, key, { polling: 50, timeout: 30_000 })).jsonValue()) as number,
      };
    };
    const inProcess: number[] = [];
    const mqttToCommit: number[] = [];
    const otherWorker: number[] = [];
    for (let i = 0; i < 2 * (RUNS + 1); i++) {
      // Alternating: through MQTT and this process's ingest, then committed by "another worker".
      const viaIngest = i % 2 === 0;
      const agentId = agentName(200 + i * 23);
      const key = `${agentId}/asset-0`;
      const watcher = await watchRow(key);
      let commitTs: number;
      if (viaIngest) {
        const sent = Date.now();
        await new SimulatedAgent(agentId, client).publish('alerts', [vibrationAlert('asset-0', sent)]);
        while (!commits.has(agentId)) await new Promise((r) => setTimeout(r, 2));
        commitTs = commits.get(agentId)!;
        if (i > 1) mqttToCommit.push(commitTs - sent);
      } else {
        const ts = Date.now();
        const rec = { seq: 1, ...vibrationAlert('asset-0', ts) } as unknown as Parameters<CentralStore['ingestBatch']>[0]['records'][number];
        await other.ingestBatch({ agentId, stream: 'alerts', bootSeq: 1, historical: false, records: [rec] }, ts);
        commitTs = Date.now();
      }
      const at = await watcher.seen();
      if (i > 1) (viaIngest ? inProcess : otherWorker).push(at - commitTs);
      // A pause, so that each update meets the timed poll at another phase.
      await new Promise((r) => setTimeout(r, 1_300 + ((i * 379) % 900)));
    }
    await page.close();
    const loadAfter = os.loadavg();
    const load = `load average (1/5/15 min) ${loadBefore.map((x) => x.toFixed(1)).join('/')} before, ${loadAfter.map((x) => x.toFixed(1)).join('/')} after; ${os.cpus().length} CPUs`;
    return [
      {
        name: `fleet console in Chromium: ${AGENTS} agents × ${ASSETS} assets, ${DAYS} days of hourly risk (PostgreSQL)`,
        rows: [
          pageRow('overview interactive (50 rows and the counts)', '≤ 1000', overview),
          pageRow(`asset page, 30 d of risk (${DAYS * 24} hourly points), agent without raw records`, '≤ 1000', asset),
          pageRow(`asset page, 30 d of risk, agent with 24 h of raw risk records (${RAW_AGENTS} such agents)`, '≤ 1000', assetRaw),
          latencyRow('live update: ingest commit (this process) → row in alarm on the overview', '≤ 2000', inProcess, {
            mqtt_publish_to_commit_p50_ms: round(median([...mqttToCommit].sort((a, b) => a - b))),
          }),
          latencyRow('live update: committed by another worker (timed 2 s poll only) → row in alarm', '', otherWorker),
        ],
        notes: [
          `store generated in ${generatedS.toFixed(0)} s (${steps.length} steps); a warm-up round first, then ${RUNS} measured runs per case`,
          'interactive: from navigation start, by the page’s performance.now(); api_*: time to first byte of the page’s API requests (server time plus loopback)',
          `events: the timed poll every 2 s, woken by a commit of this process's ingest (at most every 500 ms); ${api.scheme} on loopback`,
          load,
        ],
      },
    ];
  } finally {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    await other?.close().catch(() => undefined);
    await central?.stop().catch(() => undefined);
    await broker.stop();
    cluster.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) process.stdout.write(`${formatReport(r)}\n\n`);
}
