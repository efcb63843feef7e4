/**
 * The fleet read queries of the central API on a fleet-sized PostgreSQL store (issue #15): "the latest risk of
 * every asset" and "one asset's 24 h risk trend", target p99 ≤ 50 ms each, plus the asset list the console shows
 * and raw risk from `records`.
 *
 * The store: 1,000 agents × 10 assets, one risk model each, a 5 s interval, 30 days. Generated with
 * generate_series straight into the tables (not through MQTT): the fleet registry, `fleet_latest_risk` (10,000
 * rows) and `fleet_risk_hourly` (30 days × 24 h × 10,000 assets = 7.2 M rows, 720 samples each) at full size, and
 * 1 % of the assets with an active alert. Raw `records` are generated only for the last 24 h of
 * FOREWARN_BENCH_RAW_AGENTS agents (default 2: 172,800 risk records each) in daily partitions: 30 days of the whole
 * fleet would be 5.2 billion rows, beyond this machine's disk and time. The raw queries use the (agent_id, stream,
 * seq, ts) key of their own agent, so other agents' rows would add partitions' size but not rows read. The raw
 * queries run twice: on the ledger's key as it is, and again after adding an index (agent_id, stream, ts), which
 * the ledger does not have (yet): the figures say whether it should.
 *
 *   FOREWARN_BENCH_AGENTS       agents (default 1000; 10 assets each)
 *   FOREWARN_BENCH_DAYS         days of hourly rollups (default 30)
 *   FOREWARN_BENCH_RAW_AGENTS   agents with 24 h of raw risk records (default 2)
 *
 * Run alone with `npx tsc -p tsconfig.json && node dist/test/bench/central-queries.bench.js`.
 */
// First: the harness patches child_process (see bench-harness.ts).
import { type BenchReport, formatReport, measure, percentile, round } from './bench-harness.js';
import { performance } from 'node:perf_hooks';
import { createCentralApi } from '../../agent/src/central/api/central-api.js';
import { consoleSession } from '../helpers/console-session.js';
import { FLEET_LATEST_RISK_SQL, fleetLatestRisk, hourly, rawRisk, StoreTables } from '../../agent/src/central/api/fleet-queries.js';
import { FleetProjection } from '../../agent/src/central/fleet/fleet-projection.js';
import { DAY_MS, Retention } from '../../agent/src/central/fleet/retention.js';
import { FleetRegistry } from '../../agent/src/central/fleet-registry.js';
import { openSqlClient } from '../../agent/src/central/sql/open-sql-client.js';
import type { SqlClient } from '../../agent/src/central/sql/sql-client.js';
import type { IngestedBatch } from '../../agent/src/central/projection.js';
import { createLedgerTables, migrateProjections } from '../helpers/central-records.js';
import { postgresSkipReason, startPostgres } from '../helpers/postgres.js';
import { seededRandom } from '../helpers/seeded-random.js';
import { captureLogger } from '../helpers/capture-logger.js';

const AGENTS = Number(process.env.FOREWARN_BENCH_AGENTS ?? 1000);
const DAYS = Number(process.env.FOREWARN_BENCH_DAYS ?? 30);
const RAW_AGENTS = Math.min(AGENTS, Number(process.env.FOREWARN_BENCH_RAW_AGENTS ?? 2));
const ASSETS = 10;
const INTERVAL_MS = 5_000;
const HOUR_MS = 3_600_000;
/** The generated store ends here: the benchmark's "now", on an hour boundary. */
const NOW = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
const agentName = (sqlExpr: string) => `'agent-' || lpad((${sqlExpr})::text, 4, '0')`;

