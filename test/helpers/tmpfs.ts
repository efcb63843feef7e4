import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'vitest';

/**
 * A real, small file system for storage faults: a tmpfs mounted on a temp dir. Needs root; otherwise (or where
 * mounting is not allowed, e.g. an unprivileged container) it returns the reason to skip the test with.
 */
export interface Tmpfs {
  dir: string;
  unmount(): void;
}

export function mountTmpfs(sizeMiB: number): Tmpfs | string {
  if (process.getuid?.() !== 0) return `needs root to mount a ${sizeMiB} MiB tmpfs (mount -t tmpfs -o size=${sizeMiB}m)`;
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-tmpfs-'));
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  if (m.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return `cannot mount a tmpfs here: ${(m.stderr || m.error?.message || '').trim()}`;
  }
  return {
    dir,
    unmount() {
      spawnSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A tmpfs of `sizeMiB` for one test, unmounted by `cleanup` after it; the test is skipped, with the reason, where
 * it cannot be mounted.
 */
export function tmpfsForTest(ctx: TestContext, sizeMiB: number, cleanup: { push(fn: () => unknown): void }): string {
  const fs = mountTmpfs(sizeMiB);
  if (typeof fs === 'string') return ctx.skip(fs);
  cleanup.push(() => fs.unmount());
  return fs.dir;
}

/**
 * Fills the file system under `dir` to the last block with a file of its own (another program's data); returns the
 * file. A program writing there at the same time may free blocks just after (SQLite truncating its WAL, say), so it
 * fills again until the file system stays full across a short pause, as a disk filled by a busy neighbour does.
 */
export function fillUp(dir: string, name = 'filler.bin'): string {
  const file = path.join(dir, name);
  const fd = openSync(file, 'a');
  const chunk = Buffer.alloc(64 * 1024, 0xab);
  try {
    for (let round = 0; round < 50; round++) {
      for (let size = chunk.length; size >= 512;) {
        try {
          writeSync(fd, chunk.subarray(0, size));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          size = Math.floor(size / 2);
        }
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      if (statfsSync(dir).bavail < 4) break;
    }
  } finally {
    closeSync(fd);
  }
  return file;
}
