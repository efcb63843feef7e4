import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertBook } from '../../../../agent/src/central/alerts/alert-book.js';
import { CentralStore } from '../../../../agent/src/central/central-store.js';
import type { BatchRecord } from '../../../../agent/src/central/decode-batch.js';
import { FleetProjection } from '../../../../agent/src/central/fleet/fleet-projection.js';
import { parseWhen, parseWindow } from '../../../../agent/src/central/labels/export-labels.js';
import { ai4iMode } from '../../../../agent/src/central/labels/recipe-formats.js';
import { migrateWorkflow } from '../../../../agent/src/central/workflow/workflow-schema.js';
import { ROOT, runCli } from '../../../helpers/agent-process.js';
import { centralStores, type CentralStores } from '../../../helpers/central-fixtures.js';

/**
 * `forewarn central export-labels`, run as a process on a store filled by the real ingest (CentralStore with the
 * fleet and alert-book projections) from records shaped like the agents': turbofan cycles, milling-machine
 * readings, SMART readings; workflow rows as the console writes them. The files are checked column by column
 * against what was ingested, and read back by each recipe's own loader (models/<name>/train.py).
 */

const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Date.UTC(2026, 2, 1, 0, 0, 0);
/** The export runs "now" = after everything below; `--since` takes an ISO date. */
const SINCE = '2026-03-01';

const PYTHON = '/usr/bin/python3';
const pythonSkip = (() => {
  const r = spawnSync(PYTHON, ['-c', 'import numpy, sklearn, onnx'], { encoding: 'utf8' });
  return r.status === 0 ? null : `${PYTHON} with numpy, scikit-learn and onnx is not available (the recipes need them)`;
})();

/** Deterministic values with decimals, as sensors send them. */
const val = (base: number, i: number, k: number) => Number((base + ((i * 7 + k * 13) % 17) * 0.01).toFixed(4));

const CMAPSS = [...['os1', 'os2', 'os3'], ...Array.from({ length: 21 }, (_, i) => `s${i + 1}`)];
const TURBO_BASE: Record<string, number> = { os1: -0.0007, os2: 0.0003, os3: 100 };
CMAPSS.slice(3).forEach((s, k) => (TURBO_BASE[s] = 500 + k * 37.5));

function turbofanCycle(seq: number, ts: number, asset: string, i: number, quality?: Record<string, string>): BatchRecord {
  const metrics: Record<string, number> = { cycle: i + 1 };
  CMAPSS.forEach((c, k) => (metrics[`cmapss.${c}`] = val(TURBO_BASE[c]!, i, k)));
  return { seq, ts, source: 'opcua', asset, metrics, ...(quality ? { quality } : {}) };
}

function millReading(seq: number, ts: number, asset: string, i: number): BatchRecord {
  return {
    seq,
    ts,
    source: 'simulator',
    asset,
    metrics: {
      product_type: 1,
      air_temperature: val(298, i, 1),
      process_temperature: val(308.5, i, 2),
      rotational_speed: 1400 + i,
      torque: val(40, i, 3),
      tool_wear: i,
      cycle: i,
      machine_failure: 0,
    },
  };
}

function smartReading(seq: number, ts: number, asset: string, i: number): BatchRecord {
  const metrics: Record<string, number> = {
    'smart.5.raw': i,
    'smart.9.raw': 30000 + i,
    'smart.197.raw': 2 * i,
    'smart.198.raw': 2 * i,
    'disk.temperature_c': 33,
  };
  if (i % 2 === 0) metrics['smart.187.raw'] = 1; // a vendor that reports 187 only sometimes: blank otherwise
  return { seq, ts, source: 'smart', asset, metrics };
}

const risk = (seq: number, ts: number, asset: string, model: string, kind = 'probability'): BatchRecord => ({
  seq,
  ts,
  asset,
  model,
  modelVersion: '1.0.0',
  kind,
  score: 0.9,
  threshold: 0.5,
  atRisk: true,
  readingTs: ts,
  drivers: [],
});

