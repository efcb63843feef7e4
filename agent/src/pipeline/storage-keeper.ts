/**
 * The agent's side of the outbox: it opens the database (under the storage lock, with the reserve file for a
 * disk full to the last block), batches the records the stages hand it into one transaction per tick, holds
 * what a full disk refuses (other than telemetry, counted lost), and keeps house every storage.checkIntervalMs:
 * the database file still ours, the limits kept by the drop policy, the reserve file back once there is room.
 * It purges acknowledged records past retention once a minute.
 *
 * Lifecycle: constructed first (everything else needs the store); `start()` starts the timers; `stop()` stops
 * them and flushes what is queued; `close()` closes the database and releases the lock, after the sync stopped.
 */
import type { Logger } from '../core/logger.js';
import type { AgentConfig } from '../config/load-config.js';
import { describeError } from '../core/errors.js';
import type { Component } from '../core/types.js';
import { RecordStore, isStorageFull } from '../store/record-store.js';
import { StorageLock } from '../store/storage-lock.js';
import { SeqEpoch } from '../store/seq-epoch.js';
import { SpaceReserve } from '../store/space-reserve.js';
import { assessStorageLimits, type StorageLimits } from '../store/storage-limits.js';
import type { DropReason, NewRecord, StreamName } from '../store/outbox.js';
import type { RecordConsumer } from '../store/record-consumer.js';
import type { MqttSync } from '../sync/mqtt-sync.js';
import type { AgentStats } from '../snapshot/agent-view.js';
import { everyOnGrid, type GridInterval } from '../core/grid.js';

/** How often acknowledged records past their retention are purged, and how much at a time. */
const PURGE_INTERVAL_MS = 60_000;
const PURGE_BATCH = 2_000;
const PURGE_MAX_BATCHES = 500;
/** A full-disk episode ends after this long without a refused write (and with room for the reserve again). */
const FULL_EPISODE_QUIET_MS = 10_000;
/**
 * A refusal at least this long after the last piece of the reserve went may release the next one, when nothing
 * could be dropped: another program still writing took the room of the last piece before the drop committed.
 */
const NEXT_RESERVE_PIECE_MS = 2_000;
/** Records other than telemetry kept in memory while the disk refuses them; beyond this the oldest are lost (counted). */
const MAX_HELD = 10_000;
/**
 * At most one drop warning per stream this often. A full disk drops on every write: unlimited, a 4 MiB disk logged
 * 2,864 lines in 70 s. The first drop of a stream is logged at once; later ones are summed into the next line.
 */
const DROP_LOG_INTERVAL_MS = 60_000;

/** Drops of one stream not logged yet. */
interface UnloggedDrops {
  count: number;
  /** Drop passes summed into `count`. */
  passes: number;
  reason: DropReason;
  fromSeq: number | undefined;
  toSeq: number | undefined;
}

/** The storage counters of `AgentStats` that the keeper maintains. */
export type StorageStats = Pick<AgentStats, 'storageErrors' | 'dropped' | 'lost' | 'held' | 'lastCommitTs' | 'lastWriteErrorTs'>;

/** What the keeper tells the rest of the agent, attached once those parts exist (`attach`). */
export interface StorageKeeperPeers {
  /** Told of drops and of a replaced database, asked what is in flight, woken when records are ready. */
  sync: Pick<MqttSync, 'inflightCursors' | 'noteDropped' | 'notify' | 'storeReplaced'>;
  /** Run on every housekeeping pass, after the held records were retried (health retries its unsaved alerts). */
  onHousekeeping: () => void;
  /**
   * True while work is in flight whose records belong in the next commit: a source's sample, the scoring of
   * readings. Records are committed as soon as it is false (storage.commitDelayMs is then only the upper bound).
   */
  busy: () => boolean;
}

