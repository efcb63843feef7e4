/**
 * Host telemetry from /proc and /sys, cheap enough to run every second.
 *
 * The per-sample path reads /proc through descriptors it keeps open, sensor files likewise, and calls statfs
 * (synchronously for local filesystems, else fs.promises.statfs under a time limit); it never spawns a process.
 * (systeminformation's equivalents spawn `df`, `lsblk`, `cat`, `sensors` …; see test/bench/host-sampler.bench.ts.)
 * systeminformation is only used by `hostInventory()` (host-inventory.ts), once at start, in a process of its own.
 *
 * ## Metric names
 *
 * Flat, dotted, lowercase keys with the unit last: `<group>.<metric>_<unit>` for host-wide values and
 * `<group>.<label>.<metric>_<unit>` for per-device values. A label is one key segment made of `[a-z0-9_-]`
 * (everything else becomes `_`, see `metricLabel`), so a key splits unambiguously at its dots. When two
 * names sanitise to the same label the later one gets `_2`, `_3`, … for the life of the sampler.
 *
 * Gauges, present from the first sample:
 *   cpu.count                                 CPUs online
 *   load.1m  load.5m  load.15m                load average
 *   procs.running  procs.blocked              runnable tasks, tasks blocked on I/O
 *   memory.total_bytes  memory.available_bytes  memory.used_bytes (total − available)  memory.used_pct
 *   memory.free_bytes  memory.cached_bytes (buffers + page cache + reclaimable slab)
 *   swap.total_bytes  swap.used_bytes  swap.used_pct (only when there is swap)
 *   fs.<mount>.total_bytes  .used_bytes  .avail_bytes  .used_pct  .inodes_used_pct
 *       <mount>: `/` → `root`, `/var/lib/docker` → `var_lib_docker`. used_pct is df's Use%:
 *       used / (used + available to unprivileged users). inodes_used_pct is absent where the filesystem has
 *       no inode count (btrfs).
 *   temp.<chip>_<label>.celsius
 *       hwmon: <chip> is the chip's `name` (`coretemp`, `nvme`, `k10temp`, `amdgpu`), or the device it belongs
 *       to when several chips share a name (`nvme0`, `nvme1`); <label> is `tempN_label` (`package_id_0`,
 *       `composite`), else `tempN`. Thermal zones: <chip> is `zoneN`, <label> the zone's `type`
 *       (`temp.zone0_x86_pkg_temp.celsius`).
 *   fan.<chip>_<label>.rpm                    hwmon fans, same naming; 0 rpm is reported (a stopped fan).
 *
 * Rates, from the second sample on (each needs the previous sample's counters; a counter that went backwards
 * — reset, wrap, device replaced — gives no value for that sample, never a negative one):
 *   cpu.utilization_pct  (everything but idle and iowait)  cpu.user_pct (user + nice)
 *   cpu.system_pct (system + irq + softirq)  cpu.iowait_pct  cpu.steal_pct
 *   cpu.context_switches_per_s  cpu.interrupts_per_s  procs.forks_per_s
 *   disk.<dev>.read_bytes_per_s  .write_bytes_per_s  .reads_per_s  .writes_per_s
 *       .busy_pct (time with I/O in flight, 0–100)  .await_ms (mean time per completed I/O; absent with no I/O)
 *       <dev>: whole block devices (`sda`, `nvme0n1`, `vda`, `dm-0`, `md0`); partitions, loop, ram, zram,
 *       floppy and optical devices are skipped by default.
 *   net.<iface>.rx_bytes_per_s  .tx_bytes_per_s  .rx_packets_per_s  .tx_packets_per_s
 *       .rx_errors_per_s  .tx_errors_per_s  .rx_drops_per_s  .tx_drops_per_s
 *       <iface>: every interface but `lo`, `veth*` and `ifb*` by default (`eth0.100` → `eth0_100`).
 *
 * A signal that cannot be read is absent, never zero; why is in `errors`.
 */
import { closeSync, fstatSync, open as openFd, openSync, promises as fsp, read as readFd, readSync, statfsSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  type CpuTimes,
  type DiskStats,
  type MountInfo,
  type NetDevStats,
  LabelAllocator,
  cpuTotal,
  metricLabel,
  mountLabel,
  parseDiskstats,
  parseLoadavg,
  parseMeminfo,
  parseMountinfo,
  parseNetDev,
  parseProcMounts,
  parseProcStat,
  selectFilesystems,
} from './proc-parsers.js';

export interface HostSample {
  metrics: Record<string, number>;
  /** What could not be read this sample, one line each. Stable text, so a caller can report each once. */
  errors: string[];
}

/** The fields of fs.StatFs the sampler uses. */
export interface StatfsResult {
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
}

