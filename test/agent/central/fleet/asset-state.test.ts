import { describe, expect, it } from 'vitest';
import { assetState, relativeRisk } from '../../../../agent/src/central/fleet/asset-state.js';

const p = (score: number, threshold: number | null = 0.5, atRisk = false) => ({ kind: 'probability', score, threshold, atRisk });

describe('relativeRisk', () => {
  it('is 1 at the threshold for every kind, and higher is worse', () => {
    expect(relativeRisk(p(0.5))).toBe(1);
    expect(relativeRisk(p(0.25))).toBe(0.5);
    expect(relativeRisk({ kind: 'anomaly', score: 6, threshold: 4, atRisk: true })).toBe(1.5);
    // Remaining useful life: fewer cycles left is worse.
    expect(relativeRisk({ kind: 'rul', score: 20, threshold: 40, atRisk: true })).toBe(2);
    expect(relativeRisk({ kind: 'rul', score: 80, threshold: 40, atRisk: false })).toBe(0.5);
    expect(relativeRisk({ kind: 'rul', score: 0, threshold: 40, atRisk: true })).toBe(Number.MAX_VALUE);
  });
  it('without a threshold: a probability is its own, other kinds rank 0', () => {
    expect(relativeRisk(p(0.3, null))).toBe(0.3);
    expect(relativeRisk({ kind: 'anomaly', score: 9, threshold: null, atRisk: false })).toBe(0);
    expect(relativeRisk({ kind: 'rul', score: 9, threshold: 0, atRisk: false })).toBe(0);
  });
});

describe('assetState', () => {
  it('alarm on a critical alert, whatever the risk', () => {
    expect(assetState([p(0.01)], ['info', 'critical'])).toBe('alarm');
    expect(assetState([p(0.01)], [{ severity: 'critical', workflow: null }])).toBe('alarm');
  });
  it('warning on a warning alert or a model at risk', () => {
    expect(assetState([p(0.01)], ['warning'])).toBe('warning');
    expect(assetState([p(0.1), p(0.3, 0.5, true)], [])).toBe('warning');
  });
  it('watch on an info alert or a model at 80 % of its threshold or more', () => {
    expect(assetState([p(0.01)], ['info'])).toBe('watch');
    expect(assetState([p(0.4)], [])).toBe('watch');
    expect(assetState([p(0.399)], [])).toBe('healthy');
  });
  it('healthy with no model and no alert', () => {
    expect(assetState([], [])).toBe('healthy');
  });
});

describe('assetState with the alert workflow', () => {
  const NOW = 1_800_000_000_000;
  it('maintenance while a window is open, whatever else is active', () => {
    expect(assetState([p(0.9, 0.5, true)], ['critical', { severity: 'warning', workflow: 'maintenance', until: NOW + 1 }], NOW)).toBe('maintenance');
  });
  it('a maintenance window that passed counts as if no one had acted', () => {
    expect(assetState([], [{ severity: 'warning', workflow: 'maintenance', until: NOW }], NOW)).toBe('warning');
  });
  it('acknowledged when no warning or critical alert is left unacknowledged', () => {
    expect(assetState([p(0.6, 0.5, true)], [{ severity: 'critical', workflow: 'acknowledged' }, 'info'], NOW)).toBe('acknowledged');
    expect(assetState([], [{ severity: 'critical', workflow: 'acknowledged' }, 'warning'], NOW)).toBe('warning');
    expect(assetState([], [{ severity: 'warning', workflow: 'acknowledged' }, 'critical'], NOW)).toBe('alarm');
  });
  it('alerts resolved by a technician or marked a false alarm no longer count', () => {
    expect(
      assetState(
        [],
        [
          { severity: 'critical', workflow: 'resolved' },
          { severity: 'warning', workflow: 'false_alarm' },
        ],
        NOW,
      ),
    ).toBe('healthy');
    expect(assetState([p(0.45)], [{ severity: 'critical', workflow: 'resolved' }], NOW)).toBe('watch');
  });
});
