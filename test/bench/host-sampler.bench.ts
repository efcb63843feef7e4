/**
 * Per-sample cost of host telemetry: HostSampler.sample() against the systeminformation calls that would
 * collect the same signals (currentLoad, mem, fsSize, disksIO, networkStats, cpuTemperature, and all six
 * together). Reports median/p99 wall time, CPU per call (this process and the processes it spawned) and
 * processes spawned per call. No limits are asserted.
 */
import { type Measurement, type BenchReport, commandsSince, measure, measurementRow, round, spawnCount } from './bench-harness.js';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import si from 'systeminformation';
import { hostInventory } from '../../agent/src/sources/host/host-inventory.js';
import { HostSampler } from '../../agent/src/sources/host/host-sampler.js';

/** The fake sysfs tree of the tests, from dist/test/bench/ or test/bench/. */
function fixtureSys(): string | null {
  for (const rel of ['../../../test/agent/sources/host/fixtures/sys', '../agent/sources/host/fixtures/sys']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${p}/class/hwmon`)) return p;
  }
  return null;
}

export async function run(): Promise<BenchReport> {
  const rows: BenchReport['rows'] = [];
  const notes: string[] = [];
  const results = new Map<string, Measurement>();
  const spawnedBy: string[] = [];
  const add = async (name: string, what: string, m: () => Promise<Measurement>) => {
    const before = spawnCount();
    const r = await m();
    results.set(name, r);
    rows.push(measurementRow({ call: name, collects: what }, r));
    const cmds = commandsSince(before);
    if (cmds.length) spawnedBy.push(`${name} spawned (warm-up included): ${cmds.map((c) => `\`${c.length > 90 ? `${c.slice(0, 90)}…` : c}\``).join('; ')}`);
  };

  const sampler = new HostSampler();
  let t = Date.now();
  const first = await sampler.sample((t += 1000));
  // Let /proc/stat's 10 ms ticks advance, so the second sample shows a full set of rates.
  await new Promise((r) => setTimeout(r, 100));
  const second = await sampler.sample((t += 1000));
  await add('HostSampler.sample()', `all groups, ${Object.keys(second.metrics).length} metrics`, () =>
    measure(() => sampler.sample((t += 1000)), 300, { warmup: 5 }),
  );

  const sys = fixtureSys();
  if (sys) {
    const withSensors = new HostSampler({ sysRoot: sys });
    let t2 = Date.now();
    const s = await withSensors.sample((t2 += 1000));
    const sensors = Object.keys(s.metrics).filter((k) => k.startsWith('temp.') || k.startsWith('fan.')).length;
    await add('HostSampler.sample() + fixture sysfs', `as above + ${sensors} temp/fan files`, () =>
      measure(() => withSensors.sample((t2 += 1000)), 300, { warmup: 5 }),
    );
  }

  await add('si.currentLoad()', 'cpu %', () => measure(() => si.currentLoad(), 20, { gapMs: 250 }));
  await add('si.mem()', 'memory, swap', () => measure(() => si.mem(), 30));
  await add('si.fsSize()', 'filesystem use', () => measure(() => si.fsSize(), 30));
  await add('si.disksIO()', 'disk I/O, all disks summed', () => measure(() => si.disksIO(), 20, { gapMs: 550 }));
  await add('si.networkStats("*")', 'net I/O per interface', () => measure(() => si.networkStats('*'), 20, { gapMs: 550 }));
  await add('si.cpuTemperature()', 'temperatures', () => measure(() => si.cpuTemperature(), 20));
  const all = () => Promise.all([si.currentLoad(), si.mem(), si.fsSize(), si.disksIO(), si.networkStats('*'), si.cpuTemperature()]);
  await add('si: all six (Promise.all)', 'the same groups', () => measure(all, 20, { gapMs: 550 }));
  await add('hostInventory() (once at start)', 'os, cpu, system, memory', () => measure(() => hostInventory(), 3, { warmup: 0 }));

  const ours = results.get('HostSampler.sample()')!;
  const theirs = results.get('si: all six (Promise.all)')!;
  const cpu = (m: Measurement) => m.cpuMsPerCall + m.childCpuMsPerCall;
  rows.push({
    call: 'ratio si all six / HostSampler',
    collects: '',
    median_ms: round(theirs.medianMs / ours.medianMs),
    cpu_ms_per_call: round(theirs.cpuMsPerCall / ours.cpuMsPerCall),
    total_cpu_ms_per_call: round(cpu(theirs) / cpu(ours)),
  });

  notes.push(
    `Host: ${os.cpus()[0]?.model ?? 'unknown CPU'} × ${os.cpus().length}, Linux ${os.release()}, Node ${process.version}; load average at start ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}.`,
    `systeminformation costs ${round(cpu(theirs) / cpu(ours))}× the CPU of HostSampler per sample (this process + spawned processes), ${round(theirs.medianMs / ours.medianMs)}× the median wall time, and spawns ${round(theirs.spawnsPerCall)} processes per sample against ${round(ours.spawnsPerCall)}.`,
    'HostSampler samples taken less than one /proc/stat tick (10 ms) apart have no cpu.*_pct metrics: no CPU time has been accounted in between. The back-to-back calls here sometimes hit that; at a 1 s interval they never do.',
    `HostSampler's first sample had ${Object.keys(first.metrics).length} metrics (gauges only) and errors ${JSON.stringify(first.errors)}; later samples have ${Object.keys(second.metrics).length}.`,
    'cpu_ms_per_call: process.cpuUsage() (all threads, libuv pool included). child_cpu_ms_per_call: reaped children from /proc/self/stat in 10 ms ticks, so ±10 ms / iterations. spawns_per_call: child_process calls counted by the harness. system_forks_per_call: /proc/stat forks on the whole machine during the calls (other activity and thread creation included).',
    'Rate-based systeminformation calls return a cached result when called again within 500 ms (disksIO, networkStats) or 200 ms (currentLoad), so those rows pause 550/250 ms between calls, outside the measured time. si.disksIO sums all disks (no per-device rates); si.networkStats("*") covers every interface.',
    "The systeminformation rows run execSync in places, which blocks the event loop for the whole of that child process. hostInventory() runs systeminformation in a node process of its own: its row includes starting that process, and the agent's event loop never waits on it.",
    ...spawnedBy,
  );
  return { name: 'host-sampler: per-sample cost, HostSampler vs systeminformation', rows, notes };
}
