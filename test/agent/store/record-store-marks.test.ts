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
 * Acknowledgement marks (PUBACK, the centre's confirmation) wait in an open transaction for the next commit of
 * records (storage.ackCommitDelayMs): one flash write per reading instead of three. What the store promises:
 * queries see a mark at once; another connection (a crash) sees it only once committed; a records commit takes
 * the marks with it; a commit that fails rolls both back; close and the timer commit what waits.
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
  /** What a process that opens the file now (after a crash) would find: pending and published-but-unconfirmed rows. */
  const onDisk = () => ({
    pending: (outside.prepare("SELECT COUNT(*) AS n FROM records WHERE stream = 'telemetry' AND sent_ts IS NULL").get() as { n: number }).n,
    published: (outside.prepare("SELECT COUNT(*) AS n FROM records WHERE stream = 'telemetry' AND puback_ts IS NOT NULL").get() as { n: number }).n,
  });
  return { store, onDisk, dir };
}

describe('RecordStore acknowledgement marks with ackCommitDelayMs', () => {
  it('applies a mark at once for this process, and writes it with the next commit of records', () => {
    const { store, onDisk } = setup();
    const seqs = store.append([tele(1), tele(2)]);
    const ids = store.pending('telemetry').map((r) => r.id);
    expect(store.markPublished('telemetry', ids)).toBe(2);
    expect(store.confirm('telemetry', seqs[0]!)).toBe(1);
    // This process: one left to confirm, both published.
    expect(store.unconfirmedTotal()).toBe(1);
    expect(store.pending('telemetry').map((r) => r.seq)).toEqual([seqs[1]]);
    // The file: nothing of it yet (a crash now sends both again; the centre drops the duplicate).
    expect(onDisk()).toEqual({ pending: 2, published: 0 });
    store.append([tele(3)]);
    expect(onDisk()).toEqual({ pending: 2, published: 2 });
  });

  it('commits waiting marks after the delay when no records come', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { store, onDisk } = setup(5000);
    const [seq] = store.append([tele(1)]);
    store.markSent('telemetry', [store.pending('telemetry')[0]!.id]);
    expect(onDisk().pending).toBe(1);
    vi.advanceTimersByTime(4999);
    expect(onDisk().pending).toBe(1);
    vi.advanceTimersByTime(1);
    expect(onDisk().pending).toBe(0);
    expect(store.counts().find((c) => c.stream === 'telemetry')).toMatchObject({ pending: 0, lastSeq: seq });
  });

  it('commits waiting marks on close, so a clean stop sends nothing twice', () => {
    const { store, dir } = setup();
    store.append([tele(1), tele(2)]);
    store.markSent(
      'telemetry',
      store.pending('telemetry').map((r) => r.id),
    );
    store.close();
    const again = new RecordStore({ dir });
    opened.push(again);
    expect(again.pending('telemetry')).toEqual([]);
  });

  it('with 0, every mark is its own commit', () => {
    const { store, onDisk } = setup(0);
    store.append([tele(1)]);
    store.markSent('telemetry', [store.pending('telemetry')[0]!.id]);
    expect(onDisk().pending).toBe(0);
  });

  it('on a real full file system, a records commit that fails rolls the waiting marks back with it, seqs contiguous', (ctx) => {
    // A real 8 MiB tmpfs, the WAL truncated, then the file system filled by another file: the next commit needs
    // blocks there are none of.
    const fsDir = tmpfsForTest(ctx, 8, cleanup);
    const { store, onDisk } = setup(5000, path.join(fsDir, 'data'));
    const appended = store.append(Array.from({ length: 50 }, (_, i) => tele(i)));
    store.checkpoint();
    const filler = fillUp(fsDir);
    const before = onDisk();
    // A mark waits in the open transaction; the next records commit fails and takes it along.
    store.markSent('telemetry', [store.pending('telemetry')[0]!.id]);
    expect(store.pending('telemetry', 10_000)).toHaveLength(before.pending - 1);
    expect(() => store.append([tele(1000)])).toThrow(expect.objectContaining({ code: 'FW_ERR_STORAGE_WRITE' }));
    // Nothing half-applied: this process sees what the file holds, and the next seq follows the last committed one.
    expect(onDisk()).toEqual(before);
    expect(store.pending('telemetry', 10_000)).toHaveLength(before.pending);
    expect(store.nextSeq('telemetry')).toBe(appended[appended.length - 1]! + 1);
    // Room again: the mark and the records go in together.
    rmSync(filler);
    store.markSent('telemetry', [store.pending('telemetry')[0]!.id]);
    store.append([tele(1001)]);
    expect(onDisk()).toEqual({ pending: before.pending, published: 0 });
  });
});
