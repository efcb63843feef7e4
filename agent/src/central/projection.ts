import type { BatchRecord, DecodedStatus } from './decode-batch.js';
import type { Migration } from './sql/migrations.js';
import type { SqlQueries } from './sql/sql-client.js';

/**
 * A projection keeps a read model of what the ledger stores (the fleet registry, the latest risk per asset,
 * hourly rollups, the alerts routed to people). It runs inside the transaction that stores the batch, after the
 * ledger, and is handed only the records stored for the first time: a redelivered or resent record never counts
 * twice, and a batch whose transaction fails leaves no trace in any projection (the broker redelivers it).
 *
 * A projection owns its tables (its `migrations`, run under the migration lock at start) and names no other
 * projection; it may read the ledger's tables (`records`, `streams`, `agents`) and the fleet registry's
 * (`fleet_agents`, `fleet_assets`), which are documented in docs/central.md.
 */

export interface IngestedBatch {
  agentId: string;
  stream: string;
  bootSeq: number;
  historical: boolean;
  /** When this worker received it (ms since the epoch). */
  receivedTs: number;
  /** Only the records the ledger stored for the first time, in arrival order. */
  records: BatchRecord[];
}

export interface CentralProjection {
  /** Its component name in `central_schema`. */
  readonly name: string;
  readonly migrations: readonly Migration[];
  applyBatch(q: SqlQueries, batch: IngestedBatch): Promise<void>;
  /** An agent's status (online, offline, or its Will), in the transaction that stores it. */
  applyStatus?(q: SqlQueries, status: DecodedStatus, receivedTs: number): Promise<void>;
}
