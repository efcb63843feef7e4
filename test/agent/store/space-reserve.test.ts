import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RESERVE_BYTES, RESERVE_FILE, RESERVE_LAST_PIECE, SpaceReserve } from '../../../agent/src/store/space-reserve.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { fillUp, tmpfsForTest } from '../../helpers/tmpfs.js';

const cleanup = cleanupAfterEach();
const freshDir = () => mkdtempSync(path.join(tmpdir(), 'fw-reserve-'));
const MiB = 1024 * 1024;

describe('SpaceReserve', () => {
  it('writes the ballast file with real blocks (not sparse), 0600, and releases it', () => {
    const dir = freshDir();
    const r = new SpaceReserve(dir);
    const file = path.join(dir, RESERVE_FILE);
    expect(r.file).toBe(file);
    expect(r.held).toBe(false);
    expect(r.restore()).toBe(true);
    expect(r.held).toBe(true);
    const st = statSync(file);
    expect(st.size).toBe(RESERVE_BYTES);
    // Allocated on disk, not a hole: the point is that the space is taken now.
    expect(st.blocks * 512).toBeGreaterThanOrEqual(RESERVE_BYTES);
    expect(st.mode & 0o777).toBe(0o600);

    // In two pieces: a neighbour that takes the room of the first still leaves the agent the last.
    expect(r.release()).toBe(true);
    expect(statSync(file).size).toBe(RESERVE_LAST_PIECE);
    expect(r.size()).toBe(RESERVE_LAST_PIECE);
    expect(r.held).toBe(false);
    expect(r.release()).toBe(true);
    expect(existsSync(file)).toBe(false);
    expect(r.size()).toBe(0);
    // Nothing left to release.
    expect(r.release()).toBe(false);
  });

  it('writes a partly released reserve back to its full size', () => {
    const dir = freshDir();
    const r = new SpaceReserve(dir, 1024 * 1024, 64 * 1024);
    expect(r.restore()).toBe(true);
    expect(r.release()).toBe(true);
    expect(r.size()).toBe(64 * 1024);
    expect(r.restore()).toBe(true);
    expect(r.held).toBe(true);
    expect(statSync(r.file).size).toBe(1024 * 1024);
    expect(statSync(r.file).mode & 0o777).toBe(0o600);
  });

  it('leaves an existing reserve alone', () => {
    const dir = freshDir();
    const r = new SpaceReserve(dir, 128 * 1024);
    expect(r.restore()).toBe(true);
    const ino = statSync(r.file).ino;
    const mtime = statSync(r.file).mtimeMs;
    expect(r.restore()).toBe(true);
    expect(statSync(r.file).ino).toBe(ino);
    expect(statSync(r.file).mtimeMs).toBe(mtime);
  });

  it('writes exactly the size asked for, also when it is not a multiple of its write chunk', () => {
    const dir = freshDir();
    for (const bytes of [100_000, 4096, 64 * 1024 + 1]) {
      const r = new SpaceReserve(dir, bytes);
      expect(r.restore()).toBe(true);
      expect(statSync(r.file).size, `a reserve of ${bytes} bytes`).toBe(bytes);
      while (r.release());
    }
  });

  it('never throws: a directory that does not exist gives false and leaves nothing behind', () => {
    const dir = path.join(freshDir(), 'missing');
    const r = new SpaceReserve(dir);
    expect(r.restore()).toBe(false);
    expect(existsSync(dir)).toBe(false);
    expect(r.held).toBe(false);
  });

  it('on a real 8 MiB file system: restored only when twice its size is free, so it never fills the disk itself', (ctx) => {
    const fs = tmpfsForTest(ctx, 8, cleanup);
    const free = () => {
      const s = statfsSync(fs);
      return s.bavail * s.bsize;
    };
    expect(free()).toBeGreaterThan(7 * MiB);

    // 5 MiB: 10 MiB would have to be free.
    const big = new SpaceReserve(fs, 5 * MiB);
    expect(big.restore()).toBe(false);
    expect(big.held).toBe(false);
    expect(existsSync(path.join(fs, RESERVE_FILE))).toBe(false);

    // 3 MiB fits twice: written, and the file system really has 3 MiB less.
    const before = free();
    const a = new SpaceReserve(fs, 3 * MiB);
    expect(a.restore()).toBe(true);
    expect(before - free()).toBeGreaterThanOrEqual(3 * MiB);
    expect(statSync(a.file).blocks * 512).toBeGreaterThanOrEqual(3 * MiB);

    // A second one of the same size in another directory of it: about 5 MiB left, 6 MiB needed.
    const sub = path.join(fs, 'other');
    mkdirSync(sub);
    const b = new SpaceReserve(sub, 3 * MiB);
    expect(b.restore()).toBe(false);
    expect(existsSync(b.file)).toBe(false);

    // The first released (both halves): room again for the second.
    expect(a.release()).toBe(true);
    expect(a.release()).toBe(true);
    expect(b.restore()).toBe(true);
    expect(statSync(b.file).size).toBe(3 * MiB);
  });

  it('on a full file system, releasing the reserve gives writes their room back', (ctx) => {
    const fs = tmpfsForTest(ctx, 8, cleanup);
    const r = new SpaceReserve(fs, 2 * MiB);
    expect(r.restore()).toBe(true);
    // Fill what is left.
    const filler = path.join(fs, 'filler');
    let written = 0;
    const chunk = Buffer.alloc(256 * 1024, 1);
    for (;;) {
      try {
        writeFileSync(filler, chunk, { flag: 'a' });
        written += chunk.length;
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
        break;
      }
    }
    expect(written).toBeGreaterThan(0);
    expect(() => writeFileSync(path.join(fs, 'next'), Buffer.alloc(MiB))).toThrow(/ENOSPC/);
    // Each piece is real room on the file system: a shortened file frees its blocks. (2 MiB: 1.75, then 0.25.)
    expect(r.release()).toBe(true);
    writeFileSync(path.join(fs, 'next'), Buffer.alloc(MiB));
    expect(readFileSync(path.join(fs, 'next')).length).toBe(MiB);
    fillUp(fs, 'filler-2');
    expect(() => writeFileSync(path.join(fs, 'last'), Buffer.alloc(200 * 1024))).toThrow(/ENOSPC/);
    expect(r.release()).toBe(true);
    writeFileSync(path.join(fs, 'last'), Buffer.alloc(200 * 1024));
    // With the file system still nearly full, it is not written again.
    expect(r.restore()).toBe(false);
    expect(r.held).toBe(false);
  });
});
