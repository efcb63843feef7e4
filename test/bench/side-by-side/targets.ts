/**
 * Issue #13's target table, evaluated on the figures of one side-by-side run: one row per target with the
 * Forewarn figure, collectd's and node_exporter's where they apply, the ratio and PASS / MISS (or SKIP with the
 * reason when a peer or an interval was not run). Pure: unit-tested without processes.
 */
import { median, round } from '../bench-harness.js';

/** One process's figures for one window. */
export interface WindowFigures {
  /** utime + stime (+ children), /proc/<pid>/stat: whole 10 ms ticks. */
  cpuMsPerS: number;
  /**
   * The same at ns resolution: the live threads' schedstat plus reaped children (bench-harness processTreeSchedMs).
   * The figure the CPU targets are judged on; blind only to threads that exited.
   */
  cpuSchedMsPerS: number;
  seconds: number;
  rssKiB: number;
  writeBytesPerMin: number;
  /** Growth of the files in the data directory (database, WAL, shm), bytes per minute. */
  dataDirGrowthBytesPerMin: number;
  /** Bytes of the records themselves that the subscriber received, per minute (all streams). */
  recordBytesPerMin: number;
  payloadBytesPerMin: number;
  readings: number;
  values: number;
  /** Bytes the process sent to the broker (the counting proxy, client → broker), per reading. */
  wireBytesPerReading: number;
  wireBytesPerValue: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

/** One process at one interval: its windows, and what is measured once per run. */
export interface SubjectFigures {
  windows: WindowFigures[];
  hwmKiB: number;
  /** Spawn to its first reading on the broker, ms; undefined for a process without a broker. */
  execToFirstMs?: number;
  duplicateRecords: number;
  currentViewMessages: number;
}

/** node-floor: scripts/node-floor.mjs, the least a Node process does for the host-only agent's reading. */
export type SubjectKey = 'host-only' | 'defaults' | 'collectd' | 'node_exporter' | 'node-floor';

/** Per interval in seconds, per subject; a subject that did not run is absent. */
export type RunFigures = Map<number, Partial<Record<SubjectKey, SubjectFigures>>>;

/** What is absent and why, e.g. `collectd: not installed (apt-get install collectd-core)`. */
export type Skipped = Partial<Record<SubjectKey, string>>;

export type TargetRow = Record<string, string | number>;

const MIB = 1024;
const med = (s: SubjectFigures | undefined, f: (w: WindowFigures) => number) => (s ? median(s.windows.map(f)) : Number.NaN);

/**
 * Σ a / Σ b over the same windows, for a rate `f` per second: at 5 s collectd uses well under 100 ms a minute, so a
 * per-window ratio would rest on a few ms (in ticks, on one or two, or on none).
 */
function totalRatio(a: SubjectFigures | undefined, b: SubjectFigures | undefined, f: (w: WindowFigures) => number): number {
  if (!a || !b) return Number.NaN;
  const n = Math.min(a.windows.length, b.windows.length);
  return total(a, f, n) / total(b, f, n);
}

const total = (s: SubjectFigures, f: (w: WindowFigures) => number, n = s.windows.length) => s.windows.slice(0, n).reduce((sum, w) => sum + f(w) * w.seconds, 0);

/**
 * Whether the ns figure holds all of a process's CPU: the tick count is the same runtime cut to whole 10 ms ticks,
 * so it can exceed it by less than a tick per window; more means threads exited in a window and took their time
 * with them (schedstat lists live threads only).
 */
function schedComplete(s: SubjectFigures | undefined): boolean {
  if (!s) return true;
  const sched = total(s, (w) => w.cpuSchedMsPerS);
  return total(s, (w) => w.cpuMsPerS) <= sched * 1.02 + 10 * s.windows.length;
}

const show = (x: number, suffix = '') => (Number.isFinite(x) ? `${round(x)}${suffix}` : '—');
const verdict = (ok: boolean | undefined) => (ok === undefined ? 'SKIP' : ok ? 'PASS' : 'MISS');

export function targetRows(figures: RunFigures, skipped: Skipped): TargetRow[] {
  const rows: TargetRow[] = [];
  const at = (s: number) => figures.get(s) ?? {};
  const why = (...keys: SubjectKey[]) =>
    keys
      .map((k) => skipped[k])
      .filter(Boolean)
      .join('; ');
  const notRun = (s: number) => (figures.has(s) ? '' : `the ${s} s interval was not run`);

  /** The node floor against collectd, and the host-only agent against the floor; in ticks where threads exited. */
  const nodeFloor = (s: number) => {
    const f = at(s);
    const precise = schedComplete(f['node-floor']) && schedComplete(f.collectd) && schedComplete(f['host-only']);
    const rate = (w: WindowFigures) => (precise ? w.cpuSchedMsPerS : w.cpuMsPerS);
    return { precise, ratio: totalRatio(f['node-floor'], f.collectd, rate), agent: totalRatio(f['host-only'], f['node-floor'], rate) };
  };

  const cpuRow = (profile: 'host-only' | 'defaults', s: number, limit: number | undefined) => {
    const f = at(s);
    const tickRatio = totalRatio(f[profile], f.collectd, (w) => w.cpuMsPerS);
    // Judged at ns resolution, unless a thread that exited took its time out of that count.
    const precise = schedComplete(f[profile]) && schedComplete(f.collectd);
    const ratio = precise ? totalRatio(f[profile], f.collectd, (w) => w.cpuSchedMsPerS) : tickRatio;
    const ok = limit === undefined || !Number.isFinite(ratio) ? undefined : ratio <= limit;
    // How much of a miss the runtime alone makes: the node floor's own ratio, from the same windows.
    const floor = ok === false && profile === 'host-only' ? nodeFloor(s).ratio : Number.NaN;
    rows.push({
      measure: `CPU ms/s, ${profile}, ${s} s interval`,
      forewarn: cpu(f[profile]),
      collectd: cpu(f.collectd),
      node_exporter: cpu(f.node_exporter),
      ratio: precise ? `${show(ratio, '×')} (ticks ${show(tickRatio, '×')})` : `${show(ratio, '×')} (ticks)`,
      target: limit === undefined ? 'reported' : `≤ ${limit}× collectd`,
      result: limit === undefined ? (Number.isFinite(ratio) ? 'reported' : 'SKIP') : verdict(ok),
      why: [
        !Number.isFinite(ratio) ? notRun(s) || why(profile, 'collectd') : '',
        Number.isFinite(ratio) && !precise ? 'threads exited during a window, so schedstat misses their time: judged on whole 10 ms ticks' : '',
        Number.isFinite(floor) ? `the node floor alone took ${show(floor, '×')} collectd in the same windows` : '',
      ]
        .filter(Boolean)
        .join('; '),
    });
  };
  const cpu = (x: SubjectFigures | undefined) => `${show(med(x, (w) => w.cpuSchedMsPerS))} (ticks ${show(med(x, (w) => w.cpuMsPerS))})`;
  cpuRow('host-only', 1, 1.5);
  cpuRow('host-only', 5, 2);
  cpuRow('defaults', 1, undefined);
  cpuRow('defaults', 5, 3);

  // What Node, V8, better-sqlite3 and mqtt.js cost by themselves for the same reading: reported, with the host-only
  // agent's figure over it (what the agent's own code adds).
  for (const s of [1, 5]) {
    const f = at(s);
    const { precise, ratio, agent } = nodeFloor(s);
    rows.push({
      measure: `CPU ms/s, node floor (scripts/node-floor.mjs: the host-only reading's reads, commit and publish, nothing else), ${s} s interval`,
      forewarn: cpu(f['node-floor']),
      collectd: cpu(f.collectd),
      node_exporter: '—',
      ratio: `${show(ratio, '×')} collectd; host-only ${show(agent, '×')} the floor${precise ? '' : ' (ticks)'}`,
      target: 'reported',
      result: f['node-floor'] ? 'reported' : 'SKIP',
      why: f['node-floor'] ? '' : notRun(s) || why('node-floor'),
    });
  }

  const rssRow = (profile: 'host-only' | 'defaults', label: string, limitMiB: number) => {
    // The worst interval: the target holds at both.
    const medians = [...figures.values()].map((f) => med(f[profile], (w) => w.rssKiB) / MIB).filter(Number.isFinite);
    const hwm = [...figures.values()].map((f) => (f[profile]?.hwmKiB ?? Number.NaN) / MIB).filter(Number.isFinite);
    const rss = medians.length ? Math.max(...medians) : Number.NaN;
    rows.push({
      measure: `RSS MiB, ${label} (VmRSS median; VmHWM)`,
      forewarn: `${show(rss)}; ${show(hwm.length ? Math.max(...hwm) : Number.NaN)}`,
      collectd: show(Math.max(...[...figures.values()].map((f) => med(f.collectd, (w) => w.rssKiB) / MIB).filter(Number.isFinite))),
      node_exporter: show(Math.max(...[...figures.values()].map((f) => med(f.node_exporter, (w) => w.rssKiB) / MIB).filter(Number.isFinite))),
      ratio: '',
      target: `≤ ${limitMiB} MiB`,
      result: verdict(Number.isFinite(rss) ? rss <= limitMiB : undefined),
      why: Number.isFinite(rss) ? '' : why(profile),
    });
  };
  rssRow('host-only', 'no model bound (host-only)', 64);
  rssRow('defaults', 'defaults (two models bound, anomaly detection on)', 96);

  const storageRow = (profile: 'host-only' | 'defaults', s: number, limit: number | undefined) => {
    const f = at(s)[profile];
    const ratio = med(f, (w) => w.writeBytesPerMin / w.recordBytesPerMin);
    const writes = med(f, (w) => w.writeBytesPerMin);
    rows.push({
      measure: `storage writes per min, ${profile}, ${s} s (write_bytes; data dir growth; records' bytes)`,
      forewarn: `${show(writes / 1e6, ' MB')}; ${show(med(f, (w) => w.dataDirGrowthBytesPerMin) / 1e6, ' MB')}; ${show(med(f, (w) => w.recordBytesPerMin) / 1e3, ' kB')}`,
      collectd: show(med(at(s).collectd, (w) => w.writeBytesPerMin) / 1e6, ' MB'),
      node_exporter: show(med(at(s).node_exporter, (w) => w.writeBytesPerMin) / 1e6, ' MB'),
      ratio: `${show(ratio, '×')} the records; ${show((writes * 1440) / 1e9, ' GB/day')}`,
      target: limit === undefined ? 'reported' : `≤ ${limit}× the records, GB/day reported`,
      result: limit === undefined ? (f ? 'reported' : 'SKIP') : verdict(Number.isFinite(ratio) ? ratio <= limit : undefined),
      why: f ? '' : notRun(s) || why(profile),
    });
  };
  storageRow('host-only', 1, 10);
  storageRow('host-only', 5, undefined);
  storageRow('defaults', 1, undefined);
  storageRow('defaults', 5, undefined);

  const latencyRow = (profile: 'host-only' | 'defaults', s: number, limitMs: number | undefined) => {
    const f = at(s);
    const p99 = med(f[profile], (w) => w.latencyP99Ms);
    rows.push({
      measure: `reading → subscriber latency p50 / p99 ms, ${profile}, ${s} s`,
      forewarn: `${show(med(f[profile], (w) => w.latencyP50Ms))} / ${show(p99)}`,
      collectd: `${show(med(f.collectd, (w) => w.latencyP50Ms))} / ${show(med(f.collectd, (w) => w.latencyP99Ms))}`,
      node_exporter: '—',
      ratio: '',
      target: limitMs === undefined ? 'reported' : `p99 ≤ ${limitMs} ms`,
      result: limitMs === undefined ? (Number.isFinite(p99) ? 'reported' : 'SKIP') : verdict(Number.isFinite(p99) ? p99 <= limitMs : undefined),
      why: Number.isFinite(p99) ? '' : notRun(s) || why(profile),
    });
  };
  latencyRow('host-only', 1, 250);
  latencyRow('defaults', 1, undefined);

  for (const profile of ['host-only', 'defaults'] as const) {
    for (const s of figures.keys()) {
      const ms = at(s)[profile]?.execToFirstMs ?? Number.NaN;
      rows.push({
        measure: `exec → first telemetry on the broker, s, ${profile}, ${s} s interval`,
        forewarn: show(ms / 1000),
        collectd: show((at(s).collectd?.execToFirstMs ?? Number.NaN) / 1000),
        node_exporter: '—',
        ratio: '',
        target: '≤ 1 s',
        result: verdict(Number.isFinite(ms) ? ms <= 1000 : undefined),
        why: Number.isFinite(ms) ? '' : why(profile),
      });
    }
  }

  for (const profile of ['host-only', 'defaults'] as const) {
    for (const s of figures.keys()) {
      const f = at(s)[profile];
      const c = at(s).collectd;
      const twice = f ? f.duplicateRecords + f.currentViewMessages : Number.NaN;
      rows.push({
        measure: `bytes on the wire per reading (per value); records published twice (duplicate seqs + risk/current), ${profile}, ${s} s`,
        forewarn: `${show(med(f, (w) => w.wireBytesPerReading))} (${show(med(f, (w) => w.wireBytesPerValue))}); ${f ? `${f.duplicateRecords} + ${f.currentViewMessages}` : '—'}`,
        collectd: `${show(med(c, (w) => w.wireBytesPerReading))} (${show(med(c, (w) => w.wireBytesPerValue))})`,
        node_exporter: '—',
        ratio: '',
        target: 'reported; none twice unless a retained current view is configured',
        result: verdict(Number.isFinite(twice) ? twice === 0 : undefined),
        why: f ? '' : why(profile),
      });
    }
  }
  return rows;
}
