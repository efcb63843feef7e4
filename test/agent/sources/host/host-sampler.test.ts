import { execFile } from 'node:child_process';
import {
  closeSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statfsSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { HostSampler, SYNC_STATFS_TYPES, type StatfsResult, sensorValue } from '../../../../agent/src/sources/host/host-sampler.js';
import { spawnCount } from '../../../bench/bench-harness.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const fx = (rel: string) => path.join(FIXTURES, rel);
const kB = 1024;
const T0 = 1_700_000_000_000;

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
function tmp(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'fw-host-'));
  dirs.push(d);
  return d;
}
/** A writable proc root holding a copy of one fixture snapshot. */
function procFrom(snapshot: string, dir = path.join(tmp(), 'proc')): string {
  cpSync(fx(snapshot), dir, { recursive: true });
  return dir;
}

/** A statfs for the fixture mount table (which selects `/`): 1000 blocks of 4 KiB, 400 free, 300 available. */
const fakeStatfs = async (): Promise<StatfsResult> => ({ bsize: 4096, blocks: 1000, bfree: 400, bavail: 300, files: 100, ffree: 25 });

/** This process's descriptors open on files under `dir`, as fd → path. */
function fdsUnder(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    let target = '';
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      // the descriptor readdir itself used, closed since
    }
    if (target.startsWith(`${dir}/`)) out.set(fd, target);
  }
  return out;
}

/** A /proc/net/dev with `n` interfaces eth0…eth(n−1), each counter `base` + the interface's index. */
function netDev(n: number, base: number): string {
  const head =
    'Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n';
  const lines = Array.from({ length: n }, (_, i) => `  eth${i}: ${Array.from({ length: 16 }, () => base + i).join(' ')}\n`);
  return head + lines.join('');
}

function pick(metrics: Record<string, number>, prefix: string): Record<string, number> {
  return Object.fromEntries(Object.entries(metrics).filter(([k]) => k.startsWith(prefix)));
}

