/**
 * One backlog drain, in a process of its own so that its RSS is the drain's alone (outbox.bench.ts starts it).
 *
 *   node dist/test/bench/outbox-drain-child.js '{"dir":"…","url":"mqtt://127.0.0.1:1883","expect":100000,…}'
 *
 * Opens the outbox already filled in `dir`, starts the agent's MqttSync against `url` with the given broker
 * settings and times until every record is acknowledged (the last markSent), sampling
 * process.memoryUsage().rss every `sampleMs` on the way. Prints one JSON line (DrainResult) on stdout.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { buildConfig } from '../../agent/src/config/load-config.js';
import { RecordStore } from '../../agent/src/store/record-store.js';
import type { StreamName } from '../../agent/src/store/outbox.js';
import { MqttSync } from '../../agent/src/sync/mqtt-sync.js';

export interface DrainArgs {
  dir: string;
  url: string;
  /** Records pending in the outbox: the drain is over when this many are acknowledged. */
  expect: number;
  batchMaxRecords: number;
  compression: 'none' | 'gzip';
  maxInflight?: number;
  synchronous?: 'full' | 'normal';
  sampleMs?: number;
  /** Give up after this long (the result then says `complete: false`). */
  timeoutMs?: number;
}

export interface RssSample {
  /** ms since the drain started. */
  t: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  /** Memory of Buffers and other objects outside the V8 heap. */
  external: number;
  /** RSS split by kind (/proc/self/status): anonymous (heaps, native allocations) and file-backed mappings. */
  rssAnon: number;
  rssFile: number;
  sent: number;
}

export interface DrainResult {
  complete: boolean;
  records: number;
  /** From sync.start() to the markSent that acknowledged the last record. */
  seconds: number;
  /** From sync.start() to the CONNACK. */
  connectMs: number;
  pendingAfter: number;
  stats: { sent: number; bytesSent: number; messagesSent: number; rejected: number; reconnects: number; lastError: string | null };
  /** This process's CPU time during the drain, ms (user + system, all threads). */
  cpuMs: number;
  /** Bytes this process sent to the storage layer during the drain (/proc/self/io write_bytes): WAL and checkpoints. */
  diskWriteBytes: number;
  rss: {
    /** Before sync.start(), with the outbox open. */
    start: number;
    /** When 10, 50 and 90 % of the backlog had been acknowledged. */
    at10: number;
    at50: number;
    at90: number;
    end: number;
    /** Highest sample. */
    peakSampled: number;
    /** The kernel's high-water mark for this process (VmHWM): catches a peak between samples. */
    hwm: number;
  };
  samples: RssSample[];
}

/** Bytes this process has caused to be written to storage (/proc/self/io), or NaN. */
function diskWriteBytes(): number {
  try {
    const m = /^write_bytes:\s+(\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Fields of /proc/self/status in bytes (NaN where there is no /proc). */
function procStatus(...fields: string[]): number[] {
  let text = '';
  try {
    text = readFileSync('/proc/self/status', 'utf8');
  } catch {
    // not Linux
  }
  return fields.map((f) => {
    const m = new RegExp(`^${f}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : Number.NaN;
  });
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as DrainArgs;
  const sampleMs = args.sampleMs ?? 100;
  const synchronous = args.synchronous ?? 'full';
  const config = buildConfig(
    stringify({
      agent: { id: 'bench' },
      storage: { dir: args.dir, synchronous },
      broker: {
        url: args.url,
        // The drain to the broker is what is timed (no central subscriber runs here): rows go on the PUBACK.
        ack: 'broker',
        batchMaxRecords: args.batchMaxRecords,
        compression: args.compression,
        ...(args.maxInflight ? { maxInflight: args.maxInflight } : {}),
      },
    }),
    {},
  );
  const store = new RecordStore({ dir: config.storage.dir, synchronous: config.storage.synchronous });
  const log = pino({ level: 'warn' }, pino.destination({ dest: 2, sync: true }));
  const sync = new MqttSync(config, store, { bootSeq: 1, agentVersion: 'bench', models: () => [], sources: () => [] }, log);

  const samples: RssSample[] = [];
  const marks: Partial<Record<'at10' | 'at50' | 'at90', number>> = {};
  let acked = 0;
  let t0 = 0;
  let tEnd = 0;
  let connectMs = Number.NaN;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  // Time the drain by the acknowledgements themselves, not by polling pendingTotal() (a COUNT over the backlog).
  const markSent = store.markSent.bind(store);
  store.markSent = (stream: StreamName, ids: readonly number[], now?: number) => {
    const n = markSent(stream, ids, now);
    acked += n;
    for (const [key, pct] of [
      ['at10', 0.1],
      ['at50', 0.5],
      ['at90', 0.9],
    ] as const) {
      if (marks[key] === undefined && acked >= args.expect * pct) marks[key] = process.memoryUsage().rss;
    }
    if (acked >= args.expect && !tEnd) {
      tEnd = performance.now();
      finish();
    }
    return n;
  };

  global.gc?.();
  const rssStart = process.memoryUsage().rss;
  const sample = () => {
    const m = process.memoryUsage();
    const [rssAnon, rssFile] = procStatus('RssAnon', 'RssFile');
    samples.push({
      t: Math.round(performance.now() - t0),
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      rssAnon: rssAnon!,
      rssFile: rssFile!,
      sent: acked,
    });
  };
  const cpu0 = process.cpuUsage();
  const io0 = diskWriteBytes();
  t0 = performance.now();
  sample();
  const sampler = setInterval(sample, sampleMs);
  const online = setInterval(() => {
    if (sync.stats.state === 'online') {
      connectMs = performance.now() - t0;
      clearInterval(online);
    }
  }, 1);
  await sync.start();
  const timeout = setTimeout(finish, args.timeoutMs ?? 600_000);
  await done;
  const cpu = process.cpuUsage(cpu0);
  const io = diskWriteBytes() - io0;
  clearTimeout(timeout);
  clearInterval(sampler);
  clearInterval(online);
  sample();
  const rssEnd = process.memoryUsage().rss;
  const pendingAfter = store.pendingTotal();
  await sync.stop();
  store.close();
  const s = sync.stats;
  const result: DrainResult = {
    complete: acked >= args.expect,
    records: acked,
    seconds: ((tEnd || performance.now()) - t0) / 1000,
    connectMs,
    pendingAfter,
    stats: { sent: s.sent, bytesSent: s.bytesSent, messagesSent: s.messagesSent, rejected: s.rejected, reconnects: s.reconnects, lastError: s.lastError },
    cpuMs: (cpu.user + cpu.system) / 1000,
    diskWriteBytes: io,
    rss: {
      start: rssStart,
      at10: marks.at10 ?? Number.NaN,
      at50: marks.at50 ?? Number.NaN,
      at90: marks.at90 ?? Number.NaN,
      end: rssEnd,
      peakSampled: Math.max(...samples.map((x) => x.rss)),
      hwm: procStatus('VmHWM')[0]!,
    },
    samples,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
