import { createHash } from 'node:crypto';
import { backoffDelay } from '../../core/backoff.js';
import { describeError, type ErrorCode } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Component } from '../../core/types.js';
import type { LeaderLease } from '../leader-lease.js';
import { redactUrl, type SqlClient } from '../sql/sql-client.js';
import { AlertmanagerSilences, SilenceUnreachable } from '../workflow/alertmanager-silences.js';
import { ensureWorkflowTables } from '../workflow/workflow-schema.js';
import { migrateAlertBook, type CentralAlertRow } from './alert-book.js';
import { alertmanagerAlert, webhookMessage } from './alert-messages.js';
import { LeaderLoop } from './leader-loop.js';

/**
 * Routes the alert book to people, on the worker holding the alerting lease:
 *
 * - **Alertmanager** (v2 API, `POST /api/v2/alerts`), every URL of an HA pair posted to: each change as it
 *   happens, and every `resendIntervalMs` all active alerts and those resolved within `resolvedResendMs` again,
 *   as Prometheus does, so a restarted Alertmanager learns them again. Alertmanager groups, deduplicates and
 *   notifies.
 * - **Webhooks** (JSON, with a Slack-compatible `text`): each firing and each resolution once.
 *
 * Every receiver has its rows in `alert_routes`: the episode and state last delivered to it. A delivery is
 * recorded right after the receiver accepted it, so a restarted central (or the next leader) neither repeats
 * it nor loses what was not yet delivered. (A crash between the receiver's answer and that write resends one
 * message: the webhook `id` lets a receiver drop it.) A receiver that fails is retried with backoff; its outage
 * is logged once, with FW_ERR_ALERT_DELIVERY, and counted. An answer of 4xx (other than 408 and 429) is a
 * rejection: the message is logged, counted and not retried.
 *
 * The alert workflow closes episodes too: an alert a technician resolved or marked a false alarm
 * (`alert_workflow`) is sent as resolved (endsAt: the time of the action) to Alertmanager and webhooks even while
 * its agent still reports it active. Before posting to an Alertmanager, the router carries out the silences the
 * workflow asks of it (workflow/alertmanager-silences.ts), so that a silence is gone before the resolution it
 * would mute arrives.
 */

export const DELIVERY_ERROR: ErrorCode = 'FW_ERR_ALERT_DELIVERY';

export interface AlertmanagerOptions {
  /** Alertmanager base URLs (`http://am:9093`); all of them are posted to. */
  urls: readonly string[];
  /** Resend active alerts this often. Default 60 s (Prometheus' resend delay). */
  resendIntervalMs?: number;
  /** Keep resending a resolved alert this long after it resolved. Default 15 min (as Prometheus). */
  resolvedResendMs?: number;
}

export interface WebhookOptions {
  /** Where to POST. May hold a secret (Slack's URLs do): it is never logged. */
  url: string;
  /** `json`: the whole message (with `text`); `slack`: `{ text }` only, for a Slack incoming webhook. Default json. */
  format?: 'json' | 'slack';
  /** The receiver's name in logs and `alert_routes`. Default: `webhook-` and a hash of the URL. */
  name?: string;
}

export interface AlertRouterOptions {
  alertmanager?: AlertmanagerOptions;
  webhooks?: readonly WebhookOptions[];
  /** The console's base URL, for links (`{consoleUrl}/assets/{agent}/{asset}`). */
  consoleUrl?: string;
  /** How often the book is checked for changes to route. Default 2 s. */
  intervalMs?: number;
  /** Backoff after a failed delivery, from min to max. Default 1 s … 5 min. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** One HTTP request's limit. Default 10 s. */
  timeoutMs?: number;
  /** Alerts per Alertmanager request and per query. Default 500. */
  batchSize?: number;
  /**
   * An alert raised and resolved before it could be delivered (between two passes, or while a receiver was down)
   * is still sent, as its resolution, if it resolved within this. Default 24 h.
   */
  lookbackMs?: number;
  now?: () => number;
}

export interface ReceiverStats {
  kind: 'alertmanager' | 'webhook';
  /** Failing since the last success. */
  failing: boolean;
  delivered: number;
  failures: number;
  rejected: number;
  lastError: string | null;
}

