import type { ModelHealth } from '../scoring/drift-monitor.js';
import type { Logger } from '../core/logger.js';
import { describeError } from '../core/errors.js';
import type { AlertsConfig } from '../config/load-config.js';
import type { Component, EventConsumer, HealthEvent, Reading, ReadingConsumer, RiskConsumer, RiskRecord } from '../core/types.js';
import type { RecordStore } from '../store/record-store.js';
import { HEALTH_RULES, compare, type HealthRule, type Severity } from './health-rules.js';
import type { QualityIssue, QualityIssueConsumer } from './data-quality.js';
import {
  IMMEDIATE,
  assertAlertConfig,
  levelClearValue,
  levelCleared,
  riskLifecycle,
  ruleLifecycle,
  type Lifecycle,
  type RiskLifecycle,
} from './alert-lifecycle.js';
import { everyOnGrid, type GridInterval } from '../core/grid.js';

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
  /** For `cleared`: what the condition looked like when it cleared (the value that cleared it), not when it was raised. */
  evidence: Record<string, string | number | boolean>;
  remedy: string;
  raisedTs: number;
  /** The value the rule compares (a metric, a score): the one that raised it, or, for `cleared`, the one that cleared it. */
  value?: number;
  /** On `raised`: when the condition began to hold, where that was before `raisedTs` (the rule's `forMs`). */
  pendingSinceTs?: number;
  /** The alert changed state too often and is (or, on `cleared`, was) held raised until stable (docs/alerts.md). */
  flapping?: true;
}

/** An alert as the monitor keeps it while it is raised: in memory and in SQLite (`store.activeAlerts`). */
interface Active {
  record: AlertRecord;
  /** Last time the condition was seen true (growth and event rules clear after a quiet period). */
  lastTrueTs: number;
  /** Saved by earlier versions; the quiet period now comes from the rule's lifecycle. */
  quietMs?: number;
  /** Since when the clear condition has held without interruption. */
  clearingSince?: number;
  /** Marked flapping: cleared only after a whole flapping window clear. */
  flapping?: true;
  /** Times of this alert's recent raises and clears, for flapping detection. */
  changes?: number[];
}

/** A condition that holds and has not been raised yet: kept in memory only (a restart starts its `for` again). */
interface Pending {
  since: number;
  lastTrueTs: number;
  alert: Draft;
  life: Lifecycle;
}

type Draft = Omit<AlertRecord, 'alertId' | 'state' | 'raisedTs'>;

/**
 * One evaluation of one alert's condition. `fire`: the raise condition holds; `clear`: the clear condition holds
 * (`alert` then carries the evidence and value that cleared it); `hold`: neither, between the raise and the clear
 * threshold. Rules that clear after a quiet period only ever `fire`: quiet time clears them (`clearQuiet`).
 */
interface Observation {
  key: string;
  verdict: 'fire' | 'clear' | 'hold';
  alert: Draft;
  ts: number;
  life: Lifecycle;
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
/**
 * A pending condition not seen again for this long starts its `forMs` over: like Prometheus' 5-minute staleness, so a
 * condition seen an hour ago and again now is not taken to have held in between.
 */
const STALE_MS = 5 * 60_000;
/** Metric names whose matching rules are remembered; names beyond it are matched each time. */
const MAX_MATCH_CACHE = 100_000;

export interface HealthMonitorStats {
  raised: number;
  cleared: number;
  /** Alert records the disk refused, held in memory. */
  unsaved: number;
  /** Conditions that hold but have not held their rule's `forMs` yet. */
  pending: number;
  /** Raised alerts marked flapping now. */
  flapping: number;
  /** Times an alert was marked flapping, this run. */
  flapped: number;
}

/**
 * Evaluates the health rules on every reading and event, and the model thresholds on every risk record.
 * One alert per (rule, asset, subject): raised once its condition has held its `forMs`, updated silently while it
 * holds, cleared once its clear condition has held its `clearForMs`; held raised while flapping (alert-lifecycle.ts).
 * Raised alerts live in SQLite with their records, so a restart neither repeats nor forgets them; pending ones
 * live in memory only.
 */
export class HealthMonitor implements Component, ReadingConsumer, RiskConsumer, EventConsumer, QualityIssueConsumer {
  readonly name = 'health';
  private readonly active = new Map<string, Active>();
  private readonly pending = new Map<string, Pending>();
  /** Recent raise and clear times of alerts not raised now (raised ones keep theirs in `Active.changes`). */
  private readonly history = new Map<string, number[]>();
  private readonly previous = new Map<string, number>();
  private readonly matches = new Map<string, Array<{ rule: Exclude<HealthRule, { kind: 'event' }>; subject: string | undefined }>>();
  private readonly lifecycles = new Map<string, Lifecycle>();
  private readonly riskLifecycles = new Map<string, RiskLifecycle>();
  private timer: GridInterval | null = null;
  readonly stats: HealthMonitorStats = { raised: 0, cleared: 0, unsaved: 0, pending: 0, flapping: 0, flapped: 0 };
  /**
   * Alert records and active-set changes a full or failing disk refused: kept in memory, in order, and committed
   * with the next change or retry (`retryUnsaved`), so an alert is never forgotten while the disk is full.
   */
  private unsaved: { records: AlertRecord[]; set: Map<string, Record<string, unknown>>; remove: Set<string> } | null = null;
  private unsavedLogged = false;
  private readonly config: AlertsConfig;
  /** Built without a configuration: no delays, no hysteresis, no flapping (each condition raises and clears at once). */
  private readonly immediate: boolean;

