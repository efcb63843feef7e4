import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { agentRunning, formatStatus, probeBroker, readStatus } from '../../../agent/src/cli/status-report.js';
import { BROKER_STATE_META_KEY } from '../../../agent/src/pipeline/status-keeper.js';
import { RecordStore } from '../../../agent/src/store/record-store.js';
import { MODEL_HEALTH_META_KEY } from '../../../agent/src/scoring/drift-monitor.js';
import { DRAIN_META_KEY } from '../../../agent/src/sync/drain-progress.js';

describe('forewarn status report', () => {
  it('shows drops per stream, the backlog being drained, storage use and model health from the database', () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'fw-status-')), 'data');
    const store = new RecordStore({ dir });
    store.append(Array.from({ length: 3000 }, (_, i) => ({ stream: 'telemetry' as const, ts: i, asset: 'a', payload: { pad: 'x'.repeat(300) } })));
    store.enforceQuota({ maxBytes: Math.floor(store.usage().usedBytes / 2), minFreeBytes: 0 });
    store.setMeta(DRAIN_META_KEY, JSON.stringify({ ts: Date.now(), left: 1500, ratePerSec: 5000, bytesPerSec: 2_000_000, etaSeconds: 0 }));
    store.setMeta(
      MODEL_HEALTH_META_KEY,
      JSON.stringify([
        {
          model: 'mf',
          version: '1.0.0',
          asset: 'mill',
          state: 'drift',
          samples: 500,
          psiMax: 0.91,
          ts: 1,
          top: [{ feature: 'torque', psi: 0.91, chance: 0.02, outside: 0 }],
        },
        // What the default demo shows: a slow input's raw PSI is large while the state, judged on the figures shown, is ok.
        {
          model: 'mf',
          version: '1.0.0',
          asset: 'mill-2',
          state: 'ok',
          samples: 500,
          psiMax: 4.01,
          driftPsi: 0.003,
          outsideMax: 0.004,
          ts: 1,
          top: [{ feature: 'air_temperature', psi: 4.01, chance: 0.5, outside: 0.004, narrow: true }],
        },
      ]),
    );
    store.close();
    // The agent that wrote the note runs (this process stands in for it: its pid in the lock's pid file).
    writeFileSync(path.join(dir, 'agent.pid'), `${process.pid}\n`);
    const report = readStatus(dir);
    const t = report.streams.find((s) => s.stream === 'telemetry')!;
    expect(t.droppedTotal).toBeGreaterThan(0);
    expect(report.drain).toMatchObject({ left: 1500, ratePerSec: 5000 });
    const text = formatStatus(report);
    expect(text).toMatch(/draining: 1500 records left, 5000 records\/s \(1\.9 MiB\/s\)/);
    expect(text).toMatch(new RegExp(`telemetry +${t.pending} +0 +${t.droppedTotal} +3000`));
    // A status saved by an older agent has only the raw figure, and says so.
    expect(text).toMatch(/mill +mf@1\.0\.0 +DRIFT +max raw PSI 0\.910 over 500 rows +\(torque PSI 0\.910, outside 0\.0%\)/);
    expect(text).toMatch(/mill-2 +mf@1\.0\.0 +OK +drift PSI 0\.003, outside 0\.4% over 500 rows +\(air_temperature slow, raw PSI 4\.010, outside 0\.4%\)/);
    expect(text).toMatch(/storage +[\d.]+ MiB used/);
  });

  it("shows the latest risk per asset with a RUL model's calibrated interval", () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'fw-status-')), 'data');
    const store = new RecordStore({ dir });
    const risk = (asset: string, payload: Record<string, unknown>) => ({
      stream: 'risk' as const,
      ts: 1,
      asset,
      payload: { ts: 1, asset, modelVersion: '1.0.0', readingTs: 1, drivers: [], ...payload },
    });
    store.append([
      risk('engine-8', { model: 'turbofan-rul', kind: 'rul', score: 12.25, interval: { level: 0.9, lower: 6.38, upper: 20.56 }, threshold: 30, atRisk: true }),
      risk('mill', { model: 'machine-failure', kind: 'probability', score: 0.1, threshold: 0.42, atRisk: false }),
    ]);
    store.close();
    const text = formatStatus(readStatus(dir));
    expect(text).toMatch(/engine-8 +turbofan-rul@1\.0\.0 +12\.2500 \[90%: 6\.4–20\.6\] \(threshold 30\.0000\) +AT RISK/);
    // A record without an interval shows none.
    expect(text).toMatch(/mill +machine-failure@1\.0\.0 +0\.1000 \(threshold 0\.4200\) +ok/);
  });

  it('always shows the backlog: what waits for the broker and what waits for the centre, with or without a running agent', () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'fw-status-')), 'data');
    const store = new RecordStore({ dir });
    const ids = store.append(Array.from({ length: 1480 }, (_, i) => ({ stream: 'telemetry' as const, ts: i, asset: 'a', payload: {} })));
    // 480 of them the broker took (central acknowledgement): sent, awaiting the centre's confirmation.
    store.markPublished('telemetry', ids.slice(0, 480));
    // The agent's last drain note is stale (it stopped long ago), as in the report that said `backlog none`.
    store.setMeta(DRAIN_META_KEY, JSON.stringify({ ts: Date.now() - 3_600_000, left: 1000, ratePerSec: 0, bytesPerSec: 0, etaSeconds: null }));
    store.close();
    const report = readStatus(dir);
    expect(report.drain).toBeNull();
    expect(report.backlog).toEqual({ buffered: 1480, unsent: 1000, awaitingCentre: 480 });
    expect(report.agent).toEqual({ running: false, pid: null });
    const text = formatStatus(report);
    expect(text).toContain(
      "backlog   1480 records buffered: 1000 not yet sent, 480 sent and awaiting the centre's confirmation\n          (sent when the agent runs again)",
    );
    expect(text).toMatch(/^agent +not running$/m);
    expect(text).not.toMatch(/backlog +none/);
  });

  it('says whether the agent runs: a live pid in the storage lock pid file, not a stale one', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-status-'));
    expect(agentRunning(dir)).toEqual({ running: false, pid: null });
    writeFileSync(path.join(dir, 'agent.pid'), `${process.pid}\n`);
    expect(agentRunning(dir)).toEqual({ running: true, pid: process.pid });
    // A process that has exited (SIGKILL leaves the pid file behind).
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    writeFileSync(path.join(dir, 'agent.pid'), `${gone}\n`);
    expect(agentRunning(dir)).toEqual({ running: false, pid: null });
  });

  it("says whether the broker is reachable from here, and the running agent's own connection state", async () => {
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    expect(await probeBroker(`mqtt://127.0.0.1:${port}`)).toEqual({ reachable: true });
    await new Promise((resolve) => server.close(resolve));
    const down = await probeBroker(`mqtt://127.0.0.1:${port}`);
    expect(down.reachable).toBe(false);
    expect(down.error).toContain('ECONNREFUSED');
    expect((await probeBroker('not a url')).reachable).toBe(false);

    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'fw-status-')), 'data');
    const store = new RecordStore({ dir });
    store.setMeta(BROKER_STATE_META_KEY, JSON.stringify({ state: 'offline', since: Date.UTC(2026, 0, 2, 3, 4, 5), lastError: 'connect ECONNREFUSED' }));
    store.close();
    writeFileSync(path.join(dir, 'agent.pid'), `${process.pid}\n`);
    const report = readStatus(dir);
    report.broker = { ...report.broker, url: `mqtt://127.0.0.1:${port}`, ...down };
    expect(formatStatus(report)).toMatch(
      new RegExp(
        `^broker +mqtt://127\\.0\\.0\\.1:${port} NOT reachable from here \\(.*ECONNREFUSED.*\\); the agent is offline since 2026-01-02 03:04:05Z \\(connect ECONNREFUSED\\)$`,
        'm',
      ),
    );
    expect(formatStatus(report)).toMatch(new RegExp(`^agent +running \\(pid ${process.pid}\\)$`, 'm'));
  });
});