export interface AlertRouterStats {
  passes: number;
  /** Notifications accepted (a firing or a resolution, per receiver). */
  delivered: number;
  /** Active alerts posted again to Alertmanager by the periodic resend. */
  resent: number;
  failures: number;
  rejected: number;
  receivers: Record<string, ReceiverStats>;
}

/** A delivery to retry later (no answer, 5xx, 408, 429). */
class DeliveryError extends Error {}

/** This worker lost the lease during a pass, or is stopping: it posts nothing more. */
class LeaseLost extends Error {}

/** Answers worth retrying: the receiver is in trouble or asks us to slow down (3xx are not followed: an error). */
const RETRYABLE = (status: number) => status >= 500 || status === 408 || status === 429 || status < 400;

interface Receiver {
  /** Its key in alert_routes; also its name in logs (no secrets). */
  id: string;
  kind: 'alertmanager' | 'webhook';
  /** Alertmanager's base URL (for its silences); empty for a webhook. */
  base: string;
  /** Where to POST (may hold a secret: never logged). */
  url: string;
  format: 'json' | 'slack';
  /** Logged with failures: the URL without credentials, or the origin only for a webhook. */
  where: string;
  stats: ReceiverStats;
  nextAttemptTs: number;
  /** Failures since the last success: the backoff's attempt number. */
  streak: number;
  since?: number;
  lastResendTs: number;
}

export class AlertRouter implements Component {
  readonly name = 'alert-router';
  readonly stats: AlertRouterStats = { passes: 0, delivered: 0, resent: 0, failures: 0, rejected: 0, receivers: {} };
  private readonly receivers: Receiver[] = [];
  private readonly loop: LeaderLoop;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly o: Required<Omit<AlertRouterOptions, 'alertmanager' | 'webhooks' | 'consoleUrl' | 'now'>> & {
    resendIntervalMs: number;
    resolvedResendMs: number;
  };
  private migrated = false;
  /** The silences the alert workflow asks of each Alertmanager. */
  readonly silences: AlertmanagerSilences;
  /** Set by stop(): a pass posts nothing more (a slow receiver must not hold the shutdown for a whole backlog). */
  private stopping = false;

  constructor(
    private readonly sql: SqlClient,
    log: Logger,
    private readonly lease: LeaderLease,
    private readonly options: AlertRouterOptions = {},
  ) {
    this.log = log.child({ component: this.name });
    this.now = options.now ?? Date.now;
    this.silences = new AlertmanagerSilences(sql, this.log, { timeoutMs: options.timeoutMs ?? 10_000, now: this.now });
    this.o = {
      intervalMs: options.intervalMs ?? 2_000,
      retryMinMs: options.retryMinMs ?? 1_000,
      retryMaxMs: options.retryMaxMs ?? 300_000,
      timeoutMs: options.timeoutMs ?? 10_000,
      batchSize: options.batchSize ?? 500,
      lookbackMs: options.lookbackMs ?? 24 * 3_600_000,
      resendIntervalMs: options.alertmanager?.resendIntervalMs ?? 60_000,
      resolvedResendMs: options.alertmanager?.resolvedResendMs ?? 15 * 60_000,
    };
    for (const url of options.alertmanager?.urls ?? []) {
      const base = url.replace(/\/+$/, '');
      const shown = redactUrl(base).replace(/\/+$/, '');
      this.add(`alertmanager:${shown}`, 'alertmanager', `${base}/api/v2/alerts`, 'json', shown, base);
    }
    for (const w of options.webhooks ?? []) {
      const name = w.name ?? `webhook-${createHash('sha256').update(w.url).digest('hex').slice(0, 12)}`;
      let origin: string;
      try {
        origin = new URL(w.url).origin;
      } catch {
        throw new Error(`alerting.webhooks: ${name}: not a URL`);
      }
      this.add(`webhook:${name}`, 'webhook', w.url, w.format ?? 'json', origin);
    }
    this.loop = new LeaderLoop('alert routing', this.o.intervalMs, lease, this.log, () => this.pass(), 'FW_ERR_ALERT_EVALUATION');
  }