async function generate(sql: SqlClient): Promise<Array<{ step: string; seconds: number; rows: number }>> {
  const steps: Array<{ step: string; seconds: number; rows: number }> = [];
  const step = async (name: string, text: string, params: Array<string | number> = []) => {
    const t0 = performance.now();
    const { changes } = await sql.run(text, params);
    steps.push({ step: name, seconds: round((performance.now() - t0) / 1000), rows: changes });
  };
  await sql.run('SELECT setseed(0.42)');
  const from = NOW - DAYS * DAY_MS;
  await step(
    'fleet_agents',
    `INSERT INTO fleet_agents (agent_id, first_seen_ts, last_seen_ts, state, state_ts, boot_seq, version)
     SELECT ${agentName('a')}, ?, ?, CASE WHEN a % 50 = 0 THEN 'offline' ELSE 'online' END, ?, 1, '1.2.0' FROM generate_series(1, ?) a`,
    [from, NOW, NOW, AGENTS],
  );
  await step(
    'fleet_assets',
    `INSERT INTO fleet_assets (agent_id, asset, first_seen_ts, last_seen_ts, last_reading_ts)
     SELECT ${agentName('a')}, 'asset-' || s, ?, ?, ? FROM generate_series(1, ?) a, generate_series(0, ${ASSETS - 1}) s`,
    [from, NOW, NOW, AGENTS],
  );
  await step(
    'fleet_latest_risk',
    `INSERT INTO fleet_latest_risk (agent_id, asset, model, model_version, kind, score, threshold, at_risk, ts, reading_ts, drivers, received_ts)
     SELECT ${agentName('a')}, 'asset-' || s, 'machine-failure', '1.0.0', 'probability', r, 0.5, CASE WHEN r >= 0.5 THEN 1 ELSE 0 END, ?, ?,
       '[{"feature":"torque","value":61.2,"contribution":0.21},{"feature":"tool_wear","value":180,"contribution":0.12},{"feature":"rotational_speed","value":1410,"contribution":0.05}]', ?
     FROM (SELECT a, s, power(random(), 4) AS r FROM generate_series(1, ?) a, generate_series(0, ${ASSETS - 1}) s) g`,
    [NOW - INTERVAL_MS, NOW - INTERVAL_MS - 20, NOW, AGENTS],
  );
  const perHour = HOUR_MS / INTERVAL_MS;
  // 7.2 M rows load faster into a table without indexes, which are then built once, sorted (as a bulk restore does).
  await sql.exec('ALTER TABLE fleet_risk_hourly DROP CONSTRAINT fleet_risk_hourly_pkey; DROP INDEX fleet_risk_hourly_hour');
  await step(
    'fleet_risk_hourly',
    `INSERT INTO fleet_risk_hourly (agent_id, asset, model, hour, samples, min_score, max_score, sum_score, at_risk_samples, last_score, last_ts)
     SELECT ${agentName('a')}, 'asset-' || s, 'machine-failure', ? + h * ${HOUR_MS}::bigint, ${perHour}, m * 0.5, LEAST(m * 2, 1), m * ${perHour}, 0, m,
            ? + h * ${HOUR_MS}::bigint + ${HOUR_MS - INTERVAL_MS}
     FROM (SELECT a, s, h, random() * 0.3 AS m FROM generate_series(1, ?) a, generate_series(0, ${ASSETS - 1}) s, generate_series(0, ?) h) g`,
    [from, from, AGENTS, DAYS * 24 - 1],
  );
  const t1 = performance.now();
  await sql.exec(`SET maintenance_work_mem = '256MB';
    ALTER TABLE fleet_risk_hourly ADD PRIMARY KEY (agent_id, asset, model, hour);
    CREATE INDEX fleet_risk_hourly_hour ON fleet_risk_hourly (hour)`);
  steps.push({ step: 'fleet_risk_hourly indexes', seconds: round((performance.now() - t1) / 1000), rows: 0 });
  await step(
    'central_alerts (1 % of assets active)',
    `INSERT INTO central_alerts (alert_key, origin, agent_id, asset, rule, severity, title, state, raised_ts, updated_ts, value, evidence, remedy)
     SELECT 'agent/' || ${agentName('a')} || '/temp/asset-' || s, 'agent', ${agentName('a')}, 'asset-' || s, 'temp', CASE WHEN a % 3 = 0 THEN 'critical' ELSE 'warning' END,
            'hot', 'active', ?, ?, 90, '{}', 'cool it' FROM generate_series(1, ?) a, generate_series(0, ${ASSETS - 1}) s WHERE (a * ${ASSETS} + s) % 100 = 7`,
    [NOW - HOUR_MS, NOW - HOUR_MS, AGENTS],
  );
  // Daily partitions for yesterday, today and ahead, as the retention pass makes them.
  const log = captureLogger().log;
  await new Retention({ sql, log, now: () => NOW - DAY_MS }).runOnce();
  await new Retention({ sql, log, now: () => NOW }).runOnce();
  await step(
    `records: 24 h of risk for ${RAW_AGENTS} agents`,
    `INSERT INTO records (agent_id, stream, seq, ts, boot_seq, historical, received_ts, payload)
     SELECT ${agentName('a')}, 'risk', i * ${ASSETS} + s + 1, t, 1, false, t + 300,
            json_build_object('seq', i * ${ASSETS} + s + 1, 'ts', t, 'asset', 'asset-' || s, 'model', 'machine-failure', 'modelVersion', '1.0.0',
              'kind', 'probability', 'score', round(random()::numeric, 5), 'threshold', 0.5, 'atRisk', false, 'readingTs', t - 20,
              'drivers', json_build_array(json_build_object('feature', 'torque', 'value', 61.2, 'contribution', 0.21)))::text
     FROM (SELECT a, s, i, ? + i * ${INTERVAL_MS}::bigint AS t FROM generate_series(1, ?) a, generate_series(0, ${ASSETS - 1}) s,
           generate_series(0, ${DAY_MS / INTERVAL_MS - 1}) i) g`,
    [NOW - DAY_MS, RAW_AGENTS],
  );
  const t0 = performance.now();
  await sql.exec('ANALYZE');
  steps.push({ step: 'ANALYZE', seconds: round((performance.now() - t0) / 1000), rows: 0 });
  return steps;
}

