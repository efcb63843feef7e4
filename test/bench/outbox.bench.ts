/**
 * Delivery: the SQLite outbox and its drain to MQTT (issue #3, requirement 9).
 *
 * - Ingest: RecordStore.append of realistic host telemetry in batches of 1, 10, 100 and 1000 records (one
 *   transaction each), synchronous=full and normal, on a real file; records/s, median of several runs.
 * - Drain: a backlog prefilled (untimed) and then drained by the agent's MqttSync to a fresh local mosquitto,
 *   timed from start() to the acknowledgement of the last record; records/s and MB/s of payload. Each drain runs
 *   in its own process (outbox-drain-child.ts) whose RSS is sampled every 100 ms: flat means the peak for the
 *   large backlog is about the peak for the small one.
 * - Wire: the same drain through a TCP proxy that counts the bytes client → broker, per record, plain and gzip.
 *
 * Every drain checks that the broker took everything: $SYS/broker/publish/messages/received against the messages
 * the agent published, and on the wire runs a subscriber that counts distinct seqs.
 *
 *   FOREWARN_BENCH_BACKLOG  the large backlog (default 1000000)
 *   FOREWARN_BENCH_DIR      where the databases go (default the OS temp dir)
 *   FOREWARN_BENCH_DRAIN_RUNS  runs per 100k drain case (default 5)
 *   FOREWARN_BENCH_CHILD_ARGS  node options for the drain processes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
 *
 * Run alone with `npx tsc -p tsconfig.json && node dist/test/bench/outbox.bench.js`.
 */
// First: the harness patches child_process (see bench-harness.ts).
import { type BenchReport, formatReport, round } from './bench-harness.js';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, statSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import mqtt from 'mqtt';
import { DB_FILE, RecordStore } from '../../agent/src/store/record-store.js';
import type { NewRecord } from '../../agent/src/store/outbox.js';
import { startMosquitto, type Broker } from '../helpers/mosquitto.js';
import { seededRandom } from '../helpers/seeded-random.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import type { DrainArgs, DrainResult } from './outbox-drain-child.js';

const BIG_BACKLOG = Number(process.env.FOREWARN_BENCH_BACKLOG ?? 1_000_000);
const SMALL_BACKLOG = Math.min(100_000, BIG_BACKLOG);
const DRAIN_RUNS = Number(process.env.FOREWARN_BENCH_DRAIN_RUNS ?? 5);
const INGEST_RUNS = 5;
const INGEST_BATCHES = [1, 10, 100, 1000];
/** Records per timed ingest run, by synchronous mode and batch size: each run takes a few hundred ms here. */
const INGEST_RECORDS: Record<'full' | 'normal', Record<number, number>> = {
  full: { 1: 300, 10: 3_000, 100: 20_000, 1000: 60_000 },
  normal: { 1: 5_000, 10: 20_000, 100: 60_000, 1000: 60_000 },
};
const PREFILL_BATCH = 5_000;
const MB = 1e6;
const MiB = 1024 * 1024;

/**
 * Host telemetry as HostSource commits it (`{ts, source, asset, metrics}`), with 12 of its metrics. Values walk
 * slowly like a real host's; the CPU percentages keep full double precision, as the sampler's ratios
 * do, the rates fewer digits (a real host record with all ~40 metrics is ~1.3 KB: see the notes).
 */
export function telemetryGenerator(seed = 1, asset = 'host'): (i: number) => NewRecord {
  const rnd = seededRandom(seed);
  const t0 = 1_790_000_000_000;
  let util = 35;
  let load = 1.2;
  let memUsed = 61;
  const memTotal = 16_663_998_464;
  const walk = (x: number, step: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x + (rnd() - 0.5) * step));
  return (i) => {
    util = walk(util, 8, 2, 98);
    load = walk(load, 0.1, 0, 8);
    memUsed = walk(memUsed, 0.4, 20, 95);
    const user = util * (0.7 + rnd() * 0.2);
    const iowait = rnd() * 3;
    const ts = t0 + i * 1000;
    return {
      stream: 'telemetry',
      ts,
      asset,
      payload: {
        ts,
        source: 'host',
        asset,
        metrics: {
          'cpu.utilization_pct': util,
          'cpu.user_pct': user,
          'cpu.system_pct': util - user,
          'cpu.iowait_pct': Math.round(iowait * 1000) / 1000,
          'load.1m': Math.round(load * 100) / 100,
          'load.5m': Math.round(load * 95) / 100,
          'memory.used_pct': Math.round(memUsed * 100) / 100,
          'memory.available_bytes': Math.round(memTotal * (1 - memUsed / 100)),
          'disk.vda.write_bytes_per_s': Math.round(rnd() * 4_000_000 * 10) / 10,
          'disk.vda.busy_pct': Math.round(rnd() * 12 * 100) / 100,
          'net.eth0.rx_bytes_per_s': Math.round(rnd() * 250_000 * 10) / 10,
          'temp.zone0.celsius': 40 + Math.round(util / 3),
        },
      },
    };
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : Number.NaN;
};

