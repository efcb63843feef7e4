import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OnnxModel } from '../../../agent/src/scoring/onnx-model.js';
import { RiskScorer } from '../../../agent/src/scoring/risk-scorer.js';
import type { Reading, RiskRecord } from '../../../agent/src/core/types.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { contractErrors } from '../../helpers/contract.js';
import { waitFor } from '../../helpers/wait.js';

const MODELS = path.resolve(import.meta.dirname, '../../../models');
const scorers: RiskScorer[] = [];
afterEach(async () => {
  for (const s of scorers.splice(0)) await s.stop();
});

async function scorer(bindings: Array<{ model: string; assets: string[]; signals?: Record<string, string> }>) {
  const out: RiskRecord[][] = [];
  const { log, lines } = captureLogger();
  const s = new RiskScorer({ modelsDir: MODELS, threads: 1, bindings }, (r) => out.push(r), log);
  scorers.push(s);
  await s.start();
  return { s, out, lines };
}

const healthy = { product_type: 0, air_temperature: 298.1, process_temperature: 308.6, rotational_speed: 1551, torque: 42.8, tool_wear: 10 };
// Overstrain on an L product: wear × torque far above 11,000 min·Nm.
const overstrained = { product_type: 0, air_temperature: 298.1, process_temperature: 308.6, rotational_speed: 1300, torque: 65, tool_wear: 230 };
const reading = (asset: string, metrics: Record<string, number>, ts = 1): Reading => ({ ts, source: 'test', asset, metrics });