describe('HostSampler on the recorded fixtures', () => {
  it('reports gauges only on the first sample, then exact rates from the second snapshot', async () => {
    const proc = procFrom('proc-t0');
    const sampler = new HostSampler({ procRoot: proc, sysRoot: fx('sys'), statfs: fakeStatfs });
    const first = await sampler.sample(T0);
    expect(first.errors).toEqual([]);
    expect(Object.keys(first.metrics).filter((k) => k.endsWith('_per_s') || /^cpu\.[a-z]+_pct$/.test(k) || k.startsWith('disk.'))).toEqual([]);
    expect(first.metrics).toMatchObject({
      'cpu.count': 2,
      'procs.running': 3,
      'procs.blocked': 0,
      'load.1m': 0.32,
      'load.5m': 0.98,
      'load.15m': 1.1,
      'memory.total_bytes': 24684092 * kB,
      'memory.available_bytes': 24327936 * kB,
      'memory.used_bytes': (24684092 - 24327936) * kB,
      'memory.free_bytes': 24334612 * kB,
      // Buffers + Cached + SReclaimable
      'memory.cached_bytes': (1596 + 125880 + 122448) * kB,
      'swap.total_bytes': 0,
      'swap.used_bytes': 0,
    });
    expect(first.metrics['memory.used_pct']).toBeCloseTo(((24684092 - 24327936) / 24684092) * 100, 10);
    expect(first.metrics['swap.used_pct']).toBeUndefined(); // no swap: no percentage
    expect(pick(first.metrics, 'fs.')).toEqual({
      'fs.root.total_bytes': 1000 * 4096,
      'fs.root.used_bytes': 600 * 4096,
      'fs.root.avail_bytes': 300 * 4096,
      'fs.root.used_pct': (600 / 900) * 100,
      'fs.root.inodes_used_pct': 75,
    });

    cpSync(fx('proc-t1'), proc, { recursive: true });
    const second = await sampler.sample(T0 + 1000);
    expect(second.errors).toEqual([]);
    const m = second.metrics;
    // cpu deltas: user 97, nice 0, system 7, idle 88, iowait 1, irq 0, softirq 1, steal 0 → 194 ticks.
    expect(m['cpu.utilization_pct']).toBeCloseTo((105 / 194) * 100, 10);
    expect(m['cpu.user_pct']).toBeCloseTo(50, 10);
    expect(m['cpu.system_pct']).toBeCloseTo((8 / 194) * 100, 10);
    expect(m['cpu.iowait_pct']).toBeCloseTo((1 / 194) * 100, 10);
    expect(m['cpu.steal_pct']).toBe(0);
    expect(m['cpu.context_switches_per_s']).toBe(1153903 - 1153685);
    expect(m['cpu.interrupts_per_s']).toBe(881523 - 881114);
    expect(m['procs.forks_per_s']).toBe(11978 - 11960);
    expect(m['procs.running']).toBe(2);
    // vda: sectors written 3395512 − 3346360, writes 40485 − 40461, io ms 7764 − 7756, write ms 9786 − 9777.
    expect(pick(m, 'disk.')).toEqual({
      'disk.vda.read_bytes_per_s': 0,
      'disk.vda.write_bytes_per_s': (3395512 - 3346360) * 512,
      'disk.vda.reads_per_s': 0,
      'disk.vda.writes_per_s': 24,
      'disk.vda.busy_pct': 0.8,
      'disk.vda.await_ms': 9 / 24,
    });
    // lo and ifb* are excluded by default; eth0: rx 314356665 − 314356525, 8960 − 8958; tx 609886 − 609680, 5905 − 5902.
    expect(pick(m, 'net.')).toEqual({
      'net.eth0.rx_bytes_per_s': 140,
      'net.eth0.tx_bytes_per_s': 206,
      'net.eth0.rx_packets_per_s': 2,
      'net.eth0.tx_packets_per_s': 3,
      'net.eth0.rx_errors_per_s': 0,
      'net.eth0.tx_errors_per_s': 0,
      'net.eth0.rx_drops_per_s': 0,
      'net.eth0.tx_drops_per_s': 0,
    });
  });

  it('scales rates by the time between samples', async () => {
    const proc = procFrom('proc-t0');
    const sampler = new HostSampler({ procRoot: proc, sysRoot: fx('sys'), statfs: fakeStatfs });
    await sampler.sample(T0);
    cpSync(fx('proc-t1'), proc, { recursive: true });
    const { metrics } = await sampler.sample(T0 + 4000);
    expect(metrics['disk.vda.write_bytes_per_s']).toBe(((3395512 - 3346360) * 512) / 4);
    expect(metrics['disk.vda.busy_pct']).toBe(0.2);
    expect(metrics['net.eth0.rx_bytes_per_s']).toBe(35);
    expect(metrics['cpu.utilization_pct']).toBeCloseTo((105 / 194) * 100, 10); // a ratio of ticks, not a rate
  });

  it('gives no rate, never a negative one, for counters that went backwards, and rates against them next time', async () => {
    const proc = procFrom('proc-t1');
    const sampler = new HostSampler({ procRoot: proc, sysRoot: fx('sys'), statfs: fakeStatfs });
    await sampler.sample(T0);
    cpSync(fx('proc-t0'), proc, { recursive: true }); // every counter steps back: a reset
    const back = await sampler.sample(T0 + 1000);
    expect(Object.values(back.metrics).every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
    expect(back.metrics['cpu.utilization_pct']).toBeUndefined();
    expect(back.metrics['cpu.context_switches_per_s']).toBeUndefined();
    // Counters that did not move still give a (zero) rate; the ones that went back give none.
    expect(pick(back.metrics, 'disk.')).toEqual({ 'disk.vda.read_bytes_per_s': 0, 'disk.vda.reads_per_s': 0 });
    expect(pick(back.metrics, 'net.')).toEqual({
      'net.eth0.rx_errors_per_s': 0,
      'net.eth0.tx_errors_per_s': 0,
      'net.eth0.rx_drops_per_s': 0,
      'net.eth0.tx_drops_per_s': 0,
    });
    expect(back.metrics['memory.total_bytes']).toBe(24684092 * kB); // gauges are unaffected
    cpSync(fx('proc-t1'), proc, { recursive: true });
    const again = await sampler.sample(T0 + 2000);
    expect(again.metrics['disk.vda.write_bytes_per_s']).toBe((3395512 - 3346360) * 512);
    expect(again.metrics['cpu.utilization_pct']).toBeCloseTo((105 / 194) * 100, 10);
  });

  it('counts a single CPU field stepping back (iowait does) as 0 instead of voiding the sample', async () => {
    const proc = procFrom('proc-t0');
    const sampler = new HostSampler({ procRoot: proc, sysRoot: fx('sys'), statfs: fakeStatfs });
    writeFileSync(path.join(proc, 'stat'), 'cpu  1000 0 100 8000 50 0 0 0 0 0\ncpu0 1000 0 100 8000 50 0 0 0 0 0\n');
    await sampler.sample(T0);
    // user +60, system +20, idle +100, iowait −2, steal +20
    writeFileSync(path.join(proc, 'stat'), 'cpu  1060 0 120 8100 48 0 0 20 0 0\ncpu0 1060 0 120 8100 48 0 0 20 0 0\n');
    const { metrics } = await sampler.sample(T0 + 1000);
    expect(metrics['cpu.utilization_pct']).toBe(50);
    expect(metrics['cpu.user_pct']).toBe(30);
    expect(metrics['cpu.system_pct']).toBe(10);
    expect(metrics['cpu.steal_pct']).toBe(10);
    expect(metrics['cpu.iowait_pct']).toBe(0);
  });

  it('gives no rates when the clock does not move forward', async () => {
    const proc = procFrom('proc-t0');
    const sampler = new HostSampler({ procRoot: proc, sysRoot: fx('sys'), statfs: fakeStatfs });
    await sampler.sample(T0);
    cpSync(fx('proc-t1'), proc, { recursive: true });
    const { metrics } = await sampler.sample(T0);
    expect(Object.keys(metrics).filter((k) => k.endsWith('_per_s') || k.startsWith('disk.') || k === 'cpu.utilization_pct')).toEqual([]);
  });

  it('reads temperatures and fans from the fake sysfs, with labels, skipping dead inputs', async () => {
    const sampler = new HostSampler({ procRoot: procFrom('proc-t0'), sysRoot: fx('sys'), statfs: fakeStatfs });
    const { metrics, errors } = await sampler.sample(T0);
    expect(errors).toEqual([]);
    expect({ ...pick(metrics, 'temp.'), ...pick(metrics, 'fan.') }).toEqual({
      'temp.coretemp_package_id_0.celsius': 52,
      'temp.coretemp_core_0.celsius': 49,
      'temp.nct6775_temp1.celsius': 34.5, // no label file: the input's own name
      'fan.nct6775_fan1.rpm': 1180,
      'fan.nct6775_cpu_fan.rpm': 0, // a stopped fan is reported
      'temp.nvme0_composite.celsius': 38.85, // two chips named nvme: told apart by their device links
      'temp.nvme1_composite.celsius': 41.85,
      'temp.zone0_x86_pkg_temp.celsius': 47,
      'temp.zone1_acpitz.celsius': 27.8,
    });
    // nct6775 temp7 reads -128 °C ("no sensor") and the `broken` chip's inputs do not parse: not reported.
    expect(Object.keys(metrics).some((k) => k.includes('broken') || k.includes('temp7'))).toBe(false);
  });

  it('reports a sensor that stops reading, and rediscovers when a sensor disappears', async () => {
    const sys = path.join(tmp(), 'sys');
    cpSync(fx('sys'), sys, { recursive: true, verbatimSymlinks: true });
    const sampler = new HostSampler({ procRoot: procFrom('proc-t0'), sysRoot: sys, statfs: fakeStatfs, rediscoverEvery: 1000 });
    await sampler.sample(T0);
    writeFileSync(path.join(sys, 'class/hwmon/hwmon0/temp2_input'), 'nonsense\n');
    rmSync(path.join(sys, 'class/thermal/thermal_zone1/temp'));
    const s2 = await sampler.sample(T0 + 1000);
    expect(s2.metrics['temp.coretemp_core_0.celsius']).toBeUndefined();
    expect(s2.metrics['temp.zone1_acpitz.celsius']).toBeUndefined();
    expect(s2.metrics['temp.coretemp_package_id_0.celsius']).toBe(52);
    expect(s2.errors.sort()).toEqual([
      `${sys}/class/hwmon/hwmon0/temp2_input: unreadable or out of range`,
      `${sys}/class/thermal/thermal_zone1/temp: unreadable or out of range`,
    ]);
    // The vanished file triggers a rediscovery on the next sample, which drops both dead inputs.
    const s3 = await sampler.sample(T0 + 2000);
    expect(s3.errors).toEqual([]);
    expect(Object.keys(pick(s3.metrics, 'temp.'))).toEqual([
      'temp.coretemp_package_id_0.celsius',
      'temp.nct6775_temp1.celsius',
      'temp.nvme0_composite.celsius',
      'temp.nvme1_composite.celsius',
      'temp.zone0_x86_pkg_temp.celsius',
    ]);
  });

  it('reads a sensor file held open afresh every sample, a file replaced at its path too, and closes them on close()', async () => {
    const sys = path.join(tmp(), 'sys');
    cpSync(fx('sys'), sys, { recursive: true, verbatimSymlinks: true });
    const target = (fd: string): string => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return ''; // the descriptor readdir itself used, closed since
      }
    };
    const heldOpen = () => readdirSync('/proc/self/fd').filter((fd) => target(fd).startsWith(sys)).length;
    const sampler = new HostSampler({ procRoot: procFrom('proc-t0'), sysRoot: sys, statfs: fakeStatfs, rediscoverEvery: 1000 });
    expect((await sampler.sample(T0)).metrics['temp.coretemp_package_id_0.celsius']).toBe(52);
    expect(heldOpen()).toBe(9);
    // Rewritten in place, as sysfs does: the held descriptor reads the new value.
    writeFileSync(path.join(sys, 'class/hwmon/hwmon0/temp1_input'), '53000\n');
    // Replaced by another file (a device gone and back): read by its path, not through the old descriptor.
    const zone0 = path.join(sys, 'class/thermal/thermal_zone0/temp');
    writeFileSync(`${zone0}.new`, '48000\n');
    renameSync(`${zone0}.new`, zone0);
    const s2 = await sampler.sample(T0 + 1000);
    expect(s2.metrics['temp.coretemp_package_id_0.celsius']).toBe(53);
    expect(s2.metrics['temp.zone0_x86_pkg_temp.celsius']).toBe(48);
    expect(heldOpen()).toBe(9);
    sampler.close();
    expect(heldOpen()).toBe(0);
    // A sample after close() opens them again.
    // Asked while a sample runs, after it.
    const s3 = sampler.sample(T0 + 2000);
    sampler.close();
    expect((await s3).metrics['temp.zone0_x86_pkg_temp.celsius']).toBe(48);
    expect(heldOpen()).toBe(0);
  });

  it('discovers sensors once and again every `rediscoverEvery` samples, not on every sample', async () => {
    const sys = path.join(tmp(), 'sys');
    cpSync(fx('sys'), sys, { recursive: true, verbatimSymlinks: true });
    const sampler = new HostSampler({ procRoot: procFrom('proc-t0'), sysRoot: sys, statfs: fakeStatfs, rediscoverEvery: 3 });
    await sampler.sample(T0);
    mkdirSync(path.join(sys, 'class/thermal/thermal_zone2'));
    writeFileSync(path.join(sys, 'class/thermal/thermal_zone2/type'), 'cpu-thermal\n');
    writeFileSync(path.join(sys, 'class/thermal/thermal_zone2/temp'), '61500\n');
    expect((await sampler.sample(T0 + 1000)).metrics['temp.zone2_cpu-thermal.celsius']).toBeUndefined();
    expect((await sampler.sample(T0 + 2000)).metrics['temp.zone2_cpu-thermal.celsius']).toBeUndefined();
    expect((await sampler.sample(T0 + 3000)).metrics['temp.zone2_cpu-thermal.celsius']).toBe(61.5);
  });

  it('skips and counts malformed lines, keeping what the good lines say', async () => {
    const proc = path.join(tmp(), 'proc');
    mkdirSync(path.join(proc, 'net'), { recursive: true });
    mkdirSync(path.join(proc, 'self'));
    cpSync(fx('malformed/stat'), path.join(proc, 'stat'));
    cpSync(fx('malformed/meminfo'), path.join(proc, 'meminfo'));
    cpSync(fx('malformed/diskstats'), path.join(proc, 'diskstats'));
    cpSync(fx('malformed/net-dev'), path.join(proc, 'net/dev'));
    cpSync(fx('malformed/loadavg'), path.join(proc, 'loadavg'));
    cpSync(fx('malformed/mountinfo'), path.join(proc, 'self/mountinfo'));
    const statted: string[] = [];
    const sampler = new HostSampler({
      procRoot: proc,
      sysRoot: path.join(tmp(), 'no-sys'),
      statfs: async (p) => (statted.push(p), fakeStatfs()),
    });
    const { metrics, errors } = await sampler.sample(T0);
    expect(errors).toEqual([
      `${proc}/stat: 5 malformed lines skipped`,
      `${proc}/loadavg: 1 malformed line skipped`,
      `${proc}/meminfo: 5 malformed lines skipped`,
      `${proc}/self/mountinfo: 3 malformed lines skipped`,
      `${proc}/diskstats: 4 malformed lines skipped`,
      `${proc}/net/dev: 4 malformed lines skipped`,
    ]);
    expect(statted).toEqual(['/', '/mnt/ok']);
    expect(metrics['cpu.count']).toBe(2);
    expect(metrics['load.1m']).toBeUndefined();
    expect(metrics['memory.total_bytes']).toBe(24684092 * kB);
    expect(metrics['swap.used_bytes']).toBe((2097148 - 1048576) * kB);
    expect(metrics['swap.used_pct']).toBeCloseTo(((2097148 - 1048576) / 2097148) * 100, 10);
    expect(metrics['fs.mnt_ok.used_pct']).toBeCloseTo((600 / 900) * 100, 10);
  });

  it('reports missing files as errors and the rest as metrics, without throwing', async () => {
    const sampler = new HostSampler({ procRoot: path.join(tmp(), 'nothing'), sysRoot: path.join(tmp(), 'nothing') });
    const { metrics, errors } = await sampler.sample(T0);
    expect(metrics).toEqual({});
    expect(errors.map((e) => e.replace(/^.*\/nothing/, ''))).toEqual([
      '/stat: ENOENT',
      '/loadavg: ENOENT',
      '/meminfo: ENOENT',
      '/diskstats: ENOENT',
      '/net/dev: ENOENT',
      '/self/mountinfo: ENOENT',
    ]);
  });

  it('does not wait for a hung statfs, and skips that mount until the call returns', async () => {
    let release: (() => void) | undefined;
    const hung = new Promise<StatfsResult>((resolve) => {
      release = () => void fakeStatfs().then(resolve);
    });
    const calls: string[] = [];
    const sampler = new HostSampler({
      procRoot: procFrom('proc-t0'),
      sysRoot: fx('sys'),
      statfsTimeoutMs: 50,
      statfs: (p) => (calls.push(p), hung),
    });
    const s1 = await sampler.sample(T0);
    expect(s1.errors).toEqual(['statfs /: timed out after 50 ms']);
    expect(s1.metrics['fs.root.used_pct']).toBeUndefined();
    expect(s1.metrics['memory.total_bytes']).toBe(24684092 * kB);
    const s2 = await sampler.sample(T0 + 1000);
    expect(s2.errors).toEqual(['statfs /: an earlier call has not returned']);
    expect(calls).toHaveLength(1);
    release!();
    await hung;
    await new Promise((r) => setImmediate(r));
    const s3 = await sampler.sample(T0 + 2000);
    expect(s3.errors).toEqual([]);
    expect(s3.metrics['fs.root.used_pct']).toBeCloseTo((600 / 900) * 100, 10);
  });

  it('reports only the filesystems named in includeFilesystems', async () => {
    const proc = procFrom('proc-t0');
    cpSync(fx('synthetic/mountinfo-server'), path.join(proc, 'self/mountinfo'));
    const statted: string[] = [];
    const sampler = new HostSampler({
      procRoot: proc,
      sysRoot: fx('sys'),
      includeFilesystems: ['/mnt/nas', '/boot/efi'],
      statfs: async (p) => (statted.push(p), fakeStatfs()),
    });
    const { metrics } = await sampler.sample(T0);
    expect(statted).toEqual(['/boot/efi', '/mnt/nas']);
    expect(Object.keys(pick(metrics, 'fs.')).filter((k) => k.endsWith('.used_pct'))).toEqual(['fs.boot_efi.used_pct', 'fs.mnt_nas.used_pct']);
  });

  it('reports whole disks only, guessing partitions by name where /sys/block cannot be listed', async () => {
    const proc = procFrom('proc-t0');
    cpSync(fx('synthetic/diskstats-server'), path.join(proc, 'diskstats'));
    const noSys = new HostSampler({ procRoot: proc, sysRoot: path.join(tmp(), 'none'), statfs: fakeStatfs });
    await noSys.sample(T0);
    const a = await noSys.sample(T0 + 1000);
    const disks = (m: Record<string, number>) => [...new Set(Object.keys(pick(m, 'disk.')).map((k) => k.split('.')[1]))];
    expect(disks(a.metrics)).toEqual(['sda', 'nvme0n1', 'dm-0', 'mmcblk0', 'md0']);

    const sys = path.join(tmp(), 'sys');
    for (const d of ['sda', 'nvme0n1', 'loop0']) mkdirSync(path.join(sys, 'block', d), { recursive: true });
    const withSys = new HostSampler({ procRoot: proc, sysRoot: sys, statfs: fakeStatfs, excludeDevices: /^loop/ });
    await withSys.sample(T0);
    expect(disks((await withSys.sample(T0 + 1000)).metrics)).toEqual(['sda', 'nvme0n1']);

    const all = new HostSampler({ procRoot: proc, sysRoot: sys, statfs: fakeStatfs, includePartitions: true });
    await all.sample(T0);
    expect(disks((await all.sample(T0 + 1000)).metrics)).toHaveLength(9); // every device but loop0
  });
});

