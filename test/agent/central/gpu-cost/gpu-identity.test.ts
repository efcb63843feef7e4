import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CentralStore } from '../../../../agent/src/central/central-store.js';
import { formatReport } from '../../../../agent/src/central/gpu-cost/gpu-cost-command.js';
import { parseGpuCostConfig } from '../../../../agent/src/central/gpu-cost/gpu-cost-config.js';
import { GpuCostProjection } from '../../../../agent/src/central/gpu-cost/gpu-cost-projection.js';
import { downtimeByGpu, gpuCostReport, reportCsv } from '../../../../agent/src/central/gpu-cost/gpu-cost-report.js';
import { centralStores, type CentralStores } from '../../../helpers/central-fixtures.js';
import { eventBatch, identityRecords } from './gpu-fixture-records.js';
import { CONFIG, feedDgx, feedWorkstation, MIN, T0 } from './gpu-cost-scenario.js';

/**
 * GPU models from the boards' identities: the GPU source's `gpu.identity` events (made from the recorded
 * identity.csv fixtures the way the source makes them) through the real ledger (SQLite and PostgreSQL) into the
 * projection's identity tables, and the report priced by product name with no `gpus` rule. The telemetry is the
 * shared scenario (gpu-cost-scenario.ts); the hours are those computed by hand in gpu-cost-projection.test.ts.
 *
 * Boards: every GPU's recorded identity at 22:59 (before its first sample), but none for the DGX's GPU 7
 * (0000:db:00.0), which stays `unknown`. Swaps: the DGX's GPU 3 (0000:5d:00.0) at 00:05 on day 2, the workstation's
 * GPU 1 (0000:23:00.0) at 02:00 on day 2, inside the gap 00:30–03:30 (a board is swapped with the host down).
 */

const DAY1 = '2026-03-01';
const DAY2 = '2026-03-02';
const H100 = 'NVIDIA H100 80GB HBM3';
const RTX = 'NVIDIA GeForce RTX 4090';
const h = (minutes: number) => minutes / 60;
const WINDOW = { from: Date.parse('2026-03-01T00:00:00Z'), to: Date.parse('2026-03-03T00:00:00Z') };

/** No `gpus` rule: the H100 priced by its exact product name, the RTX by a glob; unknown GPUs at 1.00 an hour. */
const BY_NAME = parseGpuCostConfig({
  currency: 'EUR',
  pricePerKwh: 0.2,
  models: { [H100]: { pricePerHour: 2.5 }, 'NVIDIA GeForce RTX *': { pricePerHour: 0.4 } },
  unknownModelPricePerHour: 1,
  groups: [
    { name: 'training', agents: ['dgx-*'] },
    { name: 'workstations', agents: ['ws-*'] },
  ],
  idle: { utilizationPct: 5, memoryPct: 5 },
  maxGapMinutes: 45,
  xidDowntimeMinutes: 10,
});

const OLD_5D = 'GPU-d1838e76-90e6-4408-711d-aeeaa2e1fd14';
const NEW_5D = 'GPU-0e6f4a21-5c3b-47d2-9a8e-3f1c2b7d9e40';
const OLD_23 = 'GPU-8f4d1755-9c8a-3a19-b71e-c190b3801dec';
const NEW_23 = 'GPU-5a0c9e1d-7b42-4f6e-b3d8-2c91e0f4a7b6';

