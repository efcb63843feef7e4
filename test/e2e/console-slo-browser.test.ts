import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, killAgent, runCli, spawnAgent } from '../helpers/agent-process.js';
import { chromiumSkipReason, launchBrowser, newContext, screenshot, watchPage } from '../helpers/browser.js';
import { cleanupAfterEach } from '../helpers/cleanup.js';
import { simulateFleet } from '../helpers/console-fleet.js';
import { freePort, startMosquitto } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The console's SLO page in Chromium (issue #19): `forewarn central --config` with three objectives, fed the
 * console's simulated fleet over a real mosquitto. A viewer opens SLOs from the navigation: every objective shows
 * its indicator as a number, its budget left, its trend chart and its burn rates; one objective's page shows the
 * agents worst first and their clocks. No page logs an error or has a failed request.
 */

const cleanup = cleanupAfterEach();
const skip = chromiumSkipReason() ?? (existsSync(CLI) ? null : `${CLI} not built (npx tsc -p tsconfig.json)`);
const VIEWER = { username: 'vera', password: 'viewer-password-19' };

describe.skipIf(skip !== null)(`the SLO page in Chromium${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('shows each objective with its indicator, budget, trend and burn rates; the detail lists agents worst first', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-console-slo-'));
    const store = `sqlite:${path.join(dir, 'central.db')}`;
    const config = path.join(dir, 'central.yaml');
    writeFileSync(
      config,
      `slo:
  groups: [{ name: lines, agents: ['line-*'] }]
  objectives:
    - { name: telemetry-fresh, sli: freshness, target: 0.995, window: 28d, description: Every asset's newest reading is under 5 minutes old }
    - { name: nothing-lost, sli: completeness, target: 0.999, window: 7d, group: lines }
    - { name: delivered-fast, sli: delivery-latency, target: 0.99, window: 1d, thresholdSeconds: 60 }
`,
    );
    const passwordFile = path.join(dir, 'viewer.password');
    writeFileSync(passwordFile, `${VIEWER.password}\n`, { mode: 0o600 });
    const added = await runCli(['central', 'user', 'add', VIEWER.username, '--role', 'viewer', '--password-file', passwordFile, '--store', store]);
    expect(added.code, added.stderr).toBe(0);

    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const central = spawnAgent(
      ['central', '--store', store, '--broker', broker.url, '--client-id', 'slo-central', '--api', `127.0.0.1:${port}`, '--config', config],
      dir,
      '',
      {
        FOREWARN_LOG_LEVEL: 'info',
      },
    );
    cleanup.push(() => killAgent(central));
    await waitFor(() => central.logs().some((l) => l.msg === 'subscriber connected'), 'central subscribed', 30_000);
    await waitFor(async () => (await fetch(`${base}/healthz`).catch(() => null))?.ok, 'central HTTP server up', 30_000);
    const fleet = await simulateFleet(broker.url);
    cleanup.push(() => fleet.close());

    const browser = await launchBrowser();
    cleanup.push(() => browser.close());
    const page = await (await newContext(browser)).newPage();
    const watch = watchPage(page);
    await page.goto(`${base}/slo`);
    await page.waitForURL(/\/login\?next=%2Fslo/);
    await page.fill('#login-username', VIEWER.username);
    await page.fill('#login-password', VIEWER.password);
    await page.click('form.login-form button[type=submit]');
    await page.waitForURL(`${base}/slo`);
    await expect.poll(() => page.getAttribute('#mainnav a[href="/slo"]', 'aria-current')).toBe('page');

    // Every objective, in the configured order, with numbers once the fleet's records are in.
    await expect
      .poll(() => page.locator('section.slo-objective').evaluateAll((els) => els.map((e) => e.getAttribute('data-slo'))))
      .toEqual(['telemetry-fresh', 'nothing-lost', 'delivered-fast']);
    // The panels are drawn once; reload until the fleet's records have reached central and every indicator has events.
    await expect
      .poll(
        async () => {
          await page.reload();
          await page.waitForSelector('section.slo-objective');
          return page.locator('section.slo-objective .slo-value').evaluateAll((els) => els.map((e) => e.getAttribute('data-value')));
        },
        // Freshness judges a minute at its end: its first minute after the fleet's first reading can take 60 s.
        { timeout: 90_000, interval: 2_000 },
      )
      .not.toContain('');
    for (const name of ['telemetry-fresh', 'nothing-lost', 'delivered-fast']) {
      const panel = page.locator(`section.slo-objective[data-slo="${name}"]`);
      const value = Number(await panel.locator('.slo-value').getAttribute('data-value'));
      expect(value, name).toBeGreaterThanOrEqual(0);
      expect(value, name).toBeLessThanOrEqual(1);
      expect(await panel.locator('.slo-value').textContent()).toMatch(/\d+(\.\d+)? %/);
      expect(Number.isFinite(Number(await panel.locator('.slo-budget').getAttribute('data-remaining')))).toBe(true);
      expect(await panel.locator('figure.chart svg').count()).toBe(1);
      expect(await panel.locator('tr[data-tier]').evaluateAll((els) => els.map((e) => e.getAttribute('data-tier')))).toEqual([
        'page-fast',
        'page-slow',
        'ticket',
      ]);
    }
    // Nothing is lost in the simulated fleet: completeness is 100 %, its budget untouched.
    expect(await page.getAttribute('section[data-slo="nothing-lost"] .slo-value', 'data-value')).toBe('1');
    expect(await page.getAttribute('section[data-slo="nothing-lost"] .slo-budget', 'data-remaining')).toBe('1');
    await screenshot(page, dir, 'slo.png');

    // One objective's page: groups, agents worst first, clocks.
    await page.click('section[data-slo="telemetry-fresh"] h2 a');
    await page.waitForURL(`${base}/slo/telemetry-fresh`);
    await page.waitForSelector('#slo-agents tbody tr');
    const agents = await page.locator('#slo-agents tbody tr td:first-child').allTextContents();
    expect([...agents].sort()).toEqual(['line-1', 'line-2', 'line-3']);
    expect(await page.locator('#slo-groups tbody tr').count()).toBe(2);
    expect(await page.locator('#slo-clocks tbody tr').count()).toBeGreaterThanOrEqual(1);
    expect(watch.problems).toEqual([]);
  }, 180_000);
});
