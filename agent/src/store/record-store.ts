import { existsSync, renameSync, statfsSync, statSync } from 'node:fs';
import { createStorageDir } from './storage-limits.js';
import { mergeRanges, seqRanges } from '../core/seq-ranges.js';
import type { SeqEpoch } from './seq-epoch.js';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ForewarnError, describeError } from '../core/errors.js';
import { StatementCache, restrictDatabaseFiles } from './sqlite-files.js';
import {
  DROP_ORDER,
  STREAM_PRIORITY,
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

export { STREAM_PRIORITY, STREAMS, type StreamName, type StreamCounts } from './outbox.js';

/**
 * The SQLite outbox: every record the agent produces is committed here first, with a per-stream sequence
 * number, and leaves only when the broker has acknowledged it (`markSent`) or the storage policy drops it
 * (`enforceQuota`, counted and announced). See outbox.ts for the contract.
 */

export const DB_FILE = 'forewarn.db';
const SCHEMA_VERSION = 5;

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
   * Acknowledgement marks (the broker's PUBACK, the centre's confirmation) wait up to this long in an open
   * transaction and are committed with the next records instead of in a commit of their own: one write to flash
   * per reading instead of three. A crash loses only marks not yet written (those records are sent again and the
   * centre drops the duplicates). 0 commits each mark at once.
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
 * The acknowledged counters (`sent_total`, `last_sent_ts`: display only) are written at most this often, with a
 * commit that happens anyway: rewriting the `streams` row on every acknowledgement cost one page per commit.
 */
const SENT_COUNTERS_SAVE_MS = 60_000;

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
   * Events rows at or below this id may have reached the broker (handed out by this process, or by an earlier one):
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
    this.db = new Database(this.file, { timeout: 5000 });
    restrictDatabaseFiles(this.file);
    // The first statement reads the header: a file that is not a database fails here.
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
    const st = statSync(this.file);
    this.identity = { dev: st.dev, ino: st.ino };
    this.handedOutEvents = this.maxIds().get('events') ?? 0;
    for (const [stream, id] of this.maxIds()) this.lastIds.set(stream, id);
  }

  /**
   * Per stream, an id no row of it exceeds (the last one appended; never too low, even after a rollback): lets
   * nextBatch skip a stream with nothing past its cursor without a query.
   */
  private readonly lastIds = new Map<StreamName, number>();
  /** Transactions in progress (atomic, mark): marks are committed only at the outermost level. */
  private depth = 0;
  /** A transaction this store began for acknowledgement marks, committed with the next write or by `marksTimer`. */
  private marksOpen = false;
  private marksTimer: NodeJS.Timeout | null = null;
  /** Acknowledged rows per stream not yet added to `streams.sent_total` (saveStreams). */
  private readonly unsavedSent = new Map<StreamName, { count: number; lastTs: number }>();
  private sentSavedAt = Date.now();
  /** Per output reading the outbox on its own (holdFor), its position per stream. */
  private readonly holds = new Map<string, Map<StreamName, number>>();

  private sql(text: string): Database.Statement {
    return this.statements.get(text);
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
      throw err;
    }
  }

  /**
   * Runs `fn` in a transaction (a savepoint within another one). At the outermost level the commit takes with it
   * the acknowledgement marks that waited, so they cost no commit of their own; if that commit fails (a full disk)
   * all of it rolls back and the error is thrown: the caller's records were not written.
   */
  private atomic<T>(fn: () => T): T {
    this.depth++;
    try {
      const result = this.db.transaction(fn)();
      if (this.depth === 1) this.commitMarks();
      return result;
    } finally {
      this.depth--;
    }
  }

  /** An acknowledgement mark: applied now (queries see it), committed with the next write or after ackCommitDelayMs. */
  private mark<T>(fn: () => T): T {
    const delay = this.options.ackCommitDelayMs ?? 0;
    if (this.depth > 0 || delay <= 0 || this.db.readonly) return this.atomic(fn);
    if (!this.db.inTransaction) {
      this.db.exec('BEGIN');
      this.marksOpen = true;
    }
    this.depth++;
    try {
      return this.db.transaction(fn)();
    } finally {
      this.depth--;
      if (!this.marksTimer && this.marksOpen) {
        this.marksTimer = setTimeout(() => {
          this.marksTimer = null;
          try {
            this.commitMarks();
          } catch {
            // A full disk: the marks are gone, their records go again; the next append reports the disk.
          }
        }, delay);
        this.marksTimer.unref();
      }
    }
  }

  /** Commits the acknowledgement marks waiting in this store's open transaction, if any; rolls them back if that fails. */
  commitMarks(): void {
    if (this.marksTimer) clearTimeout(this.marksTimer);
    this.marksTimer = null;
    if (!this.marksOpen) return;
    this.marksOpen = false;
    if (!this.db.open || !this.db.inTransaction) return; // SQLite rolled it back already (a failed write)
    try {
      this.db.exec('COMMIT');
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw err;
    }
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new Error(`database schema ${version} is newer than this agent understands (${SCHEMA_VERSION}); upgrade the agent`);
    }
    if (version < 1) {
      // Must precede the first table: freed pages can then go back to the file system a few at a time.
      this.db.pragma('auto_vacuum = INCREMENTAL');
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS streams (name TEXT PRIMARY KEY, next_seq INTEGER NOT NULL, sent_total INTEGER NOT NULL DEFAULT 0, last_sent_ts INTEGER);
        CREATE TABLE IF NOT EXISTS records (
          id INTEGER PRIMARY KEY,
          stream TEXT NOT NULL,
          seq INTEGER NOT NULL,
          priority INTEGER NOT NULL,
          ts INTEGER NOT NULL,
          asset TEXT NOT NULL,
          payload TEXT NOT NULL,
          sent_ts INTEGER,
          UNIQUE (stream, seq)
        );
        CREATE INDEX IF NOT EXISTS records_pending ON records (stream, id) WHERE sent_ts IS NULL;
        CREATE TABLE IF NOT EXISTS active_alerts (key TEXT PRIMARY KEY, state TEXT NOT NULL);
        PRAGMA user_version = 1;
      `);
    }
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
    if (version < 3) {
      // Only the latest risk per asset is ever looked up: a partial index spares every telemetry insert one
      // index update (about 9% of the ingest cost, docs/benchmarks.md).
      this.db.exec(`
        DROP INDEX IF EXISTS records_latest;
        CREATE INDEX IF NOT EXISTS records_latest_risk ON records (asset, id) WHERE stream = 'risk';
        PRAGMA user_version = 3;
      `);
    }
    if (version < 4) {
      // With central acknowledgement a row the broker took stays until the centre confirms it (docs/delivery.md):
      // `puback_ts` says the broker has it, `sent_ts` still says it may go.
      this.db.exec(`
        ALTER TABLE records ADD COLUMN puback_ts INTEGER;
        PRAGMA user_version = 4;
      `);
    }
    if (version < 5) {
      // Flash writes (docs/delivery.md): an index on sent_ts was one more page rewritten by every acknowledgement.
      // purgeSent finds acknowledged rows in id order instead, below the first pending one.
      this.db.exec(`
        DROP INDEX IF EXISTS records_sent;
        PRAGMA user_version = 5;
      `);
    }
  }

  /** Commits records in one transaction and returns their sequence numbers. */
  append(items: readonly NewRecord[]): number[] {
    // The epoch's reservation is written before any seq past it is committed (a no-op almost always).
    if (this.epoch && this.highestNextSeq() + items.length >= this.epoch.ceiling) {
      try {
        this.epoch.reserve(this.highestNextSeq() + items.length);
      } catch (err) {
        throw new ForewarnError('FW_ERR_STORAGE_WRITE', `${this.epoch.file}: ${describeError(err)}`, { cause: err });
      }
    }
    const insert = this.sql('INSERT INTO records (stream, seq, priority, ts, asset, payload) VALUES (?, ?, ?, ?, ?, ?)');
    // The next seq is not written here: it is the highest seq in the table + 1 (reloadSeqs), and `streams.next_seq`
    // is saved only where rows are deleted (saveStreams), so one commit touches one page fewer.
    const run = () =>
      this.atomic(() => {
        const seqs = items.map((item) => {
          const seq = this.seqs.get(item.stream) ?? this.seqBase;
          const { lastInsertRowid } = insert.run(item.stream, seq, STREAM_PRIORITY[item.stream], item.ts, item.asset, JSON.stringify(item.payload));
          this.lastIds.set(item.stream, Number(lastInsertRowid));
          this.seqs.set(item.stream, seq + 1);
          return seq;
        });
        if (Date.now() - this.sentSavedAt >= SENT_COUNTERS_SAVE_MS && this.unsavedSent.size) this.saveStreams();
        return seqs;
      });
    try {
      return run();
    } catch (err) {
      // The transaction rolled back; the cached counters must follow it.
      this.reloadSeqs();
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
    const top = this.sql('SELECT MAX(seq) AS seq FROM records WHERE stream = ?');
    for (const s of STREAMS) {
      const seq = (top.get(s) as { seq: number | null }).seq;
      if (seq !== null) out.set(s, Math.max(out.get(s) ?? 0, seq + 1));
    }
    for (const [s, next] of out) out.set(s, Math.max(next, base));
    return out;
  }

  /**
   * Writes every stream's next seq and the acknowledged counters not yet written. Runs inside the transaction of
   * anything that deletes rows (a purge, a drop), so a deleted top row never lets its seq be used again, and with
   * a records commit at most every SENT_COUNTERS_SAVE_MS for the counters.
   */
  private saveStreams(): void {
    const put = this.sql(
      `INSERT INTO streams (name, next_seq, sent_total, last_sent_ts) VALUES (?, ?, ?, ?)
       ON CONFLICT(name) DO UPDATE SET next_seq = MAX(next_seq, excluded.next_seq), sent_total = sent_total + excluded.sent_total,
       last_sent_ts = COALESCE(excluded.last_sent_ts, last_sent_ts)`,
    );
    for (const s of STREAMS) {
      const next = this.seqs.get(s);
      const sent = this.unsavedSent.get(s);
      if (next === undefined && !sent) continue;
      put.run(s, next ?? this.seqBase, sent?.count ?? 0, sent?.lastTs ?? null);
    }
    this.unsavedSent.clear();
    this.sentSavedAt = Date.now();
  }

  /** Counts acknowledged rows in memory; saveStreams writes them with a commit that happens anyway. */
  private countSent(stream: StreamName, n: number, now: number): void {
    const c = this.unsavedSent.get(stream) ?? { count: 0, lastTs: now };
    c.count += n;
    c.lastTs = Math.max(c.lastTs, now);
    this.unsavedSent.set(stream, c);
  }

  /**
   * The next pending records of the highest-priority stream that has any past its cursor, bounded in count and
   * bytes, and never mixing backlog (historical) with live records.
   */
  nextBatch(request: BatchRequest): OutboxBatch | null {
    const select = this.sql(
      'SELECT id, stream, seq, ts, asset, payload AS json FROM records WHERE sent_ts IS NULL AND stream = ? AND id > ? ORDER BY id LIMIT ?',
    );
    for (const stream of STREAMS_BY_PRIORITY) {
      if (request.skip?.has(stream)) continue;
      // Nothing appended past the cursor since: no query (the sync asks after every commit and every PUBACK).
      if ((request.cursors?.get(stream) ?? 0) >= (this.lastIds.get(stream) ?? Number.MAX_SAFE_INTEGER)) continue;
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
        const rows = select.all(stream, after, want) as OutboxRecord[];
        for (const r of rows) {
          const size = r.json.length + RECORD_OVERHEAD;
          if (records.length === 0) historical = r.id < liveFrom;
          else if (bytes + size > request.maxBytes || r.id < liveFrom !== historical) {
            full = true;
            break;
          }
          bytes += size;
          records.push(r);
        }
        if (rows.length < want) break;
        after = rows[rows.length - 1]!.id;
      }
      if (!records.length) continue;
      this.rowBytes = Math.max(RECORD_OVERHEAD, bytes / records.length);
      if (stream === 'events') this.handedOutEvents = Math.max(this.handedOutEvents, records[records.length - 1]!.id);
      return { stream, historical, records, bytes };
    }
    return null;
  }

  /**
   * Marks records acknowledged by the broker; returns how many were newly marked (a duplicate acknowledgement
   * counts once). The ids of one batch are consecutive among that stream's pending rows, so one range update
   * covers them.
   */
  markSent(stream: StreamName, ids: readonly number[], now = Date.now()): number {
    if (!ids.length) return 0;
    const [lo, hi] = idSpan(ids);
    const mark = this.sql('UPDATE records SET sent_ts = ? WHERE stream = ? AND id BETWEEN ? AND ? AND sent_ts IS NULL');
    return this.mark(() => {
      const changed = mark.run(now, stream, lo, hi).changes;
      if (changed) this.countSent(stream, changed, now);
      return changed;
    });
  }

  /**
   * With central acknowledgement: the broker took these rows (its PUBACK), but they stay until the centre confirms
   * them (`confirm`). Returns how many were newly marked.
   */
  markPublished(stream: StreamName, ids: readonly number[], now = Date.now()): number {
    if (!ids.length) return 0;
    const [lo, hi] = idSpan(ids);
    const mark = this.sql('UPDATE records SET puback_ts = ? WHERE stream = ? AND id BETWEEN ? AND ? AND sent_ts IS NULL AND puback_ts IS NULL');
    return this.mark(() => mark.run(now, stream, lo, hi).changes);
  }

  /**
   * The centre confirmed every seq of `stream` up to `through`: those rows are acknowledged (kept for retention,
   * then purged). Returns how many were newly acknowledged.
   */
  confirm(stream: StreamName, through: number, now = Date.now()): number {
    // Through the pending index: the seq index would walk every acknowledged row below `through` as well.
    // Only rows the broker took: the centre cannot hold a record that never left (a seq it knows from another file).
    const mark = this.sql(
      'UPDATE records INDEXED BY records_pending SET sent_ts = ? WHERE stream = ? AND sent_ts IS NULL AND puback_ts IS NOT NULL AND seq <= ?',
    );
    return this.mark(() => {
      const changed = mark.run(now, stream, through).changes;
      if (changed) this.countSent(stream, changed, now);
      return changed;
    });
  }

  /** `confirm` for several streams in one transaction: one commit (one fsync) per acknowledgement message. */
  confirmAll(watermarks: ReadonlyMap<StreamName, number>, now = Date.now()): number {
    return this.mark(() => {
      let n = 0;
      for (const [stream, through] of watermarks) n += this.confirm(stream, through, now);
      return n;
    });
  }

  /**
   * Per stream, the id below which every pending row is already at the broker (marked published): where a new
   * connection starts sending, so rows the broker took are not sent again on every reconnect. Rows it took that
   * the centre then reports missing go out again through `heldRecords`.
   */
  publishedCursors(): Map<StreamName, number> {
    const firstUnpublished = this.sql(
      'SELECT MIN(id) AS id FROM records INDEXED BY records_pending WHERE stream = ? AND sent_ts IS NULL AND puback_ts IS NULL',
    );
    const last = this.maxIds();
    const out = new Map<StreamName, number>();
    for (const s of STREAMS) {
      const first = (firstUnpublished.get(s) as { id: number | null }).id;
      out.set(s, first === null ? last.get(s)! : first - 1);
    }
    return out;
  }

  /** The seq range of rows of `stream` the broker took before `before`, above `seq`, still unconfirmed; null when none. */
  unconfirmedAbove(stream: StreamName, seq: number, before: number): { lo: number; hi: number } | null {
    const r = this.sql(
      'SELECT MIN(seq) AS lo, MAX(seq) AS hi FROM records INDEXED BY records_pending WHERE stream = ? AND sent_ts IS NULL AND puback_ts IS NOT NULL AND puback_ts < ? AND seq > ?',
    ).get(stream, before, seq) as { lo: number | null; hi: number | null };
    return r.lo === null || r.hi === null ? null : { lo: r.lo, hi: r.hi };
  }

  /** Rows the broker took that wait for the centre's confirmation: pending, published, per stream. */
  unconfirmedTotal(): number {
    return (this.sql('SELECT COUNT(*) AS n FROM records INDEXED BY records_pending WHERE sent_ts IS NULL AND puback_ts IS NOT NULL').get() as { n: number }).n;
  }

  /**
   * The rows this file still holds with seqs in [from, to] of `stream`, acknowledged or not, in seq order, at most
   * `limit`: what the agent can send again when the centre reports them missing.
   */
  heldRecords(stream: StreamName, from: number, to: number, limit: number, onlyPending = false): OutboxRecord[] {
    const rows = this.sql(
      `SELECT id, stream, seq, ts, asset, payload AS json FROM records WHERE stream = ? AND seq BETWEEN ? AND ?${onlyPending ? ' AND sent_ts IS NULL' : ''} ORDER BY seq LIMIT ?`,
    ).all(stream, from, to, limit) as OutboxRecord[];
    if (stream === 'events') for (const r of rows) this.handedOutEvents = Math.max(this.handedOutEvents, r.id);
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
    const pending = old.prepare('SELECT stream, seq, priority, ts, asset, payload, puback_ts FROM records WHERE sent_ts IS NULL ORDER BY id').all() as Array<{
      stream: StreamName;
      seq: number;
      priority: number;
      ts: number;
      asset: string;
      payload: string;
      puback_ts: number | null;
    }>;
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
    // Marks waiting in the old file's transaction go with it: the carried records are sent again anyway.
    if (this.marksTimer) clearTimeout(this.marksTimer);
    this.marksTimer = null;
    this.marksOpen = false;
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
      const insert = this.sql('INSERT INTO records (stream, seq, priority, ts, asset, payload) VALUES (?, ?, ?, ?, ?, ?)');
      for (const r of pending) insert.run(r.stream, r.seq, r.priority, r.ts, r.asset, r.payload);
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
    // The carried rows have new ids in the new file.
    for (const [stream, id] of this.maxIds()) this.lastIds.set(stream, id);
    return { reason, setAside, firstSeq: this.seqBase, carried };
  }

  maxIds(): Map<StreamName, number> {
    const out = new Map<StreamName, number>();
    const st = this.sql('SELECT MAX(id) AS id FROM records WHERE stream = ?');
    for (const s of STREAMS) out.set(s, (st.get(s) as { id: number | null }).id ?? 0);
    return out;
  }

  /**
   * Deletes acknowledged records older than `beforeTs`, a bounded number at a time so collection never waits long.
   * Rows another output still needs (`holdFor`: past its cursor) stay, unless `ignoreHolds` (space must be freed).
   */
  purgeSent(beforeTs: number, maxRows = 5000, ignoreHolds = false): number {
    // No index on sent_ts (it cost a page per acknowledgement): each stream's rows are walked in seq order (the
    // (stream, seq) index), which is near enough acknowledgement order, and only below its first pending row
    // (through the pending index) and its first acknowledged row still within retention. The walk stops where the
    // purge must and never crosses a backlog. A row acknowledged out of order waits for those below it: kept
    // longer, never shorter. Making room for the quota (beforeTs: no limit) takes every acknowledged row instead.
    const firstPending = this.sql('SELECT seq FROM records INDEXED BY records_pending WHERE stream = ? AND sent_ts IS NULL ORDER BY id LIMIT 1');
    const young = this.sql('SELECT seq FROM records WHERE stream = ? AND seq < ? AND sent_ts >= ? ORDER BY seq LIMIT 1');
    const purge = this.sql(
      'DELETE FROM records WHERE id IN (SELECT id FROM records WHERE stream = ? AND seq < ? AND seq <= ? AND sent_ts IS NOT NULL AND sent_ts < ? ORDER BY seq LIMIT ?)',
    );
    return this.atomic(() => {
      let n = 0;
      for (const s of STREAMS) {
        if (n >= maxRows) break;
        let below = Number.MAX_SAFE_INTEGER;
        if (beforeTs < Number.MAX_SAFE_INTEGER) {
          below = (firstPending.get(s) as { seq: number } | undefined)?.seq ?? below;
          below = (young.get(s, below, beforeTs) as { seq: number } | undefined)?.seq ?? below;
        }
        n += purge.run(s, below, ignoreHolds ? Number.MAX_SAFE_INTEGER : this.heldAbove(s), beforeTs, maxRows - n).changes;
      }
      if (n) this.saveStreams(); // the next seqs, should the top rows have gone
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
    return this.sql('SELECT id, stream, seq, ts, asset, payload AS json FROM records WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?').all(
      stream,
      afterSeq,
      limit,
    ) as OutboxRecord[];
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
    // Prepared once (db.pragma() prepares on every call): this runs on every housekeeping tick.
    const pragma = (name: string) => (this.sql(`PRAGMA ${name}`).get() as Record<string, number>)[name]!;
    const pageSize = pragma('page_size');
    const pages = pragma('page_count');
    const free = pragma('freelist_count');
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
    const ceiling = this.maxIds();
    for (const stream of DROP_ORDER) {
      while (!done()) {
        const range = { after: inflight.get(stream) ?? 0, upTo: ceiling.get(stream) ?? 0 };
        const dropped = this.dropOldest(stream, range, this.rowsToFree(u, limits, diskFullTarget), why);
        if (!dropped) break;
        const r = reports.get(stream) ?? { stream, count: 0, ranges: [], reason: why };
        r.count += dropped.count;
        r.ranges.push(...dropped.ranges);
        reports.set(stream, r);
        u = this.usage();
      }
    }
    if (why !== 'quota') {
      // Space for the file system: hand the freed pages back and fold the WAL in, or nothing is freed on disk.
      this.vacuumStep(Number.MAX_SAFE_INTEGER);
      this.checkpoint();
    }
    return [...reports.values()];
  }

  /** An estimate of how many rows hold the bytes still to free, within one transaction's bound. */
  private rowsToFree(u: StorageUsage, limits: StorageLimits, diskFullTarget: number): number {
    const rows = (this.sql('SELECT COUNT(*) AS n FROM records').get() as { n: number }).n || 1;
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
    ids: { after: number; upTo: number },
    limit: number,
    reason: DropReason,
  ): Omit<DropReport, 'reason' | 'stream'> | null {
    // Rows handed out on this connection and not yet taken by the broker are in flight and stay; rows the broker
    // took (awaiting the centre's confirmation) may go, announced like any other: the centre keeps whichever of
    // the record and the announcement it gets. Announcements themselves never go (ANNOUNCEMENTS).
    const select = this.sql(
      `SELECT id, seq FROM records INDEXED BY records_pending WHERE sent_ts IS NULL AND stream = ? AND id <= ? AND (id > ? OR puback_ts IS NOT NULL)
         AND (stream <> 'events' OR json_extract(payload, '$.type') NOT IN ${ANNOUNCEMENTS}) ORDER BY id LIMIT ?`,
    );
    const del = this.sql('DELETE FROM records WHERE id = ?');
    const count = this.sql('UPDATE streams SET dropped_total = dropped_total + ? WHERE name = ?');
    return this.tx(() => {
      const rows = select.all(stream, ids.upTo, ids.after, limit) as Array<{ id: number; seq: number }>;
      if (!rows.length) return null;
      for (const r of rows) del.run(r.id);
      this.saveStreams(); // the row of the stream exists, with its next seq, before a top row goes
      count.run(rows.length, stream);
      const ranges = seqRanges(rows.map((r) => r.seq));
      this.announceDrop(stream, rows.length, ranges, reason);
      return { count: rows.length, ranges };
    });
  }

  /**
   * Commits the `records-dropped` notice of a drop. A long outage on a full disk drops again and again: while
   * the previous notice of the same stream and reason has not left (never handed out, so nobody has seen it),
   * the new ranges are merged into it instead of adding one more notice.
   */
  private announceDrop(stream: StreamName, count: number, ranges: Array<[number, number]>, reason: DropReason): void {
    const now = Date.now();
    const last = this.sql(
      `SELECT id, payload FROM records WHERE stream = 'events' AND sent_ts IS NULL AND puback_ts IS NULL ORDER BY id DESC LIMIT 1`,
    ).get() as { id: number; payload: string } | undefined;
    if (last && last.id > this.handedOutEvents) {
      const p = JSON.parse(last.payload) as { type?: string; stream?: string; reason?: string; count?: number; ranges?: Array<[number, number]> };
      if (p.type === 'records-dropped' && p.stream === stream && p.reason === reason && Array.isArray(p.ranges) && p.ranges.length < 256) {
        const merged = mergeRanges([...p.ranges, ...ranges]);
        this.sql('UPDATE records SET payload = ? WHERE id = ?').run(JSON.stringify({ ...p, ts: now, count: (p.count ?? 0) + count, ranges: merged }), last.id);
        return;
      }
    }
    this.append([{ stream: 'events', ts: now, asset: '', payload: { ts: now, type: 'records-dropped', stream, count, ranges, reason } }]);
  }

  /** Hands up to `pages` free pages back to the file system; small steps, so a writer never waits long. */
  vacuumStep(pages = 256): number {
    this.commitMarks();
    const before = this.db.pragma('freelist_count', { simple: true }) as number;
    if (!before) return 0;
    this.db.pragma(`incremental_vacuum(${Math.min(before, pages)})`);
    return before - (this.db.pragma('freelist_count', { simple: true }) as number);
  }

  /** Folds the WAL into the database and truncates it; a reader in the way only postpones it. */
  checkpoint(): void {
    try {
      this.commitMarks();
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // SQLITE_BUSY: a reader holds the WAL; SQLite checkpoints later
    }
  }

  counts(): StreamCounts[] {
    const pending = new Map(
      (
        this.sql('SELECT stream, COUNT(*) AS n, MIN(ts) AS oldest FROM records WHERE sent_ts IS NULL GROUP BY stream').all() as Array<{
          stream: StreamName;
          n: number;
          oldest: number;
        }>
      ).map((r) => [r.stream, r]),
    );
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
    // A reader in another process (`forewarn status`) sees the counters as last written (at most a minute old) and
    // the next seqs from the rows themselves; this process adds what it has not written yet.
    const next = this.db.readonly ? this.storedNextSeqs(this.seqBaseForRead()) : this.seqs;
    return STREAMS.map((stream) => {
      const unsaved = this.unsavedSent.get(stream);
      const lastSentTs = streams.get(stream)?.last_sent_ts ?? null;
      return {
        stream,
        pending: pending.get(stream)?.n ?? 0,
        sentTotal: (streams.get(stream)?.sent_total ?? 0) + (unsaved?.count ?? 0),
        droppedTotal: streams.get(stream)?.dropped_total ?? 0,
        firstSeq: this.seqBaseForRead(),
        lastSeq: (next.get(stream) ?? this.seqBaseForRead()) - 1,
        oldestPendingTs: pending.get(stream)?.oldest ?? null,
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
    return (this.sql('SELECT COUNT(*) AS n FROM records INDEXED BY records_pending WHERE sent_ts IS NULL AND puback_ts IS NULL').get() as { n: number }).n;
  }

  /** Pending records in all streams: cheaper than counts() for the drain loop. */
  pendingTotal(): number {
    return (this.sql('SELECT COUNT(*) AS n FROM records WHERE sent_ts IS NULL').get() as { n: number }).n;
  }

  /** Pending records of one stream, oldest first, parsed: for inspection, not for the drain loop. */
  pending(stream: StreamName, limit = 1000): StoredRecord[] {
    const rows = this.sql('SELECT id, stream, seq, ts, asset, payload FROM records WHERE sent_ts IS NULL AND stream = ? ORDER BY id LIMIT ?').all(
      stream,
      limit,
    ) as Array<Omit<StoredRecord, 'payload'> & { payload: string }>;
    return rows.map((r) => ({ ...r, payload: JSON.parse(r.payload) as Record<string, unknown> }));
  }

  /** The newest risk record for each asset and model, for `forewarn status`. */
  latestRisk(): StoredRecord[] {
    const rows = this.sql(
      `SELECT r.id, r.stream, r.seq, r.ts, r.asset, r.payload FROM records r
       JOIN (SELECT MAX(id) AS id FROM records WHERE stream = 'risk' GROUP BY asset, json_extract(payload, '$.model')) m ON m.id = r.id
       ORDER BY r.asset`,
    ).all() as Array<Omit<StoredRecord, 'payload'> & { payload: string }>;
    return rows.map((r) => ({ ...r, payload: JSON.parse(r.payload) as Record<string, unknown> }));
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
    // Fold the WAL back into the main file so a copied database is complete (the waiting marks and counters first).
    if (!this.db.readonly) {
      try {
        if (this.unsavedSent.size) this.atomic(() => this.saveStreams());
      } catch {
        // a full disk: only the display counters of the last minute are not written
      }
      this.checkpoint();
    }
    if (this.db.inTransaction) this.db.exec('ROLLBACK'); // marks a full disk refused: their records go again
    this.db.close();
  }
}

/** The lowest and highest of a batch's ids: its rows are consecutive among their stream's pending ones. */
function idSpan(ids: readonly number[]): [number, number] {
  return [Math.min(...ids), Math.max(...ids)];
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
