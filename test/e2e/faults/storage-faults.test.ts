import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnAgent } from '../../helpers/agent-process.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { contractErrors } from '../../helpers/contract.js';
import { waitFor } from '../../helpers/wait.js';
import { centralEvents, settleAndAccount, sleep, startRig } from './fault-rig.js';

/**
 * Fault suite, storage side: the disk quota reached while the broker is unreachable, and a corrupt, locked or
 * shared database at start. Drops must follow the policy (telemetry first, never alerts while other data can
 * go), be counted, announced and accounted for at the subscriber; a damaged file must be set aside, not fatal.
 */

const cleanup = cleanupAfterEach();

describe('delivery under storage faults', () => {
  it('drops the oldest telemetry by policy when the quota is reached, counts it, announces it, and loses nothing else', async () => {
    const rig = await startRig('fault-quota', { maxBytes: 512 * 1024, checkIntervalMs: 200 });
    cleanup.push(() => rig.close());
    rig.proxy.cut();
    const agent = rig.startAgent();
    await waitFor(() => agent.logs().some((l) => l.code === 'FW_ERR_STORAGE_DROPPED'), 'the quota to be reached', 90_000);
    await sleep(1000);
    const books = await settleAndAccount(rig, agent);
    const by = Object.fromEntries(books.map((b) => [b.stream, b]));
    expect(by.telemetry!.dropped).toBeGreaterThan(0);
    expect(by.alerts!.dropped).toBe(0);
    const drops = centralEvents(rig).filter((e) => e.type === 'records-dropped');
    expect(drops.length).toBeGreaterThan(0);
    expect(drops.every((e) => e.reason === 'quota')).toBe(true);
    for (const e of drops)
      expect(
        contractErrors(`forewarn/v1/${rig.agentId}/events`, { schemaVersion: 1, agentId: rig.agentId, stream: 'events', bootSeq: 1, records: [e] }),
      ).toEqual([]);
    const logged = agent.logs().filter((l) => l.code === 'FW_ERR_STORAGE_DROPPED');
    expect(logged.every((l) => l.stream !== 'alerts')).toBe(true);
  }, 180_000);

  it('sets a corrupt database aside at start, says so, and runs on a fresh one', async () => {
    const rig = await startRig('fault-corrupt');
    cleanup.push(() => rig.close());
    const data = path.join(rig.dir, 'data');
    mkdirSync(data, { recursive: true, mode: 0o700 });
    writeFileSync(path.join(data, 'forewarn.db'), Buffer.alloc(64 * 1024, 0x5a));
    const agent = rig.startAgent();
    await waitFor(() => agent.logs().some((l) => l.code === 'FW_ERR_STORAGE_CORRUPT'), 'the corruption reported', 30_000);
    const line = agent.logs().find((l) => l.code === 'FW_ERR_STORAGE_CORRUPT')!;
    expect(String(line.msg)).toMatch(/set aside and a fresh one started/);
    expect(readdirSync(data).some((f) => f.startsWith('forewarn.db.bad-'))).toBe(true);
    await waitFor(() => centralEvents(rig).some((e) => e.type === 'storage-recovered'), 'the storage-recovered event at the centre', 30_000);
    expect(centralEvents(rig).find((e) => e.type === 'storage-recovered')).toMatchObject({ setAside: line.setAside });
    await waitFor(() => rig.subscriber.stats.records > 100, 'records flowing from the fresh database');
    await settleAndAccount(rig, agent);
  }, 120_000);

  it('sets aside a database another program keeps locked, and refuses to share its storage with a second agent', async () => {
    const rig = await startRig('fault-locked');
    cleanup.push(() => rig.close());
    const first = rig.startAgent();
    await waitFor(() => rig.subscriber.stats.records > 50, 'records flowing');
    // A second agent on the same storage directory must not start.
    const second = spawnAgent(['run', '--config', rig.configFile], rig.dir, rig.configFile);
    const { code } = await second.exited;
    expect(code).toBe(1);
    expect(second.output()).toMatch(/FW_ERR_STORAGE_IN_USE/);
    expect(second.output()).toMatch(new RegExp(`pid ${first.proc.pid}`));
    await rig.stop(first);

    // Another program holds the database locked and does not let go.
    const file = path.join(rig.dir, 'data', 'forewarn.db');
    const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
    const holder = spawn(
      process.execPath,
      [
        '-e',
        `const D=require(${JSON.stringify(sqlite)});const d=new D(${JSON.stringify(file)});d.pragma('locking_mode=EXCLUSIVE');d.exec('BEGIN EXCLUSIVE');d.exec("INSERT INTO meta VALUES('held','1')");console.log('locked');setInterval(()=>{},1000)`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    cleanup.push(() => holder.kill('SIGKILL'));
    let out = '';
    holder.stdout.on('data', (d) => (out += String(d)));
    await waitFor(() => out.includes('locked'), 'the lock held');
    const agent = rig.startAgent();
    await waitFor(() => agent.logs().some((l) => l.code === 'FW_ERR_STORAGE_CORRUPT'), 'the locked file set aside', 30_000);
    expect(String(agent.logs().find((l) => l.code === 'FW_ERR_STORAGE_CORRUPT')!.reason)).toMatch(/SQLITE_BUSY/);
    await waitFor(() => centralEvents(rig).some((e) => e.type === 'storage-recovered'), 'the storage-recovered event at the centre', 30_000);
    holder.kill('SIGKILL');
  }, 120_000);
});
