import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RiskScorer } from '../../../agent/src/scoring/risk-scorer.js';
import { ModelRegistry } from '../../../agent/src/model-lifecycle/model-registry.js';
import { ModelUpdater } from '../../../agent/src/model-lifecycle/model-updater.js';
import { installModelBundle } from '../../../agent/src/model-lifecycle/install-model.js';
import type { ShadowLimits } from '../../../agent/src/model-lifecycle/shadow-evaluator.js';
import type { ModelLifecycleEvent } from '../../../agent/src/contract/topics.js';
import type { Reading, RiskRecord } from '../../../agent/src/core/types.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { contractErrors } from '../../helpers/contract.js';
import { MODELS, bundleFile, machineFailureAt, machineReadings, signingKey, tempDir } from '../../helpers/model-fixtures.js';

/**
 * The running agent's side: the real scorer and the real models, a registry in a temp dir, and the AI4I holdout
 * rows of machine-failure's golden.json as readings. A candidate is shadow-scored on them, then promoted or
 * rolled back.
 */

const key = signingKey();
const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

const BINDINGS = [{ model: 'machine-failure', assets: ['mill'] }];
const LIMITS: ShadowLimits = { samples: 20, maxDisagreement: 0.05, maxMeanAbsDiff: 0.05, maxMeanAbsRulDiff: 10 };

async function running(shadow: Partial<ShadowLimits> = {}, prepare?: (registry: ModelRegistry) => Promise<void> | void) {
  const registry = new ModelRegistry(path.join(tempDir('fw-data-'), 'models'), MODELS, 3);
  await prepare?.(registry);
  const records: RiskRecord[] = [];
  const events: ModelLifecycleEvent[] = [];
  let changed = 0;
  const { log, lines } = captureLogger();
  const scorer = new RiskScorer({ modelsDir: MODELS, threads: 1, bindings: BINDINGS, modelDirs: (n) => registry.modelDirs(n) }, (r) => records.push(...r), log);
  const limits = { ...LIMITS, ...shadow };
  const updater = new ModelUpdater(
    {
      registry,
      scorer,
      bindings: BINDINGS,
      shadow: limits,
      pollIntervalMs: 60_000,
      threads: 1,
      trustedKeys: [key.publicFile],
      publish: (e) => events.push(...e),
      onModelsChanged: () => changed++,
    },
    log,
  );
  await scorer.start();
  await updater.start();
  stops.push(async () => {
    await updater.stop();
    await scorer.stop();
  });
  let ts = 10_000;
  /** Real readings one at a time, as sources deliver them; then lets the updater act on what it decided. */
  const feed = async (n: number) => {
    const rows = machineReadings('mill');
    for (let i = 0; i < n; i++) {
      const r: Reading = { ...rows[i % rows.length]!, ts: ts++ };
      scorer.accept(r);
      await scorer.flush();
    }
    await updater.check();
  };
  const ctx = { registry, trustedKeys: new Map([[key.keyId, key.publicKey]]), shadowSamples: limits.samples };
  return { registry, scorer, updater, records, events, lines, feed, ctx, changed: () => changed };
}

const versions = (records: RiskRecord[]) => [...new Set(records.map((r) => r.modelVersion))];

/** The events as the agent publishes them: an events batch on the broker, checked against docs/asyncapi.yaml. */
function published(events: ModelLifecycleEvent[]): string[] {
  return contractErrors('forewarn/v1/a1/events', {
    schemaVersion: 1,
    agentId: 'a1',
    stream: 'events',
    bootSeq: 1,
    records: events.map((e, i) => ({ ...e, seq: i + 1 })),
  });
}

