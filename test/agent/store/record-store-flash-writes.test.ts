import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DB_FILE, RecordStore, deflateOptions } from '../../../agent/src/store/record-store.js';
import { seededRandom } from '../../helpers/seeded-random.js';

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
afterEach(() => {
  vi.useRealTimers();
  open.splice(0).forEach((s) => s.close());
});

const tele = (n: number, pad = 1100) => ({ stream: 'telemetry' as const, ts: n, asset: 'host', payload: { n, pad: 'x'.repeat(pad) } });
/** The metrics of a host reading as the host source writes them (about 1.2 kB of JSON, about 480 bytes deflated). */
const HOST_METRICS = [
  'cpu.count',
  'cpu.utilization_pct',
  'cpu.user_pct',
  'cpu.system_pct',
  'cpu.iowait_pct',
  'cpu.steal_pct',
  'cpu.context_switches_per_s',
  'cpu.interrupts_per_s',
  'procs.running',
  'procs.blocked',
  'procs.forks_per_s',
  'load.1m',
  'load.5m',
  'load.15m',
  'memory.total_bytes',
  'memory.available_bytes',
  'memory.used_bytes',
  'memory.used_pct',
  'memory.free_bytes',
  'memory.cached_bytes',
  'swap.total_bytes',
  'swap.used_bytes',
  'fs.root.total_bytes',
  'fs.root.used_bytes',
  'fs.root.avail_bytes',
  'fs.root.used_pct',
  'fs.root.inodes_used_pct',
  'disk.vda.read_bytes_per_s',
  'disk.vda.write_bytes_per_s',
  'disk.vda.reads_per_s',
  'disk.vda.writes_per_s',
  'disk.vda.busy_pct',
  'disk.vda.await_ms',
  'net.eth0.rx_bytes_per_s',
  'net.eth0.tx_bytes_per_s',
  'net.eth0.rx_packets_per_s',
  'net.eth0.tx_packets_per_s',
  'net.eth0.rx_errors_per_s',
  'net.eth0.tx_errors_per_s',
  'net.eth0.rx_drops_per_s',
  'net.eth0.tx_drops_per_s',
];
const random = seededRandom(13);
const hostReading = (n: number) => ({
  stream: 'telemetry' as const,
  ts: 1_796_000_000_000 + n * 1000,
  asset: 'host',
  payload: {
    ts: 1_796_000_000_000 + n * 1000,
    source: 'host',
    asset: 'host',
    metrics: Object.fromEntries(HOST_METRICS.map((m) => [m, Number((random() * 10 ** Math.floor(random() * 11)).toPrecision(6))])),
  },
});
const walBytes = (file: string) => statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0;