export interface HostSamplerOptions {
  /** Where procfs is mounted. Default `/proc`. */
  procRoot?: string;
  /** Where sysfs is mounted. Default `/sys`. */
  sysRoot?: string;
  /**
   * Mount points to report disk usage for. When given, exactly these are reported (network filesystems
   * included); by default every real local filesystem is.
   */
  includeFilesystems?: string[];
  /** Block devices to skip. Default: loop, ram, zram, floppy and optical devices. */
  excludeDevices?: RegExp;
  /** Report partitions as well as whole devices (their I/O is also counted in the device's). Default false. */
  includePartitions?: boolean;
  /** Network interfaces to skip. Default: `lo`, `veth*` (container pairs), `ifb*`. */
  excludeInterfaces?: RegExp;
  /** Samples between rediscoveries of thermal zones, hwmon chips and block devices. Default 60. */
  rediscoverEvery?: number;
  /** A statfs slower than this (a hung mount) is reported as an error and not waited for. Default 2000 ms. */
  statfsTimeoutMs?: number;
  /** statfs, replaceable for tests. Default fs.promises.statfs. */
  statfs?: (path: string) => Promise<StatfsResult>;
  /**
   * The synchronous statfs used for mounts that cannot hang (see SYNC_STATFS_TYPES), replaceable for tests.
   * Default fs.statfsSync; when `statfs` is given without it, `statfs` serves every mount.
   */
  statfsSync?: (path: string) => StatfsResult;
}

export const DEFAULT_EXCLUDE_DEVICES = /^(loop|ram|zram|fd|sr)\d+$/;
export const DEFAULT_EXCLUDE_INTERFACES = /^(lo|veth.*|ifb\d+)$/;

/**
 * Filesystem types whose statfs answers from memory at once and cannot wait on a network, a server or a
 * userspace daemon: statfs runs synchronously in the sample for these (a thread-pool round trip, a promise and
 * a timer less per mount). Every other type (nfs, cifs, smb3, fuse.*, 9p, ceph, glusterfs, autofs, an unknown
 * one) keeps the asynchronous call under `statfsTimeoutMs`. A mount qualifies only if every mount at or above
 * its mount point does too: the path lookup walks through those (an ext4 disk mounted under an NFS share).
 */
export const SYNC_STATFS_TYPES: ReadonlySet<string> = new Set([
  'ext2',
  'ext3',
  'ext4',
  'xfs',
  'btrfs',
  'f2fs',
  'vfat',
  'exfat',
  'tmpfs',
  'ramfs',
  'rootfs',
  'devtmpfs',
  'overlay',
  'squashfs',
  'zfs',
  'jfs',
  'reiserfs',
  'nilfs2',
  'erofs',
]);

/** Bytes first read at once from a /proc file; the buffer doubles whenever a file fills it. */
const PROC_READ_BYTES = 16 * 1024;

/** A partition by its name, for when /sys/block cannot be listed. */
const PARTITION_NAME = /^((sd|hd|vd|xvd)[a-z]+\d+|(nvme\d+n\d+|mmcblk\d+|md\d+|nbd\d+|loop\d+)p\d+)$/;

interface SensorFile {
  path: string;
  metric: string;
  kind: 'temp' | 'fan';
}

interface DiskKeys {
  readBytes: string;
  writeBytes: string;
  reads: string;
  writes: string;
  busy: string;
  await: string;
}

interface NetKeys {
  rxBytes: string;
  txBytes: string;
  rxPackets: string;
  txPackets: string;
  rxErrors: string;
  txErrors: string;
  rxDrops: string;
  txDrops: string;
}

interface FsKeys {
  total: string;
  used: string;
  avail: string;
  usedPct: string;
  inodesPct: string;
}

interface Previous {
  ts: number;
  cpu: CpuTimes | null;
  contextSwitches: number | undefined;
  interrupts: number | undefined;
  forks: number | undefined;
  disks: Map<string, DiskStats>;
  nets: Map<string, NetDevStats>;
}

/**
 * A sensor file kept open between samples: sysfs makes an attribute afresh on each read at offset 0, so one
 * pread a sample replaces fs.promises.readFile's open, fstat, read, read and close (five thread-pool round
 * trips). `ino` tells a file replaced or removed at the path from the one held open.
 */
interface OpenSensor {
  fd: number;
  ino: number;
  buf: Buffer;
}

/** Bytes read at once from a sensor file: a reading is a few digits; a file this long or longer is read whole, by its path. */
const SENSOR_READ_BYTES = 128;

type FsResult = { mount: MountInfo; stat: StatfsResult } | { mount: MountInfo; error: string };
type SensorResult = { sensor: SensorFile; value: number } | null;

/** cur − prev for a cumulative counter, or undefined when it went backwards. */
function delta(cur: number | undefined, prev: number | undefined): number | undefined {
  if (cur === undefined || prev === undefined || cur < prev) return undefined;
  return cur - prev;
}

function errorCode(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e?.code === 'string') return e.code;
  return typeof e?.message === 'string' ? e.message : String(err);
}

function byIndex(prefix: string): (a: string, b: string) => number {
  return (a, b) => Number(a.slice(prefix.length)) - Number(b.slice(prefix.length));
}

export class HostSampler {
  private readonly procRoot: string;
  private readonly sysRoot: string;
  private readonly includeFilesystems: readonly string[] | undefined;
  private readonly excludeDevices: RegExp;
  private readonly includePartitions: boolean;
  private readonly excludeInterfaces: RegExp;
  private readonly rediscoverEvery: number;
  private readonly statfsTimeoutMs: number;
  private readonly statfs: (path: string) => Promise<StatfsResult>;