  async start(): Promise<void> {
    this.loop.start();
  }

  /** Ends the pass in flight after its current request: what it delivered is recorded before stop() returns. */
  async stop(): Promise<void> {
    this.stopping = true;
    try {
      await this.loop.stop();
    } finally {
      this.stopping = false;
    }
  }

  /** One routing pass now, if this worker leads; false otherwise. */
  routeOnce(): Promise<boolean> {
    return this.loop.runOnce();
  }

  private add(id: string, kind: Receiver['kind'], url: string, format: Receiver['format'], where: string, base = ''): void {
    if (this.stats.receivers[id]) throw new Error(`alerting: two receivers named ${id}`);
    const stats: ReceiverStats = { kind, failing: false, delivered: 0, failures: 0, rejected: 0, lastError: null };
    this.stats.receivers[id] = stats;
    this.receivers.push({ id, kind, base, url, format, where, stats, nextAttemptTs: 0, streak: 0, lastResendTs: 0 });
  }

  private async pass(): Promise<void> {
    if (!this.migrated) {
      await migrateAlertBook(this.sql);
      await ensureWorkflowTables(this.sql);
      this.migrated = true;
    }
    this.stats.passes++;
    for (const r of this.receivers) {
      if (this.now() < r.nextAttemptTs) continue;
      r.since ??= await this.register(r.id);
      try {
        if (r.kind === 'alertmanager') await this.toAlertmanager(r);
        else await this.toWebhook(r);
      } catch (err) {
        if (err instanceof LeaseLost) return;
        if (err instanceof DeliveryError) this.failed(r, err);
        else throw err;
      }
    }
  }

  /** When central first routed to this receiver: alerts over before then are not sent to it. */
  private async register(receiver: string): Promise<number> {
    await this.sql.run('INSERT INTO alert_receivers (receiver, first_seen_ts) VALUES (?, ?) ON CONFLICT (receiver) DO NOTHING', [receiver, this.now()]);
    return (await this.sql.get<{ first_seen_ts: number }>('SELECT first_seen_ts FROM alert_receivers WHERE receiver = ?', [receiver]))!.first_seen_ts;
  }

  /**
   * Alerts whose current episode and state differ from what this receiver last got, oldest change first. Three
   * disjoint parts, each read through an index, so that a pass costs what is active or recent, not the whole
   * history (test/bench/central-alerts.bench.ts):
   * 1. active, and not yet delivered in this episode;
   * 2. resolved, and delivered firing (the resolution of what people were told);
   * 3. resolved without having been delivered in this episode (raised and resolved between two passes, or while
   *    the receiver was down), when it resolved within `lookbackMs` and after the receiver was added.
   * Part 1 also holds the active alerts whose episode the workflow closed (see `effective`): delivered firing, or
   * not delivered and closed within the same window, as in part 3.
   */
  private async pending(r: Receiver): Promise<CentralAlertRow[]> {
    const floor = Math.max(r.since!, this.now() - this.o.lookbackMs);
    const rows = await this.sql.all<RoutedRow>(
      `SELECT a.*, w.state AS workflow_state, w.updated_ts AS workflow_ts FROM central_alerts a
         LEFT JOIN alert_routes r ON r.alert_key = a.alert_key AND r.receiver = ?
         LEFT JOIN alert_workflow w ON w.alert_key = a.alert_key AND w.raised_ts = a.raised_ts
         WHERE a.state = 'active' AND (
           ((r.alert_key IS NULL OR r.raised_ts < a.raised_ts) AND (w.state IS NULL OR w.state NOT IN (${CLOSED}) OR w.updated_ts >= ?))
           OR (r.raised_ts = a.raised_ts AND r.state = 'firing' AND w.state IN (${CLOSED})))
       UNION ALL
       SELECT a.*, NULL AS workflow_state, NULL AS workflow_ts FROM alert_routes r JOIN central_alerts a ON a.alert_key = r.alert_key
         WHERE r.receiver = ? AND r.state = 'firing' AND a.state = 'resolved'
       UNION ALL
       SELECT a.*, NULL AS workflow_state, NULL AS workflow_ts FROM central_alerts a LEFT JOIN alert_routes r ON r.alert_key = a.alert_key AND r.receiver = ?
         WHERE a.state = 'resolved' AND a.updated_ts >= ? AND (r.alert_key IS NULL OR (r.raised_ts < a.raised_ts AND r.state = 'resolved'))
       ORDER BY updated_ts, alert_key LIMIT ?`,
      [r.id, floor, r.id, r.id, floor, this.o.batchSize],
    );
    return rows.map(effective);
  }

