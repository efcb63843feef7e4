/**
 * The quality stage of the pipeline: every reading a source produces passes through here first. Telemetry keeps
 * every value as read, with the failed ones flagged, and goes to the record consumer (the store writer); the
 * clean reading goes to the reading consumers (scoring, anomaly detection, health rules), which are told to
 * forget a signal whose values fail; the issues raise and clear `data-quality` alerts. The stage names none of
 * its consumers: the agent wires them (ARCHITECTURE.md, the pipeline).
 */
import type { Reading, ReadingConsumer } from '../core/types.js';
import type { RecordConsumer } from '../store/record-consumer.js';
import type { DataQuality, QualityIssue, QualityIssueConsumer } from './data-quality.js';

export interface QualityConsumers {
  /** Where telemetry records go. */
  telemetry: RecordConsumer;
  /** Where clean readings go, in order. */
  readings: readonly ReadingConsumer[];
  /** Where quality issues go. */
  issues: QualityIssueConsumer;
}

/**
 * Values as stored and published: integers (counters, bytes) exactly; other numbers to six significant digits,
 * more than any sensor or /proc figure here carries (a percentage computed as 2.3677580557785087 is 2.36776), but
 * never coarser than three decimals, so a large fractional counter (12345.678901 kWh) still moves by its small
 * steps. Scoring sees the values as read.
 */
export function publishedMetrics(metrics: Reading['metrics']): Reading['metrics'] {
  const out: Reading['metrics'] = {};
  for (const k in metrics) out[k] = roundForWire(metrics[k]!);
  return out;
}

const POW10 = Array.from({ length: 16 }, (_, i) => 10 ** i);

/**
 * `Number(v.toFixed(decimals))`, exactly, at a fraction of its cost (a hot path: every value of every reading).
 * Both are the double nearest to k / 10^decimals; they can differ only in k, toFixed's rounding of the exact
 * v × 10^decimals, when the product rounded to a double lands within its rounding error of a half. Such values
 * (and products beyond 2^52, none here) take toFixed.
 */
export function roundForWire(v: number): number {
  if (typeof v !== 'number' || Number.isInteger(v) || !Number.isFinite(v)) return v;
  const decimals = Math.max(3, 5 - Math.floor(Math.log10(Math.abs(v))));
  if (decimals > 15) return v;
  const p = POW10[decimals]!;
  const y = v * p;
  const ay = Math.abs(y);
  if (ay < 2 ** 52 && Math.abs(y - Math.floor(y) - 0.5) > ay * 2 ** -50 + 2 ** -40) return Math.round(y) / p;
  return Number(v.toFixed(decimals));
}

export class QualityStage implements ReadingConsumer {
  constructor(
    readonly quality: DataQuality,
    private readonly to: QualityConsumers,
  ) {}

  consumeReading(r: Reading): void {
    const { clean, flags, issues } = this.quality.check(r);
    const flagged = Object.keys(flags).length > 0;
    // Telemetry keeps every value as read, with the failed ones flagged; scoring and rules see only good ones.
    this.to.telemetry.consumeRecords([
      {
        stream: 'telemetry',
        ts: r.ts,
        asset: r.asset,
        payload: { ts: r.ts, source: r.source, asset: r.asset, metrics: publishedMetrics(r.metrics), ...(flagged ? { quality: flags } : {}) },
      },
    ]);
    if (flagged) {
      for (const signal of Object.keys(flags)) this.forget(r.asset, signal);
    }
    this.issues(issues);
    for (const c of this.to.readings) c.consumeReading(clean);
  }

  /** Signals that stopped arriving: run by the agent's status timer. */
  checkStale(now?: number): void {
    this.issues(this.quality.checkStale(now));
  }

  private issues(issues: readonly QualityIssue[]): void {
    if (!issues.length) return;
    for (const q of issues) if (q.failing) this.forget(q.asset, q.signal);
    this.to.issues.consumeQuality(issues);
  }

  private forget(asset: string, signal: string): void {
    for (const c of this.to.readings) c.forgetSignal?.(asset, signal);
  }
}
