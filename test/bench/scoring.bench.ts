/**
 * Scoring cost of every shipped model, on one core (intra-op threads 1): latency p50/p99 and throughput by
 * batch size, through the agent's OnnxModel (the same path the agent scores with).
 */
import { readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchReport, measure, round } from './bench-harness.js';
import { OnnxModel } from '../../agent/src/scoring/onnx-model.js';

const BATCHES = [1, 8, 64, 512];

function modelsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'models', 'manifest.schema.json'))) dir = path.dirname(dir);
  return path.join(dir, 'models');
}

/**
 * A batch of plausible samples: each feature at its baseline, or the middle of its range, with a little spread;
 * a sequence model's sample repeats that row over its window ([rows, steps, width], as OnnxModel.run takes it).
 */
function batch(model: OnnxModel, rows: number): Float32Array {
  const f = model.manifest.inputs.features;
  const steps = model.steps;
  const data = new Float32Array(rows * steps * f.length);
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < steps; t++) {
      f.forEach((spec, i) => {
        const mid = spec.baseline ?? (spec.range ? (spec.range[0] + spec.range[1]) / 2 : 0);
        const span = spec.range ? (spec.range[1] - spec.range[0]) / 10 : 1;
        data[(r * steps + t) * f.length + i] = spec.categories ? r % spec.categories.length : mid + (((r * 7919) % 100) / 100) * span;
      });
    }
  }
  return data;
}

export async function run(): Promise<BenchReport> {
  const dir = modelsDir();
  const rows: BenchReport['rows'] = [];
  for (const name of readdirSync(dir)
    .filter((n) => existsSync(path.join(dir, n, 'manifest.json')))
    .sort()) {
    const model = await OnnxModel.load(path.join(dir, name), { threads: 1 });
    for (const size of BATCHES) {
      const data = batch(model, size);
      const m = await measure(() => model.run(data, size), size >= 512 ? 300 : 2000, { warmup: 50 });
      rows.push({
        model: `${name}@${model.manifest.version}`,
        batch: size,
        p50_ms: round(m.medianMs),
        p99_ms: round(m.p99Ms),
        per_row_us: round((m.medianMs * 1000) / size),
        rows_per_s: Math.round(size / (m.meanMs / 1000)),
        cpu_ms_per_call: round(m.cpuMsPerCall),
      });
    }
    await model.release();
  }
  return {
    name: 'Model scoring (onnxruntime-node, 1 intra-op thread)',
    rows,
    notes: [
      'One call = one session.run of a batch; per_row_us = p50 / batch size; rows_per_s from the mean.',
      'The agent also scores one occlusion row per explained feature (drivers), so a single reading costs one batch of 1 + features rows.',
    ],
  };
}
