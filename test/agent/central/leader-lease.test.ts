import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaderLease } from '../../../agent/src/central/leader-lease.js';
import { openSqlClient } from '../../../agent/src/central/sql/open-sql-client.js';
import type { SqlClient } from '../../../agent/src/central/sql/sql-client.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from '../../helpers/postgres.js';

const pgSkip = postgresSkipReason();
let cluster: PostgresCluster | undefined;
const dir = mkdtempSync(path.join(tmpdir(), 'fw-lease-'));

beforeAll(async () => {
  if (!pgSkip) cluster = await startPostgres();
}, 120_000);
afterAll(() => {
  cluster?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

for (const dialect of ['sqlite', 'postgres'] as const) {
  const skip = dialect === 'postgres' && pgSkip !== null;
  describe(`LeaderLease on ${dialect}${skip ? ` (skipped: ${pgSkip})` : ''}`, () => {
    // Two workers: on PostgreSQL two clients (two pools, as two processes have). On SQLite two clients on one file
    // for turns taken one after the other; for a race, one client, whose transactions queue (better-sqlite3 is
    // synchronous: a second connection in the same process would block the thread that holds the write lock).
    const openTwo = async (name: string, race = false): Promise<[SqlClient, SqlClient]> => {
      if (dialect === 'sqlite') {
        const file = path.join(dir, `${name}.db`);
        const first = await openSqlClient(`sqlite:${file}`);
        return [first, race ? first : await openSqlClient(`sqlite:${file}`)];
      }
      const url = cluster!.createDatabase(name);
      return [await openSqlClient(url), await openSqlClient(url)];
    };

    it.skipIf(skip)('one holder at a time; renewed by its holder; taken over only after it expires', async () => {
      const [a, b] = await openTwo('lease_takeover');
      let now = 1_000_000;
      const clock = () => now;
      const la = new LeaderLease(a, { name: 'job', holder: 'worker-a', ttlMs: 10_000, now: clock });
      const lb = new LeaderLease(b, { name: 'job', holder: 'worker-b', ttlMs: 10_000, now: clock });
      try {
        expect(await la.acquire()).toBe(true);
        expect(await lb.acquire()).toBe(false);
        expect(la.isLeader).toBe(true);
        expect(lb.isLeader).toBe(false);
        now += 9_000;
        expect(await la.acquire()).toBe(true); // renewal pushes the expiry on
        now += 9_000;
        expect(await lb.acquire()).toBe(false); // 18 s after the first take, but only 9 s after the renewal
        expect(await lb.current()).toMatchObject({ holder: 'worker-a', acquiredTs: 1_000_000, renewedTs: 1_009_000, expiresTs: 1_019_000 });
        now += 1_000; // a stops renewing: expired at 1_019_000
        expect(la.isLeader).toBe(false);
        expect(await lb.acquire()).toBe(true);
        expect(await la.acquire()).toBe(false);
        expect(await la.current()).toMatchObject({ holder: 'worker-b', acquiredTs: 1_019_000 });
        // A's release cannot remove B's lease.
        await la.release();
        expect((await lb.current())?.holder).toBe('worker-b');
        // B's release hands it over at once.
        await lb.release();
        expect(lb.isLeader).toBe(false);
        expect(await la.acquire()).toBe(true);
        // confirm(): true without a write in the first half of the lease, renews in the second, false once lost.
        const taken = now;
        now += 4_000;
        expect(await la.confirm()).toBe(true);
        expect((await la.current())?.renewedTs).toBe(taken);
        now += 2_000;
        expect(await la.confirm()).toBe(true);
        expect((await la.current())?.renewedTs).toBe(taken + 6_000);
        now += 11_000;
        expect(await lb.acquire()).toBe(true);
        expect(await la.confirm()).toBe(false);
      } finally {
        await a.close();
        if (b !== a) await b.close();
      }
    });

    it.skipIf(skip)('two workers racing for a free lease: exactly one wins each round', async () => {
      const [a, b] = await openTwo('lease_race', true);
      let now = 5_000;
      const clock = () => now;
      const la = new LeaderLease(a, { name: 'race', holder: 'a', ttlMs: 1_000, now: clock });
      const lb = new LeaderLease(b, { name: 'race', holder: 'b', ttlMs: 1_000, now: clock });
      try {
        const winners: string[] = [];
        for (let round = 0; round < 10; round++) {
          now += 2_000; // whoever held it let it expire
          const [ra, rb] = await Promise.all([la.acquire(), lb.acquire()]);
          expect([ra, rb].filter(Boolean).length).toBe(1);
          winners.push(ra ? 'a' : 'b');
          expect((await la.current())?.holder).toBe(winners.at(-1));
        }
      } finally {
        await a.close();
        if (b !== a) await b.close();
      }
    });
  });
}
