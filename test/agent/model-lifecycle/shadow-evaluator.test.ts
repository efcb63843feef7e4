import { describe, expect, it } from 'vitest';
import { ShadowEvaluator, type ShadowLimits, type ShadowVerdict } from '../../../agent/src/model-lifecycle/shadow-evaluator.js';
import type { RiskRecord } from '../../../agent/src/core/types.js';

const limits: ShadowLimits = { samples: 10, maxDisagreement: 0.2, maxMeanAbsDiff: 0.05, maxMeanAbsRulDiff: 10 };

function rec(i: number, score: number, kind: RiskRecord['kind'] = 'probability', threshold = 0.5): RiskRecord {
  return {
    ts: 0,
    asset: `a${i % 2}`,
    model: 'm',
    modelVersion: '1',
    kind,
    score,
    threshold,
    atRisk: kind === 'rul' ? score <= threshold : score >= threshold,
    readingTs: i,
    drivers: [],
  };
}

function evaluator(kind: RiskRecord['kind'] = 'probability', l = limits) {
  const verdicts: ShadowVerdict[] = [];
  return { e: new ShadowEvaluator(kind, l, (v) => verdicts.push(v)), verdicts };
}

describe('ShadowEvaluator', () => {
  it('promotes a candidate that agrees within bounds, once it has seen enough readings, and only once', () => {
    const { e, verdicts } = evaluator();
    const cur = Array.from({ length: 6 }, (_, i) => rec(i, i / 10));
    e.observe(
      cur,
      cur.map((r) => ({ ...r, score: r.score + 0.01 })),
    );
    expect(verdicts).toEqual([]);
    const more = Array.from({ length: 6 }, (_, i) => rec(i + 6, 0.2));
    e.observe(more, more);
    expect(verdicts).toHaveLength(1);
    expect(verdicts[0]).toMatchObject({ decision: 'promote', summary: { samples: 10, compared: 10, disagreements: 0, candidateMissing: 0, maxAbsDiff: 0.01 } });
    expect(verdicts[0]!.summary.meanAbsDiff).toBeCloseTo(0.006, 5);
    e.observe(more, []);
    e.fail('late');
    expect(verdicts).toHaveLength(1);
  });

  it('rolls back as soon as disagreements exceed what the whole window allows', () => {
    const { e, verdicts } = evaluator();
    // Bound: 0.2 × 10 = 2 disagreements. The third one decides, without waiting for ten readings.
    const cur = [rec(1, 0.1), rec(2, 0.1), rec(3, 0.1)];
    e.observe(
      cur,
      cur.map((r) => ({ ...r, score: 0.9, atRisk: true })),
    );
    expect(verdicts).toEqual([
      expect.objectContaining({ decision: 'rollback', reason: expect.stringContaining('disagreed with the current model on 3 of 3 readings') }),
    ]);
  });

  it('counts a reading the candidate could not score as a disagreement', () => {
    const { e, verdicts } = evaluator('probability', { ...limits, maxDisagreement: 0 });
    e.observe([rec(1, 0.1), rec(2, 0.1)], [rec(1, 0.1)]);
    expect(verdicts[0]).toMatchObject({ decision: 'rollback', summary: { samples: 2, compared: 1, candidateMissing: 1, disagreements: 1 } });
  });

  it('bounds the mean score difference: probabilities in score units, RUL in cycles; anomaly scores only on atRisk', () => {
    const shifted = (kind: RiskRecord['kind'], base: number, delta: number, threshold: number) => {
      const { e, verdicts } = evaluator(kind);
      const cur = Array.from({ length: 10 }, (_, i) => rec(i, base, kind, threshold));
      e.observe(
        cur,
        cur.map((r) => ({ ...r, score: r.score + delta })),
      );
      return verdicts[0]!;
    };
    expect(shifted('probability', 0.1, 0.08, 0.5)).toMatchObject({
      decision: 'rollback',
      reason: expect.stringContaining('above scoring.shadow.maxMeanAbsDiff 0.05'),
    });
    expect(shifted('probability', 0.1, 0.04, 0.5).decision).toBe('promote');
    expect(shifted('rul', 100, 12, 20)).toMatchObject({
      decision: 'rollback',
      reason: expect.stringContaining('cycles over 10 readings is above scoring.shadow.maxMeanAbsRulDiff 10'),
    });
    expect(shifted('rul', 100, 8, 20).decision).toBe('promote');
    expect(shifted('anomaly', 1, 50, 100).decision).toBe('promote');
  });

  it('rolls back at once when the candidate fails', () => {
    const { e, verdicts } = evaluator();
    e.fail('invalid output NaN for a0');
    expect(verdicts).toEqual([expect.objectContaining({ decision: 'rollback', reason: 'the candidate failed while shadowed: invalid output NaN for a0' })]);
  });
});