describe('RiskScorer', () => {
  it('scores every reading of bound assets in one batch, with drivers', async () => {
    const { s, out } = await scorer([{ model: 'machine-failure', assets: ['a', 'b'] }]);
    s.accept(reading('a', healthy, 1));
    s.accept(reading('b', overstrained, 2));
    s.accept(reading('a', overstrained, 3));
    s.accept(reading('zzz', healthy)); // not bound: ignored
    await s.flush();
    expect(out).toHaveLength(1); // one batch
    const [batch] = out;
    expect(batch!.map((r) => [r.asset, r.readingTs])).toEqual([
      ['a', 1],
      ['b', 2],
      ['a', 3],
    ]);
    const [ok, bad] = batch!;
    expect(ok!.score).toBeLessThan(ok!.threshold!);
    expect(ok!.atRisk).toBe(false);
    expect(bad!.score).toBeGreaterThan(bad!.threshold!);
    expect(bad!.atRisk).toBe(true);
    expect(bad).toMatchObject({ model: 'machine-failure', kind: 'probability', modelVersion: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    // The overstrain case is driven by wear and torque, which must lead its drivers.
    expect(bad!.drivers.length).toBeGreaterThan(0);
    expect(['tool_wear', 'torque']).toContain(bad!.drivers[0]!.feature);
    expect(bad!.drivers[0]!.contribution).toBeGreaterThan(0);
    expect(s.stats.scored).toBe(3);
  });

  it('merges signals from several readings and maps renamed signals through the binding', async () => {
    const { s, out } = await scorer([{ model: 'machine-failure', assets: ['m'], signals: { torque: 'spindle_torque' } }]);
    const { torque, ...rest } = healthy;
    s.accept(reading('m', rest));
    await s.flush();
    expect(out).toHaveLength(0);
    expect(s.stats.skippedMissing).toBe(1);
    s.accept(reading('m', { spindle_torque: torque }));
    await s.flush();
    expect(out.flat()).toHaveLength(1);
  });

  it('never scores an out-of-range input as if it were valid', async () => {
    const { s, out, lines } = await scorer([{ model: 'machine-failure', assets: ['m'] }]);
    s.accept(reading('m', { ...healthy, process_temperature: 5000 }));
    s.accept(reading('m', { ...healthy, product_type: 7 }));
    await s.flush();
    expect(out).toHaveLength(0);
    expect(s.stats.skippedInvalid).toBe(2);
    expect(lines.filter((l) => String(l.msg).includes('out of its valid range'))).toHaveLength(2);
  });

  it('keeps scoring with the good models when one cannot load', async () => {
    const { s, out, lines } = await scorer([
      { model: 'no-such-model', assets: ['m'] },
      { model: 'machine-failure', assets: ['m'] },
    ]);
    expect(lines.some((l) => l.msg === 'model not loaded; its assets will not be scored' && l.code === 'FW_ERR_MODEL_MANIFEST')).toBe(true);
    s.accept(reading('m', healthy));
    await s.flush();
    expect(out.flat().map((r) => r.model)).toEqual(['machine-failure']);
    expect(s.stats.models.map((m) => m.name)).toEqual(['machine-failure']);
  });
});

describe('RiskScorer with the disk-failure model', () => {
  it('scores every asset a pattern matches, feeding attributes a disk does not report as missing', async () => {
    const { s, out } = await scorer([{ model: 'disk-failure', assets: ['disk-*'] }]);
    // A healthy drive that reports everything, and a failing one whose vendor reports neither 187 nor 198.
    s.accept(reading('disk-ZA1', { 'smart.5.raw': 0, 'smart.187.raw': 0, 'smart.197.raw': 0, 'smart.198.raw': 0 }));
    s.accept(reading('disk-WD2', { 'smart.5.raw': 1200, 'smart.197.raw': 64 }));
    s.accept(reading('mill-1', { 'smart.5.raw': 1200 })); // not a disk
    await s.flush();
    const [healthy, failing] = out.flat();
    expect(out.flat().map((r) => r.asset)).toEqual(['disk-ZA1', 'disk-WD2']);
    expect(healthy!.atRisk).toBe(false);
    expect(failing!.atRisk).toBe(true);
    expect(failing!.score).toBeGreaterThan(healthy!.score);
    // Drivers name only what the drive reported.
    expect(failing!.drivers.map((d) => d.feature).sort()).toEqual(expect.arrayContaining(['smart_5_raw']));
    expect(failing!.drivers.some((d) => d.feature === 'smart_187_raw')).toBe(false);
  });
});

describe('RiskScorer with a sequence model (turbofan-rul)', () => {
  it('keeps a rolling window per asset, padded with the first reading, and flags short remaining life', async () => {
    const manifest = JSON.parse(readFileSync(path.join(MODELS, 'turbofan-rul/manifest.json'), 'utf8')) as {
      inputs: { window: { length: number }; features: Array<{ name: string; signal: string; baseline: number; range: [number, number] }> };
      outputs: { threshold: number };
    };
    const { s, out } = await scorer([{ model: 'turbofan-rul', assets: ['engine-*'] }]);
    const healthy = Object.fromEntries(manifest.inputs.features.map((f) => [f.signal, f.baseline]));
    // Degraded: every sensor at the end of its range that a worn compressor drives it towards.
    const worn = Object.fromEntries(manifest.inputs.features.map((f) => [f.signal, f.baseline + (f.range[1] - f.baseline) * 0.6]));
    s.accept(reading('engine-1', healthy, 1));
    await s.flush();
    s.accept(reading('engine-1', healthy, 2));
    await s.flush();
    const [first, second] = out.flat();
    // One reading padded to a full window is the same window as two identical readings.
    expect(second!.score).toBeCloseTo(first!.score, 4);
    expect(first).toMatchObject({ kind: 'rul', model: 'turbofan-rul', threshold: manifest.outputs.threshold });
    expect(first!.score).toBeGreaterThan(manifest.outputs.threshold);
    expect(first!.atRisk).toBe(false);
    // A window that fills with degraded readings drives the remaining life down.
    for (let t = 3; t < 3 + manifest.inputs.window.length; t++) s.accept(reading('engine-1', worn, t));
    await s.flush();
    const last = out.flat().at(-1)!;
    expect(last.score).toBeLessThan(first!.score);
    expect(last.drivers.length).toBeGreaterThan(0);
  });

  it('flags an engine at its last cycle as at risk and a young engine as not, from recorded C-MAPSS windows', async () => {
    // Two windows of models/turbofan-rul/golden.json, cut from the training recipe's FD001 holdout: engine 8 at its
    // last cycle before failure (true RUL 0) and engine 55 early in its life (true RUL 131).
    const manifest = JSON.parse(readFileSync(path.join(MODELS, 'turbofan-rul/manifest.json'), 'utf8')) as {
      inputs: { features: Array<{ signal: string }> };
      outputs: { threshold: number };
    };
    const golden = JSON.parse(readFileSync(path.join(MODELS, 'turbofan-rul/golden.json'), 'utf8')) as { inputs: number[][][]; rul: number[]; notes: string[] };
    const window = (pattern: RegExp) => {
      const i = golden.notes.findIndex((n) => pattern.test(n));
      expect(i, String(pattern)).toBeGreaterThanOrEqual(0);
      return { rows: golden.inputs[i]!, rul: golden.rul[i]! };
    };
    const failing = window(/^holdout engine 8, last cycle 150 \(true RUL 0\)/);
    const young = window(/^holdout engine 55 truncated at cycle 62 \(true RUL 131\)/);
    const { s, out } = await scorer([{ model: 'turbofan-rul', assets: ['engine-*'] }]);
    const feed = (asset: string, rows: number[][]) =>
      rows.forEach((row, t) => s.accept(reading(asset, Object.fromEntries(manifest.inputs.features.map((f, j) => [f.signal, row[j]!])), t + 1)));
    feed('engine-8', failing.rows);
    feed('engine-55', young.rows);
    await s.flush();
    const last = (asset: string) =>
      out
        .flat()
        .filter((r) => r.asset === asset)
        .at(-1)!;
    expect(last('engine-8').score).toBeCloseTo(failing.rul, 2);
    expect(last('engine-8').score).toBeLessThan(manifest.outputs.threshold);
    expect(last('engine-8').atRisk).toBe(true);
    expect(last('engine-55').score).toBeCloseTo(young.rul, 2);
    expect(last('engine-55').score).toBeGreaterThan(manifest.outputs.threshold);
    expect(last('engine-55').atRisk).toBe(false);
  });
});

describe('RiskScorer publishes the calibrated RUL interval of the manifest', () => {
  it('gives every record of turbofan-rul bounds that contain the score and follow the bin of outputs.interval', async () => {
    const manifest = JSON.parse(readFileSync(path.join(MODELS, 'turbofan-rul/manifest.json'), 'utf8')) as {
      inputs: { features: Array<{ signal: string }> };
      outputs: { interval: { level: number; bins: Array<{ predictionBelow?: number; lower: number; upper: number }> } };
    };
    const golden = JSON.parse(readFileSync(path.join(MODELS, 'turbofan-rul/golden.json'), 'utf8')) as { inputs: number[][][] };
    const { s, out } = await scorer([{ model: 'turbofan-rul', assets: ['engine-*'] }]);
    // Every golden window as one engine: predictions from near failure to healthy, so several bins are used.
    golden.inputs.forEach((rows, e) =>
      rows.forEach((row, t) => s.accept(reading(`engine-${e}`, Object.fromEntries(manifest.inputs.features.map((f, j) => [f.signal, row[j]!])), t + 1))),
    );
    await s.flush();
    const records = out.flat();
    expect(records.length).toBeGreaterThan(golden.inputs.length);
    const bins = new Set<number>();
    for (const r of records) {
      expect(r.interval, r.asset).toBeDefined();
      const { level, lower, upper } = r.interval!;
      expect(level).toBe(manifest.outputs.interval.level);
      expect(lower).toBeLessThanOrEqual(r.score);
      expect(upper).toBeGreaterThanOrEqual(r.score);
      const i = manifest.outputs.interval.bins.findIndex((b) => b.predictionBelow === undefined || r.score < b.predictionBelow);
      const bin = manifest.outputs.interval.bins[i]!;
      bins.add(i);
      // Bounds carry six significant digits, as the score does.
      expect(lower).toBeCloseTo(Math.max(0, r.score + bin.lower), 2);
      expect(upper).toBeCloseTo(r.score + bin.upper, 2);
    }
    expect(bins.size, 'bins the golden windows reach').toBeGreaterThan(2);
    // The record with its interval is what docs/asyncapi.yaml promises subscribers (contract 1.1.0).
    const r = records.at(-1)!;
    expect(
      contractErrors(`forewarn/v1/agent-1/risk/current/${r.asset}/${r.model}`, { schemaVersion: 1, agentId: 'agent-1', record: { seq: 1, ...r } }),
    ).toEqual([]);
  });

  it('gives no interval to a model whose manifest has none', async () => {
    const { s, out } = await scorer([{ model: 'machine-failure', assets: ['mill'] }]);
    s.accept(reading('mill', overstrained, 1));
    await s.flush();
    const records = out.flat();
    expect(records.length).toBe(1);
    expect(records[0]!.interval).toBeUndefined();
  });
});

describe('RiskScorer loads a model on the first reading of a bound asset', () => {
  it('checks the manifest at start, loads nothing until a bound asset reports, then scores that first reading', async () => {
    const { s, out, lines } = await scorer([{ model: 'machine-failure', assets: ['mill'] }]);
    // Bound (status lists it), not loaded: an agent whose bound assets never report never pays for the model.
    expect(s.stats.models).toEqual([{ name: 'machine-failure', version: expect.any(String), assets: ['mill'] }]);
    expect(s.current('machine-failure')).toBeNull();
    s.accept(reading('other', healthy));
    await s.flush();
    expect(s.current('machine-failure')).toBeNull();
    expect(lines.some((l) => l.msg === 'model loaded')).toBe(false);
    // The first reading of the bound asset loads it, and is scored: nothing is skipped while it loads.
    s.accept(reading('mill', overstrained, 7));
    s.accept(reading('mill', healthy, 8));
    await s.flush();
    expect(s.current('machine-failure')).not.toBeNull();
    expect(out.flat().map((r) => [r.readingTs, r.atRisk])).toEqual([
      [7, true],
      [8, false],
    ]);
    expect(lines.filter((l) => l.msg === 'model loaded')).toHaveLength(1);
  });

  it('says it is scoring from the reading until its scores are handed over, and not after (the store waits on it)', async () => {
    const { s, out } = await scorer([{ model: 'machine-failure', assets: ['mill'] }]);
    expect(s.scoring).toBe(false);
    // The first reading waits for its model to load, the others for their batch: scoring all along.
    const seen: boolean[] = [];
    for (const ts of [1, 2]) {
      s.accept(reading('mill', healthy, ts));
      seen.push(s.scoring);
      await waitFor(() => out.flat().some((r) => r.readingTs === ts) || !s.scoring, `reading ${ts} scored`);
      expect(out.flat().map((r) => r.readingTs)).toContain(ts);
    }
    expect(seen).toEqual([true, true]);
    // The scores are out and nothing is queued: not scoring, so the storage keeper commits at once.
    await waitFor(() => !s.scoring, 'the scorer idle');
    s.accept(reading('other', healthy, 3)); // not bound: nothing to wait for
    expect(s.scoring).toBe(false);
  });

  it('a model whose manifest is broken is reported at start, and its assets are not scored', async () => {
    const { s, lines } = await scorer([{ model: 'no-such-model', assets: ['mill'] }]);
    expect(s.stats.errors).toBe(1);
    expect(s.stats.models).toEqual([]);
    expect(lines.some((l) => l.msg === 'model not loaded; its assets will not be scored' && l.code === 'FW_ERR_MODEL_MANIFEST')).toBe(true);
  });
});

describe('RiskScorer details', () => {
  it('matches assets exactly, or by a pattern whose only wildcard is `*`', async () => {
    const { s, out } = await scorer([{ model: 'machine-failure', assets: ['mill', 'line.1+*'] }]);
    for (const asset of ['mill', 'mill-2', 'xmill', 'line.1+a', 'line.1+', 'lineX1+a', 'line.11a', 'x-line.1+a']) s.accept(reading(asset, healthy));
    await s.flush();
    expect(out.flat().map((r) => r.asset)).toEqual(['mill', 'line.1+a', 'line.1+']);
  });

  it('publishes the three largest drivers, largest first, and scores to six significant digits', async () => {
    const { s, out } = await scorer([{ model: 'machine-failure', assets: ['m'] }]);
    s.accept(reading('m', overstrained));
    await s.flush();
    const [r] = out.flat();
    expect(r!.drivers).toHaveLength(3);
    const sizes = r!.drivers.map((d) => Math.abs(d.contribution));
    expect(sizes).toEqual([...sizes].sort((a, b) => b - a));
    for (const x of [r!.score, ...r!.drivers.flatMap((d) => [d.value, d.contribution])]) expect(Number(x.toPrecision(6))).toBe(x);
    expect(r!.drivers.map((d) => d.value)).toEqual(r!.drivers.map((d) => overstrained[d.feature as keyof typeof overstrained]));
    expect(s.latency.count).toBe(1);
    expect(s.stats.lastBatchMs).toBeGreaterThanOrEqual(0);
  });

  it("names the analog inputs of its models (not categories, not counters), through the binding's renames, loaded or not", async () => {
    const { s } = await scorer([{ model: 'machine-failure', assets: ['m'], signals: { torque: 'spindle_torque' } }]);
    const analog = ['air_temperature', 'process_temperature', 'rotational_speed', 'spindle_torque'];
    expect(s.analogInputSignals()).toEqual(analog);
    s.accept(reading('m', healthy));
    await s.flush();
    expect(s.current('machine-failure')).not.toBeNull();
    expect(s.analogInputSignals()).toEqual(analog);
  });

  it('stops scoring with a signal it was told to forget, and warns once per missing input', async () => {
    const { s, out, lines } = await scorer([{ model: 'machine-failure', assets: ['m'] }]);
    s.accept(reading('m', healthy));
    await s.flush();
    expect(out.flat()).toHaveLength(1);
    s.forgetSignal('m', 'torque');
    s.forget('m', 'tool_wear');
    s.accept(reading('m', { air_temperature: 298 }));
    s.accept(reading('m', { air_temperature: 299 }));
    await s.flush();
    expect(out.flat()).toHaveLength(1);
    expect(s.stats.skippedMissing).toBe(2);
    expect(lines.filter((l) => l.msg === 'model input missing; asset not scored until it arrives').map((l) => l.input)).toEqual(['torque']);
  });

  it('refuses a category that is not a whole index of its list', async () => {
    const { s, out } = await scorer([{ model: 'machine-failure', assets: ['m'] }]);
    for (const product_type of [3, -1, 0.5]) s.accept(reading('m', { ...healthy, product_type }));
    s.accept(reading('m', { ...healthy, product_type: 2 }));
    await s.flush();
    expect(out.flat()).toHaveLength(1);
    expect(s.stats.skippedInvalid).toBe(3);
  });

  it('keeps at most 1,000 readings while its model loads, counting the rest as errors', async () => {
    const { s, out } = await scorer([{ model: 'machine-failure', assets: ['m'] }]);
    for (let i = 0; i < 1001; i++) s.accept(reading('m', healthy, i));
    await s.flush();
    expect(out.flat()).toHaveLength(1000);
    expect(s.stats.errors).toBe(1);
  });

  it('keeps at most 10,000 readings waiting for a batch, dropping the oldest', async () => {
    const { s, out } = await scorer([{ model: 'machine-failure', assets: ['m'] }]);
    s.accept(reading('m', healthy, -1));
    await s.flush();
    for (let i = 0; i < 10_001; i++) s.accept(reading('m', healthy, i));
    await s.flush();
    const batch = out.flat().slice(1);
    expect(batch).toHaveLength(10_000);
    expect(batch[0]!.readingTs).toBe(1);
    expect(s.stats.errors).toBe(1);
  });
});

/** The paths a reading takes once its model is loaded (readings that arrive while it loads take another). */
describe('RiskScorer once its model has loaded', () => {
  async function loaded(bindings: Array<{ model: string; assets: string[] }> = [{ model: 'machine-failure', assets: ['m'] }]) {
    const t = await scorer(bindings);
    t.s.accept(reading(bindings[0]!.assets[0]!, healthy, 0));
    await t.s.flush();
    expect(t.s.current(bindings[0]!.model)).not.toBeNull();
    t.out.splice(0);
    return t;
  }

  it('scores only the assets its binding names: exactly, or by a pattern whose only wildcard is `*`', async () => {
    const { s, out } = await loaded([{ model: 'machine-failure', assets: ['mill', 'line.1+*'] }]);
    for (const asset of ['mill', 'mill-2', 'xmill', 'line.1+a', 'line.1+', 'lineX1+a', 'line.11a', 'x-line.1+a']) s.accept(reading(asset, healthy));
    await s.flush();
    expect(out.flat().map((r) => r.asset)).toEqual(['mill', 'line.1+a', 'line.1+']);
  });

  it('takes the ends of a range as valid and refuses NaN for an input that is not optional', async () => {
    const { s, out } = await loaded();
    s.accept(reading('m', { ...healthy, air_temperature: 307 }, 1));
    s.accept(reading('m', { ...healthy, air_temperature: 293 }, 2));
    s.accept(reading('m', { ...healthy, air_temperature: 307.5 }, 3));
    s.accept(reading('m', { ...healthy, torque: Number.NaN }, 4));
    await s.flush();
    expect(out.flat().map((r) => r.readingTs)).toEqual([1, 2]);
    expect([s.stats.skippedInvalid, s.stats.skippedMissing]).toEqual([1, 1]);
  });

  it('batches the readings of one tick by itself, and again for the next tick', async () => {
    const { s, out } = await loaded();
    for (let ts = 1; ts <= 3; ts++) s.accept(reading('m', healthy, ts));
    await waitFor(() => out.length === 1, 'the first batch');
    s.accept(reading('m', healthy, 4));
    await waitFor(() => out.length === 2, 'the second batch');
    expect(out.map((batch) => batch.map((r) => r.readingTs))).toEqual([[1, 2, 3], [4]]);
  });

  it('scores a reading that woke a second binding once on each binding, not again on the first', async () => {
    const { s, out } = await loaded([
      { model: 'machine-failure', assets: ['a', 'b'] },
      { model: 'machine-failure', assets: ['b'] },
    ]);
    s.accept(reading('b', healthy, 5));
    await s.flush();
    expect(out.flat().map((r) => r.readingTs)).toEqual([5, 5]);
  });

  it('scores nothing once stopped, and loads no model for a reading that comes after', async () => {
    const { s, out } = await loaded();
    await s.stop();
    s.accept(reading('m', healthy, 9));
    await s.flush();
    expect(out.flat()).toEqual([]);
    expect(s.current('machine-failure')).toBeNull();
    const dormant = await scorer([{ model: 'machine-failure', assets: ['m'] }]);
    await dormant.s.stop();
    dormant.s.accept(reading('m', healthy, 10));
    await dormant.s.flush();
    expect(dormant.out.flat()).toEqual([]);
    expect(dormant.lines.filter((l) => l.msg === 'model loaded')).toEqual([]);
  });

  it('shadows a candidate on the same readings without publishing it, stops on unshadow, and swaps it in', async () => {
    const { s, out } = await loaded();
    const candidate = await OnnxModel.load(path.join(MODELS, 'machine-failure'), { threads: 1 });
    const seen: Array<[number[], number[]]> = [];
    const observer = {
      observe: (c: readonly RiskRecord[], k: readonly RiskRecord[]) => seen.push([c.map((r) => r.readingTs), k.map((r) => r.readingTs)]),
      fail: () => undefined,
    };
    // A reading queued before the shadow began was never offered to the candidate: it is not compared.
    s.accept(reading('m', healthy, 0.5));
    expect(s.shadow('machine-failure', candidate, observer)).toBe(1);
    expect(s.shadow('no-such-model', candidate, observer)).toBe(0);
    s.accept(reading('m', healthy, 1));
    s.accept(reading('m', overstrained, 2));
    await s.flush();
    expect(seen).toEqual([
      [
        [1, 2],
        [1, 2],
      ],
    ]);
    // Only the current model's records are published, and counted.
    expect(out.flat().map((r) => r.readingTs)).toEqual([0.5, 1, 2]);
    expect(s.stats.scored).toBe(4);
    await s.unshadow('machine-failure');
    s.accept(reading('m', healthy, 3));
    await s.flush();
    expect(seen).toHaveLength(1);
    const old = s.current('machine-failure');
    await s.swapModel('machine-failure', candidate);
    expect(s.current('machine-failure')).toBe(candidate);
    expect(s.current('machine-failure')).not.toBe(old);
    s.accept(reading('m', overstrained, 4));
    await s.flush();
    expect(out.flat().map((r) => [r.readingTs, r.atRisk])).toEqual([
      [0.5, false],
      [1, false],
      [2, true],
      [3, false],
      [4, true],
    ]);
    // The old model was released: it scores no more.
    await expect(old!.run(new Float32Array(6), 1)).rejects.toThrow();
  });
});

describe('RiskScorer as a pipeline component', () => {
  it('is the `scoring` component, hands records to a consumer object, and takes readings through its seam', async () => {
    const records: RiskRecord[] = [];
    const { log } = captureLogger();
    const s = new RiskScorer(
      { modelsDir: MODELS, threads: 1, bindings: [{ model: 'machine-failure', assets: ['m'] }] },
      { consumeRisk: (r) => records.push(...r) },
      log,
    );
    scorers.push(s);
    expect([s.name, s.stats.models]).toEqual(['scoring', []]);
    await s.start();
    s.consumeReading(reading('m', healthy, 1));
    await s.flush();
    expect(records.map((r) => r.readingTs)).toEqual([1]);
  });

  it('says which models wait for their first reading, and from where; loadNow loads them without one', async () => {
    const { s, out } = await scorer([{ model: 'machine-failure', assets: ['m'] }]);
    const dir = path.join(MODELS, 'machine-failure');
    expect([s.waitsToLoad('machine-failure', dir), s.waitsToLoad('machine-failure', '/elsewhere'), s.waitsToLoad('turbofan-rul', dir)]).toEqual([
      true,
      false,
      false,
    ]);
    await s.loadNow('machine-failure');
    await s.loadNow('turbofan-rul');
    expect(s.current('machine-failure')).not.toBeNull();
    expect(s.current('turbofan-rul')).toBeNull();
    expect(s.waitsToLoad('machine-failure', dir)).toBe(false);
    expect(out).toEqual([]);
  });
});

/**
 * Models that go wrong after their manifest passed, built by fixtures/broken-models/make.py: one whose output is NaN,
 * one that echoes its input (so a test picks an out-of-range score), one onnxruntime fails at run time, and a file
 * that is not ONNX at all. A fault is counted and logged, the other models keep scoring, and a replacement recovers.
 */
describe('RiskScorer with a broken model', () => {
  const BROKEN = path.resolve(import.meta.dirname, 'fixtures/broken-models');
  const dirOf = (model: string) => (existsSync(path.join(BROKEN, model)) ? path.join(BROKEN, model) : path.join(MODELS, model));

  async function faulty(bindings: Array<{ model: string; assets: string[] }>, modelDirs: (model: string) => string[] = (m) => [dirOf(m)]) {
    const out: RiskRecord[][] = [];
    const { log, lines } = captureLogger();
    const s = new RiskScorer({ modelsDir: BROKEN, threads: 1, bindings, modelDirs }, (r) => out.push(r), log);
    scorers.push(s);
    await s.start();
    return { s, out, lines };
  }
  const withMsg = (lines: Array<Record<string, unknown>>, msg: string) => lines.filter((l) => l.msg === msg);
  const models: OnnxModel[] = [];
  afterEach(async () => {
    for (const m of models.splice(0)) await m.release().catch(() => undefined);
  });
  async function load(name: string): Promise<OnnxModel> {
    const m = await OnnxModel.load(path.join(BROKEN, name), { threads: 1 });
    models.push(m);
    return m;
  }

  it('a NaN output is counted and not recorded, warned once; the other model scores the same readings', async () => {
    const { s, out, lines } = await faulty([
      { model: 'nan-output', assets: ['m'] },
      { model: 'machine-failure', assets: ['m'] },
    ]);
    s.accept(reading('m', { ...healthy, level: 0.2 }, 1));
    s.accept(reading('m', { ...overstrained, level: 0.3 }, 2));
    await s.flush();
    expect(s.current('nan-output')).not.toBeNull();
    expect(out.flat().map((r) => [r.model, r.readingTs, r.atRisk])).toEqual([
      ['machine-failure', 1, false],
      ['machine-failure', 2, true],
    ]);
    expect([s.stats.errors, s.stats.scored]).toEqual([2, 2]);
    // pino writes NaN as null.
    expect(withMsg(lines, 'model output invalid; not recorded')).toEqual([
      expect.objectContaining({ level: 40, model: 'nan-output', score: null, code: 'FW_ERR_MODEL_OUTPUT' }),
    ]);
    s.accept(reading('m', { level: 0.4 }, 3));
    await s.flush();
    expect([s.stats.errors, s.stats.scored, withMsg(lines, 'model output invalid; not recorded').length]).toEqual([3, 3, 1]);
  });

  it('a probability outside 0..1 is counted and not recorded; 0 and 1 themselves are scores', async () => {
    const { s, out, lines } = await faulty([{ model: 'echo', assets: ['e'] }]);
    for (const [ts, level] of [
      [1, 1.5],
      [2, 0],
      [3, -0.5],
      [4, 1],
      [5, 0.25],
    ] as const)
      s.accept(reading('e', { level }, ts));
    await s.flush();
    expect(out.flat().map((r) => [r.readingTs, r.score, r.atRisk])).toEqual([
      [2, 0, false],
      [4, 1, true],
      [5, 0.25, false],
    ]);
    expect([s.stats.errors, s.stats.scored]).toEqual([2, 3]);
    expect(withMsg(lines, 'model output invalid; not recorded')).toEqual([expect.objectContaining({ model: 'echo', score: 1.5 })]);
  });

  it('a score exactly at the threshold is at risk: a probability at or above it, a remaining life at or below it', async () => {
    const { s, out } = await faulty([
      { model: 'echo', assets: ['e'] },
      { model: 'echo-rul', assets: ['e'] },
    ]);
    s.accept(reading('e', { level: 0.5 }, 1));
    await s.flush();
    expect(out.flat().map((r) => [r.kind, r.score, r.threshold, r.atRisk])).toEqual([
      ['probability', 0.5, 0.5, true],
      ['rul', 0.5, 0.5, true],
    ]);
  });

  it('a remaining life has no such range: any finite output of a rul model is a score', async () => {
    const { s, out } = await faulty([{ model: 'echo-rul', assets: ['e'] }]);
    s.accept(reading('e', { level: 1.5 }, 1));
    s.accept(reading('e', { level: -0.5 }, 2));
    await s.flush();
    expect(out.flat().map((r) => [r.readingTs, r.kind, r.score, r.atRisk])).toEqual([
      [1, 'rul', 1.5, false],
      [2, 'rul', -0.5, true],
    ]);
    expect(s.stats.errors).toBe(0);
  });

  it('a model onnxruntime fails at run time: each failed batch is counted and logged, the other model scores, and a replacement recovers', async () => {
    const { s, out, lines } = await faulty([
      { model: 'batch-of-one', assets: ['m'] },
      { model: 'machine-failure', assets: ['m'] },
    ]);
    // It loads: the one-row warm-up passes. Every scoring batch has two rows per reading (the row and its occlusion).
    s.accept(reading('m', { ...healthy, level: 0.7 }, 1));
    s.accept(reading('m', { ...healthy, level: 0.8 }, 2));
    await s.flush();
    expect(s.current('batch-of-one')).not.toBeNull();
    s.accept(reading('m', { ...healthy, level: 0.6 }, 3));
    await s.flush();
    expect(out.flat().map((r) => [r.model, r.readingTs])).toEqual([
      ['machine-failure', 1],
      ['machine-failure', 2],
      ['machine-failure', 3],
    ]);
    expect([s.stats.errors, s.stats.scored]).toEqual([2, 3]);
    const failed = withMsg(lines, 'scoring failed');
    expect(failed).toHaveLength(2);
    expect(failed[0]).toMatchObject({ level: 50, model: 'batch-of-one', version: '1.0.0', err: expect.stringMatching(/reshape/i) });
    expect(failed[0]!.shadow).toBeUndefined();
    // Replaced by a model that works: it scores from the next reading on, with the level the failed reading carried
    // (the asset's latest values outlive the failure: a reading without `level` is scored with 0.6).
    const fixed = await load('echo');
    await s.swapModel('batch-of-one', fixed);
    expect(s.current('batch-of-one')).toBe(fixed);
    s.accept(reading('m', { torque: 43 }, 4));
    await s.flush();
    expect(
      out
        .flat()
        .filter((r) => r.readingTs === 4)
        .map((r) => [r.model, r.score]),
    ).toEqual([
      ['echo', 0.6],
      ['machine-failure', expect.any(Number)],
    ]);
    expect([s.stats.errors, withMsg(lines, 'scoring failed').length]).toEqual([2, 2]);
  });

  it('a shadow candidate that fails or outputs nonsense is reported to its observer, and never published', async () => {
    const { s, out, lines } = await faulty([{ model: 'echo', assets: ['e'] }]);
    s.accept(reading('e', { level: 0.1 }, 0));
    await s.flush();
    const failures: string[] = [];
    const seen: Array<[number, number]> = [];
    const observer = {
      observe: (c: readonly RiskRecord[], k: readonly RiskRecord[]) => seen.push([c.length, k.length]),
      fail: (why: string) => failures.push(why),
    };
    expect(s.shadow('echo', await load('batch-of-one'), observer)).toBe(1);
    s.accept(reading('e', { level: 0.2 }, 1));
    await s.flush();
    await s.unshadow('echo');
    expect(s.shadow('echo', await load('nan-output'), observer)).toBe(1);
    s.accept(reading('e', { level: 0.3 }, 2));
    await s.flush();
    expect(failures).toEqual([expect.stringMatching(/^scoring failed: .*reshape/i), 'invalid output NaN for e']);
    // The current model's records still reach the observer, with nothing to compare them with.
    expect(seen).toEqual([
      [1, 0],
      [1, 0],
    ]);
    expect(out.flat().map((r) => [r.model, r.readingTs])).toEqual([
      ['echo', 0],
      ['echo', 1],
      ['echo', 2],
    ]);
    expect([s.stats.errors, s.stats.scored]).toEqual([2, 3]);
    expect(withMsg(lines, 'scoring failed')).toEqual([expect.objectContaining({ model: 'batch-of-one', shadow: true })]);
  });

  it('a file that is not ONNX, with a matching sha256, fails to load on the first reading: counted, logged with its code, unbound; the others score', async () => {
    const { s, out, lines } = await faulty([
      { model: 'not-onnx', assets: ['m'] },
      { model: 'machine-failure', assets: ['m'] },
    ]);
    // The manifest and checksum pass at start: it is bound, waiting for its first reading.
    expect([s.stats.models.map((m) => m.name), s.stats.errors]).toEqual([['not-onnx', 'machine-failure'], 0]);
    s.accept(reading('m', { ...healthy, level: 0.5 }, 1));
    await s.flush();
    expect(out.flat().map((r) => [r.model, r.readingTs])).toEqual([['machine-failure', 1]]);
    expect([s.stats.models.map((m) => m.name), s.stats.errors]).toEqual([['machine-failure'], 1]);
    expect(withMsg(lines, 'model not loaded; its assets will not be scored')).toEqual([
      expect.objectContaining({ level: 50, code: 'FW_ERR_MODEL_LOAD', dir: path.join(BROKEN, 'not-onnx'), err: expect.stringContaining('model.onnx: ') }),
    ]);
    expect(s.current('not-onnx')).toBeNull();
    // Not retried on every reading: it stays unbound until a model update replaces it.
    s.accept(reading('m', { ...healthy, level: 0.5 }, 2));
    await s.flush();
    expect([out.flat().length, s.stats.errors]).toEqual([2, 1]);
    const fixed = await load('echo');
    await s.swapModel('not-onnx', fixed);
    s.accept(reading('m', { level: 0.25 }, 3));
    await s.flush();
    expect(
      out
        .flat()
        .filter((r) => r.readingTs === 3)
        .map((r) => [r.model, r.score]),
    ).toEqual([
      ['machine-failure', expect.any(Number)],
      ['echo', 0.25],
    ]);
  });

  it('falls back to the version before one that fails to load, warning with the code', async () => {
    const notOnnx = path.join(BROKEN, 'not-onnx');
    const echo = path.join(BROKEN, 'echo');
    const { s, out, lines } = await faulty([{ model: 'echo', assets: ['e'] }], () => [notOnnx, echo]);
    expect(s.waitsToLoad('echo', notOnnx)).toBe(true);
    s.accept(reading('e', { level: 0.4 }, 1));
    await s.flush();
    expect(out.flat().map((r) => [r.model, r.score])).toEqual([['echo', 0.4]]);
    expect(s.stats.errors).toBe(0);
    expect(withMsg(lines, 'model version not loaded; trying the one before it')).toEqual([
      expect.objectContaining({ level: 40, code: 'FW_ERR_MODEL_LOAD', dir: notOnnx, err: expect.stringContaining(path.join(notOnnx, 'model.onnx')) }),
    ]);
  });

  it('falls back past a broken manifest at start, and does not try that folder again when it loads', async () => {
    const missing = path.join(BROKEN, 'no-such-version');
    const echo = path.join(BROKEN, 'echo');
    const { s, out, lines } = await faulty([{ model: 'echo', assets: ['e'] }], () => [missing, echo]);
    expect([s.waitsToLoad('echo', echo), s.waitsToLoad('echo', missing)]).toEqual([true, false]);
    s.accept(reading('e', { level: 0.4 }, 1));
    await s.flush();
    expect(out.flat().map((r) => r.score)).toEqual([0.4]);
    expect(withMsg(lines, 'model version not loaded; trying the one before it')).toEqual([
      expect.objectContaining({ code: 'FW_ERR_MODEL_MANIFEST', dir: missing }),
    ]);
  });

  it('when no version loads, reports the first failure once, against the last folder', async () => {
    const notOnnx = path.join(BROKEN, 'not-onnx');
    const missing = path.join(BROKEN, 'no-such-version');
    // The same folder twice under two spellings: two versions that fail alike.
    const { s, out, lines } = await faulty([{ model: 'echo', assets: ['e'] }], () => [notOnnx + path.sep, notOnnx]);
    s.accept(reading('e', { level: 0.4 }, 1));
    await s.flush();
    expect([out.flat(), s.stats.errors, s.stats.models]).toEqual([[], 1, []]);
    expect(withMsg(lines, 'model version not loaded; trying the one before it')).toEqual([expect.objectContaining({ dir: notOnnx + path.sep })]);
    expect(withMsg(lines, 'model not loaded; its assets will not be scored')).toEqual([expect.objectContaining({ code: 'FW_ERR_MODEL_LOAD', dir: notOnnx })]);
    // Every manifest broken: the first folder's error, and no warning for the last.
    const none = await faulty([{ model: 'echo', assets: ['e'] }], () => [missing, notOnnx + '-missing']);
    expect(withMsg(none.lines, 'model version not loaded; trying the one before it')).toEqual([expect.objectContaining({ dir: missing })]);
    expect(withMsg(none.lines, 'model not loaded; its assets will not be scored')).toEqual([
      expect.objectContaining({ code: 'FW_ERR_MODEL_MANIFEST', err: expect.stringContaining(path.join(missing, 'manifest.json')), dir: notOnnx + '-missing' }),
    ]);
    const empty = await faulty([{ model: 'echo', assets: ['e'] }], () => []);
    expect(empty.s.stats.errors).toBe(1);
    expect(withMsg(empty.lines, 'model not loaded; its assets will not be scored')).toEqual([expect.objectContaining({ err: 'no model folder' })]);
  });

  it('a swap takes only the readings queued for its own name: another binding still loading keeps and scores its own', async () => {
    const { s, out } = await faulty([
      { model: 'echo', assets: ['m'] },
      { model: 'machine-failure', assets: ['m'] },
    ]);
    const candidate = await load('echo-rul');
    s.accept(reading('m', { ...healthy, level: 0.5 }, 1));
    await s.swapModel('echo', candidate);
    await s.flush();
    expect(
      out
        .flat()
        .map((r) => [r.model, r.readingTs])
        .sort(),
    ).toEqual([
      ['echo-rul', 1],
      ['machine-failure', 1],
    ]);
    expect(s.current('machine-failure')).not.toBeNull();
  });

  it('a shadow follows the binding it shadows across a swap', async () => {
    const { s } = await faulty([{ model: 'echo', assets: ['e'] }]);
    s.accept(reading('e', { level: 0.1 }, 0));
    await s.flush();
    const seen: Array<[number[], number[]]> = [];
    const observer = {
      observe: (c: readonly RiskRecord[], k: readonly RiskRecord[]) => seen.push([c.map((r) => r.score), k.map((r) => r.score)]),
      fail: () => undefined,
    };
    s.shadow('echo', await load('echo-rul'), observer);
    await s.swapModel('echo', await load('echo'));
    s.accept(reading('e', { level: 0.2 }, 1));
    await s.flush();
    expect(seen).toEqual([[[0.2], [0.2]]]);
  });

  it('a swap releases the old model only when nothing else scores with it', async () => {
    const { s, out } = await faulty([
      { model: 'echo', assets: ['e'] },
      { model: 'nan-output', assets: ['n'] },
    ]);
    const shared = await load('echo');
    await s.swapModel('echo', shared);
    await s.swapModel('nan-output', shared);
    // The same model again: kept.
    await s.swapModel('echo', shared);
    // Replaced on one binding: still scoring the other.
    await s.swapModel('echo', await load('echo-rul'));
    s.accept(reading('e', { level: 0.3 }, 1));
    s.accept(reading('n', { level: 0.4 }, 2));
    await s.flush();
    expect(out.flat().map((r) => [r.model, r.score])).toEqual([
      ['echo-rul', 0.3],
      ['echo', 0.4],
    ]);
    expect(s.stats.errors).toBe(0);
  });

  it("a sequence model swapped for one with the same inputs keeps each asset's window", async () => {
    const manifest = JSON.parse(readFileSync(path.join(MODELS, 'turbofan-rul/manifest.json'), 'utf8')) as { inputs: { features: Array<{ signal: string }> } };
    const golden = JSON.parse(readFileSync(path.join(MODELS, 'turbofan-rul/golden.json'), 'utf8')) as { inputs: number[][][] };
    const rows = golden.inputs[0]!;
    const as = (row: number[]) => Object.fromEntries(manifest.inputs.features.map((f, j) => [f.signal, row[j]!]));
    const run = async (swap: boolean) => {
      const { s, out } = await scorer([{ model: 'turbofan-rul', assets: ['engine'] }]);
      rows.slice(0, -1).forEach((row, t) => s.accept(reading('engine', as(row), t)));
      await s.flush();
      if (swap) await s.swapModel('turbofan-rul', await OnnxModel.load(path.join(MODELS, 'turbofan-rul'), { threads: 1 }));
      s.accept(reading('engine', as(rows.at(-1)!), rows.length));
      await s.flush();
      return out.flat().at(-1)!.score;
    };
    const [kept, continuous] = [await run(true), await run(false)];
    expect(kept).toBe(continuous);
    // A window started afresh (padded with the last row alone) scores otherwise: the check above can tell.
    const { s, out } = await scorer([{ model: 'turbofan-rul', assets: ['engine'] }]);
    s.accept(reading('engine', as(rows.at(-1)!), 1));
    await s.flush();
    expect(out.flat()[0]!.score).not.toBe(continuous);
  });

  it('swaps a model into a binding that has not loaded: it scores from then on, and no load happens', async () => {
    const { s, out, lines } = await faulty([{ model: 'echo', assets: ['e'] }]);
    const candidate = await load('echo-rul');
    await s.swapModel('echo', candidate);
    expect(s.current('echo')).toBe(candidate);
    expect(s.stats.models).toEqual([{ name: 'echo-rul', version: '1.0.0', assets: ['e'] }]);
    expect(s.waitsToLoad('echo', path.join(BROKEN, 'echo'))).toBe(false);
    s.accept(reading('e', { level: 2 }, 1));
    await s.flush();
    expect(out.flat().map((r) => [r.model, r.readingTs, r.score])).toEqual([['echo-rul', 1, 2]]);
    expect(withMsg(lines, 'model loaded')).toEqual([]);
  });

  it('swaps a model into a binding whose load is in flight: the readings that woke it are scored by the new model, the load is discarded', async () => {
    const { s, out, lines } = await faulty([
      { model: 'echo', assets: ['e'] },
      { model: 'echo', assets: ['f'] },
    ]);
    const candidate = await load('echo-rul');
    s.accept(reading('e', { level: 2 }, 1));
    s.accept(reading('f', { level: 3 }, 2));
    await s.swapModel('echo', candidate);
    expect(out.flat().map((r) => [r.model, r.asset, r.score])).toEqual([
      ['echo-rul', 'e', 2],
      ['echo-rul', 'f', 3],
    ]);
    // Let the discarded load finish (a tiny model: milliseconds); it must not bind, nor score.
    await new Promise((resolve) => setTimeout(resolve, 500));
    s.accept(reading('e', { level: 4 }, 3));
    await s.flush();
    expect(out.flat().map((r) => [r.model, r.readingTs])).toEqual([
      ['echo-rul', 1],
      ['echo-rul', 2],
      ['echo-rul', 3],
    ]);
    expect(s.current('echo')).toBe(candidate);
    expect(withMsg(lines, 'model loaded')).toEqual([]);
    expect(s.stats.errors).toBe(0);
  });
});
