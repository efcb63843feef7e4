import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OnnxModel } from '../../../agent/src/scoring/onnx-model.js';
import { formatManifest, profileModel } from '../../../agent/src/evaluation/profile-model.js';
import { ROOT, runCli } from '../../helpers/agent-process.js';

const SAMPLE = path.join(ROOT, 'test/agent/cli/fixtures/ai4i-sample.csv');

function modelCopy(name = 'machine-failure'): string {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'fw-profile-')), name);
  cpSync(path.join(ROOT, 'models', name), dir, { recursive: true });
  return dir;
}

describe('forewarn model profile', () => {
  it("writes each input's training distribution into the manifest, which still loads and checks", async () => {
    const dir = modelCopy();
    const before = readFileSync(path.join(dir, 'manifest.json'), 'utf8');
    const dry = profileModel(dir, SAMPLE);
    expect(dry.written).toBeUndefined();
    expect(readFileSync(path.join(dir, 'manifest.json'), 'utf8')).toBe(before);
    const r = profileModel(dir, SAMPLE, { write: true });
    expect(r).toMatchObject({ model: 'machine-failure', rows: 9, skipped: 1 });
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as {
      inputs: { features: Array<{ name: string; distribution: { fractions: number[]; edges: number[] } }> };
    };
    const type = manifest.inputs.features.find((f) => f.name === 'product_type')!;
    expect(type.distribution.edges).toEqual([0.5, 1.5]);
    for (const f of manifest.inputs.features) expect(f.distribution.fractions.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    const model = await OnnxModel.load(dir);
    expect(model.manifest.inputs.features[1]!.distribution).toBeDefined();
    await model.release();
  });

  it('says which columns a file lacks, and refuses --exclude for tabular models', async () => {
    const dir = modelCopy();
    const bad = await runCli(['model', 'profile', 'machine-failure', '--models-dir', path.dirname(dir), '--data', path.join(ROOT, 'package.json')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/FW_ERR_DATA_FORMAT/);
    expect(() => profileModel(dir, SAMPLE, { exclude: SAMPLE })).toThrow(/--exclude applies to C-MAPSS/);
  });

  it("keeps the recipes' layout: short lists on one line", () => {
    expect(formatManifest({ a: [1, 2, 3], b: { c: 'x' } })).toBe('{\n  "a": [1, 2, 3],\n  "b": {\n    "c": "x"\n  }\n}\n');
  });
});
