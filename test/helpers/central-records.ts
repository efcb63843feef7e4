import { BATCH_STREAMS } from '../../agent/src/central/decode-batch.js';
import { ensureSchemaTable, migrateComponent, MIGRATION_LOCK } from '../../agent/src/central/sql/migrations.js';
import { valuesList, type SqlClient, type SqlQueries, type SqlValue } from '../../agent/src/central/sql/sql-client.js';
import type { CentralProjection, IngestedBatch } from '../../agent/src/central/projection.js';

/**
 * The ledger's `records` table as central-context describes it, for tests of the read side until the lead's
 * ledger lands: on PostgreSQL partitioned by LIST (stream), each `records_<stream>` by RANGE (ts) with a default
 * partition; on SQLite one table with an index (stream, ts). Plus the `central_alerts` table of the alerts branch.
 */
export async function createLedgerTables(q: SqlQueries): Promise<void> {
  if (q.dialect === 'postgres') {
    await q.exec(`CREATE TABLE records (
      agent_id TEXT NOT NULL, stream TEXT NOT NULL, seq BIGINT NOT NULL, ts BIGINT NOT NULL, boot_seq BIGINT NOT NULL,
      historical BOOLEAN NOT NULL, received_ts BIGINT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (agent_id, stream, seq, ts)
    ) PARTITION BY LIST (stream)`);
    for (const s of BATCH_STREAMS) {
      await q.exec(`CREATE TABLE records_${s} PARTITION OF records FOR VALUES IN ('${s}') PARTITION BY RANGE (ts);
        CREATE TABLE records_${s}_default PARTITION OF records_${s} DEFAULT;`);
    }
  } else {
    await q.exec(`CREATE TABLE records (
      agent_id TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, boot_seq INTEGER NOT NULL,
      historical INTEGER NOT NULL, received_ts INTEGER NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (agent_id, stream, seq)
    ); CREATE INDEX records_stream_ts ON records (stream, ts);`);
  }
  const big = q.dialect === 'postgres' ? 'BIGINT' : 'INTEGER';
  const real = q.dialect === 'postgres' ? 'DOUBLE PRECISION' : 'REAL';
  await q.exec(`CREATE TABLE central_alerts (
      alert_key TEXT PRIMARY KEY, origin TEXT NOT NULL, agent_id TEXT, asset TEXT, rule TEXT NOT NULL, severity TEXT NOT NULL,
      title TEXT NOT NULL, state TEXT NOT NULL, raised_ts ${big} NOT NULL, resolved_ts ${big}, updated_ts ${big} NOT NULL,
      value ${real}, evidence TEXT NOT NULL, remedy TEXT NOT NULL
    );
    CREATE INDEX central_alerts_state ON central_alerts (state, raised_ts);
    CREATE INDEX central_alerts_asset ON central_alerts (agent_id, asset);
    CREATE TABLE streams (agent_id TEXT NOT NULL, stream TEXT NOT NULL, highest_seq ${big} NOT NULL DEFAULT 0,
      received ${big} NOT NULL DEFAULT 0, PRIMARY KEY (agent_id, stream));
    CREATE TABLE gaps (agent_id TEXT NOT NULL, stream TEXT NOT NULL, from_seq ${big} NOT NULL, to_seq ${big} NOT NULL,
      opened_ts ${big} NOT NULL, PRIMARY KEY (agent_id, stream, from_seq));`);
}

/** Migrates the projections as the central command does at start. */
export async function migrateProjections(sql: SqlClient, projections: readonly CentralProjection[]): Promise<void> {
  await sql.tx(
    async (q) => {
      await ensureSchemaTable(q);
      for (const p of projections) await migrateComponent(q, p.name, p.migrations);
    },
    { lockKey: MIGRATION_LOCK },
  );
}

/**
 * What the ingest does with a batch: the records into `records` (ON CONFLICT DO NOTHING), and only the newly
 * stored ones to the projections, in one transaction.
 */
export async function ingest(sql: SqlClient, projections: readonly CentralProjection[], batch: IngestedBatch): Promise<number> {
  return sql.tx(async (q) => {
    const fresh: IngestedBatch['records'] = [];
    for (const r of batch.records) {
      const params: SqlValue[] = [
        batch.agentId,
        batch.stream,
        r.seq,
        r.ts,
        batch.bootSeq,
        q.dialect === 'postgres' ? batch.historical : batch.historical ? 1 : 0,
        batch.receivedTs,
        JSON.stringify(r),
      ];
      const { changes } = await q.run(
        `INSERT INTO records (agent_id, stream, seq, ts, boot_seq, historical, received_ts, payload) VALUES ${valuesList(1, 8)} ON CONFLICT DO NOTHING`,
        params,
      );
      if (changes) fresh.push(r);
    }
    for (const p of projections) await p.applyBatch(q, { ...batch, records: fresh });
    return fresh.length;
  });
}
