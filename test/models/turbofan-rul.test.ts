import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluateRul } from '../../agent/src/evaluation/evaluate-rul.js';

/**
 * The turbofan-rul model card's figures, reproduced from the committed ONNX file: what the repository holds (the
 * manifest, the card's own tables) always; the holdout figures from NASA's train_FD001.txt in ../shared/data, rebuilt
 * here from the engines and true RULs the card lists (skipped, saying so, where that file is absent). The recipe's
 * build/ output is not needed.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const MODEL_DIR = path.join(ROOT, 'models/turbofan-rul');
const TRAIN = path.resolve(ROOT, '../shared/data/cmapss/train_FD001.txt');
const card = readFileSync(path.join(MODEL_DIR, 'MODEL_CARD.md'), 'utf8');
const manifest = JSON.parse(readFileSync(path.join(MODEL_DIR, 'manifest.json'), 'utf8')) as {
  inputs: { features: Array<{ name: string; signal: string; column: string; baseline: number; range: [number, number] }> };
  outputs: { threshold: number };
};

/** Numbers of a sentence of the card, e.g. the list of holdout engines. */
function numbersAfter(marker: RegExp, until: RegExp): number[] {
  const start = card.search(marker);
  expect(start, String(marker)).toBeGreaterThanOrEqual(0);
  const rest = card.slice(start).replace(marker, '');
  const text = rest.slice(0, rest.search(until));
  return [...text.matchAll(/\d+/g)].map((m) => Number(m[0]));
}

/** The card's figure in the row that starts with `row` and the column at `index` (bold marks removed). */
function figure(row: string, index: number): number {
  const line = card.split('\n').find((l) => l.startsWith(`| ${row}`));
  expect(line, row).toBeDefined();
  const cell = line!.split('|')[index + 1]!.replace(/\*\*/g, '').trim();
  return Number(/^[\d.]+/.exec(cell)![0]);
}

describe('turbofan-rul model card', () => {
  it("states the manifest's threshold, and each input's column, range and baseline as the manifest has them", () => {
    expect(card).toContain(`**${manifest.outputs.threshold} cycles**`);
    for (const [i, f] of manifest.inputs.features.entries()) {
      const row = card.split('\n').find((l) => l.startsWith(`| ${i} | \`${f.name}\` |`));
      expect(row, f.name).toBeDefined();
      const cells = row!.split('|').map((c) => c.trim());
      expect(cells[3]).toBe(`\`${f.signal}\``);
      expect(Number(cells[4])).toBe(Number(f.column));
      const [lo, hi] = cells[7]!.split('–').map((x) => Number(x.trim()));
      // The card rounds for reading; to its last printed digit.
      const digits = (s: string) => (s.split('.')[1] ?? '').length;
      const close = (cardValue: number, printed: string, exact: number) => expect(Math.abs(cardValue - exact), `${f.name} ${printed}`).toBeLessThanOrEqual(0.5 * 10 ** -digits(printed) + 1e-9);
      const [loText, hiText] = cells[7]!.split('–').map((x) => x.trim());
      close(lo!, loText!, f.range[0]);
      close(hi!, hiText!, f.range[1]);
      close(Number(cells[8]), cells[8]!, f.baseline);
    }
  });

  it("states the manifest's calibrated interval, bin by bin", () => {
    const iv = (
      JSON.parse(readFileSync(path.join(MODEL_DIR, 'manifest.json'), 'utf8')) as {
        outputs: { interval: { level: number; bins: Array<{ predictionBelow?: number; lower: number; upper: number; calibration: number }> } };
      }
    ).outputs.interval;
    expect(card).toContain(`**${Math.round(iv.level * 100)}% interval**`);
    const rows = card.split('\n').filter((l) => /^\| (below \d+|\d+ – \d+|\d+ and above) \| p − /.test(l));
    expect(rows).toHaveLength(iv.bins.length);
    rows.forEach((row, i) => {
      const [range, lower, upper, n] = row.split('|').slice(1, 5).map((c) => c.trim());
      const bin = iv.bins[i]!;
      const edges = [...range!.matchAll(/\d+/g)].map((m) => Number(m[0]));
      expect(edges.at(-1), range).toBe(bin.predictionBelow ?? iv.bins[i - 1]!.predictionBelow);
      expect(Number(lower!.replace('p − ', ''))).toBeCloseTo(-bin.lower, 2);
      expect(Number(upper!.replace('p + ', ''))).toBeCloseTo(bin.upper, 2);
      expect(Number(n!.replace(/,/g, ''))).toBe(bin.calibration);
    });
  });

  const holdout = numbersAfter(/picks 20 of the 100 units for the holdout:/, /\. The other/);
  const trueRuls = numbersAfter(/The true RULs are/, /\(the kept/);

  it('lists 20 holdout engines and a true RUL for each', () => {
    expect(holdout).toHaveLength(20);
    expect(new Set(holdout).size).toBe(20);
    expect(trueRuls).toHaveLength(20);
    for (const r of trueRuls) {
      expect(r).toBeGreaterThanOrEqual(7);
      expect(r).toBeLessThanOrEqual(145);
    }
  });

  describe.skipIf(!existsSync(TRAIN))(`holdout figures from ${path.relative(ROOT, TRAIN)}${existsSync(TRAIN) ? '' : ' — skipped: the file is absent'}`, () => {
    /** train_FD001.txt lines by engine. */
    const engines = () => {
      const by = new Map<number, string[]>();
      for (const line of readFileSync(TRAIN, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        const unit = Number(line.trim().split(/\s+/)[0]);
        by.set(unit, [...(by.get(unit) ?? []), line.trim()]);
      }
      return by;
    };
    const write = (name: string, lines: string[]) => {
      const file = path.join(mkdtempSync(path.join(tmpdir(), 'fw-card-')), name);
      writeFileSync(file, lines.join('\n') + '\n');
      return file;
    };

    it('the truncated holdout (the official test format) reproduces its RMSE and NASA score', async () => {
      const by = engines();
      // Each holdout engine cut `true RUL` cycles before its last one, renumbered 1..20 as the official file is.
      const data = holdout.flatMap((unit, i) => {
        const lines = by.get(unit)!;
        return lines.slice(0, lines.length - trueRuls[i]!).map((l) => l.replace(/^\d+/, String(i + 1)));
      });
      const r = await evaluateRul(MODEL_DIR, write('holdout_FD001.txt', data), write('holdout_RUL_FD001.txt', trueRuls.map(String)), { latencyRuns: 0 });
      expect(r.engines).toBe(20);
      const row = 'holdout engines truncated at one random point';
      expect(r.rmse.toFixed(2)).toBe(figure(row, 2).toFixed(2));
      expect(r.nasaScore.toFixed(1)).toBe(figure(row, 3).toFixed(1));
    });

    it('the holdout engines at their last cycle reproduce their RMSE and NASA score', async () => {
      const by = engines();
      const data = holdout.flatMap((unit, i) => by.get(unit)!.map((l) => l.replace(/^\d+/, String(i + 1))));
      const r = await evaluateRul(MODEL_DIR, write('holdout_full_FD001.txt', data), write('holdout_full_RUL_FD001.txt', holdout.map(() => '0')), {
        latencyRuns: 0,
      });
      const row = 'holdout engines at their last cycle';
      expect(r.rmse.toFixed(2)).toBe(figure(row, 2).toFixed(2));
      expect(r.nasaScore.toFixed(1)).toBe(figure(row, 3).toFixed(1));
    });
  });
});
