import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isForewarnError } from '../../../agent/src/errors.js';
import type { DecodedBatch } from '../../../agent/src/subscriber/decode-batch.js';
import { SubscriberStore } from '../../../agent/src/subscriber/subscriber-store.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { seededRandom } from '../../helpers/seeded-random.js';

const cleanup = cleanupAfterEach();

function open(file = path.join(mkdtempSync(path.join(tmpdir(), 'fw-central-')), 'sub', 'central.db')): SubscriberStore {
  const store = new SubscriberStore({ file });
  cleanup.push(() => store.close());
  return store;
}

const batch = (seqs: number[], stream = 'telemetry', agentId = 'a1', historical = false): DecodedBatch => ({
  agentId,
  stream,
  bootSeq: 1,
  historical,
  records: seqs.map((seq) => ({ seq, ts: 1_700_000_000_000 + seq, metrics: { x: seq } })),
});

let eventSeq = 0;
const dropEvent = (stream: string, ranges: Array<[number, number]>, agentId = 'a1'): DecodedBatch => ({
  agentId,
  stream: 'events',
  bootSeq: 1,
  historical: false,
  records: [{ seq: ++eventSeq, ts: 1, type: 'records-dropped', stream, count: ranges.reduce((n, [a, b]) => n + b - a + 1, 0), ranges, reason: 'quota' }],
});

function stream(store: SubscriberStore, name = 'telemetry', agentId = 'a1') {
  const s = store.summary().streams.find((r) => r.stream === name && r.agentId === agentId);
  if (!s) throw new Error(`no summary row for ${agentId}/${name}`);
  return s;
}

