import path from 'node:path';
import type { Logger } from '../core/logger.js';
import type { BindingConfig } from '../config/load-config.js';
import { describeError, isForewarnError } from '../core/errors.js';
import type { Component, Reading, ReadingConsumer, RiskConsumer, RiskRecord } from '../core/types.js';
import { OnnxModel } from './onnx-model.js';
import { predictionBounds, readModel, type FeatureSpec, type ModelManifest } from './model-manifest.js';
import type { DriftMonitor } from './drift-monitor.js';
import { FixedHistogram } from '../core/exposition.js';

/** Scoring-batch latency buckets in seconds (`forewarn_scoring_batch_duration_seconds`, docs/observability.md). */
export const SCORING_LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] as const;

/**
 * What the scorer tells a shadow (a candidate model scored beside the current one): the records of one batch, or
 * that the candidate failed. The model lifecycle implements it (model-lifecycle/shadow-evaluator.ts).
 */
export interface ShadowObserver {
  observe(current: readonly RiskRecord[], candidate: readonly RiskRecord[]): void;
  fail(reason: string): void;
}

export interface RiskScorerOptions {
  modelsDir: string;
  threads: number;
  bindings: readonly BindingConfig[];
  /** Folders to try, in order, for a binding's model (installed versions first; see model-registry.ts). Default: `<modelsDir>/<model>`. */
  modelDirs?: (model: string) => string[];
}

export interface ScorerStats {
  models: Array<{ name: string; version: string; assets: string[] }>;
  scored: number;
  /** Readings not scored because a model input was absent. */
  skippedMissing: number;
  /** Readings not scored because an input failed its range check: never scored as if valid. */
  skippedInvalid: number;
  errors: number;
  lastBatchMs: number | null;
}

interface Bound {
  binding: BindingConfig;
  model: OnnxModel;
  /** Per manifest feature, the signal that feeds it on this binding. */
  signals: string[];
  /** Asset names, or patterns with `*` (e.g. `disk-*` for every disk the SMART source sees). */
  assets: (asset: string) => boolean;
  /** Sequence models: each asset's last readings, oldest first. */
  history: Map<string, Float32Array[]>;
  /** A candidate scored beside `of` on the same readings: its records go to the observer, never to onRisk. */
  shadow?: { of: Bound; observer: ShadowObserver; before: Set<string> };
}

function assetMatcher(patterns: readonly string[]): (asset: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.includes('*')));
  const globs = patterns.filter((p) => p.includes('*')).map((p) => new RegExp(`^${p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`));
  return (asset) => exact.has(asset) || globs.some((re) => re.test(asset));
}

/**
 * A binding whose model is not loaded yet: it loads on the first reading of one of its assets, so an agent whose
 * bound assets never report (no simulator, no such disk) never loads onnxruntime or the model.
 */
interface Dormant {
  binding: BindingConfig;
  dirs: string[];
  manifest: ModelManifest;
  assets: (asset: string) => boolean;
  /** Readings that woke it, scored once the model is loaded. */
  queued: Reading[];
  loading: Promise<void> | null;
}

/** Readings kept per dormant binding while its model loads. */
const MAX_QUEUED_WHILE_LOADING = 1000;

interface PendingRow {
  asset: string;
  /** The model's input for this reading: one row, or a window of rows for sequence models. */
  sample: Float32Array;
  /** The reading's own feature values (the last row of a window), for the drivers. */
  row: Float32Array;
  readingTs: number;
}

/** Readings waiting for a batch, per model; beyond this the oldest are dropped and counted as errors. */
const MAX_PENDING = 10_000;

/** How many drivers a risk record carries. */
const TOP_DRIVERS = 3;

/**
 * Keeps the latest value of every signal per asset and scores each bound asset on every reading, so a
 * model's inputs may come from several sources. Readings that arrive together are scored in one batch per
 * model, across assets.
 */
