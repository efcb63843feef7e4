import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DriftMonitor, type ModelHealth } from '../../../agent/src/scoring/drift-monitor.js';
import type { ModelManifest } from '../../../agent/src/scoring/model-manifest.js';
import { chancePsi, lag1Autocorrelation, psi, type FeatureDistribution } from '../../../agent/src/scoring/feature-distribution.js';
import { MillingMachineSimulator, millingSignals } from '../../../firmware-bridge/src/simulators/milling-machine.js';
import { ROOT } from '../../helpers/agent-process.js';

const manifest = JSON.parse(readFileSync(path.join(ROOT, 'models/machine-failure/manifest.json'), 'utf8')) as ModelManifest;
const OPTIONS = { windowSize: 500, minSamples: 200, evaluateEvery: 50, watchPsi: 0.1, alertPsi: 0.25, outsideShare: 0.2 };
const AI4I = path.resolve(ROOT, '../shared/data/ai4i/ai4i2020_train.csv');

function monitor() {
  const changes: Array<{ h: ModelHealth; previous: string }> = [];
  const m = new DriftMonitor(OPTIONS, (h, previous) => changes.push({ h: structuredClone(h), previous }));
  return { m, changes };
}

const round4 = (x: number) => Math.round(x * 1e4) / 1e4;
const row = (s: Record<string, number>) => manifest.inputs.features.map((f) => s[f.signal]!);

describe('DriftMonitor', () => {
  it('keeps quiet on the simulated machine, then names the sensor when one is recalibrated out of range, and clears when it is fixed', () => {
    const { m, changes } = monitor();
    const sim = new MillingMachineSimulator({ seed: 1 });
    for (let i = 0; i < 1000; i++) m.observe(manifest, 'mill', row(millingSignals(sim.next())));
    expect(m.health()[0]).toMatchObject({ state: 'ok', samples: 500 });
    expect(changes.map((c) => c.h.state)).toEqual(['ok']);
    // The torque sensor now reads 40% high: a fast input, judged by PSI.
    for (let i = 0; i < 300; i++) {
      const s = millingSignals(sim.next());
      m.observe(manifest, 'mill', row({ ...s, torque: s.torque! * 1.4 }));
    }
    const drifted = m.health()[0]!;
    expect(drifted.state).toBe('drift');
    expect(drifted.top[0]!.feature).toBe('torque');
    expect(drifted.top[0]!.psi).toBeGreaterThan(0.25);
    for (let i = 0; i < 600; i++) m.observe(manifest, 'mill', row(millingSignals(sim.next())));
    expect(m.health()[0]!.state).toBe('ok');
    // Through `watch` on the way, maybe; never more than one drift episode.
    const states = changes.map((c) => c.h.state);
    expect(states[0]).toBe('ok');
    expect(states.at(-1)).toBe('ok');
    expect(states.filter((s) => s === 'drift')).toHaveLength(1);
  });

  it('catches a slow input leaving the training range by its share outside the support', () => {
    const { m } = monitor();
    const sim = new MillingMachineSimulator({ seed: 2 });
    for (let i = 0; i < 500; i++) m.observe(manifest, 'mill', row(millingSignals(sim.next())));
    // An air temperature sensor off by +8 K: outside what the model was trained on.
    for (let i = 0; i < 200; i++) {
      const s = millingSignals(sim.next());
      m.observe(manifest, 'mill', row({ ...s, air_temperature: s.air_temperature! + 8 }));
    }
    const h = m.health()[0]!;
    expect(h.state).toBe('drift');
    expect(h.top.find((t) => t.feature === 'air_temperature')).toMatchObject({ narrow: true });
    expect(h.top.find((t) => t.feature === 'air_temperature')!.outside).toBeGreaterThan(0.2);
  });

  it('says warming until it has enough rows, watches each asset apart, and skips models without distributions', () => {
    const { m } = monitor();
    const sim = new MillingMachineSimulator({ seed: 3 });
    for (let i = 0; i < 150; i++) m.observe(manifest, 'a', row(millingSignals(sim.next())));
    m.observe(manifest, 'b', row(millingSignals(sim.next())));
    expect(m.health().map((h) => [h.asset, h.state])).toEqual([
      ['a', 'warming'],
      ['b', 'warming'],
    ]);
    const bare = { ...manifest, inputs: { ...manifest.inputs, features: manifest.inputs.features.map(({ distribution: _d, ...f }) => f) } } as ModelManifest;
    expect(DriftMonitor.monitors(bare)).toBe(false);
    m.observe(bare, 'c', row(millingSignals(sim.next())));
    expect(m.health().map((h) => h.asset)).toEqual(['a', 'b']);
    expect(m.bytes()).toBe(2 * (500 * 6 * 6 + manifest.inputs.features.reduce((n, f) => n + (f.distribution!.fractions.length + 1) * 4, 0)));
  });

  it.skipIf(!existsSync(AI4I))('never flags the AI4I training data itself, replayed in order (needs ../shared/data)', () => {
    const { m, changes } = monitor();
    const lines = readFileSync(AI4I, 'utf8').trim().split('\n');
    const header = lines[0]!.split(',');
    const cols = manifest.inputs.features.map((f) => header.indexOf(f.column!));
    let windows = 0;
    let plainPsiAlarms = 0;
    for (const line of lines.slice(1)) {
      const cells = line.split(',');
      m.observe(
        manifest,
        'ai4i',
        cols.map((c, j) => (j === 0 ? ['L', 'M', 'H'].indexOf(cells[c]!) : Number(cells[c]))),
      );
      const h = m.health()[0]!;
      if (h.state === 'warming') continue;
      windows++;
      if (h.psiMax >= OPTIONS.alertPsi) plainPsiAlarms++;
    }
    expect(windows).toBeGreaterThan(7000);
    expect(changes.filter((c) => c.h.state === 'drift')).toEqual([]);
    // What plain PSI would have said of the same windows (docs/drift.md): drift, nearly always.
    expect(plainPsiAlarms / windows).toBeGreaterThan(0.95);
  });
});

