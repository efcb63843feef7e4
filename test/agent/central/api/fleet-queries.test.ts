import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SharedFleetAssets, StoreTables } from '../../../../agent/src/central/api/fleet-queries.js';
import { FleetProjection } from '../../../../agent/src/central/fleet/fleet-projection.js';
import { FleetRegistry } from '../../../../agent/src/central/fleet-registry.js';
import { openSqlClient } from '../../../../agent/src/central/sql/open-sql-client.js';
import type { SqlClient, SqlQueries } from '../../../../agent/src/central/sql/sql-client.js';
import { createLedgerTables, ingest, migrateProjections } from '../../../helpers/central-records.js';

/** SharedFleetAssets: concurrent requests share one computation of every asset's state, and none is kept after. */

const NOW = Date.UTC(2026, 11, 7, 12);
const dir = mkdtempSync(path.join(tmpdir(), 'fw-fleet-queries-'));
let sql: SqlClient;
const projections = [new FleetRegistry(), new FleetProjection({ rollupMetrics: [] })];

const riskBatch = (agentId: string, score: number) => ({
  agentId,
  stream: 'risk',
  bootSeq: 1,
  historical: false,
  receivedTs: NOW,
  records: [
    {
      seq: 1,
      ts: NOW,
      asset: 'mill',
      model: 'm',
      modelVersion: '1',
      kind: 'probability',
      score,
      threshold: 0.5,
      atRisk: score >= 0.5,
      readingTs: NOW,
      drivers: [],
    },
  ],
});

/** The store's client, counting the reads of fleet_assets (one per computation). */
function counting(q: SqlClient): { q: SqlQueries; computations: () => number } {
  let n = 0;
  const proxy = new Proxy(q, {
    get(target, prop, receiver) {
      if (prop === 'all')
        return (text: string, params?: unknown[]) => {
          if (text.includes('FROM fleet_assets')) n++;
          return target.all(text, params as never);
        };
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { q: proxy, computations: () => n };
}

beforeAll(async () => {
  sql = await openSqlClient(`sqlite:${path.join(dir, 'fleet.db')}`);
  await createLedgerTables(sql);
  await migrateProjections(sql, projections);
  await ingest(sql, projections, riskBatch('a1', 0.2));
});
afterAll(async () => {
  await sql.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('SharedFleetAssets', () => {
  it('gives concurrent callers one computation, and computes again once it finished', async () => {
    const { q, computations } = counting(sql);
    const shared = new SharedFleetAssets();
    const tables = new StoreTables();
    const [a, b, c] = await Promise.all([shared.get(q, tables, NOW), shared.get(q, tables, NOW), shared.get(q, tables, NOW + 500)]);
    expect(computations()).toBe(1);
    expect(a).toBe(b);
    expect(c).toBe(a);
    expect(a.map((x) => [x.agentId, x.state])).toEqual([['a1', 'healthy']]);
    // Finished: a later call sees a later commit.
    await ingest(sql, projections, riskBatch('a2', 0.9));
    const later = await shared.get(q, tables, NOW);
    expect(computations()).toBe(2);
    expect(later.map((x) => [x.agentId, x.state])).toEqual([
      ['a1', 'healthy'],
      ['a2', 'warning'],
    ]);
  });

  it('does not join a computation started before `startedSince`, nor one for another moment of the clock', async () => {
    const { q, computations } = counting(sql);
    const shared = new SharedFleetAssets();
    const tables = new StoreTables();
    const first = shared.get(q, tables, NOW);
    const since = performance.now() + 1;
    while (performance.now() < since) await new Promise((r) => setTimeout(r, 1));
    const second = shared.get(q, tables, NOW, since);
    const third = shared.get(q, tables, NOW + 60_000);
    await Promise.all([first, second, third]);
    expect(computations()).toBe(3);
    expect(await second).not.toBe(await first);
  });
});
