import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetProjection, HOUR_MS } from '../../../../agent/src/central/fleet/fleet-projection.js';
import { DAY_MS, Retention, partitionName } from '../../../../agent/src/central/fleet/retention.js';
import { openSqlClient } from '../../../../agent/src/central/sql/open-sql-client.js';
import { valuesList, type SqlClient, type SqlValue } from '../../../../agent/src/central/sql/sql-client.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { createLedgerTables, migrateProjections } from '../../../helpers/central-records.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from '../../../helpers/postgres.js';

const pgSkip = postgresSkipReason();
let cluster: PostgresCluster | undefined;
const dir = mkdtempSync(path.join(tmpdir(), 'fw-retention-'));

beforeAll(async () => {
  if (!pgSkip) cluster = await startPostgres();
}, 120_000);
afterAll(() => {
  cluster?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/** Today in the tests: a fixed UTC midnight plus 10 hours. */
const TODAY = Date.UTC(2026, 11, 7);
const NOW = TODAY + 10 * HOUR_MS;

async function insertRecords(sql: SqlClient, stream: string, tss: readonly number[], firstSeq = 1): Promise<void> {
  for (let i = 0; i < tss.length; i += 500) {
    const chunk = tss.slice(i, i + 500);
    const params: SqlValue[] = [];
    chunk.forEach((ts, j) => params.push('a1', stream, firstSeq + i + j, ts, 1, sql.dialect === 'postgres' ? false : 0, ts, '{}'));
    await sql.run(`INSERT INTO records (agent_id, stream, seq, ts, boot_seq, historical, received_ts, payload) VALUES ${valuesList(chunk.length, 8)}`, params);
  }
}

async function insertRollups(sql: SqlClient, hours: readonly number[]): Promise<void> {
  for (const [i, hour] of hours.entries()) {
    await sql.run(
      'INSERT INTO fleet_risk_hourly (agent_id, asset, model, hour, samples, min_score, max_score, sum_score, at_risk_samples, last_score, last_ts) VALUES (?, ?, ?, ?, 1, 0, 0, 0, 0, 0, ?)',
      ['a1', `asset${i}`, 'm', hour, hour],
    );
  }
}

const count = async (sql: SqlClient, where: string, params: SqlValue[] = []) =>
  (await sql.get<{ n: number }>(`SELECT COUNT(*) AS n FROM records WHERE ${where}`, params))!.n;

describe('partitionName', () => {
  it('names the UTC day', () => {
    expect(partitionName('telemetry', TODAY)).toBe('records_telemetry_p20261207');
  });
});

describe.skipIf(pgSkip !== null)(`Retention on postgres${pgSkip ? ` (skipped: ${pgSkip})` : ''}`, () => {
  it('creates the coming days’ partitions, drops expired ones whole, deletes default-partition stragglers, and keeps the ledger’s bookkeeping', async () => {
    const sql = await openSqlClient(cluster!.createDatabase('retention_pg'));
    const { log, lines } = captureLogger();
    try {
      await createLedgerTables(sql);
      await migrateProjections(sql, [new FleetProjection()]);
      // An old day partition from an earlier pass, 40 days back (telemetry keeps 30).
      const old = TODAY - 40 * DAY_MS;
      await sql.exec(`CREATE TABLE ${partitionName('telemetry', old)} PARTITION OF records_telemetry FOR VALUES FROM (${old}) TO (${old + DAY_MS})`);
      const recent = TODAY - 5 * DAY_MS;
      await sql.exec(`CREATE TABLE ${partitionName('telemetry', recent)} PARTITION OF records_telemetry FOR VALUES FROM (${recent}) TO (${recent + DAY_MS})`);
      await insertRecords(sql, 'telemetry', [old + 1, old + 2, old + 3]);
      await insertRecords(sql, 'telemetry', [recent + 1], 100);
      // Stragglers in the default partition: 35 days (past retention, in chunks of 4) and 2 days old (kept).
      const straggle = Array.from({ length: 10 }, (_, i) => TODAY - 35 * DAY_MS + i);
      await insertRecords(sql, 'telemetry', [...straggle, TODAY - 2 * DAY_MS], 200);
      // Risk keeps 400 days: a 40-day-old risk record stays.
      await insertRecords(sql, 'risk', [old + 5]);
      // Rows already in the default partition for the day after tomorrow: that partition cannot be created.
      await insertRecords(sql, 'events', [TODAY + 2 * DAY_MS + 5]);
      await sql.run("INSERT INTO streams (agent_id, stream, highest_seq, received) VALUES ('a1', 'telemetry', 300, 15)");
      await sql.run("INSERT INTO gaps (agent_id, stream, from_seq, to_seq, opened_ts) VALUES ('a1', 'telemetry', 4, 99, ?)", [old]);
      await insertRollups(sql, [NOW - 800 * DAY_MS, NOW - 10 * DAY_MS]);

      const r = new Retention({ sql, log, now: () => NOW, chunkRows: 4 });
      const report = await r.runOnce();

      const expected = ['alerts', 'risk', 'telemetry'].flatMap((s) => [0, 1, 2].map((d) => partitionName(s, TODAY + d * DAY_MS)));
      expected.push(partitionName('events', TODAY), partitionName('events', TODAY + DAY_MS));
      expect(report.partitionsCreated.sort()).toEqual(expected.sort());
      expect(report.blockedPartitions).toEqual([partitionName('events', TODAY + 2 * DAY_MS)]);
      expect(report.partitionsDropped).toEqual([partitionName('telemetry', old)]);
      expect(report.rowsDeleted.telemetry).toBe(10);
      expect(report.rollupRowsDeleted).toBe(1);
      const parts = await sql.all<{ relname: string }>(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'records_telemetry'::regclass ORDER BY 1",
      );
      expect(parts.map((p) => p.relname)).toEqual(
        [partitionName('telemetry', recent), ...[0, 1, 2].map((d) => partitionName('telemetry', TODAY + d * DAY_MS)), 'records_telemetry_default'].sort(),
      );
      expect(await count(sql, "stream = 'telemetry'")).toBe(2);
      expect(await count(sql, "stream = 'risk'")).toBe(1);
      expect(await count(sql, "stream = 'events'")).toBe(1);
      // A record for today now lands in today's partition, not the default one.
      await insertRecords(sql, 'telemetry', [NOW], 500);
      const where = await sql.get<{ p: string }>("SELECT tableoid::regclass::text AS p FROM records WHERE stream = 'telemetry' AND seq = 500");
      expect(where?.p).toBe(partitionName('telemetry', TODAY));
      expect((await sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM streams'))!.n).toBe(1);
      expect((await sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM gaps'))!.n).toBe(1);

      // The blocked day is logged once, not at every pass.
      const again = await r.runOnce();
      expect(again.blockedPartitions).toEqual([partitionName('events', TODAY + 2 * DAY_MS)]);
      expect(again.partitionsCreated).toEqual([]);
      expect(lines.filter((l) => l.partition === partitionName('events', TODAY + 2 * DAY_MS))).toHaveLength(1);
      // The next day: the stragglers' day still blocked, the following one created.
      const next = await new Retention({ sql, log, now: () => NOW + DAY_MS }).runOnce();
      expect(next.partitionsCreated.filter((p) => p.startsWith('records_events'))).toEqual([partitionName('events', TODAY + 3 * DAY_MS)]);
    } finally {
      await sql.close();
    }
  });
});

describe.skipIf(pgSkip !== null)(`Retention on postgres without day partitions${pgSkip ? ` (skipped: ${pgSkip})` : ''}`, () => {
  it('deletes from a records table partitioned otherwise, only past each stream’s retention, although ctids repeat across partitions', async () => {
    const sql = await openSqlClient(cluster!.createDatabase('retention_pg_plain'));
    try {
      await sql.exec(`CREATE TABLE records (
          agent_id TEXT NOT NULL, stream TEXT NOT NULL, seq BIGINT NOT NULL, ts BIGINT NOT NULL, boot_seq BIGINT NOT NULL,
          historical BOOLEAN NOT NULL, received_ts BIGINT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (agent_id, stream, seq, ts)
        ) PARTITION BY LIST (stream);
        CREATE TABLE records_t PARTITION OF records FOR VALUES IN ('telemetry');
        CREATE TABLE records_other PARTITION OF records DEFAULT;`);
      // The first rows of each partition share ctids (0,1), (0,2), …: the risk rows are 40 days old, within risk's 400.
      await insertRecords(sql, 'telemetry', [NOW - 40 * DAY_MS, NOW - 40 * DAY_MS + 1, NOW - 40 * DAY_MS + 2, NOW]);
      await insertRecords(sql, 'risk', [NOW - 40 * DAY_MS, NOW - 40 * DAY_MS + 1, NOW - 40 * DAY_MS + 2]);
      const report = await new Retention({ sql, log: captureLogger().log, now: () => NOW, chunkRows: 2 }).runOnce();
      expect(report.rowsDeleted.telemetry).toBe(3);
      expect(report.partitionsCreated).toEqual([]);
      expect(await count(sql, "stream = 'telemetry'")).toBe(1);
      expect(await count(sql, "stream = 'risk'")).toBe(3);
    } finally {
      await sql.close();
    }
  });
});

describe('Retention on sqlite', () => {
  it('deletes old records in chunks of chunkRows, one transaction each, and only past each stream’s retention', async () => {
    const base = await openSqlClient(`sqlite:${path.join(dir, 'retention.db')}`);
    let txs = 0;
    // The same client, counting transactions: each chunk must be its own, so the ingest waits one chunk at most.
    const sql: SqlClient = Object.assign(Object.create(base) as SqlClient, {
      tx: (fn: Parameters<SqlClient['tx']>[0], o?: Parameters<SqlClient['tx']>[1]) => {
        txs++;
        return base.tx(fn, o);
      },
    });
    const { log } = captureLogger();
    try {
      await createLedgerTables(base);
      await migrateProjections(base, [new FleetProjection()]);
      const oldTel = Array.from({ length: 1050 }, (_, i) => TODAY - 31 * DAY_MS + i);
      await insertRecords(base, 'telemetry', [...oldTel, TODAY - 29 * DAY_MS, NOW]);
      await insertRecords(base, 'alerts', [TODAY - 399 * DAY_MS, TODAY - 401 * DAY_MS]);
      await insertRollups(base, [NOW - 731 * DAY_MS, NOW - 729 * DAY_MS]);
      await base.run("INSERT INTO gaps (agent_id, stream, from_seq, to_seq, opened_ts) VALUES ('a1', 'telemetry', 5000, 5001, 0)");
      const report = await new Retention({ sql, log, now: () => NOW, chunkRows: 100 }).runOnce();
      expect(report.rowsDeleted).toEqual({ alerts: 1, risk: 0, events: 0, telemetry: 1050 });
      expect(report.rollupRowsDeleted).toBe(1);
      expect(report.partitionsCreated).toEqual([]);
      // 1050 rows in chunks of 100: 11 transactions; one each for the other streams and the two rollup tables.
      expect(txs).toBe(11 + 3 + 2);
      expect(await count(base, "stream = 'telemetry'")).toBe(2);
      expect(await count(base, "stream = 'alerts'")).toBe(1);
      expect((await base.get<{ n: number }>('SELECT COUNT(*) AS n FROM gaps'))!.n).toBe(1);
    } finally {
      await base.close();
    }
  });

  it('runs as a Component: start() returns before the first pass, stop() waits for it', async () => {
    const sql = await openSqlClient(`sqlite:${path.join(dir, 'component.db')}`);
    const { log, lines } = captureLogger();
    try {
      await createLedgerTables(sql);
      await insertRecords(sql, 'telemetry', [NOW - 40 * DAY_MS]);
      const r = new Retention({ sql, log, now: () => NOW });
      await r.start();
      expect(await count(sql, '1 = 1')).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 200));
      await r.stop();
      expect(await count(sql, '1 = 1')).toBe(0);
      expect(lines.some((l) => l.msg === 'central retention removed old data')).toBe(true);
      expect(() => new Retention({ sql, log, days: { telemetry: 0 } })).toThrow('retention.days.telemetry: must be a positive number of days');
    } finally {
      await sql.close();
    }
  });
});
