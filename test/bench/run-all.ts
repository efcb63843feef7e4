/**
 * Runs every benchmark in BENCHES, prints a table per report and writes build/bench/results.json.
 * `npm run bench` (tsc, then node dist/test/bench/run-all.js). Add a benchmark by listing its module here.
 */
// First: the harness patches child_process before any benchmark loads a library that spawns.
import { type BenchReport, formatReport } from './bench-harness.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCHES: readonly string[] = [
  './host-sampler.bench.js',
  './reading-path.bench.js',
  './scoring.bench.js',
  './collectd-comparison.bench.js',
  './node-protocol.bench.js',
  './outbox.bench.js',
  './anomaly.bench.js',
  './ack-mode.bench.js',
  './central-queries.bench.js',
  './vibration-severity.bench.js',
  './central-ingest.bench.js',
  './sparkplug.bench.js',
  './central-alerts.bench.js',
  './opcua.bench.js',
  './console.bench.js',
];

interface BenchModule {
  /** One report, or several (a benchmark with a summary and its detail). */
  run(): Promise<BenchReport | BenchReport[]>;
}

/** The repository root: this file runs as dist/test/bench/run-all.js. */
function repoRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.basename(path.dirname(path.dirname(here))) === 'dist' ? path.resolve(here, '../../..') : path.resolve(here, '../..');
}

async function main(): Promise<void> {
  const reports: BenchReport[] = [];
  const failures: Array<{ bench: string; error: string }> = [];
  for (const spec of BENCHES) {
    const started = Date.now();
    process.stdout.write(`running ${spec} …\n`);
    try {
      const mod = (await import(spec)) as BenchModule;
      const produced = await mod.run();
      for (const report of Array.isArray(produced) ? produced : [produced]) {
        reports.push(report);
        process.stdout.write(`\n${formatReport(report)}\n\n`);
      }
      process.stdout.write(`(${((Date.now() - started) / 1000).toFixed(1)} s)\n\n`);
    } catch (err) {
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      failures.push({ bench: spec, error });
      process.stderr.write(`${spec} failed: ${error}\n`);
    }
  }
  const out = path.join(repoRoot(), 'build', 'bench', 'results.json');
  mkdirSync(path.dirname(out), { recursive: true });
  const cpus = os.cpus();
  writeFileSync(
    out,
    `${JSON.stringify(
      {
        generatedAt: new Date().toISOString(),
        host: { platform: os.platform(), release: os.release(), arch: os.arch(), cpu: cpus[0]?.model ?? null, cpuCount: cpus.length, node: process.version },
        reports,
        failures,
      },
      null,
      2,
    )}\n`,
  );
  process.stdout.write(`wrote ${path.relative(process.cwd(), out) || out}\n`);
  if (failures.length) process.exitCode = 1;
}

await main();
