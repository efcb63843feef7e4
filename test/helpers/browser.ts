import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/**
 * Headless Chromium for the console's browser tests: Debian's `chromium` package driven by playwright-core, which
 * downloads no browser of its own. `chromiumSkipReason` says why the tests skip where it is not installed (.ci/run
 * installs it). `watchPage` collects what a page must not have: console errors, uncaught exceptions, failed
 * requests and HTTP errors.
 */

export const CHROMIUM = process.env.FOREWARN_CHROMIUM ?? '/usr/bin/chromium';

export function chromiumSkipReason(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} not found (apt-get install chromium; .ci/run does)`;
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    // --no-sandbox: the tests run as root in CI containers, where Chromium's sandbox cannot start.
    args: [
      '--no-sandbox',
      '--headless=new',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-extensions',
      '--no-first-run',
      '--disable-dev-shm-usage',
    ],
  });
}

/** A context the size the issue asks the pages to work at (1280×800), in a fixed locale and time zone. */
export async function newContext(browser: Browser, options: { width?: number; height?: number } = {}): Promise<BrowserContext> {
  return browser.newContext({
    viewport: { width: options.width ?? 1280, height: options.height ?? 800 },
    locale: 'en-GB',
    timezoneId: 'UTC',
    deviceScaleFactor: 1,
  });
}

export interface PageProblems {
  /** Console errors, uncaught exceptions, failed requests and HTTP responses ≥ 400, each with the page's URL. */
  problems: string[];
  /** Forget what was collected (after an expected failure, e.g. a wrong password on purpose). */
  clear(): void;
}

/**
 * Collects a page's problems. `allow` lists patterns of problems that a test provokes on purpose. An aborted
 * event stream (the page navigated or closed) is not a problem.
 */
export function watchPage(page: Page, allow: RegExp[] = []): PageProblems {
  const problems: string[] = [];
  const add = (p: string) => {
    if (!allow.some((re) => re.test(p))) problems.push(p);
  };
  page.on('console', (msg) => {
    if (msg.type() === 'error') add(`console error on ${page.url()}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => add(`uncaught on ${page.url()}: ${err.message}`));
  page.on('requestfailed', (req) => {
    const why = req.failure()?.errorText ?? '?';
    // A GET cancelled because the page went away (a full navigation by the test while a chart's data was still on
    // its way, more likely under load): Chromium's doing, not the console's, which never aborts a request itself.
    // The event stream is always open, so every navigation cancels it.
    if (why.includes('ERR_ABORTED') && req.method() === 'GET') return;
    add(`request failed: ${req.method()} ${req.url()}: ${why}`);
  });
  page.on('response', (res) => {
    if (res.status() >= 400) add(`HTTP ${res.status()}: ${res.request().method()} ${res.url()}`);
  });
  return { problems, clear: () => void problems.splice(0) };
}

/** Saves a full-page screenshot into `dir` (created) and returns its path. */
export async function screenshot(page: Page, dir: string, name: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  await page.screenshot({ path: file, fullPage: true, animations: 'disabled' });
  return file;
}
