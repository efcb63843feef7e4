import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertBook, type CentralAlertRow } from '../../../../agent/src/central/alerts/alert-book.js';
import { CentralStore } from '../../../../agent/src/central/central-store.js';
import type { BatchRecord } from '../../../../agent/src/central/decode-batch.js';
import type { SqlClient } from '../../../../agent/src/central/sql/sql-client.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { centralStores, ingest, migrateProjections, type CentralStores } from '../../../helpers/central-fixtures.js';

let stores: CentralStores;
beforeAll(async () => {
  stores = await centralStores();
}, 120_000);
afterAll(async () => {
  await stores?.cleanup();
});

/** An agent's alert record (health/health-monitor.ts AlertRecord), `seq` and all. */
function alertRecord(seq: number, state: 'raised' | 'cleared', raisedTs: number, extra: Partial<BatchRecord> = {}): BatchRecord {
  return {
    seq,
    ts: state === 'raised' ? raisedTs : raisedTs + 500,
    alertId: 'temperature-high/press-3',
    rule: 'temperature-high',
    asset: 'press-3',
    state,
    severity: 'warning',
    title: 'Bearing temperature high',
    evidence: { temperature: state === 'raised' ? 91 : 70, threshold: 85 },
    remedy: 'Check the lubrication',
    raisedTs,
    value: state === 'raised' ? 91 : 70,
    ...extra,
  };
}

