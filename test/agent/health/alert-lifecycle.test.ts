import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildConfig, type AlertsConfig } from '../../../agent/src/config/load-config.js';
import { alertConfigProblems, riskLifecycle } from '../../../agent/src/health/alert-lifecycle.js';
import { HealthMonitor, type AlertRecord } from '../../../agent/src/health/health-monitor.js';
import { HEALTH_RULES, type HealthRule } from '../../../agent/src/health/health-rules.js';
import { RecordStore } from '../../../agent/src/store/record-store.js';
import type { RiskRecord } from '../../../agent/src/core/types.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { contractErrors } from '../../helpers/contract.js';

const stores: RecordStore[] = [];
afterEach(() => stores.splice(0).forEach((s) => s.close()));

/** The configuration's defaults for the `alerts` section, with `change` applied. */
function alertsConfig(change: (a: AlertsConfig) => void = () => undefined): AlertsConfig {
  const a = structuredClone(buildConfig(null, {}).alerts);
  change(a);
  return a;
}

/** A rule with a real threshold to be short of: hysteresis needs one (the hardware rules mostly compare with 0). */
const HOT: HealthRule = {
  id: 'test.hot',
  kind: 'level',
  metric: /^temp\.celsius$/,
  op: '>',
  value: 80,
  severity: 'warning',
  title: 'Too hot',
  remedy: 'Cool it.',
};

function setup(alerts: AlertsConfig | undefined, options: { dir?: string; rules?: readonly HealthRule[] } = {}) {
  const dir = options.dir ?? mkdtempSync(path.join(tmpdir(), 'fw-lifecycle-'));
  const store = new RecordStore({ dir });
  stores.push(store);
  const captured = captureLogger();
  let clock = 1_000_000;
  const monitor = new HealthMonitor(
    store,
    () => undefined,
    captured.log,
    options.rules ?? [...HEALTH_RULES, HOT],
    () => clock,
    alerts,
  );
  const alerts_ = () => store.pending('alerts').map((r) => r.payload as unknown as AlertRecord);
  return { store, monitor, alerts: alerts_, dir, lines: captured.lines, setClock: (t: number) => (clock = t) };
}

const hot = (celsius: number, ts: number) => ({ ts, source: 'test', asset: 'oven', metrics: { 'temp.celsius': celsius } });

function risk(score: number, readingTs: number, over: Partial<RiskRecord> = {}): RiskRecord {
  const threshold = over.threshold ?? 0.48;
  const kind = over.kind ?? 'probability';
  return {
    ts: readingTs + 5,
    asset: 'mill',
    model: 'machine-failure',
    modelVersion: '1.0.0',
    kind,
    score,
    threshold,
    atRisk: kind === 'rul' ? score <= threshold : score >= threshold,
    readingTs,
    drivers: [{ feature: 'torque', value: 60, contribution: 0.3 }],
    ...over,
  };
}

