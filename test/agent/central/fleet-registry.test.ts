import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CentralStore } from '../../../agent/src/central/central-store.js';
import type { DecodedBatch } from '../../../agent/src/central/decode-batch.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from '../../helpers/postgres.js';

/** The fleet registry through the real ingest, on SQLite and on PostgreSQL. */

const cleanup = cleanupAfterEach();
const pgSkip = postgresSkipReason();
let cluster: PostgresCluster | undefined;
let n = 0;
beforeAll(async () => {
  if (!pgSkip) cluster = await startPostgres();
}, 120_000);
afterAll(() => cluster?.destroy());

const telemetry = (agentId: string, seqs: number[], asset: (seq: number) => string, ts: (seq: number) => number): DecodedBatch => ({
  agentId,
  stream: 'telemetry',
  bootSeq: 1,
  historical: false,
  records: seqs.map((seq) => ({ seq, ts: ts(seq), source: 'host', asset: asset(seq), metrics: { x: seq } })),
});

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe.skipIf(dialect === 'postgres' && pgSkip !== null)(`the fleet registry on ${dialect}`, () => {
    const open = async () => {
      const url = dialect === 'sqlite' ? path.join(mkdtempSync(path.join(tmpdir(), 'fw-registry-')), 'c.db') : cluster!.createDatabase(`registry_${++n}`);
      const store = await CentralStore.open({ url });
      cleanup.push(() => store.close());
      return store;
    };

    it('knows every asset once with its first and last receive time and newest reading, never moved back by a late record', async () => {
      const store = await open();
      await store.ingestBatch(
        telemetry(
          'a1',
          [1, 2, 3, 4],
          (s) => (s % 2 ? 'mill-1' : 'mill-2'),
          (s) => 1_000 + s,
        ),
        10_000,
      );
      // A late record (seq 5 after 6 and 7), received later, with an older reading time.
      await store.ingestBatch(
        telemetry(
          'a1',
          [6, 7],
          () => 'mill-1',
          (s) => 2_000 + s,
        ),
        20_000,
      );
      await store.ingestBatch(
        telemetry(
          'a1',
          [5],
          () => 'mill-1',
          () => 500,
        ),
        30_000,
      );
      // A redelivered batch changes nothing: the ledger hands the registry only new records.
      await store.ingestBatch(
        telemetry(
          'a1',
          [6, 7],
          () => 'mill-1',
          (s) => 2_000 + s,
        ),
        40_000,
      );
      const assets = await store.sql.all('SELECT agent_id, asset, first_seen_ts, last_seen_ts, last_reading_ts FROM fleet_assets ORDER BY asset');
      expect(assets).toEqual([
        { agent_id: 'a1', asset: 'mill-1', first_seen_ts: 10_000, last_seen_ts: 30_000, last_reading_ts: 2_007 },
        { agent_id: 'a1', asset: 'mill-2', first_seen_ts: 10_000, last_seen_ts: 10_000, last_reading_ts: 1_004 },
      ]);
    });

    it('follows an agent: last seen from any message, state and version from its latest status', async () => {
      const store = await open();
      await store.ingestBatch(
        telemetry(
          'a1',
          [1],
          () => 'mill-1',
          () => 1,
        ),
        5_000,
      );
      await store.recordStatus({ agentId: 'a1', state: 'online', bootSeq: 3, ts: 1, payload: { agentVersion: '0.2.0' } }, 6_000);
      await store.recordStatus({ agentId: 'a1', state: 'offline', bootSeq: 3, ts: 1, payload: { reason: 'connection-lost' } }, 7_000);
      expect(await store.sql.get('SELECT first_seen_ts, last_seen_ts, state, state_ts, reason, boot_seq, version FROM fleet_agents')).toEqual({
        first_seen_ts: 5_000,
        last_seen_ts: 7_000,
        state: 'offline',
        state_ts: 7_000,
        reason: 'connection-lost',
        boot_seq: 3,
        // The Will carries no version: the last one known stays.
        version: '0.2.0',
      });
    });
  });
}
