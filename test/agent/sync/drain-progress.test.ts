import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DRAIN_META_KEY, DrainProgress, OUTAGE_SUMMARY_MS } from '../../../agent/src/sync/drain-progress.js';
import { RecordStore } from '../../../agent/src/store/record-store.js';
import { captureLogger } from '../../helpers/capture-logger.js';

/**
 * The drain and outage log lines, on a real outbox with the clock passed in: an outage is summed up at most every
 * OUTAGE_SUMMARY_MS, and "backlog drained" reports the records and seconds of the drain itself.
 */

const stores: RecordStore[] = [];
afterEach(() => stores.splice(0).forEach((s) => s.close()));

function addTelemetry(store: RecordStore, records: number): void {
  store.append(Array.from({ length: records }, (_, i) => ({ stream: 'telemetry' as const, ts: i, asset: 'a', payload: { v: i } })));
}

/** An outbox holding `records` telemetry records, and a DrainProgress on it reporting every 10 s to a captured log. */
function rig(records: number) {
  const store = new RecordStore({ dir: path.join(mkdtempSync(path.join(tmpdir(), 'fw-drain-')), 'data') });
  stores.push(store);
  addTelemetry(store, records);
  const { log, lines } = captureLogger('info');
  return { store, lines, progress: new DrainProgress(store, 10_000, log) };
}

/** Marks `n` records sent, as the sync does on a PUBACK, and tells the progress. */
function acknowledge(store: RecordStore, progress: DrainProgress, n: number, now: number): void {
  const ids = store.pending('telemetry', n).map((r) => r.seq);
  store.markSent('telemetry', ids, now);
  progress.acknowledged(ids.length, ids.length * 50, now);
}

describe('drain progress', () => {
  it('sums an outage up at most every few minutes, with the backlog and the next reconnect time', () => {
    const { store, lines, progress } = rig(1480);
    const t0 = 1_000_000;
    // Twelve minutes offline, ticked every second as the sync's flush timer does.
    for (let t = t0; t <= t0 + 12 * 60_000; t += 1000) progress.tick(false, t, t + 7000);
    const summaries = lines.filter((l) => l.msg === 'backlog waiting for the broker');
    expect(summaries.map((l) => l.offlineForSeconds)).toEqual([OUTAGE_SUMMARY_MS / 1000, (2 * OUTAGE_SUMMARY_MS) / 1000]);
    expect(summaries[0]).toMatchObject({ left: 1480, buffered: 1480, etaSeconds: null, nextTryAt: new Date(t0 + OUTAGE_SUMMARY_MS + 7000).toISOString() });
    // Nothing else was logged in those twelve minutes; `forewarn status` still got its note every 10 s.
    expect(lines).toHaveLength(2);
    expect(JSON.parse(store.getMeta(DRAIN_META_KEY)!)).toMatchObject({ left: 1480, etaSeconds: null, ts: t0 + 12 * 60_000 });
  });

  it('sums up an outage with a small backlog too, without a drain report', () => {
    const { store, lines, progress } = rig(12);
    for (let t = 0; t <= OUTAGE_SUMMARY_MS; t += 1000) progress.tick(false, 5_000_000 + t, null);
    expect(lines.map((l) => [l.msg, l.buffered])).toEqual([['broker still unreachable; buffering locally', 12]]);
    expect(store.getMeta(DRAIN_META_KEY)).toBeUndefined();
  });

  it('reports the records and seconds of the drain itself, not of the outage', () => {
    const { store, lines, progress } = rig(1139);
    const t0 = 2_000_000;
    // A minute offline: the backlog is seen, nothing drains.
    for (let t = t0; t < t0 + 60_000; t += 1000) progress.tick(false, t, null);
    // The broker returns; 1,139 records leave in 0.2 s, and the next flush tick sees the outbox empty.
    const back = t0 + 60_000;
    progress.connected(back);
    acknowledge(store, progress, 500, back + 50);
    acknowledge(store, progress, 500, back + 120);
    acknowledge(store, progress, 139, back + 200);
    progress.tick(true, back + 1000, null);
    const drained = lines.filter((l) => l.msg === 'backlog drained');
    expect(drained).toHaveLength(1);
    expect(drained[0]).toMatchObject({ records: 1139, seconds: 0.2, left: 0 });
    expect(JSON.parse(store.getMeta(DRAIN_META_KEY)!)).toMatchObject({ left: 0, etaSeconds: 0 });
  });

  it('ends a drain when the backlog is gone, not when it falls under the size that makes it a backlog', () => {
    const { store, lines, progress } = rig(1500);
    const t0 = 4_000_000;
    progress.tick(false, t0, null);
    progress.connected(t0 + 1000);
    acknowledge(store, progress, 1000, t0 + 1200);
    progress.tick(true, t0 + 2000, null);
    expect(lines.some((l) => l.msg === 'backlog drained')).toBe(false);
    acknowledge(store, progress, 450, t0 + 2500);
    progress.tick(true, t0 + 3000, null);
    expect(lines.find((l) => l.msg === 'backlog drained')).toMatchObject({ records: 1450, seconds: 1.5, left: 50 });
  });

  it('measures a backlog left from an earlier run from the connection, even before its first count', () => {
    const { store, lines, progress } = rig(3000);
    const t0 = 3_000_000;
    progress.connected(t0);
    acknowledge(store, progress, 1000, t0 + 300);
    progress.tick(true, t0 + 1000, null);
    expect(lines.find((l) => l.msg === 'draining the backlog')).toMatchObject({ left: 2000 });
    acknowledge(store, progress, 2000, t0 + 1500);
    progress.tick(true, t0 + 2000, null);
    expect(lines.find((l) => l.msg === 'backlog drained')).toMatchObject({ records: 3000, seconds: 1.5 });
  });

  it('measures a backlog that builds while online from when it appears, though an idle outbox is not counted', () => {
    const { store, lines, progress } = rig(10);
    const t0 = 5_000_000;
    progress.connected(t0);
    acknowledge(store, progress, 10, t0 + 100);
    expect(store.pendingAtMost()).toBe(0);
    // A minute online with nothing to drain: reports come due, and the bound from memory says no backlog, so the
    // outbox is not counted.
    const counts = vi.spyOn(store, 'unpublishedTotal');
    for (let t = t0 + 1000; t <= t0 + 60_000; t += 1000) progress.tick(true, t, null);
    expect(lines).toHaveLength(0);
    expect(counts).not.toHaveBeenCalled();
    addTelemetry(store, 1500);
    expect(store.pendingAtMost()).toBe(store.pendingTotal());
    progress.tick(true, t0 + 70_000, null);
    expect(lines.find((l) => l.msg === 'draining the backlog')).toMatchObject({ left: 1500 });
    acknowledge(store, progress, 1500, t0 + 71_000);
    progress.tick(true, t0 + 72_000, null);
    // From its first count (70 s), not from the connection (0 s): the skipped counts still count as looks.
    expect(lines.find((l) => l.msg === 'backlog drained')).toMatchObject({ records: 1500, seconds: 1 });
  });
});
