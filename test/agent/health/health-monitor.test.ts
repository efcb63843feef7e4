import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HealthMonitor, type AlertRecord } from '../../../agent/src/health/health-monitor.js';
import { RecordStore } from '../../../agent/src/store/record-store.js';
import { captureLogger } from '../../helpers/capture-logger.js';

const stores: RecordStore[] = [];
afterEach(() => stores.splice(0).forEach((s) => s.close()));

function setup(dir = mkdtempSync(path.join(tmpdir(), 'fw-health-'))) {
  const store = new RecordStore({ dir });
  stores.push(store);
  let notified = 0;
  const { log } = captureLogger();
  let clock = 1_000_000;
  const monitor = new HealthMonitor(
    store,
    () => notified++,
    log,
    undefined,
    () => clock,
  );
  const alerts = () => store.pending('alerts').map((r) => r.payload as unknown as AlertRecord);
  return { store, monitor, alerts, dir, notified: () => notified, advance: (ms: number) => (clock += ms), now: () => clock };
}

const reading = (asset: string, metrics: Record<string, number>, ts = 1) => ({ ts, source: 'test', asset, metrics });

describe('HealthMonitor', () => {
  it('raises a level alert once while it holds and clears it once when it stops', async () => {
    const { monitor, alerts, notified } = setup();
    await monitor.start();
    monitor.onReading(reading('gpu-0000:3b:00.0', { 'gpu.ecc.volatile.uncorrected': 0 }));
    expect(alerts()).toEqual([]);
    monitor.onReading(reading('gpu-0000:3b:00.0', { 'gpu.ecc.volatile.uncorrected': 2 }, 2));
    monitor.onReading(reading('gpu-0000:3b:00.0', { 'gpu.ecc.volatile.uncorrected': 3 }, 3));
    monitor.onReading(reading('gpu-0000:3b:00.0', { 'gpu.ecc.volatile.uncorrected': 0 }, 4));
    const out = alerts();
    expect(out.map((a) => [a.alertId, a.state, a.severity])).toEqual([
      ['gpu.ecc.uncorrected/gpu-0000:3b:00.0', 'raised', 'critical'],
      ['gpu.ecc.uncorrected/gpu-0000:3b:00.0', 'cleared', 'critical'],
    ]);
    expect(out[0]!.evidence).toEqual({ metric: 'gpu.ecc.volatile.uncorrected', value: 2 });
    expect(out[0]!.remedy).toMatch(/reset/);
    expect(notified()).toBe(2);
  });

  it('raises model.drift when a model drifts on an asset, with the features as evidence, and clears it when it is back', async () => {
    const { monitor, alerts } = setup();
    await monitor.start();
    const h = {
      model: 'mf',
      version: '1.0.0',
      asset: 'mill',
      samples: 500,
      psiMax: 0.9,
      ts: 5,
      top: [{ feature: 'torque', psi: 0.9, chance: 0.02, outside: 0 }],
    };
    monitor.onDrift({ ...h, state: 'watch' });
    expect(alerts()).toEqual([]);
    monitor.onDrift({ ...h, state: 'drift' });
    monitor.onDrift({ ...h, state: 'drift' });
    monitor.onDrift({ ...h, state: 'ok', ts: 9 });
    const out = alerts();
    expect(out.map((a) => [a.alertId, a.state])).toEqual([
      ['model.drift/mill/mf', 'raised'],
      ['model.drift/mill/mf', 'cleared'],
    ]);
    expect(out[0]!.evidence).toMatchObject({ model: 'mf', psiMax: 0.9, feature1: 'torque PSI 0.9' });
  });

  it('raises growth alerts on a rising counter and clears them after the quiet period', async () => {
    const { monitor, alerts, advance, now } = setup();
    await monitor.start();
    monitor.onReading(reading('disk-Z1', { 'smart.5.raw': 8 }));
    monitor.onReading(reading('disk-Z1', { 'smart.5.raw': 8 }));
    expect(alerts()).toEqual([]);
    monitor.onReading(reading('disk-Z1', { 'smart.5.raw': 24 }, now()));
    expect(alerts().map((a) => a.state)).toEqual(['raised']);
    expect(alerts()[0]!.evidence).toEqual({ metric: 'smart.5.raw', value: 24, previous: 8 });
    advance(6 * 24 * 3_600_000);
    monitor.clearQuiet();
    expect(alerts()).toHaveLength(1);
    advance(2 * 24 * 3_600_000);
    monitor.clearQuiet();
    expect(alerts().map((a) => a.state)).toEqual(['raised', 'cleared']);
  });

  it('turns events into alerts keyed by code, with the severity and action the event carries', async () => {
    const { monitor, alerts } = setup();
    await monitor.start();
    const xid = (code: number) => ({
      ts: 5,
      source: 'gpu',
      asset: 'gpu-0000:3b:00.0',
      type: 'gpu.xid',
      code,
      message: `Xid ${code}`,
      attributes: { severity: 'critical', name: 'GPU has fallen off the bus', action: 'Reset or reboot; check power and seating.' },
    });
    monitor.onEvent(xid(79));
    monitor.onEvent(xid(79));
    monitor.onEvent(xid(48));
    const out = alerts();
    expect(out.map((a) => a.alertId)).toEqual(['gpu.xid/gpu-0000:3b:00.0/79', 'gpu.xid/gpu-0000:3b:00.0/48']);
    expect(out[0]).toMatchObject({
      severity: 'critical',
      title: 'GPU reported an Xid error: 79 (GPU has fallen off the bus)',
      remedy: 'Reset or reboot; check power and seating.',
    });
  });

  it('raises and clears risk alerts from model thresholds, with the drivers as evidence', async () => {
    const { monitor, alerts } = setup();
    await monitor.start();
    const risk = (score: number) => ({
      ts: 1,
      asset: 'mill',
      model: 'machine-failure',
      modelVersion: '1.0.0',
      kind: 'probability' as const,
      score,
      threshold: 0.5,
      atRisk: score >= 0.5,
      readingTs: 1,
      drivers: [{ feature: 'tool_wear', value: 230, contribution: 0.4 }],
    });
    monitor.onRisk([risk(0.1), risk(0.9), risk(0.95), risk(0.2)]);
    const out = alerts();
    expect(out.map((a) => a.state)).toEqual(['raised', 'cleared']);
    expect(out[0]!.evidence).toMatchObject({ score: 0.9, threshold: 0.5, driver1: 'tool_wear=230 (+0.4)' });
  });

  it('keeps active alerts across a restart: no repeat, and the clear still comes', async () => {
    const first = setup();
    await first.monitor.start();
    first.monitor.onReading(reading('disk-Z1', { 'smart.197.raw': 3 }));
    first.store.close();
    const second = setup(first.dir);
    await second.monitor.start();
    second.monitor.onReading(reading('disk-Z1', { 'smart.197.raw': 3 }));
    second.monitor.onReading(reading('disk-Z1', { 'smart.197.raw': 0 }));
    expect(second.alerts().map((a) => a.state)).toEqual(['raised', 'cleared']);
    expect(second.monitor.activeAlerts()).toEqual([]);
  });

  it('compares against another metric of the same reading where the rule says so', async () => {
    const { monitor, alerts } = setup();
    await monitor.start();
    monitor.onReading(reading('nvme-1', { 'nvme.available_spare': 50, 'nvme.available_spare_threshold': 10 }));
    monitor.onReading(reading('nvme-1', { 'nvme.available_spare': 9, 'nvme.available_spare_threshold': 10 }));
    expect(alerts().map((a) => [a.rule, a.evidence])).toEqual([['disk.nvme.spare_low', { metric: 'nvme.available_spare', value: 9, threshold: 10 }]]);
  });
});
