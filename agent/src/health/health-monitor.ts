import type { ModelHealth } from '../scoring/drift-monitor.js';
import type { Logger } from '../core/logger.js';
import { describeError } from '../core/errors.js';
import type { Component, EventConsumer, HealthEvent, Reading, ReadingConsumer, RiskConsumer, RiskRecord } from '../core/types.js';
import type { RecordStore } from '../store/record-store.js';
import { HEALTH_RULES, compare, type HealthRule, type Severity } from './health-rules.js';
import type { QualityIssue, QualityIssueConsumer } from './data-quality.js';

/** An alert as published on `forewarn/v1/{agentId}/alerts`. */
export interface AlertRecord {
  ts: number;
  /** Stable per (rule, asset, subject): subscribers pair `raised` with `cleared` on it. */
  alertId: string;
  rule: string;
  asset: string;
  subject?: string;
  state: 'raised' | 'cleared';
  severity: Severity;
  title: string;
  evidence: Record<string, string | number | boolean>;
  remedy: string;
  raisedTs: number;
}

interface Active {
  record: AlertRecord;
  /** Last time the condition was seen true (growth and event rules clear after a quiet period). */
  lastTrueTs: number;
  quietMs?: number;
}

/** The model-based rule: a risk score across its model's operating threshold. */
export const RISK_RULE = {
  id: 'risk.threshold',
  title: "Failure risk above the model's operating threshold",
  severity: 'warning' as Severity,
  remedy: "Inspect the asset; the alert lists the model's main drivers. Lower the load or schedule maintenance before the predicted failure.",
};

/**
 * The anomaly detector flagged an asset (records of kind `anomaly`). Anomalies come and go reading by reading,
 * so the alert is raised on the first flagged reading and clears only after `quietMs` without one: one alert
 * per episode, not one per reading.
 */
export const ANOMALY_RULE = {
  id: 'anomaly',
  title: "Unusual behaviour: the asset's signals left their learned baseline",
  severity: 'warning' as Severity,
  quietMs: 10 * 60_000,
  remedy:
    'Look at the signals named as drivers and what changed on the asset (load, a repair, a sensor, a failing part). A lasting change that is normal is learned within a few `scoring.anomaly.halfLifeHours`; docs/anomaly-detection.md explains the score.',
};

/** A model's inputs have left its training distribution: its scores are no longer to be trusted as they were. */
export const DRIFT_RULE = {
  id: 'model.drift',
  title: 'Model inputs have drifted from its training data',
  severity: 'warning' as Severity,
  remedy:
    'The model is scoring inputs unlike those it learned from; treat its scores with care. Check the sensors named in the evidence (a recalibrated or replaced sensor, a new product or operating mode), then retrain or install a model for the new conditions.',
};

/** Data-quality failures are alerts too, one per signal and check, so they are seen and cleared centrally. */
export const QUALITY_RULE = {
  id: 'quality',
  title: 'Signal failed a data-quality check',
  severity: 'info' as Severity,
  remedy: 'Check the sensor, its wiring and the source that reads it. The value is kept in telemetry, flagged, and not used for scoring until it passes again.',
};

const QUIET_CHECK_MS = 60_000;
/** Metric names whose matching rules are remembered; names beyond it are matched each time. */
const MAX_MATCH_CACHE = 100_000;

/**
 * Evaluates the health rules on every reading and event, and the model thresholds on every risk record.
 * One alert per (rule, asset, subject): raised once, updated silently while it holds, cleared once when it
 * stops. Active alerts live in SQLite with their records, so a restart neither repeats nor forgets them.
 */
export class HealthMonitor implements Component, ReadingConsumer, RiskConsumer, EventConsumer, QualityIssueConsumer {
  readonly name = 'health';
  private readonly active = new Map<string, Active>();
  private readonly previous = new Map<string, number>();
  private readonly matches = new Map<string, Array<{ rule: Exclude<HealthRule, { kind: 'event' }>; subject: string | undefined }>>();
  private timer: NodeJS.Timeout | null = null;
  readonly stats = { raised: 0, cleared: 0, unsaved: 0 };
  /**
   * Alert records and active-set changes a full or failing disk refused: kept in memory, in order, and committed
   * with the next change or retry (`retryUnsaved`), so an alert is never forgotten while the disk is full.
   */
  private unsaved: { records: AlertRecord[]; set: Map<string, Record<string, unknown>>; remove: Set<string> } | null = null;
  private unsavedLogged = false;

