import { existsSync, renameSync, statfsSync, statSync } from 'node:fs';
import { createStorageDir } from './storage-limits.js';
import { mergeRanges, seqRanges } from '../core/seq-ranges.js';
import type { SeqEpoch } from './seq-epoch.js';
import { StreamAcks, mergeSpans } from './stream-acks.js';
import path from 'node:path';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { ForewarnError, describeError } from '../core/errors.js';
import { StatementCache, restrictDatabaseFiles } from './sqlite-files.js';
import {
  DROP_ORDER,
  STREAMS,
  STREAMS_BY_PRIORITY,
  type BatchRequest,
  type DropReason,
  type DropReport,
  type NewRecord,
  type Outbox,
  type OutboxBatch,
  type OutboxRecord,
  type StorageLimits,
  type StorageUsage,
  type StreamCounts,
  type StreamName,
} from './outbox.js';
import { everyOnGrid, type GridInterval } from '../core/grid.js';

export { STREAM_PRIORITY, STREAMS, type StreamName, type StreamCounts } from './outbox.js';

/**
 * The SQLite outbox: every record the agent produces is committed here first, with a per-stream sequence
 * number, and leaves only when the broker has acknowledged it (`markSent`) or the storage policy drops it
 * (`enforceQuota`, counted and announced). See outbox.ts for the contract.
 *
 * Layout (schema 6, issue #13: flash writes): a table per stream keyed by its seq (`records_<stream>`), so a commit
 * of a reading appends to one b-tree and touches no index; acknowledgement is a watermark per stream
 * (stream-acks.ts) saved in `streams` with a commit of records at most every `ackCommitDelayMs`, not a mark
 * written into each row. `id` orders rows across streams in commit order (the Sparkplug node reads them that
 * way); `records` is a view over the four tables for people and tools reading the file.
 */

export const DB_FILE = 'forewarn.db';
const SCHEMA_VERSION = 6;
/** The table of a stream's rows. Stream names are the fixed identifiers of STREAMS, never input. */
const table = (stream: StreamName) => `records_${stream}`;
const CREATE_STREAM_TABLE = (stream: StreamName) =>
  `CREATE TABLE IF NOT EXISTS ${table(stream)} (seq INTEGER PRIMARY KEY, id INTEGER NOT NULL, ts INTEGER NOT NULL, asset TEXT NOT NULL, kind TEXT, payload NOT NULL)`;
/**
 * What the store itself looks up in a record, kept beside its payload (which may be deflated): an event's `type`
 * (a drop never takes an announcement), a risk record's `model` (the latest risk per asset and model).
 */
function kindOf(stream: StreamName, payload: Record<string, unknown>): string | null {
  const v = stream === 'events' ? payload.type : stream === 'risk' ? payload.model : undefined;
  return typeof v === 'string' ? v : null;
}
/** The same, from the JSON text in SQL: for rows copied from files of earlier schemas. */
const KIND_SQL = `CASE stream WHEN 'events' THEN json_extract(payload, '$.type') WHEN 'risk' THEN json_extract(payload, '$.model') END`;
const RECORDS_VIEW = `CREATE VIEW IF NOT EXISTS records AS ${STREAMS.map((s) => `SELECT id, '${s}' AS stream, seq, ts, asset, kind, payload FROM ${table(s)}`).join(' UNION ALL ')}`;

/** A record read back for display (status, latest risk): the payload parsed. */
export interface StoredRecord {
  id: number;
  stream: StreamName;
  seq: number;
  ts: number;
  asset: string;
  payload: Record<string, unknown>;
}

export interface RecordStoreOptions {
  dir: string;
  synchronous?: 'full' | 'normal';
  readonly?: boolean;
  /** Caps the file at this many pages, so writes fail with SQLITE_FULL as on a full disk (tests). */
  maxPages?: number;
  /**
   * Where a fresh database starts counting (seq-epoch.ts). The agent always passes one: then every fresh file,
   * the first one included, counts from a base no earlier file of the directory reached, and says so in a
   * `storage-recovered` event. Without one (tests of the outbox contract) a new file counts from 1.
   */
  epoch?: SeqEpoch;
  /**
   * Acknowledgements (the broker's PUBACK, the centre's confirmation) are applied in memory at once and written
   * (each stream's watermark, the counters) with a commit of records at most this often, or on their own after
   * this long without one: not a write to flash per acknowledgement. A crash loses only acknowledgements not yet
   * written (those records are sent again and the centre drops the duplicates). 0 writes each at once.
   */
  ackCommitDelayMs?: number;
}

/** Why the open file was given up while the agent ran, and what moved into its successor. */
export interface StorageReplacement {
  reason: string;
  /** Where a file found in its place was moved; empty when the path was simply gone. */
  setAside: string;
  firstSeq: number;
  /** Unacknowledged records carried from the old file into the new one, under their old seqs. */
  carried: number;
}

/** `records-dropped`, `storage-recovered`, `records-unavailable`: what a drop would have to announce is never dropped. */
const ANNOUNCEMENTS = "('records-dropped', 'storage-recovered', 'records-unavailable')";

/** Why a database file could not be used at start and was set aside. */
export interface StorageRecovery {
  reason: string;
  setAside: string;
}

/** SQLite result codes that mean "this file cannot be used as it is": set it aside and start afresh. */
const UNUSABLE = /^SQLITE_(CORRUPT|NOTADB|BUSY|LOCKED|CANTOPEN_ISDIR)/;

/** What publishing adds to each record's JSON: its `"seq":N,` and the comma between records. */
export const RECORD_OVERHEAD = 24;
/** At most this many unsent rows are dropped per transaction, so collection never waits long. */
const DROP_CHUNK = 5_000;
/** After a drop, usage is brought this far under the quota, so the next record does not trigger another. */
const QUOTA_HEADROOM = 0.95;
/**
 * Bytes per page. A commit of one reading rewrites the leaf it lands on, and a WAL frame (page + 24 bytes) of a
 * 4 KiB page dirties two pages of the page cache: 2 KiB pages write about a fifth less per commit for deflated host
 * readings (about 480 bytes, four to a leaf), docs/benchmarks.md. Rows of up to about 2 KB stay on their leaf.
 */
const PAGE_SIZE = 2048;
/** At most this many rows per stream are kept in `recent` (a broker that does not take them: read back later). */
const RECENT_ROWS = 64;
/** Free pages handed back to the file system per step when the disk is short of space (1 MiB at 2 KiB pages). */
const VACUUM_STEP_PAGES = 512;

export class RecordStore implements Outbox {
  readonly file: string;
  /** Set when the file found at start was corrupt or locked and a fresh one was started in its place. */
  readonly recovered: StorageRecovery | null = null;
  private db!: Database.Database;
  private readonly seqs = new Map<StreamName, number>();
  /** The first seq of every stream in this file: 1, or a clock value after a damaged file was set aside. */
  private seqBase = 1;
  private readonly statements = new StatementCache(() => this.db);
  /** Mean bytes per row of recent batches, as counted against maxBytes: how many rows a batch needs to read. */
  private rowBytes = 256;
  private readonly epoch: SeqEpoch | undefined;
  private readonly options: RecordStoreOptions;
  /**
   * Events rows at or below this seq may have reached the broker (handed out by this process, or by an earlier one):
   * their content must never change. Notices above it may still be merged (announceDrop).
   */
  private handedOutEvents = Number.MAX_SAFE_INTEGER;
  /** The open file's identity: a different one (or none) at the path means it was deleted or replaced under us. */
  private identity: { dev: number; ino: number } | null = null;

