import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { RecordStore, type StreamCounts } from '../store/record-store.js';
import { BROKER_STATE_META_KEY } from '../pipeline/status-keeper.js';
import type { StorageUsage } from '../store/outbox.js';
import { DRAIN_META_KEY, type DrainState } from '../sync/drain-progress.js';
import { MODEL_HEALTH_META_KEY, type ModelHealth } from '../scoring/drift-monitor.js';
import { ANOMALY_STATUS_META_KEY, type AnomalyAssetStatus } from '../scoring/anomaly/anomaly-scorer.js';
import { formatInterval } from '../view/live-view.js';

/** Drain progress older than this means the agent is not draining now (stopped, or the backlog is gone). */
const DRAIN_FRESH_MS = 60_000;

export interface StatusReport {
  db: string;
  /** Whether an agent holds this storage directory now (its pid file names a live process). */
  agent: { running: boolean; pid: number | null };
  /** Records in the outbox: not yet taken by the broker, and taken but waiting for the centre's confirmation. */
  backlog: { buffered: number; unsent: number; awaitingCentre: number };
  /**
   * The broker: whether a TCP connection to it opens from here (null when not probed), and the running agent's
   * own connection state as it last saved it (null when no agent runs).
   */
  broker: { url: string | null; reachable: boolean | null; error?: string; agent: { state: string; since: number; lastError: string | null } | null };
  bootSeq: number;
  storage: StorageUsage;
  /** The backlog being drained, as the running agent last measured it; null when there is none. */
  drain: DrainState | null;
  streams: StreamCounts[];
  /** Per model and asset, whether its inputs still look like its training data. */
  modelHealth: ModelHealth[];
  /** Per asset, the anomaly detector's state as last saved (warming n/N, or scoring with its threshold). */
  anomaly: AnomalyAssetStatus[];
  latestRisk: Array<Record<string, unknown> & { seq: number }>;
  activeAlerts: Array<{ alertId: string; severity: string; title: string; asset: string; raisedTs: number }>;
}

/** The agent holding `dir`, if any: the storage lock's pid file names a process that is alive. */
export function agentRunning(dir: string): StatusReport['agent'] {
  let pid: number;
  try {
    pid = Number(readFileSync(path.join(dir, 'agent.pid'), 'utf8').trim());
  } catch {
    return { running: false, pid: null };
  }
  if (!Number.isInteger(pid) || pid <= 0) return { running: false, pid: null };
  try {
    process.kill(pid, 0);
    return { running: true, pid };
  } catch (err) {
    // EPERM: alive, but another user's (the service user). ESRCH: gone (killed; the pid file stayed behind).
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? { running: true, pid } : { running: false, pid: null };
  }
}

const DEFAULT_PORTS: Record<string, number> = { 'mqtt:': 1883, 'tcp:': 1883, 'mqtts:': 8883, 'ssl:': 8883, 'tls:': 8883, 'ws:': 80, 'wss:': 443 };

/** Whether a TCP connection to the broker's host and port opens within `timeoutMs`: cheap, no MQTT session. */
export function probeBroker(url: string, timeoutMs = 2000): Promise<{ reachable: boolean; error?: string }> {
  let host: string;
  let port: number;
  try {
    const u = new URL(url);
    host = u.hostname.replace(/^\[|\]$/g, '');
    port = Number(u.port || DEFAULT_PORTS[u.protocol]);
    if (!host || !port) return Promise.resolve({ reachable: false, error: `${url}: no host or port` });
  } catch {
    return Promise.resolve({ reachable: false, error: `${url}: not a URL` });
  }
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (r: { reachable: boolean; error?: string }) => {
      socket.destroy();
      resolve(r);
    };
    socket.setTimeout(timeoutMs, () => done({ reachable: false, error: `no answer from ${host}:${port} within ${timeoutMs} ms` }));
    socket.once('connect', () => done({ reachable: true }));
    socket.once('error', (err) => done({ reachable: false, error: err.message }));
  });
}

