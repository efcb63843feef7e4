/**
 * Pure parsers for the Linux /proc text the host sampler reads: text in, numbers out. No I/O here.
 *
 * Every parser is total: a line it cannot make sense of is skipped and counted in `malformed`, never thrown.
 * Unknown but well-formed lines (a key a newer kernel added) are ignored and not counted as malformed.
 * Counters are parsed with `Number`, so values above 2^53 lose their lowest bits; the deltas the sampler
 * takes from them stay correct to far better than a part in a million.
 */

/** Cumulative CPU time in USER_HZ ticks, from one `cpu` line of /proc/stat. Fields an old kernel lacks are 0. */
export interface CpuTimes {
  user: number;
  nice: number;
  system: number;
  idle: number;
  iowait: number;
  irq: number;
  softirq: number;
  steal: number;
  /** Already included in `user` by the kernel; kept apart so totals do not count it twice. */
  guest: number;
  /** Already included in `nice`. */
  guestNice: number;
}

export interface ProcStat {
  /** The aggregate `cpu` line; null when absent or malformed. */
  cpu: CpuTimes | null;
  /** Number of well-formed `cpuN` lines: the CPUs online. */
  cpuCount: number;
  /** `ctxt`: context switches since boot. */
  contextSwitches?: number;
  /** First number of `intr`: interrupts serviced since boot. */
  interrupts?: number;
  /** `processes`: forks (processes and threads created) since boot. */
  forks?: number;
  /** `procs_running`: runnable tasks now. */
  procsRunning?: number;
  /** `procs_blocked`: tasks blocked on I/O now. */
  procsBlocked?: number;
  malformed: number;
}

export interface LoadAvg {
  load1: number;
  load5: number;
  load15: number;
  /** Runnable scheduling entities (the number before the slash). */
  runnable: number;
  /** All scheduling entities, threads included (the number after the slash). */
  entities: number;
}

/** Block-device counters from one /proc/diskstats line (kernel Documentation/admin-guide/iostats.rst). */
export interface DiskStats {
  major: number;
  minor: number;
  name: string;
  readsCompleted: number;
  readsMerged: number;
  /** Always 512-byte units, whatever the device's sector size. */
  sectorsRead: number;
  readMs: number;
  writesCompleted: number;
  writesMerged: number;
  sectorsWritten: number;
  writeMs: number;
  inFlight: number;
  /** Milliseconds the device had I/O in flight: the basis of busy %. */
  ioMs: number;
  weightedIoMs: number;
}

/** Interface counters from one /proc/net/dev line. */
export interface NetDevStats {
  name: string;
  rxBytes: number;
  rxPackets: number;
  rxErrors: number;
  rxDrops: number;
  rxFifo: number;
  rxFrame: number;
  rxCompressed: number;
  rxMulticast: number;
  txBytes: number;
  txPackets: number;
  txErrors: number;
  txDrops: number;
  txFifo: number;
  txCollisions: number;
  txCarrier: number;
  txCompressed: number;
}

/** One mount, from /proc/self/mountinfo (or, with less detail, /proc/mounts). */
export interface MountInfo {
  /** `major:minor` of the filesystem's device; null when the source was /proc/mounts, which lacks it. */
  device: string | null;
  /** The directory of the filesystem that is mounted here: `/` for a whole filesystem, else a bind mount. */
  root: string;
  mountPoint: string;
  fsType: string;
  /** The mount source, e.g. `/dev/sda1`, `tmpfs`, `server:/export`. */
  source: string;
  readOnly: boolean;
}

const COUNT = /^\d+$/;
const DECIMAL = /^\d+(?:\.\d+)?$/;
const WS = /\s+/;
/** `Key:   123 kB` or `Key: 123`: the key (up to the first colon, not empty), a count and an optional `kB`. */
const MEMINFO_LINE = /^([^:]+):\s*(\d+)(?:\s+(kB))?\s*$/;
/** A line's first field and its second, if any: what `fields(line)[0]` and `[1]` are, without splitting the rest. */
const HEAD = /^\s*(\S+)(?:\s+(\S+))?/;

/** A non-negative integer token, or NaN. Unlike `Number`, an empty or signed token is not a number here. */
function count(token: string | undefined): number {
  return token !== undefined && COUNT.test(token) ? Number(token) : NaN;
}

function fields(line: string): string[] {
  const t = line.trim();
  return t === '' ? [] : t.split(WS);
}

function lines(text: string): string[] {
  return text.split('\n');
}