  private samples = 0;
  private rediscoverSoon = false;
  private sensors: SensorFile[] = [];
  private readonly openSensors = new Map<string, OpenSensor>();
  /** The sample in progress: close() never closes a file a read may still be using. */
  private running: Promise<HostSample> | null = null;
  private closeWhenIdle = false;
  private wholeDisks: Set<string> | null = null;
  private prev: Previous | null = null;

  private mountText: string | null = null;
  private mounts: MountInfo[] = [];
  private mountsMalformed = 0;
  /** Per entry of `mounts`: statfs it synchronously (SYNC_STATFS_TYPES). */
  private mountsSync: boolean[] = [];
  private readonly pendingStatfs = new Set<string>();
  private readonly statfsSync: ((path: string) => StatfsResult) | null;

  /** /proc files held open between samples, by path, with their inode where it is checked (see readProc). */
  private readonly procFiles = new Map<string, { fd: number; ino: number }>();
  /** One buffer for every /proc read: the reads are synchronous, so never two at once. */
  private procBuf = Buffer.allocUnsafe(PROC_READ_BYTES);
  /**
   * A file of the real /proc is never replaced at its path; one under another procRoot (a test's fixture
   * directory, a copy) can be, and a held descriptor would not see the new one.
   */
  private readonly procCheckInode: boolean;

  private readonly diskKeys = new Map<string, DiskKeys>();
  private readonly netKeys = new Map<string, NetKeys>();
  private readonly fsKeys = new Map<string, FsKeys>();
  private readonly diskLabels = new LabelAllocator();
  private readonly netLabels = new LabelAllocator();
  private readonly fsLabels = new LabelAllocator();

  constructor(options: HostSamplerOptions = {}) {
    this.procRoot = options.procRoot ?? '/proc';
    this.sysRoot = options.sysRoot ?? '/sys';
    this.includeFilesystems = options.includeFilesystems;
    this.excludeDevices = options.excludeDevices ?? DEFAULT_EXCLUDE_DEVICES;
    this.includePartitions = options.includePartitions ?? false;
    this.excludeInterfaces = options.excludeInterfaces ?? DEFAULT_EXCLUDE_INTERFACES;
    this.rediscoverEvery = Math.max(1, Math.floor(options.rediscoverEvery ?? 60));
    this.statfsTimeoutMs = options.statfsTimeoutMs ?? 2000;
    this.statfs = options.statfs ?? ((p) => fsp.statfs(p));
    this.statfsSync = options.statfsSync ?? (options.statfs ? null : (p) => statfsSync(p));
    this.procCheckInode = this.procRoot !== '/proc';
  }

  /**
   * Takes one sample. `nowMs` is the sample's time, used for rates (default Date.now()); a time that does not
   * move forward from the previous sample gives no rates. Samples must not overlap (IntervalSource never does):
   * a rediscovery closes the sensor files it no longer reads.
   */
  sample(nowMs: number = Date.now()): Promise<HostSample> {
    this.closeWhenIdle = false;
    const run = this.takeSample(nowMs);
    this.running = run;
    const settled = (): void => {
      if (this.running === run) this.running = null;
      this.closeIfIdle();
    };
    run.then(settled, settled);
    return run;
  }

  /**
   * Closes the sensor and /proc files held open, at once or when the sample in progress ends (not waited for: a read
   * of a hung sensor may never return). A later sample opens them again.
   */
  close(): void {
    this.closeWhenIdle = true;
    this.closeIfIdle();
  }

  private closeIfIdle(): void {
    if (!this.closeWhenIdle || this.running !== null) return;
    this.closeWhenIdle = false;
    for (const file of [...this.openSensors.keys()]) this.closeSensor(file);
    for (const file of [...this.procFiles.keys()]) this.closeProc(file);
  }

