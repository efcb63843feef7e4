import type { SqlQueries } from './sql-client.js';

/**
 * Each central component owns its tables and their versions: `central_schema` holds one row per component, and
 * a component upgrades its own tables step by step inside the transaction that reads its version. Several
 * workers may start at once: the transaction holds the migration lock, so only the first one migrates.
 */

export interface Migration {
  /** The version this step brings the component to: 1, 2, … in order. */
  version: number;
  /** DDL and data changes; `q.dialect` picks the dialect's DDL. */
  up(q: SqlQueries): Promise<void>;
}

export const MIGRATION_LOCK = 'forewarn-central-schema';

export async function ensureSchemaTable(q: SqlQueries): Promise<void> {
  await q.exec('CREATE TABLE IF NOT EXISTS central_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)');
}

/**
 * Runs the steps of `component` above its recorded version. Call inside `tx(…, { lockKey: MIGRATION_LOCK })`
 * after `ensureSchemaTable`. Refuses a database newer than this code understands.
 */
export async function migrateComponent(q: SqlQueries, component: string, steps: readonly Migration[], fromVersion?: number): Promise<void> {
  const row = await q.get<{ version: number }>('SELECT version FROM central_schema WHERE component = ?', [component]);
  let version = row?.version ?? fromVersion ?? 0;
  const latest = steps.length ? steps[steps.length - 1]!.version : 0;
  if (version > latest) {
    throw new Error(`the ${component} tables are at schema ${version}, newer than this version of Forewarn understands (${latest}); upgrade it`);
  }
  for (const step of steps) {
    if (step.version <= version) continue;
    await step.up(q);
    version = step.version;
  }
  await q.run('INSERT INTO central_schema (component, version) VALUES (?, ?) ON CONFLICT (component) DO UPDATE SET version = excluded.version', [
    component,
    version,
  ]);
}
