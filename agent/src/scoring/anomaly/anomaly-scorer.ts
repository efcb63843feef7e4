import type { Logger } from '../../core/logger.js';
import { describeError } from '../../core/errors.js';
import type { Component, Reading, ReadingConsumer, RiskConsumer, RiskRecord } from '../../core/types.js';
import type { AnomalyConfig } from '../../config/load-config.js';
import { ANOMALY_MODEL_VERSION, AnomalyDetector, type AnomalyResult, type DetectorState } from './detector.js';
import { everyOnGrid, type GridInterval } from '../../core/grid.js';

/**
 * Adaptive anomaly detection for every watched asset (docs/anomaly-detection.md): one AnomalyDetector per
 * asset, fed the clean readings, emitting `kind: anomaly` risk records from model `anomaly` once warmed up.
 * Each asset's baseline is kept in the database's `meta` table (`anomaly:<asset>`) every `persistIntervalMs`
 * and at stop, and picked up again on the asset's first reading after a restart, so there is no second warm-up.
 *
 * Not every score becomes a record (`recordIntervalMs`): a flagged reading, and the first one after a flag, are
 * recorded at once; of the others, the highest score of each interval, when the interval ends. A score per
 * reading doubled the agent's records (and its inserts, publishes and acknowledgements) for a series that says
 * little between flags; the alerts are raised from the flagged records, which all go out at once.
 */

export const ANOMALY_MODEL = 'anomaly';
/** Meta key of an asset's persisted baseline. */
export const anomalyMetaKey = (asset: string) => `anomaly:${asset}`;
/** Meta key of the per-asset summary `forewarn status` shows. */
export const ANOMALY_STATUS_META_KEY = 'anomaly-status';
/** Assets beyond this many are not watched (said once): memory stays bounded whatever the sources report. */
export const MAX_ASSETS = 256;

/** What the scorer needs of the record store. */
export interface MetaStore {
  getMeta(key: string): string | undefined;
  setMeta(key: string, value: string): void;
}

export interface AnomalyAssetStatus {
  asset: string;
  state: DetectorState;
  samples: number;
  warmupSamples: number;
  signals: number;
  scoredSignals: number;
  threshold: number | null;
  lastScore: number | null;
  anomalies: number;
  bytes: number;
  ts: number;
}

export interface AnomalyStats {
  assets: number;
  warming: number;
  scoring: number;
  /** Assets with no varying signal to model. */
  idle: number;
  scored: number;
  /** Scores that became a record (recordIntervalMs). */
  recorded: number;
  anomalies: number;
  /** Largest and mean memory of one asset's detector. */
  maxBytesPerAsset: number;
  meanBytesPerAsset: number;
  /** Baselines picked up from the database, and ones discarded as corrupt or incompatible. */
  restored: number;
  discarded: number;
  persistErrors: number;
}

interface Tracked {
  detector: AnomalyDetector;
  dirty: boolean;
  lastScore: number | null;
  anomalies: number;
  /** When the last record of this asset was made (this.now()), null before the first. */
  recordedAt: number | null;
  recordedAtRisk: boolean;
  /** The highest unflagged score since the last record, waiting for its interval to end. */
  held: RiskRecord | null;
}

/** The `kind: anomaly` risk record of a scored reading, made at `now`. */
function anomalyRecord(reading: Reading, result: AnomalyResult, now: number): RiskRecord {
  return {
    ts: now,
    asset: reading.asset,
    model: ANOMALY_MODEL,
    modelVersion: ANOMALY_MODEL_VERSION,
    kind: 'anomaly',
    score: round(result.score),
    threshold: round(result.threshold),
    atRisk: result.atRisk,
    readingTs: reading.ts,
    drivers: result.drivers.map((d) => ({ feature: d.feature, value: round(d.value), contribution: round(d.contribution) })),
  };
}

export function patternMatcher(patterns: readonly string[]): (name: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.includes('*')));
  const globs = patterns.filter((p) => p.includes('*')).map((p) => new RegExp(`^${p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`));
  return (name) => exact.has(name) || globs.some((re) => re.test(name));
}

export class AnomalyScorer implements Component, ReadingConsumer {
  readonly name = 'anomaly';
  private readonly tracked = new Map<string, Tracked>();
  private readonly watches: (asset: string) => boolean;
  private readonly excluded: (signal: string) => boolean;
  private readonly excludeCache = new Map<string, boolean>();
  private timer: GridInterval | null = null;
  private recordTimer: GridInterval | null = null;
  private stopped = false;
  private warnedAssets = false;
  private counters = { scored: 0, recorded: 0, anomalies: 0, restored: 0, discarded: 0, persistErrors: 0 };
  /** Where anomaly records go (the store writer and health, wired by the agent). */
  private readonly onRisk: (records: RiskRecord[]) => void;