/**
 * A toy model with known distributions, so that each figure of the verdict can be worked out by hand: `y` has no
 * distribution (not watched), `x` and `z` are cut at 0.5 with the training support [0, 1].
 */
describe('DriftMonitor figures on a toy model', () => {
  const X: FeatureDistribution = { edges: [0.5], fractions: [0.4, 0.5], missing: 0.1, support: [0, 1] };
  const Z: FeatureDistribution = { edges: [0.5], fractions: [0.5, 0.5], support: [0, 1] };
  const toy = (version = '1.0.0') =>
    ({
      name: 'toy',
      version,
      inputs: {
        features: [
          { name: 'y', signal: 'y', unit: '' },
          { name: 'x', signal: 'x', unit: '', distribution: X },
          { name: 'z', signal: 'z', unit: '', distribution: Z },
        ],
      },
    }) as unknown as ModelManifest;
  const watch = (options: Partial<typeof OPTIONS>) => {
    const changes: Array<[string, string]> = [];
    const m = new DriftMonitor({ ...OPTIONS, ...options }, (h, previous) => changes.push([h.state, previous]));
    return { m, changes };
  };

  it('judges the share beyond the support over exactly the last windowSize rows, at both thresholds, and stays drifted until under the watch level', () => {
    const { m, changes } = watch({ windowSize: 4, minSamples: 2, evaluateEvery: 1, watchPsi: 50, alertPsi: 100, outsideShare: 0.5 });
    const seen: Array<[string, number | undefined]> = [];
    const xs = [0.25, 0.75, 5, 5, 0.25, 0.75, 0.25, 0.75];
    const tops: string[][] = [];
    xs.forEach((x, i) => {
      m.observe(toy(), 'a', [0, x, i % 2 ? 0.75 : 0.25]);
      seen.push([m.health()[0]!.state, m.health()[0]!.outsideMax]);
      tops.push(m.health()[0]!.top.map((d) => d.feature));
    });
    // The features at or above the watch level, or else the worst one alone.
    expect(tops.slice(1, 4)).toEqual([['x'], ['x'], ['x']]);
    expect(seen).toEqual([
      ['warming', 0],
      ['ok', 0],
      ['watch', 0.3333],
      ['drift', 0.5],
      ['drift', 0.5],
      ['drift', 0.5],
      // One in four beyond the support: the watch level, and a drifted model stays drifted there.
      ['drift', 0.25],
      ['ok', 0],
    ]);
    expect(changes).toEqual([
      ['ok', 'warming'],
      ['watch', 'ok'],
      ['drift', 'watch'],
      ['ok', 'drift'],
    ]);
  });

  it('scores PSI and chance from the bins of the window, missing values apart, with the autocorrelation in time order', () => {
    const { m } = watch({ windowSize: 4, minSamples: 4, evaluateEvery: 1, watchPsi: 0, alertPsi: 100, outsideShare: 0.9 });
    // Six rows into a window of four: the ring has wrapped; in time order x is 0.1, 0.2, 0.3, 0.4 (a trend).
    for (const x of [0.9, 0.9, 0.1, 0.2, 0.3, 0.4]) m.observe(toy(), 'a', [0, x, 0.25]);
    const h = m.health()[0]!;
    const rho = lag1Autocorrelation([0.1, 0.2, 0.3, 0.4]);
    const x = h.top.find((d) => d.feature === 'x')!;
    expect(x).toEqual({ feature: 'x', psi: round4(psi(X, [4, 0], 0)), chance: round4(chancePsi(3, 4, rho)), outside: 0 });
    expect(h.samples).toBe(4);
    // z sits in one bin: its PSI, with no missing bin (two bins the training data fills).
    expect(h.top.find((d) => d.feature === 'z')).toMatchObject({ psi: round4(psi(Z, [4, 0])), chance: round4(chancePsi(2, 4, 0)) });
    expect(h.psiMax).toBe(Math.max(round4(psi(X, [4, 0], 0)), round4(psi(Z, [4, 0]))));

    const { m: gaps } = watch({ windowSize: 5, minSamples: 5, evaluateEvery: 1, watchPsi: 0, alertPsi: 100, outsideShare: 0.9 });
    for (const x of [0.1, Number.NaN, 0.2, 0.3, 0.4]) gaps.observe(toy(), 'a', [0, x, 0.25]);
    // The missing value has its own bin, and no place in the series the autocorrelation is taken of.
    expect(gaps.health()[0]!.top.find((d) => d.feature === 'x')).toMatchObject({
      psi: round4(psi(X, [4, 0], 1)),
      chance: round4(chancePsi(3, 5, lag1Autocorrelation([0.1, 0.2, 0.3, 0.4]))),
      outside: 0,
    });
  });

  it('counts values below the support as beyond it, and the support bounds themselves as inside', () => {
    const { m } = watch({ windowSize: 4, minSamples: 4, evaluateEvery: 1, watchPsi: 50, alertPsi: 100, outsideShare: 0.9 });
    for (const x of [0, 1, -0.5, 0.5]) m.observe(toy(), 'a', [0, x, 0.25]);
    expect(m.health()[0]!.outsideMax).toBe(0.25);
  });

  it('judges chance by the bins the training data fills, and in a window not yet full by its rows only', () => {
    const gap: FeatureDistribution = { edges: [0.3, 0.6], fractions: [0.5, 0, 0.5], support: [0, 1] };
    const manifest = { name: 'gap', version: '1', inputs: { features: [{ name: 'g', signal: 'g', unit: '', distribution: gap }] } } as unknown as ModelManifest;
    const { m } = watch({ windowSize: 8, minSamples: 4, evaluateEvery: 1, watchPsi: 50, alertPsi: 100, outsideShare: 0.9 });
    for (const g of [0.1, 0.2, 0.7, 0.8]) m.observe(manifest, 'a', [g]);
    const rho = lag1Autocorrelation([0.1, 0.2, 0.7, 0.8]);
    expect(m.health()[0]!.top).toEqual([{ feature: 'g', psi: round4(psi(gap, [2, 0, 2])), chance: round4(chancePsi(2, 4, rho)), outside: 0 }]);
  });

  it('takes an input as slow from a lag-1 autocorrelation of exactly 0.5, or a window narrower than half the training IQR', () => {
    const wide: FeatureDistribution = { edges: [0.25, 0.5, 0.75], fractions: [0.25, 0.25, 0.25, 0.25], support: [0, 1] };
    const manifest = {
      name: 'slow',
      version: '1',
      inputs: { features: ['x', 'w', 'v'].map((name) => ({ name, signal: name, unit: '', distribution: name === 'x' ? X : wide })) },
    } as unknown as ModelManifest;
    const narrow = (rows: number[][]) => {
      const { m } = watch({ windowSize: rows.length, minSamples: rows.length, evaluateEvery: 1, watchPsi: 0, alertPsi: 100, outsideShare: 0.9 });
      for (const r of rows) m.observe(manifest, 'a', r);
      return Object.fromEntries(m.health()[0]!.top.map((d) => [d.feature, d.narrow ?? false]));
    };
    // x: two runs of three, ρ = 0.5 exactly. w: alternating within 0.02 (IQR far under 0.25). v: IQR exactly 0.25.
    expect(lag1Autocorrelation([0.25, 0.25, 0.25, 0.75, 0.75, 0.75])).toBe(0.5);
    expect(
      narrow([
        [0.25, 0.3, 0.25],
        [0.25, 0.32, 0.5],
        [0.25, 0.3, 0.25],
        [0.75, 0.32, 0.5],
        [0.75, 0.3, 0.25],
        [0.75, 0.32, 0.5],
      ]),
    ).toEqual({ x: true, w: true, v: false });
  });

  it('orders the features worst first: by level, then PSI beyond chance; reports the largest excess; lists at most five', () => {
    // Listed last, so that only the sort can bring it first.
    const features = ['b', 'c', 'd', 'e', 'f', 'a'].map((name) => ({ name, signal: name, unit: '', distribution: Z }));
    const manifest = { name: 'six', version: '1', inputs: { features } } as unknown as ModelManifest;
    const { m } = watch({ windowSize: 20, minSamples: 20, evaluateEvery: 1, watchPsi: 0, alertPsi: 100, outsideShare: 0.9 });
    // a sits in one bin (a large excess); b..f alternate between the bins (none); e is beyond the support a quarter of the time.
    for (let i = 0; i < 20; i++) {
      const alternate = i % 2 ? 0.75 : 0.25;
      m.observe(manifest, 'a', [alternate, alternate, alternate, i % 4 === 1 ? 5 : alternate, alternate, 0.25]);
    }
    const h = m.health()[0]!;
    const excessA = psi(Z, [20, 0]) - chancePsi(2, 20, 0);
    // b, c, d and f tie on level and excess with e: e's values beyond the support put it first of them.
    expect(h.top.map((d) => d.feature)).toEqual(['a', 'e', 'b', 'c', 'd']);
    expect(h.driftPsi).toBe(round4(excessA));
    expect(h.state).toBe('watch');

    // With alertPsi 0 every feature is at the drift level, even one whose PSI chance explains entirely.
    const { m: zero } = watch({ windowSize: 4, minSamples: 4, evaluateEvery: 1, watchPsi: 0, alertPsi: 0, outsideShare: 0.9 });
    for (const z of [0.25, 0.75, 0.25, 0.75]) zero.observe(toy(), 'a', [0, z, z]);
    expect(zero.health()[0]!.driftPsi).toBe(0);
    expect(zero.health()[0]!.state).toBe('drift');
  });

  it('watches a model when any of its inputs has a distribution', () => {
    expect(DriftMonitor.monitors(toy())).toBe(true);
  });

  it('evaluates on reaching minSamples and then every evaluateEvery rows', () => {
    const { m } = watch({ windowSize: 10, minSamples: 2, evaluateEvery: 3 });
    const samples: number[] = [];
    m.observe(toy(), 'a', [0, 0.25, 0.25]);
    // Not evaluated yet: nothing to report.
    expect(m.health()[0]).toMatchObject({ state: 'warming', samples: 0, top: [] });
    samples.push(m.health()[0]!.samples);
    for (let i = 1; i < 8; i++) {
      m.observe(toy(), 'a', [0, 0.25, 0.25]);
      samples.push(m.health()[0]!.samples);
    }
    expect(samples).toEqual([0, 2, 2, 2, 5, 5, 5, 8]);
  });

  it("starts a new window when the model's version changes", () => {
    const { m } = watch({ windowSize: 4, minSamples: 2, evaluateEvery: 1 });
    for (let i = 0; i < 3; i++) m.observe(toy('1.0.0'), 'a', [0, 0.25, 0.25]);
    m.observe(toy('1.1.0'), 'a', [0, 0.25, 0.25]);
    expect(m.health().map((h) => [h.version, h.samples, h.state])).toEqual([['1.1.0', 1, 'warming']]);
  });
});
