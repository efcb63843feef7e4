import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { CLI, ROOT, killAgent, runCli, spawnAgent } from '../helpers/agent-process.js';
import { alertmanagerSkipReason, startAlertmanager } from '../helpers/alertmanager.js';
import { chromiumSkipReason, launchBrowser, newContext, screenshot, watchPage, type PageProblems } from '../helpers/browser.js';
import { cleanupAfterEach } from '../helpers/cleanup.js';
import { FAILING, RISK_ALERT_ID, simulateFleet, vibrationAlert } from '../helpers/console-fleet.js';
import { startHttpReceiver } from '../helpers/http-receiver.js';
import { freePort, startMosquitto } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The fleet console in a real browser (issue #16): Debian's Chromium, headless, driven by playwright-core, against
 * `forewarn central` as its own process (built CLI, SQLite store) fed over a real mosquitto by agents publishing on
 * the MQTT contract, routing to a real Alertmanager. An operator signs in, finds the mill that a simulated failure
 * pushed into alarm at the top of the overview, sees a new alarm arrive live, opens the mill's page (risk trend
 * with its threshold), acknowledges and resolves the alert with a failure mode, finds both in the audit log, and
 * the label export writes the episode. A viewer sees no action and is refused when posting one anyway; a change
 * without the CSRF token is refused. No page logs an error or has a failed request.
 *
 * Screenshots of the overview and the asset page go to a temp dir on every run, and to docs/images/ with
 * FOREWARN_UPDATE_SCREENSHOTS=1 (docs/console.md shows them).
 */

const cleanup = cleanupAfterEach();
const skip = chromiumSkipReason() ?? alertmanagerSkipReason() ?? (existsSync(CLI) ? null : `${CLI} not built (npx tsc -p tsconfig.json)`);
const OPERATOR = { username: 'olivia', password: 'operator-password-1' };
const VIEWER = { username: 'victor', password: 'viewer-password-12' };
const ALERT_KEY = `agent/${FAILING.agentId}/${RISK_ALERT_ID}`;
const SHOTS = mkdtempSync(path.join(tmpdir(), 'fw-console-shots-'));
const UPDATE_DOCS = process.env.FOREWARN_UPDATE_SCREENSHOTS === '1';

async function addUser(store: string, dir: string, user: { username: string; password: string }, role: string): Promise<void> {
  const file = path.join(dir, `${user.username}.password`);
  writeFileSync(file, `${user.password}\n`, { mode: 0o600 });
  const r = await runCli(['central', 'user', 'add', user.username, '--role', role, '--password-file', file, '--store', store]);
  expect(r.code, r.stderr).toBe(0);
}

async function signIn(page: Page, base: string, user: { username: string; password: string }, to = '/'): Promise<void> {
  await page.goto(`${base}${to}`);
  // Without a session the server sends every page to the login page, which comes back here after.
  await page.waitForURL(/\/login\?next=/);
  await page.fill('#login-username', user.username);
  await page.fill('#login-password', user.password);
  await page.click('form.login-form button[type=submit]');
  await page.waitForURL((u) => !u.pathname.startsWith('/login'));
}

async function keepShot(page: Page, name: string): Promise<void> {
  const file = await screenshot(page, SHOTS, name);
  if (UPDATE_DOCS) {
    mkdirSync(path.join(ROOT, 'docs/images'), { recursive: true });
    copyFileSync(file, path.join(ROOT, 'docs/images', name));
  }
}

/** The CSRF token of a context's session, as the page gets it. */
async function csrfOf(ctx: BrowserContext, base: string): Promise<string> {
  const r = await ctx.request.get(`${base}/api/v1/session`);
  expect(r.status()).toBe(200);
  return ((await r.json()) as { csrfToken: string }).csrfToken;
}

function expectClean(w: PageProblems, where: string): void {
  expect(w.problems, `problems on ${where}`).toEqual([]);
}