  constructor(
    private readonly config: Readonly<AnomalyConfig>,
    private readonly store: MetaStore | null,
    risk: RiskConsumer | ((records: RiskRecord[]) => void),
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.onRisk = typeof risk === 'function' ? risk : (records) => risk.consumeRisk(records);
    this.watches = patternMatcher(config.assets);
    this.excluded = patternMatcher(config.exclude);
  }

  async start(): Promise<void> {
    this.timer = everyOnGrid(() => this.persist(), this.config.persistIntervalMs).unref();
    // Readings of an asset end an interval themselves; this catches the peak of an asset that went quiet.
    if (this.config.recordIntervalMs > 0) {
      this.recordTimer = everyOnGrid(() => this.recordDue(), this.config.recordIntervalMs).unref();
    }
    this.log.info(
      {
        assets: this.config.assets,
        falseAlarmRate: this.config.falseAlarmRate,
        warmupSamples: this.config.warmupSamples,
        halfLifeHours: this.config.halfLifeHours,
        recordIntervalMs: this.config.recordIntervalMs,
      },
      'anomaly detection on',
    );
  }

  get stats(): AnomalyStats {
    const s: AnomalyStats = { assets: this.tracked.size, warming: 0, scoring: 0, idle: 0, maxBytesPerAsset: 0, meanBytesPerAsset: 0, ...this.counters };
    let total = 0;
    for (const t of this.tracked.values()) {
      const sum = t.detector.summary();
      s[sum.state]++;
      total += sum.bytes;
      s.maxBytesPerAsset = Math.max(s.maxBytesPerAsset, sum.bytes);
    }
    s.meanBytesPerAsset = this.tracked.size ? Math.round(total / this.tracked.size) : 0;
    return s;
  }

  /** Per-asset state, for status. */
  assets(): AnomalyAssetStatus[] {
    const ts = this.now();
    return [...this.tracked].map(([asset, t]) => {
      const s = t.detector.summary();
      return {
        asset,
        state: s.state,
        samples: s.samples,
        warmupSamples: s.warmupSamples,
        signals: s.signals,
        scoredSignals: s.scoredSignals,
        threshold: s.threshold === null ? null : round(s.threshold),
        lastScore: t.lastScore === null ? null : round(t.lastScore),
        anomalies: t.anomalies,
        bytes: s.bytes,
        ts,
      };
    });
  }

  accept(reading: Reading): void {
    if (this.stopped) return;
    const t = this.trackedFor(reading.asset);
    if (!t) return;
    let values: Record<string, number> = reading.metrics;
    // A copy only when a signal is excluded: the default exclusion (`machine_failure`) names none of the host's.
    if (this.config.exclude.length && this.excludesAny(reading.metrics)) {
      values = {};
      for (const k in reading.metrics) if (!this.isExcluded(k)) values[k] = reading.metrics[k]!;
    }
    let result;
    try {
      result = t.detector.update(values, reading.ts);
    } catch (err) {
      // A bug must not take the pipeline down: start this asset afresh and say so.
      this.log.error({ asset: reading.asset, err: describeError(err) }, 'anomaly detector failed; its baseline is reset');
      this.tracked.set(reading.asset, { ...t, detector: this.fresh(), dirty: true, lastScore: null });
      return;
    }
    t.dirty = true;
    if (!result) return;
    this.counters.scored++;
    t.lastScore = result.score;
    if (result.atRisk) {
      this.counters.anomalies++;
      t.anomalies++;
    }
    this.offer(t, reading, result, this.now());
  }

  /**
   * Records a score now, holds it as its interval's highest, or lets it go (recordIntervalMs). The record, with its
   * rounded drivers, is built only where it is recorded or held: most scores of a quiet asset are neither.
   */
  private offer(t: Tracked, reading: Reading, result: AnomalyResult, now: number): void {
    // Immediate: every score (0), a flag, the first score after a flag, an asset's first score.
    if (this.config.recordIntervalMs <= 0 || result.atRisk || t.recordedAtRisk || t.recordedAt === null) {
      t.held = null;
      this.record(t, anomalyRecord(reading, result, now));
      return;
    }
    if (!t.held || round(result.score) > t.held.score) t.held = anomalyRecord(reading, result, now);
    if (this.intervalEnded(t, now)) this.recordHeld(t);
  }

  /** Whether the interval since the asset's last record is over at `now`. */
  private intervalEnded(t: Tracked, now: number): boolean {
    if (t.recordedAt === null) return false;
    // A clock set back starts the interval over rather than holding the records until it catches up.
    return now - t.recordedAt >= this.config.recordIntervalMs || now < t.recordedAt;
  }

