import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ForewarnError, describeError } from '../errors.js';
import { StatementCache, restrictDatabaseFiles } from '../store/sqlite-files.js';
import { parseDropped, parseStorageRecovered, type DecodedBatch, type DecodedStatus } from './decode-batch.js';

/**
 * The central side's SQLite database: every record once, keyed by (agent, stream, seq), plus per stream what
 * arrived twice, late or never. Several subscriber processes may share one file: every message is one
 * IMMEDIATE transaction that reads the stream's state from the database, never from a cache.
 */

const SCHEMA_VERSION = 1;

export interface IngestResult {
  /** Records stored for the first time. */
  inserted: number;
  /** Records already stored (redelivered by the broker or resent by the agent). */
  duplicates: number;
  /** New records below the highest seq seen: they filled a gap late. */
  outOfOrder: number;
}

export interface SeqRange {
  from: number;
  to: number;
}

export interface StreamSummary {
  agentId: string;
  stream: string;
  /** Distinct records stored. */
  received: number;
  duplicates: number;
  outOfOrder: number;
  highestSeq: number;
  /** Seqs in open gaps: never received and not announced as dropped. */
  missing: number;
  /** Seqs the agent announced as dropped by its storage policy. */
  dropped: number;
  /** The agent replaced a damaged database and counts on from here; 0 when it never did. */
  resetBelow: number;
  gaps: SeqRange[];
}

export interface AgentSummary {
  agentId: string;
  state: string;
  bootSeq: number;
  ts: number;
}

export interface MalformedSummary {
  topic: string;
  count: number;
  lastError: string;
  lastTs: number;
}

export interface SubscriberSummary {
  streams: StreamSummary[];
  agents: AgentSummary[];
  malformed: MalformedSummary[];
}

export interface SubscriberStoreOptions {
  file: string;
  /** Open an existing database for reports only. */
  readonly?: boolean;
}

interface StreamRow {
  highest_seq: number;
}

/** The parts of [from, to] not covered by `cover` (disjoint ranges sorted by `from`). */
function subtract(from: number, to: number, cover: readonly SeqRange[]): SeqRange[] {
  const out: SeqRange[] = [];
  let next = from;
  for (const c of cover) {
    if (c.to < next) continue;
    if (c.from > to) break;
    if (c.from > next) out.push({ from: next, to: c.from - 1 });
    next = c.to + 1;
  }
  if (next <= to) out.push({ from: next, to });
  return out;
}

export class SubscriberStore {
  readonly file: string;
  private readonly db: Database.Database;
  private readonly statements = new StatementCache(() => this.db);

  constructor(options: SubscriberStoreOptions) {
    this.file = options.file;
    try {
      if (options.readonly) {
        if (!existsSync(this.file)) throw new Error('no such database (has the subscriber run with this --db?)');
        this.db = new Database(this.file, { readonly: true, fileMustExist: true });
        this.db.pragma('busy_timeout = 5000');
      } else {
        const dir = path.dirname(this.file);
        if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
        this.db = new Database(this.file);
        // Set before anything else: another subscriber process may hold the write lock right now.
        this.db.pragma('busy_timeout = 5000');
        restrictDatabaseFiles(this.file);
        this.db.pragma('journal_mode = WAL');
        // FULL, not NORMAL: a message is acknowledged to the broker once committed, so the commit must
        // survive a power cut, or the record is lost on both sides.
        this.db.pragma('synchronous = FULL');
        this.migrate();
      }
    } catch (err) {
      throw new ForewarnError('FW_ERR_STORAGE_OPEN', `${this.file}: ${describeError(err)}`, { cause: err });
    }
  }

  private sql(text: string): Database.Statement {
    return this.statements.get(text);
  }