  private async record(r: Receiver, rows: readonly CentralAlertRow[], error: string | null): Promise<void> {
    const now = this.now();
    await this.sql.tx(async (q) => {
      for (const row of rows) {
        await q.run(
          `INSERT INTO alert_routes (alert_key, receiver, raised_ts, state, delivered_ts, last_error) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (alert_key, receiver) DO UPDATE SET raised_ts = excluded.raised_ts, state = excluded.state,
             delivered_ts = excluded.delivered_ts, last_error = excluded.last_error`,
          [row.alert_key, r.id, row.raised_ts, row.state === 'active' ? 'firing' : 'resolved', now, error],
        );
      }
    });
    if (error === null) {
      r.stats.delivered += rows.length;
      this.stats.delivered += rows.length;
    } else {
      r.stats.rejected += rows.length;
      this.stats.rejected += rows.length;
    }
  }

  private async toAlertmanager(r: Receiver): Promise<void> {
    const url = r.url;
    try {
      await this.silences.sync({ id: r.id, base: r.base, where: r.where }, async () => {
        if (this.stopping || !(await this.lease.confirm())) throw new LeaseLost();
      });
    } catch (err) {
      // Logged once per outage by the silences; the receiver backs off as for a failed post.
      if (err instanceof SilenceUnreachable) throw new DeliveryError(err.message);
      throw err;
    }
    const activeForMs = 4 * this.o.resendIntervalMs;
    for (;;) {
      const rows = await this.pending(r);
      if (!rows.length) break;
      const now = this.now();
      const outcome = await this.post(
        r,
        url,
        rows.map((row) => alertmanagerAlert(row, now, activeForMs, this.options.consoleUrl)),
      );
      await this.record(r, rows, outcome);
      if (outcome) this.rejected(r, outcome, rows.length);
      if (rows.length < this.o.batchSize) break;
    }
    if (this.now() - r.lastResendTs < this.o.resendIntervalMs) return;
    // The periodic resend: everything this receiver has and that is still active or recently resolved.
    const now = this.now();
    let after = '';
    for (;;) {
      const page = await this.sql.all<RoutedRow>(
        `SELECT a.*, w.state AS workflow_state, w.updated_ts AS workflow_ts FROM central_alerts a
           JOIN alert_routes r ON r.alert_key = a.alert_key AND r.receiver = ? AND r.raised_ts = a.raised_ts AND r.last_error IS NULL
           LEFT JOIN alert_workflow w ON w.alert_key = a.alert_key AND w.raised_ts = a.raised_ts
           WHERE a.state = 'active' AND a.alert_key > ?
         UNION ALL
         SELECT a.*, NULL AS workflow_state, NULL AS workflow_ts FROM central_alerts a
           JOIN alert_routes r ON r.alert_key = a.alert_key AND r.receiver = ? AND r.raised_ts = a.raised_ts AND r.last_error IS NULL
           WHERE a.state = 'resolved' AND a.updated_ts >= ? AND a.alert_key > ?
         ORDER BY alert_key LIMIT ?`,
        [r.id, after, r.id, now - this.o.resolvedResendMs, after, this.o.batchSize],
      );
      if (!page.length) break;
      after = page[page.length - 1]!.alert_key;
      // Closed by the workflow: resent as resolved for as long as an alert its agent resolved would be.
      const rows = page.map(effective).filter((row) => row.state === 'active' || row.updated_ts >= now - this.o.resolvedResendMs);
      const outcome = rows.length
        ? await this.post(
            r,
            url,
            rows.map((row) => alertmanagerAlert(row, now, activeForMs, this.options.consoleUrl)),
          )
        : null;
      if (outcome === null) {
        this.stats.resent += rows.length;
      }
      if (page.length < this.o.batchSize) break;
    }
    r.lastResendTs = now;
  }

