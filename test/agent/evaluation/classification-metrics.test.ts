import { describe, expect, it } from 'vitest';
import { averagePrecision, classificationReport, detectionAtFalseAlarms, rocAuc } from '../../../agent/src/evaluation/classification-metrics.js';

// Worked by hand: positives rank 1, 3 and 6 of 6.
const scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
const labels = [1, 0, 1, 0, 0, 1];

describe('classification metrics', () => {
  it('computes average precision as scikit-learn does', () => {
    expect(averagePrecision(scores, labels)).toBeCloseTo((1 + 2 / 3 + 3 / 6) / 3, 12);
    // Tied scores form one step.
    expect(averagePrecision([0.5, 0.5], [1, 0])).toBeCloseTo(0.5, 12);
    expect(averagePrecision([0.1, 0.2], [0, 0])).toBe(0);
  });

  it('computes ROC AUC as the share of correctly ordered positive/negative pairs', () => {
    expect(rocAuc(scores, labels)).toBeCloseTo(5 / 9, 12);
    expect(rocAuc([0.5, 0.5], [1, 0])).toBeCloseTo(0.5, 12);
    expect(rocAuc([0.1], [1])).toBeNaN();
  });

  it('reports the confusion matrix, precision, recall and F1 at the threshold', () => {
    const r = classificationReport(scores, labels, 0.65);
    expect(r.confusion).toEqual({ tp: 2, fp: 1, fn: 1, tn: 2 });
    expect(r.precision).toBeCloseTo(2 / 3, 12);
    expect(r.recall).toBeCloseTo(2 / 3, 12);
    expect(r.f1).toBeCloseTo(2 / 3, 12);
    expect(r).toMatchObject({ rows: 6, positives: 3, threshold: 0.65, accuracy: 4 / 6 });
    // A score equal to the threshold counts as positive.
    expect(classificationReport([0.5], [1], 0.5).confusion.tp).toBe(1);
  });
});

describe('detection at fixed false-alarm rates', () => {
  // 1,000 negatives scored 0.000–0.999, 10 positives: 5 above every negative, 5 among them.
  const negatives = Array.from({ length: 1000 }, (_, i) => i / 1000);
  const positives = [1.5, 1.4, 1.3, 1.2, 1.1, 0.995, 0.9955, 0.5, 0.2, 0.0];
  const scores = [...negatives, ...positives];
  const labels = [...negatives.map(() => 0), ...positives.map(() => 1)];

  it('flags at most the allowed share of negatives, and reports the detection rate and threshold there', () => {
    const [one, tenth] = detectionAtFalseAlarms(scores, labels, [0.01, 0.001]);
    // 1 %: the 10 highest negatives (0.990–0.999) may be flagged, 0.989 may not; 0.995 and 0.9955 are detected too.
    expect(one!.falseAlarmRate).toBe(0.01);
    expect(one!.threshold).toBeGreaterThan(0.989);
    expect(one!.threshold).toBeLessThanOrEqual(0.99);
    expect(one!.detectionRate).toBe(0.7);
    // 0.1 %: one negative (0.999) at most; only the five above every negative are detected.
    expect(tenth!.falseAlarmRate).toBeLessThanOrEqual(0.001);
    expect(tenth!.detectionRate).toBe(0.5);
  });

  it('never lets a tie with the first negative beyond the budget through', () => {
    const [r] = detectionAtFalseAlarms([0.9, 0.9, 0.9, 0.9], [0, 0, 1, 1], [0.4]);
    // Flagging 0.9 would flag both negatives (100 %): the threshold must sit above it.
    expect(r!.threshold).toBeGreaterThan(0.9);
    expect(r!.falseAlarmRate).toBe(0);
    expect(r!.detectionRate).toBe(0);
  });

  it('is NaN without negatives or positives', () => {
    expect(detectionAtFalseAlarms([0.1], [1], [0.01])[0]!.detectionRate).toBeNaN();
  });
});
