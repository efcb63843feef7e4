/**
 * Light on the device (issue #13): the agent beside collectd and node_exporter, side by side in the same windows,
 * with a broker up on both sides.
 *
 * Per interval (1 s, then 5 s): one mosquitto on a free loopback port; the reference subscriber (`forewarn
 * subscribe`, acknowledging as the centre does); a measuring subscriber in this process (side-by-side/probe.ts);
 * collectd with its `mqtt` plugin at QoS 1 and the read plugins that match the agent's host sampler; the agent
 * twice, host telemetry only (no model bound) and on its defaults (the simulated machine scored); the node floor
 * (scripts/node-floor.mjs: the host-only reading's reads, commit and QoS 1 publish in a bare Node process, so the
 * rows say how much of the agent's CPU the runtime alone takes); node_exporter with the matching collectors,
 * scraped by this process at the interval. The bytes each publisher sent to the broker
 * are the kernel's count for its TCP connection (`ss`), so they are counted, not estimated, and nothing sits between.
 * The processes are started one after another, each timed from its spawn to its first reading on the broker and
 * each a share of the interval after the one before (untilSlot), then all run together: a warm-up, then
 * FOREWARN_BENCH_WINDOWS windows of FOREWARN_BENCH_WINDOW_S seconds in which every process is measured at the same
 * time. Figures are medians over the windows.
 *
 * CPU: the run time of the live threads of the process and its descendants (schedstat, ns) plus reaped children's,
 * judged; utime + stime + cutime + cstime (/proc/<pid>/stat, whole 10 ms ticks) beside it.
 * Memory: VmRSS every second (median per window), VmHWM at the end. Storage: /proc/<pid>/io write_bytes of the
 * process tree (reaped children's I/O is added to the parent's), and the growth of the agent's data directory.
 *
 * Env: FOREWARN_BENCH_WINDOW_S (60), FOREWARN_BENCH_WINDOWS (3), FOREWARN_BENCH_WARMUP_S (15),
 * FOREWARN_BENCH_INTERVALS (`1,5`). About 7.5 minutes with the defaults.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { freePort, mosquittoBinary, startMosquitto, waitForPort, type Broker } from '../helpers/mosquitto.js';
import {
  type BenchReport,
  formatReport,
  median,
  percentile,
  processMemoryKiB,
  processTreeCpuMs,
  processTreePids,
  processTreeSchedMs,
  processWriteBytes,
  round,
} from './bench-harness.js';
import {
  CLI,
  COLLECTD,
  COLLECTD_MQTT_PLUGIN,
  ANOMALY_WARMUP_SAMPLES,
  DAEMON_NODE_FLAGS,
  NODE_EXPORTER,
  NODE_FLOOR,
  agentConfig,
  bytesSentTo,
  collectdConfig,
  isRunning,
  nodeExporterArgs,
  nodeFloorArgs,
  startProcess,
  stopAll,
  stopProcess,
  unlessExited,
  warmupSeconds,
  type AgentProfile,
  type Started,
} from './side-by-side/peers.js';
import { COLLECTD_PREFIX, phaseWithin, startProbe, type Probe } from './side-by-side/probe.js';
import { targetRows, type RunFigures, type Skipped, type SubjectFigures, type SubjectKey, type WindowFigures } from './side-by-side/targets.js';

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: expected a positive number (got ${JSON.stringify(raw)})`);
  return n;
}

const WINDOW_S = envNumber('FOREWARN_BENCH_WINDOW_S', 60);
const WINDOWS = Math.round(envNumber('FOREWARN_BENCH_WINDOWS', 3));
const WARMUP_S = envNumber('FOREWARN_BENCH_WARMUP_S', 15);
const INTERVALS = (process.env.FOREWARN_BENCH_INTERVALS || '1,5').split(',').map((s) => envNumberFrom('FOREWARN_BENCH_INTERVALS', s));
const FIRST_READING_TIMEOUT_MS = 30_000;

function envNumberFrom(name: string, s: string): number {
  const n = Number(s.trim());
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: expected whole seconds separated by commas (got ${JSON.stringify(s)})`);
  return n;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

function dirBytes(dir: string): number {
  let total = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    try {
      total += e.isDirectory() ? dirBytes(p) : statSync(p).size;
    } catch {
      // Removed meanwhile (a WAL checkpoint, a temp file).
    }
  }
  return total;
}

function treeWriteBytes(pids: number[]): number {
  let total = 0;
  for (const p of pids) {
    try {
      total += processWriteBytes(p);
    } catch {
      // Exited meanwhile.
    }
  }
  return total;
}

/** A measured process: what it is, and where its readings and bytes are counted. */
interface Subject {
  key: SubjectKey;
  proc: Started;
  /** Its publisher name in the probe (agent id, or collectd); none for node_exporter. */
  publisher?: string;
  dataDir?: string;
  execToFirstMs?: number;
  /** node_exporter: bytes scraped and scrapes, counted by the scraper. */
  scraped?: { bytes: number; scrapes: number; failures: number };
}