  private async takeSample(nowMs: number): Promise<HostSample> {
    const errors: string[] = [];
    const metrics: Record<string, number> = {};
    if (this.samples % this.rediscoverEvery === 0 || this.rediscoverSoon) await this.discover();
    this.samples++;

    const p = this.procRoot;
    // /proc is read synchronously (see readProc), the rest concurrently; errors are reported below in a fixed
    // order, group by group.
    const statRead = this.readText(`${p}/stat`);
    const loadRead = this.readText(`${p}/loadavg`);
    const memRead = this.readText(`${p}/meminfo`);
    const diskRead = this.readText(`${p}/diskstats`);
    const netRead = this.readText(`${p}/net/dev`);
    const [fsRead, sensorResults] = await Promise.all([this.readFilesystems(), this.readSensors()]);
    const statText = took(statRead, errors);
    const loadText = took(loadRead, errors);
    const memText = took(memRead, errors);
    const diskText = took(diskRead, errors);
    const netText = took(netRead, errors);

    const prev = this.prev;
    const dtMs = prev ? nowMs - prev.ts : 0;
    const rates = prev !== null && dtMs > 0;
    const dtS = dtMs / 1000;
    const next: Previous = {
      ts: nowMs,
      cpu: null,
      contextSwitches: undefined,
      interrupts: undefined,
      forks: undefined,
      disks: new Map(),
      nets: new Map(),
    };

    // CPU, procs
    if (statText !== null) {
      const st = parseProcStat(statText);
      this.noteMalformed(`${p}/stat`, st.malformed, errors);
      if (st.cpuCount > 0) metrics['cpu.count'] = st.cpuCount;
      next.cpu = st.cpu;
      next.contextSwitches = st.contextSwitches;
      next.interrupts = st.interrupts;
      next.forks = st.forks;
      if (rates && st.cpu && prev.cpu) this.cpuMetrics(st.cpu, prev.cpu, metrics);
      if (!st.cpu) errors.push(`${p}/stat: no cpu line`);
      if (rates) {
        this.rate(metrics, 'cpu.context_switches_per_s', st.contextSwitches, prev.contextSwitches, dtS);
        this.rate(metrics, 'cpu.interrupts_per_s', st.interrupts, prev.interrupts, dtS);
      }
      if (st.procsRunning !== undefined) metrics['procs.running'] = st.procsRunning;
      if (st.procsBlocked !== undefined) metrics['procs.blocked'] = st.procsBlocked;
      if (rates) this.rate(metrics, 'procs.forks_per_s', st.forks, prev.forks, dtS);
    }

    // Load
    if (loadText !== null) {
      const { value, malformed } = parseLoadavg(loadText);
      this.noteMalformed(`${p}/loadavg`, malformed, errors);
      if (value) {
        metrics['load.1m'] = value.load1;
        metrics['load.5m'] = value.load5;
        metrics['load.15m'] = value.load15;
      }
    }

    // Memory, swap
    if (memText !== null) this.memoryMetrics(memText, metrics, errors);

    // Filesystems
    errors.push(...fsRead.errors);
    for (const r of fsRead.results) {
      if ('error' in r) {
        errors.push(r.error);
        continue;
      }
      const k = this.keysForFs(r.mount.mountPoint);
      const { bsize, blocks, bfree, bavail, files, ffree } = r.stat;
      const total = blocks * bsize;
      const used = (blocks - bfree) * bsize;
      const avail = bavail * bsize;
      metrics[k.total] = total;
      metrics[k.used] = used;
      metrics[k.avail] = avail;
      if (used + avail > 0) metrics[k.usedPct] = (used / (used + avail)) * 100;
      if (files > 0) metrics[k.inodesPct] = ((files - ffree) / files) * 100;
    }

    // Disks
    if (diskText !== null) {
      const { devices, malformed } = parseDiskstats(diskText);
      this.noteMalformed(`${p}/diskstats`, malformed, errors);
      for (const d of devices) {
        if (!this.wantDisk(d.name)) continue;
        next.disks.set(d.name, d);
        const was = prev?.disks.get(d.name);
        if (rates && was) this.diskMetrics(d, was, dtMs, metrics);
      }
    }

    // Network
    if (netText !== null) {
      const { interfaces, malformed } = parseNetDev(netText);
      this.noteMalformed(`${p}/net/dev`, malformed, errors);
      for (const n of interfaces) {
        if (this.excludeInterfaces.test(n.name)) continue;
        next.nets.set(n.name, n);
        const was = prev?.nets.get(n.name);
        if (rates && was) this.netMetrics(n, was, dtS, metrics);
      }
    }

    // Temperatures, fans
    for (const r of sensorResults) {
      if (r === null) continue;
      metrics[r.sensor.metric] = r.value;
    }
    for (const [i, r] of sensorResults.entries()) {
      if (r !== null) continue;
      const s = this.sensors[i];
      if (s) errors.push(`${s.path}: unreadable or out of range`);
    }

    // Keep the counters of a sample whose clock went backwards too: the next sample rates against it.
    this.prev = next;
    return { metrics, errors };
  }

  // ── per-group computations ───────────────────────────────────────────────────────────────────────────────

  private cpuMetrics(cur: CpuTimes, was: CpuTimes, metrics: Record<string, number>): void {
    // The aggregate must move forward; single fields (iowait is known to) may step back a little, and are
    // then counted as 0 rather than voiding the sample.
    if (cpuTotal(cur) <= cpuTotal(was)) return;
    const d = (k: keyof CpuTimes): number => Math.max(0, cur[k] - was[k]);
    const user = d('user') + d('nice');
    const system = d('system') + d('irq') + d('softirq');
    const idle = d('idle');
    const iowait = d('iowait');
    const steal = d('steal');
    const total = user + system + idle + iowait + steal;
    if (total <= 0) return;
    metrics['cpu.utilization_pct'] = ((total - idle - iowait) / total) * 100;
    metrics['cpu.user_pct'] = (user / total) * 100;
    metrics['cpu.system_pct'] = (system / total) * 100;
    metrics['cpu.iowait_pct'] = (iowait / total) * 100;
    metrics['cpu.steal_pct'] = (steal / total) * 100;
  }

