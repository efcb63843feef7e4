import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchRecord } from '../../../../agent/src/central/decode-batch.js';
import { FleetProjection, HOUR_MS } from '../../../../agent/src/central/fleet/fleet-projection.js';
import type { IngestedBatch } from '../../../../agent/src/central/projection.js';
import { openSqlClient } from '../../../../agent/src/central/sql/open-sql-client.js';
import type { SqlClient } from '../../../../agent/src/central/sql/sql-client.js';
import { createLedgerTables, ingest, migrateProjections } from '../../../helpers/central-records.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from '../../../helpers/postgres.js';
import { seededRandom } from '../../../helpers/seeded-random.js';

const pgSkip = postgresSkipReason();
let cluster: PostgresCluster | undefined;
const dir = mkdtempSync(path.join(tmpdir(), 'fw-fleet-proj-'));
let dbs = 0;

beforeAll(async () => {
  if (!pgSkip) cluster = await startPostgres();
}, 120_000);
afterAll(() => {
  cluster?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const T0 = Date.UTC(2026, 11, 1, 10, 0, 0);

const risk = (seq: number, ts: number, asset: string, score: number, extra: Partial<BatchRecord> = {}): BatchRecord => ({
  seq,
  ts,
  asset,
  model: 'machine-failure',
  modelVersion: '1.0.0',
  kind: 'probability',
  score,
  threshold: 0.5,
  atRisk: score >= 0.5,
  readingTs: ts - 10,
  drivers: [{ feature: 'torque', value: 60, contribution: score / 2 }],
  ...extra,
});

const batch = (stream: string, records: BatchRecord[], agentId = 'a1', historical = false): IngestedBatch => ({
  agentId,
  stream,
  bootSeq: 1,
  historical,
  receivedTs: T0 + 10 * HOUR_MS,
  records,
});

for (const dialect of ['sqlite', 'postgres'] as const) {
  const skip = dialect === 'postgres' && pgSkip !== null;
  describe.skipIf(skip)(`FleetProjection on ${dialect}${skip ? ` (skipped: ${pgSkip})` : ''}`, () => {
    async function open(projection: FleetProjection): Promise<SqlClient> {
      const name = `proj_${++dbs}`;
      const sql = dialect === 'sqlite' ? await openSqlClient(`sqlite:${path.join(dir, `${name}.db`)}`) : await openSqlClient(cluster!.createDatabase(name));
      await createLedgerTables(sql);
      await migrateProjections(sql, [projection]);
      return sql;
    }

    it('keeps the newest risk per asset and model: an older record arriving later does not replace it, a redelivery changes nothing', async () => {
      const p = new FleetProjection();
      const sql = await open(p);
      try {
        await ingest(sql, [p], batch('risk', [risk(5, T0 + 5000, 'mill', 0.7), risk(6, T0 + 6000, 'lathe', 0.1)]));
        // A replayed backlog: older records of the same asset, later seqs never seen before.
        await ingest(sql, [p], batch('risk', [risk(1, T0 + 1000, 'mill', 0.2), risk(2, T0 + 2000, 'mill', 0.3)], 'a1', true));
        // The first batch again, redelivered by the broker.
        const again = await ingest(sql, [p], batch('risk', [risk(5, T0 + 5000, 'mill', 0.7), risk(6, T0 + 6000, 'lathe', 0.1)]));
        expect(again).toBe(0);
        const rows = await sql.all<Record<string, unknown>>('SELECT * FROM fleet_latest_risk ORDER BY asset');
        expect(rows.map((r) => [r.asset, r.score, r.ts, r.at_risk, r.threshold, r.reading_ts, r.model_version, r.kind])).toEqual([
          ['lathe', 0.1, T0 + 6000, 0, 0.5, T0 + 5990, '1.0.0', 'probability'],
          ['mill', 0.7, T0 + 5000, 1, 0.5, T0 + 4990, '1.0.0', 'probability'],
        ]);
        expect(JSON.parse(rows[1]!.drivers as string)).toEqual([{ feature: 'torque', value: 60, contribution: 0.35 }]);
        // A newer one replaces it.
        await ingest(sql, [p], batch('risk', [risk(7, T0 + 7000, 'mill', 0.05)]));
        const mill = await sql.get<{ score: number; at_risk: number }>("SELECT score, at_risk FROM fleet_latest_risk WHERE asset = 'mill'");
        expect(mill).toEqual({ score: 0.05, at_risk: 0 });
        const h = await sql.get<{ samples: number; sum_score: number }>("SELECT samples, sum_score FROM fleet_risk_hourly WHERE asset = 'mill'");
        expect(h?.samples).toBe(4);
        expect(h?.sum_score).toBeCloseTo(0.7 + 0.2 + 0.3 + 0.05, 9);
      } finally {
        await sql.close();
      }
    });

    it('hourly rollups equal a direct computation over the raw records, whatever the batch order', async () => {
      const p = new FleetProjection({ rollupMetrics: ['*'] });
      const sql = await open(p);
      try {
        const rnd = seededRandom(7);
        const riskRecords: BatchRecord[] = [];
        const telemetry: BatchRecord[] = [];
        let seqR = 0;
        let seqT = 0;
        for (let i = 0; i < 400; i++) {
          const ts = T0 + Math.floor(rnd() * 3.5 * HOUR_MS);
          const asset = rnd() < 0.5 ? 'mill' : 'lathe';
          riskRecords.push(risk(++seqR, ts, asset, Math.round(rnd() * 1000) / 1000, rnd() < 0.3 ? { model: 'anomaly' } : {}));
          telemetry.push({ seq: ++seqT, ts, source: 'modbus', asset, metrics: { torque: 40 + rnd() * 20, rpm: Math.round(1400 + rnd() * 200) } });
        }
        // Out of order: shuffled, in batches of random sizes, with some batches sent twice.
        const shuffle = <T>(xs: T[]) =>
          xs
            .map((x) => [rnd(), x] as const)
            .sort((a, b) => a[0] - b[0])
            .map(([, x]) => x);
        for (const [stream, all] of [
          ['risk', shuffle(riskRecords)],
          ['telemetry', shuffle(telemetry)],
        ] as const) {
          for (let i = 0; i < all.length;) {
            const n = 1 + Math.floor(rnd() * 40);
            const b = batch(stream, all.slice(i, i + n));
            await ingest(sql, [p], b);
            if (rnd() < 0.2) await ingest(sql, [p], b);
            i += n;
          }
        }
        // The direct computation, from what `records` holds.
        type Agg = { samples: number; min: number; max: number; sum: number; last: number; lastTs: number };
        const direct = async (stream: string, pick: (r: BatchRecord) => Array<[string, number]>) => {
          const out = new Map<string, Agg>();
          const rows = await sql.all<{ payload: string }>('SELECT payload FROM records WHERE stream = ? ORDER BY seq', [stream]);
          for (const { payload } of rows) {
            const r = JSON.parse(payload) as BatchRecord;
            for (const [key, v] of pick(r)) {
              const id = `${r.asset as string}|${key}|${Math.floor(r.ts / HOUR_MS) * HOUR_MS}`;
              const a = out.get(id);
              if (!a) out.set(id, { samples: 1, min: v, max: v, sum: v, last: v, lastTs: r.ts });
              else {
                a.samples++;
                a.min = Math.min(a.min, v);
                a.max = Math.max(a.max, v);
                a.sum += v;
                if (r.ts > a.lastTs) Object.assign(a, { last: v, lastTs: r.ts });
              }
            }
          }
          return out;
        };
        const expectRisk = await direct('risk', (r) => [[r.model as string, r.score as number]]);
        const expectTel = await direct('telemetry', (r) => Object.entries(r.metrics as Record<string, number>));
        const gotRisk = await sql.all<{
          asset: string;
          model: string;
          hour: number;
          samples: number;
          min_score: number;
          max_score: number;
          sum_score: number;
          last_score: number;
          last_ts: number;
        }>('SELECT * FROM fleet_risk_hourly');
        const gotTel = await sql.all<{
          asset: string;
          metric: string;
          hour: number;
          samples: number;
          min_value: number;
          max_value: number;
          sum_value: number;
          last_value: number;
          last_ts: number;
        }>('SELECT * FROM fleet_telemetry_hourly');
        expect(gotRisk.length).toBe(expectRisk.size);
        expect(gotTel.length).toBe(expectTel.size);
        expect(gotRisk.length).toBeGreaterThanOrEqual(12); // 2 assets × 2 models × 4 hours, minus empty ones
        for (const g of gotRisk) {
          const e = expectRisk.get(`${g.asset}|${g.model}|${g.hour}`)!;
          expect(e, `${g.asset} ${g.model} ${g.hour}`).toBeDefined();
          expect([g.samples, g.min_score, g.max_score, g.last_score, g.last_ts]).toEqual([e.samples, e.min, e.max, e.last, e.lastTs]);
          expect(g.sum_score).toBeCloseTo(e.sum, 9);
        }
        for (const g of gotTel) {
          const e = expectTel.get(`${g.asset}|${g.metric}|${g.hour}`)!;
          expect(e, `${g.asset} ${g.metric} ${g.hour}`).toBeDefined();
          expect([g.samples, g.min_value, g.max_value, g.last_value, g.last_ts]).toEqual([e.samples, e.min, e.max, e.last, e.lastTs]);
          expect(g.sum_value).toBeCloseTo(e.sum, 6);
        }
        const total = await sql.get<{ n: number }>('SELECT SUM(samples) AS n FROM fleet_risk_hourly');
        expect(total?.n).toBe(400);
      } finally {
        await sql.close();
      }
    });

    it('rolls up no telemetry unless metrics are chosen', async () => {
      const p = new FleetProjection();
      const sql = await open(p);
      try {
        await ingest(sql, [p], batch('telemetry', [{ seq: 1, ts: T0, asset: 'mill', metrics: { temperature: 300 } }]));
        await ingest(sql, [p], batch('risk', [risk(1, T0, 'mill', 0.4)]));
        expect((await sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM fleet_telemetry_hourly'))!.n).toBe(0);
        expect((await sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM fleet_risk_hourly'))!.n).toBe(1);
        expect(p.skipped).toBe(0);
      } finally {
        await sql.close();
      }
    });

    it('rolls up only the telemetry metrics its patterns choose, and skips records it cannot read without failing the batch', async () => {
      const p = new FleetProjection({ rollupMetrics: ['temp*', 'rp?'] });
      const sql = await open(p);
      try {
        await ingest(
          sql,
          [p],
          batch('telemetry', [
            { seq: 1, ts: T0, asset: 'mill', metrics: { temperature: 300, temp_bearing: 320, rpm: 1500, rpms: 1, torque: 40 } },
            { seq: 2, ts: T0 + 1, metrics: { temperature: 1 } },
          ]),
        );
        await ingest(sql, [p], batch('risk', [risk(1, T0, 'mill', Number.NaN), { seq: 2, ts: T0, asset: 'mill', score: 'high' }, risk(3, T0, 'mill', 0.4)]));
        const metrics = await sql.all<{ metric: string }>('SELECT metric FROM fleet_telemetry_hourly ORDER BY metric');
        expect(metrics.map((m) => m.metric)).toEqual(['rpm', 'temp_bearing', 'temperature']);
        expect(p.skipped).toBe(3);
        const latest = await sql.all<{ score: number }>('SELECT score FROM fleet_latest_risk');
        expect(latest).toEqual([{ score: 0.4 }]);
      } finally {
        await sql.close();
      }
    });
  });
}
