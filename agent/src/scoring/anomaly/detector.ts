/**
 * Adaptive multivariate anomaly detection for one asset: any numeric signals, learned on the host, no labels.
 *
 * The model. Each signal the asset reports becomes a slot once it has shown it varies (it went both up and
 * down, twice). Per signal, first a scale: a signal that never went negative and is strongly skewed to the
 * right (I/O and network rates, queue lengths) is taken as asinh(value / median), linear around its level and
 * logarithmic in its bursts; others as they are (`transformScale`). Then each value becomes a normal score
 * (marginal.ts): standardised by an exponentially weighted mean and variance, then passed through the
 * signal's own recent distribution to the normal quantile of its rank, z* = Φ⁻¹(F(z)) — a Gaussian copula. A
 * Gaussian signal is left as it is; a signal whose normal bursts reach 30σ gets z* ≈ 2 for them, so it
 * cannot swamp the others' share of the distance; a value beyond anything seen stays far out.
 *
 * Across signals the detector keeps the exponentially weighted mean and covariance of the normal scores
 * (a streaming estimate with a half-life in hours, `halfLifeHours`). A reading is scored *before* it is
 * learned, by its squared Mahalanobis distance in correlation space
 *
 *     u_i = (z*_i − μ_i) / σ_i,   d² = uᵀ·P·u,   P = ((1 − λ)·R + λ·I)⁻¹
 *
 * where R is the correlation matrix of the scores and λ shrinks it toward the identity (λ = max(0.01,
 * p/(p + n)), the more the fewer samples per dimension: a Ledoit–Wolf-style guard against a singular or noisy
 * estimate, e.g. `memory.used` and `memory.available` that sum to a constant). d² is then put on one scale
 * whatever the number of signals p by the Wilson–Hilferty transform, score = ((d²/p)^⅓ − (1 − 2/9p)) / √(2/9p),
 * about standard normal on a Gaussian baseline. So scores stay comparable when signals come and go.
 *
 * Why this and not an ensemble of per-signal models (Netdata's k-means per metric, anomalous when all agree):
 * a univariate model cannot see a broken relationship (fan speed no longer following temperature, torque no
 * longer following power) while each signal stays in its usual range, and that is the typical early sign of a
 * mechanical or cooling fault. Isolation forests or autoencoders would catch it too, but need batch training,
 * give no exact attribution, and cost far more. The Mahalanobis distance is the optimal test for a shifted
 * Gaussian, updates in O(p²) per reading, and splits exactly into per-signal terms: the drivers. Its limits:
 * only linear relationships, one operating regime (a machine that alternates idle/full load gets a wide
 * baseline that is less sensitive in each mode).
 *
 * Drivers. For each signal, how far the score falls when that signal is left out: leaving signal i out of d²
 * removes exactly (P·u)_i² / P_ii (the squared residual of signal i given all the others), so
 * contribution_i = score − WH(d² − (P·u)_i²/P_ii, p − 1). The three largest are reported.
 *
 * The threshold is calibrated, not assumed: the detector's own scores on normal behaviour go into a decaying
 * histogram (score-threshold.ts) and the threshold is the score that a fraction `falseAlarmRate` of them exceed,
 * with an extreme-value tail fit where the history is too short for the empirical quantile.
 *
 * Warm-up. Nothing is reported until the asset has `warmupSamples` readings; signals join the score once they
 * have half of that themselves, so the second half of the warm-up also calibrates the threshold.
 *
 * Adaptation. The weight of a reading is 1 − 2^(−Δt/halfLife) from the time since the previous one (a reading
 * every second or every ten minutes adapts at the same speed per hour), never more than 1 % of the baseline.
 * A flagged reading starts an episode, which lasts until ten readings in a row are normal. During an episode
 * only each signal's level and spread learn, ten times slower, with a flagged reading's deviation clipped to
 * the threshold's radius; the signals' distributions, the correlations and the threshold do not learn at all
 * (the threshold takes the episode's first score only). So a fault does not become the new normal, nor raise
 * its own threshold; but a lasting change (a new workload) is absorbed, a 6σ step in under a half-life, larger
 * ones in a few, instead of alarming forever.
 *
 * Signals. Constant signals and counters that only grow never join (they never go both up and down twice). Values are held between
 * readings, so signals from several sources of one asset are modelled together; a held value is used for up
 * to five of its usual intervals, then the signal is left out until it returns. `forget()` drops one at once.
 * At most `maxSignals` slots; a slot unseen for a half-life is recycled for a new signal.
 *
 * Cost (test/bench/anomaly.bench.ts): memory ≈ 8·(p(p+1) + 55·p) bytes for C, P and the per-signal
 * distributions, plus 3 KiB of score histogram and the names: 10 KB at 10 signals, 29 KB at 30, 146 KB at
 * 100 (`bytes()`). Time per reading O(p²): about 2.5, 9 and 41 µs at 10, 30 and 100 signals on one core. P is
 * recomputed (O(p³)) only after 1 % of the baseline's weight has turned over or the set of signals changed.
 *
 * The state is plain data (`toJSON`/`restore`): a restored detector scores exactly as the original would.
 */