describe('SubscriberStore', () => {
  it('creates a private database and stores each record once', () => {
    const store = open();
    expect(statSync(store.file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(store.file)).mode & 0o777).toBe(0o700);
    expect(store.ingestBatch(batch([1, 2, 3]))).toEqual({ inserted: 3, duplicates: 0, outOfOrder: 0 });
    expect(store.ingestBatch(batch([2, 3, 4]))).toEqual({ inserted: 1, duplicates: 2, outOfOrder: 0 });
    expect(store.receivedSeqs('a1', 'telemetry')).toEqual([1, 2, 3, 4]);
    expect(stream(store)).toMatchObject({ received: 4, duplicates: 2, outOfOrder: 0, highestSeq: 4, missing: 0, dropped: 0, gaps: [] });
  });

  it('keeps streams and agents apart', () => {
    const store = open();
    store.ingestBatch(batch([1, 2]));
    store.ingestBatch(batch([1], 'risk'));
    store.ingestBatch(batch([1, 2, 3], 'telemetry', 'a2'));
    expect(store.receivedSeqs('a1', 'telemetry')).toEqual([1, 2]);
    expect(store.receivedSeqs('a1', 'risk')).toEqual([1]);
    expect(stream(store, 'telemetry', 'a2').received).toBe(3);
  });

  it('opens a gap on a jump, then shrinks, splits and closes it as late seqs arrive', () => {
    const store = open();
    store.ingestBatch(batch([1, 2]));
    store.ingestBatch(batch([10]));
    expect(stream(store)).toMatchObject({ highestSeq: 10, missing: 7, gaps: [{ from: 3, to: 9 }] });
    store.ingestBatch(batch([3])); // shrinks from the left
    store.ingestBatch(batch([9])); // from the right
    store.ingestBatch(batch([6])); // splits
    expect(stream(store)).toMatchObject({ missing: 4, outOfOrder: 3, gaps: [{ from: 4, to: 5 }, { from: 7, to: 8 }] });
    store.ingestBatch(batch([5, 4, 8, 7, 7]));
    expect(stream(store)).toMatchObject({ received: 10, missing: 0, outOfOrder: 7, duplicates: 1, gaps: [] });
  });

  it('counts history before the first seq received as missing: seq starts at 1', () => {
    const store = open();
    store.ingestBatch(batch([5, 6]));
    expect(stream(store).gaps).toEqual([{ from: 1, to: 4 }]);
  });

  it('explains a gap by a drop event that arrives after the gap opened', () => {
    const store = open();
    store.ingestBatch(batch([1, 2, 20]));
    store.ingestBatch(dropEvent('telemetry', [[5, 8], [12, 19]]));
    expect(stream(store)).toMatchObject({ missing: 5, dropped: 12, gaps: [{ from: 3, to: 4 }, { from: 9, to: 11 }] });
    expect(stream(store, 'events').received).toBe(1);
  });

  it('never opens a gap for seqs announced as dropped before they were due', () => {
    const store = open();
    store.ingestBatch(batch([1]));
    store.ingestBatch(dropEvent('telemetry', [[2, 50]]));
    expect(stream(store)).toMatchObject({ missing: 0, dropped: 49, gaps: [], highestSeq: 1 });
    store.ingestBatch(batch([51, 53]));
    expect(stream(store)).toMatchObject({ missing: 1, dropped: 49, gaps: [{ from: 52, to: 52 }] });
  });

  it('creates the summary row for a stream known only from a drop event, and counts overlapping drops once', () => {
    const store = open();
    store.ingestBatch(dropEvent('risk', [[1, 10]]));
    store.ingestBatch(dropEvent('risk', [[5, 15]]));
    expect(stream(store, 'risk')).toMatchObject({ received: 0, dropped: 15, missing: 0 });
  });

  it('applies a drop event once even when the event itself is redelivered', () => {
    const store = open();
    const ev = dropEvent('telemetry', [[2, 3]]);
    store.ingestBatch(ev);
    expect(store.ingestBatch(ev)).toEqual({ inserted: 0, duplicates: 1, outOfOrder: 0 });
    expect(stream(store).dropped).toBe(2);
  });

  it('takes an agent that replaced a damaged database at its word: what is missing below its new first seq is gone, not awaited', () => {
    const resetEvent = (firstSeq: number): DecodedBatch => ({
      agentId: 'a1',
      stream: 'events',
      bootSeq: 2,
      historical: false,
      records: [{ seq: firstSeq, ts: 1, type: 'storage-recovered', reason: 'SQLITE_CORRUPT', setAside: '/x.bad', firstSeq }],
    });
    // New records first (risk drains before events), then the event: the gap they opened closes.
    const s = open();
    s.ingestBatch(batch([1, 2, 5]));
    s.ingestBatch(batch([1_000_000, 1_000_001]));
    expect(stream(s).gaps.length).toBeGreaterThan(0);
    s.ingestBatch(resetEvent(1_000_000));
    expect(stream(s)).toMatchObject({ gaps: [], missing: 0, resetBelow: 1_000_000, received: 5 });
    // The event first: no gap ever opens below the new first seq, and later gaps above it still do.
    const t = open();
    t.ingestBatch(batch([1, 2]));
    t.ingestBatch(resetEvent(1_000_000));
    t.ingestBatch(batch([1_000_000, 1_000_003]));
    expect(stream(t).gaps).toEqual([{ from: 1_000_001, to: 1_000_002 }]);
  });

  it('keeps the newest status per agent and counts malformed payloads per topic', () => {
    const store = open();
    const status = (state: 'online' | 'offline', bootSeq: number, ts: number) => ({ agentId: 'a1', state, bootSeq, ts, payload: { state, bootSeq, ts } });
    store.recordStatus(status('online', 2, 100));
    store.recordStatus(status('offline', 1, 500)); // an older boot: ignored
    expect(store.summary().agents).toEqual([{ agentId: 'a1', state: 'online', bootSeq: 2, ts: 100 }]);
    store.recordStatus(status('offline', 2, 200));
    expect(store.summary().agents[0]).toMatchObject({ state: 'offline', ts: 200 });
    store.recordMalformed('forewarn/v1/x/risk', 'bad 1');
    store.recordMalformed('forewarn/v1/x/risk', 'bad 2');
    expect(store.summary().malformed).toEqual([{ topic: 'forewarn/v1/x/risk', count: 2, lastError: 'bad 2', lastTs: expect.any(Number) }]);
  });

  it('survives a reopen, and opens read-only for reports', () => {
    const first = open();
    first.ingestBatch(batch([1, 3], 'telemetry', 'a1', true));
    first.close();
    const again = open(first.file);
    again.ingestBatch(batch([2]));
    expect(stream(again)).toMatchObject({ received: 3, outOfOrder: 1, missing: 0 });
    const ro = new SubscriberStore({ file: first.file, readonly: true });
    cleanup.push(() => ro.close());
    expect(ro.receivedSeqs('a1', 'telemetry')).toEqual([1, 2, 3]);
  });

  it('says so when a report names a database that does not exist', () => {
    let err: unknown;
    try {
      new SubscriberStore({ file: path.join(tmpdir(), 'fw-no-such-dir', 'x.db'), readonly: true });
    } catch (e) {
      err = e;
    }
    expect(isForewarnError(err, 'FW_ERR_STORAGE_OPEN')).toBe(true);
  });

  it('matches a simple model under seeded random arrival orders, duplicates and drops', () => {
    for (const seed of [1, 2, 3, 42, 1234]) {
      const random = seededRandom(seed);
      const store = open();
      const n = 300;
      const dropped = new Set<number>();
      const ranges: Array<[number, number]> = [];
      for (let i = 0; i < 4; i++) {
        const from = 1 + Math.floor(random() * n);
        const to = Math.min(n, from + Math.floor(random() * 15));
        ranges.push([from, to]);
        for (let s = from; s <= to; s++) dropped.add(s);
      }
      // Deliver a random subset of the rest, some twice, in a shuffled order, with the drop event somewhere in it.
      const deliver = Array.from({ length: n }, (_, i) => i + 1).filter((s) => !dropped.has(s) && random() < 0.85);
      const messages: number[][] = [];
      for (const s of deliver) messages.push(random() < 0.1 ? [s, s] : [s]);
      for (let i = messages.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [messages[i], messages[j]] = [messages[j]!, messages[i]!];
      }
      const dropAt = Math.floor(random() * messages.length);
      messages.forEach((m, i) => {
        if (i === dropAt) store.ingestBatch(dropEvent('telemetry', ranges));
        store.ingestBatch(batch(m));
      });
      const highest = Math.max(...deliver);
      const expectedMissing = Array.from({ length: highest }, (_, i) => i + 1).filter((s) => !dropped.has(s) && !deliver.includes(s));
      const s = stream(store);
      const gapSeqs = s.gaps.flatMap((g) => Array.from({ length: g.to - g.from + 1 }, (_, i) => g.from + i));
      expect(gapSeqs, `seed ${seed}`).toEqual(expectedMissing);
      expect(s, `seed ${seed}`).toMatchObject({ received: deliver.length, highestSeq: highest, missing: expectedMissing.length, dropped: dropped.size });
      expect(s.duplicates, `seed ${seed}`).toBe(messages.filter((m) => m.length === 2).length);
      expect(store.receivedSeqs('a1', 'telemetry'), `seed ${seed}`).toEqual(deliver);
    }
  });
});
