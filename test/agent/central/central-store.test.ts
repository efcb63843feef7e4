import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACK_MAX_RANGES } from '../../../agent/src/contract/topics.js';
import { isForewarnError } from '../../../agent/src/core/errors.js';
import type { DecodedBatch } from '../../../agent/src/central/decode-batch.js';
import { CentralStore } from '../../../agent/src/central/central-store.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from '../../helpers/postgres.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { contractErrors } from '../../helpers/contract.js';
import { seededRandom } from '../../helpers/seeded-random.js';

const cleanup = cleanupAfterEach();

/**
 * The ledger runs the same code on both stores: every case below runs on a SQLite file and on a real PostgreSQL
 * cluster (skipped, with the reason, where PostgreSQL is not installed).
 */
const pgSkip = postgresSkipReason();
let cluster: PostgresCluster | undefined;
let databases = 0;
beforeAll(async () => {
  if (!pgSkip) cluster = await startPostgres();
}, 120_000);
afterAll(() => cluster?.destroy());

let dialect: 'sqlite' | 'postgres' = 'sqlite';
const files = new WeakMap<CentralStore, string>();

async function open(file?: string): Promise<CentralStore> {
  let url: string;
  if (dialect === 'postgres') {
    url = file ?? cluster!.createDatabase(`ledger_${++databases}`);
  } else {
    url = file ?? path.join(mkdtempSync(path.join(tmpdir(), 'fw-central-')), 'sub', 'central.db');
  }
  const store = await CentralStore.open({ url });
  files.set(store, url);
  cleanup.push(() => store.close().catch(() => undefined));
  return store;
}

/** The store's SQLite file or PostgreSQL URL, to open it again. */
const where = (store: CentralStore) => files.get(store)!;

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

const unavailableEvent = (stream: string, ranges: Array<[number, number]>, agentId = 'a1'): DecodedBatch => ({
  agentId,
  stream: 'events',
  bootSeq: 1,
  historical: false,
  records: [{ seq: ++eventSeq, ts: 1, type: 'records-unavailable', stream, ranges, reason: 'purged' }],
});

/** Every seq in a list of [from, to] rows, as a sorted array. */
function expand(rows: Array<{ from_seq: number; to_seq: number }>): number[] {
  return rows.flatMap((r) => Array.from({ length: r.to_seq - r.from_seq + 1 }, (_, i) => r.from_seq + i)).sort((a, b) => a - b);
}

/** Reads a table of the store directly, as an operator's SQL would. */
async function rows<T>(store: CentralStore, sql: string, ...params: Array<string | number>): Promise<T[]> {
  return store.sql.all<T>(sql, params);
}

const explained = async (store: CentralStore, table: 'dropped' | 'unavailable', stream = 'telemetry', agentId = 'a1') =>
  expand(await rows(store, `SELECT from_seq, to_seq FROM ${table} WHERE agent_id = ? AND stream = ? ORDER BY from_seq`, agentId, stream));

async function stream(store: CentralStore, name = 'telemetry', agentId = 'a1') {
  const s = (await store.summary()).streams.find((r) => r.stream === name && r.agentId === agentId);
  if (!s) throw new Error(`no summary row for ${agentId}/${name}`);
  return s;
}