/** Parses the numbers of a `cpu`/`cpuN` line (after the label). Needs at least user, nice, system, idle. */
function cpuTimes(f: string[]): CpuTimes | null {
  const n: number[] = [];
  for (let i = 1; i < f.length && i <= 10; i++) {
    const v = count(f[i]);
    if (Number.isNaN(v)) return null;
    n.push(v);
  }
  if (n.length < 4) return null;
  return {
    user: n[0] ?? 0,
    nice: n[1] ?? 0,
    system: n[2] ?? 0,
    idle: n[3] ?? 0,
    iowait: n[4] ?? 0,
    irq: n[5] ?? 0,
    softirq: n[6] ?? 0,
    steal: n[7] ?? 0,
    guest: n[8] ?? 0,
    guestNice: n[9] ?? 0,
  };
}

/** Sum of the ticks that make up wall time: guest time is already inside user/nice, so it is left out. */
export function cpuTotal(t: CpuTimes): number {
  return t.user + t.nice + t.system + t.idle + t.iowait + t.irq + t.softirq + t.steal;
}

/** /proc/stat: the aggregate CPU line, the CPU count, and the scalar counters the sampler uses. */
export function parseProcStat(text: string): ProcStat {
  const out: ProcStat = { cpu: null, cpuCount: 0, malformed: 0 };
  for (const line of lines(text)) {
    // The first two fields only: `intr` lists every IRQ (hundreds to thousands of numbers, one per IRQ) and only
    // its total is used, so splitting that line was most of this parser's time.
    const head = HEAD.exec(line);
    if (head === null) continue;
    const key = head[1]!;
    if (key === 'cpu') {
      const t = cpuTimes(fields(line));
      if (t) out.cpu = t;
      else out.malformed++;
    } else if (key.startsWith('cpu')) {
      if (COUNT.test(key.slice(3)) && cpuTimes(fields(line))) out.cpuCount++;
      else out.malformed++;
    } else if (key === 'ctxt' || key === 'intr' || key === 'processes' || key === 'procs_running' || key === 'procs_blocked') {
      const v = count(head[2]);
      if (Number.isNaN(v)) {
        out.malformed++;
        continue;
      }
      if (key === 'ctxt') out.contextSwitches = v;
      else if (key === 'intr') out.interrupts = v;
      else if (key === 'processes') out.forks = v;
      else if (key === 'procs_running') out.procsRunning = v;
      else out.procsBlocked = v;
    }
    // btime, softirq and anything newer: not used.
  }
  return out;
}

/** /proc/loadavg: `0.52 1.56 1.20 1/83 10869`. Null (and malformed 1) when the text is not that shape. */
export function parseLoadavg(text: string): { value: LoadAvg | null; malformed: number } {
  const f = fields(text);
  const [l1, l5, l15, sched] = f;
  const slash = sched?.indexOf('/') ?? -1;
  const value: LoadAvg = {
    load1: l1 !== undefined && DECIMAL.test(l1) ? Number(l1) : NaN,
    load5: l5 !== undefined && DECIMAL.test(l5) ? Number(l5) : NaN,
    load15: l15 !== undefined && DECIMAL.test(l15) ? Number(l15) : NaN,
    runnable: slash > 0 ? count(sched?.slice(0, slash)) : NaN,
    entities: slash > 0 ? count(sched?.slice(slash + 1)) : NaN,
  };
  if (Object.values(value).some(Number.isNaN)) return { value: null, malformed: 1 };
  return { value, malformed: 0 };
}

/**
 * /proc/meminfo: key → value, with `kB` values converted to bytes and unit-less values (HugePages_Total)
 * kept as they are.
 */
export function parseMeminfo(text: string): { values: Map<string, number>; malformed: number } {
  const values = new Map<string, number>();
  let malformed = 0;
  for (const line of lines(text)) {
    // One match per line instead of a split and a test per field (every sample reads some 50 lines).
    const m = MEMINFO_LINE.exec(line);
    if (m === null) {
      if (line.trim() !== '') malformed++;
      continue;
    }
    const v = Number(m[2]);
    values.set(m[1]!.trim(), m[3] === undefined ? v : v * 1024);
  }
  return { values, malformed };
}

/**
 * /proc/diskstats. Needs the 14 fields every kernel since 2.6.25 writes; the discard (4.18) and flush (5.5)
 * fields that follow are accepted and not used.
 */