function permutations<T>(xs: readonly T[]): T[][] {
  if (xs.length <= 1) return [[...xs]];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`AlertBook on ${dialect}`, () => {
    const skip = () => dialect === 'postgres' && stores.pgSkip !== null;
    let n = 0;
    const fresh = async (): Promise<{ sql: SqlClient; book: AlertBook; rows: () => Promise<CentralAlertRow[]> }> => {
      const sql = await stores.open(dialect, `book_${n++}`);
      const book = new AlertBook(captureLogger().log);
      await migrateProjections(sql, [book]);
      return { sql, book, rows: () => sql.all<CentralAlertRow>('SELECT * FROM central_alerts ORDER BY alert_key') };
    };

    it('raised opens an active alert and cleared resolves it, keyed agent/<agentId>/<alertId>', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const { sql, book, rows } = await fresh();
      await ingest(sql, [book], { agentId: 'line-1', stream: 'alerts', receivedTs: 5_000, records: [alertRecord(1, 'raised', 1_000)] });
      expect(await rows()).toEqual([
        expect.objectContaining({
          alert_key: 'agent/line-1/temperature-high/press-3',
          origin: 'agent',
          agent_id: 'line-1',
          asset: 'press-3',
          rule: 'temperature-high',
          severity: 'warning',
          title: 'Bearing temperature high',
          state: 'active',
          raised_ts: 1_000,
          resolved_ts: null,
          updated_ts: 5_000,
          value: 91,
          remedy: 'Check the lubrication',
        }),
      ]);
      expect(JSON.parse((await rows())[0]!.evidence)).toEqual({ temperature: 91, threshold: 85 });
      await ingest(sql, [book], { agentId: 'line-1', stream: 'alerts', receivedTs: 6_000, records: [alertRecord(2, 'cleared', 1_000)] });
      expect(await rows()).toEqual([expect.objectContaining({ state: 'resolved', raised_ts: 1_000, resolved_ts: 1_500, updated_ts: 6_000, value: 70 })]);
      expect(book.stats).toEqual({ applied: 2, malformed: 0 });
    });

    it('ends in the same row for every order of two episodes, and applying them again changes nothing', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const { sql, book, rows } = await fresh();
      const records = [alertRecord(1, 'raised', 1_000), alertRecord(2, 'cleared', 1_000), alertRecord(3, 'raised', 9_000), alertRecord(4, 'cleared', 9_000)];
      // Without the last clear, the second episode stays active whatever the order.
      const cases: Array<{ input: BatchRecord[]; state: string; raised: number }> = [
        ...permutations(records).map((input) => ({ input, state: 'resolved', raised: 9_000 })),
        ...permutations(records.slice(0, 3)).map((input) => ({ input, state: 'active', raised: 9_000 })),
        // A cleared that arrives before its raised (a repaired gap) stays resolved.
        { input: [records[1]!, records[0]!], state: 'resolved', raised: 1_000 },
      ];
      for (const [i, c] of cases.entries()) {
        const agentId = `agent-${i}`;
        for (const r of c.input) await ingest(sql, [book], { agentId, stream: 'alerts', receivedTs: 20_000, records: [r] });
        const key = `agent/${agentId}/temperature-high/press-3`;
        const row = (await rows()).find((x) => x.alert_key === key);
        expect({ order: c.input.map((r) => r.seq), state: row?.state, raised: row?.raised_ts }).toEqual({
          order: c.input.map((r) => r.seq),
          state: c.state,
          raised: c.raised,
        });
        const before = JSON.stringify(row);
        // Idempotent: the same records again (in one batch this time) leave the row as it was.
        await ingest(sql, [book], { agentId, stream: 'alerts', receivedTs: 20_000, records: c.input });
        expect(JSON.stringify((await rows()).find((x) => x.alert_key === key))).toBe(before);
      }
    });

    it('through the ingest ledger: a cleared whose raised comes later, after a gap, ends resolved; a resend changes nothing', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const book = new AlertBook();
      const store = await CentralStore.open({ url: stores.url(dialect, `book_ledger_${n++}`), projections: [book] });
      try {
        const batch = (records: BatchRecord[]) => ({ agentId: 'line-9', stream: 'alerts', bootSeq: 1, historical: false, records });
        const raised = alertRecord(1, 'raised', 1_000);
        const cleared = alertRecord(2, 'cleared', 1_000);
        expect(await store.ingestBatch(batch([cleared]), 10_000)).toMatchObject({ inserted: 1 });
        const row = () => store.sql.get<CentralAlertRow>('SELECT * FROM central_alerts');
        expect(await row()).toMatchObject({ alert_key: 'agent/line-9/temperature-high/press-3', state: 'resolved', raised_ts: 1_000, resolved_ts: 1_500 });
        expect(await store.ingestBatch(batch([raised]), 11_000)).toMatchObject({ inserted: 1, outOfOrder: 1 });
        expect(await row()).toMatchObject({ state: 'resolved', updated_ts: 10_000 });
        expect(await store.ingestBatch(batch([raised, cleared]), 12_000)).toMatchObject({ inserted: 0, duplicates: 2 });
        expect(await row()).toMatchObject({ state: 'resolved', updated_ts: 10_000 });
        expect(book.stats.applied).toBe(2);
      } finally {
        await store.close();
      }
    });

    it('skips, logs and counts a malformed record without failing the batch; ignores other streams', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const sql = await stores.open(dialect, `book_bad_${n++}`);
      const cap = captureLogger();
      const book = new AlertBook(cap.log);
      await migrateProjections(sql, [book]);
      await ingest(sql, [book], {
        agentId: 'line-2',
        stream: 'alerts',
        receivedTs: 1,
        records: [
          alertRecord(1, 'raised', 10, { alertId: undefined }),
          alertRecord(2, 'raised', 10, { state: 'exploded' }),
          alertRecord(3, 'raised', 10, { alertId: 'ok/a' }),
        ],
      });
      await ingest(sql, [book], { agentId: 'line-2', stream: 'risk', receivedTs: 1, records: [alertRecord(4, 'raised', 10, { alertId: 'not-an-alert' })] });
      const keys = (await sql.all<{ alert_key: string }>('SELECT alert_key FROM central_alerts')).map((r) => r.alert_key);
      expect(keys).toEqual(['agent/line-2/ok/a']);
      expect(book.stats).toEqual({ applied: 1, malformed: 2 });
      const warned = cap.lines.filter((l) => l.code === 'FW_ERR_ALERT_RECORD');
      expect(warned.map((l) => [l.seq, l.err])).toEqual([
        [1, 'alertId is missing'],
        [2, 'state must be raised or cleared, not "exploded"'],
      ]);
    });
  });
}
