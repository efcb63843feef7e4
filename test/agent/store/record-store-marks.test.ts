import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DB_FILE, RecordStore } from '../../../agent/src/store/record-store.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { fillUp, tmpfsForTest } from '../../helpers/tmpfs.js';

const cleanup = cleanupAfterEach();

/**
 * Acknowledgements (PUBACK, the centre's confirmation) are per-stream watermarks kept in memory and written with a
 * commit of records at most every storage.ackCommitDelayMs, or on their own after that long without one: no flash
 * write per acknowledgement. What the store promises: queries see an acknowledgement at once; another connection
 * (a crash) sees it only once written, and then only rows really acknowledged; close and the timer write what
 * waits; a records commit that fails loses no acknowledgement of this process.
 */

const opened: RecordStore[] = [];
const others: Database.Database[] = [];
afterEach(() => {
  vi.useRealTimers();
  opened.splice(0).forEach((s) => s.close());
  others.splice(0).forEach((d) => d.close());
});

const tele = (n: number) => ({ stream: 'telemetry' as const, ts: 1000 + n, asset: 'm1', payload: { n, pad: 'x'.repeat(200) } });

function setup(ackCommitDelayMs = 5000, dir = path.join(mkdtempSync(path.join(tmpdir(), 'fw-marks-')), 'data')) {
  const store = new RecordStore({ dir, ackCommitDelayMs });
  opened.push(store);
  const outside = new Database(path.join(dir, DB_FILE), { readonly: true });
  others.push(outside);
  /** What a process that opens the file now (after a crash) would find: the telemetry watermarks as written. */
  const onDisk = () =>
    (outside.prepare("SELECT acked_seq AS acked, published_seq AS published FROM streams WHERE name = 'telemetry'").get() as
      { acked: number; published: number } | undefined) ?? { acked: 0, published: 0 };
  return { store, onDisk, dir };
}

