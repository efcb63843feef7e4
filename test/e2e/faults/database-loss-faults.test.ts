import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { waitFor } from '../../helpers/wait.js';
import { centralEvents, agentPending, settleAndAccount, sleep, startRig, type Rig } from './fault-rig.js';

/**
 * Fault suite, lost databases: the file deleted under the running agent, the data directory wiped between two
 * runs (a re-install, an SD card swap, an operator's cleanup), and a device whose clock starts in the past on
 * every boot. No seq may ever be used twice by one agent: a subscriber would take the new records for duplicates
 * of old ones and silently discard them. The books are kept over every database file the agent used.
 */

const cleanup = cleanupAfterEach();

/** libfaketime, from Debian's faketime package: the agent process believes it is 2020-01-01 at every start. */
const FAKETIME_LIB = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1'].find((f) => existsSync(f));

async function centralStats(rig: Rig): Promise<{ duplicates: number; conflicts: number }> {
  const s = (await rig.subscriber.store.summary()).streams.filter((x) => x.agentId === rig.agentId);
  return {
    duplicates: s.reduce((n, x) => n + x.duplicates, 0),
    conflicts: s.reduce((n, x) => n + ((x as { conflicts?: number }).conflicts ?? 0), 0),
  };
}

const recoveredEvents = (rig: Rig) => centralEvents(rig).filter((e) => e.type === 'storage-recovered');

describe('delivery when the database is lost', () => {
  it('notices its database deleted while it runs, carries what is unacknowledged into a fresh file, and loses nothing', async () => {
    const rig = await startRig('fault-deleted', { checkIntervalMs: 200 });
    cleanup.push(() => rig.close());
    const agent = rig.startAgent();
    await waitFor(() => rig.subscriber.stats.records > 200, 'records flowing');
    // A backlog the centre has not confirmed: it must survive the deletion.
    rig.proxy.cut();
    await sleep(2000);
    expect(agentPending(rig)).toBeGreaterThan(100);
    rig.witness();
    const db = path.join(rig.dataDir, 'forewarn.db');
    for (const suffix of ['', '-wal', '-shm']) rmSync(db + suffix, { force: true });
    await waitFor(() => agent.logs().some((l) => l.code === 'FW_ERR_STORAGE_REPLACED'), 'the deletion noticed', 30_000);
    const line = agent.logs().find((l) => l.code === 'FW_ERR_STORAGE_REPLACED')!;
    expect(Number(line.carried)).toBeGreaterThan(100);
    await sleep(1500);
    const books = await settleAndAccount(rig, agent);
    expect(books.reduce((n, b) => n + b.dropped, 0)).toBe(0);
    expect(recoveredEvents(rig).some((e) => e.cause === 'removed' && Number(e.carried) === Number(line.carried))).toBe(true);
    expect((await centralStats(rig)).conflicts).toBe(0);
  }, 120_000);

  it('counts on above every earlier seq after its data directory was wiped between two runs', async () => {
    const rig = await startRig('fault-wiped');
    cleanup.push(() => rig.close());
    const first = rig.startAgent();
    await waitFor(() => rig.subscriber.stats.records > 300, 'records flowing');
    await waitFor(() => agentPending(rig) < 300, 'the centre to confirm most of it');
    await rig.stop(first);
    const before = rig.subscriber.stats.records;
    rig.witness();
    rmSync(rig.dataDir, { recursive: true, force: true });
    const second = rig.startAgent();
    await waitFor(() => rig.subscriber.stats.records > before + 300, 'the second run received', 60_000);
    const dupBefore = (await centralStats(rig)).duplicates;
    const books = await settleAndAccount(rig, second);
    // None of the second run's records was taken for an old one: no conflict, and nothing silently discarded.
    expect((await centralStats(rig)).conflicts).toBe(0);
    expect(rig.subscriber.stats.records).toBeGreaterThan(before + 300);
    expect(dupBefore).toBeLessThan(50);
    const tel = books.find((b) => b.stream === 'telemetry')!;
    const firstRun = recoveredEvents(rig).filter((e) => e.cause === 'created');
    expect(firstRun).toHaveLength(2);
    expect(tel.first).toBe(firstRun[1]!.firstSeq);
    expect(Number(firstRun[1]!.firstSeq)).toBeGreaterThan(Number(firstRun[0]!.firstSeq));
  }, 120_000);

  it('never reuses a seq when its clock starts in the past on every boot and the database is lost between runs', async (ctx) => {
    if (!FAKETIME_LIB) return ctx.skip('libfaketime is not installed (apt-get install faketime)');
    const env = { LD_PRELOAD: FAKETIME_LIB, FAKETIME: '@2020-01-01 00:00:00', FAKETIME_DONT_RESET: '1' };
    const rig = await startRig('fault-clock', { checkIntervalMs: 200 }, { env });
    cleanup.push(() => rig.close());
    const first = rig.startAgent();
    await waitFor(() => rig.subscriber.stats.records > 300, 'records flowing');
    const boot1 = Number(first.logs().find((l) => l.msg === 'agent starting')!.bootSeq);
    // The process really believes it is 2020.
    expect(Number(first.logs()[0]!.time)).toBeLessThan(Date.UTC(2021, 0, 1));
    await rig.stop(first);
    rig.witness();
    for (const suffix of ['', '-wal', '-shm']) rmSync(path.join(rig.dataDir, `forewarn.db${suffix}`), { force: true });
    const before = rig.subscriber.stats.records;
    const second = rig.startAgent();
    await waitFor(() => rig.subscriber.stats.records > before + 300, 'the second run received', 60_000);
    // Same fake clock, yet the boot number and seqs go on above the first run's.
    expect(Number(second.logs().find((l) => l.msg === 'agent starting')!.bootSeq)).toBeGreaterThan(boot1);
    await settleAndAccount(rig, second);
    expect((await centralStats(rig)).conflicts).toBe(0);
    const created = recoveredEvents(rig).filter((e) => e.cause === 'created');
    expect(created).toHaveLength(2);
    expect(Number(created[1]!.firstSeq)).toBeGreaterThan(Number(created[0]!.firstSeq));
  }, 120_000);
});