describe('alert lifecycle: for', () => {
  it('keeps a condition pending until it has held for `forMs`, and starts over when it stops holding', async () => {
    const { monitor, alerts } = setup(alertsConfig((a) => (a.rules['test.hot'] = { forMs: 60_000 })));
    await monitor.start();
    monitor.onReading(hot(90, 0));
    monitor.onReading(hot(91, 30_000));
    expect(alerts()).toEqual([]);
    expect(monitor.stats.pending).toBe(1);
    // It stops holding before a minute: the next episode's minute starts from scratch.
    monitor.onReading(hot(70, 40_000));
    expect(monitor.stats.pending).toBe(0);
    monitor.onReading(hot(95, 50_000));
    monitor.onReading(hot(95, 100_000));
    expect(alerts()).toEqual([]);
    monitor.onReading(hot(96, 110_000));
    expect(alerts()).toMatchObject([{ alertId: 'test.hot/oven', state: 'raised', raisedTs: 110_000, pendingSinceTs: 50_000, value: 96 }]);
    expect(monitor.stats.pending).toBe(0);
  });

  it('raises instant hardware facts at once with the default configuration', async () => {
    const { monitor, alerts } = setup(alertsConfig());
    await monitor.start();
    monitor.onReading({ ts: 5, source: 'gpu', asset: 'gpu-0', metrics: { 'gpu.ecc.volatile.uncorrected': 1, 'gpu.remapped_rows.failure': 1 } });
    expect(alerts().map((a) => [a.rule, a.state])).toEqual([
      ['gpu.ecc.uncorrected', 'raised'],
      ['gpu.remapped_rows.failure', 'raised'],
    ]);
    // A thermal slowdown is a state that follows the load: it must last a minute by default.
    monitor.onReading({ ts: 5, source: 'gpu', asset: 'gpu-0', metrics: { 'gpu.throttle.hw_thermal_slowdown': 1 } });
    expect(alerts()).toHaveLength(2);
    monitor.onReading({ ts: 65_005, source: 'gpu', asset: 'gpu-0', metrics: { 'gpu.throttle.hw_thermal_slowdown': 1 } });
    expect(alerts().at(-1)).toMatchObject({ rule: 'gpu.thermal_slowdown', subject: 'hw_thermal_slowdown', state: 'raised' });
  });

  it('raises an event rule with a `for` only when the events keep coming for that long', async () => {
    const { monitor, alerts, setClock } = setup(alertsConfig((a) => (a.rules['gpu.xid'] = { forMs: 10 * 60_000 })));
    await monitor.start();
    const xid = (ts: number) => ({ ts, source: 'gpu', asset: 'gpu-0', type: 'gpu.xid', code: 13, message: 'Xid 13', attributes: {} });
    monitor.onEvent(xid(0));
    monitor.onEvent(xid(5 * 60_000));
    expect(alerts()).toEqual([]);
    // Still within the hour's quiet period when the timer looks: the condition held for ten minutes.
    setClock(11 * 60_000);
    monitor.clearQuiet();
    expect(alerts()).toMatchObject([{ alertId: 'gpu.xid/gpu-0/13', state: 'raised', pendingSinceTs: 0 }]);
  });
});

