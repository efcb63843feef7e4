import type { GpuCostConfig } from './gpu-cost-config.js';

/**
 * The accounting of one GPU's time, pure: a telemetry record of the GPU source becomes a `GpuSample`; each pair of
 * consecutive samples [a, b) becomes an interval that is busy, idle, unavailable (down) or a gap, with the energy
 * of the trapezoid between the two power readings; intervals are split at hour boundaries into `HourPart`s.
 * docs/gpu-cost.md states every rule with its reason; the projection (gpu-cost-projection.ts) only stores.
 */

export const HOUR_MS = 3_600_000;

/** Why a GPU is out of service, strongest first: the first that holds names the interval. */
export type DownCause = 'lost' | 'memory' | 'reset' | 'xid';
export const DOWN_CAUSES: readonly DownCause[] = ['lost', 'memory', 'reset', 'xid'];

/** A sample's own load class, whatever its availability: `unknown` when a reading the idle test needs is missing. */
export type LoadClass = 'busy' | 'idle' | 'unknown';

export interface GpuSample {
  ts: number;
  load: LoadClass;
  /** Its own down signal (`gpu.lost`, `gpu.remapped_rows.failure`, `gpu.reset.required`); null when none. */
  signal: Exclude<DownCause, 'xid'> | null;
  powerW: number | null;
  index: number | null;
  memoryTotalBytes: number | null;
  /** `gpu.xid.<code>.count` of the codes in `downtimeXids`. */
  xidCounts: Record<string, number>;
}

/** What is kept of a GPU's last sample between batches (one row of gpu_cost_state). */
export interface GpuState {
  ts: number;
  bootSeq: number;
  load: LoadClass;
  signal: Exclude<DownCause, 'xid'> | null;
  powerW: number | null;
  /** A fatal Xid keeps the GPU down until this time (ms), at least. */
  xidDownUntil: number | null;
  /** Start of the idle run the GPU is in; null when its last interval was not idle. */
  idleSince: number | null;
  xidCounts: Record<string, number>;
  index: number | null;
  memoryTotalBytes: number | null;
}

export interface HourPart {
  hour: number;
  busyMs: number;
  idleMs: number;
  downMs: Record<DownCause, number>;
  gapMs: number;
  /** Gaps that start in this hour (a gap over several hours counts once). */
  gaps: number;
  energyWh: number;
  /** Time over which energy was integrated (both ends had a power reading and no gap). */
  poweredMs: number;
  samples: number;
  lateSamples: number;
  /** Fatal Xids first seen in this hour. */
  xids: number;
}