  private memoryMetrics(text: string, metrics: Record<string, number>, errors: string[]): void {
    const { values: m, malformed } = parseMeminfo(text);
    this.noteMalformed(`${this.procRoot}/meminfo`, malformed, errors);
    const total = m.get('MemTotal');
    const free = m.get('MemFree');
    if (total === undefined || free === undefined || total <= 0) {
      errors.push(`${this.procRoot}/meminfo: no MemTotal/MemFree`);
    } else {
      const cached = (m.get('Buffers') ?? 0) + (m.get('Cached') ?? 0) + (m.get('SReclaimable') ?? 0);
      // Kernels before 3.14 have no MemAvailable; free + reclaimable caches is the usual estimate.
      const available = Math.min(total, m.get('MemAvailable') ?? free + cached);
      metrics['memory.total_bytes'] = total;
      metrics['memory.available_bytes'] = available;
      metrics['memory.used_bytes'] = total - available;
      metrics['memory.used_pct'] = ((total - available) / total) * 100;
      metrics['memory.free_bytes'] = free;
      metrics['memory.cached_bytes'] = cached;
    }
    const swapTotal = m.get('SwapTotal');
    const swapFree = m.get('SwapFree');
    if (swapTotal !== undefined && swapFree !== undefined) {
      metrics['swap.total_bytes'] = swapTotal;
      metrics['swap.used_bytes'] = Math.max(0, swapTotal - swapFree);
      if (swapTotal > 0) metrics['swap.used_pct'] = (Math.max(0, swapTotal - swapFree) / swapTotal) * 100;
    }
  }

  private diskMetrics(d: DiskStats, was: DiskStats, dtMs: number, metrics: Record<string, number>): void {
    const k = this.keysForDisk(d.name);
    const dtS = dtMs / 1000;
    const sr = delta(d.sectorsRead, was.sectorsRead);
    const sw = delta(d.sectorsWritten, was.sectorsWritten);
    const rc = delta(d.readsCompleted, was.readsCompleted);
    const wc = delta(d.writesCompleted, was.writesCompleted);
    const io = delta(d.ioMs, was.ioMs);
    const rms = delta(d.readMs, was.readMs);
    const wms = delta(d.writeMs, was.writeMs);
    if (sr !== undefined) metrics[k.readBytes] = (sr * 512) / dtS;
    if (sw !== undefined) metrics[k.writeBytes] = (sw * 512) / dtS;
    if (rc !== undefined) metrics[k.reads] = rc / dtS;
    if (wc !== undefined) metrics[k.writes] = wc / dtS;
    if (io !== undefined) metrics[k.busy] = Math.min(100, (io / dtMs) * 100);
    if (rc !== undefined && wc !== undefined && rms !== undefined && wms !== undefined && rc + wc > 0) {
      metrics[k.await] = (rms + wms) / (rc + wc);
    }
  }

  private netMetrics(n: NetDevStats, was: NetDevStats, dtS: number, metrics: Record<string, number>): void {
    const k = this.keysForNet(n.name);
    this.rate(metrics, k.rxBytes, n.rxBytes, was.rxBytes, dtS);
    this.rate(metrics, k.txBytes, n.txBytes, was.txBytes, dtS);
    this.rate(metrics, k.rxPackets, n.rxPackets, was.rxPackets, dtS);
    this.rate(metrics, k.txPackets, n.txPackets, was.txPackets, dtS);
    this.rate(metrics, k.rxErrors, n.rxErrors, was.rxErrors, dtS);
    this.rate(metrics, k.txErrors, n.txErrors, was.txErrors, dtS);
    this.rate(metrics, k.rxDrops, n.rxDrops, was.rxDrops, dtS);
    this.rate(metrics, k.txDrops, n.txDrops, was.txDrops, dtS);
  }

  private rate(metrics: Record<string, number>, key: string, cur: number | undefined, was: number | undefined, dtS: number): void {
    const d = delta(cur, was);
    if (d !== undefined) metrics[key] = d / dtS;
  }

  private wantDisk(name: string): boolean {
    if (this.excludeDevices.test(name)) return false;
    if (this.includePartitions) return true;
    // /sys/block lists whole devices only; it writes `/` in a name (cciss/c0d0) as `!`.
    if (this.wholeDisks) return this.wholeDisks.has(name.replaceAll('/', '!'));
    return !PARTITION_NAME.test(name);
  }

  private noteMalformed(file: string, n: number, errors: string[]): void {
    if (n > 0) errors.push(`${file}: ${n} malformed line${n === 1 ? '' : 's'} skipped`);
  }

  // ── reading ──────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * A /proc file's text, or the reason it could not be read. Read synchronously on purpose (a hot path): procfs
   * is generated from kernel memory and never waits on a disk, and a synchronous read costs a fraction of the
   * thread-pool round trips of fs.promises (measured with test/bench/collectd-comparison.bench.ts).
   */
  private readText(file: string): string | { error: string } {
    try {
      return this.readProc(file);
    } catch (err) {
      return { error: `${file}: ${errorCode(err)}` };
    }
  }

