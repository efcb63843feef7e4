import { RecordStore, type StreamCounts } from '../store/record-store.js';
import type { StorageUsage } from '../store/outbox.js';
import { DRAIN_META_KEY, type DrainState } from '../sync/drain-progress.js';
import { MODEL_HEALTH_META_KEY, type ModelHealth } from '../scoring/drift-monitor.js';
import { ANOMALY_STATUS_META_KEY, type AnomalyAssetStatus } from '../scoring/anomaly/anomaly-scorer.js';

/** Drain progress older than this means the agent is not draining now (stopped, or the backlog is gone). */
const DRAIN_FRESH_MS = 60_000;

export interface StatusReport {
  db: string;
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

/** Reads the local database (read-only, safe while the agent runs) for `forewarn status`. */
export function readStatus(dir: string): StatusReport {
  const store = new RecordStore({ dir, readonly: true });
  try {
    const drain = JSON.parse(store.getMeta(DRAIN_META_KEY) ?? 'null') as DrainState | null;
    const streams = store.counts();
    const pending = streams.reduce((n, c) => n + c.pending, 0);
    return {
      db: store.file,
      bootSeq: Number(store.getMeta('boot_seq') ?? 0),
      storage: store.usage(),
      drain: drain && pending > 0 && Date.now() - drain.ts < DRAIN_FRESH_MS ? drain : null,
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

function formatDrain(d: DrainState | null): string {
  if (!d) return 'backlog   none';
  const eta =
    d.etaSeconds === null
      ? 'not moving (broker unreachable?)'
      : `about ${d.etaSeconds < 120 ? `${d.etaSeconds} s` : `${Math.round(d.etaSeconds / 60)} min`} to go`;
  return `backlog   ${d.left} records left, ${d.ratePerSec} records/s (${mib(d.bytesPerSec)}/s), ${eta}  [at ${time(d.ts)}]`;
}

export function formatStatus(s: StatusReport): string {
  const lines = [
    `database  ${s.db}`,
    `storage   ${mib(s.storage.usedBytes)} used, file ${mib(s.storage.fileBytes)} + WAL ${mib(s.storage.walBytes)}, ${mib(s.storage.freeBytes)} free on disk`,
    `boots     ${s.bootSeq}`,
    formatDrain(s.drain),
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
      `  ${String(r.asset)}  ${String(r.model)}@${String(r.modelVersion)}  ${Number(r.score).toFixed(4)}${r.threshold !== undefined ? ` (threshold ${Number(r.threshold).toFixed(4)})` : ''}  ${r.atRisk ? 'AT RISK' : 'ok'}  at ${time(Number(r.ts))}${drivers ? `\n      drivers: ${drivers}` : ''}`,
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
