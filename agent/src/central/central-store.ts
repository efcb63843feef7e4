import { createHash } from 'node:crypto';
import { ACK_MAX_RANGES, SCHEMA_VERSION as CONTRACT_SCHEMA_VERSION, type AckPayload, type AckStreamState } from '../contract/topics.js';
import { ForewarnError, describeError, isForewarnError } from '../core/errors.js';
import {
  BATCH_STREAMS,
  parseDropped,
  parseStorageRecovered,
  parseUnavailable,
  type BatchRecord,
  type DecodedBatch,
  type DecodedStatus,
  type StorageReset,
} from './decode-batch.js';
import { FleetRegistry } from './fleet-registry.js';
import type { CentralProjection } from './projection.js';
import { MIGRATION_LOCK, ensureSchemaTable, migrateComponent, type Migration } from './sql/migrations.js';
import { openSqlClient } from './sql/open-sql-client.js';
import type { SqlClient, SqlQueries } from './sql/sql-client.js';
import { valuesList } from './sql/sql-client.js';

/**
 * The central ledger: every record once, keyed by (agent, stream, seq), plus per stream what arrived twice, late
 * or never, on SQLite (one file, the embedded default) or PostgreSQL (a fleet), through one implementation
 * written against `SqlClient`. Several workers may share one store: every message is one transaction holding
 * the agent's lock (`lockKey`: its agent id), which reads the stream's state from the database, never from a
 * cache; so is every acknowledgement computed for an agent (`ackFor`). The projections (fleet registry, latest
 * risk, rollups, alerts) run in the same transaction, on the records stored for the first time.
 *
 * Every seq of a stream up to its highest is exactly one of: received (`records`), dropped by the agent's policy
 * (`dropped`), no longer held by the agent (`unavailable`), lost with an earlier agent database (below a reset's
 * first seq), or missing (`gaps`).
 *
 * Two paths, one result. The common batch (telemetry, risk, alerts: seqs above everything stored, in order, no
 * reset or open gap above them) takes a fast path: one multi-row insert and a constant number of queries, so a
 * 500-record batch costs about what one record does. Anything else (the events stream, which explains the other
 * streams; resends; late or repeated seqs) goes record by record, exactly as the rules below say.
 */

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

/** The ledger's schema versions. 1: the first. 2: gaps.requested_ts, streams.repaired/carried/conflicts, resets.cause/carried, unavailable, conflicts. */
const LEDGER_VERSION = 2;