  private async toWebhook(r: Receiver): Promise<void> {
    for (;;) {
      const rows = await this.pending(r);
      for (const row of rows) {
        const message = webhookMessage(row, this.options.consoleUrl);
        const outcome = await this.post(r, r.url, r.format === 'slack' ? { text: message.text } : message);
        // One row at a time: what was delivered before a failure stays delivered.
        await this.record(r, [row], outcome);
        if (outcome) this.rejected(r, outcome, 1, message.id);
      }
      if (rows.length < this.o.batchSize) break;
    }
  }

  /**
   * POSTs JSON; resolves null when accepted, or the reason when the receiver rejected it for good (4xx other
   * than 408/429); throws DeliveryError when it should be retried (no answer, 5xx, 408, 429).
   */
  private async post(r: Receiver, url: string, body: unknown): Promise<string | null> {
    // A slow receiver can make a pass outlast the lease: check it before each request, so that a worker that lost
    // it stops before it posts what the new holder posts too.
    if (this.stopping || !(await this.lease.confirm())) throw new LeaseLost();
    const target = new URL(url);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    // fetch refuses credentials in a URL: send them as basic auth (Alertmanager behind a proxy).
    if (target.username || target.password) {
      headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`).toString('base64')}`;
      target.username = '';
      target.password = '';
    }
    let res: Response;
    try {
      res = await fetch(target, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.o.timeoutMs),
        redirect: 'error',
      });
    } catch (err) {
      // The message of a fetch failure carries no URL; its cause says what failed (ECONNREFUSED, timeout).
      const cause = (err as { cause?: unknown }).cause;
      throw new DeliveryError(cause ? describeError(cause) : describeError(err));
    }
    const text = (await res.text().catch(() => '')).slice(0, 200);
    // Any answer but a retryable one means the receiver is reachable again.
    if (res.ok || !RETRYABLE(res.status)) this.reachable(r);
    if (res.ok) return null;
    const reason = `HTTP ${res.status}${text ? `: ${text}` : ''}`;
    if (!RETRYABLE(res.status)) return reason;
    throw new DeliveryError(reason);
  }

  private reachable(r: Receiver): void {
    if (r.stats.failing) this.log.info({ receiver: r.id, failures: r.stats.failures }, 'alert receiver reachable again');
    r.stats.failing = false;
    r.streak = 0;
    r.nextAttemptTs = 0;
  }

  private rejected(r: Receiver, reason: string, count: number, id?: string): void {
    r.stats.lastError = reason;
    this.log.warn({ code: DELIVERY_ERROR, receiver: r.id, at: r.where, err: reason, alerts: count, id }, 'alert receiver rejected a notification; not retried');
  }

  private failed(r: Receiver, err: DeliveryError): void {
    r.stats.failures++;
    this.stats.failures++;
    r.stats.lastError = err.message;
    r.nextAttemptTs = this.now() + backoffDelay(r.streak++, this.o.retryMinMs, this.o.retryMaxMs);
    // Once per outage: the first failure after a success. The stats count every one.
    if (!r.stats.failing) {
      this.log.warn({ code: DELIVERY_ERROR, receiver: r.id, at: r.where, err: err.message }, 'alert receiver unreachable; retrying with backoff');
    }
    r.stats.failing = true;
  }
}

/** Workflow states that end an episode for the people notified (resolved by a technician, or a false alarm). */
const CLOSED = "'resolved', 'false_alarm'";

type RoutedRow = CentralAlertRow & { workflow_state: string | null; workflow_ts: number | null };

/**
 * The row as receivers see it: an active alert whose episode a technician closed is resolved at the time of the
 * action (its updated_ts too, for the resend window).
 */
function effective(row: RoutedRow): CentralAlertRow {
  const { workflow_state: state, workflow_ts: ts, ...alert } = row;
  if (alert.state !== 'active' || (state !== 'resolved' && state !== 'false_alarm') || ts === null) return alert;
  const at = Number(ts);
  return { ...alert, state: 'resolved', resolved_ts: at, updated_ts: Math.max(Number(alert.updated_ts), at) };
}
