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
/** Rate is measured over this window. */
const RATE_WINDOW_MS = 10_000;

/**
 * Measures how fast the outbox drains and, while a backlog exists, logs it and records it for `forewarn status`
 * every `intervalMs`; says once when the backlog is gone.
 */
export class DrainProgress {
  private readonly acks: Array<{ t: number; records: number; bytes: number }> = [];
  private lastReport = 0;
  private backlog: { startedAt: number; size: number } | null = null;

  constructor(
    private readonly store: RecordStore,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  acknowledged(records: number, bytes: number, now = Date.now()): void {
    this.acks.push({ t: now, records, bytes });
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

  /** Called on the flush timer. */
  tick(online: boolean, now = Date.now()): void {
    if (now - this.lastReport < this.intervalMs) return;
    this.lastReport = now;
    // What is still to send, not what waits for the centre's confirmation: that is not a backlog to drain.
    const left = this.store.unpublishedTotal();
    // Offline, nothing drains, whatever the last seconds of the connection achieved.
    const r = online ? this.rate(now) : { records: 0, bytes: 0 };
    if (left >= BACKLOG_MIN) {
      this.backlog ??= { startedAt: now, size: left };
      const state: DrainState = {
        ts: now,
        left,
        ratePerSec: Math.round(r.records),
        bytesPerSec: Math.round(r.bytes),
        etaSeconds: r.records > 0 ? Math.round(left / r.records) : null,
      };
      this.store.setMeta(DRAIN_META_KEY, JSON.stringify(state));
      this.log.info({ ...state, online }, online ? 'draining the backlog' : 'backlog waiting for the broker');
    } else if (this.backlog && online) {
      this.log.info({ records: this.backlog.size, seconds: Math.round((now - this.backlog.startedAt) / 1000) }, 'backlog drained');
      this.backlog = null;
      this.store.setMeta(
        DRAIN_META_KEY,
        JSON.stringify({ ts: now, left, ratePerSec: Math.round(r.records), bytesPerSec: Math.round(r.bytes), etaSeconds: 0 } satisfies DrainState),
      );
    }
  }
}