const LEDGER_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    async up(q) {
      const pg = q.dialect === 'postgres';
      const big = pg ? 'BIGINT' : 'INTEGER';
      // PostgreSQL: records partitioned by stream, then by time, so retention drops partitions (docs/central.md);
      // a partitioned table's key must hold its partition keys, hence ts in it. Dedupe never relies on that key:
      // the ledger decides what is new from its own state, and looks stored records up by (agent, stream, seq).
      const records = pg
        ? `CREATE TABLE records (
             agent_id TEXT NOT NULL, stream TEXT NOT NULL, seq BIGINT NOT NULL, ts BIGINT NOT NULL, boot_seq BIGINT NOT NULL,
             historical SMALLINT NOT NULL, received_ts BIGINT NOT NULL, payload TEXT NOT NULL,
             PRIMARY KEY (agent_id, stream, seq, ts)
           ) PARTITION BY LIST (stream);
           ${BATCH_STREAMS.map(
             (s) => `CREATE TABLE records_${s} PARTITION OF records FOR VALUES IN ('${s}') PARTITION BY RANGE (ts);
                     CREATE TABLE records_${s}_default PARTITION OF records_${s} DEFAULT;`,
           ).join('\n')}`
        : `CREATE TABLE records (
             agent_id TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL,
             ts INTEGER NOT NULL, boot_seq INTEGER NOT NULL, historical INTEGER NOT NULL,
             received_ts INTEGER NOT NULL, payload TEXT NOT NULL,
             PRIMARY KEY (agent_id, stream, seq)
           );`;
      await q.exec(`
        ${records}
        CREATE TABLE streams (
          agent_id TEXT NOT NULL, stream TEXT NOT NULL,
          highest_seq ${big} NOT NULL DEFAULT 0, received ${big} NOT NULL DEFAULT 0,
          duplicates ${big} NOT NULL DEFAULT 0, out_of_order ${big} NOT NULL DEFAULT 0,
          last_boot_seq ${big}, last_received_ts ${big},
          PRIMARY KEY (agent_id, stream)
        );
        CREATE TABLE gaps (
          agent_id TEXT NOT NULL, stream TEXT NOT NULL, from_seq ${big} NOT NULL, to_seq ${big} NOT NULL,
          opened_ts ${big} NOT NULL,
          PRIMARY KEY (agent_id, stream, from_seq)
        );
        CREATE TABLE dropped (
          agent_id TEXT NOT NULL, stream TEXT NOT NULL, from_seq ${big} NOT NULL, to_seq ${big} NOT NULL,
          reason TEXT NOT NULL, event_seq ${big} NOT NULL, received_ts ${big} NOT NULL,
          PRIMARY KEY (agent_id, stream, from_seq)
        );
        CREATE TABLE resets (
          agent_id TEXT NOT NULL, first_seq ${big} NOT NULL, set_aside TEXT NOT NULL, event_seq ${big} NOT NULL,
          received_ts ${big} NOT NULL, PRIMARY KEY (agent_id, first_seq)
        );
        CREATE TABLE agents (
          agent_id TEXT PRIMARY KEY, state TEXT NOT NULL, boot_seq ${big} NOT NULL, ts ${big} NOT NULL,
          received_ts ${big} NOT NULL, payload TEXT NOT NULL
        );
        CREATE TABLE malformed (
          topic TEXT PRIMARY KEY, count ${big} NOT NULL, last_error TEXT NOT NULL, last_ts ${big} NOT NULL
        );
      `);
    },
  },
  {
    version: 2,
    async up(q) {
      const big = q.dialect === 'postgres' ? 'BIGINT' : 'INTEGER';
      const legacy = q.dialect === 'sqlite' && (await q.get<{ n: number }>('SELECT COUNT(*) AS n FROM dropped'))!.n > 0;
      await q.exec(`
        ALTER TABLE gaps ADD COLUMN requested_ts ${big};
        ALTER TABLE streams ADD COLUMN repaired ${big} NOT NULL DEFAULT 0;
        ALTER TABLE streams ADD COLUMN carried ${big} NOT NULL DEFAULT 0;
        ALTER TABLE streams ADD COLUMN conflicts ${big} NOT NULL DEFAULT 0;
        ALTER TABLE resets ADD COLUMN cause TEXT NOT NULL DEFAULT 'unknown';
        ALTER TABLE resets ADD COLUMN carried ${big} NOT NULL DEFAULT 0;
        CREATE TABLE unavailable (
          agent_id TEXT NOT NULL, stream TEXT NOT NULL, from_seq ${big} NOT NULL, to_seq ${big} NOT NULL,
          reason TEXT NOT NULL, event_seq ${big} NOT NULL, received_ts ${big} NOT NULL,
          PRIMARY KEY (agent_id, stream, from_seq)
        );
        CREATE TABLE conflicts (
          agent_id TEXT NOT NULL, stream TEXT NOT NULL, seq ${big} NOT NULL, sha256 TEXT NOT NULL,
          boot_seq ${big} NOT NULL, received_ts ${big} NOT NULL, payload TEXT NOT NULL,
          PRIMARY KEY (agent_id, stream, seq, sha256)
        );
      `);
      // The reference subscriber's schema 1 could hold a seq both as received and as dropped: received wins.
      if (legacy) await separateDroppedFromReceived(q);
    },
  },
  {
    version: 3,
    async up(q) {
      // For retention (delete or drop by stream and time) and time-range reads.
      await q.exec(q.dialect === 'postgres' ? 'CREATE INDEX records_ts ON records USING brin (ts)' : 'CREATE INDEX records_stream_ts ON records (stream, ts)');
    },
  },
];

/** Inserts per statement on the fast path: 8 parameters a record, well under both dialects' limits. */
const INSERT_CHUNK = 500;

export interface CentralStoreOptions {
  /** `sqlite:PATH` (or a bare path) or `postgres://…`. */
  url: string;
  /** Read models kept in the ingest transaction. The fleet registry is always first. */
  projections?: readonly CentralProjection[];
  /** Open an existing store for reports only: no migration, no writes. */
  readonly?: boolean;
  /** PostgreSQL connections per worker. */
  poolSize?: number;
}

/** How the legacy reference subscriber marked its SQLite schema before central_schema existed. */
async function legacyVersion(q: SqlQueries): Promise<number | undefined> {
  if (q.dialect !== 'sqlite') return undefined;
  const v = (await q.get<{ user_version: number }>('PRAGMA user_version'))!.user_version;
  return v > 0 ? v : undefined;
}

async function separateDroppedFromReceived(q: SqlQueries): Promise<void> {
  const rows = await q.all<ExplainedRow & { agent_id: string; stream: string }>(
    'SELECT agent_id, stream, from_seq, to_seq, reason, event_seq, received_ts FROM dropped',
  );
  for (const d of rows) {
    const runs = await receivedRuns(q, d.agent_id, d.stream, d.from_seq, d.to_seq);
    if (!runs.length) continue;
    await q.run('DELETE FROM dropped WHERE agent_id = ? AND stream = ? AND from_seq = ?', [d.agent_id, d.stream, d.from_seq]);
    for (const piece of subtract(d.from_seq, d.to_seq, runs))
      await putExplained(q, 'dropped', d.agent_id, d.stream, { ...d, from_seq: piece.from, to_seq: piece.to });
  }
}