  private migrate(): void {
    this.db.transaction(() => {
      const version = this.db.pragma('user_version', { simple: true }) as number;
      if (version > SCHEMA_VERSION) {
        throw new Error(`database schema ${version} is newer than this subscriber understands (${SCHEMA_VERSION}); upgrade it`);
      }
      if (version === SCHEMA_VERSION) return;
      this.db.exec(`
        CREATE TABLE records (
          agent_id TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL,
          ts INTEGER NOT NULL, boot_seq INTEGER NOT NULL, historical INTEGER NOT NULL,
          received_ts INTEGER NOT NULL, payload TEXT NOT NULL,
          PRIMARY KEY (agent_id, stream, seq)
        );
        CREATE TABLE streams (
          agent_id TEXT NOT NULL, stream TEXT NOT NULL,
          highest_seq INTEGER NOT NULL DEFAULT 0, received INTEGER NOT NULL DEFAULT 0,
          duplicates INTEGER NOT NULL DEFAULT 0, out_of_order INTEGER NOT NULL DEFAULT 0,
          last_boot_seq INTEGER, last_received_ts INTEGER,
          PRIMARY KEY (agent_id, stream)
        );
        CREATE TABLE gaps (
          agent_id TEXT NOT NULL, stream TEXT NOT NULL, from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL,
          opened_ts INTEGER NOT NULL,
          PRIMARY KEY (agent_id, stream, from_seq)
        );
        CREATE TABLE dropped (
          agent_id TEXT NOT NULL, stream TEXT NOT NULL, from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL,
          reason TEXT NOT NULL, event_seq INTEGER NOT NULL, received_ts INTEGER NOT NULL,
          PRIMARY KEY (agent_id, stream, from_seq)
        );
        CREATE TABLE resets (
          agent_id TEXT NOT NULL, first_seq INTEGER NOT NULL, set_aside TEXT NOT NULL, event_seq INTEGER NOT NULL,
          received_ts INTEGER NOT NULL, PRIMARY KEY (agent_id, first_seq)
        );
        CREATE TABLE agents (
          agent_id TEXT PRIMARY KEY, state TEXT NOT NULL, boot_seq INTEGER NOT NULL, ts INTEGER NOT NULL,
          received_ts INTEGER NOT NULL, payload TEXT NOT NULL
        );
        CREATE TABLE malformed (
          topic TEXT PRIMARY KEY, count INTEGER NOT NULL, last_error TEXT NOT NULL, last_ts INTEGER NOT NULL
        );
        PRAGMA user_version = ${SCHEMA_VERSION};
      `);
    }).immediate();
  }