  /**
   * A /proc file's text through a descriptor held open (opened on first use): procfs makes a file afresh on a
   * read at offset 0, so positional reads replace readFileSync's open, fstat, reads and close (and its option
   * parsing). A read of a held descriptor that fails (closed under it: EBADF) is tried once more on a fresh one.
   */
  private readProc(file: string): string {
    let held = this.procFiles.get(file);
    // Outside the real /proc a file replaced at its path is opened afresh. The simplest correct test: one stat,
    // paid only there (tests, a copied tree); a real procfs file is never replaced.
    if (held && this.procCheckInode && statSync(file, { throwIfNoEntry: false })?.ino !== held.ino) {
      this.closeProc(file);
      held = undefined;
    }
    if (held) {
      try {
        return this.readWhole(held.fd);
      } catch {
        this.closeProc(file);
      }
    }
    const fd = openSync(file, 'r');
    try {
      const text = this.readWhole(fd);
      this.procFiles.set(file, { fd, ino: this.procCheckInode ? fstatSync(fd).ino : 0 });
      return text;
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
  }

  /**
   * The whole file from offset 0. Reads until one returns nothing: a seq_file (diskstats, net/dev, mountinfo)
   * returns about a page per read whatever the buffer, so a short read is not the end.
   */
  private readWhole(fd: number): string {
    let buf = this.procBuf;
    let n = 0;
    for (;;) {
      if (n === buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, n);
        buf = this.procBuf = bigger;
      }
      const got = readSync(fd, buf, n, buf.length - n, n);
      if (got === 0) return buf.toString('utf8', 0, n);
      n += got;
    }
  }

  private closeProc(file: string): void {
    const held = this.procFiles.get(file);
    if (!held) return;
    this.procFiles.delete(file);
    closeQuietly(held.fd);
  }

  /**
   * Mounts (re-parsed only when the mount table changed), then statfs of each selected one: synchronously for
   * local filesystems that cannot hang (SYNC_STATFS_TYPES), else asynchronously under a time limit.
   */
  private async readFilesystems(): Promise<{ results: FsResult[]; errors: string[] }> {
    const errors: string[] = [];
    let text: string | null = null;
    let parse = parseMountinfo;
    try {
      text = this.readProc(`${this.procRoot}/self/mountinfo`);
    } catch {
      try {
        text = this.readProc(`${this.procRoot}/mounts`);
        parse = parseProcMounts;
      } catch (err) {
        errors.push(`${this.procRoot}/self/mountinfo: ${errorCode(err)}`);
        return { results: [], errors };
      }
    }
    if (text !== this.mountText) {
      const { mounts, malformed } = parse(text);
      this.mountText = text;
      this.mountsMalformed = malformed;
      const sel = this.includeFilesystems ? { include: this.includeFilesystems } : {};
      this.mounts = selectFilesystems(mounts, sel);
      this.mountsSync = this.mounts.map((m) => this.statfsSync !== null && cannotHang(m.mountPoint, mounts));
    }
    this.noteMalformed(`${this.procRoot}/self/mountinfo`, this.mountsMalformed, errors);
    let pending = false;
    const results = this.mounts.map((m, i) => {
      if (this.mountsSync[i]) return this.statfsNow(m);
      pending = true;
      return this.statfsGuarded(m);
    });
    // Results in mount order either way; no promise at all when every mount is local.
    return { results: pending ? await Promise.all(results) : (results as FsResult[]), errors };
  }

  /** statfs of a local filesystem, synchronously: same results and error texts as statfsGuarded. */
  private statfsNow(mount: MountInfo): FsResult {
    const mp = mount.mountPoint;
    // Only if its type changed under a call still running; kept so that a mount is never asked twice at once.
    if (this.pendingStatfs.has(mp)) return statfsFailed(mount, null);
    try {
      return { mount, stat: this.statfsSync!(mp) };
    } catch (err) {
      return statfsFailed(mount, err);
    }
  }