/** The received seqs within [from, to], as runs of consecutive seqs. */
function receivedRuns(q: SqlQueries, agentId: string, stream: string, from: number, to: number): Promise<SeqRange[]> {
  return q.all<SeqRange>(
    `SELECT MIN(seq) AS "from", MAX(seq) AS "to" FROM (
       SELECT seq, seq - ROW_NUMBER() OVER (ORDER BY seq) AS island FROM records WHERE agent_id = ? AND stream = ? AND seq BETWEEN ? AND ?
     ) runs GROUP BY island ORDER BY 1`,
    [agentId, stream, from, to],
  );
}

async function putExplained(q: SqlQueries, table: ExplainedTable, agentId: string, stream: string, r: ExplainedRow): Promise<void> {
  await q.run(`INSERT INTO ${table} (agent_id, stream, from_seq, to_seq, reason, event_seq, received_ts) VALUES (?, ?, ?, ?, ?, ?, ?)`, [
    agentId,
    stream,
    r.from_seq,
    r.to_seq,
    r.reason,
    r.event_seq,
    r.received_ts,
  ]);
}

const emptyResult = (): IngestResult => ({ inserted: 0, duplicates: 0, outOfOrder: 0, repaired: 0, carried: 0, conflicts: 0, conflictSeqs: [] });

export class CentralStore {
  readonly sql: SqlClient;
  /** Where the store is, for logs (no password). */
  readonly location: string;
  private readonly projections: readonly CentralProjection[];
  /** The ledger's schema version in this store (a read-only report may open an older one). */
  private version = LEDGER_VERSION;

  private constructor(sql: SqlClient, projections: readonly CentralProjection[]) {
    this.sql = sql;
    this.location = sql.location;
    this.projections = projections;
  }

  /** Opens the store and brings the ledger's and every projection's tables up to date (once, under a lock). */
  static async open(options: CentralStoreOptions): Promise<CentralStore> {
    const sql = await openSqlClient(options.url, {
      ...(options.readonly ? { readonly: true } : {}),
      ...(options.poolSize !== undefined ? { poolSize: options.poolSize } : {}),
    });
    const store = new CentralStore(sql, options.readonly ? [] : [new FleetRegistry(), ...(options.projections ?? [])]);
    try {
      if (options.readonly) await store.readVersion();
      else await store.migrate();
    } catch (err) {
      await sql.close().catch(() => undefined);
      if (isForewarnError(err)) throw err;
      throw new ForewarnError('FW_ERR_STORAGE_OPEN', `${sql.location}: ${describeError(err)}`, { cause: err });
    }
    return store;
  }

  private async migrate(): Promise<void> {
    await this.sql.tx(
      async (q) => {
        await ensureSchemaTable(q);
        await migrateComponent(q, 'ledger', LEDGER_MIGRATIONS, await legacyVersion(q));
        for (const p of this.projections) await migrateComponent(q, p.name, p.migrations);
      },
      { lockKey: MIGRATION_LOCK },
    );
  }

  private async readVersion(): Promise<void> {
    // An older file of the reference subscriber has no central_schema: its user_version says which schema it has.
    const row = await this.sql.get<{ version: number }>("SELECT version FROM central_schema WHERE component = 'ledger'").catch(() => undefined);
    this.version = row?.version ?? (await legacyVersion(this.sql)) ?? LEDGER_VERSION;
  }

  /** Runs `fn` as one transaction holding the agent's lock; a failure is FW_ERR_STORAGE_WRITE, nothing of it kept. */
  private async write<T>(agentId: string | null, fn: (q: SqlQueries) => Promise<T>): Promise<T> {
    try {
      return await this.sql.tx(fn, agentId === null ? {} : { lockKey: agentId });
    } catch (err) {
      if (isForewarnError(err)) throw err;
      throw new ForewarnError('FW_ERR_STORAGE_WRITE', `${this.location}: ${describeError(err)}`, { cause: err });
    }
  }

  /**
   * Stores one batch: dedupes, detects conflicting content, tracks gaps, applies records-dropped,
   * records-unavailable and storage-recovered events, then the projections. One transaction.
   */
  ingestBatch(batch: DecodedBatch, receivedTs = Date.now()): Promise<IngestResult> {
    return this.write(batch.agentId, async (q) => {
      const { agentId, stream } = batch;
      await q.run('INSERT INTO streams (agent_id, stream) VALUES (?, ?) ON CONFLICT DO NOTHING', [agentId, stream]);
      const row = (await q.get<StreamRow>('SELECT highest_seq FROM streams WHERE agent_id = ? AND stream = ?', [agentId, stream]))!;
      const fresh: BatchRecord[] = [];
      const result =
        (await this.fastPath(q, batch, row.highest_seq, receivedTs, fresh)) ?? (await this.recordByRecord(q, batch, row.highest_seq, receivedTs, fresh));
      if (fresh.length) {
        const ingested = { agentId, stream, bootSeq: batch.bootSeq, historical: batch.historical, receivedTs, records: fresh };
        for (const p of this.projections) await p.applyBatch(q, ingested);
      }
      return result;
    });
  }

