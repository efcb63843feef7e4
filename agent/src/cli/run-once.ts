/**
 * `forewarn run --once` (Telegraf's `--once`/`--test` habit): one round from every enabled source, scored by the
 * configured models, printed, and nothing else. No database is opened (no storage lock, no outbox, no file under
 * storage.dir), no broker connection, no /metrics port: a way to see the values before running the daemon.
 */
import type { AgentConfig } from '../config/load-config.js';
import { createLogger } from '../core/logger.js';
import { describeError } from '../core/errors.js';
import type { Reading, RiskRecord } from '../core/types.js';
import type { NewRecord } from '../store/outbox.js';
import { SOURCE_PLUGINS } from '../sources/registry.js';
import type { Source, SourceContext } from '../sources/plugin.js';
import { ModelRegistry } from '../model-lifecycle/model-registry.js';
import { RiskScorer } from '../scoring/risk-scorer.js';
import { DataQuality } from '../health/data-quality.js';
import { QualityStage } from '../health/quality-stage.js';

/** How long the round may take: a source that has not answered by then is reported as such. */
export const ONCE_TIMEOUT_MS = 20_000;

export type OnceLine =
  | { type: 'reading'; ts: number; source: string; asset: string; metrics: Record<string, number>; quality?: Record<string, string> }
  | ({ type: 'risk' } & RiskRecord)
  | { type: 'source'; name: string; state: string; samples: number; error: string | null };

export interface OnceOptions {
  out?: NodeJS.WritableStream & { isTTY?: boolean };
  timeoutMs?: number;
}

export async function runOnce(config: Readonly<AgentConfig>, options: OnceOptions = {}): Promise<number> {
  const out = options.out ?? process.stdout;
  // stdout is the result; what the sources and models log goes to stderr, warnings and up unless asked for more.
  const level = ['debug', 'trace'].includes(config.agent.logLevel) ? config.agent.logLevel : 'warn';
  const log = createLogger({ level, pretty: false, fd: 2 });
  const lines: OnceLine[] = [];
  const scorer = config.scoring.enabled
    ? new RiskScorer(
        { ...config.scoring, modelDirs: (name) => ModelRegistry.forConfig(config).modelDirs(name) },
        (records: RiskRecord[]) => lines.push(...records.map((r) => ({ type: 'risk' as const, ...r }))),
        log.child({ component: 'scoring' }),
      )
    : null;
  const quality = new QualityStage(new DataQuality(config.quality), {
    telemetry: {
      consumeRecords: (records: readonly NewRecord[]) => {
        for (const r of records) lines.push({ type: 'reading', ...(r.payload as Omit<Extract<OnceLine, { type: 'reading' }>, 'type'>) });
      },
    },
    readings: scorer ? [scorer] : [],
    issues: { consumeQuality: () => undefined },
  });
  const context: SourceContext = {
    sink: (r: Reading) => quality.consumeReading(r),
    events: () => undefined,
    log: log.child({ component: 'source' }),
    agentId: config.agent.id,
  };
  const sources: Source[] = SOURCE_PLUGINS.flatMap((plugin) => plugin.create(config.sources[plugin.key], context));
  if (scorer) await scorer.start();
  for (const s of sources) {
    try {
      await s.start();
    } catch (err) {
      s.stats.lastError = describeError(err);
    }
  }
  // One round: every source has sampled once, or knows it cannot (its tool or device is absent), or time is up.
  const deadline = Date.now() + (options.timeoutMs ?? ONCE_TIMEOUT_MS);
  const done = (s: Source) => s.stats.samples > 0 || s.stats.state === 'unavailable' || s.stats.state === 'failing';
  while (Date.now() < deadline && !sources.every(done)) await new Promise((r) => setTimeout(r, 50));
  // As the round left them: `running` with no sample means it did not answer in time.
  const states = sources.map(({ stats }) => ({
    name: stats.name,
    state: stats.samples > 0 ? 'ok' : stats.state === 'running' ? 'no-answer' : stats.state,
    samples: stats.samples,
    error: stats.lastError,
  }));
  await Promise.all(sources.map((s) => s.stop().catch(() => undefined)));
  if (scorer) {
    await scorer.flush();
    await scorer.stop();
  }
  for (const s of states) lines.push({ type: 'source', ...s });
  out.write(out.isTTY ? formatOnceTable(lines) : lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  return 0;
}

const num = (x: number) => (Number.isInteger(x) ? String(x) : Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(4));

/** The same lines, readable: readings per asset, then risk with its drivers, then what each source did. */
export function formatOnceTable(lines: readonly OnceLine[]): string {
  const out: string[] = [];
  const readings = lines.filter((l): l is Extract<OnceLine, { type: 'reading' }> => l.type === 'reading');
  const risks = lines.filter((l): l is Extract<OnceLine, { type: 'risk' }> => l.type === 'risk');
  const sources = lines.filter((l): l is Extract<OnceLine, { type: 'source' }> => l.type === 'source');
  out.push('readings');
  if (!readings.length) out.push('  (none)');
  for (const r of readings) {
    out.push(`  ${r.asset}  (${r.source})`);
    const names = Object.keys(r.metrics).sort();
    const width = Math.max(...names.map((n) => n.length));
    for (const n of names) out.push(`    ${n.padEnd(width)}  ${num(r.metrics[n]!)}${r.quality?.[n] ? `  [${r.quality[n]}]` : ''}`);
  }
  out.push('', 'risk');
  if (!risks.length) out.push('  (no model scored this round)');
  for (const r of risks) {
    out.push(
      `  ${r.asset}  ${r.model}@${r.modelVersion}  ${r.kind} ${num(r.score)}${r.threshold !== undefined ? ` (threshold ${num(r.threshold)})` : ''}  ${r.atRisk ? 'AT RISK' : 'ok'}`,
    );
    for (const d of r.drivers)
      out.push(`    driver ${d.feature} = ${num(d.value)}  contribution ${d.contribution >= 0 ? '+' : ''}${d.contribution.toFixed(3)}`);
  }
  out.push('', 'sources');
  for (const s of sources) out.push(`  ${s.name.padEnd(16)} ${s.state.padEnd(12)} ${s.samples} sample(s)${s.error ? `  ${s.error}` : ''}`);
  return `${out.join('\n')}\n`;
}