describe.skipIf(skip !== null)(`the fleet console in Chromium${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('shows the failing asset in alarm, updates live, and takes it through acknowledge and resolve into the audit log and the labels; viewers cannot act; changes need the CSRF token', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-console-e2e-'));
    const store = `sqlite:${path.join(dir, 'central.db')}`;
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const receiver = await startHttpReceiver();
    cleanup.push(() => receiver.close());
    const am = await startAlertmanager({ webhookUrl: `${receiver.url}/hook`, groupBy: ['alertname', 'agent'], groupWait: '1s', groupInterval: '2s' });
    cleanup.push(() => am.stop());

    await addUser(store, dir, OPERATOR, 'operator');
    await addUser(store, dir, VIEWER, 'viewer');
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const central = spawnAgent(
      ['central', '--store', store, '--broker', broker.url, '--client-id', 'console-central', '--api', `127.0.0.1:${port}`, '--alertmanager', am.url],
      dir,
      '',
      { FOREWARN_LOG_LEVEL: 'info' },
    );
    cleanup.push(() => killAgent(central));
    await waitFor(() => central.logs().some((l) => l.msg === 'subscriber connected'), 'central subscribed', 30_000);
    await waitFor(async () => (await fetch(`${base}/healthz`).catch(() => null))?.ok, 'central HTTP server up', 30_000);

    const fleet = await simulateFleet(broker.url);
    cleanup.push(() => fleet.close());

    const browser = await launchBrowser();
    cleanup.push(() => browser.close());
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    // The one wrong password below is provoked on purpose: its 401 is the only problem allowed.
    const watch = watchPage(page);

    // A wrong password is refused with a message, and the form stays.
    await page.goto(`${base}/`);
    await page.waitForURL(/\/login\?next=%2F/);
    await page.fill('#login-username', OPERATOR.username);
    await page.fill('#login-password', 'not-the-password');
    await page.click('form.login-form button[type=submit]');
    await expect.poll(() => page.textContent('#login-error')).toContain('Wrong user name or password');
    expect(watch.problems).toContain(`HTTP 401: POST ${base}/api/v1/session`);
    expect(watch.problems.filter((p) => !/\b401\b/.test(p))).toEqual([]);
    watch.clear();

    // The overview: the failing mill first (sorted by risk), in alarm; the counts say so; the stream is live.
    await page.fill('#login-password', OPERATOR.password);
    await page.click('form.login-form button[type=submit]');
    await page.waitForURL(`${base}/`);
    const firstRow = page.locator('#assets-table tbody tr').first();
    await expect.poll(() => firstRow.getAttribute('data-asset'), { timeout: 60_000 }).toBe(`${FAILING.agentId}/${FAILING.asset}`);
    expect(await firstRow.getAttribute('data-state')).toBe('alarm');
    await expect.poll(() => page.locator('#assets-table tbody tr').count(), { timeout: 30_000 }).toBe(5);
    await expect.poll(() => page.textContent('[data-stat="assets-alarm"] .stat-value')).toBe('1');
    await expect.poll(() => page.textContent('[data-stat="agents-offline"] .stat-value')).toBe('1');
    await expect.poll(() => page.textContent('[data-stat="alerts-critical"] .stat-value')).toBe('1');
    await expect.poll(() => page.getAttribute('#live-status', 'data-state')).toBe('live');
    expect(await page.locator('#agents-table tr[data-agent="line-3"]').getAttribute('data-state')).toBe('offline');

    // A new alarm arrives while the overview is open: the row changes and the counts follow, without a reload.
    await page.evaluate(() => ((globalThis as unknown as { stillHere: boolean }).stillHere = true));
    await fleet.agents['line-1']!.publish('alerts', [vibrationAlert('mill-3', Date.now())]);
    await expect.poll(() => page.locator('#assets-table tr[data-asset="line-1/mill-3"]').getAttribute('data-state'), { timeout: 20_000 }).toBe('alarm');
    await expect.poll(() => page.textContent('[data-stat="assets-alarm"] .stat-value')).toBe('2');
    expect(await page.evaluate(() => (globalThis as unknown as { stillHere?: boolean }).stillHere)).toBe(true);

    // Filters: the alarm chip keeps the two mills in alarm; the search box narrows to one.
    await page.click('button[data-filter="alarm"]');
    await expect.poll(() => page.locator('#assets-table tbody tr').count()).toBe(2);
    await page.fill('#asset-search', 'mill-1');
    await expect.poll(() => page.locator('#assets-table tbody tr').count()).toBe(1);
    await page.fill('#asset-search', '');
    await page.click('button[data-filter="alarm"]');
    await expect.poll(() => page.locator('#assets-table tbody tr').count()).toBe(5);
    await keepShot(page, 'console-overview.png');
    expectClean(watch, 'the overview');

    // The asset page: the risk trend with its threshold, a read-out under the pointer, the drivers, telemetry.
    await page.click(`#assets-table tr[data-asset="${FAILING.agentId}/${FAILING.asset}"] a.asset-link`);
    await page.waitForURL(`${base}/assets/${FAILING.agentId}/${FAILING.asset}`);
    const card = page.locator(`.model-card[data-model="${FAILING.model}"]`);
    await card.locator('polyline.line').first().waitFor({ timeout: 20_000 });
    expect(Number(await card.locator('.threshold-line').getAttribute('data-threshold'))).toBe(FAILING.threshold);
    const points = (await card.locator('polyline.line').first().getAttribute('points'))!.trim().split(/\s+/);
    expect(points.length).toBeGreaterThan(15); // 24 h of hourly means
    const box = (await card.locator('.chart-overlay').boundingBox())!;
    await page.mouse.move(box.x + box.width - 3, box.y + box.height / 2);
    await expect.poll(() => card.locator('.chart-readout').textContent()).toMatch(/\d\.\d+/);
    await expect.poll(() => page.locator('#asset-head .chip').getAttribute('data-state')).toBe('alarm');
    await expect.poll(() => page.locator('#drivers-panel .feature').allTextContents()).toEqual(expect.arrayContaining(['tool_wear', 'torque']));
    await page.locator('.tele-card[data-metric="tool_wear"] polyline.line').waitFor();
    // 1 h shows every record.
    await page.click('button[data-range="1h"]');
    await expect.poll(async () => ((await card.locator('polyline.line').first().getAttribute('points')) ?? '').trim().split(/\s+/).length).toBeGreaterThan(50);
    await page.click('button[data-range="24h"]');
    await card.locator('polyline.line').first().waitFor();
    await page.mouse.move(0, 0);
    await keepShot(page, 'console-asset.png');

    // Acknowledge, with a note.
    await page.click(`#active-alerts li[data-alert="${ALERT_KEY}"] button[data-action="acknowledge"]`);
    await page.fill('dialog[data-dialog="acknowledge"] textarea[name="note"]', 'On it: checking the spindle.');
    await page.click('dialog[data-dialog="acknowledge"] button[data-submit="acknowledge"]');
    const activeItem = page.locator(`#active-alerts li[data-alert="${ALERT_KEY}"]`);
    await expect.poll(() => activeItem.locator('.workflow').getAttribute('data-workflow')).toBe('acknowledged');
    expect(await activeItem.locator('.workflow').textContent()).toContain(OPERATOR.username);
    await expect.poll(() => page.locator('#asset-head .chip').getAttribute('data-state')).toBe('acknowledged');

    // Resolve with a failure mode from the asset kind's list and the action taken.
    await page.click(`#active-alerts li[data-alert="${ALERT_KEY}"] button[data-action="resolve"]`);
    const modes = page.locator('dialog[data-dialog="resolve"] select[name="failureMode"]');
    await expect.poll(() => modes.locator('option[value="tool-wear"]').count()).toBe(1);
    await modes.selectOption('tool-wear');
    await page.fill('dialog[data-dialog="resolve"] input[name="actionTaken"]', 'Replaced the cutting tool');
    await page.fill('dialog[data-dialog="resolve"] textarea[name="note"]', 'Tool worn past 200 min.');
    await page.click('dialog[data-dialog="resolve"] button[data-submit="resolve"]');
    const timelineItem = page.locator(`#alert-timeline li[data-alert="${ALERT_KEY}"]`);
    await expect.poll(() => timelineItem.locator('.workflow').getAttribute('data-workflow')).toBe('resolved');
    expect(await timelineItem.locator('.failure-mode').textContent()).toBe('tool-wear');
    await expect.poll(() => page.locator('#active-alerts').count()).toBe(0);
    await expect.poll(() => page.locator('#asset-head .chip').getAttribute('data-state')).not.toBe('alarm');
    expectClean(watch, 'the asset page');

    // The alerts page lists the resolved one with its workflow under "resolved"; the audit log has both actions.
    await page.click('nav.mainnav a[data-nav="alerts"]');
    await page.locator('#alerts-list li[data-alert]').first().waitFor();
    expect(await page.locator('#alerts-list li[data-alert*="vibration"] button[data-action="acknowledge"]').count()).toBe(1);
    await page.click('button[data-filter-state="all"]');
    await expect.poll(() => page.locator(`#alerts-list li[data-alert="${ALERT_KEY}"] .workflow`).getAttribute('data-workflow')).toBe('resolved');
    await page.click('nav.mainnav a[data-nav="audit"]');
    const auditRows = page.locator('#audit-table tbody tr');
    await expect.poll(async () => (await auditRows.allTextContents()).filter((t) => t.includes(ALERT_KEY)).length).toBeGreaterThanOrEqual(2);
    const actions = (await auditRows.allTextContents()).filter((t) => t.includes(ALERT_KEY));
    expect(actions.some((t) => /acknowledge/i.test(t) && t.includes(OPERATOR.username))).toBe(true);
    expect(actions.some((t) => /resolve/i.test(t) && t.includes(OPERATOR.username))).toBe(true);
    expectClean(watch, 'the alerts and audit pages');

    // A change without the CSRF token is refused, with the operator's own session.
    const noToken = await ctx.request.post(`${base}/api/v1/alerts/actions`, { data: { alertKey: ALERT_KEY, action: 'acknowledge' } });
    expect(noToken.status()).toBe(403);
    expect(((await noToken.json()) as { error: { code: string } }).error.code).toBe('FW_ERR_CONSOLE_CSRF');

    // The label export writes the resolved episode with its failure mode.
    const out = path.join(dir, 'machine-failure-labels.csv');
    const exported = await runCli(['central', 'export-labels', '--since', '2d', '--model', FAILING.model, '--out', out, '--store', store]);
    expect(exported.code, exported.stderr).toBe(0);
    const sidecar = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as { episodes: Array<{ alertKey: string; failureMode: string | null }> };
    expect(sidecar.episodes).toEqual(expect.arrayContaining([expect.objectContaining({ alertKey: ALERT_KEY, failureMode: 'tool-wear' })]));
    expect(readFileSync(out, 'utf8').trim().split('\n').length, JSON.stringify(sidecar).slice(0, 2000)).toBeGreaterThan(1);

    // A viewer sees everything and no action, and the server refuses the action anyway.
    const vctx = await newContext(browser);
    const vpage = await vctx.newPage();
    const vwatch = watchPage(vpage);
    await signIn(vpage, base, VIEWER, '/assets/line-1/mill-3');
    await vpage.locator('#active-alerts li[data-alert]').first().waitFor({ timeout: 20_000 });
    await vpage.locator('.model-card polyline.line').first().waitFor();
    expect(await vpage.locator('button[data-action]').count()).toBe(0);
    await vpage.click('nav.mainnav a[data-nav="alerts"]');
    await vpage.locator('#alerts-list li[data-alert]').first().waitFor();
    expect(await vpage.locator('button[data-action]').count()).toBe(0);
    const vibrationKey = (await vpage.locator('#alerts-list li[data-alert*="vibration"]').getAttribute('data-alert'))!;
    const refused = await vctx.request.post(`${base}/api/v1/alerts/actions`, {
      data: { alertKey: vibrationKey, action: 'acknowledge', note: 'viewer tries' },
      headers: { 'X-CSRF-Token': await csrfOf(vctx, base) },
    });
    expect(refused.status()).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('FW_ERR_CONSOLE_FORBIDDEN');
    expectClean(vwatch, "the viewer's pages");
    await vctx.close();

    central.proc.kill('SIGTERM');
    expect((await central.exited).code, central.output().slice(-3000)).toBe(0);
  }, 240_000);
});