export class RiskScorer implements Component, ReadingConsumer {
  readonly name = 'scoring';
  readonly stats: ScorerStats = { models: [], scored: 0, skippedMissing: 0, skippedInvalid: 0, errors: 0, lastBatchMs: null };
  /** Every scoring batch's duration, for /metrics. */
  readonly latency = new FixedHistogram(SCORING_LATENCY_BUCKETS);
  private bound: Bound[] = [];
  private dormant: Dormant[] = [];
  private readonly latest = new Map<string, { ts: number; values: Map<string, number> }>();
  private readonly pending = new Map<Bound, PendingRow[]>();
  private flushing: Promise<void> | null = null;
  private scheduled = false;
  private stopped = false;
  private readonly warned = new Set<string>();

  /** Where the current models' records go (the store writer and health, wired by the agent); never the shadows'. */
  private readonly onRisk: (records: RiskRecord[]) => void;

  constructor(
    private readonly options: RiskScorerOptions,
    risk: RiskConsumer | ((records: RiskRecord[]) => void),
    private readonly log: Logger,
    /** Sees every input row that is scored, to tell when inputs leave the training distribution. */
    private readonly drift?: DriftMonitor,
  ) {
    this.onRisk = typeof risk === 'function' ? risk : (records) => risk.consumeRisk(records);
  }

  /** The reading seam (core/types.ts): the same as `accept`. */
  consumeReading(reading: Reading): void {
    this.accept(reading);
  }

  /** The reading seam: the same as `forget`. */
  forgetSignal(asset: string, signal: string): void {
    this.forget(asset, signal);
  }

  /** Checks each binding's manifest now; the model itself loads on the first reading of a bound asset (Dormant). */
  async start(): Promise<void> {
    for (const binding of this.options.bindings) {
      const dirs = this.options.modelDirs?.(binding.model) ?? [path.join(this.options.modelsDir, binding.model)];
      try {
        const { manifest, from } = this.firstManifest(dirs);
        this.dormant.push({ binding, dirs: dirs.slice(from), manifest, assets: assetMatcher(binding.assets), queued: [], loading: null });
        this.log.debug({ model: manifest.name, version: manifest.version, assets: binding.assets }, 'model bound; it loads on the first reading of its assets');
      } catch (err) {
        this.notLoaded(err, dirs[dirs.length - 1]!);
      }
    }
    this.refreshModelStats();
  }

  /** One bad model never stops the agent: the others score, and the error is counted. */
  private notLoaded(err: unknown, dir: string): void {
    this.stats.errors++;
    this.log.error(
      { err: describeError(err), code: isForewarnError(err) ? err.code : undefined, details: isForewarnError(err) ? err.details : undefined, dir },
      'model not loaded; its assets will not be scored',
    );
  }

  /** The manifest of the first of `dirs` with a valid one (the order loadFirst tries them in), and its index. */
  private firstManifest(dirs: readonly string[]): { manifest: ModelManifest; from: number } {
    let first: unknown;
    for (const [from, dir] of dirs.entries()) {
      try {
        return { manifest: readModel(dir).manifest, from };
      } catch (err) {
        first ??= err;
        if (from < dirs.length - 1)
          this.log.warn(
            { err: describeError(err), code: isForewarnError(err) ? err.code : undefined, dir },
            'model version not loaded; trying the one before it',
          );
      }
    }
    throw first ?? new Error('no model folder');
  }

  /** Dormant bindings of this reading's asset start loading their model; the reading waits for it. */
  private wake(reading: Reading): void {
    for (const d of this.dormant) {
      if (!d.assets(reading.asset)) continue;
      if (d.queued.length < MAX_QUEUED_WHILE_LOADING) d.queued.push(reading);
      else this.stats.errors++;
      d.loading ??= this.load(d);
    }
  }

