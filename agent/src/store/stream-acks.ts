/**
 * One stream's acknowledgement state, kept without writing a row per acknowledgement (issue #13: an UPDATE per
 * PUBACK and per confirmation rewrote a leaf and two index pages a reading). What is written is a watermark per
 * stream (`acked`: every row at or below it is acknowledged), saved with a commit of records at most every
 * `storage.ackCommitDelayMs`; what is acknowledged out of order above it, what the broker took and when, lives in
 * memory. A crash loses only that memory: those rows count as pending again and go once more, and the centre drops
 * the duplicates. Nothing is ever counted acknowledged that was not.
 *
 * Ranges are inclusive `[lo, hi]` seqs. Seqs of rows that no longer exist (dropped, purged) may fall inside them;
 * `nextRow(after)` (the first row of the stream above `after`, or null) lets the watermark step over such holes.
 */
export type NextRow = (after: number) => number | null;

/** Rows the broker took (central acknowledgement) that the centre has not confirmed yet, and when it took them. */
export interface Unconfirmed {
  lo: number;
  hi: number;
  ts: number;
}

/** Watermarks remembered for the retention purge: about one per HISTORY_STEP_MS. */
const HISTORY_STEP_MS = 60_000;
/** More separate published spans than this (a centre that never confirms) are merged, oldest first. */
const MAX_UNCONFIRMED = 4_096;

export class StreamAcks {
  /** Every row at or below this seq is acknowledged. */
  acked: number;
  /** When `acked` last moved (for retention: rows at or below it were acknowledged by then). */
  ackedTs: number;
  /** Acknowledged ranges above `acked`, sorted and disjoint (out of order: a refused batch retried, a resend). */
  private above: Array<[number, number]> = [];
  /** Published, unconfirmed spans in the order the broker took them. */
  private unconfirmed: Unconfirmed[] = [];
  /** `[acked, since]` pairs, oldest first: by `since` every row at or below `acked` was acknowledged. */
  private history: Array<[number, number]> = [];

  constructor(acked: number, ackedTs: number) {
    this.acked = acked;
    this.ackedTs = ackedTs;
    this.history.push([acked, ackedTs]);
  }

  isAcked(seq: number): boolean {
    if (seq <= this.acked) return true;
    for (const [lo, hi] of this.above) {
      if (seq < lo) return false;
      if (seq <= hi) return true;
    }
    return false;
  }

  /** The acknowledged ranges above the watermark (read-only view). */
  ackedAbove(): ReadonlyArray<readonly [number, number]> {
    return this.above;
  }

  /** The parts of [lo, hi] not acknowledged yet: what an acknowledgement of [lo, hi] newly covers. */
  notAcked(lo: number, hi: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    let from = Math.max(lo, this.acked + 1);
    for (const [a, b] of this.above) {
      if (from > hi) break;
      if (b < from) continue;
      if (a > from) out.push([from, Math.min(hi, a - 1)]);
      from = Math.max(from, b + 1);
    }
    if (from <= hi) out.push([from, hi]);
    return out;
  }

  /** Marks [lo, hi] acknowledged and moves the watermark over whatever is now contiguous. */
  ack(lo: number, hi: number, now: number, nextRow: NextRow): void {
    if (hi <= this.acked) return;
    lo = Math.max(lo, this.acked + 1);
    const merged: Array<[number, number]> = [];
    let cur: [number, number] = [lo, hi];
    let placed = false;
    for (const r of this.above) {
      if (r[1] < cur[0] - 1) merged.push(r);
      else if (r[0] > cur[1] + 1) {
        if (!placed) {
          merged.push(cur);
          placed = true;
        }
        merged.push(r);
      } else cur = [Math.min(cur[0], r[0]), Math.max(cur[1], r[1])];
    }
    if (!placed) merged.push(cur);
    this.above = merged;
    this.settle(now, nextRow);
    // A confirmation may cover spans the broker took: they are no longer unconfirmed.
    this.dropUnconfirmedBelow(this.acked);
  }

  /**
   * Moves the watermark up over acknowledged ranges and over holes with no rows (dropped or purged), so that one
   * number says it again. Cheap: one lookup of the next row per step, and steps are few.
   */
  settle(now: number, nextRow: NextRow): void {
    const before = this.acked;
    for (;;) {
      while (this.above.length && this.above[0]![1] <= this.acked) this.above.shift();
      const first = this.above[0];
      if (!first) break;
      if (first[0] <= this.acked + 1) {
        this.acked = first[1];
        continue;
      }
      const next = nextRow(this.acked);
      if (next === null || next > first[1]) {
        // No row between the watermark and the end of this range: the range's rows (if any) were acknowledged.
        this.acked = first[1];
        continue;
      }
      if (next >= first[0]) {
        this.acked = first[0] - 1;
        continue;
      }
      break; // a row below the first range is still pending
    }
    if (this.acked !== before) this.advanced(now);
  }