  constructor(
    private readonly store: RecordStore,
    private readonly onCommitted: () => void,
    private readonly log: Logger,
    private readonly rules: readonly HealthRule[] = HEALTH_RULES,
    private readonly now: () => number = Date.now,
  ) {}

  async start(): Promise<void> {
    for (const { key, state } of this.store.activeAlerts()) this.active.set(key, state as unknown as Active);
    if (this.active.size) this.log.info({ active: this.active.size }, 'active alerts restored');
    this.timer = setInterval(() => this.clearQuiet(), QUIET_CHECK_MS);
    this.timer.unref();
  }

  /** The stage seams (core/types.ts, health/quality-stage.ts): the same as `onReading`, `onRisk`, `onEvent`, `onQuality`. */
  consumeReading(r: Reading): void {
    this.onReading(r);
  }

  consumeRisk(records: readonly RiskRecord[]): void {
    this.onRisk(records);
  }

  consumeEvent(e: HealthEvent): void {
    this.onEvent(e);
  }

  consumeQuality(issues: readonly QualityIssue[]): void {
    this.onQuality(issues);
  }

  activeAlerts(): AlertRecord[] {
    return [...this.active.values()].map((a) => a.record);
  }

  /** The rules that apply to a metric name, and the subject each captures: matched once per name (a hot path). */
  private rulesFor(metric: string): Array<{ rule: Exclude<HealthRule, { kind: 'event' }>; subject: string | undefined }> {
    let found = this.matches.get(metric);
    if (!found) {
      found = [];
      for (const rule of this.rules) {
        if (rule.kind === 'event') continue;
        const m = rule.metric.exec(metric);
        if (m) found.push({ rule, subject: m[1] });
      }
      if (this.matches.size < MAX_MATCH_CACHE) this.matches.set(metric, found);
    }
    return found;
  }

  onReading(r: Reading): void {
    const raise: Array<[string, Omit<AlertRecord, 'alertId' | 'state' | 'raisedTs'>, number | undefined]> = [];
    const clear: string[] = [];
    for (const [metric, value] of Object.entries(r.metrics)) {
      for (const { rule, subject } of this.rulesFor(metric)) {
        const key = alertKey(rule.id, r.asset, subject);
        let holds: boolean;
        const evidence: AlertRecord['evidence'] = { metric, value };
        if (rule.kind === 'level') {
          const other = rule.against ? r.metrics[rule.against(metric)] : rule.value;
          if (other === undefined) continue;
          holds = compare(rule.op, value, other);
          if (rule.against) evidence.threshold = other;
        } else {
          const prevKey = `${r.asset}\u0000${metric}`;
          const prev = this.previous.get(prevKey);
          this.previous.set(prevKey, value);
          if (prev === undefined) continue;
          holds = value > prev;
          evidence.previous = prev;
          if (!holds) continue; // growth rules clear by quiet time, not by a flat sample
        }
        if (holds)
          raise.push([
            key,
            {
              ts: r.ts,
              rule: rule.id,
              asset: r.asset,
              ...(subject ? { subject } : {}),
              severity: rule.severity,
              title: rule.title,
              evidence,
              remedy: rule.remedy,
            },
            rule.kind === 'growth' ? rule.quietMs : undefined,
          ]);
        else if (this.active.has(key)) clear.push(key);
      }
    }
    this.apply(raise, clear, r.ts);
  }