  private async load(d: Dormant): Promise<void> {
    let model: OnnxModel;
    try {
      model = await this.loadFirst(d.dirs);
    } catch (err) {
      this.dormant = this.dormant.filter((x) => x !== d);
      this.refreshModelStats();
      this.notLoaded(err, d.dirs[d.dirs.length - 1]!);
      return;
    }
    // Stopped, or a model update bound this binding while it loaded: the update wins.
    if (this.stopped || !this.dormant.includes(d)) {
      await model.release().catch(() => undefined);
      return;
    }
    this.dormant = this.dormant.filter((x) => x !== d);
    const b = this.bind(d.binding, model);
    this.bound.push(b);
    this.refreshModelStats();
    this.log.info({ model: model.name, version: model.manifest.version, assets: d.binding.assets }, 'model loaded');
    for (const r of d.queued.splice(0)) this.accept(r, b);
  }

  /** Whether `name`'s bindings all wait for their first reading and will then load from `dir` first. */
  waitsToLoad(name: string, dir: string): boolean {
    const waiting = this.dormant.filter((d) => d.binding.model === name);
    return waiting.length > 0 && waiting.every((d) => d.dirs[0] === dir) && !this.bound.some((b) => !b.shadow && b.binding.model === name);
  }

  /** Loads `name`'s waiting bindings now, without a reading (a candidate needs the current model to shadow against). */
  async loadNow(name: string): Promise<void> {
    await Promise.all(this.dormant.filter((d) => d.binding.model === name).map((d) => (d.loading ??= this.load(d))));
  }

  /** Scores the reading on every bound model of its asset (on `only`, for readings that waited for it to load). */
  accept(reading: Reading, only?: Bound): void {
    if (this.stopped) return;
    if (!only && this.dormant.length) this.wake(reading);
    let state: { ts: number; values: Map<string, number> } | undefined;
    for (const b of this.bound) {
      if (only && b !== only) continue;
      if (!b.assets(reading.asset)) continue;
      if (!state) {
        state = this.latest.get(reading.asset);
        if (!state) this.latest.set(reading.asset, (state = { ts: reading.ts, values: new Map() }));
        state.ts = reading.ts;
        for (const [k, v] of Object.entries(reading.metrics)) state.values.set(k, v);
      }
      // Snapshot the row now: every reading is scored, even when several arrive before a batch runs.
      const row = this.inputRow(b, reading.asset);
      if (!row) continue;
      if (!b.shadow) this.drift?.observe(b.model.manifest, reading.asset, row);
      const queue = this.pending.get(b) ?? [];
      if (queue.length >= MAX_PENDING) {
        queue.shift();
        this.stats.errors++;
      }
      queue.push({ asset: reading.asset, sample: this.sampleFor(b, reading.asset, row), row, readingTs: reading.ts });
      this.pending.set(b, queue);
    }
    if (this.pending.size && !this.scheduled) {
      this.scheduled = true;
      // Coalesce readings that arrive in the same tick into one batch per model.
      setImmediate(() => {
        this.scheduled = false;
        void this.flush();
      });
    }
  }

  /** A sequence model's window for this reading (the asset's last readings, padded with its first); else the row. */
  private sampleFor(b: Bound, asset: string, row: Float32Array): Float32Array {
    const steps = b.model.steps;
    if (steps === 1) return row;
    let past = b.history.get(asset);
    if (!past) b.history.set(asset, (past = []));
    past.push(row);
    if (past.length > steps) past.shift();
    const width = row.length;
    const sample = new Float32Array(steps * width);
    const pad = steps - past.length;
    for (let t = 0; t < steps; t++) sample.set(past[Math.max(0, t - pad)]!, t * width);
    return sample;
  }

  /** Drops a signal's last value (it went stale), so no later score uses it. */
  forget(asset: string, signal: string): void {
    this.latest.get(asset)?.values.delete(signal);
  }

  /** The continuous signals the bound models read (not categories, not counters), for the data-quality checks. */
  analogInputSignals(): string[] {
    const analog = (manifest: ModelManifest, binding: BindingConfig) =>
      manifest.inputs.features.filter((f) => !f.categories && !f.counter).map((f) => binding.signals?.[f.name] ?? f.signal);
    return [...this.bound.map((b) => analog(b.model.manifest, b.binding)), ...this.dormant.map((d) => analog(d.manifest, d.binding))].flat();
  }

