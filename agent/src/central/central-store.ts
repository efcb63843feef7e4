import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ACK_MAX_RANGES, SCHEMA_VERSION as CONTRACT_SCHEMA_VERSION, type AckPayload, type AckStreamState } from '../contract/topics.js';
import { ForewarnError, describeError } from '../core/errors.js';
import { StatementCache, restrictDatabaseFiles } from '../store/sqlite-files.js';
import {
  BATCH_STREAMS,
  parseDropped,
  parseStorageRecovered,
  parseUnavailable,
  type DecodedBatch,
  type DecodedStatus,
  type StorageReset,
} from './decode-batch.js';

/**
 * The central side's SQLite database: every record once, keyed by (agent, stream, seq), plus per stream what
 * arrived twice, late or never. Several subscriber processes may share one file: every message is one
 * IMMEDIATE transaction that reads the stream's state from the database, never from a cache; so is every
 * acknowledgement computed for an agent (`ackFor`).
 *
 * Every seq of a stream up to its highest is exactly one of: received (`records`), dropped by the agent's policy
 * (`dropped`), no longer held by the agent (`unavailable`), lost with an earlier agent database (below a reset's
 * first seq), or missing (`gaps`).
 */

/** 1: the first schema. 2: gaps.requested_ts, streams.repaired/carried/conflicts, resets.cause/carried, unavailable, conflicts. */
const SCHEMA_VERSION = 2;

