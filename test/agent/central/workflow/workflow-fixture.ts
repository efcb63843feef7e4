import { AlertBook } from '../../../../agent/src/central/alerts/alert-book.js';
import type { BatchRecord } from '../../../../agent/src/central/decode-batch.js';
import { FleetProjection } from '../../../../agent/src/central/fleet/fleet-projection.js';
import type { SqlClient } from '../../../../agent/src/central/sql/sql-client.js';
import { FleetRegistry, ingest, migrateProjections, type CentralStores } from '../../../helpers/central-fixtures.js';

/**
 * A central store for the workflow tests, fed the way the ingest feeds it: the registry, the fleet read model
 * (latest risk) and the alert book, with helpers that raise and clear agents' alerts and report risk.
 */

export interface WorkflowStore {
  sql: SqlClient;
  /** Raises (or clears) an agent's alert; returns its alert key. */
  alert(
    agentId: string,
    a: { rule: string; asset?: string | null; subject?: string; severity?: string; raisedTs: number; state?: 'raised' | 'cleared'; id?: string },
  ): Promise<string>;
  risk(agentId: string, asset: string, model: string, score: number, ts: number): Promise<void>;
}

let seq = 0;

export async function workflowStore(stores: CentralStores, dialect: 'sqlite' | 'postgres', name: string): Promise<WorkflowStore> {
  const sql = await stores.open(dialect, name);
  const projections = [new FleetRegistry(), new FleetProjection({ rollupMetrics: [] }), new AlertBook()];
  await migrateProjections(sql, projections);
  return {
    sql,
    async alert(agentId, a) {
      const alertId = a.id ?? `${a.rule}/${a.asset ?? agentId}`;
      const state = a.state ?? 'raised';
      const record: BatchRecord = {
        seq: ++seq,
        ts: state === 'raised' ? a.raisedTs : a.raisedTs + 1_000,
        alertId,
        rule: a.rule,
        state,
        severity: a.severity ?? 'warning',
        title: `${a.rule} on ${a.asset ?? agentId}`,
        evidence: { value: 1 },
        remedy: 'Have a look',
        raisedTs: a.raisedTs,
        ...(a.asset ? { asset: a.asset } : {}),
        ...(a.subject ? { subject: a.subject } : {}),
      };
      await ingest(sql, projections, { agentId, stream: 'alerts', receivedTs: Date.now(), records: [record] });
      return `agent/${agentId}/${alertId}`;
    },
    async risk(agentId, asset, model, score, ts) {
      const record: BatchRecord = {
        seq: ++seq,
        ts,
        asset,
        model,
        modelVersion: '1.0.0',
        kind: 'probability',
        score,
        threshold: 0.5,
        atRisk: score >= 0.5,
        readingTs: ts,
        drivers: [],
      };
      await ingest(sql, projections, { agentId, stream: 'risk', receivedTs: ts, records: [record] });
    },
  };
}
