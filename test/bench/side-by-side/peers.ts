/**
 * The processes the side-by-side benchmark runs beside the agent, and the agent's two configurations.
 * Every process is started through `startProcess`, which remembers it so that `stopAll` ends it (SIGTERM, then
 * SIGKILL after 5 s), whatever happened in between.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NETWORK_FS_TYPES, PSEUDO_FS_TYPES } from '../../../agent/src/sources/host/proc-parsers.js';
import { COLLECTD_PREFIX } from './probe.js';

export const COLLECTD = ['/usr/sbin/collectd', '/usr/bin/collectd'].find((p) => existsSync(p));
export const COLLECTD_MQTT_PLUGIN = ['/usr/lib/collectd/mqtt.so', '/usr/lib64/collectd/mqtt.so'].find((p) => existsSync(p));
export const NODE_EXPORTER = ['/usr/bin/prometheus-node-exporter', '/usr/bin/node_exporter', '/usr/local/bin/node_exporter'].find((p) => existsSync(p));

/** dist/test/bench/side-by-side/ → dist/agent/src/cli.js */
export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../agent/src/cli.js');

/**
 * scripts/node-floor.mjs, the least a Node process does for the host-only agent's reading (the /proc reads, one
 * commit, one QoS 1 publish): run beside the agent, it says how much of the agent's CPU the runtime itself takes.
 * Found from dist/test/bench/side-by-side/ (the bench) and from test/bench/side-by-side/ (its tests).
 */
export const NODE_FLOOR = ['../../../scripts/node-floor.mjs', '../../../../scripts/node-floor.mjs']
  .map((p) => path.resolve(path.dirname(fileURLToPath(import.meta.url)), p))
  .find((p) => existsSync(p));

/**
 * Its node arguments: `flags` (default: the daemon's), then the script's. `gridAt` (epoch ms) anchors its interval
 * grid, to give it its own place in the interval; without it the grid starts with the process.
 */
export function nodeFloorArgs(o: { brokerUrl: string; dir: string; intervalMs: number; gridAt?: number; flags?: readonly string[] }): string[] {
  const grid = o.gridAt === undefined ? [] : [String(o.gridAt)];
  return [...(o.flags ?? DAEMON_NODE_FLAGS), NODE_FLOOR!, o.brokerUrl, o.dir, String(o.intervalMs), ...grid];
}

export interface Started {
  name: string;
  proc: ChildProcess;
  pid: number;
  /** Date.now() just before the spawn. */
  spawnedAt: number;
  output(): string;
}

const running = new Set<Started>();

