/**
 * The alert records HealthMonitor writes, field by field, for each kind of input it takes through its stage seams:
 * data-quality issues, events, drift and risk; and what it counts and logs. (The end-to-end path from source output
 * is alert-rules.test.ts; these pin the record itself.)
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { HealthEvent, RiskRecord } from '../../../agent/src/core/types.js';
import type { QualityIssue } from '../../../agent/src/health/data-quality.js';
import { HealthMonitor, QUALITY_RULE, type AlertRecord } from '../../../agent/src/health/health-monitor.js';
import { RecordStore } from '../../../agent/src/store/record-store.js';
import { captureLogger } from '../../helpers/capture-logger.js';

const stores: RecordStore[] = [];
afterEach(() => stores.splice(0).forEach((s) => s.close()));

async function setup() {
  const store = new RecordStore({ dir: mkdtempSync(path.join(tmpdir(), 'fw-health-records-')) });
  stores.push(store);
  const { log, lines } = captureLogger();
  const clock = { now: 5_000_000 };
  const monitor = new HealthMonitor(
    store,
    () => undefined,
    log,
    undefined,
    () => clock.now,
  );
  await monitor.start();
  const alerts = () => store.pending('alerts').map((r) => r.payload as unknown as AlertRecord);
  return { monitor, alerts, lines, clock };
}

const issue = (failing: boolean, value?: number): QualityIssue => ({
  asset: 'press',
  signal: 'oil.celsius',
  check: 'range',
  failing,
  ...(value === undefined ? {} : { value }),
  detail: 'outside -60..200',
});

describe('HealthMonitor records', () => {
  it('raises a quality alert per signal and check from the quality seam, and clears it when the signal passes again', async () => {
    const { monitor, alerts } = await setup();
    monitor.consumeQuality([issue(false)]);
    expect(alerts()).toEqual([]);
    monitor.consumeQuality([issue(true, 250)]);
    monitor.consumeQuality([issue(true, Number.NaN)]);
    monitor.consumeQuality([issue(false, 80)]);
    const [raised, cleared] = alerts();
    expect(alerts()).toHaveLength(2);
    expect(raised).toEqual({
      ts: 5_000_000,
      alertId: 'quality.range/press/oil.celsius',
      rule: 'quality.range',
      asset: 'press',
      subject: 'oil.celsius',
      state: 'raised',
      severity: 'info',
      title: `${QUALITY_RULE.title} (range)`,
      evidence: { signal: 'oil.celsius', check: 'range', detail: 'outside -60..200', value: 250 },
      remedy: QUALITY_RULE.remedy,
      raisedTs: 5_000_000,
      value: 250,
    });
    expect(cleared).toMatchObject({ state: 'cleared', value: 80, evidence: { signal: 'oil.celsius', check: 'range', detail: 'outside -60..200', value: 80 } });
  });

  it('keeps a value that is not a number out of a quality alert', async () => {
    const { monitor, alerts } = await setup();
    monitor.consumeQuality([issue(true, Number.NaN)]);
    expect(alerts()[0]!.evidence).toEqual({ signal: 'oil.celsius', check: 'range', detail: 'outside -60..200' });
    expect(alerts()[0]).not.toHaveProperty('value');
  });

  it("takes an event's severity when it is one it knows, the rule's otherwise; an event without a code has the rule's title and no subject", async () => {
    const { monitor, alerts } = await setup();
    const xid = (code: number | undefined, attributes: HealthEvent['attributes']): HealthEvent => ({
      ts: 7,
      source: 'gpu',
      asset: 'gpu-0',
      type: 'gpu.xid',
      ...(code === undefined ? {} : { code }),
      message: 'Xid',
      attributes,
    });
    for (const [code, severity] of [
      [31, 'info'],
      [32, 'warning'],
      [33, 'critical'],
      [34, 'urgent'],
    ] as const)
      monitor.consumeEvent(xid(code, { severity }));
    monitor.consumeEvent(xid(undefined, { name: 'unnamed' }));
    monitor.consumeEvent({ ...xid(35, {}), type: 'disk.event' });
    const out = alerts();
    expect(out.map((a) => [a.alertId, a.severity])).toEqual([
      ['gpu.xid/gpu-0/31', 'info'],
      ['gpu.xid/gpu-0/32', 'warning'],
      ['gpu.xid/gpu-0/33', 'critical'],
      ['gpu.xid/gpu-0/34', 'warning'],
      ['gpu.xid/gpu-0', 'warning'],
    ]);
    expect(out[4]).not.toHaveProperty('subject');
    expect(out[4]!.title).toBe('GPU reported an Xid error');
    expect(out[3]!.title).toBe('GPU reported an Xid error: 34');
    expect(out[3]!.remedy).toMatch(/^Read the Xid code's meaning/);
    expect(out[3]!.evidence).toEqual({ severity: 'urgent', message: 'Xid' });
  });

  it('carries the drift figures as evidence and driftPsi as the value; leaves out what an older status lacks', async () => {
    const { monitor, alerts } = await setup();
    const h = { model: 'mf', version: '1', asset: 'mill', samples: 500, psiMax: 0.9, ts: 5, top: [{ feature: 'torque', psi: 0.9, chance: 0.02, outside: 0 }] };
    monitor.onDrift({ ...h, state: 'drift', driftPsi: 0.6, outsideMax: 0.3 });
    monitor.onDrift({ ...h, asset: 'lathe', state: 'drift' });
    const [withFigures, without] = alerts();
    expect(withFigures!.evidence).toEqual({
      model: 'mf',
      modelVersion: '1',
      state: 'drift',
      psiMax: 0.9,
      samples: 500,
      driftPsi: 0.6,
      outsideMax: 0.3,
      feature1: 'torque PSI 0.9',
    });
    expect(withFigures!.value).toBe(0.6);
    expect(without!.evidence).toEqual({ model: 'mf', modelVersion: '1', state: 'drift', psiMax: 0.9, samples: 500, feature1: 'torque PSI 0.9' });
    expect(without).not.toHaveProperty('value');
  });

  it('formats risk drivers with their sign, ignores records without a threshold, and keeps a risk alert updated while it holds', async () => {
    const { monitor, alerts } = await setup();
    const risk = (score: number, extra: Partial<RiskRecord> = {}): RiskRecord => ({
      ts: 1,
      asset: 'mill',
      model: 'machine-failure',
      modelVersion: '1.0.0',
      kind: 'probability',
      score,
      threshold: 0.5,
      atRisk: score >= 0.5,
      readingTs: 1,
      drivers: [
        { feature: 'tool_wear', value: 230, contribution: 0.4 },
        { feature: 'torque', value: 20, contribution: -0.1 },
        { feature: 'air', value: 300, contribution: 0 },
      ],
      ...extra,
    });
    monitor.consumeRisk([risk(0.9, { threshold: undefined, atRisk: true })]);
    expect(alerts()).toEqual([]);
    monitor.consumeRisk([risk(0.9)]);
    expect(alerts()[0]!.evidence).toEqual({
      model: 'machine-failure',
      modelVersion: '1.0.0',
      score: 0.9,
      threshold: 0.5,
      driver1: 'tool_wear=230 (+0.4)',
      driver2: 'torque=20 (-0.1)',
      driver3: 'air=300 (+0)',
    });
    monitor.consumeRisk([risk(0.95)]);
    expect(monitor.activeAlerts()[0]!.value).toBe(0.95);
  });

  it('counts raises and clears, and logs a raise of a warning or worse as a warning, everything else as info', async () => {
    const { monitor, lines } = await setup();
    monitor.consumeReading({ ts: 1, source: 't', asset: 'gpu-0', metrics: { 'gpu.ecc.volatile.uncorrected': 2 } });
    monitor.consumeReading({ ts: 2, source: 't', asset: 'gpu-0', metrics: { 'gpu.ecc.volatile.uncorrected': 0 } });
    monitor.consumeQuality([issue(true, 250)]);
    expect(monitor.stats).toMatchObject({ raised: 2, cleared: 1 });
    const logged = lines.filter((l) => String(l.msg).startsWith('alert ')).map((l) => [l.level, l.msg, l.alert]);
    expect(logged).toEqual([
      [40, 'alert raised: GPU uncorrectable ECC errors since the last reset', 'gpu.ecc.uncorrected/gpu-0'],
      [30, 'alert cleared: GPU uncorrectable ECC errors since the last reset', 'gpu.ecc.uncorrected/gpu-0'],
      [30, `alert raised: ${QUALITY_RULE.title} (range)`, 'quality.range/press/oil.celsius'],
    ]);
    expect(monitor.name).toBe('health');
  });
});
