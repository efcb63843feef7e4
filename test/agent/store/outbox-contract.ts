import { describe, expect, it } from 'vitest';
import { STREAMS, type NewRecord, type Outbox, type StreamName } from '../../../agent/src/store/outbox.js';
import { incompressible } from '../../helpers/seeded-random.js';

/**
 * What every outbox must do (agent/src/store/outbox.ts). Each implementation runs this suite with a factory that
 * opens an outbox over a location, so that reopening the same location shows what survived.
 */
export interface OutboxFactory {
  /** A fresh location. */
  location(): string;
  open(location: string): Outbox;
}

const t = (n: number, bytes = 0): NewRecord => ({
  stream: 'telemetry',
  ts: 1000 + n,
  asset: 'a',
  payload: { n, ...(bytes ? { pad: incompressible(bytes, n) } : {}) },
});
const r = (stream: StreamName, n: number): NewRecord => ({ stream, ts: 1000 + n, asset: 'a', payload: { n } });
const all = { maxRecords: 10_000, maxBytes: 1 << 30 };

/** The pending `records-dropped` notices, read the way the sync reads them (which hands them out). */
function dropNotices(outbox: Outbox): Array<Record<string, unknown>> {
  const skip = new Set<StreamName>(STREAMS.filter((s) => s !== 'events'));
  const b = outbox.nextBatch({ ...all, skip });
  return (b?.records ?? []).map((x) => JSON.parse(x.json) as Record<string, unknown>).filter((e) => e.type === 'records-dropped');
}

/**
 * Every seq of every stream must be exactly one of: pending, acknowledged, or dropped and announced by a
 * `records-dropped` notice (itself a pending `events` record).
 */
function accountFor(outbox: Outbox, acknowledged: Map<StreamName, Set<number>>): void {
  const pending = new Map<StreamName, Set<number>>(STREAMS.map((s) => [s, new Set()]));
  const dropped = new Map<StreamName, Set<number>>(STREAMS.map((s) => [s, new Set()]));
  const cursors = new Map<StreamName, number>();
  for (let b = outbox.nextBatch({ ...all, cursors }); b; b = outbox.nextBatch({ ...all, cursors })) {
    cursors.set(b.stream, b.records[b.records.length - 1]!.seq);
    for (const rec of b.records) {
      pending.get(b.stream)!.add(rec.seq);
      const e = JSON.parse(rec.json) as { type?: string; stream: StreamName; ranges: Array<[number, number]> };
      if (b.stream === 'events' && e.type === 'records-dropped') {
        for (const [from, to] of e.ranges) for (let q = from; q <= to; q++) dropped.get(e.stream)!.add(q);
      }
    }
  }
  for (const c of outbox.counts()) {
    const seen = new Map<number, string>();
    for (const [what, set] of [
      ['pending', pending.get(c.stream)],
      ['acknowledged', acknowledged.get(c.stream)],
      ['dropped', dropped.get(c.stream)],
    ] as const) {
      for (const q of set ?? []) {
        expect(seen.get(q), `${c.stream} seq ${q} is both ${seen.get(q)} and ${what}`).toBeUndefined();
        seen.set(q, what);
      }
    }
    expect(seen.size, `${c.stream}: every seq 1..${c.lastSeq} accounted for`).toBe(c.lastSeq);
    expect(Math.max(0, ...seen.keys())).toBe(c.lastSeq);
    expect(c.droppedTotal).toBe(dropped.get(c.stream)!.size);
    expect(c.pending).toBe(pending.get(c.stream)!.size);
  }
}