  /** Readings accepted whose scores are still to come (queued, being scored, or waiting for their model to load). */
  get scoring(): boolean {
    return this.scheduled || this.flushing !== null || this.pending.size > 0 || this.dormant.some((d) => d.queued.length > 0);
  }

  /** Scores every queued reading. Calls queue behind each other, so at most one batch runs at a time. */
  flush(): Promise<void> {
    // Models loading for readings already accepted come first: those readings are scored by this flush too.
    const loading = this.dormant.map((d) => d.loading).filter((p): p is Promise<void> => p !== null);
    const previous = this.flushing ?? Promise.resolve();
    const next = Promise.all([previous, ...loading]).then(() => this.scorePending());
    // Cleared by the last flush in the chain only: `scoring` (the storage keeper's busy()) reads it.
    const tail: Promise<void> = next.finally(() => {
      if (this.flushing === tail) this.flushing = null;
    });
    this.flushing = tail;
    return next;
  }

  private async scorePending(): Promise<void> {
    if (!this.pending.size) return;
    const work = [...this.pending];
    this.pending.clear();
    const started = performance.now();
    const records: RiskRecord[] = [];
    const byBound = new Map<Bound, RiskRecord[]>();
    for (const [b, rows] of work) {
      const scored = await this.scoreModel(b, rows);
      byBound.set(b, scored);
      if (!b.shadow) records.push(...scored);
    }
    this.stats.lastBatchMs = performance.now() - started;
    this.latency.observe(this.stats.lastBatchMs / 1000);
    if (records.length) this.onRisk(records);
    // Shadows see the current model's records for the same readings (scored in this same batch).
    // A shadow with nothing to score (it refused every reading) still sees the current model's records.
    for (const b of new Set([...byBound.keys(), ...this.bound])) {
      if (!b.shadow) continue;
      const scored = byBound.get(b) ?? [];
      // Readings queued before the shadow began were never offered to the candidate: not compared.
      const { before } = b.shadow;
      const current = (byBound.get(b.shadow.of) ?? []).filter((r) => !before.size || !before.delete(`${r.asset}\u0000${r.readingTs}`));
      if (current.length || scored.length) b.shadow.observer.observe(current, scored);
    }
  }

  private warnOnce(key: string, obj: object, msg: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(obj, msg);
  }

  private inputRow(b: Bound, asset: string): Float32Array | null {
    const features = b.model.manifest.inputs.features;
    const values = this.latest.get(asset)!.values;
    const row = new Float32Array(features.length);
    for (let i = 0; i < features.length; i++) {
      const f = features[i]!;
      const v = values.get(b.signals[i]!);
      if ((v === undefined || Number.isNaN(v)) && f.optional) {
        row[i] = Number.NaN;
        continue;
      }
      if (v === undefined || !Number.isFinite(v)) {
        if (!b.shadow) this.stats.skippedMissing++;
        this.warnOnce(
          `missing:${b.model.name}:${asset}:${f.name}`,
          { model: b.model.name, asset, input: f.name, signal: b.signals[i] },
          'model input missing; asset not scored until it arrives',
        );
        return null;
      }
      if (!inRange(f, v)) {
        if (!b.shadow) this.stats.skippedInvalid++;
        this.warnOnce(
          `range:${b.model.name}:${asset}:${f.name}`,
          { model: b.model.name, asset, input: f.name, value: v, range: f.range, categories: f.categories },
          'model input out of its valid range; reading not scored',
        );
        return null;
      }
      row[i] = v;
    }
    return row;
  }