  /**
   * The common case in one go: a non-events batch whose seqs all lie above the highest stored, ascending, with no
   * reset, gap or explanation above the highest that could change how they count. Returns null (having written
   * nothing) when the batch is not such a batch.
   */
  private async fastPath(q: SqlQueries, batch: DecodedBatch, highest: number, receivedTs: number, fresh: BatchRecord[]): Promise<IngestResult | null> {
    const { agentId, stream, records } = batch;
    if (stream === 'events' || !records.length) return null;
    let prev = highest;
    for (const r of records) {
      if (!Number.isSafeInteger(r.seq) || r.seq <= prev) return null;
      prev = r.seq;
    }
    const first = records[0]!.seq;
    const last = prev;
    const resetBelow = await this.resetBelow(q, agentId);
    if (first < resetBelow) return null;
    if (await q.get('SELECT 1 AS x FROM gaps WHERE agent_id = ? AND stream = ? AND to_seq >= ? LIMIT 1', [agentId, stream, first])) return null;
    // Explanations (drops, unavailable) that reach into this batch: a record cuts itself out of them, record by record.
    const explainedCover = await this.explainedCover(q, agentId, stream, highest + 1, last);
    if (explainedCover.some((c) => c.to >= first)) return null;

    const result = emptyResult();
    for (let i = 0; i < records.length; i += INSERT_CHUNK) {
      const chunk = records.slice(i, i + INSERT_CHUNK);
      const inserted = await this.insertRecords(q, batch, chunk, receivedTs);
      const stored = new Set(inserted.map((x) => x.seq));
      for (const r of chunk) {
        if (stored.has(r.seq)) {
          fresh.push(r);
          result.inserted++;
        } else if (await this.isConflict(q, agentId, stream, r.seq, JSON.stringify(r), batch.bootSeq, receivedTs)) {
          // Cannot happen while the ledger is consistent (nothing above the highest is stored); counted, not hidden.
          result.conflicts++;
          result.conflictSeqs.push(r.seq);
        } else {
          result.duplicates++;
        }
      }
    }
    // The jumps between consecutive seqs (and from the highest stored to the first) are missing, less what the
    // agent explained there.
    const put = 'INSERT INTO gaps (agent_id, stream, from_seq, to_seq, opened_ts) VALUES (?, ?, ?, ?, ?)';
    let before = Math.max(highest, resetBelow - 1);
    for (const r of records) {
      if (r.seq > before + 1) for (const g of subtract(before + 1, r.seq - 1, explainedCover)) await q.run(put, [agentId, stream, g.from, g.to, receivedTs]);
      before = Math.max(before, r.seq);
    }
    await this.updateStream(q, batch, last, result, receivedTs);
    return result;
  }

  /**
   * One statement for many records. PostgreSQL takes them as one JSON array (`json_array_elements`): one text
   * parameter instead of 4,000 bound ones, and no escaping of JSON into a text[] literal. The `json` type keeps each
   * element's text as sent, so the stored payload is exactly `JSON.stringify(record)`, as on the record-by-record
   * path (duplicates are recognised by comparing it). SQLite takes a multi-row VALUES list.
   */
  private insertRecords(q: SqlQueries, batch: DecodedBatch, chunk: readonly BatchRecord[], receivedTs: number): Promise<Array<{ seq: number }>> {
    const { agentId, stream } = batch;
    const historical = batch.historical ? 1 : 0;
    if (q.dialect === 'postgres') {
      return q.all<{ seq: number }>(
        `INSERT INTO records (agent_id, stream, seq, ts, boot_seq, historical, received_ts, payload)
         SELECT ?, ?, (r->>'seq')::bigint, round((r->>'ts')::numeric)::bigint, ?, ?, ?, r::text FROM json_array_elements(?::json) AS r
         ON CONFLICT DO NOTHING RETURNING seq`,
        [agentId, stream, batch.bootSeq, historical, receivedTs, JSON.stringify(chunk)],
      );
    }
    // The ts column holds whole milliseconds (a fraction would not fit PostgreSQL's BIGINT); the payload keeps the record as sent.
    const params = chunk.flatMap((r) => [agentId, stream, r.seq, Math.round(r.ts), batch.bootSeq, historical, receivedTs, JSON.stringify(r)]);
    return q.all<{ seq: number }>(
      `INSERT INTO records (agent_id, stream, seq, ts, boot_seq, historical, received_ts, payload) VALUES ${valuesList(chunk.length, 8)}
       ON CONFLICT DO NOTHING RETURNING seq`,
      params,
    );
  }

