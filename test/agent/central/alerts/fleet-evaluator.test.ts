import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertBook, type CentralAlertRow } from '../../../../agent/src/central/alerts/alert-book.js';
import { FleetAlertEvaluator } from '../../../../agent/src/central/alerts/fleet-evaluator.js';
import { compareVersions, FLEET_RULES } from '../../../../agent/src/central/alerts/fleet-rules.js';
import { LeaderLease } from '../../../../agent/src/central/leader-lease.js';
import type { SqlClient } from '../../../../agent/src/central/sql/sql-client.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { centralStores, FleetRegistry, ingest, ingestStatus, migrateProjections, type CentralStores } from '../../../helpers/central-fixtures.js';

describe('compareVersions', () => {
  it('orders numerically, pre-releases before their release', () => {
    const sorted = ['1.10.0', '1.9.2', '0.9.0', '1.2.0-rc.10', '1.2.0', '1.2.0-rc.2', 'v1.2.1'].sort(compareVersions);
    expect(sorted).toEqual(['0.9.0', '1.2.0-rc.2', '1.2.0-rc.10', '1.2.0', 'v1.2.1', '1.9.2', '1.10.0']);
  });
});

describe('the fleet rule catalogue', () => {
  it('is documented in docs/central.md: every rule with its severity', () => {
    const doc = readFileSync(new URL('../../../../docs/central.md', import.meta.url), 'utf8');
    for (const rule of FLEET_RULES) expect(doc).toMatch(new RegExp(`\\| \`${rule.name}\` \\| ${rule.severity} \\|`));
  });
});

let stores: CentralStores;
beforeAll(async () => {
  stores = await centralStores();
}, 120_000);
afterAll(async () => {
  await stores?.cleanup();
});

