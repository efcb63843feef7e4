import { closeSync, existsSync, fsyncSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import path from 'node:path';

/**
 * A ballast file beside the database. On a file system that is full to the last block SQLite cannot even write
 * the WAL frames of the DELETE that would free space, nor create its -shm file at start: the drop policy then
 * cannot run, and the agent would stay down for as long as the disk is full. Releasing this file gives it the
 * room to drop, vacuum and go on; it is written again once the file system has room for it twice over.
 */

export const RESERVE_FILE = 'reserve.bin';
export const RESERVE_BYTES = 2 * 1024 * 1024;

export class SpaceReserve {
  readonly file: string;

  constructor(
    dir: string,
    private readonly bytes = RESERVE_BYTES,
  ) {
    this.file = path.join(dir, RESERVE_FILE);
  }

  get held(): boolean {
    return existsSync(this.file);
  }

  /** Gives the space back to the file system; true when there was a reserve to release. */
  release(): boolean {
    if (!existsSync(this.file)) return false;
    rmSync(this.file, { force: true });
    return true;
  }

  /** Writes the reserve when it is missing and the file system has room for it twice over; never throws. */
  restore(): boolean {
    if (existsSync(this.file)) return true;
    try {
      const fs = statfsSync(path.dirname(this.file));
      if (fs.bavail * fs.bsize < this.bytes * 2) return false;
      // Real blocks, not a sparse file: the point is that the space is taken now.
      const fd = openSync(this.file, 'w', 0o600);
      try {
        const chunk = Buffer.alloc(64 * 1024);
        for (let n = 0; n < this.bytes; n += chunk.length) writeSync(fd, chunk.subarray(0, Math.min(chunk.length, this.bytes - n)));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      return true;
    } catch {
      rmSync(this.file, { force: true });
      return false;
    }
  }
}
