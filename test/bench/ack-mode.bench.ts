/**
 * What end-to-end acknowledgement costs the device: the real agent process with its defaults (host telemetry
 * every 5 s, the simulated mill scored once a second) against a real mosquitto with the reference subscriber
 * (`forewarn subscribe`, its own process) reading and acknowledging, once with `broker.ack: central` and once with
 * `broker.ack: broker`. Both sides get the same work: same broker, same subscriber, same sources, same windows.
 * Reported per mode: the agent's bytes written to storage per minute, CPU ms per second and RSS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { startMosquitto } from '../helpers/mosquitto.js';
import { type BenchReport, processCpuMs, processRssKiB, processWriteBytes, round } from './bench-harness.js';

const WARMUP_MS = 10_000; // start-up (model loading, first status, first acknowledgements) is not the steady state
const MEASURE_MS = Number(process.env.FOREWARN_BENCH_ACK_MS ?? 30_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cli(): string {
  // dist/test/bench/ → dist/agent/src/cli.js
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../agent/src/cli.js');
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    p.once('exit', () => resolve());
    p.kill('SIGTERM');
    setTimeout(() => p.kill('SIGKILL'), 5000).unref();
  });
}

async function measureMode(ack: 'central' | 'broker'): Promise<Record<string, string | number>> {
  const broker = await startMosquitto();
  const dir = mkdtempSync(path.join(tmpdir(), `fw-bench-ack-${ack}-`));
  const subscriber = spawn(process.execPath, [cli(), 'subscribe', '--url', broker.url, '--db', path.join(dir, 'central.db'), '--client-id', `bench-${ack}`], {
    stdio: 'ignore',
  });
  const config = path.join(dir, 'forewarn.yaml');
  writeFileSync(
    config,
    stringify({
      agent: { id: `bench-${ack}`, view: 'off', logLevel: 'warn' },
      storage: { dir: path.join(dir, 'data') },
      broker: { url: broker.url, ack },
      metrics: { enabled: false },
    }),
  );
  const agent = spawn(process.execPath, [cli(), 'run', '--config', config], { stdio: 'ignore' });
  try {
    await sleep(WARMUP_MS);
    const pid = agent.pid!;
    const [w0, c0] = [processWriteBytes(pid), processCpuMs(pid)];
    await sleep(MEASURE_MS);
    const [w1, c1, rss] = [processWriteBytes(pid), processCpuMs(pid), processRssKiB(pid)];
    return {
      ack,
      write_mb_per_min: round(((w1 - w0) / 1e6) * (60_000 / MEASURE_MS)),
      cpu_ms_per_s: round((c1 - c0) / (MEASURE_MS / 1000)),
      rss_mib: round(rss / 1024),
    };
  } finally {
    await stop(agent);
    await stop(subscriber);
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<BenchReport> {
  const rows = [await measureMode('central'), await measureMode('broker')];
  return {
    name: 'Acknowledgement modes: what central acknowledgement costs the agent',
    rows,
    notes: [
      `Each mode: a fresh mosquitto, \`forewarn subscribe\` and the agent on its defaults, measured over ${MEASURE_MS / 1000} s after a ${WARMUP_MS / 1000} s warm-up (FOREWARN_BENCH_ACK_MS sets the window).`,
      "write_mb_per_min: the agent process's /proc/<pid>/io write_bytes (WAL, checkpoints, fsyncs); cpu_ms_per_s: utime + stime (10 ms ticks); rss_mib at the end.",
      "central: rows are marked published on the PUBACK and released by the centre's acknowledgement (one transaction per acknowledgement message); broker: released on the PUBACK.",
    ],
  };
}
