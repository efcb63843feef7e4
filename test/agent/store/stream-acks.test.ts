import { describe, expect, it } from 'vitest';
import { StreamAcks, mergeSpans } from '../../../agent/src/store/stream-acks.js';

/** A stream's rows as a sorted list of seqs: `nextRow` as the store answers it from its table. */
function rows(...seqs: number[]) {
  const list = [...seqs].sort((a, b) => a - b);
  return {
    list,
    nextRow: (after: number) => list.find((s) => s > after) ?? null,
    remove: (...gone: number[]) => gone.forEach((g) => list.splice(list.indexOf(g), 1)),
  };
}

const MIN = 60_000;

describe('StreamAcks: a watermark per stream instead of a mark per row', () => {
  it('moves the watermark over contiguous acknowledgements, and keeps out-of-order ones above it', () => {
    const r = rows(1, 2, 3, 4, 5, 6);
    const a = new StreamAcks(0, 0);
    a.ack(1, 2, 10, r.nextRow);
    expect(a.acked).toBe(2);
    a.ack(5, 5, 20, r.nextRow);
    expect(a.acked).toBe(2);
    expect([1, 2, 3, 4, 5, 6].map((s) => a.isAcked(s))).toEqual([true, true, false, false, true, false]);
    expect(a.notAcked(1, 6)).toEqual([
      [3, 4],
      [6, 6],
    ]);
    a.ack(3, 4, 30, r.nextRow);
    expect(a.acked).toBe(5);
    expect(a.ackedAbove()).toEqual([]);
    expect(a.ackedTs).toBe(30);
  });

  it('steps over seqs whose rows are gone (dropped or purged), but never over a pending row', () => {
    const r = rows(1, 2, 3, 4, 5, 6, 7);
    const a = new StreamAcks(0, 0);
    a.ack(1, 2, 1, r.nextRow);
    a.ack(5, 6, 1, r.nextRow);
    expect(a.acked).toBe(2); // 3 and 4 are pending
    r.remove(3, 4); // dropped by the storage policy
    a.settle(2, r.nextRow);
    expect(a.acked).toBe(6);
    expect(a.isAcked(7)).toBe(false);
    // A range above the last row (its rows deleted since): the watermark may take it, no row exists in between.
    const b = new StreamAcks(0, 0);
    const few = rows(1);
    b.ack(3, 4, 1, few.nextRow);
    expect(b.acked).toBe(0);
    few.remove(1);
    b.settle(2, few.nextRow);
    expect(b.acked).toBe(4);
  });

  it('tells retention the watermark as it stood at a time: later or out-of-order acknowledgements keep rows longer, never shorter', () => {
    const t0 = 1_000_000;
    const r = rows(...Array.from({ length: 10 }, (_, i) => i + 1));
    const a = new StreamAcks(0, t0);
    a.ack(1, 3, t0 + MIN, r.nextRow);
    a.ack(4, 6, t0 + 3 * MIN, r.nextRow);
    a.ack(8, 8, t0 + 4 * MIN, r.nextRow); // out of order
    expect(a.ackedBy(t0)).toBe(0);
    expect(a.ackedBy(t0 + 2 * MIN)).toBe(3);
    expect(a.ackedBy(t0 + 10 * MIN)).toBe(6);
    a.ack(7, 7, t0 + 5 * MIN, r.nextRow);
    expect(a.acked).toBe(8);
    // Seq 8 was acknowledged at 4 min, but the watermark passed it only at 5: a cut-off at 4 min keeps it.
    expect(a.ackedBy(t0 + 4 * MIN)).toBe(6);
    expect(a.ackedBy(t0 + 5 * MIN)).toBe(8);
  });

  it('keeps its retention history bounded: about one entry a minute, however often the watermark moves', () => {
    const r = { nextRow: () => null };
    const a = new StreamAcks(0, 0);
    for (let i = 1; i <= 3_600; i++) a.ack(i, i, i * 1000, r.nextRow); // once a second for an hour
    const history = (a as unknown as { history: unknown[] }).history;
    expect(history.length).toBeLessThanOrEqual(2 * 60 + 2);
    expect(history.length).toBeGreaterThanOrEqual(60);
    // Conservative between entries: never a watermark above the true one at that time.
    for (const t of [90_000, 1_234_000, 3_000_500]) expect(a.ackedBy(t)).toBeLessThanOrEqual(Math.floor(t / 1000));
    expect(a.ackedBy(3_600_000)).toBe(3_600);
  });

  it('central mode: published spans wait for the confirmation; only those are released by it', () => {
    const r = rows(1, 2, 3, 4, 5, 6);
    const a = new StreamAcks(0, 0);
    a.published(1, 3, 100);
    a.published(5, 6, 200); // 4 never left (a refused batch)
    expect(a.confirmable(6)).toEqual([
      [1, 3],
      [5, 6],
    ]);
    for (const [lo, hi] of mergeSpans(a.confirmable(2))) a.ack(lo, hi, 300, r.nextRow);
    a.trimUnconfirmed(2);
    expect(a.acked).toBe(2);
    expect(a.isPublished(3)).toBe(true);
    expect(a.unconfirmedSpans()).toEqual([
      [3, 3],
      [5, 6],
    ]);
    // Taken before 150, above 2: seq 3 only; before 250: 3..6 (4 lies inside the range but was never taken).
    expect(a.unconfirmedAbove(2, 150)).toEqual({ lo: 3, hi: 3 });
    expect(a.unconfirmedAbove(2, 250)).toEqual({ lo: 3, hi: 6 });
    // A new connection starts after 3: 4 is the first row the broker does not have.
    expect(a.publishedThrough(r.nextRow)).toBe(3);
    a.published(4, 4, 400);
    expect(a.publishedThrough(r.nextRow)).toBe(6);
  });

  it('after a restart, rows saved as published count as taken at open', () => {
    const a = new StreamAcks(4, 0);
    a.restorePublished(9, 5_000);
    expect(a.unconfirmedAbove(4, 5_001)).toEqual({ lo: 5, hi: 9 });
    expect(a.unconfirmedAbove(4, 5_000)).toBeNull();
    expect(a.isPublished(4)).toBe(false);
  });

  it('bounds the spans a centre that never confirms leaves behind', () => {
    const a = new StreamAcks(0, 0);
    for (let i = 1; i <= 10_000; i++) a.published(i, i, i);
    expect((a as unknown as { unconfirmed: unknown[] }).unconfirmed.length).toBeLessThanOrEqual(4_096);
    expect(a.unconfirmedSpans()).toEqual([[1, 10_000]]);
    expect(a.publishedThrough(() => null)).toBe(0);
  });
});
