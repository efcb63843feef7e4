/**
 * The agent beside collectd, side by side in one run at a 1 s interval: CPU time and RSS of the real agent
 * process (host telemetry, EDAC, PCIe AER, SMART and IPMI sources on, plus the GPU source fed by a fake
 * nvidia-smi with 8 H100s) against collectd collecting the same host metrics and writing CSV.
 * The target: the agent costs no more than twice collectd's CPU.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { type BenchReport, processCpuMs as cpuMs, processRssKiB as rssKiB, round } from './bench-harness.js';

const WARMUP_MS = 10_000; // start-up (inventory, model loading, JIT) is not the steady state
const MEASURE_MS = 30_000;
const COLLECTD = ['/usr/sbin/collectd', '/usr/bin/collectd'].find((p) => existsSync(p));

function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) || !existsSync(path.join(dir, 'agent'))) dir = path.dirname(dir);
  return dir;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};

function collectdConfig(dir: string): string {
  return [
    `BaseDir "${dir}"`,
    `PIDFile "${dir}/collectd.pid"`,
    'FQDNLookup false',
    'Interval 1',
    ...['cpu', 'load', 'memory', 'swap', 'df', 'disk', 'interface', 'thermal', 'contextswitch', 'csv'].map((p) => `LoadPlugin ${p}`),
    '<Plugin csv>',
    `  DataDir "${dir}/csv"`,
    '  StoreRates true',
    '</Plugin>',
    '',
  ].join('\n');
}

export async function run(): Promise<BenchReport> {
  const notes: string[] = [];
  if (!COLLECTD) {
    return { name: 'Agent vs collectd (1 s interval)', rows: [], notes: ['collectd is not installed: apt-get install collectd-core, then rerun.'] };
  }
  const root = repoRoot();
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-bench-collectd-'));
  mkdirSync(path.join(dir, 'csv'));
  writeFileSync(path.join(dir, 'collectd.conf'), collectdConfig(dir));
  const fake = path.join(root, 'test/agent/sources/gpu/fake-nvidia-smi.mjs');
  const agentConfig = path.join(dir, 'forewarn.yaml');
  writeFileSync(
    agentConfig,
    stringify({
      agent: { id: 'bench', view: 'off', logLevel: 'warn' },
      storage: { dir: path.join(dir, 'data') },
      // Nothing listens here: the agent buffers, as collectd only writes its CSV files.
      broker: { url: 'mqtt://127.0.0.1:9' },
      sources: {
        host: { intervalMs: 1000 },
        simulator: { enabled: false },
        gpu: { binary: fake, intervalMs: 1000, xid: false },
      },
    }),
  );
  const procs: ChildProcess[] = [];
  try {
    const collectd = spawn(COLLECTD, ['-f', '-C', path.join(dir, 'collectd.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let collectdErr = '';
    collectd.stderr!.on('data', (d) => (collectdErr += String(d)));
    const agent = spawn(process.execPath, [path.join(root, 'dist/agent/src/cli.js'), 'run', '--config', agentConfig], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, FAKE_NVIDIA_SMI_SET: 'h100x8' },
    });
    procs.push(collectd, agent);
    await new Promise((r) => setTimeout(r, WARMUP_MS));
    for (const p of procs) if (p.exitCode !== null) throw new Error(`a process exited early: ${collectdErr}`);
    const start = { agent: cpuMs(agent.pid!), collectd: cpuMs(collectd.pid!), t: performance.now() };
    const rss = { agent: [] as number[], collectd: [] as number[] };
    for (let waited = 0; waited < MEASURE_MS; waited += 1000) {
      await new Promise((r) => setTimeout(r, 1000));
      rss.agent.push(rssKiB(agent.pid!));
      rss.collectd.push(rssKiB(collectd.pid!));
    }
    const seconds = (performance.now() - start.t) / 1000;
    const agentCpu = (cpuMs(agent.pid!) - start.agent) / seconds;
    const collectdCpu = (cpuMs(collectd.pid!) - start.collectd) / seconds;
    const rows = [
      {
        process: 'forewarn agent (host + sysfs + SMART + IPMI + 8 fake GPUs)',
        cpu_ms_per_s: round(agentCpu),
        cpu_pct: round(agentCpu / 10),
        rss_median_mib: round(median(rss.agent) / 1024),
        rss_max_mib: round(Math.max(...rss.agent) / 1024),
      },
      {
        process: 'collectd (cpu, load, memory, swap, df, disk, interface, thermal, contextswitch → csv)',
        cpu_ms_per_s: round(collectdCpu),
        cpu_pct: round(collectdCpu / 10),
        rss_median_mib: round(median(rss.collectd) / 1024),
        rss_max_mib: round(Math.max(...rss.collectd) / 1024),
      },
      {
        process: 'ratio agent / collectd',
        cpu_ms_per_s: round(agentCpu / collectdCpu),
        cpu_pct: '',
        rss_median_mib: round(median(rss.agent) / median(rss.collectd)),
        rss_max_mib: '',
      },
    ];
    notes.push(
      `Measured over ${round(seconds)} s after a ${WARMUP_MS / 1000} s warm-up; CPU from /proc/<pid>/stat (10 ms ticks), RSS sampled every second.`,
      "The agent also commits every reading to SQLite (synchronous=full) and scores disks it finds; the fake nvidia-smi's own CPU is not counted (a real nvidia-smi's cost is in the driver).",
      "Most of the agent's RSS is the Node.js runtime and onnxruntime with two models loaded; collectd is C.",
    );
    return { name: 'Agent vs collectd, side by side at a 1 s interval', rows, notes };
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    rmSync(dir, { recursive: true, force: true });
  }
}
