import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/agent-process.js';

const FIXTURE = path.resolve(import.meta.dirname, 'fixtures/ai4i-sample.csv');
const HOLDOUT = path.resolve(import.meta.dirname, '../../../build/machine-failure/holdout.csv');
const SHARED = path.resolve(import.meta.dirname, '../../../../shared/data/ai4i/ai4i2020_train.csv');

describe('forewarn CLI', () => {
  it('config check: 0 for a valid file, 2 with `path: message` lines for an invalid one', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-cli-'));
    writeFileSync(path.join(dir, 'ok.yaml'), 'agent:\n  id: a1\n');
    writeFileSync(path.join(dir, 'bad.yaml'), 'agent:\n  id: a1\nbroker:\n  maxInflight: 0\n  nope: 1\n');
    expect(await runCli(['config', 'check', path.join(dir, 'ok.yaml')])).toMatchObject({ code: 0, stdout: `${path.join(dir, 'ok.yaml')}: valid\n` });
    const bad = await runCli(['config', 'check', path.join(dir, 'bad.yaml')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('[FW_ERR_CONFIG_INVALID]');
    expect(bad.stderr).toContain('  broker.maxInflight: must be >= 1\n');
    expect(bad.stderr).toContain('  broker.nope: unknown option\n');
    expect((await runCli(['config', 'check', path.join(dir, 'missing.yaml')])).code).toBe(2);
  });

  it('rejects unknown commands and options with exit code 2', async () => {
    expect((await runCli(['frobnicate'])).code).toBe(2);
    expect((await runCli(['status', '--colour'])).code).toBe(2);
  });

  it('model eval scores a labelled CSV through the manifest, skipping and counting unusable rows', async () => {
    const r = await runCli(['model', 'eval', 'machine-failure', '--data', FIXTURE, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as {
      model: string;
      skipped: { rows: number; reasons: Record<string, number> };
      metrics: { rows: number; positives: number; confusion: Record<string, number> };
      breakdown: Record<string, { positives: number }>;
    };
    expect(out.model).toBe('machine-failure');
    expect(out.skipped).toEqual({ rows: 2, reasons: { 'invalid Torque [Nm]': 1, 'invalid Machine failure': 1 } });
    expect(out.metrics.rows).toBe(8);
    expect(out.metrics.positives).toBe(3);
    const c = out.metrics.confusion;
    expect(c.tp! + c.fp! + c.fn! + c.tn!).toBe(8);
    // The three rule-driven failures (overstrain, heat dissipation, power) are textbook cases.
    expect(c.tp).toBe(3);
    expect(out.breakdown.OSF).toEqual({ positives: 1, detected: 1, recall: 1 });
  });

  it('model eval names the columns a file lacks', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-cli-'));
    writeFileSync(path.join(dir, 'x.csv'), 'Type,Torque [Nm]\nL,40\n');
    const r = await runCli(['model', 'eval', 'machine-failure', '--data', path.join(dir, 'x.csv')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/missing column\(s\) "Air temperature \[K\]".*"Machine failure" \[FW_ERR_DATA_FORMAT\]/);
  });

  it('model eval reads a file without the optional inputs as missing values, as the agent does (a vendor without SMART 187/198)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-cli-'));
    // An HGST-like export: no smart_187_raw nor smart_198_raw column. Five healthy drives, two failing ones.
    const rows = [
      [0, 0, 0],
      [0, 0, 0],
      [1, 0, 0],
      [0, 0, 0],
      [2, 0, 0],
      [800, 120, 1],
      [2400, 640, 1],
    ];
    writeFileSync(path.join(dir, 'hgst.csv'), `smart_5_raw,smart_197_raw,failure\n${rows.map((r) => r.join(',')).join('\n')}\n`);
    const r = await runCli(['model', 'eval', 'disk-failure', '--data', path.join(dir, 'hgst.csv'), '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as {
      absentOptionalInputs: string[];
      skipped: { rows: number };
      metrics: { rows: number; positives: number };
      atFalseAlarms: Array<{ rate: number; detectionRate: number; falseAlarmRate: number; threshold: number }>;
    };
    expect(out.absentOptionalInputs).toEqual(['smart_187_raw', 'smart_198_raw']);
    expect(out.skipped.rows).toBe(0);
    expect(out.metrics).toMatchObject({ rows: 7, positives: 2 });
    expect(out.atFalseAlarms.map((a) => a.rate)).toEqual([0.01, 0.001]);
    for (const a of out.atFalseAlarms) expect(a.falseAlarmRate).toBe(0);
    // A required column is still an error: the label.
    writeFileSync(path.join(dir, 'nolabel.csv'), 'smart_5_raw,smart_197_raw\n0,0\n');
    const bad = await runCli(['model', 'eval', 'disk-failure', '--data', path.join(dir, 'nolabel.csv')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/missing column\(s\) "failure" \[FW_ERR_DATA_FORMAT\]/);
  });

  it('model eval of a RUL model prints the RMSE and how many engines its calibrated interval covers', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-cli-'));
    const golden = JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../../../models/turbofan-rul/golden.json'), 'utf8')) as {
      inputs: number[][][];
      rul: number[];
      columns: string[];
    };
    // Two engines from the golden windows, in C-MAPSS lines (unit, cycle, 3 settings, s1..s21; unused fields 0).
    const line = (unit: number, cycle: number, row: number[]) => {
      const f = Array<number>(26).fill(0);
      f[0] = unit;
      f[1] = cycle;
      golden.columns.forEach((c, j) => (f[4 + Number(c.slice(1))] = row[j]!));
      return f.join(' ');
    };
    const lines = [0, 1].flatMap((e) => golden.inputs[e]!.map((row, t) => line(e + 1, t + 1, row)));
    writeFileSync(path.join(dir, 'test.txt'), lines.join('\n') + '\n');
    // The first engine's true RUL is its prediction (inside any interval); the second's far beyond the model's horizon.
    writeFileSync(path.join(dir, 'rul.txt'), `${Math.round(golden.rul[0]!)}\n400\n`);
    const r = await runCli(['model', 'eval', 'turbofan-rul', '--data', path.join(dir, 'test.txt'), '--rul', path.join(dir, 'rul.txt')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^turbofan-rul@\S+ on .*test\.txt: 2 engines$/m);
    expect(r.stdout).toMatch(/^RMSE [\d.]+ cycles {2}NASA score/m);
    expect(r.stdout).toMatch(/^90% interval: covers 1\/2 engines \(50\.0%\), mean width [\d.]+ cycles$/m);
  });

  it.skipIf(!existsSync(HOLDOUT))(
    'model eval on the held-out AI4I split reproduces the model card (needs build/machine-failure/holdout.csv from the recipe)',
    async () => {
      const r = await runCli(['model', 'eval', 'machine-failure', '--data', HOLDOUT, '--json']);
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout) as { metrics: { rows: number; f1: number } };
      expect(out.metrics.rows).toBe(1600);
      expect(out.metrics.f1).toBeGreaterThan(0.8);
    },
  );

  it.skipIf(!existsSync(SHARED))('model eval reads the AI4I training file itself (needs ../shared/data)', async () => {
    const r = await runCli(['model', 'eval', 'machine-failure', '--data', SHARED, '--json']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { metrics: { rows: number } }).metrics.rows).toBe(8000);
  });
});