export function emptyPart(hour: number): HourPart {
  return {
    hour,
    busyMs: 0,
    idleMs: 0,
    downMs: { lost: 0, memory: 0, reset: 0, xid: 0 },
    gapMs: 0,
    gaps: 0,
    energyWh: 0,
    poweredMs: 0,
    samples: 0,
    lateSamples: 0,
    xids: 0,
  };
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** A GPU source telemetry record → a sample; null when the record is not a GPU's (asset `gpu-…` with `gpu.lost`). */
export function gpuSample(asset: unknown, ts: unknown, metrics: unknown, config: GpuCostConfig): GpuSample | null {
  if (typeof asset !== 'string' || !asset.startsWith('gpu-') || !finite(ts) || typeof metrics !== 'object' || metrics === null) return null;
  const m = metrics as Record<string, unknown>;
  if (!finite(m['gpu.lost']) && !finite(m['gpu.utilization_pct'])) return null;
  const util = m['gpu.utilization_pct'];
  const used = m['gpu.memory.used_bytes'];
  const total = m['gpu.memory.total_bytes'];
  let load: LoadClass = 'unknown';
  const utilBusy = finite(util) && util >= config.idle.utilizationPct;
  const memKnown = finite(used) && finite(total) && total > 0;
  const memBusy = memKnown && (100 * used) / total >= config.idle.memoryPct;
  if (utilBusy || memBusy) load = 'busy';
  else if (finite(util) && memKnown) load = 'idle';
  const signal =
    m['gpu.lost'] === 1
      ? 'lost'
      : finite(m['gpu.remapped_rows.failure']) && m['gpu.remapped_rows.failure'] > 0
        ? 'memory'
        : m['gpu.reset.required'] === 1
          ? 'reset'
          : null;
  const xidCounts: Record<string, number> = {};
  for (const code of config.downtimeXids) {
    const n = m[`gpu.xid.${code}.count`];
    if (finite(n) && n > 0) xidCounts[code] = n;
  }
  const power = m['gpu.power.draw_w'];
  const index = m['gpu.index'];
  return {
    ts,
    load,
    signal,
    powerW: finite(power) && power >= 0 ? power : null,
    index: finite(index) ? index : null,
    memoryTotalBytes: finite(total) ? total : null,
    xidCounts,
  };
}

/**
 * Fatal Xids new at this sample: count increases since the previous sample of the same agent run. The counts are
 * the agent's since it started, so after a restart (a new boot seq) every count is new.
 */
export function newXids(prev: Record<string, number>, now: Record<string, number>): number {
  let n = 0;
  for (const [code, count] of Object.entries(now)) {
    const before = prev[code] ?? 0;
    n += count > before ? count - before : count < before ? count : 0;
  }
  return n;
}

export type Parts = Map<number, HourPart>;

function part(parts: Parts, hour: number): HourPart {
  let p = parts.get(hour);
  if (!p) parts.set(hour, (p = emptyPart(hour)));
  return p;
}

/** Calls `fn` for each piece of [a, b) within one hour. */
function eachHour(a: number, b: number, fn: (hour: number, s: number, e: number) => void): void {
  let s = a;
  while (s < b) {
    const hour = Math.floor(s / HOUR_MS) * HOUR_MS;
    const e = Math.min(b, hour + HOUR_MS);
    fn(hour, s, e);
    s = e;
  }
}

type Kind = { kind: 'busy' } | { kind: 'idle' } | { kind: 'down'; cause: DownCause } | { kind: 'gap' };

function add(parts: Parts, a: number, b: number, k: Kind): void {
  eachHour(a, b, (hour, s, e) => {
    const p = part(parts, hour);
    const ms = e - s;
    if (k.kind === 'busy') p.busyMs += ms;
    else if (k.kind === 'idle') p.idleMs += ms;
    else if (k.kind === 'gap') p.gapMs += ms;
    else p.downMs[k.cause] += ms;
  });
}

/** Trapezoid of a linear power from pa (at a) to pb (at b), split at hour boundaries with the power interpolated. */
function addEnergy(parts: Parts, a: number, pa: number, b: number, pb: number): void {
  const at = (t: number) => pa + ((pb - pa) * (t - a)) / (b - a);
  eachHour(a, b, (hour, s, e) => {
    const p = part(parts, hour);
    p.energyWh += ((at(s) + at(e)) / 2) * ((e - s) / HOUR_MS);
    p.poweredMs += e - s;
  });
}

/**
 * Accounts the next sample of a GPU whose last state is `prev` (null: its first sample): the interval
 * [prev.ts, sample.ts) goes into `parts`, and the new state is returned. A sample not after `prev.ts` is late: it
 * is counted and changes nothing (the interval it falls in was accounted already).
 */
export function advance(prev: GpuState | null, sample: GpuSample, bootSeq: number, config: GpuCostConfig, parts: Parts): GpuState {
  const hourOf = (t: number) => Math.floor(t / HOUR_MS) * HOUR_MS;
  if (prev && sample.ts <= prev.ts) {
    part(parts, hourOf(sample.ts)).lateSamples++;
    return prev;
  }
  part(parts, hourOf(sample.ts)).samples++;
  const fresh = newXids(prev && prev.bootSeq === bootSeq ? prev.xidCounts : {}, sample.xidCounts);
  if (fresh) part(parts, hourOf(sample.ts)).xids += fresh;

  let idleSince: number | null = null;
  if (prev) {
    const a = prev.ts;
    const b = sample.ts;
    const gap = b - a > config.maxGapMs;
    // The state a sample shows holds until the next sample: the earlier sample's down signal (or its Xid's hold)
    // names the interval; a GPU that was down when it went silent stays down through the gap.
    let t = a;
    if (prev.signal) {
      add(parts, a, b, { kind: 'down', cause: prev.signal });
      t = b;
    } else if (prev.xidDownUntil !== null && prev.xidDownUntil > a) {
      t = Math.min(b, prev.xidDownUntil);
      add(parts, a, t, { kind: 'down', cause: 'xid' });
    }
    if (t < b) {
      if (gap) {
        add(parts, t, b, { kind: 'gap' });
        part(parts, hourOf(t)).gaps++;
      } else if (prev.load === 'idle' && sample.load !== 'busy') {
        // Idle for the whole interval: idle at its start and no sign of work at its end.
        add(parts, t, b, { kind: 'idle' });
        idleSince = prev.idleSince ?? t;
      } else {
        add(parts, t, b, { kind: 'busy' });
      }
    }
    if (!gap && prev.powerW !== null && sample.powerW !== null) addEnergy(parts, a, prev.powerW, b, sample.powerW);
  }
  const holdFrom = fresh ? sample.ts + config.xidDowntimeMs : null;
  const carried = prev && prev.xidDownUntil !== null && prev.xidDownUntil > sample.ts ? prev.xidDownUntil : null;
  return {
    ts: sample.ts,
    bootSeq,
    load: sample.load,
    signal: sample.signal,
    powerW: sample.powerW,
    xidDownUntil: holdFrom !== null || carried !== null ? Math.max(holdFrom ?? 0, carried ?? 0) : null,
    idleSince,
    xidCounts: sample.xidCounts,
    index: sample.index ?? prev?.index ?? null,
    memoryTotalBytes: sample.memoryTotalBytes ?? prev?.memoryTotalBytes ?? null,
  };
}
