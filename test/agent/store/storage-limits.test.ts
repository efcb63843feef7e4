import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import {
  assessStorageLimits,
  createStorageDir,
  formatBytes,
  nearestExistingDir,
  storageDirProblem,
  virtualFileSystemAt,
} from '../../../agent/src/store/storage-limits.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { tmpfsForTest } from '../../helpers/tmpfs.js';

const cleanup = cleanupAfterEach();
const MiB = 1024 * 1024;
const DEFAULTS = { maxBytes: 1024 * MiB, minFreeBytes: 256 * MiB };
const NOT_SET = { maxBytes: false, minFreeBytes: false };

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-limits-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A real 16 MiB file system: a tmpfs mounted for the test (root only), unmounted after it. */
const smallFileSystem = (ctx: TestContext): string => tmpfsForTest(ctx, 16, cleanup);

const procIsProc = (() => {
  try {
    return statfsSync('/proc').type === 0x9fa0;
  } catch {
    return false;
  }
})();

describe('assessStorageLimits', () => {
  it('clamps a default floor of more than half the file system to 10% of it, and says so', () => {
    const a = assessStorageLimits('/data', DEFAULTS, NOT_SET, { fsBytes: 64 * MiB });
    expect(a.fsBytes).toBe(64 * MiB);
    expect(a.effective.minFreeBytes).toBe(Math.floor(6.4 * MiB));
    expect(a.effective.maxBytes).toBe(DEFAULTS.maxBytes);
    const floor = a.problems.find((p) => p.path === 'storage.minFreeBytes');
    expect(floor).toMatchObject({ severity: 'clamped' });
    expect(floor!.message).toMatch(/default 256 MiB is more than half of the 64 MiB file system .*clamped to 6\.4 MiB \(10%/);
  });

  it('refuses an explicit floor of more than half the file system, and changes nothing', () => {
    const a = assessStorageLimits('/data', { maxBytes: 0, minFreeBytes: 40 * MiB }, { maxBytes: false, minFreeBytes: true }, { fsBytes: 64 * MiB });
    expect(a.effective).toEqual({ maxBytes: 0, minFreeBytes: 40 * MiB });
    expect(a.problems).toHaveLength(1);
    expect(a.problems[0]).toMatchObject({ path: 'storage.minFreeBytes', severity: 'error' });
    expect(a.problems[0]!.message).toMatch(/^40 MiB is more than half of the 64 MiB file system .*at most 32 MiB/);
  });

  it('accepts a floor of exactly half, and no floor at all', () => {
    expect(
      assessStorageLimits('/data', { maxBytes: 0, minFreeBytes: 32 * MiB }, { maxBytes: true, minFreeBytes: true }, { fsBytes: 64 * MiB }).problems,
    ).toEqual([]);
    expect(assessStorageLimits('/data', { maxBytes: 0, minFreeBytes: 0 }, NOT_SET, { fsBytes: 1 * MiB }).problems).toEqual([]);
  });

  it('warns, explicit or not, about a quota larger than the file system: the floor governs instead', () => {
    for (const explicit of [NOT_SET, { maxBytes: true, minFreeBytes: false }]) {
      const a = assessStorageLimits('/data', { maxBytes: 1024 * MiB, minFreeBytes: 8 * MiB }, explicit, { fsBytes: 64 * MiB });
      expect(a.problems).toEqual([
        {
          path: 'storage.maxBytes',
          severity: 'warning',
          message: expect.stringMatching(/^1 GiB is larger than the 64 MiB file system .*floor \(storage.minFreeBytes, 8 MiB\) governs instead/),
        },
      ]);
      expect(a.effective.maxBytes).toBe(1024 * MiB);
    }
    // Both at once with the defaults: the warning names the clamped floor, the one that governs.
    const both = assessStorageLimits('/data', DEFAULTS, NOT_SET, { fsBytes: 64 * MiB });
    expect(both.problems.map((p) => p.severity)).toEqual(['clamped', 'warning']);
    expect(both.problems[1]!.message).toContain('6.4 MiB');
  });

  it('judges nothing when the file system size is unknown', () => {
    expect(assessStorageLimits('/data', DEFAULTS, NOT_SET, { fsBytes: null })).toEqual({ effective: DEFAULTS, fsBytes: null, problems: [] });
  });

  it('statfs()es the nearest existing ancestor of a directory not created yet', () => {
    const dir = tempDir();
    const s = statfsSync(dir);
    const a = assessStorageLimits(path.join(dir, 'not', 'yet'), { maxBytes: 0, minFreeBytes: 0 }, NOT_SET);
    expect(a.fsBytes).toBe(s.blocks * s.bsize);
    expect(nearestExistingDir(path.join(dir, 'not', 'yet'))).toBe(dir);
  });

  it('on a real 16 MiB file system: clamps the default floor, refuses an explicit one above 8 MiB', (ctx) => {
    const fs = smallFileSystem(ctx);
    const dir = path.join(fs, 'data');
    const defaults = assessStorageLimits(dir, DEFAULTS, NOT_SET);
    expect(defaults.fsBytes).toBe(16 * MiB);
    expect(defaults.effective.minFreeBytes).toBe(Math.floor(1.6 * MiB));
    expect(defaults.problems.map((p) => `${p.path} ${p.severity}`)).toEqual(['storage.minFreeBytes clamped', 'storage.maxBytes warning']);
    const explicit = assessStorageLimits(dir, { maxBytes: 8 * MiB, minFreeBytes: 12 * MiB }, { maxBytes: true, minFreeBytes: true });
    expect(explicit.problems).toEqual([{ path: 'storage.minFreeBytes', severity: 'error', message: expect.stringContaining(`16 MiB file system at ${fs}`) }]);
    expect(assessStorageLimits(dir, { maxBytes: 8 * MiB, minFreeBytes: 2 * MiB }, { maxBytes: true, minFreeBytes: true }).problems).toEqual([]);
  });
});

describe('storage limit messages', () => {
  it('words each problem in full: the sizes, the file system, what to do', () => {
    const fs = 'the 64 MiB file system at /';
    expect(assessStorageLimits('/', { maxBytes: 0, minFreeBytes: 40 * MiB }, { maxBytes: false, minFreeBytes: true }, { fsBytes: 64 * MiB }).problems).toEqual([
      {
        path: 'storage.minFreeBytes',
        severity: 'error',
        message: `40 MiB is more than half of ${fs}: the buffer would be left almost nothing before unsent records are dropped; set it to at most 32 MiB (10%, 6.4 MiB, is a sensible floor) or move storage.dir to a larger file system`,
      },
    ]);
    expect(assessStorageLimits('/', DEFAULTS, NOT_SET, { fsBytes: 64 * MiB }).problems).toEqual([
      {
        path: 'storage.minFreeBytes',
        severity: 'clamped',
        message: `the default 256 MiB is more than half of ${fs}; clamped to 6.4 MiB (10% of it). Set storage.minFreeBytes to choose another floor`,
      },
      {
        path: 'storage.maxBytes',
        severity: 'warning',
        message: `1 GiB is larger than ${fs}: the quota can never be reached, the free-space floor (storage.minFreeBytes, 6.4 MiB) governs instead`,
      },
    ]);
    expect(assessStorageLimits('/', { maxBytes: 65 * MiB, minFreeBytes: 0 }, NOT_SET, { fsBytes: 64 * MiB }).problems).toEqual([
      {
        path: 'storage.maxBytes',
        severity: 'warning',
        message: `65 MiB is larger than ${fs}: the quota can never be reached, with no free-space floor (storage.minFreeBytes: 0) the disk fills up before anything is dropped`,
      },
    ]);
  });

  it('accepts a quota of exactly the file system, and judges nothing on a file system of size 0 (a pseudo file system)', () => {
    expect(assessStorageLimits('/', { maxBytes: 64 * MiB, minFreeBytes: 0 }, NOT_SET, { fsBytes: 64 * MiB }).problems).toEqual([]);
    expect(assessStorageLimits('/', DEFAULTS, NOT_SET, { fsBytes: 0 })).toEqual({ effective: DEFAULTS, fsBytes: 0, problems: [] });
  });

  it('formats sizes in binary units, one decimal where it is not whole', () => {
    expect([0, 1, 1023, 1024, 1536, 10 * MiB + 1, 5.25 * 2 ** 30, 2 ** 40, 2 ** 50, 2 ** 60].map(formatBytes)).toEqual([
      '0 B',
      '1 B',
      '1023 B',
      '1 KiB',
      '1.5 KiB',
      '10 MiB',
      '5.3 GiB',
      '1 TiB',
      '1 PiB',
      '1024 PiB',
    ]);
  });
});

describe('storage.dir on a file system SQLite cannot use', () => {
  it.skipIf(!procIsProc)('names /proc and /sys as virtual file systems, and a real directory as none', () => {
    expect(virtualFileSystemAt('/proc/forewarn-test')).toBe('proc');
    expect(storageDirProblem('/proc/forewarn-test')).toMatch(/^\/proc\/forewarn-test is on proc, a virtual file system/);
    expect(virtualFileSystemAt('/sys/forewarn-test')).toBe('sysfs');
    expect(virtualFileSystemAt(tempDir())).toBeNull();
    expect(storageDirProblem(path.join(tempDir(), 'data'))).toBeNull();
  });

  it('names a file in the way of the directory', () => {
    const file = path.join(tempDir(), 'afile');
    writeFileSync(file, '');
    expect(storageDirProblem(path.join(file, 'data'))).toBe(`${file} is not a directory, so ${path.join(file, 'data')} cannot be created`);
  });

  it.skipIf(!procIsProc)('createStorageDir throws under /proc where recursive mkdirSync never returns', () => {
    // mkdirSync('/proc/x', { recursive: true }) loops forever (mkdir /proc/x: ENOENT, mkdir /proc: EEXIST, again).
    expect(() => createStorageDir('/proc/forewarn-test/data')).toThrow(/ENOENT/);
    expect(existsSync('/proc/forewarn-test')).toBe(false);
  });

  it('createStorageDir creates every missing level 0700 and accepts one that exists', () => {
    const base = tempDir();
    const dir = path.join(base, 'a', 'b');
    createStorageDir(dir);
    expect(statSync(dir).isDirectory()).toBe(true);
    expect(statSync(path.join(base, 'a')).mode & 0o777).toBe(0o700);
    expect(() => createStorageDir(dir)).not.toThrow();
  });
  it.skipIf(!procIsProc)('names every kernel file system mounted here that it knows, by its mount point', () => {
    const known = new Set(['proc', 'sysfs', 'devpts', 'cgroup', 'cgroup2', 'debugfs', 'tracefs', 'securityfs', 'bpf', 'pstore', 'configfs', 'mqueue']);
    const mounts = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((line) => line.split(' '))
      .filter(([, , type]) => type !== undefined && known.has(type));
    for (const [, at, type] of mounts) {
      // A mount point can be hidden by a later mount on it: judge what statfs sees.
      const seen = readFileSync('/proc/self/mounts', 'utf8')
        .split('\n')
        .filter((line) => line.split(' ')[1] === at)
        .pop()!
        .split(' ')[2];
      if (seen === type) expect(virtualFileSystemAt(at!), at).toBe(type);
    }
    expect(mounts.length).toBeGreaterThan(0);
  });

  it('names each kernel file system it knows, mounted for the test (root), and nsfs under /proc/self/ns', (ctx) => {
    if (process.getuid?.() !== 0) return ctx.skip('needs root to mount kernel file systems');
    // selinuxfs, smackfs, efivarfs and configfs are in the table too; kernels without them cannot mount them.
    const mounted: string[] = [];
    for (const type of ['debugfs', 'tracefs', 'securityfs', 'bpf', 'pstore', 'fusectl', 'binfmt_misc', 'mqueue', 'hugetlbfs', 'configfs', 'efivarfs']) {
      const dir = tempDir();
      if (spawnSync('mount', ['-t', type, 'none', dir]).status !== 0) continue;
      try {
        expect(virtualFileSystemAt(path.join(dir, 'forewarn')), type).toBe(type);
        expect(storageDirProblem(path.join(dir, 'forewarn')), type).toMatch(new RegExp(` is on ${type}, a virtual file system`));
        mounted.push(type);
      } finally {
        spawnSync('umount', ['-l', dir]);
      }
    }
    if (!mounted.length) return ctx.skip('mounting kernel file systems is not allowed here');
    if (existsSync('/proc/self/ns/net')) expect(virtualFileSystemAt('/proc/self/ns/net')).toBe('nsfs');
  });

  it('createStorageDir throws when a level cannot be made (a file in the way)', () => {
    const file = path.join(tempDir(), 'afile');
    writeFileSync(file, '');
    expect(() => createStorageDir(path.join(file, 'data'))).toThrow(/ENOTDIR/);
  });
});
