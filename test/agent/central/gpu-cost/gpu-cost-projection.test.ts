import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CentralStore } from '../../../../agent/src/central/central-store.js';
import { GpuCostProjection } from '../../../../agent/src/central/gpu-cost/gpu-cost-projection.js';
import { gpuCostReport, idleGpus, reportCsv, type CostFigures } from '../../../../agent/src/central/gpu-cost/gpu-cost-report.js';
import { centralStores, type CentralStores } from '../../../helpers/central-fixtures.js';
import { GpuFixtureHost, samplesOf } from './gpu-fixture-records.js';
import { CONFIG, feedDgx, feedWorkstation, MIN, T0 } from './gpu-cost-scenario.js';

/**
 * GPU cost on recorded nvidia-smi series: the GPU source's fixtures through its real parsers into telemetry records,
 * through the real ledger (CentralStore, SQLite and PostgreSQL) and the projection, then the report, compared with
 * hours, kWh and costs computed by hand below.
 * The scenario (configuration, hosts, samples) is in gpu-cost-scenario.ts.
 */

const DAY1 = '2026-03-01';
const DAY2 = '2026-03-02';

const h = (minutes: number) => minutes / 60;

/** The figures of a report row that the arithmetic fixes (cost rounding: 9 decimals). */
function figures(f: CostFigures) {
  return {
    gpus: f.gpus,
    busyHours: f.busyHours,
    idleHours: f.idleHours,
    downHours: f.downHours,
    downHoursByCause: f.downHoursByCause,
    gapHours: f.gapHours,
    gaps: f.gaps,
    energyKwh: f.energyKwh,
    idleCost: f.idleCost,
    downtimeCost: f.downtimeCost,
    energyCost: f.energyCost,
    totalCost: f.totalCost,
  };
}

// ---- the arithmetic, by hand ----
// ws-4090, each day: GPU 0 idle 23:00–00:00 (day 1) and 00:00–00:30 + 03:30–04:00 (day 2) = 1 h a day; GPU 1
// busy for the same hours; 00:30–03:30 is a gap of 3 h for each GPU (2 GPUs: 6 GPU-hours, 2 gaps), not integrated.
// Energy a day: (18.90 + 445.38) W × 1 h = 464.28 Wh = 0.46428 kWh → 0.46428 × 0.20 = 0.092856.
// Idle cost a day: 1 h × 0.40 = 0.40. Total a day: 0.492856.
const WS_DAY1 = {
  gpus: 2,
  busyHours: 1,
  idleHours: 1,
  downHours: 0,
  downHoursByCause: { lost: 0, memory: 0, reset: 0, xid: 0 },
  gapHours: 0,
  gaps: 0,
  energyKwh: 0.46428,
  idleCost: 0.4,
  downtimeCost: 0,
  energyCost: 0.092856,
  totalCost: 0.492856,
};
const WS_DAY2 = { ...WS_DAY1, gapHours: 6, gaps: 2 };