/**
 * What the read model adds to the ingest transaction: FleetProjection.applyBatch of one agent's batch of 10
 * records (one per asset) into the generated store, each in its own transaction, by `rollupMetrics`. Telemetry
 * records carry 40 metrics, as a host's do.
 */
async function projectionWrites(sql: SqlClient): Promise<BenchReport> {
  const metrics = Array.from({ length: 40 }, (_, i) => `metric_${i}`);
  let n = 0;
  const telemetry = (): IngestedBatch => {
    n++;
    const agentId = `agent-${String(1 + (n % AGENTS)).padStart(4, '0')}`;
    const records = Array.from({ length: ASSETS }, (_, s) => ({
      seq: n * ASSETS + s,
      ts: NOW + n * INTERVAL_MS,
      source: 'host',
      asset: `asset-${s}`,
      metrics: Object.fromEntries(metrics.map((m, i) => [m, (n * 7 + i) % 100])),
    }));
    return { agentId, stream: 'telemetry', bootSeq: 1, historical: false, receivedTs: NOW, records };
  };
  const risk = (): IngestedBatch => {
    n++;
    const agentId = `agent-${String(1 + (n % AGENTS)).padStart(4, '0')}`;
    const records = Array.from({ length: ASSETS }, (_, s) => ({
      seq: n * ASSETS + s,
      ts: NOW + n * INTERVAL_MS,
      asset: `asset-${s}`,
      model: 'machine-failure',
      modelVersion: '1.0.0',
      kind: 'probability',
      score: (n % 100) / 100,
      threshold: 0.5,
      atRisk: false,
      readingTs: NOW,
      drivers: [{ feature: 'torque', value: 61.2, contribution: 0.21 }],
    }));
    return { agentId, stream: 'risk', bootSeq: 1, historical: false, receivedTs: NOW, records };
  };
  const cases: Array<{ name: string; patterns: readonly string[]; make: () => IngestedBatch }> = [
    { name: 'risk, 10 records', patterns: ['*'], make: risk },
    { name: "telemetry, 10 records × 40 metrics, rollupMetrics ['*'] (400 rollup rows)", patterns: ['*'], make: telemetry },
    { name: "telemetry, 10 records × 40 metrics, rollupMetrics ['metric_1?'] (100 rows)", patterns: ['metric_1?'], make: telemetry },
    { name: 'telemetry, 10 records × 40 metrics, rollupMetrics [] (nothing)', patterns: [], make: telemetry },
  ];
  const rows: Array<Record<string, string | number>> = [];
  for (const c of cases) {
    const p = new FleetProjection({ rollupMetrics: c.patterns });
    const m = await measure(() => sql.tx((q) => p.applyBatch(q, c.make())), 200, { warmup: 5 });
    rows.push({
      batch: c.name,
      p50_ms: round(m.medianMs),
      p99_ms: round(m.p99Ms),
      node_cpu_ms_per_batch: round(m.cpuMsPerCall),
      p50_us_per_record: round((m.medianMs * 1000) / ASSETS),
    });
  }
  return {
    name: 'fleet read model: what applyBatch adds to an ingest transaction (PostgreSQL, generated store)',
    rows,
    notes: ['each batch in its own transaction (BEGIN … COMMIT included); the ingest runs it inside the transaction that stores the records'],
  };
}

