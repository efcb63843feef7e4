import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ForewarnError, describeError } from '../errors.js';

/**
 * The SQLite buffer: every record the agent produces is committed here first, with a per-stream sequence
 * number, and leaves the outbox only when the broker has acknowledged it (`markSent`).
 */

/** Streams in drain order: a lower priority number goes first after an outage. */
export const STREAM_PRIORITY = { alerts: 0, risk: 1, telemetry: 3 } as const;
export type StreamName = keyof typeof STREAM_PRIORITY;
export const STREAMS = Object.keys(STREAM_PRIORITY) as StreamName[];

export const DB_FILE = 'forewarn.db';
const SCHEMA_VERSION = 1;

export interface StoredRecord {
  id: number;
  stream: StreamName;
  seq: number;
  ts: number;
  asset: string;
  /** The record as published, without `seq`. */
  payload: Record<string, unknown>;
}

export interface StreamCounts {
  stream: StreamName;
  /** Committed and not yet acknowledged by the broker. */
  pending: number;
  /** Acknowledged since the database was created. */
  sentTotal: number;
  /** Highest sequence number assigned. */
  lastSeq: number;
  oldestPendingTs: number | null;
  lastSentTs: number | null;
}

export interface RecordStoreOptions {
  dir: string;
  synchronous?: 'full' | 'normal';
  readonly?: boolean;
}

export class RecordStore {
  readonly file: string;
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly bumpSeq: Database.Statement;
  private readonly seqs = new Map<StreamName, number>();
  private readonly statements = new Map<string, Database.Statement>();

  constructor(options: RecordStoreOptions) {
    this.file = path.join(options.dir, DB_FILE);
    try {
      if (options.readonly) {
        if (!existsSync(this.file)) throw new Error('no database here yet (the agent has not run with this storage.dir)');
        this.db = new Database(this.file, { readonly: true, fileMustExist: true });
      } else {
        if (!existsSync(options.dir)) mkdirSync(options.dir, { recursive: true, mode: 0o700 });
        this.db = new Database(this.file);
        this.restrictFiles();
        this.db.pragma('journal_mode = WAL');
        this.db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
        this.migrate();
      }
      this.db.pragma('busy_timeout = 5000');
    } catch (err) {
      throw new ForewarnError('FW_ERR_STORAGE_OPEN', `${this.file}: ${describeError(err)}`, { cause: err });
    }
    if (!options.readonly) {
      this.insert = this.db.prepare(
        'INSERT INTO records (stream, seq, priority, ts, asset, payload) VALUES (?, ?, ?, ?, ?, ?)',
      );
      this.bumpSeq = this.db.prepare(
        'INSERT INTO streams (name, next_seq) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET next_seq = excluded.next_seq',
      );
      for (const row of this.db.prepare('SELECT name, next_seq FROM streams').all() as Array<{ name: StreamName; next_seq: number }>) {
        this.seqs.set(row.name, row.next_seq);
      }
    } else {
      this.insert = this.bumpSeq = this.db.prepare('SELECT 1');
    }
  }

  /** Prepared once per SQL text: the drain loop runs these many times a second. */
  private sql(text: string): Database.Statement {
    let st = this.statements.get(text);
    if (!st) this.statements.set(text, (st = this.db.prepare(text)));
    return st;
  }