  /** Every record on its own: for the events stream, and for seqs at or below the highest (late, repeated, resent). */
  private async recordByRecord(q: SqlQueries, batch: DecodedBatch, highestStored: number, receivedTs: number, fresh: BatchRecord[]): Promise<IngestResult> {
    const { agentId, stream } = batch;
    let highest = highestStored;
    let resetBelow = await this.resetBelow(q, agentId);
    const result = emptyResult();
    let gapsAbove: boolean | undefined;
    for (const r of batch.records) {
      const payload = JSON.stringify(r);
      const stored = await q.get<{ payload: string }>('SELECT payload FROM records WHERE agent_id = ? AND stream = ? AND seq = ?', [agentId, stream, r.seq]);
      if (stored) {
        if (stored.payload !== payload && (await this.isConflict(q, agentId, stream, r.seq, payload, batch.bootSeq, receivedTs))) {
          result.conflicts++;
          result.conflictSeqs.push(r.seq);
        } else {
          result.duplicates++;
        }
        continue;
      }
      await q.run('INSERT INTO records (agent_id, stream, seq, ts, boot_seq, historical, received_ts, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
        agentId,
        stream,
        r.seq,
        Math.round(r.ts),
        batch.bootSeq,
        batch.historical ? 1 : 0,
        receivedTs,
        payload,
      ]);
      fresh.push(r);
      result.inserted++;
      const carried = r.seq < resetBelow;
      if (carried) result.carried++;
      // Received wins over an earlier explanation: the agent may announce records it had published as dropped.
      const explained = (await this.cutExplained(q, 'dropped', agentId, stream, r.seq)) || (await this.cutExplained(q, 'unavailable', agentId, stream, r.seq));
      if (r.seq > highest) {
        if (r.seq > highest + 1) await this.openGap(q, agentId, stream, highest + 1, r.seq - 1, receivedTs);
        // Gaps can lie above the highest seq received: the carried records an agent announced with a reset.
        if (gapsAbove === undefined || gapsAbove) {
          gapsAbove =
            (await q.get('SELECT 1 AS x FROM gaps WHERE agent_id = ? AND stream = ? AND to_seq >= ? LIMIT 1', [agentId, stream, r.seq])) !== undefined;
          if (gapsAbove) await this.closeGaps(q, agentId, stream, r.seq, r.seq);
        }
        highest = r.seq;
      } else {
        const cut = await this.closeGaps(q, agentId, stream, r.seq, r.seq);
        if (carried) {
          // counted as carried: an earlier file's record, not a late one
        } else if (cut.length && (batch.historical || cut.some((g) => g.requestedTs !== null))) {
          // Sent again by the agent: on request, or on its own (its backlog after a reconnect, an unconfirmed
          // tail) before the next acknowledgement could ask for it.
          result.repaired++;
        } else if (cut.length || !explained) {
          result.outOfOrder++;
        }
      }
      if (stream !== 'events') continue;
      const drop = parseDropped(r);
      if (drop) for (const [from, to] of drop.ranges) await this.addExplained(q, 'dropped', agentId, drop.stream, from, to, drop.reason, r.seq, receivedTs);
      const unavailable = parseUnavailable(r);
      if (unavailable) {
        for (const [from, to] of unavailable.ranges)
          await this.addExplained(q, 'unavailable', agentId, unavailable.stream, from, to, unavailable.reason, r.seq, receivedTs);
      }
      const reset = parseStorageRecovered(r);
      if (reset) {
        await this.addReset(q, agentId, reset, r.seq, receivedTs);
        resetBelow = await this.resetBelow(q, agentId);
        gapsAbove = undefined;
      }
    }
    await this.updateStream(q, batch, highest, result, receivedTs);
    return result;
  }

  private async updateStream(q: SqlQueries, batch: DecodedBatch, highest: number, result: IngestResult, receivedTs: number): Promise<void> {
    await q.run(
      `UPDATE streams SET highest_seq = ?, received = received + ?, duplicates = duplicates + ?, out_of_order = out_of_order + ?,
         repaired = repaired + ?, carried = carried + ?, conflicts = conflicts + ?,
         last_boot_seq = ?, last_received_ts = ? WHERE agent_id = ? AND stream = ?`,
      [
        highest,
        result.inserted,
        result.duplicates,
        result.outOfOrder,
        result.repaired,
        result.carried,
        result.conflicts,
        batch.bootSeq,
        receivedTs,
        batch.agentId,
        batch.stream,
      ],
    );
  }

  /**
   * A seq already stored came again with different JSON (a resend of the same agent record serialises
   * identically, so the same JSON is a duplicate): a conflict; the first stays, this one is kept in `conflicts`
   * (once per content). Returns false when this conflicting content was already kept (a duplicate of the conflict).
   */
  private async isConflict(q: SqlQueries, agentId: string, stream: string, seq: number, payload: string, bootSeq: number, now: number): Promise<boolean> {
    const stored = await q.get<{ payload: string }>('SELECT payload FROM records WHERE agent_id = ? AND stream = ? AND seq = ?', [agentId, stream, seq]);
    if (!stored || stored.payload === payload) return false;
    const { changes } = await q.run(
      'INSERT INTO conflicts (agent_id, stream, seq, sha256, boot_seq, received_ts, payload) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
      [agentId, stream, seq, sha256(payload), bootSeq, now, payload],
    );
    return changes > 0;
  }

  private async ensureStream(q: SqlQueries, agentId: string, stream: string): Promise<void> {
    await q.run('INSERT INTO streams (agent_id, stream) VALUES (?, ?) ON CONFLICT DO NOTHING', [agentId, stream]);
  }

  private explainedRanges(q: SqlQueries, table: ExplainedTable, agentId: string, stream: string, from: number, to: number): Promise<SeqRange[]> {
    return q.all<SeqRange>(
      `SELECT from_seq AS "from", to_seq AS "to" FROM ${table} WHERE agent_id = ? AND stream = ? AND from_seq <= ? AND to_seq >= ? ORDER BY from_seq`,
      [agentId, stream, to, from],
    );
  }

  /** Dropped and unavailable ranges that overlap [from, to], sorted. */
  private async explainedCover(q: SqlQueries, agentId: string, stream: string, from: number, to: number): Promise<SeqRange[]> {
    if (from > to) return [];
    return [
      ...(await this.explainedRanges(q, 'dropped', agentId, stream, from, to)),
      ...(await this.explainedRanges(q, 'unavailable', agentId, stream, from, to)),
    ].sort(byFrom);
  }

  /** A record arrived whose seq the agent had explained away: it is received, so cut it out of that range. */
  private async cutExplained(q: SqlQueries, table: ExplainedTable, agentId: string, stream: string, seq: number): Promise<boolean> {
    // Ranges are disjoint: only the last one starting at or below seq can hold it (an index seek, not a scan).
    const r = await q.get<ExplainedRow>(
      `SELECT from_seq, to_seq, reason, event_seq, received_ts FROM ${table} WHERE agent_id = ? AND stream = ? AND from_seq <= ? ORDER BY from_seq DESC LIMIT 1`,
      [agentId, stream, seq],
    );
    if (!r || r.to_seq < seq) return false;
    await q.run(`DELETE FROM ${table} WHERE agent_id = ? AND stream = ? AND from_seq = ?`, [agentId, stream, r.from_seq]);
    if (r.from_seq < seq) await putExplained(q, table, agentId, stream, { ...r, to_seq: seq - 1 });
    if (r.to_seq > seq) await putExplained(q, table, agentId, stream, { ...r, from_seq: seq + 1 });
    return true;
  }

  /** The highest first seq of a fresh agent database seen so far: seqs below it belonged to an earlier file. */
  private async resetBelow(q: SqlQueries, agentId: string): Promise<number> {
    return (await q.get<{ n: number | null }>('SELECT MAX(first_seq) AS n FROM resets WHERE agent_id = ?', [agentId]))?.n ?? 0;
  }

  /**
   * The agent started a fresh database and counts on from `firstSeq`: what is missing below it went with the
   * earlier file (or never existed) and will never come. Those gaps close (they are reported as resets, not as
   * missing), and none opens there again, whichever of the event and the new records arrives first. Records the
   * agent carried over from the earlier file keep their seqs below `firstSeq` and are stored when they arrive.
   */
  private async addReset(q: SqlQueries, agentId: string, reset: StorageReset, eventSeq: number, now: number): Promise<void> {
    await q.run(
      'INSERT INTO resets (agent_id, first_seq, set_aside, event_seq, received_ts, cause, carried) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
      [agentId, reset.firstSeq, reset.setAside, eventSeq, now, reset.cause, reset.carried],
    );
    for (const { stream } of await q.all<{ stream: string }>('SELECT stream FROM streams WHERE agent_id = ?', [agentId])) {
      await this.closeGaps(q, agentId, stream, 1, reset.firstSeq - 1);
    }
    // Records the agent carried into its new file are still to come: what of them has not arrived stays missing
    // (and is asked for), rather than being written off with the rest of the earlier file.
    const put = 'INSERT INTO gaps (agent_id, stream, from_seq, to_seq, opened_ts) VALUES (?, ?, ?, ?, ?)';
    for (const [stream, ranges] of reset.carriedRanges) {
      await this.ensureStream(q, agentId, stream);
      for (const [from, to] of ranges) {
        const cover = [...(await receivedRuns(q, agentId, stream, from, to)), ...(await this.explainedCover(q, agentId, stream, from, to))].sort(byFrom);
        await this.closeGaps(q, agentId, stream, from, to);
        for (const g of subtract(from, to, cover)) await q.run(put, [agentId, stream, g.from, g.to, now]);
      }
    }
  }

  /** Opens [from, to] as missing, except the parts the agent explained (dropped, unavailable) or lost in a reset. */
  private async openGap(q: SqlQueries, agentId: string, stream: string, from: number, to: number, now: number): Promise<void> {
    from = Math.max(from, await this.resetBelow(q, agentId));
    if (from > to) return;
    const cover = await this.explainedCover(q, agentId, stream, from, to);
    for (const g of subtract(from, to, cover)) {
      await q.run('INSERT INTO gaps (agent_id, stream, from_seq, to_seq, opened_ts) VALUES (?, ?, ?, ?, ?)', [agentId, stream, g.from, g.to, now]);
    }
  }

  /** Removes [from, to] from the open gaps, shrinking or splitting the gaps it cuts; returns the gaps it cut. */
  private async closeGaps(q: SqlQueries, agentId: string, stream: string, from: number, to: number): Promise<CutGap[]> {
    const cut = await q.all<CutGap>(
      `DELETE FROM gaps WHERE agent_id = ? AND stream = ? AND from_seq <= ? AND to_seq >= ?
       RETURNING from_seq AS "from", to_seq AS "to", opened_ts AS "openedTs", requested_ts AS "requestedTs"`,
      [agentId, stream, to, from],
    );
    const put = 'INSERT INTO gaps (agent_id, stream, from_seq, to_seq, opened_ts, requested_ts) VALUES (?, ?, ?, ?, ?, ?)';
    for (const g of cut) {
      if (g.from < from) await q.run(put, [agentId, stream, g.from, from - 1, g.openedTs, g.requestedTs]);
      if (g.to > to) await q.run(put, [agentId, stream, to + 1, g.to, g.openedTs, g.requestedTs]);
    }
    return cut;
  }

  /**
   * Records [from, to] of `stream` as explained by the agent (dropped by policy, or unavailable): not a gap.
   * Only the seqs not received and not explained already are stored, so the tables never overlap `records`
   * nor each other, and no seq is counted twice.
   */
  private async addExplained(
    q: SqlQueries,
    table: ExplainedTable,
    agentId: string,
    stream: string,
    from: number,
    to: number,
    reason: string,
    eventSeq: number,
    now: number,
  ): Promise<void> {
    await this.ensureStream(q, agentId, stream);
    const cover = [...(await receivedRuns(q, agentId, stream, from, to)), ...(await this.explainedCover(q, agentId, stream, from, to))].sort(byFrom);
    for (const d of subtract(from, to, cover)) {
      await putExplained(q, table, agentId, stream, { from_seq: d.from, to_seq: d.to, reason, event_seq: eventSeq, received_ts: now });
    }
    await this.closeGaps(q, agentId, stream, from, to);
  }

  /**
   * The end-to-end acknowledgement for one agent, computed from the store (so it covers what every worker
   * committed): per stream, `through` (every seq up to it is received or explained: just below the first open
   * gap, else the highest seq), `highest`, and the first ACK_MAX_RANGES open gaps as `missing`. The gaps it lists
   * are marked requested (`requested_ts`), so the records that fill them count as repaired.
   */
  ackFor(agentId: string, now = Date.now()): Promise<AckPayload> {
    return this.write(agentId, async (q) => {
      const streams: Record<string, AckStreamState> = {};
      const rows = await q.all<{ stream: string; highest_seq: number }>('SELECT stream, highest_seq FROM streams WHERE agent_id = ? ORDER BY stream', [
        agentId,
      ]);
      for (const s of rows) {
        if (!(BATCH_STREAMS as readonly string[]).includes(s.stream)) continue;
        const gaps = await q.all<SeqRange & { requestedTs: number | null }>(
          'SELECT from_seq AS "from", to_seq AS "to", requested_ts AS "requestedTs" FROM gaps WHERE agent_id = ? AND stream = ? ORDER BY from_seq LIMIT ?',
          [agentId, s.stream, ACK_MAX_RANGES],
        );
        const state: AckStreamState = { through: gaps.length ? gaps[0]!.from - 1 : s.highest_seq, highest: s.highest_seq };
        if (gaps.length) {
          state.missing = gaps.map((g): [number, number] => [g.from, g.to]);
          for (const g of gaps) {
            if (g.requestedTs === null)
              await q.run('UPDATE gaps SET requested_ts = ? WHERE agent_id = ? AND stream = ? AND from_seq = ?', [now, agentId, s.stream, g.from]);
          }
        }
        streams[s.stream] = state;
      }
      return { schemaVersion: CONTRACT_SCHEMA_VERSION, agentId, ts: now, streams };
    });
  }

  /** An acknowledgement computed at `ackTs` never reached the agent (the broker refused it): its gaps were not requested. */
  async forgetRequests(agentId: string, ackTs: number): Promise<void> {
    await this.write(agentId, (q) => q.run('UPDATE gaps SET requested_ts = NULL WHERE agent_id = ? AND requested_ts = ?', [agentId, ackTs]));
  }

  /**
   * Stores the status as the agent's current one. The broker delivers one topic's messages in order, so the
   * latest status received wins; `bootSeq` and `ts` are stored but do not decide (the Will carries the time the
   * agent connected, older than its online status, and must still win when the connection dies).
   */
  async recordStatus(status: DecodedStatus, receivedTs = Date.now()): Promise<void> {
    await this.write(status.agentId, async (q) => {
      await q.run(
        `INSERT INTO agents (agent_id, state, boot_seq, ts, received_ts, payload) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (agent_id) DO UPDATE SET state = excluded.state, boot_seq = excluded.boot_seq, ts = excluded.ts,
           received_ts = excluded.received_ts, payload = excluded.payload`,
        [status.agentId, status.state, status.bootSeq, status.ts, receivedTs, JSON.stringify(status.payload)],
      );
      for (const p of this.projections) await p.applyStatus?.(q, status, receivedTs);
    });
  }

  async recordMalformed(topic: string, error: string, receivedTs = Date.now()): Promise<void> {
    await this.write(null, (q) =>
      q.run(
        `INSERT INTO malformed (topic, count, last_error, last_ts) VALUES (?, 1, ?, ?)
         ON CONFLICT (topic) DO UPDATE SET count = malformed.count + 1, last_error = excluded.last_error, last_ts = excluded.last_ts`,
        [topic, error, receivedTs],
      ),
    );
  }

  async summary(): Promise<SubscriberSummary> {
    const q = this.sql;
    const v2 = this.version >= 2;
    const key = (agentId: string, stream: string) => `${agentId}\u0000${stream}`;
    const sums = async (table: 'gaps' | 'dropped' | 'unavailable', where = '') =>
      new Map(
        (
          await q.all<{ agent_id: string; stream: string; n: number }>(
            `SELECT agent_id, stream, SUM(to_seq - from_seq + 1) AS n FROM ${table} ${where} GROUP BY agent_id, stream`,
          )
        ).map((r) => [key(r.agent_id, r.stream), r.n]),
      );
    const missing = await sums('gaps');
    const dropped = await sums('dropped');
    // A schema-1 file opened for a report lacks the newer tables and columns: they count as none.
    const unavailable = v2 ? await sums('unavailable') : new Map<string, number>();
    const requested = v2 ? await sums('gaps', 'WHERE requested_ts IS NOT NULL') : new Map<string, number>();
    const gaps = new Map<string, SeqRange[]>();
    for (const g of await q.all<{ agent_id: string; stream: string; from_seq: number; to_seq: number }>(
      'SELECT agent_id, stream, from_seq, to_seq FROM gaps ORDER BY agent_id, stream, from_seq',
    )) {
      const k = key(g.agent_id, g.stream);
      const list = gaps.get(k) ?? [];
      list.push({ from: g.from_seq, to: g.to_seq });
      gaps.set(k, list);
    }
    const resets = new Map(
      (await q.all<{ agent_id: string; n: number }>('SELECT agent_id, MAX(first_seq) AS n FROM resets GROUP BY agent_id')).map((r) => [r.agent_id, r.n]),
    );
    const streams = (
      await q.all<{
        agent_id: string;
        stream: string;
        highest_seq: number;
        received: number;
        duplicates: number;
        out_of_order: number;
        repaired?: number;
        carried?: number;
        conflicts?: number;
      }>('SELECT * FROM streams ORDER BY agent_id, stream')
    ).map((s): StreamSummary => {
      const k = key(s.agent_id, s.stream);
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
        resetBelow: resets.get(s.agent_id) ?? 0,
        gaps: gaps.get(k) ?? [],
      };
    });
    const agents = await q.all<AgentSummary>('SELECT agent_id AS "agentId", state, boot_seq AS "bootSeq", ts FROM agents ORDER BY agent_id');
    const malformed = await q.all<MalformedSummary>('SELECT topic, count, last_error AS "lastError", last_ts AS "lastTs" FROM malformed ORDER BY topic');
    return { streams, agents, malformed };
  }

  /** The conflicting versions kept for one stream (the first version of each seq stays in `records`). */
  async storedConflicts(agentId: string, stream: string): Promise<StoredConflict[]> {
    if (this.version < 2) return [];
    return this.sql.all<StoredConflict>(
      'SELECT seq, boot_seq AS "bootSeq", received_ts AS "receivedTs", payload FROM conflicts WHERE agent_id = ? AND stream = ? ORDER BY seq, received_ts',
      [agentId, stream],
    );
  }

  /** Every seq stored for one stream, ascending. */
  async receivedSeqs(agentId: string, stream: string): Promise<number[]> {
    return (await this.sql.all<{ seq: number }>('SELECT seq FROM records WHERE agent_id = ? AND stream = ? ORDER BY seq', [agentId, stream])).map((r) => r.seq);
  }

  close(): Promise<void> {
    return this.sql.close();
  }
}
