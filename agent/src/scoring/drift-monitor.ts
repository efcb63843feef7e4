import type { ModelManifest } from './model-manifest.js';
import { binOf, chancePsi, distributionQuantile, interquartileRange, lag1Autocorrelation, psi, type FeatureDistribution } from './feature-distribution.js';

/**
 * Watches, per model and asset, whether the inputs a model is fed still look like its training data: a rolling
 * window of the last `windowSize` input rows, binned as the manifest's distributions are, with PSI per feature
 * every `evaluateEvery` rows (see feature-distribution.ts for why the verdict discounts the PSI that chance and
 * autocorrelation explain, and also counts values beyond the training support). Bin counts are kept
 * incrementally; memory is 6 bytes per feature and row of the window.
 */

/** Meta key under which the agent keeps the latest model health for `forewarn status`. */
export const MODEL_HEALTH_META_KEY = 'model-health';

export interface DriftOptions {
  windowSize: number;
  /** No verdict before this many rows. */
  minSamples: number;
  evaluateEvery: number;
  /** PSI at which a feature is worth watching; drift clears only below it. */
  watchPsi: number;
  /** PSI at which a feature has drifted: the model is scoring inputs it was not trained for. */
  alertPsi: number;
  /** Share of the window beyond the training support (0.1%/99.9% quantiles) at which a feature has drifted. */
  outsideShare: number;
}

export interface FeatureDrift {
  feature: string;
  /** PSI of the window against the training distribution. */
  psi: number;
  /** What chance gives at this window's effective size: the verdict uses psi − chance. */
  chance: number;
  /** Share of the window beyond the training support. */
  outside: number;
  /** A slow input (autocorrelated or in a narrow band) whose PSI says nothing about drift: only `outside` counts. */
  narrow?: true;
}

export type ModelHealthState = 'warming' | 'ok' | 'watch' | 'drift';

export interface ModelHealth {
  model: string;
  version: string;
  asset: string;
  state: ModelHealthState;
  /** Rows in the window. */
  samples: number;
  /**
   * Largest raw PSI over the inputs, slow ones included. Not the verdict's figure: a slow input's PSI is large
   * whatever happens (see feature-distribution.ts), so compare `driftPsi` and `outsideMax` with the thresholds.
   */
  psiMax: number;
  /** The figure the verdict compares with `watchPsi` and `alertPsi`: the largest PSI beyond chance over the inputs judged by PSI (not slow ones). Absent only in a status saved by an older agent. */
  driftPsi?: number;
  /** The figure the verdict compares with `outsideShare`: the largest share of a window beyond the training support. */
  outsideMax?: number;
  /** Features that drove the verdict, worst first (those at or above the watch level, or the worst one). */
  top: FeatureDrift[];
  ts: number;
}

interface Track {
  model: string;
  version: string;
  asset: string;
  features: Array<{
    name: string;
    index: number;
    dist: FeatureDistribution;
    missingBin: number;
    counts: Int32Array;
    outside: number;
    bins: number;
    iqr: number;
  }>;
  /** Ring of bin indices and of values, one row per observation. */
  ring: Uint16Array;
  values: Float32Array;
  filled: number;
  next: number;
  sinceEval: number;
  health: ModelHealth;
}

export class DriftMonitor {
  private readonly tracks = new Map<string, Track>();

