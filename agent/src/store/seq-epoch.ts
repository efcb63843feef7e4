import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import path from 'node:path';

/**
 * Where a fresh database starts counting, so that no seq (and no boot number) is ever used twice by one agent,
 * whatever happened to the files before: a database deleted, replaced, set aside or wiped with its directory.
 *
 * A fresh database starts every stream at max(the clock in microseconds, the reserved ceiling + 1). The ceiling
 * lives in a small file beside the database (`seq-epoch.json`), and always lies above every seq the current
 * database may assign: it is reserved in blocks of SEQ_BLOCK ahead of use and written (fsync'd, renamed into
 * place) before a seq past it is assigned. So:
 * - the database alone deleted or replaced: the file is still there, and the new base is above the old ceiling,
 *   even on a device whose clock goes back to 1970 on every boot;
 * - the whole directory wiped: the file is gone too, and the clock carries the new base far above any count so
 *   far (an agent would need more than one record per microsecond since its first start to catch up with it).
 *   A wiped directory on a device whose clock is behind is the case no local state can cover; the centre's
 *   acknowledgement then shows seqs above ours and the agent renumbers what it has not published (docs/delivery.md).
 * Boot numbers work the same way, in seconds.
 */

export const SEQ_EPOCH_FILE = 'seq-epoch.json';
/** Seqs reserved at a time: one write per 2^32 records, and room for millions of fresh databases below 2^53. */
export const SEQ_BLOCK = 2 ** 32;

interface EpochState {
  /** No seq at or above this has been assigned by any database of this directory. */
  ceiling: number;
  /** The highest boot number used so far. */
  boot: number;
}

export class SeqEpoch {
  readonly file: string;
  private state: EpochState;

  constructor(
    dir: string,
    private readonly clock: () => number = Date.now,
  ) {
    this.file = path.join(dir, SEQ_EPOCH_FILE);
    this.state = readState(this.file);
  }

  /** Whether a previous database of this directory left its reservation (false on a first start or a wiped directory). */
  get known(): boolean {
    return this.state.ceiling > 0;
  }

  /** The first seq of a fresh database, reserved at once; throws when the reservation cannot be written. */
  freshBase(): number {
    const base = Math.max(this.clock() * 1000, this.state.ceiling + 1);
    this.write({ ...this.state, ceiling: base + SEQ_BLOCK });
    return base;
  }

  /** The boot number a fresh database counts on from (its first boot is this + 1). */
  freshBoot(): number {
    return Math.max(Math.floor(this.clock() / 1000), this.state.boot);
  }

  /**
   * Called before seqs up to `highestNext` (exclusive) are assigned: extends the reservation when they would
   * reach it. Cheap when nothing is to be written, so the store may call it on every append.
   */
  reserve(highestNext: number, boot?: number): void {
    const ceiling = highestNext >= this.state.ceiling ? highestNext + SEQ_BLOCK : this.state.ceiling;
    const b = Math.max(this.state.boot, boot ?? 0);
    if (ceiling !== this.state.ceiling || b !== this.state.boot) this.write({ ceiling, boot: b });
  }

  /** The reservation as written; for tests and `forewarn status`. */
  get ceiling(): number {
    return this.state.ceiling;
  }

  private write(next: EpochState): void {
    // Written aside, fsync'd, then renamed over: a crash leaves either the old reservation or the new one.
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(next)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    try {
      const dirFd = openSync(path.dirname(this.file), 'r');
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    } catch {
      // some file systems cannot fsync a directory; the rename is still atomic
    }
    this.state = next;
  }
}

function readState(file: string): EpochState {
  if (!existsSync(file)) return { ceiling: 0, boot: 0 };
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as Partial<EpochState>;
    const num = (x: unknown) => (typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 ? x : 0);
    return { ceiling: num(v.ceiling), boot: num(v.boot) };
  } catch {
    // A torn or edited file: the clock still gives a base above any ordinary count.
    return { ceiling: 0, boot: 0 };
  }
}