// dgx-h100-01, per GPU (intervals take the state of the sample that starts them; idle needs the end not busy;
// a sample whose utilisation or memory is unreadable is "unknown" and its interval counts as busy):
//   GPU 0 (100.89 W): idle 23:00–23:30 and 23:50–00:00 = 40 min, busy 23:30–23:50 (unknown) = 20 min;
//         energy only where both ends have power: 23:00–23:20 and 23:50–00:00 = 30 min → 50.445 Wh; day 2: idle
//         10 min, 100.89/6 = 16.815 Wh.
//   GPU 1 (82.81 W): idle 23:00–23:30 (the 23:30 sample is lost, not busy) + 23:50–00:00 = 40 min; down (lost)
//         23:30–23:50 = 20 min; energy 30 min → 41.405 Wh; day 2 idle 10 min, 13.801667 Wh. (Xid 94 is not fatal.)
//   GPU 2 (85.00 W in every sample): idle 40, busy 20 (ERR! utilisation); energy 60 min → 85 Wh; day 2 idle 10 min,
//         14.166667 Wh.
//   GPU 3 (85.48 W): missing 23:30 and 23:40 (20–30 min apart < 45: no gap): idle 23:00–23:50 = 50 min; Xid 48 at
//         23:50 → down (xid) 23:50–00:00 = 10 min; energy 60 min → 85.48 Wh; day 2 idle 10 min, 14.246667 Wh.
//   GPU 4 (84.94 W): idle 40, busy 20 (unparseable utilisation); energy 23:00–23:20 + 23:50–00:00 = 30 min →
//         42.47 Wh; Xid 95 at 00:00 → day 2 down (xid) 10 min, 14.156667 Wh.
//   GPU 5 (85.27 W), GPU 6 (86.05 W): idle 60 min, energy 85.27 / 86.05 Wh; day 2 idle 10 min, P/6.
//   GPU 7 (75.09 W): missing at 23:10 too; idle 60 min, 75.09 Wh; day 2 idle 10 min, 12.515 Wh.
// Day 1: idle 40+40+40+50+40+60+60+60 = 390 min = 6.5 h → × 2.50 = 16.25; busy 20+20+20 = 60 min = 1 h;
//        down 20 (lost) + 10 (xid) = 30 min = 0.5 h → 1.25;
//        energy 50.445+41.405+85+85.48+42.47+85.27+86.05+75.09 = 551.21 Wh = 0.55121 kWh → 0.110242;
//        total 16.25 + 1.25 + 0.110242 = 17.610242.
// Day 2: idle 7 × 10 min = 70 min = 7/6 h → 2.916667; down (xid) 10 min = 1/6 h → 0.416667;
//        energy (100.89+82.81+85+85.48+84.94+85.27+86.05+75.09)/6 = 685.53/6 = 114.255 Wh → 0.022851;
//        total 2.9166667 + 0.4166667 + 0.022851 = 3.3561833.
const DGX_DAY1 = {
  gpus: 8,
  busyHours: 1,
  idleHours: 6.5,
  downHours: 0.5,
  downHoursByCause: { lost: h(20), memory: 0, reset: 0, xid: h(10) },
  gapHours: 0,
  gaps: 0,
  energyKwh: 0.55121,
  idleCost: 16.25,
  downtimeCost: 1.25,
  energyCost: 0.110242,
  totalCost: 17.610242,
};
const DGX_DAY2 = {
  gpus: 8,
  busyHours: 0,
  idleHours: h(70),
  downHours: h(10),
  downHoursByCause: { lost: 0, memory: 0, reset: 0, xid: h(10) },
  gapHours: 0,
  gaps: 0,
  energyKwh: 0.114255,
  idleCost: h(70) * 2.5,
  downtimeCost: h(10) * 2.5,
  energyCost: 0.022851,
  totalCost: h(70) * 2.5 + h(10) * 2.5 + 0.022851,
};

const close = (expected: ReturnType<typeof figures>) =>
  Object.fromEntries(
    Object.entries(expected).map(([k, v]) => [
      k,
      typeof v === 'number' ? expect.closeTo(v, 6) : Object.fromEntries(Object.entries(v).map(([c, x]) => [c, expect.closeTo(x, 6)])),
    ]),
  );