describe('alert lifecycle: clearing', () => {
  it('clears a level alert only below its clear value, after the clear duration, with the value that cleared it', async () => {
    const { monitor, alerts } = setup(alertsConfig((a) => (a.rules['test.hot'] = { clearValue: 70, clearForMs: 10_000 })));
    await monitor.start();
    monitor.onReading(hot(85, 0));
    // Between the thresholds: neither raising again nor clearing.
    monitor.onReading(hot(75, 1000));
    monitor.onReading(hot(75, 60_000));
    expect(alerts().map((a) => a.state)).toEqual(['raised']);
    monitor.onReading(hot(65, 61_000));
    // Back above the clear value: the clear duration starts over.
    monitor.onReading(hot(72, 65_000));
    monitor.onReading(hot(64, 66_000));
    monitor.onReading(hot(63, 75_000));
    expect(alerts().map((a) => a.state)).toEqual(['raised']);
    monitor.onReading(hot(62, 76_000));
    const [raised, cleared] = alerts();
    expect(raised).toMatchObject({ state: 'raised', value: 85, evidence: { value: 85 } });
    expect(cleared).toMatchObject({ state: 'cleared', ts: 76_000, raisedTs: 0, value: 62, evidence: { metric: 'temp.celsius', value: 62 } });
  });

  it("raises an ISO 10816-3 zone alert once per episode per axis, and clears it 10 % under the asset's own boundary after five minutes", async () => {
    const { monitor, alerts } = setup(alertsConfig());
    await monitor.start();
    // What the node-stream source emits per block: the axis velocity with the boundaries of the asset's class.
    const block = (asset: string, ts: number, v: number, bc: number) => ({
      ts,
      source: 'node-stream',
      asset,
      metrics: { 'vib.x.velocity_rms': v, 'iso10816.boundary_ab': bc / 2, 'iso10816.boundary_bc': bc, 'iso10816.boundary_cd': bc * 1.6 },
    });
    const zoneC = () => alerts().filter((a) => a.rule === 'vibration.iso10816.zone_c');
    // The same 3.2 mm/s: zone C for a group 2 rigid pump (B/C 2.8), zone B for a group 1 rigid motor (B/C 4.5).
    for (let t = 0; t <= 70_000; t += 5_000) {
      monitor.onReading(block('pump', t, 3.2, 2.8));
      monitor.onReading(block('motor', t, 3.2, 4.5));
    }
    expect(zoneC().map((a) => [a.alertId, a.state])).toEqual([['vibration.iso10816.zone_c/pump/vib.x', 'raised']]);
    expect(zoneC()[0]).toMatchObject({
      severity: 'warning',
      pendingSinceTs: 0,
      raisedTs: 60_000,
      evidence: { axis: 'vib.x', value: 3.2, threshold: 2.8, clearThreshold: 2.52, unit: 'mm/s' },
    });
    // Under the boundary but above 90 % of it (2.52): held raised, however long.
    for (let t = 75_000; t <= 1_000_000; t += 5_000) monitor.onReading(block('pump', t, 2.6, 2.8));
    // Back over it for a moment and under again: still the one alert, not a second episode.
    monitor.onReading(block('pump', 1_005_000, 3.0, 2.8));
    for (let t = 1_010_000; t < 1_310_000; t += 5_000) monitor.onReading(block('pump', t, 2.4, 2.8));
    expect(zoneC().map((a) => a.state)).toEqual(['raised']);
    monitor.onReading(block('pump', 1_310_000, 2.4, 2.8));
    expect(zoneC().map((a) => [a.state, a.value])).toEqual([
      ['raised', 3.2],
      ['cleared', 2.4],
    ]);
    expect(alerts().filter((a) => a.rule === 'vibration.iso10816.zone_d')).toEqual([]);
  });

  it('raises a model threshold alert only on a lasting risk, and clears it below the lower threshold after a minute', async () => {
    const { monitor, alerts } = setup(alertsConfig());
    await monitor.start();
    // One process at risk, then calm: the single reading never raises.
    monitor.onRisk([risk(0.97, 0), risk(0.01, 1000), risk(0.9, 2000), risk(0.9, 3000), risk(0.01, 4000)]);
    expect(alerts()).toEqual([]);
    monitor.onRisk([risk(0.9, 10_000), risk(0.95, 11_000), risk(0.99, 12_000)]);
    expect(alerts()).toMatchObject([{ state: 'raised', pendingSinceTs: 10_000, raisedTs: 12_000, value: 0.99, evidence: { clearThreshold: 0.36 } }]);
    // 0.4 is under the threshold but above the clear threshold (0.48 × 0.75): it interrupts the clearing minute.
    monitor.onRisk([risk(0.01, 13_000), risk(0.4, 40_000), risk(0.02, 41_000), risk(0.02, 100_000)]);
    expect(alerts()).toHaveLength(1);
    monitor.onRisk([risk(0.03, 101_000)]);
    expect(alerts()[1]).toMatchObject({ state: 'cleared', ts: 101_000, value: 0.03, evidence: { score: 0.03, threshold: 0.48 } });
  });

  it('clears a remaining-useful-life alert above a higher threshold', async () => {
    const { monitor, alerts } = setup(alertsConfig((a) => (a.risk.forMs = 0)));
    await monitor.start();
    const rul = (cycles: number, ts: number) => risk(cycles, ts, { model: 'turbofan-rul', kind: 'rul', threshold: 30 });
    monitor.onRisk([rul(25, 0), rul(35, 1000), rul(35, 120_000)]);
    expect(alerts().map((a) => a.state)).toEqual(['raised']);
    monitor.onRisk([rul(38, 121_000), rul(40, 181_000)]);
    expect(alerts().map((a) => [a.state, a.value])).toEqual([
      ['raised', 25],
      ['cleared', 40],
    ]);
  });

  it('refuses a clear threshold on the wrong side of the threshold, says why, and uses the default', async () => {
    const { monitor, alerts, lines } = setup(alertsConfig((a) => (a.risk.models['machine-failure'] = { forMs: 0, clearThreshold: 0.6 })));
    await monitor.start();
    monitor.onRisk([risk(0.9, 0)]);
    expect(alerts()[0]!.evidence).toMatchObject({ clearThreshold: 0.36 });
    expect(lines.find((l) => l.code === 'FW_ERR_CONFIG_INVALID')?.problem).toMatch(
      /^alerts\.risk\.models\.machine-failure\.clearThreshold: must be at or below/,
    );
    expect(riskLifecycle(alertsConfig(), 'turbofan-rul', 'rul', 30).clearThreshold).toBe(37.5);
  });
});

