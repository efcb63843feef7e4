#!/usr/bin/env node
// The floor of a Node.js agent (issue #13, docs/benchmarks.md): the least a Node process does for what the
// host-only agent does per reading, to set the agent's CPU beside. Every interval it reads /proc files of the
// kind the host sampler reads (keeping the first numbers of each: a floor on the cheap side) and statfs's the
// root, builds one JSON reading of about the same size, commits it to SQLite with the agent's settings (WAL,
// synchronous=FULL, one row per commit), publishes it at QoS 1 and, on the PUBACK, moves a per-stream watermark in
// memory, saved with the next commit (as the agent's store does). No config,
// plugins, quality stage, anomaly detection, metrics endpoint or housekeeping: what is left is Node, V8,
// better-sqlite3 and mqtt.js doing the job once per interval.
// usage: node --v8-pool-size=1 --no-opt scripts/node-floor.mjs BROKER_URL DIR [INTERVAL_MS [GRID_AT]]
//   GRID_AT: epoch ms its interval grid is anchored on (the bench gives each process its own place in the
//   interval); default: its start.
// (scripts/cpu-ab.mjs runs it as the `floor` build, beside the agents and collectd.)
import { readFileSync, statfsSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';

const [url, dir, intervalArg, gridArg] = process.argv.slice(2);
if (!url || !dir) {
  console.error('usage: node scripts/node-floor.mjs BROKER_URL DIR [INTERVAL_MS [GRID_AT]]');
  process.exit(2);
}
const intervalMs = Number(intervalArg ?? 5000);
// FOREWARN_FLOOR_WORK: the parts done each interval, to take the floor apart: `read` (the /proc files and the JSON),
// `commit` (SQLite), `publish` (MQTT, with its connection), each without `read` carrying a reading read once at
// start; none of them: a timer alone. Default: all three.
const work = new Set((process.env.FOREWARN_FLOOR_WORK ?? 'read,commit,publish').split(',').filter(Boolean));
/** Values kept: about the host-only agent's 41 and its 1.2 kB reading on the development VM. */
const METRICS = 60;
const FILES = ['/proc/stat', '/proc/meminfo', '/proc/loadavg', '/proc/net/dev', '/proc/diskstats', '/proc/vmstat'];

const db = new Database(path.join(dir, 'floor.db'));
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec('CREATE TABLE IF NOT EXISTS readings (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, payload BLOB NOT NULL)');
db.exec('CREATE TABLE IF NOT EXISTS acks (stream TEXT PRIMARY KEY, upto INTEGER NOT NULL)');
const insert = db.prepare('INSERT INTO readings (seq, ts, payload) VALUES (?, ?, ?)');
const saveAck = db.prepare('INSERT INTO acks (stream, upto) VALUES (?, ?) ON CONFLICT (stream) DO UPDATE SET upto = excluded.upto');
let seq = (db.prepare('SELECT MAX(seq) AS m FROM readings').get().m ?? 0) + 1;
let acked = 0;
let savedAck = 0;
const commit = db.transaction((row) => {
  insert.run(row.seq, row.ts, row.payload);
  if (acked > savedAck) {
    saveAck.run('telemetry', acked);
    savedAck = acked;
  }
});

const client = work.has('publish') ? mqtt.connect(url, { clientId: `floor-${process.pid}`, clean: true }) : null;

/** The first numbers of each file (METRICS in all, spread over the files), keyed by file, line label and column. */
function reading() {
  const metrics = {};
  const perFile = Math.ceil(METRICS / FILES.length);
  for (const file of FILES) {
    let kept = 0;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const parts = line.trim().split(/[\s:]+/);
      for (let i = 1; i < Math.min(parts.length, 5) && kept < perFile; i++) {
        const v = Number(parts[i]);
        if (Number.isFinite(v)) {
          metrics[`${path.basename(file)}.${parts[0]}.${i}`] = v;
          kept++;
        }
      }
      if (kept >= perFile) break;
    }
  }
  const fs = statfsSync('/');
  metrics['fs./.avail'] = fs.bavail * fs.bsize;
  return { ts: Date.now(), seq, asset: 'host', metrics };
}

/** Without `read`: the first reading again, so a commit and a publish still carry one of the same size. */
const fixed = reading();

function tick() {
  if (!work.size) return;
  const r = work.has('read') ? reading() : { ...fixed, ts: Date.now(), seq };
  const payload = Buffer.from(JSON.stringify(r));
  if (work.has('commit')) commit({ seq: r.seq, ts: r.ts, payload });
  const sent = seq++;
  if (!work.has('publish')) return;
  client?.publish(`floor/${process.pid}/telemetry`, payload, { qos: 1 }, (err) => {
    if (!err) acked = Math.max(acked, sent);
  });
}

// On a grid from the process start, as the agent's sources are (and collectd's reads), unless given one.
const gridAt = gridArg ? Number(gridArg) : Date.now();
const next = () => setTimeout(run, intervalMs - ((((Date.now() - gridAt) % intervalMs) + intervalMs) % intervalMs));
const run = () => {
  tick();
  next();
};
next();
const stop = () => {
  db.close();
  if (client) client.end(false, () => process.exit(0));
  else process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