  constructor(
    private readonly options: DriftOptions,
    /** Called when a track's state changes (warming → ok, ok → drift, drift → ok …). */
    private readonly onChange: (health: ModelHealth, previous: ModelHealthState) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether the manifest says enough about its training data to watch it. */
  static monitors(manifest: ModelManifest): boolean {
    return manifest.inputs.features.some((f) => f.distribution);
  }

  observe(manifest: ModelManifest, asset: string, row: ArrayLike<number>): void {
    const key = `${manifest.name}\u0000${asset}`;
    let t = this.tracks.get(key);
    if (!t || t.version !== manifest.version) {
      const made = this.track(manifest, asset);
      if (!made) return;
      this.tracks.set(key, (t = made));
    }
    const width = t.features.length;
    const base = t.next * width;
    for (let j = 0; j < width; j++) {
      const f = t.features[j]!;
      if (t.filled === this.options.windowSize) {
        f.counts[t.ring[base + j]!]!--;
        if (isOutside(f.dist, t.values[base + j]!)) f.outside--;
      }
      const v = row[f.index]!;
      const bin = Number.isFinite(v) ? binOf(f.dist.edges, v) : f.missingBin;
      t.ring[base + j] = bin;
      t.values[base + j] = v;
      f.counts[bin]!++;
      if (isOutside(f.dist, v)) f.outside++;
    }
    t.next = (t.next + 1) % this.options.windowSize;
    if (t.filled < this.options.windowSize) t.filled++;
    if (++t.sinceEval >= this.options.evaluateEvery || t.filled === this.options.minSamples) this.evaluate(t);
  }

  private track(manifest: ModelManifest, asset: string): Track | null {
    const features = manifest.inputs.features.flatMap((f, index) => {
      const d = f.distribution;
      if (!d) return [];
      // Bins the training data fills: an empty one carries no evidence.
      const bins = d.fractions.filter((x) => x > 0).length + ((d.missing ?? 0) > 0 ? 1 : 0);
      // Categories have no spread to compare: their PSI always counts.
      const iqr = f.categories ? 0 : distributionQuantile(d, 0.75) - distributionQuantile(d, 0.25);
      return [{ name: f.name, index, dist: d, missingBin: d.fractions.length, counts: new Int32Array(d.fractions.length + 1), outside: 0, bins, iqr }];
    });
    if (!features.length) return null;
    return {
      model: manifest.name,
      version: manifest.version,
      asset,
      features,
      ring: new Uint16Array(this.options.windowSize * features.length),
      values: new Float32Array(this.options.windowSize * features.length),
      filled: 0,
      next: 0,
      sinceEval: 0,
      health: {
        model: manifest.name,
        version: manifest.version,
        asset,
        state: 'warming',
        samples: 0,
        psiMax: 0,
        driftPsi: 0,
        outsideMax: 0,
        top: [],
        ts: this.now(),
      },
    };
  }

  private evaluate(t: Track): void {
    t.sinceEval = 0;
    const o = this.options;
    const n = t.filled;
    const width = t.features.length;
    const series = new Float64Array(n);
    const scored = t.features.map((f, j) => {
      // The window in time order, oldest first, for its autocorrelation.
      const start = n < o.windowSize ? 0 : t.next;
      let m = 0;
      for (let k = 0; k < n; k++) {
        const v = t.values[((start + k) % o.windowSize) * width + j]!;
        if (Number.isFinite(v)) series[m++] = v;
      }
      const window = series.subarray(0, m);
      const value = psi(f.dist, Array.from(f.counts.subarray(0, f.missingBin)), f.counts[f.missingBin]!);
      const rho = lag1Autocorrelation(window);
      const chance = chancePsi(f.bins, n, rho);
      // A slow input (strongly autocorrelated, or confined to a narrow band for now) shows only part of its range in
      // any window: its PSI is not evidence of drift, leaving the training support is.
      const narrow = rho >= SLOW_RHO || (f.iqr > 0 && interquartileRange(window) < f.iqr / 2);
      const d: FeatureDrift = {
        feature: f.name,
        psi: round4(value),
        chance: round4(chance),
        outside: round4(f.outside / n),
        ...(narrow ? { narrow: true as const } : {}),
      };
      const excess = narrow ? 0 : Math.max(0, value - chance);
      const level = excess >= o.alertPsi || d.outside >= o.outsideShare ? 2 : excess >= o.watchPsi || d.outside >= o.outsideShare / 2 ? 1 : 0;
      return { d, level, excess };
    });
    scored.sort((a, b) => b.level - a.level || b.excess - a.excess || b.d.outside - a.d.outside);
    const worst = scored[0]!.level;
    const previous = t.health.state;
    let state: ModelHealthState;
    if (n < o.minSamples) state = 'warming';
    else if (worst === 2) state = 'drift';
    // Hysteresis: a drifted model stays so until every feature is back under the watch level.
    else if (previous === 'drift' && worst === 1) state = 'drift';
    else if (worst === 1) state = 'watch';
    else state = 'ok';
    const watched = scored.filter((x) => x.level > 0);
    t.health = {
      model: t.model,
      version: t.version,
      asset: t.asset,
      state,
      samples: n,
      psiMax: Math.max(...scored.map((x) => x.d.psi)),
      driftPsi: round4(Math.max(...scored.map((x) => x.excess))),
      outsideMax: Math.max(...scored.map((x) => x.d.outside)),
      top: (watched.length ? watched : scored.slice(0, 1)).slice(0, 5).map((x) => x.d),
      ts: this.now(),
    };
    if (state !== previous) this.onChange(t.health, previous);
  }

  health(): ModelHealth[] {
    return [...this.tracks.values()].map((t) => t.health);
  }

  /** Bytes held for the windows, for the benchmark and the docs. */
  bytes(): number {
    let n = 0;
    for (const t of this.tracks.values()) n += t.ring.byteLength + t.values.byteLength + t.features.reduce((s, f) => s + f.counts.byteLength, 0);
    return n;
  }
}

/** Lag-1 autocorrelation from which an input counts as slow (AI4I: temperatures and tool wear ≥ 0.9, the rest ≈ 0). */
const SLOW_RHO = 0.5;

const round4 = (x: number) => Math.round(x * 1e4) / 1e4;

function isOutside(d: FeatureDistribution, v: number): boolean {
  return d.support !== undefined && Number.isFinite(v) && (v < d.support[0] || v > d.support[1]);
}