describe('alert lifecycle: flapping', () => {
  const flappy = (maxChanges: number) =>
    alertsConfig((a) => {
      a.flapping = { maxChanges, windowMs: 3_600_000 };
      a.rules['test.hot'] = { forMs: 0, clearForMs: 0 };
    });

  it('marks an alert flapping on the change beyond the limit and holds it raised until clear for a whole window', async () => {
    const { monitor, alerts } = setup(flappy(4));
    await monitor.start();
    // Raise, clear, raise, clear: four changes, allowed.
    [90, 60, 90, 60].forEach((c, i) => monitor.onReading(hot(c, i * 60_000)));
    expect(alerts().map((a) => [a.state, a.flapping])).toEqual([
      ['raised', undefined],
      ['cleared', undefined],
      ['raised', undefined],
      ['cleared', undefined],
    ]);
    // The fifth change is raised flapping.
    monitor.onReading(hot(90, 240_000));
    expect(alerts().at(-1)).toMatchObject({ state: 'raised', flapping: true });
    expect(monitor.stats).toMatchObject({ flapping: 1, flapped: 1 });
    // It keeps changing underneath: nothing is published, it stays raised.
    for (let t = 300_000; t < 1_200_000; t += 60_000) monitor.onReading(hot(t % 120_000 ? 60 : 90, t));
    monitor.onReading(hot(90, 1_190_000));
    expect(alerts()).toHaveLength(5);
    expect(monitor.activeAlerts()).toMatchObject([{ alertId: 'test.hot/oven', flapping: true }]);
    // Stable: clear from 1,200,000 on for a whole hour.
    monitor.onReading(hot(60, 1_200_000));
    monitor.onReading(hot(60, 1_200_000 + 3_599_000));
    expect(alerts()).toHaveLength(5);
    monitor.onReading(hot(59, 1_200_000 + 3_600_000));
    expect(alerts().at(-1)).toMatchObject({ state: 'cleared', flapping: true, value: 59 });
    expect(monitor.stats.flapping).toBe(0);
    const batch = { schemaVersion: 1, agentId: 'a', stream: 'alerts', bootSeq: 1, records: alerts().map((a, i) => ({ ...a, seq: i + 1 })) };
    expect(contractErrors('forewarn/v1/a/alerts', batch)).toEqual([]);
  });

  it('holds a clear that would exceed the limit, keeps the flapping state across a restart, and clears after the window', async () => {
    const first = setup(flappy(3));
    await first.monitor.start();
    [90, 60, 90].forEach((c, i) => first.monitor.onReading(hot(c, i * 1000)));
    // The fourth change would be a clear: held, and the alert is flapping.
    first.monitor.onReading(hot(60, 3000));
    expect(first.alerts().map((a) => a.state)).toEqual(['raised', 'cleared', 'raised']);
    expect(first.monitor.activeAlerts()[0]).toMatchObject({ flapping: true });
    expect(first.lines.some((l) => l.msg === 'alert flapping: held raised until it has been clear for a whole window')).toBe(true);
    first.store.close();

    const second = setup(flappy(3), { dir: first.dir });
    await second.monitor.start();
    expect(second.monitor.activeAlerts()).toMatchObject([{ alertId: 'test.hot/oven', state: 'raised', flapping: true }]);
    expect(second.monitor.stats.flapping).toBe(1);
    // Neither repeated nor forgotten: still raised, clearing counted from before the restart.
    second.monitor.onReading(hot(90, 4000));
    second.monitor.onReading(hot(60, 5000));
    second.monitor.onReading(hot(60, 5000 + 3_599_999));
    expect(second.alerts().map((a) => a.state)).toEqual(['raised', 'cleared', 'raised']);
    second.monitor.onReading(hot(60, 5000 + 3_600_000));
    expect(second.alerts().map((a) => [a.state, a.flapping])).toEqual([
      ['raised', undefined],
      ['cleared', undefined],
      ['raised', undefined],
      ['cleared', true],
    ]);
  });

  it('forgets a pending condition on restart: its `for` starts over, and nothing is raised twice', async () => {
    const config = alertsConfig((a) => (a.rules['test.hot'] = { forMs: 60_000 }));
    const first = setup(config);
    await first.monitor.start();
    first.monitor.onReading(hot(90, 0));
    first.monitor.onReading(hot(90, 50_000));
    first.store.close();
    const second = setup(config, { dir: first.dir });
    await second.monitor.start();
    second.monitor.onReading(hot(90, 61_000));
    expect(second.alerts()).toEqual([]);
    second.monitor.onReading(hot(90, 121_000));
    expect(second.alerts()).toMatchObject([{ state: 'raised', pendingSinceTs: 61_000 }]);
  });
});

