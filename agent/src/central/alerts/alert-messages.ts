import type { CentralAlertRow } from './alert-book.js';

/**
 * What receivers get for an alert: the Alertmanager v2 alert object, and the generic webhook message (JSON with a
 * Slack-compatible `text`). Pure functions of the row, so a resend is identical to the first send.
 */

/** The console page of the alert's asset, or of its agent for an agent-wide alert; undefined without a console. */
export function consoleLink(consoleUrl: string | undefined, row: Pick<CentralAlertRow, 'agent_id' | 'asset'>): string | undefined {
  if (!consoleUrl) return undefined;
  const base = consoleUrl.replace(/\/+$/, '');
  // Fleet-wide alerts (no agent) are the SLO burn-rate alerts: their page is the SLO page.
  if (!row.agent_id) return `${base}/slo`;
  const agent = encodeURIComponent(row.agent_id);
  return row.asset ? `${base}/assets/${agent}/${encodeURIComponent(row.asset)}` : `${base}/agents/${agent}`;
}

function evidenceText(row: CentralAlertRow): string {
  try {
    const ev = JSON.parse(row.evidence) as Record<string, unknown>;
    return Object.entries(ev)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(', ');
  } catch {
    return row.evidence;
  }
}

export interface AlertmanagerAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt?: string;
  generatorURL?: string;
}

/**
 * Alertmanager identifies an alert by its label set: agent, asset and rule (and the subject an agent's rule
 * names, e.g. one GPU of several) make it unique. A firing alert's endsAt lies `activeForMs` ahead, as
 * Prometheus sets it (4 resend intervals): should central die, Alertmanager resolves it on its own.
 */
export function alertmanagerAlert(row: CentralAlertRow, now: number, activeForMs: number, consoleUrl?: string): AlertmanagerAlert {
  // A fleet-wide alert (an SLO's burn rate) has no agent: its subject (the objective) identifies it. The labels keep
  // their order (silences copy them as matchers).
  const labels: Record<string, string> = { alertname: row.rule };
  if (row.agent_id) labels.agent = row.agent_id;
  labels.rule = row.rule;
  labels.severity = row.severity;
  if (row.asset) labels.asset = row.asset;
  if ((row.origin === 'agent' || !row.agent_id) && row.subject) labels.subject = row.subject;
  const annotations: Record<string, string> = { summary: row.title, evidence: evidenceText(row) };
  if (row.remedy) annotations.remedy = row.remedy;
  const resolved = row.state === 'resolved';
  // Alertmanager rejects endsAt before startsAt: an agent whose clock ran backwards must not block the batch.
  const end = resolved ? Math.max(row.resolved_ts ?? now, row.raised_ts) : now + activeForMs;
  const link = consoleLink(consoleUrl, row);
  return {
    labels,
    annotations,
    startsAt: new Date(row.raised_ts).toISOString(),
    endsAt: new Date(end).toISOString(),
    ...(link ? { generatorURL: link } : {}),
  };
}

export interface WebhookMessage {
  /** Stable per alert episode and status: a receiver may deduplicate on it. */
  id: string;
  status: 'firing' | 'resolved';
  alert: {
    key: string;
    origin: string;
    agent: string;
    asset: string | null;
    subject: string | null;
    rule: string;
    severity: string;
    title: string;
    raisedAt: string;
    resolvedAt: string | null;
    value: number | null;
    evidence: unknown;
    remedy: string;
    url: string | null;
  };
  /** One line for chat: Slack's incoming webhooks show `text`. */
  text: string;
}

export function webhookMessage(row: CentralAlertRow, consoleUrl?: string): WebhookMessage {
  const status = row.state === 'resolved' ? 'resolved' : 'firing';
  const link = consoleLink(consoleUrl, row) ?? null;
  let evidence: unknown;
  try {
    evidence = JSON.parse(row.evidence);
  } catch {
    evidence = row.evidence;
  }
  const where = row.asset ? `${row.agent_id}/${row.asset}` : row.agent_id;
  const parts = [`[${status.toUpperCase()}] ${row.severity}: ${row.title} (${where}, rule ${row.rule})`];
  const ev = evidenceText(row);
  if (ev) parts.push(ev);
  if (status === 'firing' && row.remedy) parts.push(`Remedy: ${row.remedy}`);
  if (link) parts.push(`<${link}|Open in the console>`);
  return {
    id: `${row.alert_key}@${row.raised_ts}:${status}`,
    status,
    alert: {
      key: row.alert_key,
      origin: row.origin,
      agent: row.agent_id,
      asset: row.asset,
      subject: row.subject,
      rule: row.rule,
      severity: row.severity,
      title: row.title,
      raisedAt: new Date(row.raised_ts).toISOString(),
      resolvedAt: row.resolved_ts === null ? null : new Date(row.resolved_ts).toISOString(),
      value: row.value,
      evidence,
      remedy: row.remedy,
      url: link,
    },
    text: parts.join('\n'),
  };
}
