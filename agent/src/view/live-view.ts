import type { AgentView } from '../snapshot/agent-view.js';

/**
 * The compact live view shown on a terminal: what was collected, scored, buffered and sent.
 * `renderPanel` is pure (tests call it); `LiveView` keeps the panel at the bottom of the terminal with log
 * lines scrolling above it.
 */

export interface PanelInput {
  agentId: string;
  bootSeq: number;
  uptimeMs: number;
  broker: { url: string; state: string; sinceMs: number; sent: number; rejected: number; lastError: string | null };
  sources: Array<{ name: string; state: string; samples: number; errors: number }>;
  collected: number;
  scored: number;
  lastBatchMs: number | null;
  buffered: Array<{ stream: string; pending: number }>;
  risks: Array<{
    asset: string;
    model: string;
    score: number;
    interval?: { level: number; lower: number; upper: number };
    threshold?: number;
    atRisk: boolean;
    drivers: Array<{ feature: string; contribution: number }>;
  }>;
  alerts: Array<{ severity: string; title: string; asset: string; subject?: string }>;
}

const dur = (ms: number) => {
  const s = Math.floor(ms / 1000);
  return `${String(Math.floor(s / 3600)).padStart(2, '0')}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
};
const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(3)}`;

export function renderPanel(p: PanelInput, width = 100): string[] {
  const clip = (line: string) => (line.length > width ? `${line.slice(0, width - 1)}…` : line);
  const lines = [
    `── Forewarn ${p.agentId} · boot #${p.bootSeq} · up ${dur(p.uptimeMs)} `.padEnd(Math.min(width, 72), '─'),
    `broker    ${p.broker.state} ${p.broker.url} for ${dur(p.broker.sinceMs)}${p.broker.state !== 'online' && p.broker.lastError ? ` (${p.broker.lastError})` : ''}`,
    `collected ${p.collected} readings from ${p.sources
      .filter((s) => s.state !== 'unavailable')
      .map((s) => `${s.name} (${s.state === 'running' ? 'ok' : s.state}, ${s.samples} samples${s.errors ? `, ${s.errors} errors` : ''})`)
      .join(', ')}`,
    ...(p.sources.some((s) => s.state === 'unavailable')
      ? [
          `absent    ${p.sources
            .filter((s) => s.state === 'unavailable')
            .map((s) => s.name)
            .join(', ')} (no tool or device here)`,
        ]
      : []),
    `scored    ${p.scored} risk records${p.lastBatchMs !== null ? `, last batch scored in ${p.lastBatchMs.toFixed(2)} ms` : ''}`,
    `buffered  ${p.buffered.reduce((n, b) => n + b.pending, 0)} records (${p.buffered.map((b) => `${b.stream} ${b.pending}`).join(', ')})`,
    `sent      ${p.broker.sent} records this run${p.broker.rejected ? `, ${p.broker.rejected} publishes refused by the broker` : ''}`,
  ];
  for (const r of p.risks) {
    const drivers = r.drivers.map((d) => `${d.feature} ${signed(d.contribution)}`).join(', ');
    lines.push(
      `risk      ${r.asset} ${r.model} score ${r.score.toFixed(3)}${formatInterval(r.interval)}${r.threshold !== undefined ? ` (threshold ${r.threshold.toFixed(3)})` : ''} ${r.atRisk ? 'AT RISK' : 'ok'}${drivers ? `  drivers: ${drivers}` : ''}`,
    );
  }
  if (p.alerts.length) {
    const bySeverity = (sev: string) => p.alerts.filter((a) => a.severity === sev).length;
    lines.push(`alerts    ${p.alerts.length} active: ${bySeverity('critical')} critical, ${bySeverity('warning')} warning, ${bySeverity('info')} info`);
    for (const a of [...p.alerts].sort((x, y) => rank(x.severity) - rank(y.severity)).slice(0, 3)) {
      lines.push(`  ${a.severity.padEnd(8)} ${a.asset}${a.subject ? `/${a.subject}` : ''}  ${a.title}`);
    }
  }
  return lines.map(clip);
}

const rank = (severity: string) => ['critical', 'warning', 'info'].indexOf(severity);

export function panelInput(agent: AgentView): PanelInput {
  const sync = agent.sync.stats;
  return {
    agentId: agent.config.agent.id,
    bootSeq: agent.stats.bootSeq,
    uptimeMs: Date.now() - agent.stats.startedAt,
    broker: {
      url: agent.config.broker.url,
      state: sync.state,
      sinceMs: Date.now() - sync.since,
      sent: sync.sent,
      rejected: sync.rejected,
      lastError: sync.lastError,
    },
    sources: agent.sources.map((s) => s.stats),
    collected: agent.stats.collected,
    scored: agent.stats.scoredRecords,
    lastBatchMs: agent.scorer?.stats.lastBatchMs ?? null,
    buffered: agent.store.counts(),
    risks: [...agent.stats.lastRisk.values()],
    alerts: agent.health.activeAlerts(),
  };
}

export class LiveView {
  private drawn = 0;
  private timer: NodeJS.Timeout | null = null;
  private agent: AgentView | null = null;

  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {}

  /** Log text goes above the panel. */
  print = (text: string): void => {
    this.clear();
    this.out.write(text.endsWith('\n') ? text : `${text}\n`);
    this.draw();
  };

  attach(agent: AgentView, refreshMs = 1000): void {
    this.agent = agent;
    this.draw();
    this.timer = setInterval(() => {
      this.clear();
      this.draw();
    }, refreshMs);
    this.timer.unref();
  }

  private clear(): void {
    if (this.drawn) this.out.write(`\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }

  private draw(): void {
    if (!this.agent) return;
    let lines: string[];
    try {
      lines = renderPanel(panelInput(this.agent), this.out.columns || 100);
    } catch {
      return; // the database may already be closed during shutdown
    }
    this.out.write(`${lines.join('\n')}\n`);
    this.drawn = lines.length;
  }

  detach(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.agent = null;
    this.clear();
  }
}

/** A RUL record's calibrated interval, e.g. ` [90%: 12.3–40.1]`; nothing for a record without one. */
export function formatInterval(interval: unknown): string {
  if (typeof interval !== 'object' || interval === null) return '';
  const { level, lower, upper } = interval as { level?: unknown; lower?: unknown; upper?: unknown };
  if (typeof level !== 'number' || typeof lower !== 'number' || typeof upper !== 'number') return '';
  return ` [${Math.round(level * 100)}%: ${lower.toFixed(1)}–${upper.toFixed(1)}]`;
}
