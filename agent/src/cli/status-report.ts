import { RecordStore, type StreamCounts } from '../store/record-store.js';
import type { StorageUsage } from '../store/outbox.js';
import { DRAIN_META_KEY, type DrainState } from '../sync/drain-progress.js';

/** Drain progress older than this means the agent is not draining now (stopped, or the backlog is gone). */
const DRAIN_FRESH_MS = 60_000;

export interface StatusReport {
  db: string;
  bootSeq: number;
  storage: StorageUsage;
  /** The backlog being drained, as the running agent last measured it; null when there is none. */
  drain: DrainState | null;
  streams: StreamCounts[];
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
      latestRisk: store.latest('risk').map((r) => ({ seq: r.seq, ...r.payload })),
      activeAlerts: store.activeAlerts().map(({ state }) => {
        const r = (state as { record: StatusReport['activeAlerts'][number] }).record;
        return { alertId: r.alertId, severity: r.severity, title: r.title, asset: r.asset, raisedTs: r.raisedTs };
      }),
    };
  } finally {
    store.close();
  }
}

const time = (ts: number | null) => (ts === null ? '-' : new Date(ts).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'));

const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;

function formatDrain(d: DrainState | null): string {
  if (!d) return 'backlog   none';
  const eta = d.etaSeconds === null ? 'not moving (broker unreachable?)' : `about ${d.etaSeconds < 120 ? `${d.etaSeconds} s` : `${Math.round(d.etaSeconds / 60)} min`} to go`;
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
      ? (r.drivers as Array<{ feature: string; contribution: number }>).map((d) => `${d.feature} ${d.contribution >= 0 ? '+' : ''}${d.contribution.toFixed(3)}`).join(', ')
      : '';
    lines.push(
      `  ${String(r.asset)}  ${String(r.model)}@${String(r.modelVersion)}  ${Number(r.score).toFixed(4)}${r.threshold !== undefined ? ` (threshold ${Number(r.threshold).toFixed(4)})` : ''}  ${r.atRisk ? 'AT RISK' : 'ok'}  at ${time(Number(r.ts))}${drivers ? `\n      drivers: ${drivers}` : ''}`,
    );
  }
  lines.push('', 'active alerts');
  if (!s.activeAlerts.length) lines.push('  (none)');
  for (const a of s.activeAlerts) lines.push(`  ${a.severity.padEnd(8)} ${a.alertId}  ${a.title}  since ${time(a.raisedTs)}`);
  return lines.join('\n');
}
