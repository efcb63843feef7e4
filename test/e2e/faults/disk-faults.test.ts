import { rmSync, statfsSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { fillUp, tmpfsForTest } from '../../helpers/tmpfs.js';
import { waitFor } from '../../helpers/wait.js';
import { centralEvents, settleAndAccount, sleep, startRig } from './fault-rig.js';

/**
 * Fault suite, disk side, on a real small file system (a tmpfs; root only, skipped with the reason otherwise):
 * the disk filled to the last block by another program while the broker is away, a free-space floor larger than
 * the whole file system, and drops that reach past telemetry and risk. The agent must stay up, drop only by its
 * policy, never drop alerts or its own announcements, and account for every seq.
 */

const cleanup = cleanupAfterEach();

describe('delivery under disk faults (real tmpfs)', () => {
  it('keeps running on a disk filled to the last block, drops by policy, says so once, and resumes when space returns', async (ctx) => {
    const fsDir = tmpfsForTest(ctx, 48, cleanup);
    const rig = await startRig('fault-diskfull', { minFreeBytes: 0, checkIntervalMs: 200 }, { dataDir: path.join(fsDir, 'data') });
    cleanup.push(() => rig.close());
    rig.proxy.cut();
    const agent = rig.startAgent();
    await waitFor(() => agent.logs().some((l) => l.msg === 'agent starting'), 'the agent to start', 30_000);
    await sleep(3000);
    const filler = fillUp(fsDir);
    expect(statfsSync(fsDir).bavail).toBeLessThan(4);
    await waitFor(() => agent.logs().some((l) => l.code === 'FW_ERR_STORAGE_FULL'), 'the full disk noticed', 30_000);
    // It lives on through the episode, dropping by policy to keep collecting.
    await waitFor(() => agent.logs().some((l) => l.code === 'FW_ERR_STORAGE_DROPPED'), 'drops by policy', 30_000).catch((err: Error) => {
      throw new Error(`${err.message}; the agent logged:\n${agent.output().slice(-4000)}`);
    });
    await sleep(4000);
    expect(agent.proc.exitCode, agent.output().slice(-3000)).toBeNull();
    // Said once per episode, not once per write.
    expect(agent.logs().filter((l) => l.code === 'FW_ERR_STORAGE_FULL').length).toBe(1);
    expect(agent.logs().filter((l) => String(l.msg).startsWith('storage limit check failed')).length).toBeLessThanOrEqual(1);
    // Drops on every write, warned about once per stream a minute (unlimited, a 4 MiB disk logged 2,864 lines in 70 s).
    const dropLines = agent.logs().filter((l) => l.code === 'FW_ERR_STORAGE_DROPPED');
    expect(new Set(dropLines.map((l) => l.stream)).size).toBe(dropLines.length);
    rmSync(filler);
    await waitFor(() => agent.logs().some((l) => l.msg === 'the disk takes writes again'), 'writes to resume', 30_000);
    const books = await settleAndAccount(rig, agent);
    const by = Object.fromEntries(books.map((b) => [b.stream, b]));
    expect(by.telemetry!.dropped).toBeGreaterThan(0);
    expect(by.alerts!.dropped).toBe(0);
    const drops = centralEvents(rig).filter((e) => e.type === 'records-dropped');
    expect(drops.some((e) => e.reason === 'disk-full')).toBe(true);
    expect(drops.every((e) => e.stream !== 'alerts')).toBe(true);
  }, 180_000);

  it('starts on a disk that is already full, keeps its alerts, and announces what it had to drop', async (ctx) => {
    const fsDir = tmpfsForTest(ctx, 48, cleanup);
    const rig = await startRig('fault-fullstart', { minFreeBytes: 0, checkIntervalMs: 200 }, { dataDir: path.join(fsDir, 'data') });
    cleanup.push(() => rig.close());
    rig.proxy.cut();
    const first = rig.startAgent();
    await waitFor(() => first.logs().some((l) => l.msg === 'agent starting'), 'the agent to start', 30_000);
    await sleep(4000);
    await rig.stop(first);
    // The disk fills while the agent is stopped: under Restart=always it used to exit at once, again and again.
    const filler = fillUp(fsDir);
    const agent = rig.startAgent();
    await waitFor(() => agent.logs().some((l) => l.code === 'FW_ERR_STORAGE_FULL'), 'the full disk noticed at start', 30_000);
    await waitFor(() => agent.logs().some((l) => l.msg === 'agent starting'), 'the agent to start anyway', 30_000);
    await sleep(4000);
    expect(agent.proc.exitCode, agent.output().slice(-3000)).toBeNull();
    rmSync(filler);
    const books = await settleAndAccount(rig, agent);
    expect(books.find((b) => b.stream === 'alerts')!.dropped).toBe(0);
  }, 180_000);

  it('clamps a default free-space floor larger than the file system instead of discarding everything unsent', async (ctx) => {
    const fsDir = tmpfsForTest(ctx, 32, cleanup);
    // The default floor (256 MiB) on a 32 MiB file system: before, every unsent record went within seconds of an outage.
    const rig = await startRig('fault-floor', { checkIntervalMs: 200 }, { dataDir: path.join(fsDir, 'data') });
    cleanup.push(() => rig.close());
    rig.proxy.cut();
    const agent = rig.startAgent();
    await waitFor(() => agent.logs().some((l) => l.option === 'storage.minFreeBytes'), 'the floor clamped, with a warning', 30_000);
    const line = agent.logs().find((l) => l.option === 'storage.minFreeBytes')!;
    expect(line.level).toBe(40);
    expect((line.effective as { minFreeBytes: number }).minFreeBytes).toBeLessThanOrEqual(32 * 1024 * 1024 * 0.1);
    await sleep(8000);
    const books = await settleAndAccount(rig, agent);
    expect(books.reduce((n, b) => n + b.dropped, 0)).toBe(0);
    expect(agent.logs().some((l) => l.code === 'FW_ERR_STORAGE_DROPPED')).toBe(false);
  }, 120_000);
});

describe('drops that reach past telemetry and risk', () => {
  it('never drops alerts nor the announcements of drops, and still accounts for every seq', async () => {
    // A quota this small (the empty database takes most of it) cannot hold an outage's telemetry and risk: the
    // policy goes on to events, and must stop at the notices that describe it and at alerts.
    const rig = await startRig('fault-deepdrop', { maxBytes: 64 * 1024, checkIntervalMs: 200 });
    cleanup.push(() => rig.close());
    rig.proxy.cut();
    const agent = rig.startAgent();
    // Drop warnings are one per stream a minute: the first drop of events says the policy got that far.
    await waitFor(() => agent.logs().some((l) => l.code === 'FW_ERR_STORAGE_DROPPED' && l.stream === 'events'), 'drops reaching events', 90_000);
    await sleep(5000);
    const books = await settleAndAccount(rig, agent);
    const by = Object.fromEntries(books.map((b) => [b.stream, b]));
    expect(by.telemetry!.dropped).toBeGreaterThan(0);
    expect(by.risk!.dropped).toBeGreaterThan(0);
    // It went on to events (the model-health ones), and stopped at alerts.
    expect(by.events!.dropped).toBeGreaterThan(0);
    expect(by.alerts!.dropped).toBe(0);
    if (process.env.FOREWARN_FAULT_VERBOSE)
      console.log(
        books,
        centralEvents(rig)
          .filter((e) => e.type === 'records-dropped')
          .map((e) => [e.stream, e.count]),
      );
    // Every notice reached the centre: none was dropped by the policy it describes.
    const notices = centralEvents(rig).filter((e) => e.type === 'records-dropped');
    expect(notices.length).toBeGreaterThan(0);
    const announcedEvents = new Set<number>();
    for (const n of notices.filter((e) => e.stream === 'events'))
      for (const [a, b] of n.ranges as Array<[number, number]>) for (let q = a; q <= b; q++) announcedEvents.add(q);
    const db = new Database(rig.centralFile, { readonly: true });
    const noticeSeqs = (
      db.prepare("SELECT seq, payload FROM records WHERE agent_id = ? AND stream = 'events'").all(rig.agentId) as Array<{ seq: number; payload: string }>
    )
      .filter((r) => ['records-dropped', 'storage-recovered'].includes(String((JSON.parse(r.payload) as { type?: string }).type)))
      .map((r) => r.seq);
    db.close();
    for (const q of noticeSeqs) expect(announcedEvents.has(q), `notice ${q} announced as dropped`).toBe(false);
  }, 180_000);
});