/** The file system of `dir`, from statfs's magic number. */
function fsType(dir: string): string {
  const names: Record<number, string> = {
    0xef53: 'ext4',
    0x01021994: 'tmpfs',
    0x794c7630: 'overlayfs',
    0x9123683e: 'btrfs',
    0x58465342: 'xfs',
    0x2fc12fc1: 'zfs',
    0x65735546: 'fuse',
    0x6969: 'nfs',
  };
  const t = statfsSync(dir).type;
  return names[t] ?? `statfs type 0x${t.toString(16)}`;
}

function baseDir(): string {
  const dir = process.env.FOREWARN_BENCH_DIR ?? tmpdir();
  mkdirSync(dir, { recursive: true });
  return mkdtempSync(path.join(dir, 'fw-bench-outbox-'));
}

// ---------------------------------------------------------------- ingest

/** Bytes this process has caused to be written to storage (/proc/self/io write_bytes), or NaN. */
function diskWriteBytes(): number {
  try {
    const m = /^write_bytes:\s+(\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

interface IngestResult {
  batch: number;
  /** Median over the runs, by wall clock. */
  recordsPerS: number;
  /** Median CPU time of this process per record (user + system): steadier than wall time on a shared machine. */
  cpuUsPerRecord: number;
  /** Bytes written to storage per record (WAL, checkpoints), over all runs. */
  diskBytesPerRecord: number;
}

function ingest(root: string, synchronous: 'full' | 'normal'): IngestResult[] {
  const dir = path.join(root, `ingest-${synchronous}`);
  const store = new RecordStore({ dir, synchronous });
  const gen = telemetryGenerator(7);
  let next = 0;
  const out: IngestResult[] = [];
  try {
    for (const batch of INGEST_BATCHES) {
      const count = INGEST_RECORDS[synchronous][batch]!;
      const rates: number[] = [];
      const cpus: number[] = [];
      let written = 0;
      for (let run = -1; run < INGEST_RUNS; run++) {
        // Generated outside the timing; append's JSON.stringify of each payload is timed, as in the agent.
        const batches: NewRecord[][] = [];
        for (let i = 0; i < count; i += batch) batches.push(Array.from({ length: Math.min(batch, count - i) }, () => gen(next++)));
        const io0 = diskWriteBytes();
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        for (const b of batches) store.append(b);
        const s = (performance.now() - t0) / 1000;
        const cpu = process.cpuUsage(cpu0);
        if (run < 0) continue; // warm-up
        rates.push(count / s);
        cpus.push((cpu.user + cpu.system) / count);
        written += diskWriteBytes() - io0;
      }
      out.push({ batch, recordsPerS: median(rates), cpuUsPerRecord: median(cpus), diskBytesPerRecord: written / (count * INGEST_RUNS) });
    }
  } finally {
    store.close();
  }
  return out;
}

// ---------------------------------------------------------------- prefill

interface Template {
  dir: string;
  records: number;
  /** Sum of the stored JSON lengths: the records' size before batching and compression. */
  jsonBytes: number;
}

function prefill(root: string, records: number): Template {
  const dir = path.join(root, `template-${records}`);
  const store = new RecordStore({ dir, synchronous: 'normal' });
  const gen = telemetryGenerator(42);
  let jsonBytes = 0;
  try {
    for (let i = 0; i < records; i += PREFILL_BATCH) {
      const batch = Array.from({ length: Math.min(PREFILL_BATCH, records - i) }, (_, k) => gen(i + k));
      for (const r of batch) jsonBytes += JSON.stringify(r.payload).length;
      store.append(batch);
    }
  } finally {
    store.close(); // checkpoints: the file alone is the whole database
  }
  return { dir, records, jsonBytes };
}

function copyTemplate(t: Template, root: string, name: string): string {
  const dir = path.join(root, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  copyFileSync(path.join(t.dir, DB_FILE), path.join(dir, DB_FILE));
  return dir;
}

// ---------------------------------------------------------------- drain

interface DrainCase {
  label: string;
  backlog: number;
  batchMaxRecords: number;
  compression: 'none' | 'gzip';
  proxy: boolean;
  /** A subscriber counts the distinct seqs the broker delivers. */
  verify: boolean;
}

interface DrainRun {
  c: DrainCase;
  r: DrainResult;
  brokerMessages: number;
  brokerCpuMs: number;
  wireUp: number | null;
  delivered: number | null;
}

/** CPU ms of the mosquitto process serving `broker` (found by its config file in /proc), or NaN. */
function brokerCpuMs(broker: Broker): number {
  const conf = path.join(broker.dir, 'mosquitto.conf');
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(conf)) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(f[11]) + Number(f[12])) * 10;
    } catch {
      // gone, or not ours to read
    }
  }
  return Number.NaN;
}