describe('HostSampler reading /proc through descriptors kept open', () => {
  it('reads a file larger than its first buffer whole, also when it grows between samples', async () => {
    const proc = procFrom('proc-t0');
    writeFileSync(path.join(proc, 'net/dev'), netDev(2, 1000));
    const sampler = new HostSampler({ procRoot: proc, sysRoot: fx('sys'), statfs: fakeStatfs });
    await sampler.sample(T0);
    // About 90 KiB, several times the first buffer (16 KiB): rewritten in place, on the descriptor held open.
    const big = netDev(1000, 2000);
    expect(big.length).toBeGreaterThan(64 * 1024);
    writeFileSync(path.join(proc, 'net/dev'), big);
    const s2 = await sampler.sample(T0 + 1000);
    expect(s2.errors).toEqual([]);
    expect(pick(s2.metrics, 'net.eth1.')).toMatchObject({ 'net.eth1.rx_bytes_per_s': 1000, 'net.eth1.tx_drops_per_s': 1000 });
    writeFileSync(path.join(proc, 'net/dev'), netDev(1000, 2005));
    const s3 = await sampler.sample(T0 + 2000);
    expect(s3.errors).toEqual([]);
    const rx = Object.keys(s3.metrics).filter((k) => k.startsWith('net.') && k.endsWith('.rx_bytes_per_s'));
    expect(rx).toHaveLength(1000); // the last line too: nothing cut off
    expect(s3.metrics['net.eth999.rx_bytes_per_s']).toBe(5);
  });

  it('reads a procfs seq_file whole, past the page or so that one read returns', async () => {
    // /proc/kallsyms: a seq_file of thousands of lines that stays put; every line is a malformed diskstats line.
    const proc = procFrom('proc-t0');
    rmSync(path.join(proc, 'diskstats'));
    symlinkSync('/proc/kallsyms', path.join(proc, 'diskstats'));
    const lineCount = readFileSync('/proc/kallsyms', 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '').length;
    expect(lineCount).toBeGreaterThan(1000);
    const sampler = new HostSampler({ procRoot: proc, sysRoot: fx('sys'), statfs: fakeStatfs });
    for (const t of [T0, T0 + 1000]) expect((await sampler.sample(t)).errors).toEqual([`${proc}/diskstats: ${lineCount} malformed lines skipped`]);
    sampler.close();
  });

  it('sees a file rewritten shorter in place, and one replaced at its path, between samples', async () => {
    const proc = procFrom('proc-t0');
    const sampler = new HostSampler({ procRoot: proc, sysRoot: fx('sys'), statfs: fakeStatfs });
    expect((await sampler.sample(T0)).metrics['load.1m']).toBe(0.32);
    // Shorter than before: no tail of the old text is left over.
    writeFileSync(path.join(proc, 'loadavg'), '1.5 1 0.5 1/2 3\n');
    const s2 = await sampler.sample(T0 + 1000);
    expect(s2.errors).toEqual([]);
    expect([s2.metrics['load.1m'], s2.metrics['load.5m'], s2.metrics['load.15m']]).toEqual([1.5, 1, 0.5]);
    // Replaced by another file: the held descriptor would read the old one.
    writeFileSync(path.join(proc, 'loadavg.new'), '7.25 6.5 5.75 1/2 3\n');
    renameSync(path.join(proc, 'loadavg.new'), path.join(proc, 'loadavg'));
    expect((await sampler.sample(T0 + 2000)).metrics['load.1m']).toBe(7.25);
    // Gone: the same error as a file never there, and back again.
    rmSync(path.join(proc, 'loadavg'));
    const s4 = await sampler.sample(T0 + 3000);
    expect(s4.errors).toEqual([`${proc}/loadavg: ENOENT`]);
    expect(s4.metrics['load.1m']).toBeUndefined();
    cpSync(fx('proc-t0/loadavg'), path.join(proc, 'loadavg'));
    const s5 = await sampler.sample(T0 + 4000);
    expect(s5.errors).toEqual([]);
    expect(s5.metrics['load.1m']).toBe(0.32);
  });

  it('holds each file open once, reopens one whose descriptor was closed under it, and closes them on close()', async () => {
    const proc = procFrom('proc-t0');
    const sampler = new HostSampler({ procRoot: proc, sysRoot: fx('sys'), statfs: fakeStatfs });
    const first = await sampler.sample(T0);
    const held = () => [...fdsUnder(proc).values()].sort();
    const files = ['diskstats', 'loadavg', 'meminfo', 'net/dev', 'self/mountinfo', 'stat'].map((f) => path.join(proc, f));
    expect(held()).toEqual(files);
    await sampler.sample(T0 + 1000);
    expect(held()).toEqual(files); // the same descriptors, none more

    // A descriptor closed under the sampler (EBADF): read again on a fresh one, no error, nothing lost.
    const statFd = [...fdsUnder(proc)].find(([, f]) => f === path.join(proc, 'stat'))![0];
    closeSync(Number(statFd));
    const again = await sampler.sample(T0 + 2000);
    expect(again.errors).toEqual([]);
    expect(again.metrics['cpu.count']).toBe(first.metrics['cpu.count']);
    expect(held()).toEqual(files);

    sampler.close();
    expect(held()).toEqual([]);
    // A sample after close() opens them again; close() while a sample runs closes them after it.
    const s = sampler.sample(T0 + 3000);
    sampler.close();
    expect((await s).metrics['memory.total_bytes']).toBe(24684092 * kB);
    expect(held()).toEqual([]);
  });

  it('reads the real /proc afresh on every sample through the same descriptors', async () => {
    const sampler = new HostSampler({ sysRoot: path.join(tmp(), 'no-sys') });
    const a = await sampler.sample();
    const heldA = fdsUnder('/proc');
    // This process's own forks counter moves on a spawn: the held /proc/stat must show it.
    await promisify(execFile)('true');
    const b = await sampler.sample(Date.now() + 1000);
    expect(fdsUnder('/proc')).toEqual(heldA);
    expect(b.metrics['procs.forks_per_s']).toBeGreaterThan(0);
    expect(a.errors.filter((e) => e.startsWith('/proc/'))).toEqual([]);
    sampler.close();
    expect(fdsUnder('/proc').size).toBeLessThan(heldA.size);
  });
});

