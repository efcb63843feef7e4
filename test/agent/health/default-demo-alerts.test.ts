import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildConfig, type AgentConfig, type AlertsConfig } from '../../../agent/src/config/load-config.js';
import { DataQuality } from '../../../agent/src/health/data-quality.js';
import { HealthMonitor, type AlertRecord } from '../../../agent/src/health/health-monitor.js';
import { QualityStage } from '../../../agent/src/health/quality-stage.js';
import { DriftMonitor, type ModelHealth } from '../../../agent/src/scoring/drift-monitor.js';
import { RiskScorer } from '../../../agent/src/scoring/risk-scorer.js';
import { RecordStore } from '../../../agent/src/store/record-store.js';
import { MillingMachineSimulator, millingSignals } from '../../../firmware-bridge/src/simulators/milling-machine.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { contractErrors } from '../../helpers/contract.js';

/**
 * The default demo (`npm start`: the simulated milling machine, seed 1, one machining process a second, scored by the
 * default models) driven through the real pipeline pieces — quality stage, risk scorer, drift monitor, health — on a
 * simulated clock: deterministic, and 2.5 hours of the demo in seconds.
 */
const DEMO_READINGS = 9000;
const START = Date.UTC(2025, 0, 1);

interface Run {
  alerts: AlertRecord[];
  /** Reading times at which the simulated machine failed. */
  failures: number[];
  health: ModelHealth[];
}

async function runDemo(config: AgentConfig, alerts: AlertsConfig | undefined): Promise<Run> {
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-demo-alerts-'));
  const store = new RecordStore({ dir });
  const { log } = captureLogger('warn');
  let clock = START;
  const now = () => clock;
  const monitor = new HealthMonitor(store, () => undefined, log, undefined, now, alerts);
  const health: ModelHealth[] = [];
  const drift = new DriftMonitor(config.scoring.drift, (h) => monitor.onDrift(h), now);
  const scorer = new RiskScorer({ modelsDir: config.scoring.modelsDir, threads: 1, bindings: config.scoring.bindings }, monitor, log, drift);
  const quality = new DataQuality(config.quality);
  const stage = new QualityStage(quality, { telemetry: { consumeRecords: () => undefined }, readings: [scorer, monitor], issues: monitor });
  await monitor.start();
  await scorer.start();
  quality.addAnalogSignals(scorer.analogInputSignals());
  const sim = config.sources.simulator;
  const machine = new MillingMachineSimulator({ seed: sim.seed, processSeconds: sim.processSeconds });
  const stepMs = (sim.processSeconds * 1000) / sim.speedup;
  const failures: number[] = [];
  try {
    for (let i = 0; i < DEMO_READINGS; i++) {
      clock = START + i * stepMs;
      const s = machine.next();
      if (s.failed) failures.push(clock);
      stage.consumeReading({
        ts: clock,
        source: 'simulator',
        asset: sim.asset,
        metrics: { ...millingSignals(s), cycle: s.cycle, machine_failure: s.failed ? 1 : 0 },
      });
      await scorer.flush();
      if (i % 600 === 599) health.push(...drift.health());
    }
    return { alerts: store.pending('alerts').map((r) => r.payload as unknown as AlertRecord), failures, health };
  } finally {
    await scorer.stop();
    await monitor.stop();
    store.close();
  }
}

/** Each alert's active span: raised → cleared (or the end of the run). */
function episodes(alerts: AlertRecord[]): Array<{ id: string; raised: AlertRecord; cleared?: AlertRecord }> {
  const out: Array<{ id: string; raised: AlertRecord; cleared?: AlertRecord }> = [];
  const open = new Map<string, { id: string; raised: AlertRecord; cleared?: AlertRecord }>();
  for (const a of alerts) {
    if (a.state === 'raised') {
      const e = { id: a.alertId, raised: a };
      open.set(a.alertId, e);
      out.push(e);
    } else {
      const e = open.get(a.alertId);
      if (e) e.cleared = a;
      open.delete(a.alertId);
    }
  }
  return out;
}

describe('the default demo', () => {
  const config = buildConfig(null, {});
  let lifecycle: Run;
  let immediate: Run;
  beforeAll(async () => {
    lifecycle = await runDemo(config, config.alerts);
    // The same readings without the lifecycle: what the agent did before it (every condition raised and cleared at once).
    immediate = await runDemo(config, undefined);
  }, 120_000);

  it('without the lifecycle, flaps: risk alerts raised and cleared within seconds, over and over', () => {
    const risk = episodes(immediate.alerts).filter((e) => e.raised.rule === 'risk.threshold');
    const short = risk.filter((e) => e.cleared && e.cleared.ts - e.raised.raisedTs <= 2000);
    expect(short.length).toBeGreaterThan(100);
  });

  it('with the default lifecycle, raises no flapping alert and no raise/clear pair within a minute', () => {
    expect(lifecycle.alerts.filter((a) => a.flapping)).toEqual([]);
    for (const e of episodes(lifecycle.alerts)) if (e.cleared) expect(e.cleared.ts - e.raised.raisedTs, e.id).toBeGreaterThanOrEqual(60_000);
    // An operator's scale: a handful of risk alerts in 2.5 hours, not hundreds.
    const risk = episodes(lifecycle.alerts).filter((e) => e.raised.rule === 'risk.threshold');
    expect(risk.length).toBeLessThanOrEqual(10);
  });

  it('publishes alert records the contract accepts, with the new lifecycle fields', () => {
    const batch = { schemaVersion: 1, agentId: 'demo', stream: 'alerts', bootSeq: 1, records: lifecycle.alerts.map((a, i) => ({ ...a, seq: i + 1 })) };
    expect(contractErrors('forewarn/v1/demo/alerts', batch)).toEqual([]);
    expect(lifecycle.alerts.some((a) => a.pendingSinceTs !== undefined && a.value !== undefined)).toBe(true);
  });

  it('raises a risk alert when the machine is really heading to failure: failures follow while it is raised', () => {
    const risk = episodes(lifecycle.alerts).filter((e) => e.raised.rule === 'risk.threshold');
    expect(risk.length).toBeGreaterThan(0);
    for (const e of risk) {
      const end = e.cleared?.ts ?? Infinity;
      // Several processes failed while it was raised (the machine fails on about 3% of processes; a minute's worth is 60).
      expect(lifecycle.failures.filter((t) => t >= e.raised.pendingSinceTs! && t <= end).length, e.raised.alertId).toBeGreaterThanOrEqual(3);
      expect(e.cleared?.value ?? 0).toBeLessThan(0.36);
    }
  });

  it('reports drift figures that agree with the drift state', () => {
    const { watchPsi, outsideShare } = config.scoring.drift;
    expect(lifecycle.health.length).toBeGreaterThan(0);
    for (const h of lifecycle.health) {
      if (h.state === 'ok') {
        expect(h.driftPsi!).toBeLessThan(watchPsi);
        expect(h.outsideMax!).toBeLessThan(outsideShare / 2);
      }
      if (h.state === 'drift') expect(h.driftPsi! >= config.scoring.drift.alertPsi || h.outsideMax! >= outsideShare).toBe(true);
    }
  });
});
