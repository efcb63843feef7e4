import type { ShadowSummary } from '../contract/topics.js';
import type { RiskRecord } from '../core/types.js';
import type { ShadowObserver } from '../scoring/risk-scorer.js';

/**
 * Compares a candidate model with the current one on the same readings (shadow scoring) and decides, once
 * enough readings were seen, whether the candidate is promoted or rolled back (docs/model-updates.md).
 *
 * Each reading the current model scores is a sample. A sample disagrees when the candidate's `atRisk` differs,
 * or when the candidate gave no score for it (an input it lacks or rejects): a model that cannot score what the
 * current one scores is not a drop-in replacement. Score differences are measured on the pairs both scored.
 */

export interface ShadowLimits {
  /** Samples to see before deciding. */
  samples: number;
  /** Largest fraction of samples that may disagree on atRisk. */
  maxDisagreement: number;
  /** Probability models: largest mean |Δscore|. */
  maxMeanAbsDiff: number;
  /** RUL models: largest mean |Δscore| in cycles. */
  maxMeanAbsRulDiff: number;
}

export type ShadowVerdict = { decision: 'promote'; reason: string; summary: ShadowSummary } | { decision: 'rollback'; reason: string; summary: ShadowSummary };

export class ShadowEvaluator implements ShadowObserver {
  private samples = 0;
  private compared = 0;
  private disagreements = 0;
  private missing = 0;
  private sumAbs = 0;
  private maxAbs = 0;
  private verdict: ShadowVerdict | null = null;

  constructor(
    /** The current model's output kind: how differences are bounded. */
    private readonly kind: RiskRecord['kind'],
    private readonly limits: ShadowLimits,
    private readonly onVerdict: (verdict: ShadowVerdict) => void,
  ) {}

  get decided(): ShadowVerdict | null {
    return this.verdict;
  }

  summary(): ShadowSummary {
    const r = (x: number) => Number(x.toPrecision(6));
    return {
      samples: this.samples,
      compared: this.compared,
      disagreements: this.disagreements,
      disagreementRate: r(this.samples ? this.disagreements / this.samples : 0),
      meanAbsDiff: r(this.compared ? this.sumAbs / this.compared : 0),
      maxAbsDiff: r(this.maxAbs),
      candidateMissing: this.missing,
    };
  }

  observe(current: readonly RiskRecord[], candidate: readonly RiskRecord[]): void {
    if (this.verdict) return;
    const byReading = new Map<string, RiskRecord[]>();
    for (const c of candidate) {
      const key = `${c.asset}\u0000${c.readingTs}`;
      const list = byReading.get(key);
      if (list) list.push(c);
      else byReading.set(key, [c]);
    }
    for (const cur of current) {
      if (this.samples >= this.limits.samples) break;
      this.samples++;
      const cand = byReading.get(`${cur.asset}\u0000${cur.readingTs}`)?.shift();
      if (!cand) {
        this.missing++;
        this.disagreements++;
        continue;
      }
      this.compared++;
      const d = Math.abs(cand.score - cur.score);
      this.sumAbs += d;
      this.maxAbs = Math.max(this.maxAbs, d);
      if (cand.atRisk !== cur.atRisk) this.disagreements++;
    }
    this.judge();
  }

  fail(reason: string): void {
    if (this.verdict) return;
    this.decide({ decision: 'rollback', reason: `the candidate failed while shadowed: ${reason}`, summary: this.summary() });
  }

  private judge(): void {
    const { samples, maxDisagreement } = this.limits;
    const allowed = maxDisagreement * samples;
    // Rolled back as soon as the outcome is certain: more disagreements than the whole window allows.
    if (this.disagreements > allowed) {
      this.decide({
        decision: 'rollback',
        reason: `disagreed with the current model on ${this.disagreements} of ${this.samples} readings (atRisk differs or no score), more than scoring.shadow.maxDisagreement ${maxDisagreement} of ${samples} allows`,
        summary: this.summary(),
      });
      return;
    }
    if (this.samples < samples) return;
    const s = this.summary();
    const bound =
      this.kind === 'probability'
        ? { limit: this.limits.maxMeanAbsDiff, option: 'maxMeanAbsDiff', unit: '' }
        : this.kind === 'rul'
          ? { limit: this.limits.maxMeanAbsRulDiff, option: 'maxMeanAbsRulDiff', unit: ' cycles' }
          : null;
    if (bound && s.meanAbsDiff > bound.limit) {
      this.decide({
        decision: 'rollback',
        reason: `mean |score difference| ${s.meanAbsDiff}${bound.unit} over ${s.compared} readings is above scoring.shadow.${bound.option} ${bound.limit}`,
        summary: s,
      });
      return;
    }
    this.decide({
      decision: 'promote',
      reason: `agreed with the current model within bounds over ${s.samples} readings (disagreement ${s.disagreementRate}, mean |Δscore| ${s.meanAbsDiff}${bound?.unit ?? ''})`,
      summary: s,
    });
  }

  private decide(v: ShadowVerdict): void {
    this.verdict = v;
    this.onVerdict(v);
  }
}