  constructor(options: RecordStoreOptions) {
    this.file = path.join(options.dir, DB_FILE);
    this.epoch = options.epoch;
    this.options = options;
    if (options.readonly) {
      try {
        if (!existsSync(this.file)) throw new Error('no database here yet (the agent has not run with this storage.dir)');
        this.db = new Database(this.file, { readonly: true, fileMustExist: true });
        this.db.pragma('busy_timeout = 5000');
        const version = this.db.pragma('user_version', { simple: true }) as number;
        // A reader cannot migrate: a file an older agent wrote is read once the agent has started on it.
        if (version !== SCHEMA_VERSION)
          throw new Error(
            `database schema ${version}, this version reads ${SCHEMA_VERSION}: start the agent once (it upgrades the file) or use the matching forewarn`,
          );
      } catch (err) {
        throw new ForewarnError('FW_ERR_STORAGE_OPEN', `${this.file}: ${describeError(err)}`, { cause: err });
      }
      return;
    }
    try {
      if (!existsSync(options.dir)) createStorageDir(options.dir);
    } catch (err) {
      throw new ForewarnError('FW_ERR_STORAGE_OPEN', `${options.dir}: ${describeError(err)}`, { cause: err });
    }
    const existed = existsSync(this.file);
    try {
      this.open(options);
      if (!existed && this.epoch) {
        const reason = this.epoch.known
          ? 'the database file was missing (deleted while the agent was stopped?); a fresh one was started'
          : 'no database yet (a first start, or the data directory was wiped)';
        this.startFresh('created', reason, '');
      } else {
        this.epoch?.reserve(this.highestNextSeq(), Number(this.getMeta('boot_seq') ?? '0'));
      }
    } catch (err) {
      if (err instanceof ForewarnError) throw err;
      const code = (err as { code?: string }).code ?? '';
      if (!UNUSABLE.test(code)) throw new ForewarnError('FW_ERR_STORAGE_OPEN', `${this.file}: ${describeError(err)}`, { cause: err });
      // A damaged or stuck file must not stop collection: keep it for analysis and start a fresh one.
      try {
        this.db?.close();
      } catch {
        // already unusable
      }
      const setAside = `${this.file}.bad-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      try {
        for (const suffix of ['', '-wal', '-shm']) if (existsSync(this.file + suffix)) renameSync(this.file + suffix, setAside + suffix);
        this.open(options);
      } catch (again) {
        throw new ForewarnError('FW_ERR_STORAGE_OPEN', `${this.file}: ${describeError(again)} (after setting aside a damaged file: ${describeError(err)})`, {
          cause: again,
        });
      }
      this.recovered = { reason: `${code}: ${describeError(err)}`, setAside };
      this.startFresh('damaged', this.recovered.reason, setAside);
    }
  }

  /**
   * A fresh file must not reuse the seqs (nor the boot number) of any earlier one: subscribers would take its
   * records for duplicates. It counts on from the epoch (seq-epoch.ts), or without one from the clock in
   * microseconds, and says so in a `storage-recovered` event so the centre closes the gaps below.
   */
  private startFresh(
    cause: 'created' | 'damaged' | 'removed',
    reason: string,
    setAside: string,
    carried?: () => { count: number; ranges: Partial<Record<StreamName, Array<[number, number]>>> },
  ): number {
    const now = Date.now();
    const base = this.epoch ? this.epoch.freshBase() : now * 1000;
    const boot = this.epoch ? this.epoch.freshBoot() : Math.floor(now / 1000);
    let moved = 0;
    this.tx(() => {
      this.setMeta('seq_base', String(base));
      this.setMeta('boot_seq', String(boot));
      this.reloadSeqs();
      const c = carried?.();
      moved = c?.count ?? 0;
      const payload: Record<string, unknown> = { ts: now, type: 'storage-recovered', cause, reason, setAside, firstSeq: base };
      if (c) {
        payload.carried = c.count;
        payload.carriedRanges = c.ranges;
      }
      this.append([{ stream: 'events', ts: now, asset: '', payload }]);
    });
    return moved;
  }

  /** The highest next seq of any stream: what the epoch's reservation must stay above. */
  private highestNextSeq(): number {
    let n = this.seqBase;
    for (const v of this.seqs.values()) if (v > n) n = v;
    return n;
  }

  private open(options: RecordStoreOptions): void {
    const fresh = (statSync(this.file, { throwIfNoEntry: false })?.size ?? 0) === 0;
    this.db = new Database(this.file, { timeout: 5000 });
    restrictDatabaseFiles(this.file);
    if (fresh) {
      // Fixed by the file's first write (switching to WAL is one): pages of PAGE_SIZE, freed pages handed back to
      // the file system a few at a time (vacuumStep).
      this.db.pragma(`page_size = ${PAGE_SIZE}`);
      this.db.pragma('auto_vacuum = INCREMENTAL');
    }
    // The first statement that reads the header: a file that is not a database fails here.
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    // After a burst (a drain, a purge) the WAL shrinks back to this at the next checkpoint instead of keeping its peak size.
    this.db.pragma('journal_size_limit = 8388608');
    if (options.maxPages) this.db.pragma(`max_page_count = ${options.maxPages}`);
    const check = this.db.pragma('quick_check(1)', { simple: true });
    if (check !== 'ok') throw Object.assign(new Error(`integrity check failed: ${String(check)}`), { code: 'SQLITE_CORRUPT' });
    this.migrate();
    this.statements.clear();
    this.reloadSeqs();
    this.loadAcks();
    const st = statSync(this.file);
    this.identity = { dev: st.dev, ino: st.ino };
    this.handedOutEvents = this.nextSeq('events') - 1;
    this.readTops();
  }

  /** Per stream, what is acknowledged (stream-acks.ts): loaded at open, kept in memory, saved by saveStreams. */
  private readonly acks = new Map<StreamName, StreamAcks>();
  /**
   * Per stream, a seq no row of it exceeds (its highest row when read at open, then the last appended; 0 without
   * rows): lets nextBatch skip a stream with nothing past its cursor without a query.
   */
  private readonly topSeqs = new Map<StreamName, number>();
  /**
   * Per stream, the rows of its latest commits as committed (their JSON text): consecutive seqs ending at the
   * stream's top row, those handed out past the sync's cursor let go. The sync asks for each commit's rows right
   * after it; reading them back was a SELECT and an inflate per row, about 6 % of the host-only agent's main
   * thread (docs/benchmarks.md). Only outermost commits fill it; deleting rows (a purge, a drop) or opening a file
   * empties it, and rowsAbove falls back to SQLite wherever it may not hold every row asked for.
   */
  private readonly recent = new Map<StreamName, OutboxRecord[]>();
  /** The id the next row gets: commit order across streams. */
  private nextId = 1;
  /** Acknowledgements applied since the last saveStreams. */
  private ackDirty = false;
  private ackTimer: GridInterval | null = null;
  private lastRecordsCommit = 0;
  /** Acknowledged rows per stream not yet added to `streams.sent_total` (saveStreams). */
  private readonly unsavedSent = new Map<StreamName, { count: number; lastTs: number }>();
  private savedAt = Date.now();
  /** Per output reading the outbox on its own (holdFor), its position per stream. */
  private readonly holds = new Map<string, Map<StreamName, number>>();

  private sql(text: string): Database.Statement {
    return this.statements.get(text);
  }

  /** The first row of `stream` above `after`, or null: how the watermarks step over holes. */
  private nextRowOf(stream: StreamName): (after: number) => number | null {
    const st = this.sql(`SELECT seq FROM ${table(stream)} WHERE seq > ? ORDER BY seq LIMIT 1`).pluck();
    return (after) => (st.get(after) as number | undefined) ?? null;
  }

  /** Rows of `stream` with seqs in [lo, hi]. */
  private countRows(stream: StreamName, lo: number, hi: number): number {
    return this.sql(`SELECT COUNT(*) FROM ${table(stream)} WHERE seq BETWEEN ? AND ?`)
      .pluck()
      .get(lo, hi) as number;
  }

  private acksOf(stream: StreamName): StreamAcks {
    return this.acks.get(stream)!;
  }

  private loadAcks(): void {
    this.acks.clear();
    const rows = new Map(
      (
        this.sql('SELECT name, acked_seq, acked_ts, published_seq FROM streams').all() as Array<{
          name: StreamName;
          acked_seq: number;
          acked_ts: number | null;
          published_seq: number;
        }>
      ).map((r) => [r.name, r]),
    );
    const now = Date.now();
    for (const s of STREAMS) {
      const r = rows.get(s);
      const acks = new StreamAcks(r?.acked_seq ?? 0, r?.acked_ts ?? now);
      // Rows the broker took before a restart: the tail check counts them as taken now.
      acks.restorePublished(r?.published_seq ?? 0, now);
      this.acks.set(s, acks);
    }
  }

  /**
   * Each stream's highest row, read once at open: its seq bounds nextBatch's skip (topSeqs) and its id, the highest
   * of the stream (ids follow seqs within a stream), gives the next id.
   */
  private readTops(): void {
    let topId = 0;
    this.topSeqs.clear();
    this.recent.clear();
    for (const s of STREAMS) {
      const top = this.sql(`SELECT seq, id FROM ${table(s)} ORDER BY seq DESC LIMIT 1`).get() as { seq: number; id: number } | undefined;
      this.topSeqs.set(s, top?.seq ?? 0);
      topId = Math.max(topId, top?.id ?? 0);
    }
    this.nextId = topId + 1;
  }

  /**
   * A transaction that may call `append`: when it rolls back (a full disk fails its COMMIT), the seq counters
   * `append` moved on must roll back with it, or the next records would skip seqs nobody ever announces.
   */
  private tx<T>(fn: () => T): T {
    try {
      return this.atomic(fn);
    } catch (err) {
      this.reloadSeqs();
      this.unsaved(); // whatever saveStreams wrote in it was rolled back
      throw err;
    }
  }

  /** A transaction that may have run saveStreams rolled back: the next commit writes the acknowledgements again. */
  private unsaved(): void {
    this.ackDirty = true;
    this.savedAt = 0;
  }

  /** Runs `fn` in a transaction (a savepoint within another one). */
  private atomic<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /** An acknowledgement was applied: written with a commit of records, or on its own if none comes (ackCommitDelayMs). */
  private ackChanged(): void {
    this.ackDirty = true;
    const delay = this.options.ackCommitDelayMs ?? 0;
    if (delay <= 0) {
      this.commitMarks();
      return;
    }
    if (this.ackTimer) return;
    // Looked at on the process's grid (core/grid.ts), at instants of `delay`: instants that other periodic work
    // shares (the sources' ticks, storage housekeeping), not a wake-up of its own every few seconds while records
    // commit. So acknowledgements with no commit to ride on are written between delay and twice delay after the last one.
    this.ackTimer = everyOnGrid(() => {
      // Records are being committed: the next of those commits writes the acknowledgements, for free.
      if (Date.now() - this.lastRecordsCommit < delay && this.ackDirty) return;
      try {
        this.commitMarks(); // ends this timer
      } catch {
        // A full disk: the acknowledgements stay in memory; their records go again only after a crash.
      }
    }, delay).unref();
  }

  /** Writes the acknowledgement state waiting in memory now, in a commit of its own if anything waits. */
  commitMarks(): void {
    this.ackTimer?.clear();
    this.ackTimer = null;
    if (this.db.readonly || !this.db.open || (!this.ackDirty && !this.unsavedSent.size)) return;
    this.tx(() => this.saveStreams());
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new Error(`database schema ${version} is newer than this agent understands (${SCHEMA_VERSION}); upgrade the agent`);
    }
    if (version === SCHEMA_VERSION) return;
    if (version < 1) {
      this.db.transaction(() => {
        this.db.exec(`
          CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
          CREATE TABLE IF NOT EXISTS streams (name TEXT PRIMARY KEY, next_seq INTEGER NOT NULL, sent_total INTEGER NOT NULL DEFAULT 0, last_sent_ts INTEGER,
            dropped_total INTEGER NOT NULL DEFAULT 0, acked_seq INTEGER NOT NULL DEFAULT 0, acked_ts INTEGER, published_seq INTEGER NOT NULL DEFAULT 0);
          CREATE TABLE IF NOT EXISTS active_alerts (key TEXT PRIMARY KEY, state TEXT NOT NULL);
          ${STREAMS.map((st) => `${CREATE_STREAM_TABLE(st)};`).join('\n')}
          ${RECORDS_VIEW};
          PRAGMA user_version = ${SCHEMA_VERSION};
        `);
      })();
      // A file that had a header but no table yet (made by another tool): its settings take a VACUUM, cheap while empty.
      if ((this.db.pragma('auto_vacuum', { simple: true }) as number) !== 2 || this.pageSize() !== PAGE_SIZE) this.rebuild();
      return;
    }
    // Files written by earlier agents (schemas 1–5: one `records` table, acknowledgement marks in each row).
    if (version < 2) {
      this.db.exec(`
        ALTER TABLE streams ADD COLUMN dropped_total INTEGER NOT NULL DEFAULT 0;
        PRAGMA user_version = 2;
      `);
      if ((this.db.pragma('auto_vacuum', { simple: true }) as number) !== 2) {
        // A version-1 file: switching needs one full VACUUM, done here before any source runs.
        this.db.pragma('auto_vacuum = INCREMENTAL');
        this.db.exec('VACUUM');
      }
    }
    if (version < 4) {
      const cols = this.db.prepare('SELECT name FROM pragma_table_info(?)').pluck().all('records') as string[];
      if (!cols.includes('puback_ts')) this.db.exec('ALTER TABLE records ADD COLUMN puback_ts INTEGER');
    }
    // Schema 6: a table per stream keyed by seq, and acknowledgement as a watermark per stream. Each stream's
    // watermark is the row below its first pending one; rows acknowledged above it count as pending again (sent
    // once more; the centre drops the duplicates). One transaction: a migration cut short leaves the old file as it was.
    this.db.transaction(() => {
      this.db.exec(`
        ALTER TABLE streams ADD COLUMN acked_seq INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE streams ADD COLUMN acked_ts INTEGER;
        ALTER TABLE streams ADD COLUMN published_seq INTEGER NOT NULL DEFAULT 0;
        ${STREAMS.map((st) => `${CREATE_STREAM_TABLE(st)};`).join('\n')}
      `);
      const now = Date.now();
      const put = this.db.prepare(
        `INSERT INTO streams (name, next_seq, acked_seq, acked_ts, published_seq) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET acked_seq = excluded.acked_seq, acked_ts = excluded.acked_ts, published_seq = excluded.published_seq`,
      );
      for (const st of STREAMS) {
        this.db
          .prepare(
            `INSERT INTO ${table(st)} (seq, id, ts, asset, kind, payload) SELECT seq, id, ts, asset, ${KIND_SQL}, payload FROM records WHERE stream = ? ORDER BY seq`,
          )
          .run(st);
        const q = (where: string) => this.db.prepare(`SELECT MIN(seq) FROM records WHERE stream = ? AND ${where}`).pluck().get(st) as number | null;
        const top = this.db.prepare('SELECT MAX(seq) FROM records WHERE stream = ?').pluck().get(st) as number | null;
        if (top === null) continue;
        const firstPending = q('sent_ts IS NULL');
        const firstUnpublished = q('sent_ts IS NULL AND puback_ts IS NULL');
        const acked = firstPending === null ? top : firstPending - 1;
        const published = firstUnpublished === null ? top : firstUnpublished - 1;
        put.run(st, top + 1, acked, now, Math.max(acked, published));
      }
      this.db.exec(`
        DROP TABLE records;
        ${RECORDS_VIEW};
        PRAGMA user_version = ${SCHEMA_VERSION};
      `);
    })();
    if (this.pageSize() !== PAGE_SIZE) this.rebuild();
  }

  private pageSize(): number {
    return this.db.pragma('page_size', { simple: true }) as number;
  }

  /**
   * Rewrites the file with PAGE_SIZE pages and incremental auto-vacuum (VACUUM, which cannot change the page size
   * in WAL mode). Needs room for a copy of the file; where there is none, or a reader is in the way, the file keeps
   * its pages as they are and works the same, with more written per commit.
   */
  private rebuild(): void {
    try {
      this.db.pragma('journal_mode = DELETE');
      this.db.pragma(`page_size = ${PAGE_SIZE}`);
      this.db.pragma('auto_vacuum = INCREMENTAL');
      this.db.exec('VACUUM');
    } catch {
      // kept as it was (see above)
    } finally {
      this.db.pragma('journal_mode = WAL');
    }
  }

  /** Commits records in one transaction and returns their sequence numbers. */
  append(items: readonly NewRecord[]): number[] {
    // The epoch's reservation is written before any seq past it is committed (a no-op almost always).
    if (this.epoch && this.highestNextSeq() + items.length >= this.epoch.ceiling) {
      try {
        this.epoch.reserve(this.highestNextSeq() + items.length);
      } catch (err) {
        throw new ForewarnError('FW_ERR_STORAGE_WRITE', `${this.file}: ${describeError(err)}`, { cause: err });
      }
    }
    // The next seq is not written here: it is the highest seq in the table + 1 (reloadSeqs), and `streams.next_seq`
    // is saved only where rows are deleted (saveStreams), so one commit touches one page fewer.
    const firstId = this.nextId;
    // Within another transaction (a drop's notice) the rows exist only if that one commits: not remembered (the
    // stream's top then moves past its `recent` rows, which stop being used).
    const outermost = !this.db.inTransaction;
    const committed: OutboxRecord[] = [];
    const run = () =>
      this.atomic(() => {
        const seqs = items.map((item) => {
          const seq = this.seqs.get(item.stream) ?? this.seqBase;
          const row = { id: this.nextId++, stream: item.stream, seq, ts: item.ts, asset: item.asset, json: JSON.stringify(item.payload) };
          this.sql(`INSERT INTO ${table(item.stream)} (seq, id, ts, asset, kind, payload) VALUES (?, ?, ?, ?, ?, ?)`).run(
            seq,
            row.id,
            item.ts,
            item.asset,
            kindOf(item.stream, item.payload),
            storedPayload(row.json),
          );
          this.seqs.set(item.stream, seq + 1);
          this.topSeqs.set(item.stream, seq);
          if (outermost) committed.push(Object.freeze(row));
          return seq;
        });
        // The acknowledgements of the last ackCommitDelayMs ride along: the `streams` page once in a while, not per commit.
        if ((this.ackDirty || this.unsavedSent.size) && Date.now() - this.savedAt >= (this.options.ackCommitDelayMs ?? 0)) this.saveStreams();
        return seqs;
      });
    try {
      const seqs = run();
      this.lastRecordsCommit = Date.now();
      for (const row of committed) this.remember(row);
      return seqs;
    } catch (err) {
      // The transaction rolled back; the cached counters must follow it.
      this.nextId = firstId;
      this.reloadSeqs();
      this.unsaved();
      throw new ForewarnError('FW_ERR_STORAGE_WRITE', `${this.file}: ${describeError(err)}`, { cause: err });
    }
  }

  /**
   * Per stream, the next seq: one above the highest row, or the saved `next_seq` when that is higher (the rows at
   * the top were purged or dropped: saveStreams wrote it in the same transaction). Seqs are therefore never used
   * twice within a file although `next_seq` is not written on every commit.
   */
  private reloadSeqs(): void {
    this.seqBase = Number(this.getMeta('seq_base') ?? '1');
    this.seqs.clear();
    for (const [stream, next] of this.storedNextSeqs(this.seqBase)) this.seqs.set(stream, next);
  }

  /**
   * The next seq of every stream that has one, from the rows and the saved `next_seq`, never below `base` (rows
   * carried into a fresh file keep their old seqs, below its base: replaceFile).
   */
  private storedNextSeqs(base: number): Map<StreamName, number> {
    const out = new Map<StreamName, number>();
    for (const row of this.sql('SELECT name, next_seq FROM streams').all() as Array<{ name: StreamName; next_seq: number }>) out.set(row.name, row.next_seq);
    for (const s of STREAMS) {
      const seq = this.sql(`SELECT MAX(seq) FROM ${table(s)}`)
        .pluck()
        .get() as number | null;
      if (seq !== null) out.set(s, Math.max(out.get(s) ?? 0, seq + 1));
    }
    for (const [s, next] of out) out.set(s, Math.max(next, base));
    return out;
  }

  /**
   * Writes every stream's next seq, its acknowledgement watermarks and the acknowledged counters not yet written.
   * Runs inside the transaction of anything that deletes rows (a purge, a drop), so a deleted top row never lets
   * its seq be used again, and with a records commit at most every ackCommitDelayMs for the acknowledgements.
   */
  private saveStreams(): void {
    const put = this.sql(
      `INSERT INTO streams (name, next_seq, sent_total, last_sent_ts, acked_seq, acked_ts, published_seq) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(name) DO UPDATE SET next_seq = MAX(next_seq, excluded.next_seq), sent_total = sent_total + excluded.sent_total,
       last_sent_ts = COALESCE(excluded.last_sent_ts, last_sent_ts), acked_seq = excluded.acked_seq, acked_ts = excluded.acked_ts,
       published_seq = excluded.published_seq`,
    );
    for (const s of STREAMS) {
      const next = this.seqs.get(s);
      const sent = this.unsavedSent.get(s);
      const acks = this.acksOf(s);
      if (next === undefined && !sent && acks.acked === 0) continue;
      put.run(s, next ?? this.seqBase, sent?.count ?? 0, sent?.lastTs ?? null, acks.acked, acks.ackedTs, acks.publishedThrough(this.nextRowOf(s)));
    }
    this.unsavedSent.clear();
    this.ackDirty = false;
    this.savedAt = Date.now();
  }

  /** Counts acknowledged rows in memory; saveStreams writes them with a commit that happens anyway. */
  private countSent(stream: StreamName, n: number, now: number): void {
    const c = this.unsavedSent.get(stream) ?? { count: 0, lastTs: now };
    c.count += n;
    c.lastTs = Math.max(c.lastTs, now);
    this.unsavedSent.set(stream, c);
  }

  /** Adds a committed row to its stream's `recent` rows, which it continues or, after a gap, starts afresh. */
  private remember(row: OutboxRecord): void {
    let rows = this.recent.get(row.stream);
    if (!rows || (rows.length && rows[rows.length - 1]!.seq !== row.seq - 1)) this.recent.set(row.stream, (rows = []));
    rows.push(row);
    if (rows.length > RECENT_ROWS) rows.shift();
  }

  /**
   * The rows of `stream` above `after` from `recent`, or null where it may not hold them all: it must reach down to
   * `after` and up to the stream's top row. Rows at or below `after` are let go (handed out, or acknowledged).
   */
  private recentAbove(stream: StreamName, after: number, limit: number): OutboxRecord[] | null {
    const rows = this.recent.get(stream);
    if (!rows?.length || rows[rows.length - 1]!.seq !== this.topSeqs.get(stream) || after < rows[0]!.seq - 1) return null;
    rows.splice(0, Math.max(0, Math.min(rows.length, after - rows[0]!.seq + 1)));
    return rows.slice(0, limit);
  }

  /** Rows of `stream` above `after` in seq order, at most `limit`, acknowledged ones left out. */
  private rowsAbove(stream: StreamName, after: number, limit: number): OutboxRecord[] {
    const acks = this.acksOf(stream);
    after = Math.max(after, acks.acked);
    if (!acks.ackedAbove().length) {
      const recent = this.recentAbove(stream, after, limit);
      if (recent) return recent;
    }
    const select = this.sql(`SELECT id, '${stream}' AS stream, seq, ts, asset, payload AS json FROM ${table(stream)} WHERE seq > ? ORDER BY seq LIMIT ?`);
    if (!acks.ackedAbove().length) return readRows(select.all(after, limit));
    const out: OutboxRecord[] = [];
    while (out.length < limit) {
      const rows = readRows(select.all(after, limit));
      for (const r of rows) if (!acks.isAcked(r.seq) && out.length < limit) out.push(r);
      if (rows.length < limit) break;
      after = rows[rows.length - 1]!.seq;
    }
    return out;
  }

  /**
   * The next pending records of the highest-priority stream that has any past its cursor, bounded in count and
   * bytes, and never mixing backlog (historical) with live records. Cursors and `liveFrom` are seqs.
   */
  nextBatch(request: BatchRequest): OutboxBatch | null {
    for (const stream of STREAMS_BY_PRIORITY) {
      if (request.skip?.has(stream)) continue;
      // Nothing appended past the cursor since: no query (the sync asks after every commit and every PUBACK).
      // The highest row, not the next seq: a stream with no row yet has a next seq far above 0 in a fresh file.
      const top = this.topSeqs.get(stream) ?? 0;
      if ((request.cursors?.get(stream) ?? 0) >= top || this.acksOf(stream).acked >= top) continue;
      const liveFrom = request.liveFrom?.get(stream) ?? 0;
      const records: OutboxRecord[] = [];
      let historical = false;
      let bytes = 0;
      let after = request.cursors?.get(stream) ?? 0;
      let full = false;
      // Read about as many rows as maxBytes leaves room for (at the row size seen so far), not all of maxRecords:
      // a batch cut by bytes would otherwise read, and read again on the next call, rows it does not send.
      while (!full && records.length < request.maxRecords) {
        const room = Math.ceil((request.maxBytes - bytes) / this.rowBytes) + 8;
        const want = Math.min(request.maxRecords - records.length, Math.max(16, room));
        const rows = this.rowsAbove(stream, after, want);
        for (const r of rows) {
          const size = r.json.length + RECORD_OVERHEAD;
          if (records.length === 0) historical = r.seq < liveFrom;
          else if (bytes + size > request.maxBytes || r.seq < liveFrom !== historical) {
            full = true;
            break;
          }
          bytes += size;
          records.push(r);
        }
        if (rows.length < want) break;
        after = rows[rows.length - 1]!.seq;
      }
      if (!records.length) continue;
      this.rowBytes = Math.max(RECORD_OVERHEAD, bytes / records.length);
      if (stream === 'events') this.handedOutEvents = Math.max(this.handedOutEvents, records[records.length - 1]!.seq);
      return { stream, historical, records, bytes };
    }
    return null;
  }

  /** How many rows of [lo, hi] are not acknowledged yet. */
  private unackedRows(stream: StreamName, lo: number, hi: number): number {
    let n = 0;
    for (const [a, b] of this.acksOf(stream).notAcked(lo, hi)) n += this.countRows(stream, a, b);
    return n;
  }

  /**
   * Marks records acknowledged by the broker; returns how many were newly marked (a duplicate acknowledgement
   * counts once). The seqs of one batch are consecutive among that stream's pending rows, so their span covers them.
   */
  markSent(stream: StreamName, seqs: readonly number[], now = Date.now()): number {
    if (!seqs.length) return 0;
    const [lo, hi] = span(seqs);
    const n = this.unackedRows(stream, lo, hi);
    this.acksOf(stream).ack(lo, hi, now, this.nextRowOf(stream));
    if (n) this.countSent(stream, n, now);
    this.ackChanged();
    return n;
  }

  /**
   * With central acknowledgement: the broker took these rows (its PUBACK), but they stay until the centre confirms
   * them (`confirm`). Returns how many were newly marked.
   */
  markPublished(stream: StreamName, seqs: readonly number[], now = Date.now()): number {
    if (!seqs.length) return 0;
    const [lo, hi] = span(seqs);
    const acks = this.acksOf(stream);
    let n = this.unackedRows(stream, lo, hi);
    for (const [a, b] of acks.unconfirmedSpans()) if (a <= hi && b >= lo) n -= this.countRows(stream, Math.max(a, lo), Math.min(b, hi));
    acks.published(lo, hi, now);
    this.ackChanged();
    return n;
  }

  /**
   * The centre confirmed every seq of `stream` up to `through`: those rows are acknowledged (kept for retention,
   * then purged). Only rows the broker took: the centre cannot hold a record that never left (a seq it knows from
   * another file). Returns how many were newly acknowledged.
   */
  confirm(stream: StreamName, through: number, now = Date.now()): number {
    const acks = this.acksOf(stream);
    const spans = mergeSpans(acks.confirmable(through));
    if (!spans.length) return 0;
    let n = 0;
    for (const [lo, hi] of spans) n += this.unackedRows(stream, lo, hi);
    const nextRow = this.nextRowOf(stream);
    for (const [lo, hi] of spans) acks.ack(lo, hi, now, nextRow);
    acks.trimUnconfirmed(through);
    if (n) this.countSent(stream, n, now);
    this.ackChanged();
    return n;
  }

  /** `confirm` for several streams: one acknowledgement message. */
  confirmAll(watermarks: ReadonlyMap<StreamName, number>, now = Date.now()): number {
    let n = 0;
    for (const [stream, through] of watermarks) n += this.confirm(stream, through, now);
    return n;
  }

  /**
   * Per stream, the seq below which every pending row is already at the broker (marked published): where a new
   * connection starts sending, so rows the broker took are not sent again on every reconnect. Rows it took that
   * the centre then reports missing go out again through `heldRecords`.
   */
  publishedCursors(): Map<StreamName, number> {
    return new Map(STREAMS.map((s) => [s, this.acksOf(s).publishedThrough(this.nextRowOf(s))]));
  }

  /** The seq range of rows of `stream` the broker took before `before`, above `seq`, still unconfirmed; null when none. */
  unconfirmedAbove(stream: StreamName, seq: number, before: number): { lo: number; hi: number } | null {
    return this.acksOf(stream).unconfirmedAbove(seq, before);
  }

  /**
   * At least pendingTotal(), from memory: the seqs handed out above each stream's acknowledged watermark (rows
   * acknowledged above it or dropped only make the true count smaller). For a caller that needs the count only when
   * it is large, without counting rows every time.
   */
  pendingAtMost(): number {
    if (!this.acks.size) this.loadAcks();
    let n = 0;
    for (const s of STREAMS) n += Math.max(0, this.nextSeq(s) - 1 - this.acksOf(s).acked);
    return n;
  }

  /** Rows the broker took that wait for the centre's confirmation: pending, published, per stream. */
  unconfirmedTotal(): number {
    let n = 0;
    for (const s of STREAMS) for (const [lo, hi] of this.acksOf(s).unconfirmedSpans()) n += this.countRows(s, lo, hi);
    return n;
  }

  /**
   * The rows this file still holds with seqs in [from, to] of `stream`, acknowledged or not, in seq order, at most
   * `limit`: what the agent can send again when the centre reports them missing.
   */
  heldRecords(stream: StreamName, from: number, to: number, limit: number, onlyPending = false): OutboxRecord[] {
    const select = this.sql(
      `SELECT id, '${stream}' AS stream, seq, ts, asset, payload AS json FROM ${table(stream)} WHERE seq BETWEEN ? AND ? ORDER BY seq LIMIT ?`,
    );
    let rows: OutboxRecord[];
    if (!onlyPending) rows = readRows(select.all(from, to, limit));
    else {
      const acks = this.acksOf(stream);
      rows = [];
      let after = Math.max(from - 1, acks.acked);
      while (rows.length < limit && after < to) {
        const got = readRows(select.all(after + 1, to, limit));
        for (const r of got) if (!acks.isAcked(r.seq) && rows.length < limit) rows.push(r);
        if (got.length < limit) break;
        after = got[got.length - 1]!.seq;
      }
    }
    if (stream === 'events') for (const r of rows) this.handedOutEvents = Math.max(this.handedOutEvents, r.seq);
    return rows;
  }

  /** The first seq this file assigns to every stream. */
  get firstSeq(): number {
    return this.seqBase;
  }

  /** The next seq `stream` would get. */
  nextSeq(stream: StreamName): number {
    return this.seqs.get(stream) ?? this.seqBase;
  }

  /**
   * Whether the file at our path is still the one we have open. A file deleted (or replaced) under a running
   * agent would otherwise take every later commit with it at the next start.
   */
  replacedOnDisk(): string | null {
    if (!this.identity || this.db.readonly) return null;
    try {
      const st = statSync(this.file);
      if (st.dev === this.identity.dev && st.ino === this.identity.ino) return null;
      return 'the database file was replaced by another file while the agent ran';
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return 'the database file was deleted while the agent ran';
      return null;
    }
  }

  /**
   * Gives up the open file (deleted or replaced on disk) for a fresh one at the same path. Everything not yet
   * acknowledged is still readable through the open handle: it moves into the new file under its old seqs, with
   * the active alerts and the agent's saved state, and the new file counts on from a fresh base. A file that took
   * our place is set aside, not trusted.
   */
  replaceFile(reason: string): StorageReplacement {
    const old = this.db;
    // Every row not acknowledged, in commit order across streams, read through the open handle.
    const pending: Array<{ stream: StreamName; seq: number; id: number; ts: number; asset: string; kind: string | null; payload: string | Buffer }> = [];
    for (const s of STREAMS) {
      const acks = this.acksOf(s);
      const rows = old.prepare(`SELECT seq, id, ts, asset, kind, payload FROM ${table(s)} WHERE seq > ? ORDER BY seq`).all(acks.acked) as Array<{
        seq: number;
        id: number;
        ts: number;
        asset: string;
        kind: string | null;
        payload: string | Buffer;
      }>;
      for (const r of rows) if (!acks.isAcked(r.seq)) pending.push({ stream: s, ...r });
    }
    pending.sort((a, b) => a.id - b.id);
    const alerts = old.prepare('SELECT key, state FROM active_alerts').all() as Array<{ key: string; state: string }>;
    const meta = old.prepare("SELECT key, value FROM meta WHERE key NOT IN ('seq_base', 'boot_seq')").all() as Array<{ key: string; value: string }>;
    const streams = old.prepare('SELECT name, sent_total, dropped_total, last_sent_ts FROM streams').all() as Array<{
      name: StreamName;
      sent_total: number;
      dropped_total: number;
      last_sent_ts: number | null;
    }>;
    // The acknowledged counters this process has not written yet (saveStreams) go along; a stream may have no row yet.
    for (const [name, unsaved] of this.unsavedSent) {
      let c = streams.find((x) => x.name === name);
      if (!c) streams.push((c = { name, sent_total: 0, dropped_total: 0, last_sent_ts: null }));
      c.sent_total += unsaved.count;
      c.last_sent_ts = Math.max(unsaved.lastTs, c.last_sent_ts ?? 0);
    }
    this.unsavedSent.clear();
    const boot = Number(old.prepare("SELECT value FROM meta WHERE key = 'boot_seq'").pluck().get() ?? '0');
    // Acknowledgements waiting in memory stay with the old file: the carried records are sent again anyway.
    this.ackTimer?.clear();
    this.ackTimer = null;
    this.ackDirty = false;
    try {
      old.close();
    } catch {
      // the file is gone; closing cannot fail in a way that matters
    }
    // SQLite leaves the WAL of an unlinked file behind on close: the -wal and -shm at the path are ours, never
    // the newcomer's, and must not be read as part of it (nor of the fresh file).
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    for (const suffix of ['-wal', '-shm']) if (existsSync(this.file + suffix)) renameSync(this.file + suffix, `${this.file}.orphan-${stamp}${suffix}`);
    let setAside = '';
    if (existsSync(this.file)) {
      setAside = `${this.file}.foreign-${stamp}`;
      renameSync(this.file, setAside);
    }
    if (!existsSync(path.dirname(this.file))) createStorageDir(path.dirname(this.file));
    this.open(this.options);
    const carried = this.startFresh('removed', reason, setAside, () => {
      // Sent again, whatever the broker had taken: the centre is told to wait for them (carriedRanges) and deduplicates.
      for (const r of pending)
        this.sql(`INSERT INTO ${table(r.stream)} (seq, id, ts, asset, kind, payload) VALUES (?, ?, ?, ?, ?, ?)`).run(
          r.seq,
          this.nextId++,
          r.ts,
          r.asset,
          r.kind,
          r.payload,
        );
      const put = this.sql('INSERT INTO active_alerts (key, state) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET state = excluded.state');
      for (const a of alerts) put.run(a.key, a.state);
      for (const m of meta) this.setMeta(m.key, m.value);
      const counters = this.sql(
        'INSERT INTO streams (name, next_seq, sent_total, dropped_total, last_sent_ts) VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET sent_total = excluded.sent_total, dropped_total = excluded.dropped_total, last_sent_ts = excluded.last_sent_ts',
      );
      for (const c of streams) counters.run(c.name, this.nextSeq(c.name), c.sent_total, c.dropped_total, c.last_sent_ts);
      // Boot numbers go on from the old file's, not from the clock, which may be behind it.
      if (boot > Number(this.getMeta('boot_seq') ?? '0')) this.setMeta('boot_seq', String(boot));
      const ranges: Partial<Record<StreamName, Array<[number, number]>>> = {};
      for (const st of STREAMS) {
        const seqs = pending.filter((r) => r.stream === st).map((r) => r.seq);
        if (seqs.length) ranges[st] = seqRanges(seqs.sort((a, b) => a - b));
      }
      return { count: pending.length, ranges };
    });
    return { reason, setAside, firstSeq: this.seqBase, carried };
  }

  /** The highest seq assigned per stream (the first seq − 1 before any): what is backlog when a connection comes up. */
  lastSeqs(): Map<StreamName, number> {
    return new Map(STREAMS.map((s) => [s, this.nextSeq(s) - 1]));
  }

  /**
   * Deletes acknowledged records older than `beforeTs`, a bounded number at a time so collection never waits long.
   * Rows another output still needs (`holdFor`: past its cursor) stay, unless `ignoreHolds` (space must be freed).
   */
  purgeSent(beforeTs: number, maxRows = 5000, ignoreHolds = false): number {
    // No per-row acknowledgement time: each stream's watermark as it stood at `beforeTs` (stream-acks.ts) bounds
    // the purge, walked in seq order. Rows acknowledged out of order wait until the watermark passes them: kept
    // longer, never shorter. Making room for the quota (beforeTs: no limit) takes every acknowledged row instead.
    const quota = beforeTs >= Number.MAX_SAFE_INTEGER;
    // `tx`: its saveStreams marks the acknowledgements written; a commit the disk refuses must mark them unwritten again.
    return this.tx(() => {
      let n = 0;
      for (const s of STREAMS) {
        if (n >= maxRows) break;
        const acks = this.acksOf(s);
        const held = ignoreHolds ? Number.MAX_SAFE_INTEGER : this.heldAbove(s);
        const purge = this.sql(`DELETE FROM ${table(s)} WHERE seq IN (SELECT seq FROM ${table(s)} WHERE seq BETWEEN ? AND ? ORDER BY seq LIMIT ?)`);
        const spans: Array<readonly [number, number]> = [[Number.MIN_SAFE_INTEGER, quota ? acks.acked : acks.ackedBy(beforeTs)]];
        if (quota) spans.push(...acks.ackedAbove());
        for (const [lo, hi] of spans) {
          if (n >= maxRows || lo > held) break;
          n += purge.run(lo, Math.min(hi, held), maxRows - n).changes;
        }
      }
      if (n) {
        this.recent.clear();
        this.saveStreams(); // the next seqs, should the top rows have gone
      }
      return n;
    });
  }

  /**
   * Another output of the outbox (the Sparkplug edge node, sync/sparkplug/) reads `streams` from its own position, a
   * seq per stream kept in the meta table (`output.<name>.<stream>`): rows past it are kept by `purgeSent` even once
   * the Forewarn sync has them acknowledged, so a record leaves only when every enabled output has it. Seqs, not ids:
   * seqs are never reused, even across a fresh database file, while SQLite may hand out an id again once the rows
   * above it are gone. A position seen for the first time starts at the end: an output turned on does not replay
   * what the outbox kept for gap repair. Returns the positions.
   */
  holdFor(output: string, streams: readonly StreamName[]): Map<StreamName, number> {
    const cursors = new Map<StreamName, number>();
    for (const s of streams) {
      const saved = this.getMeta(`output.${output}.${s}`);
      cursors.set(s, saved === undefined ? this.nextSeq(s) - 1 : Number(saved));
    }
    this.holds.set(output, cursors);
    this.saveOutputCursors(output, cursors);
    return new Map(cursors);
  }

  /** The output no longer runs: its rows are no longer held (its saved position stays, for when it comes back). */
  releaseHold(output: string): void {
    this.holds.delete(output);
  }

  /** Moves an output's position on (never back) and saves it. */
  saveOutputCursors(output: string, cursors: ReadonlyMap<StreamName, number>): void {
    const held = this.holds.get(output);
    this.atomic(() => {
      for (const [s, seq] of cursors) {
        this.setMeta(`output.${output}.${s}`, String(seq));
        held?.set(s, seq);
      }
    });
  }

  /** Rows of `stream` after `afterSeq` in seq order, acknowledged or not: what an output reads from its position. */
  recordsAfter(stream: StreamName, afterSeq: number, limit: number): OutboxRecord[] {
    return readRows(
      this.sql(`SELECT id, '${stream}' AS stream, seq, ts, asset, payload AS json FROM ${table(stream)} WHERE seq > ? ORDER BY seq LIMIT ?`).all(
        afterSeq,
        limit,
      ),
    );
  }

  /** The highest seq of `stream` every output holding it has read: rows above it must stay. */
  private heldAbove(stream: StreamName): number {
    let bound = Number.MAX_SAFE_INTEGER;
    for (const cursors of this.holds.values()) {
      const c = cursors.get(stream);
      if (c !== undefined) bound = Math.min(bound, c);
    }
    return bound;
  }

  usage(): StorageUsage {
    // One prepared statement (db.pragma() prepares on every call), one read of the header: this runs on every
    // housekeeping tick, and three PRAGMA statements were most of that tick's cost (docs/benchmarks.md).
    const { pageSize, pages, free } = this.sql(
      'SELECT page_size AS pageSize, page_count AS pages, freelist_count AS free FROM pragma_page_size(), pragma_page_count(), pragma_freelist_count()',
    ).get() as { pageSize: number; pages: number; free: number };
    const size = (f: string) => statSync(f, { throwIfNoEntry: false })?.size ?? 0;
    const fs = statfsSync(path.dirname(this.file));
    return {
      usedBytes: (pages - free) * pageSize,
      fileBytes: size(this.file),
      walBytes: size(`${this.file}-wal`),
      reclaimableBytes: free * pageSize,
      freeBytes: fs.bavail * fs.bsize,
    };
  }

  private withinLimits(u: StorageUsage, limits: StorageLimits, headroom: number): boolean {
    const quotaOk = !limits.maxBytes || u.usedBytes <= limits.maxBytes * headroom;
    // Pages on the free list go back to the file system with the incremental vacuum that follows a drop.
    const floorOk = !limits.minFreeBytes || u.freeBytes + u.reclaimableBytes >= limits.minFreeBytes / headroom;
    return quotaOk && floorOk;
  }

  enforceQuota(limits: StorageLimits, inflight: ReadonlyMap<StreamName, number> = new Map(), reason?: DropReason): DropReport[] {
    let u = this.usage();
    if (!reason && this.withinLimits(u, limits, 1)) return [];
    const why: DropReason = reason ?? (limits.maxBytes && u.usedBytes > limits.maxBytes ? 'quota' : 'free-space');
    // A full disk gives no usable measure of how much to free: take a slice of what is there.
    const diskFullTarget = why === 'disk-full' ? Math.max(1 << 20, u.usedBytes * 0.05) : 0;
    const startUsed = u.usedBytes;
    const done = () => (why === 'disk-full' ? startUsed - u.usedBytes >= diskFullTarget : this.withinLimits(u, limits, QUOTA_HEADROOM));
    // Acknowledged rows go first: deleting them loses nothing.
    while (!done() && this.purgeSent(Number.MAX_SAFE_INTEGER, DROP_CHUNK) > 0) u = this.usage();
    // Then those only another output still wanted (docs/sparkplug.md): the centre has them, the Sparkplug host
    // misses them, which is what that output's store-and-forward would lose anyway; unsent rows go only after these.
    while (!done() && this.purgeSent(Number.MAX_SAFE_INTEGER, DROP_CHUNK, true) > 0) u = this.usage();
    const reports = new Map<StreamName, DropReport>();
    // The drop notices this call commits are never among what it drops (nor are any others: see dropOldest).
    const ceiling = this.lastSeqs();
    let stuck = false;
    for (const stream of DROP_ORDER) {
      while (!stuck && !done()) {
        const range = { after: inflight.get(stream) ?? 0, upTo: ceiling.get(stream) ?? 0 };
        let want = this.rowsToFree(u, limits, diskFullTarget);
        let dropped: Omit<DropReport, 'reason' | 'stream'> | null = null;
        for (;;) {
          try {
            dropped = this.dropOldest(stream, range, want, why);
            break;
          } catch (err) {
            // On a full disk a drop needs room in the WAL too: fold the WAL in and try a smaller one. At one row
            // there is nothing smaller; what was dropped so far is committed and reported all the same.
            if (why !== 'disk-full' || !isStorageFull(err) || want <= 1) {
              if (!reports.size) throw err;
              stuck = true;
              break;
            }
            this.checkpoint();
            want = Math.max(1, Math.floor(want / 8));
          }
        }
        if (!dropped) break;
        const r = reports.get(stream) ?? { stream, count: 0, ranges: [], reason: why };
        r.count += dropped.count;
        r.ranges.push(...dropped.ranges);
        reports.set(stream, r);
        u = this.usage();
      }
    }
    if (why !== 'quota') {
      // Space for the file system: hand the freed pages back and fold the WAL in, or nothing is freed on disk. In
      // steps, each folded in and the WAL truncated before the next: moving pages writes them to the WAL, and all
      // at once could need more room than the disk has. The drops are committed whatever happens here.
      try {
        while (this.vacuumStep(VACUUM_STEP_PAGES) > 0) this.checkpoint();
      } catch {
        // no room even for a step: the freed pages stay in the file, where the next records go
      }
      this.checkpoint();
    }
    return [...reports.values()];
  }

  /** An estimate of how many rows hold the bytes still to free, within one transaction's bound. */
  private rowsToFree(u: StorageUsage, limits: StorageLimits, diskFullTarget: number): number {
    let rows = 0;
    for (const s of STREAMS)
      rows += this.sql(`SELECT COUNT(*) FROM ${table(s)}`)
        .pluck()
        .get() as number;
    rows ||= 1;
    const perRow = Math.max(64, u.usedBytes / rows);
    const excess = Math.max(
      diskFullTarget,
      limits.maxBytes ? u.usedBytes - limits.maxBytes * QUOTA_HEADROOM : 0,
      limits.minFreeBytes ? limits.minFreeBytes / QUOTA_HEADROOM - u.freeBytes - u.reclaimableBytes : 0,
    );
    return Math.min(DROP_CHUNK, Math.max(100, Math.ceil(excess / perRow)));
  }

  /**
   * Drops up to `limit` of the oldest unsent records of `stream` that are not in flight, and commits, in the same
   * transaction, the counter and the `records-dropped` event that tells subscribers which seqs will never come.
   */
  private dropOldest(
    stream: StreamName,
    seqs: { after: number; upTo: number },
    limit: number,
    reason: DropReason,
  ): Omit<DropReport, 'reason' | 'stream'> | null {
    // Rows handed out on this connection and not yet taken by the broker are in flight and stay; rows the broker
    // took (awaiting the centre's confirmation) may go, announced like any other: the centre keeps whichever of
    // the record and the announcement it gets. Announcements themselves never go (ANNOUNCEMENTS).
    const acks = this.acksOf(stream);
    const select = this.sql(
      `SELECT seq FROM ${table(stream)} WHERE seq > ? AND seq <= ?
         AND ('${stream}' <> 'events' OR kind NOT IN ${ANNOUNCEMENTS}) ORDER BY seq LIMIT ?`,
    ).pluck();
    const del = this.sql(`DELETE FROM ${table(stream)} WHERE seq = ?`);
    const count = this.sql('UPDATE streams SET dropped_total = dropped_total + ? WHERE name = ?');
    const published = acks.publishedSpans();
    const isPublished = (seq: number) => published.some(([lo, hi]) => seq >= lo && seq <= hi);
    return this.tx(() => {
      const victims: number[] = [];
      let after = acks.acked;
      while (victims.length < limit) {
        const got = select.all(after, seqs.upTo, limit) as number[];
        for (const seq of got) {
          if (victims.length >= limit) break;
          if (acks.isAcked(seq) || (seq <= seqs.after && !isPublished(seq))) continue;
          victims.push(seq);
        }
        if (got.length < limit) break;
        after = got[got.length - 1]!;
      }
      if (!victims.length) return null;
      this.recent.clear();
      for (const seq of victims) del.run(seq);
      this.saveStreams(); // the row of the stream exists, with its next seq, before a top row goes
      count.run(victims.length, stream);
      const ranges = seqRanges(victims);
      this.announceDrop(stream, victims.length, ranges, reason);
      return { count: victims.length, ranges };
    });
  }

  /**
   * Commits the `records-dropped` notice of a drop. A long outage on a full disk drops again and again: while
   * the previous notice of the same stream and reason has not left (never handed out, so nobody has seen it),
   * the new ranges are merged into it instead of adding one more notice.
   */
  private announceDrop(stream: StreamName, count: number, ranges: Array<[number, number]>, reason: DropReason): void {
    const now = Date.now();
    const last = this.sql(`SELECT seq, payload FROM ${table('events')} ORDER BY seq DESC LIMIT 1`).get() as
      { seq: number; payload: string | Buffer } | undefined;
    const events = this.acksOf('events');
    if (last && last.seq > this.handedOutEvents && !events.isAcked(last.seq) && !events.isPublished(last.seq)) {
      const p = JSON.parse(payloadText(last.payload)) as { type?: string; stream?: string; reason?: string; count?: number; ranges?: Array<[number, number]> };
      if (p.type === 'records-dropped' && p.stream === stream && p.reason === reason && Array.isArray(p.ranges) && p.ranges.length < 256) {
        const merged = mergeRanges([...p.ranges, ...ranges]);
        this.sql(`UPDATE ${table('events')} SET payload = ? WHERE seq = ?`).run(
          storedPayload(JSON.stringify({ ...p, ts: now, count: (p.count ?? 0) + count, ranges: merged })),
          last.seq,
        );
        return;
      }
    }
    this.append([{ stream: 'events', ts: now, asset: '', payload: { ts: now, type: 'records-dropped', stream, count, ranges, reason } }]);
  }

  /** Hands up to `pages` free pages back to the file system; small steps, so a writer never waits long. */
  vacuumStep(pages = 256): number {
    const before = this.db.pragma('freelist_count', { simple: true }) as number;
    if (!before) return 0;
    this.db.pragma(`incremental_vacuum(${Math.min(before, pages)})`);
    return before - (this.db.pragma('freelist_count', { simple: true }) as number);
  }

  /** Folds the WAL into the database and truncates it; a reader in the way only postpones it. */
  checkpoint(): void {
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // SQLITE_BUSY: a reader holds the WAL; SQLite checkpoints later
    }
  }

  /** Pending rows of `stream` (above its watermark, less those acknowledged out of order) and the oldest one's ts. */
  private pendingOf(stream: StreamName): { n: number; oldest: number | null } {
    const acks = this.acksOf(stream);
    let n = this.sql(`SELECT COUNT(*) FROM ${table(stream)} WHERE seq > ?`)
      .pluck()
      .get(acks.acked) as number;
    for (const [lo, hi] of acks.ackedAbove()) n -= this.countRows(stream, lo, hi);
    if (!n) return { n: 0, oldest: null };
    const first = this.rowsAbove(stream, acks.acked, 1)[0];
    return { n, oldest: first?.ts ?? null };
  }

  counts(): StreamCounts[] {
    if (!this.acks.size) this.loadAcks(); // a read-only handle (`forewarn status`) sees the watermarks as last written
    const streams = new Map(
      (
        this.sql('SELECT name, next_seq, sent_total, dropped_total, last_sent_ts FROM streams').all() as Array<{
          name: StreamName;
          next_seq: number;
          sent_total: number;
          dropped_total: number;
          last_sent_ts: number | null;
        }>
      ).map((r) => [r.name, r]),
    );
    // A reader in another process (`forewarn status`) sees the counters and watermarks as last written (at most
    // ackCommitDelayMs old: a few records may still show as pending) and the next seqs from the rows themselves;
    // this process adds what it has not written yet.
    const next = this.db.readonly ? this.storedNextSeqs(this.seqBaseForRead()) : this.seqs;
    return STREAMS.map((stream) => {
      const unsaved = this.unsavedSent.get(stream);
      const lastSentTs = streams.get(stream)?.last_sent_ts ?? null;
      const pending = this.pendingOf(stream);
      return {
        stream,
        pending: pending.n,
        sentTotal: (streams.get(stream)?.sent_total ?? 0) + (unsaved?.count ?? 0),
        droppedTotal: streams.get(stream)?.dropped_total ?? 0,
        firstSeq: this.seqBaseForRead(),
        lastSeq: (next.get(stream) ?? this.seqBaseForRead()) - 1,
        oldestPendingTs: pending.oldest,
        lastSentTs: unsaved ? Math.max(unsaved.lastTs, lastSentTs ?? 0) : lastSentTs,
      };
    });
  }

  /** The read-only handle never ran reloadSeqs. */
  private seqBaseForRead(): number {
    return this.db.readonly ? Number(this.getMeta('seq_base') ?? '1') : this.seqBase;
  }

  /** Pending records the broker has not taken yet (all pending ones in broker mode): what a backlog still has to send. */
  unpublishedTotal(): number {
    return this.pendingTotal() - this.unconfirmedTotal();
  }

  /** Pending records in all streams: cheaper than counts() for the drain loop. */
  pendingTotal(): number {
    if (!this.acks.size) this.loadAcks();
    let n = 0;
    for (const s of STREAMS) n += this.pendingOf(s).n;
    return n;
  }

  /** Pending records of one stream, oldest first, parsed: for inspection, not for the drain loop. */
  pending(stream: StreamName, limit = 1000): StoredRecord[] {
    if (!this.acks.size) this.loadAcks();
    return this.rowsAbove(stream, 0, limit).map((r) => ({
      id: r.id,
      stream: r.stream,
      seq: r.seq,
      ts: r.ts,
      asset: r.asset,
      payload: JSON.parse(r.json) as Record<string, unknown>,
    }));
  }

  /** The newest risk record for each asset and model, for `forewarn status`. */
  latestRisk(): StoredRecord[] {
    const rows = this.sql(
      `SELECT r.id, 'risk' AS stream, r.seq, r.ts, r.asset, r.payload FROM ${table('risk')} r
       JOIN (SELECT MAX(seq) AS seq FROM ${table('risk')} GROUP BY asset, kind) m ON m.seq = r.seq
       ORDER BY r.asset`,
    ).all() as Array<Omit<StoredRecord, 'payload'> & { payload: string | Buffer }>;
    return rows.map((r) => ({ ...r, payload: JSON.parse(payloadText(r.payload)) as Record<string, unknown> }));
  }

  /** Alerts raised and not yet cleared, so a restart neither repeats nor forgets them. */
  activeAlerts(): Array<{ key: string; state: Record<string, unknown> }> {
    return (this.sql('SELECT key, state FROM active_alerts').all() as Array<{ key: string; state: string }>).map((r) => ({
      key: r.key,
      state: JSON.parse(r.state) as Record<string, unknown>,
    }));
  }

  /**
   * Commits alert records and the matching change to the active set in one transaction: an alert is never
   * marked raised without its record in the outbox, nor the other way round.
   */
  commitAlerts(
    records: ReadonlyArray<{ ts: number; asset: string; payload: Record<string, unknown> }>,
    active: { set?: ReadonlyArray<{ key: string; state: Record<string, unknown> }>; remove?: readonly string[] },
  ): void {
    const put = this.sql('INSERT INTO active_alerts (key, state) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET state = excluded.state');
    const del = this.sql('DELETE FROM active_alerts WHERE key = ?');
    this.tx(() => {
      if (records.length) this.append(records.map((r) => ({ stream: 'alerts' as const, ...r })));
      for (const a of active.set ?? []) put.run(a.key, JSON.stringify(a.state));
      for (const k of active.remove ?? []) del.run(k);
    });
  }

  getMeta(key: string): string | undefined {
    return (this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
  }

  setMeta(key: string, value: string): void {
    const put = this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value');
    this.atomic(() => put.run(key, value));
  }

  /** Increments and returns the boot sequence number (Sparkplug's bdSeq idea): subscribers see restarts. */
  nextBootSeq(): number {
    const next = Number(this.getMeta('boot_seq') ?? '0') + 1;
    this.setMeta('boot_seq', String(next));
    try {
      this.epoch?.reserve(this.highestNextSeq(), next);
    } catch {
      // only the boot number's reservation: a fresh file still counts boots on from the clock
    }
    return next;
  }

  close(): void {
    if (!this.db.open) return;
    // Fold the WAL back into the main file so a copied database is complete (the waiting acknowledgements first).
    if (!this.db.readonly) {
      try {
        this.commitMarks();
      } catch {
        // a full disk: the acknowledgements not written go again after the restart (the centre drops duplicates)
      }
      this.checkpoint();
    }
    this.ackTimer?.clear();
    this.ackTimer = null;
    this.db.close();
  }
}

/**
 * Payloads at least this long are stored deflated (a BLOB; shorter ones stay JSON text): a host reading of about
 * 1.2 kB takes about 480 bytes, four to a 2 KiB leaf, so the pages a new leaf costs (its parent, the pointer map,
 * the header) come once in four commits instead of every commit, and an anomaly score or risk record shares fewer
 * pages too. Level 1: as small as level 6 here, and faster; the cost per reading is a row of
 * test/bench/reading-path.bench.ts.
 * What the store looks up in SQL is in the `kind` column (kindOf), not in the payload.
 */
const DEFLATE_MIN_BYTES = 256;

/**
 * Deflate's window and hash sized to the payload: a window as large as the payload finds every match zlib's
 * default 32 KiB one would. Its state, by zlib's own formula (1 << (windowBits + 2)) + (1 << (memLevel + 9)) bytes,
 * is 16 KiB for a host reading of about 1.2 kB (windowBits 11, memLevel 4) instead of 256 KiB allocated on every
 * call (the CPU per call is the same in a hot loop: test/bench/reading-path.bench.ts). Inflating needs nothing: a
 * 32 KiB window reads any smaller.
 */
export function deflateOptions(bytes: number): { level: number; windowBits: number; memLevel: number } {
  const windowBits = Math.min(15, Math.max(9, Math.ceil(Math.log2(bytes))));
  return { level: 1, windowBits, memLevel: Math.min(8, Math.max(1, windowBits - 7)) };
}

function storedPayload(json: string): string | Buffer {
  if (json.length < DEFLATE_MIN_BYTES) return json;
  const data = Buffer.from(json);
  return deflateRawSync(data, deflateOptions(data.length));
}

/** A stored payload as JSON text. */
function payloadText(payload: string | Buffer): string {
  return typeof payload === 'string' ? payload : inflateRawSync(payload).toString();
}

/** Rows as read from SQLite, the deflated payloads inflated back to their JSON text. */
function readRows(rows: unknown[]): OutboxRecord[] {
  for (const r of rows as Array<{ json: string | Buffer }>) r.json = payloadText(r.json);
  return rows as OutboxRecord[];
}

/** The lowest and highest of a batch's seqs: its rows are consecutive among their stream's pending ones. */
function span(seqs: readonly number[]): [number, number] {
  let lo = seqs[0]!;
  let hi = lo;
  for (const s of seqs) {
    if (s < lo) lo = s;
    if (s > hi) hi = s;
  }
  return [lo, hi];
}

/**
 * SQLite and OS error codes of a write refused for lack of space. SQLITE_FULL is SQLite's own word for it; on a
 * file system full to the last block the same refusal surfaces as ENOSPC, or as an I/O error writing the WAL or
 * growing the -shm file (tmpfs, ext4).
 */
const NO_SPACE_CODES = new Set(['SQLITE_FULL', 'ENOSPC', 'SQLITE_IOERR_WRITE', 'SQLITE_IOERR_SHMSIZE', 'SQLITE_IOERR_FSYNC']);

/** Whether a failed write (or open) failed for lack of space, as opposed to other I/O errors or corruption. */
export function isStorageFull(err: unknown): boolean {
  const code = (e: unknown) => (e as { code?: unknown } | undefined)?.code;
  return [code(err), code((err as { cause?: unknown } | undefined)?.cause)].some((c) => typeof c === 'string' && NO_SPACE_CODES.has(c));
}