describe('RecordStore acknowledgements with ackCommitDelayMs', () => {
  it('applies an acknowledgement at once for this process, and writes it with a records commit once the delay has passed', () => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'], now: 1_000_000 });
    const { store, onDisk } = setup();
    const seqs = store.append([tele(1), tele(2)]);
    expect(store.markPublished('telemetry', seqs)).toBe(2);
    expect(store.confirm('telemetry', seqs[0]!)).toBe(1);
    // This process: one left to confirm, both published.
    expect(store.unconfirmedTotal()).toBe(1);
    expect(store.pending('telemetry').map((r) => r.seq)).toEqual([seqs[1]]);
    // The file: nothing of it yet (a crash now sends both again; the centre drops the duplicate).
    expect(onDisk()).toEqual({ acked: 0, published: 0 });
    // A records commit within the delay does not write them (one page less for that commit)...
    vi.advanceTimersByTime(1000);
    store.append([tele(3)]);
    expect(onDisk()).toEqual({ acked: 0, published: 0 });
    // ...the first one after it does.
    vi.setSystemTime(1_000_000 + 5000);
    store.append([tele(4)]);
    expect(onDisk()).toEqual({ acked: seqs[0], published: seqs[1] });
  });

  it('writes waiting acknowledgements on their own when no records come, and not while records are committed', () => {
    // The timer runs on the process's grid (core/grid.ts): setTimeout against performance.now().
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout', 'performance'], now: 1_000_000 });
    const { store, onDisk } = setup(5000);
    const [seq] = store.append([tele(1)]);
    store.markSent('telemetry', [seq!]);
    expect(onDisk().acked).toBe(0);
    // Records keep coming: the timer leaves the acknowledgement to the next records commit past the delay.
    for (let i = 0; i < 4; i++) {
      vi.advanceTimersByTime(1000);
      store.append([tele(10 + i)]);
    }
    vi.advanceTimersByTime(1000); // the timer fires here, a records commit 1 s ago: it waits
    expect(onDisk().acked).toBe(0);
    // No more records: written by the timer, at the first instant of its 5 s grid that is 5 s past the last commit.
    vi.advanceTimersByTime(10_000);
    expect(onDisk().acked).toBe(seq);
    expect(store.counts().find((c) => c.stream === 'telemetry')).toMatchObject({ pending: 4, sentTotal: 1 });
  });

  it('writes waiting acknowledgements on close, so a clean stop sends nothing twice', () => {
    const { store, dir } = setup();
    const seqs = store.append([tele(1), tele(2)]);
    store.markSent('telemetry', seqs);
    store.close();
    const again = new RecordStore({ dir });
    opened.push(again);
    expect(again.pending('telemetry')).toEqual([]);
    expect(again.counts().find((c) => c.stream === 'telemetry')).toMatchObject({ pending: 0, sentTotal: 2 });
  });

  it('after a crash, rows acknowledged but not yet written are pending again; none that was not acknowledged is lost', () => {
    const { store, dir } = setup(60_000);
    const seqs = store.append([tele(1), tele(2), tele(3)]);
    store.markSent('telemetry', seqs.slice(0, 2));
    // A second process opening the file (as after kill -9) sees all three pending.
    const after = new RecordStore({ dir, readonly: true });
    expect(after.pending('telemetry').map((r) => r.seq)).toEqual(seqs);
    after.close();
    expect(store.pending('telemetry').map((r) => r.seq)).toEqual([seqs[2]]);
  });

  it('with 0, every acknowledgement is written at once', () => {
    const { store, onDisk } = setup(0);
    const [seq] = store.append([tele(1)]);
    store.markSent('telemetry', [seq!]);
    expect(onDisk().acked).toBe(seq);
  });

  it('on a real full file system, a records commit that fails keeps the acknowledgements; they go in with the next commit, seqs contiguous', (ctx) => {
    // A real 8 MiB tmpfs, the WAL truncated, then the file system filled by another file: the next commit needs
    // blocks there are none of.
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'], now: 1_000_000 });
    const fsDir = tmpfsForTest(ctx, 8, cleanup);
    const { store, onDisk } = setup(5000, path.join(fsDir, 'data'));
    const appended = store.append(Array.from({ length: 50 }, (_, i) => tele(i)));
    store.checkpoint();
    const filler = fillUp(fsDir);
    const before = store.pending('telemetry', 10_000).length;
    store.markSent('telemetry', [appended[0]!]);
    vi.setSystemTime(1_000_000 + 6000); // due: the next records commit would write it
    expect(() => store.append([tele(1000)])).toThrow(expect.objectContaining({ code: 'FW_ERR_STORAGE_WRITE' }));
    // Nothing half-applied: the file has neither; this process still knows the acknowledgement; the next seq
    // follows the last committed one.
    expect(onDisk().acked).toBe(0);
    expect(store.pending('telemetry', 10_000)).toHaveLength(before - 1);
    expect(store.nextSeq('telemetry')).toBe(appended[appended.length - 1]! + 1);
    // Room again: the acknowledgement and the records go in together.
    rmSync(filler);
    const [next] = store.append([tele(1001)]);
    expect(next).toBe(appended[appended.length - 1]! + 1);
    expect(onDisk().acked).toBe(appended[0]);
  });

  it('on a real full file system, a purge that fails keeps the acknowledgements it would have written; the next write has them', (ctx) => {
    // The purge writes the waiting watermarks with its deletes (saveStreams); when the disk refuses that commit they
    // must still count as unwritten. Found by record-store-recent.test.ts on a filled tmpfs.
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'], now: 1_000_000 });
    const fsDir = tmpfsForTest(ctx, 8, cleanup);
    const { store, onDisk } = setup(5000, path.join(fsDir, 'data'));
    const appended = store.append(Array.from({ length: 50 }, (_, i) => tele(i)));
    store.checkpoint();
    store.markSent('telemetry', appended.slice(0, 10));
    const filler = fillUp(fsDir);
    expect(() => store.purgeSent(Number.MAX_SAFE_INTEGER)).toThrow();
    expect(onDisk().acked).toBe(0);
    rmSync(filler);
    store.commitMarks();
    expect(onDisk().acked).toBe(appended[9]);
  });
});