describe('HostSampler statfs, synchronous for local filesystems only', () => {
  const mountinfo = [
    '20 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw',
    '21 20 8:2 / /data rw,relatime - xfs /dev/sda2 rw',
    '22 20 0:40 / /mnt/nas rw,relatime - nfs4 nas:/export rw',
    // Local, but below a network mount: the path lookup goes through the NFS share.
    '23 22 8:3 / /mnt/nas/disk rw,relatime - ext4 /dev/sda3 rw',
    '24 20 0:41 / /mnt/remote rw,relatime - fuse.sshfs me@host:/ rw',
    '25 20 0:42 / /mnt/odd rw,relatime - somefs /dev/odd rw',
    '26 20 8:4 / /gone rw,relatime - btrfs /dev/sda4 rw',
    '',
  ].join('\n');
  const mountPoints = ['/', '/data', '/mnt/nas', '/mnt/nas/disk', '/mnt/remote', '/mnt/odd', '/gone'];

  it('calls the synchronous statfs for local types and the guarded asynchronous one for the rest, with the same results and error texts', async () => {
    const proc = procFrom('proc-t0');
    writeFileSync(path.join(proc, 'self/mountinfo'), mountinfo);
    const sync: string[] = [];
    const async: string[] = [];
    const enoent = (p: string) => Object.assign(new Error(`ENOENT: no such file or directory, statfs '${p}'`), { code: 'ENOENT' });
    const sampler = new HostSampler({
      procRoot: proc,
      sysRoot: fx('sys'),
      includeFilesystems: mountPoints,
      statfsTimeoutMs: 50,
      statfsSync: (p) => {
        sync.push(p);
        if (p === '/gone') throw enoent(p);
        return { bsize: 4096, blocks: 1000, bfree: 400, bavail: 300, files: 100, ffree: 25 };
      },
      statfs: (p) => {
        async.push(p);
        if (p === '/mnt/odd') return Promise.reject(enoent(p));
        if (p === '/mnt/remote') return new Promise<StatfsResult>(() => undefined); // hung
        return fakeStatfs();
      },
    });
    const { metrics, errors } = await sampler.sample(T0);
    expect(sync).toEqual(['/', '/data', '/gone']);
    expect(async).toEqual(['/mnt/nas', '/mnt/nas/disk', '/mnt/remote', '/mnt/odd']);
    // Mount order, whichever call answered.
    expect(errors).toEqual(['statfs /mnt/remote: timed out after 50 ms', 'statfs /mnt/odd: ENOENT', 'statfs /gone: ENOENT']);
    expect(Object.keys(metrics).filter((k) => k.endsWith('.used_pct') && k.startsWith('fs.'))).toEqual([
      'fs.root.used_pct',
      'fs.data.used_pct',
      'fs.mnt_nas.used_pct',
      'fs.mnt_nas_disk.used_pct',
    ]);
    expect(metrics['fs.data.used_pct']).toBe(metrics['fs.mnt_nas.used_pct']);
  });

  it('uses an injected asynchronous statfs for every mount when no synchronous one is given', async () => {
    const proc = procFrom('proc-t0');
    writeFileSync(path.join(proc, 'self/mountinfo'), mountinfo);
    const async: string[] = [];
    const sampler = new HostSampler({
      procRoot: proc,
      sysRoot: fx('sys'),
      includeFilesystems: mountPoints,
      statfs: async (p) => (async.push(p), fakeStatfs()),
    });
    await sampler.sample(T0);
    expect(async).toEqual(mountPoints);
  });

  it('lists the usual local filesystems and none of the network ones', () => {
    for (const t of ['ext4', 'xfs', 'btrfs', 'vfat', 'tmpfs', 'overlay', 'zfs']) expect(SYNC_STATFS_TYPES.has(t), t).toBe(true);
    for (const t of ['nfs', 'nfs4', 'cifs', 'smb3', 'fuse.sshfs', 'fuse', '9p', 'ceph', 'glusterfs', 'autofs']) expect(SYNC_STATFS_TYPES.has(t), t).toBe(false);
  });

  it('reports the root filesystem as fs.statfsSync gives it, by default, on this machine', async () => {
    const sampler = new HostSampler({ sysRoot: path.join(tmp(), 'no-sys'), includeFilesystems: ['/'] });
    const { metrics, errors } = await sampler.sample();
    sampler.close();
    const st = statfsSync('/');
    expect(errors.filter((e) => e.startsWith('statfs'))).toEqual([]);
    expect(metrics['fs.root.total_bytes']).toBe(st.blocks * st.bsize);
  });
});