export class StorageKeeper implements Component, RecordConsumer {
  readonly name = 'storage';
  readonly store: RecordStore;
  /** storage.maxBytes and minFreeBytes as this file system allows them (a floor it cannot meet is clamped). */
  readonly limits: StorageLimits;
  private peers: StorageKeeperPeers | null = null;
  private readonly lock: StorageLock;
  private readonly reserve: SpaceReserve;
  private purgeTimer: GridInterval | null = null;
  private quotaTimer: GridInterval | null = null;
  private stopped = false;
  private lastStorageError = 0;
  private lastLimitError = 0;
  /** Since when the file system has been refusing writes for lack of space (one episode); null while it takes them. */
  private fullSince: number | null = null;
  private lastRefusal = 0;
  /** When the last piece of the reserve file was released in this episode. */
  private reserveReleasedAt = 0;
  /** Records a full disk refused, other than telemetry: committed first once it takes writes again. */
  private readonly held: NewRecord[] = [];
  private readonly writeQueue: NewRecord[] = [];
  private writeScheduled = false;
  private writeTimer: NodeJS.Timeout | null = null;
  /** A check at the end of this event-loop turn whether the work in flight has settled (`flushIfSettled`). */
  private settleCheck = false;
  /** performance.now() of the last commit attempt: commits are at least storage.commitDelayMs apart. */
  private lastFlushAt = -Infinity;
  /** performance.now() when the first record still waiting was queued: it waits commitDelayMs at most. */
  private firstQueuedAt = 0;
  private readonly unloggedDrops = new Map<StreamName, UnloggedDrops>();
  private readonly dropLoggedAt = new Map<StreamName, number>();

  constructor(
    private readonly config: Readonly<AgentConfig['storage']>,
    private readonly log: Logger,
    /** The agent's counters (`AgentStats`), of which the keeper maintains the storage ones. */
    readonly stats: StorageStats,
  ) {
    this.lock = new StorageLock(config.dir);
    this.lock.acquire();
    this.reserve = new SpaceReserve(config.dir);
    const open = () =>
      new RecordStore({ dir: config.dir, synchronous: config.synchronous, ackCommitDelayMs: config.ackCommitDelayMs, epoch: new SeqEpoch(config.dir) });
    try {
      try {
        this.store = open();
      } catch (err) {
        // A disk full to the last block: SQLite cannot even create its -shm file. The reserve makes that room,
        // a piece at a time.
        if (!isStorageFull(err) || !this.reserve.release()) throw err;
        log.error({ code: 'FW_ERR_STORAGE_FULL', dir: config.dir }, 'the file system is full; released the reserve file to start');
        this.fullSince = this.reserveReleasedAt = Date.now();
        let store: RecordStore | null = null;
        while (!store) {
          try {
            store = open();
          } catch (again) {
            if (!isStorageFull(again) || !this.reserve.release()) throw again;
          }
        }
        this.store = store;
      }
    } catch (err) {
      this.lock.release();
      throw err;
    }
    // `config check` and `doctor` refuse an explicit floor this file system cannot meet; a running agent (the
    // file system may have changed since) clamps it and says so, rather than dropping everything it holds.
    const assessed = assessStorageLimits(
      config.dir,
      { maxBytes: config.maxBytes, minFreeBytes: config.minFreeBytes },
      { maxBytes: false, minFreeBytes: false },
    );
    this.limits = assessed.effective;
    for (const p of assessed.problems) log.warn({ option: p.path, effective: this.limits }, `${p.path}: ${p.message}`);
    if (this.store.recovered) {
      log.error(
        { code: 'FW_ERR_STORAGE_CORRUPT', db: this.store.file, setAside: this.store.recovered.setAside, reason: this.store.recovered.reason },
        'the database could not be used; it was set aside and a fresh one started (its unsent records are in the set-aside file)',
      );
    }
  }

  /** The sync and health exist only after the store: attached by the agent once they are built. */
  attach(peers: StorageKeeperPeers): void {
    this.peers = peers;
  }