  private advanced(now: number): void {
    this.ackedTs = now;
    // Within a step of the entry before the last, the last one moves up instead of adding one: entries stay about a
    // step apart (bounded by retention / step), and the newest watermark is always there.
    const n = this.history.length;
    if (n >= 2 && now - this.history[n - 2]![1] < HISTORY_STEP_MS) this.history[n - 1] = [this.acked, now];
    else this.history.push([this.acked, now]);
  }

  /**
   * The highest seq every row at or below which had been acknowledged by `ts`: what the retention purge may delete.
   * Rows acknowledged out of order, or within the last step, wait: kept longer, never shorter.
   */
  ackedBy(ts: number): number {
    if (this.ackedTs <= ts) return this.acked;
    let best = Number.NEGATIVE_INFINITY;
    let keep = 0;
    for (let i = 0; i < this.history.length; i++) {
      const [seq, since] = this.history[i]!;
      if (since > ts) break;
      best = seq;
      keep = i;
    }
    // Entries older than the one in use are never needed again (retention only moves forward).
    if (keep > 0) this.history.splice(0, keep);
    return Number.isFinite(best) ? best : 0;
  }

  /** The broker took [lo, hi] (central mode): it waits for the centre's confirmation. */
  published(lo: number, hi: number, now: number): void {
    const last = this.unconfirmed[this.unconfirmed.length - 1];
    if (last && last.ts === now && last.hi + 1 >= lo && last.lo <= lo) last.hi = Math.max(last.hi, hi);
    else this.unconfirmed.push({ lo, hi, ts: now });
    if (this.unconfirmed.length > MAX_UNCONFIRMED) {
      // Merged with the older one's time: such rows count as taken earlier, so a tail resend may come sooner.
      const [a, b] = this.unconfirmed.splice(0, 2) as [Unconfirmed, Unconfirmed];
      this.unconfirmed.unshift({ lo: Math.min(a.lo, b.lo), hi: Math.max(a.hi, b.hi), ts: Math.min(a.ts, b.ts) });
    }
  }

  /** Whether the broker took `seq` and the centre has not confirmed it. */
  isPublished(seq: number): boolean {
    for (const u of this.unconfirmed) if (seq >= u.lo && seq <= u.hi) return true;
    return false;
  }

  /** The published spans at or below `through` (clipped), which a confirmation through `through` acknowledges. */
  confirmable(through: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (const u of this.unconfirmed) if (u.lo <= through) out.push([u.lo, Math.min(u.hi, through)]);
    return out;
  }

  /** Spans taken before `before` with seqs above `seq`: the lowest and highest such seq, or null. */
  unconfirmedAbove(seq: number, before: number): { lo: number; hi: number } | null {
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (const u of this.unconfirmed) {
      if (u.ts >= before || u.hi <= seq) continue;
      lo = Math.min(lo, Math.max(u.lo, seq + 1));
      hi = Math.max(hi, u.hi);
    }
    return Number.isFinite(lo) ? { lo, hi } : null;
  }

  /** The unconfirmed spans, unacknowledged parts only (for counting the rows in them). */
  unconfirmedSpans(): Array<[number, number]> {
    return this.publishedSpans().flatMap(([lo, hi]) => this.notAcked(lo, hi));
  }

  private dropUnconfirmedBelow(seq: number): void {
    this.unconfirmed = this.unconfirmed.filter((u) => u.hi > seq);
    for (const u of this.unconfirmed) if (u.lo <= seq) u.lo = seq + 1;
    // Spans fully acknowledged out of order go as well.
    this.unconfirmed = this.unconfirmed.filter((u) => this.notAcked(u.lo, u.hi).length > 0);
  }

  /**
   * The seq below which every pending row is at the broker or acknowledged: where a new connection starts
   * sending, so rows the broker took are not sent again on every reconnect.
   */
  publishedThrough(nextRow: NextRow): number {
    const covered = mergeSpans([
      ...this.above.map(([lo, hi]) => [lo, hi] as [number, number]),
      ...this.unconfirmed.map((u) => [u.lo, u.hi] as [number, number]),
    ]);
    let at = this.acked;
    let i = 0;
    for (;;) {
      const next = nextRow(at);
      if (next === null) return at;
      while (i < covered.length && covered[i]![1] < next) i++;
      const c = covered[i];
      if (!c || c[0] > next) return next - 1;
      at = c[1];
    }
  }

  /** The published spans merged and sorted by seq (acknowledged parts included). */
  publishedSpans(): Array<[number, number]> {
    return mergeSpans(this.unconfirmed.map((u) => [u.lo, u.hi]));
  }

  /** The confirmation reached `through`: spans at or below it are no longer waiting for it. */
  trimUnconfirmed(through: number): void {
    this.dropUnconfirmedBelow(through);
  }

  /** After a restart: rows up to `through` were at the broker (saved), taken `now` as far as the tail check knows. */
  restorePublished(through: number, now: number): void {
    if (through > this.acked) this.unconfirmed.push({ lo: this.acked + 1, hi: through, ts: now });
  }
}

/** Sorted, with overlapping and adjacent spans joined. */
export function mergeSpans(spans: Array<[number, number]>): Array<[number, number]> {
  const sorted = [...spans].sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out;
}
