import { mkdirSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { DB_FILE, RecordStore } from '../../../agent/src/store/record-store.js';

/**
 * Flash writes (issue #13, docs/delivery.md): what one commit rewrites. These count pages (WAL frames), which are
 * deterministic for a given sequence of statements, not time.
 */
const dirs: string[] = [];
const freshDir = () => {
  const d = path.join(mkdtempSync(path.join(tmpdir(), 'fw-flash-')), 'data');
  dirs.push(d);
  return d;
};
const open: RecordStore[] = [];
function store(dir: string, o: Partial<ConstructorParameters<typeof RecordStore>[0]> = {}): RecordStore {
  const s = new RecordStore({ dir, ...o });
  open.push(s);
  return s;
}
afterEach(() => open.splice(0).forEach((s) => s.close()));

const tele = (n: number, pad = 1100) => ({ stream: 'telemetry' as const, ts: n, asset: 'host', payload: { n, pad: 'x'.repeat(pad) } });
const WAL_FRAME = 4096 + 24;
const walBytes = (file: string) => statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0;

describe('RecordStore: pages written per commit', () => {
  it('a reading of about 1.2 kB acknowledged as the agent does it (published, then confirmed by the centre) rewrites at most 4.5 pages a commit on average (was 6.3)', () => {
    const dir = freshDir();
    // ackCommitDelayMs: the marks wait for the next commit of records, as in the agent.
    const s = store(dir, { ackCommitDelayMs: 5_000 });
    for (let i = 0; i < 30; i++) s.append([tele(i)]);
    s.checkpoint();
    const start = walBytes(s.file);
    expect(start).toBe(0);
    const commits = 120;
    for (let i = 0; i < commits; i++) {
      const [seq] = s.append([tele(100 + i)]);
      const batch = s.nextBatch({ maxRecords: 100, maxBytes: 1 << 20, cursors: new Map([['telemetry', seq! - 1]]) })!;
      s.markPublished(
        'telemetry',
        batch.records.map((r) => r.id),
      );
      s.confirm('telemetry', seq!);
    }
    s.commitMarks();
    const frames = (walBytes(s.file) - 32) / WAL_FRAME;
    // Schema 4 rewrote about 6.3 pages a commit (docs/benchmarks.md): the streams row (next_seq, sent_total) and the
    // sent_ts index on top of the records leaf, the (stream, seq) and pending indexes and the pages of a growing file.
    // Now the records leaf, the (stream, seq) and pending indexes, and the growing file's pages: about 4.3.
    expect(frames / commits).toBeLessThanOrEqual(4.5);
    expect(s.counts().find((c) => c.stream === 'telemetry')).toMatchObject({ pending: 30, sentTotal: commits });
  });

  it('keeps the acknowledged counters written at most once a minute, and on close', () => {
    const dir = freshDir();
    const s = store(dir);
    const seqs = s.append([tele(1, 10), tele(2, 10)]);
    s.markSent(
      'telemetry',
      s.recordsAfter('telemetry', 0, 10).map((r) => r.id),
    );
    expect(seqs).toEqual([1, 2]);
    expect(s.counts().find((c) => c.stream === 'telemetry')!.sentTotal).toBe(2);
    const raw = new Database(s.file, { readonly: true });
    expect(raw.prepare("SELECT sent_total FROM streams WHERE name = 'telemetry'").pluck().get() ?? 0).toBe(0);
    raw.close();
    s.close();
    open.splice(0);
    const again = store(dir);
    expect(again.counts().find((c) => c.stream === 'telemetry')).toMatchObject({ sentTotal: 2, lastSeq: 2 });
  });

  it('never reuses the seq of a top row that was dropped or purged, although next_seq is not written by appends', () => {
    const dir = freshDir();
    const s = store(dir);
    const seqs = s.append([tele(1, 2000), tele(2, 2000), tele(3, 2000)]);
    expect(seqs).toEqual([1, 2, 3]);
    // Drop everything unacknowledged: the top row (seq 3) goes too.
    s.enforceQuota({ maxBytes: 1, minFreeBytes: 0 });
    expect(s.recordsAfter('telemetry', 0, 10)).toEqual([]);
    s.close();
    open.splice(0);
    const again = store(dir);
    expect(again.nextSeq('telemetry')).toBe(4);
    const readonly = new RecordStore({ dir, readonly: true });
    expect(readonly.counts().find((c) => c.stream === 'telemetry')!.lastSeq).toBe(3);
    readonly.close();
    expect(again.append([tele(4)])).toEqual([4]);
    again.markSent(
      'telemetry',
      again.recordsAfter('telemetry', 0, 10).map((r) => r.id),
    );
    expect(again.purgeSent(Number.MAX_SAFE_INTEGER)).toBe(1);
    again.close();
    open.splice(0);
    expect(store(dir).append([tele(5)])).toEqual([5]);
  });

  it('purges in seq order per stream: never a row within retention, never past a pending row of its stream', () => {
    const s = store(freshDir());
    s.append([1, 2, 3, 4, 5].map((n) => tele(n, 10)));
    const seqs = s.recordsAfter('telemetry', 0, 10).map((r) => r.id); // ids, which markSent takes
    s.append([{ stream: 'risk', ts: 1, asset: 'host', payload: { risk: 1 } }]);
    s.markSent('telemetry', [seqs[0]!, seqs[1]!], 100);
    s.markSent('telemetry', [seqs[3]!], 100); // acknowledged out of order: seq 3 is still pending
    s.markSent('telemetry', [seqs[4]!], 300);
    // Row 4 waits for row 3, row 5 is within retention; the pending risk row keeps nothing of telemetry back.
    expect(s.purgeSent(200)).toBe(2);
    expect(s.recordsAfter('telemetry', 0, 10).map((r) => r.seq)).toEqual([3, 4, 5]);
    s.markSent('telemetry', [seqs[2]!], 100);
    expect(s.purgeSent(200)).toBe(2);
    expect(s.recordsAfter('telemetry', 0, 10).map((r) => r.seq)).toEqual([5]);
    // Room for the quota takes every acknowledged row, whatever its age.
    expect(s.purgeSent(Number.MAX_SAFE_INTEGER)).toBe(1);
  });

  it('migrates a version-4 database to version 5: the sent_ts index goes, records, seqs and counters stay', () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    const db = new Database(path.join(dir, DB_FILE));
    db.pragma('auto_vacuum = INCREMENTAL');
    db.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE streams (name TEXT PRIMARY KEY, next_seq INTEGER NOT NULL, sent_total INTEGER NOT NULL DEFAULT 0, last_sent_ts INTEGER,
        dropped_total INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE records (id INTEGER PRIMARY KEY, stream TEXT NOT NULL, seq INTEGER NOT NULL, priority INTEGER NOT NULL, ts INTEGER NOT NULL,
        asset TEXT NOT NULL, payload TEXT NOT NULL, sent_ts INTEGER, puback_ts INTEGER, UNIQUE (stream, seq));
      CREATE INDEX records_pending ON records (stream, id) WHERE sent_ts IS NULL;
      CREATE INDEX records_sent ON records (sent_ts) WHERE sent_ts IS NOT NULL;
      CREATE INDEX records_latest_risk ON records (asset, id) WHERE stream = 'risk';
      CREATE TABLE active_alerts (key TEXT PRIMARY KEY, state TEXT NOT NULL);
      INSERT INTO streams (name, next_seq, sent_total, last_sent_ts) VALUES ('telemetry', 9, 6, 5);
      INSERT INTO records (stream, seq, priority, ts, asset, payload, sent_ts) VALUES ('telemetry', 7, 3, 1, 'a', '{"n":7}', 5);
      INSERT INTO records (stream, seq, priority, ts, asset, payload, puback_ts) VALUES ('telemetry', 8, 3, 1, 'a', '{"n":8}', 5);
      PRAGMA user_version = 4;
    `);
    db.close();
    const s = store(dir);
    expect(s.pending('telemetry').map((r) => r.seq)).toEqual([8]);
    expect(s.append([tele(9, 10)])).toEqual([9]);
    expect(s.counts().find((c) => c.stream === 'telemetry')).toMatchObject({ sentTotal: 6, pending: 2, lastSeq: 9 });
    expect(s.purgeSent(Number.MAX_SAFE_INTEGER)).toBe(1);
    s.close();
    open.splice(0);
    const check = new Database(path.join(dir, DB_FILE), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(5);
    expect(check.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'records_sent'").get()).toBeUndefined();
    expect(check.prepare("SELECT next_seq FROM streams WHERE name = 'telemetry'").pluck().get()).toBe(10);
    check.close();
  });
});