export function parseDiskstats(text: string): { devices: DiskStats[]; malformed: number } {
  const devices: DiskStats[] = [];
  let malformed = 0;
  for (const line of lines(text)) {
    const f = fields(line);
    if (f.length === 0) continue;
    const name = f[2];
    const n: number[] = [];
    for (let i = 0; i < 14 && i < f.length; i++) if (i !== 2) n.push(count(f[i]));
    if (f.length < 14 || name === undefined || n.some(Number.isNaN) || f.slice(14).some((x) => !COUNT.test(x))) {
      malformed++;
      continue;
    }
    const [major, minor, rc, rm, sr, rms, wc, wm, sw, wms, inf, io, wio] = n as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    devices.push({
      major,
      minor,
      name,
      readsCompleted: rc,
      readsMerged: rm,
      sectorsRead: sr,
      readMs: rms,
      writesCompleted: wc,
      writesMerged: wm,
      sectorsWritten: sw,
      writeMs: wms,
      inFlight: inf,
      ioMs: io,
      weightedIoMs: wio,
    });
  }
  return { devices, malformed };
}

/**
 * /proc/net/dev. The two header lines are recognised and skipped. The interface name is split at the first
 * colon, since a large byte count is written right after it with no space (`eth0:1234567890 …`); Linux does
 * not allow `:` in an interface name.
 */
export function parseNetDev(text: string): { interfaces: NetDevStats[]; malformed: number } {
  const interfaces: NetDevStats[] = [];
  let malformed = 0;
  for (const line of lines(text)) {
    if (line.trim() === '' || line.includes('|')) continue;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim() : '';
    const f = colon > 0 ? fields(line.slice(colon + 1)) : [];
    const n = f.map(count);
    if (name === '' || n.length < 16 || n.some(Number.isNaN)) {
      malformed++;
      continue;
    }
    const v = n as [number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number];
    interfaces.push({
      name,
      rxBytes: v[0],
      rxPackets: v[1],
      rxErrors: v[2],
      rxDrops: v[3],
      rxFifo: v[4],
      rxFrame: v[5],
      rxCompressed: v[6],
      rxMulticast: v[7],
      txBytes: v[8],
      txPackets: v[9],
      txErrors: v[10],
      txDrops: v[11],
      txFifo: v[12],
      txCollisions: v[13],
      txCarrier: v[14],
      txCompressed: v[15],
    });
  }
  return { interfaces, malformed };
}

/** Undoes the octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash) of mount fields. */
export function unescapeMountField(s: string): string {
  return s.includes('\\') ? s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) : s;
}

/**
 * /proc/self/mountinfo:
 * `36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
 * (id, parent id, major:minor, root, mount point, options, optional fields up to `-`, type, source, super options).
 */
export function parseMountinfo(text: string): { mounts: MountInfo[]; malformed: number } {
  const mounts: MountInfo[] = [];
  let malformed = 0;
  for (const line of lines(text)) {
    const f = fields(line);
    if (f.length === 0) continue;
    const sep = f.indexOf('-', 6);
    const [id, parent, device, root, mountPoint, options] = f;
    const fsType = f[sep + 1];
    const source = f[sep + 2];
    if (
      sep < 0 ||
      !COUNT.test(id ?? '') ||
      !COUNT.test(parent ?? '') ||
      !/^\d+:\d+$/.test(device ?? '') ||
      root === undefined ||
      mountPoint === undefined ||
      options === undefined ||
      fsType === undefined ||
      source === undefined
    ) {
      malformed++;
      continue;
    }
    mounts.push({
      device: device ?? null,
      root: unescapeMountField(root),
      mountPoint: unescapeMountField(mountPoint),
      fsType,
      source: unescapeMountField(source),
      readOnly: options.split(',').includes('ro'),
    });
  }
  return { mounts, malformed };
}

/** /proc/mounts (the fstab-like format), for systems without mountinfo. Device numbers are not known. */
export function parseProcMounts(text: string): { mounts: MountInfo[]; malformed: number } {
  const mounts: MountInfo[] = [];
  let malformed = 0;
  for (const line of lines(text)) {
    const f = fields(line);
    if (f.length === 0) continue;
    const [source, mountPoint, fsType, options] = f;
    if (f.length < 4 || source === undefined || mountPoint === undefined || fsType === undefined || options === undefined) {
      malformed++;
      continue;
    }
    mounts.push({
      device: null,
      root: '/',
      mountPoint: unescapeMountField(mountPoint),
      fsType,
      source: unescapeMountField(source),
      readOnly: options.split(',').includes('ro'),
    });
  }
  return { mounts, malformed };
}

/** Filesystem types that hold no disk space of their own (memory, kernel interfaces, images). */
export const PSEUDO_FS_TYPES: ReadonlySet<string> = new Set([
  'proc',
  'sysfs',
  'devtmpfs',
  'devpts',
  'tmpfs',
  'ramfs',
  'rootfs',
  'cgroup',
  'cgroup2',
  'cpuset',
  'securityfs',
  'debugfs',
  'tracefs',
  'configfs',
  'fusectl',
  'mqueue',
  'hugetlbfs',
  'pstore',
  'bpf',
  'binfmt_misc',
  'autofs',
  'rpc_pipefs',
  'nsfs',
  'efivarfs',
  'selinuxfs',
  'nfsd',
  'overlay',
  'aufs',
  // Read-only images are always 100 % full: snaps, live media, AppImages.
  'squashfs',
  'iso9660',
  'udf',
  'erofs',
  'fuse.lxcfs',
  'fuse.gvfsd-fuse',
  'fuse.portal',
  'fuse.snapfuse',
  'fuse.xdg-document-portal',
]);

