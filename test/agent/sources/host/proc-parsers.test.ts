import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
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
  unescapeMountField,
} from '../../../../agent/src/sources/host/proc-parsers.js';

const fixture = (rel: string) => readFileSync(new URL(`./fixtures/${rel}`, import.meta.url), 'utf8');
const kB = 1024;

describe('parseProcStat', () => {
  it('reads the aggregate cpu line, the CPU count and the counters of the recorded /proc/stat', () => {
    expect(parseProcStat(fixture('proc-t0/stat'))).toEqual({
      // cpu  191082 0 6553 423032 370 0 89 104 0 0
      cpu: { user: 191082, nice: 0, system: 6553, idle: 423032, iowait: 370, irq: 0, softirq: 89, steal: 104, guest: 0, guestNice: 0 },
      cpuCount: 2,
      contextSwitches: 1153685,
      interrupts: 881114,
      forks: 11960,
      procsRunning: 3,
      procsBlocked: 0,
      malformed: 0,
    });
    const t1 = parseProcStat(fixture('proc-t1/stat'));
    expect(t1.cpu).toEqual({ user: 191179, nice: 0, system: 6560, idle: 423120, iowait: 371, irq: 0, softirq: 90, steal: 104, guest: 0, guestNice: 0 });
    expect([t1.contextSwitches, t1.interrupts, t1.forks, t1.procsRunning]).toEqual([1153903, 881523, 11978, 2]);
  });

  it('accepts the 4-field cpu line of old kernels, filling the missing fields with 0', () => {
    const s = parseProcStat('cpu 10 20 30 40\ncpu0 10 20 30 40\n');
    expect(s.cpu).toEqual({ user: 10, nice: 20, system: 30, idle: 40, iowait: 0, irq: 0, softirq: 0, steal: 0, guest: 0, guestNice: 0 });
    expect(s.cpuCount).toBe(1);
    expect(s.malformed).toBe(0);
  });

  it('skips and counts malformed lines, keeps the good ones, and ignores unknown keys', () => {
    const s = parseProcStat(fixture('malformed/stat'));
    // cpu2 with a letter, cpu3 with 3 numbers, a bare `cpu`, `ctxt lots`, `procs_running -1`.
    expect(s.malformed).toBe(5);
    expect(s.cpu?.user).toBe(191082);
    expect(s.cpuCount).toBe(2);
    expect(s.contextSwitches).toBe(1153685);
    expect(s.forks).toBe(11960);
    expect(s.procsBlocked).toBe(0);
    expect(s.procsRunning).toBeUndefined();
  });

  it('never throws, whatever the text', () => {
    for (const t of ['', '\n\n', 'cpu', 'cpu -1 -2 -3 -4', '\u0000\u0001', 'cpu 1 2 3 4 5 6 7 8 9 10 11 12']) {
      expect(() => parseProcStat(t)).not.toThrow();
    }
    expect(parseProcStat('').cpu).toBeNull();
  });

  it('cpuTotal leaves out guest time, which the kernel already counts in user and nice', () => {
    expect(cpuTotal({ user: 100, nice: 10, system: 20, idle: 300, iowait: 5, irq: 1, softirq: 2, steal: 3, guest: 50, guestNice: 5 })).toBe(441);
  });
});

describe('parseLoadavg', () => {
  it('reads the recorded /proc/loadavg', () => {
    // 0.32 0.98 1.10 3/82 11988
    expect(parseLoadavg(fixture('proc-t0/loadavg'))).toEqual({
      value: { load1: 0.32, load5: 0.98, load15: 1.1, runnable: 3, entities: 82 },
      malformed: 0,
    });
  });

  it('gives null and one malformed line for text of another shape', () => {
    expect(parseLoadavg(fixture('malformed/loadavg'))).toEqual({ value: null, malformed: 1 });
    expect(parseLoadavg('')).toEqual({ value: null, malformed: 1 });
    expect(parseLoadavg('1 2 3 4 5')).toEqual({ value: null, malformed: 1 });
  });
});