/** A database file as agents of schemas 4 and 5 wrote it (one `records` table, marks in the rows), left open to fill. */
function legacyFile(dir: string, extra = ''): Database.Database {
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
    CREATE INDEX records_latest_risk ON records (asset, id) WHERE stream = 'risk';
    CREATE TABLE active_alerts (key TEXT PRIMARY KEY, state TEXT NOT NULL);
    ${extra}
  `);
  return db;
}

describe('RecordStore: pages written per commit', () => {
  it('a reading of about 1.2 kB acknowledged as the agent does it (published, then confirmed by the centre, every second) writes at most 5 kB to the WAL a commit (schema 4: 26 kB, schema 5: 17.7 kB)', () => {
    // A commit a second, as the host source at 1 s; acknowledgements written every ackCommitDelayMs (5 s).
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'], now: 1_000_000 });
    const dir = freshDir();
    const s = store(dir, { ackCommitDelayMs: 5_000 });
    for (let i = 0; i < 30; i++) s.append([hostReading(i)]);
    s.checkpoint();
    const start = walBytes(s.file);
    expect(start).toBe(0);
    const commits = 240;
    for (let i = 0; i < commits; i++) {
      vi.advanceTimersByTime(1000);
      const [seq] = s.append([hostReading(100 + i)]);
      const batch = s.nextBatch({ maxRecords: 100, maxBytes: 1 << 20, cursors: new Map([['telemetry', seq! - 1]]) })!;
      s.markPublished(
        'telemetry',
        batch.records.map((r) => r.seq),
      );
      s.confirm('telemetry', seq!);
    }
    s.commitMarks();
    const raw = new Database(s.file, { readonly: true });
    const pageSize = raw.pragma('page_size', { simple: true }) as number;
    raw.close();
    expect(pageSize).toBe(2048);
    const perCommit = (walBytes(s.file) - 32) / commits;
    // Schema 4 wrote about 6.3 pages of 4 KiB a commit to the WAL (26 kB; docs/benchmarks.md), schema 5 about 4.3
    // (17.7 kB): the records leaf, the (stream, seq) and pending indexes, and the pages of a growing file. Schema 6
    // appends the reading, deflated, to the stream's own table (no index), writes no mark into rows, and has 2 KiB
    // pages: the leaf; one commit in four (four deflated readings fill a leaf) the pages a growing file touches (the
    // header, the pointer map, the new leaf's parent); one in five the `streams` page (the acknowledgements):
    // about 2.2 frames of 2 KiB, 4.6 kB.
    expect(perCommit / (pageSize + 24)).toBeLessThanOrEqual(2.4);
    expect(perCommit).toBeLessThanOrEqual(5_000);
    expect(s.counts().find((c) => c.stream === 'telemetry')).toMatchObject({ pending: 30, sentTotal: commits });
  });

  it('keeps the acknowledged counters and watermarks in memory, written with a records commit at most every ackCommitDelayMs, and on close', () => {
    const dir = freshDir();
    const s = store(dir, { ackCommitDelayMs: 60_000 });
    const seqs = s.append([tele(1, 10), tele(2, 10)]);
    s.markSent('telemetry', seqs);
    expect(seqs).toEqual([1, 2]);
    s.append([tele(3, 10)]);
    expect(s.counts().find((c) => c.stream === 'telemetry')).toMatchObject({ sentTotal: 2, pending: 1 });
    const raw = new Database(s.file, { readonly: true });
    expect(raw.prepare("SELECT sent_total FROM streams WHERE name = 'telemetry'").pluck().get() ?? 0).toBe(0);
    expect(raw.prepare("SELECT acked_seq FROM streams WHERE name = 'telemetry'").pluck().get() ?? 0).toBe(0);
    raw.close();
    s.close();
    open.splice(0);
    const again = store(dir);
    expect(again.counts().find((c) => c.stream === 'telemetry')).toMatchObject({ sentTotal: 2, lastSeq: 3, pending: 1 });
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
      again.recordsAfter('telemetry', 0, 10).map((r) => r.seq),
    );
    expect(again.purgeSent(Number.MAX_SAFE_INTEGER)).toBe(1);
    again.close();
    open.splice(0);
    expect(store(dir).append([tele(5)])).toEqual([5]);
  });

  it('purges in seq order per stream: never a row within retention, never past a pending row of its stream', () => {
    const s = store(freshDir());
    const t0 = Date.now();
    const min = 60_000;
    const seqs = s.append([1, 2, 3, 4, 5].map((n) => tele(n, 10)));
    s.append([{ stream: 'risk', ts: 1, asset: 'host', payload: { risk: 1 } }]);
    s.markSent('telemetry', [seqs[0]!, seqs[1]!], t0);
    s.markSent('telemetry', [seqs[3]!], t0); // acknowledged out of order: seq 3 is still pending
    s.markSent('telemetry', [seqs[4]!], t0 + 2 * min);
    // Rows 4 and 5 wait for row 3; the pending risk row keeps nothing of telemetry back.
    expect(s.purgeSent(t0 + min)).toBe(2);
    expect(s.recordsAfter('telemetry', 0, 10).map((r) => r.seq)).toEqual([3, 4, 5]);
    // Row 3 acknowledged later: 3, 4 and 5 became a run only then, so a cut-off before it keeps them (longer, never shorter).
    s.markSent('telemetry', [seqs[2]!], t0 + 3 * min);
    expect(s.purgeSent(t0 + 2 * min)).toBe(0);
    expect(s.purgeSent(t0 + 3 * min)).toBe(3);
    expect(s.recordsAfter('telemetry', 0, 10)).toEqual([]);
    // Room for the quota takes every acknowledged row, whatever its age, out-of-order ones included.
    const more = s.append([6, 7, 8].map((n) => tele(n, 10)));
    s.markSent('telemetry', [more[1]!, more[2]!]);
    expect(s.purgeSent(Number.MAX_SAFE_INTEGER)).toBe(2);
    expect(s.recordsAfter('telemetry', 0, 10).map((r) => r.seq)).toEqual([6]);
  });

  it('migrates a version-4 database to version 6: a table per stream, watermarks from the marks; records, seqs and counters stay', () => {
    const dir = freshDir();
    const db = legacyFile(dir, 'CREATE INDEX records_sent ON records (sent_ts) WHERE sent_ts IS NOT NULL;');
    db.exec(`
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
    expect(check.pragma('user_version', { simple: true })).toBe(6);
    expect(check.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'records%'").all()).toEqual([]);
    expect(check.prepare("SELECT type FROM sqlite_master WHERE name = 'records'").pluck().get()).toBe('view');
    expect(check.prepare("SELECT seq FROM records WHERE stream = 'telemetry' ORDER BY seq").pluck().all()).toEqual([8, 9]);
    expect(check.prepare("SELECT next_seq, acked_seq FROM streams WHERE name = 'telemetry'").get()).toEqual({ next_seq: 10, acked_seq: 7 });
    check.close();
  });

  it('migrates a version-5 database: rows of every stream keep their seqs and commit order; out-of-order marks become pending again, nothing is released', () => {
    const dir = freshDir();
    const db = legacyFile(dir);
    db.exec(`
      INSERT INTO active_alerts VALUES ('k', '{"a":1}');
      INSERT INTO streams (name, next_seq, sent_total) VALUES ('telemetry', 20, 3), ('risk', 1, 0);
      -- telemetry 10, 11 confirmed; 12 published; 13 pending; 14 confirmed out of order; 15 published
      INSERT INTO records (id, stream, seq, priority, ts, asset, payload, sent_ts, puback_ts) VALUES
        (1, 'telemetry', 10, 3, 1, 'a', '{"n":10}', 5, 4), (2, 'risk', 1, 1, 1, 'a', '{"model":"m","p":0.1}', NULL, 4),
        (3, 'telemetry', 11, 3, 2, 'a', '{"n":11}', 5, 4), (4, 'telemetry', 12, 3, 3, 'a', '{"n":12}', NULL, 4),
        (5, 'telemetry', 13, 3, 4, 'a', '{"n":13}', NULL, NULL), (6, 'risk', 2, 1, 4, 'a', '{"model":"m","p":0.2}', NULL, NULL),
        (7, 'telemetry', 14, 3, 5, 'a', '{"n":14}', 6, 5), (8, 'telemetry', 15, 3, 6, 'a', '{"n":15}', NULL, 6);
      PRAGMA user_version = 5;
    `);
    db.close();
    const s = store(dir);
    // 14 was confirmed above a pending row: pending again (sent once more, the centre drops the duplicate).
    expect(s.pending('telemetry').map((r) => r.seq)).toEqual([12, 13, 14, 15]);
    expect(s.pending('risk').map((r) => r.seq)).toEqual([1, 2]);
    // Published rows are not sent again on the next connection: telemetry resumes at 13, risk at 2.
    expect(s.publishedCursors().get('telemetry')).toBe(12);
    expect(s.publishedCursors().get('risk')).toBe(1);
    // Commit order across streams is kept (the Sparkplug node reads it).
    expect([...s.recordsAfter('telemetry', 0, 10), ...s.recordsAfter('risk', 0, 10)].sort((a, b) => a.id - b.id).map((r) => `${r.stream}:${r.seq}`)).toEqual([
      'telemetry:10',
      'risk:1',
      'telemetry:11',
      'telemetry:12',
      'telemetry:13',
      'risk:2',
      'telemetry:14',
      'telemetry:15',
    ]);
    // The next seqs follow the saved next_seq (rows at the top were purged once), the counters and alerts stay.
    expect(s.append([tele(20, 10)])).toEqual([20]);
    expect(s.counts().find((c) => c.stream === 'telemetry')).toMatchObject({ sentTotal: 3, pending: 5, lastSeq: 20 });
    expect(s.activeAlerts()).toEqual([{ key: 'k', state: { a: 1 } }]);
    expect(s.latestRisk().map((r) => r.seq)).toEqual([2]);
    // The centre confirms through 15: 12, which the broker took below the first row that never left, is released;
    // 13 never left; 14 and 15 sit above it and count as not taken (sent again, the centre drops the duplicates).
    expect(s.confirm('telemetry', 15)).toBe(1);
    expect(s.pending('telemetry').map((r) => r.seq)).toEqual([13, 14, 15, 20]);
  });

  it('sizes deflate to the payload: the same bytes as the default window, read back by a plain inflate', () => {
    for (const n of [4, 20, 60, 200, 2000]) {
      // Metric-like JSON with repeats near and far, and a character outside ASCII.
      const payload = JSON.stringify({
        ts: n,
        asset: 'mill-ä',
        metrics: Object.fromEntries(Array.from({ length: n }, (_, i) => [`group${i % 7}.metric_${i}_pct`, ((i * 7919) % 1000) / 10])),
      });
      const data = Buffer.from(payload);
      const sized = deflateRawSync(data, deflateOptions(data.length));
      expect(inflateRawSync(sized).toString(), `${data.length} bytes`).toBe(payload);
      expect(sized.equals(deflateRawSync(data, { level: 1 })), `${data.length} bytes`).toBe(true);
      expect(sized.length, `${data.length} bytes`).toBeLessThanOrEqual(Math.ceil(deflateRawSync(data, { level: 1 }).length * 1.02));
    }
    expect(deflateOptions(1389)).toEqual({ level: 1, windowBits: 11, memLevel: 4 });
    expect(deflateOptions(300)).toEqual({ level: 1, windowBits: 9, memLevel: 2 });
    expect(deflateOptions(1 << 20)).toEqual({ level: 1, windowBits: 15, memLevel: 8 });
  });

  it('stores payloads of 256 bytes or more deflated, with what the store looks up beside them; every read gives back the JSON as committed', () => {
    const dir = freshDir();
    const s = store(dir);
    const big = tele(1, 1100);
    const small = tele(2, 10);
    const [a, b] = s.append([
      big,
      small,
      { stream: 'events', ts: 3, asset: '', payload: { type: 'x', pad: 'y'.repeat(400) } },
      { stream: 'risk', ts: 4, asset: 'm', payload: { model: 'mf', pad: 'z'.repeat(400) } },
    ]);
    const raw = new Database(s.file, { readonly: true });
    const stored = raw.prepare('SELECT seq, typeof(payload) AS type, length(payload) AS bytes FROM records_telemetry ORDER BY seq').all();
    expect(stored).toEqual([
      { seq: a, type: 'blob', bytes: expect.any(Number) },
      { seq: b, type: 'text', bytes: JSON.stringify(small.payload).length },
    ]);
    expect((stored[0] as { bytes: number }).bytes).toBeLessThan(JSON.stringify(big.payload).length / 4);
    expect(raw.prepare("SELECT stream, kind, typeof(payload) AS type FROM records WHERE stream IN ('events', 'risk') ORDER BY stream").all()).toEqual([
      { stream: 'events', kind: 'x', type: 'blob' },
      { stream: 'risk', kind: 'mf', type: 'blob' },
    ]);
    raw.close();
    const want = [JSON.stringify(big.payload), JSON.stringify(small.payload)];
    expect(s.nextBatch({ maxRecords: 10, maxBytes: 1 << 20, skip: new Set(['events', 'risk']) })!.records.map((r) => r.json)).toEqual(want);
    expect(s.latestRisk().map((r) => r.payload)).toEqual([{ model: 'mf', pad: 'z'.repeat(400) }]);
    expect(s.heldRecords('telemetry', a!, b!, 10).map((r) => r.json)).toEqual(want);
    expect(s.recordsAfter('telemetry', 0, 10).map((r) => r.json)).toEqual(want);
    expect(s.pending('telemetry').map((r) => r.payload)).toEqual([big.payload, small.payload]);
    // Carried into a fresh file as stored, read back the same.
    rmSync(s.file);
    s.replaceFile('deleted in a test');
    expect(s.recordsAfter('telemetry', 0, 10).map((r) => r.json)).toEqual(want);
  });
});