/**
 * Network filesystems. A hung server blocks statfs in the libuv thread pool, so they are skipped unless asked
 * for by mount point.
 */
export const NETWORK_FS_TYPES: ReadonlySet<string> = new Set([
  'nfs',
  'nfs4',
  'cifs',
  'smb3',
  'smbfs',
  'ncpfs',
  'afs',
  'ceph',
  'glusterfs',
  'fuse.glusterfs',
  'fuse.sshfs',
  'fuse.rclone',
  'fuse.s3fs',
  'lustre',
  'gpfs',
  'beegfs',
  '9p',
  'fuse.cephfs',
]);

/** Single files a container runtime bind-mounts from the host disk; the disk is better named by another mount. */
const CONTAINER_FILE_MOUNTS: ReadonlySet<string> = new Set(['/etc/hosts', '/etc/hostname', '/etc/resolv.conf', '/dev/termination-log', '/run/.containerenv']);

export interface FilesystemSelection {
  /** Mount points to report. When given, only these are reported (whatever their type) and the rest skipped. */
  include?: readonly string[];
}

/**
 * The mounts worth a disk-usage metric: real filesystems, one mount per filesystem.
 *
 * - Pseudo and image filesystems (tmpfs, proc, cgroup, squashfs snaps, …) and network filesystems are skipped.
 * - `overlay` is kept only when it is `/` (the root of a container); Docker's per-container overlays elsewhere
 *   all report the same backing disk.
 * - Several mounts of one filesystem (bind mounts, btrfs subvolumes, a container's /etc/hosts) share a device
 *   number; the one that mounts the filesystem's root is kept, then the shortest mount point.
 * - The files a container runtime bind-mounts (/etc/hosts, /etc/resolv.conf, …) are not used to name a disk:
 *   in a container the host disk then shows up under a volume's mount point, or not at all.
 */
export function selectFilesystems(mounts: readonly MountInfo[], sel: FilesystemSelection = {}): MountInfo[] {
  const include = sel.include ? new Set(sel.include) : null;
  const byDevice = new Map<string, MountInfo>();
  for (const m of mounts) {
    if (include) {
      if (!include.has(m.mountPoint)) continue;
    } else {
      const overlayRoot = (m.fsType === 'overlay' || m.fsType === 'aufs') && m.mountPoint === '/';
      if (!overlayRoot && (PSEUDO_FS_TYPES.has(m.fsType) || NETWORK_FS_TYPES.has(m.fsType))) continue;
      if (m.source === 'none' && !overlayRoot) continue;
      if (m.root !== '/' && CONTAINER_FILE_MOUNTS.has(m.mountPoint)) continue;
    }
    const key = m.device ?? `${m.fsType}:${m.source}`;
    const prev = byDevice.get(key);
    if (!prev || better(m, prev)) byDevice.set(key, m);
  }
  // Mount order, which puts / first.
  const kept = new Set(byDevice.values());
  return mounts.filter((m) => kept.has(m));
}

function better(a: MountInfo, b: MountInfo): boolean {
  if ((a.root === '/') !== (b.root === '/')) return a.root === '/';
  return a.mountPoint.length < b.mountPoint.length;
}

/**
 * A name made safe for one segment of a flat metric key: lowercase, `[a-z0-9_-]` only, runs of anything else
 * become one `_`. Never empty.
 */
export function metricLabel(name: string): string {
  const s = name
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return s === '' ? 'unnamed' : s;
}

/** The label of a mount point: `/` → `root`, `/var/lib/docker` → `var_lib_docker`. */
export function mountLabel(mountPoint: string): string {
  return mountPoint === '/' ? 'root' : metricLabel(mountPoint);
}

/** Hands out labels, adding `_2`, `_3`, … when two different names sanitise to the same label. */
export class LabelAllocator {
  private readonly byName = new Map<string, string>();
  private readonly used = new Set<string>();

  label(name: string, base: string): string {
    const known = this.byName.get(name);
    if (known !== undefined) return known;
    let label = base;
    for (let i = 2; this.used.has(label); i++) label = `${base}_${i}`;
    this.used.add(label);
    this.byName.set(name, label);
    return label;
  }
}