interface Snapshot {
  t: number;
  cpuMs: number;
  schedMs: number;
  writeBytes: number;
  dataDirBytes: number;
  wireUp: number;
}

function snapshot(subjects: Subject[], brokerPort: number): Snapshot[] {
  const sent = bytesSentTo(brokerPort);
  return subjects.map((s) => {
    // One scan of /proc per process: both CPU figures (and schedComplete's comparison of them) over the same tree.
    const pids = processTreePids(s.proc.pid);
    return {
      t: performance.now(),
      cpuMs: processTreeCpuMs(s.proc.pid, pids),
      schedMs: processTreeSchedMs(s.proc.pid, pids),
      writeBytes: treeWriteBytes(pids),
      dataDirBytes: s.dataDir ? dirBytes(s.dataDir) : 0,
      wireUp: sent.get(s.proc.pid) ?? Number.NaN,
    };
  });
}

function windowFigures(s: Subject, a: Snapshot, b: Snapshot, rss: number[], probe: Probe, arrivals: Map<SubjectKey, number[]>): WindowFigures {
  const seconds = (b.t - a.t) / 1000;
  const perMin = 60 / seconds;
  const c = s.publisher ? probe.take(s.publisher) : undefined;
  if (c) arrivals.set(s.key, [...(arrivals.get(s.key) ?? []), ...c.arrivedAtMs]);
  const lat = [...(c?.latenciesMs ?? [])].sort((x, y) => x - y);
  // A reconnection in the window starts a new count: no figure rather than a wrong one.
  const wire = b.wireUp >= a.wireUp ? b.wireUp - a.wireUp : Number.NaN;
  return {
    cpuMsPerS: (b.cpuMs - a.cpuMs) / seconds,
    cpuSchedMsPerS: (b.schedMs - a.schedMs) / seconds,
    seconds,
    rssKiB: median(rss),
    writeBytesPerMin: (b.writeBytes - a.writeBytes) * perMin,
    dataDirGrowthBytesPerMin: (b.dataDirBytes - a.dataDirBytes) * perMin,
    recordBytesPerMin: (c?.recordBytes ?? Number.NaN) * perMin,
    payloadBytesPerMin: (c?.payloadBytes ?? Number.NaN) * perMin,
    readings: c?.readings ?? Number.NaN,
    values: c?.values ?? Number.NaN,
    wireBytesPerReading: c ? wire / c.readings : Number.NaN,
    wireBytesPerValue: c ? wire / c.values : Number.NaN,
    latencyP50Ms: percentile(lat, 50),
    latencyP99Ms: percentile(lat, 99),
  };
}

/** Waits until mosquitto has logged the client's connection (log_type notice: "… as CLIENT_ID (…"). */
async function waitForClient(broker: Broker, clientId: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!broker.log().includes(` as ${clientId} `)) {
    if (Date.now() > deadline) throw new Error(`${clientId} did not connect to the broker within ${timeoutMs} ms`);
    await sleep(50);
  }
}

function checkRunning(subjects: Subject[]): void {
  for (const s of subjects) {
    if (!isRunning(s.proc)) throw new Error(`${s.key} exited early (${s.proc.proc.exitCode ?? s.proc.proc.signalCode}): ${s.proc.output().slice(-2000)}`);
  }
}

/**
 * Scrapes node_exporter every interval, as a Prometheus server would, until stopped: at `firstAt` (epoch ms) and
 * every interval after it, so that the scrape keeps its own place in the interval and does not drift into the others'.
 */
