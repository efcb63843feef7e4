import type { CentralStore } from '../../../../agent/src/central/central-store.js';
import { parseGpuCostConfig } from '../../../../agent/src/central/gpu-cost/gpu-cost-config.js';
import { GpuFixtureHost, kernelXids, samplesOf } from './gpu-fixture-records.js';

/**
 * The scenario the GPU cost tests share (the arithmetic is in gpu-cost-projection.test.ts).
 *
 * Configuration: RTX 4090 0.40/h, H100 2.50/h, 0.20 per kWh; idle below 5 % utilisation and 5 % memory; a gap is
 * more than 45 min between two samples of a GPU; a fatal Xid costs 10 min.
 */

export const CONFIG = parseGpuCostConfig({
  currency: 'EUR',
  pricePerKwh: 0.2,
  models: { 'RTX-4090': { pricePerHour: 0.4 }, 'H100-SXM': { pricePerHour: 2.5 } },
  gpus: [
    { agents: ['ws-*'], model: 'RTX-4090' },
    { agents: ['dgx-*'], model: 'H100-SXM' },
  ],
  groups: [
    { name: 'training', agents: ['dgx-*'] },
    { name: 'workstations', agents: ['ws-*'] },
  ],
  idle: { utilizationPct: 5, memoryPct: 5 },
  maxGapMinutes: 45,
  xidDowntimeMinutes: 10,
  alerts: { idleForHours: 2, downtime: { windowHours: 24, top: 2, minCost: 0.1 } },
});

export const MIN = 60_000;
export const T0 = Date.parse('2026-03-01T23:00:00Z');

/**
 * ws-4090 (rtx4090 set, its one recorded sample at every time): GPU 0 idle (0 %, 0 of 24564 MiB, 18.90 W), GPU 1
 * busy (97 %, 445.38 W). Samples at 23:00, 23:30, 00:00, 00:30, then none until 03:30 (a 3 h gap), and 04:00.
 */
export async function feedWorkstation(store: CentralStore, t0 = T0): Promise<void> {
  const host = new GpuFixtureHost('ws-4090', 'rtx4090');
  const [sample] = samplesOf('rtx4090');
  for (const t of [0, 30, 60, 90, 270, 300]) await store.ingestBatch(host.batch(host.sample(sample!, t0 + t * MIN)), t0 + t * MIN);
}

/**
 * dgx-h100-01 (h100x8), a sample every 10 min from 23:00 to 00:10: V1 (all 8 idle) at 23:00; at 23:10 the
 * `gpu-vanishes` middle sample (GPU 7 missing); V3 at 23:20; the `query-gpu-errors` sample at 23:30 and 23:40
 * (GPU 0 [Unknown Error] utilisation and power, GPU 1 [GPU is lost], GPU 2 ERR! utilisation and no memory used,
 * GPU 3's line without an index dropped, GPU 4 unparseable utilisation and power, GPUs 5–7 absent); V1 again at
 * 23:50, 00:00, 00:10. From the H100 kernel log: Xid 48 on GPU 3 (5d:00) appears in the 23:50 sample, Xid 95 on
 * GPU 4 (9a:00) in the 00:00 sample (both fatal); Xid 94 on GPU 1 (2a:00) at 23:50 is contained, not downtime.
 */
export async function feedDgx(store: CentralStore, t0 = T0): Promise<void> {
  const host = new GpuFixtureHost('dgx-h100-01', 'h100-gpu-vanishes');
  const [v1, v2, v3] = samplesOf('h100-gpu-vanishes');
  const [e] = samplesOf('h100-broken');
  const log = 'kernel/dmesg-h100.txt';
  const at = (m: number) => t0 + m * MIN;
  const send = (lines: string[], m: number) => store.ingestBatch(host.batch(host.sample(lines, at(m))), at(m));
  await send(v1!, 0);
  await send(v2!, 10);
  await send(v3!, 20);
  await send(e!, 30);
  await send(e!, 40);
  host.xid(kernelXids(log, '0000:5d:00.0').filter((x) => x.code === 48));
  host.xid(kernelXids(log, '0000:2a:00.0').filter((x) => x.code === 94));
  await send(v1!, 50);
  host.xid(kernelXids(log, '0000:9a:00.0').filter((x) => x.code === 95));
  await send(v1!, 60);
  await send(v1!, 70);
}
