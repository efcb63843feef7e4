import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RecordStore } from '../../../agent/src/store/record-store.js';

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

const reading = (asset: string, n: number) => ({ stream: 'telemetry' as const, ts: 1000 + n, asset, payload: { n } });

describe('RecordStore', () => {
  it('numbers each stream on its own, contiguously, across reopen and purge', () => {
    const dir = freshDir();
    const s = store(dir);
    expect(s.append([reading('a', 1), reading('a', 2), { stream: 'risk', ts: 5, asset: 'a', payload: {} }, reading('a', 3)])).toEqual([1, 2, 1, 3]);
    const ids = s.nextBatch(10).map((r) => r.id);
    s.markSent('risk', ids);
    s.close();
    const again = store(dir);
    expect(again.purgeSent(Date.now() + 1)).toBe(1);
    expect(again.append([reading('a', 4)])).toEqual([4]);
    expect(again.append([{ stream: 'risk', ts: 6, asset: 'a', payload: {} }])).toEqual([2]);
  });

  it('drains in priority order: alerts, then risk, then telemetry', () => {
    const s = store(freshDir());
    s.append([reading('a', 1), { stream: 'risk', ts: 2, asset: 'a', payload: { r: 1 } }, { stream: 'alerts', ts: 3, asset: 'a', payload: { x: 1 } }]);
    const order: string[] = [];
    const cursors = new Map();
    for (let batch = s.nextBatch(10, cursors); batch.length; batch = s.nextBatch(10, cursors)) {
      order.push(batch[0]!.stream);
      cursors.set(batch[0]!.stream, batch[batch.length - 1]!.id);
    }
    expect(order).toEqual(['alerts', 'risk', 'telemetry']);
  });

  it('keeps a record pending until it is marked sent, and counts what was sent', () => {
    const s = store(freshDir());
    s.append([reading('a', 1), reading('a', 2), reading('b', 3)]);
    const batch = s.nextBatch(2);
    expect(batch.map((r) => r.seq)).toEqual([1, 2]);
    expect(batch[0]!.payload).toEqual({ n: 1 });
    // Not acknowledged yet: a new connection (no cursors) gets the same rows again.
    expect(s.nextBatch(2).map((r) => r.seq)).toEqual([1, 2]);
    s.markSent('telemetry', batch.map((r) => r.id), 5000);
    s.markSent('telemetry', batch.map((r) => r.id), 5001); // a duplicate acknowledgement counts once
    expect(s.nextBatch(10).map((r) => r.seq)).toEqual([3]);
    const t = s.counts().find((c) => c.stream === 'telemetry')!;
    expect(t).toMatchObject({ pending: 1, sentTotal: 2, lastSeq: 3, lastSentTs: 5000, oldestPendingTs: 1003 });
  });

  it('purges only acknowledged records older than the cut-off', () => {
    const s = store(freshDir());
    s.append([reading('a', 1), reading('a', 2)]);
    const [first] = s.nextBatch(1);
    s.markSent('telemetry', [first!.id], 1000);
    expect(s.purgeSent(999)).toBe(0);
    expect(s.purgeSent(1001)).toBe(1);
    expect(s.counts().find((c) => c.stream === 'telemetry')!.pending).toBe(1);
  });

  it('returns the newest risk record per asset and model', () => {
    const s = store(freshDir());
    s.append([
      { stream: 'risk', ts: 1, asset: 'm1', payload: { model: 'x', score: 0.1 } },
      { stream: 'risk', ts: 2, asset: 'm1', payload: { model: 'x', score: 0.2 } },
      { stream: 'risk', ts: 3, asset: 'm1', payload: { model: 'y', score: 0.3 } },
      { stream: 'risk', ts: 4, asset: 'm2', payload: { model: 'x', score: 0.4 } },
    ]);
    expect(s.latest('risk').map((r) => [r.asset, r.payload.model, r.payload.score])).toEqual([
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
});