function startScraper(url: string, intervalMs: number, firstAt: number, counts: NonNullable<Subject['scraped']>): () => Promise<void> {
  let stopped = false;
  let wake: (() => void) | undefined;
  const loop = (async () => {
    for (let next = firstAt; !stopped; next += intervalMs) {
      if (next < Date.now()) next += Math.ceil((Date.now() - next) / intervalMs) * intervalMs;
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, next - Date.now());
      });
      if (stopped) break;
      try {
        const res = await fetch(url);
        counts.bytes += (await res.arrayBuffer()).byteLength;
        counts.scrapes++;
      } catch {
        counts.failures++;
      }
    }
  })();
  return async () => {
    stopped = true;
    wake?.();
    await loop;
  };
}

/**
 * The measured processes each get their own place in the interval. Started together (or at whatever moment the
 * previous one happened to be ready), two of them can tick at the same instant in every interval and contend for
 * the 2 CPUs each time, which moved the figures of whole runs (docs/benchmarks.md; scripts/cpu-ab.mjs staggers its
 * agents for the same reason). Process k of n is started k/n of an interval after the first: the agent's timers run
 * on a grid that starts with the process (agent/src/core/grid.ts), collectd's from its start too, and the scraper
 * is timed by this process. Where each then really published is measured (phaseWithin) and printed.
 */
async function untilSlot(firstAt: number, slot: number, slots: number, intervalMs: number): Promise<number> {
  let at = firstAt + (slot * intervalMs) / slots;
  while (at < Date.now() + 20) at += intervalMs; // the next such instant, a moment ahead
  await sleep(at - Date.now());
  return at;
}

interface PhaseResult {
  figures: Partial<Record<SubjectKey, SubjectFigures>>;
  loads: string[];
  notes: string[];
}