describe('parseMeminfo', () => {
  it('reads every line of the recorded /proc/meminfo, kB as bytes and counts as they are', () => {
    const { values, malformed } = parseMeminfo(fixture('proc-t0/meminfo'));
    expect(malformed).toBe(0);
    expect(values.size).toBe(54);
    expect(values.get('MemTotal')).toBe(24684092 * kB);
    expect(values.get('MemFree')).toBe(24334612 * kB);
    expect(values.get('MemAvailable')).toBe(24327936 * kB);
    expect(values.get('SReclaimable')).toBe(122448 * kB);
    expect(values.get('SwapTotal')).toBe(0);
    expect(values.get('Active(anon)')).toBeGreaterThan(0);
    expect(values.get('HugePages_Total')).toBe(0);
    expect(values.get('Hugepagesize')).toBe(2048 * kB);
  });

  it('skips and counts malformed lines', () => {
    const { values, malformed } = parseMeminfo(fixture('malformed/meminfo'));
    // no colon, `twelve`, unit MB, empty key, a third field.
    expect(malformed).toBe(5);
    expect([...values.keys()]).toEqual(['MemTotal', 'MemFree', 'MemAvailable', 'Buffers', 'Cached', 'HugePages_Total', 'SwapTotal', 'SwapFree']);
    expect(values.get('SwapFree')).toBe(1048576 * kB);
  });
});

describe('parseDiskstats', () => {
  it('reads the recorded /proc/diskstats (20 fields a line on this kernel)', () => {
    const { devices, malformed } = parseDiskstats(fixture('proc-t0/diskstats'));
    expect(malformed).toBe(0);
    expect(devices.map((d) => d.name)).toEqual(['loop0', 'loop1', 'loop2', 'loop3', 'loop4', 'loop5', 'loop6', 'loop7', 'vda', 'zram0']);
    // 254 0 vda 78278 12824 5296954 58071 40461 26088 3346360 9777 0 7756 68511 5532 65 244080 516 3268 146
    expect(devices[8]).toEqual({
      major: 254,
      minor: 0,
      name: 'vda',
      readsCompleted: 78278,
      readsMerged: 12824,
      sectorsRead: 5296954,
      readMs: 58071,
      writesCompleted: 40461,
      writesMerged: 26088,
      sectorsWritten: 3346360,
      writeMs: 9777,
      inFlight: 0,
      ioMs: 7756,
      weightedIoMs: 68511,
    });
  });

  it('reads 14-, 18- and 20-field lines alike', () => {
    const { devices, malformed } = parseDiskstats(fixture('synthetic/diskstats-server'));
    expect(malformed).toBe(0);
    expect(devices).toHaveLength(10);
    const mmc = devices.find((d) => d.name === 'mmcblk0');
    expect(mmc).toMatchObject({ major: 179, minor: 0, readsCompleted: 4211, sectorsWritten: 2904, ioMs: 2408, weightedIoMs: 3731 });
  });

  it('skips and counts malformed lines', () => {
    const { devices, malformed } = parseDiskstats(fixture('malformed/diskstats'));
    // 7-field partition line, a letter, `garbage`, a negative trailing field.
    expect(malformed).toBe(4);
    expect(devices.map((d) => d.name)).toEqual(['vda']);
  });
});

describe('parseNetDev', () => {
  it('reads the recorded /proc/net/dev, skipping the two header lines', () => {
    const { interfaces, malformed } = parseNetDev(fixture('proc-t0/net/dev'));
    expect(malformed).toBe(0);
    expect(interfaces.map((i) => i.name)).toEqual(['lo', 'ifb0', 'ifb1', 'eth0']);
    // eth0: 314356525 8958 0 0 0 0 0 0 609680 5902 0 0 0 0 0 0
    expect(interfaces[3]).toEqual({
      name: 'eth0',
      rxBytes: 314356525,
      rxPackets: 8958,
      rxErrors: 0,
      rxDrops: 0,
      rxFifo: 0,
      rxFrame: 0,
      rxCompressed: 0,
      rxMulticast: 0,
      txBytes: 609680,
      txPackets: 5902,
      txErrors: 0,
      txDrops: 0,
      txFifo: 0,
      txCollisions: 0,
      txCarrier: 0,
      txCompressed: 0,
    });
  });

  it('splits a name from a byte count written against its colon, and skips and counts malformed lines', () => {
    const { interfaces, malformed } = parseNetDev(fixture('malformed/net-dev'));
    // no colon, 3 numbers, a negative number, an empty name.
    expect(malformed).toBe(4);
    expect(interfaces.map((i) => i.name)).toEqual(['eth0', 'enp3s0']);
    // enp3s0:123456789012 70000 1 2 0 0 0 15 987654321 60000 0 3 0 0 0 0
    expect(interfaces[1]).toMatchObject({
      rxBytes: 123456789012,
      rxPackets: 70000,
      rxErrors: 1,
      rxDrops: 2,
      rxMulticast: 15,
      txBytes: 987654321,
      txPackets: 60000,
      txDrops: 3,
    });
  });
});

