import type { Reading } from '../core/types.js';
import type { QualityConfig } from '../config/load-config.js';

/**
 * Data-quality checks on every signal of every stream: out of physical range, sudden step, flatlined, stale.
 * A value that fails is kept in the telemetry (flagged) but removed from what scoring and the health rules see,
 * so it is never scored as if it were valid.
 */

/** `uncertain`: the source itself vouches for the value only partly (an OPC UA Uncertain status). */
export type QualityCheck = 'range' | 'step' | 'flatline' | 'stale' | 'uncertain';

export interface QualityIssue {
  asset: string;
  signal: string;
  check: QualityCheck;
  /** `true` when the check starts failing, `false` when the signal is good again. */
  failing: boolean;
  value?: number;
  detail: string;
}

/** Physical limits by metric-name pattern, first match wins: a value outside is a sensor or parser fault. */
const PHYSICAL_RANGES: Array<[RegExp, number, number]> = [
  [/(^|\.)(celsius|temperature_c|memory_temperature_c)$/, -60, 200],
  [/_pct$/, 0, 100.5],
  [/_bytes$|_bytes_per_s$|_per_s$|\.rpm$|_count$|\.raw$|_total$/, 0, Number.MAX_SAFE_INTEGER],
  [/_w$/, 0, 100_000],
  [/_mhz$/, 0, 100_000],
];

const STEP_WARMUP = 20;
const STEP_ACCEPT = 5;

interface SignalState {
  asset: string;
  signal: string;
  lastValue: number;
  lastTs: number;
  /** Smoothed interval between samples. */
  intervalMs: number | null;
  /** Smoothed absolute change between samples. */
  meanAbsDelta: number | null;
  samples: number;
  sameCount: number;
  /** Consecutive steps away from the last good value; enough of them make a new level, not a spike. */
  steps: number;
  failing: Set<QualityCheck>;
  /** Looked up once per signal: the physical range and whether the analog checks apply. */
  range: [number, number] | undefined;
  analog: boolean;
}

/** The checks in the order a signal's flag is chosen and its issues are listed. */
const CHECKS: readonly QualityCheck[] = ['range', 'step', 'flatline', 'stale', 'uncertain'];

function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
}

/** Takes the quality issues that raise and clear `data-quality` alerts (health/health-monitor.ts). */
export interface QualityIssueConsumer {
  consumeQuality(issues: readonly QualityIssue[]): void;
}

export function physicalRange(metric: string): [number, number] | undefined {
  for (const [re, lo, hi] of PHYSICAL_RANGES) if (re.test(metric)) return [lo, hi];
  return undefined;
}

export class DataQuality {
  /** Every signal's state, in the order first seen (the order checkStale and failing report in). */
  private readonly state = new Map<string, SignalState>();
  /** The same states by asset, then signal: looked up per value without building a key string (a hot path). */
  private readonly byAsset = new Map<string, Map<string, SignalState>>();
  private readonly analog: RegExp[];
  private readonly extraAnalog = new Set<string>();
  readonly stats = { checked: 0, failed: { range: 0, step: 0, flatline: 0, stale: 0, uncertain: 0 } as Record<QualityCheck, number> };

  constructor(private readonly config: QualityConfig) {
    this.analog = config.analogSignals.map(globToRegExp);
  }

  /** Signals that must vary (model inputs): flatline and step checks apply to them too. */
  addAnalogSignals(signals: Iterable<string>): void {
    for (const s of signals) this.extraAnalog.add(s);
    for (const st of this.state.values()) st.analog = this.isAnalog(st.signal);
  }

  private isAnalog(signal: string): boolean {
    return this.extraAnalog.has(signal) || this.analog.some((re) => re.test(signal));
  }