describe('sensorValue', () => {
  it('reads millidegrees and rpm, and rejects junk and "no sensor" values', () => {
    expect(sensorValue('temp', '45500\n')).toBe(45.5);
    expect(sensorValue('temp', '-5000\n')).toBe(-5);
    expect(sensorValue('temp', '-128000\n')).toBeNull();
    expect(sensorValue('temp', '255000\n')).toBeNull();
    expect(sensorValue('temp', '')).toBeNull();
    expect(sensorValue('fan', '2400\n')).toBe(2400);
    expect(sensorValue('fan', '-1\n')).toBeNull();
  });
});

describe('HostSampler on this machine', () => {
  it('produces sane values from the real /proc and /sys, and spawns no process', async () => {
    // The counter is the bench harness's: it sees every child_process spawn in this worker. Prove it counts.
    const c0 = spawnCount();
    await promisify(execFile)('true');
    expect(spawnCount()).toBe(c0 + 1);

    const sampler = new HostSampler();
    const before = spawnCount();
    const first = await sampler.sample();
    await new Promise((r) => setTimeout(r, 250));
    const { metrics, errors } = await sampler.sample();
    expect(spawnCount()).toBe(before);

    expect(errors.filter((e) => /\/proc\/(stat|meminfo|loadavg)/.test(e))).toEqual([]);
    expect(Object.keys(first.metrics).some((k) => k.endsWith('_per_s'))).toBe(false);
    for (const [k, v] of Object.entries(metrics)) {
      expect(Number.isFinite(v), k).toBe(true);
      expect(k).toMatch(/^[a-z0-9_]+(\.[a-z0-9_-]+)*\.[a-z0-9_]+$/);
      if (k.endsWith('_per_s') || k.endsWith('_bytes') || k.endsWith('_pct') || k.endsWith('.rpm')) expect(v, k).toBeGreaterThanOrEqual(0);
      if (k.endsWith('_pct')) expect(v, k).toBeLessThanOrEqual(100);
    }
    expect(metrics['cpu.utilization_pct']).toBeGreaterThanOrEqual(0);
    expect(metrics['cpu.utilization_pct']).toBeLessThanOrEqual(100);
    expect(metrics['cpu.count']).toBeGreaterThanOrEqual(1);
    expect(metrics['load.1m']).toBeGreaterThanOrEqual(0);
    expect(metrics['memory.used_bytes']).toBeLessThanOrEqual(metrics['memory.total_bytes']!);
    expect(metrics['memory.available_bytes']).toBeLessThanOrEqual(metrics['memory.total_bytes']!);
    expect(metrics['swap.used_bytes']).toBeLessThanOrEqual(metrics['swap.total_bytes']!);
    const fsTotals = Object.keys(metrics).filter((k) => k.startsWith('fs.') && k.endsWith('.total_bytes'));
    expect(fsTotals.length).toBeGreaterThan(0);
    for (const k of fsTotals) {
      const p = k.slice(0, -'total_bytes'.length);
      expect(metrics[`${p}used_bytes`]).toBeLessThanOrEqual(metrics[k]!);
    }
  });
});
