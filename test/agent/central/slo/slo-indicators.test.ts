import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCentralConfig } from '../../../../agent/src/central/central-config.js';
import { CentralStore } from '../../../../agent/src/central/central-store.js';
import type { BatchRecord } from '../../../../agent/src/central/decode-batch.js';
import { GroupMatcher, type SloConfig } from '../../../../agent/src/central/slo/slo-config.js';
import { SloProjection } from '../../../../agent/src/central/slo/slo-projection.js';
import { agentClocks, budgetRemaining, budgetTrend, burnRate, groupCounts, windowCounts } from '../../../../agent/src/central/slo/slo-queries.js';
import { sloDetail, sloSummary } from '../../../../agent/src/central/slo/slo-status.js';
import { SloEvaluator } from '../../../../agent/src/central/slo/slo-evaluator.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { centralStores, type CentralStores } from '../../../helpers/central-fixtures.js';

/**
 * The indicators on generated fleet data whose answers are worked out by hand: through the real ingest (the
 * ledger's gaps, drops and repairs feed completeness), on SQLite and PostgreSQL.
 */

const S = 1_000;
const MIN = 60 * S;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** A UTC midnight, so minute, hour and day boundaries are easy to name. */
const T0 = Date.UTC(2031, 0, 10);

const YAML = `
slo:
  freshness: { maxAgeSeconds: 300 }
  clockSkewToleranceSeconds: 2
  groups:
    - { name: presses, agents: ['press-*'] }
  objectives:
    - { name: fresh, sli: freshness, target: 0.9, window: 1h }
    - { name: fresh-28d, sli: freshness, target: 0.99, window: 28d }
    - { name: latency, sli: delivery-latency, target: 0.9, window: 1h, thresholdSeconds: 60 }
    - { name: complete, sli: completeness, target: 0.99, window: 1h, group: presses }
    - { name: coverage, sli: scoring-coverage, target: 0.95, window: 1h }
    - { name: alerts-fast, sli: alert-latency, target: 0.9, window: 1h, thresholdSeconds: 10 }
`;

let stores: CentralStores;
beforeAll(async () => {
  stores = await centralStores();
}, 120_000);
afterAll(async () => {
  await stores?.cleanup();
});