  /**
   * The boot number of this run. A disk full at start must not stop the agent (it would collect nothing, alerts
   * included, for as long as it stays full): make room by the drop policy and, failing that, count on from the clock.
   */
  firstBootSeq(): number {
    try {
      return this.store.nextBootSeq();
    } catch (err) {
      if (isStorageFull(err) && this.enforceStorageLimits('disk-full')) {
        try {
          return this.store.nextBootSeq();
        } catch {
          // still full: below
        }
      }
      const boot = Math.floor(Date.now() / 1000);
      this.log.error({ err: describeError(err), code: 'FW_ERR_STORAGE_WRITE', bootSeq: boot }, 'cannot record the boot number; using the clock for this run');
      return boot;
    }
  }

  /** Also after a `stop()`: a reload hands the keeper to the next pipeline, which starts it again. */
  async start(): Promise<void> {
    this.stopped = false;
    this.purgeTimer = everyOnGrid(() => this.purge(), PURGE_INTERVAL_MS).unref();
    this.housekeeping();
    this.quotaTimer = everyOnGrid(() => this.housekeeping(), this.config.checkIntervalMs).unref();
  }

  /** Stops housekeeping and purging; `flush()` and `close()` follow at the end of the agent's stop. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.purgeTimer?.clear();
    this.quotaTimer?.clear();
  }

  /** Closes the database and releases the storage lock: the last step of the agent's stop. */
  close(): void {
    // The drops not yet logged (rate limit) are said before the agent goes.
    for (const stream of [...this.unloggedDrops.keys()]) this.logDrops(stream);
    this.store.close();
    this.lock.release();
  }

  /**
   * Queues records for the next write. What belongs together (the sources that tick together on the grid, the
   * scores of their readings) is committed in one transaction, one write to flash instead of one each: at the end
   * of the event-loop turn in which the last of that work settled (`peers.busy()`), at most once per
   * storage.commitDelayMs, and at the latest storage.commitDelayMs after the first record queued. So a reading
   * whose work is synchronous (host telemetry, anomaly detection) is committed and sent in the wake-up that took
   * it, not in a timer's wake-up of its own.
   */
  consumeRecords(items: readonly NewRecord[]): void {
    this.writeQueue.push(...items);
    if (this.config.commitDelayMs === 0) {
      if (!this.writeScheduled) setImmediate(() => this.flush());
      this.writeScheduled = true;
      return;
    }
    if (!this.writeScheduled) {
      this.writeScheduled = true;
      this.firstQueuedAt = performance.now();
    }
    if (!this.settleCheck) {
      this.settleCheck = true;
      // After the timers and I/O callbacks of this turn: the other sources due at the same grid instant have begun.
      setImmediate(() => this.flushIfSettled());
    }
  }

  /**
   * Commits now when nothing in flight is still to add records and the last commit is commitDelayMs ago; else
   * makes sure the deadline timer is armed. Only then: a timer armed and cleared within the turn would still
   * wake the process when it was due (Node does not re-arm its one libuv timer on clearTimeout).
   */
  private flushIfSettled(): void {
    this.settleCheck = false;
    if (!this.writeScheduled) return;
    const now = performance.now();
    // A source that pushes records in quick succession (a stream, a subscription) still gets at most one commit
    // per window: the deadline takes the rest.
    if (!this.peers?.busy() && now - this.lastFlushAt >= this.config.commitDelayMs) return this.flush();
    this.writeTimer ??= setTimeout(() => this.flush(), Math.max(0, this.firstQueuedAt + this.config.commitDelayMs - now));
  }