  /**
   * Checks one reading. Returns the reading without the failing values, the flags for the stored telemetry,
   * and the checks that started or stopped failing.
   */
  check(r: Reading): { clean: Reading; flags: Record<string, QualityCheck>; issues: QualityIssue[] } {
    if (!this.config.enabled) return { clean: r, flags: {}, issues: [] };
    const clean: Record<string, number> = {};
    const flags: Record<string, QualityCheck> = {};
    const issues: QualityIssue[] = [];
    const uncertain = r.uncertain?.length ? new Set(r.uncertain) : null;
    let signals = this.byAsset.get(r.asset);
    if (!signals) this.byAsset.set(r.asset, (signals = new Map()));
    const metrics = r.metrics;
    // Per value, on every reading: no allocation unless a check fails or recovers.
    for (const signal in metrics) {
      const value = metrics[signal]!;
      this.stats.checked++;
      let st = signals.get(signal);
      if (!st) {
        st = {
          asset: r.asset,
          signal,
          lastValue: value,
          lastTs: r.ts,
          intervalMs: null,
          meanAbsDelta: null,
          samples: 0,
          sameCount: 0,
          steps: 0,
          failing: new Set(),
          range: physicalRange(signal),
          analog: this.isAnalog(signal),
        };
        signals.set(signal, st);
        this.state.set(`${r.asset}\u0000${signal}`, st);
      }
      let rangeFails: string | undefined;
      let stepFails: string | undefined;
      let flatlineFails: string | undefined;
      let uncertainFails: string | undefined;
      const range = st.range;
      if (!Number.isFinite(value)) rangeFails = 'not a finite number';
      else if (range && (value < range[0] || value > range[1])) rangeFails = `${value} outside [${range[0]}, ${range[1]}]`;
      if (uncertain?.has(signal)) uncertainFails = `${r.source} reports the value uncertain`;
      if (st.samples > 0 && rangeFails === undefined && uncertainFails === undefined && st.analog) {
        const delta = Math.abs(value - st.lastValue);
        st.sameCount = delta === 0 ? st.sameCount + 1 : 0;
        if (this.config.flatlineSamples > 0 && st.sameCount >= this.config.flatlineSamples) flatlineFails = `unchanged for ${st.sameCount + 1} samples`;
        const usual = st.meanAbsDelta;
        if (this.config.stepFactor > 0 && usual !== null && st.samples >= STEP_WARMUP && usual > 0 && delta > this.config.stepFactor * usual) {
          // Compared with the last good value, so a spike's way back down is not a second step. A value that
          // stays at the new level for STEP_ACCEPT samples is a new level, and is accepted.
          if (++st.steps < STEP_ACCEPT) stepFails = `changed by ${round(delta)}, ${round(delta / usual)}× its usual change`;
          else st.steps = 0;
        } else {
          st.steps = 0;
          // Steps do not feed the usual change, or one spike would teach the check to accept the next.
          st.meanAbsDelta = usual === null ? delta : usual + (delta - usual) / Math.min(st.samples, 50);
        }
      }
      if (st.samples > 0 && r.ts > st.lastTs) {
        const gap = r.ts - st.lastTs;
        st.intervalMs = st.intervalMs === null ? gap : st.intervalMs + (gap - st.intervalMs) / 10;
      }
      if (rangeFails === undefined && stepFails === undefined && uncertainFails === undefined) {
        st.lastValue = value;
        st.samples++;
      }
      st.lastTs = r.ts;
      if (rangeFails === undefined && stepFails === undefined && flatlineFails === undefined && uncertainFails === undefined && st.failing.size === 0) {
        // The usual case: nothing fails now and nothing was failing, so no flag and no issue.
        clean[signal] = value;
        continue;
      }
      const now: Partial<Record<QualityCheck, string>> = { range: rangeFails, step: stepFails, flatline: flatlineFails, uncertain: uncertainFails };
      for (const check of CHECKS) {
        const detail = now[check];
        if (detail !== undefined) {
          flags[signal] ??= check;
          this.stats.failed[check]++;
          if (!st.failing.has(check)) {
            st.failing.add(check);
            issues.push({ asset: r.asset, signal, check, failing: true, value, detail });
          }
        } else if (st.failing.has(check)) {
          st.failing.delete(check);
          issues.push({ asset: r.asset, signal, check, failing: false, value, detail: 'back to normal' });
        }
      }
      if (flags[signal] === undefined) clean[signal] = value;
    }
    return { clean: { ...r, metrics: clean }, flags, issues };
  }

  /** Signals that stopped arriving: checked on a timer. */
  checkStale(now = Date.now()): QualityIssue[] {
    if (!this.config.enabled) return [];
    const issues: QualityIssue[] = [];
    for (const st of this.state.values()) {
      if (st.intervalMs === null || st.failing.has('stale')) continue;
      const { asset, signal } = st;
      // Only signals that should arrive steadily: many host metrics come and go by design (rates, idle disks).
      if (!st.analog) continue;
      const age = now - st.lastTs;
      if (age > this.config.staleAfterIntervals * st.intervalMs) {
        st.failing.add('stale');
        this.stats.failed.stale++;
        issues.push({
          asset,
          signal,
          check: 'stale',
          failing: true,
          detail: `no value for ${Math.round(age / 1000)} s (usually every ${Math.round(st.intervalMs / 1000)} s)`,
        });
      }
    }
    return issues;
  }

  /** Per signal, the checks failing now (for status). */
  failing(): Array<{ asset: string; signal: string; checks: QualityCheck[] }> {
    const out: Array<{ asset: string; signal: string; checks: QualityCheck[] }> = [];
    for (const st of this.state.values()) {
      if (!st.failing.size) continue;
      out.push({ asset: st.asset, signal: st.signal, checks: [...st.failing] });
    }
    return out;
  }
}

function round(x: number): number {
  return Number(x.toPrecision(4));
}
