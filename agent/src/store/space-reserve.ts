import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, rmSync, statSync, statfsSync, writeSync } from 'node:fs';
import path from 'node:path';

/**
 * A ballast file beside the database. On a file system that is full to the last block SQLite cannot even write
 * the WAL frames of the DELETE that would free space, nor create its -shm file at start: the drop policy then
 * cannot run, and the agent would stay down for as long as the disk is full. Releasing this file gives it the
 * room to drop, vacuum and go on; it is written again once the file system has room for it twice over.
 *
 * It is released in two pieces: first all but its last 256 KiB, then the rest. Another program still writing when
 * the first piece goes can take that room before the drop commits (the disk-fault e2e test saw it under load); the
 * keeper then releases the last piece at a later refusal, once the burst has likely passed. A drop of a few rows
 * fits in it, and the space it frees is handed back to the file system.
 */

export const RESERVE_FILE = 'reserve.bin';
/** The whole file: the first piece and the last. */
export const RESERVE_BYTES = 2 * 1024 * 1024 + 256 * 1024;
export const RESERVE_LAST_PIECE = 256 * 1024;

export class SpaceReserve {
  readonly file: string;

  constructor(
    dir: string,
    private readonly bytes = RESERVE_BYTES,
    private readonly lastPiece = Math.min(RESERVE_LAST_PIECE, Math.floor(bytes / 2)),
  ) {
    this.file = path.join(dir, RESERVE_FILE);
  }

  /** The whole reserve is in place. */
  get held(): boolean {
    return this.size() >= this.bytes;
  }

  /** Bytes the reserve holds now (0 once fully released). */
  size(): number {
    try {
      return statSync(this.file).size;
    } catch {
      return 0;
    }
  }

  /**
   * Gives one piece of the space back to the file system: the file shortened to its last piece, or removed; true
   * when there was something to release.
   */
  release(): boolean {
    if (!existsSync(this.file)) return false;
    if (this.size() <= this.lastPiece) {
      rmSync(this.file, { force: true });
      return true;
    }
    const fd = openSync(this.file, 'r+');
    try {
      ftruncateSync(fd, this.lastPiece);
    } finally {
      closeSync(fd);
    }
    return true;
  }

  /** Writes the reserve when it is missing or partly released and the file system has room for it twice over; never throws. */
  restore(): boolean {
    if (this.held) return true;
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
