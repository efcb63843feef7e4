import { CentralStore } from '../../agent/src/central/central-store.js';
import { startPostgres } from '../helpers/postgres.js';
const pg = await startPostgres();
const url = pg.createDatabase('bench');
const store = await CentralStore.open({ url });
const rec = (seq: number, agent: number) => ({ seq, ts: 1_765_000_000_000 + seq * 5000, source: 'host', asset: `asset-${seq % 10}`, metrics: { cpu: 12.5, mem: 43.1, temp: 55.2, load1: 0.42, disk_used: 71.3, net_rx: 12345, net_tx: 2345, fan: 1200 } });
const agents = 50, per = 500, rounds = 20;
const t0 = performance.now();
let n = 0;
for (let r = 0; r < rounds; r++) {
  await Promise.all(Array.from({ length: agents }, async (_, a) => {
    const records = Array.from({ length: per }, (_, i) => rec(r * per + i + 1, a));
    await store.ingestBatch({ agentId: `agent-${a}`, stream: 'telemetry', bootSeq: 1, historical: false, records });
    n += per;
  }));
}
const s = (performance.now() - t0) / 1000;
console.log(`${n} records in ${s.toFixed(1)} s = ${(n / s).toFixed(0)} rec/s`);
const size = await store.sql.get<{ b: number }>("SELECT pg_total_relation_size('records_telemetry_default') AS b");
console.log('bytes/record', size!.b / n);
await store.close();
pg.destroy();