describe('mount tables', () => {
  it('reads the recorded mountinfo and selects the one real filesystem of this VM', () => {
    const { mounts, malformed } = parseMountinfo(fixture('proc-t0/self/mountinfo'));
    expect(malformed).toBe(0);
    expect(mounts).toHaveLength(20);
    // 27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,…
    expect(mounts.find((m) => m.mountPoint === '/')).toEqual({
      device: '254:0',
      root: '/',
      mountPoint: '/',
      fsType: 'ext4',
      source: '/dev/vda',
      readOnly: false,
    });
    // The rest are proc, sysfs, devtmpfs, tmpfs, devpts, cgroup and cgroup2.
    expect(selectFilesystems(mounts).map((m) => m.mountPoint)).toEqual(['/']);
  });

  it('on a server: skips pseudo, image, overlay and network filesystems and keeps one mount per device', () => {
    const { mounts, malformed } = parseMountinfo(fixture('synthetic/mountinfo-server'));
    expect(malformed).toBe(0);
    expect(mounts.find((m) => m.device === '7:0')?.readOnly).toBe(true);
    const picked = selectFilesystems(mounts);
    // /var/lib/docker is a bind of /data's device, /home a subvolume of /srv's btrfs, /mnt/nas is NFS.
    expect(picked.map((m) => m.mountPoint)).toEqual(['/', '/boot/efi', '/data', '/srv', '/mnt/usb stick']);
  });

  it('reports exactly the mount points asked for, network ones included', () => {
    const { mounts } = parseMountinfo(fixture('synthetic/mountinfo-server'));
    expect(selectFilesystems(mounts, { include: ['/home', '/mnt/nas', '/not-mounted'] }).map((m) => m.mountPoint)).toEqual(['/mnt/nas', '/home']);
  });

  it('in a container: keeps the overlay root and names the host disk by the data volume, not /etc/hosts', () => {
    const { mounts } = parseMountinfo(fixture('synthetic/mountinfo-container'));
    expect(selectFilesystems(mounts).map((m) => m.mountPoint)).toEqual(['/', '/var/lib/forewarn']);
  });

  it('skips and counts malformed mountinfo lines', () => {
    const { mounts, malformed } = parseMountinfo(fixture('malformed/mountinfo'));
    expect(malformed).toBe(3);
    expect(mounts.map((m) => m.mountPoint)).toEqual(['/', '/mnt/ok']);
  });

  it('reads /proc/mounts, deduplicating by source where device numbers are unknown', () => {
    const text = [
      '/dev/sda2 / ext4 rw,relatime 0 0',
      'proc /proc proc rw 0 0',
      '/dev/sda2 /var/lib/docker ext4 rw,relatime 0 0',
      '/dev/sdb1 /mnt/my\\040disk xfs ro 0 0',
      'broken line',
    ].join('\n');
    const { mounts, malformed } = parseProcMounts(text);
    expect(malformed).toBe(1);
    expect(mounts[3]).toEqual({ device: null, root: '/', mountPoint: '/mnt/my disk', fsType: 'xfs', source: '/dev/sdb1', readOnly: true });
    expect(selectFilesystems(mounts).map((m) => m.mountPoint)).toEqual(['/', '/mnt/my disk']);
  });

  it('undoes octal escapes', () => {
    expect(unescapeMountField('/a\\040b\\011c\\134d')).toBe('/a b\tc\\d');
  });
});

describe('metric labels', () => {
  it('makes names safe for one key segment', () => {
    expect(metricLabel('Package id 0')).toBe('package_id_0');
    expect(metricLabel('eth0.100')).toBe('eth0_100');
    expect(metricLabel('dm-0')).toBe('dm-0');
    expect(metricLabel('cciss/c0d0')).toBe('cciss_c0d0');
    expect(metricLabel('...')).toBe('unnamed');
    expect(mountLabel('/')).toBe('root');
    expect(mountLabel('/var/lib/docker')).toBe('var_lib_docker');
    expect(mountLabel('/mnt/usb stick')).toBe('mnt_usb_stick');
  });

  it('tells apart different names that sanitise alike, and is stable per name', () => {
    const a = new LabelAllocator();
    expect(a.label('/var/lib', 'var_lib')).toBe('var_lib');
    expect(a.label('/var_lib', 'var_lib')).toBe('var_lib_2');
    expect(a.label('/var/lib', 'var_lib')).toBe('var_lib');
    expect(a.label('/root', mountLabel('/root'))).toBe('root');
    expect(a.label('/', mountLabel('/'))).toBe('root_2');
  });
});
