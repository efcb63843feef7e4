import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ORT_TELEMETRY_SWITCHES, OnnxModel, optOutOfRuntimeTelemetry } from '../../../agent/src/scoring/onnx-model.js';
import { isForewarnError } from '../../../agent/src/core/errors.js';

const MODEL_DIR = path.resolve(import.meta.dirname, '../../../models/machine-failure');

function copyModel(): string {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'fw-model-')), 'machine-failure');
  cpSync(MODEL_DIR, dir, { recursive: true });
  return dir;
}

async function loadError(dir: string): Promise<{ code: string; message: string; details: readonly string[] }> {
  try {
    await OnnxModel.load(dir);
  } catch (err) {
    if (isForewarnError(err)) return { code: err.code, message: err.message, details: err.details };
    throw err;
  }
  throw new Error('expected the load to fail');
}

describe('OnnxModel with the shipped machine-failure model', () => {
  it("reproduces the training recipe's probabilities through onnxruntime-node", async () => {
    const golden = JSON.parse(readFileSync(path.join(MODEL_DIR, 'golden.json'), 'utf8')) as { inputs: number[][]; probabilities: number[]; tolerance: number };
    const model = await OnnxModel.load(MODEL_DIR);
    const scores = await model.run(Float32Array.from(golden.inputs.flat()), golden.inputs.length);
    await model.release();
    expect(scores).toHaveLength(golden.probabilities.length);
    golden.probabilities.forEach((p, i) => expect(Math.abs(scores[i]! - p), `row ${i}`).toBeLessThanOrEqual(golden.tolerance));
    // The golden rows span both classes, so this cannot pass with a constant output.
    expect(Math.max(...scores) - Math.min(...scores)).toBeGreaterThan(0.5);
  });

  it('refuses a model file that does not match its sha256', async () => {
    const dir = copyModel();
    const file = path.join(dir, 'model.onnx');
    const bytes = readFileSync(file);
    bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0xff;
    writeFileSync(file, bytes);
    expect((await loadError(dir)).code).toBe('FW_ERR_MODEL_CHECKSUM');
  });

  it('refuses a manifest that fails the schema, naming the path', async () => {
    const dir = copyModel();
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    delete manifest.outputs;
    manifest.version = 'one';
    writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
    const err = await loadError(dir);
    expect(err.code).toBe('FW_ERR_MODEL_MANIFEST');
    expect(err.details).toEqual(expect.arrayContaining([expect.stringMatching(/^version: must match/), expect.stringMatching(/outputs/)]));
  });

  it('refuses a manifest that disagrees with the ONNX graph', async () => {
    const dir = copyModel();
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { inputs: { tensor: string; features: unknown[] } };
    manifest.inputs.features.pop();
    writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
    const err = await loadError(dir);
    expect(err.code).toBe('FW_ERR_MODEL_SIGNATURE');
    expect(err.details.join('\n')).toMatch(/takes 6 features, the manifest lists 5/);
  });

  it('refuses a file that is not an ONNX model', async () => {
    const dir = copyModel();
    writeFileSync(path.join(dir, 'model.onnx'), 'not a model');
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { sha256: string };
    const { createHash } = await import('node:crypto');
    manifest.sha256 = createHash('sha256').update('not a model').digest('hex');
    writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
    expect((await loadError(dir)).code).toBe('FW_ERR_MODEL_LOAD');
  });
});

describe("onnxruntime's telemetry", () => {
  /**
   * A process of its own (the runtime reads its switches once, when it initialises) that loads and runs the shipped
   * model through the built module, with a HOME of its own and none of the CI variables that also silence the
   * runtime. Returns the files the runtime left under that HOME.
   */
  function runModelIn(env: Record<string, string>): string[] {
    const home = mkdtempSync(path.join(tmpdir(), 'fw-ort-home-'));
    const clean = Object.fromEntries(
      Object.entries(process.env).filter(
        ([k]) => !['CI', 'GITHUB_ACTIONS', 'TF_BUILD', 'JENKINS_URL', 'ORT_RUNNING_UNIT_TESTS', ...ORT_TELEMETRY_SWITCHES].includes(k),
      ),
    );
    const script = `
      const { OnnxModel } = await import(${JSON.stringify(path.resolve(import.meta.dirname, '../../../dist/agent/src/scoring/onnx-model.js'))});
      const m = await OnnxModel.load(${JSON.stringify(MODEL_DIR)});
      const scores = await m.run(new Float32Array(m.manifest.inputs.features.length), 1);
      await m.release();
      process.stdout.write(String(scores.length));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...clean, ...env, HOME: home }, encoding: 'utf8' });
    expect(out).toBe('1');
    const cache = path.join(home, '.cache');
    return existsSync(cache) ? (readdirSync(cache, { recursive: true }) as string[]) : [];
  }

  it('is off: loading and running a model writes nothing under HOME', () => {
    expect(runModelIn({})).toEqual([]);
  });

  it("is the operator's choice where they set a switch (here on: its device id and event cache appear)", () => {
    const files = runModelIn({ ORT_DISABLE_TELEMETRY: '0' });
    expect(files.some((f) => f.endsWith('deviceid'))).toBe(true);
  });

  it('sets both switches, and neither where the operator set one', () => {
    const unset: NodeJS.ProcessEnv = {};
    optOutOfRuntimeTelemetry(unset);
    expect(unset).toEqual({ ORT_DISABLE_TELEMETRY: '1', ORT_TELEMETRY_DISABLED: '1' });
    const chosen: NodeJS.ProcessEnv = { ORT_TELEMETRY_DISABLED: '0' };
    optOutOfRuntimeTelemetry(chosen);
    expect(chosen).toEqual({ ORT_TELEMETRY_DISABLED: '0' });
  });
});