  /** The database and its WAL files hold telemetry and must not be world-readable. */
  private restrictFiles(): void {
    for (const suffix of ['', '-wal', '-shm']) {
      const f = this.file + suffix;
      if (existsSync(f)) chmodSync(f, 0o600);
    }
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new Error(`database schema ${version} is newer than this agent understands (${SCHEMA_VERSION}); upgrade the agent`);
    }
    if (version < 1) {
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
        CREATE INDEX IF NOT EXISTS records_sent ON records (sent_ts) WHERE sent_ts IS NOT NULL;
        CREATE INDEX IF NOT EXISTS records_latest ON records (stream, asset, id);
        CREATE TABLE IF NOT EXISTS active_alerts (key TEXT PRIMARY KEY, state TEXT NOT NULL);
        PRAGMA user_version = 1;
      `);
    }
  }

  /** Commits records in one transaction and returns their sequence numbers. */
  append(items: ReadonlyArray<{ stream: StreamName; ts: number; asset: string; payload: Record<string, unknown> }>): number[] {
    const run = this.db.transaction(() => {
      const touched = new Set<StreamName>();
      const seqs = items.map((item) => {
        const seq = this.seqs.get(item.stream) ?? 1;
        this.insert.run(item.stream, seq, STREAM_PRIORITY[item.stream], item.ts, item.asset, JSON.stringify(item.payload));
        this.seqs.set(item.stream, seq + 1);
        touched.add(item.stream);
        return seq;
      });
      for (const s of touched) this.bumpSeq.run(s, this.seqs.get(s));
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

  private reloadSeqs(): void {
    this.seqs.clear();
    for (const row of this.db.prepare('SELECT name, next_seq FROM streams').all() as Array<{ name: StreamName; next_seq: number }>) {
      this.seqs.set(row.name, row.next_seq);
    }
  }

  /**
   * The next unacknowledged records of the highest-priority stream that has any with id > that stream's cursor.
   * `cursors` holds, per stream, the last id already handed out on the current connection.
   */
  nextBatch(limit: number, cursors: ReadonlyMap<StreamName, number> = new Map()): StoredRecord[] {
    const byPriority = [...STREAMS].sort((a, b) => STREAM_PRIORITY[a] - STREAM_PRIORITY[b]);
    for (const stream of byPriority) {
      const rows = this
        .sql('SELECT id, stream, seq, ts, asset, payload FROM records WHERE sent_ts IS NULL AND stream = ? AND id > ? ORDER BY id LIMIT ?')
        .all(stream, cursors.get(stream) ?? 0, limit) as Array<Omit<StoredRecord, 'payload'> & { payload: string }>;
      if (rows.length) return rows.map((r) => ({ ...r, payload: JSON.parse(r.payload) as Record<string, unknown> }));
    }
    return [];
  }

  /** Marks records acknowledged by the broker. */
  markSent(stream: StreamName, ids: readonly number[], now = Date.now()): void {
    if (!ids.length) return;
    const mark = this.sql('UPDATE records SET sent_ts = ? WHERE id = ? AND sent_ts IS NULL');
    const count = this.sql('UPDATE streams SET sent_total = sent_total + ?, last_sent_ts = ? WHERE name = ?');
    this.db.transaction(() => {
      let changed = 0;
      for (const id of ids) changed += mark.run(now, id).changes;
      if (changed) count.run(changed, now, stream);
    })();
  }

  /** Deletes acknowledged records older than `beforeTs`, a bounded number at a time so collection never waits long. */
  purgeSent(beforeTs: number, maxRows = 5000): number {
    return this
      .sql('DELETE FROM records WHERE id IN (SELECT id FROM records WHERE sent_ts IS NOT NULL AND sent_ts < ? LIMIT ?)')
      .run(beforeTs, maxRows).changes;
  }

  counts(): StreamCounts[] {
    const pending = new Map(
      (
        this.sql('SELECT stream, COUNT(*) AS n, MIN(ts) AS oldest FROM records WHERE sent_ts IS NULL GROUP BY stream')
          .all() as Array<{ stream: StreamName; n: number; oldest: number }>
      ).map((r) => [r.stream, r]),
    );
    const streams = new Map(
      (this.sql('SELECT name, next_seq, sent_total, last_sent_ts FROM streams').all() as Array<{
        name: StreamName;
        next_seq: number;
        sent_total: number;
        last_sent_ts: number | null;
      }>).map((r) => [r.name, r]),
    );
    return STREAMS.map((stream) => ({
      stream,
      pending: pending.get(stream)?.n ?? 0,
      sentTotal: streams.get(stream)?.sent_total ?? 0,
      lastSeq: (streams.get(stream)?.next_seq ?? 1) - 1,
      oldestPendingTs: pending.get(stream)?.oldest ?? null,
      lastSentTs: streams.get(stream)?.last_sent_ts ?? null,
    }));
  }

  /** The newest record of `stream` for each asset (and model, for risk). */
  latest(stream: StreamName): StoredRecord[] {
    const rows = this.db
      .prepare(
        `SELECT r.id, r.stream, r.seq, r.ts, r.asset, r.payload FROM records r
         JOIN (SELECT MAX(id) AS id FROM records WHERE stream = ? GROUP BY asset, json_extract(payload, '$.model')) m ON m.id = r.id
         ORDER BY r.asset`,
      )
      .all(stream) as Array<Omit<StoredRecord, 'payload'> & { payload: string }>;
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
    this.db.transaction(() => {
      if (records.length) this.append(records.map((r) => ({ stream: 'alerts' as const, ...r })));
      for (const a of active.set ?? []) put.run(a.key, JSON.stringify(a.state));
      for (const k of active.remove ?? []) del.run(k);
    })();
  }

  getMeta(key: string): string | undefined {
    return (this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
  }

  setMeta(key: string, value: string): void {
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  /** Increments and returns the boot sequence number (Sparkplug's bdSeq idea): subscribers see restarts. */
  nextBootSeq(): number {
    const next = Number(this.getMeta('boot_seq') ?? '0') + 1;
    this.setMeta('boot_seq', String(next));
    return next;
  }

  close(): void {
    if (!this.db.open) return;
    if (!this.db.readonly) {
      // Fold the WAL back into the main file so a copied database is complete.
      try {
        this.db.pragma('wal_checkpoint(TRUNCATE)');
      } catch {
        // a reader holding the WAL is fine; SQLite checkpoints later
      }
    }
    this.db.close();
  }
}
