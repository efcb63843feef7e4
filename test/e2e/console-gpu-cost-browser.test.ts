import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createCentralApi } from '../../agent/src/central/api/central-api.js';
import { CentralStore } from '../../agent/src/central/central-store.js';
import { GpuCostProjection } from '../../agent/src/central/gpu-cost/gpu-cost-projection.js';
import { gpuCostRoutes } from '../../agent/src/central/gpu-cost/gpu-cost-routes.js';
import { CONFIG, feedDgx, feedWorkstation, MIN } from '../agent/central/gpu-cost/gpu-cost-scenario.js';
import { chromiumSkipReason, launchBrowser, newContext, watchPage } from '../helpers/browser.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { cleanupAfterEach } from '../helpers/cleanup.js';
import { ensureConsoleUser, TEST_PASSWORD } from '../helpers/console-session.js';

/**
 * The console's GPU cost page in headless Chromium, against central's HTTP server with the GPU cost routes on a
 * SQLite store fed the scenario of the GPU cost tests (recorded nvidia-smi series through the ledger), ending now:
 * the page shows the hand-computed fleet total, the breakdown, the idle GPU, a CSV link that downloads the report,
 * and logs no error.
 */

const cleanup = cleanupAfterEach();
const skip = chromiumSkipReason();

describe.skipIf(skip !== null)(`the GPU cost page in Chromium${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('shows the daily trend, the breakdown by host and model, the idle GPU and the CSV link, without errors', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-gpucost-e2e-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const store = await CentralStore.open({ url: `sqlite:${path.join(dir, 'central.db')}`, projections: [new GpuCostProjection(CONFIG)] });
    cleanup.push(() => store.sql.close());
    // The workstation's last sample is now (its GPU 0 idle for the last 30 min); the DGX series an hour earlier.
    const now = Math.floor(Date.now() / MIN) * MIN;
    await feedWorkstation(store, now - 300 * MIN);
    await feedDgx(store, now - 300 * MIN);
    await ensureConsoleUser(store.sql, 'vera', 'viewer');
    const api = createCentralApi({ sql: store.sql, log: captureLogger().log, port: 0, routes: gpuCostRoutes(CONFIG) });
    await api.start();
    cleanup.push(() => api.stop());
    const base = `http://127.0.0.1:${api.address().port}`;

    const browser = await launchBrowser();
    cleanup.push(() => browser.close());
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    const watch = watchPage(page);
    await page.goto(`${base}/gpu-cost`);
    await page.waitForURL(/\/login\?next=/);
    await page.fill('#login-username', 'vera');
    await page.fill('#login-password', TEST_PASSWORD);
    await page.click('form.login-form button[type=submit]');
    await page.waitForURL((u) => u.pathname === '/gpu-cost');

    // 17.610242 + 0.492856 + 3.356183 + 0.492856 (gpu-cost-projection.test.ts): the same hours, whatever the days.
    await expect.poll(() => page.textContent('#gpu-cost-total')).toBe('21.95 EUR');
    expect(await page.getAttribute('a[data-nav="gpu-cost"]', 'aria-current')).toBe('page');
    expect(await page.locator('#gpu-cost-trend svg').count()).toBeGreaterThan(0);
    const rows = await page.$$eval('#gpu-cost-breakdown tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    expect(rows.map((r) => [r[0], r[1], r.at(-1)])).toEqual([
      ['dgx-h100-01', '8', '20.97 EUR'],
      ['ws-4090', '2', '0.99 EUR'],
    ]);
    const idle = await page.$$eval('#gpu-cost-idle tbody tr', (trs) => trs.map((tr) => tr.textContent));
    expect(idle).toEqual([expect.stringContaining('ws-4090 / gpu-0000:01:00.0')]);
    expect(idle[0]).toContain('0.20 EUR');
    const down = await page.$$eval('#gpu-cost-downtime tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
    expect(down).toEqual(['dgx-h100-01 / gpu-0000:2a:00.0', 'dgx-h100-01 / gpu-0000:5d:00.0']);

    // By model: the table changes; the CSV link follows and downloads the report of the page.
    await page.selectOption('#gpu-cost-by', 'model');
    await expect
      .poll(() => page.$$eval('#gpu-cost-breakdown tbody tr td:first-child', (tds) => tds.map((td) => td.textContent)))
      .toEqual(['H100-SXM', 'RTX-4090']);
    expect(new URL(page.url()).searchParams.get('by')).toBe('model');
    const href = (await page.getAttribute('#gpu-cost-csv', 'href'))!;
    expect(href).toMatch(/^\/api\/v1\/gpu-cost\?from=\d+&to=\d+&by=model&format=csv$/);
    const csv = await ctx.request.get(`${base}${href}`);
    expect(csv.status()).toBe(200);
    expect(csv.headers()['content-type']).toBe('text/csv; charset=utf-8');
    expect(csv.headers()['content-disposition']).toMatch(/^attachment; filename="gpu-cost-model-\d{4}-\d{2}-\d{2}-\d{4}-\d{2}-\d{2}\.csv"$/);
    expect((await csv.text()).split('\n')[0]).toMatch(/^day,model,gpus,/);

    expect(watch.problems).toEqual([]);
  }, 90_000);
});