import { at, packedCholesky, packedInverseFromCholesky, packedLength, packedSymMatVec } from './packed-matrix.js';
import { ScoreThreshold, type Calibration, type ScoreThresholdState } from './score-threshold.js';
import { MarginalMap, type MarginalState } from './marginal.js';

/** `modelVersion` of anomaly records: bump when scores change meaning. */
export const ANOMALY_MODEL_VERSION = '1.0.0';
const STATE_FORMAT = 'forewarn-anomaly';
const STATE_VERSION = 1;

/** Samples of a signal before it may join. */
const SCREEN_SAMPLES = 20;
/** A signal's first samples only set its scale; its normal scores are learned from then on. */
const SCALE_SAMPLES = 10;
/** Ups and downs a signal must show before it joins: constants and counters never do. */
const MIN_MOVES = 2;
/** A held value is used for this many of its signal's usual intervals. */
const STALE_INTERVALS = 5;
/** No single reading weighs more than this in the baseline (e.g. the first after a long outage). */
const MAX_WEIGHT = 0.01;
const MIN_SHRINKAGE = 0.01;
/** An episode lasts until this many readings in a row are not flagged. */
const EPISODE_QUIET = 10;
/** During an episode readings are learned this much slower. */
const ANOMALY_LEARNING = 0.1;
/** P is recomputed after this much of the baseline's weight has turned over. */
const REFRESH_TURNOVER = 0.01;
/** The threshold is recomputed every this many scored readings. */
const THRESHOLD_EVERY = 16;
/** Before there is a threshold, deviations are clipped at this score. */
const WARMUP_CLIP_SCORE = 8;
const TOP_DRIVERS = 3;

export interface DetectorOptions {
  /** Fraction of scored readings on normal behaviour that are flagged. */
  falseAlarmRate: number;
  warmupSamples: number;
  halfLifeHours: number;
  maxSignals: number;
}

export interface AnomalyDriver {
  feature: string;
  value: number;
  contribution: number;
}

export interface AnomalyResult {
  score: number;
  threshold: number;
  atRisk: boolean;
  drivers: AnomalyDriver[];
  /** Signals in the score. */
  signals: number;
}

export type DetectorState = 'warming' | 'scoring' | 'idle';

export interface DetectorSummary {
  state: DetectorState;
  /** Readings learned (of `warmupSamples` while warming). */
  samples: number;
  warmupSamples: number;
  /** Signals modelled, and of those in the last score. */
  signals: number;
  scoredSignals: number;
  /** Signals seen but not modelled (constant, counters, not yet screened, or over the cap). */
  otherSignals: number;
  threshold: number | null;
  bytes: number;
}

interface Slot {
  name: string;
  /** Samples learned. */
  n: number;
  /** Latest value (held between readings). */
  value: number;
  seenTs: number;
  /** Usual interval between its values (ms), 0 until known. */
  gap: number;
  /** Dropped by forget() until its next value. */
  forgotten: boolean;
  /** asinh(value / scale) is modelled; 0: the value as is. */
  scale: number;
  /** The modelled (transformed) value. */
  x: number;
}

interface Candidate {
  n: number;
  last: number;
  ups: number;
  downs: number;
  seenTs: number;
  /** Its first SCREEN_SAMPLES values, until its scale is known. */
  screen: number[];
  /** The scale of its transform once screened (0: modelled as is), -1 before. */
  scale: number;
}

