import { ensureSchemaTable, migrateComponent, MIGRATION_LOCK, type Migration } from './sql/migrations.js';
import type { SqlClient } from './sql/sql-client.js';

/**
 * A named lease in the central database, so that one of several central workers on one store does a job that
 * must run once (evaluating fleet alerts, routing alerts to people) while the others stand by.
 *
 * `central_leases`: name, holder (the worker id), acquired_ts (when this holder took it), renewed_ts, expires_ts.
 * The holder renews it well inside its time to live; a worker whose renewal fails (it lost the lease, or the
 * database) stops doing the job at once. When the holder dies, the lease expires and the next worker that asks
 * takes it over; a holder that stops cleanly releases it, so the takeover is immediate.
 *
 * Times are the workers' own clocks: their skew must stay well below the time to live (NTP keeps it in
 * milliseconds). The job itself stays idempotent, because between a holder's last renewal and its expiry two
 * workers may briefly both believe they lead (a paused process, a slow database).
 */

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    async up(q) {
      const big = q.dialect === 'postgres' ? 'BIGINT' : 'INTEGER';
      await q.exec(`CREATE TABLE central_leases (
        name TEXT PRIMARY KEY, holder TEXT NOT NULL, acquired_ts ${big} NOT NULL, renewed_ts ${big} NOT NULL, expires_ts ${big} NOT NULL
      )`);
    },
  },
];

export const LEASE_COMPONENT = 'leader-lease';

export interface LeaderLeaseOptions {
  /** The job the lease guards, e.g. `central-alerts`. */
  name: string;
  /** This worker's id: unique per process (host name and pid, or a configured id). */
  holder: string;
  /** How long a lease lasts without renewal. Default 30 s. */
  ttlMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

export interface LeaseHolder {
  holder: string;
  acquiredTs: number;
  renewedTs: number;
  expiresTs: number;
}

export class LeaderLease {
  readonly name: string;
  readonly holder: string;
  readonly ttlMs: number;
  private readonly now: () => number;
  private migrated = false;
  /** Until when this worker may act on its last successful acquire or renewal; 0 when it does not hold it. */
  private validUntil = 0;

  constructor(
    private readonly sql: SqlClient,
    options: LeaderLeaseOptions,
  ) {
    this.name = options.name;
    this.holder = options.holder;
    this.ttlMs = options.ttlMs ?? 30_000;
    this.now = options.now ?? Date.now;
  }

  /** Whether this worker held the lease at its last acquire and it has not expired since. */
  get isLeader(): boolean {
    return this.validUntil > this.now();
  }

  /**
   * Takes the lease when it is free or expired, renews it when this worker holds it; false when another worker
   * holds a live one. Throws only when the database fails (then this worker must not act: `isLeader` turns false
   * once its lease runs out).
   */
  async acquire(): Promise<boolean> {
    await this.migrate();
    const now = this.now();
    const expires = now + this.ttlMs;
    const held = await this.sql.tx(
      async (q) => {
        // One statement decides: insert when absent, update when ours or expired, nothing when another's is live.
        const { changes } = await q.run(
          `INSERT INTO central_leases (name, holder, acquired_ts, renewed_ts, expires_ts) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET
             acquired_ts = CASE WHEN central_leases.holder = excluded.holder THEN central_leases.acquired_ts ELSE excluded.acquired_ts END,
             holder = excluded.holder, renewed_ts = excluded.renewed_ts, expires_ts = excluded.expires_ts
           WHERE central_leases.holder = excluded.holder OR central_leases.expires_ts <= excluded.renewed_ts`,
          [this.name, this.holder, now, now, expires],
        );
        return changes > 0;
      },
      { lockKey: `lease:${this.name}` },
    );
    this.validUntil = held ? expires : 0;
    return held;
  }

  /**
   * For a long job between acquisitions: true while the lease is held, renewing it once half its time to live has
   * passed; false once it is lost (then stop acting: another worker may have taken over).
   */
  async confirm(): Promise<boolean> {
    if (!this.isLeader) return false;
    if (this.validUntil - this.now() > this.ttlMs / 2) return true;
    return this.acquire();
  }

  /** Gives the lease up, if this worker holds it, so another takes over at once. */
  async release(): Promise<void> {
    this.validUntil = 0;
    if (!this.migrated) return;
    await this.sql.run('DELETE FROM central_leases WHERE name = ? AND holder = ?', [this.name, this.holder]);
  }

  /** Who holds the lease now (expired or not), for status pages and tests. */
  async current(): Promise<LeaseHolder | undefined> {
    await this.migrate();
    const row = await this.sql.get<{ holder: string; acquired_ts: number; renewed_ts: number; expires_ts: number }>(
      'SELECT holder, acquired_ts, renewed_ts, expires_ts FROM central_leases WHERE name = ?',
      [this.name],
    );
    return row && { holder: row.holder, acquiredTs: row.acquired_ts, renewedTs: row.renewed_ts, expiresTs: row.expires_ts };
  }

  private async migrate(): Promise<void> {
    if (this.migrated) return;
    await this.sql.tx(
      async (q) => {
        await ensureSchemaTable(q);
        await migrateComponent(q, LEASE_COMPONENT, MIGRATIONS);
      },
      { lockKey: MIGRATION_LOCK },
    );
    this.migrated = true;
  }
}
