import { describeError, type ErrorCode } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { SqlClient } from '../sql/sql-client.js';

/**
 * Carries out the silences the alert workflow wants (`alert_silences`, written by each action in its
 * transaction) on one Alertmanager through its v2 API: `POST /api/v2/silences` for a wanted silence that this
 * Alertmanager does not hold yet, `DELETE /api/v2/silence/{id}` for one that is no longer wanted. What each
 * Alertmanager holds is kept in `alert_silence_receivers`, so the work survives an outage of Alertmanager and a
 * restart of central; the alert router runs `sync` for each Alertmanager at the start of its delivery to it (on
 * the alerting leader), so a silence is expired before the resolution it would mute is posted, and an
 * unreachable Alertmanager shares the router's backoff.
 *
 * An acknowledgement's silence also ends when its episode does (the agent cleared the alert or raised it again),
 * so that it does not mute the next episode. A silence created but not recorded (central died between the two)
 * is created again: Alertmanager then holds two identical silences until they end.
 */

export const SILENCE_ERROR: ErrorCode = 'FW_ERR_ALERTMANAGER_SILENCE';

/** Alertmanager did not answer, or answered 5xx/408/429: retry with the receiver's backoff. */
export class SilenceUnreachable extends Error {}

export interface SilenceTarget {
  /** The receiver's id in logs and `alert_silence_receivers` (the router's: `alertmanager:URL`, no password). */
  id: string;
  /** Alertmanager's base URL (may carry basic-auth credentials: never logged). */
  base: string;
  /** The URL without credentials, for logs. */
  where: string;
}

export interface SilenceStats {
  created: number;
  expired: number;
  /** Attempts that found Alertmanager unreachable. */
  failures: number;
  /** Silences Alertmanager refused (4xx): logged, not retried. */
  rejected: number;
  /** Per receiver: failing since the last answer. */
  failing: Record<string, boolean>;
}

interface WantedRow {
  alert_key: string;
  raised_ts: number;
  purpose: string;
  matchers: string;
  starts_ts: number;
  ends_ts: number;
  created_by: string;
  comment: string;
}

const RETRYABLE = (status: number) => status >= 500 || status === 408 || status === 429 || status < 400;
const BATCH = 100;

export class AlertmanagerSilences {
  readonly stats: SilenceStats = { created: 0, expired: 0, failures: 0, rejected: 0, failing: {} };

  constructor(
    private readonly sql: SqlClient,
    private readonly log: Logger,
    private readonly options: { timeoutMs?: number; now?: () => number } = {},
  ) {}

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /**
   * Creates and expires what this Alertmanager should; `beforeRequest` runs before each request (the router
   * confirms its lease there and throws when it lost it). Throws SilenceUnreachable when Alertmanager is down.
   */
  async sync(target: SilenceTarget, beforeRequest: () => Promise<void> = async () => undefined): Promise<void> {
    const now = this.now();
    await this.endAcknowledgementsOfPastEpisodes(now);
    for (;;) {
      const rows = await this.sql.all<WantedRow>(
        `SELECT s.alert_key, s.raised_ts, s.purpose, s.matchers, s.starts_ts, s.ends_ts, s.created_by, s.comment
           FROM alert_silences s LEFT JOIN alert_silence_receivers r
             ON r.alert_key = s.alert_key AND r.raised_ts = s.raised_ts AND r.purpose = s.purpose AND r.receiver = ?
          WHERE s.wanted = 'active' AND s.ends_ts > ? AND r.alert_key IS NULL ORDER BY s.changed_ts, s.alert_key LIMIT ?`,
        [target.id, now, BATCH],
      );
      for (const row of rows) {
        await beforeRequest();
        await this.create(target, row);
      }
      if (rows.length < BATCH) break;
    }
    for (;;) {
      const rows = await this.sql.all<{ alert_key: string; raised_ts: number; purpose: string; silence_id: string }>(
        `SELECT r.alert_key, r.raised_ts, r.purpose, r.silence_id FROM alert_silences s JOIN alert_silence_receivers r
             ON r.alert_key = s.alert_key AND r.raised_ts = s.raised_ts AND r.purpose = s.purpose AND r.receiver = ?
          WHERE s.wanted = 'expired' AND s.ends_ts > ? AND r.state = 'active' ORDER BY s.changed_ts, s.alert_key LIMIT ?`,
        [target.id, now, BATCH],
      );
      for (const row of rows) {
        await beforeRequest();
        await this.expire(target, row);
      }
      if (rows.length < BATCH) break;
    }
  }

  /** An acknowledgement silences one episode: when the agent cleared it or raised it again, the silence ends. */
  private async endAcknowledgementsOfPastEpisodes(now: number): Promise<void> {
    const over = await this.sql.all<{ alert_key: string; raised_ts: number }>(
      `SELECT s.alert_key, s.raised_ts FROM alert_silences s JOIN central_alerts a ON a.alert_key = s.alert_key
        WHERE s.wanted = 'active' AND s.ends_ts > ? AND s.purpose = 'acknowledge' AND (a.raised_ts <> s.raised_ts OR a.state = 'resolved')`,
      [now],
    );
    for (const o of over) {
      await this.sql.run(
        "UPDATE alert_silences SET wanted = 'expired', changed_ts = ? WHERE alert_key = ? AND raised_ts = ? AND purpose = 'acknowledge' AND wanted = 'active'",
        [now, o.alert_key, o.raised_ts],
      );
    }
  }