const MIN = 60_000;

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`FleetAlertEvaluator on ${dialect}`, () => {
    const skip = () => dialect === 'postgres' && stores.pgSkip !== null;
    let n = 0;
    const setup = async (now: { t: number }) => {
      const name = `fleet_${n++}`;
      const sql = await stores.open(dialect, name);
      const registry = new FleetRegistry();
      const book = new AlertBook();
      const projections = [registry, book];
      await migrateProjections(sql, projections);
      const lease = new LeaderLease(sql, { name: 'central-alerts', holder: 'w1', now: () => now.t });
      const evaluator = new FleetAlertEvaluator(sql, captureLogger().log, lease, {
        limits: { agentOfflineMs: 10 * MIN, assetSilentMs: 30 * MIN, versionSkewMs: 60 * MIN },
        now: () => now.t,
      });
      const rows = async (rule?: string) =>
        sql.all<CentralAlertRow>(`SELECT * FROM central_alerts WHERE origin = 'fleet'${rule ? ' AND rule = ?' : ''} ORDER BY alert_key`, rule ? [rule] : []);
      const telemetry = (agentId: string, assets: string[], at: number) =>
        ingest(sql, projections, {
          agentId,
          stream: 'telemetry',
          receivedTs: at,
          records: assets.map((asset, i) => ({ seq: at + i, ts: at, asset, source: 's', metrics: { x: 1 } })),
        });
      return { sql, name, projections, evaluator, rows, telemetry };
    };

    it('agent-offline: raised once after its Will has stood N, resolved once when it is back', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const now = { t: 1_000 * MIN };
      const { sql, projections, evaluator, rows, telemetry } = await setup(now);
      await ingestStatus(sql, projections, 'edge-1', 'online', now.t, { agentVersion: '1.0.0' });
      await telemetry('edge-1', ['pump'], now.t);
      await ingestStatus(sql, projections, 'edge-1', 'offline', now.t + MIN, { reason: 'connection-lost' });
      now.t += 10 * MIN; // 9 min after the Will
      expect(await evaluator.evaluateOnce()).toBe(true);
      expect(await rows()).toEqual([]);
      now.t += 2 * MIN;
      await evaluator.evaluateOnce();
      await evaluator.evaluateOnce();
      const [row] = await rows();
      expect(await rows()).toHaveLength(1);
      expect(row).toMatchObject({
        alert_key: 'fleet/agent-offline/edge-1',
        rule: 'agent-offline',
        agent_id: 'edge-1',
        asset: null,
        severity: 'critical',
        state: 'active',
        raised_ts: 1_012 * MIN,
      });
      expect(JSON.parse(row!.evidence)).toMatchObject({ state: 'offline', reason: 'connection-lost', silentMinutes: 11 });
      // Its assets are silent too, but the agent's alert covers them: no asset-silent while it is offline.
      now.t += 60 * MIN;
      await evaluator.evaluateOnce();
      expect((await rows()).map((r) => r.rule)).toEqual(['agent-offline']);
      await ingestStatus(sql, projections, 'edge-1', 'online', now.t, { agentVersion: '1.0.0' });
      await telemetry('edge-1', ['pump'], now.t);
      await evaluator.evaluateOnce();
      await evaluator.evaluateOnce();
      expect(await rows()).toEqual([expect.objectContaining({ state: 'resolved', raised_ts: 1_012 * MIN, resolved_ts: now.t })]);
      expect(evaluator.stats).toMatchObject({ raised: 1, resolved: 1, active: 0 });
    });

    it('agent-offline without a Will: nothing received for N counts (a dead broker delivers no Will)', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const now = { t: 1_000 * MIN };
      const { sql, projections, evaluator, rows, telemetry } = await setup(now);
      await ingestStatus(sql, projections, 'edge-2', 'online', now.t);
      await telemetry('edge-2', ['fan'], now.t + MIN);
      now.t += 10 * MIN + 30_000;
      await evaluator.evaluateOnce();
      expect(await rows()).toEqual([]);
      now.t += MIN;
      await evaluator.evaluateOnce();
      expect(await rows()).toEqual([expect.objectContaining({ alert_key: 'fleet/agent-offline/edge-2', state: 'active' })]);
      expect(JSON.parse((await rows())[0]!.evidence)).toMatchObject({ state: 'online', silentMinutes: 10 });
    });

    it('asset-silent: only the asset that stopped, while its agent keeps sending', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const now = { t: 1_000 * MIN };
      const { sql, projections, evaluator, rows, telemetry } = await setup(now);
      await ingestStatus(sql, projections, 'edge-3', 'online', now.t);
      await telemetry('edge-3', ['press-1', 'press-2'], now.t);
      for (let i = 1; i <= 31; i++) await telemetry('edge-3', ['press-1'], now.t + i * MIN);
      now.t += 31 * MIN;
      await evaluator.evaluateOnce();
      expect(await rows()).toEqual([
        expect.objectContaining({ alert_key: 'fleet/asset-silent/edge-3/press-2', agent_id: 'edge-3', asset: 'press-2', severity: 'warning', state: 'active' }),
      ]);
      await telemetry('edge-3', ['press-1', 'press-2'], now.t);
      await evaluator.evaluateOnce();
      expect(await rows()).toEqual([expect.objectContaining({ alert_key: 'fleet/asset-silent/edge-3/press-2', state: 'resolved', resolved_ts: now.t })]);
    });

    it('version-skew: agents left behind N after the newest version appeared; resolved as each catches up', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const now = { t: 1_000 * MIN };
      const { sql, projections, evaluator, rows, telemetry } = await setup(now);
      const keepAlive = async () => {
        for (const a of ['a', 'b', 'c']) await telemetry(a, ['m'], now.t);
      };
      for (const a of ['a', 'b', 'c']) await ingestStatus(sql, projections, a, 'online', now.t, { agentVersion: '1.9.0' });
      await evaluator.evaluateOnce();
      now.t += MIN;
      await ingestStatus(sql, projections, 'c', 'online', now.t, { agentVersion: '1.10.0' }); // the canary
      await keepAlive();
      for (let i = 0; i < 6; i++) {
        now.t += 9 * MIN; // 55 min after the rollout began: within N
        await keepAlive();
        await evaluator.evaluateOnce();
      }
      expect(await rows()).toEqual([]);
      now.t += 6 * MIN;
      await keepAlive();
      await evaluator.evaluateOnce();
      expect((await rows()).map((r) => [r.alert_key, r.state])).toEqual([
        ['fleet/version-skew/a', 'active'],
        ['fleet/version-skew/b', 'active'],
      ]);
      expect(JSON.parse((await rows())[0]!.evidence)).toMatchObject({ version: '1.9.0', newest: '1.10.0', agentsOnNewest: 1 });
      await ingestStatus(sql, projections, 'a', 'online', now.t, { agentVersion: '1.10.0' });
      await evaluator.evaluateOnce();
      expect((await rows()).map((r) => [r.alert_key, r.state])).toEqual([
        ['fleet/version-skew/a', 'resolved'],
        ['fleet/version-skew/b', 'active'],
      ]);
    });

    it('two workers on one store: only the lease holder evaluates, and each alert is raised once', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const now = { t: 1_000 * MIN };
      const { sql, name, projections, evaluator, rows } = await setup(now);
      const other: SqlClient = dialect === 'sqlite' ? sql : await stores.reopen(dialect, name);
      const second = new FleetAlertEvaluator(other, captureLogger().log, new LeaderLease(other, { name: 'central-alerts', holder: 'w2', now: () => now.t }), {
        limits: { agentOfflineMs: 10 * MIN },
        now: () => now.t,
      });
      await ingestStatus(sql, projections, 'edge-9', 'offline', now.t);
      now.t += 11 * MIN;
      const led = await Promise.all([evaluator.evaluateOnce(), second.evaluateOnce(), evaluator.evaluateOnce(), second.evaluateOnce()]);
      // Whichever asked first leads, and keeps leading; the other stands by.
      expect([led[0] !== led[1], led[0] === led[2], led[1] === led[3]]).toEqual([true, true, true]);
      const [leader, standby] = led[0] ? [evaluator, second] : [second, evaluator];
      expect(await rows()).toHaveLength(1);
      expect(leader.stats.raised).toBe(1);
      expect(standby.stats).toMatchObject({ evaluations: 0, raised: 0 });
      // The leader dies (stops renewing): after the lease's 30 s the other takes over and carries on.
      now.t += 31_000;
      await ingestStatus(sql, projections, 'edge-9', 'online', now.t);
      expect(await standby.evaluateOnce()).toBe(true);
      expect(await leader.evaluateOnce()).toBe(false);
      expect(await rows()).toEqual([expect.objectContaining({ state: 'resolved' })]);
      expect(standby.stats.resolved).toBe(1);
    });
  });
}