const telemetry = (seq: number, ts: number, asset = 'pump'): BatchRecord => ({ seq, ts, asset, source: 'sim', metrics: { x: 1 } });

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`SLO indicators on ${dialect}`, () => {
    const skip = () => dialect === 'postgres' && stores.pgSkip !== null;
    let n = 0;
    const setup = async () => {
      const slo = buildCentralConfig(YAML).slo;
      const store = await CentralStore.open({
        url: stores.url(dialect, `slo_${n++}_${Date.now() % 100_000}`),
        projections: [new SloProjection({ maxAgeSeconds: slo.freshness.maxAgeSeconds, clockSkewToleranceSeconds: slo.clockSkewToleranceSeconds })],
      });
      const batch = (agentId: string, stream: string, receivedTs: number, records: BatchRecord[]) =>
        store.ingestBatch({ agentId, stream, bootSeq: 1, historical: false, records }, receivedTs);
      const status = (agentId: string, receivedTs: number, ts: number, payload: Record<string, unknown> = {}) =>
        store.recordStatus({ agentId, state: 'online', bootSeq: 1, ts, payload: { state: 'online', ts, ...payload } }, receivedTs);
      const counts = (s: SloConfig, sli: string, windowMs: number, now: number, level: 'agent' | 'asset' = 'agent') => {
        const o = s.objectives.find((x) => x.sli === sli)!;
        return windowCounts(store.sql, s, { sli: o.sli, thresholdSeconds: o.thresholdSeconds }, windowMs, now, level);
      };
      return { slo, store, batch, status, counts };
    };

    it('freshness: minutes judged at their end against maxAge; stale minutes counted at ingest and up to now; window edges exact', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const { slo, store, batch, counts } = await setup();
      try {
        await batch('press-1', 'telemetry', T0 + 10 * S, [telemetry(1, T0 + 10 * S)]);
        // 20 min of silence: minutes ending 6 … 20 were stale (the reading of 0:10 was 5 min old at 5:10).
        await batch('press-1', 'telemetry', T0 + 20 * MIN + 10 * S, [telemetry(2, T0 + 20 * MIN + 10 * S)]);
        // A late reading (older than the newest) changes nothing.
        await batch('press-1', 'telemetry', T0 + 20 * MIN + 20 * S, [telemetry(3, T0 + 2 * MIN)]);
        const now = T0 + 30 * MIN;
        // Minutes ending 1 … 30 judged; fresh: 1 … 5 and 21 … 25; stale: 6 … 20 (recorded) and 26 … 30 (open, up to now).
        expect((await counts(slo, 'freshness', HOUR, now)).get('press-1')).toEqual({ good: 10, total: 30 });
        expect((await counts(slo, 'freshness', HOUR, now, 'asset')).get('press-1\u0000pump')).toEqual({ good: 10, total: 30 });
        // 5 min window at 0:30: the minutes starting 0:26 … 0:30; the one that ends 0:31 is not judged yet.
        expect((await counts(slo, 'freshness', 5 * MIN, now)).get('press-1')).toEqual({ good: 0, total: 4 });
        const fresh = slo.objectives.find((o) => o.name === 'fresh')!;
        const summary = await sloSummary(store.sql, slo, fresh, now);
        expect(summary.value).toBeCloseTo(1 / 3, 12);
        // Error rate 2/3 against a budget of 0.1: burning 6.67×, the budget overspent 5.67 times.
        expect(summary.errorBudgetRemaining).toBeCloseTo(1 - 20 / 3, 9);
        expect(summary.burnRates.find((b) => b.tier === 'page-slow')).toMatchObject({ longRate: expect.closeTo(20 / 3, 9), firing: true });
        expect(summary.burnRates.find((b) => b.tier === 'page-fast')).toMatchObject({ firing: false });
        // One minute later the window slides: the minutes ending 0:28 … 0:31, still stale.
        expect((await counts(slo, 'freshness', 5 * MIN, now + MIN)).get('press-1')).toEqual({ good: 0, total: 4 });
        // A reading arrives at 0:31:30: the minutes ending 0:26 … 0:31 are recorded stale, the one ending 0:32 is fresh (a 5 min window judges 4: the minute in progress is not judged yet).
        await batch('press-1', 'telemetry', now + MIN + 30 * S, [telemetry(4, now + MIN + 29 * S)]);
        expect((await counts(slo, 'freshness', 5 * MIN, now + 2 * MIN)).get('press-1')).toEqual({ good: 1, total: 4 });
        // The hourly counters (a 28 d window) give the same answer as the minutes up to 0:30 did, plus 0:31 and 0:32.
        expect((await counts(slo, 'freshness', 28 * DAY, now + 2 * MIN)).get('press-1')).toEqual({ good: 11, total: 32 });
      } finally {
        await store.close();
      }
    });

    it('delivery latency: clock offset estimated from status messages (least delay), stated, and corrected', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const { slo, store, batch, status, counts } = await setup();
      try {
        const R0 = T0 + HOUR;
        // press-2's clock runs 30 s ahead; its statuses took 0.05 s and 4 s to arrive: the least delay wins.
        await status('press-2', R0, R0 + 30 * S - 4 * S);
        await status('press-2', R0 + MIN, R0 + MIN + 30 * S - 50);
        expect(await agentClocks(store.sql, slo)).toEqual([
          { agentId: 'press-2', estimatedSkewMs: 29_950, appliedSkewMs: 29_950, samples: 2, sampledTs: R0 + MIN },
        ]);
        // True latencies 0.5, 2, 8, 45 and 400 s, stamped by the fast clock; each corrected latency is 0.05 s short.
        const R = R0 + 10 * MIN;
        const latencies = [0.5, 2, 8, 45, 400].map((l) => l * S);
        await batch(
          'press-2',
          'telemetry',
          R,
          latencies.map((l, i) => telemetry(i + 1, R - l + 30 * S)),
        );
        // press-3 sent no status: nothing is corrected; its clock is right, latency 90 s (bad against 60 s).
        await batch('press-3', 'telemetry', R, [telemetry(1, R - 90 * S)]);
        const c = await counts(slo, 'delivery-latency', HOUR, R);
        expect(c.get('press-2')).toEqual({ good: 4, total: 5 });
        expect(c.get('press-3')).toEqual({ good: 0, total: 1 });
        const hist = await store.sql.get<Record<string, number>>("SELECT * FROM slo_totals WHERE agent_id = 'press-2'");
        expect([hist!.lat_le_1, hist!.lat_le_5, hist!.lat_le_10, hist!.lat_le_60, hist!.lat_le_900, hist!.lat_sum_ms]).toEqual([1, 1, 1, 1, 1, 455_250]);
        // An offset under the tolerance (1 s) is stated but not applied.
        await status('press-4', R, R + 1 * S - 10);
        expect((await agentClocks(store.sql, slo, 'press-4'))[0]).toMatchObject({ estimatedSkewMs: 990, appliedSkewMs: 0 });
      } finally {
        await store.close();
      }
    });

    it('completeness: open gaps and announced drops count against it; a gap repaired later stops counting', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const { slo, store, batch, counts } = await setup();
      try {
        const R = T0 + 2 * HOUR;
        await batch(
          'press-5',
          'telemetry',
          R,
          Array.from({ length: 10 }, (_v, i) => telemetry(i + 1, R - S)),
        );
        await batch(
          'press-5',
          'telemetry',
          R + MIN,
          Array.from({ length: 6 }, (_v, i) => telemetry(i + 15, R + MIN - S)),
        ); // 11 … 14 missing
        await batch('press-5', 'events', R + 2 * MIN, [
          { seq: 1, ts: R, type: 'records-dropped', stream: 'telemetry', ranges: [[21, 25]], reason: 'storage-full' },
        ]);
        const now = R + 3 * MIN;
        // Received 16 + 1 event; against them 4 missing and 5 dropped.
        expect((await counts(slo, 'completeness', HOUR, now)).get('press-5')).toEqual({ good: 17, total: 26 });
        await batch(
          'press-5',
          'telemetry',
          R + 4 * MIN,
          [11, 12, 13, 14].map((s) => telemetry(s, R)),
        );
        expect((await counts(slo, 'completeness', HOUR, now + 2 * MIN)).get('press-5')).toEqual({ good: 21, total: 26 });
        // A window that starts after all of it holds nothing.
        expect((await counts(slo, 'completeness', HOUR, now + 2 * HOUR)).get('press-5')).toBeUndefined();
        // Groups: press-5 is in `presses` and `all`, an agent named otherwise only in `all`.
        await batch('mill-1', 'telemetry', R, [telemetry(1, R)]);
        const perAgent = await counts(slo, 'completeness', HOUR, now + 2 * MIN);
        const groups = new GroupMatcher(slo.groups);
        expect(groupCounts(perAgent, groups, 'presses')).toEqual({ good: 21, total: 26 });
        expect(groupCounts(perAgent, groups, 'all')).toEqual({ good: 22, total: 27 });
        expect(budgetRemaining({ good: 21, total: 26 }, 0.99)).toBeCloseTo(1 - 5 / 26 / 0.01, 9);
      } finally {
        await store.close();
      }
    });

    it('scoring coverage: readings × bound models, scored by a model in state ok, in any arrival order; a drifting model stops counting', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const { slo, store, batch, status, counts } = await setup();
      try {
        const R = T0 + 3 * HOUR;
        const models = [{ name: 'mf', version: '1', assets: ['mill'], health: [{ asset: 'mill', state: 'ok', samples: 10, psiMax: 0, top: [], ts: R }] }];
        await status('mill-2', R, R, { models });
        const risk = (seq: number, readingTs: number, model = 'mf') => ({ seq, ts: readingTs + 5, asset: 'mill', model, score: 0.1, atRisk: false, readingTs });
        const at = (i: number) => R + 10 * S + i * S;
        // Risk first (it drains before telemetry after an outage), then the readings it scored: 3 of 4 scored.
        await batch('mill-2', 'risk', R + 20 * S, [risk(1, at(0)), risk(2, at(1)), risk(3, at(2)), risk(4, at(3), 'unbound')]);
        await batch(
          'mill-2',
          'telemetry',
          R + 30 * S,
          [0, 1, 2, 3].map((i) => telemetry(i + 1, at(i), 'mill')),
        );
        expect((await counts(slo, 'scoring-coverage', HOUR, R + MIN)).get('mill-2')).toEqual({ good: 3, total: 4 });
        // The model drifts: its next two scorings do not count.
        await batch('mill-2', 'events', R + 40 * S, [
          { seq: 1, ts: R + 40 * S, type: 'model-health', asset: 'mill', model: 'mf', state: 'drift', previous: 'ok' },
        ]);
        await batch(
          'mill-2',
          'telemetry',
          R + 50 * S,
          [4, 5].map((i) => telemetry(i + 1, at(i), 'mill')),
        );
        await batch('mill-2', 'risk', R + 50 * S, [risk(5, at(4)), risk(6, at(5))]);
        expect((await counts(slo, 'scoring-coverage', HOUR, R + MIN)).get('mill-2')).toEqual({ good: 3, total: 6 });
        // A reading of an asset no model is bound to is not in the indicator.
        await batch('mill-2', 'telemetry', R + 55 * S, [telemetry(7, at(6), 'conveyor')]);
        expect((await counts(slo, 'scoring-coverage', HOUR, R + MIN, 'asset')).has('mill-2\u0000conveyor')).toBe(false);
      } finally {
        await store.close();
      }
    });

    it('alert latency: from when the condition began (pendingSinceTs, else raisedTs) to the alert at central', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const { slo, store, batch, counts } = await setup();
      try {
        const R = T0 + 4 * HOUR;
        const alert = (seq: number, raisedTs: number, extra: Record<string, unknown> = {}) => ({
          seq,
          ts: raisedTs,
          alertId: `r/${seq}`,
          rule: 'r',
          asset: 'pump',
          state: 'raised',
          raisedTs,
          ...extra,
        });
        await batch('press-6', 'alerts', R, [
          alert(1, R - 5 * S, { pendingSinceTs: R - 20 * S }),
          alert(2, R - 3 * S),
          { seq: 3, ts: R, alertId: 'r/2', rule: 'r', asset: 'pump', state: 'cleared', raisedTs: R - 3 * S },
        ]);
        expect((await counts(slo, 'alert-latency', HOUR, R)).get('press-6')).toEqual({ good: 1, total: 2 });
      } finally {
        await store.close();
      }
    });

    it('budget trend: one point per day over the window in whole days; hourly counters pruned past their retention', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const { slo, store, batch } = await setup();
      try {
        const o = slo.objectives.find((x) => x.name === 'complete')!;
        const trendSlo = { ...slo, objectives: [{ ...o, window: '2d', windowMs: 2 * DAY }] };
        // Day 0: 10 records and a gap of 10; day 1: 20 records; day 2: nothing.
        await batch(
          'press-7',
          'telemetry',
          T0 + HOUR,
          Array.from({ length: 5 }, (_v, i) => telemetry(i + 1, T0)),
        );
        await batch(
          'press-7',
          'telemetry',
          T0 + 2 * HOUR,
          Array.from({ length: 5 }, (_v, i) => telemetry(i + 16, T0)),
        );
        await batch(
          'press-7',
          'telemetry',
          T0 + DAY + HOUR,
          Array.from({ length: 20 }, (_v, i) => telemetry(i + 21, T0 + DAY)),
        );
        const now = T0 + 2 * DAY + 12 * HOUR;
        const trend = await budgetTrend(store.sql, trendSlo, trendSlo.objectives[0]!, new GroupMatcher(slo.groups), now, 3);
        expect(trend.map((p) => p.ts)).toEqual([T0 + DAY, T0 + 2 * DAY, now]);
        expect(trend.map((p) => p.sli)).toEqual([10 / 20, 30 / 40, 20 / 20]);
        expect(trend.map((p) => p.remaining)).toEqual([1 - 0.5 / 0.01, 1 - 0.25 / 0.01, 1].map((x) => expect.closeTo(x, 9)));
        expect(burnRate({ good: 0, total: 0 }, 0.99)).toBe(0);
        const evaluator = new SloEvaluator(store.sql, captureLogger().log, trendSlo, { now: () => T0 + 40 * DAY });
        await evaluator.pruneOnce();
        // 28 d (the longest window) + 28 trend days + 1 d back from day 40: nothing of days 0–1 is older.
        expect((await store.sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM slo_hour'))!.n).toBeGreaterThan(0);
        expect((await store.sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM slo_minute'))!.n).toBe(0);
        const late = new SloEvaluator(store.sql, captureLogger().log, trendSlo, { now: () => T0 + 60 * DAY });
        await late.pruneOnce();
        expect((await store.sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM slo_hour'))!.n).toBe(0);
      } finally {
        await store.close();
      }
    });

    it('the detail of an objective: per group, per agent and per asset, worst first, with the clocks', async (ctx) => {
      if (skip()) return ctx.skip(`PostgreSQL: ${stores.pgSkip}`);
      const { slo, store, batch, status } = await setup();
      try {
        const R = T0 + 5 * HOUR;
        await status('press-8', R, R);
        await batch('press-8', 'telemetry', R, [telemetry(1, R - 2 * S, 'a'), telemetry(2, R - 120 * S, 'b')]);
        await batch('mill-9', 'telemetry', R, [telemetry(1, R - 1 * S, 'c')]);
        const d = await sloDetail(
          store.sql,
          slo,
          slo.objectives.find((o) => o.name === 'latency')!,
          R,
        );
        expect(d.groups).toEqual([
          { group: 'all', value: 2 / 3, good: 2, total: 3 },
          { group: 'presses', value: 0.5, good: 1, total: 2 },
        ]);
        expect(d.agents.map((a) => [a.agentId, a.value])).toEqual([
          ['press-8', 0.5],
          ['mill-9', 1],
        ]);
        expect(d.assets.map((a) => [a.agentId, a.asset, a.value])).toEqual([
          ['press-8', 'b', 0],
          ['mill-9', 'c', 1],
          ['press-8', 'a', 1],
        ]);
        expect(d.clocks).toEqual([expect.objectContaining({ agentId: 'press-8', estimatedSkewMs: 0, appliedSkewMs: 0 })]);
      } finally {
        await store.close();
      }
    });
  });
}