  constructor(
    private readonly store: RecordStore,
    private readonly onCommitted: () => void,
    private readonly log: Logger,
    private readonly rules: readonly HealthRule[] = HEALTH_RULES,
    private readonly now: () => number = Date.now,
    /** The `alerts` section of the configuration; without it every alert raises and clears at once. */
    alerts?: AlertsConfig,
  ) {
    this.immediate = alerts === undefined;
    this.config = alerts ?? IMMEDIATE;
    assertAlertConfig(this.config, 'alerts', rules);
  }

  async start(): Promise<void> {
    for (const { key, state } of this.store.activeAlerts()) this.active.set(key, state as unknown as Active);
    if (this.active.size) this.log.info({ active: this.active.size }, 'active alerts restored');
    this.countFlapping();
    this.timer = everyOnGrid(() => this.clearQuiet(), QUIET_CHECK_MS).unref();
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

  private lifecycle(rule: { id: string; forMs?: number; clearForMs?: number; quietMs?: number; hysteresis?: number }): Lifecycle {
    let life = this.lifecycles.get(rule.id);
    if (!life) this.lifecycles.set(rule.id, (life = ruleLifecycle(this.config, rule, this.immediate)));
    return life;
  }

  onReading(r: Reading): void {
    const seen: Observation[] = [];
    for (const metric in r.metrics) {
      const rules = this.rulesFor(metric);
      // Most metrics of most readings (all of the host's) match no rule.
      if (rules.length === 0) continue;
      const value = r.metrics[metric]!;
      for (const { rule, subject } of rules) {
        const key = alertKey(rule.id, r.asset, subject);
        let verdict: Observation['verdict'] | undefined;
        const evidence: AlertRecord['evidence'] = { metric, value };
        if (rule.kind === 'level') {
          const other = rule.against ? r.metrics[rule.against(metric)] : rule.value;
          if (other === undefined) continue;
          if (compare(rule.op, value, other)) verdict = 'fire';
          // Most readings of most rules: nothing raised, nothing pending, nothing to do.
          else if (!this.active.has(key) && !this.pending.has(key)) continue;
          if (rule.against) evidence.threshold = other;
          const clearAt = levelClearValue(rule, other, this.config.rules[rule.id]?.clearValue, this.lifecycle(rule).hysteresis);
          if (clearAt !== undefined && clearAt !== other) evidence.clearThreshold = clearAt;
          if (rule.subjectName && subject !== undefined) evidence[rule.subjectName] = subject;
          if (rule.unit) evidence.unit = rule.unit;
          verdict ??= levelCleared(rule, value, clearAt) ? 'clear' : 'hold';
        } else {
          const prevKey = `${r.asset}\u0000${metric}`;
          const prev = this.previous.get(prevKey);
          this.previous.set(prevKey, value);
          if (prev === undefined || !(value > prev)) continue; // growth rules clear by quiet time, not by a flat sample
          evidence.previous = prev;
          verdict = 'fire';
        }
        seen.push({
          key,
          verdict,
          ts: r.ts,
          life: this.lifecycle(rule),
          alert: {
            ts: r.ts,
            rule: rule.id,
            asset: r.asset,
            ...(subject ? { subject } : {}),
            severity: rule.severity,
            title: rule.title,
            evidence,
            remedy: rule.remedy,
            value,
          },
        });
      }
    }
    this.apply(seen);
  }

  onEvent(e: HealthEvent): void {
    const seen: Observation[] = [];
    for (const rule of this.rules) {
      if (rule.kind !== 'event' || rule.type !== e.type) continue;
      if (rule.codes && (e.code === undefined || !rule.codes.includes(e.code))) continue;
      const subject = e.code === undefined ? undefined : String(e.code);
      const severity = isSeverity(e.attributes.severity) ? e.attributes.severity : rule.severity;
      const title = e.code === undefined ? rule.title : `${rule.title}: ${e.code}${typeof e.attributes.name === 'string' ? ` (${e.attributes.name})` : ''}`;
      const remedy = typeof e.attributes.action === 'string' ? e.attributes.action : rule.remedy;
      seen.push({
        key: alertKey(rule.id, e.asset, subject),
        verdict: 'fire',
        ts: e.ts,
        life: this.lifecycle(rule),
        alert: {
          ts: e.ts,
          rule: rule.id,
          asset: e.asset,
          ...(subject ? { subject } : {}),
          severity,
          title,
          evidence: { ...e.attributes, message: e.message },
          remedy,
        },
      });
    }
    this.apply(seen);
  }

  /** A model's threshold settings, checked against the manifest's threshold the first time a model scores. */
  private riskLifecycle(r: RiskRecord & { threshold: number }): RiskLifecycle {
    const id = `${r.model}\u0000${r.kind}\u0000${r.threshold}`;
    let life = this.riskLifecycles.get(id);
    if (!life) {
      const { problem, ...resolved } = riskLifecycle(this.config, r.model, r.kind, r.threshold);
      if (problem) this.log.error({ code: 'FW_ERR_CONFIG_INVALID', model: r.model, problem }, 'alert clear threshold refused; the default applies');
      this.riskLifecycles.set(id, (life = resolved));
    }
    return life;
  }

  onRisk(records: readonly RiskRecord[]): void {
    // One record at a time: a batch can cross the threshold and come back.
    for (const r of records) {
      if (r.threshold === undefined) continue;
      const anomaly = r.kind === 'anomaly';
      // The lifecycle runs on the reading's time: a backlog scored late keeps the spacing the machine had.
      const at = r.readingTs ?? r.ts;
      const rule = anomaly ? ANOMALY_RULE : RISK_RULE;
      const key = anomaly ? alertKey(rule.id, r.asset) : alertKey(rule.id, r.asset, r.model);
      const life = anomaly ? this.lifecycle(ANOMALY_RULE) : this.riskLifecycle(r as RiskRecord & { threshold: number });
      let verdict: Observation['verdict'] = 'fire';
      if (!r.atRisk) {
        if (anomaly) continue; // anomaly alerts clear by quiet time
        if (!this.active.has(key) && !this.pending.has(key)) continue;
        const clearAt = (life as RiskLifecycle).clearThreshold;
        verdict = (r.kind === 'rul' ? r.score >= clearAt : r.score <= clearAt) ? 'clear' : 'hold';
      }
      const evidence: AlertRecord['evidence'] = { model: r.model, modelVersion: r.modelVersion, score: r.score, threshold: r.threshold };
      if (!anomaly && (life as RiskLifecycle).clearThreshold !== r.threshold) evidence.clearThreshold = (life as RiskLifecycle).clearThreshold;
      r.drivers.forEach((d, i) => (evidence[`driver${i + 1}`] = `${d.feature}=${d.value} (${d.contribution >= 0 ? '+' : ''}${d.contribution})`));
      const alert: Draft = { ts: at, rule: rule.id, asset: r.asset, severity: rule.severity, title: rule.title, evidence, remedy: rule.remedy, value: r.score };
      this.apply([{ key, verdict, ts: at, life, alert: anomaly ? alert : { ...alert, subject: r.model } }]);
    }
  }

  /** Raises `model.drift` when a model and asset enter the drift state; clears it when they leave it. */
  onDrift(h: ModelHealth): void {
    const key = alertKey(DRIFT_RULE.id, h.asset, h.model);
    if (h.state !== 'drift' && !this.active.has(key) && !this.pending.has(key)) return;
    const evidence: AlertRecord['evidence'] = { model: h.model, modelVersion: h.version, state: h.state, psiMax: h.psiMax, samples: h.samples };
    if (h.driftPsi !== undefined) evidence.driftPsi = h.driftPsi;
    if (h.outsideMax !== undefined) evidence.outsideMax = h.outsideMax;
    h.top.forEach((t, i) => (evidence[`feature${i + 1}`] = `${t.feature} PSI ${t.psi}`));
    this.apply([
      {
        key,
        verdict: h.state === 'drift' ? 'fire' : 'clear',
        ts: h.ts,
        life: this.lifecycle(DRIFT_RULE),
        alert: {
          ts: h.ts,
          rule: DRIFT_RULE.id,
          asset: h.asset,
          subject: h.model,
          severity: DRIFT_RULE.severity,
          title: DRIFT_RULE.title,
          evidence,
          remedy: DRIFT_RULE.remedy,
          ...(h.driftPsi !== undefined ? { value: h.driftPsi } : {}),
        },
      },
    ]);
  }

  onQuality(issues: readonly QualityIssue[]): void {
    const seen: Observation[] = [];
    const now = this.now();
    for (const q of issues) {
      const rule = `${QUALITY_RULE.id}.${q.check}`;
      const key = alertKey(rule, q.asset, q.signal);
      if (!q.failing && !this.active.has(key) && !this.pending.has(key)) continue;
      const evidence: AlertRecord['evidence'] = { signal: q.signal, check: q.check, detail: q.detail };
      const value = q.value !== undefined && Number.isFinite(q.value) ? q.value : undefined;
      if (value !== undefined) evidence.value = value;
      seen.push({
        key,
        verdict: q.failing ? 'fire' : 'clear',
        ts: now,
        life: this.lifecycle({ id: rule }),
        alert: {
          ts: now,
          rule,
          asset: q.asset,
          subject: q.signal,
          severity: QUALITY_RULE.severity,
          title: `${QUALITY_RULE.title} (${q.check})`,
          evidence,
          remedy: QUALITY_RULE.remedy,
          ...(value !== undefined ? { value } : {}),
        },
      });
    }
    this.apply(seen);
  }

  /**
   * The timer's work: clears growth, event and anomaly alerts whose condition has been quiet long enough, raises
   * pending ones of those rules whose `forMs` has passed while they still hold, and forgets old flapping history.
   */
  clearQuiet(now = this.now()): void {
    const seen: Observation[] = [];
    for (const [key, a] of this.active) {
      const life = this.lifecycleOf(a.record.rule);
      const quietMs = life?.quietMs ?? a.quietMs;
      if (quietMs === undefined) continue;
      if (now - a.lastTrueTs < quietMs) continue;
      // Cleared by quiet time: the condition has been clear since its last occurrence.
      a.clearingSince ??= a.lastTrueTs;
      seen.push({ key, verdict: 'clear', ts: now, life: { forMs: 0, clearForMs: quietMs }, alert: { ...a.record, ts: now } });
    }
    for (const [key, p] of this.pending) {
      if (now - p.lastTrueTs >= (p.life.quietMs ?? STALE_MS)) this.pending.delete(key);
      else if (p.life.quietMs === undefined) continue;
      else if (now - p.since >= p.life.forMs) seen.push({ key, verdict: 'fire', ts: now, life: p.life, alert: { ...p.alert, ts: now } });
    }
    for (const [key, times] of this.history) if (!times.some((t) => t > now - this.config.flapping.windowMs)) this.history.delete(key);
    this.apply(seen, true);
  }

  /** The lifecycle of a rule id, for alerts restored from the database. */
  private lifecycleOf(ruleId: string): Lifecycle | undefined {
    if (ruleId === RISK_RULE.id) return undefined;
    const rule = this.rules.find((r) => r.id === ruleId) ?? (ruleId === ANOMALY_RULE.id ? ANOMALY_RULE : { id: ruleId });
    return this.lifecycle(rule);
  }

  /** Whether one more raise or clear of `key` at `ts` would exceed the flapping limit. */
  private wouldFlap(changes: number[], ts: number): boolean {
    const { maxChanges, windowMs } = this.config.flapping;
    if (maxChanges === 0) return false;
    while (changes.length && changes[0]! <= ts - windowMs) changes.shift();
    return changes.length + 1 > maxChanges;
  }

  /** Runs the lifecycle on observations: raises what held long enough, clears what was clear long enough. */
  private apply(seen: Observation[], quietPass = false): void {
    if (!seen.length) {
      this.stats.pending = this.pending.size;
      return;
    }
    const records: AlertRecord[] = [];
    const set: Array<{ key: string; state: Record<string, unknown> }> = [];
    const remove: string[] = [];
    const { windowMs } = this.config.flapping;
    for (const o of seen) {
      const a = this.active.get(o.key);
      if (!a) {
        if (o.verdict !== 'fire') {
          this.pending.delete(o.key);
          continue;
        }
        let p = this.pending.get(o.key);
        // A condition must hold throughout its `forMs`: one not seen for a while (a quiet period over, or no readings) starts again.
        if (p && o.ts - p.lastTrueTs >= (o.life.quietMs ?? STALE_MS)) p = undefined;
        if (!p) this.pending.set(o.key, (p = { since: o.ts, lastTrueTs: o.ts, alert: o.alert, life: o.life }));
        p.lastTrueTs = Math.max(p.lastTrueTs, o.ts);
        p.alert = o.alert;
        if (o.ts - p.since < o.life.forMs) continue;
        this.pending.delete(o.key);
        const changes = this.history.get(o.key) ?? [];
        this.history.delete(o.key);
        const flapping = this.wouldFlap(changes, o.ts);
        changes.push(o.ts);
        const record: AlertRecord = {
          ...o.alert,
          ts: o.ts,
          alertId: o.key,
          state: 'raised',
          raisedTs: o.ts,
          ...(p.since < o.ts ? { pendingSinceTs: p.since } : {}),
          ...(flapping ? { flapping: true as const } : {}),
        };
        const entry: Active = { record, lastTrueTs: o.ts, changes, ...(flapping ? { flapping: true as const } : {}) };
        if (flapping) this.flapped(o.key, entry, o.ts);
        this.active.set(o.key, entry);
        records.push(record);
        set.push({ key: o.key, state: entry as unknown as Record<string, unknown> });
        continue;
      }
      if (o.verdict === 'fire') {
        // Still true: keep the alert quiet, but remember it held (quiet-time clearing counts from here).
        a.lastTrueTs = Math.max(a.lastTrueTs, o.ts);
        a.record.evidence = o.alert.evidence;
        if (o.alert.value !== undefined) a.record.value = o.alert.value;
        delete a.clearingSince;
        set.push({ key: o.key, state: a as unknown as Record<string, unknown> });
        continue;
      }
      if (o.verdict === 'hold') {
        // Between the thresholds: not raising, not clearing either; a clear must start over.
        if (a.clearingSince !== undefined) {
          delete a.clearingSince;
          set.push({ key: o.key, state: a as unknown as Record<string, unknown> });
        }
        continue;
      }
      const started = a.clearingSince === undefined;
      a.clearingSince ??= o.ts;
      const needed = a.flapping ? Math.max(o.life.clearForMs, windowMs) : o.life.clearForMs;
      if (o.ts - a.clearingSince < needed) {
        if (started) set.push({ key: o.key, state: a as unknown as Record<string, unknown> });
        continue;
      }
      const changes = a.changes ?? [];
      if (!a.flapping && this.wouldFlap(changes, o.ts)) {
        // One change too many: hold it raised until it has been clear for a whole window.
        a.flapping = true;
        a.record.flapping = true;
        this.flapped(o.key, a, o.ts);
        set.push({ key: o.key, state: a as unknown as Record<string, unknown> });
        continue;
      }
      changes.push(o.ts);
      this.history.set(o.key, changes);
      this.active.delete(o.key);
      const { pendingSinceTs: _p, value: _v, flapping: _f, ...raised } = a.record;
      records.push({
        ...raised,
        ts: o.ts,
        state: 'cleared',
        evidence: quietPass ? { ...a.record.evidence, quietForMs: o.ts - a.lastTrueTs } : o.alert.evidence,
        ...(!quietPass && o.alert.value !== undefined ? { value: o.alert.value } : {}),
        ...(a.flapping ? { flapping: true as const } : {}),
      });
      remove.push(o.key);
    }
    this.stats.pending = this.pending.size;
    if (!records.length && !set.length && !remove.length) return;
    this.countFlapping();
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
        { alert: r.alertId, severity: r.severity, asset: r.asset, evidence: r.evidence, ...(r.flapping ? { flapping: true } : {}) },
        `alert ${r.state}: ${r.title}`,
      );
    }
  }

  private flapped(key: string, a: Active, ts: number): void {
    this.stats.flapped++;
    this.log.warn(
      { alert: key, changes: (a.changes?.length ?? 0) + 1, windowMs: this.config.flapping.windowMs, ts },
      'alert flapping: held raised until it has been clear for a whole window',
    );
  }

  private countFlapping(): void {
    let n = 0;
    for (const a of this.active.values()) if (a.flapping) n++;
    this.stats.flapping = n;
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
    this.timer?.clear();
    this.timer = null;
  }
}

function alertKey(rule: string, asset: string, subject?: string): string {
  return subject === undefined ? `${rule}/${asset}` : `${rule}/${asset}/${subject}`;
}

function isSeverity(v: unknown): v is Severity {
  return v === 'info' || v === 'warning' || v === 'critical';
}
