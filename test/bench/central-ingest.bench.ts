// First: the harness patches child_process before anything spawns.
import { type BenchReport, percentile, processTreeCpuMs, round } from './bench-harness.js';
import { readFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { CentralStore } from '../../agent/src/central/central-store.js';
import { ReferenceSubscriber } from '../../agent/src/central/ingest-worker.js';
import type { Logger } from '../../agent/src/core/logger.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from '../helpers/postgres.js';
import { FleetSimulator } from './fleet-simulator.js';

/**
 * `forewarn central` on PostgreSQL (#15's benchmark table):
 *
 * 1. Sustained ingest: two worker processes (`forewarn central --store postgres://…`) share the batches of 200
 *    simulated agents publishing telemetry batches of 500 records (the agent's default batchMaxRecords) as fast as
 *    the broker takes them. The rate is what PostgreSQL holds at the end of a steady window, not what was sent;
 *    CPU per record is given for the workers, PostgreSQL and mosquitto; bytes stored per record from the records
 *    partitions' size on disk (table, indexes, TOAST).
 * 2. A simulated fleet: 1,000 agents × 10 assets at a 5 s interval (2,000 records/s), each agent's batch at its
 *    own offset in the interval, held for FOREWARN_BENCH_FLEET_SECONDS (default 600, the ten minutes);
 *    latency from the record's timestamp (set when the simulator publishes it) to the worker's commit.
 *
 * Everything runs on this machine: the figures are for the workers, PostgreSQL, mosquitto and the simulator
 * sharing its cores. Skipped, saying so, without PostgreSQL.
 */

const SUSTAIN_S = Number(process.env.FOREWARN_BENCH_INGEST_SECONDS ?? 60);
const FLEET_S = Number(process.env.FOREWARN_BENCH_FLEET_SECONDS ?? 600);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** This file runs as dist/test/bench/…: the compiled CLI is dist/agent/src/cli.js. */
const CLI = path.resolve(import.meta.dirname, '../../agent/src/cli.js');

function postmasterPid(pg: PostgresCluster): number {
  return Number(readFileSync(path.join(pg.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
}

async function received(store: CentralStore): Promise<number> {
  return (await store.sql.get<{ n: number | null }>('SELECT SUM(received) AS n FROM streams'))!.n ?? 0;
}

function spawnWorker(id: string, store: string, broker: string): ChildProcess {
  return spawn(process.execPath, [CLI, 'central', '--store', store, '--broker', broker, '--client-id', id, '--no-api'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, FOREWARN_LOG_LEVEL: 'warn' },
  });
}

async function sustained(pg: PostgresCluster): Promise<BenchReport> {
  const url = pg.createDatabase('bench_sustained');
  const broker = await startMosquitto({ extraConfig: ['max_queued_messages 0', 'max_inflight_messages 0'] });
  const workers = [spawnWorker('bench-w1', url, broker.url), spawnWorker('bench-w2', url, broker.url)];
  const reader = await CentralStore.open({ url, readonly: true });
  const sim = new FleetSimulator({ url: broker.url, agents: 200, assetsPerAgent: 10, inflight: 64 });
  try {
    await sleep(3000); // the workers connect and subscribe
    await sim.start();
    let stop = false;
    const publishing = (async () => {
      for (let round = 0; !stop; round++) {
        for (let a = 1; a <= 200 && !stop; a++) await sim.publishBatch(a, 'telemetry', Date.now(), 500);
      }
    })();
    await sleep(10_000); // warm-up: JIT, pools, the first partitions' pages
    const pgPid = postmasterPid(pg);
    const cpu0 = { workers: workers.map((w) => processTreeCpuMs(w.pid!)), pg: processTreeCpuMs(pgPid), sim: process.cpuUsage() };
    const n0 = await received(reader);
    const t0 = Date.now();
    await sleep(SUSTAIN_S * 1000);
    const n1 = await received(reader);
    const seconds = (Date.now() - t0) / 1000;
    const cpu1 = { workers: workers.map((w) => processTreeCpuMs(w.pid!)), pg: processTreeCpuMs(pgPid), sim: process.cpuUsage(cpu0.sim) };
    stop = true;
    await publishing;
    const records = n1 - n0;
    const workerCpu = cpu1.workers.reduce((s, c, i) => s + c - cpu0.workers[i]!, 0);
    const size = (await reader.sql.get<{ b: number; n: number }>(
      `SELECT (SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relname LIKE 'records\\_%' AND c.relkind = 'r') AS b,
              (SELECT SUM(received) FROM streams) AS n`,
    ))!;
    return {
      name: 'central ingest into PostgreSQL, 2 worker processes (sustained)',
      rows: [
        {
          window: `${round(seconds)} s`,
          'records committed/s': Math.round(records / seconds),
          'worker CPU ms per 1k records': round((workerCpu / records) * 1000),
          'PostgreSQL CPU ms per 1k records': round(((cpu1.pg - cpu0.pg) / records) * 1000),
          'simulator CPU ms per 1k records': round(((cpu1.sim.user + cpu1.sim.system) / 1000 / records) * 1000),
          'bytes stored per record': Math.round(size.b / size.n),
        },
      ],
      notes: [
        'Target (#15): >= 50,000 records/s with 2 workers on the 2-core machine. Workers, PostgreSQL (fsync on, synchronous_commit on), mosquitto and the simulator share the two cores.',
        'Rate = records the ledger holds at the end of the window minus at its start, over the window; the simulator publishes 200 agents x 500-record telemetry batches at QoS 1 as fast as the broker acknowledges.',
      ],
    };
  } finally {
    await sim.stop().catch(() => undefined);
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map((w) => new Promise((r) => (w.exitCode !== null ? r(null) : w.once('exit', r)))));
    await reader.close();
    await broker.stop();
  }
}

async function fleet(pg: PostgresCluster): Promise<BenchReport> {
  const url = pg.createDatabase('bench_fleet');
  const broker = await startMosquitto({ extraConfig: ['max_queued_messages 0'] });
  const log: Logger = captureLogger().log;
  const workers = ['bench-f1', 'bench-f2'].map((id) => new ReferenceSubscriber({ url: broker.url, clientId: id, store: url, log }));
  const latencies: number[] = [];
  let measuring = false;
  const sim = new FleetSimulator({ url: broker.url, agents: 1000, assetsPerAgent: 10, inflight: 500 });
  try {
    for (const w of workers) await w.start();
    // Latency per record: the commit's end minus the record's ts (set as the simulator published it).
    for (const w of workers) {
      const ingest = w.store.ingestBatch.bind(w.store);
      w.store.ingestBatch = async (batch, ts) => {
        const result = await ingest(batch, ts);
        if (measuring) {
          const now = Date.now();
          for (const r of batch.records) latencies.push(now - r.ts);
        }
        return result;
      };
    }
    await sleep(2000);
    await sim.start();
    const intervalMs = 5000;
    const started = Date.now();
    const cpu0 = process.cpuUsage();
    const pgPid = postmasterPid(pg);
    const pgCpu0 = processTreeCpuMs(pgPid);
    measuring = true;
    // Each agent publishes at its own offset within the interval, as a real fleet's clocks spread them.
    for (let tick = 0; Date.now() - started < FLEET_S * 1000; tick++) {
      for (let a = 1; a <= 1000; a++) {
        const due = started + tick * intervalMs + ((a - 1) * intervalMs) / 1000;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
        await sim.publishBatch(a, 'telemetry', Date.now());
      }
    }
    await sim.drain();
    await sleep(2000);
    measuring = false;
    const seconds = (Date.now() - started) / 1000;
    const cpu = process.cpuUsage(cpu0);
    latencies.sort((x, y) => x - y);
    return {
      name: 'central: simulated fleet, 1,000 agents x 10 assets at 5 s (2,000 records/s), 2 workers on PostgreSQL',
      rows: [
        {
          held: `${round(seconds)} s`,
          'records published': sim.records,
          'records committed (measured)': latencies.length,
          'p50 ms': percentile(latencies, 0.5),
          'p99 ms': percentile(latencies, 0.99),
          'max ms': latencies[latencies.length - 1] ?? 0,
          'workers + simulator CPU ms/s': round((cpu.user + cpu.system) / 1000 / seconds),
          'PostgreSQL CPU ms/s': round((processTreeCpuMs(pgPid) - pgCpu0) / seconds),
        },
      ],
      notes: [
        'Target (#15): held for 10 minutes with p99 receive-to-commit <= 1 s. Latency here is publish-to-commit (the record ts is set as the simulator publishes it), so it includes the broker hop and is an upper bound on receive-to-commit.',
        `Held ${FLEET_S} s (FOREWARN_BENCH_FLEET_SECONDS). The workers run in the benchmark process here, so the CPU column includes the simulator.`,
      ],
    };
  } finally {
    await sim.stop().catch(() => undefined);
    for (const w of workers) await w.stop().catch(() => undefined);
    await broker.stop();
  }
}

export async function run(): Promise<BenchReport[]> {
  const skip = postgresSkipReason();
  if (skip) return [{ name: 'central ingest into PostgreSQL', rows: [], notes: [`skipped: ${skip}`] }];
  const pg = await startPostgres();
  try {
    return [await sustained(pg), await fleet(pg)];
  } finally {
    pg.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { formatReport } = await import('./bench-harness.js');
  for (const r of await run()) process.stdout.write(`${formatReport(r)}\n\n`);
}