  /** Commits what is queued now, held records first. */
  flush(): void {
    if (this.writeTimer) clearTimeout(this.writeTimer);
    this.writeTimer = null;
    this.writeScheduled = false;
    if (!this.writeQueue.length && !this.held.length) return;
    this.lastFlushAt = performance.now();
    // What a full disk refused earlier goes first, in the order it was produced.
    const items = [...this.held.splice(0), ...this.writeQueue.splice(0)];
    try {
      this.store.append(items);
      this.committed();
    } catch (first) {
      // A full disk: release the reserve, make room by the drop policy, and try once more.
      let err = first;
      if (isStorageFull(err)) {
        this.diskFull();
        if (this.enforceStorageLimits('disk-full')) {
          try {
            this.store.append(items);
            this.committed();
            return;
          } catch (again) {
            err = again;
          }
        }
      }
      this.stats.storageErrors++;
      this.stats.lastWriteErrorTs = Date.now();
      // Telemetry is the one stream whose next reading replaces the last: it is counted lost. Alerts, risk and
      // events wait in memory (bounded) for the disk to take them.
      const keep = items.filter((i) => i.stream !== 'telemetry');
      const overflow = Math.max(0, keep.length - MAX_HELD);
      this.held.push(...keep.slice(overflow));
      this.stats.lost += items.length - keep.length + overflow;
      this.stats.held = this.held.length;
      // A full or failing disk is logged once per episode and then at most once a minute, not per record.
      if (Date.now() - this.lastStorageError > 60_000) {
        this.lastStorageError = Date.now();
        this.log.error(
          { err: describeError(err), code: 'FW_ERR_STORAGE_WRITE', failures: this.stats.storageErrors, lost: this.stats.lost, held: this.held.length },
          'cannot commit records: telemetry is lost (counted), alerts, risk and events are held in memory and retried',
        );
      }
    }
  }

  private committed(): void {
    this.stats.lastCommitTs = Date.now();
    this.stats.held = this.held.length;
    // Out as soon as it is committed: the sync's own timer is only for retries and housekeeping.
    this.peers?.sync.notify();
  }

  /**
   * Runs every storage.checkIntervalMs: the database file still ours, the limits kept, writes the disk refused
   * retried, and the reserve file back once there is room.
   */
  private housekeeping(): void {
    const why = this.store.replacedOnDisk();
    if (why) this.replaceStore(why);
    this.enforceStorageLimits();
    if (this.held.length && !this.writeScheduled) this.flush();
    this.peers?.onHousekeeping();
    // The episode ends once the file system has room for the reserve again and no write was refused for a while.
    if (this.fullSince && Date.now() - this.lastRefusal >= FULL_EPISODE_QUIET_MS && this.reserve.restore()) {
      this.log.info({ fullForSeconds: Math.round((Date.now() - this.fullSince) / 1000), lost: this.stats.lost }, 'the disk takes writes again');
      this.fullSince = null;
    } else if (!this.fullSince) {
      this.reserve.restore();
    }
  }

  /** The database was deleted or replaced under us: carry what is unacknowledged into a fresh file and say so. */
  private replaceStore(reason: string): void {
    try {
      const r = this.store.replaceFile(reason);
      this.peers?.sync.storeReplaced();
      this.log.error(
        { code: 'FW_ERR_STORAGE_REPLACED', db: this.store.file, reason, firstSeq: r.firstSeq, carried: r.carried, setAside: r.setAside || undefined },
        `${reason}; a fresh database was started with the ${r.carried} unacknowledged records carried over`,
      );
    } catch (err) {
      this.log.error(
        { err: describeError(err), code: 'FW_ERR_STORAGE_REPLACED', db: this.store.file },
        `${reason}, and a fresh database could not be started; will retry`,
      );
    }
  }

  /** The first refusal of an episode: said once, and the reserve file goes so the drop policy has room to work. */
  private diskFull(): void {
    this.lastRefusal = Date.now();
    if (this.fullSince) return;
    this.fullSince = this.reserveReleasedAt = Date.now();
    const released = this.reserve.release();
    this.log.error(
      { code: 'FW_ERR_STORAGE_FULL', db: this.store.file, reserveReleased: released },
      'the file system holding the database is full: dropping by policy to make room; collection goes on and resumes fully when space returns',
    );
  }