  onEvent(e: HealthEvent): void {
    const raise: Parameters<HealthMonitor['apply']>[0] = [];
    for (const rule of this.rules) {
      if (rule.kind !== 'event' || rule.type !== e.type) continue;
      if (rule.codes && (e.code === undefined || !rule.codes.includes(e.code))) continue;
      const subject = e.code === undefined ? undefined : String(e.code);
      const severity = isSeverity(e.attributes.severity) ? e.attributes.severity : rule.severity;
      const title = e.code === undefined ? rule.title : `${rule.title}: ${e.code}${typeof e.attributes.name === 'string' ? ` (${e.attributes.name})` : ''}`;
      const remedy = typeof e.attributes.action === 'string' ? e.attributes.action : rule.remedy;
      raise.push([
        alertKey(rule.id, e.asset, subject),
        {
          ts: e.ts,
          rule: rule.id,
          asset: e.asset,
          ...(subject ? { subject } : {}),
          severity,
          title,
          evidence: { ...e.attributes, message: e.message },
          remedy,
        },
        rule.quietMs,
      ]);
    }
    this.apply(raise, [], e.ts);
  }

  onRisk(records: readonly RiskRecord[]): void {
    // One record at a time: a batch can cross the threshold and come back.
    for (const r of records) {
      const raise: Parameters<HealthMonitor['apply']>[0] = [];
      const clear: string[] = [];
      if (r.threshold === undefined) continue;
      const anomaly = r.kind === 'anomaly';
      const rule = anomaly ? ANOMALY_RULE : RISK_RULE;
      const key = anomaly ? alertKey(rule.id, r.asset) : alertKey(rule.id, r.asset, r.model);
      if (r.atRisk) {
        const evidence: AlertRecord['evidence'] = { model: r.model, modelVersion: r.modelVersion, score: r.score, threshold: r.threshold };
        r.drivers.forEach((d, i) => (evidence[`driver${i + 1}`] = `${d.feature}=${d.value} (${d.contribution >= 0 ? '+' : ''}${d.contribution})`));
        const alert = { ts: r.ts, rule: rule.id, asset: r.asset, severity: rule.severity, title: rule.title, evidence, remedy: rule.remedy };
        raise.push([key, anomaly ? alert : { ...alert, subject: r.model }, anomaly ? ANOMALY_RULE.quietMs : undefined]);
      } else if (!anomaly && this.active.has(key)) clear.push(key); // anomaly alerts clear by quiet time
      this.apply(raise, clear, r.ts);
    }
  }

  /** Raises `model.drift` when a model and asset enter the drift state; clears it when they leave it. */
  onDrift(h: ModelHealth): void {
    const key = alertKey(DRIFT_RULE.id, h.asset, h.model);
    if (h.state === 'drift') {
      const evidence: AlertRecord['evidence'] = { model: h.model, modelVersion: h.version, psiMax: h.psiMax, samples: h.samples };
      h.top.forEach((t, i) => (evidence[`feature${i + 1}`] = `${t.feature} PSI ${t.psi}`));
      this.apply(
        [
          [
            key,
            {
              ts: h.ts,
              rule: DRIFT_RULE.id,
              asset: h.asset,
              subject: h.model,
              severity: DRIFT_RULE.severity,
              title: DRIFT_RULE.title,
              evidence,
              remedy: DRIFT_RULE.remedy,
            },
            undefined,
          ],
        ],
        [],
        h.ts,
      );
    } else if (this.active.has(key)) {
      this.apply([], [key], h.ts);
    }
  }

  onQuality(issues: readonly QualityIssue[]): void {
    const raise: Parameters<HealthMonitor['apply']>[0] = [];
    const clear: string[] = [];
    const now = Date.now();
    for (const q of issues) {
      const key = alertKey(`${QUALITY_RULE.id}.${q.check}`, q.asset, q.signal);
      if (!q.failing) {
        clear.push(key);
        continue;
      }
      const evidence: AlertRecord['evidence'] = { signal: q.signal, check: q.check, detail: q.detail };
      if (q.value !== undefined && Number.isFinite(q.value)) evidence.value = q.value;
      raise.push([
        key,
        {
          ts: now,
          rule: `${QUALITY_RULE.id}.${q.check}`,
          asset: q.asset,
          subject: q.signal,
          severity: QUALITY_RULE.severity,
          title: `${QUALITY_RULE.title} (${q.check})`,
          evidence,
          remedy: QUALITY_RULE.remedy,
        },
        undefined,
      ]);
    }
    this.apply(raise, clear, now);
  }