  private async scoreModel(b: Bound, rows: PendingRow[]): Promise<RiskRecord[]> {
    const features = b.model.manifest.inputs.features;
    const width = features.length;
    const size = width * b.model.steps;
    const explain = features.map((f) => f.baseline);
    // Each reading's sample, then one copy per explained feature with that feature set to its baseline
    // (occlusion; across the whole window for sequence models).
    const explained = explain.filter((x) => x !== undefined).length;
    const perAsset = 1 + explained;
    const data = new Float32Array(rows.length * perAsset * size);
    rows.forEach(({ sample }, r) => {
      let k = r * perAsset;
      data.set(sample, k++ * size);
      explain.forEach((baseline, i) => {
        if (baseline === undefined) return;
        const copy = sample.slice();
        for (let at = i; at < size; at += width) copy[at] = baseline;
        data.set(copy, k++ * size);
      });
    });
    let scores: Float32Array;
    try {
      scores = await b.model.run(data, rows.length * perAsset);
    } catch (err) {
      this.stats.errors++;
      this.log.error(
        { err: describeError(err), model: b.model.name, version: b.model.manifest.version, shadow: b.shadow ? true : undefined },
        'scoring failed',
      );
      b.shadow?.observer.fail(`scoring failed: ${describeError(err)}`);
      return [];
    }
    const { outputs, version } = b.model.manifest;
    const now = Date.now();
    const out: RiskRecord[] = [];
    rows.forEach(({ asset, row, readingTs }, r) => {
      const base = r * perAsset;
      const score = scores[base]!;
      if (!Number.isFinite(score) || (outputs.kind === 'probability' && (score < 0 || score > 1))) {
        this.stats.errors++;
        this.warnOnce(`output:${b.model.name}`, { model: b.model.name, score, code: 'FW_ERR_MODEL_OUTPUT' }, 'model output invalid; not recorded');
        b.shadow?.observer.fail(`invalid output ${score} for ${asset}`);
        return;
      }
      const drivers: RiskRecord['drivers'] = [];
      let k = base + 1;
      features.forEach((f, i) => {
        if (f.baseline === undefined) return;
        const value = row[i]!;
        const contribution = score - scores[k++]!;
        // A missing input is not a driver: there is no reading to point at.
        if (!Number.isNaN(value)) drivers.push({ feature: f.name, value: round(value), contribution: round(contribution) });
      });
      drivers.sort((x, y) => Math.abs(y.contribution) - Math.abs(x.contribution));
      const record: RiskRecord = {
        ts: now,
        asset,
        model: b.model.name,
        modelVersion: version,
        kind: outputs.kind,
        score: round(score),
        // The calibrated interval the manifest carries (RUL models), so the remaining life can be planned on.
        ...(outputs.interval ? { interval: roundBounds(predictionBounds(outputs.interval, round(score)), round(score)) } : {}),
        // Remaining useful life is at risk when it is short; probabilities and anomaly scores when they are high.
        atRisk: outputs.threshold === undefined ? false : outputs.kind === 'rul' ? score <= outputs.threshold : score >= outputs.threshold,
        readingTs,
        drivers: drivers.slice(0, TOP_DRIVERS),
      };
      if (outputs.threshold !== undefined) record.threshold = outputs.threshold;
      out.push(record);
    });
    if (!b.shadow) this.stats.scored += out.length;
    return out;
  }

  /** Loads the first of `dirs` that loads (installed version, then what a rollback would restore, then shipped). */
  private async loadFirst(dirs: readonly string[]): Promise<OnnxModel> {
    let first: unknown;
    for (const dir of dirs) {
      try {
        return await OnnxModel.load(dir, { threads: this.options.threads });
      } catch (err) {
        first ??= err;
        if (dir !== dirs[dirs.length - 1])
          this.log.warn(
            { err: describeError(err), code: isForewarnError(err) ? err.code : undefined, dir },
            'model version not loaded; trying the one before it',
          );
      }
    }
    throw first ?? new Error('no model folder');
  }

  private bind(binding: BindingConfig, model: OnnxModel): Bound {
    const signals = model.manifest.inputs.features.map((f) => binding.signals?.[f.name] ?? f.signal);
    return { binding, model, signals, assets: assetMatcher(binding.assets), history: new Map() };
  }