  private async create(target: SilenceTarget, row: WantedRow): Promise<void> {
    const body = {
      matchers: JSON.parse(row.matchers) as unknown,
      startsAt: new Date(Number(row.starts_ts)).toISOString(),
      endsAt: new Date(Number(row.ends_ts)).toISOString(),
      createdBy: row.created_by,
      comment: row.comment,
    };
    const res = await this.request(target, 'POST', '/api/v2/silences', body);
    const now = this.now();
    const key = [row.alert_key, row.raised_ts, row.purpose, target.id] as const;
    if (res.ok) {
      const id = String((JSON.parse(res.text) as { silenceID?: unknown }).silenceID ?? '');
      await this.sql.tx(async (q) => {
        await q.run(
          `INSERT INTO alert_silence_receivers (alert_key, raised_ts, purpose, receiver, silence_id, state, updated_ts, last_error)
           VALUES (?, ?, ?, ?, ?, 'active', ?, NULL) ON CONFLICT (alert_key, raised_ts, purpose, receiver) DO NOTHING`,
          [...key, id, now],
        );
        // The ids also go with the workflow row, for whoever reads it (amtool silence query -q id=…).
        const w = await q.get<{ silence_ids: string }>('SELECT silence_ids FROM alert_workflow WHERE alert_key = ? AND raised_ts = ?', [
          row.alert_key,
          row.raised_ts,
        ]);
        if (w) {
          const ids = parseIds(w.silence_ids);
          if (!ids.includes(id)) ids.push(id);
          await q.run('UPDATE alert_workflow SET silence_ids = ? WHERE alert_key = ? AND raised_ts = ?', [JSON.stringify(ids), row.alert_key, row.raised_ts]);
        }
      });
      this.stats.created++;
      return;
    }
    await this.sql.run(
      `INSERT INTO alert_silence_receivers (alert_key, raised_ts, purpose, receiver, silence_id, state, updated_ts, last_error)
       VALUES (?, ?, ?, ?, NULL, 'rejected', ?, ?) ON CONFLICT (alert_key, raised_ts, purpose, receiver) DO NOTHING`,
      [...key, now, res.reason],
    );
    this.rejected(target, row.alert_key, 'create', res.reason);
  }

  private async expire(target: SilenceTarget, row: { alert_key: string; raised_ts: number; purpose: string; silence_id: string }): Promise<void> {
    const res = await this.request(target, 'DELETE', `/api/v2/silence/${encodeURIComponent(row.silence_id)}`);
    // Gone (404) or already over (Alertmanager 0.25 answers 500 "already expired"): as good as expired.
    const over = res.ok || res.status === 404 || /already expired/i.test(res.text);
    if (!over && RETRYABLE(res.status)) this.unreachable(target, res.reason);
    await this.sql.run(
      'UPDATE alert_silence_receivers SET state = ?, updated_ts = ?, last_error = ? WHERE alert_key = ? AND raised_ts = ? AND purpose = ? AND receiver = ?',
      [over ? 'expired' : 'rejected', this.now(), over ? null : res.reason, row.alert_key, row.raised_ts, row.purpose, target.id],
    );
    if (over) this.stats.expired++;
    else this.rejected(target, row.alert_key, 'expire', res.reason);
  }

  /** One request; throws SilenceUnreachable unless Alertmanager answered something other than a retryable error. */
  private async request(
    target: SilenceTarget,
    method: 'POST' | 'DELETE',
    path: string,
    body?: unknown,
  ): Promise<{ ok: boolean; status: number; text: string; reason: string }> {
    const url = new URL(`${target.base.replace(/\/+$/, '')}${path}`);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    // fetch refuses credentials in a URL: send them as basic auth (Alertmanager behind a proxy).
    if (url.username || url.password) {
      headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
      url.username = '';
      url.password = '';
    }
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
        redirect: 'error',
      });
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      this.unreachable(target, cause ? describeError(cause) : describeError(err));
    }
    const text = await res.text().catch(() => '');
    const reason = `HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`;
    if (!res.ok && RETRYABLE(res.status) && !(method === 'DELETE' && /already expired/i.test(text))) this.unreachable(target, reason);
    if (this.stats.failing[target.id]) this.log.info({ receiver: target.id, at: target.where }, 'Alertmanager takes silences again');
    this.stats.failing[target.id] = false;
    return { ok: res.ok, status: res.status, text, reason };
  }

  private unreachable(target: SilenceTarget, reason: string): never {
    this.stats.failures++;
    // Once per outage: the first failure after an answer.
    if (!this.stats.failing[target.id]) {
      this.log.warn(
        { code: SILENCE_ERROR, receiver: target.id, at: target.where, err: reason },
        'Alertmanager unreachable for silences; the actions are kept and their silences retried with backoff',
      );
    }
    this.stats.failing[target.id] = true;
    throw new SilenceUnreachable(reason);
  }

  private rejected(target: SilenceTarget, alertKey: string, what: 'create' | 'expire', reason: string): void {
    this.stats.rejected++;
    this.log.warn(
      { code: SILENCE_ERROR, receiver: target.id, at: target.where, alertKey, err: reason },
      `Alertmanager refused to ${what} a silence; not retried`,
    );
  }
}

function parseIds(text: string): string[] {
  try {
    const v = JSON.parse(text) as unknown;
    return Array.isArray(v) ? v.map(String) : [];
  } catch {
    return [];
  }
}