function runChild(args: DrainArgs): Promise<DrainResult> {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'outbox-drain-child.js');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(process.env.FOREWARN_BENCH_CHILD_ARGS?.split(' ').filter(Boolean) ?? []), script, JSON.stringify(args)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += String(d)));
    child.stderr.on('data', (d) => (err += String(d)));
    child.once('error', reject);
    child.once('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      try {
        if (code !== 0) throw new Error(`exit ${code}`);
        resolve(JSON.parse(line) as DrainResult);
      } catch (e) {
        reject(new Error(`drain child failed (${String(e)}): ${err.slice(-2000)}`));
      }
    });
  });
}

async function drain(c: DrainCase, t: Template, root: string, runIndex: number): Promise<DrainRun> {
  const dir = copyTemplate(t, root, `drain-${c.label.replace(/\W+/g, '-')}-${runIndex}`);
  const broker = await startMosquitto({ extraConfig: ['sys_interval 1'] });
  let proxy: TcpProxy | null = null;
  const clients: mqtt.MqttClient[] = [];
  try {
    if (c.proxy) proxy = await startTcpProxy(broker.port);
    // The broker's own count of PUBLISHes received, published every second under $SYS.
    let brokerMessages = 0;
    const sys = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'bench-sys' });
    clients.push(sys);
    sys.on('message', (topic, raw) => {
      if (topic === '$SYS/broker/publish/messages/received') brokerMessages = Number(String(raw));
    });
    await sys.subscribeAsync('$SYS/broker/publish/messages/received');
    const seqs = new Set<number>();
    if (c.verify) {
      const sub = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'bench-sub' });
      clients.push(sub);
      sub.on('message', (_topic, raw) => {
        const json = raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw;
        for (const r of (JSON.parse(String(json)) as { records: Array<{ seq: number }> }).records) seqs.add(r.seq);
      });
      await sub.subscribeAsync('forewarn/v1/+/telemetry', { qos: 1 });
    }
    const r = await runChild({
      dir,
      url: proxy ? proxy.url : broker.url,
      expect: c.backlog,
      batchMaxRecords: c.batchMaxRecords,
      compression: c.compression,
      sampleMs: 100,
    });
    if (!r.complete || r.pendingAfter !== 0) throw new Error(`${c.label}: drain incomplete (${r.records} acknowledged, ${r.pendingAfter} pending)`);
    // Every batch the agent counted as acknowledged (its status messages may or may not be in the broker's count).
    const want = r.stats.messagesSent;
    const deadline = Date.now() + 5000;
    while ((brokerMessages < want || (c.verify && seqs.size < c.backlog)) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    if (brokerMessages < want) throw new Error(`${c.label}: the broker counted ${brokerMessages} PUBLISHes, the agent ${want}`);
    if (c.verify && seqs.size !== c.backlog) throw new Error(`${c.label}: the subscriber got ${seqs.size} distinct records of ${c.backlog}`);
    return {
      c,
      r,
      brokerMessages,
      brokerCpuMs: brokerCpuMs(broker),
      wireUp: proxy ? proxy.bytesForwarded().up : null,
      delivered: c.verify ? seqs.size : null,
    };
  } finally {
    for (const cl of clients) await cl.endAsync().catch(() => undefined);
    await proxy?.stop();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- report

export async function run(): Promise<BenchReport> {
  const root = baseDir();
  const rows: BenchReport['rows'] = [];
  const notes: string[] = [];
  const started = performance.now();
  try {
    const sample = telemetryGenerator(42)(0);
    const recordJson = JSON.stringify(sample.payload).length;
    notes.push(
      `Records: host telemetry {ts, source:'host', asset, metrics:{12 metrics}}, ${recordJson} B of JSON each (seeded generator); databases on ${fsType(root)} (${root}).`,
    );

    // Ingest.
    for (const sync of ['full', 'normal'] as const) {
      for (const r of ingest(root, sync)) {
        rows.push({
          case: `ingest, synchronous=${sync}`,
          batch: r.batch,
          records_per_s: Math.round(r.recordsPerS),
          mb_per_s: round((r.recordsPerS * recordJson) / MB),
          cpu_us_per_record: round(r.cpuUsPerRecord),
          disk_write_b_per_record: round(r.diskBytesPerRecord),
          target: r.batch === 1000 ? '≥ 200000 rec/s' : '',
          met: r.batch === 1000 ? (r.recordsPerS >= 200_000 ? 'yes' : 'no') : '',
        });
      }
    }
    notes.push(
      `Ingest: RecordStore.append, one transaction per batch, median of ${INGEST_RUNS} runs after a warm-up run; MB/s of record JSON; the target is judged on batches of 1000 (the smaller batches are bound by one commit each). cpu_us_per_record is this process's CPU per record (JSON.stringify included); disk_write_b_per_record the bytes sent to storage (/proc/self/io: WAL, checkpoints).`,
    );

    // Drains.
    let t = performance.now();
    const small = prefill(root, SMALL_BACKLOG);
    const smallPrefillS = (performance.now() - t) / 1000;
    t = performance.now();
    const big = BIG_BACKLOG > SMALL_BACKLOG ? prefill(root, BIG_BACKLOG) : small;
    const bigPrefillS = (performance.now() - t) / 1000;
    const dbBytes = statSync(path.join(big.dir, DB_FILE)).size;
    notes.push(
      `Prefill (untimed in the drain): ${SMALL_BACKLOG} records in ${round(smallPrefillS)} s${big === small ? '' : `, ${BIG_BACKLOG} in ${round(bigPrefillS)} s`} (appends of ${PREFILL_BATCH}, synchronous=normal); the ${BIG_BACKLOG}-record database is ${round(dbBytes / MiB)} MiB.`,
    );

    const rateCases: DrainCase[] = [
      { label: 'batch 500, none', backlog: SMALL_BACKLOG, batchMaxRecords: 500, compression: 'none', proxy: false, verify: false },
      { label: 'batch 2000, none', backlog: SMALL_BACKLOG, batchMaxRecords: 2000, compression: 'none', proxy: false, verify: false },
      { label: 'batch 500, gzip', backlog: SMALL_BACKLOG, batchMaxRecords: 500, compression: 'gzip', proxy: false, verify: false },
      { label: 'batch 2000, gzip', backlog: SMALL_BACKLOG, batchMaxRecords: 2000, compression: 'gzip', proxy: false, verify: false },
    ];
    const drainRows = (runs: DrainRun[], tpl: Template) => {
      const rps = median(runs.map((x) => x.r.records / x.r.seconds));
      const pick = runs.find((x) => x.r.records / x.r.seconds === rps) ?? runs[0]!;
      const payloadPerRecord = pick.r.stats.bytesSent / pick.r.records;
      return {
        rps,
        pick,
        row: {
          case: `drain ${pick.c.backlog}, ${pick.c.label}${pick.c.proxy ? ', via proxy' : ''}`,
          runs: runs.length,
          records_per_s: Math.round(rps),
          payload_mb_per_s: round((rps * payloadPerRecord) / MB),
          json_mb_per_s: round((rps * tpl.jsonBytes) / tpl.records / MB),
          messages: pick.r.stats.messagesSent,
          records_per_msg: round(pick.r.records / pick.r.stats.messagesSent),
          payload_b_per_record: round(payloadPerRecord),
          agent_cpu_pct: round(pick.r.cpuMs / 10 / pick.r.seconds),
          cpu_us_per_record: round(median(runs.map((x) => x.r.cpuMs / x.r.records)) * 1000),
          disk_write_b_per_record: round(pick.r.diskWriteBytes / pick.r.records),
          broker_cpu_pct: round(pick.brokerCpuMs / 10 / pick.r.seconds),
          target: '≥ 50000 rec/s',
          met: rps >= 50_000 ? 'yes' : 'no',
        },
      };
    };
    const byCase = new Map<string, DrainRun[]>();
    for (let i = 0; i < DRAIN_RUNS; i++) {
      for (const c of rateCases) {
        const runs = byCase.get(c.label) ?? [];
        runs.push(await drain(c, small, root, i));
        byCase.set(c.label, runs);
      }
    }
    const smallDefault = drainRows(byCase.get('batch 500, none')!, small);
    for (const runs of byCase.values()) rows.push(drainRows(runs, small).row);

    // The large backlog, once: rate and RSS.
    const bigCase: DrainCase = { ...rateCases[0]!, backlog: BIG_BACKLOG };
    const bigRun = big === small ? smallDefault.pick : await drain(bigCase, big, root, 0);
    const bigRow = drainRows([bigRun], big);
    if (big !== small) rows.push(bigRow.row);

    // Wire efficiency, through the counting proxy, with a subscriber checking every record arrived.
    const wireCases: DrainCase[] = [
      { label: 'batch 500, none', backlog: SMALL_BACKLOG, batchMaxRecords: 500, compression: 'none', proxy: true, verify: true },
      { label: 'batch 500, gzip', backlog: SMALL_BACKLOG, batchMaxRecords: 500, compression: 'gzip', proxy: true, verify: true },
      { label: 'batch 2000, gzip', backlog: SMALL_BACKLOG, batchMaxRecords: 2000, compression: 'gzip', proxy: true, verify: true },
    ];
    for (const c of wireCases) {
      const w = await drain(c, small, root, 0);
      rows.push({
        case: `wire, ${c.label}`,
        records_per_s: Math.round(w.r.records / w.r.seconds),
        messages: w.r.stats.messagesSent,
        records_per_msg: round(w.r.records / w.r.stats.messagesSent),
        payload_b_per_record: round(w.r.stats.bytesSent / w.r.records),
        wire_b_per_record: round(w.wireUp! / w.r.records),
        wire_vs_json: round(w.wireUp! / small.jsonBytes),
        delivered: w.delivered!,
      });
    }
    notes.push(
      `Drain: MqttSync (maxInflight 10, maxMessageBytes 262144, synchronous=full) in its own process against a fresh mosquitto on loopback, from start() to the PUBACK of the last record; records/s is the median of ${DRAIN_RUNS} runs for the ${SMALL_BACKLOG}-record cases, one run for ${BIG_BACKLOG}. payload MB/s counts the published payloads (compressed with gzip), json MB/s the records' JSON. CPU %: 100 = one core. Every run checks pendingTotal() = 0 and that $SYS/broker/publish/messages/received counts every PUBLISH.`,
      `Wire: bytes client → broker at the TCP proxy (CONNECT, PUBLISH headers and topics included) per record; wire_vs_json = wire bytes / record JSON bytes. A subscriber counted the distinct seqs delivered ("delivered").`,
    );

    // RSS.
    const mib = (b: number) => round(b / MiB);
    /** Highest RSS sample in the second half of the drain over the highest in the first: > 1 means still growing. */
    const lateVsEarly = (r: DrainResult) => {
      const half = (r.seconds * 1000) / 2;
      const peak = (xs: typeof r.samples) => Math.max(...xs.map((x) => x.rss));
      return peak(r.samples.filter((x) => x.t > half)) / peak(r.samples.filter((x) => x.t <= half));
    };
    for (const [label, x] of [
      [`${SMALL_BACKLOG}`, smallDefault.pick],
      [`${BIG_BACKLOG}`, bigRun],
    ] as const) {
      rows.push({
        case: `rss, drain ${label} (batch 500, none)`,
        start_mib: mib(x.r.rss.start),
        at10_mib: mib(x.r.rss.at10),
        at50_mib: mib(x.r.rss.at50),
        at90_mib: mib(x.r.rss.at90),
        peak_mib: mib(x.r.rss.peakSampled),
        hwm_mib: mib(x.r.rss.hwm),
        late_vs_early: round(lateVsEarly(x.r)),
        seconds: round(x.r.seconds),
      });
    }
    const flat = bigRun.r.rss.peakSampled / smallDefault.pick.r.rss.peakSampled;
    rows.push({
      case: `rss, peak ${BIG_BACKLOG} / peak ${SMALL_BACKLOG}`,
      peak_mib: round(flat),
      hwm_mib: round(bigRun.r.rss.hwm / smallDefault.pick.r.rss.hwm),
      target: 'flat (≈ 1)',
      met: flat <= 1.15 ? 'yes' : 'no',
    });
    notes.push(
      "RSS: process.memoryUsage().rss of the drain process, sampled every 100 ms and at 10/50/90 % acknowledged; hwm is the kernel's VmHWM at the end; late_vs_early = highest sample in the second half of the drain / highest in the first half. \"Flat\" is met when the large backlog's peak is within 15 % of the small one's.",
      `Load average when the bench started: ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(', ')} (${os.cpus().length} CPUs); wall-clock rates move with anything else running, CPU per record much less.`,
      `Whole outbox bench: ${round((performance.now() - started) / 1000)} s.`,
    );
    return { name: 'Delivery: SQLite outbox and MQTT drain', rows, notes };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${formatReport(await run())}\n`);
}