  /** Clears growth and event alerts whose condition has been quiet long enough. */
  clearQuiet(now = this.now()): void {
    const due = [...this.active.entries()].filter(([, a]) => a.quietMs !== undefined && now - a.lastTrueTs >= a.quietMs).map(([k]) => k);
    this.apply([], due, now);
  }

  private apply(raise: Array<[string, Omit<AlertRecord, 'alertId' | 'state' | 'raisedTs'>, number | undefined]>, clear: string[], ts: number): void {
    if (!raise.length && !clear.length) return;
    const records: AlertRecord[] = [];
    const set: Array<{ key: string; state: Record<string, unknown> }> = [];
    const remove: string[] = [];
    for (const [key, alert, quietMs] of raise) {
      const existing = this.active.get(key);
      if (existing) {
        // Still true: keep the alert quiet, but remember it held (quiet-time clearing counts from here).
        existing.lastTrueTs = alert.ts;
        existing.record.evidence = alert.evidence;
        set.push({ key, state: existing as unknown as Record<string, unknown> });
        continue;
      }
      const record: AlertRecord = { ...alert, alertId: key, state: 'raised', raisedTs: alert.ts };
      const entry: Active = { record, lastTrueTs: alert.ts, ...(quietMs !== undefined ? { quietMs } : {}) };
      this.active.set(key, entry);
      records.push(record);
      set.push({ key, state: entry as unknown as Record<string, unknown> });
    }
    for (const key of clear) {
      const a = this.active.get(key);
      if (!a) continue;
      this.active.delete(key);
      records.push({ ...a.record, ts, state: 'cleared' });
      remove.push(key);
    }
    const pending = this.unsaved ?? { records: [], set: new Map<string, Record<string, unknown>>(), remove: new Set<string>() };
    pending.records.push(...records);
    for (const a of set) {
      pending.remove.delete(a.key);
      pending.set.set(a.key, a.state);
    }
    for (const k of remove) {
      pending.set.delete(k);
      pending.remove.add(k);
    }
    this.unsaved = pending;
    this.saveUnsaved();
    for (const r of records) {
      if (r.state === 'raised') this.stats.raised++;
      else this.stats.cleared++;
      this.log[r.state === 'raised' && r.severity !== 'info' ? 'warn' : 'info'](
        { alert: r.alertId, severity: r.severity, asset: r.asset, evidence: r.evidence },
        `alert ${r.state}: ${r.title}`,
      );
    }
  }

  /** Commits what the disk refused before; called by the agent's housekeeping while anything is left. */
  retryUnsaved(): void {
    if (this.unsaved) this.saveUnsaved();
  }

  private saveUnsaved(): void {
    const u = this.unsaved;
    if (!u) return;
    try {
      this.store.commitAlerts(
        u.records.map((r) => ({ ts: r.ts, asset: r.asset, payload: { ...r } })),
        { set: [...u.set].map(([key, state]) => ({ key, state })), remove: [...u.remove] },
      );
    } catch (err) {
      this.stats.unsaved = u.records.length;
      if (!this.unsavedLogged) {
        this.unsavedLogged = true;
        this.log.error(
          { err: describeError(err), code: 'FW_ERR_STORAGE_WRITE', alerts: u.records.length },
          'cannot commit alerts; kept in memory and retried until the disk takes them',
        );
      }
      return;
    }
    if (this.unsavedLogged) this.log.info({ alerts: u.records.length }, 'alerts held in memory are committed');
    this.unsavedLogged = false;
    this.unsaved = null;
    this.stats.unsaved = 0;
    if (u.records.length) this.onCommitted();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

function alertKey(rule: string, asset: string, subject?: string): string {
  return subject === undefined ? `${rule}/${asset}` : `${rule}/${asset}/${subject}`;
}

function isSeverity(v: unknown): v is Severity {
  return v === 'info' || v === 'warning' || v === 'critical';
}
