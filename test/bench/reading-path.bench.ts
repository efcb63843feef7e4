/**
 * CPU per host reading on the agent's per-reading path, outside the store and the sync (issue #13): the host
 * sampler's `sample()` on this machine's /proc and /sys, then the quality stage with what the host-only agent
 * wires behind it (anomaly detection, the health rules; the telemetry consumer only keeps the record). The
 * readings of the second part are synthetic but deterministic (the metric names of a real sample, values on a
 * seeded random walk), so two builds compare on the same input: the anomaly detector first warms up
 * (`warmupSamples`, 1000 by default), then scores every reading and emits an anomaly record.
 *
 * Alone: `npx tsc -p tsconfig.json && node dist/test/bench/reading-path.bench.js`. CPU is process.cpuUsage()
 * (all threads: the sampler's statfs of network mounts and its sensor reads run in libuv's pool), per reading.
 */
import { type BenchReport, type Measurement, measure, measurementRow, round } from './bench-harness.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';
import { buildConfig } from '../../agent/src/config/load-config.js';
import { createLogger } from '../../agent/src/core/logger.js';
import { riskFanOut, type Reading } from '../../agent/src/core/types.js';
import { DataQuality } from '../../agent/src/health/data-quality.js';
import { HealthMonitor } from '../../agent/src/health/health-monitor.js';
import { QualityStage } from '../../agent/src/health/quality-stage.js';
import { AnomalyScorer } from '../../agent/src/scoring/anomaly/anomaly-scorer.js';
import { HostSampler } from '../../agent/src/sources/host/host-sampler.js';
import { RecordStore, deflateOptions } from '../../agent/src/store/record-store.js';
import { seededRandom } from '../helpers/seeded-random.js';

const SAMPLES = 2_000;
/** The spaced rows: calls this far apart, as the agent's are (a reading a second), and this many of them. */
const SPACED_GAP_MS = 100;
const SPACED_SAMPLES = 60;

function row(lead: Record<string, string>, m: Measurement): Record<string, string | number> {
  return { ...measurementRow(lead, m), cpu_us_per_reading: round(m.cpuMsPerCall * 1000) };
}

export async function run(): Promise<BenchReport> {
  const rows: BenchReport['rows'] = [];
  const notes: string[] = [];

  // The sampler on this host, one call at a time, its clock a second apart per call.
  const sampler = new HostSampler();
  let t = Date.now();
  await sampler.sample((t += 1000));
  await new Promise((r) => setTimeout(r, 50));
  const real = await sampler.sample((t += 1000));
  const names = Object.keys(real.metrics);
  const m = await measure(() => sampler.sample((t += 1000)), SAMPLES, { warmup: 100 });
  rows.push(row({ stage: 'HostSampler.sample()', per: `reading of ${names.length} metrics` }, m));

  // Deflating that reading for the store (record-store.ts storedPayload): the window sized to it, and zlib's default.
  const json = Buffer.from(JSON.stringify({ ts: t, source: 'host', asset: 'bench', metrics: real.metrics }));
  const sized = deflateOptions(json.length);
  rows.push(
    row({ stage: 'deflate, window sized', per: `reading of ${json.length} B` }, await measure(() => deflateRawSync(json, sized), SAMPLES, { warmup: 100 })),
  );
  rows.push(
    row(
      { stage: 'deflate, zlib defaults', per: `reading of ${json.length} B` },
      await measure(() => deflateRawSync(json, { level: 1 }), SAMPLES, { warmup: 100 }),
    ),
  );
  // The agent does each of these once per reading, with the process idle in between: caches, TLB and branch
  // predictors are cold, which on a small VM costs several times the back-to-back figure. The same calls, spaced.
  const spaced = { warmup: 5, gapMs: SPACED_GAP_MS };
  rows.push(
    row(
      { stage: `HostSampler.sample(), ${SPACED_GAP_MS} ms apart`, per: `reading of ${names.length} metrics` },
      await measure(() => sampler.sample((t += 1000)), SPACED_SAMPLES, spaced),
    ),
  );
  rows.push(
    row(
      { stage: `deflate, window sized, ${SPACED_GAP_MS} ms apart`, per: `reading of ${json.length} B` },
      await measure(() => deflateRawSync(json, sized), SPACED_SAMPLES, spaced),
    ),
  );

  // The quality stage and its consumers as the host-only agent wires them.
  const config = buildConfig(null, {});
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-reading-path-'));
  const store = new RecordStore({ dir });
  try {
    const log = createLogger({ level: 'silent', pretty: false });
    const health = new HealthMonitor(store, () => undefined, log, undefined, undefined, config.alerts);
    await health.start();
    let risks = 0;
    const anomaly = new AnomalyScorer(config.scoring.anomaly, null, riskFanOut([{ consumeRisk: (r) => (risks += r.length) }, health]), log);
    let kept: unknown = null;
    const stage = new QualityStage(new DataQuality(config.quality), {
      telemetry: { consumeRecords: (records) => (kept = records) },
      readings: [anomaly, health],
      issues: health,
    });
    const rnd = seededRandom(13);
    const gauss = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
    const level = names.map((n) => Math.abs(real.metrics[n]!) + 1);
    const walk = level.map(() => 0);
    let ts = 1_700_000_000_000;
    const next = (): Reading => {
      const metrics: Record<string, number> = {};
      names.forEach((n, i) => {
        walk[i] = 0.95 * walk[i]! + 0.05 * gauss();
        const v = level[i]! * (1 + 0.05 * walk[i]!);
        metrics[n] = n.endsWith('_pct') ? Math.min(100, v % 100) : Number.isInteger(real.metrics[n]) ? Math.round(v) : v;
      });
      return { ts: (ts += 1000), source: 'host', asset: 'bench', metrics };
    };
    const warmup = config.scoring.anomaly.warmupSamples;
    const warming = await measure(() => stage.consumeReading(next()), warmup - 200, { warmup: 100 });
    rows.push(row({ stage: 'quality stage → anomaly, health', per: 'reading, detector warming' }, warming));
    for (let i = 0; i < 200; i++) stage.consumeReading(next());
    const before = risks;
    const scoring = await measure(() => stage.consumeReading(next()), SAMPLES, { warmup: 100 });
    rows.push(row({ stage: 'quality stage → anomaly, health', per: 'reading, detector scoring' }, scoring));
    notes.push(`${risks - before} anomaly records while scoring ${SAMPLES + 100} readings; last telemetry batch ${kept === null ? 'none' : 'kept'}`);
    await health.stop();
    await anomaly.stop();
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  notes.push('CPU per call: process.cpuUsage(), all threads. Reading generation is inside the quality-stage rows (the same work in every build).');
  return { name: 'Per-reading path outside store and sync', rows, notes };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const report = await run();
  console.log(JSON.stringify(report, null, 2));
}