  /** Bound models, loaded or waiting for their first reading, in binding order. */
  private refreshModelStats(): void {
    const models: ScorerStats['models'] = [];
    for (const binding of this.options.bindings) {
      const b = this.bound.find((x) => !x.shadow && x.binding === binding);
      const manifest = b?.model.manifest ?? this.dormant.find((d) => d.binding === binding)?.manifest;
      if (manifest) models.push({ name: manifest.name, version: manifest.version, assets: [...binding.assets] });
    }
    this.stats.models = models;
  }

  /** The model scoring `name`'s bindings now, or null when none loaded. */
  current(name: string): OnnxModel | null {
    return this.bound.find((b) => !b.shadow && b.binding.model === name)?.model ?? null;
  }

  /**
   * Puts `model` in place of `name`'s model on every binding of that name (binding it where none had loaded),
   * atomically between readings: readings already queued are still scored by the old model, which is then
   * released. Sequence models keep their windows when the inputs are the same.
   */
  async swapModel(name: string, model: OnnxModel): Promise<void> {
    const old = new Set<OnnxModel>();
    // Bindings still waiting for their first reading take the new model now (a load in flight is discarded);
    // the readings that woke them are scored by it.
    const waited = this.dormant.filter((d) => d.binding.model === name).flatMap((d) => d.queued.splice(0));
    this.dormant = this.dormant.filter((d) => d.binding.model !== name);
    for (const binding of this.options.bindings.filter((x) => x.model === name)) {
      const next = this.bind(binding, model);
      const i = this.bound.findIndex((b) => !b.shadow && b.binding === binding);
      if (i < 0) {
        this.bound.push(next);
        continue;
      }
      const prev = this.bound[i]!;
      old.add(prev.model);
      if (prev.model.steps === model.steps && prev.signals.join('\u0000') === next.signals.join('\u0000')) next.history = prev.history;
      this.bound[i] = next;
      for (const s of this.bound) if (s.shadow?.of === prev) s.shadow.of = next;
    }
    this.refreshModelStats();
    this.log.info({ model: name, version: model.manifest.version }, 'model swapped');
    for (const r of waited) for (const b of this.bound) if (!b.shadow && b.model === model) this.accept(r, b);
    await this.flush().catch(() => undefined);
    for (const m of old) if (m !== model && !this.bound.some((b) => b.model === m)) await m.release().catch(() => undefined);
  }

  /**
   * Scores `name`'s assets with `candidate` too, on the same readings as the current model, handing both
   * batches to `observer`; the candidate's records are never published. Returns how many bindings it shadows
   * (0: no current model of that name is bound, so there is nothing to compare with).
   */
  shadow(name: string, candidate: OnnxModel, observer: ShadowObserver): number {
    const currents = this.bound.filter((b) => !b.shadow && b.binding.model === name);
    for (const of of currents) {
      const before = new Set((this.pending.get(of) ?? []).map((r) => `${r.asset}\u0000${r.readingTs}`));
      this.bound.push({ ...this.bind(of.binding, candidate), shadow: { of, observer, before } });
    }
    return currents.length;
  }

  /** Stops shadowing `name`, once the readings queued for the candidate are scored. The caller keeps the candidate model. */
  async unshadow(name: string): Promise<void> {
    const before = this.bound.length;
    this.bound = this.bound.filter((b) => !(b.shadow && b.binding.model === name));
    if (this.bound.length !== before) await this.flush().catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.flush().catch(() => undefined);
    for (const m of new Set(this.bound.map((b) => b.model))) await m.release().catch(() => undefined);
    this.bound = [];
  }
}

function inRange(f: FeatureSpec, v: number): boolean {
  if (f.categories) return Number.isInteger(v) && v >= 0 && v < f.categories.length;
  if (f.range) return v >= f.range[0] && v <= f.range[1];
  return true;
}

/** Six significant digits are plenty for a score and keep payloads small. */
function round(x: number): number {
  return Number(x.toPrecision(6));
}

/** Bounds rounded as the score is, and still containing the (rounded) score. */
function roundBounds(b: { level: number; lower: number; upper: number }, score: number): { level: number; lower: number; upper: number } {
  return { level: b.level, lower: Math.min(score, round(b.lower)), upper: Math.max(score, round(b.upper)) };
}