const alert = (seq: number, raisedTs: number, rule: string, asset: string, subject?: string): BatchRecord => ({
  seq,
  ts: raisedTs,
  alertId: `${rule}/${asset}${subject ? `/${subject}` : ''}`,
  rule,
  asset,
  ...(subject ? { subject } : {}),
  state: 'raised',
  severity: 'warning',
  title: rule,
  evidence: {},
  remedy: '',
  raisedTs,
});

/** Alerts raised, per agent, at these times (the window ends there). */
const ENGINE7_ALERT = T0 + 34 * MIN; // cycle 35
const ENGINE8_ALERT = T0 + 9 * MIN; // cycle 10: a short history
const MILL_ALERT = T0 + 30 * HOUR;
const MILL2_ALERT = T0 + 30 * HOUR;
const DISK_ALERT = T0 + 40 * HOUR;

async function seed(url: string): Promise<void> {
  const store = await CentralStore.open({ url, projections: [new FleetProjection({ rollupMetrics: [] }), new AlertBook()] });
  const put = (agentId: string, stream: string, records: BatchRecord[]) =>
    store.ingestBatch({ agentId, stream, bootSeq: 1, historical: false, records }, T0 + 50 * HOUR);
  try {
    // Turbofan: engine-7 40 cycles a minute apart, cycle 21 with s2 flagged by a quality check; engine-8 10 cycles; engine-9 open.
    const turbo: BatchRecord[] = [];
    let seq = 0;
    for (let i = 0; i < 40; i++) turbo.push(turbofanCycle(++seq, T0 + i * MIN, 'engine-7', i, i === 20 ? { 'cmapss.s2': 'step' } : undefined));
    for (let i = 0; i < 10; i++) turbo.push(turbofanCycle(++seq, T0 + i * MIN, 'engine-8', 100 + i));
    for (let i = 0; i < 10; i++) turbo.push(turbofanCycle(++seq, T0 + i * MIN, 'engine-9', 200 + i));
    turbo.sort((a, b) => a.ts - b.ts || a.seq - b.seq);
    turbo.forEach((r, k) => (r.seq = k + 1));
    await put('eng-agent', 'telemetry', turbo);
    await put('eng-agent', 'risk', [
      risk(1, T0, 'engine-7', 'turbofan-rul', 'rul'),
      risk(2, T0, 'engine-8', 'turbofan-rul', 'rul'),
      risk(3, T0, 'engine-9', 'turbofan-rul', 'rul'),
    ]);
    await put('eng-agent', 'alerts', [
      alert(1, ENGINE8_ALERT, 'risk.threshold', 'engine-8', 'turbofan-rul'),
      alert(2, ENGINE7_ALERT, 'risk.threshold', 'engine-7', 'turbofan-rul'),
      alert(3, ENGINE7_ALERT + MIN, 'risk.threshold', 'engine-9', 'turbofan-rul'),
      alert(4, ENGINE7_ALERT + 2 * MIN, 'quality.step', 'engine-7', 'cmapss.s2'),
    ]);
    // Machines: a reading every 10 minutes for 31 h; mill-1 at the exact window start and end.
    const mill: BatchRecord[] = [];
    for (let i = 0; i <= 186; i++) mill.push(millReading(mill.length + 1, T0 + i * 10 * MIN, 'mill-1', i));
    for (let i = 0; i <= 186; i++) mill.push(millReading(mill.length + 1, T0 + i * 10 * MIN + 5 * MIN, 'mill-2', i));
    mill.sort((a, b) => a.ts - b.ts);
    mill.forEach((r, k) => (r.seq = k + 1));
    await put('mill-agent', 'telemetry', mill);
    await put('mill-agent', 'risk', [risk(1, T0, 'mill-1', 'machine-failure'), risk(2, T0, 'mill-2', 'machine-failure')]);
    await put('mill-agent', 'alerts', [alert(1, MILL_ALERT, 'risk.threshold', 'mill-1', 'machine-failure'), alert(2, MILL2_ALERT, 'anomaly', 'mill-2')]);
    // Disks: hourly SMART readings for 45 h on one disk.
    const disk: BatchRecord[] = [];
    for (let i = 0; i < 45; i++) disk.push(smartReading(i + 1, T0 + i * HOUR, 'disk-ZA1B2C3', i));
    await put('host-1', 'telemetry', disk);
    await put('host-1', 'risk', [risk(1, T0, 'disk-ZA1B2C3', 'disk-failure')]);
    await put('host-1', 'alerts', [alert(1, DISK_ALERT, 'disk.smart.pending', 'disk-ZA1B2C3')]);

    // What technicians did in the console.
    await migrateWorkflow(store.sql);
    const close = (key: string, raised: number, state: string, by: string, ts: number, mode: string | null, note: string | null = null) =>
      store.sql.run(
        `INSERT INTO alert_workflow (alert_key, raised_ts, state, updated_by, updated_ts, note, failure_mode, action_taken) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        [key, raised, state, by, ts, note, mode, state === 'resolved' ? 'replaced' : null],
      );
    await close('agent/eng-agent/risk.threshold/engine-7/turbofan-rul', ENGINE7_ALERT, 'resolved', 'alice', T0 + 48 * HOUR, 'hpc-degradation');
    await close('agent/eng-agent/risk.threshold/engine-8/turbofan-rul', ENGINE8_ALERT, 'false_alarm', 'bob', T0 + 48 * HOUR + 1, null, 'borescope clean');
    await close('agent/eng-agent/risk.threshold/engine-9/turbofan-rul', ENGINE7_ALERT + MIN, 'acknowledged', 'bob', T0 + 48 * HOUR + 2, null);
    await close('agent/eng-agent/quality.step/engine-7/cmapss.s2', ENGINE7_ALERT + 2 * MIN, 'false_alarm', 'bob', T0 + 48 * HOUR + 3, null);
    await close('agent/mill-agent/risk.threshold/mill-1/machine-failure', MILL_ALERT, 'resolved', 'carol', T0 + 49 * HOUR, 'tool-wear');
    await close('agent/mill-agent/anomaly/mill-2', MILL2_ALERT, 'false_alarm', 'carol', T0 + 49 * HOUR + 1, null);
    await close('agent/host-1/disk.smart.pending/disk-ZA1B2C3', DISK_ALERT, 'resolved', 'dave', T0 + 49 * HOUR + 2, 'media-failure');
  } finally {
    await store.close();
  }
}

const dir = mkdtempSync(path.join(tmpdir(), 'fw-labels-'));
let stores: CentralStores;
beforeAll(async () => {
  stores = await centralStores();
}, 120_000);
afterAll(async () => {
  await stores.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

interface Sidecar {
  model: string;
  columns: string[];
  counts: Record<string, number>;
  episodes: Array<{
    label: string;
    positive: boolean;
    unit?: number;
    agentId: string;
    asset: string;
    alertKey: string;
    failureMode: string | null;
    resolvedBy: string;
    resolvedAt: string;
    note: string | null;
    ai4iFailureType?: string | null;
    window: { fromTs: number; toTs: number };
    lines: { first: number; last: number; count: number } | null;
    skipped: { missingInput: number; qualityFlagged: number };
  }>;
}

/** Runs a recipe's loader on a file: Python source that prints JSON. */
function python(code: string): unknown {
  return JSON.parse(
    execFileSync(PYTHON, ['-c', code], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      .trim()
      .split('\n')
      .at(-1)!,
  );
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`forewarn central export-labels on ${dialect}`, () => {
    let url: string;
    const skip = () => dialect === 'postgres' && stores.pgSkip !== null;
    const exportTo = async (model: string, extra: string[] = []) => {
      const out = path.join(dir, `${dialect}-${model}.${model === 'turbofan-rul' ? 'txt' : 'csv'}`);
      const r = await runCli(['central', 'export-labels', '--store', url, '--since', SINCE, '--model', model, '--out', out, ...extra]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      return { out, stdout: r.stdout, text: readFileSync(out, 'utf8'), sidecar: JSON.parse(readFileSync(`${out}.json`, 'utf8')) as Sidecar };
    };

    beforeAll(async () => {
      if (skip()) return;
      url = stores.url(dialect, `labels_${dialect}`);
      await seed(url);
    }, 120_000);

    it('turbofan-rul: C-MAPSS lines of the last 30 usable cycles before each closed alert, a unit per episode', async (ctx) => {
      if (skip()) ctx.skip();
      const { out, text, sidecar, stdout } = await exportTo('turbofan-rul');
      expect(stdout).toContain('1 confirmed failures (positives, 30 lines), 1 false alarms (negatives, 10 lines)');
      // The open alert on engine-9 and the quality alert are not labels.
      expect(sidecar.episodes.map((e) => [e.asset, e.label, e.unit])).toEqual([
        ['engine-7', 'failure', 1],
        ['engine-8', 'false-alarm', 2],
      ]);
      const lines = text
        .trimEnd()
        .split('\n')
        .map((l) => l.split(' '));
      expect(lines).toHaveLength(40);
      expect(lines.every((l) => l.length === 26)).toBe(true);
      // engine-7: cycles 5..35 but the flagged 21st, renumbered 1..30; its last is the reading at the alert.
      const want = [...Array.from({ length: 35 }, (_, i) => i)].filter((i) => i !== 20).slice(-30);
      expect(want[0]).toBe(4);
      want.forEach((i, n) => {
        const line = lines[n]!;
        expect(line.slice(0, 2)).toEqual(['1', String(n + 1)]);
        CMAPSS.forEach((c, k) => expect(Number(line[2 + k]), `${c} of cycle ${i + 1}`).toBe(val(TURBO_BASE[c]!, i, k)));
      });
      const e7 = sidecar.episodes[0]!;
      expect(e7.skipped).toEqual({ missingInput: 0, qualityFlagged: 1 });
      expect(e7.window.toTs).toBe(ENGINE7_ALERT);
      expect(e7.window.fromTs).toBe(T0 + 4 * MIN - 1);
      expect(e7).toMatchObject({ failureMode: 'hpc-degradation', resolvedBy: 'alice', lines: { first: 1, last: 30, count: 30 } });
      // engine-8: a false alarm with only 10 cycles of history (the recipe pads short engines itself).
      expect(lines.slice(30).map((l) => l.slice(0, 2).join(' '))).toEqual(Array.from({ length: 10 }, (_, n) => `2 ${n + 1}`));
      expect(Number(lines[39]![2 + CMAPSS.indexOf('s21')])).toBe(val(TURBO_BASE.s21!, 109, CMAPSS.indexOf('s21')));
      expect(sidecar.episodes[1]).toMatchObject({ positive: false, note: 'borescope clean', resolvedBy: 'bob' });

      if (pythonSkip) return ctx.skip(pythonSkip);
      const read = python(`
import json, sys
sys.path.insert(0, 'models/turbofan-rul')
import train
engines = train.read_cmapss(${JSON.stringify(out)})
sensors = [s for s in train.SENSORS if s not in train.EXPECTED_CONSTANT]
extra = train.read_extra_labels(${JSON.stringify(out)}, sensors, 101)
X, units, ends, rul = train.engine_windows(extra, sensors)
print(json.dumps({"units": [e.unit for e in engines], "cycles": [len(e) for e in engines], "extra": [e.unit for e in extra],
                  "shape": list(X.shape), "lastRul": float(rul[-1]), "s2": float(X[-1, -1, 0])}))`) as Record<string, unknown>;
      expect(read).toEqual({
        units: [1, 2],
        cycles: [30, 10],
        extra: [101],
        shape: [30, 30, 14],
        lastRul: 0,
        s2: expect.closeTo(val(TURBO_BASE.s2!, 34, 4), 3),
      });
    }, 60_000);

    it('machine-failure: AI4I rows of the 24 h before the alert, (start, end], failure type from the failure mode', async (ctx) => {
      if (skip()) ctx.skip();
      const { out, text, sidecar } = await exportTo('machine-failure');
      const [header, ...rows] = text.trimEnd().split('\n');
      expect(header).toBe(
        'UDI,Product ID,Type,Air temperature [K],Process temperature [K],Rotational speed [rpm],Torque [Nm],Tool wear [min],Machine failure,TWF,HDF,PWF,OSF,RNF',
      );
      expect(sidecar.episodes.map((e) => [e.asset, e.label, e.ai4iFailureType])).toEqual([
        ['mill-1', 'failure', 'TWF'],
        ['mill-2', 'false-alarm', null],
      ]);
      // mill-1 reads every 10 min at T0 + i·10 min: the window (alert − 24 h, alert] holds i = 37..180 (144 rows).
      const mill1 = rows.filter((r) => r.split(',')[1] === 'mill-1');
      expect(mill1).toHaveLength(144);
      const first = mill1[0]!.split(',');
      expect(first).toEqual([
        '1',
        'mill-1',
        'M',
        String(val(298, 37, 1)),
        String(val(308.5, 37, 2)),
        '1437',
        String(val(40, 37, 3)),
        '37',
        '1',
        '1',
        '0',
        '0',
        '0',
        '0',
      ]);
      expect(mill1.at(-1)!.split(',').slice(7, 9)).toEqual(['180', '1']);
      // mill-2 reads at +5 min: (alert − 24 h, alert] holds i = 36..179; a false alarm, every label 0.
      const mill2 = rows.filter((r) => r.split(',')[1] === 'mill-2').map((r) => r.split(','));
      expect(mill2).toHaveLength(144);
      expect(mill2[0]![7]).toBe('36');
      expect(mill2.every((r) => r.slice(8).join('') === '000000')).toBe(true);
      expect(sidecar.counts).toMatchObject({ positives: 1, negatives: 1, positiveLines: 144, negativeLines: 144 });
      expect(sidecar.episodes[0]!.window).toMatchObject({ fromTs: MILL_ALERT - 24 * HOUR, toTs: MILL_ALERT });
      expect(sidecar.episodes[1]!.lines).toEqual({ first: 146, last: 289, count: 144 });

      if (pythonSkip) return ctx.skip(pythonSkip);
      const read = python(`
import json, sys
sys.path.insert(0, 'models/machine-failure')
import train
rows = train.read_extra_labels(${JSON.stringify(out)})
X = train.features(train.raw_inputs(rows))
print(json.dumps({"rows": len(rows), "failures": int(train.labels(rows).sum()), "twf": int(train.labels(rows, "TWF").sum()), "shape": list(X.shape), "type0": float(X[0, 0])}))`);
      expect(read).toEqual({ rows: 288, failures: 144, twf: 144, shape: [288, 10], type0: 1 });
    }, 60_000);

    it('disk-failure: Backblaze rows with the training files’ header, blank where the disk reports nothing', async (ctx) => {
      if (skip()) ctx.skip();
      const { out, text, sidecar } = await exportTo('disk-failure', ['--window', '3h']);
      const [header, ...rows] = text.trimEnd().split('\n');
      const trainingHeader = readFileSync(path.join(ROOT, '../shared/data/smart/ST8000DM002_last_day_raw.csv'), 'utf8').split('\n')[0];
      if (trainingHeader) expect(header).toBe(trainingHeader);
      const cols = header!.split(',');
      // (alert − 3 h, alert]: readings 38, 39, 40.
      expect(rows.map((r) => r.split(',')[cols.indexOf('smart_5_raw')])).toEqual(['38', '39', '40']);
      const last = rows[2]!.split(',');
      expect(last.slice(0, 5)).toEqual(['2026-03-02', 'ZA1B2C3', '', '', '1']);
      expect(last[cols.indexOf('smart_187_raw')]).toBe('1');
      expect(rows[1]!.split(',')[cols.indexOf('smart_187_raw')]).toBe('');
      expect(last[cols.indexOf('smart_9_raw')]).toBe('30040');
      expect(sidecar.episodes).toHaveLength(1);
      expect(sidecar.episodes[0]).toMatchObject({ label: 'failure', failureMode: 'media-failure', resolvedBy: 'dave', agentId: 'host-1' });

      if (pythonSkip) return ctx.skip(pythonSkip);
      const read = python(`
import json, sys
sys.path.insert(0, 'models/disk-failure')
import train
extra = train.read_drives([${JSON.stringify(out)}])
both = train.read_extra_labels(${JSON.stringify(out)}, train.Drives(extra.header, []))
raw = both.raw()
print(json.dumps({"rows": len(both), "failures": int(both.y.sum()), "nan187": int(sum(1 for v in raw[:, 1] if v != v)), "first": raw[0].tolist()}))`);
      expect(read).toEqual({ rows: 3, failures: 3, nan187: 1, first: [38, 1, 76, 76] });
    }, 60_000);

    it('refuses an unknown model and a bad --since with FW_ERR_LABELS_EXPORT, exit 2, writing nothing', async (ctx) => {
      if (skip()) ctx.skip();
      const model = await runCli(['central', 'export-labels', '--store', url, '--since', '30d', '--model', 'bearing-rul', '--out', path.join(dir, 'x.csv')]);
      expect(model.code).toBe(2);
      expect(model.stderr).toContain(
        '--model: "bearing-rul" has no training-recipe format here (one of turbofan-rul, machine-failure, disk-failure) [FW_ERR_LABELS_EXPORT]',
      );
      expect(existsSync(path.join(dir, 'x.csv'))).toBe(false);
      const since = await runCli(['central', 'export-labels', '--store', url, '--since', 'last week', '--model', 'disk-failure']);
      expect(since.code).toBe(2);
      expect(since.stderr).toContain('--since: "last week" is neither an ISO date');
      expect(since.stderr).toContain('[FW_ERR_LABELS_EXPORT]');
    });
  });
}

describe('export-labels arguments', () => {
  const NOW = Date.UTC(2026, 5, 1);
  it('takes --since as an ISO date or time, or a duration back from now', () => {
    expect(parseWhen('since', '2026-01-31', NOW)).toBe(Date.UTC(2026, 0, 31));
    expect(parseWhen('since', '2026-01-31T08:00:00Z', NOW)).toBe(Date.UTC(2026, 0, 31, 8));
    expect(parseWhen('since', '30d', NOW)).toBe(NOW - 30 * 24 * HOUR);
    expect(parseWhen('since', '1h30m', NOW)).toBe(NOW - 90 * MIN);
    for (const bad of ['30', 'yesterday', '2026-13-45', '-5d']) expect(() => parseWhen('since', bad, NOW), bad).toThrow(/--since: .* is neither/);
  });

  it('takes --window as a duration or a number of readings, and refuses a bare number', () => {
    expect(parseWindow('24h')).toEqual({ kind: 'time', ms: 24 * HOUR });
    expect(parseWindow('30c')).toEqual({ kind: 'readings', count: 30 });
    expect(parseWindow('30 cycles')).toEqual({ kind: 'readings', count: 30 });
    for (const bad of ['24', '0c', 'a day']) expect(() => parseWindow(bad), bad).toThrow(/--window/);
  });

  it("maps a technician's failure mode to AI4I's failure-type column where it names one", () => {
    expect(ai4iMode('tool-wear')).toBe('TWF');
    expect(ai4iMode('Heat dissipation')).toBe('HDF');
    expect(ai4iMode('overstrain')).toBe('OSF');
    expect(ai4iMode('power failure')).toBe('PWF');
    expect(ai4iMode('bearing')).toBeNull();
    expect(ai4iMode(null)).toBeNull();
  });
});
