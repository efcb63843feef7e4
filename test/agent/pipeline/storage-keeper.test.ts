import { openSync, rmSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { buildConfig } from '../../../agent/src/config/load-config.js';
import { StorageKeeper, type StorageStats } from '../../../agent/src/pipeline/storage-keeper.js';
import { RESERVE_FILE, SpaceReserve } from '../../../agent/src/store/space-reserve.js';
import type { NewRecord, StreamName } from '../../../agent/src/store/outbox.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { tempDir } from '../../helpers/model-fixtures.js';
import { fillUp, tmpfsForTest } from '../../helpers/tmpfs.js';
import { waitFor } from '../../helpers/wait.js';
import { incompressible } from '../../helpers/seeded-random.js';

/**
 * The storage keeper's error paths against real faults: a small tmpfs filled to the last block (root only; skipped
 * with the reason elsewhere), and a quota small enough that every housekeeping pass drops.
 */

const cleanup = cleanupAfterEach();

const newStats = (): StorageStats => ({
  storageErrors: 0,
  dropped: { alerts: 0, risk: 0, events: 0, telemetry: 0 },
  lost: 0,
  held: 0,
  lastCommitTs: null,
  lastWriteErrorTs: null,
});

function keeperIn(dir: string, storage: Record<string, unknown> = {}) {
  const config = buildConfig(null, {});
  const { log, lines } = captureLogger('debug');
  const stats = newStats();
  const keeper = new StorageKeeper({ ...config.storage, dir, ...storage }, log, stats);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    keeper.close();
  };
  cleanup.push(async () => {
    await keeper.stop();
    close();
  });
  keeper.firstBootSeq();
  return { keeper, stats, lines, close, coded: (code: string) => lines.filter((l) => l.code === code) };
}

let seq = 0;
const telemetry = (n: number, bytes = 1000): NewRecord[] =>
  Array.from({ length: n }, () => ({ stream: 'telemetry', ts: ++seq, asset: 'mill', payload: { ts: seq, blob: incompressible(bytes, seq) } }));
const alert = (): NewRecord => ({ stream: 'alerts', ts: ++seq, asset: 'mill', payload: { ts: seq, alertId: `a-${seq}`, state: 'raised' } });

describe('StorageKeeper on a full disk (tmpfs)', () => {
  it('makes room by the drop policy and retries the refused write: nothing lost, nothing held, no write error', async (ctx) => {
    const dir = path.join(tmpfsForTest(ctx, 8, cleanup), 'data');
    const { keeper, stats, coded } = keeperIn(dir);
    // start() restores the 2 MiB reserve file; the timers are not wanted here.
    await keeper.start();
    await keeper.stop();
    let alerts = 0;
    // Telemetry and an alert per tick until the disk refuses a write and the policy drops to make room.
    for (let tick = 0; stats.dropped.telemetry === 0; tick++) {
      expect(tick, 'the 8 MiB disk to fill').toBeLessThan(500);
      keeper.consumeRecords([...telemetry(100), alert()]);
      alerts++;
      keeper.flush();
    }
    expect(coded('FW_ERR_STORAGE_FULL')).toHaveLength(1);
    expect(coded('FW_ERR_STORAGE_DROPPED').map((l) => l.stream)).toEqual(['telemetry']);
    // The refused batch went in on the retry.
    expect(stats).toMatchObject({ storageErrors: 0, lost: 0, held: 0, lastWriteErrorTs: null });
    expect(coded('FW_ERR_STORAGE_WRITE')).toEqual([]);
    expect(keeper.store.pending('alerts', 100_000)).toHaveLength(alerts);
  });

  it('releases the next piece of the reserve at a later refusal when another program took the room of the first', async (ctx) => {
    const fsDir = tmpfsForTest(ctx, 8, cleanup);
    const dir = path.join(fsDir, 'data');
    const { keeper, stats, lines, coded } = keeperIn(dir);
    await keeper.start(); // the reserve file
    await keeper.stop();
    for (let i = 0; i < 5; i++) keeper.consumeRecords(telemetry(20));
    keeper.flush();
    const filler = fillUp(fsDir);
    // A neighbour still writing when the first piece goes: it takes that room before the drop can use it.
    const release = SpaceReserve.prototype.release;
    const spy = vi.spyOn(SpaceReserve.prototype, 'release').mockImplementationOnce(function (this: SpaceReserve) {
      const released = release.call(this);
      fillUp(fsDir, 'neighbour.bin');
      return released;
    });
    cleanup.push(() => spy.mockRestore());
    const a = alert();
    keeper.consumeRecords([a, ...telemetry(5)]);
    keeper.flush();
    expect(coded('FW_ERR_STORAGE_FULL')).toHaveLength(1);
    expect(stats.dropped.telemetry).toBe(0);
    expect(stats.held).toBe(1);
    // Refusals right after: the burst may still be going on, the last piece is kept for later.
    keeper.flush();
    expect(spy).toHaveBeenCalledTimes(1);
    expect(stats.held).toBe(1);
    // Later: the next piece, the drop, and what was held goes in.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 2_500 });
    cleanup.push(() => vi.useRealTimers());
    keeper.consumeRecords(telemetry(1));
    keeper.flush();
    expect(spy).toHaveBeenCalledTimes(2);
    expect(lines.some((l) => String(l.msg).includes('released its next piece'))).toBe(true);
    expect(stats.dropped.telemetry).toBeGreaterThan(0);
    expect(stats.held).toBe(0);
    expect(keeper.store.pending('alerts', 10).map((r) => r.payload.alertId)).toEqual([a.payload.alertId]);
    // Still one episode, said once.
    expect(coded('FW_ERR_STORAGE_FULL')).toHaveLength(1);
    rmSync(filler);
  });

  it('holds alerts, counts telemetry lost and logs the failure once while nothing can be freed, then commits what it held', async (ctx) => {
    const dir = path.join(tmpfsForTest(ctx, 8, cleanup), 'data');
    // No reserve file (the timers never ran) and no telemetry to drop: a disk full to the last block, for good.
    const { keeper, stats, coded } = keeperIn(dir);
    keeper.consumeRecords([alert()]);
    keeper.flush();
    expect(stats.lastCommitTs).not.toBeNull();
    const filler = fillUp(path.dirname(dir));
    const held: string[] = [];
    for (let i = 0; i < 20; i++) {
      const a = alert();
      held.push(String(a.payload.alertId));
      keeper.consumeRecords([a, ...telemetry(5)]);
      keeper.flush();
    }
    expect(stats.storageErrors).toBe(20);
    expect(stats.held).toBe(20);
    expect(stats.lost).toBe(100);
    expect(stats.lastWriteErrorTs).toBeGreaterThan(0);
    // Twenty failed writes, one line (then at most one a minute).
    expect(coded('FW_ERR_STORAGE_WRITE')).toHaveLength(1);
    expect(coded('FW_ERR_STORAGE_WRITE')[0]).toMatchObject({ held: 1, lost: 5 });

    rmSync(filler);
    keeper.flush(); // what housekeeping does while anything is held
    expect(stats.held).toBe(0);
    const committed = keeper.store.pending('alerts', 1000).map((r) => String(r.payload.alertId));
    expect(committed.slice(1)).toEqual(held); // all of them, in the order they were produced
    expect(stats.lastCommitTs!).toBeGreaterThanOrEqual(stats.lastWriteErrorTs!);
    expect(keeper.store.pending('telemetry', 1000)).toHaveLength(0);
  });
});