describe('alert lifecycle: configuration', () => {
  it('names unknown rules and clear values on the wrong side, as `path: message`', () => {
    const problems = alertConfigProblems(
      alertsConfig((a) => {
        a.rules['gpu.nope'] = { forMs: 1 };
        a.rules['disk.smart.pending'] = { clearValue: 5 };
        a.rules['disk.smart.failed'] = { clearValue: 0 };
        a.rules['gpu.thermal_slowdown'] = { forMs: 0 };
        a.rules.anomaly = { clearForMs: 60_000 };
        a.rules['gpu.xid'] = { hysteresis: 0.1 };
        a.rules['vibration.iso10816.zone_d'] = { hysteresis: 0.2 };
      }),
    );
    expect(problems).toEqual([
      'alerts.rules.gpu.nope: unknown rule (docs/alerts.md lists the rules; model thresholds are tuned under alerts.risk)',
      "alerts.rules.disk.smart.pending.clearValue: must be at most the rule's threshold 0 (it raises when the value is > 0)",
      'alerts.rules.disk.smart.failed.clearValue: this rule has no threshold to clear short of (only level rules compared with > or < take a clearValue)',
      'alerts.rules.gpu.xid.hysteresis: this rule has no threshold to clear short of (only level rules compared with > or < take a hysteresis)',
    ]);
  });

  it('refuses an unknown lifecycle option and a negative duration when the file is loaded', () => {
    let details: string[] = [];
    try {
      buildConfig('alerts:\n  rules:\n    gpu.xid: { forMs: -1, colour: red }\n  risk:\n    hysteresis: 2\n', {});
    } catch (err) {
      details = (err as { details: string[] }).details;
    }
    expect(details).toEqual(
      expect.arrayContaining([
        'alerts.rules.gpu.xid.colour: unknown option',
        'alerts.rules.gpu.xid.forMs: must be >= 0',
        'alerts.risk.hysteresis: must be <= 1',
      ]),
    );
  });

  it('refuses a bad alerts section when the monitor is built, as the agent does', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-lifecycle-'));
    const store = new RecordStore({ dir });
    stores.push(store);
    expect(
      () =>
        new HealthMonitor(
          store,
          () => undefined,
          captureLogger().log,
          HEALTH_RULES,
          Date.now,
          alertsConfig((a) => (a.rules['no.such.rule'] = {})),
        ),
    ).toThrow(expect.objectContaining({ code: 'FW_ERR_CONFIG_INVALID', details: [expect.stringMatching(/^alerts\.rules\.no\.such\.rule: unknown rule/)] }));
  });
});
