import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FleetRegistry } from '../../agent/src/central/fleet-registry.js';
import type { CentralProjection, IngestedBatch } from '../../agent/src/central/projection.js';
import { openSqlClient } from '../../agent/src/central/sql/open-sql-client.js';
import { ensureSchemaTable, MIGRATION_LOCK, migrateComponent } from '../../agent/src/central/sql/migrations.js';
import type { SqlClient } from '../../agent/src/central/sql/sql-client.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from './postgres.js';

/**
 * Central stores for tests of the projections and the alerting: a SQLite file or a database in a throw-away
 * PostgreSQL cluster (one per test file), with projections migrated and fed the way the ingest feeds them.
 */

export interface CentralStores {
  pgSkip: string | null;
  /** A fresh store of the dialect; closed by `cleanup`. */
  open(dialect: 'sqlite' | 'postgres', name: string): Promise<SqlClient>;
  /** Another client on the same store (a second worker). */
  reopen(dialect: 'sqlite' | 'postgres', name: string): Promise<SqlClient>;
  /** The location of a fresh store, for what opens its own client (the ingest ledger). */
  url(dialect: 'sqlite' | 'postgres', name: string): string;
  cleanup(): Promise<void>;
}

export async function centralStores(): Promise<CentralStores> {
  const pgSkip = postgresSkipReason();
  const cluster: PostgresCluster | undefined = pgSkip ? undefined : await startPostgres();
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-central-'));
  const clients: SqlClient[] = [];
  const urls = new Map<string, string>();
  const track = (c: SqlClient) => (clients.push(c), c);
  const location = (dialect: 'sqlite' | 'postgres', name: string, create: boolean) => {
    if (dialect === 'sqlite') return `sqlite:${path.join(dir, `${name}.db`)}`;
    if (!cluster) throw new Error(`PostgreSQL unavailable: ${pgSkip}`);
    if (create) urls.set(name, cluster.createDatabase(name));
    return urls.get(name)!;
  };
  return {
    pgSkip,
    open: async (dialect, name) => track(await openSqlClient(location(dialect, name, true))),
    reopen: async (dialect, name) => track(await openSqlClient(location(dialect, name, false))),
    url: (dialect, name) => location(dialect, name, true),
    async cleanup() {
      for (const c of clients.splice(0)) await c.close().catch(() => undefined);
      cluster?.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs the projections' migrations, as the ingest does at start. */
export async function migrateProjections(sql: SqlClient, projections: readonly CentralProjection[]): Promise<void> {
  await sql.tx(
    async (q) => {
      await ensureSchemaTable(q);
      for (const p of projections) await migrateComponent(q, p.name, p.migrations);
    },
    { lockKey: MIGRATION_LOCK },
  );
}

/** Applies one batch to the projections in one transaction, as the ingest does after storing it. */
export async function ingest(
  sql: SqlClient,
  projections: readonly CentralProjection[],
  batch: Omit<IngestedBatch, 'bootSeq' | 'historical'> & Partial<IngestedBatch>,
): Promise<void> {
  await sql.tx(async (q) => {
    for (const p of projections) await p.applyBatch(q, { bootSeq: 1, historical: false, ...batch });
  });
}

/** Feeds an agent status to the projections, as the ingest does. */
export async function ingestStatus(
  sql: SqlClient,
  projections: readonly CentralProjection[],
  agentId: string,
  state: 'online' | 'offline',
  receivedTs: number,
  payload: Record<string, unknown> = {},
): Promise<void> {
  await sql.tx(async (q) => {
    for (const p of projections) await p.applyStatus?.(q, { agentId, state, bootSeq: 1, ts: receivedTs, payload: { state, ...payload } }, receivedTs);
  });
}

export { FleetRegistry };
