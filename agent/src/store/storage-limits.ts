import { existsSync, mkdirSync, statfsSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * What the file system under `storage.dir` allows: whether the quota and the free-space floor can be met there,
 * and whether SQLite can work there at all. `config check`, `forewarn doctor` and the agent's start-up share it,
 * so all three judge a configuration the same way.
 */

export interface StorageLimits {
  maxBytes: number;
  minFreeBytes: number;
}

export type StorageLimitPath = 'storage.minFreeBytes' | 'storage.maxBytes';

/**
 * `error`: an explicit setting that cannot be met (refuse the configuration); `clamped`: a default that cannot be
 * met, replaced in `effective`; `warning`: works, but not as configured.
 */
export type StorageLimitSeverity = 'error' | 'clamped' | 'warning';

export interface StorageLimitProblem {
  path: StorageLimitPath;
  message: string;
  severity: StorageLimitSeverity;
}

export interface StorageLimitsAssessment {
  /** The limits to run with: `limits`, with a default floor that cannot be met clamped. */
  effective: StorageLimits;
  /** Total size of the file system holding `dir`; null when it could not be read (then nothing is judged). */
  fsBytes: number | null;
  problems: StorageLimitProblem[];
}

/** A floor above this share of the file system leaves the buffer almost nothing. */
export const MAX_FLOOR_SHARE = 0.5;
/** What a default floor that cannot be met is clamped to, as a share of the file system. */
export const CLAMPED_FLOOR_SHARE = 0.1;

/** `dir` itself, or its nearest ancestor that exists: where a directory not yet created will live. */
export function nearestExistingDir(dir: string): string {
  let at = path.resolve(dir);
  while (!existsSync(at) && path.dirname(at) !== at) at = path.dirname(at);
  return at;
}

/**
 * Judges `limits` against the size of the file system holding `dir` (or its nearest existing ancestor).
 * `explicit` says which limits the operator set; only defaults are clamped. `options.fsBytes` replaces the
 * statfs() result (tests; or a caller that already knows the size).
 */
export function assessStorageLimits(
  dir: string,
  limits: StorageLimits,
  explicit: { maxBytes: boolean; minFreeBytes: boolean },
  options: { fsBytes?: number | null } = {},
): StorageLimitsAssessment {
  const at = nearestExistingDir(dir);
  let fsBytes: number | null;
  if (options.fsBytes !== undefined) fsBytes = options.fsBytes;
  else {
    try {
      const s = statfsSync(at);
      fsBytes = s.blocks * s.bsize;
    } catch {
      fsBytes = null;
    }
  }
  const effective = { ...limits };
  const problems: StorageLimitProblem[] = [];
  // Pseudo file systems report 0 blocks: no size to judge against.
  if (fsBytes === null || !(fsBytes > 0)) return { effective, fsBytes, problems };
  const fs = `the ${formatBytes(fsBytes)} file system at ${at}`;
  const most = Math.floor(fsBytes * MAX_FLOOR_SHARE);
  if (limits.minFreeBytes > most) {
    if (explicit.minFreeBytes) {
      problems.push({
        path: 'storage.minFreeBytes',
        severity: 'error',
        message: `${formatBytes(limits.minFreeBytes)} is more than half of ${fs}: the buffer would be left almost nothing before unsent records are dropped; set it to at most ${formatBytes(most)} (10%, ${formatBytes(fsBytes * CLAMPED_FLOOR_SHARE)}, is a sensible floor) or move storage.dir to a larger file system`,
      });
    } else {
      effective.minFreeBytes = Math.floor(fsBytes * CLAMPED_FLOOR_SHARE);
      problems.push({
        path: 'storage.minFreeBytes',
        severity: 'clamped',
        message: `the default ${formatBytes(limits.minFreeBytes)} is more than half of ${fs}; clamped to ${formatBytes(effective.minFreeBytes)} (10% of it). Set storage.minFreeBytes to choose another floor`,
      });
    }
  }
  if (limits.maxBytes > fsBytes) {
    const floor = effective.minFreeBytes
      ? `the free-space floor (storage.minFreeBytes, ${formatBytes(effective.minFreeBytes)}) governs instead`
      : 'with no free-space floor (storage.minFreeBytes: 0) the disk fills up before anything is dropped';
    problems.push({
      path: 'storage.maxBytes',
      severity: 'warning',
      message: `${formatBytes(limits.maxBytes)} is larger than ${fs}: the quota can never be reached, ${floor}`,
    });
  }
  return { effective, fsBytes, problems };
}

/**
 * Kernel file systems (statfs f_type, linux/magic.h) where SQLite cannot keep a database: no regular files, or
 * files that are not storage. Creating a directory under /proc fails with ENOENT while its parent exists.
 */
const VIRTUAL_FILE_SYSTEMS = new Map<number, string>([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x1cd1, 'devpts'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0xf97cff8c, 'selinuxfs'],
  [0x43415d53, 'smackfs'],
  [0xcafe4a11, 'bpf'],
  [0x6165676c, 'pstore'],
  [0xde5e81e4, 'efivarfs'],
  [0x62656570, 'configfs'],
  [0x65735543, 'fusectl'],
  [0x42494e4d, 'binfmt_misc'],
  [0x19800202, 'mqueue'],
  [0x6e736673, 'nsfs'],
  [0x958458f6, 'hugetlbfs'],
]);

/** The name of the virtual file system holding `dir` (or its nearest existing ancestor), or null for a real one. */
export function virtualFileSystemAt(dir: string): string | null {
  try {
    return VIRTUAL_FILE_SYSTEMS.get(statfsSync(nearestExistingDir(dir)).type >>> 0) ?? null;
  } catch {
    return null;
  }
}

/**
 * Why `dir` cannot hold the agent's database, as a message for `storage.dir: …`, or null when it can as far as
 * can be told before trying. Checks what would otherwise fail late or, under /proc, never return.
 */
export function storageDirProblem(dir: string): string | null {
  const at = nearestExistingDir(dir);
  const vfs = virtualFileSystemAt(at);
  if (vfs)
    return `${dir} is on ${vfs}, a virtual file system of the kernel where SQLite cannot keep a database; choose a directory on a disk (e.g. /var/lib/forewarn)`;
  try {
    if (!statSync(at).isDirectory()) return `${at} is not a directory, so ${dir} cannot be created`;
  } catch {
    // unreadable: creating it reports why
  }
  return null;
}

/**
 * `mkdir -p` that gives up instead of spinning. Node's recursive mkdirSync retries a child forever when mkdir
 * says ENOENT although its parent exists (it does under /proc: the parent answers EEXIST, the child ENOENT again).
 * Here each missing level is created once, and any error is thrown.
 */
export function createStorageDir(dir: string, mode = 0o700): void {
  const target = path.resolve(dir);
  const missing: string[] = [];
  for (let at = target; !existsSync(at); at = path.dirname(at)) {
    missing.unshift(at);
    if (path.dirname(at) === at) break;
  }
  for (const d of missing) {
    try {
      mkdirSync(d, { mode });
    } catch (err) {
      // Made meanwhile by another process: fine.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i ? v.toFixed(1).replace(/\.0$/, '') : Math.round(v)} ${units[i]}`;
}