  /**
   * statfs with a time limit. A hung network mount would otherwise hold the sample (and a libuv thread) for
   * ever; its call is left running, and the mount is skipped until that call returns.
   */
  private async statfsGuarded(mount: MountInfo): Promise<FsResult> {
    const mp = mount.mountPoint;
    if (this.pendingStatfs.has(mp)) return statfsFailed(mount, null);
    this.pendingStatfs.add(mp);
    const call = this.statfs(mp).finally(() => this.pendingStatfs.delete(mp));
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${this.statfsTimeoutMs} ms`)), this.statfsTimeoutMs);
      timer.unref();
    });
    try {
      return { mount, stat: await Promise.race([call, limit]) };
    } catch (err) {
      return statfsFailed(mount, err);
    } finally {
      clearTimeout(timer);
    }
  }

  private readSensors(): Promise<SensorResult[]> {
    return Promise.all(this.sensors.map((s) => this.readSensor(s)));
  }

  private async readSensor(sensor: SensorFile): Promise<SensorResult> {
    let text: string | null = await this.readOpenSensor(sensor.path);
    if (text === null) {
      try {
        text = await fsp.readFile(sensor.path, 'utf8');
      } catch (err) {
        // Gone (hot-unplugged): look again next sample rather than in 60.
        if (errorCode(err) === 'ENOENT') this.rediscoverSoon = true;
        return null;
      }
      await this.openSensor(sensor.path);
    }
    const value = sensorValue(sensor.kind, text);
    return value === null ? null : { sensor, value };
  }

  /**
   * The sensor file's text through the descriptor held open, or null when there is none, the path no longer
   * names the file held (removed, replaced), the read failed (a removed device's attribute: ENODEV) or the file
   * is longer than one read: the caller then reads it as before, by its path.
   */
  private async readOpenSensor(file: string): Promise<string | null> {
    const open = this.openSensors.get(file);
    if (!open) return null;
    // A lookup in the kernel's sysfs tree, never a driver call: cheap and it cannot hang on the hardware.
    if (statSync(file, { throwIfNoEntry: false })?.ino !== open.ino) {
      this.closeSensor(file);
      return null;
    }
    const n = await new Promise<number>((resolve) => readFd(open.fd, open.buf, 0, SENSOR_READ_BYTES, 0, (err, bytes) => resolve(err ? -1 : bytes)));
    if (n < 0 || n >= SENSOR_READ_BYTES) {
      this.closeSensor(file);
      return null;
    }
    return open.buf.toString('utf8', 0, n);
  }

  private async openSensor(file: string): Promise<void> {
    if (this.openSensors.has(file)) return;
    const fd = await new Promise<number>((resolve) => openFd(file, 'r', (err, fd) => resolve(err ? -1 : fd)));
    if (fd < 0) return;
    let ino: number | undefined;
    try {
      ino = fstatSync(fd).ino;
    } catch {
      // not held
    }
    // Held only while the sensor is (a rediscovery may have run meanwhile), and once.
    if (ino === undefined || this.openSensors.has(file) || !this.sensors.some((s) => s.path === file)) closeQuietly(fd);
    else this.openSensors.set(file, { fd, ino, buf: Buffer.allocUnsafe(SENSOR_READ_BYTES) });
  }

  private closeSensor(file: string): void {
    const open = this.openSensors.get(file);
    if (!open) return;
    this.openSensors.delete(file);
    closeQuietly(open.fd);
  }

  // ── discovery (every `rediscoverEvery` samples) ──────────────────────────────────────────────────────────

  private async discover(): Promise<void> {
    this.rediscoverSoon = false;
    const [thermal, hwmon, block] = await Promise.all([this.discoverThermal(), this.discoverHwmon(), this.discoverBlock()]);
    const seen = new Set<string>();
    const sensors: SensorFile[] = [];
    for (const s of [...hwmon, ...thermal]) {
      let metric = s.metric;
      for (let i = 2; seen.has(metric); i++) metric = s.metric.replace(/\.(celsius|rpm)$/, `_${i}.$1`);
      seen.add(metric);
      sensors.push({ ...s, metric });
    }
    this.sensors = sensors;
    for (const file of [...this.openSensors.keys()]) if (!sensors.some((s) => s.path === file)) this.closeSensor(file);
    this.wholeDisks = block;
  }

  private async discoverBlock(): Promise<Set<string> | null> {
    try {
      return new Set(await fsp.readdir(`${this.sysRoot}/block`));
    } catch {
      return null;
    }
  }

  private async discoverThermal(): Promise<SensorFile[]> {
    const dir = `${this.sysRoot}/class/thermal`;
    const zones = (await listDir(dir)).filter((n) => /^thermal_zone\d+$/.test(n)).sort(byIndex('thermal_zone'));
    const found = await Promise.all(
      zones.map(async (zone): Promise<SensorFile | null> => {
        const file = `${dir}/${zone}/temp`;
        if ((await readSensorOnce('temp', file)) === null) return null;
        const type = (await readSmall(`${dir}/${zone}/type`)) ?? 'zone';
        const n = zone.slice('thermal_zone'.length);
        return { path: file, kind: 'temp', metric: `temp.zone${n}_${metricLabel(type)}.celsius` };
      }),
    );
    return found.filter((s): s is SensorFile => s !== null);
  }

  private async discoverHwmon(): Promise<SensorFile[]> {
    const dir = `${this.sysRoot}/class/hwmon`;
    const chips = (await listDir(dir)).filter((n) => /^hwmon\d+$/.test(n)).sort(byIndex('hwmon'));
    const info = await Promise.all(
      chips.map(async (chip) => {
        const base = `${dir}/${chip}`;
        const name = (await readSmall(`${base}/name`)) ?? (await readSmall(`${base}/device/name`)) ?? chip;
        let device: string | null = null;
        try {
          device = path.basename(await fsp.readlink(`${base}/device`));
        } catch {
          // Virtual chips have no device link.
        }
        const inputs = (await listDir(base))
          .map((f) => /^(temp|fan)(\d+)_input$/.exec(f))
          .filter((m): m is RegExpExecArray => m !== null)
          .sort((a, b) => (a[1] === b[1] ? Number(a[2]) - Number(b[2]) : a[1]! < b[1]! ? 1 : -1));
        return { chip, base, name, device, inputs };
      }),
    );
    const nameCount = new Map<string, number>();
    for (const c of info) nameCount.set(c.name, (nameCount.get(c.name) ?? 0) + 1);

    const out: SensorFile[] = [];
    for (const c of info) {
      let chipLabel = c.name;
      if ((nameCount.get(c.name) ?? 0) > 1) {
        // Several chips named alike (two NVMe drives): tell them apart by their device, else by hwmon index.
        if (c.device) chipLabel = c.device.startsWith(c.name) ? c.device : `${c.name}_${c.device}`;
        else chipLabel = `${c.name}_${c.chip}`;
      }
      const found = await Promise.all(
        c.inputs.map(async (m): Promise<SensorFile | null> => {
          const kind = m[1] as 'temp' | 'fan';
          const file = `${c.base}/${m[0]}`;
          if ((await readSensorOnce(kind, file)) === null) return null;
          const label = (await readSmall(`${c.base}/${kind}${m[2]}_label`)) ?? `${kind}${m[2]}`;
          const metric = `${kind}.${metricLabel(chipLabel)}_${metricLabel(label)}.${kind === 'temp' ? 'celsius' : 'rpm'}`;
          return { path: file, kind, metric };
        }),
      );
      for (const s of found) if (s) out.push(s);
    }
    return out;
  }

  // ── metric keys, built once per device ───────────────────────────────────────────────────────────────────

  private keysForDisk(name: string): DiskKeys {
    let k = this.diskKeys.get(name);
    if (!k) {
      const p = `disk.${this.diskLabels.label(name, metricLabel(name))}.`;
      k = {
        readBytes: `${p}read_bytes_per_s`,
        writeBytes: `${p}write_bytes_per_s`,
        reads: `${p}reads_per_s`,
        writes: `${p}writes_per_s`,
        busy: `${p}busy_pct`,
        await: `${p}await_ms`,
      };
      this.diskKeys.set(name, k);
    }
    return k;
  }

  private keysForNet(name: string): NetKeys {
    let k = this.netKeys.get(name);
    if (!k) {
      const p = `net.${this.netLabels.label(name, metricLabel(name))}.`;
      k = {
        rxBytes: `${p}rx_bytes_per_s`,
        txBytes: `${p}tx_bytes_per_s`,
        rxPackets: `${p}rx_packets_per_s`,
        txPackets: `${p}tx_packets_per_s`,
        rxErrors: `${p}rx_errors_per_s`,
        txErrors: `${p}tx_errors_per_s`,
        rxDrops: `${p}rx_drops_per_s`,
        txDrops: `${p}tx_drops_per_s`,
      };
      this.netKeys.set(name, k);
    }
    return k;
  }

  private keysForFs(mountPoint: string): FsKeys {
    let k = this.fsKeys.get(mountPoint);
    if (!k) {
      const p = `fs.${this.fsLabels.label(mountPoint, mountLabel(mountPoint))}.`;
      k = {
        total: `${p}total_bytes`,
        used: `${p}used_bytes`,
        avail: `${p}avail_bytes`,
        usedPct: `${p}used_pct`,
        inodesPct: `${p}inodes_used_pct`,
      };
      this.fsKeys.set(mountPoint, k);
    }
    return k;
  }
}

/** A hwmon/thermal value: temperatures are millidegrees Celsius, fans RPM. Null when not a plausible number. */
export function sensorValue(kind: 'temp' | 'fan', text: string): number | null {
  const t = text.trim();
  if (!/^-?\d+$/.test(t)) return null;
  const raw = Number(t);
  if (kind === 'fan') return raw >= 0 ? raw : null;
  const c = raw / 1000;
  // Drivers report -128 °C, 255 °C and the like for "no sensor attached".
  return c > -100 && c < 250 ? c : null;
}

/** A statfs that failed, or (err null) was not made because the last call on that mount has not returned. */
function statfsFailed(mount: MountInfo, err: unknown): FsResult {
  return { mount, error: `statfs ${mount.mountPoint}: ${err === null ? 'an earlier call has not returned' : errorCode(err)}` };
}

/**
 * Whether statfs of this mount point can run synchronously: the filesystem mounted there, any mounted over it
 * at the same point and every one above it on the path are of SYNC_STATFS_TYPES.
 */
function cannotHang(mountPoint: string, mounts: readonly MountInfo[]): boolean {
  return mounts.every((m) => !isAtOrAbove(m.mountPoint, mountPoint) || SYNC_STATFS_TYPES.has(m.fsType));
}

function isAtOrAbove(dir: string, mountPoint: string): boolean {
  return dir === mountPoint || dir === '/' || mountPoint.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/** Synchronous, so that close() leaves nothing open behind it: closing a sysfs file never waits on a driver. */
function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed: nothing held
  }
}

function took(r: string | { error: string }, errors: string[]): string | null {
  if (typeof r === 'string') return r;
  errors.push(r.error);
  return null;
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch {
    return [];
  }
}

/** A short sysfs attribute, trimmed; null when missing, unreadable or empty. */
async function readSmall(file: string): Promise<string | null> {
  try {
    const s = (await fsp.readFile(file, 'utf8')).trim();
    return s === '' ? null : s;
  } catch {
    return null;
  }
}

/** Discovery keeps a sensor only if it reads as a plausible value now, so dead inputs do not error forever. */
async function readSensorOnce(kind: 'temp' | 'fan', file: string): Promise<number | null> {
  try {
    return sensorValue(kind, await fsp.readFile(file, 'utf8'));
  } catch {
    return null;
  }
}