export function outboxContract(name: string, factory: OutboxFactory): void {
  describe(`outbox contract: ${name}`, () => {
    const opened: Outbox[] = [];
    const open = (loc: string) => {
      const o = factory.open(loc);
      opened.push(o);
      return o;
    };
    const closeAll = () => opened.splice(0).forEach((o) => o.close());

    it('numbers each stream contiguously from 1, and never reuses a seq across reopen and purge', () => {
      const loc = factory.location();
      const o = open(loc);
      expect(o.append([t(1), t(2), r('risk', 3), t(4)])).toEqual([1, 2, 1, 3]);
      const risk = o.nextBatch(all)!;
      expect(risk.stream).toBe('risk');
      o.markSent(
        'risk',
        risk.records.map((x) => x.seq),
        10,
      );
      closeAll();
      const again = open(loc);
      expect(again.purgeSent(11)).toBe(1);
      expect(again.append([t(5), r('risk', 6), r('alerts', 7)])).toEqual([4, 2, 1]);
      closeAll();
    });

    it('rolls a failed append back whole, and the next append reuses none of its seqs', () => {
      const o = open(factory.location());
      o.append([t(1)]);
      const bad = { stream: 'telemetry', ts: 1, asset: 'a', payload: { big: 1n } } as unknown as NewRecord;
      expect(() => o.append([t(2), bad])).toThrow();
      expect(o.append([t(3)])).toEqual([2]);
      expect(o.counts().find((c) => c.stream === 'telemetry')).toMatchObject({ pending: 2, lastSeq: 2 });
      closeAll();
    });

    it('hands out alerts, then risk, then events, then telemetry; each stream in seq order', () => {
      const o = open(factory.location());
      o.append([t(1), r('events', 2), r('risk', 3), r('alerts', 4), t(5), r('risk', 6)]);
      const got: string[] = [];
      const cursors = new Map<StreamName, number>();
      for (let b = o.nextBatch({ ...all, cursors }); b; b = o.nextBatch({ ...all, cursors })) {
        got.push(`${b.stream}:${b.records.map((x) => x.seq).join(',')}`);
        cursors.set(b.stream, b.records[b.records.length - 1]!.seq);
      }
      expect(got).toEqual(['alerts:1', 'risk:1,2', 'events:1', 'telemetry:1,2']);
      closeAll();
    });

    it('keeps records pending until acknowledged; a duplicate acknowledgement counts once', () => {
      const o = open(factory.location());
      o.append([t(1), t(2), t(3)]);
      const b = o.nextBatch({ maxRecords: 2, maxBytes: 1 << 20 })!;
      expect(b.records.map((x) => x.seq)).toEqual([1, 2]);
      expect(JSON.parse(b.records[0]!.json)).toEqual({ n: 1 });
      // A new connection (no cursors) gets the unacknowledged rows again.
      expect(o.nextBatch({ maxRecords: 2, maxBytes: 1 << 20 })!.records.map((x) => x.seq)).toEqual([1, 2]);
      expect(
        o.markSent(
          'telemetry',
          b.records.map((x) => x.seq),
          5000,
        ),
      ).toBe(2);
      expect(
        o.markSent(
          'telemetry',
          b.records.map((x) => x.seq),
          5001,
        ),
      ).toBe(0);
      expect(o.nextBatch(all)!.records.map((x) => x.seq)).toEqual([3]);
      expect(o.counts().find((c) => c.stream === 'telemetry')).toMatchObject({ pending: 1, sentTotal: 2, lastSeq: 3, lastSentTs: 5000, oldestPendingTs: 1003 });
      closeAll();
    });

    it('bounds a batch by records and by bytes; one record larger than the bound still goes, alone', () => {
      const o = open(factory.location());
      o.append([t(1, 100), t(2, 100), t(3, 100), t(4, 5000), t(5, 10)]);
      const first = o.nextBatch({ maxRecords: 10, maxBytes: 300 })!;
      expect(first.records.map((x) => x.seq)).toEqual([1, 2]);
      expect(first.bytes).toBeGreaterThan(first.records.reduce((n, x) => n + x.json.length, 0));
      expect(first.bytes).toBeLessThanOrEqual(300);
      const cursors = new Map([['telemetry' as StreamName, first.records[1]!.id]]);
      expect(o.nextBatch({ maxRecords: 10, maxBytes: 300, cursors })!.records.map((x) => x.seq)).toEqual([3]);
      cursors.set('telemetry', o.nextBatch({ maxRecords: 10, maxBytes: 300, cursors })!.records[0]!.seq);
      const big = o.nextBatch({ maxRecords: 10, maxBytes: 300, cursors })!;
      expect(big.records.map((x) => x.seq)).toEqual([4]);
      expect(o.nextBatch({ maxRecords: 1, maxBytes: 1 << 20 })!.records).toHaveLength(1);
      closeAll();
    });

    it('never mixes backlog and live records in one batch, and flags the backlog as historical', () => {
      const o = open(factory.location());
      o.append([t(1), t(2)]);
      const liveFrom = new Map([...o.lastSeqs()].map(([s, seq]) => [s, seq + 1]));
      o.append([t(3), t(4)]);
      const cursors = new Map<StreamName, number>();
      const old = o.nextBatch({ ...all, cursors, liveFrom })!;
      expect([old.historical, old.records.map((x) => x.seq)]).toEqual([true, [1, 2]]);
      cursors.set('telemetry', old.records[1]!.seq);
      const live = o.nextBatch({ ...all, cursors, liveFrom })!;
      expect([live.historical, live.records.map((x) => x.seq)]).toEqual([false, [3, 4]]);
      closeAll();
    });

    it('leaves a skipped stream for later and serves the others', () => {
      const o = open(factory.location());
      o.append([r('alerts', 1), t(2)]);
      expect(o.nextBatch({ ...all, skip: new Set<StreamName>(['alerts']) })!.stream).toBe('telemetry');
      closeAll();
    });

    it('purges only acknowledged records older than the cut-off', () => {
      const o = open(factory.location());
      o.append([t(1), t(2)]);
      const b = o.nextBatch({ maxRecords: 1, maxBytes: 1 << 20 })!;
      o.markSent('telemetry', [b.records[0]!.id], 1000);
      expect(o.purgeSent(999)).toBe(0);
      expect(o.purgeSent(1001)).toBe(1);
      expect(o.counts().find((c) => c.stream === 'telemetry')!.pending).toBe(1);
      closeAll();
    });

    it('under its quota, drops acknowledged rows first, then the oldest telemetry, never what is in flight, and accounts for every seq', () => {
      const o = open(factory.location());
      const acknowledged = new Map<StreamName, Set<number>>(STREAMS.map((s) => [s, new Set()]));
      for (let i = 0; i < 40; i++) o.append(Array.from({ length: 50 }, (_, k) => t(i * 50 + k, 400)));
      o.append([r('alerts', 1), r('risk', 2)]);
      // Acknowledge the first 500 telemetry records, and put the next 100 in flight.
      const b = o.nextBatch({ maxRecords: 500, maxBytes: 1 << 30, skip: new Set<StreamName>(['alerts', 'risk']) })!;
      o.markSent(
        'telemetry',
        b.records.map((x) => x.seq),
      );
      for (const x of b.records) acknowledged.get('telemetry')!.add(x.seq);
      const inflight = o.nextBatch({ maxRecords: 100, maxBytes: 1 << 30, skip: new Set<StreamName>(['alerts', 'risk']) })!;
      const inflightCursor = new Map<StreamName, number>([['telemetry', inflight.records[inflight.records.length - 1]!.seq]]);
      const before = o.usage().usedBytes;
      expect(o.enforceQuota({ maxBytes: before * 2, minFreeBytes: 0 }, inflightCursor)).toEqual([]);
      const reports = o.enforceQuota({ maxBytes: Math.floor(before / 3), minFreeBytes: 0 }, inflightCursor);
      expect(o.usage().usedBytes).toBeLessThanOrEqual(before / 3);
      expect(reports.map((x) => x.stream)).toEqual(['telemetry']);
      const [drop] = reports;
      expect(drop!.reason).toBe('quota');
      // Acknowledged rows went first and were not drops; the in-flight ones stay; the drop starts right after them.
      expect(drop!.ranges[0]![0]).toBe(inflight.records[inflight.records.length - 1]!.seq + 1);
      expect(o.counts().find((c) => c.stream === 'telemetry')!.sentTotal).toBe(500);
      expect(o.counts().find((c) => c.stream === 'alerts')!.pending).toBe(1);
      accountFor(o, acknowledged);
      closeAll();
    });

    it('never drops alerts nor the notices that announce drops, even when the quota cannot be met otherwise', () => {
      const o = open(factory.location());
      for (let i = 0; i < 20; i++)
        o.append(Array.from({ length: 50 }, (_, k) => ({ ...r('alerts', i * 50 + k), payload: { pad: incompressible(400, i * 50 + k) } })));
      o.append(Array.from({ length: 200 }, (_, k) => t(k, 400)));
      o.append(Array.from({ length: 200 }, (_, k) => ({ ...r('risk', k), payload: { pad: incompressible(400, 5000 + k) } })));
      o.append([{ stream: 'events', ts: 1, asset: '', payload: { type: 'model-health', pad: incompressible(400, 9999) } }]);
      const reports = o.enforceQuota({ maxBytes: Math.floor(o.usage().usedBytes / 2), minFreeBytes: 0 });
      expect(reports.map((x) => x.stream)).toEqual(['telemetry', 'risk', 'events']);
      expect(o.counts().find((c) => c.stream === 'telemetry')!.pending).toBe(0);
      expect(o.counts().find((c) => c.stream === 'risk')!.pending).toBe(0);
      expect(o.counts().find((c) => c.stream === 'alerts')!.pending).toBe(1000);
      // The notices of this drop are all still there, though the quota is still not met.
      const notices = dropNotices(o);
      expect(notices.map((e) => e.stream).sort()).toEqual(['events', 'risk', 'telemetry']);
      expect(o.enforceQuota({ maxBytes: 1, minFreeBytes: 0 })).toEqual([]);
      expect(dropNotices(o)).toHaveLength(3);
      accountFor(o, new Map());
      closeAll();
    });

    it('merges repeated drop notices of a stream into the one not yet handed out', () => {
      const o = open(factory.location());
      for (let round = 0; round < 3; round++) {
        o.append(Array.from({ length: 100 }, (_, k) => t(round * 100 + k, 400)));
        o.enforceQuota({ maxBytes: Math.floor(o.usage().usedBytes / 2), minFreeBytes: 0 });
      }
      // Reading them hands them out, as the sync does: from now on they never change.
      const notices = dropNotices(o);
      expect(notices).toHaveLength(1);
      const dropped = o.counts().find((c) => c.stream === 'telemetry')!.droppedTotal;
      expect(dropped).toBeGreaterThan(100);
      expect(notices[0]!.count).toBe(dropped);
      o.append(Array.from({ length: 100 }, (_, k) => t(1000 + k, 400)));
      o.enforceQuota({ maxBytes: Math.floor(o.usage().usedBytes / 2), minFreeBytes: 0 });
      const after = dropNotices(o);
      expect(after).toHaveLength(2);
      expect(after[0]).toEqual(notices[0]);
      accountFor(o, new Map());
      closeAll();
    });

    it('counts drops across reopen', () => {
      const loc = factory.location();
      const o = open(loc);
      o.append(Array.from({ length: 500 }, (_, k) => t(k, 400)));
      const [drop] = o.enforceQuota({ maxBytes: Math.floor(o.usage().usedBytes / 2), minFreeBytes: 0 });
      closeAll();
      expect(
        open(loc)
          .counts()
          .find((c) => c.stream === 'telemetry')!.droppedTotal,
      ).toBe(drop!.count);
      closeAll();
    });
  });
}