interface Precision {
  /** Slot indices, in the order of P's rows. */
  slots: number[];
  /** Packed inverse of the shrunk correlation matrix. */
  p: Float64Array;
  shrinkage: number;
  /** Baseline weight turned over since P was computed. */
  turnover: number;
}

/** The persisted form (JSON). */
export interface DetectorStateJson {
  format: typeof STATE_FORMAT;
  version: number;
  modelVersion: string;
  n: number;
  readings: number;
  lastTs: number | null;
  calibration: Calibration | null;
  sinceThreshold: number;
  sinceFlag: number;
  lastSignals: number;
  slots: Array<[name: string, n: number, value: number, seenTs: number, gap: number, forgotten: 0 | 1, scale: number]>;
  mean: number[];
  cov: number[];
  candidates: Array<[name: string, n: number, last: number, ups: number, downs: number, seenTs: number, scale: number, screen: number[]]>;
  precision: { slots: number[]; p: number[]; shrinkage: number; turnover: number } | null;
  histogram: ScoreThresholdState;
  marginals: MarginalState;
}

/** Wilson–Hilferty: a χ²-like distance on p dimensions → about standard normal. */
export function whScore(d2: number, p: number): number {
  const v = 2 / (9 * p);
  return (Math.cbrt(Math.max(0, d2) / p) - (1 - v)) / Math.sqrt(v);
}

/** The distance whose whScore is `score`. */
export function whDistance(score: number, p: number): number {
  const v = 2 / (9 * p);
  const c = 1 - v + score * Math.sqrt(v);
  return c <= 0 ? 0 : p * c * c * c;
}

export class AnomalyDetector {
  private readonly halfLifeMs: number;
  private readonly maxCandidates: number;
  private slots: Slot[] = [];
  private readonly slotIndex = new Map<string, number>();
  private mean = new Float64Array(0);
  private cov = new Float64Array(0);
  private readonly candidates = new Map<string, Candidate>();
  private precision: Precision | null = null;
  private hist: ScoreThreshold;
  /** Per-signal location, scale and distribution: value → normal score. */
  private marg: MarginalMap;
  private n = 0;
  private readings = 0;
  private lastTs: number | null = null;
  private calibration: Calibration | null = null;
  private sinceThreshold = 0;
  /** Scored readings since the last flagged one (EPISODE_QUIET and more: no episode). */
  private sinceFlag = EPISODE_QUIET;
  private lastSignals = 0;
  // Scratch buffers, grown as needed.
  private z = new Float64Array(0);
  private w = new Float64Array(0);
  private dev = new Float64Array(0);
  private rate = new Float64Array(0);
  private zr = new Float64Array(0);
  private zs = new Float64Array(0);

  constructor(private readonly options: DetectorOptions) {
    this.halfLifeMs = options.halfLifeHours * 3_600_000;
    this.maxCandidates = Math.max(256, 4 * options.maxSignals);
    this.hist = new ScoreThreshold(this.halfLifeMs);
    this.marg = new MarginalMap(this.halfLifeMs);
  }

