import { RecordStore, type StreamCounts } from '../store/record-store.js';

export interface StatusReport {
  db: string;
  bootSeq: number;
  streams: StreamCounts[];
  latestRisk: Array<Record<string, unknown> & { seq: number }>;
  activeAlerts: Array<{ alertId: string; severity: string; title: string; asset: string; raisedTs: number }>;
}

/** Reads the local database (read-only, safe while the agent runs) for `forewarn status`. */
export function readStatus(dir: string): StatusReport {
  const store = new RecordStore({ dir, readonly: true });
  try {
    return {
      db: store.file,
      bootSeq: Number(store.getMeta('boot_seq') ?? 0),
      streams: store.counts(),
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

export function formatStatus(s: StatusReport): string {
  const lines = [`database  ${s.db}`, `boots     ${s.bootSeq}`, '', 'stream      buffered   sent total   last seq   oldest buffered        last sent'];
  for (const c of s.streams) {
    lines.push(
      `${c.stream.padEnd(10)} ${String(c.pending).padStart(9)} ${String(c.sentTotal).padStart(12)} ${String(c.lastSeq).padStart(10)}   ${time(c.oldestPendingTs).padEnd(21)}  ${time(c.lastSentTs)}`,
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