export function startProcess(name: string, file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Started {
  let out = '';
  const spawnedAt = Date.now();
  const proc = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  // Keep the tail only: a chatty process must not grow the bench's memory.
  const keep = (d: Buffer) => (out = (out + String(d)).slice(-20_000));
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  if (proc.pid === undefined) throw new Error(`${name}: could not start ${file}`);
  const started: Started = { name, proc, pid: proc.pid, spawnedAt, output: () => out };
  running.add(started);
  proc.once('exit', () => running.delete(started));
  return started;
}

/** Resolves with `value` when the promise does, rejects as soon as the process exits first. */
export function unlessExited<T>(p: Started, value: Promise<T>): Promise<T> {
  // The race may settle on the exit: a later rejection of `value` is then nobody's business.
  value.catch(() => undefined);
  if (!isRunning(p)) return Promise.reject(new Error(`${p.name} is not running`));
  return Promise.race([
    value,
    new Promise<never>((_, reject) => p.proc.once('exit', (code, signal) => reject(new Error(`${p.name} exited (${code ?? signal})`)))),
  ]);
}

export function isRunning(p: Started): boolean {
  return p.proc.exitCode === null && p.proc.signalCode === null;
}

export async function stopProcess(p: Started): Promise<void> {
  if (!isRunning(p)) return;
  await new Promise<void>((resolve) => {
    const force = setTimeout(() => p.proc.kill('SIGKILL'), 5000);
    p.proc.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    p.proc.kill('SIGTERM');
  });
}

/** Stops every process still running that startProcess started, newest first. */
export async function stopAll(): Promise<void> {
  for (const p of [...running].reverse()) await stopProcess(p);
}

/**
 * collectd reading what the agent's host sampler reads, at the same interval, publishing to the broker with its
 * `mqtt` plugin at QoS 1. The selections mirror the sampler's: filesystems without pseudo and network file
 * systems, whole disks (no partitions, loop, ram, zram, optical, floppy), interfaces but lo, veth* and ifb*,
 * CPU as aggregate percentages, memory absolute and in per cent. thermal and sensors are loaded as the agent reads
 * thermal zones and hwmon; where the host has none they report nothing (sensors then suspends itself).
 */
export function collectdConfig(o: { dir: string; intervalS: number; brokerPort: number; hostname: string }): string {
  const fsTypes = [...PSEUDO_FS_TYPES, ...NETWORK_FS_TYPES].filter((t) => t !== 'overlay' && t !== 'aufs');
  return [
    `BaseDir "${o.dir}"`,
    `PIDFile "${o.dir}/collectd.pid"`,
    'FQDNLookup false',
    `Hostname "${o.hostname}"`,
    `Interval ${o.intervalS}`,
    ...['cpu', 'memory', 'swap', 'load', 'contextswitch', 'df', 'disk', 'interface', 'thermal', 'sensors', 'mqtt'].map((p) => `LoadPlugin ${p}`),
    '<Plugin cpu>',
    '  ReportByCpu false',
    '  ReportByState true',
    '  ValuesPercentage true',
    '</Plugin>',
    '<Plugin memory>',
    '  ValuesAbsolute true',
    '  ValuesPercentage true',
    '</Plugin>',
    '<Plugin df>',
    ...fsTypes.map((t) => `  FSType "${t}"`),
    '  IgnoreSelected true',
    '  ValuesAbsolute true',
    '  ValuesPercentage true',
    '  ReportInodes true',
    '</Plugin>',
    '<Plugin disk>',
    '  Disk "/^(loop|ram|zram|sr|fd)[0-9]+$/"',
    '  Disk "/^(sd|vd|xvd|hd)[a-z]+[0-9]+$/"',
    '  Disk "/^(nvme[0-9]+n[0-9]+|mmcblk[0-9]+)p[0-9]+$/"',
    '  IgnoreSelected true',
    '</Plugin>',
    '<Plugin interface>',
    '  Interface "lo"',
    '  Interface "/^veth/"',
    '  Interface "/^ifb/"',
    '  IgnoreSelected true',
    '</Plugin>',
    '<Plugin mqtt>',
    '  <Publish "bench">',
    '    Host "127.0.0.1"',
    `    Port ${o.brokerPort}`,
    `    ClientId "collectd-${o.hostname}"`,
    '    QoS 1',
    `    Prefix "${COLLECTD_PREFIX}"`,
    '    Retain false',
    '    StoreRates true',
    '  </Publish>',
    '</Plugin>',
    '',
  ].join('\n');
}

/**
 * node_exporter with the collectors that read what the agent's host sampler reads (the same groups as collectd
 * above); the others are off, so it does comparable work. It has no broker: the bench scrapes it at the interval.
 */
export function nodeExporterArgs(port: number): string[] {
  const collectors = ['cpu', 'stat', 'loadavg', 'meminfo', 'filesystem', 'diskstats', 'netdev', 'hwmon', 'thermal_zone'];
  return [`--web.listen-address=127.0.0.1:${port}`, '--collector.disable-defaults', ...collectors.map((c) => `--collector.${c}`), '--log.level=warn'];
}

/** Node's flags for the agent, as scripts/forewarn.service and `npm start` run it (docs/service.md). */
export const DAEMON_NODE_FLAGS = ['--v8-pool-size=1', '--no-opt'];

export type AgentProfile = 'host-only' | 'defaults';
/** The simulated machine's `processSeconds` as shipped: one process a second at its shipped `speedup` of 60. */
const SIMULATED_PROCESS_S = 60;

/** `scoring.anomaly.warmupSamples` in the bench (its minimum): the bench warms up past it (warmupSeconds). */
export const ANOMALY_WARMUP_SAMPLES = 50;

/** Seconds before the first window: at least `requested`, and long enough for the anomaly baseline to be learnt. */
export function warmupSeconds(requested: number, intervalS: number): number {
  return Math.max(requested, Math.ceil((ANOMALY_WARMUP_SAMPLES + 2) * intervalS) + 5);
}

/**
 * The agent's configuration for a profile. Both publish to the broker (through the byte-counting proxy) with every
 * other option at its default, including `/metrics` (on port 0: two agents run at once) and central
 * acknowledgement (the reference subscriber acknowledges).
 * - host-only: host telemetry alone; simulator, GPU, SMART, EDAC, PCIe AER and IPMI off, and no model bound to
 *   any asset (`scoring.bindings: []`), so its RSS is the "no model bound" figure. Anomaly detection stays on.
 * - defaults: the defaults as shipped (the simulated machine scored by machine-failure, disks by disk-failure
 *   where SMART finds any, anomaly detection on), every source at the interval of the phase, as collectd's read
 *   plugins are: the host sampler, and the simulated machine one machining process per interval (its `speedup`;
 *   shipped, one a second). At 1 s that is the defaults exactly.
 * In both, anomaly detection learns its baseline from ANOMALY_WARMUP_SAMPLES readings instead of 1000 (17 minutes
 * at 1 s): the windows then measure the agent as it runs for good, each reading also scored and its anomaly score
 * committed and published, not the agent of its first minutes.
 */
export function agentConfig(profile: AgentProfile, o: { id: string; dir: string; brokerUrl: string; intervalMs: number }): Record<string, unknown> {
  const common = {
    agent: { id: o.id, view: 'off', logLevel: 'warn' },
    storage: { dir: path.join(o.dir, 'data') },
    broker: { url: o.brokerUrl },
    metrics: { port: 0 },
  };
  const anomaly = { anomaly: { warmupSamples: ANOMALY_WARMUP_SAMPLES } };
  if (profile === 'defaults') {
    const speedup = (SIMULATED_PROCESS_S * 1000) / o.intervalMs;
    return { ...common, sources: { host: { intervalMs: o.intervalMs }, simulator: { speedup } }, scoring: anomaly };
  }
  // One object each: YAML would write a shared object as an anchor and aliases, which the config loader merges.
  const off = () => ({ enabled: false });
  return {
    ...common,
    sources: { host: { intervalMs: o.intervalMs }, simulator: off(), gpu: off(), smart: off(), edac: off(), pcieAer: off(), ipmi: off() },
    scoring: { bindings: [], ...anomaly },
  };
}

/**
 * Bytes each process has sent to the broker over its open TCP connections, by pid: the kernel's own count
 * (`tcpi_bytes_sent`, as `ss -tinp` shows it), so nothing sits between the publishers and the broker. A byte
 * counting proxy would (collectd's mqtt plugin waits up to 1 s for each PUBACK; through a user-space proxy that
 * wait showed up as 1 s of latency). Needs root for the owning pid; a connection closed meanwhile is not counted.
 */
export function bytesSentTo(brokerPort: number): Map<number, number> {
  const out = new Map<number, number>();
  const text = execFileSync('ss', ['-tinpH', 'state', 'established', `( dport = :${brokerPort} )`], { encoding: 'utf8' });
  let pids: number[] = [];
  for (const line of text.split('\n')) {
    if (!/^\s/.test(line)) {
      pids = [...line.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));
      continue;
    }
    const sent = /\bbytes_sent:(\d+)/.exec(line);
    if (!sent) continue;
    for (const pid of pids) out.set(pid, (out.get(pid) ?? 0) + Number(sent[1]));
  }
  return out;
}