export async function run(): Promise<BenchReport[]> {
  const skip = postgresSkipReason();
  if (skip) return [{ name: 'central queries on PostgreSQL (skipped)', rows: [], notes: [skip] }];
  const cluster = await startPostgres();
  const sql = await openSqlClient(cluster.createDatabase('fleet'));
  const api = createCentralApi({ sql, log: captureLogger().log, port: 0 });
  try {
    await createLedgerTables(sql);
    await migrateProjections(sql, [new FleetRegistry(), new FleetProjection()]);
    const steps = await generate(sql);
    const size = await sql.get<{ total: string; hourly: string }>(
      "SELECT pg_size_pretty(pg_database_size(current_database())) AS total, pg_size_pretty(pg_total_relation_size('fleet_risk_hourly')) AS hourly",
    );
    const tables = new StoreTables();
    const rnd = seededRandom(15);
    const pick = (agents: number) => ({
      agentId: `agent-${String(1 + Math.floor(rnd() * agents)).padStart(4, '0')}`,
      asset: `asset-${Math.floor(rnd() * ASSETS)}`,
    });
    await api.start();
    // The API needs a session: log in once, as the console does, and send its cookie.
    const client = await consoleSession(`http://127.0.0.1:${api.address().port}`, sql, { role: 'viewer' });
    const cases: Array<{ query: string; iterations: number; fn: () => Promise<unknown> }> = [
      {
        query: `latest risk of every asset (${AGENTS * ASSETS} rows, fleetLatestRisk)`,
        iterations: 200,
        fn: async () => {
          const rows = await fleetLatestRisk(sql, tables);
          if (rows.length !== AGENTS * ASSETS) throw new Error(`expected ${AGENTS * ASSETS} rows, got ${rows.length}`);
        },
      },
      {
        query: "one asset's 24 h risk trend, hourly rollups (24 points)",
        iterations: 500,
        fn: async () => {
          const points = await hourly(sql, tables, 'risk', { ...pick(AGENTS), key: 'machine-failure', from: NOW - DAY_MS, to: NOW, limit: 5000 });
          if (points.length !== 24) throw new Error(`expected 24 points, got ${points.length}`);
        },
      },
      {
        query: 'GET /api/v1/assets?sort=risk&limit=50 (state of every asset, then a page)',
        iterations: 100,
        fn: async () => {
          const res = await client.fetch('/api/v1/assets?sort=risk&limit=50');
          const body = (await res.json()) as { total: number };
          if (body.total !== AGENTS * ASSETS) throw new Error(`expected ${AGENTS * ASSETS} assets, got ${body.total}`);
        },
      },
      {
        query: 'GET /api/v1/fleet (summary)',
        iterations: 100,
        fn: async () => {
          if ((await client.fetch('/api/v1/fleet')).status !== 200) throw new Error('fleet summary failed');
        },
      },
      {
        query: "one asset's last 1 h of raw risk (720 points, records)",
        iterations: 100,
        fn: async () => {
          const points = await rawRisk(sql, { ...pick(RAW_AGENTS), key: 'machine-failure', from: NOW - HOUR_MS, to: NOW, limit: 5000 });
          if (points.length !== HOUR_MS / INTERVAL_MS) throw new Error(`expected 720 points, got ${points.length}`);
        },
      },
      {
        query: "one asset's 24 h raw risk, capped at 5,000 of 17,280 points (records)",
        iterations: 20,
        fn: async () => {
          const points = await rawRisk(sql, { ...pick(RAW_AGENTS), key: 'machine-failure', from: NOW - DAY_MS, to: NOW, limit: 5000 });
          if (points.length !== 5001) throw new Error(`expected 5001 points, got ${points.length}`);
        },
      },
    ];
    const rows: Array<Record<string, string | number>> = [];
    const measureCase = async (c: (typeof cases)[number], suffix = '') => {
      const m = await measure(c.fn, c.iterations, { warmup: 5 });
      rows.push({
        query: c.query + suffix,
        iterations: m.iterations,
        p50_ms: round(m.medianMs),
        p99_ms: round(m.p99Ms),
        node_cpu_ms_per_call: round(m.cpuMsPerCall),
      });
    };
    for (const c of cases) await measureCase(c);
    // The server's share of the latest-risk query: its execution time as PostgreSQL reports it, without the
    // sending and decoding of rows.
    const exec: number[] = [];
    for (let i = 0; i < 50; i++) {
      const plan = await sql.all<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE) ${FLEET_LATEST_RISK_SQL}`);
      const m = /Execution Time: ([\d.]+) ms/.exec(plan.map((r) => r['QUERY PLAN']).join('\n'));
      if (m) exec.push(Number(m[1]));
    }
    exec.sort((a, b) => a - b);
    rows.push({
      query: 'latest risk of every asset: PostgreSQL execution time only (EXPLAIN ANALYZE)',
      iterations: exec.length,
      p50_ms: round(percentile(exec, 50)),
      p99_ms: round(percentile(exec, 99)),
    });
    await sql.exec('CREATE INDEX records_agent_stream_ts ON records (agent_id, stream, ts); ANALYZE records');
    for (const c of cases.filter((x) => x.query.includes('raw'))) await measureCase(c, ', with an index (agent_id, stream, ts)');
    const writes = await projectionWrites(sql);
    return [
      {
        name: 'central store generation (PostgreSQL)',
        rows: steps,
        notes: [`database ${size?.total ?? '?'}, of which fleet_risk_hourly ${size?.hourly ?? '?'}`],
      },
      {
        name: `central queries on PostgreSQL: ${AGENTS} agents × ${ASSETS} assets, ${DAYS} days at a ${INTERVAL_MS / 1000} s interval`,
        rows,
        notes: [
          'target (issue #15): p99 ≤ 50 ms for the latest risk of every asset and one asset’s 24 h risk trend',
          `rollups and latest risk at full size; raw records only for the last 24 h of ${RAW_AGENTS} agents (see the file header)`,
          'times include the round trip through node-postgres and row decoding; the API rows include HTTP and JSON',
        ],
      },
      writes,
    ];
  } finally {
    await api.stop();
    await sql.close();
    cluster.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) process.stdout.write(`${formatReport(r)}\n\n`);
}