export interface IngestResult {
  /** Records stored for the first time. */
  inserted: number;
  /** Records already stored with the same content (redelivered by the broker or resent by the agent). */
  duplicates: number;
  /** New records below the highest seq seen that filled a gap no acknowledgement had asked for. */
  outOfOrder: number;
  /** New records that filled a gap an acknowledgement had listed as missing: the agent resent them on request. */
  repaired: number;
  /** New records below the first seq of a fresh agent database, received after its storage-recovered event. */
  carried: number;
  /** Records whose (agent, stream, seq) was already stored with different content: the first is kept. */
  conflicts: number;
  /** The seqs of those conflicts, in arrival order. */
  conflictSeqs: number[];
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
  /** Late records that filled a gap nobody asked for. */
  outOfOrder: number;
  /** Late records that filled a gap an acknowledgement asked the agent to resend. */
  repaired: number;
  /** Records below a reset's first seq received after the reset: carried over from the agent's earlier file. */
  carried: number;
  /** Records that came again under a stored seq with different content (kept in the `conflicts` table). */
  conflicts: number;
  highestSeq: number;
  /** Seqs in open gaps: never received and not explained by the agent. */
  missing: number;
  /** Of `missing`, the seqs an acknowledgement already asked the agent for. */
  requested: number;
  /** Seqs the agent announced as dropped by its storage policy and that never arrived. */
  dropped: number;
  /** Seqs the agent said it no longer holds (records-unavailable) and that never arrived. */
  unavailable: number;
  /** The agent started a fresh database and counts on from here; 0 when it never did. */
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

export interface StoredConflict {
  seq: number;
  bootSeq: number;
  receivedTs: number;
  /** The conflicting record as JSON; the record kept is in `records`. */
  payload: string;
}

export interface SubscriberStoreOptions {
  file: string;
  /** Open an existing database for reports only. */
  readonly?: boolean;
}

interface StreamRow {
  highest_seq: number;
}

/** `dropped` and `unavailable` have the same columns: ranges the agent explained, with its reason. */
type ExplainedTable = 'dropped' | 'unavailable';

interface ExplainedRow {
  from_seq: number;
  to_seq: number;
  reason: string;
  event_seq: number;
  received_ts: number;
}

interface CutGap extends SeqRange {
  openedTs: number;
  requestedTs: number | null;
}

/** The parts of [from, to] not covered by `cover` (ranges sorted by `from`; they may overlap). */
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

const byFrom = (a: SeqRange, b: SeqRange) => a.from - b.from;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export class SubscriberStore {
  readonly file: string;
  private readonly db: Database.Database;
  private readonly statements = new StatementCache(() => this.db);
  /** The schema version of the file (a read-only report may open an older one). */
  private version = SCHEMA_VERSION;

  constructor(options: SubscriberStoreOptions) {
    this.file = options.file;
    try {
      if (options.readonly) {
        if (!existsSync(this.file)) throw new Error('no such database (has the subscriber run with this --db?)');
        this.db = new Database(this.file, { readonly: true, fileMustExist: true });
        this.db.pragma('busy_timeout = 5000');
        this.version = this.db.pragma('user_version', { simple: true }) as number;
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

  /** Creates the schema, or upgrades an older file step by step, in one transaction. */
  private migrate(): void {
    this.db
      .transaction(() => {
        const version = this.db.pragma('user_version', { simple: true }) as number;
        if (version > SCHEMA_VERSION) {
          throw new Error(`database schema ${version} is newer than this subscriber understands (${SCHEMA_VERSION}); upgrade it`);
        }
        if (version === SCHEMA_VERSION) return;
        if (version < 1) {
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
        `);
        }
        if (version < 2) {
          this.db.exec(`
          ALTER TABLE gaps ADD COLUMN requested_ts INTEGER;
          ALTER TABLE streams ADD COLUMN repaired INTEGER NOT NULL DEFAULT 0;
          ALTER TABLE streams ADD COLUMN carried INTEGER NOT NULL DEFAULT 0;
          ALTER TABLE streams ADD COLUMN conflicts INTEGER NOT NULL DEFAULT 0;
          ALTER TABLE resets ADD COLUMN cause TEXT NOT NULL DEFAULT 'unknown';
          ALTER TABLE resets ADD COLUMN carried INTEGER NOT NULL DEFAULT 0;
          CREATE TABLE unavailable (
            agent_id TEXT NOT NULL, stream TEXT NOT NULL, from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL,
            reason TEXT NOT NULL, event_seq INTEGER NOT NULL, received_ts INTEGER NOT NULL,
            PRIMARY KEY (agent_id, stream, from_seq)
          );
          CREATE TABLE conflicts (
            agent_id TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL, sha256 TEXT NOT NULL,
            boot_seq INTEGER NOT NULL, received_ts INTEGER NOT NULL, payload TEXT NOT NULL,
            PRIMARY KEY (agent_id, stream, seq, sha256)
          );
        `);
          // Schema 1 could hold a seq both as received and as dropped: received wins.
          if (version === 1) this.separateDroppedFromReceived();
        }
        this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
      })
      .immediate();
    // Statements prepared against the old schema are prepared again.
    this.statements.clear();
  }

  private separateDroppedFromReceived(): void {
    const rows = this.db.prepare('SELECT agent_id, stream, from_seq, to_seq, reason, event_seq, received_ts FROM dropped').all() as Array<
      ExplainedRow & { agent_id: string; stream: string }
    >;
    for (const d of rows) {
      const runs = this.receivedRuns(d.agent_id, d.stream, d.from_seq, d.to_seq);
      if (!runs.length) continue;
      this.sql('DELETE FROM dropped WHERE agent_id = ? AND stream = ? AND from_seq = ?').run(d.agent_id, d.stream, d.from_seq);
      for (const piece of subtract(d.from_seq, d.to_seq, runs))
        this.putExplained('dropped', d.agent_id, d.stream, { ...d, from_seq: piece.from, to_seq: piece.to });
    }
  }

  /** Runs `fn` as one IMMEDIATE transaction (no lock upgrade, so two writers never deadlock). */
  private write<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn).immediate();
    } catch (err) {
      throw new ForewarnError('FW_ERR_STORAGE_WRITE', `${this.file}: ${describeError(err)}`, { cause: err });
    }
  }

  /**
   * Stores one batch: dedupes, detects conflicting content, tracks gaps, applies records-dropped,
   * records-unavailable and storage-recovered events. One transaction.
   */
  ingestBatch(batch: DecodedBatch, receivedTs = Date.now()): IngestResult {
    const { agentId, stream } = batch;
    return this.write(() => {
      this.ensureStream(agentId, stream);
      const row = this.sql('SELECT highest_seq FROM streams WHERE agent_id = ? AND stream = ?').get(agentId, stream) as StreamRow;
      let highest = row.highest_seq;
      let resetBelow = this.resetBelow(agentId);
      const result: IngestResult = { inserted: 0, duplicates: 0, outOfOrder: 0, repaired: 0, carried: 0, conflicts: 0, conflictSeqs: [] };
      const insert = this.sql(
        'INSERT OR IGNORE INTO records (agent_id, stream, seq, ts, boot_seq, historical, received_ts, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      );
      let gapsAbove: boolean | undefined;
      for (const r of batch.records) {
        const payload = JSON.stringify(r);
        const { changes } = insert.run(agentId, stream, r.seq, r.ts, batch.bootSeq, batch.historical ? 1 : 0, receivedTs, payload);
        if (!changes) {
          if (this.isConflict(agentId, stream, r.seq, payload, batch.bootSeq, receivedTs)) {
            result.conflicts++;
            result.conflictSeqs.push(r.seq);
          } else {
            result.duplicates++;
          }
          continue;
        }
        result.inserted++;
        const carried = r.seq < resetBelow;
        if (carried) result.carried++;
        // Received wins over an earlier explanation: the agent may announce records it had published as dropped.
        const explained = this.cutExplained('dropped', agentId, stream, r.seq) || this.cutExplained('unavailable', agentId, stream, r.seq);
        if (r.seq > highest) {
          if (r.seq > highest + 1) this.openGap(agentId, stream, highest + 1, r.seq - 1, receivedTs);
          // Gaps can lie above the highest seq received: the carried records an agent announced with a reset.
          if (gapsAbove === undefined || gapsAbove) {
            gapsAbove = this.sql('SELECT 1 FROM gaps WHERE agent_id = ? AND stream = ? AND to_seq >= ? LIMIT 1').get(agentId, stream, r.seq) !== undefined;
            if (gapsAbove) this.closeGaps(agentId, stream, r.seq, r.seq);
          }
          highest = r.seq;
        } else {
          const cut = this.closeGaps(agentId, stream, r.seq, r.seq);
          if (carried) {
            // counted as carried: an earlier file's record, not a late one
          } else if (cut.length && (batch.historical || cut.some((g) => g.requestedTs !== null))) {
            // Sent again by the agent: on request, or on its own (its backlog after a reconnect, an unconfirmed
            // tail) before this subscriber's next acknowledgement could ask for it.
            result.repaired++;
          } else if (cut.length || !explained) {
            result.outOfOrder++;
          }
        }
        if (stream !== 'events') continue;
        const drop = parseDropped(r);
        if (drop) for (const [from, to] of drop.ranges) this.addExplained('dropped', agentId, drop.stream, from, to, drop.reason, r.seq, receivedTs);
        const unavailable = parseUnavailable(r);
        if (unavailable) {
          for (const [from, to] of unavailable.ranges)
            this.addExplained('unavailable', agentId, unavailable.stream, from, to, unavailable.reason, r.seq, receivedTs);
        }
        const reset = parseStorageRecovered(r);
        if (reset) {
          this.addReset(agentId, reset, r.seq, receivedTs);
          resetBelow = this.resetBelow(agentId);
          gapsAbove = undefined;
        }
      }
      this.sql(
        `UPDATE streams SET highest_seq = ?, received = received + ?, duplicates = duplicates + ?, out_of_order = out_of_order + ?,
           repaired = repaired + ?, carried = carried + ?, conflicts = conflicts + ?,
           last_boot_seq = ?, last_received_ts = ? WHERE agent_id = ? AND stream = ?`,
      ).run(
        highest,
        result.inserted,
        result.duplicates,
        result.outOfOrder,
        result.repaired,
        result.carried,
        result.conflicts,
        batch.bootSeq,
        receivedTs,
        agentId,
        stream,
      );
      return result;
    });
  }

  /**
   * A seq already stored came again. Same JSON: a duplicate (a resend of the same agent record serialises
   * identically). Different JSON: a conflict; the first stays, this one is kept in `conflicts` (once per content).
   */
  private isConflict(agentId: string, stream: string, seq: number, payload: string, bootSeq: number, now: number): boolean {
    const stored = this.sql('SELECT payload FROM records WHERE agent_id = ? AND stream = ? AND seq = ?').get(agentId, stream, seq) as { payload: string };
    if (stored.payload === payload) return false;
    const { changes } = this.sql(
      'INSERT OR IGNORE INTO conflicts (agent_id, stream, seq, sha256, boot_seq, received_ts, payload) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ).run(agentId, stream, seq, sha256(payload), bootSeq, now, payload);
    // The same conflicting content redelivered is a duplicate of the conflict, counted once.
    return changes > 0;
  }

  private ensureStream(agentId: string, stream: string): void {
    this.sql('INSERT OR IGNORE INTO streams (agent_id, stream) VALUES (?, ?)').run(agentId, stream);
  }

  private explainedRanges(table: ExplainedTable, agentId: string, stream: string, from: number, to: number): SeqRange[] {
    return this.sql(
      `SELECT from_seq AS "from", to_seq AS "to" FROM ${table} WHERE agent_id = ? AND stream = ? AND from_seq <= ? AND to_seq >= ? ORDER BY from_seq`,
    ).all(agentId, stream, to, from) as SeqRange[];
  }

  /** The received seqs within [from, to], as runs of consecutive seqs. */
  private receivedRuns(agentId: string, stream: string, from: number, to: number): SeqRange[] {
    return this.sql(
      `SELECT MIN(seq) AS "from", MAX(seq) AS "to" FROM (
         SELECT seq, seq - ROW_NUMBER() OVER (ORDER BY seq) AS island FROM records WHERE agent_id = ? AND stream = ? AND seq BETWEEN ? AND ?
       ) GROUP BY island ORDER BY 1`,
    ).all(agentId, stream, from, to) as SeqRange[];
  }

  private putExplained(table: ExplainedTable, agentId: string, stream: string, r: ExplainedRow): void {
    this.sql(`INSERT INTO ${table} (agent_id, stream, from_seq, to_seq, reason, event_seq, received_ts) VALUES (?, ?, ?, ?, ?, ?, ?)`).run(
      agentId,
      stream,
      r.from_seq,
      r.to_seq,
      r.reason,
      r.event_seq,
      r.received_ts,
    );
  }

  /** A record arrived whose seq the agent had explained away: it is received, so cut it out of that range. */
  private cutExplained(table: ExplainedTable, agentId: string, stream: string, seq: number): boolean {
    // Ranges are disjoint: only the last one starting at or below seq can hold it (an index seek, not a scan).
    const r = this.sql(
      `SELECT from_seq, to_seq, reason, event_seq, received_ts FROM ${table} WHERE agent_id = ? AND stream = ? AND from_seq <= ? ORDER BY from_seq DESC LIMIT 1`,
    ).get(agentId, stream, seq) as ExplainedRow | undefined;
    if (!r || r.to_seq < seq) return false;
    this.sql(`DELETE FROM ${table} WHERE agent_id = ? AND stream = ? AND from_seq = ?`).run(agentId, stream, r.from_seq);
    if (r.from_seq < seq) this.putExplained(table, agentId, stream, { ...r, to_seq: seq - 1 });
    if (r.to_seq > seq) this.putExplained(table, agentId, stream, { ...r, from_seq: seq + 1 });
    return true;
  }

  /** The highest first seq of a fresh agent database seen so far: seqs below it belonged to an earlier file. */
  private resetBelow(agentId: string): number {
    return (this.sql('SELECT MAX(first_seq) AS n FROM resets WHERE agent_id = ?').get(agentId) as { n: number | null }).n ?? 0;
  }

  /**
   * The agent started a fresh database and counts on from `firstSeq`: what is missing below it went with the
   * earlier file (or never existed) and will never come. Those gaps close (they are reported as resets, not as
   * missing), and none opens there again, whichever of the event and the new records arrives first. Records the
   * agent carried over from the earlier file keep their seqs below `firstSeq` and are stored when they arrive.
   */
  private addReset(agentId: string, reset: StorageReset, eventSeq: number, now: number): void {
    this.sql('INSERT OR IGNORE INTO resets (agent_id, first_seq, set_aside, event_seq, received_ts, cause, carried) VALUES (?, ?, ?, ?, ?, ?, ?)').run(
      agentId,
      reset.firstSeq,
      reset.setAside,
      eventSeq,
      now,
      reset.cause,
      reset.carried,
    );
    for (const { stream } of this.sql('SELECT stream FROM streams WHERE agent_id = ?').all(agentId) as Array<{ stream: string }>) {
      this.closeGaps(agentId, stream, 1, reset.firstSeq - 1);
    }
    // Records the agent carried into its new file are still to come: what of them has not arrived stays missing
    // (and is asked for), rather than being written off with the rest of the earlier file.
    const put = this.sql('INSERT INTO gaps (agent_id, stream, from_seq, to_seq, opened_ts) VALUES (?, ?, ?, ?, ?)');
    for (const [stream, ranges] of reset.carriedRanges) {
      this.ensureStream(agentId, stream);
      for (const [from, to] of ranges) {
        const cover = [
          ...this.receivedRuns(agentId, stream, from, to),
          ...this.explainedRanges('dropped', agentId, stream, from, to),
          ...this.explainedRanges('unavailable', agentId, stream, from, to),
        ].sort(byFrom);
        this.closeGaps(agentId, stream, from, to);
        for (const g of subtract(from, to, cover)) put.run(agentId, stream, g.from, g.to, now);
      }
    }
  }

  /** Opens [from, to] as missing, except the parts the agent explained (dropped, unavailable) or lost in a reset. */
  private openGap(agentId: string, stream: string, from: number, to: number, now: number): void {
    from = Math.max(from, this.resetBelow(agentId));
    if (from > to) return;
    const cover = [...this.explainedRanges('dropped', agentId, stream, from, to), ...this.explainedRanges('unavailable', agentId, stream, from, to)].sort(
      byFrom,
    );
    const put = this.sql('INSERT INTO gaps (agent_id, stream, from_seq, to_seq, opened_ts) VALUES (?, ?, ?, ?, ?)');
    for (const g of subtract(from, to, cover)) put.run(agentId, stream, g.from, g.to, now);
  }

  /** Removes [from, to] from the open gaps, shrinking or splitting the gaps it cuts; returns the gaps it cut. */
  private closeGaps(agentId: string, stream: string, from: number, to: number): CutGap[] {
    const cut = this.sql(
      `DELETE FROM gaps WHERE agent_id = ? AND stream = ? AND from_seq <= ? AND to_seq >= ?
       RETURNING from_seq AS "from", to_seq AS "to", opened_ts AS openedTs, requested_ts AS requestedTs`,
    ).all(agentId, stream, to, from) as CutGap[];
    const put = this.sql('INSERT INTO gaps (agent_id, stream, from_seq, to_seq, opened_ts, requested_ts) VALUES (?, ?, ?, ?, ?, ?)');
    for (const g of cut) {
      if (g.from < from) put.run(agentId, stream, g.from, from - 1, g.openedTs, g.requestedTs);
      if (g.to > to) put.run(agentId, stream, to + 1, g.to, g.openedTs, g.requestedTs);
    }
    return cut;
  }

  /**
   * Records [from, to] of `stream` as explained by the agent (dropped by policy, or unavailable): not a gap.
   * Only the seqs not received and not explained already are stored, so the tables never overlap `records`
   * nor each other, and no seq is counted twice.
   */
  private addExplained(table: ExplainedTable, agentId: string, stream: string, from: number, to: number, reason: string, eventSeq: number, now: number): void {
    this.ensureStream(agentId, stream);
    const cover = [
      ...this.receivedRuns(agentId, stream, from, to),
      ...this.explainedRanges('dropped', agentId, stream, from, to),
      ...this.explainedRanges('unavailable', agentId, stream, from, to),
    ].sort(byFrom);
    for (const d of subtract(from, to, cover)) {
      this.putExplained(table, agentId, stream, { from_seq: d.from, to_seq: d.to, reason, event_seq: eventSeq, received_ts: now });
    }
    this.closeGaps(agentId, stream, from, to);
  }

  /**
   * The end-to-end acknowledgement for one agent, computed from the database (so it covers what every member of
   * a share group committed): per stream, `through` (every seq up to it is received or explained: just below the
   * first open gap, else the highest seq), `highest`, and the first ACK_MAX_RANGES open gaps as `missing`.
   * The gaps it lists are marked requested (`requested_ts`), so the records that fill them count as repaired.
   */
  ackFor(agentId: string, now = Date.now()): AckPayload {
    return this.write(() => {
      const streams: Record<string, AckStreamState> = {};
      const rows = this.sql('SELECT stream, highest_seq FROM streams WHERE agent_id = ? ORDER BY stream').all(agentId) as Array<{
        stream: string;
        highest_seq: number;
      }>;
      for (const s of rows) {
        if (!(BATCH_STREAMS as readonly string[]).includes(s.stream)) continue;
        const gaps = this.sql(
          'SELECT from_seq AS "from", to_seq AS "to", requested_ts AS requestedTs FROM gaps WHERE agent_id = ? AND stream = ? ORDER BY from_seq LIMIT ?',
        ).all(agentId, s.stream, ACK_MAX_RANGES) as Array<SeqRange & { requestedTs: number | null }>;
        const state: AckStreamState = { through: gaps.length ? gaps[0]!.from - 1 : s.highest_seq, highest: s.highest_seq };
        if (gaps.length) {
          state.missing = gaps.map((g): [number, number] => [g.from, g.to]);
          const mark = this.sql('UPDATE gaps SET requested_ts = ? WHERE agent_id = ? AND stream = ? AND from_seq = ?');
          for (const g of gaps) if (g.requestedTs === null) mark.run(now, agentId, s.stream, g.from);
        }
        streams[s.stream] = state;
      }
      return { schemaVersion: CONTRACT_SCHEMA_VERSION, agentId, ts: now, streams };
    });
  }

  /** An acknowledgement computed at `ackTs` never reached the agent (the broker refused it): its gaps were not requested. */
  forgetRequests(agentId: string, ackTs: number): void {
    this.write(() => this.sql('UPDATE gaps SET requested_ts = NULL WHERE agent_id = ? AND requested_ts = ?').run(agentId, ackTs));
  }

  /**
   * Stores the status as the agent's current one. The broker delivers one topic's messages in order, so the
   * latest status received wins; `bootSeq` and `ts` are stored but do not decide (the Will carries the time the
   * agent connected, older than its online status, and must still win when the connection dies).
   */
  recordStatus(status: DecodedStatus, receivedTs = Date.now()): void {
    this.write(() =>
      this.sql(
        `INSERT INTO agents (agent_id, state, boot_seq, ts, received_ts, payload) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (agent_id) DO UPDATE SET state = excluded.state, boot_seq = excluded.boot_seq, ts = excluded.ts,
           received_ts = excluded.received_ts, payload = excluded.payload`,
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
    const v2 = this.version >= 2;
    const sums = (table: 'gaps' | 'dropped' | 'unavailable', where = '') =>
      new Map(
        (
          this.sql(
            `SELECT agent_id || char(0) || stream AS k, SUM(to_seq - from_seq + 1) AS n FROM ${table} ${where} GROUP BY agent_id, stream`,
          ).all() as Array<{ k: string; n: number }>
        ).map((r) => [r.k, r.n]),
      );
    const missing = sums('gaps');
    const dropped = sums('dropped');
    // A schema-1 file opened for a report lacks the newer tables and columns: they count as none.
    const unavailable = v2 ? sums('unavailable') : new Map<string, number>();
    const requested = v2 ? sums('gaps', 'WHERE requested_ts IS NOT NULL') : new Map<string, number>();
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
    const streams = (
      this.sql('SELECT * FROM streams ORDER BY agent_id, stream').all() as Array<{
        agent_id: string;
        stream: string;
        highest_seq: number;
        received: number;
        duplicates: number;
        out_of_order: number;
        repaired?: number;
        carried?: number;
        conflicts?: number;
      }>
    ).map((s): StreamSummary => {
      const k = `${s.agent_id}\u0000${s.stream}`;
      return {
        agentId: s.agent_id,
        stream: s.stream,
        received: s.received,
        duplicates: s.duplicates,
        outOfOrder: s.out_of_order,
        repaired: s.repaired ?? 0,
        carried: s.carried ?? 0,
        conflicts: s.conflicts ?? 0,
        highestSeq: s.highest_seq,
        missing: missing.get(k) ?? 0,
        requested: requested.get(k) ?? 0,
        dropped: dropped.get(k) ?? 0,
        unavailable: unavailable.get(k) ?? 0,
        resetBelow: this.resetBelow(s.agent_id),
        gaps: gaps.get(k) ?? [],
      };
    });
    const agents = this.sql('SELECT agent_id AS agentId, state, boot_seq AS bootSeq, ts FROM agents ORDER BY agent_id').all() as AgentSummary[];
    const malformed = this.sql('SELECT topic, count, last_error AS lastError, last_ts AS lastTs FROM malformed ORDER BY topic').all() as MalformedSummary[];
    return { streams, agents, malformed };
  }

  /** The conflicting versions kept for one stream (the first version of each seq stays in `records`). */
  storedConflicts(agentId: string, stream: string): StoredConflict[] {
    if (this.version < 2) return [];
    return this.sql(
      'SELECT seq, boot_seq AS bootSeq, received_ts AS receivedTs, payload FROM conflicts WHERE agent_id = ? AND stream = ? ORDER BY seq, received_ts',
    ).all(agentId, stream) as StoredConflict[];
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