for (const d of ['sqlite', 'postgres'] as const) {
  describe.skipIf(d === 'postgres' && pgSkip !== null)(`the ledger on ${d}${d === 'postgres' && pgSkip ? ` (skipped: ${pgSkip})` : ''}`, () => {
    beforeAll(() => {
      dialect = d;
    });

    it('creates a private database and stores each record once', async () => {
      const store = await open();
      if (d === 'sqlite') {
        expect(statSync(where(store)).mode & 0o777).toBe(0o600);
        expect(statSync(path.dirname(where(store))).mode & 0o777).toBe(0o700);
      }
      expect(await store.ingestBatch(batch([1, 2, 3]))).toEqual({
        inserted: 3,
        duplicates: 0,
        outOfOrder: 0,
        repaired: 0,
        carried: 0,
        conflicts: 0,
        conflictSeqs: [],
      });
      expect(await store.ingestBatch(batch([2, 3, 4]))).toMatchObject({ inserted: 1, duplicates: 2, outOfOrder: 0, conflicts: 0 });
      expect(await store.receivedSeqs('a1', 'telemetry')).toEqual([1, 2, 3, 4]);
      expect(await stream(store)).toMatchObject({ received: 4, duplicates: 2, outOfOrder: 0, highestSeq: 4, missing: 0, dropped: 0, gaps: [] });
    });

    it('keeps a fractional timestamp as sent in the record, and whole milliseconds in its ts column, on both paths', async () => {
      const store = await open();
      const frac = (seq: number): DecodedBatch => ({ ...batch([seq]), records: [{ seq, ts: 1_700_000_000_000.6, metrics: { x: seq } }] });
      await store.ingestBatch(frac(2)); // the fast path (one multi-row insert)
      await store.ingestBatch(frac(1)); // record by record: a late seq
      expect(await store.ingestBatch(frac(2))).toMatchObject({ duplicates: 1, conflicts: 0 });
      const stored = await rows<{ ts: number; payload: string }>(store, 'SELECT ts, payload FROM records ORDER BY seq');
      expect(stored.map((r) => r.ts)).toEqual([1_700_000_000_001, 1_700_000_000_001]);
      expect(stored.map((r) => (JSON.parse(r.payload) as { ts: number }).ts)).toEqual([1_700_000_000_000.6, 1_700_000_000_000.6]);
    });

    it('keeps streams and agents apart', async () => {
      const store = await open();
      await store.ingestBatch(batch([1, 2]));
      await store.ingestBatch(batch([1], 'risk'));
      await store.ingestBatch(batch([1, 2, 3], 'telemetry', 'a2'));
      expect(await store.receivedSeqs('a1', 'telemetry')).toEqual([1, 2]);
      expect(await store.receivedSeqs('a1', 'risk')).toEqual([1]);
      expect((await stream(store, 'telemetry', 'a2')).received).toBe(3);
    });

    it('opens a gap on a jump, then shrinks, splits and closes it as late seqs arrive', async () => {
      const store = await open();
      await store.ingestBatch(batch([1, 2]));
      await store.ingestBatch(batch([10]));
      expect(await stream(store)).toMatchObject({ highestSeq: 10, missing: 7, gaps: [{ from: 3, to: 9 }] });
      await store.ingestBatch(batch([3])); // shrinks from the left
      await store.ingestBatch(batch([9])); // from the right
      await store.ingestBatch(batch([6])); // splits
      expect(await stream(store)).toMatchObject({
        missing: 4,
        outOfOrder: 3,
        gaps: [
          { from: 4, to: 5 },
          { from: 7, to: 8 },
        ],
      });
      await store.ingestBatch(batch([5, 4, 8, 7, 7]));
      expect(await stream(store)).toMatchObject({ received: 10, missing: 0, outOfOrder: 7, duplicates: 1, gaps: [] });
    });

    it('counts history before the first seq received as missing: seq starts at 1', async () => {
      const store = await open();
      await store.ingestBatch(batch([5, 6]));
      expect((await stream(store)).gaps).toEqual([{ from: 1, to: 4 }]);
    });

    it('explains a gap by a drop event that arrives after the gap opened', async () => {
      const store = await open();
      await store.ingestBatch(batch([1, 2, 20]));
      await store.ingestBatch(
        dropEvent('telemetry', [
          [5, 8],
          [12, 19],
        ]),
      );
      expect(await stream(store)).toMatchObject({
        missing: 5,
        dropped: 12,
        gaps: [
          { from: 3, to: 4 },
          { from: 9, to: 11 },
        ],
      });
      expect((await stream(store, 'events')).received).toBe(1);
    });

    it('never opens a gap for seqs announced as dropped before they were due', async () => {
      const store = await open();
      await store.ingestBatch(batch([1]));
      await store.ingestBatch(dropEvent('telemetry', [[2, 50]]));
      expect(await stream(store)).toMatchObject({ missing: 0, dropped: 49, gaps: [], highestSeq: 1 });
      await store.ingestBatch(batch([51, 53]));
      expect(await stream(store)).toMatchObject({ missing: 1, dropped: 49, gaps: [{ from: 52, to: 52 }] });
    });

    it('creates the summary row for a stream known only from a drop event, and counts overlapping drops once', async () => {
      const store = await open();
      await store.ingestBatch(dropEvent('risk', [[1, 10]]));
      await store.ingestBatch(dropEvent('risk', [[5, 15]]));
      expect(await stream(store, 'risk')).toMatchObject({ received: 0, dropped: 15, missing: 0 });
    });

    it('applies a drop event once even when the event itself is redelivered', async () => {
      const store = await open();
      const ev = dropEvent('telemetry', [[2, 3]]);
      await store.ingestBatch(ev);
      expect(await store.ingestBatch(ev)).toMatchObject({ inserted: 0, duplicates: 1, outOfOrder: 0 });
      expect((await stream(store)).dropped).toBe(2);
    });

    it('takes an agent that replaced a damaged database at its word: what is missing below its new first seq is gone, not awaited', async () => {
      const resetEvent = (firstSeq: number): DecodedBatch => ({
        agentId: 'a1',
        stream: 'events',
        bootSeq: 2,
        historical: false,
        records: [{ seq: firstSeq, ts: 1, type: 'storage-recovered', reason: 'SQLITE_CORRUPT', setAside: '/x.bad', firstSeq }],
      });
      // New records first (risk drains before events), then the event: the gap they opened closes.
      const s = await open();
      await s.ingestBatch(batch([1, 2, 5]));
      await s.ingestBatch(batch([1_000_000, 1_000_001]));
      expect((await stream(s)).gaps.length).toBeGreaterThan(0);
      await s.ingestBatch(resetEvent(1_000_000));
      expect(await stream(s)).toMatchObject({ gaps: [], missing: 0, resetBelow: 1_000_000, received: 5 });
      // The event first: no gap ever opens below the new first seq, and later gaps above it still do.
      const t = await open();
      await t.ingestBatch(batch([1, 2]));
      await t.ingestBatch(resetEvent(1_000_000));
      await t.ingestBatch(batch([1_000_000, 1_000_003]));
      expect((await stream(t)).gaps).toEqual([{ from: 1_000_001, to: 1_000_002 }]);
    });

    it('keeps the latest status received per agent, whatever its bootSeq and ts, and counts malformed payloads per topic', async () => {
      const store = await open();
      const status = (state: 'online' | 'offline', bootSeq: number, ts: number) => ({ agentId: 'a1', state, bootSeq, ts, payload: { state, bootSeq, ts } });
      await store.recordStatus(status('online', 2, 500));
      expect((await store.summary()).agents).toEqual([{ agentId: 'a1', state: 'online', bootSeq: 2, ts: 500 }]);
      // The Will carries the time the agent connected: older than its online status, and still the latest word.
      await store.recordStatus(status('offline', 2, 100));
      expect((await store.summary()).agents).toEqual([{ agentId: 'a1', state: 'offline', bootSeq: 2, ts: 100 }]);
      await store.recordStatus(status('online', 1, 50)); // a clock or boot counter that went back: the broker's order decides
      expect((await store.summary()).agents[0]).toMatchObject({ state: 'online', bootSeq: 1, ts: 50 });
      await store.recordMalformed('forewarn/v1/x/risk', 'bad 1');
      await store.recordMalformed('forewarn/v1/x/risk', 'bad 2');
      expect((await store.summary()).malformed).toEqual([{ topic: 'forewarn/v1/x/risk', count: 2, lastError: 'bad 2', lastTs: expect.any(Number) }]);
    });

    it('survives a reopen, and opens read-only for reports', async () => {
      const first = await open();
      await first.ingestBatch(batch([1, 3], 'telemetry', 'a1', true));
      await first.close();
      const again = await open(where(first));
      await again.ingestBatch(batch([2]));
      expect(await stream(again)).toMatchObject({ received: 3, outOfOrder: 1, missing: 0 });
      const ro = await CentralStore.open({ url: where(first), readonly: true });
      cleanup.push(() => ro.close());
      expect(await ro.receivedSeqs('a1', 'telemetry')).toEqual([1, 2, 3]);
    });

    it('says so when a report names a database that does not exist', async () => {
      const missing = d === 'sqlite' ? path.join(tmpdir(), 'fw-no-such-dir', 'x.db') : `postgres://postgres@127.0.0.1:${cluster!.port}/no_such_db`;
      const err = await CentralStore.open({ url: missing, readonly: true }).catch((e: unknown) => e);
      expect(isForewarnError(err, 'FW_ERR_STORAGE_OPEN')).toBe(true);
    });

    it('matches a simple model under seeded random arrival orders, duplicates, drops and unavailable ranges', async () => {
      for (const seed of [1, 2, 3, 42, 1234]) {
        const random = seededRandom(seed);
        const store = await open();
        const n = 300;
        const someRanges = (count: number, into: Set<number>) => {
          const ranges: Array<[number, number]> = [];
          for (let i = 0; i < count; i++) {
            const from = 1 + Math.floor(random() * n);
            const to = Math.min(n, from + Math.floor(random() * 15));
            ranges.push([from, to]);
            for (let s = from; s <= to; s++) into.add(s);
          }
          return ranges;
        };
        const dropped = new Set<number>();
        const unavailable = new Set<number>();
        const dropRanges = someRanges(4, dropped);
        const unavailableRanges = someRanges(2, unavailable);
        // Deliver a random subset, some twice, in a shuffled order, with both events somewhere in it. A few dropped
        // seqs arrive too: the agent may announce as dropped rows it had published.
        const deliver = Array.from({ length: n }, (_, i) => i + 1).filter((s) => (dropped.has(s) || unavailable.has(s) ? random() < 0.2 : random() < 0.85));
        const messages: number[][] = [];
        for (const s of deliver) messages.push(random() < 0.1 ? [s, s] : [s]);
        for (let i = messages.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [messages[i], messages[j]] = [messages[j]!, messages[i]!];
        }
        const dropAt = Math.floor(random() * messages.length);
        const unavailableAt = Math.floor(random() * messages.length);
        for (const [i, m] of messages.entries()) {
          if (i === dropAt) await store.ingestBatch(dropEvent('telemetry', dropRanges));
          if (i === unavailableAt) await store.ingestBatch(unavailableEvent('telemetry', unavailableRanges));
          await store.ingestBatch(batch(m));
        }
        const delivered = new Set(deliver);
        const highest = Math.max(...deliver);
        const expectedMissing = Array.from({ length: highest }, (_, i) => i + 1).filter((s) => !dropped.has(s) && !unavailable.has(s) && !delivered.has(s));
        const explainedNotReceived = [...new Set([...dropped, ...unavailable])].filter((s) => !delivered.has(s)).sort((a, b) => a - b);
        const s = await stream(store);
        const gapSeqs = s.gaps.flatMap((g) => Array.from({ length: g.to - g.from + 1 }, (_, i) => g.from + i));
        expect(gapSeqs, `seed ${seed}`).toEqual(expectedMissing);
        expect(s, `seed ${seed}`).toMatchObject({ received: deliver.length, highestSeq: highest, missing: expectedMissing.length });
        // Received, dropped, unavailable and missing never share a seq.
        expect(
          [...(await explained(store, 'dropped')), ...(await explained(store, 'unavailable'))].sort((a, b) => a - b),
          `seed ${seed}`,
        ).toEqual(explainedNotReceived);
        expect(s.dropped + s.unavailable, `seed ${seed}`).toBe(explainedNotReceived.length);
        expect(s.duplicates, `seed ${seed}`).toBe(messages.filter((m) => m.length === 2).length);
        expect(s.conflicts, `seed ${seed}`).toBe(0);
        expect(await store.receivedSeqs('a1', 'telemetry'), `seed ${seed}`).toEqual(deliver);
      }
      // Record by record on PostgreSQL: a few hundred round trips per seed.
    }, 180_000);
  });

  describe.skipIf(d === 'postgres' && pgSkip !== null)(`the ledger on ${d}: end-to-end acknowledgement and what it explains`, () => {
    beforeAll(() => {
      dialect = d;
    });

    it('counts a gap filled by a record the agent sent again (historical) as repaired, by a live one as late', async () => {
      const store = await open();
      await store.ingestBatch(batch([1, 2, 5, 6, 9]));
      // No acknowledgement asked yet: the agent resent 3-4 on its own (an unconfirmed tail), 7-8 came live, late.
      expect(await store.ingestBatch(batch([3, 4], 'telemetry', 'a1', true))).toMatchObject({ repaired: 2, outOfOrder: 0 });
      expect(await store.ingestBatch(batch([7, 8]))).toMatchObject({ repaired: 0, outOfOrder: 2 });
      expect((await store.summary()).streams.find((x) => x.agentId === 'a1')).toMatchObject({ repaired: 2, outOfOrder: 2, gaps: [] });
    });

    it('keeps the records an agent carried into a fresh file missing until they arrive, above or below the highest seq', async () => {
      const store = await open();
      await store.ingestBatch(batch([1, 2, 3]));
      // The agent's file was deleted while it ran: 4..9 carried into a new file counting from 1000 (5 had been received).
      await store.ingestBatch(batch([5]));
      const reset: DecodedBatch = {
        agentId: 'a1',
        stream: 'events',
        bootSeq: 2,
        historical: false,
        records: [
          {
            seq: 1000,
            ts: 1,
            type: 'storage-recovered',
            cause: 'removed',
            reason: 'deleted',
            setAside: '',
            firstSeq: 1000,
            carried: 6,
            carriedRanges: { telemetry: [[4, 9]] },
          },
        ],
      };
      await store.ingestBatch(reset);
      const gaps = async () => (await store.summary()).streams.find((x) => x.agentId === 'a1' && x.stream === 'telemetry')!.gaps;
      expect(await gaps()).toEqual([
        { from: 4, to: 4 },
        { from: 6, to: 9 },
      ]);
      expect((await store.ackFor('a1', 1)).streams.telemetry).toMatchObject({
        through: 3,
        missing: [
          [4, 4],
          [6, 9],
        ],
      });
      // They arrive in order, some above the highest seq received so far: each closes its gap.
      await store.ingestBatch(batch([4, 6, 7]));
      expect(await gaps()).toEqual([{ from: 8, to: 9 }]);
      await store.ingestBatch(batch([1000, 1001]));
      await store.ingestBatch(batch([8, 9]));
      expect(await gaps()).toEqual([]);
      expect((await store.ackFor('a1', 2)).streams.telemetry).toMatchObject({ through: 1001 });
    });

    it('acknowledges per stream: through below the first open gap, the highest seq, and the gaps as missing', async () => {
      const store = await open();
      await store.ingestBatch(batch([1, 2, 3, 7, 8, 12]));
      await store.ingestBatch(batch([1, 2], 'alerts'));
      await store.ingestBatch(batch([1], 'telemetry', 'someone-else'));
      const ack = await store.ackFor('a1', 1234);
      expect(ack).toEqual({
        schemaVersion: 1,
        agentId: 'a1',
        ts: 1234,
        streams: {
          alerts: { through: 2, highest: 2 },
          telemetry: {
            through: 3,
            highest: 12,
            missing: [
              [4, 6],
              [9, 11],
            ],
          },
        },
      });
      expect(contractErrors('forewarn/v1/a1/ack', ack)).toEqual([]);
      // Explained seqs count as done: a drop announced for 4..6 moves `through` up to the next gap.
      await store.ingestBatch(dropEvent('telemetry', [[4, 6]]));
      expect((await store.ackFor('a1')).streams.telemetry).toEqual({ through: 8, highest: 12, missing: [[9, 11]] });
      await store.ingestBatch(batch([9, 10, 11]));
      expect((await store.ackFor('a1')).streams.telemetry).toEqual({ through: 12, highest: 12 });
    });

    it('lists at most ACK_MAX_RANGES gaps, marks those as requested, and counts what fills them as repaired', async () => {
      const store = await open();
      const n = ACK_MAX_RANGES + 8;
      // Seqs 1, 3, 5, …: one gap of one seq between each.
      await store.ingestBatch(batch(Array.from({ length: n + 1 }, (_, i) => 2 * i + 1)));
      expect(await stream(store)).toMatchObject({ missing: n, requested: 0 });
      const ack = await store.ackFor('a1');
      expect(ack.streams.telemetry!.missing).toHaveLength(ACK_MAX_RANGES);
      expect(ack.streams.telemetry!.missing![0]).toEqual([2, 2]);
      expect(ack.streams.telemetry!.through).toBe(1);
      expect(await stream(store)).toMatchObject({ requested: ACK_MAX_RANGES });
      // A requested one arrives: repaired. One past the listed ones: late, as before.
      const unlisted = 2 * (ACK_MAX_RANGES + 1);
      expect(await store.ingestBatch(batch([2, 4]))).toMatchObject({ inserted: 2, repaired: 2, outOfOrder: 0 });
      expect(await store.ingestBatch(batch([unlisted]))).toMatchObject({ inserted: 1, repaired: 0, outOfOrder: 1 });
      expect(await stream(store)).toMatchObject({ repaired: 2, outOfOrder: 1, missing: n - 3, requested: ACK_MAX_RANGES - 2 });
    });

    it('keeps the request mark on the parts of a requested gap that a late record splits, and forgets a request whose ack was refused', async () => {
      const store = await open();
      await store.ingestBatch(batch([1, 10]));
      await store.ingestBatch(batch([20]));
      await store.ackFor('a1', 5000);
      expect(await store.ingestBatch(batch([5]))).toMatchObject({ repaired: 1, outOfOrder: 0 });
      expect(await store.ingestBatch(batch([3, 8]))).toMatchObject({ repaired: 2, outOfOrder: 0 });
      expect(await stream(store)).toMatchObject({ repaired: 3, missing: 14, requested: 14 });
      // A later ack, refused by the broker: the gaps it would have listed first were already requested and stay so;
      // only what that ack newly marked is forgotten.
      await store.ingestBatch(batch([30]));
      await store.ackFor('a1', 6000);
      await store.forgetRequests('a1', 6000);
      expect(await stream(store)).toMatchObject({ missing: 23, requested: 14 });
      expect(await store.ingestBatch(batch([25]))).toMatchObject({ repaired: 0, outOfOrder: 1 });
    });

    it('closes gaps named by a records-unavailable event as unavailable: not missing, not dropped, and never reopened', async () => {
      const store = await open();
      await store.ingestBatch(batch([1, 2, 20]));
      await store.ackFor('a1');
      // The agent purged 3..8 and 15..25 (it holds none of them); 20 is here already, so it is not unavailable.
      await store.ingestBatch(
        unavailableEvent('telemetry', [
          [3, 8],
          [15, 25],
        ]),
      );
      expect(await stream(store)).toMatchObject({ missing: 6, dropped: 0, unavailable: 16, gaps: [{ from: 9, to: 14 }] });
      expect(await explained(store, 'unavailable')).not.toContain(20);
      // Redelivered: applied once. Seqs 21..25 were never due; when later seqs come, no gap opens for them.
      await store.ingestBatch(unavailableEvent('telemetry', [[3, 8]]));
      await store.ingestBatch(batch([27]));
      expect(await stream(store)).toMatchObject({
        unavailable: 16,
        gaps: [
          { from: 9, to: 14 },
          { from: 26, to: 26 },
        ],
      });
      expect((await store.ackFor('a1')).streams.telemetry).toEqual({
        through: 8,
        highest: 27,
        missing: [
          [9, 14],
          [26, 26],
        ],
      });
      // One that arrives after all is received, and leaves the unavailable range.
      expect(await store.ingestBatch(batch([4]))).toMatchObject({ inserted: 1, outOfOrder: 0, repaired: 0 });
      expect((await stream(store)).unavailable).toBe(15);
      expect(await explained(store, 'unavailable')).toEqual([3, 5, 6, 7, 8, 15, 16, 17, 18, 19, 21, 22, 23, 24, 25]);
    });

    it('never holds a seq both as received and as dropped: an announcement leaves out what arrived, and a record cuts itself out of a drop', async () => {
      const store = await open();
      await store.ingestBatch(batch([1, 2, 3, 6, 7]));
      // The agent dropped rows it had published (the broker acknowledged them) but the centre had not confirmed.
      await store.ingestBatch(dropEvent('telemetry', [[2, 10]]));
      expect(await explained(store, 'dropped')).toEqual([4, 5, 8, 9, 10]);
      expect(await stream(store)).toMatchObject({ dropped: 5, missing: 0, received: 5 });
      // Some arrive after the announcement: received, cut out of the dropped ranges (which split), neither late nor gaps.
      expect(await store.ingestBatch(batch([5, 9]))).toMatchObject({ inserted: 2, outOfOrder: 0 });
      expect(await explained(store, 'dropped')).toEqual([4, 8, 10]);
      expect(await store.ingestBatch(batch([11]))).toMatchObject({ inserted: 1, outOfOrder: 0 }); // the next one in order
      expect(await stream(store)).toMatchObject({ dropped: 3, missing: 0, received: 8, highestSeq: 11, gaps: [] });
      const overlap = await rows(
        store,
        'SELECT r.seq FROM records r JOIN dropped d ON d.agent_id = r.agent_id AND d.stream = r.stream AND r.seq BETWEEN d.from_seq AND d.to_seq',
      );
      expect(overlap).toEqual([]);
      // A record announced dropped before the centre ever saw the stream that far: no gap below it either.
      await store.ingestBatch(dropEvent('telemetry', [[12, 20]]));
      await store.ingestBatch(batch([15]));
      expect(await stream(store)).toMatchObject({ gaps: [], dropped: 11, highestSeq: 15 });
      expect(await explained(store, 'dropped')).toEqual([4, 8, 10, 12, 13, 14, 16, 17, 18, 19, 20]);
    });

    it('stores records carried over from an earlier agent database after a reset: received, no gap, not late', async () => {
      const store = await open();
      await store.ingestBatch(batch([1, 2, 3, 9, 10])); // 4..8 were published to a broker that lost them
      const reset: DecodedBatch = {
        agentId: 'a1',
        stream: 'events',
        bootSeq: 2,
        historical: false,
        records: [
          {
            seq: 2_000_000,
            ts: 1,
            type: 'storage-recovered',
            cause: 'removed',
            reason: 'database file removed',
            setAside: '',
            firstSeq: 2_000_000,
            carried: 7,
          },
        ],
      };
      await store.ingestBatch(reset);
      expect(await stream(store)).toMatchObject({ gaps: [], resetBelow: 2_000_000 });
      await store.ingestBatch(batch([2_000_000, 2_000_001]));
      // The carried rows come after the reset, below firstSeq: some above the old highest, some in the old gap.
      expect(await store.ingestBatch(batch([4, 5, 6, 7, 8, 11, 12]))).toMatchObject({ inserted: 7, carried: 7, outOfOrder: 0, repaired: 0 });
      expect(await stream(store)).toMatchObject({ received: 14, carried: 7, outOfOrder: 0, missing: 0, gaps: [], highestSeq: 2_000_001 });
      expect(await rows(store, 'SELECT first_seq, cause, carried FROM resets')).toEqual([{ first_seq: 2_000_000, cause: 'removed', carried: 7 }]);
      expect((await store.ackFor('a1')).streams.telemetry).toEqual({ through: 2_000_001, highest: 2_000_001 });
    });

    it('counts a different record under a stored seq as a conflict, keeps the first, stores the other once, and a resend as a duplicate', async () => {
      const store = await open();
      await store.ingestBatch(batch([1, 2, 3]));
      const other: DecodedBatch = {
        ...batch([2, 3]),
        records: [
          { seq: 2, ts: 5, metrics: { x: 99 } },
          { seq: 3, ts: 1_700_000_000_003, metrics: { x: 3 } },
        ],
      };
      expect(await store.ingestBatch(other)).toEqual({ inserted: 0, duplicates: 1, outOfOrder: 0, repaired: 0, carried: 0, conflicts: 1, conflictSeqs: [2] });
      // The same conflicting record redelivered is not a second conflict.
      expect(await store.ingestBatch(other)).toMatchObject({ duplicates: 2, conflicts: 0 });
      expect(await stream(store)).toMatchObject({ received: 3, duplicates: 3, conflicts: 1 });
      expect(await store.storedConflicts('a1', 'telemetry')).toEqual([
        { seq: 2, bootSeq: 1, receivedTs: expect.any(Number), payload: JSON.stringify({ seq: 2, ts: 5, metrics: { x: 99 } }) },
      ]);
      expect(await rows(store, 'SELECT payload FROM records WHERE seq = 2')).toEqual([
        { payload: JSON.stringify({ seq: 2, ts: 1_700_000_000_002, metrics: { x: 2 } }) },
      ]);
    });

    it.skipIf(d === 'postgres')(
      'migrates a schema-1 database of the reference subscriber in place, separating dropped from received, and reports an unmigrated one read-only',
      async () => {
        const file = path.join(mkdtempSync(path.join(tmpdir(), 'fw-central-v1-')), 'central.db');
        const v1 = new Database(file);
        v1.exec(`
      CREATE TABLE records (agent_id TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, boot_seq INTEGER NOT NULL,
        historical INTEGER NOT NULL, received_ts INTEGER NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (agent_id, stream, seq));
      CREATE TABLE streams (agent_id TEXT NOT NULL, stream TEXT NOT NULL, highest_seq INTEGER NOT NULL DEFAULT 0, received INTEGER NOT NULL DEFAULT 0,
        duplicates INTEGER NOT NULL DEFAULT 0, out_of_order INTEGER NOT NULL DEFAULT 0, last_boot_seq INTEGER, last_received_ts INTEGER,
        PRIMARY KEY (agent_id, stream));
      CREATE TABLE gaps (agent_id TEXT NOT NULL, stream TEXT NOT NULL, from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL, opened_ts INTEGER NOT NULL,
        PRIMARY KEY (agent_id, stream, from_seq));
      CREATE TABLE dropped (agent_id TEXT NOT NULL, stream TEXT NOT NULL, from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL, reason TEXT NOT NULL,
        event_seq INTEGER NOT NULL, received_ts INTEGER NOT NULL, PRIMARY KEY (agent_id, stream, from_seq));
      CREATE TABLE resets (agent_id TEXT NOT NULL, first_seq INTEGER NOT NULL, set_aside TEXT NOT NULL, event_seq INTEGER NOT NULL,
        received_ts INTEGER NOT NULL, PRIMARY KEY (agent_id, first_seq));
      CREATE TABLE agents (agent_id TEXT PRIMARY KEY, state TEXT NOT NULL, boot_seq INTEGER NOT NULL, ts INTEGER NOT NULL, received_ts INTEGER NOT NULL, payload TEXT NOT NULL);
      CREATE TABLE malformed (topic TEXT PRIMARY KEY, count INTEGER NOT NULL, last_error TEXT NOT NULL, last_ts INTEGER NOT NULL);
      INSERT INTO records VALUES ('a1', 'telemetry', 1, 1, 1, 0, 1, '{"seq":1,"ts":1}'), ('a1', 'telemetry', 2, 2, 1, 0, 1, '{"seq":2,"ts":2}'),
        ('a1', 'telemetry', 6, 6, 1, 0, 1, '{"seq":6,"ts":6}'), ('a1', 'telemetry', 9, 9, 1, 0, 1, '{"seq":9,"ts":9}');
      INSERT INTO streams (agent_id, stream, highest_seq, received, duplicates, out_of_order) VALUES ('a1', 'telemetry', 9, 4, 2, 1);
      INSERT INTO gaps VALUES ('a1', 'telemetry', 7, 8, 1);
      INSERT INTO dropped VALUES ('a1', 'telemetry', 2, 6, 'quota', 1, 1);
      PRAGMA user_version = 1;
    `);
        v1.close();
        // A report on the old file, before any subscriber upgraded it.
        const ro = await CentralStore.open({ url: file, readonly: true });
        expect((await ro.summary()).streams[0]).toMatchObject({ received: 4, missing: 2, dropped: 5, repaired: 0, unavailable: 0, conflicts: 0, requested: 0 });
        await ro.close();

        const store = await open(file);
        expect(await rows(store, "SELECT version FROM central_schema WHERE component = 'ledger'")).toEqual([{ version: 3 }]);
        expect(await explained(store, 'dropped')).toEqual([3, 4, 5]);
        expect(await stream(store)).toMatchObject({
          received: 4,
          duplicates: 2,
          outOfOrder: 1,
          repaired: 0,
          missing: 2,
          dropped: 3,
          gaps: [{ from: 7, to: 8 }],
        });
        // And it works as a schema-2 database from here.
        expect((await store.ackFor('a1')).streams.telemetry).toEqual({ through: 6, highest: 9, missing: [[7, 8]] });
        expect(await store.ingestBatch(batch([7]))).toMatchObject({ repaired: 1 });
        await store.ingestBatch(unavailableEvent('telemetry', [[8, 8]]));
        expect(await stream(store)).toMatchObject({ repaired: 1, unavailable: 1, missing: 0 });
        await store.close();
        await expect(open(file)).resolves.toBeDefined(); // opening again does not migrate twice
      },
    );
  });
}
