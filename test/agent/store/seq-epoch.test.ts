import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SEQ_BLOCK, SEQ_EPOCH_FILE, SeqEpoch } from '../../../agent/src/store/seq-epoch.js';

const freshDir = () => mkdtempSync(path.join(tmpdir(), 'fw-epoch-'));
/** A clock fixed at `ms` (milliseconds, as Date.now). */
const at = (ms: number) => () => ms;
const T = 1_700_000_000_000;

const onDisk = (dir: string) => JSON.parse(readFileSync(path.join(dir, SEQ_EPOCH_FILE), 'utf8')) as { ceiling: number; boot: number };

describe('SeqEpoch', () => {
  it('starts a first database at the clock in microseconds and reserves a block above it, on disk', () => {
    const dir = freshDir();
    const e = new SeqEpoch(dir, at(T));
    expect(e.known).toBe(false);
    expect(e.ceiling).toBe(0);
    expect(existsSync(path.join(dir, SEQ_EPOCH_FILE))).toBe(false);
    const base = e.freshBase();
    expect(base).toBe(T * 1000);
    expect(e.ceiling).toBe(base + SEQ_BLOCK);
    expect(e.known).toBe(true);
    expect(onDisk(dir).ceiling).toBe(base + SEQ_BLOCK);
    // Another instance on the same directory (the next start) reads the reservation.
    const again = new SeqEpoch(dir, at(T));
    expect(again.known).toBe(true);
    expect(again.ceiling).toBe(base + SEQ_BLOCK);
  });

  it('with the real clock, the base lies above Date.now() in microseconds', () => {
    const before = Date.now() * 1000;
    const base = new SeqEpoch(freshDir()).freshBase();
    expect(base).toBeGreaterThanOrEqual(before);
    expect(base).toBeLessThanOrEqual(Date.now() * 1000);
    expect(Number.isSafeInteger(base)).toBe(true);
  });

  it('never starts at or below an earlier reservation, even when the clock goes backwards', () => {
    const dir = freshDir();
    let now = T;
    const first = new SeqEpoch(dir, () => now);
    const b1 = first.freshBase();
    // The same process: the clock steps back by an hour.
    now = T - 3_600_000;
    const b2 = first.freshBase();
    expect(b2).toBeGreaterThanOrEqual(b1 + SEQ_BLOCK);
    // A later start whose clock went back to 1970 (an RTC without a battery).
    const rebooted = new SeqEpoch(dir, at(0));
    const b3 = rebooted.freshBase();
    expect(b3).toBeGreaterThanOrEqual(b2 + SEQ_BLOCK);
    expect(b3).toBe(b2 + SEQ_BLOCK + 1);
    // The clock back to normal and ahead of every reservation: the clock wins again.
    const later = new SeqEpoch(dir, at(T + 86_400_000));
    expect(later.freshBase()).toBe((T + 86_400_000) * 1000);
  });

  it('starts above a ceiling that reserve() extended, not only above the block freshBase() took', () => {
    const dir = freshDir();
    const e = new SeqEpoch(dir, at(T));
    const base = e.freshBase();
    // The database used up its block: the store reserves further before assigning past it.
    e.reserve(base + SEQ_BLOCK + 10);
    expect(new SeqEpoch(dir, at(0)).freshBase()).toBeGreaterThan(base + SEQ_BLOCK + 10);
  });

  it('reserve() writes only when the seqs would reach the ceiling, and persists what it writes', () => {
    const dir = freshDir();
    const e = new SeqEpoch(dir, at(T));
    const base = e.freshBase();
    const file = path.join(dir, SEQ_EPOCH_FILE);
    const ino = statSync(file).ino;
    const ceiling = e.ceiling;

    // Below the ceiling: nothing changes, and the file is not rewritten (every write renames a new file in).
    e.reserve(base + 1000);
    e.reserve(ceiling - 1);
    expect(e.ceiling).toBe(ceiling);
    expect(statSync(file).ino).toBe(ino);

    // Reaching it: a new block above the highest seq about to be used, written before it is used.
    e.reserve(ceiling);
    expect(e.ceiling).toBe(ceiling + SEQ_BLOCK);
    expect(statSync(file).ino).not.toBe(ino);
    expect(onDisk(dir).ceiling).toBe(ceiling + SEQ_BLOCK);
    expect(new SeqEpoch(dir).ceiling).toBe(ceiling + SEQ_BLOCK);

    // Past it by more than one block at once.
    e.reserve(ceiling + 5 * SEQ_BLOCK);
    expect(new SeqEpoch(dir).ceiling).toBe(ceiling + 6 * SEQ_BLOCK);
    // No temporary file is left behind.
    expect(existsSync(`${file}.tmp`)).toBe(false);
  });

  it('keeps the highest boot number, and a fresh database counts boots above it even with the clock behind', () => {
    const dir = freshDir();
    const e = new SeqEpoch(dir, at(T));
    e.freshBase();
    expect(e.freshBoot()).toBe(T / 1000);
    e.reserve(1, T / 1000 + 50);
    expect(onDisk(dir).boot).toBe(T / 1000 + 50);
    // A lower boot number never lowers it.
    e.reserve(1, 3);
    expect(onDisk(dir).boot).toBe(T / 1000 + 50);
    const behind = new SeqEpoch(dir, at(1000));
    expect(behind.freshBoot()).toBe(T / 1000 + 50);
  });

  it.each([
    ['torn', '{"ceiling":17000000000'],
    ['not JSON', 'garbage\u0000\u0001'],
    ['empty', ''],
    ['an array', '[1,2,3]'],
    ['a negative ceiling', '{"ceiling":-5,"boot":-1}'],
    ['a fractional ceiling', '{"ceiling":1.5,"boot":2.5}'],
    ['a ceiling past 2^53', `{"ceiling":${2 ** 60},"boot":1}`],
    ['a string ceiling', '{"ceiling":"99999999999999","boot":"7"}'],
  ])('falls back to the clock when the file is %s', (_what, content) => {
    const dir = freshDir();
    writeFileSync(path.join(dir, SEQ_EPOCH_FILE), content);
    const e = new SeqEpoch(dir, at(T));
    expect(e.ceiling).toBe(0);
    expect(e.freshBase()).toBe(T * 1000);
    // ...and the file is whole again.
    expect(onDisk(dir).ceiling).toBe(T * 1000 + SEQ_BLOCK);
  });

  it('writes its file 0600, also over a file that was readable by others', () => {
    const dir = freshDir();
    new SeqEpoch(dir, at(T)).freshBase();
    const file = path.join(dir, SEQ_EPOCH_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    const other = freshDir();
    writeFileSync(path.join(other, SEQ_EPOCH_FILE), '{"ceiling":5,"boot":1}\n', { mode: 0o644 });
    const e = new SeqEpoch(other, at(T));
    expect(e.ceiling).toBe(5);
    e.freshBase();
    expect(statSync(path.join(other, SEQ_EPOCH_FILE)).mode & 0o777).toBe(0o600);
  });

  it('throws when the reservation cannot be written (the store must not assign seqs without it)', () => {
    const dir = path.join(freshDir(), 'gone');
    // The directory does not exist: nothing can be written there.
    const e = new SeqEpoch(dir, at(T));
    expect(() => e.freshBase()).toThrow(/ENOENT/);
    expect(e.ceiling).toBe(0);
  });
});