  /**
   * Scores a reading against the baseline, then learns it. `values` may carry any subset of the asset's
   * signals. Returns null while warming up, or when the reading carries no modelled signal.
   */
  update(values: Readonly<Record<string, number>>, ts: number): AnomalyResult | null {
    this.readings++;
    let touched = false;
    for (const name in values) {
      const v = values[name]!;
      if (!Number.isFinite(v)) continue;
      const i = this.slotIndex.get(name);
      if (i !== undefined) {
        this.observe(this.slots[i]!, v, ts);
        touched = true;
      } else if (this.screen(name, v, ts)) touched = true;
    }
    if (!touched) return null;
    const dt = this.lastTs === null ? 0 : Math.max(0, ts - this.lastTs);
    if (this.lastTs === null || ts > this.lastTs) this.lastTs = ts;
    const timeWeight = Math.min(MAX_WEIGHT, 1 - 2 ** (-dt / this.halfLifeMs));
    this.n++;

    // Fresh slots (present now, or held within their usual interval), and of those the ones scored; each
    // fresh value as a standardised deviation (zr) and a normal score (zs).
    const fresh: number[] = [];
    const scored: number[] = [];
    const scoredAt: number[] = [];
    const ready = Math.max(Math.ceil(this.options.warmupSamples / 2), 3 * SCALE_SAMPLES);
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i]!;
      if (s.forgotten) continue;
      if (s.seenTs !== ts && !(s.gap > 0 && ts - s.seenTs <= STALE_INTERVALS * s.gap)) continue;
      if (s.n >= ready && this.marg.varies(i)) {
        scored.push(i);
        scoredAt.push(fresh.length);
      }
      fresh.push(i);
    }
    this.marg.begin(ts);
    const zr = this.buffer('zr', fresh.length);
    const zs = this.buffer('zs', fresh.length);
    for (let k = 0; k < fresh.length; k++) {
      const i = fresh[k]!;
      zr[k] = this.marg.z(i, this.slots[i]!.x);
      zs[k] = this.marg.normal(i, zr[k]!);
    }

    let result: AnomalyResult | null = null;
    let clip = 1;
    let flagged = false;
    if (scored.length && this.n > ready) {
      const p = scored.length;
      const P = this.precisionFor(scored);
      const z = this.buffer('z', p);
      const w = this.buffer('w', p);
      for (let r = 0; r < p; r++) {
        const i = scored[r]!;
        z[r] = (zs[scoredAt[r]!]! - this.mean[i]!) / this.sigma(i);
      }
      packedSymMatVec(P.p, z, p, w);
      let d2 = 0;
      for (let r = 0; r < p; r++) d2 += z[r]! * w[r]!;
      d2 = Math.max(0, d2);
      const score = whScore(d2, p);
      this.lastSignals = p;
      if (this.n >= this.options.warmupSamples) {
        if (this.calibration === null || ++this.sinceThreshold >= THRESHOLD_EVERY) {
          this.calibration = this.hist.calibrate(this.options.falseAlarmRate);
          this.sinceThreshold = 0;
        }
        if (this.calibration !== null) {
          const threshold = this.calibration.threshold;
          flagged = score > threshold;
          result = { score, threshold, atRisk: flagged, drivers: this.drivers(scored, P.p, w, d2, score), signals: p };
        }
      }
      const quietBefore = this.sinceFlag >= EPISODE_QUIET;
      this.sinceFlag = flagged ? 0 : Math.min(this.sinceFlag + 1, EPISODE_QUIET);
      // Calibration learns from normal behaviour: outside an episode every score, inside only its first.
      if (quietBefore) this.hist.add(score, ts, result ? this.calibration : null, this.options.falseAlarmRate);
      const radius = whDistance(this.calibration?.threshold ?? WARMUP_CLIP_SCORE, p);
      if (d2 > radius) clip = Math.sqrt(radius / d2);
    }
    this.learn(fresh, scored, zr, zs, clip, timeWeight, this.sinceFlag < EPISODE_QUIET ? ANOMALY_LEARNING : 1);
    return result;
  }

  /** Drops a signal's held value (it went stale or failed a quality check) until it reports again. */
  forget(signal: string): void {
    const i = this.slotIndex.get(signal);
    if (i !== undefined) this.slots[i]!.forgotten = true;
  }

  summary(): DetectorSummary {
    const state: DetectorState =
      this.calibration !== null && this.n >= this.options.warmupSamples
        ? 'scoring'
        : this.slots.length === 0 && this.readings > 2 * SCREEN_SAMPLES
          ? 'idle'
          : 'warming';
    return {
      state,
      samples: this.n,
      warmupSamples: this.options.warmupSamples,
      signals: this.slots.length,
      scoredSignals: this.lastSignals,
      otherSignals: this.candidates.size,
      threshold: this.calibration?.threshold ?? null,
      bytes: this.bytes(),
    };
  }

  /** Memory held by this detector, estimated from its arrays plus a per-entry overhead for names and maps. */
  bytes(): number {
    const arrays = this.mean.byteLength + this.cov.byteLength + (this.precision?.p.byteLength ?? 0) + this.hist.bytes() + this.marg.bytes();
    const scratch = this.z.byteLength + this.w.byteLength + this.dev.byteLength + this.rate.byteLength + this.zr.byteLength + this.zs.byteLength;
    let names = 0;
    for (const s of this.slots) names += 120 + 2 * s.name.length;
    for (const k of this.candidates.keys()) names += 120 + 2 * k.length;
    return arrays + scratch + names + 256;
  }

  // --- learning -------------------------------------------------------------------------------------------

  private observe(s: Slot, v: number, ts: number): void {
    const dt = ts - s.seenTs;
    if (dt > 0) s.gap = s.gap === 0 ? dt : s.gap + 0.1 * (dt - s.gap);
    s.value = v;
    s.x = transform(v, s.scale);
    s.seenTs = ts;
    s.forgotten = false;
  }

  /** Follows a signal that is not (yet) modelled; returns true when it joined as a slot. */
  private screen(name: string, v: number, ts: number): boolean {
    let c = this.candidates.get(name);
    if (!c) {
      if (this.candidates.size >= this.maxCandidates) {
        // Forget the signal seen longest ago (names can churn: containers, hot-plugged devices).
        let oldest: string | undefined;
        let oldestTs = Infinity;
        for (const [k, o] of this.candidates) if (o.seenTs < oldestTs) [oldest, oldestTs] = [k, o.seenTs];
        this.candidates.delete(oldest!);
      }
      this.candidates.set(name, (c = { n: 0, last: v, ups: 0, downs: 0, seenTs: ts, screen: [], scale: -1 }));
    }
    if (c.scale < 0) {
      c.screen.push(v);
      if (c.screen.length >= SCREEN_SAMPLES) {
        c.scale = transformScale(c.screen);
        c.screen = [];
      }
    }
    if (c.n > 0) {
      if (v > c.last) c.ups++;
      else if (v < c.last) c.downs++;
    }
    c.n++;
    c.last = v;
    c.seenTs = ts;
    if (c.n < SCREEN_SAMPLES || c.ups < MIN_MOVES || c.downs < MIN_MOVES) return false;
    if (this.slots.length >= this.options.maxSignals && !this.recycle(ts)) return false;
    this.candidates.delete(name);
    this.addSlot(name, v, ts, c.scale < 0 ? 0 : c.scale);
    return true;
  }

  /** Frees the slot unseen for longest, if that is over a half-life. */
  private recycle(ts: number): boolean {
    let victim = -1;
    for (let i = 0; i < this.slots.length; i++) {
      const age = ts - this.slots[i]!.seenTs;
      if (age > this.halfLifeMs && (victim < 0 || this.slots[i]!.seenTs < this.slots[victim]!.seenTs)) victim = i;
    }
    if (victim < 0) return false;
    const keep = this.slots.map((_, i) => i).filter((i) => i !== victim);
    const mean = new Float64Array(keep.length);
    const cov = new Float64Array(packedLength(keep.length));
    keep.forEach((i, a) => {
      mean[a] = this.mean[i]!;
      for (let b = 0; b <= a; b++) cov[at(a, b)] = this.cov[at(i, keep[b]!)]!;
    });
    this.slots = keep.map((i) => this.slots[i]!);
    this.marg.keep(keep);
    this.mean = mean;
    this.cov = cov;
    this.reindex();
    this.precision = null;
    return true;
  }

  private addSlot(name: string, v: number, ts: number, scale: number): void {
    const p = this.slots.length;
    const mean = new Float64Array(p + 1);
    mean.set(this.mean);
    const cov = new Float64Array(packedLength(p + 1));
    cov.set(this.cov);
    this.mean = mean;
    this.cov = cov;
    this.marg.grow();
    this.slots.push({ name, n: 0, value: v, seenTs: ts, gap: 0, forgotten: false, scale, x: transform(v, scale) });
    this.slotIndex.set(name, p);
  }

  private reindex(): void {
    this.slotIndex.clear();
    this.slots.forEach((s, i) => this.slotIndex.set(s.name, i));
  }

  /**
   * Exponentially weighted mean and covariance (West's update), over the fresh slots. A slot's first samples
   * weigh 1/(n+1) (a plain average) until the time-based weight is larger.
   */
  private learn(fresh: number[], scored: number[], zr: Float64Array, zs: Float64Array, clip: number, timeWeight: number, factor: number): void {
    const k = fresh.length;
    const dev = this.buffer('dev', k);
    const rate = this.buffer('rate', k);
    // `scored` is a sorted subset of `fresh`: walk both to know which deviations are clipped.
    let next = 0;
    let turnover = 0;
    for (let r = 0; r < k; r++) {
      const i = fresh[r]!;
      const s = this.slots[i]!;
      const isScored = scored[next] === i;
      if (isScored) next++;
      const c = isScored ? clip : 1;
      // The signal's distribution and its normal scores' mean and covariance are learned once its scale has
      // settled; until then its standardised values (a variance from a handful of samples) mean little.
      const zn = s.n - SCALE_SAMPLES;
      // During an episode only the signal's level and spread learn (slowly); its distribution and the normal
      // scores' mean and covariance do not learn at all: a few hundred anomalous values would otherwise
      // become the normal tail, or the normal relationship between signals.
      this.marg.learn(i, s.x, zr[r]!, s.n === 0 ? 1 : Math.max(1 / (s.n + 1), timeWeight) * factor, c, zn < 0 || factor < 1 ? 0 : 1);
      rate[r] = zn < 0 || (factor < 1 && zn > 0) ? 0 : zn === 0 ? 1 : Math.max(1 / (zn + 1), timeWeight);
      dev[r] = zn < 0 ? 0 : (zs[r]! - this.mean[i]!) * c;
      if (isScored) turnover = Math.max(turnover, rate[r]!);
    }
    let uniform = true;
    for (let r = 1; r < k && uniform; r++) uniform = rate[r] === rate[0];
    if (uniform && k === this.slots.length && k > 0 && rate[0]! > 0) {
      // The usual case, every slot fresh at the same weight: one pass over C in memory order.
      const a = rate[0]!;
      const b = 1 - a;
      let idx = 0;
      for (let r = 0; r < k; r++) {
        const f = a * dev[r]!;
        for (let c = 0; c <= r; c++, idx++) this.cov[idx] = b * (this.cov[idx]! + f * dev[c]!);
      }
    } else {
      this.learnPairs(fresh, rate, dev);
    }
    for (let r = 0; r < k; r++) {
      const i = fresh[r]!;
      this.mean[i]! += rate[r]! * dev[r]!;
      this.slots[i]!.n++;
    }
    if (this.precision) this.precision.turnover += turnover;
  }

  /** The covariance update over a subset of slots, or with per-slot weights (young slots learn faster). */
  private learnPairs(fresh: number[], rate: Float64Array, dev: Float64Array): void {
    const k = fresh.length;
    // fresh is ascending, so (r, c ≤ r) walks the lower triangle of C.
    for (let r = 0; r < k; r++) {
      const ri = (fresh[r]! * (fresh[r]! + 1)) / 2;
      const ar = rate[r]!;
      const dr = dev[r]!;
      if (ar === 0) continue;
      for (let c = 0; c <= r; c++) {
        if (rate[c] === 0) continue;
        const a = ar > rate[c]! ? ar : rate[c]!;
        const idx = ri + fresh[c]!;
        this.cov[idx] = (1 - a) * (this.cov[idx]! + a * dr * dev[c]!);
      }
    }
  }

  // --- scoring --------------------------------------------------------------------------------------------

  /** Standard deviation of a signal's normal score (about 1). */
  private sigma(i: number): number {
    return Math.sqrt(Math.max(this.cov[at(i, i)]!, 1e-12));
  }

  private precisionFor(scored: number[]): Precision {
    const cur = this.precision;
    if (cur && cur.turnover < REFRESH_TURNOVER && sameList(cur.slots, scored)) return cur;
    const p = scored.length;
    const sig = scored.map((i) => this.sigma(i));
    let minN = Infinity;
    for (const i of scored) minN = Math.min(minN, this.slots[i]!.n);
    let shrinkage = Math.max(MIN_SHRINKAGE, p / (p + minN));
    for (;;) {
      const m = new Float64Array(packedLength(p));
      for (let a = 0; a < p; a++) {
        for (let b = 0; b < a; b++) m[at(a, b)] = ((1 - shrinkage) * this.cov[at(scored[a]!, scored[b]!)]!) / (sig[a]! * sig[b]!);
        m[at(a, a)] = 1;
      }
      if (packedCholesky(m, p)) {
        this.precision = { slots: [...scored], p: packedInverseFromCholesky(m, p), shrinkage, turnover: 0 };
        return this.precision;
      }
      // Pairwise updates (signals that come and go) can leave C slightly indefinite: shrink harder.
      shrinkage = Math.min(1, shrinkage * 2 + 0.02);
    }
  }

  private drivers(scored: number[], P: Float64Array, w: Float64Array, d2: number, score: number): AnomalyDriver[] {
    const p = scored.length;
    // The contribution grows with the part of d² a signal explains, so the top parts are the top drivers.
    const top: Array<{ r: number; part: number }> = [];
    for (let r = 0; r < p; r++) {
      const part = (w[r]! * w[r]!) / P[at(r, r)]!;
      if (top.length === TOP_DRIVERS && part <= top[TOP_DRIVERS - 1]!.part) continue;
      let k = top.length === TOP_DRIVERS ? TOP_DRIVERS - 1 : top.length;
      top[k] = { r, part };
      for (; k > 0 && top[k - 1]!.part < part; k--) [top[k - 1], top[k]] = [top[k]!, top[k - 1]!];
    }
    return top.map(({ r, part }) => {
      const slot = this.slots[scored[r]!]!;
      // With a single signal there is no score without it: the whole score is its contribution.
      const contribution = p > 1 ? score - whScore(d2 - part, p - 1) : score;
      return { feature: slot.name, value: slot.value, contribution };
    });
  }

  private buffer(name: 'z' | 'w' | 'dev' | 'rate' | 'zr' | 'zs', n: number): Float64Array {
    if (this[name].length < n) this[name] = new Float64Array(Math.max(n, 2 * this[name].length));
    return this[name];
  }

  // --- persistence ----------------------------------------------------------------------------------------

  toJSON(): DetectorStateJson {
    return {
      format: STATE_FORMAT,
      version: STATE_VERSION,
      modelVersion: ANOMALY_MODEL_VERSION,
      n: this.n,
      readings: this.readings,
      lastTs: this.lastTs,
      calibration: this.calibration ? { ...this.calibration } : null,
      sinceThreshold: this.sinceThreshold,
      sinceFlag: this.sinceFlag,
      lastSignals: this.lastSignals,
      slots: this.slots.map((s) => [s.name, s.n, s.value, s.seenTs, s.gap, s.forgotten ? 1 : 0, s.scale]),
      mean: Array.from(this.mean),
      cov: Array.from(this.cov),
      candidates: [...this.candidates].map(([k, c]) => [k, c.n, c.last, c.ups, c.downs, c.seenTs, c.scale, [...c.screen]]),
      precision: this.precision
        ? { slots: [...this.precision.slots], p: Array.from(this.precision.p), shrinkage: this.precision.shrinkage, turnover: this.precision.turnover }
        : null,
      histogram: this.hist.toJSON(),
      marginals: this.marg.toJSON(),
    };
  }

  /**
   * A detector from a persisted state. Throws an Error saying why when the state is malformed, from another
   * format or model version, or holds more signals than `options.maxSignals` allows.
   */
  static restore(state: unknown, options: DetectorOptions): AnomalyDetector {
    const s = state as Partial<DetectorStateJson> | null;
    if (!s || typeof s !== 'object') throw new Error('not an object');
    if (s.format !== STATE_FORMAT || s.version !== STATE_VERSION) throw new Error(`unknown format ${String(s.format)} v${String(s.version)}`);
    if (s.modelVersion !== ANOMALY_MODEL_VERSION) throw new Error(`made by anomaly model ${String(s.modelVersion)}, this is ${ANOMALY_MODEL_VERSION}`);
    const d = new AnomalyDetector(options);
    const count = (v: unknown, name: string) => {
      if (!Number.isInteger(v) || (v as number) < 0) throw new Error(`${name} must be a count`);
      return v as number;
    };
    const num = (v: unknown, name: string) => {
      if (!Number.isFinite(v)) throw new Error(`${name} must be a finite number`);
      return v as number;
    };
    const nums = (v: unknown, length: number, name: string) => {
      if (!Array.isArray(v) || v.length !== length) throw new Error(`${name} must be ${length} numbers`);
      const out = new Float64Array(length);
      v.forEach((x, k) => (out[k] = num(x, name)));
      return out;
    };
    d.n = count(s.n, 'n');
    d.readings = count(s.readings, 'readings');
    d.lastTs = s.lastTs === null ? null : num(s.lastTs, 'lastTs');
    if (s.calibration !== null) {
      const c = s.calibration;
      if (!c || typeof c !== 'object') throw new Error('bad calibration');
      d.calibration = { threshold: num(c.threshold, 'threshold'), ceiling: num(c.ceiling, 'ceiling') };
    }
    d.sinceThreshold = count(s.sinceThreshold, 'sinceThreshold');
    d.sinceFlag = Math.min(EPISODE_QUIET, count(s.sinceFlag, 'sinceFlag'));
    d.lastSignals = count(s.lastSignals, 'lastSignals');
    if (!Array.isArray(s.slots)) throw new Error('slots must be an array');
    if (s.slots.length > options.maxSignals) throw new Error(`${s.slots.length} signals, more than maxSignalsPerAsset (${options.maxSignals})`);
    d.slots = s.slots.map((e) => {
      if (!Array.isArray(e) || e.length !== 7 || typeof e[0] !== 'string') throw new Error('bad slot');
      const value = num(e[2], 'slot value');
      const scale = num(e[6], 'slot scale');
      if (scale < 0) throw new Error('bad slot scale');
      return {
        name: e[0],
        n: count(e[1], 'slot n'),
        value,
        seenTs: num(e[3], 'slot seenTs'),
        gap: num(e[4], 'slot gap'),
        forgotten: e[5] === 1,
        scale,
        x: transform(value, scale),
      };
    });
    d.reindex();
    if (d.slotIndex.size !== d.slots.length) throw new Error('duplicate signal');
    const p = d.slots.length;
    d.mean = nums(s.mean, p, 'mean');
    d.cov = nums(s.cov, packedLength(p), 'cov');
    for (let i = 0; i < p; i++) if (d.cov[at(i, i)]! < 0) throw new Error('negative variance');
    if (!Array.isArray(s.candidates)) throw new Error('candidates must be an array');
    for (const e of s.candidates) {
      if (!Array.isArray(e) || e.length !== 8 || typeof e[0] !== 'string' || !Array.isArray(e[7]) || e[7].length >= SCREEN_SAMPLES)
        throw new Error('bad candidate');
      d.candidates.set(e[0], {
        n: count(e[1], 'candidate n'),
        last: num(e[2], 'candidate last'),
        ups: count(e[3], 'ups'),
        downs: count(e[4], 'downs'),
        seenTs: num(e[5], 'candidate seenTs'),
        scale: num(e[6], 'candidate scale'),
        screen: e[7].map((v) => num(v, 'candidate screen')),
      });
    }
    if (s.precision !== null) {
      const pr = s.precision;
      if (!pr || typeof pr !== 'object' || !Array.isArray(pr.slots)) throw new Error('bad precision');
      const slots = pr.slots.map((i) => {
        if (!Number.isInteger(i) || i < 0 || i >= p) throw new Error('bad precision slot');
        return i;
      });
      d.precision = {
        slots,
        p: nums(pr.p, packedLength(slots.length), 'precision'),
        shrinkage: num(pr.shrinkage, 'shrinkage'),
        turnover: num(pr.turnover, 'turnover'),
      };
    }
    d.hist = ScoreThreshold.fromJSON(s.histogram, d.halfLifeMs);
    d.marg = MarginalMap.fromJSON(s.marginals, p, d.halfLifeMs);
    return d;
  }
}

/**
 * The scale of a signal's transform, from its first values. A signal that never went negative and is skewed
 * to the right (its maximum further above its median than three times the median is above its minimum: I/O
 * and network rates, fork rates, queue lengths, mostly-zero counters' rates) is modelled as
 * asinh(value / median): linear around its usual level, logarithmic far above it, so its bursts do not swamp
 * every other signal's share of the score. Other signals (temperatures, speeds, voltages, anything symmetric or
 * signed) are modelled as they are (0), keeping full sensitivity to steps either way.
 */
export function transformScale(values: readonly number[]): number {
  if (!values.length || values.some((v) => v < 0)) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  const min = sorted[0]!;
  const max = sorted[sorted.length - 1]!;
  if (!(max - median > 3 * (median - min))) return 0;
  if (median > 0) return median;
  // Mostly zero with bursts: the transform bends at a tenth of the mean burst.
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return mean / 10;
}

function transform(v: number, scale: number): number {
  return scale > 0 ? Math.asinh(v / scale) : v;
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}
