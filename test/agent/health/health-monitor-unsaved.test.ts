import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { ForewarnError } from '../../../agent/src/core/errors.js';
import { HealthMonitor, type AlertRecord } from '../../../agent/src/health/health-monitor.js';
import { RecordStore, isStorageFull } from '../../../agent/src/store/record-store.js';
import type { ModelHealth } from '../../../agent/src/scoring/drift-monitor.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { tmpfsForTest } from '../../helpers/tmpfs.js';
import { incompressible } from '../../helpers/seeded-random.js';

/** Alerts a full or failing disk refused are kept in memory and committed later, in order, once (HealthMonitor.retryUnsaved). */

const cleanup = cleanupAfterEach();
const stores: RecordStore[] = [];
afterEach(() => stores.splice(0).forEach((s) => s.close()));

const freshDir = () => path.join(mkdtempSync(path.join(tmpdir(), 'fw-unsaved-')), 'data');
function openStore(dir: string, maxPages?: number): RecordStore {
  const s = new RecordStore({ dir, ...(maxPages ? { maxPages } : {}) });
  stores.push(s);
  return s;
}

function monitorOver(store: RecordStore) {
  let notified = 0;
  const { log, lines } = captureLogger();
  const monitor = new HealthMonitor(
    store,
    () => notified++,
    log,
    undefined,
    () => 1_000_000,
  );
  return { monitor, lines, notified: () => notified };
}

/** Drift of model `mf` on `asset`: raises model.drift/{asset}/mf, and clears it with state 'ok'. */
const drift = (asset: string, state: ModelHealth['state'] = 'drift', ts = 5): ModelHealth => ({
  model: 'mf',
  version: '1.0.0',
  asset,
  state,
  samples: 500,
  psiMax: 0.9,
  ts,
  top: [{ feature: 'torque', psi: 0.9, chance: 0.02, outside: 0 }],
});
const key = (asset: string) => `model.drift/${asset}/mf`;
const committed = (store: RecordStore) => store.pending('alerts').map((r) => ({ seq: r.seq, ...(r.payload as unknown as AlertRecord) }));

/**
 * Appends telemetry until the capped file refuses even a small row with SQLITE_FULL. Each stream has a table of its
 * own, whose last leaf may still have room: the alerts leaf is filled too, with rows acknowledged at once (out of
 * the way: not pending, and the first the drop policy purges), so that the next alert needs a page there is none of.
 */
function fill(store: RecordStore): void {
  for (const stream of ['telemetry', 'alerts'] as const) {
    for (const pad of [2000, 300, 40, 0]) {
      for (let i = 0; ; i++) {
        try {
          const [seq] = store.append([{ stream, ts: i, asset: 'a', payload: { i, pad: incompressible(pad, i) } }]);
          if (stream === 'alerts') store.markSent('alerts', [seq!]);
        } catch (err) {
          expect(isStorageFull(err)).toBe(true);
          break;
        }
      }
    }
  }
}