/** Reads the local database (read-only, safe while the agent runs) for `forewarn status`; the broker is probed by the command. */
export function readStatus(dir: string): StatusReport {
  const store = new RecordStore({ dir, readonly: true });
  try {
    const drain = JSON.parse(store.getMeta(DRAIN_META_KEY) ?? 'null') as DrainState | null;
    const streams = store.counts();
    const pending = streams.reduce((n, c) => n + c.pending, 0);
    const unsent = store.unpublishedTotal();
    const agent = agentRunning(dir);
    const brokerState = JSON.parse(store.getMeta(BROKER_STATE_META_KEY) ?? 'null') as NonNullable<StatusReport['broker']['agent']> | null;
    return {
      db: store.file,
      agent,
      backlog: { buffered: pending, unsent, awaitingCentre: Math.max(0, pending - unsent) },
      broker: { url: null, reachable: null, agent: agent.running ? brokerState : null },
      bootSeq: Number(store.getMeta('boot_seq') ?? 0),
      storage: store.usage(),
      drain: drain && agent.running && pending > 0 && Date.now() - drain.ts < DRAIN_FRESH_MS ? drain : null,
      streams,
      modelHealth: JSON.parse(store.getMeta(MODEL_HEALTH_META_KEY) ?? '[]') as ModelHealth[],
      anomaly: JSON.parse(store.getMeta(ANOMALY_STATUS_META_KEY) ?? '[]') as AnomalyAssetStatus[],
      latestRisk: store.latestRisk().map((r) => ({ seq: r.seq, ...r.payload })),
      activeAlerts: store.activeAlerts().map(({ state }) => {
        const r = (state as { record: StatusReport['activeAlerts'][number] }).record;
        return { alertId: r.alertId, severity: r.severity, title: r.title, asset: r.asset, raisedTs: r.raisedTs };
      }),
    };
  } finally {
    store.close();
  }
}

const time = (ts: number | null) =>
  ts === null
    ? '-'
    : new Date(ts)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z');

const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;

/** The outbox, always: what waits for the broker, what waits for the centre, and the drain when one is measured. */
function formatBacklog(s: StatusReport): string {
  const { buffered, unsent, awaitingCentre } = s.backlog;
  const d = s.drain;
  if (!buffered) return 'backlog   none (nothing buffered)';
  const what = `backlog   ${buffered} records buffered: ${unsent} not yet sent, ${awaitingCentre} sent and awaiting the centre's confirmation`;
  if (d) {
    const eta =
      d.etaSeconds === null
        ? 'not moving (broker unreachable?)'
        : `about ${d.etaSeconds < 120 ? `${d.etaSeconds} s` : `${Math.round(d.etaSeconds / 60)} min`} to go`;
    return `${what}\n          draining: ${d.left} records left, ${d.ratePerSec} records/s (${mib(d.bytesPerSec)}/s), ${eta}  [at ${time(d.ts)}]`;
  }
  return s.agent.running ? what : `${what}\n          (sent when the agent runs again)`;
}

function formatAgent(s: StatusReport): string[] {
  const agent = s.agent.running ? `running (pid ${s.agent.pid})` : 'not running';
  const b = s.broker;
  const probe = b.url === null ? '' : b.reachable ? `${b.url} reachable from here` : `${b.url} NOT reachable from here${b.error ? ` (${b.error})` : ''}`;
  const seen = b.agent
    ? `${probe ? '; ' : ''}the agent is ${b.agent.state} since ${time(b.agent.since)}${b.agent.lastError && b.agent.state !== 'online' ? ` (${b.agent.lastError})` : ''}`
    : '';
  return [`agent     ${agent}`, `broker    ${probe + seen || 'not checked'}`];
}