let stores: CentralStores;
beforeAll(async () => {
  stores = await centralStores();
}, 120_000);
afterAll(async () => {
  await stores?.cleanup();
});

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`GPU identity and cost by product name on ${dialect}`, () => {
    let store: CentralStore;
    beforeAll(async () => {
      if (dialect === 'postgres' && stores.pgSkip) return;
      store = await CentralStore.open({ url: stores.url(dialect, `gpuidentity_${dialect}`), projections: [new GpuCostProjection(BY_NAME)] });
      const before = T0 - MIN;
      const dgxBuses = ['0000:18:00.0', '0000:2a:00.0', '0000:3a:00.0', '0000:5d:00.0', '0000:9a:00.0', '0000:ab:00.0', '0000:ba:00.0'];
      await store.ingestBatch(eventBatch('dgx-h100-01', identityRecords('h100x8', before, 1, { only: dgxBuses })), before);
      await store.ingestBatch(eventBatch('ws-4090', identityRecords('rtx4090', before, 1)), before);
      await feedWorkstation(store);
      await feedDgx(store);
      const swap5d = T0 + 65 * MIN;
      await store.ingestBatch(
        eventBatch(
          'dgx-h100-01',
          identityRecords('h100x8', swap5d, 8, { file: 'h100x8/identity-swapped.csv', only: ['0000:5d:00.0'], previous: { '0000:5d:00.0': OLD_5D } }),
        ),
        swap5d,
      );
      const swap23 = T0 + 180 * MIN;
      await store.ingestBatch(
        eventBatch(
          'ws-4090',
          identityRecords('rtx4090', swap23, 3, { file: 'rtx4090/identity-swapped.csv', only: ['0000:23:00.0'], previous: { '0000:23:00.0': OLD_23 } }),
        ),
        swap23,
      );
      // The agent restarts and says the same again: nothing changes but the last sighting.
      await store.ingestBatch(
        eventBatch('ws-4090', identityRecords('rtx4090', T0 + 290 * MIN, 4, { file: 'rtx4090/identity-swapped.csv' }), 2),
        T0 + 290 * MIN,
      );
    }, 60_000);
    afterAll(async () => {
      await store?.sql.close();
    });
    const skip = (ctx: { skip(r: string): void }) => dialect === 'postgres' && stores.pgSkip && ctx.skip(stores.pgSkip);

    it('keeps the latest identity per GPU and a history row per board', async (ctx) => {
      skip(ctx);
      const current = await store.sql.all<Record<string, unknown>>(
        `SELECT agent_id, asset, name, uuid, serial, vbios, driver_version, memory_total_bytes, first_seen, last_seen FROM gpu_identity ORDER BY agent_id, asset`,
      );
      expect(current).toHaveLength(7 + 2);
      expect(current.find((r) => r.asset === 'gpu-0000:18:00.0')).toMatchObject({
        agent_id: 'dgx-h100-01',
        name: H100,
        uuid: 'GPU-b42dd28e-ffdd-8720-1df0-98bd8cdc05b1',
        serial: '1654423001593',
        vbios: '96.00.74.00.01',
        driver_version: '565.57.01',
        memory_total_bytes: null, // not in identity.csv (the fake takes it from query-gpu.csv)
      });
      expect(current.find((r) => r.asset === 'gpu-0000:5d:00.0')).toMatchObject({ uuid: NEW_5D, serial: '1654423009981' });
      expect(Number(current.find((r) => r.asset === 'gpu-0000:5d:00.0')!.first_seen)).toBe(T0 + 65 * MIN);
      const ws1 = current.find((r) => r.agent_id === 'ws-4090' && r.asset === 'gpu-0000:23:00.0')!;
      expect([ws1.uuid, Number(ws1.first_seen), Number(ws1.last_seen)]).toEqual([NEW_23, T0 + 180 * MIN, T0 + 290 * MIN]);

      const history = await store.sql.all<{ agent_id: string; asset: string; since: number; uuid: string; last_seen: number }>(
        `SELECT agent_id, asset, since, uuid, last_seen FROM gpu_identity_history WHERE asset IN ('gpu-0000:5d:00.0', 'gpu-0000:23:00.0') ORDER BY agent_id, asset, since`,
      );
      expect(history.map((r) => [r.agent_id, r.asset, Number(r.since), r.uuid, Number(r.last_seen)])).toEqual([
        ['dgx-h100-01', 'gpu-0000:5d:00.0', T0 - MIN, OLD_5D, T0 - MIN],
        ['dgx-h100-01', 'gpu-0000:5d:00.0', T0 + 65 * MIN, NEW_5D, T0 + 65 * MIN],
        ['ws-4090', 'gpu-0000:23:00.0', T0 - MIN, OLD_23, T0 - MIN],
        ['ws-4090', 'gpu-0000:23:00.0', T0 + 180 * MIN, NEW_23, T0 + 290 * MIN],
      ]);
    });

    it('prices by product name with no gpus rule (exact name, then a glob); a GPU without identity is unknown', async (ctx) => {
      skip(ctx);
      const byModel = await gpuCostReport(store.sql, BY_NAME, { ...WINDOW, by: 'model' });
      // H100: the 8 GPUs' idle hours (6.5 h + 70 min) less GPU 7's (60 + 10 min), at 2.50; GPU 7 at 1.00;
      // RTX: GPU 0 idle 1 h a day at 0.40 (the swapped GPU 1 is still an RTX 4090: 2 GPUs).
      expect(byModel.totals.map((t) => [t.key, t.gpus, t.idleCost])).toEqual([
        [H100, 7, expect.closeTo(6.5 * 2.5, 6)],
        ['unknown', 1, expect.closeTo(h(70), 6)],
        [RTX, 2, expect.closeTo(0.8, 6)],
      ]);
      // A gpus rule comes first: the DGX's GPUs are what it says, whatever their boards report.
      const ruled = parseGpuCostConfig({
        ...rawOf(BY_NAME),
        models: { ...BY_NAME.models, 'H100-SXM': { pricePerHour: 3 } },
        gpus: [{ agents: ['dgx-*'], model: 'H100-SXM' }],
      });
      const byRule = await gpuCostReport(store.sql, ruled, { ...WINDOW, by: 'model' });
      expect(byRule.totals.map((t) => [t.key, t.gpus, t.idleCost])).toEqual([
        ['H100-SXM', 8, expect.closeTo((6.5 + h(70)) * 3, 6)],
        [RTX, 2, expect.closeTo(0.8, 6)],
      ]);
      // And the old configuration (its gpus rules) prices as before.
      const old = await gpuCostReport(store.sql, CONFIG, { ...WINDOW, by: 'model' });
      expect(old.totals.map((t) => t.key)).toEqual(['H100-SXM', 'RTX-4090']);
      // The downtime list (the gpu-downtime-cost alert's evidence) names the product too.
      const down = await downtimeByGpu(store.sql, BY_NAME, WINDOW.from, WINDOW.to);
      expect(down.map((d) => [d.asset, d.model])).toEqual(
        expect.arrayContaining([
          ['gpu-0000:2a:00.0', H100],
          ['gpu-0000:5d:00.0', H100],
        ]),
      );
    });

    it('per GPU, each board is a line with its uuid: a swap on another day and a swap inside a day split the hours', async (ctx) => {
      skip(ctx);
      const byGpu = await gpuCostReport(store.sql, BY_NAME, { ...WINDOW, by: 'gpu' });
      const lines = (key: string) => byGpu.rows.filter((r) => r.key === key).map((r) => [r.day, r.uuid, r.model]);
      expect(lines('dgx-h100-01/gpu-0000:5d:00.0')).toEqual([
        [DAY1, OLD_5D, H100],
        [DAY2, NEW_5D, H100],
      ]);
      expect(lines('dgx-h100-01/gpu-0000:db:00.0')).toEqual([
        [DAY1, '', 'unknown'],
        [DAY2, '', 'unknown'],
      ]);
      // ws GPU 1 on day 2: busy 00:00–00:30 and 03:30–04:00 (445.38 W), a gap 00:30–03:30. The board swapped at
      // 02:00 takes the hours from 02:00: each board 0.5 h busy, 222.69 Wh, 1.5 h of the gap.
      const ws = byGpu.rows.filter((r) => r.key === 'ws-4090/gpu-0000:23:00.0' && r.day === DAY2);
      expect(ws.map((r) => [r.uuid, r.busyHours, r.energyKwh, r.gapHours])).toEqual([
        [NEW_23, expect.closeTo(0.5, 9), expect.closeTo(0.22269, 9), expect.closeTo(1.5, 9)],
        [OLD_23, expect.closeTo(0.5, 9), expect.closeTo(0.22269, 9), expect.closeTo(1.5, 9)],
      ]);
      // The per-host view is unchanged by the split: the same GPU, the whole day.
      const byHost = await gpuCostReport(store.sql, BY_NAME, { ...WINDOW, by: 'host' });
      const wsDay2 = byHost.rows.find((r) => r.key === 'ws-4090' && r.day === DAY2)!;
      expect([wsDay2.gpus, wsDay2.busyHours, wsDay2.gapHours, wsDay2.gaps]).toEqual([2, expect.closeTo(1, 9), expect.closeTo(6, 9), 2]);
      expect(byGpu.totals.filter((t) => t.key === 'ws-4090/gpu-0000:23:00.0').map((t) => t.uuid)).toEqual(expect.arrayContaining([OLD_23, NEW_23]));

      // The command's table names the board after the GPU.
      expect(formatReport(byGpu)).toMatch(new RegExp(`^${DAY2}\\s+ws-4090/gpu-0000:23:00\\.0 ${NEW_23}\\s`, 'm'));
      const csv = reportCsv(byGpu).split('\n');
      expect(csv[0]!.startsWith('day,gpu,uuid,model,gpus,busy_hours,')).toBe(true);
      expect(csv).toContain(
        `${DAY2},ws-4090/gpu-0000:23:00.0,${OLD_23},${RTX},1,0.5000,0.0000,0.0000,0.0000,0.0000,0.0000,0.0000,1.5000,1,0.2227,0,0.00,0.00,0.04,0.04,EUR`,
      );
    });
  });
}

/** A parsed config back into the raw section (the fields this test varies). */
function rawOf(c: typeof BY_NAME) {
  return {
    currency: c.currency,
    pricePerKwh: c.pricePerKwh,
    models: c.models,
    unknownModelPricePerHour: c.unknownModelPricePerHour,
    groups: c.groups,
    idle: c.idle,
    maxGapMinutes: c.maxGapMs / MIN,
    xidDowntimeMinutes: c.xidDowntimeMs / MIN,
  };
}
