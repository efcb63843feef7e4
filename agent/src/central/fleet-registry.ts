import type { DecodedStatus } from './decode-batch.js';
import type { CentralProjection, IngestedBatch } from './projection.js';
import type { Migration } from './sql/migrations.js';
import { valuesList, type SqlQueries } from './sql/sql-client.js';

/**
 * The fleet registry: every agent and every asset central has heard of, when first and last, and what it runs.
 *
 * - `fleet_agents`: agent_id, first_seen_ts, last_seen_ts (the newest message of any kind received from it),
 *   state (`online` / `offline`, from its retained status and its Will), state_ts (when that status was
 *   received), reason (`shutdown`, `connection-lost`), boot_seq, version (agentVersion of its latest status).
 * - `fleet_assets`: (agent_id, asset), first_seen_ts and last_seen_ts (receive times), last_reading_ts (the
 *   newest record timestamp), from every stream whose records name an asset.
 *
 * Receive times, not the agents' clocks, decide "last seen": a silent-asset alert must not depend on a clock
 * that an agent got wrong.
 */

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    async up(q) {
      const big = q.dialect === 'postgres' ? 'BIGINT' : 'INTEGER';
      await q.exec(`
        CREATE TABLE fleet_agents (
          agent_id TEXT PRIMARY KEY, first_seen_ts ${big} NOT NULL, last_seen_ts ${big} NOT NULL,
          state TEXT, state_ts ${big}, reason TEXT, boot_seq ${big}, version TEXT
        );
        CREATE TABLE fleet_assets (
          agent_id TEXT NOT NULL, asset TEXT NOT NULL, first_seen_ts ${big} NOT NULL, last_seen_ts ${big} NOT NULL,
          last_reading_ts ${big} NOT NULL, PRIMARY KEY (agent_id, asset)
        );
        CREATE INDEX fleet_assets_last_seen ON fleet_assets (last_seen_ts);
      `);
    },
  },
];

export class FleetRegistry implements CentralProjection {
  readonly name = 'fleet-registry';
  readonly migrations = MIGRATIONS;

  async applyBatch(q: SqlQueries, batch: IngestedBatch): Promise<void> {
    await this.seen(q, batch.agentId, batch.receivedTs);
    // Newest record time per asset in this batch: one upsert per asset, not per record.
    const newest = new Map<string, number>();
    for (const r of batch.records) {
      if (typeof r.asset !== 'string' || !r.asset) continue;
      newest.set(r.asset, Math.max(newest.get(r.asset) ?? -Infinity, r.ts));
    }
    if (!newest.size) return;
    // One statement for the batch's assets (a batch carries many readings of a few assets).
    const rows = [...newest];
    await q.run(
      `INSERT INTO fleet_assets (agent_id, asset, first_seen_ts, last_seen_ts, last_reading_ts) VALUES ${valuesList(rows.length, 5)}
       ON CONFLICT (agent_id, asset) DO UPDATE SET
         last_seen_ts = CASE WHEN excluded.last_seen_ts > fleet_assets.last_seen_ts THEN excluded.last_seen_ts ELSE fleet_assets.last_seen_ts END,
         last_reading_ts = CASE WHEN excluded.last_reading_ts > fleet_assets.last_reading_ts THEN excluded.last_reading_ts ELSE fleet_assets.last_reading_ts END`,
      rows.flatMap(([asset, ts]) => [batch.agentId, asset, batch.receivedTs, batch.receivedTs, Math.round(ts)]),
    );
  }

  async applyStatus(q: SqlQueries, status: DecodedStatus, receivedTs: number): Promise<void> {
    await this.seen(q, status.agentId, receivedTs);
    const version = typeof status.payload.agentVersion === 'string' ? status.payload.agentVersion : null;
    const reason = typeof status.payload.reason === 'string' ? status.payload.reason : null;
    // The broker delivers one topic's messages in order: the latest status received wins (docs/subscriber.md).
    await q.run(`UPDATE fleet_agents SET state = ?, state_ts = ?, reason = ?, boot_seq = ?, version = COALESCE(?, version) WHERE agent_id = ?`, [
      status.state,
      receivedTs,
      reason,
      status.bootSeq,
      version,
      status.agentId,
    ]);
  }

  private async seen(q: SqlQueries, agentId: string, receivedTs: number): Promise<void> {
    await q.run(
      `INSERT INTO fleet_agents (agent_id, first_seen_ts, last_seen_ts) VALUES (?, ?, ?)
       ON CONFLICT (agent_id) DO UPDATE SET
         last_seen_ts = CASE WHEN excluded.last_seen_ts > fleet_agents.last_seen_ts THEN excluded.last_seen_ts ELSE fleet_agents.last_seen_ts END`,
      [agentId, receivedTs, receivedTs],
    );
  }
}