describe('model updates in the running agent', () => {
  it('shadow-scores a candidate on live readings without publishing it, then promotes it and scores with it', async () => {
    const a = await running();
    await a.feed(5);
    expect(versions(a.records)).toEqual(['1.0.0']);
    const r = await a.updater.install(bundleFile(machineFailureAt('1.1.0'), key));
    expect(r).toMatchObject({ outcome: 'candidate', version: '1.1.0' });
    expect(a.updater.shadowing()).toMatchObject([{ model: 'machine-failure', version: '1.1.0' }]);

    const before = a.records.length;
    await a.feed(19);
    // While shadowed, only the current model's records are published: one per reading, all 1.0.0.
    expect(a.records.length - before).toBe(19);
    expect(versions(a.records)).toEqual(['1.0.0']);
    expect(a.registry.read('machine-failure').candidate).toBe('1.1.0');
    expect(a.updater.shadowing()[0]!.progress).toMatchObject({ samples: 19, disagreements: 0 });

    await a.feed(1);
    expect(a.registry.read('machine-failure')).toMatchObject({ current: '1.1.0', candidate: null, previous: [null] });
    expect(a.updater.shadowing()).toEqual([]);
    expect(a.events.map((e) => e.type)).toEqual(['model-candidate', 'model-promoted']);
    expect(a.events[1]).toMatchObject({
      model: 'machine-failure',
      version: '1.1.0',
      previousVersion: '1.0.0',
      shadow: { samples: 20, compared: 20, disagreements: 0, disagreementRate: 0, meanAbsDiff: 0, candidateMissing: 0 },
    });
    expect(a.changed()).toBe(1);
    expect(a.scorer.stats.models).toEqual([{ name: 'machine-failure', version: '1.1.0', assets: ['mill'] }]);
    const n = a.records.length;
    await a.feed(3);
    expect(versions(a.records.slice(n))).toEqual(['1.1.0']);
    expect(a.lines.some((l) => l.msg === 'candidate model promoted')).toBe(true);
  });

  it('rolls back a candidate that disagrees on atRisk, with the reason and the comparison, and keeps scoring with the current model', async () => {
    const a = await running();
    // The same graph with its operating threshold moved to 0: every reading becomes "at risk".
    await a.updater.install(
      bundleFile(
        machineFailureAt('1.1.0', (m) => (m.outputs.threshold = 0)),
        key,
      ),
    );
    await a.feed(20);
    const state = a.registry.read('machine-failure');
    expect(state).toMatchObject({ current: null, candidate: null, versions: [] });
    expect(existsSync(a.registry.versionDir('machine-failure', '1.1.0'))).toBe(false);
    expect(state.history.at(-1)).toMatchObject({
      action: 'rollback',
      version: '1.1.0',
      stage: 'shadow',
      reason: expect.stringContaining('disagreed with the current model'),
    });
    const rollback = a.events.find((e) => e.type === 'model-rollback');
    expect(rollback).toMatchObject({ model: 'machine-failure', version: '1.1.0', restoredVersion: '1.0.0', stage: 'shadow' });
    // Decided as soon as it was certain, well before the 20 readings.
    expect(rollback!.type === 'model-rollback' && rollback!.shadow!.samples).toBeLessThan(20);
    expect(rollback!.type === 'model-rollback' && rollback!.shadow!.disagreements).toBeGreaterThan(1);
    expect(a.lines.find((l) => l.msg === 'candidate model rolled back')).toMatchObject({ code: 'FW_ERR_MODEL_SHADOW' });
    expect(versions(a.records)).toEqual(['1.0.0']);
    expect(a.records.every((r) => r.threshold === 0.48)).toBe(true);
    expect(a.changed()).toBe(0);
    expect(published(a.events)).toEqual([]);
  });

  it('rolls back a candidate that cannot score what the current model scores', async () => {
    const a = await running();
    // A narrower valid torque range: the candidate refuses readings the current model scores.
    await a.updater.install(
      bundleFile(
        machineFailureAt('1.1.0', (m) => (m.inputs.features.find((f) => f.name === 'torque')!.range = [0, 40])),
        key,
      ),
    );
    await a.feed(20);
    const rollback = a.events.find((e) => e.type === 'model-rollback');
    expect(rollback).toMatchObject({ stage: 'shadow' });
    expect(rollback!.type === 'model-rollback' && rollback!.shadow!.candidateMissing).toBeGreaterThan(0);
    expect(a.scorer.stats.skippedInvalid).toBe(0); // the candidate's refusals are not the agent's
  });

  it('rolls back a candidate that fails to load in the agent (its files damaged after install)', async () => {
    const a = await running();
    await installModelBundle(bundleFile(machineFailureAt('1.1.0'), key), a.ctx);
    writeFileSync(path.join(a.registry.versionDir('machine-failure', '1.1.0'), 'model.onnx'), 'bit rot');
    await a.updater.check();
    expect(a.registry.read('machine-failure')).toMatchObject({ candidate: null, current: null });
    expect(a.events.map((e) => e.type)).toEqual(['model-candidate', 'model-rollback']);
    expect(a.events[1]).toMatchObject({ stage: 'load', reason: expect.stringContaining('sha256') });
    expect(published(a.events)).toEqual([]);
    await a.feed(2);
    expect(versions(a.records)).toEqual(['1.0.0']);
  });

  it('follows promotions and `model rollback` made by other processes, swapping models between readings', async () => {
    const a = await running();
    await a.feed(2);
    await installModelBundle(bundleFile(machineFailureAt('1.1.0'), key), { ...a.ctx, shadowSamples: 0 });
    await a.updater.check();
    await a.feed(2);
    expect(versions(a.records.slice(2))).toEqual(['1.1.0']);
    a.registry.rollback('machine-failure', 'operator', 'test');
    await a.updater.check();
    await a.feed(2);
    expect(versions(a.records.slice(4))).toEqual(['1.0.0']);
    expect(a.events.map((e) => `${e.type}${e.type === 'model-rollback' ? ` ${e.stage}` : ''}`)).toEqual(['model-promoted', 'model-rollback operator']);
    expect(a.changed()).toBe(2);
    expect(published(a.events)).toEqual([]);
    // A rejected bundle's event follows the contract too, and a malformed event would not.
    const rejected = {
      ts: 1,
      type: 'model-rejected' as const,
      bundle: 'x.fwm',
      model: 'machine-failure',
      version: '9.0.0',
      code: 'FW_ERR_MODEL_UNTRUSTED',
      reason: 'unsigned',
    };
    expect(published([rejected])).toEqual([]);
    expect(published([{ ...rejected, code: 'nope' }])).not.toEqual([]);
  });

  it('at start, falls back from an installed version that no longer loads and records the rollback', async () => {
    const a = await running({}, async (registry) => {
      await installModelBundle(bundleFile(machineFailureAt('1.1.0'), key), { registry, trustedKeys: new Map([[key.keyId, key.publicKey]]), shadowSamples: 0 });
      writeFileSync(path.join(registry.versionDir('machine-failure', '1.1.0'), 'manifest.json'), '{}');
    });
    expect(a.registry.read('machine-failure')).toMatchObject({ current: null, versions: [] });
    expect(a.events.map((e) => e.type)).toEqual(['model-promoted', 'model-rollback']);
    expect(a.events[1]).toMatchObject({ version: '1.1.0', restoredVersion: '1.0.0', stage: 'load' });
    expect(a.lines.some((l) => l.msg === 'model version not loaded; trying the one before it')).toBe(true);
    await a.feed(1);
    expect(versions(a.records)).toEqual(['1.0.0']);
  });
});