  /** `at`: where the next interval starts. */
  private record(t: Tracked, r: RiskRecord, at = r.ts): void {
    t.recordedAt = at;
    t.recordedAtRisk = r.atRisk;
    this.counters.recorded++;
    this.onRisk([r]);
  }

  private recordHeld(t: Tracked): void {
    const held = t.held;
    if (!held) return;
    t.held = null;
    // The next interval starts now, when this one ended, not at the held score's own time (up to one interval earlier).
    this.record(t, held, this.now());
  }

  /** Records the held peak of every asset whose interval has ended (the timer), or of all of them (stop). */
  private recordDue(all = false): void {
    const now = this.now();
    for (const t of this.tracked.values()) {
      if (t.held && (all || this.intervalEnded(t, now))) this.recordHeld(t);
    }
  }

  /** Drops a signal's held value (stale, or failed a quality check). */
  /** The reading seam (core/types.ts): the same as `accept`. */
  consumeReading(reading: Reading): void {
    this.accept(reading);
  }

  /** The reading seam: the same as `forget`. */
  forgetSignal(asset: string, signal: string): void {
    this.forget(asset, signal);
  }

  forget(asset: string, signal: string): void {
    this.tracked.get(asset)?.detector.forget(signal);
  }

  private excludesAny(metrics: Readonly<Record<string, number>>): boolean {
    for (const k in metrics) if (this.isExcluded(k)) return true;
    return false;
  }

  private isExcluded(signal: string): boolean {
    let x = this.excludeCache.get(signal);
    if (x === undefined) {
      x = this.excluded(signal);
      if (this.excludeCache.size < 100_000) this.excludeCache.set(signal, x);
    }
    return x;
  }

  private fresh(): AnomalyDetector {
    return new AnomalyDetector(this.detectorOptions());
  }

  private detectorOptions() {
    const c = this.config;
    return { falseAlarmRate: c.falseAlarmRate, warmupSamples: c.warmupSamples, halfLifeHours: c.halfLifeHours, maxSignals: c.maxSignalsPerAsset };
  }

  private trackedFor(asset: string): Tracked | null {
    const t = this.tracked.get(asset);
    if (t) return t;
    if (!this.watches(asset)) return null;
    if (this.tracked.size >= MAX_ASSETS) {
      if (!this.warnedAssets) {
        this.warnedAssets = true;
        this.log.warn({ asset, max: MAX_ASSETS }, 'anomaly detection watches at most this many assets; narrow scoring.anomaly.assets');
      }
      return null;
    }
    const made: Tracked = {
      detector: this.load(asset) ?? this.fresh(),
      dirty: false,
      lastScore: null,
      anomalies: 0,
      recordedAt: null,
      recordedAtRisk: false,
      held: null,
    };
    this.tracked.set(asset, made);
    return made;
  }

  /** The asset's persisted baseline, or null (none, or discarded with a warning). */
  private load(asset: string): AnomalyDetector | null {
    if (!this.store) return null;
    let text: string | undefined;
    try {
      text = this.store.getMeta(anomalyMetaKey(asset));
    } catch (err) {
      this.log.warn({ asset, err: describeError(err) }, 'cannot read the anomaly baseline; learning afresh');
      return null;
    }
    if (text === undefined) return null;
    try {
      const detector = AnomalyDetector.restore(JSON.parse(text), this.detectorOptions());
      this.counters.restored++;
      const s = detector.summary();
      this.log.info({ asset, state: s.state, samples: s.samples, signals: s.signals }, 'anomaly baseline restored');
      return detector;
    } catch (err) {
      this.counters.discarded++;
      this.log.warn(
        { code: 'FW_ERR_ANOMALY_STATE', asset, key: anomalyMetaKey(asset), reason: describeError(err) },
        'persisted anomaly baseline is corrupt or incompatible; discarded, learning afresh',
      );
      return null;
    }
  }

  /** Writes every changed baseline, and the status summary. */
  persist(): void {
    if (!this.store) return;
    try {
      for (const [asset, t] of this.tracked) {
        if (!t.dirty) continue;
        this.store.setMeta(anomalyMetaKey(asset), JSON.stringify(t.detector.toJSON()));
        t.dirty = false;
      }
      this.store.setMeta(ANOMALY_STATUS_META_KEY, JSON.stringify(this.assets()));
    } catch (err) {
      this.counters.persistErrors++;
      this.log.warn({ err: describeError(err) }, 'cannot save the anomaly baselines; will retry');
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.timer?.clear();
    this.recordTimer?.clear();
    this.timer = this.recordTimer = null;
    // stop() flushes: the held peaks go to the storage keeper's last write.
    this.recordDue(true);
    this.persist();
  }
}

/** Six significant digits are plenty for a score and keep payloads small. */
function round(x: number): number {
  return Number(x.toPrecision(6));
}