  /**
   * Keeps the database within its quota and the file system above its free-space floor, by the documented drop
   * policy (store/outbox.ts DROP_ORDER). Returns whether anything was freed.
   */
  private enforceStorageLimits(reason?: DropReason): boolean {
    const limits = this.limits;
    const sync = this.peers?.sync;
    try {
      // Before the sync exists (a full disk at start) nothing is in flight.
      const reports = this.store.enforceQuota(limits, sync?.inflightCursors() ?? new Map(), reason);
      for (const r of reports) {
        this.stats.dropped[r.stream] += r.count;
        sync?.noteDropped(r.stream, r.ranges);
        const note = this.unloggedDrops.get(r.stream) ?? { count: 0, passes: 0, reason: r.reason, fromSeq: r.ranges[0]?.[0], toSeq: undefined };
        note.count += r.count;
        note.passes++;
        note.reason = r.reason;
        note.toSeq = r.ranges[r.ranges.length - 1]?.[1] ?? note.toSeq;
        this.unloggedDrops.set(r.stream, note);
        if (Date.now() - (this.dropLoggedAt.get(r.stream) ?? -Infinity) >= DROP_LOG_INTERVAL_MS) this.logDrops(r.stream);
      }
      if (reports.length) sync?.notify();
      // Space freed by purges and drops goes back to the file system a little at a time, when it is needed.
      const u = this.store.usage();
      if (u.reclaimableBytes > 0 && (u.freeBytes < limits.minFreeBytes * 2 || u.reclaimableBytes > u.fileBytes / 2)) this.store.vacuumStep();
      return reports.length > 0 || reason === 'disk-full';
    } catch (err) {
      if (isStorageFull(err) && reason !== 'disk-full') {
        // The disk filled under housekeeping (a vacuum step, a purge): drop by policy now, with the room the reserve
        // gives back. Releasing it and dropping later let the next commits take that room first, and then even
        // the drop could not be written (seen on a tmpfs under load).
        this.diskFull();
        return this.enforceStorageLimits('disk-full');
      }
      if (isStorageFull(err)) {
        this.diskFull();
        // Not even a drop could be written: another program took the room the last piece of the reserve gave back
        // (a burst of writes still going on when it went). The next piece goes at a later refusal, not at once.
        if (Date.now() - this.reserveReleasedAt >= NEXT_RESERVE_PIECE_MS && this.reserve.release()) {
          this.reserveReleasedAt = Date.now();
          this.log.warn(
            { reserveLeft: this.reserve.size() },
            'nothing could be dropped: the room of the reserve file was taken by another program; released its next piece',
          );
          return this.enforceStorageLimits('disk-full');
        }
      }
      // Once a minute at most: on a full disk every write would otherwise add a line.
      if (Date.now() - this.lastLimitError > 60_000) {
        this.lastLimitError = Date.now();
        this.log.warn({ err: describeError(err) }, 'storage limit check failed; retrying');
      }
      return false;
    }
  }

  /** One warning for the drops of a stream since its last one (`count` and the seq range cover them all). */
  private logDrops(stream: StreamName): void {
    const note = this.unloggedDrops.get(stream);
    if (!note) return;
    this.unloggedDrops.delete(stream);
    this.dropLoggedAt.set(stream, Date.now());
    this.log.warn(
      {
        code: 'FW_ERR_STORAGE_DROPPED',
        stream,
        count: note.count,
        passes: note.passes,
        reason: note.reason,
        fromSeq: note.fromSeq,
        toSeq: note.toSeq,
        ...this.limits,
      },
      'storage limit reached; dropped the oldest unsent records by policy',
    );
  }

  /** Deletes acknowledged records past retention in small batches, yielding between them so intake never waits long. */
  private purge(batches = 0, removed = 0): void {
    if (this.stopped) return;
    try {
      const n = this.store.purgeSent(Date.now() - this.config.retentionHours * 3_600_000, PURGE_BATCH);
      removed += n;
      if (n === PURGE_BATCH && batches < PURGE_MAX_BATCHES) {
        setImmediate(() => this.purge(batches + 1, removed));
        return;
      }
      if (removed) this.log.debug({ removed }, 'purged acknowledged records past retention');
    } catch (err) {
      this.log.warn({ err: describeError(err) }, 'purge failed');
    }
  }
}
