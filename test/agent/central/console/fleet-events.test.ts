import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { FleetEvents } from '../../../../agent/src/central/console/fleet-events.js';
import type { Session } from '../../../../agent/src/central/console/auth/console-sessions.js';
import { FleetProjection } from '../../../../agent/src/central/fleet/fleet-projection.js';
import { FleetRegistry } from '../../../../agent/src/central/fleet-registry.js';
import { openSqlClient } from '../../../../agent/src/central/sql/open-sql-client.js';
import type { SqlClient, SqlValue } from '../../../../agent/src/central/sql/sql-client.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { createLedgerTables, migrateProjections } from '../../../helpers/central-records.js';

const dir = mkdtempSync(path.join(tmpdir(), 'fw-fleet-events-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A real SQLite client whose reads can be held at a gate, to line up a poll and an open() that overlap. */
function gated(sql: SqlClient): { sql: SqlClient; hold: () => void; release: () => void; waiting: () => number } {
  let gate: Promise<void> | null = null;
  let open = (): void => {};
  let waiting = 0;
  const pass = async (): Promise<void> => {
    if (!gate) return;
    waiting++;
    await gate;
  };
  const client = Object.create(sql) as SqlClient;
  client.get = async <T>(text: string, params?: readonly SqlValue[]) => (await pass(), sql.get<T>(text, params));
  client.all = async <T>(text: string, params?: readonly SqlValue[]) => (await pass(), sql.all<T>(text, params));
  return {
    sql: client,
    hold: () => (gate = new Promise((r) => (open = r))),
    release: () => {
      gate = null;
      open();
    },
    waiting: () => waiting,
  };
}

it('a stream that opens while a poll runs gets its first summary once, not once from each', async () => {
  const real = await openSqlClient(`sqlite:${path.join(dir, 'events.db')}`);
  await createLedgerTables(real);
  await migrateProjections(real, [new FleetRegistry(), new FleetProjection({ rollupMetrics: [] })]);
  const { sql, hold, release, waiting } = gated(real);
  const events = new FleetEvents({ sql, log: captureLogger().log, pollMs: 3_600_000, pingMs: 3_600_000, wakeGapMs: 0 });
  const session = (idHash: string): Session => ({
    idHash,
    user: { username: idHash, role: 'viewer' } as Session['user'],
    csrfToken: 'x',
    createdTs: 0,
    expiresTs: Number.MAX_SAFE_INTEGER,
  });
  const server = http.createServer((req, res) => void events.open(req, res, session(req.url!.slice(1))));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  /** Every `event: fleet` a stream received until it ended. */
  const collect = async (res: Response): Promise<number> => (await res.text()).split('\n\n').filter((b) => b.startsWith('event: fleet')).length;
  const until = async (ok: () => boolean) => {
    while (!ok()) await new Promise((r) => setTimeout(r, 5));
  };
  try {
    const first = await fetch(`${base}/first`);
    // The first stream's summary is on its way before the gate closes.
    const reader = first.body!.getReader();
    let seen = '';
    while (!seen.includes('event: fleet')) seen += Buffer.from((await reader.read()).value!).toString();

    hold();
    events.changed();
    await until(() => waiting() >= 1); // the poll waits inside its token read
    const second = fetch(`${base}/second`);
    await until(() => waiting() >= 2); // and so does the second stream's open()
    release();
    const res = await second;
    // Let both the poll and the open() finish, then end the stream and count what it got.
    await new Promise((r) => setTimeout(r, 100));
    events.endSession('second');
    expect(await collect(res)).toBe(1);
    await reader.cancel();
  } finally {
    events.stop();
    server.close();
    await real.close();
  }
});
