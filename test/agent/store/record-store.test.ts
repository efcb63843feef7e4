import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { DB_FILE, RecordStore, isStorageFull } from '../../../agent/src/store/record-store.js';
import { outboxContract } from './outbox-contract.js';
import { waitFor } from '../../helpers/wait.js';
import { incompressible } from '../../helpers/seeded-random.js';

const dirs: string[] = [];
function freshDir(): string {
  const d = path.join(mkdtempSync(path.join(tmpdir(), 'fw-store-')), 'data');
  dirs.push(d);
  return d;
}
const open: RecordStore[] = [];
function store(dir: string): RecordStore {
  const s = new RecordStore({ dir });
  open.push(s);
  return s;
}
afterEach(() => open.splice(0).forEach((s) => s.close()));

outboxContract('SQLite, synchronous=full', { location: freshDir, open: (dir) => new RecordStore({ dir, synchronous: 'full' }) });
outboxContract('SQLite, synchronous=normal', { location: freshDir, open: (dir) => new RecordStore({ dir, synchronous: 'normal' }) });

const reading = (asset: string, n: number) => ({ stream: 'telemetry' as const, ts: 1000 + n, asset, payload: { n } });

describe('RecordStore', () => {
  it('keeps rows another output has not read past its position, saves that position, and frees them under the quota', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-store-hold-'));
    const store = new RecordStore({ dir });
    const row = (v: number) => ({ stream: 'telemetry' as const, ts: v, asset: 'a', payload: { v } });
    store.append([row(1)]);
    // A position seen for the first time starts at the end: the row before it is not held.
    const start = store.holdFor('sparkplug', ['telemetry', 'alerts']);
    expect(start.get('telemetry')).toBe(1);
    const seqs = store.append([row(2), row(3), row(4)]);
    store.markSent(
      'telemetry',
      store.recordsAfter('telemetry', 0, 10).map((r) => r.seq),
    );
    expect(store.purgeSent(Number.MAX_SAFE_INTEGER)).toBe(1);
    store.saveOutputCursors('sparkplug', new Map([['telemetry', seqs[0]!]]));
    expect(store.purgeSent(Number.MAX_SAFE_INTEGER)).toBe(1);
    expect(store.recordsAfter('telemetry', 0, 10).map((r) => r.seq)).toEqual([seqs[1], seqs[2]]);
    // The position survives a reopen; released, it holds nothing.
    store.close();
    const again = new RecordStore({ dir });
    expect(again.holdFor('sparkplug', ['telemetry']).get('telemetry')).toBe(seqs[0]);
    expect(again.enforceQuota({ maxBytes: 1, minFreeBytes: 0 }).filter((r) => r.stream === 'telemetry')).toEqual([]);
    expect(again.recordsAfter('telemetry', 0, 10)).toEqual([]);
    again.close();
  });

  it('returns the newest risk record per asset and model', () => {
    const s = store(freshDir());
    s.append([
      { stream: 'risk', ts: 1, asset: 'm1', payload: { model: 'x', score: 0.1 } },
      { stream: 'risk', ts: 2, asset: 'm1', payload: { model: 'x', score: 0.2 } },
      { stream: 'risk', ts: 3, asset: 'm1', payload: { model: 'y', score: 0.3 } },
      { stream: 'risk', ts: 4, asset: 'm2', payload: { model: 'x', score: 0.4 } },
    ]);
    expect(s.latestRisk().map((r) => [r.asset, r.payload.model, r.payload.score])).toEqual([
      ['m1', 'x', 0.2],
      ['m1', 'y', 0.3],
      ['m2', 'x', 0.4],
    ]);
  });

  it('creates its directory 0700 and the database 0600', () => {
    const dir = freshDir();
    const s = store(dir);
    s.append([reading('a', 1)]);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(s.file).mode & 0o777).toBe(0o600);
  });

  it('keeps a boot sequence number across opens', () => {
    const dir = freshDir();
    const s = store(dir);
    expect(s.nextBootSeq()).toBe(1);
    s.close();
    expect(store(dir).nextBootSeq()).toBe(2);
  });

  it('opens read-only for status without creating anything, and says when there is no database', () => {
    const dir = freshDir();
    expect(() => new RecordStore({ dir, readonly: true })).toThrow(/no database here yet/);
    store(dir).append([reading('a', 1)]);
    const ro = new RecordStore({ dir, readonly: true });
    open.push(ro);
    expect(ro.counts().find((c) => c.stream === 'telemetry')!.pending).toBe(1);
  });

  it('read-only, refuses a file of another schema with what to do, and leaves it as it is', () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    const old = new Database(path.join(dir, DB_FILE));
    old.exec('CREATE TABLE records (id INTEGER PRIMARY KEY); PRAGMA user_version = 5;');
    old.close();
    expect(() => new RecordStore({ dir, readonly: true })).toThrow(
      expect.objectContaining({ code: 'FW_ERR_STORAGE_OPEN', message: expect.stringMatching(/schema 5.*start the agent once/) }),
    );
    const check = new Database(path.join(dir, DB_FILE), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(5);
    check.close();
  });

  it('sets a file that is not a database aside, starts a fresh one and says so in an event', () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, DB_FILE), 'this is not a database, it is a text file that happens to be here\n'.repeat(100));
    const s = store(dir);
    expect(s.recovered?.reason).toMatch(/SQLITE_NOTADB/);
    expect(existsSync(s.recovered!.setAside)).toBe(true);
    expect(readdirSync(dir).filter((f) => f.includes('.bad-'))).toHaveLength(1);
    const [event] = s.pending('events');
    const before = Date.now() * 1000;
    expect(event!.payload).toMatchObject({ type: 'storage-recovered', setAside: s.recovered!.setAside, firstSeq: event!.seq });
    // Seqs go on from the clock, never from 1: a subscriber holding the old file's seqs must not take these for duplicates.
    const [seq] = s.append([reading('a', 1)]);
    expect(seq).toBe(event!.payload.firstSeq);
    expect(seq).toBeLessThanOrEqual(before);
    expect(seq).toBeGreaterThan(before - 60_000_000);
    expect(s.counts().find((c) => c.stream === 'telemetry')).toMatchObject({ firstSeq: seq, lastSeq: seq });
    expect(s.nextBootSeq()).toBeGreaterThan(1_700_000_000);
  });

  it('sets a database with damaged pages aside', () => {
    const dir = freshDir();
    const s = store(dir);
    s.append(Array.from({ length: 2000 }, (_, i) => ({ ...reading('a', i), payload: { n: i, pad: incompressible(200, i) } })));
    s.close();
    // Scribble over pages in the middle of the file, as a failing disk or a torn write would.
    const file = path.join(dir, DB_FILE);
    const size = statSync(file).size;
    const buf = Buffer.alloc(16384, 0xa5);
    execFileSync('dd', [`of=${file}`, 'bs=4096', `seek=${Math.floor(size / 4096 / 2)}`, 'conv=notrunc', 'status=none'], { input: buf });
    const again = store(dir);
    expect(again.recovered?.reason).toMatch(/SQLITE_CORRUPT|integrity|malformed/);
    const t = again.counts().find((c) => c.stream === 'telemetry')!;
    expect([t.pending, t.lastSeq]).toEqual([0, t.firstSeq - 1]);
  });

  it('sets aside a database another program keeps locked past the busy timeout', async () => {
    const dir = freshDir();
    store(dir).append([reading('a', 1)]);
    open.splice(0).forEach((s) => s.close());
    const file = path.join(dir, DB_FILE);
    // Another process holds an exclusive lock and does not let go.
    const holder = spawn(
      process.execPath,
      [
        '-e',
        `const D=require(${JSON.stringify(createRequire(import.meta.url).resolve('better-sqlite3'))});const d=new D(${JSON.stringify(file)});d.pragma('locking_mode=EXCLUSIVE');d.exec('BEGIN EXCLUSIVE');d.exec("INSERT INTO meta VALUES('x','y')");console.log('locked');setInterval(()=>{},1000)`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    holder.stdout.on('data', (d) => (out += String(d)));
    try {
      await waitFor(() => out.includes('locked'), 'the other process to lock the database');
      const s = store(dir);
      expect(s.recovered?.reason).toMatch(/SQLITE_BUSY|locked/);
      expect(s.append([reading('a', 2)])[0]).toBeGreaterThan(1_700_000_000_000_000);
    } finally {
      holder.kill('SIGKILL');
    }
  }, 20_000);

  it('migrates a version-1 database to incremental auto-vacuum, keeping its records and seqs', () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    const db = new Database(path.join(dir, DB_FILE));
    db.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE streams (name TEXT PRIMARY KEY, next_seq INTEGER NOT NULL, sent_total INTEGER NOT NULL DEFAULT 0, last_sent_ts INTEGER);
      CREATE TABLE records (id INTEGER PRIMARY KEY, stream TEXT NOT NULL, seq INTEGER NOT NULL, priority INTEGER NOT NULL, ts INTEGER NOT NULL,
        asset TEXT NOT NULL, payload TEXT NOT NULL, sent_ts INTEGER, UNIQUE (stream, seq));
      CREATE INDEX records_pending ON records (stream, id) WHERE sent_ts IS NULL;
      CREATE INDEX records_sent ON records (sent_ts) WHERE sent_ts IS NOT NULL;
      CREATE INDEX records_latest ON records (stream, asset, id);
      CREATE TABLE active_alerts (key TEXT PRIMARY KEY, state TEXT NOT NULL);
      INSERT INTO streams VALUES ('telemetry', 8, 6, 5);
      INSERT INTO records (stream, seq, priority, ts, asset, payload) VALUES ('telemetry', 7, 3, 1, 'a', '{"n":7}');
      PRAGMA user_version = 1;
    `);
    db.close();
    const s = store(dir);
    expect(s.pending('telemetry').map((r) => r.seq)).toEqual([7]);
    expect(s.append([reading('a', 8)])).toEqual([8]);
    expect(s.counts().find((c) => c.stream === 'telemetry')).toMatchObject({ sentTotal: 6, droppedTotal: 0 });
    s.close();
    const check = new Database(path.join(dir, DB_FILE), { readonly: true });
    expect(check.pragma('auto_vacuum', { simple: true })).toBe(2);
    check.close();
  });

  it('gives freed pages back to the file system in small steps', () => {
    const s = store(freshDir());
    s.append(Array.from({ length: 3000 }, (_, i) => ({ ...reading('a', i), payload: { pad: incompressible(1000, i) } })));
    const batch = s.nextBatch({ maxRecords: 3000, maxBytes: 1 << 30 })!;
    s.markSent(
      'telemetry',
      batch.records.map((r) => r.seq),
    );
    s.purgeSent(Number.MAX_SAFE_INTEGER, 10_000);
    const before = s.usage();
    expect(before.reclaimableBytes).toBeGreaterThan(1 << 20);
    expect(s.vacuumStep(16)).toBe(16);
    let steps = 1;
    while (s.vacuumStep(64) > 0) steps++;
    expect(steps).toBeGreaterThan(3);
    expect(s.usage().reclaimableBytes).toBe(0);
  });

  it('on a full disk, makes room by the drop policy so the next write succeeds', () => {
    const s = store(freshDir());
    const dir = path.dirname(s.file);
    s.close();
    open.splice(0);
    const full = new RecordStore({ dir, maxPages: 400 });
    open.push(full);
    let failure: unknown;
    for (let i = 0; i < 10_000 && !failure; i++) {
      try {
        full.append(Array.from({ length: 20 }, (_, k) => ({ ...reading('a', i * 20 + k), payload: { pad: incompressible(300, i * 20 + k) } })));
      } catch (err) {
        failure = err;
      }
    }
    expect(isStorageFull(failure)).toBe(true);
    expect(isStorageFull(new Error('disk I/O error'))).toBe(false);
    const [drop] = full.enforceQuota({ maxBytes: 0, minFreeBytes: 0 }, new Map(), 'disk-full');
    expect(drop).toMatchObject({ stream: 'telemetry', reason: 'disk-full' });
    expect(full.append([reading('a', 1)])).toHaveLength(1);
    const notices = full.pending('events').map((e) => e.payload);
    expect(notices.every((e) => e.type === 'records-dropped' && e.reason === 'disk-full')).toBe(true);
    expect(notices.reduce((n, e) => n + Number(e.count), 0)).toBe(drop!.count);
  });

  it('under the free-space floor, drops by the same policy and hands the pages back to the file system', () => {
    const s = store(freshDir());
    s.append(Array.from({ length: 3000 }, (_, i) => ({ ...reading('a', i), payload: { pad: incompressible(400, i) } })));
    const u = s.usage();
    // A floor just above what is free now: only giving pages back to the file system can meet it.
    const floor = u.freeBytes + Math.floor(u.usedBytes / 2);
    const reports = s.enforceQuota({ maxBytes: 0, minFreeBytes: floor });
    expect(reports.map((r) => [r.stream, r.reason])).toEqual([['telemetry', 'free-space']]);
    const after = s.usage();
    expect(after.reclaimableBytes).toBe(0);
    expect(after.fileBytes + after.walBytes).toBeLessThan(u.fileBytes + u.walBytes);
  });
});