async function phase(intervalS: number, skipped: Skipped): Promise<PhaseResult> {
  const dir = mkdtempSync(path.join(tmpdir(), `fw-bench-side-${intervalS}s-`));
  const subjects: Subject[] = [];
  const notes: string[] = [];
  let broker: Broker | undefined;
  let probe: Probe | undefined;
  let stopScraper: (() => Promise<void>) | undefined;
  let scrapeAt: number | undefined;
  let floorAt: number | undefined;
  try {
    broker = await startMosquitto();
    startProcess('forewarn subscribe', process.execPath, [
      CLI,
      'subscribe',
      '--url',
      broker.url,
      '--db',
      path.join(dir, 'central.db'),
      '--client-id',
      'bench-centre',
    ]);
    await waitForClient(broker, 'bench-centre');
    probe = await startProbe(broker.url);

    // One at a time, so that each start is timed on its own, and each in its own place in the interval (untilSlot).
    const intervalMs = intervalS * 1000;
    const slots = (skipped.collectd ? 0 : 1) + 2 + (skipped['node-floor'] ? 0 : 1) + (skipped.node_exporter ? 0 : 1);
    let slot = 0;
    let firstAt = Date.now();
    const nextSlot = async () => (slot++ === 0 ? (firstAt = Date.now()) : untilSlot(firstAt, slot - 1, slots, intervalMs));
    if (!skipped.collectd) {
      await nextSlot();
      const conf = path.join(dir, 'collectd.conf');
      writeFileSync(conf, collectdConfig({ dir, intervalS, brokerPort: broker.port, hostname: 'bench' }));
      const proc = startProcess('collectd', COLLECTD!, ['-f', '-C', conf]);
      const s: Subject = { key: 'collectd', proc, publisher: COLLECTD_PREFIX };
      subjects.push(s);
      s.execToFirstMs =
        (await unlessExited(proc, probe.firstReading(COLLECTD_PREFIX, FIRST_READING_TIMEOUT_MS)).catch((e: Error) => fail(e, proc))) - proc.spawnedAt;
    }
    for (const profile of ['host-only', 'defaults'] as AgentProfile[]) {
      const id = `bench-${profile}`;
      const agentDir = path.join(dir, profile);
      const config = agentConfig(profile, { id, dir: agentDir, brokerUrl: broker.url, intervalMs: intervalS * 1000 });
      const file = path.join(dir, `${profile}.yaml`);
      writeFileSync(file, stringify(config));
      await nextSlot();
      const proc = startProcess(`agent ${profile}`, process.execPath, [...DAEMON_NODE_FLAGS, CLI, 'run', '--config', file]);
      const s: Subject = { key: profile, proc, publisher: id, dataDir: path.join(agentDir, 'data') };
      subjects.push(s);
      s.execToFirstMs = (await unlessExited(proc, probe.firstReading(id, FIRST_READING_TIMEOUT_MS)).catch((e: Error) => fail(e, proc))) - proc.spawnedAt;
    }
    if (!skipped['node-floor']) {
      floorAt = await nextSlot();
      const floorDir = path.join(dir, 'node-floor');
      mkdirSync(floorDir);
      const proc = startProcess('node floor', process.execPath, nodeFloorArgs({ brokerUrl: broker.url, dir: floorDir, intervalMs, gridAt: floorAt }));
      await waitForClient(broker, `floor-${proc.pid}`);
      subjects.push({ key: 'node-floor', proc });
    }
    if (!skipped.node_exporter) {
      const port = await freePort();
      const proc = startProcess('node_exporter', NODE_EXPORTER!, nodeExporterArgs(port));
      await waitForPort(port);
      const s: Subject = { key: 'node_exporter', proc, scraped: { bytes: 0, scrapes: 0, failures: 0 } };
      subjects.push(s);
      scrapeAt = await nextSlot();
      stopScraper = startScraper(`http://127.0.0.1:${port}/metrics`, intervalMs, scrapeAt, s.scraped!);
    }

    await sleep(warmupSeconds(WARMUP_S, intervalS) * 1000);
    checkRunning(subjects);
    for (const s of subjects) if (s.publisher) probe.take(s.publisher);

    const windows = new Map<SubjectKey, WindowFigures[]>(subjects.map((s) => [s.key, []]));
    const arrivals = new Map<SubjectKey, number[]>();
    const loads: string[] = [];
    for (let w = 0; w < WINDOWS; w++) {
      const load0 = loadavg();
      const start = snapshot(subjects, broker.port);
      const rss = subjects.map(() => [] as number[]);
      const end = performance.now() + WINDOW_S * 1000;
      while (performance.now() < end) {
        await sleep(Math.min(1000, Math.max(0, end - performance.now())));
        subjects.forEach((s, i) => rss[i]!.push(processMemoryKiB(s.proc.pid).rssKiB));
      }
      checkRunning(subjects);
      const stop = snapshot(subjects, broker.port);
      subjects.forEach((s, i) => windows.get(s.key)!.push(windowFigures(s, start[i]!, stop[i]!, rss[i]!, probe!, arrivals)));
      loads.push(`${load0} → ${loadavg()}`);
    }

    // node_exporter works when it is scraped, and the scrapes keep the phase they were started on; the node floor is
    // not probed, and works on the grid it was given.
    const given: Partial<Record<SubjectKey, number | undefined>> = { node_exporter: scrapeAt, 'node-floor': floorAt };
    const places = subjects.map((s) => {
      const at = given[s.key];
      const p = phaseWithin(at !== undefined ? [at] : (arrivals.get(s.key) ?? []), intervalMs);
      return p ? `${s.key} ${round(p.phaseMs / 1000)} s (± ${round(p.spreadMs)} ms)` : `${s.key} —`;
    });
    notes.push(
      `${intervalS} s: where in the interval each process published (its readings' arrival at the probe; node_exporter: the scrape; node floor: its grid), in seconds into the interval counted from the epoch: ${places.join(', ')}.`,
    );

    const figures: Partial<Record<SubjectKey, SubjectFigures>> = {};
    for (const s of subjects) {
      const run = s.publisher ? probe.run(s.publisher) : undefined;
      figures[s.key] = {
        windows: windows.get(s.key)!,
        hwmKiB: processMemoryKiB(s.proc.pid).hwmKiB,
        ...(s.execToFirstMs !== undefined ? { execToFirstMs: s.execToFirstMs } : {}),
        duplicateRecords: run?.duplicateRecords ?? 0,
        currentViewMessages: run?.currentViewMessages ?? 0,
      };
      if (run?.undecodable) notes.push(`${intervalS} s: ${run.undecodable} messages from ${s.key} could not be decoded.`);
      if (s.scraped)
        notes.push(
          `${intervalS} s: node_exporter scraped ${s.scraped.scrapes} times (${s.scraped.failures} failed), ${round(s.scraped.bytes / Math.max(1, s.scraped.scrapes) / 1024)} KiB per scrape.`,
        );
    }
    return { figures, loads, notes };
  } finally {
    await stopScraper?.();
    // The agents first, so that they say goodbye to a broker that is still there.
    for (const s of [...subjects].reverse()) if (s.key !== 'collectd') await stopProcess(s.proc);
    await stopAll();
    await probe?.stop().catch(() => undefined);
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function fail(err: Error, proc: Started): never {
  throw new Error(`${err.message}; ${proc.name} ${isRunning(proc) ? 'is running' : 'exited'}: ${proc.output().slice(-2000)}`);
}

function version(file: string, args: string[], pattern: RegExp): string {
  try {
    const out = execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return pattern.exec(out)?.[1] ?? 'unknown';
  } catch (err) {
    const out = String((err as { stdout?: string }).stdout ?? '') + String((err as { stderr?: string }).stderr ?? '');
    return pattern.exec(out)?.[1] ?? 'unknown';
  }
}

/** Per process and interval: the figures behind the target table. */
function detailRows(figures: RunFigures): Array<Record<string, string | number>> {
  const rows: Array<Record<string, string | number>> = [];
  for (const [s, bySubject] of figures) {
    for (const [key, f] of Object.entries(bySubject) as Array<[SubjectKey, SubjectFigures]>) {
      const m = (g: (w: WindowFigures) => number) => round(median(f.windows.map(g)));
      const cpu = f.windows.map((w) => w.cpuSchedMsPerS);
      rows.push({
        process: key,
        interval_s: s,
        cpu_ms_per_s: m((w) => w.cpuSchedMsPerS),
        cpu_range: `${round(Math.min(...cpu))}–${round(Math.max(...cpu))}`,
        cpu_ticks_ms_per_s: m((w) => w.cpuMsPerS),
        rss_mib: round(median(f.windows.map((w) => w.rssKiB)) / 1024),
        hwm_mib: round(f.hwmKiB / 1024),
        write_mb_per_min: round(median(f.windows.map((w) => w.writeBytesPerMin)) / 1e6),
        data_dir_mb_per_min: round(median(f.windows.map((w) => w.dataDirGrowthBytesPerMin)) / 1e6),
        records_kb_per_min: round(median(f.windows.map((w) => w.recordBytesPerMin)) / 1e3),
        payload_kb_per_min: round(median(f.windows.map((w) => w.payloadBytesPerMin)) / 1e3),
        readings_per_window: m((w) => w.readings),
        values_per_reading: m((w) => w.values / w.readings),
        wire_b_per_reading: m((w) => w.wireBytesPerReading),
        wire_b_per_value: m((w) => w.wireBytesPerValue),
        latency_p50_ms: m((w) => w.latencyP50Ms),
        latency_p99_ms: m((w) => w.latencyP99Ms),
        exec_to_first_s: f.execToFirstMs === undefined ? '—' : round(f.execToFirstMs / 1000),
        twice: `${f.duplicateRecords} + ${f.currentViewMessages}`,
      });
    }
  }
  return rows;
}

export async function run(): Promise<BenchReport[]> {
  const skipped: Skipped = {};
  if (!COLLECTD) skipped.collectd = 'collectd is not installed (apt-get install collectd-core)';
  else if (!COLLECTD_MQTT_PLUGIN) skipped.collectd = "collectd's mqtt plugin (mqtt.so) is not installed (Debian's collectd-core has it)";
  if (!NODE_FLOOR) skipped['node-floor'] = 'scripts/node-floor.mjs is not in this checkout';
  if (!NODE_EXPORTER) skipped.node_exporter = 'node_exporter is not installed (apt-get install prometheus-node-exporter)';
  try {
    mosquittoBinary();
  } catch (err) {
    const reason = `mosquitto is missing: ${(err as Error).message}`;
    return [{ name: 'Light on the device: Forewarn beside collectd, broker up on both sides (issue #13)', rows: [], notes: [`Skipped: ${reason}`] }];
  }

  const figures: RunFigures = new Map();
  const notes: string[] = [];
  const loads: string[] = [];
  try {
    for (const s of INTERVALS) {
      const r = await phase(s, skipped);
      figures.set(s, r.figures);
      notes.push(...r.notes);
      loads.push(`${s} s: ${r.loads.join('; ')}`);
    }
  } finally {
    await stopAll();
  }
  const versions = [
    `mosquitto ${version(mosquittoBinary(), ['-h'], /mosquitto version (\S+)/)}`,
    COLLECTD ? `collectd ${version(COLLECTD, ['-h'], /collectd (\d+(?:\.\d+)*)/)}` : '',
    NODE_EXPORTER ? `node_exporter ${version(NODE_EXPORTER, ['--version'], /version ([\d.]+)/)}` : '',
    `Node ${process.version}`,
  ].filter(Boolean);
  const common = [
    `${WINDOWS} windows of ${WINDOW_S} s per interval after a warm-up of ${INTERVALS.map((i) => `${warmupSeconds(WARMUP_S, i)} s at ${i} s`).join(', ')} (at least FOREWARN_BENCH_WARMUP_S, and past the anomaly baseline of ${ANOMALY_WARMUP_SAMPLES} readings: each reading is then scored and its anomaly score committed, as in an agent that has run for a while) (FOREWARN_BENCH_WINDOWS, FOREWARN_BENCH_WINDOW_S, FOREWARN_BENCH_WARMUP_S; intervals ${INTERVALS.join(', ')} s: FOREWARN_BENCH_INTERVALS). Every figure is a median over the windows; CPU ratios are totals over the same windows (Σ agent / Σ collectd). The processes are started a share of the interval apart, each in its own place in it.`,
    `Load average (1, 5, 15 min) at the start → end of each window: ${loads.join(' | ')}. The machine has ${readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm)?.length ?? '?'} CPUs; other work on it inflates CPU and latency on both sides.`,
    `${versions.join(', ')}.`,
    ...Object.entries(skipped).map(([k, why]) => `${k} skipped: ${why}.`),
  ];
  return [
    {
      name: 'Light on the device: targets of issue #13 (Forewarn beside collectd → MQTT and node_exporter)',
      rows: targetRows(figures, skipped),
      notes: [
        ...common,
        'host-only: host telemetry alone (simulator, GPU, SMART, EDAC, PCIe AER, IPMI off) and no model bound (scoring.bindings: []); defaults: as shipped, the simulated machine scored, every source at the interval (the simulated machine one process per interval; at 1 s the defaults exactly). Both with /metrics on (unscraped) and central acknowledgement by `forewarn subscribe`.',
        "CPU: the process tree's live threads' run time (/proc/<pid>/task/<tid>/schedstat, ns) plus its reaped children's (cutime+cstime), judged; in brackets utime+stime+cutime+cstime (/proc/<pid>/stat), the same run time cut to whole 10 ms ticks (±0.17 ms/s in a 60 s window; at 5 s collectd uses a few ticks a minute). A thread that exits in a window takes its time out of the first count: the row then says so and is judged on the ticks. Storage: /proc/<pid>/io write_bytes of the tree; the bytes of the records are the JSON of each record the subscriber received (all streams). Latency: receive time at the subscriber − the reading's `ts` (collectd: its value list time).",
        'Records published twice: seqs that arrived again on the same stream, plus risk records republished on the retained risk/current/… topics.',
        ...notes,
      ],
    },
    {
      name: 'Side by side, per process and interval (medians over windows)',
      rows: detailRows(figures),
      notes: [
        "readings: telemetry records (agent), value lists (collectd); values: numeric metrics in them. wire bytes: TCP bytes the process sent to the broker (the kernel's tcpi_bytes_sent via `ss`: every MQTT packet, publishes of all streams, status, PUBACKs of acks, pings), per reading and per value.",
        'twice: duplicate seqs + risk/current messages over the whole phase.',
      ],
    },
  ];
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const report of await run()) process.stdout.write(`${formatReport(report)}\n\n`);
}
