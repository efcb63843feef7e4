import type { Logger } from '../core/logger.js';
import type { RecordStore } from '../store/record-store.js';

/** What `forewarn status` shows about a backlog being drained; the agent keeps it in the database's meta table. */
export interface DrainState {
  /** When this was written; a reader treats it as stale when the agent stopped updating it. */
  ts: number;
  left: number;
  /** Records acknowledged per second over the last window. */
  ratePerSec: number;
  bytesPerSec: number;
  /** Seconds to go at the current rate; null while nothing is being acknowledged. */
  etaSeconds: number | null;
}

export const DRAIN_META_KEY = 'drain';
/** A backlog worth reporting: fewer pending records than this drain within a tick or two. */
const BACKLOG_MIN = 1000;
/** A backlog is drained once fewer than this are left: what live traffic keeps in flight, not the backlog's tail. */
const DRAINED_BELOW = 100;
/** Rate is measured over this window. */
const RATE_WINDOW_MS = 10_000;
/** During an outage, the backlog is summed up at most this often (the outage itself is said once, by the sync). */
export const OUTAGE_SUMMARY_MS = 5 * 60_000;

/**
 * Measures how fast the outbox drains and, while a backlog exists, records it for `forewarn status` every
 * `intervalMs`. Online, it logs the drain's progress every `intervalMs` and says once when the backlog is gone,
 * with the records and seconds of the drain itself (from the connection, or from when the backlog appeared while
 * online, to the last acknowledgement). Offline, it logs a summary at most every OUTAGE_SUMMARY_MS: the sync
 * already said the broker is unreachable, once.
 */
export class DrainProgress {
  private readonly acks: Array<{ t: number; records: number; bytes: number }> = [];
  private lastReport = 0;
  /** This connection: when it came up, records acknowledged on it, and when the last acknowledgement came. */
  private session = { since: 0, acked: 0, lastAckAt: 0 };
  /** The backlog being drained: from when, and the session's acknowledged count at that moment. */
  private backlog: { from: number; ackedBefore: number } | null = null;
  /** The outage as this class saw it: since when, and when it was last summed up. */
  private outage: { since: number; summarisedAt: number } | null = null;
  /** When the outbox was last counted. */
  private lastCountAt = 0;

  constructor(
    private readonly store: RecordStore,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  /** The broker connection came up: a backlog left from the outage drains from now. */
  connected(now = Date.now()): void {
    this.session = { since: now, acked: 0, lastAckAt: 0 };
    if (this.backlog) this.backlog = { from: now, ackedBefore: 0 };
    this.lastCountAt = 0;
  }

  acknowledged(records: number, bytes: number, now = Date.now()): void {
    this.acks.push({ t: now, records, bytes });
    this.session.acked += records;
    this.session.lastAckAt = now;
  }

  rate(now = Date.now()): { records: number; bytes: number } {
    while (this.acks.length && this.acks[0]!.t < now - RATE_WINDOW_MS) this.acks.shift();
    if (!this.acks.length) return { records: 0, bytes: 0 };
    // Over the window, or since the first acknowledgement in it when the drain began more recently.
    const span = Math.max(1000, Math.min(RATE_WINDOW_MS, now - this.acks[0]!.t));
    let records = 0;
    let bytes = 0;
    for (const a of this.acks) {
      records += a.records;
      bytes += a.bytes;
    }
    return { records: (records * 1000) / span, bytes: (bytes * 1000) / span };
  }

  /**
   * Called on the flush timer. `nextTryAt`: when the sync tries the broker next, while offline. Online with a
   * backlog, the outbox is counted on every call, so the end of a fast drain is seen within one flush interval.
   */
  tick(online: boolean, now = Date.now(), nextTryAt: number | null = null): void {
    if (online) this.outage = null;
    else this.outage ??= { since: now, summarisedAt: now };
    const report = now - this.lastReport >= this.intervalMs;
    const summarise = !online && this.outage !== null && now - this.outage.summarisedAt >= OUTAGE_SUMMARY_MS;
    if (!report && !summarise && !(online && this.backlog)) return;
    if (report) this.lastReport = now;
    // What is still to send, not what waits for the centre's confirmation: that is not a backlog to drain. Counted
    // (queries) only where a backlog is under way or could have begun: under BACKLOG_MIN seqs handed out and not
    // acknowledged, `left` is below it whatever the count, and an idle agent counts nothing on its report interval.
    const left = this.backlog || this.store.pendingAtMost() >= BACKLOG_MIN ? this.store.unpublishedTotal() : 0;
    const countedBefore = this.lastCountAt;
    this.lastCountAt = now;
    // Offline, nothing drains, whatever the last seconds of the connection achieved.
    const r = online ? this.rate(now) : { records: 0, bytes: 0 };
    let state: DrainState | null = null;
    if (left >= BACKLOG_MIN || (online && this.backlog && left >= DRAINED_BELOW)) {
      // Online, a backlog not counted since the connection came up was there at connect: its drain began then.
      if (!this.backlog)
        this.backlog =
          !online || countedBefore < this.session.since ? { from: this.session.since, ackedBefore: 0 } : { from: now, ackedBefore: this.session.acked };
      state = {
        ts: now,
        left,
        ratePerSec: Math.round(r.records),
        bytesPerSec: Math.round(r.bytes),
        etaSeconds: r.records > 0 ? Math.round(left / r.records) : null,
      };
      if (report) {
        this.store.setMeta(DRAIN_META_KEY, JSON.stringify(state));
        if (online) this.log.info(state, 'draining the backlog');
      }
    } else if (this.backlog && online) {
      const end = this.session.lastAckAt >= this.backlog.from ? this.session.lastAckAt : now;
      this.log.info(
        { records: this.session.acked - this.backlog.ackedBefore, seconds: Math.round((end - this.backlog.from) / 100) / 10, left },
        'backlog drained',
      );
      this.backlog = null;
      this.store.setMeta(
        DRAIN_META_KEY,
        JSON.stringify({ ts: now, left, ratePerSec: Math.round(r.records), bytesPerSec: Math.round(r.bytes), etaSeconds: 0 } satisfies DrainState),
      );
    } else if (!online) {
      // Offline below the threshold (the drop policy made room): nothing worth a drain report when it returns.
      this.backlog = null;
    }
    if (summarise) this.summariseOutage(now, nextTryAt, state);
  }

  private summariseOutage(now: number, nextTryAt: number | null, state: DrainState | null): void {
    const outage = this.outage!;
    outage.summarisedAt = now;
    const line = {
      ...(state ?? {}),
      buffered: this.store.pendingTotal(),
      offlineForSeconds: Math.round((now - outage.since) / 1000),
      nextTryAt: nextTryAt === null ? undefined : new Date(nextTryAt).toISOString(),
    };
    this.log.info(line, state ? 'backlog waiting for the broker' : 'broker still unreachable; buffering locally');
  }
}
