#!/usr/bin/env node
// Bytes written to storage per commit by the outbox's commit pattern, in a bare better-sqlite3 database: one row per
// commit appended to a table keyed by seq (schema 6), the `streams` row updated every Nth commit (the
// acknowledgements), WAL, synchronous=FULL, incremental auto-vacuum. write_bytes of this process (/proc/self/io)
// over 1,500 commits after 200. docs/benchmarks.md, "Storage writes: schema 6".
// usage: node scripts/store-write-replay.mjs PAGE_SIZE SAVE_EVERY ROW_BYTES [WAL_AUTOCHECKPOINT] [DIR]
//   e.g. node scripts/store-write-replay.mjs 2048 5 480
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [pageSize, saveEvery, rowBytes, checkpointPages] = process.argv.slice(2, 6).map(Number);
if (!pageSize || !saveEvery || !rowBytes) {
  console.error('usage: node scripts/store-write-replay.mjs PAGE_SIZE SAVE_EVERY ROW_BYTES [WAL_AUTOCHECKPOINT] [DIR]');
  process.exit(2);
}
// A directory on the file system to measure (a tmpfs does not count as storage writes).
const dir = mkdtempSync(path.join(process.argv[6] ?? os.tmpdir(), 'fw-replay-'));
const writeBytes = () => Number(/write_bytes: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))[1]);
try {
  const db = new Database(path.join(dir, 'replay.db'));
  db.pragma(`page_size = ${pageSize}`);
  db.pragma('auto_vacuum = INCREMENTAL');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  if (checkpointPages) db.pragma(`wal_autocheckpoint = ${checkpointPages}`);
  db.exec(`CREATE TABLE streams (name TEXT PRIMARY KEY, next_seq INTEGER, acked_seq INTEGER, sent_total INTEGER);
    CREATE TABLE t (seq INTEGER PRIMARY KEY, id INTEGER NOT NULL, ts INTEGER NOT NULL, asset TEXT NOT NULL, payload BLOB NOT NULL);
    INSERT INTO streams VALUES ('telemetry', 1, 0, 0)`);
  const insert = db.prepare('INSERT INTO t VALUES (?, ?, ?, ?, ?)');
  const save = db.prepare("UPDATE streams SET acked_seq = ?, sent_total = sent_total + ? WHERE name = 'telemetry'");
  let seq = 1;
  const commit = (i) =>
    db.transaction(() => {
      insert.run(seq, seq, Date.now(), 'host', randomBytes(rowBytes));
      if (i >= 0 && i % saveEvery === 0) save.run(seq - 1, saveEvery);
      seq++;
    })();
  for (let i = 0; i < 200; i++) commit(-1);
  const commits = 1500;
  const before = writeBytes();
  for (let i = 0; i < commits; i++) commit(i);
  const perCommit = (writeBytes() - before) / commits;
  console.log(
    `page ${pageSize}, streams row every ${saveEvery}, row ${rowBytes} B, wal_autocheckpoint ${checkpointPages || 1000}: ` +
      `${perCommit.toFixed(0)} B per commit = ${(perCommit / 1200).toFixed(2)}x a 1.2 kB reading`,
  );
  db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
