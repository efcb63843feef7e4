import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ANOMALY_RULE, HealthMonitor, type AlertRecord } from '../../../agent/src/health/health-monitor.js';
import { RecordStore } from '../../../agent/src/store/record-store.js';
import type { RiskRecord } from '../../../agent/src/core/types.js';
import { captureLogger } from '../../helpers/capture-logger.js';

const stores: RecordStore[] = [];
afterEach(() => stores.splice(0).forEach((s) => s.close()));

function setup() {
  const store = new RecordStore({ dir: mkdtempSync(path.join(tmpdir(), 'fw-anomaly-alert-')) });
  stores.push(store);
  let clock = 1_000_000;
  const monitor = new HealthMonitor(
    store,
    () => undefined,
    captureLogger().log,
    undefined,
    () => clock,
  );
  const alerts = () => store.pending('alerts').map((r) => r.payload as unknown as AlertRecord);
  return { monitor, alerts, advance: (ms: number) => (clock += ms), now: () => clock };
}

const record = (atRisk: boolean, ts: number): RiskRecord => ({
  ts,
  asset: 'host-a',
  model: 'anomaly',
  modelVersion: '1.0.0',
  kind: 'anomaly',
  score: atRisk ? 7.5 : 0.3,
  threshold: 3.4,
  atRisk,
  readingTs: ts,
  drivers: [{ feature: 'fan.1.rpm', value: 900, contribution: 5.1 }],
});

describe('anomaly alerts', () => {
  it('raise one alert per episode, with the drivers, and clear it after a quiet period, not at the next normal reading', async () => {
    const { monitor, alerts, advance, now } = setup();
    await monitor.start();
    monitor.onRisk([record(true, now()), record(false, now() + 1), record(true, now() + 2), record(false, now() + 3)]);
    expect(alerts().map((a) => [a.alertId, a.state, a.rule])).toEqual([['anomaly/host-a', 'raised', 'anomaly']]);
    expect(alerts()[0]!.evidence).toMatchObject({ model: 'anomaly', score: 7.5, threshold: 3.4, driver1: 'fan.1.rpm=900 (+5.1)' });
    expect(alerts()[0]!.title).toBe(ANOMALY_RULE.title);
    advance(ANOMALY_RULE.quietMs - 1_000);
    monitor.clearQuiet();
    expect(alerts()).toHaveLength(1);
    advance(2_000);
    monitor.clearQuiet();
    expect(alerts().map((a) => [a.alertId, a.state])).toEqual([
      ['anomaly/host-a', 'raised'],
      ['anomaly/host-a', 'cleared'],
    ]);
    await monitor.stop();
  });
});