describe('StorageKeeper drop warnings', () => {
  it('logs the first drop of a stream at once and sums later ones into one line a minute, said again at close', async () => {
    const dir = path.join(tempDir('fw-keeper-'), 'data');
    // A quota the empty database nearly fills: every housekeeping pass (every 100 ms) drops telemetry.
    const { keeper, stats, coded, close } = keeperIn(dir, { maxBytes: 96 * 1024, checkIntervalMs: 100 });
    await keeper.start();
    const passes = () => coded('FW_ERR_STORAGE_DROPPED').reduce((n, l) => n + Number(l.passes), 0);
    const feeder = setInterval(() => keeper.consumeRecords(telemetry(40, 500)), 20);
    cleanup.push(() => clearInterval(feeder));
    await waitFor(() => stats.dropped.telemetry > 0, 'the first drop');
    const first = coded('FW_ERR_STORAGE_DROPPED');
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({
      stream: 'telemetry',
      passes: 1,
      reason: 'quota',
      msg: 'storage limit reached; dropped the oldest unsent records by policy',
    });
    // Many more passes drop, and none of them adds a line within the minute.
    const seen = new Set([stats.dropped.telemetry]);
    await waitFor(() => seen.add(stats.dropped.telemetry).size > 5, 'five more drop passes', 20_000);
    clearInterval(feeder);
    await keeper.stop();
    expect(coded('FW_ERR_STORAGE_DROPPED')).toHaveLength(1);
    close();
    // At close, the rest is said: the lines add up to exactly what was dropped, stream by stream.
    const lines = coded('FW_ERR_STORAGE_DROPPED');
    expect(lines).toHaveLength(2);
    expect(passes()).toBeGreaterThan(5);
    const sum = (stream: StreamName) => lines.filter((l) => l.stream === stream).reduce((n, l) => n + Number(l.count), 0);
    for (const stream of ['alerts', 'risk', 'events', 'telemetry'] as const) expect(sum(stream), stream).toBe(stats.dropped[stream]);
    // The seq ranges follow on: the second line starts after the first one ended.
    expect(Number(lines[1]!.fromSeq)).toBeGreaterThan(Number(lines[0]!.toSeq));
  });

  it('keeps the reserve file while the disk has room', async () => {
    const dir = path.join(tempDir('fw-keeper-'), 'data');
    const { keeper } = keeperIn(dir);
    await keeper.start();
    await keeper.stop();
    expect(() => openSync(path.join(dir, RESERVE_FILE), 'r')).not.toThrow();
  });
});