  /** Runs `fn` as one IMMEDIATE transaction (no lock upgrade, so two writers never deadlock). */
  private write<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn).immediate();
    } catch (err) {
      throw new ForewarnError('FW_ERR_STORAGE_WRITE', `${this.file}: ${describeError(err)}`, { cause: err });
    }
  }

  /** Stores one batch: dedupes, tracks gaps, applies records-dropped events. One transaction. */
  ingestBatch(batch: DecodedBatch, receivedTs = Date.now()): IngestResult {
    const { agentId, stream } = batch;
    return this.write(() => {
      this.ensureStream(agentId, stream);
      const row = this.sql('SELECT highest_seq FROM streams WHERE agent_id = ? AND stream = ?').get(agentId, stream) as StreamRow;
      let highest = row.highest_seq;
      const result: IngestResult = { inserted: 0, duplicates: 0, outOfOrder: 0 };
      const insert = this.sql(
        'INSERT OR IGNORE INTO records (agent_id, stream, seq, ts, boot_seq, historical, received_ts, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      );
      for (const r of batch.records) {
        const { changes } = insert.run(agentId, stream, r.seq, r.ts, batch.bootSeq, batch.historical ? 1 : 0, receivedTs, JSON.stringify(r));
        if (!changes) {
          result.duplicates++;
          continue;
        }
        result.inserted++;
        if (r.seq > highest) {
          if (r.seq > highest + 1) this.openGap(agentId, stream, highest + 1, r.seq - 1, receivedTs);
          highest = r.seq;
        } else {
          result.outOfOrder++;
          this.closeGaps(agentId, stream, r.seq, r.seq);
        }
        const drop = stream === 'events' ? parseDropped(r) : undefined;
        if (drop) for (const [from, to] of drop.ranges) this.addDropped(agentId, drop.stream, from, to, drop.reason, r.seq, receivedTs);
        const reset = stream === 'events' ? parseStorageRecovered(r) : undefined;
        if (reset) this.addReset(agentId, reset.firstSeq, reset.setAside, r.seq, receivedTs);
      }
      this.sql(
        `UPDATE streams SET highest_seq = ?, received = received + ?, duplicates = duplicates + ?, out_of_order = out_of_order + ?,
           last_boot_seq = ?, last_received_ts = ? WHERE agent_id = ? AND stream = ?`,
      ).run(highest, result.inserted, result.duplicates, result.outOfOrder, batch.bootSeq, receivedTs, agentId, stream);
      return result;
    });
  }

  private ensureStream(agentId: string, stream: string): void {
    this.sql('INSERT OR IGNORE INTO streams (agent_id, stream) VALUES (?, ?)').run(agentId, stream);
  }

  private droppedRanges(agentId: string, stream: string, from: number, to: number): SeqRange[] {
    return this.sql(
      `SELECT from_seq AS "from", to_seq AS "to" FROM dropped WHERE agent_id = ? AND stream = ? AND from_seq <= ? AND to_seq >= ? ORDER BY from_seq`,
    ).all(agentId, stream, to, from) as SeqRange[];
  }

  /** The highest first seq of a fresh agent database seen so far: seqs below it belonged to a file set aside. */
  private resetBelow(agentId: string): number {
    return (this.sql('SELECT MAX(first_seq) AS n FROM resets WHERE agent_id = ?').get(agentId) as { n: number | null }).n ?? 0;
  }

  /**
   * The agent set a damaged database aside and counts on from `firstSeq`: what is missing below it went with the
   * old file and will never come. Those gaps close (they are reported as resets, not as missing), and none opens
   * there again, whichever of the event and the new records arrives first.
   */
  private addReset(agentId: string, firstSeq: number, setAside: string, eventSeq: number, now: number): void {
    this.sql('INSERT OR IGNORE INTO resets (agent_id, first_seq, set_aside, event_seq, received_ts) VALUES (?, ?, ?, ?, ?)').run(
      agentId,
      firstSeq,
      setAside,
      eventSeq,
      now,
    );
    for (const { stream } of this.sql('SELECT stream FROM streams WHERE agent_id = ?').all(agentId) as Array<{ stream: string }>) {
      this.closeGaps(agentId, stream, 1, firstSeq - 1);
    }
  }

  /** Opens [from, to] as missing, except the parts already announced as dropped or lost in a reset. */
  private openGap(agentId: string, stream: string, from: number, to: number, now: number): void {
    from = Math.max(from, this.resetBelow(agentId));
    if (from > to) return;
    const put = this.sql('INSERT INTO gaps (agent_id, stream, from_seq, to_seq, opened_ts) VALUES (?, ?, ?, ?, ?)');
    for (const g of subtract(from, to, this.droppedRanges(agentId, stream, from, to))) put.run(agentId, stream, g.from, g.to, now);
  }

  /** Removes [from, to] from the open gaps, shrinking or splitting the gaps it cuts. */
  private closeGaps(agentId: string, stream: string, from: number, to: number): void {
    const cut = this.sql(
      'DELETE FROM gaps WHERE agent_id = ? AND stream = ? AND from_seq <= ? AND to_seq >= ? RETURNING from_seq AS "from", to_seq AS "to", opened_ts AS openedTs',
    ).all(agentId, stream, to, from) as Array<SeqRange & { openedTs: number }>;
    const put = this.sql('INSERT INTO gaps (agent_id, stream, from_seq, to_seq, opened_ts) VALUES (?, ?, ?, ?, ?)');
    for (const g of cut) {
      if (g.from < from) put.run(agentId, stream, g.from, from - 1, g.openedTs);
      if (g.to > to) put.run(agentId, stream, to + 1, g.to, g.openedTs);
    }
  }

  /** Records [from, to] of `stream` as dropped by policy: an explained loss, not a gap. */
  private addDropped(agentId: string, stream: string, from: number, to: number, reason: string, eventSeq: number, now: number): void {
    this.ensureStream(agentId, stream);
    const put = this.sql('INSERT INTO dropped (agent_id, stream, from_seq, to_seq, reason, event_seq, received_ts) VALUES (?, ?, ?, ?, ?, ?, ?)');
    // Overlapping announcements are stored once, so the dropped count never double-counts a seq.
    for (const d of subtract(from, to, this.droppedRanges(agentId, stream, from, to))) put.run(agentId, stream, d.from, d.to, reason, eventSeq, now);
    this.closeGaps(agentId, stream, from, to);
  }

  /** Keeps the newest status per agent: a higher bootSeq wins, then a later ts. */
  recordStatus(status: DecodedStatus, receivedTs = Date.now()): void {
    this.write(() =>
      this.sql(
        `INSERT INTO agents (agent_id, state, boot_seq, ts, received_ts, payload) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (agent_id) DO UPDATE SET state = excluded.state, boot_seq = excluded.boot_seq, ts = excluded.ts,
           received_ts = excluded.received_ts, payload = excluded.payload
         WHERE excluded.boot_seq > agents.boot_seq OR (excluded.boot_seq = agents.boot_seq AND excluded.ts >= agents.ts)`,
      ).run(status.agentId, status.state, status.bootSeq, status.ts, receivedTs, JSON.stringify(status.payload)),
    );
  }

  recordMalformed(topic: string, error: string, receivedTs = Date.now()): void {
    this.write(() =>
      this.sql(
        `INSERT INTO malformed (topic, count, last_error, last_ts) VALUES (?, 1, ?, ?)
         ON CONFLICT (topic) DO UPDATE SET count = count + 1, last_error = excluded.last_error, last_ts = excluded.last_ts`,
      ).run(topic, error, receivedTs),
    );
  }

  summary(): SubscriberSummary {
    const sums = (table: 'gaps' | 'dropped') =>
      new Map(
        (this.sql(`SELECT agent_id || char(0) || stream AS k, SUM(to_seq - from_seq + 1) AS n FROM ${table} GROUP BY agent_id, stream`).all() as Array<{
          k: string;
          n: number;
        }>).map((r) => [r.k, r.n]),
      );
    const missing = sums('gaps');
    const dropped = sums('dropped');
    const gaps = new Map<string, SeqRange[]>();
    for (const g of this.sql('SELECT agent_id || char(0) || stream AS k, from_seq, to_seq FROM gaps ORDER BY agent_id, stream, from_seq').all() as Array<{
      k: string;
      from_seq: number;
      to_seq: number;
    }>) {
      const list = gaps.get(g.k) ?? [];
      list.push({ from: g.from_seq, to: g.to_seq });
      gaps.set(g.k, list);
    }
    const streams = (this.sql('SELECT * FROM streams ORDER BY agent_id, stream').all() as Array<{
      agent_id: string;
      stream: string;
      highest_seq: number;
      received: number;
      duplicates: number;
      out_of_order: number;
    }>).map((s): StreamSummary => {
      const k = `${s.agent_id}\u0000${s.stream}`;
      return {
        agentId: s.agent_id,
        stream: s.stream,
        received: s.received,
        duplicates: s.duplicates,
        outOfOrder: s.out_of_order,
        highestSeq: s.highest_seq,
        missing: missing.get(k) ?? 0,
        dropped: dropped.get(k) ?? 0,
        resetBelow: this.resetBelow(s.agent_id),
        gaps: gaps.get(k) ?? [],
      };
    });
    const agents = this.sql('SELECT agent_id AS agentId, state, boot_seq AS bootSeq, ts FROM agents ORDER BY agent_id').all() as AgentSummary[];
    const malformed = this.sql('SELECT topic, count, last_error AS lastError, last_ts AS lastTs FROM malformed ORDER BY topic').all() as MalformedSummary[];
    return { streams, agents, malformed };
  }

  /** Every seq stored for one stream, ascending. */
  receivedSeqs(agentId: string, stream: string): number[] {
    return this.sql('SELECT seq FROM records WHERE agent_id = ? AND stream = ? ORDER BY seq').pluck().all(agentId, stream) as number[];
  }

  close(): void {
    if (!this.db.open) return;
    if (!this.db.readonly) {
      try {
        this.db.pragma('wal_checkpoint(TRUNCATE)');
      } catch {
        // another subscriber may be reading; SQLite checkpoints later
      }
    }
    this.db.close();
  }
}