export function formatStatus(s: StatusReport): string {
  const lines = [
    ...formatAgent(s),
    `database  ${s.db}`,
    `storage   ${mib(s.storage.usedBytes)} used, file ${mib(s.storage.fileBytes)} + WAL ${mib(s.storage.walBytes)}, ${mib(s.storage.freeBytes)} free on disk`,
    `boots     ${s.bootSeq}`,
    formatBacklog(s),
    '',
    'stream      buffered   sent total   dropped   last seq   oldest buffered        last sent',
  ];
  for (const c of s.streams) {
    lines.push(
      `${c.stream.padEnd(10)} ${String(c.pending).padStart(9)} ${String(c.sentTotal).padStart(12)} ${String(c.droppedTotal).padStart(9)} ${String(c.lastSeq).padStart(10)}   ${time(c.oldestPendingTs).padEnd(21)}  ${time(c.lastSentTs)}`,
    );
  }
  lines.push('', 'latest risk');
  if (!s.latestRisk.length) lines.push('  (none yet)');
  for (const r of s.latestRisk) {
    const drivers = Array.isArray(r.drivers)
      ? (r.drivers as Array<{ feature: string; contribution: number }>)
          .map((d) => `${d.feature} ${d.contribution >= 0 ? '+' : ''}${d.contribution.toFixed(3)}`)
          .join(', ')
      : '';
    lines.push(
      `  ${String(r.asset)}  ${String(r.model)}@${String(r.modelVersion)}  ${Number(r.score).toFixed(4)}${formatInterval(r.interval)}${r.threshold !== undefined ? ` (threshold ${Number(r.threshold).toFixed(4)})` : ''}  ${r.atRisk ? 'AT RISK' : 'ok'}  at ${time(Number(r.ts))}${drivers ? `\n      drivers: ${drivers}` : ''}`,
    );
  }
  lines.push('', 'model health (inputs against the training data: PSI beyond chance, share outside the training range; docs/drift.md)');
  if (!s.modelHealth.length) lines.push('  (not watched yet)');
  for (const h of s.modelHealth) {
    // The figures the state is judged on; a slow input's raw PSI is large whatever happens, so it is shown as such.
    const top = h.top
      .map((t) => `${t.feature} ${t.narrow ? `slow, raw PSI ${t.psi.toFixed(3)}` : `PSI ${t.psi.toFixed(3)}`}, outside ${pct(t.outside)}`)
      .join('; ');
    const figures = h.driftPsi === undefined ? `max raw PSI ${h.psiMax.toFixed(3)}` : `drift PSI ${h.driftPsi.toFixed(3)}, outside ${pct(h.outsideMax ?? 0)}`;
    lines.push(`  ${h.asset}  ${h.model}@${h.version}  ${h.state.toUpperCase()}  ${figures} over ${h.samples} rows${top ? `  (${top})` : ''}`);
  }
  lines.push('', 'anomaly detection (learned baseline per asset)');
  if (!s.anomaly.length) lines.push('  (nothing learned yet)');
  for (const a of s.anomaly) {
    const what =
      a.state === 'warming'
        ? `WARMING  ${a.samples}/${a.warmupSamples} readings, not scored yet`
        : a.state === 'idle'
          ? 'IDLE  no varying signal to model'
          : `SCORING  threshold ${a.threshold?.toFixed(3) ?? '-'}, last score ${a.lastScore?.toFixed(3) ?? '-'}, ${a.anomalies} anomalies this run`;
    lines.push(`  ${a.asset}  ${what}  (${a.scoredSignals}/${a.signals} signals, ${(a.bytes / 1024).toFixed(1)} KiB)  [at ${time(a.ts)}]`);
  }
  lines.push('', 'active alerts');
  if (!s.activeAlerts.length) lines.push('  (none)');
  for (const a of s.activeAlerts) lines.push(`  ${a.severity.padEnd(8)} ${a.alertId}  ${a.title}  since ${time(a.raisedTs)}`);
  return lines.join('\n');
}

/** A share as a percentage with one decimal. */
function pct(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}