describe('HealthMonitor on a disk that refuses its alerts', () => {
  it('keeps alerts SQLITE_FULL refused, and commits them in order, once, when the store takes writes again', async () => {
    const store = openStore(freshDir(), 300);
    fill(store);
    const fillerAlerts = store.nextSeq('alerts') - 1;
    const { monitor, lines, notified } = monitorOver(store);
    await monitor.start();

    monitor.onDrift(drift('mill'));
    // Refused by the disk, yet raised: the agent still knows it, and says the disk refused it.
    expect(monitor.stats.unsaved).toBe(1);
    expect(monitor.activeAlerts().map((a) => a.alertId)).toEqual([key('mill')]);
    expect(store.pending('alerts')).toEqual([]);
    expect(store.activeAlerts()).toEqual([]);
    expect(notified()).toBe(0);
    monitor.onDrift(drift('lathe', 'drift', 6));
    expect(monitor.stats.unsaved).toBe(2);
    monitor.retryUnsaved();
    expect(monitor.stats.unsaved).toBe(2);
    expect(store.pending('alerts')).toEqual([]);
    expect(lines.filter((l) => l.code === 'FW_ERR_STORAGE_WRITE')).toHaveLength(1);

    // The drop policy makes room.
    store.enforceQuota({ maxBytes: 0, minFreeBytes: 0 }, new Map(), 'disk-full');
    monitor.retryUnsaved();
    expect(monitor.stats.unsaved).toBe(0);
    const first = fillerAlerts + 1;
    expect(committed(store).map((a) => [a.seq, a.alertId, a.state])).toEqual([
      [first, key('mill'), 'raised'],
      [first + 1, key('lathe'), 'raised'],
    ]);
    expect(
      store
        .activeAlerts()
        .map((a) => a.key)
        .sort(),
    ).toEqual([key('lathe'), key('mill')]);
    expect(notified()).toBe(1);
    expect(lines.some((l) => String(l.msg).includes('alerts held in memory are committed'))).toBe(true);

    // Once: nothing more on another retry.
    monitor.retryUnsaved();
    expect(store.pending('alerts')).toHaveLength(2);
    expect(notified()).toBe(1);
  });

  it('keeps raise, clear and raise again in order while the store fails, and commits the active set as it ends up', async () => {
    const store = openStore(freshDir());
    let down = true;
    let calls = 0;
    // The store as the monitor uses it, with commitAlerts failing while `down`.
    const flaky = new Proxy(store, {
      get(target, prop) {
        if (prop === 'commitAlerts') {
          return (...args: Parameters<RecordStore['commitAlerts']>) => {
            calls++;
            if (down) throw new ForewarnError('FW_ERR_STORAGE_WRITE', 'disk I/O error (test)');
            target.commitAlerts(...args);
          };
        }
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const { monitor, notified } = monitorOver(flaky);
    await monitor.start();

    monitor.onDrift(drift('mill', 'drift', 5));
    monitor.onDrift(drift('lathe', 'drift', 6));
    monitor.onDrift(drift('mill', 'ok', 7));
    monitor.onDrift(drift('mill', 'drift', 8));
    monitor.onDrift(drift('mill', 'drift', 9)); // still holding: no new record
    expect(calls).toBe(5);
    expect(monitor.stats.unsaved).toBe(4);
    expect(
      monitor
        .activeAlerts()
        .map((a) => a.alertId)
        .sort(),
    ).toEqual([key('lathe'), key('mill')]);
    expect(store.pending('alerts')).toEqual([]);

    down = false;
    monitor.retryUnsaved();
    expect(calls).toBe(6);
    const out = committed(store);
    expect(out.map((a) => [a.alertId, a.state, a.ts])).toEqual([
      [key('mill'), 'raised', 5],
      [key('lathe'), 'raised', 6],
      [key('mill'), 'cleared', 7],
      [key('mill'), 'raised', 8],
    ]);
    expect(out.map((a) => a.seq)).toEqual([1, 2, 3, 4]);
    expect(
      store
        .activeAlerts()
        .map((a) => a.key)
        .sort(),
    ).toEqual([key('lathe'), key('mill')]);
    expect(monitor.stats.unsaved).toBe(0);
    expect(notified()).toBe(1);

    // Nothing left: a retry does not even try.
    monitor.retryUnsaved();
    expect(calls).toBe(6);

    // A restart restores what was committed: the alerts are not raised a second time.
    const { monitor: next } = monitorOver(store);
    await next.start();
    next.onDrift(drift('lathe', 'drift', 20));
    expect(store.pending('alerts')).toHaveLength(4);
    next.onDrift(drift('lathe', 'ok', 21));
    expect(committed(store).at(-1)).toMatchObject({ alertId: key('lathe'), state: 'cleared', seq: 5 });
  });

  it('commits what it kept together with the next change, when the store is back before any retry', async () => {
    const store = openStore(freshDir());
    let down = true;
    const flaky = new Proxy(store, {
      get(target, prop) {
        if (prop === 'commitAlerts') {
          return (...args: Parameters<RecordStore['commitAlerts']>) => {
            if (down) throw new ForewarnError('FW_ERR_STORAGE_WRITE', 'database or disk is full (test)');
            target.commitAlerts(...args);
          };
        }
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const { monitor, notified } = monitorOver(flaky);
    await monitor.start();
    monitor.onDrift(drift('mill'));
    expect(monitor.stats.unsaved).toBe(1);
    down = false;
    monitor.onDrift(drift('lathe', 'drift', 6));
    expect(committed(store).map((a) => [a.seq, a.alertId])).toEqual([
      [1, key('mill')],
      [2, key('lathe')],
    ]);
    expect(monitor.stats.unsaved).toBe(0);
    expect(notified()).toBe(1);
    monitor.retryUnsaved();
    expect(store.pending('alerts')).toHaveLength(2);
  });

  it('on a real full file system: retries while it stays full leave no gap in the alerts stream', async (ctx: TestContext) => {
    const fs = tmpfsForTest(ctx, 8, cleanup);
    const store = openStore(path.join(fs, 'data'));
    store.append([{ stream: 'telemetry', ts: 1, asset: 'a', payload: { n: 1 } }]);
    // The WAL truncated, then the file system filled: the next commit needs blocks there are none of.
    store.checkpoint();
    const filler = path.join(fs, 'filler');
    for (;;) {
      try {
        writeFileSync(filler, Buffer.alloc(4096, 1), { flag: 'a' });
      } catch {
        break;
      }
    }
    const { monitor } = monitorOver(store);
    await monitor.start();
    monitor.onDrift(drift('mill'));
    expect(monitor.stats.unsaved).toBe(1);
    // The agent's housekeeping retries every storage.checkIntervalMs while the disk stays full.
    monitor.retryUnsaved();
    monitor.retryUnsaved();
    expect(monitor.stats.unsaved).toBe(1);
    rmSync(filler);
    monitor.retryUnsaved();
    expect(monitor.stats.unsaved).toBe(0);
    // The first alert ever committed has the stream's first seq: subscribers would otherwise wait for seqs that never come.
    expect(committed(store).map((a) => [a.seq, a.alertId])).toEqual([[1, key('mill')]]);
    expect(store.counts().find((c) => c.stream === 'alerts')).toMatchObject({ firstSeq: 1, lastSeq: 1 });
  });
});
