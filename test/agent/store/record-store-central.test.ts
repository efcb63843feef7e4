import { existsSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { DB_FILE, RecordStore, type StoredRecord } from '../../../agent/src/store/record-store.js';
import { SEQ_BLOCK, SEQ_EPOCH_FILE, SeqEpoch } from '../../../agent/src/store/seq-epoch.js';
import type { StreamName } from '../../../agent/src/store/outbox.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { fillUp, tmpfsForTest } from '../../helpers/tmpfs.js';

/** The epoch's clock in these tests (ms): seqs of a first database start at T * 1000. */
const T = 1_700_000_000_000;
const BASE = T * 1000;

const cleanup = cleanupAfterEach();
const opened: RecordStore[] = [];
afterEach(() => opened.splice(0).forEach((s) => s.close()));

const freshDir = () => path.join(mkdtempSync(path.join(tmpdir(), 'fw-central-store-')), 'data');
function open(dir: string, clock: () => number = () => T): RecordStore {
  const s = new RecordStore({ dir, epoch: new SeqEpoch(dir, clock) });
  opened.push(s);
  return s;
}

const tele = (n: number, pad = 0) => ({ stream: 'telemetry' as const, ts: 1000 + n, asset: 'm1', payload: { n, ...(pad ? { pad: 'x'.repeat(pad) } : {}) } });
const risk = (n: number) => ({ stream: 'risk' as const, ts: 1000 + n, asset: 'm1', payload: { n, model: 'mf', score: 0.5 } });
const alert = (n: number) => ({ stream: 'alerts' as const, ts: 1000 + n, asset: 'm1', payload: { n, alertId: `a/${n}`, state: 'raised' } });
const event = (type: string, extra: Record<string, unknown> = {}) => ({ stream: 'events' as const, ts: 1, asset: '', payload: { ts: 1, type, ...extra } });

/** The pending rows of a stream as [seq, payload]: what a subscriber would get. */
const held = (s: RecordStore, stream: StreamName) => s.pending(stream).map((r) => [r.seq, r.payload] as const);
const idsOf = (s: RecordStore, stream: StreamName) => s.pending(stream).map((r) => r.seq);
const recovered = (s: RecordStore) => s.pending('events').filter((e) => e.payload.type === 'storage-recovered');
const countsOf = (s: RecordStore, stream: StreamName) => s.counts().find((c) => c.stream === stream)!;
const rmDb = (file: string, suffixes = ['', '-wal', '-shm']) => suffixes.forEach((x) => rmSync(file + x, { force: true }));

describe('RecordStore with a seq epoch: fresh databases', () => {
  it('a first open counts every stream from the epoch base and says so in a storage-recovered event (created)', () => {
    const dir = freshDir();
    const s = open(dir);
    expect(s.firstSeq).toBe(BASE);
    const [ev, ...more] = recovered(s);
    expect(more).toEqual([]);
    expect(ev!.seq).toBe(BASE);
    expect(ev!.payload).toMatchObject({ type: 'storage-recovered', cause: 'created', setAside: '', firstSeq: BASE });
    expect(String(ev!.payload.reason)).toMatch(/no database yet/);
    expect(ev!.payload).not.toHaveProperty('carried');

    expect(s.append([tele(1), tele(2), tele(3)])).toEqual([BASE, BASE + 1, BASE + 2]);
    expect(s.append([alert(1)])).toEqual([BASE]);
    expect(countsOf(s, 'telemetry')).toMatchObject({ firstSeq: BASE, lastSeq: BASE + 2 });
    expect(countsOf(s, 'risk')).toMatchObject({ firstSeq: BASE, lastSeq: BASE - 1 });
    // The reservation on disk lies above everything assigned.
    expect(new SeqEpoch(dir).ceiling).toBeGreaterThanOrEqual(BASE + SEQ_BLOCK);

    // Opening the same file again is not a fresh start: no event, seqs go on.
    s.close();
    const again = open(dir);
    expect(recovered(again)).toHaveLength(1);
    expect(again.firstSeq).toBe(BASE);
    expect(again.append([tele(4)])).toEqual([BASE + 3]);
  });

  it('a database deleted while the agent was stopped: the next one counts on above every seq of it, even with the clock in 1970', () => {
    const dir = freshDir();
    const s1 = open(dir);
    const old = s1.append(Array.from({ length: 5 }, (_, i) => tele(i)));
    const boot = s1.nextBootSeq();
    const ceiling = new SeqEpoch(dir).ceiling;
    s1.close();
    rmDb(path.join(dir, DB_FILE));

    const s2 = open(dir, () => 0);
    expect(s2.firstSeq).toBeGreaterThan(Math.max(...old));
    expect(s2.firstSeq).toBeGreaterThan(ceiling);
    const [ev] = recovered(s2);
    expect(ev!.payload).toMatchObject({ cause: 'created', firstSeq: s2.firstSeq });
    expect(String(ev!.payload.reason)).toMatch(/missing/);
    expect(s2.append([tele(9)])).toEqual([s2.firstSeq]);
    // Boot numbers never go back either.
    expect(s2.nextBootSeq()).toBeGreaterThan(boot);
  });

  it('a damaged database set aside at start: the fresh one says cause damaged and counts above the old one', () => {
    const dir = freshDir();
    const s1 = open(dir);
    const old = s1.append([tele(1), tele(2)]);
    s1.close();
    writeFileSync(path.join(dir, DB_FILE), 'not a database at all\n'.repeat(200));
    const s2 = open(dir, () => 0);
    expect(s2.recovered?.reason).toMatch(/SQLITE_NOTADB/);
    const [ev] = recovered(s2);
    expect(ev!.payload).toMatchObject({ cause: 'damaged', setAside: s2.recovered!.setAside, firstSeq: s2.firstSeq });
    expect(s2.firstSeq).toBeGreaterThan(Math.max(...old));
  });

  it('the epoch file lost while the database stayed: the reservation is rebuilt from the database at open', () => {
    const dir = freshDir();
    const s1 = open(dir);
    const old = s1.append(Array.from({ length: 3 }, (_, i) => tele(i)));
    s1.close();
    rmSync(path.join(dir, SEQ_EPOCH_FILE));
    const s2 = open(dir, () => 0);
    expect(s2.firstSeq).toBe(BASE);
    expect(new SeqEpoch(dir).ceiling).toBeGreaterThan(Math.max(...old));
    s2.close();
    rmDb(path.join(dir, DB_FILE));
    expect(open(dir, () => 0).firstSeq).toBeGreaterThan(Math.max(...old));
  });

  it('reserves seqs on disk before it assigns one past the reservation', () => {
    const dir = freshDir();
    // A database from before the epoch existed: seqs from 1.
    const plain = new RecordStore({ dir });
    plain.append(Array.from({ length: 10 }, (_, i) => tele(i)));
    plain.close();
    writeFileSync(path.join(dir, SEQ_EPOCH_FILE), JSON.stringify({ ceiling: 12, boot: 0 }));
    const s = open(dir, () => 0);
    expect(s.firstSeq).toBe(1);
    expect(new SeqEpoch(dir).ceiling).toBe(12);
    const seqs = s.append(Array.from({ length: 5 }, (_, i) => tele(10 + i)));
    expect(seqs).toEqual([11, 12, 13, 14, 15]);
    // Committed past 12 only after the reservation moved above them.
    expect(new SeqEpoch(dir).ceiling).toBeGreaterThan(15);
    s.close();
    rmDb(path.join(dir, DB_FILE));
    expect(open(dir, () => 0).firstSeq).toBeGreaterThan(15);
  });
});

describe('RecordStore: the database file deleted or replaced while open', () => {
  /** A store with acknowledged, published and unpublished rows, an active alert and saved state. */
  function populated(dir: string) {
    const s = open(dir);
    s.append(Array.from({ length: 6 }, (_, i) => tele(i)));
    s.append([risk(1)]);
    const ids = idsOf(s, 'telemetry');
    s.markSent('telemetry', ids.slice(0, 2)); // acknowledged: not carried
    s.markPublished('telemetry', ids.slice(2, 4), 5000); // at the broker, waiting for the centre
    s.commitAlerts([{ ts: 7, asset: 'm1', payload: { alertId: 'k1', state: 'raised' } }], { set: [{ key: 'k1', state: { x: 1 } }] });
    s.setMeta('model.state', 'abc');
    const boot = s.nextBootSeq();
    return { s, boot };
  }

  it('deleted with its -wal and -shm: detected, and everything unacknowledged moves into a fresh file under its old seqs', () => {
    const dir = freshDir();
    const { s, boot } = populated(dir);
    expect(s.replacedOnDisk()).toBeNull();
    rmDb(s.file);
    expect(s.replacedOnDisk()).toMatch(/deleted/);
    // The agent keeps committing until its housekeeping notices: that row must come along too.
    const [late] = s.append([tele(99)]);
    expect(late).toBe(BASE + 6);
    const before = { telemetry: held(s, 'telemetry'), risk: held(s, 'risk'), alerts: held(s, 'alerts'), events: held(s, 'events') };
    expect(before.telemetry.map(([q]) => q)).toEqual([BASE + 2, BASE + 3, BASE + 4, BASE + 5, BASE + 6]);
    const ceiling = new SeqEpoch(dir).ceiling;

    const r = s.replaceFile('test: the file was deleted');
    expect(r).toMatchObject({ reason: 'test: the file was deleted', setAside: '', carried: 5 + 1 + 1 + 1 });
    expect(r.firstSeq).toBeGreaterThan(ceiling - 1);
    expect(r.firstSeq).toBeGreaterThan(BASE + 6);
    expect(s.firstSeq).toBe(r.firstSeq);
    expect(existsSync(s.file)).toBe(true);
    expect(s.replacedOnDisk()).toBeNull();

    // Same seqs, same payloads, in the same order.
    expect(held(s, 'telemetry')).toEqual(before.telemetry);
    expect(held(s, 'risk')).toEqual(before.risk);
    expect(held(s, 'alerts')).toEqual(before.alerts);
    const events = held(s, 'events');
    expect(events.slice(0, -1)).toEqual(before.events);
    expect(events.at(-1)).toEqual([
      r.firstSeq,
      expect.objectContaining({
        type: 'storage-recovered',
        cause: 'removed',
        reason: 'test: the file was deleted',
        setAside: '',
        firstSeq: r.firstSeq,
        carried: 8,
      }),
    ]);
    expect(s.activeAlerts()).toEqual([{ key: 'k1', state: { x: 1 } }]);
    expect(s.getMeta('model.state')).toBe('abc');
    expect(s.nextBootSeq()).toBeGreaterThan(boot);
    expect(countsOf(s, 'telemetry')).toMatchObject({ pending: 5, sentTotal: 2 });
    // Acknowledged rows stayed behind.
    expect(s.heldRecords('telemetry', BASE, BASE + 1, 10)).toEqual([]);

    // New rows count from the new base, above every old one.
    expect(s.append([tele(100)])).toEqual([r.firstSeq]);
    expect(s.append([risk(2)])).toEqual([r.firstSeq]);
    expect(s.append([alert(2)])).toEqual([r.firstSeq]);

    // Carried rows go again, whatever the broker had taken (the centre is told to wait for them: carriedRanges),
    // and only the broker's new acknowledgement lets the centre's watermark release them.
    const cursor = s.publishedCursors().get('telemetry')!;
    const batch = s.nextBatch({
      maxRecords: 100,
      maxBytes: 1 << 20,
      cursors: new Map([['telemetry', cursor]]),
      skip: new Set<StreamName>(['alerts', 'risk', 'events']),
    })!;
    expect(batch.records.map((x) => x.seq)).toEqual([BASE + 2, BASE + 3, BASE + 4, BASE + 5, BASE + 6, r.firstSeq]);
    expect(recovered(s).at(-1)!.payload.carriedRanges).toMatchObject({ telemetry: [[BASE + 2, BASE + 6]] });
    expect(s.confirm('telemetry', BASE + 5)).toBe(0);
    s.markPublished(
      'telemetry',
      batch.records.map((x) => x.seq),
    );
    expect(s.confirm('telemetry', BASE + 5)).toBe(4);

    // The new file holds it all: a restart finds the same state and no new fresh start.
    s.close();
    const again = open(dir);
    expect(again.firstSeq).toBe(r.firstSeq);
    expect(held(again, 'telemetry').map(([q]) => q)).toEqual([BASE + 6, r.firstSeq]);
    expect(recovered(again)).toHaveLength(2);
    expect(again.activeAlerts()).toEqual([{ key: 'k1', state: { x: 1 } }]);
  });

  it('the main file deleted, its -wal left behind: the same, and the fresh file is not mixed with the old WAL', () => {
    const dir = freshDir();
    const { s } = populated(dir);
    const before = held(s, 'telemetry');
    rmSync(s.file);
    expect(s.replacedOnDisk()).toMatch(/deleted/);
    const r = s.replaceFile('gone');
    expect(r.carried).toBe(4 + 1 + 1 + 1);
    expect(held(s, 'telemetry')).toEqual(before);
    expect(s.append([tele(7)])).toEqual([r.firstSeq]);
    s.close();
    const again = open(dir);
    expect(again.firstSeq).toBe(r.firstSeq);
    expect(held(again, 'telemetry').map(([q]) => q)).toEqual([...before.map(([q]) => q), r.firstSeq]);
  });

  /** Another database, with 7 risk rows of asset `foreign`, moved over our path (a new inode). */
  function foreignOver(file: string): void {
    const odir = freshDir();
    const o = new RecordStore({ dir: odir });
    o.append(Array.from({ length: 7 }, (_, i) => ({ stream: 'risk' as const, ts: i, asset: 'foreign', payload: { i } })));
    o.close();
    renameSync(path.join(odir, DB_FILE), file);
  }

  it('replaced by another file: the stranger is set aside as .foreign-…, not trusted, and our rows carry on', () => {
    const dir = freshDir();
    const { s } = populated(dir);
    const before = held(s, 'telemetry');
    foreignOver(s.file);
    expect(s.replacedOnDisk()).toMatch(/replaced/);
    const r = s.replaceFile('replaced under us');
    expect(path.basename(r.setAside)).toMatch(/^forewarn\.db\.foreign-/);
    expect(existsSync(r.setAside)).toBe(true);
    expect(r.carried).toBe(4 + 1 + 1 + 1);
    expect(held(s, 'telemetry')).toEqual(before);
    expect(s.pending('risk').map((x) => x.asset)).toEqual(['m1']);
    expect(recovered(s).at(-1)!.payload).toMatchObject({ cause: 'removed', setAside: r.setAside, carried: 7, firstSeq: r.firstSeq });
    expect(s.replacedOnDisk()).toBeNull();
  });

  it('replaced by another file: the set-aside file keeps its own content (our old -wal is not set aside with it)', () => {
    const dir = freshDir();
    const { s } = populated(dir);
    // Rows still in our WAL, not yet checkpointed into our (now unlinked) file.
    s.append(Array.from({ length: 50 }, (_, i) => tele(200 + i)));
    foreignOver(s.file);
    const r = s.replaceFile('replaced under us');
    // Checked before opening it: opening a WAL database creates its own -wal.
    expect(readdirSync(dir).filter((f) => f.startsWith(`${path.basename(r.setAside)}-wal`))).toEqual([]);
    const aside = new Database(r.setAside, { readonly: true });
    try {
      // Opened as it was left: the stranger's 7 risk rows, none of ours.
      expect(aside.prepare('SELECT stream, asset, COUNT(*) AS n FROM records GROUP BY stream, asset').all()).toEqual([
        { stream: 'risk', asset: 'foreign', n: 7 },
      ]);
    } finally {
      aside.close();
    }
  });
});

describe('RecordStore: central acknowledgement', () => {
  it('confirm releases only rows the broker took (markPublished) with seq ≤ through, and counts each once', () => {
    const s = open(freshDir());
    s.append(Array.from({ length: 5 }, (_, i) => tele(i)));
    const ids = idsOf(s, 'telemetry');
    expect(s.markPublished('telemetry', ids.slice(0, 3), 1000)).toBe(3);
    expect(s.markPublished('telemetry', ids.slice(0, 3), 2000)).toBe(0);
    expect(s.unconfirmedTotal()).toBe(3);
    // Published is not acknowledged: still pending.
    expect(countsOf(s, 'telemetry')).toMatchObject({ pending: 5, sentTotal: 0 });

    // Through BASE+3: BASE+3 itself never left, so it stays.
    expect(s.confirm('telemetry', BASE + 3, 3000)).toBe(3);
    expect(countsOf(s, 'telemetry')).toMatchObject({ pending: 2, sentTotal: 3, lastSentTs: 3000 });
    expect(s.pending('telemetry').map((r) => r.seq)).toEqual([BASE + 3, BASE + 4]);
    expect(s.confirm('telemetry', BASE + 4)).toBe(0);
    expect(s.confirm('telemetry', BASE + 3)).toBe(0);

    // Another stream's watermark does not touch this one.
    s.markPublished('telemetry', ids.slice(3), 4000);
    expect(s.confirm('risk', Number.MAX_SAFE_INTEGER)).toBe(0);
    expect(countsOf(s, 'telemetry').pending).toBe(2);
    expect(s.confirm('telemetry', BASE + 3)).toBe(1);
    expect(countsOf(s, 'telemetry')).toMatchObject({ pending: 1, sentTotal: 4 });
    expect(s.unconfirmedTotal()).toBe(1);
    // markSent (broker mode) on a confirmed row counts nothing more.
    expect(s.markSent('telemetry', ids.slice(0, 3))).toBe(0);
    expect(countsOf(s, 'telemetry').sentTotal).toBe(4);
  });

  it('publishedCursors: a new connection starts after the rows the broker already took, per stream', () => {
    const s = open(freshDir());
    // Interleaved: ids are shared between streams.
    s.append([tele(1), risk(1), tele(2), risk(2), tele(3), tele(4)]);
    const t = idsOf(s, 'telemetry');
    const r = idsOf(s, 'risk');
    s.markPublished('telemetry', t.slice(0, 2));
    s.markPublished('risk', r);
    const cursors = s.publishedCursors();
    expect(cursors.get('telemetry')).toBe(t[2]! - 1);
    expect(cursors.get('risk')).toBe(r[1]);
    expect(cursors.get('alerts')).toBe(0);
    // The created event never left.
    expect(cursors.get('events')).toBe(idsOf(s, 'events')[0]! - 1);

    const skip = (keep: StreamName) => new Set<StreamName>(['alerts', 'risk', 'events', 'telemetry'].filter((x) => x !== keep) as StreamName[]);
    expect(s.nextBatch({ maxRecords: 10, maxBytes: 1 << 20, cursors, skip: skip('telemetry') })!.records.map((x) => x.seq)).toEqual([BASE + 2, BASE + 3]);
    expect(s.nextBatch({ maxRecords: 10, maxBytes: 1 << 20, cursors, skip: skip('risk') })).toBeNull();

    // Confirmed rows are no longer pending; the cursor stays before the first unpublished one.
    s.confirm('telemetry', BASE + 1);
    expect(s.publishedCursors().get('telemetry')).toBe(t[2]! - 1);
    s.markPublished('telemetry', t.slice(2));
    expect(s.publishedCursors().get('telemetry')).toBe(t[3]);
  });

  it('heldRecords: the rows still in the file for a seq range, acknowledged or not, in seq order', () => {
    const s = open(freshDir());
    s.append(Array.from({ length: 6 }, (_, i) => tele(i)));
    const ids = idsOf(s, 'telemetry');
    s.markSent('telemetry', ids.slice(0, 2), 10);
    s.markSent('telemetry', [ids[4]!], 20);
    const all = s.heldRecords('telemetry', BASE, BASE + 5, 100);
    expect(all.map((r) => r.seq)).toEqual([BASE, BASE + 1, BASE + 2, BASE + 3, BASE + 4, BASE + 5]);
    expect(all[2]).toMatchObject({ stream: 'telemetry', asset: 'm1', ts: 1002 });
    expect(JSON.parse(all[2]!.json)).toEqual({ n: 2 });
    expect(s.heldRecords('telemetry', BASE + 1, BASE + 3, 100).map((r) => r.seq)).toEqual([BASE + 1, BASE + 2, BASE + 3]);
    expect(s.heldRecords('telemetry', BASE, BASE + 5, 2).map((r) => r.seq)).toEqual([BASE, BASE + 1]);
    expect(s.heldRecords('telemetry', BASE, BASE + 5, 100, true).map((r) => r.seq)).toEqual([BASE + 2, BASE + 3, BASE + 5]);
    expect(s.heldRecords('risk', BASE, BASE + 5, 100)).toEqual([]);
    // Purged rows are gone for good.
    s.purgeSent(15);
    expect(s.heldRecords('telemetry', BASE, BASE + 5, 100).map((r) => r.seq)).toEqual([BASE + 2, BASE + 3, BASE + 4, BASE + 5]);
  });

  it('unconfirmedAbove: the seq range the broker took before a time, above a seq, still unconfirmed', () => {
    const s = open(freshDir());
    s.append(Array.from({ length: 5 }, (_, i) => tele(i)));
    const ids = idsOf(s, 'telemetry');
    s.markPublished('telemetry', ids.slice(0, 2), 1000);
    s.markPublished('telemetry', ids.slice(2, 4), 5000);
    expect(s.unconfirmedAbove('telemetry', 0, 1000)).toBeNull();
    expect(s.unconfirmedAbove('telemetry', 0, 2000)).toEqual({ lo: BASE, hi: BASE + 1 });
    expect(s.unconfirmedAbove('telemetry', 0, 6000)).toEqual({ lo: BASE, hi: BASE + 3 });
    expect(s.unconfirmedAbove('telemetry', BASE, 6000)).toEqual({ lo: BASE + 1, hi: BASE + 3 });
    // BASE+4 never left: it is not the centre's to confirm.
    expect(s.unconfirmedAbove('telemetry', BASE + 3, Number.MAX_SAFE_INTEGER)).toBeNull();
    expect(s.unconfirmedAbove('risk', 0, Number.MAX_SAFE_INTEGER)).toBeNull();
    s.confirm('telemetry', BASE + 1);
    expect(s.unconfirmedAbove('telemetry', 0, 6000)).toEqual({ lo: BASE + 2, hi: BASE + 3 });
  });
});

describe('RecordStore: the drop policy with central acknowledgement', () => {
  it('drops published-but-unconfirmed rows (announced), never unpublished rows in flight, alerts or announcements', () => {
    const s = open(freshDir());
    s.append(Array.from({ length: 30 }, (_, i) => tele(i, 200)));
    s.append([alert(1), alert(2), alert(3)]);
    s.append([event('source-state'), event('records-unavailable', { stream: 'risk', ranges: [[1, 2]], reason: 'purged' }), event('source-state')]);
    const t = idsOf(s, 'telemetry');
    // At the broker, waiting for the centre: may go, announced.
    s.markPublished('telemetry', t.slice(0, 10));
    // Handed out on this connection up to t[19]: t[10..19] may be at the broker, their PUBACK on its way.
    const inflight = new Map<StreamName, number>([['telemetry', t[19]!]]);

    const reports = s.enforceQuota({ maxBytes: 1, minFreeBytes: 0 }, inflight);
    const byStream = new Map(reports.map((r) => [r.stream, r]));
    expect(byStream.get('telemetry')).toEqual({
      stream: 'telemetry',
      count: 20,
      reason: 'quota',
      ranges: [
        [BASE, BASE + 9],
        [BASE + 20, BASE + 29],
      ],
    });
    expect(byStream.has('alerts')).toBe(false);
    expect(s.pending('telemetry').map((r) => r.seq)).toEqual(Array.from({ length: 10 }, (_, i) => BASE + 10 + i));
    expect(s.pending('alerts')).toHaveLength(3);
    expect(countsOf(s, 'telemetry').droppedTotal).toBe(20);

    // Events: the ordinary ones go; the storage-recovered, records-unavailable and records-dropped ones stay.
    expect(byStream.get('events')).toMatchObject({
      count: 2,
      ranges: [
        [BASE + 1, BASE + 1],
        [BASE + 3, BASE + 3],
      ],
    });
    const types = s.pending('events').map((e) => e.payload.type);
    expect(types.filter((x) => x === 'source-state')).toEqual([]);
    expect(types).toEqual(['storage-recovered', 'records-unavailable', 'records-dropped', 'records-dropped']);
    const notice = s.pending('events').find((e) => e.payload.type === 'records-dropped' && e.payload.stream === 'telemetry')!;
    expect(notice.payload).toMatchObject({
      count: 20,
      ranges: [
        [BASE, BASE + 9],
        [BASE + 20, BASE + 29],
      ],
      reason: 'quota',
    });

    // Even with nothing else left, a second pass drops nothing more.
    expect(s.enforceQuota({ maxBytes: 1, minFreeBytes: 0 }, inflight)).toEqual([]);
    expect(s.pending('alerts')).toHaveLength(3);
  });

  it('merges a drop into the previous notice only while that notice has not been handed out', () => {
    const dir = freshDir();
    const s = open(dir);
    const tight = { maxBytes: 1, minFreeBytes: 0 };
    s.append(Array.from({ length: 5 }, (_, i) => tele(i)));
    s.enforceQuota(tight);
    s.append(Array.from({ length: 5 }, (_, i) => tele(5 + i)));
    s.enforceQuota(tight);
    const notices = () => s.pending('events').filter((e) => e.payload.type === 'records-dropped');
    expect(notices().map((n) => [n.payload.count, n.payload.ranges])).toEqual([[10, [[BASE, BASE + 9]]]]);

    // Handed out (it may be at the broker now): never changed again.
    const batch = s.nextBatch({ maxRecords: 100, maxBytes: 1 << 20 })!;
    expect(batch.stream).toBe('events');
    s.append(Array.from({ length: 3 }, (_, i) => tele(10 + i)));
    s.enforceQuota(tight);
    expect(notices().map((n) => [n.payload.count, n.payload.ranges])).toEqual([
      [10, [[BASE, BASE + 9]]],
      [3, [[BASE + 10, BASE + 12]]],
    ]);

    // A notice from before a restart may have been handed out by the earlier process: not merged either.
    s.close();
    const again = open(dir);
    again.append([tele(20)]);
    again.enforceQuota(tight);
    expect(
      again
        .pending('events')
        .filter((e) => e.payload.type === 'records-dropped')
        .map((n) => n.payload.count),
    ).toEqual([10, 3, 1]);
  });
});

describe('RecordStore: a write that fails never burns seqs', () => {
  it('commitAlerts failing after its alert records were appended leaves no gap in the alerts stream', () => {
    const dir = freshDir();
    const s = open(dir);
    // Another connection makes the active-set update fail, after the alert record is in (as a full disk may at commit).
    const other = new Database(s.file);
    other.exec(`CREATE TRIGGER refuse BEFORE INSERT ON active_alerts BEGIN SELECT RAISE(ABORT, 'refused for the test'); END`);
    const commit = (n: number) => s.commitAlerts([{ ts: n, asset: 'm1', payload: { n } }], { set: [{ key: 'k', state: { n } }] });
    expect(() => commit(1)).toThrow(/refused for the test/);
    expect(() => commit(2)).toThrow(/refused for the test/);
    expect(s.pending('alerts')).toEqual([]);
    other.exec('DROP TRIGGER refuse');
    other.close();
    commit(3);
    // Contiguous: the first alert ever committed has the stream's first seq.
    expect(s.pending('alerts').map((r: StoredRecord) => r.seq)).toEqual([BASE]);
    expect(countsOf(s, 'alerts')).toMatchObject({ firstSeq: BASE, lastSeq: BASE, pending: 1 });
  });

  /** A store on a real 8 MiB tmpfs, with 100 telemetry rows and one ordinary event, its WAL truncated, the file system then filled. */
  function fullDisk(ctx: TestContext) {
    const fs = tmpfsForTest(ctx, 8, cleanup);
    const s = open(path.join(fs, 'data'));
    s.append(Array.from({ length: 100 }, (_, i) => tele(i)));
    s.append([event('source-state')]);
    // The WAL truncated: the next commit needs new blocks, and there are none.
    s.checkpoint();
    return { s, filler: fillUp(fs) };
  }

  it('on a real full file system, alerts that failed to commit leave no gap once they go in', (ctx) => {
    const { s, filler } = fullDisk(ctx);
    const commit = () => s.commitAlerts([{ ts: 1, asset: 'm1', payload: { n: 1 } }], { set: [{ key: 'k', state: { n: 1 } }] });
    // As HealthMonitor.retryUnsaved does while the disk stays full.
    expect(commit).toThrow(/full/);
    expect(commit).toThrow(/full/);
    expect(s.pending('alerts')).toEqual([]);
    rmSync(filler);
    commit();
    expect(s.pending('alerts').map((r) => r.seq)).toEqual([BASE]);
    expect(countsOf(s, 'alerts')).toMatchObject({ lastSeq: BASE, pending: 1 });
  });

  it('on a real full file system, drops whose commit failed leave no gap in the events stream', (ctx) => {
    const { s, filler } = fullDisk(ctx);
    const drop = () => s.enforceQuota({ maxBytes: 0, minFreeBytes: 0 }, new Map(), 'disk-full');
    expect(drop).toThrow(/full/);
    expect(drop).toThrow(/full/);
    rmSync(filler);
    const reports = drop();
    expect(reports.map((r) => [r.stream, r.count])).toEqual([
      ['telemetry', 100],
      ['events', 1],
    ]);
    // Events: the created event (BASE, kept), the source-state event (BASE+1, dropped and announced), then one
    // notice per stream: every seq from the first to the last is accounted for.
    const events = s.pending('events');
    expect(events.map((e) => [e.seq, e.payload.type])).toEqual([
      [BASE, 'storage-recovered'],
      [BASE + 2, 'records-dropped'],
      [BASE + 3, 'records-dropped'],
    ]);
    expect(events[2]!.payload).toMatchObject({ stream: 'events', ranges: [[BASE + 1, BASE + 1]] });
    expect(countsOf(s, 'events').lastSeq).toBe(BASE + 3);
  });
});