let stores: CentralStores;
beforeAll(async () => {
  stores = await centralStores();
}, 120_000);
afterAll(async () => {
  await stores?.cleanup();
});

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`GPU cost from recorded nvidia-smi series on ${dialect}`, () => {
    let store: CentralStore;
    const projection = new GpuCostProjection(CONFIG);
    beforeAll(async () => {
      if (dialect === 'postgres' && stores.pgSkip) return;
      store = await CentralStore.open({ url: stores.url(dialect, `gpucost_${dialect}`), projections: [projection] });
      await feedWorkstation(store);
      await feedDgx(store);
    }, 60_000);
    afterAll(async () => {
      await store?.sql.close();
    });
    const skip = (ctx: { skip(r: string): void }) => dialect === 'postgres' && stores.pgSkip && ctx.skip(stores.pgSkip);

    it('per host and day: busy, idle, down and gap hours, kWh and costs as computed by hand', async (ctx) => {
      skip(ctx);
      const r = await gpuCostReport(store.sql, CONFIG, { from: Date.parse('2026-03-01T00:00:00Z'), to: Date.parse('2026-03-03T00:00:00Z'), by: 'host' });
      expect(r.rows.map((x) => [x.day, x.key])).toEqual([
        [DAY1, 'dgx-h100-01'],
        [DAY1, 'ws-4090'],
        [DAY2, 'dgx-h100-01'],
        [DAY2, 'ws-4090'],
      ]);
      expect(figures(r.rows[0]!)).toEqual(close(DGX_DAY1));
      expect(figures(r.rows[1]!)).toEqual(close(WS_DAY1));
      expect(figures(r.rows[2]!)).toEqual(close(DGX_DAY2));
      expect(figures(r.rows[3]!)).toEqual(close(WS_DAY2));
      // The fleet: the sum of the four lines; the daily trend: per day.
      expect(r.fleet.totalCost).toBeCloseTo(17.610242 + 0.492856 + DGX_DAY2.totalCost + 0.492856, 6);
      expect(r.daily.map((d) => [d.day, d.totalCost])).toEqual([
        [DAY1, expect.closeTo(17.610242 + 0.492856, 6)],
        [DAY2, expect.closeTo(DGX_DAY2.totalCost + 0.492856, 6)],
      ]);
      expect(r.totals[0]).toMatchObject({ key: 'dgx-h100-01', totalCost: expect.closeTo(17.610242 + DGX_DAY2.totalCost, 6) });
      // Every sample was accounted once; none came late.
      expect(projection.stats.late).toBe(0);
    });

    it('per model and per group: the same hours priced per model', async (ctx) => {
      skip(ctx);
      const window = { from: Date.parse('2026-03-01T00:00:00Z'), to: Date.parse('2026-03-03T00:00:00Z') };
      const byModel = await gpuCostReport(store.sql, CONFIG, { ...window, by: 'model' });
      expect(byModel.totals.map((t) => [t.key, t.gpus, t.idleCost])).toEqual([
        ['H100-SXM', 8, expect.closeTo(16.25 + h(70) * 2.5, 6)],
        ['RTX-4090', 2, expect.closeTo(0.8, 6)],
      ]);
      const byGroup = await gpuCostReport(store.sql, CONFIG, { ...window, by: 'group' });
      expect(byGroup.rows.map((x) => [x.day, x.key, x.downtimeCost])).toEqual([
        [DAY1, 'training', expect.closeTo(1.25, 6)],
        [DAY1, 'workstations', 0],
        [DAY2, 'training', expect.closeTo(h(10) * 2.5, 6)],
        [DAY2, 'workstations', 0],
      ]);
      // Per GPU: the lost GPU 1 and the Xid 48 on GPU 3.
      const byGpu = await gpuCostReport(store.sql, CONFIG, { ...window, by: 'gpu' });
      const gpu = (asset: string, day: string) => byGpu.rows.find((x) => x.key === `dgx-h100-01/${asset}` && x.day === day)!;
      expect(figures(gpu('gpu-0000:2a:00.0', DAY1))).toMatchObject({
        idleHours: expect.closeTo(h(40), 9),
        downHoursByCause: { lost: expect.closeTo(h(20), 9) },
      });
      expect(gpu('gpu-0000:2a:00.0', DAY1).energyKwh).toBeCloseTo(0.041405, 9);
      expect(gpu('gpu-0000:5d:00.0', DAY1)).toMatchObject({
        idleHours: expect.closeTo(h(50), 9),
        xids: 1,
        downHoursByCause: { xid: expect.closeTo(h(10), 9) },
      });
      expect(gpu('gpu-0000:9a:00.0', DAY2)).toMatchObject({ idleHours: 0, xids: 1, downHoursByCause: { xid: expect.closeTo(h(10), 9) } });
      expect(gpu('gpu-0000:18:00.0', DAY1)).toMatchObject({ busyHours: expect.closeTo(h(20), 9), energyKwh: expect.closeTo(0.050445, 9) });
    });

    it('window boundaries: whole hours, UTC days; a window inside an hour takes the whole hour', async (ctx) => {
      skip(ctx);
      const day2 = await gpuCostReport(store.sql, CONFIG, { from: Date.parse('2026-03-02T00:00:00Z'), to: Date.parse('2026-03-03T00:00:00Z'), by: 'host' });
      expect(day2.rows.map((x) => x.day)).toEqual([DAY2, DAY2]);
      expect(day2.fleet.totalCost).toBeCloseTo(DGX_DAY2.totalCost + 0.492856, 6);
      // 23:30–23:40 is rounded out to 23:00–00:00: day 1 exactly.
      const inside = await gpuCostReport(store.sql, CONFIG, { from: Date.parse('2026-03-01T23:30:00Z'), to: Date.parse('2026-03-01T23:40:00Z'), by: 'host' });
      expect(inside.from).toBe(T0);
      expect(inside.to).toBe(T0 + 3_600_000);
      expect(figures(inside.rows[0]!)).toEqual(close(DGX_DAY1));
      // The ws-4090's 03:00–04:00 hour: half gap (03:00–03:30), half idle/busy (03:30–04:00).
      const hour = await gpuCostReport(store.sql, CONFIG, { from: Date.parse('2026-03-02T03:00:00Z'), to: Date.parse('2026-03-02T04:00:00Z'), by: 'host' });
      expect(hour.rows).toHaveLength(1);
      expect(hour.rows[0]).toMatchObject({ key: 'ws-4090', gapHours: 1, idleHours: 0.5, busyHours: 0.5, gaps: 0 });
      // Before any sample: nothing.
      expect((await gpuCostReport(store.sql, CONFIG, { from: T0 - 86_400_000, to: T0, by: 'host' })).rows).toEqual([]);
    });

    it('CSV: the columns in order, one line per day and key, hours and kWh to 4 decimals, money to 2', async (ctx) => {
      skip(ctx);
      const r = await gpuCostReport(store.sql, CONFIG, { from: Date.parse('2026-03-01T00:00:00Z'), to: Date.parse('2026-03-03T00:00:00Z'), by: 'host' });
      const [header, ...lines] = reportCsv(r).trimEnd().split('\n');
      expect(header).toBe(
        'day,host,gpus,busy_hours,idle_hours,down_hours,down_lost_hours,down_memory_hours,down_reset_hours,down_xid_hours,gap_hours,gaps,energy_kwh,xids,idle_cost,downtime_cost,energy_cost,total_cost,currency',
      );
      expect(lines).toEqual([
        '2026-03-01,dgx-h100-01,8,1.0000,6.5000,0.5000,0.3333,0.0000,0.0000,0.1667,0.0000,0,0.5512,1,16.25,1.25,0.11,17.61,EUR',
        '2026-03-01,ws-4090,2,1.0000,1.0000,0.0000,0.0000,0.0000,0.0000,0.0000,0.0000,0,0.4643,0,0.40,0.00,0.09,0.49,EUR',
        '2026-03-02,dgx-h100-01,8,0.0000,1.1667,0.1667,0.0000,0.0000,0.0000,0.1667,0.0000,0,0.1143,1,2.92,0.42,0.02,3.36,EUR',
        '2026-03-02,ws-4090,2,1.0000,1.0000,0.0000,0.0000,0.0000,0.0000,0.0000,6.0000,2,0.4643,0,0.40,0.00,0.09,0.49,EUR',
      ]);
    });

    it('idle GPUs now: the idle run of each GPU that still reports, longest first', async (ctx) => {
      skip(ctx);
      // At 04:00 (the workstation's last sample) its GPU 0 has been idle since 03:30 (the gap broke its run);
      // the DGX's last samples (00:10) are older than the 45 min gap bound: not known to be idle.
      const now = T0 + 300 * MIN;
      expect(await idleGpus(store.sql, CONFIG, now)).toEqual([
        expect.objectContaining({ agentId: 'ws-4090', asset: 'gpu-0000:01:00.0', idleSince: T0 + 270 * MIN, idleHours: 0.5, idleCost: 0.2, model: 'RTX-4090' }),
      ]);
      const dgx = await idleGpus(store.sql, CONFIG, T0 + 70 * MIN);
      // GPU 5–7 were absent from the error samples (20–30 min between theirs: no gap) and idle from 23:00 on; GPU 0–2
      // idle since 23:50 (busy or down before), GPU 3 since 00:00 (the Xid hold until then), GPU 4 down (Xid 95).
      expect(dgx.map((g) => [g.asset, (g.idleSince - T0) / MIN])).toEqual([
        ['gpu-0000:ab:00.0', 0],
        ['gpu-0000:ba:00.0', 0],
        ['gpu-0000:db:00.0', 0],
        ['gpu-0000:18:00.0', 50],
        ['gpu-0000:2a:00.0', 50],
        ['gpu-0000:3a:00.0', 50],
        ['gpu-0000:5d:00.0', 60],
      ]);
    });

    it('a redelivered batch counts nothing twice; a sample older than the last one is late and not accounted', async (ctx) => {
      skip(ctx);
      const before = await gpuCostReport(store.sql, CONFIG, { from: T0, to: T0 + 86_400_000, by: 'host' });
      const host = new GpuFixtureHost('ws-4090', 'rtx4090');
      const [sample] = samplesOf('rtx4090');
      // seqs 1–2 again (the ledger drops them as duplicates): the projection never sees them.
      await store.ingestBatch(host.batch(host.sample(sample!, T0)), T0 + 400 * MIN);
      // A new seq whose sample time (02:00) lies in the accounted gap: late.
      const late = host.sample(sample!, T0 + 180 * MIN).map((r, i) => ({ ...r, seq: 100 + i }));
      await store.ingestBatch(host.batch(late), T0 + 401 * MIN);
      const after = await gpuCostReport(store.sql, CONFIG, { from: T0, to: T0 + 86_400_000, by: 'host' });
      expect(after.fleet.totalCost).toBe(before.fleet.totalCost);
      expect(after.fleet.gapHours).toBe(before.fleet.gapHours);
      expect(after.fleet.lateSamples).toBe(before.fleet.lateSamples + 2);
    });
  });
}
